//! `wrapkit deploy portable`: a systemd portable service image holding only the packed file,
//! its unit and what makes a directory an image. The image is a root the app runs in alone
//! (`chroot` into it), its unit keeps the `deploy systemd` score with `DynamicUser=yes`, and
//! what cannot be an image is refused with nothing written.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use crate::exec::{PROBE_TOML, probe_app};
use crate::support::{App, Packed, Run, missing, require_root, wrapkit};

fn portable(packed: &Packed, out: &Path, flags: &[&str]) -> Run {
    Run::of(
        wrapkit()
            .args(["deploy", "portable"])
            .arg(&packed.exe)
            .arg("-o")
            .arg(out)
            .args(flags),
    )
}

/// Every path in the image with its type and permission bits, sorted.
fn listing(root: &Path) -> Vec<String> {
    let mut out: Vec<String> = walkdir::WalkDir::new(root)
        .min_depth(1)
        .into_iter()
        .map(|e| {
            let e = e.unwrap();
            let meta = e.metadata().unwrap();
            let kind = if meta.is_dir() { 'd' } else { 'f' };
            let rel = e.path().strip_prefix(root).unwrap().display().to_string();
            format!("{kind} {:o} {rel}", meta.permissions().mode() & 0o7777)
        })
        .collect();
    out.sort();
    out
}

#[test]
fn a_lua_app_becomes_an_image_it_runs_in_alone_with_a_dynamic_user_unit() {
    let packed = App::new()
        .file("main.lua", "print('hello from the image')\n")
        .file("wrapkit.toml", "name = \"hello\"\nversion = \"1.0\"\n")
        .pack(&[]);
    let work = tempfile::tempdir().unwrap();
    let image = work.path().join("hello");
    let run = portable(&packed, &image, &[]);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert!(
        run.stderr
            .contains("portablectl attach --profile=strict --now"),
        "{}",
        run.stderr
    );
    assert_eq!(
        listing(&image),
        [
            "d 755 dev",
            "d 755 etc",
            "d 755 proc",
            "d 755 run",
            "d 755 sys",
            "d 755 tmp",
            "d 755 usr",
            "d 755 usr/bin",
            "d 755 usr/lib",
            "d 755 usr/lib/systemd",
            "d 755 usr/lib/systemd/system",
            "d 755 var",
            "d 755 var/cache",
            "d 755 var/lib",
            "d 755 var/log",
            "d 755 var/tmp",
            "f 444 etc/machine-id",
            "f 444 etc/resolv.conf",
            "f 444 usr/lib/os-release",
            "f 444 usr/lib/systemd/system/hello.service",
            "f 555 usr/bin/hello",
        ]
    );
    assert_eq!(
        fs::read(image.join("usr/bin/hello")).unwrap(),
        fs::read(&packed.exe).unwrap()
    );
    assert_eq!(
        fs::read_to_string(image.join("usr/lib/os-release")).unwrap(),
        "ID=wrapkit\nNAME=\"hello (wrapkit portable service)\"\nPORTABLE_PRETTY_NAME=\"hello 1.0\"\nPORTABLE_PREFIXES=hello\n"
    );
    let unit = fs::read_to_string(image.join("usr/lib/systemd/system/hello.service")).unwrap();
    for line in [
        "ExecStart=/usr/bin/hello",
        "DynamicUser=yes",
        "StateDirectory=hello",
        "PrivateNetwork=yes",
    ] {
        assert!(unit.lines().any(|l| l == line), "{line} missing:\n{unit}");
    }
    assert!(
        !unit.contains("RootDirectory=") && !unit.contains("User=hello"),
        "{unit}"
    );

    // The unit keeps the score `deploy systemd` documents (0.2 without network).
    if Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_err()
    {
        missing("systemd-analyze (apt-get install systemd)");
    } else {
        let security = Run::of(
            Command::new("systemd-analyze")
                .args(["security", "--offline=yes", "--no-pager", "--threshold=10"])
                .arg(format!("--root={}", image.display()))
                .arg("hello.service"),
        );
        assert_eq!(security.code, Some(0), "{}", security.stdout);
        assert!(
            security
                .stdout
                .contains("Overall exposure level for hello.service: 0.2"),
            "{}",
            security.stdout
        );
    }

    // Nothing else is in the image, and nothing else is needed.
    if require_root("chroot") {
        let out = Run::of(
            Command::new("/usr/sbin/chroot")
                .arg(&image)
                .arg("/usr/bin/hello")
                .env_clear(),
        )
        .ok();
        assert_eq!(out, "hello from the image\n");
    }
}

#[test]
fn an_exec_app_image_runs_alone_and_fills_its_cache_inside() {
    if !require_root("chroot") {
        return;
    }
    let packed = probe_app("data\n", PROBE_TOML).pack(&[]);
    let work = tempfile::tempdir().unwrap();
    let image = work.path().join("probe_1.0");
    let run = portable(&packed, &image, &["--name", "probe", "--", "env"]);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    let unit = fs::read_to_string(image.join("usr/lib/systemd/system/probe.service")).unwrap();
    assert!(
        unit.contains("ExecStart=/usr/bin/probe env\n")
            && unit.contains("RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6"),
        "{unit}"
    );
    // As under systemd: no HOME, the cache where CacheDirectory= puts it (systemd makes the
    // directory, owned by the service's user).
    fs::create_dir(image.join("var/cache/probe")).unwrap();
    fs::set_permissions(
        image.join("var/cache/probe"),
        fs::Permissions::from_mode(0o700),
    )
    .unwrap();
    let out = Run::of(
        Command::new("/usr/sbin/chroot")
            .arg(&image)
            .args(["/usr/bin/probe", "env"])
            .env_clear()
            .env("CACHE_DIRECTORY", "/var/cache/probe"),
    )
    .ok();
    assert!(out.contains("WRAPKIT_EXE=/usr/bin/probe\n"), "{out}");
    assert!(
        out.contains("WRAPKIT_ROOT=/var/cache/probe/wrapkit/bundles-v1/"),
        "{out}"
    );
}

#[test]
fn what_cannot_be_an_image_is_refused_and_nothing_is_written() {
    let packed = App::new()
        .file("main.lua", "print(1)\n")
        .file("wrapkit.toml", "name = \"hello\"\n")
        .pack(&[]);
    let work = tempfile::tempdir().unwrap();
    let wrong = work.path().join("other");
    let err = portable(&packed, &wrong, &[]).fails_with(1);
    assert!(
        err.starts_with(&format!(
            "error: {}: a portable image's directory is named after its service `hello`\nhint: portablectl attaches only the units an image is named for: give `-o {}`",
            wrong.display(),
            work.path().join("hello").display()
        )),
        "{err}"
    );
    assert!(!wrong.exists());
    let taken = work.path().join("hello");
    fs::create_dir(&taken).unwrap();
    fs::write(taken.join("keep"), "mine").unwrap();
    let err = portable(&packed, &taken, &[]).fails_with(1);
    assert!(err.contains("exists already"), "{err}");
    assert_eq!(fs::read_to_string(taken.join("keep")).unwrap(), "mine");
    assert_eq!(
        fs::read_dir(work.path()).unwrap().count(),
        1,
        "no staging left"
    );
}
