//! The materialised cache: where exec mode (and Lua's `wrapkit.extract`) unpack an archive once
//! per content digest, safely, and find it again cheaply on every later start.
//!
//! ```text
//! $WRAPKIT_CACHE_DIR | $CACHE_DIRECTORY/wrapkit | $XDG_CACHE_HOME/wrapkit | $HOME/.cache/wrapkit
//!                                                                  owned by us, 0700
//!   CACHEDIR.TAG
//!   bundles-v1/
//!     <digest>/              the tree: the archive's files, plus .wrapkit/{index,manifest.json}
//!     <digest>.ok            the marker, written last (see [`marker`])
//!     <digest>.lock          flock taken by whoever fills, repairs or removes the tree
//!     .tmp-<digest>-<pid>/   a fill in progress (or the remains of a killed one)
//! ```
//!
//! The digest is the payload's BLAKE3 from its trailer, checked against the bytes when the tree
//! is filled, so a tree's name is its content. [`Cache::open`] refuses a cache directory that is
//! a symlink, belongs to another user or is writable by others, and one on a path that anyone
//! but root and this user could change (see [`path`]); it opens `bundles-v1/` once, and every
//! later step (marker, lock, tree, fill, rename) works relative to that handle
//! ([`crate::beneath::Dir`]), so nothing is looked up by path twice. A privileged process
//! (setuid, setgid, file capabilities) has no cache: see [`crate::environ`]. [`Cache::materialise`] is the
//! protocol: a warm start reads the marker and `lstat`s every entry of the index against the
//! tree (sizes, types, the execute bit) and never re-hashes anything; otherwise it locks, checks
//! again, validates the archive, extracts it into a temp dir in the cache, syncs, renames the
//! tree into place (swapping out a damaged one atomically) and writes the marker last. A process
//! killed at any point leaves either no marker or a complete tree. `docs/cache.md` says the same
//! for users.

mod fill;
mod layer;
mod lock;
mod manage;
pub mod marker;
mod path;
mod trace;

use std::ffi::OsString;
use std::io::{self, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

pub use fill::{Materialised, Outcome};
pub use manage::{Bundle, Damage, Removal, digest_of};
pub use trace::{ENV_DEBUG, Trace};

use crate::beneath::Dir;
use crate::extract::ExtractError;
use crate::format::FormatError;
use crate::{environ, exit};

/// The override for the cache location, and the only environment variable besides
/// [`ENV_SYSTEMD_CACHE`], `XDG_CACHE_HOME` and `HOME` the cache reads.
pub const ENV_CACHE_DIR: &str = "WRAPKIT_CACHE_DIR";
/// What systemd sets for a unit with `CacheDirectory=`: the absolute paths of its cache
/// directories, `:`-separated (`/var/cache/NAME`; with `DynamicUser=` a root-owned symlink to
/// `private/NAME`, which the walk in [`path`] follows as any root-owned link on the way).
pub const ENV_SYSTEMD_CACHE: &str = "CACHE_DIRECTORY";
/// The versioned directory holding the trees. A layout change gets a new name; old runtimes
/// keep using their own.
pub const BUNDLES_DIR: &str = "bundles-v1";
/// The versioned directory holding the shared layer trees.
pub const LAYERS_DIR: &str = "layers-v1";

const CACHEDIR_TAG: &str = "Signature: 8a477f597d28d172789f06886806bc55\n\
# This directory is a cache created by wrapkit (exec mode).\n\
# For information about cache directory tags see https://bford.info/cachedir/\n";

/// Where a cache location came from, for messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// `$WRAPKIT_CACHE_DIR`.
    Override,
    /// `$CACHE_DIRECTORY/wrapkit`: systemd's `CacheDirectory=` for the unit.
    Systemd,
    /// `$XDG_CACHE_HOME/wrapkit`.
    Xdg,
    /// `$HOME/.cache/wrapkit`.
    Home,
    /// Given on a command line.
    Explicit,
}

/// The cache's root directory and where that choice came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    pub path: PathBuf,
    pub origin: Origin,
}

impl Location {
    /// `$WRAPKIT_CACHE_DIR`, else `$CACHE_DIRECTORY/wrapkit` (under systemd), else
    /// `$XDG_CACHE_HOME/wrapkit`, else `$HOME/.cache/wrapkit`; none at all in a privileged
    /// process, whose environment is its caller's.
    pub fn from_env() -> Result<Location, CacheError> {
        if environ::privileged() {
            return Err(CacheError::Privileged);
        }
        Location::from_vars(environ::var)
    }

    /// As [`Location::from_env`], reading variables through `get`. Empty values count as unset;
    /// a relative `XDG_CACHE_HOME` is ignored, as the XDG spec says; a relative
    /// `WRAPKIT_CACHE_DIR`, `CACHE_DIRECTORY` or `HOME` is an error rather than a directory
    /// that moves with the working directory. `CACHE_DIRECTORY` may list several directories
    /// (`CacheDirectory=a b`); the first is used. The cache goes in a `wrapkit` directory
    /// beneath it, as beneath `XDG_CACHE_HOME`: the unit's cache is the app's too, and the
    /// `DynamicUser=` symlink `/var/cache/NAME -> private/NAME` is then a parent, never the
    /// cache directory itself, so no new trust rule is needed for it.
    pub fn from_vars(get: impl Fn(&str) -> Option<OsString>) -> Result<Location, CacheError> {
        let var = |k: &str| get(k).filter(|v| !v.is_empty()).map(PathBuf::from);
        if let Some(path) = var(ENV_CACHE_DIR) {
            if !path.is_absolute() {
                return Err(CacheError::NotAbsolute {
                    var: ENV_CACHE_DIR,
                    value: path,
                });
            }
            return Ok(Location {
                path,
                origin: Origin::Override,
            });
        }
        if let Some(list) = var(ENV_SYSTEMD_CACHE) {
            let first = list
                .as_os_str()
                .as_bytes()
                .split(|&b| b == b':')
                .next()
                .unwrap_or_default();
            let first = PathBuf::from(std::ffi::OsStr::from_bytes(first));
            if !first.is_absolute() {
                return Err(CacheError::NotAbsolute {
                    var: ENV_SYSTEMD_CACHE,
                    value: first,
                });
            }
            return Ok(Location {
                path: first.join("wrapkit"),
                origin: Origin::Systemd,
            });
        }
        if let Some(xdg) = var("XDG_CACHE_HOME").filter(|p| p.is_absolute()) {
            return Ok(Location {
                path: xdg.join("wrapkit"),
                origin: Origin::Xdg,
            });
        }
        match var("HOME") {
            Some(home) if home.is_absolute() => Ok(Location {
                path: home.join(".cache").join("wrapkit"),
                origin: Origin::Home,
            }),
            Some(home) => Err(CacheError::NotAbsolute {
                var: "HOME",
                value: home,
            }),
            None => Err(CacheError::NoLocation),
        }
    }

    pub fn explicit(path: PathBuf) -> Location {
        Location {
            path,
            origin: Origin::Explicit,
        }
    }
}

/// An opened, checked cache directory.
#[derive(Debug)]
pub struct Cache {
    root: PathBuf,
    bundles_path: PathBuf,
    /// `bundles-v1/`, opened once: every later operation is relative to it.
    bundles: Dir,
    layers_path: PathBuf,
    /// `layers-v1/`, the same way.
    layers: Dir,
}

impl Cache {
    /// Opens the cache at `location`, creating it (mode 0700) if needed, and checks that it and
    /// its `bundles-v1` directory are real directories owned by us and writable by nobody else,
    /// on a path nobody but root and us can change.
    pub fn open(location: &Location) -> Result<Cache, CacheError> {
        let root_dir = path::open_checked(&location.path, true)?
            .expect("open_checked creates what is missing");
        // Cosmetic (backup tools skip tagged directories): a read-only cache still works.
        if let Ok(mut tag) = root_dir.create_file("CACHEDIR.TAG", 0o644) {
            let _ = tag.write_all(CACHEDIR_TAG.as_bytes());
        }
        let mut opened = Vec::with_capacity(2);
        for name in [BUNDLES_DIR, LAYERS_DIR] {
            let path = location.path.join(name);
            match root_dir.create_dir(name, 0o700) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                Err(source) => return Err(CacheError::Create { path, source }),
            }
            opened.push((path::open_private(&root_dir, name, &path)?, path));
        }
        let (layers, layers_path) = opened.pop().expect("two were opened");
        let (bundles, bundles_path) = opened.pop().expect("two were opened");
        Ok(Cache {
            root: location.path.clone(),
            bundles_path,
            bundles,
            layers_path,
            layers,
        })
    }

    /// Opens an existing cache without creating anything; `None` if there is none.
    pub fn open_existing(location: &Location) -> Result<Option<Cache>, CacheError> {
        let Some(root_dir) = path::open_checked(&location.path, false)? else {
            return Ok(None);
        };
        let bundles_path = location.path.join(BUNDLES_DIR);
        match root_dir.stat(BUNDLES_DIR) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            _ => {}
        }
        let bundles = path::open_private(&root_dir, BUNDLES_DIR, &bundles_path)?;
        // Caches filled before layers existed have no layers-v1: made here, empty, so that
        // every command sees the same layout (a read-only cache simply has none to list).
        let layers_path = location.path.join(LAYERS_DIR);
        let _ = root_dir.create_dir(LAYERS_DIR, 0o700);
        let layers = path::open_private(&root_dir, LAYERS_DIR, &layers_path)?;
        Ok(Some(Cache {
            root: location.path.clone(),
            bundles_path,
            bundles,
            layers_path,
            layers,
        }))
    }

    /// The cache's root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The directory holding the trees (`<root>/bundles-v1`).
    pub fn bundles_dir(&self) -> &Path {
        &self.bundles_path
    }

    /// Where the tree for `digest` (lowercase hex) lives, complete or not.
    pub fn tree_path(&self, digest: &str) -> PathBuf {
        self.bundles_path.join(digest)
    }

    fn marker_name(digest: &str) -> String {
        format!("{digest}.ok")
    }

    fn lock_name(digest: &str) -> String {
        format!("{digest}.lock")
    }
}

/// The tree for `archive` in the cache the environment names, materialised if needed: what
/// Lua's `wrapkit.extract` uses. `exe` is the packed file.
pub fn materialise_from_env(
    archive: &crate::archive::Archive<'_>,
    exe: &Path,
) -> Result<PathBuf, CacheError> {
    let trace = Trace::from_env();
    let cache = Cache::open(&Location::from_env()?)?;
    Ok(cache.materialise(archive, exe, &trace)?.root)
}

/// Everything that can stop the cache from giving a usable tree. Each names the path it is
/// about; [`CacheError::hint`] says what to do, [`CacheError::exit_code`] which code it is.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error(
        "no cache directory to run from: HOME is not set, and neither is {ENV_CACHE_DIR}, {ENV_SYSTEMD_CACHE} nor XDG_CACHE_HOME"
    )]
    NoLocation,
    #[error(
        "refusing to run from a cache in a privileged process (setuid, setgid or file capabilities): its environment, and so the cache location, belongs to the user who started it"
    )]
    Privileged,
    #[error("{} is writable by other users (mode {mode:04o}) and not sticky, so they could swap the cache for their own files; refusing to use a cache beneath it", path.display())]
    UnsafeAncestor { path: PathBuf, mode: u32 },
    #[error("{} belongs to user {owner}, who could swap the cache for their own files; refusing to use a cache beneath it", path.display())]
    ForeignAncestor { path: PathBuf, owner: u32 },
    #[error("{var}=`{}` is not an absolute path", value.display())]
    NotAbsolute { var: &'static str, value: PathBuf },
    #[error("cannot create the cache directory {}", path.display())]
    Create {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("the cache directory {} is a symlink; refusing to use it", path.display())]
    Symlink { path: PathBuf },
    #[error("the cache directory {} is not a directory", path.display())]
    NotADirectory { path: PathBuf },
    #[error("the cache directory {} belongs to user {owner}, not to this user ({me}); refusing to use it", path.display())]
    ForeignOwner { path: PathBuf, owner: u32, me: u32 },
    #[error("the cache directory {} is writable by other users (mode {mode:04o}); refusing to use it", path.display())]
    Writable { path: PathBuf, mode: u32 },
    #[error("the cache directory {} is on a filesystem mounted `noexec`: programs in it cannot run", path.display())]
    NoExec { path: PathBuf },
    #[error("no space left on the device holding {} ({needed} bytes needed)", path.display())]
    NoSpace { path: PathBuf, needed: u64 },
    #[error(
        "the payload's contents do not match the digest in its trailer (expected {expected}, found {found})"
    )]
    DigestMismatch { expected: String, found: String },
    #[error(transparent)]
    Payload(#[from] FormatError),
    #[error("cannot materialise the app into {}", path.display())]
    Extract {
        path: PathBuf,
        #[source]
        source: ExtractError,
    },
    #[error("cannot {what} {}", path.display())]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

impl crate::report::Hinted for CacheError {
    fn hint(&self) -> Option<String> {
        self.hint_text().map(str::to_owned)
    }
}

impl CacheError {
    /// What the user can do about it.
    fn hint_text(&self) -> Option<&'static str> {
        if let CacheError::Io { source, .. } = self
            && source.raw_os_error() == Some(rustix::io::Errno::NAMETOOLONG.raw_os_error())
        {
            return Some(
                "a path in the cache is too long for this filesystem: set WRAPKIT_CACHE_DIR to a shorter directory",
            );
        }
        if let CacheError::Extract { source, .. } = self
            && let Some(e) = source.io_error()
            && e.raw_os_error() == Some(rustix::io::Errno::NAMETOOLONG.raw_os_error())
        {
            return Some(
                "a path in the cache is too long for this filesystem: set WRAPKIT_CACHE_DIR to a shorter directory",
            );
        }
        Some(match self {
            CacheError::NoLocation | CacheError::NotAbsolute { .. } => {
                "set WRAPKIT_CACHE_DIR to an absolute path of a directory this user owns (in a systemd unit, CacheDirectory=NAME is enough: it sets CACHE_DIRECTORY)"
            }
            CacheError::Create { .. } | CacheError::NotADirectory { .. } => {
                "set WRAPKIT_CACHE_DIR to a writable directory this user owns"
            }
            CacheError::Privileged => {
                "install the file without the setuid or setgid bit and without file capabilities; to run it as another user, use sudo, runuser or a systemd unit with User="
            }
            CacheError::Symlink { .. } => {
                "set WRAPKIT_CACHE_DIR to a private directory this user owns (mode 0700), not a symlink; in a systemd unit, drop it: CacheDirectory=NAME is found through CACHE_DIRECTORY, DynamicUser= too"
            }
            CacheError::ForeignOwner { .. } | CacheError::Writable { .. } => {
                "set WRAPKIT_CACHE_DIR to a private directory this user owns (mode 0700), or fix this one"
            }
            CacheError::UnsafeAncestor { .. } | CacheError::ForeignAncestor { .. } => {
                "set WRAPKIT_CACHE_DIR to a directory whose parents only root and this user can write (a sticky directory such as /tmp is fine)"
            }
            CacheError::NoExec { .. } => {
                "set WRAPKIT_CACHE_DIR to a directory on a filesystem mounted without `noexec` (hardened systems mount /tmp and /dev/shm noexec)"
            }
            CacheError::NoSpace { .. } => {
                "free some space there, or set WRAPKIT_CACHE_DIR to a directory on a filesystem with room"
            }
            CacheError::Payload(e) => e.hint_text(),
            CacheError::DigestMismatch { .. } => {
                "the file is corrupt; `wrapkit verify` shows where. Pack the app again"
            }
            CacheError::Extract { source, .. } if source.io_error().is_none() => {
                "the file is corrupt; `wrapkit verify` shows where. Pack the app again"
            }
            CacheError::Extract { .. } | CacheError::Io { .. } => {
                "check the cache directory, or set WRAPKIT_CACHE_DIR to another one"
            }
        })
    }

    /// The packed executable's exit code for this failure (docs/cli.md, "Exit codes").
    pub fn exit_code(&self) -> u8 {
        match self {
            CacheError::Payload(e) => e.exit_code(),
            CacheError::DigestMismatch { .. } => exit::BAD_PAYLOAD,
            CacheError::Extract { source, .. } if source.io_error().is_none() => exit::BAD_PAYLOAD,
            _ => exit::CACHE,
        }
    }
}

/// The message of an error and all its causes, `: `-separated, for one `error:` line.
pub fn chain(err: &dyn std::error::Error) -> String {
    let mut out = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.ends_with(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn locate(vars: &[(&str, &str)]) -> Result<Location, CacheError> {
        Location::from_vars(|k| {
            vars.iter()
                .find(|(name, _)| *name == k)
                .map(|(_, v)| OsString::from(v))
        })
    }

    #[test]
    fn location_follows_the_documented_order() {
        let all = [
            ("WRAPKIT_CACHE_DIR", "/w"),
            ("XDG_CACHE_HOME", "/x"),
            ("HOME", "/h"),
        ];
        assert_eq!(locate(&all).unwrap().path, Path::new("/w"));
        assert_eq!(locate(&all[1..]).unwrap().path, Path::new("/x/wrapkit"));
        assert_eq!(
            locate(&all[2..]).unwrap().path,
            Path::new("/h/.cache/wrapkit")
        );
        // Empty means unset; a relative XDG_CACHE_HOME is ignored.
        let odd = [
            ("WRAPKIT_CACHE_DIR", ""),
            ("XDG_CACHE_HOME", "rel"),
            ("HOME", "/h"),
        ];
        assert_eq!(locate(&odd).unwrap().origin, Origin::Home);
        assert!(matches!(locate(&[]), Err(CacheError::NoLocation)));
        assert!(matches!(
            locate(&[("WRAPKIT_CACHE_DIR", "rel")]),
            Err(CacheError::NotAbsolute { .. })
        ));
    }

    #[test]
    fn systemds_cache_directory_comes_after_the_override_and_before_xdg_and_home() {
        let unit = [
            ("CACHE_DIRECTORY", "/var/cache/app"),
            ("XDG_CACHE_HOME", "/x"),
            ("HOME", "/"),
        ];
        let loc = locate(&unit).unwrap();
        assert_eq!(loc.path, Path::new("/var/cache/app/wrapkit"));
        assert_eq!(loc.origin, Origin::Systemd);
        // The override still wins.
        let both = [("WRAPKIT_CACHE_DIR", "/w"), unit[0]];
        assert_eq!(locate(&both).unwrap().origin, Origin::Override);
        // `CacheDirectory=a b/c` lists both; the first is the cache.
        let several = [("CACHE_DIRECTORY", "/var/cache/a:/var/cache/b/c")];
        assert_eq!(
            locate(&several).unwrap().path,
            Path::new("/var/cache/a/wrapkit")
        );
        // Empty is unset; a relative first entry is an error, not a path that moves.
        let empty = [("CACHE_DIRECTORY", ""), ("HOME", "/h")];
        assert_eq!(locate(&empty).unwrap().origin, Origin::Home);
        for bad in ["rel", ":/var/cache/a", "rel:/var/cache/a"] {
            assert!(
                matches!(
                    locate(&[("CACHE_DIRECTORY", bad)]),
                    Err(CacheError::NotAbsolute {
                        var: "CACHE_DIRECTORY",
                        ..
                    })
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn open_creates_a_private_tagged_cache_and_refuses_unsafe_ones() {
        let dir = tempfile::tempdir().unwrap();
        let loc = Location::explicit(dir.path().join("a/b"));
        let cache = Cache::open(&loc).unwrap();
        let meta = std::fs::metadata(cache.root()).unwrap();
        assert_eq!(std::os::unix::fs::MetadataExt::mode(&meta) & 0o777, 0o700);
        assert!(cache.root().join("CACHEDIR.TAG").is_file());
        assert!(cache.bundles_dir().is_dir());

        let link = dir.path().join("link");
        std::os::unix::fs::symlink(cache.root(), &link).unwrap();
        assert!(matches!(
            Cache::open(&Location::explicit(link)),
            Err(CacheError::Symlink { .. })
        ));

        let open = dir.path().join("open");
        std::fs::create_dir(&open).unwrap();
        std::fs::set_permissions(&open, std::os::unix::fs::PermissionsExt::from_mode(0o777))
            .unwrap();
        assert!(matches!(
            Cache::open(&Location::explicit(open.clone())),
            Err(CacheError::Writable { mode: 0o777, .. })
        ));
        // Beneath a directory others can write (and not sticky): refused, even though the
        // cache itself would be private.
        assert!(matches!(
            Cache::open(&Location::explicit(open.join("cache"))),
            Err(CacheError::UnsafeAncestor { mode: 0o777, .. })
        ));
        assert!(!open.join("cache").exists());
        // Sticky is fine (/tmp).
        std::fs::set_permissions(&open, std::os::unix::fs::PermissionsExt::from_mode(0o1777))
            .unwrap();
        assert!(Cache::open(&Location::explicit(open.join("cache"))).is_ok());
    }
}
