//! A systemd portable service image holding a packed executable: a directory tree that
//! `portablectl attach` mounts as the service's root (docs/deploy.md, "Portable services").
//!
//! A packed file needs nothing from the image but itself, so the image is the executable, the
//! unit, the `os-release` that makes a tree an image, and the empty files and directories
//! systemd mounts over: no libraries, no shell, no package manager. The unit is the one
//! `wrapkit deploy systemd` writes, with `DynamicUser=yes` (an image cannot declare a user on
//! the host; `--profile=strict` sets it too) and without `RootDirectory=` (portablectl sets the
//! root itself).

use super::systemd::{DeployError, Service, ServiceSpec, User};

/// One thing in the image, by path relative to its root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Node {
    Dir,
    File { bytes: Vec<u8>, mode: u32 },
}

/// The image's entries, parents before children.
#[derive(Debug, Clone)]
pub struct Image {
    pub entries: Vec<(String, Node)>,
}

/// Directories systemd mounts the API filesystems, the service's own directories and `/tmp`
/// over: a read-only image cannot have them made at attach time.
const MOUNT_POINTS: &[&str] = &[
    "dev",
    "proc",
    "run",
    "sys",
    "tmp",
    "var",
    "var/cache",
    "var/lib",
    "var/log",
    "var/tmp",
];

impl Image {
    /// `spec` is the service (its user and root are set here); `exe` the packed file's bytes.
    pub fn new(spec: &ServiceSpec, exe: Vec<u8>) -> Result<Image, DeployError> {
        let spec = ServiceSpec {
            user: User::Dynamic,
            empty_root: false,
            exec_path: format!("/usr/bin/{}", spec.name),
            ..spec.clone()
        };
        let service = Service::new(&spec)?;
        let (_, unit) = service
            .files
            .into_iter()
            .find(|(path, _)| path.ends_with(".service"))
            .expect("a service always has its unit");
        let name = &spec.name;
        let mut entries: Vec<(String, Node)> = Vec::new();
        let mut dir = |path: &str| entries.push((path.to_owned(), Node::Dir));
        for d in ["etc", "usr", "usr/bin", "usr/lib", "usr/lib/systemd"] {
            dir(d);
        }
        dir("usr/lib/systemd/system");
        for d in MOUNT_POINTS {
            dir(d);
        }
        let file = |bytes: Vec<u8>, mode| Node::File { bytes, mode };
        entries.push(("etc/machine-id".into(), file(Vec::new(), 0o444)));
        entries.push(("etc/resolv.conf".into(), file(Vec::new(), 0o444)));
        entries.push((format!("usr/bin/{name}"), file(exe, 0o555)));
        entries.push(("usr/lib/os-release".into(), file(os_release(&spec), 0o444)));
        entries.push((
            format!("usr/lib/systemd/system/{name}.service"),
            file(unit.into_bytes(), 0o444),
        ));
        entries.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(Image { entries })
    }
}

/// What makes a tree a portable image: `portablectl` reads `ID` and `PORTABLE_PREFIXES` (the
/// unit names it may attach). Values are checked by [`Service::new`] (name) and are quoted.
fn os_release(spec: &ServiceSpec) -> Vec<u8> {
    let quote = |s: &str| s.replace('\\', "\\\\").replace('"', "\\\"");
    format!(
        "ID=wrapkit\nNAME=\"{app} (wrapkit portable service)\"\nPORTABLE_PRETTY_NAME=\"{app} {version}\"\nPORTABLE_PREFIXES={name}\n",
        app = quote(&spec.app_name),
        version = quote(&spec.app_version),
        name = spec.name,
    )
    .into_bytes()
}
