//! Differential test: over a generated corpus of valid and mutated packed files, whatever our
//! reader accepts (`wrapkit extract` succeeds: the validator passed and every entry inflated to
//! its declared size and CRC) must also be accepted by careful readers: the `zip` crate, Python's
//! `zipfile` (`testzip`) and `unzip -t`. Any case where we accept what one of them rejects fails
//! the test and is printed.

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::forge::{Forged, forge};
use crate::support::{App, Run, wrapkit};

/// A deterministic xorshift, so the corpus is the same on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// Small valid packed files: a 4-byte "ELF" stub keeps them tiny.
fn valid_corpus(dir: &Path) -> Vec<Vec<u8>> {
    let stub = dir.join("stub");
    fs::write(&stub, b"\x7fELF").unwrap();
    let mut out = Vec::new();
    for (i, compression) in ["auto", "store", "deflate"].iter().enumerate() {
        let app = App::new()
            .file("main.lua", "print('hi')\n")
            .file("lib/m.lua", "return { n = 1 }\n".repeat(i + 1))
            .file("data/text.txt", "some text, some more text\n".repeat(40))
            .dir("empty")
            .symlink("alias.lua", "lib/m.lua");
        let exe = dir.join(format!("valid-{compression}"));
        let run = app.pack_to(
            &exe,
            &[
                "--runtime",
                stub.to_str().unwrap(),
                "--compression",
                compression,
            ],
        );
        assert_eq!(run.code, Some(0), "{}", run.stderr);
        out.push(fs::read(&exe).unwrap());
    }
    out.push(forge(
        b"\x7fELF",
        &[
            Forged::file("main.lua", b"x"),
            Forged::deflated("d", &[7u8; 5000]),
        ],
        "main.lua",
    ));
    out
}

fn mutations(valid: &[Vec<u8>], rng: &mut Rng) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for v in valid {
        out.push(v.clone());
        for _ in 0..150 {
            let mut m = v.clone();
            match rng.below(4) {
                0 | 1 => {
                    let at = rng.below(m.len());
                    m[at] ^= 1 << rng.below(8);
                }
                2 => {
                    let at = rng.below(m.len());
                    m[at] = [0, 0xff, 0x7f, 0x80][rng.below(4)];
                }
                _ => {
                    let a = rng.below(m.len());
                    let b = rng.below(m.len());
                    m.swap(a, b);
                }
            }
            out.push(m);
        }
    }
    out
}

fn zip_crate_accepts(bytes: &[u8]) -> bool {
    let Ok(mut z) = zip::ZipArchive::new(std::io::Cursor::new(bytes)) else {
        return false;
    };
    for i in 0..z.len() {
        let Ok(mut f) = z.by_index(i) else {
            return false;
        };
        let mut sink = Vec::new();
        if f.read_to_end(&mut sink).is_err() {
            return false;
        }
    }
    true
}

fn ours_accepts(path: &Path, scratch: &Path) -> bool {
    let target = scratch.join("x");
    let _ = fs::remove_dir_all(&target);
    let ok = Run::of(wrapkit().arg("extract").arg(path).arg(&target)).code == Some(0);
    let _ = fs::remove_dir_all(&target);
    ok
}

#[test]
fn we_never_accept_what_a_careful_reader_rejects() {
    let dir = tempfile::tempdir().unwrap();
    let valid = valid_corpus(dir.path());
    let cases = mutations(&valid, &mut Rng(0x9e37_79b9_7f4a_7c15));
    let paths: Vec<PathBuf> = cases
        .iter()
        .enumerate()
        .map(|(i, bytes)| {
            let p = dir.path().join(format!("case-{i:04}"));
            fs::write(&p, bytes).unwrap();
            p
        })
        .collect();

    // Python checks the whole corpus in one process.
    let list = dir.path().join("list");
    fs::write(
        &list,
        paths
            .iter()
            .map(|p| p.to_str().unwrap())
            .collect::<Vec<_>>()
            .join("\n"),
    )
    .unwrap();
    let py = Run::of(
        Command::new("python3")
            .arg("-c")
            .arg(
                "import sys, zipfile\n\
         for p in open(sys.argv[1]).read().split('\\n'):\n\
         \ttry:\n\
         \t\tok = zipfile.ZipFile(p).testzip() is None\n\
         \texcept Exception:\n\
         \t\tok = False\n\
         \tprint('1' if ok else '0')",
            )
            .arg(&list),
    )
    .ok();
    let python: Vec<bool> = py.lines().map(|l| l == "1").collect();
    assert_eq!(python.len(), paths.len());

    let mut accepted = 0;
    let mut disagreements = Vec::new();
    for (i, path) in paths.iter().enumerate() {
        if !ours_accepts(path, dir.path()) {
            continue;
        }
        accepted += 1;
        let unzip = Run::of(Command::new("unzip").arg("-tqq").arg(path)).code == Some(0);
        let zip_crate = zip_crate_accepts(&cases[i]);
        if !(unzip && zip_crate && python[i]) {
            disagreements.push(format!(
                "{}: we accept; unzip {unzip}, zip crate {zip_crate}, python {}",
                path.display(),
                python[i]
            ));
        }
    }
    assert!(
        accepted >= valid.len(),
        "the valid files themselves must pass ({accepted})"
    );
    assert!(accepted < cases.len(), "some mutations must be rejected");
    if !disagreements.is_empty() && std::env::var_os("WRAPKIT_KEEP_DIFF").is_some() {
        let keep = dir.keep();
        eprintln!("kept {}", keep.display());
    }
    assert!(
        disagreements.is_empty(),
        "{} disagreements:\n{}",
        disagreements.len(),
        disagreements.join("\n")
    );
    eprintln!(
        "differential: {} cases, {accepted} accepted by us and by every other reader",
        cases.len()
    );
}
