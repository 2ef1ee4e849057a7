//! The system calls the cache needs that `std` does not offer: `flock`, `fstatvfs` (is the
//! filesystem `noexec`?), `renameat2(RENAME_EXCHANGE)`, `syncfs`, `futimens`, `geteuid` and a
//! cheap `fstatat` relative to an open directory. All of the cache's `unsafe` is here; each
//! wrapper is a plain call whose arguments are owned, NUL-terminated or zeroed out-parameters.

use std::ffi::CString;
use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// The effective user id: who the cache must belong to.
pub fn euid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

fn cvt(ret: libc::c_int) -> io::Result<()> {
    if ret == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

fn cstring(path: &Path) -> io::Result<CString> {
    CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains a NUL byte"))
}

/// Takes an exclusive `flock` on `file`, waiting for it when `wait`. Returns false when the lock
/// is held elsewhere and `wait` is false. Interrupted waits are retried.
pub fn lock_exclusive(file: &File, wait: bool) -> io::Result<bool> {
    let op = if wait {
        libc::LOCK_EX
    } else {
        libc::LOCK_EX | libc::LOCK_NB
    };
    loop {
        // SAFETY: flock on a descriptor we own; no memory is passed.
        match cvt(unsafe { libc::flock(file.as_raw_fd(), op) }) {
            Ok(()) => return Ok(true),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
            Err(e) => return Err(e),
        }
    }
}

/// Whether the filesystem holding `file` is mounted `noexec`.
pub fn is_noexec(file: &File) -> io::Result<bool> {
    // SAFETY: an all-zero statvfs is a valid value of this plain C struct.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `st` is a valid, writable statvfs for the call to fill.
    cvt(unsafe { libc::fstatvfs(file.as_raw_fd(), &mut st) })?;
    Ok(st.f_flag & libc::ST_NOEXEC != 0)
}

/// Atomically swaps two existing paths (`renameat2` with `RENAME_EXCHANGE`, Linux 3.15+).
/// Fails with `InvalidInput` (EINVAL) on filesystems that cannot do it.
pub fn exchange(a: &Path, b: &Path) -> io::Result<()> {
    let (a, b) = (cstring(a)?, cstring(b)?);
    // SAFETY: both paths are NUL-terminated and outlive the call; AT_FDCWD makes them relative
    // to the current directory only if they are relative (ours are absolute).
    let ret = unsafe {
        libc::syscall(
            libc::SYS_renameat2,
            libc::AT_FDCWD,
            a.as_ptr(),
            libc::AT_FDCWD,
            b.as_ptr(),
            libc::RENAME_EXCHANGE,
        )
    };
    if ret == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// Flushes every dirty page of the filesystem holding `file` to disk: one call instead of one
/// `fsync` per extracted file.
pub fn syncfs(file: &File) -> io::Result<()> {
    // SAFETY: syncfs on a descriptor we own; no memory is passed.
    cvt(unsafe { libc::syncfs(file.as_raw_fd()) })
}

/// Sets the access and modification times of `file` to now.
pub fn touch(file: &File) -> io::Result<()> {
    // SAFETY: a null `times` means "now" for both; the descriptor is ours.
    cvt(unsafe { libc::futimens(file.as_raw_fd(), std::ptr::null()) })
}

/// What `lstat` says about one path, as far as the completeness check cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stat {
    /// The file type bits (`S_IFREG`, `S_IFDIR`, `S_IFLNK`, …).
    pub file_type: u32,
    /// Permission bits.
    pub mode: u32,
    pub size: u64,
}

/// `lstat` of `rel` relative to the open directory `dir`, never following a final symlink.
/// `buf` is scratch space reused between calls to build the NUL-terminated name.
pub fn lstat_at(dir: &File, rel: &str, buf: &mut Vec<u8>) -> io::Result<Stat> {
    buf.clear();
    buf.extend_from_slice(rel.as_bytes());
    if buf.contains(&0) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "name contains a NUL byte",
        ));
    }
    buf.push(0);
    // SAFETY: an all-zero stat is a valid value of this plain C struct.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: `buf` is NUL-terminated with no interior NUL and outlives the call; `st` is a
    // valid, writable stat; the descriptor is ours.
    cvt(unsafe {
        libc::fstatat(
            dir.as_raw_fd(),
            buf.as_ptr().cast(),
            &mut st,
            libc::AT_SYMLINK_NOFOLLOW,
        )
    })?;
    Ok(Stat {
        file_type: st.st_mode & libc::S_IFMT,
        mode: st.st_mode & 0o7777,
        size: st.st_size as u64,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_is_exclusive_between_descriptors() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lock");
        let a = File::create(&path).unwrap();
        let b = File::open(&path).unwrap();
        assert!(lock_exclusive(&a, false).unwrap());
        assert!(!lock_exclusive(&b, false).unwrap());
        drop(a);
        assert!(lock_exclusive(&b, false).unwrap());
    }

    #[test]
    fn exchange_swaps_two_directories() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        std::fs::create_dir(&a).unwrap();
        std::fs::create_dir(&b).unwrap();
        std::fs::write(a.join("x"), "a").unwrap();
        exchange(&a, &b).unwrap();
        assert!(b.join("x").exists() && !a.join("x").exists());
    }

    #[test]
    fn lstat_at_does_not_follow_links() {
        let dir = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink("target-of-9", dir.path().join("l")).unwrap();
        let d = File::open(dir.path()).unwrap();
        let st = lstat_at(&d, "l", &mut Vec::new()).unwrap();
        assert_eq!(st.file_type, libc::S_IFLNK);
        assert_eq!(st.size, 11);
        assert!(lstat_at(&d, "missing", &mut Vec::new()).is_err());
    }
}
