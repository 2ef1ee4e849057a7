//! Per-bundle lock files: `flock` on `bundles-v1/<digest>.lock`.
//!
//! `flock` locks belong to the open file, are released by the kernel when the process dies
//! (a SIGKILLed fill never leaves a stale lock) and are not inherited across `exec` (the
//! descriptor is close-on-exec). Lock files may be deleted by `wrapkit cache gc` while another
//! process waits on them; after taking a lock we therefore check that the name still names the
//! inode we locked, and start again if it does not, so two processes never both believe they
//! hold the lock for one bundle. The file is opened beneath the cache's directory handle,
//! without following a symlink and without blocking: a FIFO planted there is refused.

use std::fs::File;
use std::io;

use rustix::fs::{FlockOperation, OFlags};

use crate::beneath::Dir;

/// A held lock; released on drop (closing the descriptor releases the `flock`).
#[derive(Debug)]
pub struct Lock<'d> {
    file: File,
    dir: &'d Dir,
    name: String,
}

impl<'d> Lock<'d> {
    /// Takes the lock `name` in `dir`, creating the file if needed. With `wait` false, returns
    /// `Ok(None)` when someone else holds it.
    pub fn acquire(dir: &'d Dir, name: &str, wait: bool) -> io::Result<Option<Lock<'d>>> {
        loop {
            let file = dir.open_regular(name, OFlags::RDWR | OFlags::CREATE, 0o600)?;
            let op = if wait {
                FlockOperation::LockExclusive
            } else {
                FlockOperation::NonBlockingLockExclusive
            };
            loop {
                match rustix::fs::flock(&file, op) {
                    Ok(()) => break,
                    Err(rustix::io::Errno::INTR) => continue,
                    Err(rustix::io::Errno::WOULDBLOCK) => return Ok(None),
                    Err(e) => return Err(e.into()),
                }
            }
            let held = rustix::fs::fstat(&file)?;
            match dir.stat(name) {
                Ok(now) if now.st_dev == held.st_dev && now.st_ino == held.st_ino => {
                    return Ok(Some(Lock {
                        file,
                        dir,
                        name: name.to_owned(),
                    }));
                }
                // Deleted (or replaced) while we waited: lock the file that is there now.
                Ok(_) => continue,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// Deletes the lock file, then releases the lock: for removing a bundle entirely. Anyone
    /// waiting on the old file notices it is gone and locks a new one.
    pub fn remove(self) -> io::Result<()> {
        self.dir.remove_file(&self.name)?;
        drop(self.file);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_is_exclusive_between_descriptors() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = Dir::open(tmp.path()).unwrap();
        let a = Lock::acquire(&dir, "l", false).unwrap().unwrap();
        assert!(Lock::acquire(&dir, "l", false).unwrap().is_none());
        drop(a);
        let b = Lock::acquire(&dir, "l", false).unwrap().unwrap();
        b.remove().unwrap();
        assert!(!tmp.path().join("l").exists());
    }
}
