//! The index: a sorted, fixed-width table of every app entry, stored uncompressed as
//! `.wrapkit/index` so a reader can binary-search it straight from the mapped file.
//!
//! ```text
//! header   16 bytes  "WKIX" | u32 version | u32 count | u32 flags
//! records  count × 48 bytes, sorted by name (bytewise)
//!            u32 name offset (into names) | u32 name length | u8 kind | u8 0 | u16 method
//!            u32 mode | u32 crc32 | u32 0 | u64 local header offset (zip offset)
//!            u64 compressed size | u64 size
//! names    the names, concatenated (UTF-8, `/`-separated, no trailing slash)
//! ```
//!
//! Opening checks only the header and the lengths (O(1)). Each record is bounds-checked when it
//! is read, and a record only ever leads to data through its local header, which the archive
//! reader cross-checks, so a corrupt index can make a lookup miss but never serve bytes under
//! the wrong name. [`Index::validate`] does the full O(n) check (sortedness, names) for `verify`.

use super::zip::Reader;
use super::{EntryKind, FormatError};

const MAGIC: &[u8; 4] = b"WKIX";
const VERSION: u32 = 1;
const HEADER_LEN: usize = 16;
const RECORD_LEN: usize = 48;
/// Flag: some entry is a symlink, so path resolution must look for links.
pub const FLAG_HAS_SYMLINKS: u32 = 1;

/// One entry as the index describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry<'a> {
    pub name: &'a str,
    pub kind: EntryKind,
    pub method: u16,
    /// Permission bits (no file-type bits).
    pub mode: u32,
    pub crc32: u32,
    /// Zip offset of the entry's local header.
    pub header_offset: u64,
    pub compressed_size: u64,
    pub size: u64,
}

/// A read-only view of an encoded index.
#[derive(Debug, Clone, Copy)]
pub struct Index<'a> {
    records: &'a [u8],
    names: &'a [u8],
    count: usize,
    flags: u32,
}

impl<'a> Index<'a> {
    /// Checks the header and lengths. `offset` (the file position of the index data) is only
    /// used in messages.
    pub fn parse(bytes: &'a [u8], offset: u64) -> Result<Self, FormatError> {
        let bad = |reason: String| FormatError::malformed("index", offset, reason);
        let mut r = Reader::new(bytes);
        if r.take(4) != Some(MAGIC.as_slice()) {
            return Err(bad("magic not found".into()));
        }
        let (version, count, flags) = match (r.u32(), r.u32(), r.u32()) {
            (Some(v), Some(c), Some(f)) => (v, c as usize, f),
            _ => return Err(bad("truncated header".into())),
        };
        if version != VERSION {
            return Err(bad(format!("unknown index version {version}")));
        }
        let records_len = count
            .checked_mul(RECORD_LEN)
            .filter(|&n| n <= bytes.len() - HEADER_LEN)
            .ok_or_else(|| {
                bad(format!(
                    "{count} records do not fit in {} bytes",
                    bytes.len()
                ))
            })?;
        let (records, names) = bytes[HEADER_LEN..].split_at(records_len);
        Ok(Index {
            records,
            names,
            count,
            flags,
        })
    }

    /// An index with no entries, as a placeholder before the real one is read.
    pub(crate) fn empty() -> Self {
        Index {
            records: &[],
            names: &[],
            count: 0,
            flags: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    pub fn has_symlinks(&self) -> bool {
        self.flags & FLAG_HAS_SYMLINKS != 0
    }

    fn record(&self, i: usize) -> &'a [u8] {
        &self.records[i * RECORD_LEN..(i + 1) * RECORD_LEN]
    }

    /// The name of record `i`, or `None` if its bounds are corrupt.
    pub fn name_bytes(&self, i: usize) -> Option<&'a [u8]> {
        let rec = self.record(i);
        let off = u32::from_le_bytes(rec[0..4].try_into().ok()?) as usize;
        let len = u32::from_le_bytes(rec[4..8].try_into().ok()?) as usize;
        self.names.get(off..off.checked_add(len)?)
    }

    /// Decodes record `i` (which must be `< len()`).
    pub fn get(&self, i: usize) -> Result<Entry<'a>, FormatError> {
        let bad = |reason: &str| FormatError::malformed("index record", i as u64, reason);
        let name = self
            .name_bytes(i)
            .ok_or_else(|| bad("its name lies outside the name table"))?;
        let name = std::str::from_utf8(name).map_err(|_| bad("its name is not UTF-8"))?;
        let mut r = Reader::new(&self.record(i)[8..]);
        let kind_byte = r.take(1).map(|b| b[0]);
        let kind = kind_byte
            .and_then(EntryKind::from_byte)
            .ok_or_else(|| bad("unknown entry kind"))?;
        let _reserved = r.take(1);
        let fields = (
            r.u16(),
            r.u32(),
            r.u32(),
            r.u32(),
            r.u64(),
            r.u64(),
            r.u64(),
        );
        let (
            Some(method),
            Some(mode),
            Some(crc32),
            Some(_),
            Some(header_offset),
            Some(cs),
            Some(size),
        ) = fields
        else {
            return Err(bad("truncated"));
        };
        Ok(Entry {
            name,
            kind,
            method,
            mode,
            crc32,
            header_offset,
            compressed_size: cs,
            size,
        })
    }

    /// Binary search for the first record whose name is `>= key`.
    pub fn lower_bound(&self, key: &[u8]) -> usize {
        let (mut lo, mut hi) = (0, self.count);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if self.name_bytes(mid).unwrap_or_default() < key {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        lo
    }

    /// The entry named exactly `name`, in O(log n).
    pub fn lookup(&self, name: &str) -> Result<Option<Entry<'a>>, FormatError> {
        let i = self.lower_bound(name.as_bytes());
        if i < self.count && self.name_bytes(i) == Some(name.as_bytes()) {
            return self.get(i).map(Some);
        }
        Ok(None)
    }

    /// The direct children of directory `dir` ("" for the root), in order. Costs
    /// O(log n + entries below `dir`).
    pub fn children(&self, dir: &str) -> impl Iterator<Item = Result<Entry<'a>, FormatError>> + '_ {
        let prefix = if dir.is_empty() {
            String::new()
        } else {
            format!("{dir}/")
        };
        let start = self.lower_bound(prefix.as_bytes());
        let prefix_len = prefix.len();
        (start..self.count)
            .map_while(move |i| {
                let name = self.name_bytes(i)?;
                name.starts_with(prefix.as_bytes()).then_some((i, name))
            })
            .filter(move |(_, name)| !name[prefix_len..].contains(&b'/'))
            .map(move |(i, _)| self.get(i))
    }

    /// All entries in order.
    pub fn iter(&self) -> impl Iterator<Item = Result<Entry<'a>, FormatError>> + '_ {
        (0..self.count).map(move |i| self.get(i))
    }

    /// The full check: every record decodes and names are strictly increasing. O(n).
    pub fn validate(&self) -> Result<(), FormatError> {
        let mut prev: Option<&[u8]> = None;
        for i in 0..self.count {
            let e = self.get(i)?;
            if prev.is_some_and(|p| p >= e.name.as_bytes()) {
                return Err(FormatError::malformed(
                    "index record",
                    i as u64,
                    format!("`{}` is out of order or repeated", e.name),
                ));
            }
            prev = Some(e.name.as_bytes());
        }
        Ok(())
    }
}

/// Builds an encoded index from entries given in any order.
#[derive(Debug, Default)]
pub struct IndexBuilder {
    entries: Vec<OwnedEntry>,
}

#[derive(Debug)]
struct OwnedEntry {
    name: String,
    kind: EntryKind,
    method: u16,
    mode: u32,
    crc32: u32,
    header_offset: u64,
    compressed_size: u64,
    size: u64,
}

impl IndexBuilder {
    pub fn push(&mut self, e: &Entry<'_>) {
        self.entries.push(OwnedEntry {
            name: e.name.to_owned(),
            kind: e.kind,
            method: e.method,
            mode: e.mode,
            crc32: e.crc32,
            header_offset: e.header_offset,
            compressed_size: e.compressed_size,
            size: e.size,
        });
    }

    /// The encoded index. Counts and name offsets are 32-bit: more entries or name bytes than
    /// that is an error ([`super::limits::LIMITS`] keeps well below it), never a truncation.
    pub fn encode(mut self) -> Result<Vec<u8>, FormatError> {
        let too_big = |what: &str| {
            FormatError::malformed("index", 0, format!("{what} do not fit in 32 bits"))
        };
        let count = u32::try_from(self.entries.len()).map_err(|_| too_big("the entries"))?;
        let names_total: usize = self.entries.iter().map(|e| e.name.len()).sum();
        u32::try_from(names_total).map_err(|_| too_big("the names"))?;
        self.entries
            .sort_by(|a, b| a.name.as_bytes().cmp(b.name.as_bytes()));
        let flags = if self.entries.iter().any(|e| e.kind == EntryKind::Symlink) {
            FLAG_HAS_SYMLINKS
        } else {
            0
        };
        let names_len: usize = self.entries.iter().map(|e| e.name.len()).sum();
        let mut out = Vec::with_capacity(HEADER_LEN + self.entries.len() * RECORD_LEN + names_len);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&VERSION.to_le_bytes());
        out.extend_from_slice(&count.to_le_bytes());
        out.extend_from_slice(&flags.to_le_bytes());
        let mut name_off = 0u32;
        for e in &self.entries {
            // Both fit: every name, and all of them together, are within `names_total`.
            let len = e.name.len() as u32;
            out.extend_from_slice(&name_off.to_le_bytes());
            out.extend_from_slice(&len.to_le_bytes());
            out.push(e.kind.to_byte());
            out.push(0);
            out.extend_from_slice(&e.method.to_le_bytes());
            out.extend_from_slice(&e.mode.to_le_bytes());
            out.extend_from_slice(&e.crc32.to_le_bytes());
            out.extend_from_slice(&0u32.to_le_bytes());
            out.extend_from_slice(&e.header_offset.to_le_bytes());
            out.extend_from_slice(&e.compressed_size.to_le_bytes());
            out.extend_from_slice(&e.size.to_le_bytes());
            name_off += len;
        }
        for e in &self.entries {
            out.extend_from_slice(e.name.as_bytes());
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(name: &str, kind: EntryKind) -> Entry<'_> {
        Entry {
            name,
            kind,
            method: 0,
            mode: 0o644,
            crc32: 1,
            header_offset: 2,
            compressed_size: 3,
            size: 3,
        }
    }

    #[test]
    fn lookup_and_children() {
        let mut b = IndexBuilder::default();
        for (n, k) in [
            ("lib/b.lua", EntryKind::File),
            ("lib", EntryKind::Dir),
            ("a.lua", EntryKind::File),
            ("lib/sub", EntryKind::Dir),
            ("lib/sub/c.lua", EntryKind::File),
            ("lib.lua", EntryKind::File),
        ] {
            b.push(&entry(n, k));
        }
        let bytes = b.encode().unwrap();
        let idx = Index::parse(&bytes, 0).unwrap();
        idx.validate().unwrap();
        assert_eq!(
            idx.lookup("lib/b.lua").unwrap().unwrap().kind,
            EntryKind::File
        );
        assert!(idx.lookup("lib/missing").unwrap().is_none());
        assert!(idx.lookup("li").unwrap().is_none());
        let kids: Vec<_> = idx.children("lib").map(|e| e.unwrap().name).collect();
        assert_eq!(kids, ["lib/b.lua", "lib/sub"]);
        let top: Vec<_> = idx.children("").map(|e| e.unwrap().name).collect();
        assert_eq!(top, ["a.lua", "lib", "lib.lua"]);
    }

    #[test]
    fn a_count_that_cannot_fit_is_rejected_without_allocating() {
        let mut bytes = IndexBuilder::default().encode().unwrap();
        bytes[8..12].copy_from_slice(&u32::MAX.to_le_bytes());
        let (parsed, allocated) = crate::test_alloc::allocated_by(|| Index::parse(&bytes, 0));
        let err = parsed.unwrap_err().to_string();
        assert!(err.contains("4294967295 records do not fit"), "{err}");
        // Only the message: nothing sized by the claimed count.
        assert!(allocated < 1024, "{allocated} bytes allocated");
    }
}
