//! The payload survives stripping (format 2: it is carried in an ELF note, `format::elf`):
//! every tool a packaging pipeline runs leaves a file that still runs, verifies, and reads as a
//! zip; an old, appended payload (format 1) is still read; section headers that make no sense
//! are refused with one error line.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use wrapkit_runtime::format::manifest::{Manifest, Run as RunSpec};

use crate::exec::{CacheDir, PROBE_TOML, probe_app};
use crate::forge::{Forged, forge_with};
use crate::support::{App, Packed, Run, archive_range, missing, stub_of, wrapkit};

/// The tools, as a packaging pipeline calls them. `dh_strip` runs on a minimal `debian/` tree
/// ([`dh_strip`]); it runs `strip --remove-section=.comment --remove-section=.note` on
/// executables.
const TOOLS: &[&[&str]] = &[
    &["strip"],
    &["strip", "--strip-unneeded"],
    &["objcopy", "--strip-all"],
    &["eu-strip"],
    &["dh_strip"],
];

/// Strips a copy of `exe` with `tool` and returns the copy's path.
fn stripped(exe: &Path, tool: &[&str]) -> PathBuf {
    let name = tool.join("_").replace("--", "");
    if tool[0] == "dh_strip" {
        return dh_strip(exe, &name);
    }
    let out = exe.with_file_name(&name);
    fs::copy(exe, &out).unwrap();
    let run = Run::of(Command::new(tool[0]).args(&tool[1..]).arg(&out));
    assert_eq!(run.code, Some(0), "{tool:?}: {}", run.stderr);
    out
}

/// `dh_strip` on a package tree holding `exe` as `usr/bin/app`, as `dpkg-buildpackage` runs it.
fn dh_strip(exe: &Path, name: &str) -> PathBuf {
    let root = exe.with_file_name(format!("{name}-src"));
    let bin = root.join("debian/wkstrip/usr/bin");
    fs::create_dir_all(&bin).unwrap();
    fs::write(
        root.join("debian/control"),
        "Source: wkstrip\nMaintainer: t <t@example.com>\nBuild-Depends: debhelper-compat (= 13)\n\n\
         Package: wkstrip\nArchitecture: any\nDescription: t\n t\n",
    )
    .unwrap();
    fs::write(
        root.join("debian/changelog"),
        "wkstrip (1.0) unstable; urgency=low\n\n  * t\n\n -- t <t@example.com>  Tue, 01 Jan 1980 00:00:00 +0000\n",
    )
    .unwrap();
    fs::copy(exe, bin.join("app")).unwrap();
    let run = Run::of(
        Command::new("dh_strip")
            .current_dir(&root)
            .env("DH_VERBOSE", "1"),
    );
    assert_eq!(run.code, Some(0), "dh_strip: {}", run.stderr);
    assert!(
        run.stdout
            .contains("strip --remove-section=.comment --remove-section=.note"),
        "dh_strip ran: {}",
        run.stdout
    );
    bin.join("app")
}

fn tools_present() -> bool {
    [
        "strip", "objcopy", "eu-strip", "dh_strip", "unzip", "python3",
    ]
    .iter()
    .all(|t| {
        let found = Command::new("sh")
            .args(["-c", &format!("command -v {t}")])
            .output()
            .is_ok_and(|o| o.status.success());
        found
            || !missing(&format!(
                "`{t}` (binutils, elfutils, debhelper, unzip, python3)"
            ))
    })
}

/// `unzip -l` and Python's `zipfile` list the archive without a warning.
fn reads_as_zip(path: &Path, expect: &str) {
    let unzip = Run::of(Command::new("unzip").arg("-l").arg(path));
    assert_eq!(
        unzip.code,
        Some(0),
        "unzip -l {}: {}",
        path.display(),
        unzip.stderr
    );
    assert!(unzip.stdout.contains(expect), "{}", unzip.stdout);
    let py = Run::of(
        Command::new("python3")
            .args(["-m", "zipfile", "-l"])
            .arg(path),
    );
    assert_eq!(
        py.code,
        Some(0),
        "zipfile {}: {}",
        path.display(),
        py.stderr
    );
    assert!(py.stdout.contains(expect), "{}", py.stdout);
}

fn verifies(path: &Path) {
    let out = Run::of(wrapkit().arg("verify").arg(path)).ok();
    assert!(out.starts_with("ok: "), "{}: {out}", path.display());
}

#[test]
fn every_strip_tool_leaves_a_lua_app_that_runs_verifies_and_reads_as_a_zip() {
    if !tools_present() {
        return;
    }
    let packed = App::new()
        .file("main.lua", "print('ran', (require('lib.m')))")
        .file("lib/m.lua", "return ('x'):rep(3)")
        .pack(&[]);
    reads_as_zip(&packed.exe, "lib/m.lua");
    verifies(&packed.exe);
    let mode = fs::metadata(&packed.exe).unwrap().permissions();
    for tool in TOOLS {
        let path = stripped(&packed.exe, tool);
        assert_eq!(
            fs::metadata(&path).unwrap().permissions(),
            mode,
            "{tool:?} keeps the mode"
        );
        let run = Run::of(&mut Command::new(&path));
        assert_eq!(run.ok(), "ran\txxx\n", "{tool:?}");
        verifies(&path);
        reads_as_zip(&path, "lib/m.lua");
        let info = Run::of(wrapkit().arg("info").arg(&path)).ok();
        assert!(info.contains("format:      version 2"), "{info}");
    }
}

#[test]
fn every_strip_tool_leaves_an_exec_app_that_runs_and_verifies() {
    if !tools_present() {
        return;
    }
    let packed = probe_app("data\n", PROBE_TOML).pack(&[]);
    let cache = CacheDir::new();
    for tool in TOOLS {
        let path = stripped(&packed.exe, tool);
        let run = Run::of(
            Command::new(&path)
                .args(["exit", "7"])
                .env("WRAPKIT_CACHE_DIR", cache.path()),
        );
        assert_eq!(run.code, Some(7), "{tool:?}: {}", run.stderr);
        let out = Run::of(
            Command::new(&path)
                .args(["cat", "data.txt"])
                .current_dir(cache.path())
                .env("WRAPKIT_CACHE_DIR", cache.path()),
        );
        let _ = out;
        verifies(&path);
        reads_as_zip(&path, "bin/probe");
    }
}

#[test]
fn a_stripped_file_repacks_from_its_image_and_an_intact_one_gives_back_its_stub() {
    if !tools_present() {
        return;
    }
    let first = App::new().file("main.lua", "print('one')").pack(&[]);
    let second = App::new().file("main.lua", "print('two')");
    let plain = second.pack(&[]);
    let path = stripped(&first.exe, &["strip"]);
    let out = second.scratch().join("from-stripped");
    let run = second.pack_to(&out, &["--runtime", path.to_str().unwrap()]);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert_eq!(Run::of(&mut Command::new(&out)).ok(), "two\n");
    verifies(&out);
    assert_eq!(stub_of(&first.bytes()), stub_of(&plain.bytes()));
}

/// A file in the format-1 layout (the archive appended to the stub, trailer `v01`), as
/// wrapkit wrote them before format 2.
pub fn format_1_file(packed: &Packed) -> Vec<u8> {
    let stub = stub_of(&packed.bytes());
    let manifest = Manifest {
        format: 1,
        name: "old".into(),
        version: "1".into(),
        packer: "wrapkit 0.1.0".into(),
        stub: wrapkit_runtime::format::manifest::StubInfo::of(&stub),
        run: RunSpec::Lua {
            entry: "main.lua".into(),
        },
        layers: Vec::new(),
    };
    let mut bytes = forge_with(
        &stub,
        &[Forged::file("main.lua", b"print('old format')")],
        &manifest,
    );
    let len = bytes.len();
    assert_eq!(&bytes[len - 158..len - 146], b"WKPAYLOAD v0");
    bytes[len - 146] = b'1';
    bytes
}

#[test]
fn a_format_1_file_still_runs_lists_and_verifies() {
    let packed = App::new().file("main.lua", "print('new')").pack(&[]);
    let path = packed.variant("old", &format_1_file(&packed));
    assert_eq!(Run::of(&mut Command::new(&path)).ok(), "old format\n");
    verifies(&path);
    let info = Run::of(wrapkit().arg("info").arg(&path)).ok();
    assert!(info.contains("format:      version 1"), "{info}");
    let ls = Run::of(wrapkit().arg("ls").arg(&path)).ok();
    assert!(ls.contains("main.lua"), "{ls}");
}

/// Damage done to a copy of a packed file.
type Damage = Box<dyn Fn(&mut Vec<u8>)>;

/// File position of the note's section header.
fn note_header(bytes: &[u8]) -> usize {
    let le = |at: usize, n: usize| {
        let mut v = [0u8; 8];
        v[..n].copy_from_slice(&bytes[at..at + n]);
        u64::from_le_bytes(v) as usize
    };
    let (shoff, shnum) = (le(0x28, 8), le(0x3c, 2));
    (0..shnum)
        .map(|i| shoff + i * 64)
        .find(|&at| le(at + 4, 4) == 7 && le(at + 8, 8) == 0)
        .expect("a non-allocated note")
}

#[test]
fn hostile_section_headers_are_refused_with_one_error_line() {
    let packed = App::new().file("main.lua", "print('x')").pack(&[]);
    let good = packed.bytes();
    let at = note_header(&good);
    let start = archive_range(&good).start;
    let note = start - 44;
    let cases: Vec<(&str, Damage, &str)> = vec![
        (
            "offset",
            Box::new(move |b: &mut Vec<u8>| {
                b[at + 32..at + 40].copy_from_slice(&u64::MAX.to_le_bytes())
            }),
            "runs past the end of the file",
        ),
        (
            "size",
            Box::new(move |b: &mut Vec<u8>| {
                b[at + 32..at + 40].copy_from_slice(&(1u64 << 40).to_le_bytes())
            }),
            "runs past the end of the file",
        ),
        (
            "descsz",
            Box::new(move |b: &mut Vec<u8>| b[note + 4..note + 8].copy_from_slice(&[0xff; 4])),
            "does not hold a payload",
        ),
        (
            "overlap",
            Box::new(move |b: &mut Vec<u8>| {
                // PT_GNU_STACK's file size is ignored by the kernel: stretch it over the note.
                let phoff = u64::from_le_bytes(b[0x20..0x28].try_into().unwrap()) as usize;
                let stack = (0..usize::from(b[0x38]))
                    .map(|i| phoff + i * 56)
                    .find(|&ph| b[ph..ph + 4] == 0x6474_e551u32.to_le_bytes())
                    .expect("PT_GNU_STACK");
                let len = b.len() as u64;
                b[stack + 32..stack + 40].copy_from_slice(&len.to_le_bytes());
            }),
            "overlaps the loaded image",
        ),
        (
            "shnum",
            Box::new(move |b: &mut Vec<u8>| {
                b[0x28..0x30].copy_from_slice(&64u64.to_le_bytes());
                b[0x3c..0x3e].copy_from_slice(&5000u16.to_le_bytes());
            }),
            "5000 section headers (at most 4096)",
        ),
        (
            "shentsize",
            Box::new(move |b: &mut Vec<u8>| b[0x3a..0x3c].copy_from_slice(&32u16.to_le_bytes())),
            "entry size 32 is not 64",
        ),
    ];
    for (name, damage, expect) in cases {
        let mut bytes = good.clone();
        damage(&mut bytes);
        let path = packed.variant(name, &bytes);
        let run = Run::of(&mut Command::new(&path));
        assert_eq!(run.signal, None, "{name}");
        assert_eq!(run.stdout, "", "{name}");
        let err = run.fails_with(120);
        assert!(
            err.starts_with(&format!(
                "error: {}: ELF section header at offset ",
                path.display()
            )) && err.contains(expect),
            "{name}: {err}"
        );
        assert_eq!(err.matches("error:").count(), 1, "{name}: {err}");
        assert!(!err.contains("panicked"), "{name}: {err}");
        let err = Run::of(wrapkit().arg("verify").arg(&path)).fails_with(1);
        assert!(
            err.contains("caused by: section headers: ") && err.contains(expect),
            "{name}: {err}"
        );
    }
}
