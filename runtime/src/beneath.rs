//! Directory handles, and file operations beneath them that never follow a symlink.
//!
//! Everything wrapkit writes from an archive (`extract`, the cache fill, `unpack`'s config file)
//! and everything the cache reads back goes through a [`Dir`]: a directory opened once, then
//! named relative to itself. A relative name is resolved by the kernel with `openat2(2)` and
//! `RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS`, so no component — not only the last — may be a
//! symlink and nothing can climb out; where `openat2` is missing (Linux before 5.6, or a seccomp
//! filter that refuses it) the same is done one component at a time with `O_NOFOLLOW`. Swapping
//! a directory for a symlink after we opened it changes nothing: the path is never looked up
//! again. Files are opened `O_NONBLOCK` and their type checked before use, so a FIFO or device
//! planted where a file should be never blocks us.
//!
//! The names given here are the archive's (already validated) or wrapkit's own: relative, with
//! no `..` component. A name that is absolute or has one is refused all the same.

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStringExt;
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use rustix::fs::{self as rfs, AtFlags, FileType, Mode, OFlags, ResolveFlags};

/// What a name resolves to, without following it.
pub type Stat = rfs::Stat;

/// An open directory. Operations take names relative to it.
#[derive(Debug)]
pub struct Dir {
    fd: OwnedFd,
}

/// Set once `openat2` has answered `ENOSYS`: from then on, walk one component at a time.
static NO_OPENAT2: AtomicBool = AtomicBool::new(false);

const DIR_FLAGS: OFlags = OFlags::RDONLY
    .union(OFlags::DIRECTORY)
    .union(OFlags::NOFOLLOW)
    .union(OFlags::CLOEXEC);

impl Dir {
    /// Opens the existing directory `path`. Its earlier components are the caller's and are
    /// followed as usual, but the directory itself may not be a symlink, also when `path` is
    /// written `link/` or `link/.` (which `lstat` would follow).
    pub fn open(path: &Path) -> io::Result<Dir> {
        let (parent, last) = split_last(path);
        let Some(last) = last else {
            let fd = rfs::open(path, DIR_FLAGS.difference(OFlags::NOFOLLOW), Mode::empty())?;
            return Ok(Dir { fd });
        };
        let parent = rfs::open(
            &parent,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        let fd = open_dir_at(&parent, last, DIR_FLAGS)?;
        Ok(Dir { fd })
    }

    /// Opens the directory `path`, creating its last component (with `mode`) if it does not
    /// exist. Returns whether it was created. The last component may not be a symlink.
    pub fn open_or_create(path: &Path, mode: u32) -> io::Result<(Dir, bool)> {
        let (parent, last) = split_last(path);
        let Some(last) = last else {
            return Ok((Dir::open(path)?, false));
        };
        let parent = Dir {
            fd: rfs::open(
                &parent,
                OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
                Mode::empty(),
            )?,
        };
        let created = match rfs::mkdirat(&parent.fd, last, Mode::from_raw_mode(mode)) {
            Ok(()) => true,
            Err(rustix::io::Errno::EXIST) => false,
            Err(e) => return Err(e.into()),
        };
        let fd = open_dir_at(&parent.fd, last, DIR_FLAGS)?;
        Ok((Dir { fd }, created))
    }

    /// Wraps an open directory descriptor.
    pub(crate) fn from_fd(fd: OwnedFd) -> Dir {
        Dir { fd }
    }

    /// Opens the directory `rel` beneath this one.
    pub fn open_dir(&self, rel: &str) -> io::Result<Dir> {
        let fd = self.resolve(rel, DIR_FLAGS, 0)?;
        Ok(Dir { fd })
    }

    /// Creates the file `rel` (it must not exist) for writing, with permission bits `mode`
    /// (less the umask).
    pub fn create_file(&self, rel: &str, mode: u32) -> io::Result<File> {
        let flags = OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::CLOEXEC;
        Ok(File::from(self.resolve(rel, flags, mode)?))
    }

    /// Opens the regular file `rel` for reading. A FIFO, device, socket, directory or symlink
    /// there is an error, found without blocking.
    pub fn open_file(&self, rel: &str) -> io::Result<File> {
        self.open_regular(rel, OFlags::RDONLY, 0)
    }

    /// Opens `rel` with `flags` (plus `O_NONBLOCK | O_NOFOLLOW | O_CLOEXEC`), creating it with
    /// `mode` when `flags` has `O_CREAT`, and checks that it is a regular file.
    pub fn open_regular(&self, rel: &str, flags: OFlags, mode: u32) -> io::Result<File> {
        let fd = self.resolve(rel, flags | OFlags::NONBLOCK | OFlags::CLOEXEC, mode)?;
        check_regular(&fd)?;
        // Regular files ignore O_NONBLOCK, so leaving it set changes nothing.
        Ok(File::from(fd))
    }

    /// Reads the regular file `rel`, refusing one over `limit` bytes.
    pub fn read(&self, rel: &str, limit: u64) -> io::Result<Vec<u8>> {
        let file = self.open_file(rel)?;
        let mut out = Vec::new();
        file.take(limit + 1).read_to_end(&mut out)?;
        if out.len() as u64 > limit {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{rel} is larger than {limit} bytes"),
            ));
        }
        Ok(out)
    }

    /// Creates the directory `rel` with `mode` (less the umask).
    pub fn create_dir(&self, rel: &str, mode: u32) -> io::Result<()> {
        let (parent, last) = self.parent(rel)?;
        rfs::mkdirat(parent.as_fd(), last, Mode::from_raw_mode(mode))?;
        Ok(())
    }

    /// Creates the symlink `rel` pointing to `target`.
    pub fn symlink(&self, rel: &str, target: &OsStr) -> io::Result<()> {
        let (parent, last) = self.parent(rel)?;
        rfs::symlinkat(target, parent.as_fd(), last)?;
        Ok(())
    }

    /// What `rel` is, without following it if it is a symlink.
    pub fn stat(&self, rel: &str) -> io::Result<Stat> {
        let (parent, last) = self.parent(rel)?;
        Ok(rfs::statat(
            parent.as_fd(),
            last,
            AtFlags::SYMLINK_NOFOLLOW,
        )?)
    }

    /// `stat` of this directory itself.
    pub fn metadata(&self) -> io::Result<Stat> {
        Ok(rfs::fstat(&self.fd)?)
    }

    /// The target of the symlink `rel`.
    pub fn read_link(&self, rel: &str) -> io::Result<OsString> {
        let (parent, last) = self.parent(rel)?;
        let target = rfs::readlinkat(parent.as_fd(), last, Vec::new())?;
        Ok(OsString::from_vec(target.into_bytes()))
    }

    /// Removes the file or symlink `rel`.
    pub fn remove_file(&self, rel: &str) -> io::Result<()> {
        let (parent, last) = self.parent(rel)?;
        rfs::unlinkat(parent.as_fd(), last, AtFlags::empty())?;
        Ok(())
    }

    /// Removes `rel` and, if it is a directory, everything in it; links are removed, never
    /// followed. A missing `rel` is not an error.
    pub fn remove_all(&self, rel: &str) -> io::Result<()> {
        let st = match self.stat(rel) {
            Ok(st) => st,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e),
        };
        if FileType::from_raw_mode(st.st_mode) == FileType::Directory {
            let dir = self.open_dir(rel)?;
            // Cache trees are read-only once filled: make this one writable to empty it (we
            // own it; if we do not, the unlinks below fail as they would have).
            let _ = dir.set_mode(0o700);
            for name in dir.entries()? {
                if let Some(name) = name.to_str() {
                    dir.remove_all(name)?;
                } else {
                    dir.remove_all_bytes(&name)?;
                }
            }
            let (parent, last) = self.parent(rel)?;
            rfs::unlinkat(parent.as_fd(), last, AtFlags::REMOVEDIR)?;
            Ok(())
        } else {
            self.remove_file(rel)
        }
    }

    /// [`Dir::remove_all`] of a top-level name that is not UTF-8 (a directory listing can hold
    /// one even if we never create one).
    fn remove_all_bytes(&self, name: &OsStr) -> io::Result<()> {
        let st = rfs::statat(&self.fd, name, AtFlags::SYMLINK_NOFOLLOW)?;
        if FileType::from_raw_mode(st.st_mode) == FileType::Directory {
            let fd = rfs::openat(&self.fd, name, DIR_FLAGS, Mode::empty())?;
            let dir = Dir { fd };
            let _ = dir.set_mode(0o700);
            for child in dir.entries()? {
                dir.remove_all_bytes(&child)?;
            }
            rfs::unlinkat(&self.fd, name, AtFlags::REMOVEDIR)?;
        } else {
            rfs::unlinkat(&self.fd, name, AtFlags::empty())?;
        }
        Ok(())
    }

    /// Renames `from` to `to`, both beneath this directory (replacing a file at `to`).
    pub fn rename(&self, from: &str, to: &str) -> io::Result<()> {
        let (pf, lf) = self.parent(from)?;
        let (pt, lt) = self.parent(to)?;
        rfs::renameat(pf.as_fd(), lf, pt.as_fd(), lt)?;
        Ok(())
    }

    /// Swaps `a` and `b` atomically (`renameat2(RENAME_EXCHANGE)`, Linux 3.15+). Fails with
    /// `InvalidInput` on filesystems that cannot do it.
    pub fn exchange(&self, a: &str, b: &str) -> io::Result<()> {
        let (pa, la) = self.parent(a)?;
        let (pb, lb) = self.parent(b)?;
        rfs::renameat_with(pa.as_fd(), la, pb.as_fd(), lb, rfs::RenameFlags::EXCHANGE)?;
        Ok(())
    }

    /// The names in this directory, without `.` and `..`, in no particular order.
    pub fn entries(&self) -> io::Result<Vec<OsString>> {
        let mut out = Vec::new();
        for entry in rfs::Dir::read_from(&self.fd)? {
            let name = entry?.file_name().to_bytes().to_vec();
            if name != b"." && name != b".." {
                out.push(OsString::from_vec(name));
            }
        }
        Ok(out)
    }

    /// `fsync` of the directory: makes renames and creations in it durable.
    pub fn sync(&self) -> io::Result<()> {
        Ok(rfs::fsync(&self.fd)?)
    }

    /// `syncfs`: flushes every dirty page of the filesystem holding this directory, one call
    /// instead of an `fsync` per file written.
    pub fn sync_filesystem(&self) -> io::Result<()> {
        Ok(rfs::syncfs(&self.fd)?)
    }

    /// Sets this directory's own permission bits (`fchmod`).
    pub fn set_mode(&self, mode: u32) -> io::Result<()> {
        Ok(rfs::fchmod(&self.fd, Mode::from_raw_mode(mode))?)
    }

    /// Whether the filesystem holding this directory is mounted `noexec`.
    pub fn is_noexec(&self) -> io::Result<bool> {
        let st = rfs::fstatvfs(&self.fd)?;
        Ok(st.f_flag.contains(rfs::StatVfsMountFlags::NOEXEC))
    }

    /// The descriptor itself.
    pub fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// Resolves `rel` beneath this directory, following no symlink in any component, and
    /// opens it with `flags` (and `mode`, when creating).
    fn resolve(&self, rel: &str, flags: OFlags, mode: u32) -> io::Result<OwnedFd> {
        check_relative(rel)?;
        let flags = flags | OFlags::NOFOLLOW;
        let mode = Mode::from_raw_mode(mode);
        if !NO_OPENAT2.load(Ordering::Relaxed) {
            let resolve =
                ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS;
            match rfs::openat2(&self.fd, rel, flags, mode, resolve) {
                Err(rustix::io::Errno::NOSYS) => NO_OPENAT2.store(true, Ordering::Relaxed),
                // openat2 retries internally; EAGAIN means a rename raced with the lookup.
                Err(rustix::io::Errno::AGAIN) => {
                    return self.resolve_by_walking(rel, flags, mode);
                }
                result => return result.map_err(not_followed),
            }
        }
        self.resolve_by_walking(rel, flags, mode)
    }

    /// The same as `openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS)`, one component at a time.
    fn resolve_by_walking(&self, rel: &str, flags: OFlags, mode: Mode) -> io::Result<OwnedFd> {
        match rel.rsplit_once('/') {
            None => rfs::openat(&self.fd, rel, flags, mode).map_err(not_followed),
            Some((parent, last)) => {
                let dir = self.walk(parent)?;
                rfs::openat(&dir, last, flags, mode).map_err(not_followed)
            }
        }
    }

    /// Opens the directory `rel` with `O_PATH`, one `O_NOFOLLOW` step per component.
    fn walk(&self, rel: &str) -> io::Result<OwnedFd> {
        let step = OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let mut components = rel.split('/');
        let first = components.next().unwrap_or(".");
        let mut fd = open_dir_at(&self.fd, first, step)?;
        for c in components {
            fd = open_dir_at(&fd, c, step)?;
        }
        Ok(fd)
    }

    /// The directory holding `rel` and `rel`'s last component.
    fn parent<'r>(&self, rel: &'r str) -> io::Result<(Parent<'_>, &'r str)> {
        check_relative(rel)?;
        match rel.rsplit_once('/') {
            None => Ok((Parent::This(self.fd.as_fd()), rel)),
            Some((parent, last)) => {
                let flags = OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC;
                Ok((Parent::Opened(self.resolve(parent, flags, 0)?), last))
            }
        }
    }
}

/// The directory an operation on a name happens in: ours, or one beneath it.
enum Parent<'a> {
    This(BorrowedFd<'a>),
    Opened(OwnedFd),
}

impl Parent<'_> {
    fn as_fd(&self) -> BorrowedFd<'_> {
        match self {
            Parent::This(fd) => *fd,
            Parent::Opened(fd) => fd.as_fd(),
        }
    }
}

/// Opens the regular file at `path` for reading (the last component not followed) without
/// blocking on a FIFO or device: for paths recorded earlier that someone may since have
/// replaced (`wrapkit cache gc` checking the executables a tree was used by).
pub fn open_regular_path(path: &Path) -> io::Result<File> {
    let flags = OFlags::RDONLY | OFlags::NONBLOCK | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let fd = rfs::open(path, flags, Mode::empty()).map_err(not_followed)?;
    check_regular(&fd)?;
    Ok(File::from(fd))
}

fn check_regular(fd: &OwnedFd) -> io::Result<()> {
    let st = rfs::fstat(fd)?;
    if FileType::from_raw_mode(st.st_mode) != FileType::RegularFile {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a regular file (a directory, FIFO, device or socket is there)",
        ));
    }
    Ok(())
}

fn check_relative(rel: &str) -> io::Result<()> {
    if rel.is_empty() || rel.starts_with('/') || rel.split('/').any(|c| c.is_empty() || c == "..") {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("`{}` is not a plain relative name", rel.escape_debug()),
        ));
    }
    Ok(())
}

/// `openat(parent, name, flags)` for a directory, `flags` holding `O_DIRECTORY | O_NOFOLLOW`.
/// The kernel answers `ENOTDIR` rather than `ELOOP` for a symlink then; say which it was.
pub(crate) fn open_dir_at<Fd: AsFd, P: rustix::path::Arg + Copy>(
    parent: Fd,
    name: P,
    flags: OFlags,
) -> io::Result<OwnedFd> {
    match rfs::openat(&parent, name, flags, Mode::empty()) {
        Ok(fd) => Ok(fd),
        Err(rustix::io::Errno::NOTDIR)
            if rfs::statat(&parent, name, AtFlags::SYMLINK_NOFOLLOW)
                .is_ok_and(|st| FileType::from_raw_mode(st.st_mode) == FileType::Symlink) =>
        {
            Err(io::Error::other(SymlinkInTheWay))
        }
        Err(e) => Err(not_followed(e)),
    }
}

/// The error for a name that has a symlink where a directory or file should be.
#[derive(Debug, thiserror::Error)]
#[error("a component of the path is a symlink, which wrapkit does not follow here")]
pub struct SymlinkInTheWay;

/// Whether `e` is [`SymlinkInTheWay`] (or a raw `ELOOP`).
pub fn is_symlink_in_the_way(e: &io::Error) -> bool {
    e.raw_os_error() == Some(rustix::io::Errno::LOOP.raw_os_error())
        || e.get_ref()
            .is_some_and(|inner| inner.is::<SymlinkInTheWay>())
}

/// `ELOOP` from `O_NOFOLLOW` or `RESOLVE_NO_SYMLINKS` means a symlink was in the way; say so.
fn not_followed(e: rustix::io::Errno) -> io::Error {
    if e == rustix::io::Errno::LOOP {
        io::Error::other(SymlinkInTheWay)
    } else {
        e.into()
    }
}

/// Splits `path` into the directory holding its last component and that component, with
/// trailing `/` and `/.` dropped (`link/.` names `link`). `None` when the path ends in `..`,
/// is `/` or `.`: then there is no last name to check, and nothing that can be a symlink.
fn split_last(path: &Path) -> (PathBuf, Option<&OsStr>) {
    let mut components = path.components();
    match components.next_back() {
        Some(Component::Normal(last)) => {
            let parent = components.as_path();
            let parent = if parent.as_os_str().is_empty() {
                Path::new(".")
            } else {
                parent
            };
            (parent.to_path_buf(), Some(last))
        }
        _ => (path.to_path_buf(), None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn trailing_slash_or_dot_does_not_hide_a_symlink() {
        let tmp = tempfile::tempdir().unwrap();
        let real = tmp.path().join("real");
        std::fs::create_dir(&real).unwrap();
        symlink(&real, tmp.path().join("link")).unwrap();
        for spelling in ["link", "link/", "link/.", "link//", "link/./"] {
            let err = Dir::open(&tmp.path().join(spelling)).unwrap_err();
            assert!(is_symlink_in_the_way(&err), "{spelling}: {err}");
        }
        assert!(Dir::open(&real).is_ok());
        assert!(Dir::open(&tmp.path().join("real/.")).is_ok());
        // `link/..` names the directory holding the link's target, which is no symlink.
        assert!(Dir::open(&tmp.path().join("link/..")).is_ok());
    }

    #[test]
    fn no_component_of_a_name_is_followed() {
        let tmp = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::fs::create_dir(tmp.path().join("d")).unwrap();
        symlink(outside.path(), tmp.path().join("d/up")).unwrap();
        let dir = Dir::open(tmp.path()).unwrap();
        for name in ["d/up/x", "d/up"] {
            assert!(dir.create_file(name, 0o644).is_err(), "{name}");
        }
        assert!(dir.create_dir("d/up/sub", 0o755).is_err());
        assert!(dir.symlink("d/up/l", OsStr::new("x")).is_err());
        assert!(dir.create_file("../x", 0o644).is_err());
        assert!(dir.create_file("/tmp/x", 0o644).is_err());
        assert_eq!(std::fs::read_dir(outside.path()).unwrap().count(), 0);
        // The walk that stands in for openat2 refuses the same.
        assert!(
            dir.resolve_by_walking("d/up/x", OFlags::RDONLY, Mode::empty())
                .is_err()
        );
        dir.create_file("d/ok", 0o644).unwrap();
        assert!(dir.open_file("d/ok").is_ok());
    }

    #[test]
    fn a_fifo_is_refused_without_blocking() {
        let tmp = tempfile::tempdir().unwrap();
        rustix::fs::mknodat(
            rustix::fs::CWD,
            tmp.path().join("fifo"),
            FileType::Fifo,
            Mode::from_raw_mode(0o644),
            0,
        )
        .unwrap();
        let dir = Dir::open(tmp.path()).unwrap();
        let err = dir.open_file("fifo").unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        assert!(open_regular_path(&tmp.path().join("fifo")).is_err());
    }

    #[test]
    fn remove_all_removes_links_not_their_targets() {
        let tmp = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("keep"), "x").unwrap();
        std::fs::create_dir_all(tmp.path().join("t/a/b")).unwrap();
        std::fs::write(tmp.path().join("t/a/b/f"), "x").unwrap();
        symlink(outside.path(), tmp.path().join("t/a/out")).unwrap();
        let dir = Dir::open(tmp.path()).unwrap();
        dir.remove_all("t").unwrap();
        assert!(!tmp.path().join("t").exists());
        assert!(outside.path().join("keep").exists());
        dir.remove_all("t").unwrap();
    }
}
