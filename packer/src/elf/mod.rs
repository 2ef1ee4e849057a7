//! Reading ELF files the way the dynamic loader will: what a program or library needs, where the
//! loader would look for it, and which glibc it requires, without running it (no `ldd`).
//!
//! - [`ElfFile::parse`] reads one file's dynamic section with goblin: `DT_NEEDED`, `DT_RPATH`,
//!   `DT_RUNPATH`, `PT_INTERP`, `DT_SONAME` and the `GLIBC_x.y` versions its symbols need;
//! - [`closure`] walks the needs of a program and its libraries on the build host, in the
//!   loader's order (`ld.so(8)`), reading `/etc/ld.so.cache` ([`ldcache`]);
//! - [`glibc`] knows which libraries belong to glibc itself, and compares versions;
//! - [`patch`] is the one writer: it gives a program fixed-size slots for an absolute
//!   `PT_INTERP` and `DT_RPATH` that the runtime fills in.
//!
//! `dlopen`ed libraries cannot be seen this way (glibc's own NSS and gconv modules, plugins,
//! `ctypes`): they must be named by the user.

pub mod audit;
pub mod closure;
pub mod glibc;
pub mod ldcache;
pub mod patch;

use goblin::elf::Elf;
use goblin::elf::program_header::PT_DYNAMIC;

use glibc::Version;

/// What the loader needs to know about one ELF file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ElfFile {
    /// `PT_INTERP`: the program's loader (absent in libraries and static programs).
    pub interp: Option<String>,
    pub soname: Option<String>,
    /// `DT_NEEDED`, in order.
    pub needed: Vec<String>,
    /// `DT_RPATH` entries (used only when there is no `DT_RUNPATH`).
    pub rpath: Vec<String>,
    /// `DT_RUNPATH` entries.
    pub runpath: Vec<String>,
    /// Whether it has a dynamic section at all (a static program has none, or one without
    /// needs: static-pie).
    pub dynamic: bool,
    /// The highest `GLIBC_x.y[.z]` version any of its symbols needs.
    pub glibc_floor: Option<Version>,
    /// `e_machine`, for telling a foreign architecture apart.
    pub machine: u16,
    pub is_64: bool,
}

impl ElfFile {
    /// `Ok(None)` when `bytes` is not an ELF file at all; an error when it claims to be one but
    /// cannot be read.
    pub fn parse(bytes: &[u8]) -> Result<Option<ElfFile>, goblin::error::Error> {
        if !bytes.starts_with(b"\x7fELF") {
            return Ok(None);
        }
        let elf = Elf::parse(bytes)?;
        let split = |entries: &[&str]| -> Vec<String> {
            entries
                .iter()
                .flat_map(|e| e.split(':'))
                .filter(|p| !p.is_empty())
                .map(str::to_owned)
                .collect()
        };
        let mut floor: Option<Version> = None;
        if let Some(verneed) = &elf.verneed {
            for need in verneed.iter() {
                for aux in need.iter() {
                    let version = elf
                        .dynstrtab
                        .get_at(aux.vna_name)
                        .and_then(|name| name.strip_prefix("GLIBC_"))
                        .and_then(Version::parse);
                    if let Some(v) = version {
                        floor = Some(floor.map_or(v, |f| f.max(v)));
                    }
                }
            }
        }
        Ok(Some(ElfFile {
            // Up to the first NUL, as the kernel reads it: a reserved slot is NUL-padded.
            interp: elf
                .interpreter
                .and_then(|s| s.split('\0').next())
                .map(str::to_owned),
            soname: elf.soname.map(str::to_owned),
            needed: elf.libraries.iter().map(|s| (*s).to_owned()).collect(),
            rpath: split(&elf.rpaths),
            runpath: split(&elf.runpaths),
            dynamic: is_dynamic(&elf),
            glibc_floor: floor,
            machine: elf.header.e_machine,
            is_64: elf.is_64,
        }))
    }

    /// The search path entries the loader uses for this object's own needs: `DT_RUNPATH` if it
    /// has one, else its `DT_RPATH` (the loaders' `DT_RPATH`s are the caller's to add).
    pub fn own_search_path(&self) -> &[String] {
        if self.runpath.is_empty() {
            &self.rpath
        } else {
            &self.runpath
        }
    }
}

/// Whether the loader is involved: a dynamic section, unless it is a static-pie (a PIE with no
/// loader and no needs, which relocates itself).
fn is_dynamic(elf: &Elf<'_>) -> bool {
    let has_dynamic = elf.program_headers.iter().any(|p| p.p_type == PT_DYNAMIC);
    let pie = elf
        .dynamic
        .as_ref()
        .is_some_and(|d| d.info.flags_1 & goblin::elf::dynamic::DF_1_PIE != 0);
    let static_pie = pie && elf.interpreter.is_none() && elf.libraries.is_empty();
    has_dynamic && !static_pie
}

/// Expands `$ORIGIN` (the directory holding the object), `$LIB` and `$PLATFORM` in a search
/// path entry, in both the `$X` and `${X}` spellings, as glibc does on x86-64 Debian.
pub fn expand_dst(entry: &str, origin: &str) -> String {
    let mut out = entry.to_owned();
    for (name, value) in [
        ("ORIGIN", origin),
        ("LIB", "lib/x86_64-linux-gnu"),
        ("PLATFORM", "x86_64"),
    ] {
        out = out
            .replace(&format!("${{{name}}}"), value)
            .replace(&format!("${name}"), value);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_dynamically_linked_system_program() {
        let bytes = std::fs::read("/bin/ls").unwrap();
        let elf = ElfFile::parse(&bytes).unwrap().unwrap();
        assert!(elf.dynamic);
        assert!(elf.needed.iter().any(|n| n == "libc.so.6"), "{elf:?}");
        assert_eq!(elf.interp.as_deref(), Some("/lib64/ld-linux-x86-64.so.2"));
        let floor = elf.glibc_floor.unwrap();
        assert!(floor >= Version::parse("2.3").unwrap(), "{floor}");
        assert!(ElfFile::parse(b"#!/bin/sh\n").unwrap().is_none());
        assert!(ElfFile::parse(b"\x7fELF garbage").is_err());
    }

    #[test]
    fn dynamic_string_tokens_expand_in_both_spellings() {
        assert_eq!(expand_dst("$ORIGIN/../lib", "/a/bin"), "/a/bin/../lib");
        assert_eq!(
            expand_dst("${ORIGIN}/x:$LIB", "/o"),
            "/o/x:lib/x86_64-linux-gnu"
        );
        assert_eq!(expand_dst("/p/$PLATFORM", "/o"), "/p/x86_64");
    }
}
