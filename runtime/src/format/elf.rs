//! The payload carried inside the stub's ELF file, so that `strip` and `objcopy` keep it.
//!
//! Since format 2 the packer does not append the archive to the stub: it inserts it right after
//! the stub's loaded image (everything a program header covers), as the descriptor of an ELF
//! note in a non-allocated `SHT_NOTE` section named `.note.wrapkit`, moves the stub's remaining
//! bytes (non-loaded sections, the section header table) after it, and writes a new section
//! header table with one more entry:
//!
//! ```text
//! [ stub's loaded image ][ note: namesz 8, descsz, type, "wrapkit\0", stub record (24), zip ]
//! [ padding ][ the stub's other bytes, moved ][ .shstrtab + ".note.wrapkit" ][ section headers ]
//! ```
//!
//! Every stripping tool measured (binutils `strip`, `strip --strip-unneeded`, `objcopy
//! --strip-all`, `eu-strip`, and `dh_strip`'s `strip --remove-section=.comment
//! --remove-section=.note`) keeps non-allocated notes, keeps the loaded image as it is, and lays
//! the sections after it out again: the note stays at the same file offset, so the zip's
//! absolute offsets stay right, and only the section header table moves. A reader finds the
//! note with a walk of the section headers ([`find`]): the ELF header, then at most
//! [`MAX_SECTIONS`] headers, then the note header. That is still O(1) in the payload.
//!
//! The stub record lets the packer give back the exact stub a packed file was made from
//! (`--runtime PACKED`): its length and its ELF header's section fields. The manifest's stub
//! digest covers the loaded image with those header fields zeroed ([`image_info`]), which is
//! what strip leaves alone: a stripped file is not a damaged one.

use super::FormatError;
use super::manifest::StubInfo;
use super::zip::{Reader, slice};

/// The note's owner name.
pub const NOTE_NAME: &[u8; 8] = b"wrapkit\0";
/// The note's type: the descriptor is the stub record, then the zip archive.
pub const NOTE_TYPE: u32 = 0x5750_0002;
/// Note header (12), name (8), stub record (24): the archive starts this far into the section.
pub const NOTE_PREFIX: u64 = 44;
/// The section's name, added to the section name table.
pub const SECTION_NAME: &[u8] = b".note.wrapkit\0";
/// More section headers than this is not a stub (a linked executable has a few dozen).
pub const MAX_SECTIONS: u64 = 4096;

const SHT_NOTE: u32 = 7;
const SHT_NOBITS: u32 = 8;
const SHT_RELA: u32 = 4;
const SHT_REL: u32 = 9;
const SHT_SYMTAB: u32 = 2;
const SHF_ALLOC: u64 = 2;
const SHF_INFO_LINK: u64 = 0x40;
const SHDR: u64 = 64;
const PHDR: u64 = 56;

/// What the stub looked like before the payload went in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StubRecord {
    pub len: u64,
    pub shoff: u64,
    pub shnum: u16,
    pub shstrndx: u16,
    /// The alignment the moved bytes kept (the padding after the note rounds up to it).
    pub align: u32,
}

/// A payload found in a note.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Carried {
    /// File offset and size of the note section.
    pub section: u64,
    pub section_size: u64,
    /// File positions of the archive's first byte and one past its last.
    pub start: u64,
    pub end: u64,
    /// Where the loaded image ends: the stub bytes the manifest's digest covers.
    pub image_end: u64,
    pub record: StubRecord,
}

/// The ELF header fields this module reads.
struct Header {
    phoff: u64,
    shoff: u64,
    phnum: u64,
    shentsize: u16,
    shnum: u64,
    shstrndx: u16,
}

fn header(bytes: &[u8]) -> Option<Header> {
    let h = slice(bytes, 0, 64)?;
    if &h[..4] != b"\x7fELF" || h[4] != 2 || h[5] != 1 {
        return None;
    }
    let mut r = Reader::new(&h[0x20..]);
    let (phoff, shoff) = (r.u64()?, r.u64()?);
    let mut r = Reader::new(&h[0x36..]);
    let (phentsize, phnum, shentsize, shnum, shstrndx) =
        (r.u16()?, r.u16()?, r.u16()?, r.u16()?, r.u16()?);
    (phentsize as u64 == PHDR || phnum == 0).then_some(Header {
        phoff,
        shoff,
        phnum: phnum.into(),
        shentsize,
        shnum: shnum.into(),
        shstrndx,
    })
}

/// The end of everything a program header covers (at least the ELF header and program headers).
fn image_end(bytes: &[u8], h: &Header) -> Option<u64> {
    let mut end = h.phoff.checked_add(h.phnum * PHDR)?.max(64);
    for i in 0..h.phnum {
        let ph = slice(bytes, h.phoff + i * PHDR, PHDR as usize)?;
        let mut r = Reader::new(&ph[8..]);
        let offset = r.u64()?;
        let filesz = Reader::new(&ph[32..]).u64()?;
        end = end.max(offset.checked_add(filesz)?);
    }
    Some(end)
}

/// One section header: (type, flags, offset, size, align).
fn section(bytes: &[u8], at: u64) -> Option<(u32, u64, u64, u64, u64)> {
    let s = slice(bytes, at, SHDR as usize)?;
    let mut r = Reader::new(&s[4..]);
    let (kind, flags, _addr, offset, size) = (r.u32()?, r.u64()?, r.u64()?, r.u64()?, r.u64()?);
    let align = Reader::new(&s[48..]).u64()?;
    Some((kind, flags, offset, size, align))
}

/// The file offset where the ELF image's last byte ends (sections, headers and segments): a
/// file with no payload that ends there was never packed, or lost an appended payload to strip.
pub fn file_end(bytes: &[u8]) -> Option<u64> {
    let h = header(bytes)?;
    let mut end = image_end(bytes, &h)?.max(h.shoff.checked_add(h.shnum * SHDR)?);
    for i in 0..h.shnum {
        if let Some((kind, _, offset, size, _)) = section(bytes, h.shoff + i * SHDR)
            && kind != SHT_NOBITS
        {
            end = end.max(offset.saturating_add(size));
        }
    }
    Some(end)
}

/// Finds the payload note by walking the section headers. `None` when `bytes` is not a 64-bit
/// little-endian ELF file, has no section header table inside the file (a truncated file: the
/// caller then looks at the end of the file, and says what is missing), or has no wrapkit note.
/// Section headers that are there but make no sense are an error.
pub fn find(bytes: &[u8]) -> Result<Option<Carried>, FormatError> {
    let Some(h) = header(bytes) else {
        return Ok(None);
    };
    let len = bytes.len() as u64;
    let table_end = h.shoff.checked_add(h.shnum * SHDR);
    if h.shoff == 0 || h.shnum == 0 || table_end.is_none_or(|end| end > len) {
        return Ok(None);
    }
    let bad = |offset, reason: String| FormatError::malformed("ELF section header", offset, reason);
    if h.shentsize as u64 != SHDR {
        return Err(bad(0x3a, format!("entry size {} is not 64", h.shentsize)));
    }
    if h.shnum > MAX_SECTIONS {
        return Err(bad(
            0x3c,
            format!("{} section headers (at most {MAX_SECTIONS})", h.shnum),
        ));
    }
    for i in 0..h.shnum {
        let at = h.shoff + i * SHDR;
        let Some((SHT_NOTE, flags, offset, size, _)) = section(bytes, at) else {
            continue;
        };
        if flags & SHF_ALLOC != 0 {
            continue;
        }
        let section_end = offset
            .checked_add(size)
            .filter(|&end| end <= len)
            .ok_or_else(|| {
                bad(
                    at,
                    format!(
                        "a note section ({size} bytes at {offset}) runs past the end of the file"
                    ),
                )
            })?;
        let note = slice(bytes, offset, NOTE_PREFIX as usize);
        if note.is_none_or(|n| &n[12..20] != NOTE_NAME) {
            continue;
        }
        let image_end = image_end(bytes, &h)
            .filter(|&end| end <= offset)
            .ok_or_else(|| {
                bad(
                    at,
                    format!("the wrapkit note at {offset} overlaps the loaded image"),
                )
            })?;
        let note = note.expect("checked above");
        let mut r = Reader::new(note);
        let (namesz, descsz, kind) = (r.u32(), r.u32().unwrap_or(0) as u64, r.u32());
        let mut r = Reader::new(&note[20..]);
        let record = (|| {
            Some(StubRecord {
                len: r.u64()?,
                shoff: r.u64()?,
                shnum: r.u16()?,
                shstrndx: r.u16()?,
                align: r.u32()?,
            })
        })()
        .expect("44 bytes hold the record");
        let end = offset + 20 + descsz;
        if namesz != Some(8) || kind != Some(NOTE_TYPE) || descsz < 24 || end > section_end {
            return Err(bad(
                at,
                format!(
                    "the wrapkit note at {offset} does not hold a payload of {descsz} bytes in its {size}"
                ),
            ));
        }
        return Ok(Some(Carried {
            section: offset,
            section_size: size,
            start: offset + NOTE_PREFIX,
            end,
            image_end,
            record,
        }));
    }
    Ok(None)
}

/// Size and BLAKE3 of a loaded image, with the ELF header's section fields (`e_shoff`,
/// `e_shnum`, `e_shstrndx`, which the packer and strip rewrite) taken as zero.
pub fn image_info(image: &[u8]) -> StubInfo {
    let mut h = blake3::Hasher::new();
    if image.len() >= 64 {
        h.update(&image[..0x28]);
        h.update(&[0; 8]);
        h.update(&image[0x30..0x3c]);
        h.update(&[0; 4]);
        h.update(&image[0x40..]);
    } else {
        h.update(image);
    }
    StubInfo {
        size: image.len() as u64,
        blake3: h.finalize().to_hex().to_string(),
    }
}

/// How the packer puts a payload into a stub: built from the stub, then [`Carrier::finish`]ed
/// once the archive's length is known.
#[derive(Debug, Clone)]
pub struct Carrier<'a> {
    stub: &'a [u8],
    /// Where the note goes (the loaded image's end, rounded up to 4).
    at: u64,
    image_end: u64,
    align: u64,
    shoff: u64,
    shnum: u16,
    shstrndx: u16,
    /// The index the note's section header takes.
    slot: u16,
}

/// What [`Carrier::finish`] gives: bytes to write over the ELF header and the note prefix, and
/// the bytes that follow the archive.
#[derive(Debug, Clone)]
pub struct Finish {
    pub header: [u8; 64],
    pub note_prefix: [u8; NOTE_PREFIX as usize],
    pub tail: Vec<u8>,
}

impl<'a> Carrier<'a> {
    /// `None` when the stub cannot carry a note (not a 64-bit little-endian ELF file with a
    /// section header table after its loaded image): the payload is then appended, as in
    /// format 1.
    pub fn new(stub: &'a [u8]) -> Option<Self> {
        let h = header(stub)?;
        let len = stub.len() as u64;
        let image_end = image_end(stub, &h)?;
        let at = image_end.checked_next_multiple_of(4)?;
        let table_end = h.shoff.checked_add(h.shnum * SHDR)?;
        if h.shentsize as u64 != SHDR
            || h.shnum == 0
            || h.shnum >= MAX_SECTIONS
            || h.shoff < at
            || table_end > len
            || u64::from(h.shstrndx) >= h.shnum
            || at > len
        {
            return None;
        }
        let mut align = 8;
        let mut slot = h.shnum;
        for i in 0..h.shnum {
            let (kind, flags, offset, size, a) = section(stub, h.shoff + i * SHDR)?;
            let end = offset.checked_add(size)?;
            // Symbols name section indices, which the note's entry would shift: a stub that
            // still has its symbol table gets its payload appended.
            if kind == SHT_SYMTAB {
                return None;
            }
            if i > 0 && slot == h.shnum && flags & SHF_ALLOC == 0 && offset >= at {
                slot = i;
            }
            if kind == SHT_NOBITS || size == 0 || end <= at {
                continue;
            }
            if offset < at || end > len || a > 4096 {
                return None;
            }
            align = align.max(a);
        }
        Some(Carrier {
            stub,
            at,
            image_end,
            align,
            shoff: h.shoff,
            shnum: h.shnum as u16,
            shstrndx: h.shstrndx,
            slot: slot as u16,
        })
    }

    /// File position of the archive's first byte.
    pub fn archive_start(&self) -> u64 {
        self.at + NOTE_PREFIX
    }

    /// The stub bytes that go first: the loaded image, up to the note.
    pub fn head(&self) -> &'a [u8] {
        &self.stub[..self.at as usize]
    }

    /// What the manifest records about the stub.
    pub fn stub_info(&self) -> StubInfo {
        image_info(&self.stub[..self.image_end as usize])
    }

    /// The header, note prefix and tail for an archive of `archive_len` bytes.
    /// `None` when the archive is too large for a note (its descriptor size is 32 bits).
    pub fn finish(&self, archive_len: u64) -> Option<Finish> {
        let stub = self.stub;
        let descsz = 24 + archive_len;
        let descsz32 = u32::try_from(descsz).ok()?;
        let section_size = (20 + descsz).next_multiple_of(4);
        let moved_by = (self.at + section_size).next_multiple_of(self.align) - self.at;

        let mut note_prefix = [0u8; NOTE_PREFIX as usize];
        let mut w = Put(&mut note_prefix, 0);
        w.u32(8);
        w.u32(descsz32);
        w.u32(NOTE_TYPE);
        w.bytes(NOTE_NAME);
        w.u64(stub.len() as u64);
        w.u64(self.shoff);
        w.u16(self.shnum);
        w.u16(self.shstrndx);
        w.u32(self.align as u32);

        // The tail starts where the archive ends, before the section's padding to 4.
        let note_end = self.at + 20 + descsz;
        let mut tail = vec![0u8; (self.at + moved_by - note_end) as usize];
        tail.extend_from_slice(&stub[self.at as usize..]);
        let table = |i: u16| {
            let at = (self.shoff + u64::from(i) * SHDR) as usize;
            let mut s = [0u8; SHDR as usize];
            s.copy_from_slice(&stub[at..at + SHDR as usize]);
            s
        };
        let names = table(self.shstrndx);
        let (names_off, names_size) = (le64(&names[24..]), le64(&names[32..]));
        let names_pos = note_end + tail.len() as u64;
        let old_names = stub
            .get(names_off as usize..names_off.saturating_add(names_size) as usize)
            .unwrap_or_default();
        tail.extend_from_slice(old_names);
        tail.extend_from_slice(SECTION_NAME);
        let table_pos = (note_end + tail.len() as u64).next_multiple_of(8);
        tail.resize((table_pos - note_end) as usize, 0);
        // binutils lays sections out in index order: the note's entry goes before the first
        // section after the loaded image, so it stays where it is when strip rewrites the file.
        let bump = |n: u32| if n >= u32::from(self.slot) { n + 1 } else { n };
        for i in 0..self.shnum {
            if i == self.slot {
                let mut s = [0u8; SHDR as usize];
                let mut w = Put(&mut s, 0);
                w.u32(old_names.len() as u32);
                w.u32(SHT_NOTE);
                w.u64(0);
                w.u64(0);
                w.u64(self.at);
                w.u64(section_size);
                w.u32(0);
                w.u32(0);
                w.u64(4);
                w.u64(0);
                tail.extend_from_slice(&s);
            }
            let mut s = table(i);
            let (kind, flags, offset) = (le32(&s[4..]), le64(&s[8..]), le64(&s[24..]));
            if i == self.shstrndx {
                s[24..32].copy_from_slice(&names_pos.to_le_bytes());
                let size = old_names.len() as u64 + SECTION_NAME.len() as u64;
                s[32..40].copy_from_slice(&size.to_le_bytes());
            } else if kind != 0 && offset >= self.at {
                s[24..32].copy_from_slice(&(offset + moved_by).to_le_bytes());
            }
            let link = bump(le32(&s[40..]));
            s[40..44].copy_from_slice(&link.to_le_bytes());
            if flags & SHF_INFO_LINK != 0 || kind == SHT_REL || kind == SHT_RELA {
                let info = bump(le32(&s[44..]));
                s[44..48].copy_from_slice(&info.to_le_bytes());
            }
            tail.extend_from_slice(&s);
        }

        let mut header = [0u8; 64];
        header.copy_from_slice(&stub[..64]);
        header[0x28..0x30].copy_from_slice(&table_pos.to_le_bytes());
        header[0x3c..0x3e].copy_from_slice(&(self.shnum + 1).to_le_bytes());
        let shstrndx = bump(self.shstrndx.into()) as u16;
        header[0x3e..0x40].copy_from_slice(&shstrndx.to_le_bytes());
        Some(Finish {
            header,
            note_prefix,
            tail,
        })
    }
}

/// The stub a packed file was made from, if the file is exactly as the packer wrote it (not
/// stripped or otherwise rewritten since): rebuilt from the stub record, then checked by
/// carrying the same archive again and comparing every byte outside it.
pub fn original_stub(bytes: &[u8], c: &Carried) -> Option<Vec<u8>> {
    let r = c.record;
    let moved_by = (c.section + c.section_size)
        .checked_next_multiple_of(u64::from(r.align).max(1))?
        - c.section;
    let rest = r.len.checked_sub(c.section)?;
    let from = c.section.checked_add(moved_by)?;
    let mut stub = bytes.get(..c.section as usize)?.to_vec();
    stub.extend_from_slice(bytes.get(from as usize..from.checked_add(rest)? as usize)?);
    stub.get_mut(0x28..0x30)?
        .copy_from_slice(&r.shoff.to_le_bytes());
    stub[0x3c..0x3e].copy_from_slice(&r.shnum.to_le_bytes());
    stub[0x3e..0x40].copy_from_slice(&r.shstrndx.to_le_bytes());
    let carrier = Carrier::new(&stub)?;
    let f = carrier.finish(c.end - c.start)?;
    let same = carrier.at == c.section
        && bytes.get(..64) == Some(&f.header[..])
        && slice(bytes, c.section, NOTE_PREFIX as usize) == Some(&f.note_prefix[..])
        && bytes.get(c.end as usize..) == Some(&f.tail[..]);
    same.then_some(stub)
}

fn le64(b: &[u8]) -> u64 {
    u64::from_le_bytes(b[..8].try_into().expect("8 bytes"))
}

fn le32(b: &[u8]) -> u32 {
    u32::from_le_bytes(b[..4].try_into().expect("4 bytes"))
}

/// A little-endian writer into a fixed buffer.
struct Put<'b>(&'b mut [u8], usize);

impl Put<'_> {
    fn bytes(&mut self, b: &[u8]) {
        self.0[self.1..self.1 + b.len()].copy_from_slice(b);
        self.1 += b.len();
    }
    fn u16(&mut self, v: u16) {
        self.bytes(&v.to_le_bytes());
    }
    fn u32(&mut self, v: u32) {
        self.bytes(&v.to_le_bytes());
    }
    fn u64(&mut self, v: u64) {
        self.bytes(&v.to_le_bytes());
    }
}

/// Where the archive carried in `file`'s note ends, read with a few `pread`s (the ELF header,
/// the section headers, one note header), for callers that do not map the file. `None` when
/// the file carries no note: its archive, if any, ends at the end of the file.
pub fn archive_end_in(file: &std::fs::File, len: u64) -> Option<u64> {
    use std::os::unix::fs::FileExt;
    let mut h = [0u8; 64];
    file.read_exact_at(&mut h, 0).ok()?;
    let h = header(&h)?;
    if h.shentsize as u64 != SHDR || h.shnum == 0 || h.shnum > MAX_SECTIONS {
        return None;
    }
    let mut table = vec![0u8; (h.shnum * SHDR) as usize];
    file.read_exact_at(&mut table, h.shoff).ok()?;
    (0..h.shnum).find_map(|i| {
        let (kind, flags, offset, size, _) = section(&table, i * SHDR)?;
        let mut note = [0u8; 20];
        if kind != SHT_NOTE
            || flags & SHF_ALLOC != 0
            || file.read_exact_at(&mut note, offset).is_err()
            || &note[12..20] != NOTE_NAME
        {
            return None;
        }
        let end = offset.checked_add(20 + u64::from(le32(&note[4..])))?;
        (end <= len && end <= offset.saturating_add(size)).then_some(end)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal ELF64 stub: header, one PT_LOAD over the first 0x100 bytes, a `.comment`-like
    /// section after it, a name table and three section headers.
    fn stub() -> Vec<u8> {
        let mut b = vec![0u8; 0x100];
        b[..6].copy_from_slice(b"\x7fELF\x02\x01");
        b[0x20..0x28].copy_from_slice(&64u64.to_le_bytes()); // e_phoff
        b[0x36..0x38].copy_from_slice(&56u16.to_le_bytes());
        b[0x38..0x3a].copy_from_slice(&1u16.to_le_bytes());
        b[0x3a..0x3c].copy_from_slice(&64u16.to_le_bytes());
        b[0x3c..0x3e].copy_from_slice(&3u16.to_le_bytes());
        b[0x3e..0x40].copy_from_slice(&2u16.to_le_bytes());
        b[64..68].copy_from_slice(&1u32.to_le_bytes()); // PT_LOAD
        b[64 + 32..64 + 40].copy_from_slice(&0x100u64.to_le_bytes()); // p_filesz
        b.extend_from_slice(b"comment\0");
        let names_at = b.len() as u64;
        b.extend_from_slice(b"\0.c\0.shstrtab\0");
        let names_len = b.len() as u64 - names_at;
        b.resize(b.len().next_multiple_of(8), 0);
        let shoff = b.len() as u64;
        b[0x28..0x30].copy_from_slice(&shoff.to_le_bytes());
        b.extend_from_slice(&[0; 64]);
        let mut put = |name: u32, kind: u32, off: u64, size: u64| {
            let mut s = [0u8; 64];
            let mut w = Put(&mut s, 0);
            w.u32(name);
            w.u32(kind);
            w.u64(0);
            w.u64(0);
            w.u64(off);
            w.u64(size);
            w.u64(0);
            w.u64(1);
            b.extend_from_slice(&s);
        };
        put(1, 1, 0x100, 8);
        put(4, 3, names_at, names_len);
        b
    }

    fn carried(archive: &[u8]) -> Vec<u8> {
        let stub = stub();
        let c = Carrier::new(&stub).expect("the stub carries a note");
        let f = c.finish(archive.len() as u64).unwrap();
        let mut out = c.head().to_vec();
        out[..64].copy_from_slice(&f.header);
        out.extend_from_slice(&f.note_prefix);
        out.extend_from_slice(archive);
        out.extend_from_slice(&f.tail);
        out
    }

    #[test]
    fn a_carried_archive_is_found_and_the_stub_given_back() {
        let file = carried(b"ARCHIVE");
        let c = find(&file).unwrap().expect("a note");
        assert_eq!(&file[c.start as usize..c.end as usize], b"ARCHIVE");
        assert_eq!(c.image_end, 0x100);
        assert_eq!(original_stub(&file, &c), Some(stub()));
        assert_eq!(file_end(&file), Some(file.len() as u64));
        let end = archive_end_in(&tempfile_with(&file), file.len() as u64);
        assert_eq!(end, Some(c.end));
    }

    fn tempfile_with(bytes: &[u8]) -> std::fs::File {
        use std::io::{Seek, Write};
        let mut f = tempfile::tempfile().unwrap();
        f.write_all(bytes).unwrap();
        f.rewind().unwrap();
        f
    }

    #[test]
    fn section_headers_that_make_no_sense_are_errors_and_nothing_panics() {
        let file = carried(b"ARCHIVE");
        let shoff = le64(&file[0x28..]) as usize;
        let at = (0..4)
            .map(|i| shoff + i * 64)
            .find(|&a| le32(&file[a + 4..]) == SHT_NOTE)
            .unwrap();
        let mut huge = file.clone();
        huge[at + 32..at + 40].copy_from_slice(&u64::MAX.to_le_bytes());
        assert!(find(&huge).is_err());
        let mut count = file.clone();
        count[0x28..0x30].copy_from_slice(&64u64.to_le_bytes());
        count[0x3c..0x3e].copy_from_slice(&5000u16.to_le_bytes());
        let count = [count, vec![0; 5000 * 64]].concat();
        assert!(find(&count).is_err());
        // Every truncation and every single-byte change: an answer, never a panic.
        for cut in 0..file.len() {
            let _ = find(&file[..cut]);
            let _ = file_end(&file[..cut]);
        }
        for i in 0..file.len() {
            let mut b = file.clone();
            b[i] ^= 0xff;
            if let Ok(Some(c)) = find(&b) {
                assert!(c.start <= c.end && c.end <= b.len() as u64);
                let _ = original_stub(&b, &c);
            }
        }
    }
}
