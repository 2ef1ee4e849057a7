//! Writing a payload: the packer hands entries in, this module decides every byte.
//!
//! Entries are prepared (compressed, checksummed) independently, so the packer can do that in
//! parallel, then written in the order given; [`ArchiveWriter::finish`] appends the index, the
//! manifest, the central directory and the trailer. Nothing depends on the clock, the umask or
//! the machine: the same entries give the same bytes.

use std::io::{self, Write};

use super::index::{Entry, IndexBuilder};
use super::manifest::Manifest;
use super::method::{self, DEFLATE, STORED};
use super::trailer::{TRAILER_LEN, Trailer};
use super::zip::{self, CentralEnd, FLAG_UTF8, HeaderFields};
use super::{EntryKind, FORMAT_VERSION, INDEX_NAME, MANIFEST_NAME, path};

/// How file contents are compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Compression {
    /// Deflate, but store whatever deflate shrinks by less than 10 % (already-compressed assets,
    /// tiny files): stored entries are served straight from the mapping. Files under 1 KiB are
    /// always stored; files over 256 KiB whose first 256 KiB do not shrink by 10 % are stored
    /// without deflating the rest.
    #[default]
    Auto,
    /// Store everything.
    Store,
    /// Deflate everything.
    Deflate,
}

/// Files smaller than this are stored by `Auto`: setting up an inflater costs a start more (about
/// 60k instructions, measured in docs/benchmarks.md) than the few hundred bytes saved are worth.
const MIN_DEFLATE_LEN: usize = 1024;

/// How much of a large file `Auto` deflates first to decide whether the rest is worth it.
const PROBE_LEN: usize = 256 * 1024;

/// Deflate level: 6 is zlib's default; see docs/benchmarks.md for the measurement behind it.
pub const DEFLATE_LEVEL: u32 = 6;

/// An entry ready to be written: contents already in their stored form.
#[derive(Debug, Clone)]
pub struct PreparedEntry {
    pub name: String,
    pub kind: EntryKind,
    pub mode: u32,
    pub method: u16,
    pub crc32: u32,
    pub size: u64,
    pub data: Vec<u8>,
}

impl PreparedEntry {
    /// A regular file; `mode` is the source's permission bits (normalised here).
    pub fn file(
        name: String,
        source_mode: u32,
        contents: Vec<u8>,
        compression: Compression,
    ) -> Self {
        let crc32 = crc32fast::hash(&contents);
        let size = contents.len() as u64;
        let (method, data) = match compression {
            Compression::Store => (STORED, contents),
            Compression::Deflate => (DEFLATE, method::deflate(&contents, DEFLATE_LEVEL)),
            Compression::Auto => {
                // Tiny files are not worth an inflater; a large file whose first 256 KiB do
                // not shrink is taken to be compressed already (media, archives): not worth
                // deflating it all to find out.
                let probe = &contents[..contents.len().min(PROBE_LEN)];
                let worth_it = |z: &[u8], of: &[u8]| (z.len() as u64) * 10 < (of.len() as u64) * 9;
                let tiny = contents.len() < MIN_DEFLATE_LEN;
                let incompressible = contents.len() > PROBE_LEN
                    && !worth_it(&method::deflate(probe, DEFLATE_LEVEL), probe);
                if tiny || incompressible {
                    (STORED, contents)
                } else {
                    let z = method::deflate(&contents, DEFLATE_LEVEL);
                    if worth_it(&z, &contents) {
                        (DEFLATE, z)
                    } else {
                        (STORED, contents)
                    }
                }
            }
        };
        PreparedEntry {
            name,
            kind: EntryKind::File,
            mode: super::normalised_mode(EntryKind::File, source_mode),
            method,
            crc32,
            size,
            data,
        }
    }

    pub fn dir(name: String) -> Self {
        PreparedEntry {
            name,
            kind: EntryKind::Dir,
            mode: super::normalised_mode(EntryKind::Dir, 0),
            method: STORED,
            crc32: 0,
            size: 0,
            data: Vec::new(),
        }
    }

    /// A symlink; its target is stored as the entry's contents, as Info-ZIP does.
    pub fn symlink(name: String, target: &str) -> Self {
        PreparedEntry {
            name,
            kind: EntryKind::Symlink,
            mode: super::normalised_mode(EntryKind::Symlink, 0),
            method: STORED,
            crc32: crc32fast::hash(target.as_bytes()),
            size: target.len() as u64,
            data: target.as_bytes().to_vec(),
        }
    }
}

/// What [`ArchiveWriter::finish`] reports.
#[derive(Debug)]
pub struct Finished<W> {
    pub out: W,
    pub trailer: Trailer,
    /// Zip offset just past the last byte written.
    pub end: u64,
    /// Number of app entries (not counting wrapkit's own).
    pub entries: u64,
}

/// Writes a payload to `out`, which must be positioned at zip offset `start` (the stub's length).
pub struct ArchiveWriter<W: Write> {
    out: W,
    hasher: blake3::Hasher,
    pos: u64,
    start: u64,
    dos: (u16, u16),
    central: Vec<u8>,
    count: u64,
    index: IndexBuilder,
}

impl<W: Write> ArchiveWriter<W> {
    /// `mtime` (Unix seconds) is stamped on every entry.
    pub fn new(out: W, start: u64, mtime: i64) -> Self {
        ArchiveWriter {
            out,
            hasher: blake3::Hasher::new(),
            pos: start,
            start,
            dos: zip::dos_datetime(mtime),
            central: Vec::new(),
            count: 0,
            index: IndexBuilder::default(),
        }
    }

    fn emit(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.out.write_all(bytes)?;
        self.hasher.update(bytes);
        self.pos += bytes.len() as u64;
        Ok(())
    }

    /// Writes one app entry. Its name must pass [`path::validate`] and not be reserved.
    pub fn add(&mut self, e: &PreparedEntry) -> io::Result<()> {
        let invalid = |why: String| io::Error::new(io::ErrorKind::InvalidInput, why);
        path::validate(&e.name).map_err(|err| invalid(format!("`{}`: {err}", e.name)))?;
        if path::is_reserved(&e.name) {
            return Err(invalid(format!("`{}` is reserved for wrapkit", e.name)));
        }
        let header_offset = self.write_entry(e)?;
        self.index.push(&Entry {
            name: &e.name,
            kind: e.kind,
            method: e.method,
            mode: e.mode,
            crc32: e.crc32,
            header_offset,
            compressed_size: e.data.len() as u64,
            size: e.size,
        });
        Ok(())
    }

    /// Writes local header and data, queues the central record; returns the header's offset.
    fn write_entry(&mut self, e: &PreparedEntry) -> io::Result<u64> {
        let zip_name = match e.kind {
            EntryKind::Dir => format!("{}/", e.name),
            _ => e.name.clone(),
        };
        let fields = HeaderFields {
            flags: if zip_name.is_ascii() { 0 } else { FLAG_UTF8 },
            method: e.method,
            dos_time: self.dos.0,
            dos_date: self.dos.1,
            crc32: e.crc32,
            compressed_size: e.data.len() as u64,
            size: e.size,
        };
        let offset = self.pos;
        self.emit(&zip::encode_local(&zip_name, &fields))?;
        self.emit(&e.data)?;
        let dos_dir_bit = if e.kind == EntryKind::Dir { 0x10 } else { 0 };
        let attrs = ((e.kind.type_bits() | e.mode) << 16) | dos_dir_bit;
        self.central
            .extend_from_slice(&zip::encode_central(&zip_name, &fields, attrs, offset));
        self.count += 1;
        Ok(offset)
    }

    /// Appends the index, the manifest, the central directory and the trailer.
    pub fn finish(mut self, manifest: &Manifest) -> io::Result<Finished<W>> {
        let entries = self.count;
        let index = std::mem::take(&mut self.index).encode();
        let index_at = self.write_entry(&reserved(INDEX_NAME, index))?;
        let manifest_at = self.write_entry(&reserved(MANIFEST_NAME, manifest.to_json()))?;

        let end = CentralEnd {
            entries: self.count,
            cd_size: self.central.len() as u64,
            cd_offset: self.pos,
        };
        let central = std::mem::take(&mut self.central);
        self.emit(&central)?;

        // Everything up to the classic end record is covered by the digest; the end record
        // holds the trailer, which holds the digest.
        let placeholder = zip::encode_end(&end, self.pos, &[0; TRAILER_LEN]);
        let zip64_len = placeholder.len() - zip::EOCD_LEN - TRAILER_LEN;
        self.emit(&placeholder[..zip64_len])?;
        let trailer = Trailer {
            version: FORMAT_VERSION,
            start: self.start,
            index: index_at,
            manifest: manifest_at,
            digest: *self.hasher.finalize().as_bytes(),
        };
        let full = zip::encode_end(&end, self.pos - zip64_len as u64, &trailer.encode());
        self.out.write_all(&full[zip64_len..])?;
        self.out.flush()?;
        Ok(Finished {
            out: self.out,
            trailer,
            end: self.pos + (full.len() - zip64_len) as u64,
            entries,
        })
    }
}

fn reserved(name: &str, contents: Vec<u8>) -> PreparedEntry {
    PreparedEntry {
        name: name.to_owned(),
        kind: EntryKind::File,
        mode: 0o644,
        method: STORED,
        crc32: crc32fast::hash(&contents),
        size: contents.len() as u64,
        data: contents,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn noise(n: usize) -> Vec<u8> {
        let mut x: u32 = 0x2545_f491;
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                x as u8
            })
            .collect()
    }

    #[test]
    fn auto_stores_what_does_not_shrink_and_deflates_what_does() {
        let method =
            |data: Vec<u8>| PreparedEntry::file("f".into(), 0o644, data, Compression::Auto).method;
        assert_eq!(method(b"tiny".to_vec()), STORED);
        assert_eq!(
            method(b"x".repeat(1000)),
            STORED,
            "under 1 KiB: not worth an inflater"
        );
        assert_eq!(method(b"text that repeats ".repeat(100_000)), DEFLATE);
        assert_eq!(method(noise(100_000)), STORED);
        assert_eq!(method(noise(2 << 20)), STORED, "judged by the probe");
        let mut mixed = noise(PROBE_LEN);
        mixed.extend(b"text that repeats ".repeat(500_000));
        assert_eq!(method(mixed), STORED, "the probe decides for large files");
    }

    #[test]
    fn prepared_files_keep_size_crc_and_normalised_mode() {
        let e = PreparedEntry::file("f".into(), 0o4777, b"abc".to_vec(), Compression::Deflate);
        assert_eq!(
            (e.size, e.crc32, e.mode, e.method),
            (3, crc32fast::hash(b"abc"), 0o755, DEFLATE)
        );
    }
}
