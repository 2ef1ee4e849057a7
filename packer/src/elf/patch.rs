//! Making room in a dynamically linked executable for a loader path and a library search path
//! that are only known at run time: fixed-size, NUL-padded *slots* for the `PT_INTERP` string and
//! for a `DT_RPATH` string, which the runtime fills with absolute paths into its cache directory.
//!
//! [`reserve`] rewrites a program once, at pack time; [`fill`] is all the runtime does: it writes
//! a string into each slot at a recorded file offset. Nothing is relocated at run time, and the
//! program then runs directly (`execve` of its own path), so `/proc/self/exe`, `argv[0]` and
//! re-executing itself stay honest, even without `/proc`, where `$ORIGIN` does not expand for
//! the main program. staticx reserves fields the same way; patchelf lays the file out anew.
//!
//! # The technique
//!
//! A program header table has no room for another entry, so one `PT_NOTE` entry (one that only
//! duplicates `PT_GNU_PROPERTY` if there is one, else the last) becomes a new `PT_LOAD`: the
//! kernel and glibc's loader do not read `PT_NOTE` of the main program (glibc reads properties
//! from `PT_GNU_PROPERTY`, and the ABI-tag note only of libraries it opens itself), and the note's
//! bytes and its section stay where they were. The new segment is appended to the file at a
//! page-aligned offset, read-write, at the first page above every existing `PT_LOAD`, and holds:
//!
//! 1. the interpreter slot (`capacity` bytes), which `PT_INTERP` now names: the kernel reads the
//!    path from the file, and `ld.so` reads the same string from memory (hence in a `PT_LOAD`);
//! 2. a new dynamic string table: the old `DT_STRTAB` bytes unchanged, so every offset into it
//!    (symbol names, `DT_NEEDED`, version names) stays valid, then the rpath slot;
//! 3. a new dynamic array, which `PT_DYNAMIC` now names: the old entries without `DT_RUNPATH`
//!    and `DT_RPATH`, `DT_STRTAB`/`DT_STRSZ` pointing at the new table, one `DT_RPATH` naming the
//!    slot, and `DT_NULL` with spare `DT_NULL`s after it. It must be writable: `ld.so` writes
//!    `DT_DEBUG` there and relocates the array's pointers in place (it checks `PT_DYNAMIC`'s
//!    `PF_W`, which stays set).
//!
//! The new `PT_LOAD` is kept last among the `PT_LOAD`s in table order (entries are moved up if
//! the note came before a `PT_LOAD`): the ELF specification wants them in ascending order, Linux
//! has sized a PIE's mapping from the first and the last one in table order, and glibc does when
//! it maps a program itself (`ld.so PROG`: "failed to map segment" otherwise, measured). The section headers of
//! `.interp`, `.dynamic` and `.dynstr` are pointed at the new bytes so that `readelf`, goblin and
//! `strip` see what the loader sees; nothing else moves, and the old bytes stay as they were.
//!
//! # Why `DT_RPATH`, not `DT_RUNPATH`
//!
//! On purpose: the executable's `DT_RPATH` is searched for the needs of every library it loads
//! that has no `DT_RUNPATH` of its own (a `DT_RUNPATH` is never inherited), and before
//! `LD_LIBRARY_PATH`, so a user's environment cannot swap a bundled library. An original
//! `DT_RUNPATH` is replaced by the `DT_RPATH` (its string pre-fills the slot), so the unfilled
//! program differs from the original in exactly that: its path now comes before
//! `LD_LIBRARY_PATH` and is inherited by libraries without a `DT_RUNPATH` (a need the original
//! could not find may now be found; tested). An empty `DT_RPATH` (the unfilled slot of a
//! program that had none) is no path at all for glibc, not the current directory. glibc ignores every `DT_RPATH` for the needs of an object
//! that has a `DT_RUNPATH`, so a bundled library with one must find its own needs itself
//! (`$ORIGIN` works for libraries: it comes from the path they were loaded from, not `/proc`).
//!
//! # Limits
//!
//! - ELF64 little-endian x86-64 programs with a `PT_INTERP`, PIE or not. A static program (no
//!   `PT_DYNAMIC`) needs nothing; a shared library or a static-pie has no `PT_INTERP`, and its
//!   needs are found through the executable's `DT_RPATH` (or its own `$ORIGIN`): both are refused
//!   with an error the caller can skip on.
//! - A program without a `PT_NOTE` is refused ([`PatchError::NoNote`]); only a relayout of the
//!   program header table (patchelf's way) could add an entry there.
//! - Code that reads its own `_DYNAMIC` symbol (or `GOT[0]`) sees the old array, which keeps its
//!   old contents; `ld.so` writes `DT_DEBUG` into the new one. Debuggers and `dl_iterate_phdr`
//!   go through the program headers and see the new one.
//! - Reserving a program twice needs a second `PT_NOTE` and appends a second segment.
//! - The slots are where [`Reserved`] says in the bytes [`reserve`] returned, and nowhere else:
//!   `strip` after `reserve` keeps the program working and the strings in place in memory, but
//!   may move them in the file. Reserve last.
//! - The new segment is not covered by `PT_GNU_RELRO`: the new dynamic array stays writable
//!   after start-up (the old one, which nothing reads, stays read-only), as in programs linked
//!   without `-z relro`.
//! - The runtime must write the slots before the program starts, into a file nobody else can
//!   change, and keep what it writes shorter than the capacity: the kernel refuses a
//!   `PT_INTERP` whose last byte is not NUL.

use goblin::elf::Elf;
use goblin::elf::dynamic::{
    DT_NEEDED, DT_NULL, DT_RPATH, DT_RUNPATH, DT_SONAME, DT_STRSZ, DT_STRTAB,
};
use goblin::elf::header::{EM_X86_64, ET_DYN, ET_EXEC};
use goblin::elf::program_header::{
    PF_R, PF_W, PT_DYNAMIC, PT_GNU_PROPERTY, PT_INTERP, PT_LOAD, PT_NOTE, ProgramHeader,
};

/// The page size segments are aligned to (x86-64).
const PAGE: u64 = 0x1000;
/// `DT_NULL` entries after the terminating one, for later additions.
const SPARE_DYNAMIC: usize = 4;
/// The largest slot [`reserve`] makes (a path longer than this is not a cache path).
pub const MAX_CAPACITY: u32 = 1 << 16;

const PHDR_SIZE: usize = 56;
const SHDR_SIZE: usize = 64;
const DYN_SIZE: usize = 16;

/// A fixed-size, NUL-padded field in the file: `capacity` bytes at file offset `offset`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Slot {
    pub offset: u64,
    pub capacity: u32,
}

/// A program with its slots: `bytes` runs as the original did until a slot is written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reserved {
    pub bytes: Vec<u8>,
    /// The loader path (`PT_INTERP`), pre-filled with the original one.
    pub interp: Slot,
    /// The library search path (`DT_RPATH`), pre-filled with the original `DT_RUNPATH`, else
    /// `DT_RPATH`, else empty.
    pub rpath: Slot,
}

/// Why a program cannot be given slots, or a slot cannot be filled.
#[derive(Debug, thiserror::Error)]
pub enum PatchError {
    #[error("not an ELF file")]
    NotElf,
    #[error("damaged ELF file: {0}")]
    Damaged(String),
    #[error(
        "not an ELF64 little-endian x86-64 file (64-bit: {is_64}, little-endian: {little_endian}, machine {machine})"
    )]
    Unsupported {
        is_64: bool,
        little_endian: bool,
        machine: u16,
    },
    #[error("ELF type {e_type} is not an executable (ET_EXEC or ET_DYN)")]
    NotExecutable { e_type: u16 },
    #[error("statically linked (no PT_DYNAMIC): there is no loader to point anywhere")]
    Static,
    #[error(
        "a dynamic section but no PT_INTERP: a shared library or a static-pie, which no loader runs"
    )]
    NoInterp,
    #[error(
        "no PT_NOTE program header to turn into the new PT_LOAD (the program header table has no room for another entry)"
    )]
    NoNote,
    #[error("the dynamic section has no {0}")]
    MissingTag(&'static str),
    #[error("{what} at {offset:#x} ({len} bytes) lies outside the file or its PT_LOAD segments")]
    OutOfBounds {
        what: &'static str,
        offset: u64,
        len: u64,
    },
    #[error("{what} has {entsize}-byte entries, not {expected}")]
    EntrySize {
        what: &'static str,
        entsize: u16,
        expected: usize,
    },
    #[error("the new segment's address or offset overflows")]
    Overflow,
    #[error("slot capacity {capacity} is outside 1..={MAX_CAPACITY}")]
    Capacity { capacity: u32 },
    #[error("the original {what} is {len} bytes, which does not fit a {capacity}-byte slot")]
    OriginalTooLong {
        what: &'static str,
        len: usize,
        capacity: u32,
    },
    #[error("a {len}-byte value does not fit a {capacity}-byte slot (it needs a NUL after it)")]
    ValueTooLong { len: usize, capacity: u32 },
    #[error("the value {value:?} holds a NUL byte")]
    ValueHasNul { value: String },
    #[error("the slot at {offset:#x} ({capacity} bytes) lies outside the {len}-byte file")]
    SlotOutOfBounds {
        offset: u64,
        capacity: u32,
        len: usize,
    },
}

/// Gives `elf` an interpreter slot and a `DT_RPATH` slot of `capacity` bytes each (1024 holds any
/// sensible cache path). The output runs like the input until a slot is filled (but for an
/// original `DT_RUNPATH`, which becomes a `DT_RPATH`: see the module documentation).
pub fn reserve(elf: &[u8], capacity: u32) -> Result<Reserved, PatchError> {
    if capacity == 0 || capacity > MAX_CAPACITY {
        return Err(PatchError::Capacity { capacity });
    }
    if !elf.starts_with(b"\x7fELF") {
        return Err(PatchError::NotElf);
    }
    let parsed = Elf::parse(elf).map_err(|e| PatchError::Damaged(e.to_string()))?;
    let header = &parsed.header;
    if !parsed.is_64 || !parsed.little_endian || header.e_machine != EM_X86_64 {
        return Err(PatchError::Unsupported {
            is_64: parsed.is_64,
            little_endian: parsed.little_endian,
            machine: header.e_machine,
        });
    }
    if header.e_type != ET_EXEC && header.e_type != ET_DYN {
        return Err(PatchError::NotExecutable {
            e_type: header.e_type,
        });
    }
    if usize::from(header.e_phentsize) != PHDR_SIZE {
        return Err(PatchError::EntrySize {
            what: "the program header table",
            entsize: header.e_phentsize,
            expected: PHDR_SIZE,
        });
    }
    let mut phdrs: Vec<ProgramHeader> = parsed.program_headers.to_vec();
    let find = |kind: u32| phdrs.iter().position(|p| p.p_type == kind);
    let (Some(dynamic_idx), Some(interp_idx)) = (find(PT_DYNAMIC), find(PT_INTERP)) else {
        return Err(if find(PT_DYNAMIC).is_none() {
            PatchError::Static
        } else {
            PatchError::NoInterp
        });
    };
    let note_idx = pick_note(&phdrs).ok_or(PatchError::NoNote)?;
    let dyns = parsed
        .dynamic
        .as_ref()
        .map(|d| d.dyns.as_slice())
        .unwrap_or_default();

    // What the slots start with: the original strings.
    let interp_ph = &phdrs[interp_idx];
    let interp_bytes = file_range(elf, "PT_INTERP", interp_ph.p_offset, interp_ph.p_filesz)?;
    let interp = c_str(interp_bytes);
    let tag_value = |tag: u64, what: &'static str| {
        dyns.iter()
            .rev()
            .find(|d| d.d_tag == tag)
            .map(|d| d.d_val)
            .ok_or(PatchError::MissingTag(what))
    };
    let strtab_addr = tag_value(DT_STRTAB, "DT_STRTAB")?;
    let strsz = tag_value(DT_STRSZ, "DT_STRSZ")?;
    let strtab_offset =
        vaddr_to_offset(&phdrs, strtab_addr, strsz).ok_or(PatchError::OutOfBounds {
            what: "DT_STRTAB",
            offset: strtab_addr,
            len: strsz,
        })?;
    let strtab = file_range(elf, "DT_STRTAB", strtab_offset, strsz)?;
    let search = tag_value(DT_RUNPATH, "DT_RUNPATH")
        .or_else(|_| tag_value(DT_RPATH, "DT_RPATH"))
        .ok();
    let rpath: &[u8] = match search {
        Some(at) => strtab
            .get(usize::try_from(at).unwrap_or(usize::MAX)..)
            .map(c_str)
            .ok_or(PatchError::OutOfBounds {
                what: "the DT_RUNPATH/DT_RPATH string",
                offset: at,
                len: 1,
            })?,
        None => b"",
    };
    for (what, value) in [("PT_INTERP", interp), ("DT_RUNPATH/DT_RPATH", rpath)] {
        if value.len() >= capacity as usize {
            return Err(PatchError::OriginalTooLong {
                what,
                len: value.len(),
                capacity,
            });
        }
    }

    // The new dynamic array.
    let cap = u64::from(capacity);
    let mut entries: Vec<(u64, u64)> = Vec::with_capacity(dyns.len() + SPARE_DYNAMIC + 1);
    for d in dyns {
        match d.d_tag {
            DT_NULL => break,
            DT_RPATH | DT_RUNPATH => {}
            tag => entries.push((tag, d.d_val)),
        }
    }

    // The new segment: interp slot, string table (old bytes, then the rpath slot), array.
    let top = phdrs
        .iter()
        .filter(|p| p.p_type == PT_LOAD)
        .map(|p| p.p_vaddr.checked_add(p.p_memsz))
        .try_fold(0u64, |max, end| end.map(|e| max.max(e)))
        .ok_or(PatchError::Overflow)?;
    let seg_vaddr = align_up(top, PAGE).ok_or(PatchError::Overflow)?;
    let seg_offset = align_up(elf.len() as u64, PAGE).ok_or(PatchError::Overflow)?;
    let strtab_at = cap;
    let new_strsz = strsz.checked_add(cap).ok_or(PatchError::Overflow)?;
    let rpath_at = strtab_at + strsz;
    let dynamic_at = align_up(strtab_at + new_strsz, 8).ok_or(PatchError::Overflow)?;
    let vaddr = |at: u64| seg_vaddr.checked_add(at).ok_or(PatchError::Overflow);
    for entry in &mut entries {
        match entry.0 {
            DT_STRTAB => entry.1 = vaddr(strtab_at)?,
            DT_STRSZ => entry.1 = new_strsz,
            _ => {}
        }
    }
    entries.push((DT_RPATH, strsz));
    entries.extend(std::iter::repeat_n((DT_NULL, 0), SPARE_DYNAMIC + 1));
    let dynamic_size = (entries.len() * DYN_SIZE) as u64;
    let seg_size = dynamic_at + dynamic_size;
    vaddr(seg_size)?;
    let out_len = usize::try_from(seg_offset + seg_size).map_err(|_| PatchError::Overflow)?;

    let mut out = Vec::with_capacity(out_len);
    out.extend_from_slice(elf);
    out.resize(out_len, 0);
    let seg = seg_offset as usize;
    let put = |out: &mut Vec<u8>, at: u64, bytes: &[u8]| {
        let start = seg + at as usize;
        out[start..start + bytes.len()].copy_from_slice(bytes);
    };
    put(&mut out, 0, interp);
    put(&mut out, strtab_at, strtab);
    put(&mut out, rpath_at, rpath);
    for (i, (tag, val)) in entries.iter().enumerate() {
        let mut raw = [0u8; DYN_SIZE];
        raw[..8].copy_from_slice(&tag.to_le_bytes());
        raw[8..].copy_from_slice(&val.to_le_bytes());
        put(&mut out, dynamic_at + (i * DYN_SIZE) as u64, &raw);
    }

    // Program headers: interp and dynamic point into the segment, the note becomes it.
    let point = |ph: &mut ProgramHeader, at: u64, size: u64| -> Result<(), PatchError> {
        ph.p_offset = seg_offset + at;
        ph.p_vaddr = vaddr(at)?;
        ph.p_paddr = ph.p_vaddr;
        ph.p_filesz = size;
        ph.p_memsz = size;
        Ok(())
    };
    point(&mut phdrs[interp_idx], 0, cap)?;
    point(&mut phdrs[dynamic_idx], dynamic_at, dynamic_size)?;
    let load = &mut phdrs[note_idx];
    load.p_type = PT_LOAD;
    load.p_flags = PF_R | PF_W;
    load.p_align = PAGE;
    point(load, 0, seg_size)?;
    let last_load = phdrs
        .iter()
        .enumerate()
        .filter(|&(i, p)| i != note_idx && p.p_type == PT_LOAD)
        .map(|(i, _)| i)
        .next_back();
    if let Some(last_load) = last_load
        && last_load > note_idx
    {
        let moved = phdrs.remove(note_idx);
        phdrs.insert(last_load, moved);
    }
    file_range(
        &out,
        "the program header table",
        header.e_phoff,
        (phdrs.len() * PHDR_SIZE) as u64,
    )?;
    let table_at = header.e_phoff as usize;
    for (i, ph) in phdrs.iter().enumerate() {
        out[table_at + i * PHDR_SIZE..][..PHDR_SIZE].copy_from_slice(&phdr_bytes(ph));
    }

    // Section headers, so that tools reading sections agree with the loader.
    if !parsed.section_headers.is_empty() {
        if usize::from(header.e_shentsize) != SHDR_SIZE {
            return Err(PatchError::EntrySize {
                what: "the section header table",
                entsize: header.e_shentsize,
                expected: SHDR_SIZE,
            });
        }
        for (i, sh) in parsed.section_headers.iter().enumerate() {
            let (at, size) = match parsed.shdr_strtab.get_at(sh.sh_name) {
                Some(".interp") => (0, cap),
                Some(".dynstr") => (strtab_at, new_strsz),
                Some(".dynamic") => (dynamic_at, dynamic_size),
                _ => continue,
            };
            let start = header
                .e_shoff
                .checked_add((i * SHDR_SIZE) as u64)
                .ok_or(PatchError::Overflow)?;
            file_range(&out, "a section header", start, SHDR_SIZE as u64)?;
            let start = start as usize;
            out[start + 16..start + 24].copy_from_slice(&vaddr(at)?.to_le_bytes());
            out[start + 24..start + 32].copy_from_slice(&(seg_offset + at).to_le_bytes());
            out[start + 32..start + 40].copy_from_slice(&size.to_le_bytes());
        }
    }

    Ok(Reserved {
        bytes: out,
        interp: Slot {
            offset: seg_offset,
            capacity,
        },
        rpath: Slot {
            offset: seg_offset + rpath_at,
            capacity,
        },
    })
}

/// Writes `value` into `slot`, NUL-padded to its capacity (the whole slot, so the file's bytes
/// depend only on the value): what the runtime does before it runs the program.
pub fn fill(bytes: &mut [u8], slot: &Slot, value: &str) -> Result<(), PatchError> {
    if value.as_bytes().contains(&0) {
        return Err(PatchError::ValueHasNul {
            value: value.to_owned(),
        });
    }
    if value.len() >= slot.capacity as usize {
        return Err(PatchError::ValueTooLong {
            len: value.len(),
            capacity: slot.capacity,
        });
    }
    let len = bytes.len();
    let out_of_bounds = || PatchError::SlotOutOfBounds {
        offset: slot.offset,
        capacity: slot.capacity,
        len,
    };
    let start = usize::try_from(slot.offset).map_err(|_| out_of_bounds())?;
    let field = start
        .checked_add(slot.capacity as usize)
        .and_then(|end| bytes.get_mut(start..end))
        .ok_or_else(out_of_bounds)?;
    field.fill(0);
    field[..value.len()].copy_from_slice(value.as_bytes());
    Ok(())
}

/// The `PT_NOTE` to give up: one that only repeats `PT_GNU_PROPERTY` (which is what glibc
/// reads), else the last one.
fn pick_note(phdrs: &[ProgramHeader]) -> Option<usize> {
    let property = phdrs.iter().find(|p| p.p_type == PT_GNU_PROPERTY);
    let notes = || {
        phdrs
            .iter()
            .enumerate()
            .filter(|(_, p)| p.p_type == PT_NOTE)
    };
    notes()
        .find(|(_, p)| {
            property.is_some_and(|g| g.p_offset == p.p_offset && g.p_filesz == p.p_filesz)
        })
        .or_else(|| notes().next_back())
        .map(|(i, _)| i)
}

/// The file offset of `len` bytes at `vaddr`, if one `PT_LOAD` holds them all in the file.
fn vaddr_to_offset(phdrs: &[ProgramHeader], vaddr: u64, len: u64) -> Option<u64> {
    phdrs
        .iter()
        .filter(|p| p.p_type == PT_LOAD)
        .find(|p| {
            vaddr >= p.p_vaddr
                && vaddr
                    .checked_add(len)
                    .is_some_and(|end| end <= p.p_vaddr.saturating_add(p.p_filesz))
        })
        .map(|p| p.p_offset.saturating_add(vaddr - p.p_vaddr))
}

fn file_range<'a>(
    bytes: &'a [u8],
    what: &'static str,
    offset: u64,
    len: u64,
) -> Result<&'a [u8], PatchError> {
    usize::try_from(offset)
        .ok()
        .zip(usize::try_from(len).ok())
        .and_then(|(start, len)| bytes.get(start..start.checked_add(len)?))
        .ok_or(PatchError::OutOfBounds { what, offset, len })
}

/// The bytes before the first NUL (all of them if there is none).
fn c_str(bytes: &[u8]) -> &[u8] {
    bytes.split(|&b| b == 0).next().unwrap_or(bytes)
}

fn align_up(value: u64, align: u64) -> Option<u64> {
    Some(value.checked_add(align - 1)? & !(align - 1))
}

/// An `Elf64_Phdr`, little-endian.
fn phdr_bytes(ph: &ProgramHeader) -> [u8; PHDR_SIZE] {
    let mut raw = [0u8; PHDR_SIZE];
    raw[0..4].copy_from_slice(&ph.p_type.to_le_bytes());
    raw[4..8].copy_from_slice(&ph.p_flags.to_le_bytes());
    for (i, v) in [
        ph.p_offset,
        ph.p_vaddr,
        ph.p_paddr,
        ph.p_filesz,
        ph.p_memsz,
        ph.p_align,
    ]
    .iter()
    .enumerate()
    {
        raw[8 + i * 8..16 + i * 8].copy_from_slice(&v.to_le_bytes());
    }
    raw
}

/// Makes a library's own search path defer to the program's, in place: a `DT_RUNPATH` becomes a
/// `DT_RPATH` (the loader then also searches the `DT_RPATH` of the objects that loaded it, up
/// to the program's, which the runtime fills with the layer's directories), and a path that
/// names a directory of the build host is overwritten with `$ORIGIN` (NUL-padded, so the file
/// keeps its size and layout). `$ORIGIN`-relative paths (a wheel's `.libs`) stay. Returns
/// whether anything changed; a file that is not a little-endian ELF64 is left alone.
///
/// Why: pyenv's `libpython3.11.so.1.0` and every module of its `lib-dynload` carry
/// `DT_RUNPATH=/root/.pyenv/versions/3.11.7/lib`; with a `DT_RUNPATH` the loader never looks at
/// the program's `DT_RPATH` for that object's needs, so in an empty chroot `libm.so.6` (needed
/// by libpython, bundled beside glibc in the layer) was not found.
pub fn defer_search_path(bytes: &mut [u8]) -> Result<bool, PatchError> {
    let (dynamic, strtab, names) = {
        let Ok(elf) = Elf::parse(bytes) else {
            return Ok(false);
        };
        // Offsets of the other strings, which the linker may have merged into a path's tail.
        let names: Vec<u64> = elf
            .dynsyms
            .iter()
            .map(|s| s.st_name as u64)
            .chain(elf.dynamic.iter().flat_map(|d| {
                d.dyns
                    .iter()
                    .filter(|e| e.d_tag == DT_NEEDED || e.d_tag == DT_SONAME)
                    .map(|e| e.d_val)
            }))
            .collect();
        if !elf.is_64 || !elf.little_endian {
            return Ok(false);
        }
        let Some(dynamic) = elf.program_headers.iter().find(|p| p.p_type == PT_DYNAMIC) else {
            return Ok(false);
        };
        let Some(strtab) = elf
            .dynamic
            .as_ref()
            .and_then(|d| d.dyns.iter().find(|d| d.d_tag == DT_STRTAB))
            .and_then(|d| vaddr_to_offset(&elf.program_headers, d.d_val, 1))
        else {
            return Ok(false);
        };
        ((dynamic.p_offset, dynamic.p_filesz), strtab, names)
    };
    let (start, len) = dynamic;
    let count = (len as usize) / DYN_SIZE;
    let mut changed = false;
    for i in 0..count {
        let at = start as usize + i * DYN_SIZE;
        let entry = file_range(bytes, "the dynamic array", at as u64, DYN_SIZE as u64)?;
        let tag = u64::from_le_bytes(entry[..8].try_into().expect("8 bytes"));
        let val = u64::from_le_bytes(entry[8..].try_into().expect("8 bytes"));
        if tag == DT_NULL {
            break;
        }
        if tag != DT_RUNPATH && tag != DT_RPATH {
            continue;
        }
        let string_at = strtab.saturating_add(val);
        let tail = file_range(
            bytes,
            "a search path",
            string_at,
            (bytes.len() as u64).saturating_sub(string_at),
        )?;
        let old = c_str(tail).to_vec();
        let text = String::from_utf8_lossy(&old);
        let own = text
            .split(':')
            .filter(|p| !p.is_empty())
            .all(|p| p.starts_with("$ORIGIN") || p.starts_with("${ORIGIN}"));
        let shared = names.iter().any(|&n| n > val && n < val + old.len() as u64);
        if shared {
            return Ok(false); // rewriting it would change another name
        }
        if !own {
            let value: &[u8] = if old.len() >= 7 { b"$ORIGIN" } else { b"" };
            let s = string_at as usize;
            bytes[s..s + old.len()].fill(0);
            bytes[s..s + value.len()].copy_from_slice(value);
            changed = true;
        }
        if tag == DT_RUNPATH {
            bytes[at..at + 8].copy_from_slice(&DT_RPATH.to_le_bytes());
            changed = true;
        }
    }
    Ok(changed)
}

#[cfg(test)]
mod tests {
    use std::process::Command;

    use goblin::elf::program_header::PT_PHDR;

    use super::*;
    use crate::elf::ElfFile;

    /// A shared library built here with `-rpath RPATH` as a `DT_RUNPATH`.
    fn library_with_runpath(dir: &std::path::Path, rpath: &str) -> Vec<u8> {
        std::fs::write(dir.join("x.c"), "int x(void) { return 1; }\n").unwrap();
        let out = Command::new("cc")
            .current_dir(dir)
            .args([
                "-shared",
                "-fPIC",
                "-o",
                "libx.so",
                "x.c",
                "-Wl,--enable-new-dtags",
            ])
            .arg(format!("-Wl,-rpath,{rpath}"))
            .output()
            .expect("cc runs (.ci/run installs gcc)");
        assert!(out.status.success(), "{out:?}");
        std::fs::read(dir.join("libx.so")).unwrap()
    }

    #[test]
    fn a_librarys_build_host_runpath_becomes_an_rpath_of_origin_in_place() {
        let dir = tempfile::tempdir().unwrap();
        let original = library_with_runpath(dir.path(), "/root/.pyenv/versions/3.11.7/lib");
        let before = ElfFile::parse(&original).unwrap().unwrap();
        assert_eq!(before.runpath, ["/root/.pyenv/versions/3.11.7/lib"]);
        let mut bytes = original.clone();
        assert!(defer_search_path(&mut bytes).unwrap());
        assert_eq!(bytes.len(), original.len());
        let after = ElfFile::parse(&bytes).unwrap().unwrap();
        assert!(after.runpath.is_empty(), "{after:?}");
        assert_eq!(after.rpath, ["$ORIGIN"]);
        assert_eq!(after.needed, before.needed);
        // Done once, nothing is left to change but the tag, which is already DT_RPATH.
        let mut again = bytes.clone();
        assert!(!defer_search_path(&mut again).unwrap());
        assert_eq!(again, bytes);
        // A wheel's `$ORIGIN/../pkg.libs` is its own: kept, only the tag changes.
        let own = library_with_runpath(dir.path(), "$ORIGIN/../pkg.libs");
        let mut bytes = own.clone();
        assert!(defer_search_path(&mut bytes).unwrap());
        let after = ElfFile::parse(&bytes).unwrap().unwrap();
        assert_eq!(after.rpath, ["$ORIGIN/../pkg.libs"]);
        assert!(after.runpath.is_empty());
        // Not an ELF file: left alone.
        let mut text = b"INPUT(libx.so.1)".to_vec();
        assert!(!defer_search_path(&mut text).unwrap());
    }

    fn ls() -> Vec<u8> {
        std::fs::read("/bin/ls").unwrap()
    }

    fn slot_text<'a>(bytes: &'a [u8], slot: &Slot) -> &'a [u8] {
        c_str(&bytes[slot.offset as usize..][..slot.capacity as usize])
    }

    /// Writes an executable through `install(1)`: a file this multi-threaded process had open
    /// for writing could still be open in a child another test forks, and exec would fail with
    /// ETXTBSY.
    fn write_exe(dir: &std::path::Path, name: &str, bytes: &[u8]) -> std::path::PathBuf {
        let path = dir.join(name);
        let staged = dir.join(format!("{name}.staged"));
        std::fs::write(&staged, bytes).unwrap();
        let status = Command::new("install")
            .arg("-m755")
            .arg(&staged)
            .arg(&path)
            .status()
            .unwrap();
        assert!(status.success());
        std::fs::remove_file(staged).unwrap();
        path
    }

    #[test]
    fn a_reserved_system_program_parses_and_runs_unchanged_then_filled() {
        let reserved = reserve(&ls(), 1024).unwrap();
        let elf = ElfFile::parse(&reserved.bytes).unwrap().unwrap();
        assert_eq!(elf.interp.as_deref(), Some("/lib64/ld-linux-x86-64.so.2"));
        assert!(elf.rpath.is_empty() && elf.runpath.is_empty(), "{elf:?}");
        assert_eq!(
            slot_text(&reserved.bytes, &reserved.interp),
            b"/lib64/ld-linux-x86-64.so.2"
        );
        assert_eq!(slot_text(&reserved.bytes, &reserved.rpath), b"");

        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a-file"), "").unwrap();
        let run = |exe: &std::path::Path| {
            let out = Command::new(exe).arg(dir.path()).output().unwrap();
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            String::from_utf8(out.stdout).unwrap()
        };
        let unfilled = write_exe(dir.path(), "ls-unfilled", &reserved.bytes);
        assert_eq!(run(&unfilled), "a-file\nls-unfilled\n");

        let mut filled = reserved.bytes.clone();
        fill(
            &mut filled,
            &reserved.interp,
            "/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2",
        )
        .unwrap();
        fill(
            &mut filled,
            &reserved.rpath,
            "/nonexistent:/lib/x86_64-linux-gnu",
        )
        .unwrap();
        let elf = ElfFile::parse(&filled).unwrap().unwrap();
        assert_eq!(
            elf.interp.as_deref(),
            Some("/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2")
        );
        assert_eq!(elf.rpath, ["/nonexistent", "/lib/x86_64-linux-gnu"]);
        let filled = write_exe(dir.path(), "ls-filled", &filled);
        assert_eq!(run(&filled), "a-file\nls-filled\nls-unfilled\n");
    }

    #[test]
    fn a_note_before_the_loads_is_moved_after_them() {
        // /bin/ls with its program headers reordered: PHDR, INTERP, the NOTEs, then the rest.
        let mut bytes = ls();
        let phdrs = Elf::parse(&bytes).unwrap().program_headers;
        let raw = |i: usize| bytes[64 + i * PHDR_SIZE..][..PHDR_SIZE].to_vec();
        let kinds = [PT_PHDR, PT_INTERP, PT_NOTE];
        let mut order: Vec<usize> = Vec::new();
        for kind in kinds {
            order.extend((0..phdrs.len()).filter(|&i| phdrs[i].p_type == kind));
        }
        order.extend((0..phdrs.len()).filter(|&i| !kinds.contains(&phdrs[i].p_type)));
        let table: Vec<u8> = order.iter().flat_map(|&i| raw(i)).collect();
        bytes[64..64 + table.len()].copy_from_slice(&table);
        let reordered = Elf::parse(&bytes).unwrap().program_headers;
        assert_eq!(reordered[2].p_type, PT_NOTE);

        let reserved = reserve(&bytes, 1024).unwrap();
        let out = Elf::parse(&reserved.bytes).unwrap().program_headers;
        let loads: Vec<u64> = out
            .iter()
            .filter(|p| p.p_type == PT_LOAD)
            .map(|p| p.p_vaddr)
            .collect();
        assert_eq!(loads.len(), 5);
        assert!(loads.is_sorted(), "{loads:x?}");
        assert_eq!(out.len(), phdrs.len());
        assert_eq!(out[0].p_type, PT_PHDR);

        let dir = tempfile::tempdir().unwrap();
        let exe = write_exe(dir.path(), "ls", &reserved.bytes);
        // Run by the kernel, and by ld.so itself, which maps the segments in table order (and
        // fails with "failed to map segment" when the last PT_LOAD is not the highest).
        for mut cmd in [
            Command::new(&exe),
            Command::new("/lib64/ld-linux-x86-64.so.2"),
        ] {
            if cmd.get_program() != exe.as_os_str() {
                cmd.arg(&exe);
            }
            let run = cmd.arg(dir.path()).output().unwrap();
            assert!(
                run.status.success(),
                "{}",
                String::from_utf8_lossy(&run.stderr)
            );
            assert_eq!(run.stdout, b"ls\n");
        }
    }

    #[test]
    fn fill_pads_the_whole_slot_and_refuses_what_does_not_fit() {
        let slot = Slot {
            offset: 2,
            capacity: 4,
        };
        let mut bytes = *b"xxabcdyy";
        fill(&mut bytes, &slot, "q").unwrap();
        assert_eq!(&bytes, b"xxq\0\0\0yy");
        fill(&mut bytes, &slot, "").unwrap();
        assert_eq!(&bytes, b"xx\0\0\0\0yy");
        fill(&mut bytes, &slot, "123").unwrap();
        assert_eq!(&bytes, b"xx123\0yy");
        assert!(matches!(
            fill(&mut bytes, &slot, "1234"),
            Err(PatchError::ValueTooLong {
                len: 4,
                capacity: 4
            })
        ));
        assert!(matches!(
            fill(&mut bytes, &slot, "a\0b"),
            Err(PatchError::ValueHasNul { .. })
        ));
        let far = Slot {
            offset: u64::MAX,
            capacity: 4,
        };
        assert!(matches!(
            fill(&mut bytes, &far, "a"),
            Err(PatchError::SlotOutOfBounds { .. })
        ));
        assert_eq!(&bytes, b"xx123\0yy", "a refused fill writes nothing");
    }

    #[test]
    fn odd_input_is_an_error_never_a_panic() {
        let ls = ls();
        assert!(matches!(
            reserve(b"#!/bin/sh\n", 1024),
            Err(PatchError::NotElf)
        ));
        assert!(matches!(reserve(&ls, 0), Err(PatchError::Capacity { .. })));
        assert!(matches!(
            reserve(&ls, 8),
            Err(PatchError::OriginalTooLong {
                what: "PT_INTERP",
                ..
            })
        ));
        // Every truncation of the headers and more: an error (or, past what is read, success).
        for len in (0..8192).chain((8192..ls.len()).step_by(4099)) {
            let _ = reserve(&ls[..len], 1024);
        }
        // Every single-byte corruption of the ELF and program headers.
        let phend = 64 + 13 * PHDR_SIZE;
        for at in 0..phend {
            for value in [0u8, 0xff, 0x7f, 1] {
                let mut bad = ls.clone();
                bad[at] = value;
                let _ = reserve(&bad, 1024);
            }
        }
        // Every byte of the dynamic array and the section headers, corrupted.
        let parsed = Elf::parse(&ls).unwrap();
        let dynamic = parsed
            .program_headers
            .iter()
            .find(|p| p.p_type == PT_DYNAMIC)
            .unwrap();
        let dynamic = dynamic.p_offset as usize..(dynamic.p_offset + dynamic.p_filesz) as usize;
        let shoff = parsed.header.e_shoff as usize;
        let sections = shoff..shoff + usize::from(parsed.header.e_shnum) * SHDR_SIZE;
        for at in dynamic.chain(sections) {
            for value in [0u8, 0xff] {
                let mut bad = ls.clone();
                bad[at] = value;
                let _ = reserve(&bad, 1024);
            }
        }
        let phdrs = parsed.program_headers;
        let phdr_type = |i: usize| 64 + i * PHDR_SIZE;
        // No PT_NOTE: every note turned into PT_NULL.
        let mut no_note = ls.clone();
        for (i, p) in phdrs.iter().enumerate() {
            if p.p_type == PT_NOTE {
                no_note[phdr_type(i)..][..4].copy_from_slice(&0u32.to_le_bytes());
            }
        }
        assert!(matches!(reserve(&no_note, 1024), Err(PatchError::NoNote)));
        // No PT_INTERP (a library, a static-pie), then no PT_DYNAMIC either (static).
        let mut no_interp = ls.clone();
        let interp = phdrs.iter().position(|p| p.p_type == PT_INTERP).unwrap();
        no_interp[phdr_type(interp)..][..4].copy_from_slice(&0u32.to_le_bytes());
        assert!(matches!(
            reserve(&no_interp, 1024),
            Err(PatchError::NoInterp)
        ));
        let dynamic = phdrs.iter().position(|p| p.p_type == PT_DYNAMIC).unwrap();
        no_interp[phdr_type(dynamic)..][..4].copy_from_slice(&0u32.to_le_bytes());
        assert!(matches!(reserve(&no_interp, 1024), Err(PatchError::Static)));
        // A 32-bit file.
        let mut elf32 = ls.clone();
        elf32[4] = 1;
        assert!(reserve(&elf32, 1024).is_err());
    }

    #[test]
    fn a_static_program_is_refused_as_static() {
        let Some(busybox) = ["/bin/busybox", "/usr/bin/busybox"]
            .iter()
            .find_map(|p| std::fs::read(p).ok())
        else {
            return;
        };
        if ElfFile::parse(&busybox).unwrap().unwrap().dynamic {
            return;
        }
        assert!(matches!(reserve(&busybox, 1024), Err(PatchError::Static)));
    }
}
