//! The wrapkit payload format, version 2: the only place that knows its bytes.
//!
//! ```text
//! [ stub's loaded image ][ .note.wrapkit: note header | local header + data ... | .wrapkit/index |
//!   .wrapkit/manifest.json | central directory | [ zip64 end record + locator ] |
//!   end of central directory + comment = trailer ][ the stub's other sections, section headers ]
//! ```
//!
//! The payload is a standard zip archive written with absolute offsets, so `unzip`, `zipinfo` and
//! Python's `zipfile` read a packed executable as it is. [`elf`] carries it in an ELF note so that
//! `strip` keeps it, and finds it again with a walk of the section headers (format 1 files, with
//! the archive appended, are read from the end of the file). Everything else wrapkit-specific is
//! found from the end of the archive in constant time:
//!
//! - [`trailer`]: the zip comment, a fixed-length ASCII line holding the magic, the format
//!   version, where the archive starts, where the index and manifest are, and the digest;
//! - [`index`]: a sorted, fixed-width table of every entry, stored uncompressed, so a lookup is a
//!   binary search over the mapped file whatever the number of entries;
//! - [`manifest`]: JSON saying what to run.
//!
//! [`zip`] encodes and decodes the zip records themselves, [`method`] the compression methods,
//! [`path`] the rules every entry name obeys, [`links`] where symlinks lead, and [`writer`] puts
//! it all together for the packer.
//!
//! Strings from an archive are hostile to terminals too: every [`FormatError`] escapes them
//! ([`path::printable`]) when displayed.
//! `docs/format.md` describes the same layout for people.

pub mod elf;
pub mod index;
pub mod layer;
pub mod limits;
pub mod links;
pub mod manifest;
pub mod method;
pub mod path;
pub mod trailer;
pub mod writer;
pub mod zip;

/// The payload format version this crate reads and writes.
/// Version 1 files (the archive appended to the stub) are still read.
pub const FORMAT_VERSION: u32 = 2;

/// Reserved directory inside the archive for wrapkit's own entries.
pub const RESERVED_DIR: &str = ".wrapkit";
/// Name of the index entry.
pub const INDEX_NAME: &str = ".wrapkit/index";
/// Name of the manifest entry.
pub const MANIFEST_NAME: &str = ".wrapkit/manifest.json";

/// What kind of thing an entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EntryKind {
    File,
    Dir,
    Symlink,
}

impl EntryKind {
    pub(crate) fn to_byte(self) -> u8 {
        match self {
            EntryKind::File => 0,
            EntryKind::Dir => 1,
            EntryKind::Symlink => 2,
        }
    }

    pub(crate) fn from_byte(b: u8) -> Option<Self> {
        match b {
            0 => Some(EntryKind::File),
            1 => Some(EntryKind::Dir),
            2 => Some(EntryKind::Symlink),
            _ => None,
        }
    }

    /// The Unix file-type bits (`S_IFREG` and friends) for this kind.
    pub fn type_bits(self) -> u32 {
        match self {
            EntryKind::File => 0o100000,
            EntryKind::Dir => 0o040000,
            EntryKind::Symlink => 0o120000,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            EntryKind::File => "file",
            EntryKind::Dir => "directory",
            EntryKind::Symlink => "symlink",
        }
    }
}

/// Normalised permission bits: what every entry of a given kind gets, so that output does not
/// depend on the umask or the owner's habits. Files keep only "is it executable".
pub fn normalised_mode(kind: EntryKind, source_mode: u32) -> u32 {
    match kind {
        EntryKind::File if source_mode & 0o111 != 0 => 0o755,
        EntryKind::File => 0o644,
        EntryKind::Dir => 0o755,
        EntryKind::Symlink => 0o777,
    }
}

/// Everything that can be wrong with a payload, each variant carrying where it was found.
#[derive(Debug, thiserror::Error)]
pub enum FormatError {
    #[error(
        "no wrapkit payload at the end of the file ({len} bytes): it is truncated, has bytes appended, or is damaged"
    )]
    NoPayload { len: u64 },
    #[error(
        "no wrapkit payload: the file ({len} bytes) ends exactly where its ELF image ends, so it was never packed or its payload was stripped (`strip` and `objcopy` drop data appended to an executable, as wrapkit wrote it before format 2, and packaging tools strip by default)"
    )]
    Stripped { len: u64 },
    #[error(
        "payload format version {found} is not supported by this runtime, which reads version {supported}"
    )]
    UnsupportedVersion { found: u32, supported: u32 },
    #[error("the payload trailer (zip comment at offset {offset}) is malformed: {reason}")]
    BadTrailer { offset: u64, reason: &'static str },
    #[error("{what} at offset {offset} is malformed: {}", path::printable(reason))]
    Malformed {
        what: &'static str,
        offset: u64,
        reason: String,
    },
    #[error("entry `{}`: {}", path::printable(name), path::printable(reason))]
    Entry { name: String, reason: String },
    #[error("the manifest ({MANIFEST_NAME}) is not valid: {}", path::printable(.0))]
    Manifest(String),
    #[error("the manifest asks for run mode `{mode}`, which this runtime does not know")]
    UnknownRunMode { mode: String },
    /// Not damage: an archive may hold links that loop, as a filesystem may. Opening such a
    /// path fails (`ELOOP`); nothing else about the archive is wrong.
    #[error("`{}`: too many levels of symbolic links", path::printable(name))]
    LinkLoop { name: String },
}

impl crate::report::Hinted for FormatError {
    fn hint(&self) -> Option<String> {
        Some(self.hint_text().to_owned())
    }
}

impl FormatError {
    /// What the user can do about it (every payload fault has something).
    pub fn hint_text(&self) -> &'static str {
        match self {
            FormatError::Stripped { .. } => {
                "install the packed file as it came from `wrapkit pack`, or pack the app again with a wrapkit that writes format 2, whose payload survives strip"
            }
            FormatError::NoPayload { .. } => {
                "the file was cut short or changed after packing; copy it again, or pack the app again"
            }
            FormatError::UnsupportedVersion { .. } | FormatError::UnknownRunMode { .. } => {
                "this executable was packed by a newer wrapkit; pack it again with this version, or use a newer runtime"
            }
            FormatError::LinkLoop { .. } => {
                "the app's symlinks lead back to themselves; fix them in the app directory and pack it again"
            }
            FormatError::BadTrailer { .. }
            | FormatError::Malformed { .. }
            | FormatError::Entry { .. }
            | FormatError::Manifest(_) => {
                "the file is corrupt; `wrapkit verify` shows where. Pack the app again"
            }
        }
    }

    /// The packed executable's exit code for this failure (docs/cli.md, "Exit codes").
    pub fn exit_code(&self) -> u8 {
        match self {
            FormatError::UnsupportedVersion { .. } | FormatError::UnknownRunMode { .. } => {
                crate::exit::UNSUPPORTED
            }
            _ => crate::exit::BAD_PAYLOAD,
        }
    }

    /// The error for a file with no trailer: stripped if it ends where its ELF image ends.
    pub fn no_payload(bytes: &[u8]) -> Self {
        let len = bytes.len() as u64;
        if elf::file_end(bytes) == Some(len) {
            FormatError::Stripped { len }
        } else {
            FormatError::NoPayload { len }
        }
    }

    pub(crate) fn malformed(what: &'static str, offset: u64, reason: impl Into<String>) -> Self {
        FormatError::Malformed {
            what,
            offset,
            reason: reason.into(),
        }
    }

    pub(crate) fn entry(name: &str, reason: impl Into<String>) -> Self {
        FormatError::Entry {
            name: name.to_owned(),
            reason: reason.into(),
        }
    }
}
