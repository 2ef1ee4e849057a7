//! Just enough ELF to tell "the payload was stripped" from "the file is damaged".
//!
//! `strip` and `objcopy` rewrite an executable from its sections and drop everything after them,
//! so a stripped packed executable ends exactly where its ELF image (section header table,
//! segments) ends. [`image_end`] computes that end from the ELF header and program headers;
//! anything not a 64-bit little-endian ELF gives `None`.

use super::zip::{Reader, slice};

/// The file offset where the ELF image's last byte ends.
pub fn image_end(bytes: &[u8]) -> Option<u64> {
    let header = slice(bytes, 0, 64)?;
    if &header[..4] != b"\x7fELF" || header[4] != 2 || header[5] != 1 {
        return None;
    }
    let mut r = Reader::new(&header[0x20..]);
    let phoff = r.u64()?;
    let shoff = r.u64()?;
    let mut r = Reader::new(&header[0x36..]);
    let (phentsize, phnum, shentsize, shnum) = (r.u16()?, r.u16()?, r.u16()?, r.u16()?);
    let mut end = shoff.checked_add(u64::from(shentsize) * u64::from(shnum))?;
    end = end.max(phoff.checked_add(u64::from(phentsize) * u64::from(phnum))?);
    for i in 0..u64::from(phnum) {
        let ph = slice(bytes, phoff.checked_add(i * u64::from(phentsize))?, 56)?;
        let mut r = Reader::new(&ph[8..]);
        let offset = r.u64()?;
        let _vaddr = r.u64()?;
        let _paddr = r.u64()?;
        let filesz = r.u64()?;
        end = end.max(offset.checked_add(filesz)?);
    }
    Some(end)
}
