//! The command examples of README.md and docs/*.md, run: every fenced `sh` block, unless the
//! line before it says `<!-- not run: REASON -->`. Each file's blocks run in order, in one fresh
//! directory holding a copy of `examples/` and an app `app/` (examples/hello), with `wrapkit` on
//! PATH and a fresh HOME; a block is one `bash -euo pipefail` script that must succeed without
//! an `error:` line. `cargo run --release -p wrapkit --` in a block is the `wrapkit` under test.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support::Run;

/// One runnable block: where it starts, and its text.
struct Block {
    line: usize,
    script: String,
}

/// The `sh` blocks of `text`, without those marked not run (whose reason must be given).
fn blocks(file: &str, text: &str) -> (Vec<Block>, usize) {
    let lines: Vec<&str> = text.lines().collect();
    let (mut out, mut skipped) = (Vec::new(), 0);
    let mut i = 0;
    while i < lines.len() {
        if lines[i].trim_end() != "```sh" {
            i += 1;
            continue;
        }
        let start = i + 1;
        let end = (start..lines.len())
            .find(|&j| lines[j].trim_end() == "```")
            .unwrap_or_else(|| panic!("{file}:{start}: an unclosed ```sh block"));
        let before = if i > 0 { lines[i - 1].trim() } else { "" };
        if let Some(reason) = before.strip_prefix("<!-- not run:") {
            assert!(
                reason.trim_end_matches("-->").trim().len() > 3,
                "{file}:{i}: say why the block is not run"
            );
            skipped += 1;
        } else {
            out.push(Block {
                line: start,
                script: lines[start..end].join("\n"),
            });
        }
        i = end + 1;
    }
    (out, skipped)
}

fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for e in fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            fs::copy(e.path(), &target).unwrap();
        }
    }
}

fn doc_files() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut files = vec![root.join("README.md")];
    let mut docs: Vec<PathBuf> = fs::read_dir(root.join("docs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "md"))
        .collect();
    docs.sort();
    files.extend(docs);
    files
}

#[test]
fn every_command_example_in_the_readme_and_docs_runs() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let bin = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_wrapkit"), bin.path().join("wrapkit")).unwrap();
    let (mut ran, mut skipped) = (0, 0);
    for file in doc_files() {
        let name = file.strip_prefix(&root).unwrap().display().to_string();
        let (runnable, not_run) = blocks(&name, &fs::read_to_string(&file).unwrap());
        skipped += not_run;
        if runnable.is_empty() {
            continue;
        }
        let session = tempfile::tempdir().unwrap();
        copy_dir(&root.join("examples"), &session.path().join("examples"));
        copy_dir(&root.join("examples/hello"), &session.path().join("app"));
        fs::create_dir(session.path().join("home")).unwrap();
        for block in runnable {
            let script = block
                .script
                .replace("cargo run --release -p wrapkit --", "wrapkit");
            let run = Run::of(
                Command::new("bash")
                    .args(["-euo", "pipefail", "-c", &script])
                    .current_dir(session.path())
                    .env_clear()
                    .env(
                        "PATH",
                        format!("{}:/usr/local/bin:/usr/bin:/bin", bin.path().display()),
                    )
                    .env("HOME", session.path().join("home"))
                    .env("MANPAGER", "cat")
                    .env("LANG", "C.UTF-8"),
            );
            assert_eq!(
                run.code,
                Some(0),
                "{name}:{} failed:\n{script}\n--- stdout\n{}--- stderr\n{}",
                block.line,
                run.stdout,
                run.stderr
            );
            assert!(
                !run.stderr.contains("error:"),
                "{name}:{}: {}",
                block.line,
                run.stderr
            );
            ran += 1;
        }
    }
    // README, cache.md, cli.md and deploy.md hold five today; a parser that finds nothing
    // proves nothing.
    assert!(ran >= 5, "only {ran} blocks ran ({skipped} marked not run)");
}

#[test]
fn blocks_are_found_and_not_run_needs_a_reason() {
    let text = "x\n```sh\necho a\n```\n<!-- not run: it would format the disk -->\n```sh\nrm -rf /\n```\n```toml\nk = 1\n```\n";
    let (runnable, skipped) = blocks("t.md", text);
    assert_eq!(runnable.len(), 1);
    assert_eq!(runnable[0].script, "echo a");
    assert_eq!(runnable[0].line, 2);
    assert_eq!(skipped, 1);
    let unexplained = "<!-- not run: -->\n```sh\nx\n```\n";
    assert!(std::panic::catch_unwind(|| blocks("t.md", unexplained)).is_err());
}
