//! Hostile archives (shared/hostile-inputs.md, "The archive"): every one is refused by the one
//! validator before a byte is written, by `ls`, `extract` and `verify` alike, and the
//! filesystem is walked afterwards to prove nothing escaped.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use crate::forge::{Forged, forge};
use crate::support::{App, Run, wrapkit};

/// A real stub, cut from a packed app.
fn stub() -> &'static [u8] {
    static STUB: OnceLock<Vec<u8>> = OnceLock::new();
    STUB.get_or_init(|| {
        let packed = App::new().file("main.lua", "print('hi')").pack(&[]);
        crate::support::stub_of(&packed.bytes())
    })
}

/// A sandbox: `root/` holds the forged file and `root/out/` is the extraction target; after
/// each attempt the whole sandbox is listed so escapes are visible.
struct Sandbox {
    dir: tempfile::TempDir,
}

impl Sandbox {
    fn new() -> Self {
        Sandbox {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn write(&self, entries: &[Forged]) -> PathBuf {
        let path = self.dir.path().join("forged");
        fs::write(&path, forge(stub(), entries, "main.lua")).unwrap();
        fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        path
    }

    /// Every path under the sandbox, relative, sorted.
    fn listing(&self) -> Vec<String> {
        let mut all: Vec<String> = walkdir(self.dir.path())
            .into_iter()
            .map(|p| {
                p.strip_prefix(self.dir.path())
                    .unwrap()
                    .to_string_lossy()
                    .into_owned()
            })
            .collect();
        all.sort();
        all
    }
}

fn walkdir(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            if fs::symlink_metadata(&p).unwrap().is_dir() {
                stack.push(p.clone());
            }
            out.push(p);
        }
    }
    out
}

/// `ls`, `extract`, `verify` and `cat` all refuse the archive with `expect` in their message,
/// and nothing but the forged file exists in the sandbox afterwards.
#[track_caller]
fn refused_everywhere(entries: &[Forged], expect: &str) {
    let sb = Sandbox::new();
    let app = sb.write(entries);
    let out = sb.dir.path().join("out");
    for args in [vec!["ls"], vec!["verify"], vec!["extract"], vec!["cat"]] {
        let mut cmd = wrapkit();
        cmd.args(&args).arg(&app);
        if args[0] == "extract" {
            cmd.arg(&out);
        }
        if args[0] == "cat" {
            cmd.arg("main.lua");
        }
        let err = Run::of(&mut cmd).fails_with(1);
        assert!(err.starts_with("error: "), "{args:?}: {err}");
        assert!(
            err.contains(expect),
            "{args:?} should say `{expect}`:\n{err}"
        );
        assert!(!err.contains("panicked"), "{err}");
    }
    assert_eq!(sb.listing(), ["forged"], "something was written");
}

fn main_lua() -> Forged {
    Forged::file("main.lua", b"print('hi')")
}

#[test]
fn a_forged_but_sane_archive_is_accepted_so_the_refusals_below_mean_something() {
    let sb = Sandbox::new();
    let app = sb.write(&[Forged::dir("d"), Forged::file("d/x.txt", b"x"), main_lua()]);
    assert_eq!(
        Run::of(wrapkit().arg("ls").arg(&app)).ok(),
        "d/\nd/x.txt\nmain.lua\n"
    );
    let out = sb.dir.path().join("out");
    Run::of(wrapkit().arg("extract").arg(&app).arg(&out)).ok();
    assert_eq!(fs::read_to_string(out.join("d/x.txt")).unwrap(), "x");
    assert_eq!(Run::of(&mut Command::new(&app)).ok(), "hi\n");
}

#[test]
fn traversal_absolute_and_drive_letter_names_are_refused() {
    for (name, why) in [
        ("../x", "`.` or `..` component"),
        ("a/../../x", "`.` or `..` component"),
        ("/etc/x", "absolute"),
        ("C:\\x", "backslash"),
        ("C:x", "drive letter"),
        ("..\\x", "backslash"),
        ("a\0b", "control character"),
        ("a\u{1b}[31mb", "control character"),
    ] {
        refused_everywhere(&[main_lua(), Forged::file(name, b"evil")], why);
    }
}

#[test]
fn symlinks_leaving_the_tree_and_writes_through_links_are_refused() {
    refused_everywhere(
        &[main_lua(), Forged::symlink("out", "../../../etc")],
        "leaves the archive",
    );
    refused_everywhere(
        &[main_lua(), Forged::symlink("abs", "/etc/passwd")],
        "leaves the archive",
    );
    // A link to a directory inside, then a file "through" it: the zip-slip of CVE-2025-29787.
    refused_everywhere(
        &[
            Forged::dir("d"),
            Forged::symlink("l", "d"),
            Forged::file("l/x", b"x"),
            main_lua(),
        ],
        "`l` is a symlink but this entry is inside it",
    );
}

#[test]
fn duplicate_names_in_any_disguise_are_refused() {
    refused_everywhere(
        &[main_lua(), Forged::file("a", b"1"), Forged::file("a", b"2")],
        "appears twice",
    );
    refused_everywhere(
        &[
            main_lua(),
            Forged::file("README", b"1"),
            Forged::file("readme", b"2"),
        ],
        "collides with",
    );
    refused_everywhere(
        &[
            main_lua(),
            Forged::file("caf\u{e9}", b"1"),
            Forged::file("cafe\u{301}", b"2"),
        ],
        "collides with",
    );
    refused_everywhere(
        &[
            main_lua(),
            Forged::file("a", b"1"),
            Forged::file("a/b", b"2"),
        ],
        "`a` is a file",
    );
}

#[test]
fn headers_that_disagree_are_refused() {
    let mut renamed = Forged::file("x", b"data");
    renamed.local_name = Some("y".into());
    refused_everywhere(
        &[main_lua(), renamed],
        "disagrees with the central directory (name)",
    );
    let mut resized = Forged::file("x", b"data");
    resized.local_sizes = Some((4, 5));
    refused_everywhere(
        &[main_lua(), resized],
        "disagrees with the central directory (sizes)",
    );
    let mut resized = Forged::deflated("x", &b"data".repeat(100));
    let cs = resized.data.len() as u64;
    resized.local_sizes = Some((cs, 399));
    refused_everywhere(&[main_lua(), resized], "(sizes)");
}

#[test]
fn encrypted_and_unknown_methods_are_refused_by_name() {
    let mut enc = Forged::file("x", b"data");
    enc.flags |= 1;
    refused_everywhere(&[main_lua(), enc], "it is encrypted");
    let mut zstd = Forged::file("x", b"data");
    zstd.method = 93;
    refused_everywhere(&[main_lua(), zstd], "unsupported compression: zstd (93)");
    let mut bzip = Forged::file("x", b"data");
    bzip.method = 12;
    refused_everywhere(&[main_lua(), bzip], "bzip2 (12)");
}

#[test]
fn special_file_types_are_refused() {
    refused_everywhere(
        &[main_lua(), Forged::file("fifo", b"").mode(0o010644)],
        "unsupported file type",
    );
    refused_everywhere(
        &[main_lua(), Forged::file("dev", b"").mode(0o020644)],
        "unsupported file type",
    );
}

/// The overlapping-entry bomb: 262 central records sharing one local entry that inflates to
/// 21 MiB, about 5.5 GB in all from a file of a few tens of kB.
fn overlapping_bomb() -> Vec<Forged> {
    let kernel = Forged::deflated("k0", &vec![0u8; 21 << 20]);
    let mut entries = vec![main_lua(), kernel.clone()];
    for _ in 1..262 {
        let mut e = kernel.clone();
        e.share_header_of = Some(1);
        entries.push(e);
    }
    entries
}

#[test]
fn the_overlapping_entry_bomb_is_refused_quickly_with_nothing_written() {
    let entries = overlapping_bomb();
    let declared: u64 = entries.iter().map(|e| e.size).sum();
    assert!(
        declared > 5 << 30,
        "the bomb declares over 5 GiB ({declared})"
    );
    let started = std::time::Instant::now();
    refused_everywhere(&entries, "its bytes overlap those of `k0`");
    assert!(
        started.elapsed().as_secs() < 10,
        "took {:?}",
        started.elapsed()
    );
}

#[test]
fn impossible_ratios_and_sizes_are_refused_before_inflating() {
    let mut liar = Forged::deflated("x", b"tiny");
    liar.size = 1 << 40;
    refused_everywhere(&[main_lua(), liar], "more than deflate can produce");
}

#[test]
fn an_entry_inflating_past_its_declared_size_is_stopped_and_removed() {
    let sb = Sandbox::new();
    let mut long = Forged::deflated("long.txt", &b"x".repeat(10_000));
    long.size = 100;
    long.crc32 = crc32fast::hash(&b"x".repeat(100));
    let app = sb.write(&[main_lua(), long]);
    let out = sb.dir.path().join("out");
    let err = Run::of(wrapkit().arg("extract").arg(&app).arg(&out)).fails_with(1);
    assert!(err.contains("inflates to more than 100 bytes"), "{err}");
    assert_eq!(
        sb.listing(),
        ["forged"],
        "the partial file and the new target are removed"
    );
    let verify = Run::of(wrapkit().arg("verify").arg(&app)).fails_with(1);
    assert!(verify.contains("data of `long.txt`"), "{verify}");
}

#[test]
fn setuid_setgid_and_world_writable_modes_are_not_extracted() {
    let sb = Sandbox::new();
    let app = sb.write(&[
        main_lua(),
        Forged::file("suid", b"x").mode(0o104777),
        Forged::file("plain", b"x").mode(0o100666),
        Forged::dir("d").mode(0o041777),
    ]);
    let out = sb.dir.path().join("out");
    Run::of(wrapkit().arg("extract").arg(&app).arg(&out)).ok();
    let mode = |p: &str| {
        std::os::unix::fs::PermissionsExt::mode(&fs::metadata(out.join(p)).unwrap().permissions())
            & 0o7777
    };
    assert_eq!(mode("suid"), 0o755);
    assert_eq!(mode("plain"), 0o644);
    assert_eq!(mode("d"), 0o755);
}

#[test]
fn a_target_with_a_planted_symlink_is_not_followed() {
    let sb = Sandbox::new();
    let app = sb.write(&[main_lua(), Forged::file("victim", b"overwritten")]);
    let out = sb.dir.path().join("out");
    let elsewhere = sb.dir.path().join("elsewhere");
    fs::create_dir(&out).unwrap();
    fs::create_dir(&elsewhere).unwrap();
    std::os::unix::fs::symlink(elsewhere.join("victim"), out.join("victim")).unwrap();
    let err = Run::of(wrapkit().arg("extract").arg(&app).arg(&out)).fails_with(1);
    assert!(
        err.contains("must be an existing, empty directory"),
        "{err}"
    );
    assert!(!elsewhere.join("victim").exists());
    // A target that is itself a symlink is refused too.
    let link = sb.dir.path().join("link");
    std::os::unix::fs::symlink(&elsewhere, &link).unwrap();
    let err = Run::of(wrapkit().arg("extract").arg(&app).arg(&link)).fails_with(1);
    assert!(
        err.contains("must be an existing, empty directory"),
        "{err}"
    );
    assert_eq!(fs::read_dir(&elsewhere).unwrap().count(), 0);
}

#[test]
fn the_runtime_never_serves_a_name_the_validator_would_refuse() {
    // `../x` is in the index, but paths are normalised before any lookup, so the entry cannot
    // be reached: the wrapkit module refuses the path, and io.open goes to the real filesystem.
    let sb = Sandbox::new();
    let app = sb.write(&[
        Forged::file(
            "main.lua",
            b"local w = require('wrapkit') print(pcall(w.read, '../x')) print(io.open(w.root .. '/../x'))",
        ),
        Forged::file("../x", b"evil"),
    ]);
    let out = Run::of(&mut Command::new(&app)).ok();
    assert!(!out.contains("evil"), "{out}");
    assert!(
        out.starts_with("false\t") && out.contains("is outside the archive"),
        "{out}"
    );
    assert!(
        out.lines().nth(1).is_some_and(|l| l.starts_with("nil\t")),
        "{out}"
    );
}

/// Writes the overlapping-entry bomb to `$WRAPKIT_WRITE_BOMB` for `tests/bench/verify.sh`.
#[test]
#[ignore = "a helper for tests/bench/verify.sh, not a test"]
fn write_bomb_for_benchmarks() {
    let path = std::env::var_os("WRAPKIT_WRITE_BOMB").expect("set WRAPKIT_WRITE_BOMB");
    fs::write(path, forge(stub(), &overlapping_bomb(), "main.lua")).unwrap();
}

/// `sub/up -> ..` and `x -> sub/up/../../etc/passwd` each stay inside the tree when checked
/// alone, lexically; followed by the OS, `x` leaves it.
fn parent_link_chain() -> Vec<Forged> {
    vec![
        main_lua(),
        Forged::dir("sub"),
        Forged::symlink("sub/up", ".."),
        Forged::symlink("x", "sub/up/../../etc/passwd"),
    ]
}

#[test]
fn symlink_chain_through_a_parent_link_is_refused_everywhere() {
    refused_everywhere(
        &parent_link_chain(),
        "entry `x`: symlink to `sub/up/../../etc/passwd` leaves the archive",
    );
    // `..` after a link to a directory applies to where the link led (`a`), not to the text.
    refused_everywhere(
        &[
            main_lua(),
            Forged::dir("a"),
            Forged::dir("a/b"),
            Forged::symlink("d", "a/b"),
            Forged::symlink("x", "d/../../.."),
        ],
        "entry `x`: symlink to `d/../../..` leaves the archive",
    );
    // Reached through another link, the message names the chain.
    refused_everywhere(
        &[
            main_lua(),
            Forged::dir("sub"),
            Forged::symlink("sub/up", ".."),
            Forged::symlink("sub/out", "up"),
            Forged::symlink("y", "sub/out/../etc/passwd"),
        ],
        "entry `y`: symlink to `sub/out/../etc/passwd` leaves the archive (through `sub/out` -> `up`)",
    );
}

#[test]
fn in_tree_link_chains_are_still_accepted_and_followed() {
    let sb = Sandbox::new();
    let app = sb.write(&[
        main_lua(),
        Forged::dir("a"),
        Forged::dir("a/b"),
        Forged::file("a/f.txt", b"through the chain"),
        Forged::symlink("d", "a/b"),
        Forged::symlink("x", "d/../f.txt"),
        Forged::symlink("loop1", "loop2"),
        Forged::symlink("loop2", "loop1"),
    ]);
    Run::of(wrapkit().arg("verify").arg(&app)).ok();
    assert_eq!(
        Run::of(wrapkit().arg("cat").arg(&app).arg("x")).ok(),
        "through the chain"
    );
    let err = Run::of(wrapkit().arg("cat").arg(&app).arg("loop1")).fails_with(1);
    assert!(err.contains("too many levels of symbolic links"), "{err}");
}

#[test]
fn symlink_chain_through_a_parent_link_does_not_reach_a_file_in_the_runtime() {
    // The stub opens archives in O(1) without the full validation, so its own resolver must
    // not follow the chain: lexically `x` is `etc/passwd` (planted here), physically it is
    // outside the archive and names nothing.
    let sb = Sandbox::new();
    let mut entries = parent_link_chain();
    entries[0] = Forged::file(
        "main.lua",
        b"local w = require('wrapkit')\n\
          print(pcall(w.read, 'x'))\n\
          print(io.open(w.root .. '/x'))\n",
    );
    entries.push(Forged::dir("etc"));
    entries.push(Forged::file("etc/passwd", b"root:planted"));
    let app = sb.write(&entries);
    let out = Run::of(&mut Command::new(&app)).ok();
    assert!(!out.contains("root:"), "the chain was followed:\n{out}");
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines[0].contains("x: No such file or directory"), "{out}");
    assert!(lines[1].starts_with("nil\t"), "{out}");
}

#[test]
fn symlink_chain_through_a_parent_link_is_refused_when_packing() {
    let app = App::new()
        .file("main.lua", "print('hi')")
        .dir("sub")
        .symlink("sub/up", "..")
        .symlink("x", "sub/up/../../etc/passwd");
    let out = app.scratch().join("packed");
    let err = app.pack_to(&out, &[]).fails_with(1);
    assert!(
        err.starts_with("error: symlink ")
            && err
                .contains("/app/x points outside the app directory (to `sub/up/../../etc/passwd`, through `sub/up` -> `..`)"),
        "{err}"
    );
    assert!(!out.exists(), "nothing is written");
    // Through another link, the chain is named.
    let app = App::new()
        .file("main.lua", "print('hi')")
        .dir("sub")
        .symlink("sub/up", "..")
        .symlink("sub/out", "up")
        .symlink("y", "sub/out/../x");
    let err = app.pack_to(&app.scratch().join("o"), &[]).fails_with(1);
    assert!(
        err.contains(
            "/app/y points outside the app directory (to `sub/out/../x`, through `sub/out` -> `up`)"
        ),
        "{err}"
    );
}

/// 3,000 names of 2,040 components each: walking every parent of every name through a hash
/// map took 77 s in a debug build; linear, it takes about what the same name bytes take
/// without any depth. Timed against that flat twin in the same run, so a loaded machine slows
/// both alike.
#[test]
fn validating_deep_names_is_not_quadratic_in_their_depth() {
    let time_ls = |prefix: &str| {
        let mut entries = vec![main_lua()];
        entries.extend((0..3000).map(|i| Forged::file(&format!("{prefix}{i:04}"), b"")));
        assert!(entries[1].name.len() <= 4096);
        let sb = Sandbox::new();
        let app = sb.write(&entries);
        let started = std::time::Instant::now();
        let run = Run::of(
            wrapkit()
                .arg("ls")
                .arg(&app)
                .stdout(std::process::Stdio::null()),
        );
        assert_eq!(run.code, Some(0), "{}", run.stderr);
        started.elapsed().as_secs_f64()
    };
    let deep = time_ls(&"a/".repeat(2039));
    let flat = time_ls(&"a".repeat(4078));
    assert!(
        deep < 4.0 * flat + 0.5,
        "`wrapkit ls` took {deep:.2} s on deep names, {flat:.2} s on flat ones of the same length"
    );
}

/// Runs `wrapkit ARGS` with its address space limited to 2 GiB and returns the run and its
/// peak RSS in KiB (from GNU time).
fn run_bounded(args: &[&std::ffi::OsStr]) -> (Run, u64) {
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg(r#"ulimit -v 2097152 && exec /usr/bin/time -f "peak-rss-kib %M" "$@""#)
        .arg("sh")
        .arg(env!("CARGO_BIN_EXE_wrapkit"))
        .args(args);
    let mut run = Run::of(&mut cmd);
    let (rest, peak) = run
        .stderr
        .trim_end()
        .rsplit_once('\n')
        .map_or(("", run.stderr.trim_end()), |(a, b)| (a, b));
    let peak = peak
        .strip_prefix("peak-rss-kib ")
        .and_then(|k| k.parse().ok())
        .unwrap_or_else(|| panic!("no peak RSS from /usr/bin/time:\n{}", run.stderr));
    run.stderr = if rest.is_empty() {
        String::new()
    } else {
        format!("{rest}\n")
    };
    (run, peak)
}

#[test]
fn a_huge_declared_size_with_a_tiny_stream_is_not_allocated_by_cat_or_unpack() {
    // 30 GiB declared from 31.2 MB stored (deflate's ratio allows it): a real stream of a few
    // bytes, then zeros.
    let size: u64 = 30 << 30;
    let mut big = Forged::deflated("big.bin", b"tiny");
    big.data.resize((size / 1032 + 1) as usize, 0);
    big.size = size;
    let sb = Sandbox::new();
    let app = sb.write(&[main_lua(), big]);
    let started = std::time::Instant::now();
    let (run, peak_kib) = run_bounded(&["cat".as_ref(), app.as_os_str(), "big.bin".as_ref()]);
    let err = run.fails_with(1);
    assert!(
        err.starts_with("error: ")
            && err.contains("entry `big.bin`: inflates to 4 bytes, but declares 32212254720"),
        "{err}"
    );
    assert!(peak_kib < 200 << 10, "cat peaked at {peak_kib} KiB");
    eprintln!("cat of a 30 GiB declaration: peak RSS {peak_kib} KiB");
    let out = sb.dir.path().join("out");
    let (run, peak_kib) = run_bounded(&["unpack".as_ref(), app.as_os_str(), out.as_os_str()]);
    let err = run.fails_with(1);
    assert!(
        err.contains("entry `big.bin`: inflates to 4 bytes"),
        "{err}"
    );
    assert!(peak_kib < 200 << 10, "unpack peaked at {peak_kib} KiB");
    assert!(!out.exists());
    assert!(
        started.elapsed().as_secs() < 20,
        "took {:?}",
        started.elapsed()
    );
}

#[test]
fn cat_streams_and_a_closed_pipe_is_not_an_error() {
    let data: Vec<u8> = (0..(40u32 << 20) / 8)
        .flat_map(|i| format!("{i:07}\n").into_bytes())
        .collect();
    let sb = Sandbox::new();
    let app = sb.write(&[main_lua(), Forged::deflated("big.txt", &data)]);
    let (run, peak_kib) = run_bounded(&["cat".as_ref(), app.as_os_str(), "big.txt".as_ref()]);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert!(run.stdout.as_bytes() == data, "cat wrote other bytes");
    assert!(peak_kib < 200 << 10, "cat peaked at {peak_kib} KiB");
    eprintln!("cat of a 40 MiB deflated entry: peak RSS {peak_kib} KiB");
    // `head` exits after one line; wrapkit gets EPIPE and ends quietly, with success.
    let run = Run::of(Command::new("bash").arg("-c").arg(format!(
        "set -o pipefail; '{}' cat '{}' big.txt | head -1",
        env!("CARGO_BIN_EXE_wrapkit"),
        app.display()
    )));
    assert_eq!(run.code, Some(0), "{run:?}");
    assert_eq!(run.stdout, "0000000\n");
    assert_eq!(run.stderr, "", "a closed pipe is reported");
}

#[test]
fn cat_validates_before_reading_a_huge_symlink_target() {
    let sb = Sandbox::new();
    let app = sb.write(&[main_lua(), Forged::symlink("l", &"a/".repeat(2 << 20))]);
    let started = std::time::Instant::now();
    let err = Run::of(wrapkit().arg("cat").arg(&app).arg("l")).fails_with(1);
    assert!(
        err.contains("entry `l`: its symlink target is 4194304 bytes, over the limit of 4096"),
        "{err}"
    );
    assert!(
        started.elapsed().as_secs_f64() < 2.0,
        "took {:?}",
        started.elapsed()
    );
}

/// What may not reach a terminal from an archive: ESC, CR, and LF that starts a forged line.
#[track_caller]
fn assert_printable(what: &str, run: &Run) {
    for (stream, text) in [("stdout", &run.stdout), ("stderr", &run.stderr)] {
        assert!(
            !text.contains('\u{1b}') && !text.contains('\r') && !text.contains('\u{9b}'),
            "{what}: raw control characters on {stream}: {text:?}"
        );
    }
    let errors = run
        .stderr
        .lines()
        .filter(|l| l.starts_with("error:"))
        .count();
    assert!(
        errors <= 1,
        "{what}: forged `error:` lines: {:?}",
        run.stderr
    );
    assert!(
        !run.stdout.lines().any(|l| l.starts_with("error:")),
        "{what}: forged `error:` line on stdout: {:?}",
        run.stdout
    );
}

#[test]
fn terminal_escapes_in_names_and_manifest_strings_are_escaped_when_printed() {
    use wrapkit_runtime::format::manifest::{Manifest, Run as ManifestRun, StubInfo};
    let evil = "evil\u{1b}[2J\rerror: forged";
    let sb = Sandbox::new();
    let app = sb.write(&[main_lua(), Forged::file(evil, b"x")]);
    let out = sb.dir.path().join("out");
    for args in [
        vec!["ls"],
        vec!["ls", "--long"],
        vec!["info"],
        vec!["verify"],
        vec!["extract"],
        vec!["cat"],
    ] {
        let mut cmd = wrapkit();
        cmd.args(&args).arg(&app);
        match args[0] {
            "extract" => {
                cmd.arg(&out);
            }
            "cat" => {
                cmd.arg("main.lua");
            }
            _ => {}
        }
        let run = Run::of(&mut cmd);
        assert_printable(&format!("{args:?}"), &run);
        let err = run.fails_with(1);
        assert!(
            err.contains(r"evil\x1b[2J\rerror: forged"),
            "{args:?}: the name is shown escaped: {err}"
        );
    }
    // A valid archive whose manifest strings carry escapes: `info` prints them escaped, and
    // `--json` keeps them exact.
    let manifest = Manifest {
        format: wrapkit_runtime::format::FORMAT_VERSION,
        name: "app\u{1b}[31m\rerror: forged".into(),
        version: "1\nerror: forged".into(),
        packer: "forge\u{9b}2J".into(),
        stub: StubInfo::of(stub()),
        run: ManifestRun::Exec {
            argv: vec!["bin/x".into(), "--a\u{1b}]0;title\u{7}".into()],
            env: [("K".to_owned(), "v\u{1b}[2J\r\n".to_owned())].into(),
            argv0: None,
        },
        layers: Vec::new(),
    };
    let path = sb.dir.path().join("manifest-forged");
    fs::write(
        &path,
        crate::forge::forge_with(
            stub(),
            &[
                Forged::dir("bin"),
                Forged::file("bin/x", b"#!/bin/sh\n").mode(0o100755),
            ],
            &manifest,
        ),
    )
    .unwrap();
    let info = Run::of(wrapkit().arg("info").arg(&path));
    assert_printable("info", &info);
    let stdout = info.ok();
    assert!(
        stdout.contains(r"app\x1b[31m\rerror: forged 1\nerror: forged"),
        "{stdout}"
    );
    assert!(
        stdout.contains(r"exec bin/x --a\x1b]0;title\x07"),
        "{stdout}"
    );
    let json = Run::of(wrapkit().args(["info", "--json"]).arg(&path)).ok();
    let parsed: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(parsed["manifest"]["name"], "app\u{1b}[31m\rerror: forged");
    for args in [vec!["ls"], vec!["ls", "--long"], vec!["verify"]] {
        let run = Run::of(wrapkit().args(&args).arg(&path));
        assert_printable(&format!("{args:?}"), &run);
        run.ok();
    }
}

#[test]
fn unpack_never_writes_its_config_through_an_archive_symlink() {
    // The archive's own `wrapkit.toml` is a symlink (inside the tree, so the validator lets it
    // through): unpack must create its config as a new file, not write through the link.
    let sb = Sandbox::new();
    let app = sb.write(&[
        main_lua(),
        Forged::file("data.txt", b"original"),
        Forged::symlink("wrapkit.toml", "data.txt"),
    ]);
    let out = sb.dir.path().join("out");
    let err = Run::of(wrapkit().arg("unpack").arg(&app).arg(&out)).fails_with(1);
    assert!(
        err.starts_with(&format!(
            "error: cannot write {}\n  caused by: File exists (os error 17)\n",
            out.join("wrapkit.toml").display()
        )),
        "{err}"
    );
    assert_eq!(fs::read(out.join("data.txt")).unwrap(), b"original");
    assert!(
        fs::symlink_metadata(out.join("wrapkit.toml"))
            .unwrap()
            .file_type()
            .is_symlink()
    );
}

#[test]
fn an_exec_program_reached_through_a_leaving_link_chain_never_runs() {
    // argv[0] is `x`, a chain (`sub/up -> ..`, `x -> sub/up/../../bin/true`) that would run a
    // host binary: the cache fill validates first, so nothing is extracted and nothing runs.
    use wrapkit_runtime::format::manifest::{Manifest, Run as RunSpec, StubInfo};
    let sb = Sandbox::new();
    let entries = [
        main_lua(),
        Forged::dir("sub"),
        Forged::symlink("sub/up", ".."),
        Forged::symlink("x", "sub/up/../../../../../../../bin/true"),
    ];
    let manifest = Manifest {
        format: wrapkit_runtime::format::FORMAT_VERSION,
        name: "chain".into(),
        version: "1".into(),
        packer: "forged".into(),
        stub: StubInfo::of(stub()),
        run: RunSpec::Exec {
            argv: vec!["x".into()],
            env: Default::default(),
            argv0: None,
        },
        layers: Vec::new(),
    };
    let app = sb.dir.path().join("forged-exec");
    fs::write(&app, crate::forge::forge_with(stub(), &entries, &manifest)).unwrap();
    fs::set_permissions(&app, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let cache = sb.dir.path().join("cache");
    let run = Run::of(Command::new(&app).env("WRAPKIT_CACHE_DIR", &cache));
    let err = run.fails_with(120);
    assert!(
        err.contains(
            "entry `x`: symlink to `sub/up/../../../../../../../bin/true` leaves the archive"
        ),
        "{err}"
    );
    let trees: Vec<_> = fs::read_dir(cache.join("bundles-v1"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .filter(|n| !n.to_string_lossy().ends_with(".lock"))
        .collect();
    assert!(trees.is_empty(), "{trees:?}");
}

/// A forged exec app whose program is in the layer `.layers/t`, with `layer` as its manifest
/// says (its digest computed over `entries` unless `digest` is given).
fn forged_layer_app(
    sb: &Sandbox,
    name: &str,
    extra: Vec<Forged>,
    patch: impl FnOnce(&mut wrapkit_runtime::format::layer::Layer),
    digest: Option<String>,
) -> PathBuf {
    use wrapkit_runtime::format::EntryKind;
    use wrapkit_runtime::format::layer::{Digester, Layer, Libc};
    use wrapkit_runtime::format::manifest::{Manifest, Run as RunSpec, StubInfo};
    let probe = crate::exec::probe();
    let mut entries = vec![
        main_lua(),
        Forged::dir(".layers"),
        Forged::dir(".layers/t"),
        Forged::dir(".layers/t/bin"),
        Forged::file(".layers/t/bin/probe", probe).mode(0o100755),
    ];
    entries.extend(extra);
    let mut layer = Layer {
        prefix: ".layers/t".into(),
        digest: String::new(),
        libc: Libc::Host,
        glibc: None,
        patches: Vec::new(),
    };
    patch(&mut layer);
    let mut d = Digester::new(&layer);
    d.entry("bin", EntryKind::Dir, 0o755, 0, b"");
    d.entry(
        "bin/probe",
        EntryKind::File,
        0o755,
        probe.len() as u64,
        blake3::hash(probe).as_bytes(),
    );
    for e in entries.iter().skip(5) {
        let rel = e.name.strip_prefix(".layers/t/").unwrap();
        let target = String::from_utf8(e.data.clone()).unwrap();
        d.entry(
            rel,
            EntryKind::Symlink,
            0o777,
            target.len() as u64,
            target.as_bytes(),
        );
    }
    layer.digest = digest.unwrap_or_else(|| d.finish());
    let manifest = Manifest {
        format: wrapkit_runtime::format::FORMAT_VERSION,
        name: "layered".into(),
        version: "1".into(),
        packer: "forged".into(),
        stub: StubInfo::of(stub()),
        run: RunSpec::Exec {
            argv: vec![".layers/t/bin/probe".into(), "exit".into(), "7".into()],
            env: Default::default(),
            argv0: None,
        },
        layers: vec![layer],
    };
    let app = sb.dir.path().join(name);
    fs::write(&app, crate::forge::forge_with(stub(), &entries, &manifest)).unwrap();
    fs::set_permissions(&app, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    app
}

#[test]
fn a_forged_layer_never_enters_the_shared_cache() {
    let sb = Sandbox::new();
    let cache = sb.dir.path().join("cache");
    let run = |app: &Path| Run::of(Command::new(app).env("WRAPKIT_CACHE_DIR", &cache));
    let layer_trees = || -> Vec<String> {
        fs::read_dir(cache.join("layers-v1"))
            .map(|rd| {
                rd.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| !n.ends_with(".lock"))
                    .collect()
            })
            .unwrap_or_default()
    };
    // The honest one runs from its layer.
    let good = forged_layer_app(&sb, "good", vec![], |_| {}, None);
    assert_eq!(run(&good).code, Some(7), "{:?}", run(&good));
    assert_eq!(
        layer_trees().len(),
        2,
        "tree and marker: {:?}",
        layer_trees()
    );
    Run::of(
        wrapkit()
            .args(["cache", "clear", "--cache-dir"])
            .arg(&cache),
    )
    .ok();
    assert!(layer_trees().is_empty());

    // A name that is not its contents' (another layer's digest, say), a link climbing out of
    // the layer, a patch slot outside its file, a prefix that is no archive directory.
    let cases: Vec<(PathBuf, &str)> = vec![
        (
            forged_layer_app(&sb, "lying", vec![], |_| {}, Some("ab".repeat(32))),
            "do not match its digest",
        ),
        (
            forged_layer_app(
                &sb,
                "climbing",
                vec![Forged::symlink(".layers/t/bin/up", "../../other")],
                |_| {},
                None,
            ),
            "does not stay inside the layer",
        ),
        (
            forged_layer_app(
                &sb,
                "slot",
                vec![],
                |l| {
                    l.patches.push(wrapkit_runtime::format::layer::Patch {
                        path: "bin/probe".into(),
                        offset: 1 << 40,
                        capacity: 64,
                        host: "/x".into(),
                        bundle: "/x".into(),
                    })
                },
                None,
            ),
            "lies outside",
        ),
        (
            forged_layer_app(&sb, "prefix", vec![], |l| l.prefix = "../t".into(), None),
            "not a valid archive directory",
        ),
    ];
    for (app, needle) in cases {
        let r = run(&app);
        assert_eq!(r.stdout, "", "{app:?}");
        let err = r.fails_with(120);
        assert!(err.contains(needle), "{app:?}: {err}");
        assert_eq!(err.matches("error:").count(), 1, "{err}");
        assert!(layer_trees().is_empty(), "{app:?}: {:?}", layer_trees());
    }
}
