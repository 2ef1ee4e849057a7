//! Finding and opening the running executable, even where `/proc` is not mounted.
//!
//! `/proc/self/exe` is the first choice: it names the real file even when the process was
//! started through a symlink, and it still opens if the file was deleted or replaced after
//! start. In an empty chroot there is no `/proc`; the kernel's `AT_EXECFN` auxiliary vector
//! entry (the path given to `execve`) is the fallback.

// The runtime's `unsafe` is confined to named modules (lib.rs lists them); this is one.
#![allow(unsafe_code)]

use std::ffi::{CStr, OsStr};
use std::fs::File;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

/// The running executable: where it is and an open handle to it.
#[derive(Debug)]
pub struct SelfExe {
    /// Absolute, lexically normalised path.
    pub path: PathBuf,
    pub file: File,
}

pub fn open() -> io::Result<SelfExe> {
    if let Ok(file) = File::open("/proc/self/exe") {
        let path =
            std::fs::read_link("/proc/self/exe").unwrap_or_else(|_| execfn().unwrap_or_default());
        return Ok(SelfExe { path, file });
    }
    let path = execfn().ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::NotFound,
            "cannot find the running executable: /proc is not mounted and the kernel gave no AT_EXECFN",
        )
    })?;
    let file = File::open(&path)
        .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
    Ok(SelfExe { path, file })
}

/// The path given to `execve`, made absolute.
fn execfn() -> Option<PathBuf> {
    // SAFETY: getauxval has no preconditions; it returns 0 when the entry is absent.
    let ptr = unsafe { libc::getauxval(libc::AT_EXECFN) } as *const libc::c_char;
    if ptr.is_null() {
        return None;
    }
    // SAFETY: the kernel places a NUL-terminated string at AT_EXECFN, valid for the whole life
    // of the process.
    let bytes = unsafe { CStr::from_ptr(ptr) }.to_bytes();
    let path = Path::new(OsStr::from_bytes(bytes));
    let absolute = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir().ok()?.join(path)
    };
    Some(normalise(&absolute))
}

/// Removes `.` and resolves `..` lexically.
fn normalise(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            c => out.push(c),
        }
    }
    out
}
