//! The closure of a program: every shared library it needs, transitively, found where the
//! loader would find it on this machine (`ld.so(8)`), without running anything.
//!
//! For each object's `DT_NEEDED` name, in order: a name with a `/` is a path; else the
//! `DT_RPATH` of the object and then of the objects that loaded it (only when the object has no
//! `DT_RUNPATH`), `LD_LIBRARY_PATH`, the object's own `DT_RUNPATH` (never inherited),
//! `/etc/ld.so.cache`, and the default directories. `$ORIGIN` is the directory of the object
//! whose path entry it is. A candidate of another ELF class or machine is skipped, as the
//! loader skips it. A name is resolved once per process: the first object that needs it decides
//! where it comes from.

use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};

use super::ldcache::LdCache;
use super::{ElfFile, expand_dst, glibc};

/// Where libraries are looked for.
#[derive(Debug, Clone, Default)]
pub struct Search {
    pub cache: LdCache,
    pub ld_library_path: Vec<PathBuf>,
    pub default_dirs: Vec<PathBuf>,
}

impl Search {
    /// The build host's: its `/etc/ld.so.cache`, its `LD_LIBRARY_PATH`, Debian's x86-64
    /// default directories.
    pub fn host() -> Search {
        let ld_library_path = std::env::var_os("LD_LIBRARY_PATH")
            .map(|v| {
                std::env::split_paths(&v)
                    .filter(|p| !p.as_os_str().is_empty())
                    .collect()
            })
            .unwrap_or_default();
        Search {
            cache: LdCache::host(),
            ld_library_path,
            default_dirs: [
                "/lib/x86_64-linux-gnu",
                "/usr/lib/x86_64-linux-gnu",
                "/lib64",
                "/usr/lib64",
                "/lib",
                "/usr/lib",
            ]
            .iter()
            .map(PathBuf::from)
            .collect(),
        }
    }
}

/// One object of the closure: the program itself, or a library it needs.
#[derive(Debug, Clone)]
pub struct Object {
    /// The soname it was needed as (for the program: its file name).
    pub name: String,
    /// Where the loader finds it.
    pub path: PathBuf,
    /// That path with symlinks resolved: the bytes to bundle.
    pub real: PathBuf,
    /// Who needed it first (empty for a root).
    pub needed_by: String,
    pub elf: ElfFile,
}

impl Object {
    /// Whether this library is part of glibc (then the target provides it in `host` mode).
    pub fn is_glibc(&self) -> bool {
        glibc::is_glibc(&self.name)
    }
}

/// A need that nothing on this machine satisfies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Missing {
    pub name: String,
    pub needed_by: String,
}

/// A program's (or several objects') closure.
#[derive(Debug, Clone, Default)]
pub struct Closure {
    /// The roots first, then the libraries in the order they were found (breadth first).
    pub objects: Vec<Object>,
    pub missing: Vec<Missing>,
}

impl Closure {
    /// The highest glibc symbol version any object needs.
    pub fn glibc_floor(&self) -> Option<glibc::Version> {
        self.objects.iter().filter_map(|o| o.elf.glibc_floor).max()
    }

    /// The roots' loader (`PT_INTERP`), if dynamically linked.
    pub fn interp(&self) -> Option<&str> {
        self.objects.first().and_then(|o| o.elf.interp.as_deref())
    }
}

/// Why a closure could not be computed.
#[derive(Debug, thiserror::Error)]
pub enum ClosureError {
    #[error("cannot read {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{} is not an ELF file", path.display())]
    NotElf { path: PathBuf },
    #[error("{} is a damaged ELF file: {reason}", path.display())]
    BadElf { path: PathBuf, reason: String },
}

/// Reads and parses one ELF file: `Ok(None)` if it is not one.
pub fn read_elf(path: &Path) -> Result<Option<ElfFile>, ClosureError> {
    let bytes = std::fs::read(path).map_err(|source| ClosureError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    ElfFile::parse(&bytes).map_err(|e| ClosureError::BadElf {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })
}

/// The closure of `roots` (programs, or extension modules and plugins given with `--library`).
pub fn closure(roots: &[PathBuf], search: &Search) -> Result<Closure, ClosureError> {
    let mut out = Closure::default();
    // soname → index in out.objects.
    let mut resolved: HashMap<String, usize> = HashMap::new();
    // (object index, the DT_RPATH dirs of the objects that loaded it, nearest first)
    let mut queue: VecDeque<(usize, Vec<PathBuf>)> = VecDeque::new();
    for root in roots {
        let elf = read_elf(root)?.ok_or_else(|| ClosureError::NotElf { path: root.clone() })?;
        let real = std::fs::canonicalize(root).map_err(|source| ClosureError::Read {
            path: root.clone(),
            source,
        })?;
        out.objects.push(Object {
            name: root
                .file_name()
                .map_or_else(String::new, |n| n.to_string_lossy().into_owned()),
            path: root.clone(),
            real,
            needed_by: String::new(),
            elf,
        });
        queue.push_back((out.objects.len() - 1, Vec::new()));
    }
    while let Some((i, inherited)) = queue.pop_front() {
        let object = out.objects[i].clone();
        let origin = object
            .real
            .parent()
            .map_or_else(String::new, |p| p.to_string_lossy().into_owned());
        let expand = |entries: &[String]| -> Vec<PathBuf> {
            entries
                .iter()
                .map(|e| PathBuf::from(expand_dst(e, &origin)))
                .collect()
        };
        // This object's DT_RPATH, then its loaders': what it and the objects it loads inherit.
        let mut rpath_chain = if object.elf.runpath.is_empty() {
            expand(&object.elf.rpath)
        } else {
            Vec::new()
        };
        rpath_chain.extend(inherited.iter().cloned());
        let runpath = expand(&object.elf.runpath);
        for name in &object.elf.needed {
            if resolved.contains_key(name) {
                continue;
            }
            let found = if name.contains('/') {
                Some(PathBuf::from(name)).filter(|p| candidate_fits(p, &object.elf))
            } else {
                let mut dirs: Vec<&Path> = Vec::new();
                if object.elf.runpath.is_empty() {
                    dirs.extend(rpath_chain.iter().map(PathBuf::as_path));
                }
                dirs.extend(search.ld_library_path.iter().map(PathBuf::as_path));
                dirs.extend(runpath.iter().map(PathBuf::as_path));
                dirs.iter()
                    .map(|d| d.join(name))
                    .chain(search.cache.get(name).cloned())
                    .chain(search.default_dirs.iter().map(|d| d.join(name)))
                    .find(|p| candidate_fits(p, &object.elf))
            };
            let Some(path) = found else {
                out.missing.push(Missing {
                    name: name.clone(),
                    needed_by: object.name.clone(),
                });
                continue;
            };
            let elf =
                read_elf(&path)?.ok_or_else(|| ClosureError::NotElf { path: path.clone() })?;
            let real = std::fs::canonicalize(&path).map_err(|source| ClosureError::Read {
                path: path.clone(),
                source,
            })?;
            out.objects.push(Object {
                name: name.clone(),
                path,
                real,
                needed_by: object.name.clone(),
                elf,
            });
            let j = out.objects.len() - 1;
            resolved.insert(name.clone(), j);
            // Libraries inherit the DT_RPATH chain of the object that loaded them.
            queue.push_back((j, rpath_chain.clone()));
        }
    }
    Ok(out)
}

/// Whether the loader would take `path` for a need of `of`: an ELF file of the same class and
/// machine.
fn candidate_fits(path: &Path, of: &ElfFile) -> bool {
    let Ok(bytes) = std::fs::read(path) else {
        return false;
    };
    matches!(ElfFile::parse(&bytes), Ok(Some(e)) if e.machine == of.machine && e.is_64 == of.is_64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_closure_of_ls_is_what_ldd_says() {
        let closure = closure(&[PathBuf::from("/bin/ls")], &Search::host()).unwrap();
        assert!(closure.missing.is_empty(), "{:?}", closure.missing);
        let names: Vec<&str> = closure.objects.iter().map(|o| o.name.as_str()).collect();
        assert_eq!(names[0], "ls");
        assert!(names.contains(&"libc.so.6"), "{names:?}");
        let ldd = std::process::Command::new("ldd")
            .arg("/bin/ls")
            .output()
            .unwrap();
        let ldd = String::from_utf8_lossy(&ldd.stdout);
        for o in &closure.objects[1..] {
            // `libc.so.6 => /lib/…/libc.so.6 (0x…)`, or for the loader `/lib64/ld-linux… (0x…)`.
            let line = ldd
                .lines()
                .map(str::trim)
                .find(|l| l.starts_with(&o.name) || l.contains(&format!("/{}", o.name)))
                .unwrap_or_else(|| panic!("{} not in ldd's output:\n{ldd}", o.name));
            let ldd_path = line
                .split("=> ")
                .last()
                .unwrap()
                .split(" (")
                .next()
                .unwrap();
            assert_eq!(
                std::fs::canonicalize(ldd_path).unwrap(),
                o.real,
                "{}",
                o.name
            );
        }
        assert_eq!(closure.interp(), Some("/lib64/ld-linux-x86-64.so.2"));
        assert!(
            closure
                .objects
                .iter()
                .any(|o| o.name == "libc.so.6" && o.is_glibc())
        );
        assert!(
            closure
                .objects
                .iter()
                .any(|o| !o.is_glibc() && o.needed_by == "ls")
        );
    }
}
