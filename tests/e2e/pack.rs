//! `wrapkit pack`: what goes in, what comes out, and that the result runs anywhere.

use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::process::Command;

use crate::support::{App, Run, example, pack_cmd, require_root, wrapkit};

fn hello() -> App {
    App::new().file("main.lua", "print('hello ' .. (arg[1] or 'world'))\n")
}

#[test]
fn the_hello_example_packs_and_greets() {
    let out = tempfile::tempdir().unwrap();
    let exe = out.path().join("hello");
    let run = Run::of(
        wrapkit()
            .arg("pack")
            .arg(example("hello"))
            .arg("-o")
            .arg(&exe),
    );
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert!(
        run.stderr.starts_with("packed 1 file "),
        "summary line: {}",
        run.stderr
    );
    let greeting = Run::of(&mut Command::new(&exe)).ok();
    assert_eq!(greeting, "Hello, world! (from hello, Lua 5.4)\n");
    let greeting = Run::of(Command::new(&exe).arg("you")).ok();
    assert_eq!(greeting, "Hello, you! (from hello, Lua 5.4)\n");
}

#[test]
fn the_packed_file_is_statically_linked() {
    let packed = hello().pack(&[]);
    let ldd = Run::of(Command::new("ldd").arg(&packed.exe));
    let said = format!("{}{}", ldd.stdout, ldd.stderr);
    assert!(
        said.contains("statically linked") || said.contains("not a dynamic executable"),
        "ldd says: {said}"
    );
}

#[test]
fn runs_with_an_empty_environment_from_another_directory() {
    let packed = hello().pack(&[]);
    let elsewhere = tempfile::tempdir().unwrap();
    let out = Run::of(
        Command::new(&packed.exe)
            .env_clear()
            .current_dir(elsewhere.path())
            .arg("env"),
    )
    .ok();
    assert_eq!(out, "hello env\n");
}

#[test]
fn runs_through_a_symlink_and_a_relative_path() {
    let app = hello();
    let packed = app.pack(&[]);
    let link = app.scratch().join("link-to-packed");
    std::os::unix::fs::symlink(&packed.exe, &link).unwrap();
    assert_eq!(
        Run::of(Command::new(&link).arg("link")).ok(),
        "hello link\n"
    );
    let rel = Run::of(
        Command::new("./packed")
            .current_dir(app.scratch())
            .arg("rel"),
    )
    .ok();
    assert_eq!(rel, "hello rel\n");
}

#[test]
fn runs_in_an_empty_chroot() {
    if !require_root("the chroot test") {
        return;
    }
    let packed = hello().pack(&[]);
    let root = tempfile::tempdir().unwrap();
    fs::copy(&packed.exe, root.path().join("app")).unwrap();
    let entries: Vec<_> = fs::read_dir(root.path()).unwrap().collect();
    assert_eq!(entries.len(), 1, "the chroot holds nothing but the app");
    let out = Run::of(
        Command::new("chroot")
            .arg(root.path())
            .args(["/app", "chroot"]),
    )
    .ok();
    assert_eq!(out, "hello chroot\n");
}

#[test]
fn standard_zip_tools_read_the_executable_as_it_is() {
    let app = hello()
        .file("lib/data.txt", "some data ".repeat(200))
        .dir("empty");
    let packed = app.pack(&[]);
    let listing = Run::of(Command::new("unzip").arg("-l").arg(&packed.exe)).ok();
    for name in [
        "main.lua",
        "lib/data.txt",
        "empty/",
        ".wrapkit/index",
        ".wrapkit/manifest.json",
    ] {
        assert!(listing.contains(name), "unzip -l lacks {name}:\n{listing}");
    }
    let tested = Run::of(Command::new("unzip").arg("-tq").arg(&packed.exe)).ok();
    assert!(tested.contains("No errors detected"), "{tested}");
    let py = Run::of(
        Command::new("python3")
            .arg("-c")
            .arg(
                "import sys, zipfile; z = zipfile.ZipFile(sys.argv[1]); print(z.testzip()); \
         print(z.read('lib/data.txt').decode()[:10])",
            )
            .arg(&packed.exe),
    )
    .ok();
    assert_eq!(py, "None\nsome data \n");
}

/// Builds the same tree in two very different ways.
fn tree_variant(reverse: bool, private: bool) -> App {
    let mut files = vec![
        ("a.lua", "print('a')\n".to_string()),
        ("lib/b.lua", "return 1\n".to_string()),
        ("lib/deep/c.txt", "c".repeat(5000)),
        ("z/bin/tool", "#!/bin/sh\necho tool\n".to_string()),
        ("main.lua", "print('main')\n".to_string()),
    ];
    if reverse {
        files.reverse();
    }
    let mut app = App::new().dir("empty");
    for (name, contents) in &files {
        app = app.file(name, contents);
    }
    let file_mode = if private { 0o600 } else { 0o664 };
    let exec_mode = if private { 0o700 } else { 0o775 };
    for (name, _) in &files {
        let mode = if name.ends_with("tool") {
            exec_mode
        } else {
            file_mode
        };
        fs::set_permissions(app.path().join(name), fs::Permissions::from_mode(mode)).unwrap();
        let stamp = if private {
            "2001-02-03 04:05"
        } else {
            "2022-12-31 23:59"
        };
        Run::of(
            Command::new("touch")
                .arg("-h")
                .arg("-d")
                .arg(stamp)
                .arg(app.path().join(name)),
        )
        .ok();
    }
    app
}

#[test]
fn output_is_byte_identical_whatever_the_umask_tz_locale_order_and_mtimes() {
    let one = tree_variant(false, false);
    let two = tree_variant(true, true);
    let a = one.scratch().join("a");
    let b = two.scratch().join("b");
    let r1 = Run::of(pack_cmd(one.path(), &a).env("TZ", "UTC").env("LC_ALL", "C"));
    let r2 = Run::of(
        Command::new("sh")
            .arg("-c")
            .arg("umask 077; exec \"$0\" pack -q \"$1\" -o \"$2\"")
            .arg(env!("CARGO_BIN_EXE_wrapkit"))
            .arg(two.path())
            .arg(&b)
            .env("TZ", "Pacific/Kiritimati")
            .env("LC_ALL", "C.UTF-8"),
    );
    assert_eq!(
        (r1.code, r2.code),
        (Some(0), Some(0)),
        "{}{}",
        r1.stderr,
        r2.stderr
    );
    assert!(
        fs::read(&a).unwrap() == fs::read(&b).unwrap(),
        "two packs of the same tree differ"
    );
    // The name of the app is the directory's, which differs here: both are called `app`.
    assert_eq!(Run::of(&mut Command::new(&a)).ok(), "main\n");
}

#[test]
fn source_date_epoch_sets_the_timestamps_and_is_validated() {
    let app = hello();
    let out = app.scratch().join("dated");
    let run = Run::of(pack_cmd(app.path(), &out).env("SOURCE_DATE_EPOCH", "1700000000"));
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    let listing = Run::of(Command::new("unzip").arg("-l").arg(&out)).ok();
    assert!(listing.contains("2023-11-14 22:13"), "{listing}");
    // Before 1980 is clamped to zip's epoch rather than refused.
    let run = Run::of(pack_cmd(app.path(), &out).env("SOURCE_DATE_EPOCH", "5"));
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert!(
        Run::of(Command::new("unzip").arg("-l").arg(&out))
            .ok()
            .contains("1980-01-01 00:00")
    );
    // Unset, entries carry zip's epoch.
    let unset = Run::of(pack_cmd(app.path(), &out).env_remove("SOURCE_DATE_EPOCH"));
    assert_eq!(unset.code, Some(0), "{}", unset.stderr);
    assert!(
        Run::of(Command::new("unzip").arg("-l").arg(&out))
            .ok()
            .contains("1980-01-01 00:00")
    );
    let run = Run::of(pack_cmd(app.path(), &out).env("SOURCE_DATE_EPOCH", "yesterday"));
    let err = run.fails_with(1);
    assert!(
        err.starts_with("error: SOURCE_DATE_EPOCH=`yesterday` is not a whole number"),
        "{err}"
    );
}

/// Mode bits and kinds as Python's zipfile reports them: `name mode` per line.
fn modes(exe: &std::path::Path) -> String {
    Run::of(Command::new("python3").arg("-c").arg(
        "import sys, zipfile\nfor i in zipfile.ZipFile(sys.argv[1]).infolist(): print(i.filename, oct(i.external_attr >> 16))",
    ).arg(exe))
    .ok()
}

#[test]
fn modes_are_normalised_keeping_only_the_executable_bit() {
    let app = hello()
        .executable("bin/run", "#!/bin/sh\n")
        .dir("empty/inner");
    fs::set_permissions(
        app.path().join("main.lua"),
        fs::Permissions::from_mode(0o4777),
    )
    .unwrap();
    let packed = app.pack(&[]);
    let m = modes(&packed.exe);
    assert!(m.contains("bin/run 0o100755\n"), "{m}");
    assert!(
        m.contains("main.lua 0o100755\n"),
        "setuid and world-write dropped: {m}"
    );
    assert!(m.contains("empty/ 0o40755\n"), "{m}");
    assert!(
        m.contains("empty/inner/ 0o40755\n"),
        "empty directories are kept: {m}"
    );
}

#[test]
fn symlinks_inside_the_tree_stay_links_and_ones_leaving_it_are_refused() {
    let app = hello()
        .file("real/mod.lua", "return 'x'")
        .symlink("alias", "real/mod.lua");
    let packed = app.pack(&[]);
    assert!(modes(&packed.exe).contains("alias 0o120777\n"));

    let outside = tempfile::tempdir().unwrap();
    fs::write(outside.path().join("secret.txt"), "secret").unwrap();
    let app = hello().symlink("leak", outside.path().join("secret.txt").to_str().unwrap());
    let out = app.scratch().join("out");
    let err = app.pack_to(&out, &[]).fails_with(1);
    assert!(
        err.contains("error: symlink") && err.contains("points outside the app directory"),
        "{err}"
    );
    assert!(err.contains("hint: pass `--follow-symlinks`"), "{err}");
    assert!(!out.exists(), "nothing is written on error");

    let app = hello().symlink("up", "../../etc/passwd");
    assert!(
        app.pack_to(&app.scratch().join("o"), &[])
            .fails_with(1)
            .contains("points outside")
    );

    let followed = hello().symlink("leak", outside.path().join("secret.txt").to_str().unwrap());
    let packed = followed.pack(&["--follow-symlinks"]);
    let m = modes(&packed.exe);
    assert!(
        m.contains("leak 0o100644\n"),
        "a followed link is packed as a file: {m}"
    );
}

#[test]
fn symlink_loops_are_an_error_not_a_hang() {
    let app = hello().dir("d").symlink("d/loop", "..");
    let err = app
        .pack_to(&app.scratch().join("o"), &["--follow-symlinks"])
        .fails_with(1);
    assert!(err.starts_with("error: cannot read"), "{err}");
}

#[test]
fn an_output_inside_the_input_is_refused() {
    let app = hello();
    let out = app.path().join("packed");
    let err = app.pack_to(&out, &[]).fails_with(1);
    assert!(err.contains("is inside the input directory"), "{err}");
    assert!(!out.exists());
    let sneaky = app.path().join("sub/../packed");
    fs::create_dir(app.path().join("sub")).unwrap();
    assert!(
        app.pack_to(&sneaky, &[])
            .fails_with(1)
            .contains("inside the input directory")
    );
}

#[test]
fn a_missing_entry_script_is_named() {
    let app = App::new().file("app.lua", "print(1)");
    let err = app.pack_to(&app.scratch().join("o"), &[]).fails_with(1);
    assert!(
        err.contains("error: the entry script `main.lua` is not a file in"),
        "{err}"
    );
    assert!(
        err.contains("hint: name the script with `--entry`"),
        "{err}"
    );
    let packed = app.pack(&["--entry", "app.lua"]);
    assert_eq!(packed.run(&[]).ok(), "1\n");
}

#[test]
fn wrapkit_toml_configures_and_flags_override_it() {
    let app = App::new()
        .file(
            "wrapkit.toml",
            "name = \"tool\"\nversion = \"2.3.4\"\nentry = \"src/start.lua\"\nexclude = [\"*.tmp\"]\n",
        )
        .file(
            "src/start.lua",
            "local w = require('wrapkit') print(w.name, w.version, w.exists('junk.tmp'), w.exists('wrapkit.toml'))",
        )
        .file("junk.tmp", "x");
    assert_eq!(app.pack(&[]).run(&[]).ok(), "tool\t2.3.4\tfalse\tfalse\n");
    let packed = app.pack(&["--name", "other", "--app-version", "9"]);
    assert_eq!(packed.run(&[]).ok(), "other\t9\tfalse\tfalse\n");

    let typo = App::new()
        .file("wrapkit.toml", "nmae = \"typo\"\n")
        .file("main.lua", "");
    let err = typo.pack_to(&typo.scratch().join("o"), &[]).fails_with(1);
    assert!(
        err.contains("invalid configuration in") && err.contains("unknown field `nmae`"),
        "{err}"
    );
}

#[test]
fn special_files_and_bad_names_are_refused_by_name() {
    let app = hello();
    let fifo = app.path().join("pipe");
    Run::of(Command::new("mkfifo").arg(&fifo)).ok();
    let err = app.pack_to(&app.scratch().join("o"), &[]).fails_with(1);
    assert!(err.contains("pipe: is a fifo"), "{err}");
    let packed = app.pack(&["--exclude", "pipe"]);
    assert_eq!(packed.run(&[]).ok(), "hello world\n");

    let app = hello().file("back\\slash", "x");
    let err = app.pack_to(&app.scratch().join("o"), &[]).fails_with(1);
    assert!(
        err.contains("cannot be stored") && err.contains("backslash"),
        "{err}"
    );

    let app = hello().file("README", "a").file("readme", "b");
    let err = app.pack_to(&app.scratch().join("o"), &[]).fails_with(1);
    assert!(
        err.contains("`README` and `readme` differ only in letter case"),
        "{err}"
    );

    let app = hello();
    let raw = std::ffi::OsStr::from_bytes(b"bad\xffname");
    fs::write(app.path().join(raw), "x").unwrap();
    let err = app.pack_to(&app.scratch().join("o"), &[]).fails_with(1);
    assert!(err.contains("is not valid UTF-8"), "{err}");
}

#[test]
fn a_packed_executable_as_runtime_has_its_payload_replaced() {
    let first = hello();
    let a = first.pack(&[]);
    let second = App::new().file("main.lua", "print('second')");
    let b_path = second.scratch().join("b");
    let run = Run::of(
        pack_cmd(second.path(), &b_path)
            .arg("--runtime")
            .arg(&a.exe),
    );
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert_eq!(Run::of(&mut Command::new(&b_path)).ok(), "second\n");
    let plain = second.pack(&[]);
    assert_eq!(
        fs::read(&b_path).unwrap(),
        plain.bytes(),
        "same bytes as packing with the built-in stub"
    );

    let not_elf = second.scratch().join("not-elf");
    fs::write(&not_elf, "#!/bin/sh\n").unwrap();
    let err = second
        .pack_to(
            &second.scratch().join("c"),
            &["--runtime", not_elf.to_str().unwrap()],
        )
        .fails_with(1);
    assert!(
        err.contains("is not a usable runtime stub: it is not an ELF executable"),
        "{err}"
    );
}

#[test]
fn include_globs_select_files_and_keep_their_directories() {
    let app = hello()
        .file("lib/a.lua", "")
        .file("lib/b.txt", "")
        .file("docs/x.md", "");
    let packed = app.pack(&["--include", "*.lua"]);
    let m = modes(&packed.exe);
    assert!(
        m.contains("lib/ ") && m.contains("lib/a.lua ") && m.contains("main.lua "),
        "{m}"
    );
    assert!(!m.contains("b.txt") && !m.contains("docs"), "{m}");
}

#[test]
fn more_than_65535_entries_use_zip64_and_still_read_everywhere() {
    let app = App::new().file(
        "main.lua",
        "local w = require('wrapkit') print(#w.list('d/d7'), w.read('d/d69/f999.txt'))",
    );
    for d in 0..70 {
        let dir = app.path().join(format!("d/d{d}"));
        fs::create_dir_all(&dir).unwrap();
        for f in 0..1000 {
            fs::write(dir.join(format!("f{f}.txt")), format!("{d}/{f}")).unwrap();
        }
    }
    let packed = app.pack(&[]);
    assert_eq!(packed.run(&[]).ok(), "1000\t69/999\n");
    let bytes = packed.bytes();
    let zip64_locator = [0x50, 0x4b, 0x06, 0x07];
    assert!(
        bytes[crate::support::archive_range(&bytes).end - 158 - 22 - 20..]
            .starts_with(&zip64_locator),
        "zip64 end records are written"
    );
    let py = Run::of(
        Command::new("python3")
            .arg("-c")
            .arg("import sys, zipfile; z = zipfile.ZipFile(sys.argv[1]); print(len(z.namelist()), z.read('d/d3/f4.txt').decode())")
            .arg(&packed.exe),
    )
    .ok();
    assert_eq!(
        py, "70074 3/4\n",
        "70,000 files, 71 directories, main.lua and wrapkit's two entries"
    );
    let ok = Run::of(wrapkit().arg("verify").arg(&packed.exe)).ok();
    assert!(ok.starts_with("ok: 70072 entries (70001 files"), "{ok}");
}

/// Whether SIGPIPE (13) is in the SigIgn mask a program reports.
fn sigpipe_ignored(status_line: &str) -> bool {
    let mask =
        u64::from_str_radix(status_line.trim().trim_start_matches("SigIgn:").trim(), 16).unwrap();
    mask & (1 << 12) != 0
}

#[test]
fn signal_dispositions_are_the_callers_in_lua_and_exec_mode() {
    let lua = App::new()
        .file(
            "main.lua",
            "for l in io.lines('/proc/self/status') do if l:match('^SigIgn') then print(l) end end",
        )
        .pack(&[]);
    let exec = App::new()
        .executable("show.sh", "#!/bin/sh\ngrep '^SigIgn' /proc/self/status\n")
        .pack(&["--exec", "show.sh"]);
    let cache = tempfile::tempdir().unwrap();
    for packed in [&lua, &exec] {
        let direct = Run::of(packed.cmd().env("WRAPKIT_CACHE_DIR", cache.path())).ok();
        assert!(
            !sigpipe_ignored(&direct),
            "SIGPIPE is not ignored unless the caller ignores it: {direct}"
        );
        let ignored = Run::of(
            Command::new("sh")
                .arg("-c")
                .arg("trap '' PIPE; exec \"$0\"")
                .arg(&packed.exe)
                .env("WRAPKIT_CACHE_DIR", cache.path()),
        )
        .ok();
        assert!(
            sigpipe_ignored(&ignored),
            "an ignored SIGPIPE stays ignored: {ignored}"
        );
    }
}

#[test]
fn a_file_over_64_mib_is_streamed_not_held_in_memory() {
    let app = hello();
    let asset = app.path().join("asset.bin");
    let mut source = fs::File::open("/dev/urandom").unwrap();
    let mut out = fs::File::create(&asset).unwrap();
    std::io::copy(&mut std::io::Read::take(&mut source, 100 << 20), &mut out).unwrap();
    drop(out);
    let exe = app.scratch().join("big");
    // Peak RSS of `wrapkit pack`, measured by a parent that only waits for it.
    let rss_kib: u64 = Run::of(
        Command::new("python3")
            .arg("-c")
            .arg(
                "import resource, subprocess, sys\n\
                 subprocess.run(sys.argv[1:], check=True)\n\
                 print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)",
            )
            .arg(env!("CARGO_BIN_EXE_wrapkit"))
            .args(["pack", "-q"])
            .arg(app.path())
            .arg("-o")
            .arg(&exe),
    )
    .ok()
    .trim()
    .parse()
    .unwrap();
    assert!(
        rss_kib < 60 << 10,
        "packing a 100 MiB file peaked at {rss_kib} KiB"
    );
    let ok = Run::of(wrapkit().arg("verify").arg(&exe)).ok();
    assert!(ok.starts_with("ok: 2 entries (2 files, 104857"), "{ok}");
    let listing = Run::of(wrapkit().args(["ls", "--long"]).arg(&exe)).ok();
    assert!(
        listing.contains(" 104857600  104857600 stored  asset.bin"),
        "{listing}"
    );
    assert_eq!(Run::of(&mut Command::new(&exe)).ok(), "hello world\n");
}

#[test]
fn a_flag_replaces_the_files_run_spec_whichever_kind_it_is() {
    // wrapkit.toml says exec; `--entry` on the command line makes it a Lua app.
    let app = App::new()
        .file("main.lua", "print('lua ran')")
        .executable("bin/tool", "#!/bin/sh\necho tool ran\n")
        .file("wrapkit.toml", "exec = [\"bin/tool\"]\n");
    let packed = app.pack(&["--entry", "main.lua"]);
    assert_eq!(packed.run(&[]).ok(), "lua ran\n");
    // wrapkit.toml says entry; `--exec` makes it an exec app.
    let app = App::new()
        .file("main.lua", "print('lua ran')")
        .executable("bin/tool", "#!/bin/sh\necho tool ran\n")
        .file("wrapkit.toml", "entry = \"main.lua\"\n");
    let list = Run::of(
        wrapkit()
            .args(["pack", "--list", "--exec", "bin/tool"])
            .arg(app.path()),
    )
    .ok();
    assert!(list.starts_with("app 0.0.0: exec bin/tool\n"), "{list}");
    // Both flags at once is a usage error; `env` for a Lua app is refused.
    let both = app.pack_to(
        &app.scratch().join("o"),
        &["--entry", "main.lua", "--exec", "bin/tool"],
    );
    assert_eq!(both.code, Some(2), "{}", both.stderr);
    let err = app
        .pack_to(&app.scratch().join("o"), &["--env", "A=b"])
        .fails_with(1);
    assert!(
        err.starts_with("error: `--env` sets variables for an `exec` program, but this app runs a Lua script; choose one\n"),
        "{err}"
    );
    assert!(!app.scratch().join("o").exists());
}
