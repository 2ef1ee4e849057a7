//! Reading a payload: [`Archive`] is a validated, read-only view of a packed executable's bytes.
//!
//! [`Archive::open`] costs O(1) whatever the number of entries: it reads the end records and the
//! trailer at the end of the file, then the index and manifest headers the trailer points to.
//! Every entry is checked when it is used: its local header must agree with the index (name,
//! method, CRC, sizes), its data must lie inside the archive, and compressed data is inflated no
//! further than its declared size and checked against its CRC.
//!
//! Offsets inside a zip are "zip offsets"; a reader works in file positions. The two differ by
//! the displacement computed from where the central directory really is, as `unzip` and Python's
//! `zipfile` do, so a payload still reads if bytes were added or removed in front of it.

use std::borrow::Cow;

use crate::format::index::{Entry, Index};
use crate::format::links::{self, LinkError, Node, Resolved};
use crate::format::manifest::Manifest;
use crate::format::trailer::{TRAILER_LEN, Trailer};
use crate::format::zip::{self, CentralEnd, Eocd, FLAG_DATA_DESCRIPTOR, FLAG_ENCRYPTED};
use crate::format::{EntryKind, FormatError, INDEX_NAME, MANIFEST_NAME, elf, method};

/// A payload, opened.
#[derive(Debug, Clone)]
pub struct Archive<'a> {
    bytes: &'a [u8],
    /// File position minus zip offset.
    delta: i64,
    trailer: Trailer,
    index: Index<'a>,
    manifest: &'a [u8],
    /// File positions of the archive's first byte, the central directory, and the EOCD.
    start_pos: u64,
    cd_pos: u64,
    eocd_pos: u64,
    end: CentralEnd,
    carried: Option<elf::Carried>,
}

impl<'a> Archive<'a> {
    /// Finds and checks the payload of `bytes` (a whole packed executable): in the stub's
    /// wrapkit note (format 2, [`elf::find`]), else at the end of the file (format 1, and
    /// stubs that cannot carry a note).
    pub fn open(file: &'a [u8]) -> Result<Self, FormatError> {
        let carried = elf::find(file)?;
        // The archive ends where the note's descriptor ends; everything after is ELF structure.
        let bytes = match carried {
            Some(c) => &file[..c.end as usize],
            None => file,
        };
        let len = bytes.len() as u64;
        let tail = (zip::EOCD_LEN + TRAILER_LEN) as u64;
        let eocd_pos = len
            .checked_sub(tail)
            .ok_or_else(|| FormatError::no_payload(file))?;
        let eocd = zip::slice(bytes, eocd_pos, zip::EOCD_LEN)
            .and_then(Eocd::decode)
            .filter(|e| e.comment_len as usize == TRAILER_LEN)
            .ok_or_else(|| FormatError::no_payload(file))?;
        let comment_pos = eocd_pos + zip::EOCD_LEN as u64;
        let trailer = Trailer::decode(&bytes[comment_pos as usize..], comment_pos)?;
        if eocd.disk != 0 || eocd.cd_disk != 0 || eocd.entries_disk != eocd.entries {
            return Err(FormatError::malformed(
                "end of central directory",
                eocd_pos,
                "multi-disk archives are not supported",
            ));
        }
        let (end, cd_end_pos) = if eocd.defers_to_zip64() {
            zip::decode_zip64(bytes, eocd_pos)?
        } else {
            let end = CentralEnd {
                entries: eocd.entries as u64,
                cd_size: eocd.cd_size as u64,
                cd_offset: eocd.cd_offset as u64,
            };
            (end, eocd_pos)
        };
        let cd_pos = cd_end_pos.checked_sub(end.cd_size).ok_or_else(|| {
            FormatError::malformed(
                "end of central directory",
                eocd_pos,
                format!("central directory size {} exceeds the file", end.cd_size),
            )
        })?;
        if end.entries.saturating_mul(zip::CENTRAL_LEN as u64) > end.cd_size {
            return Err(FormatError::malformed(
                "end of central directory",
                eocd_pos,
                format!(
                    "{} entries cannot fit in a {}-byte central directory",
                    end.entries, end.cd_size
                ),
            ));
        }
        let delta = i64::try_from(cd_pos as i128 - end.cd_offset as i128).map_err(|_| {
            FormatError::malformed("end of central directory", eocd_pos, "offset out of range")
        })?;
        let mut archive = Archive {
            bytes,
            delta,
            trailer,
            index: Index::empty(),
            manifest: &[],
            start_pos: 0,
            cd_pos,
            eocd_pos,
            end,
            carried,
        };
        archive.start_pos = archive
            .position(archive.trailer.start)
            .filter(|&p| p <= cd_pos && carried.is_none_or(|c| p >= c.start))
            .ok_or(FormatError::BadTrailer {
                offset: comment_pos,
                reason: "the archive start lies outside the file",
            })?;
        let (index_pos, index_bytes) = archive.reserved_entry(archive.trailer.index, INDEX_NAME)?;
        archive.index = Index::parse(index_bytes, index_pos)?;
        archive.manifest = archive
            .reserved_entry(archive.trailer.manifest, MANIFEST_NAME)?
            .1;
        Ok(archive)
    }

    /// Reads one of wrapkit's own stored entries through its local header.
    fn reserved_entry(
        &self,
        offset: u64,
        name: &'static str,
    ) -> Result<(u64, &'a [u8]), FormatError> {
        let pos = self
            .position(offset)
            .filter(|&p| p >= self.start_pos && p < self.cd_pos)
            .ok_or_else(|| {
                FormatError::entry(name, format!("offset {offset} lies outside the archive"))
            })?;
        let lh = zip::decode_local(self.bytes, pos)?;
        if lh.name != name.as_bytes() || lh.fields.method != method::STORED {
            return Err(FormatError::malformed(
                "local header",
                pos,
                format!("expected the stored entry `{name}`"),
            ));
        }
        let data = self.data_slice(name, lh.data_pos, lh.fields.compressed_size)?;
        if name == MANIFEST_NAME {
            // A few hundred bytes that decide what runs: always checked.
            method::check_crc(name, data, lh.fields.crc32)?;
        }
        Ok((lh.data_pos, data))
    }

    fn data_slice(&self, name: &str, pos: u64, len: u64) -> Result<&'a [u8], FormatError> {
        pos.checked_add(len)
            .filter(|&end| end <= self.cd_pos)
            .and_then(|_| zip::slice(self.bytes, pos, usize::try_from(len).ok()?))
            .ok_or_else(|| {
                FormatError::entry(
                    name,
                    format!("its {len} bytes at {pos} run past the archive"),
                )
            })
    }

    /// The file position of zip offset `offset`, if it lies inside the file.
    pub fn position(&self, offset: u64) -> Option<u64> {
        let p = i128::from(offset) + i128::from(self.delta);
        u64::try_from(p)
            .ok()
            .filter(|&p| p <= self.bytes.len() as u64)
    }

    pub fn trailer(&self) -> &Trailer {
        &self.trailer
    }

    pub fn index(&self) -> &Index<'a> {
        &self.index
    }

    /// The file up to the archive's last byte (the whole file when the payload is appended).
    pub fn bytes(&self) -> &'a [u8] {
        self.bytes
    }

    /// The stub bytes the manifest's stub record covers: the loaded image when the payload is
    /// carried in a note (compare with [`elf::image_info`]), else everything before the archive.
    pub fn stub(&self) -> &'a [u8] {
        let end = self.carried.map_or(self.start_pos, |c| c.image_end);
        &self.bytes[..end as usize]
    }

    /// The note that carries the payload, if it is carried in one (format 2).
    pub fn carried(&self) -> Option<&elf::Carried> {
        self.carried.as_ref()
    }

    /// File position of the first archive byte.
    pub fn start_pos(&self) -> u64 {
        self.start_pos
    }

    /// File position of the central directory and its size.
    pub fn central_directory(&self) -> (u64, u64) {
        (self.cd_pos, self.end.cd_size)
    }

    /// File position of the end-of-central-directory record.
    pub fn eocd_pos(&self) -> u64 {
        self.eocd_pos
    }

    /// The end-of-central-directory values (zip64-resolved), as recorded.
    pub fn central_end(&self) -> &CentralEnd {
        &self.end
    }

    /// Total number of zip entries, wrapkit's own included.
    pub fn zip_entries(&self) -> u64 {
        self.end.entries
    }

    pub fn manifest(&self) -> Result<Manifest, FormatError> {
        Manifest::from_json(self.manifest)
    }

    /// The entry named exactly `name` (no symlink resolution).
    pub fn lookup(&self, name: &str) -> Result<Option<Entry<'a>>, FormatError> {
        if name.is_empty() {
            return Ok(Some(root_entry()));
        }
        self.index.lookup(name)
    }

    /// The entry at `name` after following symlinks in every component, like `stat(2)`, with
    /// the one resolver the validator uses ([`links::Resolver`]). A path that leaves the
    /// archive, even through a chain of links each inside it, resolves to nothing.
    pub fn resolve(&self, name: &str) -> Result<Option<Entry<'a>>, FormatError> {
        let direct = self.lookup(name)?;
        if !self.index.has_symlinks()
            || direct
                .as_ref()
                .is_some_and(|e| e.kind != EntryKind::Symlink)
        {
            return Ok(direct);
        }
        let mut resolver = links::Resolver::new(|candidate: &str| {
            let Some(entry) = self.lookup(candidate)? else {
                return Ok(Node::Missing);
            };
            Ok(match entry.kind {
                EntryKind::Dir => Node::Dir,
                EntryKind::File => Node::File,
                EntryKind::Symlink => {
                    let target = self.contents(&entry, true)?;
                    let target = std::str::from_utf8(&target).map_err(|_| {
                        FormatError::entry(entry.name, "symlink target is not UTF-8")
                    })?;
                    Node::Symlink(target.to_owned())
                }
            })
        });
        match resolver.resolve(name) {
            Ok(Resolved::Found { name, .. }) => self.lookup(&name),
            Ok(Resolved::Missing) | Err(LinkError::Leaves { .. }) => Ok(None),
            Err(LinkError::TooManyLinks { .. }) => Err(FormatError::LinkLoop {
                name: name.to_owned(),
            }),
            Err(LinkError::Lookup(err)) => Err(err),
        }
    }

    /// The entry's bytes as stored (compressed or not), after checking its local header
    /// against the index.
    pub fn raw_data(&self, e: &Entry<'_>) -> Result<&'a [u8], FormatError> {
        let pos = self
            .position(e.header_offset)
            .filter(|&p| p >= self.start_pos && p < self.cd_pos)
            .ok_or_else(|| {
                FormatError::entry(
                    e.name,
                    format!(
                        "its local header offset {} lies outside the archive",
                        e.header_offset
                    ),
                )
            })?;
        let lh = zip::decode_local(self.bytes, pos)?;
        let f = &lh.fields;
        if f.flags & FLAG_ENCRYPTED != 0 {
            return Err(FormatError::entry(e.name, "it is encrypted"));
        }
        if f.flags & FLAG_DATA_DESCRIPTOR != 0 {
            return Err(FormatError::entry(
                e.name,
                "it uses a data descriptor, which wrapkit never writes",
            ));
        }
        let name_matches = match e.kind {
            EntryKind::Dir => lh.name.strip_suffix(b"/") == Some(e.name.as_bytes()),
            _ => lh.name == e.name.as_bytes(),
        };
        if !name_matches {
            return Err(FormatError::entry(
                e.name,
                format!(
                    "the local header at {pos} names `{}` instead",
                    String::from_utf8_lossy(lh.name)
                ),
            ));
        }
        if (f.method, f.crc32, f.compressed_size, f.size)
            != (e.method, e.crc32, e.compressed_size, e.size)
        {
            return Err(FormatError::entry(
                e.name,
                format!(
                    "the local header at {pos} disagrees with the index (method, CRC or sizes)"
                ),
            ));
        }
        method::check_sizes(e.name, f.method, f.compressed_size, f.size)?;
        self.data_slice(e.name, lh.data_pos, f.compressed_size)
    }

    /// The entry's contents. Stored entries are borrowed from the mapping (checked against
    /// their CRC only when `check_stored_crc`, since that touches every page); compressed ones
    /// are inflated and always checked.
    pub fn contents(
        &self,
        e: &Entry<'_>,
        check_stored_crc: bool,
    ) -> Result<Cow<'a, [u8]>, FormatError> {
        let raw = self.raw_data(e)?;
        if e.method == method::STORED {
            if check_stored_crc {
                method::check_crc(e.name, raw, e.crc32)?;
            }
            return Ok(Cow::Borrowed(raw));
        }
        method::decompress(e.name, e.method, raw, e.size, e.crc32).map(Cow::Owned)
    }
}

/// The archive root, which has no entry of its own.
fn root_entry() -> Entry<'static> {
    Entry {
        name: "",
        kind: EntryKind::Dir,
        method: method::STORED,
        mode: 0o755,
        crc32: 0,
        header_offset: 0,
        compressed_size: 0,
        size: 0,
    }
}
