//! `wrapkit deploy oci`: the layout is byte-reproducible, `skopeo` and `umoci` read it, its
//! unpacked rootfs runs under `chroot` as the image's user, and `podman run` runs it with the
//! flags this sandbox needs (`/work/shared/deploy.md`; `.ci/run` installs the three tools).
//! A Lua app and an exec-mode app (the static probe of `exec.rs`), with and without a
//! pre-filled cache.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::exec::{PROBE_TOML, probe_app};
use crate::support::{App, Packed, Run, missing, require_root, wrapkit};

const UID: &str = "65532";

fn lua_app() -> Packed {
    App::new()
        .file(
            "main.lua",
            "print('hello from ' .. arg[0] .. ', ' .. #arg .. ' args')\n",
        )
        .file("wrapkit.toml", "name = \"hello\"\nversion = \"1.0\"\n")
        .pack(&[])
}

/// `wrapkit deploy oci APP -o DIR FLAGS…`, with no `SOURCE_DATE_EPOCH` (so epoch 0).
fn deploy(app: &Path, out: &Path, flags: &[&str]) -> Run {
    Run::of(
        wrapkit()
            .args(["deploy", "oci"])
            .arg(app)
            .arg("-o")
            .arg(out)
            .args(flags)
            .env_remove("SOURCE_DATE_EPOCH"),
    )
}

/// Every file of a directory tree, by relative path.
fn files(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    walkdir::WalkDir::new(dir)
        .sort_by_file_name()
        .into_iter()
        .map(Result::unwrap)
        .filter(|e| e.file_type().is_file())
        .map(|e| {
            (
                e.path().strip_prefix(dir).unwrap().to_path_buf(),
                fs::read(e.path()).unwrap(),
            )
        })
        .collect()
}

fn json(bytes: &[u8]) -> serde_json::Value {
    serde_json::from_slice(bytes).unwrap()
}

/// The manifest digest `index.json` names, and the manifest and config it leads to.
fn read_image(dir: &Path) -> (String, serde_json::Value, serde_json::Value) {
    let index = json(&fs::read(dir.join("index.json")).unwrap());
    let digest = index["manifests"][0]["digest"].as_str().unwrap().to_owned();
    let blob = |d: &str| fs::read(dir.join("blobs/sha256").join(&d[7..])).unwrap();
    let manifest = json(&blob(&digest));
    let config = json(&blob(manifest["config"]["digest"].as_str().unwrap()));
    (digest, manifest, config)
}

fn have(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

#[test]
fn two_builds_of_an_image_are_the_same_bytes() {
    let packed = lua_app();
    let out = packed.exe.with_file_name("images");
    let (a, b) = (out.join("a"), out.join("b"));
    for dir in [&a, &b] {
        deploy(&packed.exe, dir, &["--ca-certs", "--tzdata"]).ok_stderr();
    }
    assert_eq!(files(&a), files(&b));

    let (digest, manifest, config) = read_image(&a);
    assert_eq!(manifest["layers"].as_array().unwrap().len(), 2);
    assert_eq!(config["created"], "1970-01-01T00:00:00Z");
    assert_eq!(config["config"]["User"], format!("{UID}:{UID}"));
    assert_eq!(config["config"]["Entrypoint"][0], "/usr/bin/hello");
    // Canonical JSON: what a reader re-serialises with sorted keys and no whitespace.
    let raw = fs::read(a.join("blobs/sha256").join(&digest[7..])).unwrap();
    assert_eq!(raw, serde_json::to_vec(&json(&raw)).unwrap());
    // Every blob is named by its SHA-256, and every layer is gzip with no name and no time.
    for (path, bytes) in files(&a.join("blobs/sha256")) {
        let out = Command::new("sha256sum")
            .arg(a.join("blobs/sha256").join(&path))
            .output()
            .unwrap();
        assert!(String::from_utf8_lossy(&out.stdout).starts_with(path.to_str().unwrap()));
        if bytes.starts_with(b"\x1f\x8b") {
            assert_eq!(bytes[3], 0, "no FNAME or other optional gzip fields");
            assert_eq!(&bytes[4..8], &[0; 4], "no gzip mtime");
        }
    }

    // SOURCE_DATE_EPOCH is the layers' mtime and the config's time: another image, as stable.
    let c = out.join("c");
    Run::of(
        wrapkit()
            .args(["deploy", "oci"])
            .arg(&packed.exe)
            .arg("-o")
            .arg(&c)
            .env("SOURCE_DATE_EPOCH", "315532800"),
    )
    .ok_stderr();
    let (other, _, config) = read_image(&c);
    assert_ne!(other, digest);
    assert_eq!(config["created"], "1980-01-01T00:00:00Z");
    // Run again into the same directory: the layout is replaced whole, with the same bytes.
    let before = files(&c);
    Run::of(
        wrapkit()
            .args(["deploy", "oci"])
            .arg(&packed.exe)
            .arg("-o")
            .arg(&c)
            .env("SOURCE_DATE_EPOCH", "315532800"),
    )
    .ok_stderr();
    assert_eq!(files(&c), before);
}

#[test]
fn the_layers_hold_root_owned_files_but_the_users_cache() {
    let packed = probe_app("data\n", PROBE_TOML).pack(&[]);
    let out = packed.exe.with_file_name("image");
    deploy(&packed.exe, &out, &["--prefill"]).ok_stderr();
    let (_, manifest, config) = read_image(&out);
    assert!(
        config["config"]["Env"]
            .as_array()
            .unwrap()
            .contains(&"WRAPKIT_CACHE_DIR=/var/cache/wrapkit".into())
    );
    let mut listing = String::new();
    for layer in manifest["layers"].as_array().unwrap() {
        let blob = out
            .join("blobs/sha256")
            .join(&layer["digest"].as_str().unwrap()[7..]);
        listing += &Run::of(
            Command::new("tar")
                .args(["--numeric-owner", "--full-time", "-tvzf"])
                .arg(blob),
        )
        .ok();
    }
    for line in listing.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        let (mode, owner, when, path) = (f[0], f[1], f[3], f[5]);
        assert_eq!(when, "1970-01-01", "{line}");
        let want = if path.starts_with("var/cache/wrapkit") {
            "65532/65532"
        } else {
            "0/0"
        };
        assert_eq!(owner, want, "{line}");
        match path {
            "tmp/" => assert_eq!(mode, "drwxrwxrwt"),
            "usr/bin/probe" => assert_eq!(mode, "-r-xr-xr-x"),
            "var/cache/wrapkit/" => assert_eq!(mode, "drwx------"),
            _ => {}
        }
    }
    assert!(listing.contains("etc/passwd") && listing.contains(".ok"));
    assert!(!listing.contains(".lock"), "{listing}");
}

#[test]
fn what_cannot_be_an_image_is_refused_with_a_hint() {
    let packed = lua_app();
    let out = packed.exe.with_file_name("image");
    let err = deploy(&packed.exe, &out, &["--prefill"]).fails_with(1);
    assert!(err.contains("this is a Lua app"), "{err}");
    assert!(err.contains("hint: leave out --prefill"), "{err}");
    assert!(!out.exists());

    let err = deploy(&packed.exe, &out, &["--tag", "a:b"]).fails_with(1);
    assert!(err.contains("`a:b` cannot be the tag"), "{err}");

    // The fill beside the output follows the cache's rules: not under a directory others can
    // write.
    let exec = probe_app("data\n", PROBE_TOML).pack(&[]);
    let open = exec.exe.with_file_name("open");
    fs::create_dir(&open).unwrap();
    fs::set_permissions(&open, fs::Permissions::from_mode(0o777)).unwrap();
    let err = deploy(&exec.exe, &open.join("image"), &["--prefill"]).fails_with(1);
    assert!(err.contains("cannot fill the cache for the image"), "{err}");
    assert!(
        err.contains("hint: the fill runs in a staging directory"),
        "{err}"
    );
    assert_eq!(
        fs::read_dir(&open).unwrap().count(),
        0,
        "nothing left behind"
    );

    fs::create_dir_all(&out).unwrap();
    fs::write(out.join("keep.txt"), "mine").unwrap();
    let err = deploy(&packed.exe, &out, &[]).fails_with(1);
    assert!(err.contains("is not an OCI image layout"), "{err}");
    assert_eq!(fs::read(out.join("keep.txt")).unwrap(), b"mine");
}

/// `umoci unpack` of `dir`, then the rootfs run under `chroot` as the image's user, with the
/// image's environment and nothing else.
fn run_in_chroot(dir: &Path, args: &[&str], extra_env: &[(&str, &str)]) -> Run {
    let bundle = dir.with_extension("bundle");
    let _ = fs::remove_dir_all(&bundle);
    Run::of(
        Command::new("umoci")
            .args(["unpack", "--image"])
            .arg(format!("{}:latest", dir.display()))
            .arg(&bundle),
    )
    .ok();
    let (_, _, config) = read_image(dir);
    let mut cmd = Command::new("/usr/sbin/chroot");
    cmd.arg(format!("--userspec={UID}:{UID}"))
        .arg(bundle.join("rootfs"))
        .arg(config["config"]["Entrypoint"][0].as_str().unwrap())
        .args(args)
        .env_clear();
    for kv in config["config"]["Env"].as_array().unwrap() {
        let (k, v) = kv.as_str().unwrap().split_once('=').unwrap();
        cmd.env(k, v);
    }
    cmd.envs(extra_env.iter().copied());
    let run = Run::of(&mut cmd);
    let passwd = fs::read_to_string(bundle.join("rootfs/etc/passwd")).unwrap();
    assert!(passwd.contains(&format!(":{UID}:{UID}:")), "{passwd}");
    run
}

#[test]
fn skopeo_and_umoci_read_the_layout_and_its_rootfs_runs_as_the_user() {
    if !require_root("chroot") {
        return;
    }
    if !have("skopeo") || !have("umoci") {
        missing("no skopeo or umoci (apt-get install skopeo umoci)");
        return;
    }
    let lua = lua_app();
    let out = lua.exe.with_file_name("lua-image");
    deploy(&lua.exe, &out, &[]).ok_stderr();
    let (digest, _, _) = read_image(&out);
    let inspect = json(
        Run::of(
            Command::new("skopeo")
                .arg("inspect")
                .arg(format!("oci:{}:latest", out.display())),
        )
        .ok()
        .as_bytes(),
    );
    assert_eq!(inspect["Digest"], digest.as_str());
    assert_eq!(inspect["Architecture"], "amd64");
    let got = run_in_chroot(&out, &["a", "b"], &[]).ok();
    assert_eq!(got, "hello from /usr/bin/hello, 2 args\n");

    // Exec mode without a filled cache: the first start fills it, as the user, in the image's
    // own cache directory.
    let exec = probe_app("data\n", PROBE_TOML).pack(&[]);
    let cold = exec.exe.with_file_name("cold-image");
    deploy(&exec.exe, &cold, &[]).ok_stderr();
    let run = run_in_chroot(&cold, &["env"], &[("WRAPKIT_DEBUG", "1")]);
    assert!(run.stderr.contains("marker written"), "{}", run.stderr);
    let out = run.ok();
    assert!(
        out.contains("WRAPKIT_ROOT=/var/cache/wrapkit/bundles-v1/"),
        "{out}"
    );

    // With --prefill the tree is in the image and the start is warm.
    let warm = exec.exe.with_file_name("warm-image");
    deploy(&exec.exe, &warm, &["--prefill"]).ok_stderr();
    let run = run_in_chroot(&warm, &["write", "/tmp/out"], &[("WRAPKIT_DEBUG", "1")]);
    assert!(run.stderr.contains("warm start"), "{}", run.stderr);
    run.ok();
    let written = warm.with_extension("bundle").join("rootfs/tmp/out");
    assert_eq!(fs::metadata(written).unwrap().uid().to_string(), UID);
}

#[test]
fn podman_runs_the_image_without_network() {
    if !require_root("rootful podman") {
        return;
    }
    if !have("podman") {
        missing("no podman (apt-get install podman)");
        return;
    }
    // The flags this sandbox needs (docs/deploy.md, "OCI images"). Podman names an image it
    // loads from `oci:PATH` after PATH, and a name must be lowercase (the temp dir's is not):
    // the path is given relative to the image's parent.
    let podman = |image: &Path, flags: &[&str], args: &[&str]| {
        Run::of(
            Command::new("podman")
                .current_dir(image.parent().unwrap())
                .args([
                    "--cgroup-manager=cgroupfs",
                    "run",
                    "--rm",
                    "--runtime",
                    "runc",
                ])
                .args([
                    "--ulimit",
                    "nofile=1024:1024",
                    "--ulimit",
                    "nproc=1000:1000",
                ])
                .arg("--network=none")
                .args(flags)
                .arg(format!(
                    "oci:{}:latest",
                    image.file_name().unwrap().to_str().unwrap()
                ))
                .args(args),
        )
    };
    let lua = lua_app();
    let out = lua.exe.with_file_name("lua-image");
    deploy(&lua.exe, &out, &["--", "x"]).ok_stderr();
    assert_eq!(
        podman(&out, &[], &[]).ok(),
        "hello from /usr/bin/hello, 1 args\n"
    );

    let exec = probe_app("data\n", PROBE_TOML).pack(&[]);
    let warm = exec.exe.with_file_name("warm-image");
    deploy(&exec.exe, &warm, &["--prefill"]).ok_stderr();
    // A read-only container runs it: the filled cache is in the image.
    let run = podman(
        &warm,
        &["--read-only", "-e", "WRAPKIT_DEBUG=1"],
        &["exit", "7"],
    );
    assert!(run.stderr.contains("warm start"), "{}", run.stderr);
    assert_eq!(run.code, Some(7), "{}", run.stderr);

    // Podman keeps what it loaded; its image id is the config's digest.
    for image in [&out, &warm] {
        let (_, manifest, _) = read_image(image);
        let id = &manifest["config"]["digest"].as_str().unwrap()[7..];
        let _ = Command::new("podman").args(["rmi", "--force", id]).output();
    }
}
