//! The pack plan: what will be in the archive, where each entry comes from, and what the packed
//! executable runs. Packing is a plan, then a write.
//!
//! Recipes ([`crate::recipe`]) fill a [`Plan`]: the app directory at the root, and later an
//! interpreter tree, its libraries or a generated launcher at other prefixes. Every entry has an
//! archive name and a [`Source`]: a file on disk, or bytes the packer made. [`Plan::add`] checks
//! each name against the format's rules as it arrives (so nothing a reader would refuse gets
//! in): valid, not reserved, not a duplicate, not colliding after case-folding or NFC, no file
//! where a directory is needed; parents the recipe did not add are added as directories. One
//! [`RunSpec`] says what runs; [`Plan::check_run`] checks it against the entries, through
//! symlinks, with the format's one resolver. The writer ([`crate::write`]) only writes a plan;
//! `wrapkit pack --list` only prints one ([`Plan::listing`]).

use std::collections::{BTreeMap, HashMap};
use std::convert::Infallible;
use std::fmt::Write as _;
use std::path::PathBuf;

use wrapkit_runtime::format::layer::Layer;
use wrapkit_runtime::format::limits::{LIMITS, Tally};
use wrapkit_runtime::format::links::{Node, Resolved, Resolver};
use wrapkit_runtime::format::manifest::Run;
use wrapkit_runtime::format::{EntryKind, path};

use crate::error::PackError;
use crate::inspect::human_bytes;

/// Where an entry's contents come from.
#[derive(Debug, Clone)]
pub enum Source {
    /// A file on disk (read when written; files over 64 MiB are streamed).
    Disk(PathBuf),
    /// Bytes the packer made: a launcher, a `._pth` file, a config.
    Generated(Vec<u8>),
    /// Nothing: directories, and symlinks (whose target is the entry's).
    None,
}

/// One entry of the plan.
#[derive(Debug, Clone)]
pub struct Planned {
    pub name: String,
    pub kind: EntryKind,
    /// Permission bits of the source (normalised by the writer).
    pub mode: u32,
    /// Bytes of contents (files), target length (symlinks).
    pub size: u64,
    /// A symlink's target.
    pub target: Option<String>,
    pub source: Source,
}

/// What the packed executable runs, resolved once from the config file and the flags.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunSpec {
    /// The embedded Lua runs this archive path.
    Lua { entry: String },
    /// This program (an archive path) runs from the materialised cache, with these arguments
    /// and variables (`{root}` and `{exe}` expanded at run time).
    Exec {
        argv: Vec<String>,
        env: BTreeMap<String, String>,
        /// The program's `argv[0]`, when not its own path (the manifest's `argv0`).
        argv0: Option<String>,
    },
}

impl RunSpec {
    /// The manifest's form of it.
    pub fn to_manifest(&self) -> Run {
        match self {
            RunSpec::Lua { entry } => Run::Lua {
                entry: entry.clone(),
            },
            RunSpec::Exec { argv, env, argv0 } => Run::Exec {
                argv: argv.clone(),
                env: env.clone(),
                argv0: argv0.clone(),
            },
        }
    }
}

/// Everything that will be packed.
#[derive(Debug)]
pub struct Plan {
    pub name: String,
    pub version: String,
    pub run: RunSpec,
    entries: BTreeMap<String, Planned>,
    /// Collision key (case-folded, NFC) → the name that has it.
    keys: HashMap<String, String>,
    /// What has been added, against the format's limits.
    tally: Tally,
    /// Paths the recipes' filters left out (a directory stands for all it holds), so that an
    /// entry script or program among them is reported as excluded, not as missing.
    pub excluded: Vec<String>,
    /// Programs with their libraries under their own prefixes, each materialised as a shared
    /// tree at run time (`wrapkit_runtime::format::layer`); filled by the program recipes.
    pub layers: Vec<Layer>,
    /// Directories a recipe made for files it adds from disk (pip's install of
    /// `--requirements`), removed when the plan is dropped, after the write.
    pub staging: Vec<tempfile::TempDir>,
    /// What the recipes chose that the user did not name (the interpreter a shim led to, the
    /// script a Python app runs): printed as notes.
    pub notes: Vec<String>,
}

impl Plan {
    pub fn new(name: String, version: String, run: RunSpec) -> Plan {
        Plan {
            name,
            version,
            run,
            entries: BTreeMap::new(),
            keys: HashMap::new(),
            tally: Tally::default(),
            excluded: Vec::new(),
            layers: Vec::new(),
            staging: Vec::new(),
            notes: Vec::new(),
        }
    }

    /// Adds one entry, and its parent directories if they are not there yet.
    pub fn add(&mut self, entry: Planned) -> Result<(), PackError> {
        let origin = || match &entry.source {
            Source::Disk(p) => p.display().to_string(),
            _ => entry.name.clone(),
        };
        if path::is_reserved(&entry.name) {
            return Err(PackError::Reserved {
                path: PathBuf::from(origin()),
            });
        }
        path::validate(&entry.name).map_err(|source| PackError::BadName {
            path: PathBuf::from(origin()),
            source,
        })?;
        let parent = path::parent(&entry.name);
        if !parent.is_empty() {
            match self.entries.get(parent) {
                Some(p) if p.kind != EntryKind::Dir => {
                    return Err(PackError::Collision {
                        first: p.name.clone(),
                        second: entry.name.clone(),
                    });
                }
                Some(_) => {}
                None => self.add(Planned {
                    name: parent.to_owned(),
                    kind: EntryKind::Dir,
                    mode: 0o755,
                    size: 0,
                    target: None,
                    source: Source::None,
                })?,
            }
        }
        if let Some(first) = self.keys.get(&path::collision_key(&entry.name)) {
            // The same directory from two recipes is one directory.
            if *first == entry.name
                && entry.kind == EntryKind::Dir
                && self.entries[first].kind == EntryKind::Dir
            {
                return Ok(());
            }
            return Err(PackError::Collision {
                first: first.clone(),
                second: entry.name,
            });
        }
        // The writer applies the same limits; checking here names the source before a byte
        // is read.
        LIMITS
            .admit(
                &mut self.tally,
                &entry.name,
                entry.kind == EntryKind::Symlink,
                entry.size,
            )
            .map_err(|source| PackError::OverLimit {
                path: PathBuf::from(origin()),
                source,
            })?;
        self.keys
            .insert(path::collision_key(&entry.name), entry.name.clone());
        self.entries.insert(entry.name.clone(), entry);
        Ok(())
    }

    /// The entries, sorted by name bytewise (the order they are written in).
    pub fn entries(&self) -> impl ExactSizeIterator<Item = &Planned> {
        self.entries.values()
    }

    /// The entry named exactly `name`.
    pub fn get(&self, name: &str) -> Option<&Planned> {
        self.entries.get(name)
    }

    /// The number of file entries and their total size.
    pub fn file_totals(&self) -> (u64, u64) {
        self.entries()
            .filter(|e| e.kind == EntryKind::File)
            .fold((0, 0), |(n, bytes), e| (n + 1, bytes + e.size))
    }

    /// Checks the run spec against the entries: the Lua entry, or the exec program, must be a
    /// file in the plan (through in-tree symlinks), the program executable; arguments and
    /// variables must survive `execve`.
    ///
    /// Returns warnings: what the program will need from the target (a dynamically linked
    /// program whose libraries are not in the plan, a `#!` interpreter, which always comes from
    /// outside the tree).
    pub fn check_run(&self, app_dir: &std::path::Path) -> Result<Vec<String>, PackError> {
        match &self.run {
            RunSpec::Lua { entry } => match self.resolve(entry) {
                Some(e) if e.kind == EntryKind::File => {
                    check_lua_entry(entry, e)?;
                    Ok(Vec::new())
                }
                _ => Err(self
                    .excluded_error("entry script", entry)
                    .unwrap_or_else(|| PackError::MissingEntry {
                        entry: entry.clone(),
                        dir: app_dir.to_path_buf(),
                    })),
            },
            RunSpec::Exec { argv, env, .. } => {
                if let Some(program) = argv.first()
                    && self.resolve(program).is_none()
                    && let Some(err) = self.excluded_error("program", program)
                {
                    return Err(err);
                }
                check_exec(self, argv, env)?;
                self.host_dependencies(&argv[0])
            }
        }
    }

    /// The error for `name`, when the filters left it (or a directory holding it) out.
    fn excluded_error(&self, what: &'static str, name: &str) -> Option<PackError> {
        let name = path::normalise(name)?;
        let hit = self.excluded.iter().any(|x| {
            name == *x
                || name
                    .strip_prefix(x.as_str())
                    .is_some_and(|r| r.starts_with('/'))
        });
        hit.then_some(PackError::Excluded { what, name })
    }

    /// The exec program `program`'s name and file, when it is a dynamically linked ELF file
    /// from disk whose libraries the plan does not hold: the program recipe should bundle it.
    pub fn needs_closure(&self, program: &str) -> Result<Option<(String, PathBuf)>, PackError> {
        let Some(e) = self.resolve(program) else {
            return Ok(None);
        };
        let Source::Disk(path) = &e.source else {
            return Ok(None);
        };
        if self.layers.iter().any(|l| l.holds(&e.name)) {
            return Ok(None);
        }
        let bytes = std::fs::read(path).map_err(|source| PackError::Read {
            path: path.clone(),
            source,
        })?;
        let Ok(Some(elf)) = crate::elf::ElfFile::parse(&bytes) else {
            return Ok(None);
        };
        if elf.interp.is_none() {
            return Ok(None);
        }
        let audited = crate::elf::audit::audit_elf(&e.name, &elf, |candidate| {
            self.resolve(candidate)
                .filter(|f| f.kind == EntryKind::File)
                .map(|f| f.name.clone())
        });
        let missing = audited
            .needs
            .iter()
            .any(|n| n.met == crate::elf::audit::Met::Missing);
        Ok(missing.then(|| (e.name.clone(), path.clone())))
    }

    /// Replaces the entry `name` with a relative symlink to the archive path `target`.
    pub fn replace_with_link(&mut self, name: &str, target: &str) -> Result<(), PackError> {
        let depth = name.matches('/').count();
        let relative = format!("{}{target}", "../".repeat(depth));
        let entry = self
            .entries
            .get_mut(name)
            .ok_or_else(|| PackError::BadExec {
                reason: format!("`{name}` is not in the app"),
            })?;
        entry.kind = EntryKind::Symlink;
        entry.mode = 0o777;
        entry.size = relative.len() as u64;
        entry.target = Some(relative);
        entry.source = Source::None;
        Ok(())
    }

    /// What the exec program `program` will need from the target machine.
    fn host_dependencies(&self, program: &str) -> Result<Vec<String>, PackError> {
        let Some(e) = self.resolve(program) else {
            return Ok(Vec::new());
        };
        // A layer's program finds its libraries through the paths the runtime writes into it.
        if self.layers.iter().any(|l| l.holds(&e.name)) {
            return Ok(Vec::new());
        }
        let bytes = match &e.source {
            Source::Disk(path) => std::fs::read(path).map_err(|source| PackError::Read {
                path: path.clone(),
                source,
            })?,
            Source::Generated(bytes) => bytes.clone(),
            Source::None => return Ok(Vec::new()),
        };
        let mut warnings = Vec::new();
        if let Some(interp) = bytes.strip_prefix(b"#!") {
            let line = interp.split(|&b| b == b'\n').next().unwrap_or_default();
            let line = String::from_utf8_lossy(line).trim().to_owned();
            warnings.push(format!(
                "`{program}` is a script for `{line}`, which comes from the target machine: where it is missing the program exits 127 (pack the interpreter in the app and name it in `exec` instead)"
            ));
        } else if let Ok(Some(elf)) = crate::elf::ElfFile::parse(&bytes) {
            let audited = crate::elf::audit::audit_elf(&e.name, &elf, |candidate| {
                self.resolve(candidate)
                    .filter(|f| f.kind == EntryKind::File)
                    .map(|f| f.name.clone())
            });
            let missing: Vec<&str> = audited
                .needs
                .iter()
                .filter(|n| n.met == crate::elf::audit::Met::Missing)
                .map(|n| n.name.as_str())
                .collect();
            if !missing.is_empty() {
                warnings.push(format!(
                    "`{program}` is dynamically linked and needs {}, which the app does not hold: it runs only where the target has them (`wrapkit audit` lists every need)",
                    missing.join(", ")
                ));
            }
        }
        Ok(warnings)
    }

    /// The entry `name` leads to, following symlinks in the plan as the OS would (with the
    /// format's one resolver); `None` if it leads nowhere or out of the tree.
    pub fn resolve(&self, name: &str) -> Option<&Planned> {
        let mut resolver = Resolver::new(|n: &str| -> Result<Node, Infallible> {
            Ok(match self.entries.get(n) {
                None => Node::Missing,
                Some(e) => match e.kind {
                    EntryKind::Dir => Node::Dir,
                    EntryKind::File => Node::File,
                    EntryKind::Symlink => Node::Symlink(e.target.clone().unwrap_or_default()),
                },
            })
        });
        match resolver.resolve(name) {
            Ok(Resolved::Found { name, .. }) => self.entries.get(&name),
            _ => None,
        }
    }

    /// What `wrapkit pack --list` prints: the run spec, one line per entry (kind, size, name,
    /// where it comes from), and the totals.
    pub fn listing(&self) -> String {
        let mut out = String::new();
        let run = match &self.run {
            RunSpec::Lua { entry } => format!("lua {entry}"),
            RunSpec::Exec { argv, .. } => format!("exec {}", argv.join(" ")),
        };
        let _ = writeln!(out, "{} {}: {run}", self.name, self.version);
        let (mut dirs, mut links, mut generated) = (0u64, 0u64, 0u64);
        for e in self.entries() {
            let (kind, from) = match (&e.kind, &e.source) {
                (EntryKind::Dir, _) => {
                    dirs += 1;
                    ('d', String::new())
                }
                (EntryKind::Symlink, _) => {
                    links += 1;
                    (
                        'l',
                        format!("-> {}", e.target.as_deref().unwrap_or_default()),
                    )
                }
                (EntryKind::File, Source::Disk(p)) => ('f', format!("<- {}", p.display())),
                (EntryKind::File, _) => {
                    generated += e.size;
                    ('f', "(generated)".to_owned())
                }
            };
            let size = if e.kind == EntryKind::File {
                human_bytes(e.size)
            } else {
                String::new()
            };
            let name = if e.kind == EntryKind::Dir {
                format!("{}/", e.name)
            } else {
                e.name.clone()
            };
            let line = format!("{kind} {size:>10}  {name}  {from}");
            let _ = writeln!(out, "{}", line.trim_end());
        }
        let (files, bytes) = self.file_totals();
        let plural =
            |n: u64, one: &str, many: &str| format!("{n} {}", if n == 1 { one } else { many });
        let _ = writeln!(
            out,
            "{} ({}, {} of it generated), {}, {}",
            plural(files, "file", "files"),
            human_bytes(bytes),
            human_bytes(generated),
            plural(dirs, "directory", "directories"),
            plural(links, "symlink", "symlinks"),
        );
        out
    }
}

/// A Lua app's entry must be Lua: a script for another language would pack fine and fail at
/// run time as a Lua syntax error.
fn check_lua_entry(name: &str, e: &Planned) -> Result<(), PackError> {
    const OTHER: &[(&str, &str)] = &[
        (".py", "Python"),
        (".js", "JavaScript"),
        (".mjs", "JavaScript"),
        (".cjs", "JavaScript"),
        (".ts", "TypeScript"),
        (".tcl", "Tcl"),
        (".sh", "a shell"),
        (".bash", "bash"),
        (".rb", "Ruby"),
        (".pl", "Perl"),
        (".php", "PHP"),
    ];
    let language = OTHER
        .iter()
        .find(|(ext, _)| name.ends_with(ext))
        .map(|(_, lang)| (*lang).to_owned())
        .or_else(|| {
            // A `#!` line naming something other than Lua.
            let Source::Disk(path) = &e.source else {
                return None;
            };
            let mut head = [0u8; 128];
            let n = std::fs::File::open(path)
                .and_then(|mut f| std::io::Read::read(&mut f, &mut head))
                .ok()?;
            let line = head[..n].strip_prefix(b"#!")?;
            let line = line.split(|&b| b == b'\n').next()?;
            let line = String::from_utf8_lossy(line);
            (!line.contains("lua")).then(|| format!("`{}`", line.trim()))
        });
    match language {
        Some(language) => Err(PackError::NotLua {
            entry: name.to_owned(),
            language,
        }),
        None => Ok(()),
    }
}

fn check_exec(
    plan: &Plan,
    argv: &[String],
    env: &BTreeMap<String, String>,
) -> Result<(), PackError> {
    let bad = |reason: String| Err(PackError::BadExec { reason });
    let Some(program) = argv.first() else {
        return bad("it is empty; name a program inside the app directory".into());
    };
    if let Some(nul) = argv.iter().find(|a| a.contains('\0')) {
        return bad(format!("`{}` contains a NUL byte", nul.escape_debug()));
    }
    if path::validate(program).is_err() || path::is_reserved(program) {
        return bad(format!(
            "the program `{program}` is not a relative path inside the app directory"
        ));
    }
    match plan.resolve(program) {
        Some(e) if e.kind == EntryKind::File && e.mode & 0o111 != 0 => {}
        Some(e) if e.kind == EntryKind::File => {
            return bad(format!(
                "the program `{program}` is not executable (run `chmod +x` on it before packing)"
            ));
        }
        _ => {
            return bad(format!(
                "the program `{program}` is not a file in the app directory"
            ));
        }
    }
    for (key, value) in env {
        let env_bad = |reason: String| {
            Err(PackError::BadEnv {
                key: key.clone(),
                reason,
            })
        };
        if value.contains('\0') {
            return env_bad("its value contains a NUL byte".into());
        }
        if key.is_empty() || key.contains('=') || key.contains('\0') {
            return env_bad("it is not a valid environment variable name".into());
        }
        if key == "WRAPKIT_EXE" || key == "WRAPKIT_ROOT" {
            return env_bad("it is set by the runtime and cannot be overridden".into());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(name: &str) -> Planned {
        Planned {
            name: name.into(),
            kind: EntryKind::File,
            mode: 0o644,
            size: 1,
            target: None,
            source: Source::Generated(b"x".to_vec()),
        }
    }

    #[test]
    fn parents_are_added_and_names_checked() {
        let mut plan = Plan::new("a".into(), "1".into(), RunSpec::Lua { entry: "x".into() });
        plan.add(file("lib/python3/os.py")).unwrap();
        let names: Vec<_> = plan.entries().map(|e| e.name.as_str()).collect();
        assert_eq!(names, ["lib", "lib/python3", "lib/python3/os.py"]);
        assert!(matches!(
            plan.add(file("LIB/x")),
            Err(PackError::Collision { .. })
        ));
        assert!(matches!(
            plan.add(file("lib/python3/os.py/x")),
            Err(PackError::Collision { .. })
        ));
        assert!(matches!(
            plan.add(file(".wrapkit/x")),
            Err(PackError::Reserved { .. })
        ));
        assert!(matches!(
            plan.add(file("a/../b")),
            Err(PackError::BadName { .. })
        ));
    }
}
