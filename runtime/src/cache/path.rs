//! Opening the cache directory so that nobody but root and this user can redirect it.
//!
//! The cache holds programs we are about to `execve`, so whoever can change any directory on
//! the way to it can make us run their code: swap a parent for a symlink or another tree
//! between our check and our use (`renameat2(RENAME_EXCHANGE)` in a loop does it in about a
//! second). [`open_checked`] therefore walks the path from `/` one component at a time through
//! directory handles (`O_PATH | O_NOFOLLOW`) and checks every directory on the way as it is
//! opened, before anything beneath it is created:
//!
//! - each must belong to root or to us (another user could rename what is in it);
//! - none may be writable by group or others unless it is sticky (`/tmp`), where others can
//!   add entries but not rename or remove ours;
//! - symlinks on the way (`/home -> /data/home`) are followed like the kernel would, at most
//!   40, but only where they stand in such a directory and belong to root or us;
//! - the cache directory itself may not be a symlink, must belong to us and be writable by
//!   nobody else.
//!
//! Once that holds for every component, the path names the same directory for as long as
//! root and we leave it alone: a path handed on afterwards (`WRAPKIT_ROOT`, the program's path
//! for `execve`, which must stay an honest path for `#!` scripts and `argv[0]`) cannot be
//! redirected by anyone else. Everything the cache itself does goes through the handle.

use std::ffi::OsStr;
use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use rustix::fs::{self as rfs, AtFlags, FileType, Mode, OFlags};

use super::CacheError;
use crate::beneath::Dir;

/// Symlinks one walk may follow, as Linux's `MAXSYMLINKS`.
const MAX_LINKS: u32 = 40;

/// Opens the cache directory `path` (absolute), creating missing components with mode 0700
/// when `create`; `Ok(None)` when it does not exist and `create` is false.
pub(super) fn open_checked(path: &Path, create: bool) -> Result<Option<Dir>, CacheError> {
    let io_err = |what: &'static str, at: &Path| {
        let path = at.to_path_buf();
        move |source: io::Error| CacheError::Io { what, path, source }
    };
    if !path.is_absolute() {
        return Err(CacheError::NotAbsolute {
            var: "the cache directory",
            value: path.to_path_buf(),
        });
    }
    let me = rustix::process::geteuid().as_raw();
    let step = OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let root = || rfs::open("/", step, Mode::empty()).map_err(io::Error::from);
    let mut dir: OwnedFd = root().map_err(io_err("open", Path::new("/")))?;
    let mut here = PathBuf::from("/");
    check_ancestor(&dir, &here, me)?;

    // Components still to walk, last first; a symlink's target is pushed on top.
    let mut pending: Vec<Vec<u8>> = components(path);
    let mut links = 0;
    while let Some(name) = pending.pop() {
        let last = pending.is_empty();
        let name = OsStr::from_bytes(&name);
        if name == ".." {
            dir = rfs::openat(&dir, "..", step, Mode::empty())
                .map_err(|e| io_err("open", &here)(e.into()))?;
            here.pop();
            check_ancestor(&dir, &here, me)?;
            continue;
        }
        let at = here.join(name);
        let st = match rfs::statat(&dir, name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => st,
            Err(rustix::io::Errno::NOENT) if create => {
                match rfs::mkdirat(&dir, name, Mode::from_raw_mode(0o700)) {
                    Ok(()) | Err(rustix::io::Errno::EXIST) => {}
                    Err(e) => {
                        return Err(CacheError::Create {
                            path: at,
                            source: e.into(),
                        });
                    }
                }
                pending.push(name.as_bytes().to_vec());
                continue;
            }
            Err(rustix::io::Errno::NOENT) => return Ok(None),
            Err(e) => return Err(io_err("inspect", &at)(e.into())),
        };
        if FileType::from_raw_mode(st.st_mode) == FileType::Symlink {
            if last {
                return Err(CacheError::Symlink { path: at });
            }
            if st.st_uid != 0 && st.st_uid != me {
                return Err(CacheError::ForeignAncestor {
                    path: at,
                    owner: st.st_uid,
                });
            }
            links += 1;
            if links > MAX_LINKS {
                return Err(io_err("resolve", &at)(rustix::io::Errno::LOOP.into()));
            }
            let target = rfs::readlinkat(&dir, name, Vec::new())
                .map_err(|e| io_err("read the symlink", &at)(e.into()))?;
            let target = target.into_bytes();
            if target.first() == Some(&b'/') {
                dir = root().map_err(io_err("open", Path::new("/")))?;
                here = PathBuf::from("/");
            }
            pending.extend(components(Path::new(OsStr::from_bytes(&target))));
            continue;
        }
        if last {
            let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
            let fd = match crate::beneath::open_dir_at(&dir, name, flags) {
                Ok(fd) => fd,
                Err(e) if crate::beneath::is_symlink_in_the_way(&e) => {
                    return Err(CacheError::Symlink { path: at });
                }
                Err(e) if e.kind() == io::ErrorKind::NotADirectory => {
                    return Err(CacheError::NotADirectory { path: at });
                }
                Err(e) => return Err(io_err("open", &at)(e)),
            };
            let cache = Dir::from_fd(fd);
            check_private(&cache, &at)?;
            return Ok(Some(cache));
        }
        // A symlink swapped in since the statat above is refused here, not followed.
        dir = match crate::beneath::open_dir_at(&dir, name, step) {
            Ok(fd) => fd,
            Err(e) if e.kind() == io::ErrorKind::NotADirectory => {
                return Err(CacheError::Create {
                    path: path.to_path_buf(),
                    source: io::Error::new(
                        e.kind(),
                        format!("{} is not a directory", at.display()),
                    ),
                });
            }
            Err(e) => return Err(io_err("open", &at)(e)),
        };
        here = at;
        check_ancestor(&dir, &here, me)?;
    }
    // The path was `/` itself, or resolved to it.
    Err(io_err("use as the cache directory", &here)(
        io::Error::other("the root directory cannot be a cache"),
    ))
}

/// Opens `name` in the checked directory `parent` as a private directory of ours.
pub(super) fn open_private(parent: &Dir, name: &str, shown: &Path) -> Result<Dir, CacheError> {
    let dir = parent
        .open_dir(name)
        .map_err(|source| match source.kind() {
            _ if crate::beneath::is_symlink_in_the_way(&source) => CacheError::Symlink {
                path: shown.to_path_buf(),
            },
            io::ErrorKind::NotADirectory => CacheError::NotADirectory {
                path: shown.to_path_buf(),
            },
            _ => CacheError::Io {
                what: "open",
                path: shown.to_path_buf(),
                source,
            },
        })?;
    check_private(&dir, shown)?;
    Ok(dir)
}

/// A directory on the way to the cache: root's or ours, and if others may write it, sticky.
fn check_ancestor(dir: &OwnedFd, path: &Path, me: u32) -> Result<(), CacheError> {
    let st = rfs::fstat(dir).map_err(|e| CacheError::Io {
        what: "inspect",
        path: path.to_path_buf(),
        source: e.into(),
    })?;
    if st.st_uid != 0 && st.st_uid != me {
        return Err(CacheError::ForeignAncestor {
            path: path.to_path_buf(),
            owner: st.st_uid,
        });
    }
    let mode = st.st_mode & 0o7777;
    if mode & 0o022 != 0 && mode & 0o1000 == 0 {
        return Err(CacheError::UnsafeAncestor {
            path: path.to_path_buf(),
            mode,
        });
    }
    Ok(())
}

/// The cache directory and `bundles-v1`: ours, and writable by nobody else.
fn check_private(dir: &Dir, path: &Path) -> Result<(), CacheError> {
    let st = dir.metadata().map_err(|source| CacheError::Io {
        what: "inspect the cache directory",
        path: path.to_path_buf(),
        source,
    })?;
    let me = rustix::process::geteuid().as_raw();
    if st.st_uid != me {
        return Err(CacheError::ForeignOwner {
            path: path.to_path_buf(),
            owner: st.st_uid,
            me,
        });
    }
    if st.st_mode & 0o022 != 0 {
        return Err(CacheError::Writable {
            path: path.to_path_buf(),
            mode: st.st_mode & 0o7777,
        });
    }
    Ok(())
}

/// The components of `path` to walk, last first; `.` and the root dropped.
fn components(path: &Path) -> Vec<Vec<u8>> {
    let mut out: Vec<Vec<u8>> = path
        .components()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(n.as_bytes().to_vec()),
            Component::ParentDir => Some(b"..".to_vec()),
            Component::RootDir | Component::CurDir | Component::Prefix(_) => None,
        })
        .collect();
    out.reverse();
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{PermissionsExt, symlink};

    #[test]
    fn symlinked_parents_are_followed_but_the_cache_itself_may_not_be_one() {
        let tmp = tempfile::tempdir().unwrap();
        let real = tmp.path().join("real");
        std::fs::create_dir(&real).unwrap();
        std::fs::set_permissions(&real, std::fs::Permissions::from_mode(0o755)).unwrap();
        symlink("real", tmp.path().join("home")).unwrap();
        let cache = tmp.path().join("home/u/.cache/wrapkit");
        assert!(open_checked(&cache, true).unwrap().is_some());
        assert!(real.join("u/.cache/wrapkit").is_dir());
        symlink(real.join("u/.cache/wrapkit"), tmp.path().join("alias")).unwrap();
        assert!(matches!(
            open_checked(&tmp.path().join("alias"), true),
            Err(CacheError::Symlink { .. })
        ));
        assert!(
            open_checked(&tmp.path().join("missing"), false)
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn a_group_writable_parent_is_refused_before_anything_is_created() {
        let tmp = tempfile::tempdir().unwrap();
        let shared = tmp.path().join("shared");
        std::fs::create_dir(&shared).unwrap();
        std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o775)).unwrap();
        let err = open_checked(&shared.join("a/b"), true).unwrap_err();
        assert!(
            matches!(err, CacheError::UnsafeAncestor { mode: 0o775, .. }),
            "{err}"
        );
        assert!(!shared.join("a").exists());
    }
}
