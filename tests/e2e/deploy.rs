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
use crate::support::{Packed, Run, require_root, shared_tempdir};

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
