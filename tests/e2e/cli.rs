//! Conventions of the command line that hold for every command: what a closed pipe does, how
//! errors look, `--version`, `-q`/`-v`, `--color` and `NO_COLOR`, completions and man pages.

use std::fs;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};

use crate::support::{App, Run, missing, pack_cmd, with_terminal_stderr, wrapkit};

#[test]
fn a_closed_pipe_is_not_an_error() {
    // More than a pipe buffer of listing, read one line of it, then close the pipe: like
    // `wrapkit ls --long APP | head -1`, which must exit 0 and print nothing on stderr.
    let mut app = App::new().file("main.lua", "print(1)");
    for i in 0..3000 {
        app = app.file(&format!("data/file-with-a-long-name-{i:05}.txt"), "x");
    }
    let packed = app.pack(&[]);
    for args in [&["ls", "--long"][..], &["ls", "--json"][..], &["info"][..]] {
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

/// The commands `wrapkit --help` lists (so a command added later is checked too).
fn commands_listed_in_help(args: &[&str]) -> Vec<String> {
    let help = Run::of(wrapkit().args(args).arg("--help")).ok();
    let listed: Vec<String> = help
        .lines()
        .skip_while(|l| *l != "Commands:")
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        // A command's name; deeper lines continue the help text above.
        .filter(|l| !l.starts_with("   "))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|c| *c != "help")
        .map(str::to_owned)
        .collect();
    assert!(listed.len() > 1, "no commands found in:\n{help}");
    listed
}

/// Output of a tool the test needs, or `None` (the test then checks nothing, see `missing`).
fn tool(name: &str) -> Option<Command> {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {name}")])
        .output()
        .is_ok_and(|o| o.status.success());
    found.then(|| Command::new(name))
}

#[test]
fn version_names_the_commit_and_its_date() {
    let out = Run::of(wrapkit().arg("--version")).ok();
    assert_eq!(Run::of(wrapkit().arg("-V")).ok(), out);
    let version = env!("CARGO_PKG_VERSION");
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let git = |args: &[&str]| {
        Command::new("git")
            .args(args)
            .current_dir(&workspace)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8(o.stdout).unwrap().trim().to_owned())
    };
    match (
        git(&["rev-parse", "--short=9", "HEAD"]),
        git(&["log", "-1", "--format=%cs"]),
    ) {
        (Some(hash), Some(date)) => {
            assert_eq!(out, format!("wrapkit {version} ({hash} {date})\n"));
            // The shape `cargo --version` has: 9 hex digits, an ISO date.
            assert!(
                hash.len() == 9 && hash.bytes().all(|b| b.is_ascii_hexdigit()),
                "{hash}"
            );
            let d: Vec<&str> = date.split('-').collect();
            assert!(
                d.len() == 3 && [4, 2, 2] == [d[0].len(), d[1].len(), d[2].len()],
                "{date}"
            );
        }
        // Not built from a git checkout: no parenthesis at all.
        _ => assert_eq!(out, format!("wrapkit {version}\n")),
    }
}

#[test]
fn quiet_and_verbose_are_global_flags() {
    let app = App::new().file("main.lua", "print(1)\n");
    let out = app.scratch().join("out");
    let pack = |flags: &[&str], sub_flags: &[&str]| {
        Run::of(
            wrapkit()
                .args(flags)
                .arg("pack")
                .args(sub_flags)
                .arg(app.path())
                .arg("-o")
                .arg(&out),
        )
    };
    let err = pack(&[], &[]).ok_stderr();
    assert!(err.starts_with("packed 1 file ("), "{err}");
    assert!(!err.contains("stub:"), "{err}");
    // `-q` before or after the command: nothing on stderr.
    assert_eq!(pack(&["-q"], &[]).ok_stderr(), "");
    assert_eq!(pack(&[], &["-q"]).ok_stderr(), "");
    assert_eq!(pack(&["--quiet"], &[]).ok_stderr(), "");
    // `-v`: where the stub came from, the built-in one or `--runtime`'s.
    let err = pack(&["-v"], &[]).ok_stderr();
    assert!(
        err.starts_with(&format!(
            "stub: built into wrapkit {}",
            env!("CARGO_PKG_VERSION")
        )),
        "{err}"
    );
    assert!(err.contains("\npacked 1 file"), "{err}");
    let other = app.scratch().join("other");
    let err = Run::of(
        wrapkit()
            .args(["pack", "-v", "--runtime"])
            .arg(&out)
            .arg(app.path())
            .arg("-o")
            .arg(&other),
    )
    .ok_stderr();
    assert!(
        err.starts_with(&format!("stub: {} (", out.display()))
            && err.contains("a packed executable, its payload left out)"),
        "{err}"
    );
    // Errors are never silenced.
    let err = Run::of(
        wrapkit()
            .args(["-q", "pack"])
            .arg(app.path())
            .arg("-o")
            .arg(app.path().join("inside")),
    )
    .fails_with(1);
    assert!(err.starts_with("error: the output "), "{err}");
    // Other commands' notes too.
    let packed = app.pack(&[]);
    let dir = app.scratch().join("x1");
    let err = Run::of(wrapkit().arg("extract").arg(&packed.exe).arg(&dir)).ok_stderr();
    assert!(err.starts_with("extracted 1 files"), "{err}");
    let dir = app.scratch().join("x2");
    assert_eq!(
        Run::of(wrapkit().args(["extract", "-q"]).arg(&packed.exe).arg(&dir)).ok_stderr(),
        ""
    );
    // Both at once is a usage error.
    let err = pack(&["-q", "-v"], &[]).fails_with(2);
    assert!(err.contains("cannot be used with"), "{err}");
}

/// Removes SGR escapes (`ESC [ … m`).
fn strip_sgr(s: &str) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some(i) = rest.find("\x1b[") {
        out.push_str(&rest[..i]);
        let tail = &rest[i + 2..];
        let end = tail
            .find(|c: char| !(c.is_ascii_digit() || c == ';'))
            .unwrap_or(tail.len());
        assert!(tail[end..].starts_with('m'), "not an SGR escape in {s:?}");
        rest = &tail[end + 1..];
    }
    out.push_str(rest);
    out
}

/// Asserts that every escape in `coloured` sits directly around one of `labels` (and that
/// there is at least one).
#[track_caller]
fn only_labels_coloured(coloured: &str, labels: &[&str]) {
    let mut rest = coloured;
    let mut seen = 0;
    while let Some(i) = rest.find('\x1b') {
        // One or more `ESC [ … m`, the label, then the reset `ESC [ 0 m`.
        let mut body = &rest[i..];
        while let Some(tail) = body.strip_prefix("\x1b[") {
            body = &tail[tail.find('m').expect("an SGR escape") + 1..];
        }
        let label = labels
            .iter()
            .find(|l| body.starts_with(**l) && body[l.len()..].starts_with("\x1b[0m"))
            .unwrap_or_else(|| panic!("an escape not around a label in {coloured:?}"));
        rest = &body[label.len() + "\x1b[0m".len()..];
        seen += 1;
    }
    assert!(seen > 0, "no colour in {coloured:?}");
}

/// A failing command whose error block has a hint and a name with an escape character in it.
fn failing_pack(app: &App) -> Command {
    let mut cmd = pack_cmd(app.path(), app.path().join("in\x1b[31mside"));
    cmd.env_remove("NO_COLOR")
        .env_remove("CLICOLOR")
        .env_remove("CLICOLOR_FORCE")
        .env("TERM", "xterm");
    cmd
}

#[test]
fn color_always_styles_the_labels_and_nothing_else() {
    let app = App::new().file("main.lua", "print(1)\n");
    let never = Run::of(failing_pack(&app).args(["--color", "never"])).fails_with(1);
    assert!(never.starts_with("error: the output "), "{never}");
    assert!(
        never.contains("in\\x1b[31mside"),
        "the name stays escaped: {never}"
    );
    assert!(never.contains("\nhint: "), "{never}");
    assert!(!never.contains('\x1b'), "{never:?}");
    let always = Run::of(failing_pack(&app).args(["--color=always"])).fails_with(1);
    assert_ne!(always, never);
    assert_eq!(
        strip_sgr(&always),
        never,
        "the text is the same, escapes aside"
    );
    only_labels_coloured(&always, &["error:", "hint:"]);
    // A flag on the command line wins over NO_COLOR (no-color.org).
    let forced = Run::of(
        failing_pack(&app)
            .args(["--color", "always"])
            .env("NO_COLOR", "1"),
    );
    assert_eq!(forced.fails_with(1), always);
    // `auto` in a pipe (these runs capture stderr): no colour.
    assert_eq!(Run::of(&mut failing_pack(&app)).fails_with(1), never);
    // Clap's own help and usage errors follow the flag too.
    let help = Run::of(wrapkit().args(["--color", "always", "--help"])).ok();
    assert!(help.contains("\x1b["), "{help:?}");
    let help = Run::of(wrapkit().args(["--color", "never", "--help"])).ok();
    assert!(!help.contains('\x1b'), "{help:?}");
    let usage = Run::of(wrapkit().args(["bogus", "--color=always"])).fails_with(2);
    assert!(usage.contains("\x1b["), "{usage:?}");
    let usage = Run::of(wrapkit().args(["bogus", "--color=never"])).fails_with(2);
    assert!(!usage.contains('\x1b'), "{usage:?}");
    let usage = Run::of(wrapkit().args(["--color", "pink", "ls", "x"])).fails_with(2);
    assert!(usage.contains("invalid value 'pink'"), "{usage}");
}

#[test]
fn color_auto_on_a_terminal_unless_no_color() {
    let app = App::new().file("main.lua", "print(1)\n");
    let on_terminal = |cmd: &mut Command| with_terminal_stderr(cmd).map(|run| run.fails_with(1));
    let Some(auto) = on_terminal(&mut failing_pack(&app)) else {
        missing("no pseudo-terminal");
        return;
    };
    let never = Run::of(&mut failing_pack(&app)).fails_with(1);
    only_labels_coloured(&auto, &["error:", "hint:"]);
    assert_eq!(strip_sgr(&auto), never);
    // NO_COLOR set and not empty: none; empty counts as unset.
    for (value, coloured) in [("1", false), ("anything", false), ("", true)] {
        let run = on_terminal(failing_pack(&app).env("NO_COLOR", value)).unwrap();
        assert_eq!(
            run.contains('\x1b'),
            coloured,
            "NO_COLOR={value:?}: {run:?}"
        );
    }
    let run = on_terminal(failing_pack(&app).args(["--color", "never"])).unwrap();
    assert_eq!(run, never);
    // The stub never colours, on a terminal too.
    let packed = app.pack(&[]);
    let bytes = packed.bytes();
    let cut = packed.variant("cut", &bytes[..bytes.len() - 1]);
    let mut stub = Command::new(&cut);
    stub.env_remove("NO_COLOR").env("TERM", "xterm");
    let run = with_terminal_stderr(&mut stub).unwrap();
    let err = run.fails_with(120);
    assert!(
        err.starts_with("error: ") && !err.contains('\x1b'),
        "{err:?}"
    );
}

#[test]
fn completions_for_every_shell() {
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let script = Run::of(wrapkit().args(["completions", shell])).ok();
        assert!(script.contains("wrapkit"), "{shell}: {script}");
        assert!(
            script.contains("follow-symlinks"),
            "{shell} completes flags"
        );
    }
    let err = Run::of(wrapkit().args(["completions", "tcsh"])).fails_with(2);
    assert!(err.contains("invalid value 'tcsh'"), "{err}");
}

#[test]
fn bash_completion_is_valid_and_completes_every_command() {
    let Some(_) = tool("bash") else {
        missing("bash is not installed");
        return;
    };
    let app = App::new();
    let script = app.scratch().join("wrapkit.bash");
    fs::write(
        &script,
        Run::of(wrapkit().args(["completions", "bash"])).ok(),
    )
    .unwrap();
    let syntax = Run::of(Command::new("bash").arg("-n").arg(&script));
    assert_eq!(syntax.code, Some(0), "bash -n: {}", syntax.stderr);
    // What bash offers after `wrapkit ` and after `wrapkit cache `, as a user pressing TAB.
    let complete = |words: &[&str]| {
        let line = format!(
            "source {}; COMP_WORDS=({}); COMP_CWORD={}; _wrapkit wrapkit '{}' '{}'; printf '%s\\n' \"${{COMPREPLY[@]}}\"",
            script.display(),
            words
                .iter()
                .map(|w| format!("'{w}'"))
                .collect::<Vec<_>>()
                .join(" "),
            words.len() - 1,
            words[words.len() - 1],
            words[words.len() - 2],
        );
        Run::of(Command::new("bash").args(["-c", &line])).ok()
    };
    let offered = complete(&["wrapkit", ""]);
    let offered: Vec<&str> = offered.lines().collect();
    for command in commands_listed_in_help(&[]) {
        assert!(
            offered.contains(&command.as_str()),
            "`{command}` not offered: {offered:?}"
        );
    }
    let offered = complete(&["wrapkit", "cache", ""]);
    for command in commands_listed_in_help(&["cache"]) {
        assert!(
            offered.lines().any(|l| l == command),
            "`cache {command}` not offered: {offered}"
        );
    }
    let offered = complete(&["wrapkit", "pack", "--fol"]);
    assert_eq!(offered, "--follow-symlinks\n");
}

#[test]
fn man_pages_render_and_document_every_command() {
    let Some(_) = tool("groff") else {
        missing("groff is not installed (Debian: groff-base)");
        return;
    };
    // Rendered as `man` would, on one long line per paragraph and without hyphenation, so a
    // help text can be looked for whole.
    let render = |roff: &str| {
        let app = App::new();
        let page = app.scratch().join("page.1");
        fs::write(&page, roff).unwrap();
        let run = Run::of(
            Command::new("groff")
                .args(["-man", "-Tutf8", "-ww", "-rLL=300n", "-rHY=0", "-P-cbou"])
                .arg(&page),
        );
        assert_eq!(run.stderr, "", "groff warns about the page");
        let text = run.ok();
        // groff prints `\-` as a minus sign.
        text.replace(['\u{2212}', '\u{2010}'], "-")
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
    };
    let page = render(&Run::of(wrapkit().arg("man")).ok());
    assert!(page.starts_with("wrapkit(1) "), "{page}");
    assert!(
        page.contains(
            "DESCRIPTION Pack an application directory into one self-contained executable"
        ),
        "{page}"
    );
    assert!(
        page.contains("-q, --quiet Print nothing on stderr but errors"),
        "{page}"
    );
    for command in commands_listed_in_help(&[]) {
        assert!(
            page.contains(&format!("wrapkit-{command}(1)")),
            "{command}: {page}"
        );
        let sub = render(&Run::of(wrapkit().args(["man", &command])).ok());
        assert!(sub.starts_with(&format!("wrapkit-{command}(1) ")), "{sub}");
        assert!(
            sub.contains(&format!("SYNOPSIS wrapkit {command}")),
            "{sub}"
        );
    }
    let pack = render(&Run::of(wrapkit().args(["man", "pack"])).ok());
    assert!(
        pack.contains(
            "--follow-symlinks Pack what symlinks point to instead of the links themselves"
        ),
        "{pack}"
    );
    let gc = render(&Run::of(wrapkit().args(["man", "cache", "gc"])).ok());
    assert!(gc.contains("--max-age <DAYS>"), "{gc}");
    let err = Run::of(wrapkit().args(["man", "cache", "nope"])).fails_with(1);
    assert!(
        err.starts_with("error: `wrapkit-cache` has no command `nope`; its commands are dir, ls,"),
        "{err}"
    );
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
    // A Python script is a Python app: packed with `python3` from PATH, and it says so.
    std::fs::write(work.path().join("tool.py"), "print(1)\n").unwrap();
    let err = crate::support::Run::of(
        wrapkit()
            .args(["pack", "tool.py", "-o", "x", "--compression", "store"])
            .current_dir(work.path()),
    )
    .ok_stderr();
    assert!(
        err.contains("python: a Python app; packing it with `python3` from PATH"),
        "{err}"
    );
    assert!(work.path().join("x").is_file());
}

#[test]
fn a_single_node_tcl_or_shebang_python_script_packs_with_its_interpreter_and_runs_alone() {
    let work = tempfile::tempdir().unwrap();
    let scripts = [
        (
            "hello.js",
            "console.log('js ' + process.argv[2])\n",
            "node: a JavaScript script",
        ),
        (
            "hello.tcl",
            "puts \"tcl [lindex $argv 0]\"\n",
            "tcl: a Tcl script",
        ),
        (
            "hello",
            "#!/usr/bin/env python3\nimport sys\nprint('py', sys.argv[1])\n",
            "python: a Python app",
        ),
    ];
    for (name, text, said) in scripts {
        std::fs::write(work.path().join(name), text).unwrap();
        let exe = work.path().join(format!("{name}.packed"));
        let err = crate::support::Run::of(
            wrapkit()
                .arg("pack")
                .arg(name)
                .arg("-o")
                .arg(&exe)
                .current_dir(work.path()),
        )
        .ok_stderr();
        assert!(err.starts_with(said), "{name}: {err}");
        let cache = work.path().join(format!("cache-{name}"));
        let out = crate::support::Run::of(
            std::process::Command::new(&exe)
                .arg("x")
                .env_clear()
                .env("WRAPKIT_CACHE_DIR", &cache)
                .current_dir("/"),
        )
        .ok();
        let word = if name.ends_with(".js") {
            "js"
        } else if name.ends_with(".tcl") {
            "tcl"
        } else {
            "py"
        };
        assert_eq!(out, format!("{word} x\n"), "{name}");
    }
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

/// Once the fill of the cache in `bundles` has started (its temp dir is
/// `.tmp-<digest>-<pid>`), stops the filling process for 1.2 s: the fill then takes over a
/// second however fast this machine creates files. False if no fill started within a minute.
fn slow_down_the_fill(bundles: std::path::PathBuf) -> std::thread::JoinHandle<bool> {
    std::thread::spawn(move || {
        let started = std::time::Instant::now();
        while started.elapsed().as_secs() < 60 {
            let tmp = std::fs::read_dir(&bundles).ok().and_then(|rd| {
                rd.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .find(|n| n.starts_with(".tmp-") && !n.ends_with(".ok"))
            });
            if let Some(pid) = tmp.and_then(|n| n.rsplit('-').next()?.parse::<i32>().ok()) {
                let pid = rustix::process::Pid::from_raw(pid).unwrap();
                rustix::process::kill_process(pid, rustix::process::Signal::STOP).unwrap();
                std::thread::sleep(std::time::Duration::from_millis(1200));
                rustix::process::kill_process(pid, rustix::process::Signal::CONT).unwrap();
                return true;
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        false
    })
}

#[test]
fn a_slow_first_start_says_so_on_a_terminal_only() {
    // 6,000 small files, so the fill lasts long enough to be caught and slowed down.
    let mut app = crate::exec::probe_app("", crate::exec::PROBE_TOML);
    for i in 0..6000 {
        app = app.file(&format!("data/{:02}/f{i:05}", i % 60), "x");
    }
    let packed = app.pack(&[]);
    // Stderr on a terminal: said once.
    let cache = crate::exec::CacheDir::new();
    let stopper = slow_down_the_fill(cache.bundles());
    let Some(run) = crate::support::with_terminal_stderr(
        packed
            .cmd()
            .args(["exit", "0"])
            .env("WRAPKIT_CACHE_DIR", cache.path()),
    ) else {
        missing("no pseudo-terminals on this machine");
        return;
    };
    assert!(stopper.join().unwrap(), "no fill started");
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert!(
        run.stderr
            .starts_with("wrapkit: first start: unpacked 6002 files (")
            && run.stderr.ends_with("; later starts reuse them\n"),
        "{}",
        run.stderr
    );
    // The warm start says nothing.
    let warm = crate::support::with_terminal_stderr(
        packed
            .cmd()
            .args(["exit", "0"])
            .env("WRAPKIT_CACHE_DIR", cache.path()),
    )
    .unwrap();
    assert_eq!((warm.code, warm.stderr.as_str()), (Some(0), ""));
    // Stderr in a pipe: never, however slow.
    let piped = crate::exec::CacheDir::new();
    let stopper = slow_down_the_fill(piped.bundles());
    let run = crate::support::Run::of(
        packed
            .cmd()
            .args(["exit", "0"])
            .env("WRAPKIT_CACHE_DIR", piped.path()),
    );
    assert!(stopper.join().unwrap(), "no fill started");
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
