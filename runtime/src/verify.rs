//! `verify`: check every byte of a packed executable and name the first region that is wrong.
//!
//! On top of [`validate`](crate::validate::validate) (structure), it re-encodes every local
//! header, central directory record and the end records from what they claim and compares them
//! byte for byte (wrapkit writes exactly one encoding of each), inflates every entry and checks
//! its CRC, compares the stub with the size and BLAKE3 the manifest recorded, recomputes the
//! archive digest, and looks for bytes appended after the payload. The cost is one pass over the
//! file; nothing is allocated in proportion to it.

use std::io;

use crate::archive::Archive;
use crate::format::manifest::StubInfo;
use crate::format::trailer::{TRAILER_LEN, hex, magic};
use crate::format::zip::{self, CentralEnd, EOCD_LEN};
use crate::format::{EntryKind, FormatError, elf, method};
use crate::validate::{self, Validated};

/// A part of the file, for "where is it wrong".
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Region {
    Stub,
    /// The stub's ELF section headers, through which a carried payload is found.
    SectionHeaders,
    LocalHeader(String),
    EntryData(String),
    CentralDirectory,
    EndRecords,
    Trailer,
    Index,
    Manifest,
    /// Bytes after the end of the payload: offset and length.
    Appended {
        offset: u64,
        len: u64,
    },
    /// No payload to speak of (truncated, stripped).
    Payload,
}

impl std::fmt::Display for Region {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Region::Stub => write!(f, "stub"),
            Region::SectionHeaders => write!(f, "section headers"),
            Region::LocalHeader(n) => write!(f, "local header of `{n}`"),
            Region::EntryData(n) => write!(f, "data of `{n}`"),
            Region::CentralDirectory => write!(f, "central directory"),
            Region::EndRecords => write!(f, "end of central directory"),
            Region::Trailer => write!(f, "trailer"),
            Region::Index => write!(f, "index"),
            Region::Manifest => write!(f, "manifest"),
            Region::Appended { offset, len } => {
                write!(f, "{len} bytes appended at offset {offset}")
            }
            Region::Payload => write!(f, "payload"),
        }
    }
}

/// The first problem found.
#[derive(Debug, thiserror::Error)]
#[error("{region}: {message}")]
pub struct Problem {
    pub region: Region,
    pub message: String,
}

/// What a clean file looks like.
#[derive(Debug, Clone)]
pub struct Verified {
    pub entries: u64,
    pub files: u64,
    pub bytes: u64,
    pub digest: String,
}

fn problem(region: Region, message: impl Into<String>) -> Problem {
    Problem {
        region,
        message: message.into(),
    }
}

/// The region a structural error points at.
pub fn region_of(err: &FormatError) -> Region {
    match err {
        FormatError::NoPayload { .. } | FormatError::Stripped { .. } => Region::Payload,
        FormatError::UnsupportedVersion { .. } | FormatError::BadTrailer { .. } => Region::Trailer,
        FormatError::Manifest(_) | FormatError::UnknownRunMode { .. } => Region::Manifest,
        FormatError::Malformed { what, .. } => match *what {
            "local header" => Region::LocalHeader(String::new()),
            "index" | "index record" => Region::Index,
            "central directory" | "central directory header" => Region::CentralDirectory,
            "ELF section header" => Region::SectionHeaders,
            _ => Region::EndRecords,
        },
        FormatError::Entry { name, .. } | FormatError::LinkLoop { name } => {
            Region::LocalHeader(name.clone())
        }
    }
}

fn structural(err: FormatError) -> Problem {
    problem(region_of(&err), err.to_string())
}

/// Verifies the whole file.
pub fn verify(bytes: &[u8]) -> Result<Verified, Problem> {
    let archive = match Archive::open(bytes) {
        Ok(a) => a,
        Err(err @ FormatError::NoPayload { .. }) => {
            return Err(match appended(bytes) {
                Some(end) => problem(
                    Region::Appended {
                        offset: end,
                        len: bytes.len() as u64 - end,
                    },
                    "something was added after the payload; remove it (truncate the file to its payload's end) or pack again",
                ),
                None => structural(err),
            });
        }
        Err(err) => return Err(structural(err)),
    };
    if archive.carried().is_some() {
        // After the note come the stub's other sections and its section headers, as the packer
        // or a strip tool laid them out; anything past the last of them was added.
        let end = elf::file_end(bytes)
            .unwrap_or(0)
            .max(archive.bytes().len() as u64);
        if end < bytes.len() as u64 {
            return Err(problem(
                Region::Appended {
                    offset: end,
                    len: bytes.len() as u64 - end,
                },
                "something was added after the executable's last section; remove it (truncate the file there) or pack again",
            ));
        }
    }
    let validated = validate::validate(&archive).map_err(structural)?;
    let manifest = archive.manifest().map_err(structural)?;
    check_stub(&archive, &manifest.stub)?;
    check_encodings(&archive)?;
    let bytes_out = check_data(&archive, &validated)?;
    let digest = blake3::hash(&bytes[archive.start_pos() as usize..archive.eocd_pos() as usize]);
    if digest.as_bytes() != &archive.trailer().digest {
        return Err(problem(
            Region::EntryData(String::new()),
            format!(
                "the archive's BLAKE3 is {}, the trailer says {}",
                digest.to_hex(),
                hex(&archive.trailer().digest)
            ),
        ));
    }
    Ok(Verified {
        entries: validated.entries.len() as u64,
        files: validated.files,
        bytes: bytes_out,
        digest: digest.to_hex().to_string(),
    })
}

/// The end of a payload followed by other bytes: the last end record whose comment is a
/// wrapkit trailer, searched in the final MiB.
fn appended(bytes: &[u8]) -> Option<u64> {
    let tail = EOCD_LEN + TRAILER_LEN;
    let from = bytes.len().saturating_sub(1 << 20);
    let magic = magic();
    (from..bytes.len().saturating_sub(tail))
        .rev()
        .find_map(|p| {
            let eocd = zip::Eocd::decode(&bytes[p..p + EOCD_LEN])?;
            let comment = &bytes[p + EOCD_LEN..p + tail];
            (eocd.comment_len as usize == TRAILER_LEN && comment.starts_with(&magic))
                .then_some((p + tail) as u64)
        })
}

/// A payload carried in a note is checked against the stub's loaded image, which strip leaves
/// as it is (format::elf): a stripped stub is not a damaged one.
fn check_stub(archive: &Archive<'_>, recorded: &StubInfo) -> Result<(), Problem> {
    let actual = match archive.carried() {
        Some(_) => elf::image_info(archive.stub()),
        None => StubInfo::of(archive.stub()),
    };
    if actual.size != recorded.size {
        return Err(problem(
            Region::Stub,
            format!(
                "it is {} bytes, the manifest recorded {}",
                actual.size, recorded.size
            ),
        ));
    }
    if actual.blake3 != recorded.blake3 {
        return Err(problem(
            Region::Stub,
            "its bytes differ from the stub it was packed with",
        ));
    }
    Ok(())
}

/// Every header must be exactly the bytes wrapkit would write for what it claims.
fn check_encodings(archive: &Archive<'_>) -> Result<(), Problem> {
    let bytes = archive.bytes();
    let (cd_pos, cd_size) = archive.central_directory();
    let cd = &bytes[cd_pos as usize..(cd_pos + cd_size) as usize];
    let mut at = 0;
    for _ in 0..archive.zip_entries() {
        let h = zip::decode_central(&cd[at..], cd_pos + at as u64).map_err(structural)?;
        let name = String::from_utf8_lossy(h.name).into_owned();
        let expected = zip::encode_central(&name, &h.fields, h.external_attrs, h.offset);
        if cd[at..at + h.record_len] != expected[..] {
            return Err(problem(
                Region::CentralDirectory,
                format!(
                    "the record of `{name}` at offset {} is not as wrapkit writes it",
                    cd_pos + at as u64
                ),
            ));
        }
        let pos = archive.position(h.offset).unwrap_or_default();
        let local = zip::encode_local(&name, &h.fields);
        if zip::slice(bytes, pos, local.len()) != Some(&local[..]) {
            return Err(problem(
                Region::LocalHeader(name),
                format!("the header at offset {pos} does not match its central directory record"),
            ));
        }
        at += h.record_len;
    }
    let end: &CentralEnd = archive.central_end();
    let trailer = archive.trailer().encode();
    let zip64_at = cd_pos + cd_size;
    let expected = zip::encode_end(end, end.cd_offset + cd_size, &trailer);
    if bytes.get(zip64_at as usize..) != Some(&expected[..]) {
        return Err(problem(
            Region::EndRecords,
            "the end records are not as wrapkit writes them",
        ));
    }
    Ok(())
}

/// Inflates every file and checks its CRC; returns the bytes checked.
fn check_data(archive: &Archive<'_>, validated: &Validated<'_>) -> Result<u64, Problem> {
    let mut total = 0;
    for e in &validated.entries {
        let raw = archive.raw_data(e).map_err(structural)?;
        let bad = |err: String| problem(Region::EntryData(e.name.to_owned()), err);
        match e.kind {
            EntryKind::Dir => {}
            _ => method::decompress_to(e.name, e.method, raw, e.size, e.crc32, &mut io::sink())
                .map_err(|err| bad(err.to_string()))?,
        }
        total += e.size;
    }
    Ok(total)
}
