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
