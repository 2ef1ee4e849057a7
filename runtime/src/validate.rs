//! The one validator: the full check of an archive before anything trusts all of it.
//!
//! [`Archive::open`] is O(1) and checks entries lazily as they are read, which is right for
//! start-up. Everything that touches every entry — `extract`, `verify`, `ls`, filling the exec
//! cache — first calls [`validate`], which walks the central directory once and rejects, before
//! anything is written or any large allocation made:
//!
//! - names that are not UTF-8 (or not flagged as such), that fail the format's rules
//!   (traversal, absolute, backslash, drive letter, control characters), or that collide with
//!   another name exactly, after case-folding or NFC normalisation;
//! - a file (or symlink) that is also a directory prefix of another entry;
//! - symlinks that leave the tree when followed as the OS would, through every other link
//!   ([`crate::format::links`]), and special file types;
//! - encrypted, multi-disk, data-descriptor and unknown-method entries;
//! - local headers that disagree with the central directory (name, method, flags, CRC, sizes);
//! - entries that overlap each other or the central directory, or lie outside the archive;
//! - sizes no compression method could produce, and counts or totals beyond [`LIMITS`];
//! - an index or trailer that disagrees with the central directory.
//!
//! It does not inflate anything or check CRCs of data; `verify` does that on top.

use std::collections::HashMap;

use crate::archive::Archive;
use crate::format::index::Entry;
use crate::format::links::{Chain, LinkError, Node, Resolver};
use crate::format::zip::{self, FLAG_DATA_DESCRIPTOR, FLAG_ENCRYPTED, FLAG_UTF8};
use crate::format::{EntryKind, FormatError, INDEX_NAME, MANIFEST_NAME, method, path};

use crate::format::limits::Tally;
pub use crate::format::limits::{LIMITS, Limits};

/// A fully checked archive: its app entries, sorted by name.
#[derive(Debug, Clone)]
pub struct Validated<'a> {
    pub entries: Vec<Entry<'a>>,
    /// Sum of the declared sizes of files.
    pub total_size: u64,
    /// Sum of the stored sizes of files.
    pub total_compressed: u64,
    pub files: u64,
}

/// What the central directory says about one entry.
struct Central<'a> {
    name: &'a str,
    kind: EntryKind,
    mode: u32,
    method: u16,
    crc32: u32,
    compressed_size: u64,
    size: u64,
    offset: u64,
    /// File positions of the local header and the end of the data.
    span: (u64, u64),
}

impl<'a> Central<'a> {
    /// The entry's bytes as stored (its span is already known to lie inside the archive).
    fn data(&self, archive: &Archive<'a>) -> Result<&'a [u8], FormatError> {
        let start = self.span.1 - self.compressed_size;
        zip::slice(archive.bytes(), start, self.compressed_size as usize)
            .ok_or_else(|| FormatError::entry(self.name, "its data lies outside the file"))
    }
}

pub fn validate<'a>(archive: &Archive<'a>) -> Result<Validated<'a>, FormatError> {
    validate_with(archive, &LIMITS)
}

/// [`validate`] against other limits (tests use small ones).
pub fn validate_with<'a>(
    archive: &Archive<'a>,
    limits: &Limits,
) -> Result<Validated<'a>, FormatError> {
    let (cd_pos, cd_size) = archive.central_directory();
    let count = archive.zip_entries();
    if count > limits.max_entries + 2 {
        return Err(FormatError::malformed(
            "central directory",
            cd_pos,
            format!(
                "its {} app entries exceed the limit of {} entries",
                count.saturating_sub(2),
                limits.max_entries
            ),
        ));
    }
    // Every central record takes at least 46 bytes: a count the directory cannot hold is
    // refused before anything is sized by it.
    if count > cd_size / zip::CENTRAL_LEN as u64 {
        return Err(FormatError::malformed(
            "central directory",
            cd_pos,
            format!("{count} records cannot fit in {cd_size} bytes"),
        ));
    }
    let cd = zip::slice(
        archive.bytes(),
        cd_pos,
        usize::try_from(cd_size).unwrap_or(usize::MAX),
    )
    .ok_or_else(|| FormatError::malformed("central directory", cd_pos, "it runs past the file"))?;

    let mut entries: Vec<Central<'a>> = Vec::with_capacity(count as usize);
    let mut reserved: HashMap<&str, u64> = HashMap::new();
    let mut at = 0usize;
    for _ in 0..count {
        let record_pos = cd_pos + at as u64;
        let h = zip::decode_central(&cd[at..], record_pos)?;
        at += h.record_len;
        let c = central_entry(archive, &h, record_pos, limits)?;
        if path::is_reserved(c.name)
            && ((c.name != INDEX_NAME && c.name != MANIFEST_NAME)
                || reserved.insert(c.name, c.offset).is_some())
        {
            return Err(FormatError::entry(
                c.name,
                "unexpected entry in wrapkit's reserved directory",
            ));
        }
        entries.push(c);
    }
    if at as u64 != cd_size {
        return Err(FormatError::malformed(
            "central directory",
            cd_pos,
            format!("{count} records take {at} bytes, but the directory is {cd_size} bytes"),
        ));
    }
    check_spans(archive, &entries)?;
    let tree = check_names(&entries)?;
    check_trailer(archive, &reserved)?;
    for c in entries.iter().filter(|c| path::is_reserved(c.name)) {
        check_reserved_data(archive, c)?;
    }

    let app: Vec<&Central<'a>> = entries
        .iter()
        .filter(|c| !path::is_reserved(c.name))
        .collect();
    let mut out = Vec::with_capacity(app.len());
    let (mut total_size, mut total_compressed, mut files) = (0u64, 0u64, 0u64);
    let mut targets = HashMap::new();
    let mut tally = Tally::default();
    for (i, c) in entries.iter().enumerate() {
        if path::is_reserved(c.name) {
            continue;
        }
        // The same rule the writer applied: what one packs, the other reads.
        limits.admit(&mut tally, c.name, c.kind == EntryKind::Symlink, c.size)?;
        if c.kind == EntryKind::File {
            files += 1;
            total_size = total_size.saturating_add(c.size);
            total_compressed = total_compressed.saturating_add(c.compressed_size);
        }
        if c.kind == EntryKind::Symlink {
            targets.insert(i, check_symlink(archive, c, limits)?);
        }
    }
    check_links(&entries, &tree, &targets)?;
    check_index(archive, &app, &mut out)?;
    Ok(Validated {
        entries: out,
        total_size,
        total_compressed,
        files,
    })
}

/// Decodes and checks one central record against its local header.
fn central_entry<'a>(
    archive: &Archive<'a>,
    h: &zip::CentralHeader<'a>,
    record_pos: u64,
    limits: &Limits,
) -> Result<Central<'a>, FormatError> {
    let raw_name = std::str::from_utf8(h.name).map_err(|_| {
        FormatError::malformed(
            "central directory header",
            record_pos,
            "the name is not UTF-8",
        )
    })?;
    if !raw_name.is_ascii() && h.fields.flags & FLAG_UTF8 == 0 {
        return Err(FormatError::entry(
            raw_name,
            "non-ASCII name without the UTF-8 flag (readers would disagree on it)",
        ));
    }
    let f = &h.fields;
    if f.flags & FLAG_ENCRYPTED != 0 {
        return Err(FormatError::entry(raw_name, "it is encrypted"));
    }
    if f.flags & FLAG_DATA_DESCRIPTOR != 0 {
        return Err(FormatError::entry(
            raw_name,
            "it uses a data descriptor, which wrapkit never writes",
        ));
    }
    if h.version_needed & 0xff > zip::MAX_VERSION_NEEDED {
        return Err(FormatError::entry(
            raw_name,
            format!(
                "it needs zip version {}.{}, newer than 4.5",
                (h.version_needed & 0xff) / 10,
                (h.version_needed & 0xff) % 10
            ),
        ));
    }
    if h.disk_start != 0 {
        return Err(FormatError::entry(
            raw_name,
            "it lives on another disk (multi-disk archives are not supported)",
        ));
    }
    let (name, is_dir_name) = match raw_name.strip_suffix('/') {
        Some(n) => (n, true),
        None => (raw_name, false),
    };
    path::validate(name).map_err(|e| FormatError::entry(raw_name, e.to_string()))?;
    let unix_mode = if h.made_by >> 8 == 3 {
        h.external_attrs >> 16
    } else {
        0
    };
    let kind = match (unix_mode & 0o170000, is_dir_name) {
        (0o040000, true) | (0, true) => EntryKind::Dir,
        (0o100000, false) | (0, false) => EntryKind::File,
        (0o120000, false) => EntryKind::Symlink,
        (0o040000, false) | (0o100000 | 0o120000, true) => {
            return Err(FormatError::entry(
                raw_name,
                "its mode and its name disagree on whether it is a directory",
            ));
        }
        (t, _) => {
            return Err(FormatError::entry(
                raw_name,
                format!("unsupported file type {t:o} (device, fifo or socket)"),
            ));
        }
    };
    method::check_sizes(raw_name, f.method, f.compressed_size, f.size)?;
    // wrapkit's own entries are stored, so their size is bounded by the file's.
    if f.size > limits.max_entry_size && !path::is_reserved(name) {
        return Err(FormatError::entry(
            raw_name,
            format!(
                "declares {} bytes, over the limit of {} for one entry",
                f.size, limits.max_entry_size
            ),
        ));
    }
    if kind == EntryKind::Dir && f.size != 0 {
        return Err(FormatError::entry(raw_name, "a directory with contents"));
    }
    let (start, cd_pos) = (archive.start_pos(), archive.central_directory().0);
    let pos = archive
        .position(h.offset)
        .filter(|&p| p >= start && p < cd_pos)
        .ok_or_else(|| {
            FormatError::entry(
                raw_name,
                format!(
                    "its local header offset {} lies outside the archive",
                    h.offset
                ),
            )
        })?;
    let lh = zip::decode_local(archive.bytes(), pos)?;
    let disagree = |what: &str| {
        FormatError::entry(
            raw_name,
            format!("the local header at {pos} disagrees with the central directory ({what})"),
        )
    };
    if lh.name != h.name {
        return Err(disagree("name"));
    }
    if lh.version_needed != h.version_needed {
        return Err(disagree("version needed"));
    }
    if lh.fields.flags != f.flags {
        return Err(disagree("flags"));
    }
    if lh.fields.method != f.method {
        return Err(disagree("method"));
    }
    if lh.fields.crc32 != f.crc32 {
        return Err(disagree("CRC-32"));
    }
    if (lh.fields.compressed_size, lh.fields.size) != (f.compressed_size, f.size) {
        return Err(disagree("sizes"));
    }
    let end = lh
        .data_pos
        .checked_add(f.compressed_size)
        .filter(|&e| e <= cd_pos)
        .ok_or_else(|| {
            FormatError::entry(
                raw_name,
                "its data runs into the central directory or past the file",
            )
        })?;
    Ok(Central {
        name,
        kind,
        mode: unix_mode & 0o7777,
        method: f.method,
        crc32: f.crc32,
        compressed_size: f.compressed_size,
        size: f.size,
        offset: h.offset,
        span: (pos, end),
    })
}

/// No two entries may share bytes (the "overlapping files" zip bomb), and none may start
/// before the archive.
fn check_spans(archive: &Archive<'_>, entries: &[Central<'_>]) -> Result<(), FormatError> {
    let mut spans: Vec<(u64, u64, &str)> = entries
        .iter()
        .map(|c| (c.span.0, c.span.1, c.name))
        .collect();
    spans.sort_unstable();
    if let Some(first) = spans.first().filter(|f| f.0 < archive.start_pos()) {
        return Err(FormatError::entry(first.2, "it starts before the archive"));
    }
    for w in spans.windows(2) {
        if w[1].0 < w[0].1 {
            return Err(FormatError::entry(
                w[1].2,
                format!("its bytes overlap those of `{}`", w[0].2),
            ));
        }
    }
    Ok(())
}

/// Duplicates (exact, case-folded, NFC) and files that are also directory prefixes. Linear in
/// the total length of the names, plus a sort: walking every parent of every name instead is
/// quadratic in their depth (3,000 names of 2,040 components took seconds).
fn check_names<'a>(entries: &[Central<'a>]) -> Result<Tree<'a>, FormatError> {
    let mut by_key: HashMap<String, &str> = HashMap::with_capacity(entries.len());
    for c in entries {
        if let Some(first) = by_key.insert(path::collision_key(c.name), c.name) {
            let why = if first == c.name {
                "it appears twice".to_owned()
            } else {
                format!(
                    "it collides with `{first}` (same name after case-folding or Unicode normalisation)"
                )
            };
            return Err(FormatError::entry(c.name, why));
        }
    }
    let tree = Tree::new(entries);
    for c in entries.iter().filter(|c| c.kind != EntryKind::Dir) {
        if let Some(inside) = tree.first_inside(c.name) {
            return Err(FormatError::entry(
                inside,
                format!(
                    "`{}` is a {} but this entry is inside it",
                    c.name,
                    c.kind.as_str()
                ),
            ));
        }
    }
    Ok(tree)
}

/// Every entry's name, sorted, for lookups by name and by prefix.
struct Tree<'a> {
    /// `(name, index into the entries)`, sorted by name bytewise.
    sorted: Vec<(&'a str, usize)>,
}

impl<'a> Tree<'a> {
    fn new(entries: &[Central<'a>]) -> Self {
        let mut sorted: Vec<(&'a str, usize)> = entries
            .iter()
            .enumerate()
            .map(|(i, c)| (c.name, i))
            .collect();
        sorted.sort_unstable_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
        Tree { sorted }
    }

    /// The entry named exactly `name`.
    fn get(&self, name: &str) -> Option<usize> {
        self.sorted
            .binary_search_by(|(n, _)| n.as_bytes().cmp(name.as_bytes()))
            .ok()
            .map(|i| self.sorted[i].1)
    }

    /// Some name under `dir/`, if any: `dir` is then a directory, listed or not.
    fn first_inside(&self, dir: &str) -> Option<&'a str> {
        let prefix = format!("{dir}/");
        let at = self
            .sorted
            .partition_point(|(n, _)| n.as_bytes() < prefix.as_bytes());
        self.sorted
            .get(at)
            .map(|(n, _)| *n)
            .filter(|n| n.starts_with(&prefix))
    }
}

/// The basic checks of a symlink entry; returns its target.
fn check_symlink<'a>(
    archive: &Archive<'a>,
    c: &Central<'a>,
    limits: &Limits,
) -> Result<&'a str, FormatError> {
    if c.method != method::STORED || c.size > limits.max_link_len {
        return Err(FormatError::entry(
            c.name,
            format!(
                "a symlink must be stored and its target at most {} bytes",
                limits.max_link_len
            ),
        ));
    }
    let data = c.data(archive)?;
    let target = std::str::from_utf8(data)
        .map_err(|_| FormatError::entry(c.name, "its target is not UTF-8"))?;
    if target.is_empty() || target.chars().any(char::is_control) || target.contains('\\') {
        return Err(FormatError::entry(
            c.name,
            "its target is empty or has control characters or backslashes",
        ));
    }
    Ok(target)
}

/// Every symlink, resolved against the whole tree as the OS would follow it, must stay inside:
/// a chain of links each harmless alone (`sub/up -> ..`, `x -> sub/up/../../etc/passwd`) is
/// caught here. Links that loop are left alone (following them fails, it cannot escape); a chain
/// longer than the OS follows is refused, since another system might follow it further.
fn check_links<'a>(
    entries: &[Central<'a>],
    tree: &Tree<'a>,
    targets: &HashMap<usize, &'a str>,
) -> Result<(), FormatError> {
    let mut resolver = Resolver::new(|name: &str| -> Result<Node, std::convert::Infallible> {
        Ok(match tree.get(name) {
            Some(i) => match entries[i].kind {
                EntryKind::Dir => Node::Dir,
                EntryKind::File => Node::File,
                EntryKind::Symlink => Node::Symlink(targets[&i].to_owned()),
            },
            None if tree.first_inside(name).is_some() => Node::Dir,
            None => Node::Missing,
        })
    });
    let mut links: Vec<(&str, &str)> = targets
        .iter()
        .map(|(&i, &target)| (entries[i].name, target))
        .collect();
    links.sort_unstable();
    for (name, target) in links {
        match resolver.resolve(name) {
            Ok(_) | Err(LinkError::TooManyLinks { loop_: true }) => {}
            Err(LinkError::Leaves { chain }) => {
                let through = match chain.get(1..) {
                    Some(rest) if !rest.is_empty() => format!(" (through {})", Chain(rest)),
                    _ => String::new(),
                };
                return Err(FormatError::entry(
                    name,
                    format!("symlink to `{target}` leaves the archive{through}"),
                ));
            }
            Err(err @ LinkError::TooManyLinks { loop_: false }) => {
                return Err(FormatError::entry(
                    name,
                    format!("symlink to `{target}`: {err}"),
                ));
            }
            Err(LinkError::Lookup(never)) => match never {},
        }
    }
    Ok(())
}

/// wrapkit's own entries are small and read by every start: their CRC must hold.
fn check_reserved_data(archive: &Archive<'_>, c: &Central<'_>) -> Result<(), FormatError> {
    if c.method != method::STORED {
        return Err(FormatError::entry(
            c.name,
            "wrapkit's own entries must be stored",
        ));
    }
    method::check_crc(c.name, c.data(archive)?, c.crc32)
}

fn check_trailer(archive: &Archive<'_>, reserved: &HashMap<&str, u64>) -> Result<(), FormatError> {
    let t = archive.trailer();
    for (name, offset) in [(INDEX_NAME, t.index), (MANIFEST_NAME, t.manifest)] {
        if reserved.get(name) != Some(&offset) {
            return Err(FormatError::entry(
                name,
                "the trailer points at a different entry than the central directory lists",
            ));
        }
    }
    Ok(())
}

/// The index must list exactly the app entries of the central directory, with the same facts.
fn check_index<'a>(
    archive: &Archive<'a>,
    app: &[&Central<'a>],
    out: &mut Vec<Entry<'a>>,
) -> Result<(), FormatError> {
    let index = archive.index();
    index.validate()?;
    let mismatch = |name: &str, what: &str| {
        FormatError::entry(
            name,
            format!("the index disagrees with the central directory ({what})"),
        )
    };
    if index.len() != app.len() {
        return Err(FormatError::malformed(
            "index",
            0,
            format!(
                "it lists {} entries, the central directory {}",
                index.len(),
                app.len()
            ),
        ));
    }
    let mut sorted: Vec<&&Central<'a>> = app.iter().collect();
    sorted.sort_unstable_by(|a, b| a.name.as_bytes().cmp(b.name.as_bytes()));
    for (i, c) in sorted.into_iter().enumerate() {
        let e = index.get(i)?;
        if e.name != c.name {
            return Err(mismatch(c.name, "names"));
        }
        if (
            e.kind,
            e.method,
            e.crc32,
            e.compressed_size,
            e.size,
            e.header_offset,
        ) != (
            c.kind,
            c.method,
            c.crc32,
            c.compressed_size,
            c.size,
            c.offset,
        ) {
            return Err(mismatch(c.name, "kind, method, CRC, sizes or offset"));
        }
        if e.mode != c.mode {
            return Err(mismatch(c.name, "mode"));
        }
        out.push(e);
    }
    Ok(())
}
