//! Looking after the cache from outside a running app: what `wrapkit cache ls | verify | gc |
//! clear` are built on. Listing reads markers and directories only; verifying re-reads every
//! file of a tree against the index copy saved beside it (`<tree>/.wrapkit/index`); removing
//! takes the tree's lock (skipping trees being filled right now), deletes the marker first, then
//! moves the tree aside and deletes it, so a start racing with removal never uses half a tree.

use std::fs::{self, File};
use std::io::{self, Read};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use super::Cache;
use super::lock::Lock;
use super::marker::Marker;
use crate::format::index::Index;
use crate::format::trailer::{TRAILER_LEN, Trailer, hex};
use crate::format::{EntryKind, INDEX_NAME};

/// One tree in the cache, complete or not.
#[derive(Debug, Clone)]
pub struct Bundle {
    pub digest: String,
    /// The tree's directory (may be missing when only a marker or temp dir is left).
    pub path: PathBuf,
    /// The parsed marker: `None` means the tree is incomplete (never finished, or damaged).
    pub marker: Option<Marker>,
    /// When a start last used the tree (the marker's mtime), to within a day.
    pub last_used: Option<SystemTime>,
    /// Bytes on disk (sum of file sizes in the tree).
    pub size: u64,
}

/// What removing a tree did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Removal {
    /// Removed; this many bytes freed.
    Removed(u64),
    /// Another process holds its lock (it is being filled or repaired): left alone.
    Busy,
}

/// The first problem `verify` found in a tree.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{name}: {problem}")]
pub struct Damage {
    pub name: String,
    pub problem: String,
}

fn is_digest(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

impl Cache {
    /// Every tree, marker or leftover the cache holds, by digest.
    pub fn bundles(&self) -> io::Result<Vec<Bundle>> {
        let mut digests = Vec::new();
        for entry in fs::read_dir(&self.bundles)? {
            let name = entry?.file_name();
            let Some(name) = name.to_str() else { continue };
            let digest = name
                .strip_suffix(".ok")
                .or_else(|| name.strip_suffix(".lock"))
                .unwrap_or(name);
            if is_digest(digest) {
                digests.push(digest.to_owned());
            }
        }
        digests.sort();
        digests.dedup();
        Ok(digests.into_iter().map(|d| self.bundle(&d)).collect())
    }

    /// What the cache knows about one digest.
    pub fn bundle(&self, digest: &str) -> Bundle {
        let marker_path = self.marker_path(digest);
        let marker = fs::read_to_string(&marker_path)
            .ok()
            .and_then(|t| Marker::decode(&t))
            .filter(|m| m.digest == digest);
        let last_used = fs::metadata(&marker_path).and_then(|m| m.modified()).ok();
        let path = self.tree_path(digest);
        Bundle {
            digest: digest.to_owned(),
            size: tree_size(&path),
            path,
            marker,
            last_used,
        }
    }

    /// Temp and trash directories left by killed fills and removals, with their digests.
    pub fn leftovers(&self) -> io::Result<Vec<(PathBuf, String)>> {
        let mut out = Vec::new();
        for entry in fs::read_dir(&self.bundles)? {
            let entry = entry?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            let rest = name
                .strip_prefix(".tmp-")
                .or_else(|| name.strip_prefix(".trash-"));
            if let Some(digest) = rest.and_then(|r| r.get(..64)).filter(|d| is_digest(d)) {
                out.push((entry.path(), digest.to_owned()));
            }
        }
        out.sort();
        Ok(out)
    }

    /// Removes the tree for `digest` with its marker, lock file and leftovers, unless another
    /// process is filling it.
    pub fn remove(&self, digest: &str) -> io::Result<Removal> {
        let Some(lock) = Lock::acquire(&self.lock_path(digest), false)? else {
            return Ok(Removal::Busy);
        };
        let tree = self.tree_path(digest);
        let freed = tree_size(&tree);
        match fs::remove_file(self.marker_path(digest)) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        if let Ok(meta) = fs::symlink_metadata(&tree) {
            if meta.is_dir() {
                let trash = self
                    .bundles
                    .join(format!(".trash-{digest}-{}", std::process::id()));
                fs::rename(&tree, &trash)?;
                fs::remove_dir_all(&trash)?;
            } else {
                fs::remove_file(&tree)?;
            }
        }
        self.remove_temps(digest);
        lock.remove()?;
        Ok(Removal::Removed(freed))
    }

    /// Removes only the leftovers of interrupted fills and removals of `digest`, unless a fill
    /// is running now.
    pub fn remove_leftovers(&self, digest: &str) -> io::Result<Removal> {
        let Some(_lock) = Lock::acquire(&self.lock_path(digest), false)? else {
            return Ok(Removal::Busy);
        };
        let freed = self
            .leftovers()?
            .iter()
            .filter(|(_, d)| d == digest)
            .map(|(p, _)| tree_size(p))
            .sum();
        self.remove_temps(digest);
        Ok(Removal::Removed(freed))
    }

    /// Re-reads every entry of a complete tree against the index saved with it: types, sizes,
    /// execute bits, and the CRC-32 of every file and symlink target. O(tree size).
    pub fn verify(&self, digest: &str) -> Result<(), Damage> {
        let tree = self.tree_path(digest);
        let damage = |name: &str, problem: String| Damage {
            name: name.to_owned(),
            problem,
        };
        let index_path = tree.join(INDEX_NAME);
        let bytes = fs::read(&index_path)
            .map_err(|e| damage(INDEX_NAME, format!("cannot be read: {e}")))?;
        let index = Index::parse(&bytes, 0).map_err(|e| damage(INDEX_NAME, e.to_string()))?;
        let dir = File::open(&tree).map_err(|e| damage("", format!("cannot be opened: {e}")))?;
        let mut buf = Vec::new();
        for e in index.iter() {
            let e = e.map_err(|err| damage(INDEX_NAME, err.to_string()))?;
            super::fill::check_entry(&dir, &e, &mut buf).map_err(|p| damage(e.name, p))?;
            let path = tree.join(e.name);
            let crc = match e.kind {
                EntryKind::Dir => continue,
                EntryKind::Symlink => {
                    fs::read_link(&path).map(|t| crc32fast::hash(t.as_os_str().as_encoded_bytes()))
                }
                EntryKind::File => file_crc(&path),
            }
            .map_err(|err| damage(e.name, format!("cannot be read: {err}")))?;
            if crc != e.crc32 {
                return Err(damage(
                    e.name,
                    format!(
                        "its contents changed (CRC-32 {crc:08x}, expected {:08x})",
                        e.crc32
                    ),
                ));
            }
        }
        Ok(())
    }
}

/// The digest in the trailer of the packed file at `path`, if it is one: reads only its last
/// 158 bytes. `wrapkit cache gc` uses it to tell whether an executable still uses a tree.
pub fn digest_of(path: &Path) -> Option<String> {
    use std::io::{Seek, SeekFrom};
    let mut f = File::open(path).ok()?;
    let len = f.metadata().ok()?.len();
    let pos = len.checked_sub(TRAILER_LEN as u64)?;
    f.seek(SeekFrom::Start(pos)).ok()?;
    let mut buf = vec![0u8; TRAILER_LEN];
    f.read_exact(&mut buf).ok()?;
    Trailer::decode(&buf, pos).ok().map(|t| hex(&t.digest))
}

fn file_crc(path: &Path) -> io::Result<u32> {
    let mut f = File::open(path)?;
    let mut hasher = crc32fast::Hasher::new();
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            return Ok(hasher.finalize());
        }
        hasher.update(&buf[..n]);
    }
}

/// Bytes of regular files under `path` (0 if it is missing), not following symlinks.
fn tree_size(path: &Path) -> u64 {
    let mut total = 0;
    let mut stack = vec![path.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(listing) = fs::read_dir(&dir) else {
            continue;
        };
        for entry in listing.flatten() {
            match entry.metadata() {
                Ok(m) if m.is_dir() => stack.push(entry.path()),
                Ok(m) if m.is_file() => total += m.size(),
                _ => {}
            }
        }
    }
    total
}
