//! Turning an app directory into the list of entries to pack.
//!
//! The walk is deterministic: entries come out sorted by their archive name, bytewise, whatever
//! order the filesystem lists them in. Names are checked against the format's rules as they are
//! found, so a name the runtime would refuse never reaches the writer. What cannot be packed is
//! an error naming the path, never a silent skip: special files, names that are not UTF-8,
//! symlinks that leave the tree when followed through every other packed link (unless links are
//! followed). Names that collide on case-insensitive filesystems are the plan's to refuse
//! (`crate::plan::Plan::add`), for every recipe alike.

use std::convert::Infallible;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};

use globset::{Glob, GlobSet, GlobSetBuilder};
use wrapkit_runtime::format::links::{Chain, LinkError, Node, Resolver};
use wrapkit_runtime::format::{EntryKind, path};

use crate::error::PackError;

/// One thing to pack.
#[derive(Debug, Clone)]
pub struct SourceEntry {
    /// Archive name: relative, `/`-separated.
    pub name: String,
    pub kind: EntryKind,
    /// Where it is on disk.
    pub source: PathBuf,
    /// Permission bits on disk (normalised later).
    pub mode: u32,
    /// Size in bytes (files), target length (symlinks).
    pub size: u64,
    /// The link target, for symlinks.
    pub target: Option<String>,
}

/// Which paths to pack.
#[derive(Debug)]
pub struct Filter {
    include: GlobSet,
    exclude: GlobSet,
    /// With `--respect-gitignore`: the paths (relative to the app) that `.gitignore` keeps.
    gitignore_kept: Option<std::collections::HashSet<PathBuf>>,
}

/// Left out unless included by name: version-control metadata and our own config file.
pub const DEFAULT_EXCLUDES: &[&str] = &[".git", ".hg", ".svn", "wrapkit.toml"];

impl Filter {
    pub fn new(include: &[String], exclude: &[String]) -> Result<Self, PackError> {
        let build = |what: &'static str, patterns: &[String]| -> Result<GlobSet, PackError> {
            let mut b = GlobSetBuilder::new();
            for p in patterns {
                let glob = Glob::new(p).map_err(|source| PackError::Glob {
                    what,
                    pattern: p.clone(),
                    source,
                })?;
                b.add(glob);
            }
            b.build().map_err(|source| PackError::Glob {
                what,
                pattern: patterns.join(", "),
                source,
            })
        };
        let mut excludes: Vec<String> = DEFAULT_EXCLUDES.iter().map(|s| s.to_string()).collect();
        excludes.extend_from_slice(exclude);
        Ok(Filter {
            include: build("include", include)?,
            exclude: build("exclude", &excludes)?,
            gitignore_kept: None,
        })
    }

    /// Also leaves out what git would ignore under `root`: its `.gitignore` files, those of the
    /// directories above it (an app inside a repository) and the repository's
    /// `.git/info/exclude`, read as git reads them (the `ignore` crate, ripgrep's). Not the
    /// user's global excludes file: the same checkout packs the same on every machine. No
    /// repository is needed, so an exported tarball packs like its checkout.
    pub fn respect_gitignore(mut self, root: &Path, follow_links: bool) -> Result<Self, PackError> {
        let mut kept = std::collections::HashSet::new();
        let walker = ignore::WalkBuilder::new(root)
            .standard_filters(false)
            .git_ignore(true)
            .git_exclude(true)
            .parents(true)
            .require_git(false)
            .follow_links(follow_links)
            .build();
        for next in walker {
            // A broken rule or an unreadable directory: the main walk names the latter.
            let dent = next.map_err(|source| PackError::Gitignore {
                path: root.to_path_buf(),
                source,
            })?;
            if let Ok(rel) = dent.path().strip_prefix(root) {
                kept.insert(rel.to_path_buf());
            }
        }
        self.gitignore_kept = Some(kept);
        Ok(self)
    }

    /// On the path as it is on disk, so a name that is not UTF-8 can be excluded too.
    fn excluded(&self, rel: &Path) -> bool {
        self.exclude.is_match(rel)
            || self
                .gitignore_kept
                .as_ref()
                .is_some_and(|k| !k.contains(rel))
    }

    fn included(&self, name: &str) -> bool {
        self.include.is_match(name)
    }
}

/// Walks `root` and returns what to pack, sorted by name.
/// What a walk found: the entries to pack, the top paths it left out (an excluded directory
/// stands for everything in it), and what is worth a warning.
#[derive(Debug, Default)]
pub struct Walked {
    pub entries: Vec<SourceEntry>,
    pub excluded: Vec<String>,
    pub notices: Vec<Notice>,
}

/// Something packed that is usually packed by mistake. Each kind can be allowed (`--allow`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum NoticeKind {
    /// A `.env` file: where secrets are usually kept.
    Dotenv,
    /// A `.git` directory below the top (a nested repository, with its whole history).
    Git,
    /// A `.venv` virtual environment (tied to the build machine's Python and paths).
    Venv,
    /// A build tool's cache (`node_modules/.cache`, `__pycache__` excepted).
    Cache,
    /// A file over 100 MB.
    Large,
}

/// One thing worth a warning: what, and the first path it was seen at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    pub kind: NoticeKind,
    pub name: String,
    pub size: u64,
}

/// Files larger than this get a warning.
pub const LARGE_FILE: u64 = 100_000_000;

impl Notice {
    pub fn message(&self) -> String {
        let why = match self.kind {
            NoticeKind::Dotenv => "an environment file, where secrets are often kept".to_owned(),
            NoticeKind::Git => "a nested git repository, history and all".to_owned(),
            NoticeKind::Venv => {
                "a virtual environment, tied to the build machine's Python and paths".to_owned()
            }
            NoticeKind::Cache => "a build tool's cache".to_owned(),
            NoticeKind::Large => format!("{} bytes", self.size),
        };
        let flag = match self.kind {
            NoticeKind::Dotenv => "dotenv",
            NoticeKind::Git => "git",
            NoticeKind::Venv => "venv",
            NoticeKind::Cache => "cache",
            NoticeKind::Large => "large",
        };
        format!(
            "packing `{}`: {why}; leave it out with `--exclude`, or allow it with `--allow {flag}`",
            self.name
        )
    }
}

/// What `name` (a directory or file) is worth a warning for, if anything.
fn notice_kind(name: &str, is_dir: bool, size: u64) -> Option<NoticeKind> {
    let base = name.rsplit('/').next().unwrap_or(name);
    if is_dir {
        match base {
            ".git" => Some(NoticeKind::Git),
            ".venv" => Some(NoticeKind::Venv),
            ".cache" if path::parent(name).ends_with("node_modules") => Some(NoticeKind::Cache),
            _ => None,
        }
    } else if base == ".env" || base.starts_with(".env.") {
        Some(NoticeKind::Dotenv)
    } else if size > LARGE_FILE {
        Some(NoticeKind::Large)
    } else {
        None
    }
}

pub fn walk(root: &Path, filter: &Filter, follow_symlinks: bool) -> Result<Walked, PackError> {
    let mut found = Vec::new();
    let mut excluded = Vec::new();
    let mut notices: Vec<Notice> = Vec::new();
    let mut it = walkdir::WalkDir::new(root)
        .min_depth(1)
        .follow_links(follow_symlinks)
        .sort_by_file_name()
        .into_iter();
    while let Some(next) = it.next() {
        let dent = next.map_err(|e| {
            let path = e.path().unwrap_or(root).to_path_buf();
            let source = match e.into_io_error() {
                Some(io) => io,
                None => std::io::Error::other(
                    "symlink loop (a link points to a directory that contains it)",
                ),
            };
            PackError::Read { path, source }
        })?;
        let rel = dent
            .path()
            .strip_prefix(root)
            .expect("walkdir yields paths under its root");
        if filter.excluded(rel) {
            if dent.file_type().is_dir() {
                it.skip_current_dir();
            }
            excluded.push(rel.to_string_lossy().into_owned());
            continue;
        }
        let name = rel
            .to_str()
            .ok_or_else(|| PackError::NonUtf8Name {
                path: dent.path().to_path_buf(),
            })?
            .to_owned();
        if path::is_reserved(&name) {
            return Err(PackError::Reserved {
                path: dent.path().to_path_buf(),
            });
        }
        path::validate(&name).map_err(|source| PackError::BadName {
            path: dent.path().to_path_buf(),
            source,
        })?;
        let meta = dent.metadata().map_err(|e| PackError::Read {
            path: dent.path().to_path_buf(),
            source: e
                .into_io_error()
                .unwrap_or_else(|| std::io::Error::other("metadata unavailable")),
        })?;
        let ft = meta.file_type();
        let (kind, target) = if ft.is_dir() {
            (EntryKind::Dir, None)
        } else if ft.is_file() {
            (EntryKind::File, None)
        } else if ft.is_symlink() {
            (EntryKind::Symlink, Some(read_link_utf8(dent.path())?))
        } else {
            return Err(PackError::SpecialFile {
                path: dent.path().to_path_buf(),
                kind: special_kind(ft),
            });
        };
        if let Some(kind) = notice_kind(&name, ft.is_dir(), meta.len())
            && !notices
                .iter()
                .any(|n| n.kind == kind && name.starts_with(&n.name))
        {
            notices.push(Notice {
                kind,
                name: name.clone(),
                size: meta.len(),
            });
        }
        found.push(SourceEntry {
            size: target.as_ref().map_or(meta.len(), |t| t.len() as u64),
            name,
            kind,
            source: dent.path().to_path_buf(),
            mode: meta.permissions().mode() & 0o7777,
            target,
        });
    }
    let (mut kept, left_out) = apply_include(found, filter);
    excluded.extend(left_out);
    kept.sort_by(|a, b| a.name.as_bytes().cmp(b.name.as_bytes()));
    check_links(&kept)?;
    // A notice about something the include patterns then left out is moot.
    notices.retain(|n| {
        kept.binary_search_by(|e| e.name.as_bytes().cmp(n.name.as_bytes()))
            .is_ok()
    });
    Ok(Walked {
        entries: kept,
        excluded,
        notices,
    })
}

/// Every symlink packed, resolved against what is packed with the runtime's resolver (the one
/// the validator uses), must stay inside: a chain of links each inside on its own can still
/// leave (`sub/up -> ..`, `x -> sub/up/../../etc/passwd`). With `--follow-symlinks` there are
/// no links left to check. Links that loop are packed as they are (docs/cli.md).
fn check_links(entries: &[SourceEntry]) -> Result<(), PackError> {
    if !entries.iter().any(|e| e.kind == EntryKind::Symlink) {
        return Ok(());
    }
    let find = |name: &str| {
        entries
            .binary_search_by(|e| e.name.as_bytes().cmp(name.as_bytes()))
            .ok()
            .map(|i| &entries[i])
    };
    let mut resolver = Resolver::new(|name: &str| -> Result<Node, Infallible> {
        Ok(match find(name) {
            Some(e) => match e.kind {
                EntryKind::Dir => Node::Dir,
                EntryKind::File => Node::File,
                EntryKind::Symlink => Node::Symlink(e.target.clone().unwrap_or_default()),
            },
            None => Node::Missing,
        })
    });
    for e in entries.iter().filter(|e| e.kind == EntryKind::Symlink) {
        let target = e.target.clone().unwrap_or_default();
        match resolver.resolve(&e.name) {
            Ok(_) | Err(LinkError::TooManyLinks { loop_: true }) => {}
            Err(LinkError::Leaves { chain }) => {
                return Err(PackError::SymlinkEscapes {
                    path: e.source.clone(),
                    target,
                    through: chain
                        .get(1..)
                        .map(|rest| Chain(rest).to_string())
                        .unwrap_or_default(),
                });
            }
            Err(LinkError::TooManyLinks { loop_: false }) => {
                return Err(PackError::SymlinkChainTooLong {
                    path: e.source.clone(),
                    target,
                });
            }
            Err(LinkError::Lookup(never)) => match never {},
        }
    }
    Ok(())
}

/// Keeps files and links that match an include pattern, and the directories that hold them or
/// match themselves; returns the names of the files and links it left out too.
fn apply_include(found: Vec<SourceEntry>, filter: &Filter) -> (Vec<SourceEntry>, Vec<String>) {
    let mut needed_dirs = std::collections::HashSet::new();
    for e in &found {
        if e.kind != EntryKind::Dir && filter.included(&e.name) {
            let mut p = path::parent(&e.name);
            while !p.is_empty() && needed_dirs.insert(p.to_owned()) {
                p = path::parent(p);
            }
        }
    }
    let mut left_out = Vec::new();
    let kept = found
        .into_iter()
        .filter(|e| {
            let keep = match e.kind {
                EntryKind::Dir => filter.included(&e.name) || needed_dirs.contains(&e.name),
                _ => filter.included(&e.name),
            };
            if !keep && e.kind != EntryKind::Dir {
                left_out.push(e.name.clone());
            }
            keep
        })
        .collect();
    (kept, left_out)
}

/// What a file that is neither a regular file, a directory nor a symlink is, for messages.
pub fn special_kind(ft: std::fs::FileType) -> &'static str {
    if ft.is_fifo() {
        "fifo"
    } else if ft.is_socket() {
        "socket"
    } else if ft.is_block_device() || ft.is_char_device() {
        "device"
    } else {
        "special file"
    }
}

fn read_link_utf8(link: &Path) -> Result<String, PackError> {
    let target = std::fs::read_link(link).map_err(|source| PackError::Read {
        path: link.to_path_buf(),
        source,
    })?;
    target
        .into_os_string()
        .into_string()
        .map_err(|_| PackError::NonUtf8Name {
            path: link.to_path_buf(),
        })
}
