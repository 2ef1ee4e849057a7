//! Per-bundle lock files: `flock` on `bundles-v1/<digest>.lock`.
//!
//! `flock` locks belong to the open file, are released by the kernel when the process dies
//! (a SIGKILLed fill never leaves a stale lock) and are not inherited across `exec` (the
//! descriptor is close-on-exec). Lock files may be deleted by `wrapkit cache gc` while another
//! process waits on them; after taking a lock we therefore check that the path still names the
//! inode we locked, and start again if it does not, so two processes never both believe they
//! hold the lock for one bundle.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use super::sys;

/// A held lock; released on drop (closing the descriptor releases the `flock`).
#[derive(Debug)]
pub struct Lock {
    file: File,
    path: PathBuf,
}

impl Lock {
    /// Takes the lock at `path`, creating the file if needed. With `wait` false, returns
    /// `Ok(None)` when someone else holds it.
    pub fn acquire(path: &Path, wait: bool) -> io::Result<Option<Lock>> {
        loop {
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .mode(0o600)
                .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
                .open(path)?;
            if !sys::lock_exclusive(&file, wait)? {
                return Ok(None);
            }
            let held = file.metadata()?;
            match std::fs::symlink_metadata(path) {
                Ok(now) if now.dev() == held.dev() && now.ino() == held.ino() => {
                    return Ok(Some(Lock {
                        file,
                        path: path.to_path_buf(),
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
        std::fs::remove_file(&self.path)?;
        drop(self.file);
        Ok(())
    }
}
