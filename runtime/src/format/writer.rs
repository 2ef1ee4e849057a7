//! Writing a payload: the packer hands entries in, this module decides every byte.
//!
//! Entries are prepared (compressed, checksummed) independently, so the packer can do that in
//! parallel, then written in the order given; [`ArchiveWriter::finish`] appends the index, the
//! manifest, the central directory and the trailer. Nothing depends on the clock, the umask or
//! the machine: the same entries give the same bytes.

use std::io::{self, Read, Write};

use super::index::{Entry, IndexBuilder};
use super::limits::{LIMITS, Limits, Tally};
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

/// Whether deflating `original` bytes down to `compressed` saves the 10 % `Auto` asks for.
fn worth_deflating(compressed: u64, original: u64) -> bool {
    compressed * 10 < original * 9
}

/// For `Auto`: a file over [`PROBE_LEN`] whose first `PROBE_LEN` bytes do not shrink is stored
/// without deflating the rest. `start` is the beginning of the file (at least `PROBE_LEN`
/// bytes of it when the file is longer).
fn probe_says_store(start: &[u8]) -> bool {
    let probe = &start[..start.len().min(PROBE_LEN)];
    start.len() > PROBE_LEN
        && !worth_deflating(
            method::deflate(probe, DEFLATE_LEVEL).len() as u64,
            probe.len() as u64,
        )
}

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
                let tiny = contents.len() < MIN_DEFLATE_LEN;
                if tiny || probe_says_store(&contents) {
                    (STORED, contents)
                } else {
                    let z = method::deflate(&contents, DEFLATE_LEVEL);
                    if worth_deflating(z.len() as u64, contents.len() as u64) {
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

    fn index_entry(&self, header_offset: u64) -> Entry<'_> {
        Entry {
            name: &self.name,
            kind: self.kind,
            method: self.method,
            mode: self.mode,
            crc32: self.crc32,
            header_offset,
            compressed_size: self.data.len() as u64,
            size: self.size,
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
    limits: Limits,
    tally: Tally,
}

impl<W: Write> ArchiveWriter<W> {
    /// `mtime` (Unix seconds) is stamped on every entry.
    pub fn new(out: W, start: u64, mtime: i64) -> Self {
        Self::with_limits(out, start, mtime, LIMITS)
    }

    /// As [`new`](Self::new), refusing entries beyond `limits` instead of [`LIMITS`] (tests
    /// use small ones; readers apply [`LIMITS`], so nothing beyond them should be written).
    pub fn with_limits(out: W, start: u64, mtime: i64, limits: Limits) -> Self {
        ArchiveWriter {
            limits,
            tally: Tally::default(),
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

    /// Counts an entry against the limits, refusing it when it would cross one: the writer
    /// never writes what [`crate::validate`] refuses.
    fn admit(&mut self, name: &str, kind: EntryKind, size: u64) -> io::Result<()> {
        self.limits
            .admit(&mut self.tally, name, kind == EntryKind::Symlink, size)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))
    }

    fn emit(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.out.write_all(bytes)?;
        self.hasher.update(bytes);
        self.pos += bytes.len() as u64;
        Ok(())
    }

    /// Writes one app entry. Its name must pass [`path::validate`] and not be reserved.
    pub fn add(&mut self, e: &PreparedEntry) -> io::Result<()> {
        check_name(&e.name)?;
        self.admit(&e.name, e.kind, e.size)?;
        let header_offset = self.write_entry(e)?;
        self.index.push(&e.index_entry(header_offset));
        Ok(())
    }

    /// Writes a file too large to hold in memory, reading it twice through `open`: once to learn
    /// its size, CRC and how it will be stored, once to write it. The bytes are exactly those
    /// [`PreparedEntry::file`] and [`add`](Self::add) would write for the same contents. A file
    /// that changes between the two reads is an error.
    pub fn add_streamed<R: Read>(
        &mut self,
        name: String,
        source_mode: u32,
        compression: Compression,
        mut open: impl FnMut() -> io::Result<R>,
    ) -> Result<(), StreamError> {
        check_name(&name).map_err(StreamError::Output)?;
        let plan = Plan::measure(open().map_err(StreamError::Source)?, compression)?;
        self.admit(&name, EntryKind::File, plan.size)
            .map_err(StreamError::Output)?;
        let head = PreparedEntry {
            name,
            kind: EntryKind::File,
            mode: super::normalised_mode(EntryKind::File, source_mode),
            method: plan.method,
            crc32: plan.crc32,
            size: plan.size,
            data: Vec::new(),
        };
        let header_offset = self.write_entry_with(&head, plan.compressed_size, |w| {
            let source = open().map_err(StreamError::Source)?;
            plan.write(source, &mut Emit(w))
        })?;
        let mut entry = head.index_entry(header_offset);
        entry.compressed_size = plan.compressed_size;
        self.index.push(&entry);
        Ok(())
    }

    /// Writes local header and data, queues the central record; returns the header's offset.
    fn write_entry(&mut self, e: &PreparedEntry) -> io::Result<u64> {
        self.write_entry_with(e, e.data.len() as u64, |w| w.emit(&e.data))
    }

    /// As [`write_entry`](Self::write_entry), with the data written by `data`, which must write
    /// exactly `compressed_size` bytes.
    fn write_entry_with<E: From<io::Error>>(
        &mut self,
        e: &PreparedEntry,
        compressed_size: u64,
        data: impl FnOnce(&mut Self) -> Result<(), E>,
    ) -> Result<u64, E> {
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
            compressed_size,
            size: e.size,
        };
        let offset = self.pos;
        self.emit(&zip::encode_local(&zip_name, &fields))?;
        let data_start = self.pos;
        data(self)?;
        if self.pos - data_start != compressed_size {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "`{}`: its data came out at a different length than measured",
                    e.name
                ),
            )
            .into());
        }
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
        let index = std::mem::take(&mut self.index)
            .encode()
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
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

fn check_name(name: &str) -> io::Result<()> {
    let invalid = |why: String| io::Error::new(io::ErrorKind::InvalidInput, why);
    path::validate(name).map_err(|err| invalid(format!("`{name}`: {err}")))?;
    if path::is_reserved(name) {
        return Err(invalid(format!("`{name}` is reserved for wrapkit")));
    }
    Ok(())
}

/// Why [`ArchiveWriter::add_streamed`] failed: reading the source, or writing the output.
#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    #[error("cannot read the file")]
    Source(#[source] io::Error),
    #[error("cannot write the output")]
    Output(#[source] io::Error),
}

impl From<io::Error> for StreamError {
    fn from(e: io::Error) -> Self {
        StreamError::Output(e)
    }
}

/// What the first read of a streamed file found.
struct Plan {
    size: u64,
    crc32: u32,
    method: u16,
    compressed_size: u64,
    compression_level: u32,
}

const CHUNK: usize = 1 << 20;

impl Plan {
    fn measure(mut source: impl Read, compression: Compression) -> Result<Self, StreamError> {
        let mut crc = crc32fast::Hasher::new();
        let mut size = 0u64;
        let mut start = Vec::new();
        let mut counter = match compression {
            Compression::Store => None,
            _ => Some(flate2::write::DeflateEncoder::new(
                Count(0),
                flate2::Compression::new(DEFLATE_LEVEL),
            )),
        };
        let mut buf = vec![0u8; CHUNK];
        loop {
            let n = read_some(&mut source, &mut buf)?;
            if n == 0 {
                break;
            }
            let chunk = &buf[..n];
            crc.update(chunk);
            size += n as u64;
            if start.len() <= PROBE_LEN {
                start.extend_from_slice(&chunk[..n.min(PROBE_LEN + 1 - start.len())]);
                if compression == Compression::Auto
                    && start.len() > PROBE_LEN
                    && probe_says_store(&start)
                {
                    counter = None;
                }
            }
            if let Some(enc) = counter.as_mut() {
                enc.write_all(chunk).map_err(StreamError::Output)?;
            }
        }
        let deflated = counter
            .map(|enc| enc.finish().map(|c| c.0))
            .transpose()
            .map_err(StreamError::Output)?;
        let method = match (compression, deflated) {
            (Compression::Deflate, Some(_)) => DEFLATE,
            (Compression::Auto, Some(z))
                if size as usize >= MIN_DEFLATE_LEN && worth_deflating(z, size) =>
            {
                DEFLATE
            }
            _ => STORED,
        };
        Ok(Plan {
            size,
            crc32: crc.finalize(),
            method,
            compressed_size: if method == DEFLATE {
                deflated.unwrap_or(size)
            } else {
                size
            },
            compression_level: DEFLATE_LEVEL,
        })
    }

    /// The second read: writes the data as planned, checking the file did not change.
    fn write(&self, source: impl Read, out: &mut impl Write) -> Result<(), StreamError> {
        let (size, crc32) = if self.method == DEFLATE {
            let mut encoder = flate2::write::DeflateEncoder::new(
                out,
                flate2::Compression::new(self.compression_level),
            );
            let read = copy_checksummed(source, &mut encoder)?;
            encoder.finish()?;
            read
        } else {
            copy_checksummed(source, out)?
        };
        if (size, crc32) != (self.size, self.crc32) {
            return Err(StreamError::Source(io::Error::new(
                io::ErrorKind::InvalidData,
                "it changed while it was being packed",
            )));
        }
        Ok(())
    }
}

/// Copies `source` to `out`; returns the bytes copied and their CRC-32.
fn copy_checksummed(
    mut source: impl Read,
    out: &mut impl Write,
) -> Result<(u64, u32), StreamError> {
    let mut crc = crc32fast::Hasher::new();
    let mut size = 0u64;
    let mut buf = vec![0u8; CHUNK];
    loop {
        let n = read_some(&mut source, &mut buf)?;
        if n == 0 {
            return Ok((size, crc.finalize()));
        }
        crc.update(&buf[..n]);
        size += n as u64;
        out.write_all(&buf[..n])?;
    }
}

fn read_some(source: &mut impl Read, buf: &mut [u8]) -> Result<usize, StreamError> {
    loop {
        match source.read(buf) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            other => return other.map_err(StreamError::Source),
        }
    }
}

/// Counts bytes written to it.
struct Count(u64);

impl Write for Count {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0 += buf.len() as u64;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Writes through an [`ArchiveWriter`], so the bytes are hashed and counted.
struct Emit<'a, W: Write>(&'a mut ArchiveWriter<W>);

impl<W: Write> Write for Emit<'_, W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.emit(buf)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
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

    /// Small limits, so each can be crossed in a unit test.
    const SMALL: Limits = Limits {
        max_entries: 3,
        max_entry_size: 100,
        max_total_size: 150,
        max_link_len: 8,
        max_name_len: 12,
        max_names_total: 30,
    };

    fn file(name: &str, size: usize) -> PreparedEntry {
        PreparedEntry::file(name.into(), 0o644, vec![b'x'; size], Compression::Store)
    }

    /// Writes `entries` with `limits`: the first refusal, or the finished archive's bytes.
    fn write(limits: Limits, entries: &[PreparedEntry]) -> Result<Vec<u8>, String> {
        let stub = b"\x7fELF".to_vec();
        let mut w = ArchiveWriter::with_limits(stub.clone(), stub.len() as u64, 0, limits);
        for e in entries {
            w.add(e).map_err(|e| e.to_string())?;
        }
        let manifest = Manifest {
            format: FORMAT_VERSION,
            name: "t".into(),
            version: "1".into(),
            packer: "test".into(),
            stub: super::super::manifest::StubInfo::of(&stub),
            run: super::super::manifest::Run::Lua { entry: "a".into() },
            layers: Vec::new(),
        };
        Ok(w.finish(&manifest).map_err(|e| e.to_string())?.out)
    }

    #[test]
    fn the_writer_refuses_what_the_validator_would_refuse_limit_by_limit() {
        let cases: [(&str, Vec<PreparedEntry>, &str); 6] = [
            (
                "entries",
                vec![file("a", 1), file("b", 1), file("c", 1), file("d", 1)],
                "the limit of 3 entries",
            ),
            (
                "entry size",
                vec![file("a", 101)],
                "limit of 100 for one entry",
            ),
            (
                "total size",
                vec![file("a", 100), file("b", 51)],
                "limit of 150 in all",
            ),
            (
                "name length",
                vec![file("abcdefghijklm", 1)],
                "name is 13 bytes, over the limit of 12",
            ),
            (
                "link target",
                vec![PreparedEntry::symlink("l".into(), "123456789")],
                "target is 9 bytes, over the limit of 8",
            ),
            (
                "names in all",
                vec![
                    file("abcdefghijkl", 1),
                    file("bcdefghijklm", 1),
                    file("cdefghi", 1),
                ],
                "names to 31 bytes",
            ),
        ];
        for (what, entries, expected) in cases {
            // The writer stops at the entry that crosses the limit...
            let err = write(SMALL, &entries).expect_err(what);
            assert!(err.contains(expected), "{what}: {err}");
            // ...and the same archive written without that limit is refused by the validator
            // holding it: one rule, applied on both sides.
            let bytes = write(LIMITS, &entries).unwrap();
            let archive = crate::archive::Archive::open(&bytes).unwrap();
            let err = crate::validate::validate_with(&archive, &SMALL)
                .expect_err(what)
                .to_string();
            assert!(err.contains(expected), "validator, {what}: {err}");
        }
        // Just inside every limit: written and accepted.
        let fits = [file("abcdefghijkl", 100), file("b", 50)];
        let bytes = write(SMALL, &fits).unwrap();
        let archive = crate::archive::Archive::open(&bytes).unwrap();
        crate::validate::validate_with(&archive, &SMALL).unwrap();
    }

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

    fn archive(add: impl FnOnce(&mut ArchiveWriter<Vec<u8>>)) -> Vec<u8> {
        let mut w = ArchiveWriter::new(Vec::new(), 0, 0);
        add(&mut w);
        let manifest = Manifest {
            format: FORMAT_VERSION,
            name: "t".into(),
            version: "0".into(),
            packer: "test".into(),
            stub: crate::format::manifest::StubInfo::of(b""),
            run: crate::format::manifest::Run::Lua { entry: "f".into() },
            layers: Vec::new(),
        };
        w.finish(&manifest).unwrap().out
    }

    #[test]
    fn streamed_files_are_written_exactly_as_prepared_ones() {
        let mut mixed = noise(PROBE_LEN);
        mixed.extend(b"text that repeats ".repeat(30_000));
        let mut text_then_noise = b"text that repeats ".repeat(30_000);
        text_then_noise.extend(noise(3 * CHUNK));
        let cases = [
            Vec::new(),
            b"tiny".to_vec(),
            b"text that repeats ".repeat(200_000),
            noise(3 * CHUNK + 17),
            mixed,
            text_then_noise,
        ];
        for contents in cases {
            for compression in [Compression::Auto, Compression::Store, Compression::Deflate] {
                let prepared = archive(|w| {
                    w.add(&PreparedEntry::file(
                        "f".into(),
                        0o755,
                        contents.clone(),
                        compression,
                    ))
                    .unwrap()
                });
                let streamed = archive(|w| {
                    w.add_streamed("f".into(), 0o755, compression, || {
                        Ok(std::io::Cursor::new(&contents))
                    })
                    .unwrap()
                });
                assert!(
                    prepared == streamed,
                    "{} bytes, {compression:?}",
                    contents.len()
                );
            }
        }
    }

    #[test]
    fn a_file_that_changes_between_the_two_reads_is_an_error() {
        let mut reads = 0;
        let mut w = ArchiveWriter::new(Vec::new(), 0, 0);
        let err = w
            .add_streamed("f".into(), 0o644, Compression::Store, || {
                reads += 1;
                Ok(std::io::Cursor::new(if reads == 1 {
                    b"one".to_vec()
                } else {
                    b"two".to_vec()
                }))
            })
            .unwrap_err();
        assert!(matches!(err, StreamError::Source(_)), "{err:?}");
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
