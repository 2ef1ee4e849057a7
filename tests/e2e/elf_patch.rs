//! `wrapkit::elf::patch`: programs built here (PIE and not), linked against libraries of their
//! own and libz, given slots, filled with absolute paths, and run: from a bundle directory, and
//! with a bundled glibc in an empty chroot with and without `/proc`, re-executing themselves.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use wrapkit::elf::ElfFile;
use wrapkit::elf::closure::{Search, closure};
use wrapkit::elf::patch::{Reserved, fill, reserve};

use crate::support::{Run, require_root};

/// Prints where `outer` (which needs `inner`) and libz come from and what `/proc/self/exe` is;
/// the first run re-executes itself through `argv[0]`, then through `/proc/self/exe` if there
/// is one.
const PROG: &str = r#"
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zlib.h>
int outer(void);
static const char *from(void *f) { Dl_info i; return dladdr(f, &i) ? i.dli_fname : "?"; }
static void run(const char *path, char *what) {
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) { char *args[] = { (char *)path, what, NULL }; execv(path, args); _exit(127); }
    int status; waitpid(pid, &status, 0);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) printf("%s failed: %d\n", what, status);
}
int main(int argc, char **argv) {
    char exe[4096]; ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    exe[n < 0 ? 0 : n] = 0;
    printf("%s: outer %d from %s, zlib %s from %s, exe %s\n", argc > 1 ? argv[1] : "first",
           outer(), from((void *)outer), zlibVersion(), from((void *)zlibVersion),
           n < 0 ? "(no /proc)" : exe);
    if (argc == 1) {
        run(argv[0], "argv0");
        if (n >= 0) run("/proc/self/exe", "proc-self-exe");
    }
    return 0;
}
"#;

fn cc(dir: &Path, args: &[&str]) {
    let out = Command::new("cc")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("a C compiler (cc) is needed for the ELF patch tests");
    assert!(
        out.status.success(),
        "cc {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A build directory holding `prog` (PIE or not), `libouter.so` and `libinner.so`; `prog`
/// needs libouter and libz, libouter needs libinner; nothing has a RUNPATH.
fn build(pie: bool) -> tempfile::TempDir {
    build_with(pie, &[])
}

fn build_with(pie: bool, extra: &[&str]) -> tempfile::TempDir {
    let build = tempfile::tempdir().unwrap();
    let b = build.path();
    fs::write(b.join("inner.c"), "int inner(void) { return 40; }\n").unwrap();
    fs::write(
        b.join("outer.c"),
        "int inner(void);\nint outer(void) { return inner() + 2; }\n",
    )
    .unwrap();
    fs::write(b.join("prog.c"), PROG).unwrap();
    cc(b, &["-shared", "-fPIC", "-o", "libinner.so", "inner.c"]);
    cc(
        b,
        &[
            "-shared",
            "-fPIC",
            "-o",
            "libouter.so",
            "outer.c",
            "-L.",
            "-linner",
        ],
    );
    let pie_flag = if pie { "-pie" } else { "-no-pie" };
    cc(
        b,
        &[
            pie_flag,
            "-o",
            "prog",
            "prog.c",
            "-L.",
            "-louter",
            "-lz",
            // Where the linker finds libouter's needs; nothing of it lands in the program.
            "-Wl,-rpath-link,.",
        ]
        .iter()
        .chain(extra)
        .copied()
        .collect::<Vec<_>>(),
    );
    build
}

/// Writes an executable through `install(1)`: a file this multi-threaded process had open for
/// writing could still be open in a child another test forks, and exec would fail with ETXTBSY.
fn write_exe(path: &Path, bytes: &[u8]) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    let staged = path.with_extension("staged");
    fs::write(&staged, bytes).unwrap();
    Run::of(Command::new("install").arg("-m755").arg(&staged).arg(path)).ok();
    fs::remove_file(staged).unwrap();
}

/// The real file behind the host's libz.
fn host_libz() -> PathBuf {
    let search = Search::host();
    let path = search
        .cache
        .get("libz.so.1")
        .cloned()
        .expect("libz.so.1 on this machine (zlib1g)");
    fs::canonicalize(path).unwrap()
}

/// `readelf -lWd`'s interpreter and rpath lines: the binutils view of the same file.
fn readelf(path: &Path) -> (String, String) {
    let out = Command::new("readelf")
        .arg("-lWd")
        .arg(path)
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let between = |start: &str| {
        let rest = &text[text
            .find(start)
            .unwrap_or_else(|| panic!("{start}: {text}"))
            + start.len()..];
        rest[..rest.find(']').unwrap()].to_owned()
    };
    (
        between("[Requesting program interpreter: "),
        between("Library rpath: ["),
    )
}

fn run_env_clear(cmd: &mut Command) -> Run {
    Run::of(cmd.env_clear())
}

fn output_line(what: &str, dir: &str, exe: &str) -> String {
    format!(
        "{what}: outer 42 from {dir}/libouter.so, zlib {zlib} from {dir}/libz.so.1, exe {exe}\n",
        zlib = zlib_version(),
    )
}

/// The version libz reports (`ZLIB_VERSION` of the headers, which match the library here).
fn zlib_version() -> String {
    let header = fs::read_to_string("/usr/include/zlib.h").expect("zlib1g-dev's zlib.h");
    let line = header
        .lines()
        .find(|l| l.starts_with("#define ZLIB_VERSION "))
        .unwrap();
    line.split('"').nth(1).unwrap().to_owned()
}

fn reserved(build: &Path) -> (Vec<u8>, Reserved) {
    let original = fs::read(build.join("prog")).unwrap();
    let reserved = reserve(&original, 1024).unwrap();
    (original, reserved)
}

#[test]
fn a_filled_rpath_finds_bundled_libraries_and_their_needs_pie_and_not() {
    for pie in [true, false] {
        let build = build(pie);
        let (original, reserved) = reserved(build.path());
        let e_type = goblin::elf::Elf::parse(&original).unwrap().header.e_type;
        assert_eq!(
            e_type,
            if pie { 3 } else { 2 },
            "pie {pie}: ET_DYN or ET_EXEC"
        );

        // The unfilled program runs exactly like the original, found where it was.
        let scratch = tempfile::tempdir().unwrap();
        let (a, b) = (scratch.path().join("a/prog"), scratch.path().join("b/prog"));
        write_exe(&a, &original);
        write_exe(&b, &reserved.bytes);
        let lib_dir = build.path().to_str().unwrap();
        let with_libs = |exe: &Path| {
            let mut cmd = Command::new(exe);
            cmd.env_clear().env("LD_LIBRARY_PATH", lib_dir);
            Run::of(&mut cmd)
        };
        let (from_a, from_b) = (with_libs(&a), with_libs(&b));
        assert_eq!(from_b.stdout.replace("/b/prog", "/a/prog"), from_a.stdout);
        assert_eq!(from_b.code, Some(0), "{}", from_b.stderr);
        assert!(from_a.stdout.contains("from /"), "{}", from_a.stdout);
        // Run from the libraries' directory: the empty DT_RPATH is no path at all, not `.`.
        let (bare_a, bare_b) = (
            run_env_clear(Command::new(&a).current_dir(build.path())),
            run_env_clear(Command::new(&b).current_dir(build.path())),
        );
        assert_eq!((bare_a.code, bare_b.code), (Some(127), Some(127)));
        assert_eq!(bare_b.stderr.replace("/b/prog", "/a/prog"), bare_a.stderr);
        assert!(
            bare_a.stderr.contains("libouter.so: cannot open"),
            "{}",
            bare_a.stderr
        );

        // Filled with a bundle directory: the libraries come from there, libinner through the
        // program's DT_RPATH (libouter has no RUNPATH), libz too, ahead of ld.so.cache.
        let bundle = scratch.path().join("bundle");
        fs::create_dir(&bundle).unwrap();
        for lib in ["libouter.so", "libinner.so"] {
            fs::copy(build.path().join(lib), bundle.join(lib)).unwrap();
        }
        fs::copy(host_libz(), bundle.join("libz.so.1")).unwrap();
        let mut bytes = reserved.bytes.clone();
        fill(&mut bytes, &reserved.rpath, bundle.to_str().unwrap()).unwrap();
        let exe = scratch.path().join("bin/prog");
        write_exe(&exe, &bytes);
        assert_eq!(
            readelf(&exe),
            (
                "/lib64/ld-linux-x86-64.so.2".to_owned(),
                bundle.display().to_string()
            )
        );
        let elf = ElfFile::parse(&bytes).unwrap().unwrap();
        assert_eq!(elf.rpath, [bundle.to_str().unwrap()]);
        assert_eq!(elf.needed, ["libouter.so", "libz.so.1", "libc.so.6"]);

        let out = run_env_clear(&mut Command::new(&exe)).ok();
        let dir = bundle.to_str().unwrap();
        let exe_path = exe.to_str().unwrap();
        assert_eq!(
            out,
            [
                output_line("first", dir, exe_path),
                output_line("argv0", dir, exe_path),
                output_line("proc-self-exe", dir, exe_path),
            ]
            .concat(),
            "pie {pie}"
        );
        // strip rewrites the file from its sections: the moved .interp, .dynstr and .dynamic
        // sections keep what the slots hold, and the program still runs, but the file offsets
        // change (slots are only where `reserve` said in the bytes it returned).
        let stripped = scratch.path().join("bin/stripped");
        Run::of(Command::new("strip").arg("-o").arg(&stripped).arg(&exe)).ok();
        let stripped_elf = ElfFile::parse(&fs::read(&stripped).unwrap())
            .unwrap()
            .unwrap();
        assert_eq!(stripped_elf.rpath, [bundle.to_str().unwrap()]);
        assert_eq!(stripped_elf.interp, elf.interp);
        assert_eq!(
            run_env_clear(&mut Command::new(&stripped)).ok(),
            out.replace(exe.to_str().unwrap(), stripped.to_str().unwrap())
        );
        // The loader's own view agrees.
        let trace = Run::of(
            Command::new(&exe)
                .env_clear()
                .env("LD_TRACE_LOADED_OBJECTS", "1"),
        )
        .ok();
        for lib in ["libouter.so", "libinner.so", "libz.so.1"] {
            assert!(
                trace.contains(&format!("{lib} => {dir}/{lib} ")),
                "{lib}: {trace}"
            );
        }
    }
}

#[test]
fn an_original_runpath_prefills_the_rpath_slot_and_is_inherited_now() {
    let build = build_with(true, &["-Wl,--enable-new-dtags,-rpath,$ORIGIN/../lib"]);
    let original = ElfFile::parse(&fs::read(build.path().join("prog")).unwrap())
        .unwrap()
        .unwrap();
    assert_eq!(original.runpath, ["$ORIGIN/../lib"]);
    let (original_bytes, reserved) = reserved(build.path());
    let elf = ElfFile::parse(&reserved.bytes).unwrap().unwrap();
    assert_eq!(
        (elf.rpath.as_slice(), elf.runpath.len()),
        (&original.runpath[..], 0)
    );

    let scratch = tempfile::tempdir().unwrap();
    for lib in ["libouter.so", "libinner.so"] {
        fs::create_dir_all(scratch.path().join("lib")).unwrap();
        fs::copy(build.path().join(lib), scratch.path().join("lib").join(lib)).unwrap();
    }
    let (a, b) = (scratch.path().join("bin/a"), scratch.path().join("bin/b"));
    write_exe(&a, &original_bytes);
    write_exe(&b, &reserved.bytes);
    // The one difference, on purpose: a DT_RUNPATH is not inherited, so the original does not
    // find libouter's own need; the DT_RPATH that replaced it is, so the reserved program does.
    let as_built = run_env_clear(&mut Command::new(&a));
    assert_eq!(as_built.code, Some(127));
    assert!(
        as_built.stderr.contains("libinner.so: cannot open"),
        "{}",
        as_built.stderr
    );
    let out = run_env_clear(&mut Command::new(&b)).ok();
    let origin = scratch.path().join("bin/../lib");
    assert!(
        out.starts_with(&format!(
            "first: outer 42 from {}/libouter.so, zlib",
            origin.display()
        )),
        "{out}"
    );
}

#[test]
fn a_reserved_debian_binary_still_runs() {
    let scratch = tempfile::tempdir().unwrap();
    let ls = reserve(&fs::read("/bin/ls").unwrap(), 1024).unwrap();
    let mut bytes = ls.bytes.clone();
    fill(&mut bytes, &ls.rpath, "/lib/x86_64-linux-gnu").unwrap();
    fill(
        &mut bytes,
        &ls.interp,
        "/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2",
    )
    .unwrap();
    let exe = scratch.path().join("ls");
    write_exe(&exe, &bytes);
    fs::write(scratch.path().join("listed"), "").unwrap();
    let out = run_env_clear(Command::new(&exe).arg("-1").arg(scratch.path())).ok();
    assert_eq!(out, "listed\nls\n");
    assert_eq!(
        readelf(&exe),
        (
            "/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2".to_owned(),
            "/lib/x86_64-linux-gnu".to_owned()
        )
    );
}

#[test]
fn a_bundled_glibc_runs_in_an_empty_chroot_with_and_without_proc() {
    if !require_root("the empty-chroot run") {
        return;
    }
    for pie in [true, false] {
        let build = build(pie);
        let (_, reserved) = reserved(build.path());
        // The closure as the loader finds it here, with the build dir on the library path.
        let mut search = Search::host();
        search.ld_library_path = vec![build.path().to_owned()];
        let prog = build.path().join("prog");
        let closure = closure(std::slice::from_ref(&prog), &search).unwrap();
        assert!(closure.missing.is_empty(), "{:?}", closure.missing);

        let root = tempfile::tempdir().unwrap();
        let bundle = root.path().join("b");
        fs::create_dir(&bundle).unwrap();
        for object in &closure.objects[1..] {
            fs::copy(&object.real, bundle.join(&object.name)).unwrap();
        }
        let loader = Path::new(closure.interp().unwrap());
        fs::copy(
            fs::canonicalize(loader).unwrap(),
            bundle.join(loader.file_name().unwrap()),
        )
        .unwrap();
        let mut names: Vec<String> = fs::read_dir(&bundle)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(
            names,
            [
                "ld-linux-x86-64.so.2",
                "libc.so.6",
                "libinner.so",
                "libouter.so",
                "libz.so.1"
            ]
        );
        let mut bytes = reserved.bytes.clone();
        fill(&mut bytes, &reserved.interp, "/b/ld-linux-x86-64.so.2").unwrap();
        fill(&mut bytes, &reserved.rpath, "/b").unwrap();
        write_exe(&bundle.join("prog"), &bytes);
        // The control: the program as built cannot start there (its PT_INTERP is not there).
        write_exe(&bundle.join("as-built"), &fs::read(&prog).unwrap());
        let as_built = Run::of(
            Command::new("/usr/sbin/chroot")
                .arg(root.path())
                .arg("/b/as-built")
                .env_clear(),
        );
        assert_eq!(as_built.code, Some(127), "{}", as_built.stderr);
        assert!(
            as_built.stderr.contains("No such file or directory"),
            "{}",
            as_built.stderr
        );

        // Nothing in the root but /b (and an empty /proc to mount on): no /lib64, no /bin/sh.
        let out = Run::of(
            Command::new("/usr/sbin/chroot")
                .arg(root.path())
                .arg("/b/prog")
                .env_clear(),
        )
        .ok();
        assert_eq!(
            out,
            [
                output_line("first", "/b", "(no /proc)"),
                output_line("argv0", "/b", "(no /proc)"),
            ]
            .concat(),
            "pie {pie}"
        );

        fs::create_dir(root.path().join("proc")).unwrap();
        let out = Run::of(
            Command::new("/usr/bin/unshare")
                .args(["--mount", "--propagation", "private", "sh", "-c"])
                .arg(r#"mount --bind /proc "$1/proc" && exec chroot "$1" /b/prog"#)
                .arg("sh")
                .arg(root.path())
                .env_clear()
                .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
        )
        .ok();
        assert_eq!(
            out,
            [
                output_line("first", "/b", "/b/prog"),
                output_line("argv0", "/b", "/b/prog"),
                output_line("proc-self-exe", "/b", "/b/prog"),
            ]
            .concat(),
            "pie {pie}"
        );
    }
}
