//! An OCI image layout for a packed executable: `oci-layout`, `index.json` and
//! `blobs/sha256/…` (the manifest, the config and the layers), which `skopeo`, `umoci` and
//! `podman` read as they read any image (docs/deploy.md, "OCI images").
//!
//! The image holds what the packed file needs and nothing else: the executable, `/etc/passwd`
//! and `/etc/group` naming a non-root user ([`UID`], as distroless and Chainguard do), a sticky
//! `/tmp`, and for exec mode a cache directory owned by that user; optionally the host's CA
//! certificates and time zones, and for exec mode the cache already filled.
//!
//! Everything written is a function of its inputs, so two builds are byte-identical: layer
//! entries sorted by path, every mtime the chosen epoch (`SOURCE_DATE_EPOCH`, else 0), owners
//! 0 except the user's cache, no user or group names, gzip with no name and no time in its
//! header, JSON with sorted keys and no insignificant whitespace, blobs named by SHA-256. The
//! values that reach a file are checked first ([`super::systemd`]'s name and path rules).

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};

use super::AppKind;
use super::systemd::{DeployError, check_env_name, check_name, check_path, check_text};

/// The image's user and group id: what distroless and Chainguard images use for `nonroot`.
pub const UID: u32 = 65532;

/// Where exec mode materialises the app in the image (`WRAPKIT_CACHE_DIR`): a directory of its
/// own, owned by the user, so that a pre-filled cache is not hidden by the tmpfs a runtime
/// mounts on `/tmp` for a read-only container.
pub const CACHE_DIR: &str = "/var/cache/wrapkit";

/// Where `--ca-certs` puts the certificate bundle: the path OpenSSL, Go and Rust's rustls
/// native-certs look at first on Debian-like systems.
pub const CA_CERTS_PATH: &str = "/etc/ssl/certs/ca-certificates.crt";

/// Where `--tzdata` puts the time-zone database.
pub const TZDATA_PATH: &str = "/usr/share/zoneinfo";

const MEDIA_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const MEDIA_INDEX: &str = "application/vnd.oci.image.index.v1+json";
const MEDIA_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
const MEDIA_LAYER: &str = "application/vnd.oci.image.layer.v1.tar+gzip";

/// Everything the image is made from, checked by [`Image::new`].
#[derive(Debug, Clone)]
pub struct ImageSpec<'a> {
    /// The user's name and the executable's (`/usr/bin/NAME`).
    pub name: String,
    /// The tag in `index.json` (`org.opencontainers.image.ref.name`).
    pub tag: String,
    pub app_name: String,
    pub app_version: String,
    pub kind: AppKind,
    /// The packed file's bytes.
    pub exe: &'a [u8],
    /// Arguments after the entrypoint (the config's `Cmd`).
    pub args: Vec<String>,
    pub environment: BTreeMap<String, String>,
    /// A CA bundle to install at [`CA_CERTS_PATH`].
    pub ca_certs: Option<PathBuf>,
    /// A time-zone database directory to install at [`TZDATA_PATH`].
    pub tzdata: Option<PathBuf>,
    /// A filled cache directory (what `WRAPKIT_CACHE_DIR` named during the fill) to install at
    /// [`CACHE_DIR`], and the digest of the app's tree in it.
    pub cache: Option<(PathBuf, String)>,
    /// Every mtime in the layers, and the config's `created`.
    pub epoch: u64,
}

/// What cannot go into an image.
#[derive(Debug, thiserror::Error)]
pub enum OciError {
    #[error(transparent)]
    Value(#[from] DeployError),
    #[error(
        "`{value}` cannot be the tag: a tag is 1 to 128 of ASCII letters, digits, `_`, `.` and `-`, not starting with `.` or `-`"
    )]
    Tag { value: String },
    #[error("cannot read {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{} is not a regular file, a directory or a symlink", path.display())]
    Special { path: PathBuf },
    #[error("the filled cache has no completion marker for {digest}")]
    NoMarker { digest: String },
    #[error("the executable is not an ELF file for a machine an OCI image names (x86-64, aarch64)")]
    Architecture,
}

impl OciError {
    /// What the user can do about it.
    pub fn hint_text(&self) -> Option<&'static str> {
        match self {
            OciError::Value(e) => Some(e.hint_text()),
            OciError::Tag { .. } => Some("give another with --tag, e.g. `--tag 1.0`"),
            OciError::Read { .. } | OciError::Special { .. } => {
                Some("point the flag at the host's file (--ca-certs FILE, --tzdata DIR)")
            }
            OciError::NoMarker { .. } | OciError::Architecture => None,
        }
    }
}

/// The layout's files, by path relative to its directory.
#[derive(Debug, Clone)]
pub struct Image {
    pub files: Vec<(String, Vec<u8>)>,
    /// `sha256:…` of the manifest: the image's identity.
    pub manifest_digest: String,
}

impl Image {
    pub fn new(spec: &ImageSpec<'_>) -> Result<Image, OciError> {
        check_name("user name", &spec.name)?;
        check_tag(&spec.tag)?;
        for (k, v) in &spec.environment {
            check_env_name(k)?;
            check_text("--environment", v)?;
        }
        for a in &spec.args {
            check_text("argument", a)?;
        }
        let exe_path = format!("/usr/bin/{}", spec.name);
        check_path("the executable's path", &exe_path)?;
        let architecture = architecture(spec.exe).ok_or(OciError::Architecture)?;
        let exec_mode = matches!(spec.kind, AppKind::Exec { .. });

        let mut layers = Vec::new();
        let mut history = Vec::new();

        let name = &spec.name;
        let mut base = Tree::default();
        base.file(
            "etc/passwd",
            0o644,
            0,
            format!(
                "root:x:0:0:root:/root:/sbin/nologin\n{name}:x:{UID}:{UID}:{name}:/nonexistent:/sbin/nologin\n"
            )
            .into_bytes(),
        );
        base.file(
            "etc/group",
            0o644,
            0,
            format!("root:x:0:\n{name}:x:{UID}:\n").into_bytes(),
        );
        base.dir("tmp", 0o1777, 0);
        base.file(&exe_path[1..], 0o555, 0, spec.exe.to_vec());
        if exec_mode {
            base.dir(&CACHE_DIR[1..], 0o700, UID);
        }
        layers.push(base.layer(spec.epoch));
        history.push("the executable, its user, /tmp");

        if spec.ca_certs.is_some() || spec.tzdata.is_some() {
            let mut host = Tree::default();
            if let Some(path) = &spec.ca_certs {
                host.copy(path, &CA_CERTS_PATH[1..], 0)?;
            }
            if let Some(path) = &spec.tzdata {
                host.copy(path, &TZDATA_PATH[1..], 0)?;
            }
            layers.push(host.layer(spec.epoch));
            history.push("the host's CA certificates and time zones");
        }

        if let Some((dir, digest)) = &spec.cache {
            let mut cache = Tree::default();
            cache.copy(dir, &CACHE_DIR[1..], UID)?;
            fix_marker(&mut cache, digest, spec.epoch)?;
            layers.push(cache.layer(spec.epoch));
            history.push("the exec-mode cache, filled");
        }

        let mut env = vec!["PATH=/usr/bin".to_owned()];
        if exec_mode {
            env.push(format!("WRAPKIT_CACHE_DIR={CACHE_DIR}"));
        }
        if spec.ca_certs.is_some() {
            env.push(format!("SSL_CERT_FILE={CA_CERTS_PATH}"));
        }
        env.extend(spec.environment.iter().map(|(k, v)| format!("{k}={v}")));

        let created = rfc3339(spec.epoch);
        let mut config = json!({
            "User": format!("{UID}:{UID}"),
            "Entrypoint": [exe_path],
            "Env": env,
            "WorkingDir": "/",
            "Labels": {
                "org.opencontainers.image.title": spec.app_name,
                "org.opencontainers.image.version": spec.app_version,
            },
        });
        if !spec.args.is_empty() {
            config["Cmd"] = json!(spec.args);
        }
        let config = canonical(&json!({
            "architecture": architecture,
            "os": "linux",
            "created": created,
            "config": config,
            "rootfs": {
                "type": "layers",
                "diff_ids": layers.iter().map(|l| l.diff_id.clone()).collect::<Vec<_>>(),
            },
            "history": history.iter().map(|h| json!({
                "created": created,
                "created_by": format!("wrapkit deploy oci: {h}"),
            })).collect::<Vec<_>>(),
        }));

        let mut files = Vec::new();
        let mut blob = |bytes: Vec<u8>| {
            let digest = sha256(&bytes);
            let descriptor = (digest.clone(), bytes.len());
            files.push((format!("blobs/sha256/{}", &digest[7..]), bytes));
            descriptor
        };
        let (config_digest, config_size) = blob(config);
        let layer_descriptors: Vec<Value> = layers
            .into_iter()
            .map(|l| {
                let (digest, size) = blob(l.gzip);
                json!({"mediaType": MEDIA_LAYER, "digest": digest, "size": size})
            })
            .collect();
        let manifest = canonical(&json!({
            "schemaVersion": 2,
            "mediaType": MEDIA_MANIFEST,
            "config": {"mediaType": MEDIA_CONFIG, "digest": config_digest, "size": config_size},
            "layers": layer_descriptors,
        }));
        let (manifest_digest, manifest_size) = blob(manifest);
        let index = canonical(&json!({
            "schemaVersion": 2,
            "mediaType": MEDIA_INDEX,
            "manifests": [{
                "mediaType": MEDIA_MANIFEST,
                "digest": manifest_digest,
                "size": manifest_size,
                "annotations": {"org.opencontainers.image.ref.name": spec.tag},
            }],
        }));
        files.sort();
        files.dedup_by(|a, b| a.0 == b.0);
        files.push(("index.json".into(), index));
        files.push((
            "oci-layout".into(),
            canonical(&json!({"imageLayoutVersion": "1.0.0"})),
        ));
        Ok(Image {
            files,
            manifest_digest,
        })
    }
}

/// A tag as the OCI distribution spec allows it: `[A-Za-z0-9_][A-Za-z0-9._-]{0,127}`.
fn check_tag(tag: &str) -> Result<(), OciError> {
    let ok = (1..=128).contains(&tag.len())
        && tag
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
        && !tag.starts_with(['.', '-']);
    if ok {
        Ok(())
    } else {
        Err(OciError::Tag {
            value: tag.escape_debug().to_string(),
        })
    }
}

/// The OCI name of the ELF machine the stub was built for.
fn architecture(exe: &[u8]) -> Option<&'static str> {
    if exe.get(..4)? != b"\x7fELF" {
        return None;
    }
    match u16::from_le_bytes([*exe.get(18)?, *exe.get(19)?]) {
        62 => Some("amd64"),
        183 => Some("arm64"),
        _ => None,
    }
}

/// The filled cache's marker records each directory's mtime after the fill, and a warm start
/// compares them with what it finds; in the image every directory has the epoch as its mtime
/// (seconds only: tar keeps no nanoseconds), so the marker must say so.
fn fix_marker(cache: &mut Tree, digest: &str, epoch: u64) -> Result<(), OciError> {
    use wrapkit_runtime::cache::marker::Marker;
    let name = format!(
        "{}/{}/{digest}.ok",
        &CACHE_DIR[1..],
        wrapkit_runtime::cache::BUNDLES_DIR
    );
    let no_marker = || OciError::NoMarker {
        digest: digest.to_owned(),
    };
    let Some(Node::File { data, .. }) = cache.nodes.get_mut(&name) else {
        return Err(no_marker());
    };
    let mut marker = std::str::from_utf8(data)
        .ok()
        .and_then(Marker::decode)
        .ok_or_else(no_marker)?;
    for d in &mut marker.dirs {
        d.sec = epoch as i64;
        d.nsec = 0;
    }
    *data = marker.encode().into_bytes();
    Ok(())
}

/// One layer's entries by path (relative, no leading `/`): sorted, each parent before its
/// children because a path sorts before every path it is a prefix of.
#[derive(Default)]
struct Tree {
    nodes: BTreeMap<String, Node>,
}

enum Node {
    Dir { mode: u32, uid: u32 },
    File { mode: u32, uid: u32, data: Vec<u8> },
    Symlink { uid: u32, target: PathBuf },
}

/// A layer: its gzip blob and the digest of the tar inside (the config's `diff_ids`).
struct Layer {
    gzip: Vec<u8>,
    diff_id: String,
}

impl Tree {
    fn parents(&mut self, path: &str) {
        let mut at = 0;
        while let Some(i) = path[at..].find('/') {
            at += i;
            self.nodes
                .entry(path[..at].to_owned())
                .or_insert(Node::Dir {
                    mode: 0o755,
                    uid: 0,
                });
            at += 1;
        }
    }

    fn dir(&mut self, path: &str, mode: u32, uid: u32) {
        self.parents(path);
        self.nodes.insert(path.to_owned(), Node::Dir { mode, uid });
    }

    fn file(&mut self, path: &str, mode: u32, uid: u32, data: Vec<u8>) {
        self.parents(path);
        self.nodes
            .insert(path.to_owned(), Node::File { mode, uid, data });
    }

    /// `source` (a file or a directory tree; symlinks kept as they are) at `path`, owned by
    /// `uid`, with its permission bits.
    fn copy(&mut self, source: &Path, path: &str, uid: u32) -> Result<(), OciError> {
        use std::os::unix::fs::PermissionsExt;
        let read = |p: &Path| {
            let p = p.to_path_buf();
            move |source| OciError::Read { path: p, source }
        };
        for entry in walkdir::WalkDir::new(source).sort_by_file_name() {
            let entry = entry.map_err(|e| OciError::Read {
                path: e.path().unwrap_or(source).to_path_buf(),
                // The bare cause: the path is said once, above it.
                source: e
                    .into_io_error()
                    .unwrap_or_else(|| std::io::Error::other("a symlink loop")),
            })?;
            let rel = entry
                .path()
                .strip_prefix(source)
                .expect("walkdir stays beneath its root");
            let Some(rel) = rel.to_str() else {
                return Err(OciError::Special {
                    path: entry.path().to_path_buf(),
                });
            };
            let name = if rel.is_empty() {
                path.to_owned()
            } else {
                format!("{path}/{rel}")
            };
            let base = entry.file_name().to_string_lossy();
            // A fill in progress, or the lock of one: never part of a finished cache.
            if uid != 0 && (base.ends_with(".lock") || base.starts_with(".tmp-")) {
                continue;
            }
            let meta = entry.metadata().map_err(|e| OciError::Read {
                path: entry.path().to_path_buf(),
                source: e
                    .into_io_error()
                    .unwrap_or_else(|| std::io::Error::other("a symlink loop")),
            })?;
            let mode = meta.permissions().mode() & 0o7777;
            let ft = meta.file_type();
            if ft.is_dir() {
                self.dir(&name, mode, uid);
            } else if ft.is_file() {
                let data = std::fs::read(entry.path()).map_err(read(entry.path()))?;
                self.file(&name, mode, uid, data);
            } else if ft.is_symlink() {
                let target = std::fs::read_link(entry.path()).map_err(read(entry.path()))?;
                self.parents(&name);
                self.nodes.insert(name, Node::Symlink { uid, target });
            } else {
                return Err(OciError::Special {
                    path: entry.path().to_path_buf(),
                });
            }
        }
        Ok(())
    }

    /// The tar (GNU headers, long names as `././@LongLink`), then gzip without a name or time.
    fn layer(&self, epoch: u64) -> Layer {
        let mut tar = tar::Builder::new(Vec::new());
        for (path, node) in &self.nodes {
            let mut h = tar::Header::new_gnu();
            h.set_mtime(epoch);
            let (uid, mode) = match node {
                Node::Dir { mode, uid } => (*uid, *mode),
                Node::File { mode, uid, .. } => (*uid, *mode),
                Node::Symlink { uid, .. } => (*uid, 0o777),
            };
            h.set_uid(uid.into());
            h.set_gid(uid.into());
            h.set_mode(mode);
            // Writing into a Vec cannot fail but for a name or link tar cannot hold, which
            // the paths here (at most a cache tree's) never are.
            let written = match node {
                Node::Dir { .. } => {
                    h.set_entry_type(tar::EntryType::Directory);
                    h.set_size(0);
                    tar.append_data(&mut h, format!("{path}/"), std::io::empty())
                }
                Node::File { data, .. } => {
                    h.set_entry_type(tar::EntryType::Regular);
                    h.set_size(data.len() as u64);
                    tar.append_data(&mut h, path, data.as_slice())
                }
                Node::Symlink { target, .. } => {
                    h.set_entry_type(tar::EntryType::Symlink);
                    h.set_size(0);
                    tar.append_link(&mut h, path, target)
                }
            };
            written.expect("a layer entry is written into memory");
        }
        let tar = tar.into_inner().expect("a layer is written into memory");
        let diff_id = sha256(&tar);
        let mut gz =
            flate2::GzBuilder::new().write(Vec::with_capacity(tar.len() / 2), Default::default());
        gz.write_all(&tar).expect("gzip into memory");
        let gzip = gz.finish().expect("gzip into memory");
        Layer { gzip, diff_id }
    }
}

fn sha256(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    let mut out = String::with_capacity(71);
    out.push_str("sha256:");
    for b in digest {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

/// JSON with keys sorted at every level and no whitespace outside strings: the same value is
/// always the same bytes, whatever order it was built in or `serde_json`'s features.
fn canonical(value: &Value) -> Vec<u8> {
    fn write(v: &Value, out: &mut String) {
        match v {
            Value::Object(map) => {
                let mut keys: Vec<&String> = map.keys().collect();
                keys.sort();
                out.push('{');
                for (i, k) in keys.into_iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push_str(&Value::String(k.clone()).to_string());
                    out.push(':');
                    write(&map[k], out);
                }
                out.push('}');
            }
            Value::Array(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    write(item, out);
                }
                out.push(']');
            }
            other => out.push_str(&other.to_string()),
        }
    }
    let mut out = String::new();
    write(value, &mut out);
    out.into_bytes()
}

/// `seconds` since the epoch as RFC 3339 in UTC (the civil-from-days algorithm).
fn rfc3339(seconds: u64) -> String {
    let days = (seconds / 86_400) as i64;
    let rem = seconds % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_rfc3339_in_utc() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(315_532_800), "1980-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_709_251_199), "2024-02-29T23:59:59Z");
    }

    #[test]
    fn json_is_canonical_whatever_the_order_it_was_built_in() {
        let a = canonical(&json!({"b": [1, {"y": 2, "x": "é\n"}], "a": null}));
        assert_eq!(
            String::from_utf8(a).unwrap(),
            r#"{"a":null,"b":[1,{"x":"é\n","y":2}]}"#
        );
    }

    #[test]
    fn tags_follow_the_distribution_spec() {
        for ok in ["latest", "1.0", "v1_2-rc.3", "_x"] {
            assert!(check_tag(ok).is_ok(), "{ok}");
        }
        for bad in ["", ".x", "-x", "a/b", "a:b", "1.0+build", &"x".repeat(129)] {
            assert!(check_tag(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn every_parent_comes_before_its_children() {
        let mut t = Tree::default();
        t.file("usr/bin/app", 0o555, 0, vec![]);
        t.dir("usr-x", 0o755, 0);
        t.file("usr.d/a", 0o644, 0, vec![]);
        let order: Vec<&str> = t.nodes.keys().map(String::as_str).collect();
        assert_eq!(
            order,
            ["usr", "usr-x", "usr.d", "usr.d/a", "usr/bin", "usr/bin/app"]
        );
    }
}
