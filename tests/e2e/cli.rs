//! Conventions of the command line that hold for every command: what a closed pipe does, how
//! errors look.

use std::io::{BufRead, BufReader};
use std::process::Stdio;

use crate::support::{App, wrapkit};

#[test]
fn a_closed_pipe_is_not_an_error() {
    // More than a pipe buffer of listing, read one line of it, then close the pipe: like
    // `wrapkit ls --long APP | head -1`, which must exit 0 and print nothing on stderr.
    let mut app = App::new().file("main.lua", "print(1)");
    for i in 0..3000 {
        app = app.file(&format!("data/file-with-a-long-name-{i:05}.txt"), "x");
    }
    let packed = app.pack(&[]);
    for args in [&["ls", "--long"][..], &["ls", "--json"][..]] {
        let mut child = wrapkit()
            .args(args)
            .arg(&packed.exe)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut first = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut first)
            .unwrap();
        assert!(!first.is_empty());
        let out = child.wait_with_output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{args:?}");
        assert_eq!(String::from_utf8_lossy(&out.stderr), "", "{args:?}");
    }
}

#[test]
fn an_interrupted_pack_leaves_no_temporary_file() {
    use std::os::unix::process::ExitStatusExt;
    for signal in [rustix::process::Signal::INT, rustix::process::Signal::TERM] {
        let app = App::new().file("main.lua", "print(1)");
        // Sparse, so it costs no disk; stored, so packing it takes a moment of streaming.
        let big = std::fs::File::create(app.path().join("big.bin")).unwrap();
        big.set_len(3 << 30).unwrap();
        let out_dir = tempfile::tempdir().unwrap();
        let mut child = wrapkit()
            .args(["pack", "-q", "--allow", "large", "--compression", "store"])
            .arg(app.path())
            .arg("-o")
            .arg(out_dir.path().join("app"))
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let started = std::time::Instant::now();
        let temp = || {
            std::fs::read_dir(out_dir.path())
                .unwrap()
                .flatten()
                .any(|e| e.file_name().to_string_lossy().starts_with(".wrapkit-"))
        };
        while !temp() {
            assert!(
                started.elapsed().as_secs() < 30,
                "no temporary file appeared"
            );
            assert!(
                child.try_wait().unwrap().is_none(),
                "the pack ended too soon"
            );
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        let pid = rustix::process::Pid::from_raw(child.id() as i32).unwrap();
        rustix::process::kill_process(pid, signal).unwrap();
        let status = child.wait().unwrap();
        assert_eq!(status.signal(), Some(signal.as_raw()), "{status:?}");
        let left: Vec<_> = std::fs::read_dir(out_dir.path())
            .unwrap()
            .flatten()
            .collect();
        assert!(left.is_empty(), "{signal:?} left {left:?}");
    }
}
