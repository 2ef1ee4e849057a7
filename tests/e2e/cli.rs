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

#[test]
fn a_single_script_packs_by_itself_and_the_output_defaults_to_its_name() {
    let work = tempfile::tempdir().unwrap();
    std::fs::write(
        work.path().join("greet.lua"),
        "print('hi ' .. (arg[1] or '?'))\n",
    )
    .unwrap();
    let run = crate::support::Run::of(
        wrapkit()
            .args(["pack", "greet.lua"])
            .current_dir(work.path()),
    );
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    let exe = work.path().join("greet");
    assert!(
        run.stderr.starts_with("packed 1 file (")
            && run.stderr.contains(&format!(" into {} (", exe.display())),
        "{}",
        run.stderr
    );
    let out = crate::support::Run::of(std::process::Command::new(&exe).arg("you")).ok();
    assert_eq!(out, "hi you\n");
    // A directory's executable takes the directory's (or wrapkit.toml's) name.
    let app = App::new()
        .file("main.lua", "print(1)")
        .file("wrapkit.toml", "name = \"tool\"\n");
    let run = crate::support::Run::of(
        wrapkit()
            .args(["pack", "-q"])
            .arg(app.path())
            .current_dir(work.path()),
    );
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert!(work.path().join("tool").is_file());
    // A script for another language is refused, naming the language.
    std::fs::write(work.path().join("tool.py"), "print(1)\n").unwrap();
    let err = crate::support::Run::of(
        wrapkit()
            .args(["pack", "tool.py", "-o", "x"])
            .current_dir(work.path()),
    )
    .fails_with(1);
    assert!(
        err.starts_with("error: the entry script `tool.py` is a script for Python, not Lua"),
        "{err}"
    );
}

#[test]
fn output_dash_is_refused_and_no_file_named_dash_appears() {
    let app = App::new().file("main.lua", "print(1)");
    let work = tempfile::tempdir().unwrap();
    let err = crate::support::Run::of(
        wrapkit()
            .args(["pack", "-o", "-"])
            .arg(app.path())
            .current_dir(work.path()),
    )
    .fails_with(1);
    assert_eq!(
        err,
        "error: `-o -`: a packed executable is not written to standard output\n\
         hint: name a file with `-o FILE`; without `-o` the executable is written as the app's name in the working directory\n"
    );
    assert!(!work.path().join("-").exists());
}

#[test]
fn a_slow_first_start_says_so_on_a_terminal_only() {
    // 6,000 small files: creating them takes the first start well over a second here.
    let mut app = crate::exec::probe_app("", crate::exec::PROBE_TOML);
    for i in 0..6000 {
        app = app.file(&format!("data/{:02}/f{i:05}", i % 60), "x");
    }
    let packed = app.pack(&[]);
    // On a terminal (a pty from `script`), once.
    let cache = crate::exec::CacheDir::new();
    let started = std::time::Instant::now();
    let out = std::process::Command::new("script")
        .args(["-qec"])
        .arg(format!("'{}' exit 0", packed.exe.display()))
        .arg("/dev/null")
        .env("WRAPKIT_CACHE_DIR", cache.path())
        .output()
        .expect("script(1), from util-linux, runs a command on a pty");
    let took = started.elapsed();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        took.as_secs_f64() > 1.0,
        "the fill took only {took:?}: the test proves nothing"
    );
    assert!(
        text.contains("wrapkit: first start: unpacked 6002 files (")
            && text.contains("; later starts reuse them"),
        "{text}"
    );
    // The warm start says nothing.
    let out = std::process::Command::new("script")
        .args(["-qec"])
        .arg(format!("'{}' exit 0", packed.exe.display()))
        .arg("/dev/null")
        .env("WRAPKIT_CACHE_DIR", cache.path())
        .output()
        .unwrap();
    assert!(!String::from_utf8_lossy(&out.stdout).contains("wrapkit:"));
    // In a pipe, never, however slow.
    let piped = crate::exec::CacheDir::new();
    let run = crate::support::Run::of(
        packed
            .cmd()
            .args(["exit", "0"])
            .env("WRAPKIT_CACHE_DIR", piped.path()),
    );
    assert_eq!((run.code, run.stderr.as_str()), (Some(0), ""));
}

#[test]
fn init_writes_an_app_that_packs_and_runs() {
    let work = tempfile::tempdir().unwrap();
    let run = crate::support::Run::of(wrapkit().args(["init", "hello"]).current_dir(work.path()));
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert_eq!(
        run.stderr,
        "wrote a Lua app (4 files) into hello; pack it with `wrapkit pack hello`\n"
    );
    let toml = std::fs::read_to_string(work.path().join("hello/wrapkit.toml")).unwrap();
    assert!(toml.contains("name = \"hello\""), "{toml}");
    // Packed as the message says, from the directory above: ./hello is the app, so the
    // executable is ./hello.run.
    let run = crate::support::Run::of(wrapkit().args(["pack", "hello"]).current_dir(work.path()));
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert!(
        run.stderr.contains(&format!(
            " into {} (",
            work.path().join("hello.run").display()
        )),
        "{}",
        run.stderr
    );
    let out = crate::support::Run::of(
        std::process::Command::new(work.path().join("hello.run")).arg("you"),
    )
    .ok();
    assert_eq!(out, "Hello, you!\n(hello 0.1.0)\n");
    // From inside the app directory, the executable goes beside it.
    std::fs::remove_file(work.path().join("hello.run")).unwrap();
    let run = crate::support::Run::of(
        wrapkit()
            .args(["pack", "-q"])
            .current_dir(work.path().join("hello")),
    );
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert!(work.path().join("hello.run").is_file());
    // Not into a directory that holds something.
    let err = crate::support::Run::of(wrapkit().args(["init", "hello"]).current_dir(work.path()))
        .fails_with(1);
    assert!(err.starts_with("error: hello is not empty\n"), "{err}");
}
