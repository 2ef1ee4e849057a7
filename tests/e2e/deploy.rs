//! Deploying under systemd: the cache systemd gives a unit (`CacheDirectory=`, also in the
//! `DynamicUser=` layout), and `wrapkit deploy systemd`, whose unit and sysusers files are
//! pinned and then judged by `systemd-analyze verify` and `security --offline=yes`.
//!
//! PID 1 here is not systemd, so no unit is started (`systemd-run` fails against the live
//! system); the `DynamicUser=` test builds the mount namespace systemd would give the service
//! (a tmpfs over `private/` holding a bind mount of the unit's directory) with `unshare` and
//! runs the app in it as an unprivileged user, with only `CACHE_DIRECTORY` set.

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::exec::{CACHE_ERROR, PROBE_TOML, field, probe_app, refused};
use crate::support::{App, Packed, Run, require_root, shared_tempdir, wrapkit};

const NOBODY: u32 = 65534;

/// `/var/cache` as systemd leaves it for `CacheDirectory=probe` with `DynamicUser=yes`, under a
/// fresh directory: `cache/private` root-owned 0700, `cache/private/probe` owned by the
/// service's user, and `cache/probe -> private/probe`, a root-owned symlink. Also the packed
/// probe, copied where `nobody` can run it.
struct DynamicLayout {
    base: tempfile::TempDir,
    exe: PathBuf,
}

impl DynamicLayout {
    fn new(packed: &Packed) -> DynamicLayout {
        let base = shared_tempdir(false);
        let cache = base.path().join("cache");
        fs::create_dir(&cache).unwrap();
        fs::set_permissions(&cache, fs::Permissions::from_mode(0o755)).unwrap();
        let private = cache.join("private");
        fs::create_dir(&private).unwrap();
        fs::set_permissions(&private, fs::Permissions::from_mode(0o700)).unwrap();
        let own = private.join("probe");
        fs::create_dir(&own).unwrap();
        fs::set_permissions(&own, fs::Permissions::from_mode(0o755)).unwrap();
        std::os::unix::fs::chown(&own, Some(NOBODY), Some(NOBODY)).unwrap();
        std::os::unix::fs::symlink("private/probe", cache.join("probe")).unwrap();
        let exe = base.path().join("probe-app");
        fs::copy(&packed.exe, &exe).unwrap();
        fs::set_permissions(&exe, fs::Permissions::from_mode(0o755)).unwrap();
        DynamicLayout { base, exe }
    }

    fn cache(&self) -> PathBuf {
        self.base.path().join("cache")
    }

    /// Runs the app as `nobody` with only `vars` in its environment, in a mount namespace
    /// arranged as systemd arranges a `DynamicUser=` service's: `private/` overmounted by an
    /// empty tmpfs (mode 0755) that holds only a bind mount of `private/probe`.
    fn run_as_service(&self, vars: &[(&str, &Path)], args: &[&str]) -> Run {
        let private = self.cache().join("private");
        let stage = self.base.path().join("stage");
        fs::create_dir_all(&stage).unwrap();
        let script = "set -e\n\
            mount --bind \"$1/probe\" \"$2\"\n\
            mount -t tmpfs -o mode=0755 tmpfs \"$1\"\n\
            mkdir \"$1/probe\"\n\
            mount --move \"$2\" \"$1/probe\"\n\
            shift 2\n\
            exec setpriv --reuid=65534 --regid=65534 --clear-groups -- \"$@\"\n";
        let mut cmd = Command::new("unshare");
        cmd.args([
            "--mount",
            "--propagation",
            "private",
            "sh",
            "-c",
            script,
            "sh",
        ])
        .arg(&private)
        .arg(&stage)
        .arg("env")
        .arg("-i");
        for (k, v) in vars {
            cmd.arg(format!("{k}={}", v.display()));
        }
        cmd.arg(&self.exe).args(args);
        Run::of(&mut cmd)
    }
}

#[test]
fn an_exec_app_finds_its_cache_in_systemds_dynamic_user_layout_with_no_override() {
    if !require_root("building systemd's DynamicUser= layout and mount namespace") {
        return;
    }
    let packed = probe_app("hello\n", PROBE_TOML).pack(&[]);
    let layout = DynamicLayout::new(&packed);
    let unit_cache = layout.cache().join("probe");
    let out = layout
        .run_as_service(&[("CACHE_DIRECTORY", &unit_cache)], &["env"])
        .ok();
    let root = field(&out, "WRAPKIT_ROOT");
    let expected = unit_cache.join("wrapkit/bundles-v1");
    assert!(root.starts_with(expected.to_str().unwrap()), "{out}");
    // On the host, the tree is in the service's own directory, owned by its user.
    let real = layout.cache().join("private/probe/wrapkit");
    let meta = fs::metadata(&real).unwrap();
    assert_eq!((meta.uid(), meta.mode() & 0o777), (NOBODY, 0o700));
    // Warm start: the same tree.
    let again = layout
        .run_as_service(&[("CACHE_DIRECTORY", &unit_cache)], &["env"])
        .ok();
    assert_eq!(field(&again, "WRAPKIT_ROOT"), root);

    // Without CACHE_DIRECTORY (and no HOME) there is still no cache, and the hint says what a
    // unit needs.
    let err = refused(layout.run_as_service(&[], &["env"]), CACHE_ERROR, "HOME");
    assert!(err.contains("CacheDirectory="), "{err}");
}

#[test]
fn systemds_layout_is_trusted_only_while_nobody_but_root_and_the_user_can_change_it() {
    if !require_root("building systemd's DynamicUser= layout and mount namespace") {
        return;
    }
    let packed = probe_app("hello\n", PROBE_TOML).pack(&[]);

    // The override naming the symlink itself (the old recipe, WRAPKIT_CACHE_DIR=%C/NAME):
    // the cache directory may still not be a symlink.
    let layout = DynamicLayout::new(&packed);
    let link = layout.cache().join("probe");
    let run = layout.run_as_service(&[("WRAPKIT_CACHE_DIR", &link)], &["env"]);
    let err = refused(run, CACHE_ERROR, "is a symlink");
    assert!(err.contains("CACHE_DIRECTORY"), "{err}");

    // The symlink belongs to another unprivileged user, who could point it elsewhere.
    let layout = DynamicLayout::new(&packed);
    let link = layout.cache().join("probe");
    std::os::unix::fs::lchown(&link, Some(4242), Some(4242)).unwrap();
    let run = layout.run_as_service(&[("CACHE_DIRECTORY", &link)], &["env"]);
    refused(run, CACHE_ERROR, "belongs to user 4242");

    // `private` belongs to another user, who could swap the service's directory.
    let layout = DynamicLayout::new(&packed);
    let link = layout.cache().join("probe");
    let outside = layout.base.path().join("elsewhere");
    fs::create_dir(&outside).unwrap();
    std::os::unix::fs::chown(&outside, Some(4242), Some(4242)).unwrap();
    fs::create_dir(outside.join("probe")).unwrap();
    std::os::unix::fs::chown(outside.join("probe"), Some(NOBODY), Some(NOBODY)).unwrap();
    fs::remove_file(&link).unwrap();
    std::os::unix::fs::symlink(outside.join("probe"), &link).unwrap();
    let run = layout.run_as_service(&[("CACHE_DIRECTORY", &link)], &["env"]);
    refused(run, CACHE_ERROR, "belongs to user 4242");
    assert!(!outside.join("probe/wrapkit").exists());
}

/// Filters for what varies between runs: temp paths.
fn filters() -> Vec<(&'static str, &'static str)> {
    vec![(r"/tmp/[A-Za-z0-9._-]+", "[TMP]")]
}

macro_rules! pinned {
    ($value:expr, @$snapshot:literal) => {
        insta::with_settings!({ filters => filters(), prepend_module_to_snapshot => false }, {
            insta::assert_snapshot!($value, @$snapshot);
        })
    };
}

fn lua_app() -> Packed {
    App::new()
        .file("main.lua", "print('hello from ' .. arg[0])\n")
        .file("wrapkit.toml", "name = \"hello\"\nversion = \"1.0\"\n")
        .pack(&[])
}

/// Runs `wrapkit deploy systemd` on `packed` with `flags` into a fresh directory, naming the
/// packed file itself as the installed executable (so `verify` finds it); returns the
/// directory and the unit's name.
fn deploy(packed: &Packed, flags: &[&str]) -> (tempfile::TempDir, PathBuf) {
    let out = tempfile::tempdir().unwrap();
    Run::of(
        wrapkit()
            .args(["deploy", "systemd", "-q"])
            .arg(&packed.exe)
            .arg("-o")
            .arg(out.path())
            .arg("--exec-path")
            .arg(&packed.exe)
            .args(flags),
    )
    .ok();
    let unit = fs::read_dir(out.path())
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|e| e == "service"))
        .expect("a .service file");
    (out, unit)
}

fn text(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// `systemd-analyze verify` and `security --offline=yes --threshold=N` (N in tenths) on `unit`.
#[track_caller]
fn judged(unit: &Path, threshold: u32) -> Option<String> {
    if Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_err()
    {
        crate::support::missing("systemd-analyze (apt-get install systemd)");
        return None;
    }
    let verify = Run::of(
        Command::new("systemd-analyze")
            .args(["verify", "--man=no"])
            .arg(unit),
    );
    assert_eq!(verify.code, Some(0), "verify:\n{}", verify.stderr);
    assert_eq!(verify.stderr, "", "verify warned");
    let security = Run::of(
        Command::new("systemd-analyze")
            .args(["security", "--offline=yes", "--no-pager"])
            .arg(format!("--threshold={threshold}"))
            .arg(unit),
    );
    assert_eq!(
        security.code,
        Some(0),
        "exposure over {threshold}/10:\n{}",
        security.stdout
    );
    let overall = security
        .stdout
        .lines()
        .find(|l| l.contains("Overall exposure level"))
        .expect("an overall line")
        .to_owned();
    Some(overall)
}

#[test]
fn a_lua_app_gets_a_hardened_unit_without_network_and_a_declared_user() {
    let packed = lua_app();
    let (out, unit) = deploy(&packed, &[]);
    pinned!(text(&unit), @r"
    # Written by `wrapkit deploy systemd` for hello 1.0 (Lua app); docs/deploy.md says why each line is here.
    [Unit]
    Description=hello 1.0

    [Service]
    Type=exec
    ExecStart=[TMP]/packed
    User=hello
    Group=hello
    # Writable places: /var/lib/NAME, /var/log/NAME, /var/cache/NAME (exec mode's cache, found through CACHE_DIRECTORY).
    StateDirectory=hello
    LogsDirectory=hello
    CacheDirectory=hello
    StateDirectoryMode=0700
    LogsDirectoryMode=0700
    CacheDirectoryMode=0700
    # Hardening: `systemd-analyze security NAME.service` scores the whole set.
    NoNewPrivileges=yes
    CapabilityBoundingSet=
    AmbientCapabilities=
    ProtectSystem=strict
    ProtectHome=yes
    PrivateTmp=yes
    PrivateDevices=yes
    DevicePolicy=closed
    PrivateUsers=yes
    PrivateIPC=yes
    PrivateMounts=yes
    ProtectHostname=yes
    ProtectClock=yes
    ProtectKernelTunables=yes
    ProtectKernelModules=yes
    ProtectKernelLogs=yes
    ProtectControlGroups=yes
    ProtectProc=invisible
    ProcSubset=pid
    RestrictNamespaces=yes
    RestrictRealtime=yes
    RestrictSUIDSGID=yes
    LockPersonality=yes
    MemoryDenyWriteExecute=yes
    RemoveIPC=yes
    KeyringMode=private
    SystemCallArchitectures=native
    SystemCallFilter=@system-service
    SystemCallFilter=~@privileged @resources
    SystemCallErrorNumber=EPERM
    UMask=0077
    # No network.
    PrivateNetwork=yes
    RestrictAddressFamilies=none
    IPAddressDeny=any

    [Install]
    WantedBy=multi-user.target
    ");
    pinned!(text(&out.path().join("sysusers.d/hello.conf")), @r#"
    u hello - "hello service user"
    "#);
    assert!(!out.path().join("tmpfiles.d").exists());
    if let Some(overall) = judged(&unit, 10) {
        assert!(overall.contains("0.2"), "{overall}");
    }
}

#[test]
fn an_exec_app_gets_the_network_and_dynamic_user_and_empty_root_keep_the_score() {
    let packed = probe_app("hello\n", PROBE_TOML).pack(&[]);
    let (out, unit) = deploy(
        &packed,
        &[
            "--dynamic-user",
            "--empty-root",
            "--environment",
            "GREETING=50% \"hi\"",
            "--read-write-path",
            "/srv/probe",
            "--",
            "env",
            "$HOME",
        ],
    );
    pinned!(text(&unit), @r#"
    # Written by `wrapkit deploy systemd` for probe 1.0 (exec-mode app); docs/deploy.md says why each line is here.
    [Unit]
    Description=probe 1.0
    After=network.target

    [Service]
    Type=exec
    ExecStart=[TMP]/packed env "$$HOME"
    DynamicUser=yes
    Environment="GREETING=50%% \"hi\""
    # Writable places: /var/lib/NAME, /var/log/NAME, /var/cache/NAME (exec mode's cache, found through CACHE_DIRECTORY).
    StateDirectory=probe
    LogsDirectory=probe
    CacheDirectory=probe
    StateDirectoryMode=0700
    LogsDirectoryMode=0700
    CacheDirectoryMode=0700
    ReadWritePaths=/srv/probe
    # An empty root (tmpfiles.d/NAME.conf makes it) holding only the executable.
    RootDirectory=/run/wrapkit-root/probe
    MountAPIVFS=yes
    BindReadOnlyPaths=[TMP]/packed
    # Hardening: `systemd-analyze security NAME.service` scores the whole set.
    NoNewPrivileges=yes
    CapabilityBoundingSet=
    AmbientCapabilities=
    ProtectSystem=strict
    ProtectHome=yes
    PrivateTmp=yes
    PrivateDevices=yes
    DevicePolicy=closed
    PrivateUsers=yes
    PrivateIPC=yes
    PrivateMounts=yes
    ProtectHostname=yes
    ProtectClock=yes
    ProtectKernelTunables=yes
    ProtectKernelModules=yes
    ProtectKernelLogs=yes
    ProtectControlGroups=yes
    ProtectProc=invisible
    ProcSubset=pid
    RestrictNamespaces=yes
    RestrictRealtime=yes
    RestrictSUIDSGID=yes
    LockPersonality=yes
    MemoryDenyWriteExecute=yes
    RemoveIPC=yes
    KeyringMode=private
    SystemCallArchitectures=native
    SystemCallFilter=@system-service
    SystemCallFilter=~@privileged @resources
    SystemCallErrorNumber=EPERM
    UMask=0077
    # Network: IPv4, IPv6 and local sockets only.
    RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6

    [Install]
    WantedBy=multi-user.target
    "#);
    pinned!(text(&out.path().join("tmpfiles.d/probe.conf")), @r"
    # The empty root of probe.service (RootDirectory=); systemd creates its mount points.
    d /run/wrapkit-root/probe 0755 root root -
    ");
    assert!(!out.path().join("sysusers.d").exists());
    if let Some(overall) = judged(&unit, 15) {
        assert!(overall.contains("1.0"), "{overall}");
    }
}

#[test]
fn every_combination_stays_under_the_documented_exposure() {
    let lua = lua_app();
    let exec = probe_app("hello\n", PROBE_TOML).pack(&[]);
    // (app, flags, threshold in tenths: 1.0 without network, 1.5 with it)
    let cases: [(&Packed, &[&str], u32); 10] = [
        (&lua, &[], 10),
        (&lua, &["--network", "inet"], 15),
        (&lua, &["--dynamic-user"], 10),
        (&lua, &["--empty-root"], 10),
        (
            &lua,
            &["--empty-root", "--dynamic-user", "--network", "inet"],
            15,
        ),
        (&exec, &["--network", "none"], 10),
        (&exec, &[], 15),
        (&exec, &["--dynamic-user"], 15),
        (
            &exec,
            &["--dynamic-user", "--empty-root", "--network", "none"],
            10,
        ),
        (&exec, &["--jit", "--user", "svc"], 15),
    ];
    for (packed, flags, threshold) in cases {
        let (_out, unit) = deploy(packed, flags);
        let Some(overall) = judged(&unit, threshold) else {
            return;
        };
        eprintln!("{flags:?}: {overall}");
    }
}

#[test]
fn deploy_refuses_what_cannot_go_into_a_unit() {
    let packed = lua_app();
    let out = tempfile::tempdir().unwrap();
    let run = |flags: &[&str]| {
        Run::of(
            wrapkit()
                .args(["deploy", "systemd"])
                .arg(&packed.exe)
                .arg("-o")
                .arg(out.path())
                .args(flags),
        )
    };
    let err = run(&["--name", "Bad.Name"]).fails_with(1);
    assert!(err.contains("cannot be the unit name"), "{err}");
    assert!(err.contains("hint: choose another with --name"), "{err}");
    let err = run(&["--", "a\nUser=root"]).fails_with(1);
    assert!(err.contains("control character"), "{err}");
    let err = run(&["--read-write-path", "relative"]).fails_with(1);
    assert!(err.contains("absolute path"), "{err}");
    assert_eq!(
        fs::read_dir(out.path()).unwrap().count(),
        0,
        "nothing written"
    );

    // [deploy] in a wrapkit.toml: read with --config, flags win; pack accepts the table.
    let app = App::new().file("main.lua", "print(1)\n").file(
        "wrapkit.toml",
        "name = \"cfg\"\n[deploy]\nuser = \"svc\"\nnetwork = \"inet\"\nargs = [\"--x\"]\n",
    );
    let packed = app.pack(&[]);
    let (_o, unit) = {
        let out = tempfile::tempdir().unwrap();
        Run::of(
            wrapkit()
                .args(["deploy", "systemd", "-q"])
                .arg(&packed.exe)
                .arg("-o")
                .arg(out.path())
                .arg("--config")
                .arg(app.path()),
        )
        .ok();
        let unit = out.path().join("cfg.service");
        (out, unit)
    };
    let unit = text(&unit);
    assert!(unit.contains("\nUser=svc\n"), "{unit}");
    assert!(unit.contains("\nExecStart=/usr/bin/cfg --x\n"), "{unit}");
    assert!(
        unit.contains("RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6"),
        "{unit}"
    );
    let bad = App::new()
        .file("main.lua", "print(1)\n")
        .file("wrapkit.toml", "[deploy]\nusr = \"x\"\n");
    let err = bad.pack_to(&bad.scratch().join("x"), &[]).fails_with(1);
    assert!(err.contains("unknown field `usr`"), "{err}");
}
