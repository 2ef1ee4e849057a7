//! A native program with the shared libraries it needs, as one layer
//! (`wrapkit_runtime::format::layer`): `wrapkit pack DIR --program PATH`, and an `exec` program
//! in the app that is dynamically linked against libraries the app does not hold.
//!
//! ```text
//! .layers/<name>/bin/<name>     the program, with slots for an absolute PT_INTERP and DT_RPATH
//! .layers/<name>/lib/…          every library of its closure that is not glibc, and --library files
//! .layers/<name>/glibc/…        glibc's libraries and its loader (libc bundle or auto)
//! ```
//!
//! The closure is read from the ELF files themselves ([`crate::elf::closure`]), never by running
//! `ldd`. The program gets fixed-size slots ([`crate::elf::patch`]) that the runtime fills when
//! it materialises the layer: `DT_RPATH` = the layer's `lib` (and `glibc`) directories by
//! absolute path, `PT_INTERP` = the host's loader or the layer's own. So the program runs by its
//! real path, `/proc/self/exe` and `argv[0]` name it, re-executing itself works with or without
//! `/proc`, and no `LD_LIBRARY_PATH` reaches its children. `DT_RPATH` (not `DT_RUNPATH`) because
//! the loader also uses an executable's `DT_RPATH` for its libraries' own needs.
//!
//! `dlopen`ed libraries cannot be seen; glibc's `libgcc_s.so.1` (thread cancellation) is added
//! when glibc is bundled, anything else is named with `--library`.

use std::path::{Path, PathBuf};

use wrapkit_runtime::format::EntryKind;
use wrapkit_runtime::format::layer::{Digester, Layer, Libc, Patch};

use crate::elf::closure::{self, Search};
use crate::elf::{ElfFile, patch};
use crate::error::PackError;
use crate::plan::{Plan, Planned, Source};

/// Where layers live in the archive.
pub const LAYERS_DIR: &str = ".layers";
/// Bytes reserved for each absolute path the runtime writes (PATH_MAX is 4096; a cache path
/// plus a layer's 64-digit digest fits in far less).
pub const SLOT_BYTES: u32 = 1024;

/// What to bundle.
#[derive(Debug, Clone)]
pub struct Program<'a> {
    /// The program's file on the build host (symlinks are followed for its bytes).
    pub path: &'a Path,
    /// The layer's name (`.layers/<layer>/`), usually the same as `name`.
    pub layer: &'a str,
    /// The name it runs as (`bin/<name>`), usually `path`'s file name.
    pub name: &'a str,
    /// Extension modules and plugins it loads, followed for their needs too.
    pub libraries: &'a [PathBuf],
    /// ELF files the caller has already put in the plan where they must stay (Python's
    /// `lib-dynload` modules, a venv's extension modules): their needs are followed and bundled
    /// in `lib/`, but they are not copied again, and neither is anything found below
    /// `placed_dirs` (a wheel's own `.libs` directory, which its modules reach by `$ORIGIN`).
    pub placed: &'a [PathBuf],
    pub placed_dirs: &'a [PathBuf],
    pub libc: Libc,
}

impl<'a> Program<'a> {
    /// A program that runs as its file name, in a layer of that name, with nothing placed.
    pub fn plain(path: &'a Path, name: &'a str, libraries: &'a [PathBuf], libc: Libc) -> Self {
        Program {
            path,
            layer: name,
            name,
            libraries,
            placed: &[],
            placed_dirs: &[],
            libc,
        }
    }
}

/// Adds the layer for `program` to `plan`; returns the archive path of the program to run.
pub fn add(plan: &mut Plan, program: &Program<'_>) -> Result<String, PackError> {
    let read = |path: &Path| {
        std::fs::read(path).map_err(|source| PackError::Read {
            path: path.to_path_buf(),
            source,
        })
    };
    let bytes = read(program.path)?;
    let not_a_program = |reason: String| PackError::NotAProgram {
        path: program.path.to_path_buf(),
        reason,
    };
    let elf = ElfFile::parse(&bytes)
        .map_err(|e| not_a_program(format!("a damaged ELF file: {e}")))?
        .ok_or_else(|| not_a_program("not an ELF file".into()))?;
    let prefix = format!("{LAYERS_DIR}/{}", program.layer);
    let bin = format!("{prefix}/bin/{}", program.name);
    let mut layer = Layer {
        prefix: prefix.clone(),
        digest: String::new(),
        libc: program.libc,
        glibc: None,
        patches: Vec::new(),
    };

    let dynamic = elf.dynamic && elf.interp.is_some();
    if !dynamic {
        // Static (or static-pie): nothing to find, nothing to patch.
        layer.libc = Libc::Host;
        plan.add(file(&bin, 0o755, Source::Generated(bytes)))?;
        return finish(plan, layer, bin);
    }

    let real = std::fs::canonicalize(program.path).map_err(|source| PackError::Read {
        path: program.path.to_path_buf(),
        source,
    })?;
    let mut roots = vec![real];
    for lib in program.libraries.iter().chain(program.placed) {
        roots.push(
            std::fs::canonicalize(lib).map_err(|source| PackError::Read {
                path: lib.clone(),
                source,
            })?,
        );
    }
    let search = Search::host();
    let found = closure::closure(&roots, &search).map_err(|e| PackError::Closure {
        path: program.path.to_path_buf(),
        reason: wrapkit_runtime::cache::chain(&e),
    })?;
    if !found.missing.is_empty() {
        return Err(PackError::LibrariesNotFound {
            path: program.path.to_path_buf(),
            missing: found
                .missing
                .iter()
                .map(|m| format!("{} (needed by {})", m.name, m.needed_by))
                .collect(),
        });
    }
    let bundle_glibc = program.libc != Libc::Host;
    let interp = elf.interp.clone().expect("dynamic programs have one");
    let placed = 1 + program.libraries.len()..1 + program.libraries.len() + program.placed.len();
    for (i, object) in found.objects.iter().enumerate().skip(1) {
        let dir = if object.is_glibc() { "glibc" } else { "lib" };
        if (object.is_glibc() && !bundle_glibc)
            || placed.contains(&i)
            || program
                .placed_dirs
                .iter()
                .any(|d| object.real.starts_with(d))
        {
            continue;
        }
        // --library roots keep their file names; libraries are found by soname.
        let name = if i <= program.libraries.len() {
            file_name(&object.real)
        } else {
            object.name.clone()
        };
        if object.is_glibc() {
            add_copy(plan, &format!("{prefix}/{dir}/{name}"), &object.real)?;
        } else {
            add_library(plan, &format!("{prefix}/{dir}/{name}"), &object.real)?;
        }
    }
    if bundle_glibc {
        let loader = std::fs::canonicalize(&interp).map_err(|source| PackError::Read {
            path: PathBuf::from(&interp),
            source,
        })?;
        add_copy(
            plan,
            &format!("{prefix}/glibc/{}", file_name(Path::new(&interp))),
            &loader,
        )?;
        // glibc dlopens it for pthread_cancel and unwinding; it is not a DT_NEEDED anywhere.
        // Beside glibc, not in lib/: it is built against this glibc and must not be used
        // with an older one of the target's.
        let gcc_s = format!("{prefix}/glibc/libgcc_s.so.1");
        if plan.get(&gcc_s).is_none()
            && plan.get(&format!("{prefix}/lib/libgcc_s.so.1")).is_none()
            && let Some(path) = search.cache.get("libgcc_s.so.1")
        {
            let path = path.clone();
            add_copy(plan, &gcc_s, &path)?;
        }
    }

    let reserved = patch::reserve(&bytes, SLOT_BYTES).map_err(|e| PackError::NotAProgram {
        path: program.path.to_path_buf(),
        reason: format!("cannot reserve room for its library paths: {e}"),
    })?;
    let rel_bin = format!("bin/{}", program.name);
    layer.patches = vec![
        Patch {
            path: rel_bin.clone(),
            offset: reserved.interp.offset,
            capacity: reserved.interp.capacity,
            host: interp.clone(),
            bundle: format!("{{layer}}/glibc/{}", file_name(Path::new(&interp))),
        },
        Patch {
            path: rel_bin,
            offset: reserved.rpath.offset,
            capacity: reserved.rpath.capacity,
            host: "{layer}/lib".into(),
            bundle: "{layer}/lib:{layer}/glibc".into(),
        },
    ];
    // What the target's glibc must provide: glibc's own files do not count (they come with
    // each other, from the target or from the layer).
    layer.glibc = found
        .objects
        .iter()
        .filter(|o| !o.is_glibc())
        .filter_map(|o| o.elf.glibc_floor)
        .max()
        .map(|v| format!("{}.{}", v.0, v.1));
    plan.add(file(&bin, 0o755, Source::Generated(reserved.bytes)))?;
    finish(plan, layer, bin)
}

/// Computes the layer's digest from what the plan holds below its prefix and adds it.
fn finish(plan: &mut Plan, mut layer: Layer, bin: String) -> Result<String, PackError> {
    let mut digest = Digester::new(&layer);
    for e in plan.entries() {
        let Some(rel) = layer.relative(&e.name) else {
            continue;
        };
        let data = match (&e.kind, &e.source) {
            (EntryKind::File, Source::Generated(bytes)) => blake3::hash(bytes).as_bytes().to_vec(),
            (EntryKind::File, Source::Disk(path)) => {
                let mut hasher = blake3::Hasher::new();
                let file = std::fs::File::open(path).map_err(|source| PackError::Read {
                    path: path.clone(),
                    source,
                })?;
                hasher
                    .update_reader(file)
                    .map_err(|source| PackError::Read {
                        path: path.clone(),
                        source,
                    })?;
                hasher.finalize().as_bytes().to_vec()
            }
            (EntryKind::Symlink, _) => e.target.clone().unwrap_or_default().into_bytes(),
            _ => Vec::new(),
        };
        digest.entry(rel, e.kind, e.mode, e.size, &data);
    }
    layer.digest = digest.finish();
    plan.layers.push(layer);
    Ok(bin)
}

fn file(name: &str, mode: u32, source: Source) -> Planned {
    let size = match &source {
        Source::Generated(b) => b.len() as u64,
        _ => 0,
    };
    Planned {
        name: name.to_owned(),
        kind: EntryKind::File,
        mode,
        size,
        target: None,
        source,
    }
}

/// Adds the file at `path` (symlinks already resolved) as `name`, once.
fn add_copy(plan: &mut Plan, name: &str, path: &Path) -> Result<(), PackError> {
    if plan.get(name).is_some() {
        return Ok(());
    }
    let meta = std::fs::metadata(path).map_err(|source| PackError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    plan.add(Planned {
        name: name.to_owned(),
        kind: EntryKind::File,
        mode: std::os::unix::fs::PermissionsExt::mode(&meta.permissions()) & 0o7777,
        size: meta.len(),
        target: None,
        source: Source::Disk(path.to_path_buf()),
    })
}

/// Adds the library at `path` as `name`, once, with its own search path deferring to the
/// program's ([`patch::defer_search_path`]): an absolute `DT_RUNPATH` of the build host would
/// otherwise keep the loader from the layer's directories for that library's needs.
pub fn add_library(plan: &mut Plan, name: &str, path: &Path) -> Result<(), PackError> {
    if plan.get(name).is_some() {
        return Ok(());
    }
    let mut bytes = std::fs::read(path).map_err(|source| PackError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    if !patch::defer_search_path(&mut bytes).map_err(|e| PackError::NotAProgram {
        path: path.to_path_buf(),
        reason: format!("cannot rewrite its library search path: {e}"),
    })? {
        return add_copy(plan, name, path);
    }
    let meta = std::fs::metadata(path).map_err(|source| PackError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let mode = std::os::unix::fs::PermissionsExt::mode(&meta.permissions()) & 0o7777;
    plan.add(file(name, mode, Source::Generated(bytes)))
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}
