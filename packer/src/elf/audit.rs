//! What the ELF files inside an archive need, and where each need is met once the archive is
//! materialised: bundled (found in the tree through the file's own `$ORIGIN`-relative search
//! path), glibc (the target's), or missing (the target must happen to have it). Also the glibc
//! floor (the highest `GLIBC_x.y` any symbol needs) and search path entries that are absolute
//! paths on the build host: a silent leak, since the packed program would load that machine's
//! libraries wherever the directory exists.

use serde::Serialize;
use wrapkit_runtime::archive::Archive;
use wrapkit_runtime::format::EntryKind;
use wrapkit_runtime::format::index::Entry;
use wrapkit_runtime::format::layer::Layer;
use wrapkit_runtime::format::path;

use super::{ElfFile, expand_dst, glibc};

/// Where one need is met.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Met {
    Bundled,
    Glibc,
    Missing,
}

#[derive(Debug, Clone, Serialize)]
pub struct Need {
    pub name: String,
    pub met: Met,
    /// The archive path it was found at, when bundled.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
}

/// One ELF file of the archive.
#[derive(Debug, Clone, Serialize)]
pub struct Audited {
    pub name: String,
    /// No dynamic needs at all (static or static-pie).
    #[serde(rename = "static")]
    pub is_static: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub interp: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub glibc_floor: Option<String>,
    pub needs: Vec<Need>,
    /// `DT_RUNPATH`/`DT_RPATH` entries that are absolute paths (no `$ORIGIN`).
    pub absolute_search_paths: Vec<String>,
}

/// The whole report.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub files: Vec<Audited>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub glibc_floor: Option<String>,
    pub missing: usize,
}

/// Audits every ELF file among `entries` (a validated archive's). A file in one of `layers` is
/// judged as the runtime will run it: its layer's `lib` (and `glibc`) directories come first,
/// by the `DT_RPATH` the layer's program gets at fill time, which its libraries inherit; the
/// program's own slot is not a build-host path.
pub fn audit(
    archive: &Archive<'_>,
    entries: &[Entry<'_>],
    layers: &[Layer],
) -> Result<Report, wrapkit_runtime::format::FormatError> {
    let mut files = Vec::new();
    let mut floor: Option<glibc::Version> = None;
    for e in entries
        .iter()
        .filter(|e| e.kind == EntryKind::File && e.size >= 4)
    {
        let contents = archive.contents(e, true)?;
        let Ok(Some(elf)) = ElfFile::parse(&contents) else {
            continue;
        };
        // A layer's own glibc (and what comes with it) does not raise what the target needs.
        let with_glibc = layers
            .iter()
            .any(|l| e.name.starts_with(&format!("{}/glibc/", l.prefix)));
        if !with_glibc {
            floor = floor.max(elf.glibc_floor);
        }
        let resolve = |candidate: &str| match archive.resolve(candidate) {
            Ok(Some(e)) if e.kind == EntryKind::File => Some(e.name.to_owned()),
            _ => None,
        };
        let mut audited = audit_elf(e.name, &elf, resolve);
        if let Some(layer) = layers.iter().find(|l| l.relative(e.name).is_some()) {
            let dirs = [
                format!("{}/lib", layer.prefix),
                format!("{}/glibc", layer.prefix),
            ];
            for need in audited.needs.iter_mut().filter(|n| n.met == Met::Missing) {
                if let Some(found) = dirs
                    .iter()
                    .find_map(|d| resolve(&format!("{d}/{}", need.name)))
                {
                    need.met = Met::Bundled;
                    need.path = Some(found);
                }
            }
            let rel = layer.relative(e.name).unwrap_or_default();
            if layer.patches.iter().any(|p| p.path == rel) {
                audited.absolute_search_paths.clear();
            }
        }
        files.push(audited);
    }
    let missing = files
        .iter()
        .flat_map(|f| &f.needs)
        .filter(|n| n.met == Met::Missing)
        .count();
    Ok(Report {
        files,
        glibc_floor: floor.map(|v| v.to_string()),
        missing,
    })
}

/// Audits the ELF file at archive path `name` of a tree in which `resolve` finds files (through
/// symlinks, as the OS would): the archive's, or a pack plan's.
pub fn audit_elf(name: &str, elf: &ElfFile, resolve: impl Fn(&str) -> Option<String>) -> Audited {
    // `$ORIGIN` is the entry's directory in the tree, written as an absolute path under a
    // root that cannot exist, so entries that climb above the tree are told apart.
    const ROOT: &str = "/\u{0}wrapkit-tree";
    let origin = match path::parent(name) {
        "" => ROOT.to_owned(),
        dir => format!("{ROOT}/{dir}"),
    };
    let search = elf.own_search_path();
    let absolute_search_paths = search
        .iter()
        .filter(|p| !p.contains("$ORIGIN") && !p.contains("${ORIGIN}"))
        .cloned()
        .collect();
    let dirs: Vec<String> = search
        .iter()
        .filter_map(|p| {
            let expanded = expand_dst(p, &origin);
            let rel = expanded.strip_prefix(ROOT)?.trim_start_matches('/');
            path::normalise(rel)
        })
        .collect();
    let needs = elf
        .needed
        .iter()
        .map(|need| {
            if glibc::is_glibc(need) {
                return Need {
                    name: need.clone(),
                    met: Met::Glibc,
                    path: None,
                };
            }
            let found = dirs.iter().find_map(|d| {
                let candidate = if d.is_empty() {
                    need.clone()
                } else {
                    format!("{d}/{need}")
                };
                resolve(&candidate)
            });
            Need {
                name: need.clone(),
                met: if found.is_some() {
                    Met::Bundled
                } else {
                    Met::Missing
                },
                path: found,
            }
        })
        .collect();
    Audited {
        name: name.to_owned(),
        is_static: !elf.dynamic,
        interp: elf.interp.clone(),
        glibc_floor: elf.glibc_floor.map(|v| v.to_string()),
        needs,
        absolute_search_paths,
    }
}
