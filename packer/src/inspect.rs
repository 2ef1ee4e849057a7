//! Reading packed executables for `ls`, `cat`, `extract`, `info`, `verify` and `unpack`.
//!
//! Every command opens the file the way the stub does ([`Archive::open`]) and, when it needs all
//! of it, runs the one validator ([`validate`]) before trusting a single name.

use std::fs::File;
use std::path::{Path, PathBuf};

use serde::Serialize;
use wrapkit_runtime::archive::Archive;
use wrapkit_runtime::format::index::Entry;
use wrapkit_runtime::format::{EntryKind, method};
use wrapkit_runtime::mapping;
use wrapkit_runtime::validate::{self, Validated};

use crate::error::PackError;

/// A packed executable, mapped and opened.
pub struct Opened {
    pub path: PathBuf,
    pub bytes: &'static [u8],
    pub archive: Archive<'static>,
}

/// Maps `path` and returns its raw bytes (for `verify`, which must also judge files that do
/// not open).
pub fn map(path: &Path) -> Result<&'static [u8], PackError> {
    let read_err = |source| PackError::Read {
        path: path.to_path_buf(),
        source,
    };
    let file = File::open(path).map_err(read_err)?;
    mapping::map_for_process(&file).map_err(read_err)
}

pub fn open(path: &Path) -> Result<Opened, PackError> {
    let bytes = map(path)?;
    let archive = Archive::open(bytes).map_err(|source| PackError::Packed {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(Opened {
        path: path.to_path_buf(),
        bytes,
        archive,
    })
}

impl Opened {
    /// The full check; required before listing or extracting everything.
    pub fn validate(&self) -> Result<Validated<'static>, PackError> {
        validate::validate(&self.archive).map_err(|source| PackError::Packed {
            path: self.path.clone(),
            source,
        })
    }

    pub fn manifest(&self) -> Result<wrapkit_runtime::format::manifest::Manifest, PackError> {
        self.archive.manifest().map_err(|s| self.packed_error(s))
    }

    pub fn packed_error(&self, source: wrapkit_runtime::format::FormatError) -> PackError {
        PackError::Packed {
            path: self.path.clone(),
            source,
        }
    }

    /// A symlink's target.
    pub fn link_target(&self, e: &Entry<'_>) -> Result<String, PackError> {
        let bytes = self
            .archive
            .contents(e, true)
            .map_err(|s| self.packed_error(s))?;
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    }
}

/// One entry as `ls --json` shows it.
#[derive(Debug, Serialize)]
pub struct EntryInfo {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub size: u64,
    pub compressed_size: u64,
    pub method: String,
    pub mode: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
}

impl EntryInfo {
    pub fn of(opened: &Opened, e: &Entry<'_>) -> Result<Self, PackError> {
        Ok(EntryInfo {
            name: e.name.to_owned(),
            kind: e.kind.as_str(),
            size: e.size,
            compressed_size: e.compressed_size,
            method: method::name(e.method),
            mode: format!("{:04o}", e.mode),
            target: match e.kind {
                EntryKind::Symlink => Some(opened.link_target(e)?),
                _ => None,
            },
        })
    }
}

/// `drwxr-xr-x`-style mode string.
pub fn mode_string(kind: EntryKind, mode: u32) -> String {
    let mut s = String::with_capacity(10);
    s.push(match kind {
        EntryKind::Dir => 'd',
        EntryKind::Symlink => 'l',
        EntryKind::File => '-',
    });
    for shift in [6, 3, 0] {
        let bits = (mode >> shift) & 7;
        s.push(if bits & 4 != 0 { 'r' } else { '-' });
        s.push(if bits & 2 != 0 { 'w' } else { '-' });
        s.push(if bits & 1 != 0 { 'x' } else { '-' });
    }
    s
}

/// Sizes for people: `2.0 MiB`.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut v = n as f64 / 1024.0;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    format!("{v:.1} {}", UNITS[unit])
}
