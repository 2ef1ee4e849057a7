//! Layer trees, `layers-v1/<digest>/`: a program and its libraries, shared by every app that
//! carries the same layer ([`crate::format::layer`]). Filled by the same protocol as a bundle
//! ([`Cache::tree`]); what is particular to a layer is done here, in the temp dir, before the
//! tree is renamed into place:
//!
//! - only the archive's entries below the layer's prefix are extracted, without the prefix;
//!   a symlink among them must stay inside the layer without `..` (the packer writes none
//!   other), so the shared tree can never point into a bundle or elsewhere;
//! - the layer's digest is recomputed from what was extracted and must match its name;
//! - the glibc is chosen (`auto`: the target's if its loader is where the program's
//!   `PT_INTERP` says and its version is at least the layer's floor, else the layer's own) and
//!   each patch slot written with the absolute path for that choice.

use std::io::{self, Read};
use std::os::unix::fs::{FileExt, PermissionsExt};
use std::path::{Path, PathBuf};

use rustix::fs::OFlags;

use super::fill::{Filling, Outcome, Source, Store, subset};
use super::marker::Marker;
use super::{Cache, CacheError, Trace};
use crate::beneath::Dir;
use crate::extract::{self, ExtractOptions, ExtractStats};
use crate::format::index::{Entry, IndexBuilder};
use crate::format::layer::{Digester, Layer, Libc, parse_version};
use crate::format::{EntryKind, FormatError, INDEX_NAME, RESERVED_DIR};

/// Where glibc's x86-64 loader is on every distribution that has one (the `PT_INTERP` of
/// every program linked there).
pub const HOST_LOADER: &str = "/lib64/ld-linux-x86-64.so.2";

impl Cache {
    /// The tree of `layer`, materialised if needed.
    pub(super) fn materialise_layer(
        &self,
        source: &Source<'_, '_>,
        layer: &Layer,
        trace: &Trace,
    ) -> Result<(PathBuf, Outcome), CacheError> {
        layer
            .check()
            .map_err(|e| FormatError::Manifest(e.to_string()))?;
        let store = Store {
            dir: &self.layers,
            path: &self.layers_path,
            layers: true,
        };
        let tree = self.layers_path.join(&layer.digest);
        let populate = |tmp: &Dir, shown: &Path| {
            populate_layer(source, layer, &tree, tmp, shown, trace).map(|(stats, _)| stats)
        };
        let filling = || -> Result<Filling<'_>, CacheError> {
            let validated = source.validated(trace)?;
            let bytes = validated
                .entries
                .iter()
                .filter(|e| layer.relative(e.name).is_some() && e.kind == EntryKind::File)
                .map(|e| e.size)
                .sum();
            Ok(Filling {
                marker: Marker {
                    digest: layer.digest.clone(),
                    name: layer.prefix.clone(),
                    bytes,
                    libc: Some(
                        match choose_libc(layer) {
                            true => "bundle",
                            false => "host",
                        }
                        .into(),
                    ),
                    ..Marker::default()
                },
                bytes,
                populate: &populate,
            })
        };
        let (path, outcome) = self.tree(store, &layer.digest, None, trace, &filling)?;
        trace.say(|| format!("layer {} at {}", layer.prefix, path.display()));
        Ok((path, outcome))
    }
}

/// Extracts, checks and patches the layer into `tmp`; returns whether the bundled glibc was
/// chosen. `tree` is where the layer will live once renamed into place.
fn populate_layer(
    source: &Source<'_, '_>,
    layer: &Layer,
    tree: &Path,
    tmp: &Dir,
    shown: &Path,
    trace: &Trace,
) -> Result<(ExtractStats, bool), CacheError> {
    let validated = source.validated(trace)?;
    let entries = subset(validated, |name| layer.relative(name).map(|_| name));
    let bad = |reason: String| {
        CacheError::Payload(FormatError::Manifest(format!(
            "layer `{}`: {reason}",
            crate::format::path::printable(&layer.prefix)
        )))
    };
    for e in entries
        .entries
        .iter()
        .filter(|e| e.kind == EntryKind::Symlink)
    {
        let target = source.archive.contents(e, true)?;
        let climbs = target.starts_with(b"/") || target.split(|&b| b == b'/').any(|c| c == b"..");
        if climbs {
            return Err(bad(format!(
                "the symlink `{}` does not stay inside the layer without `..`",
                crate::format::path::printable(e.name)
            )));
        }
    }
    let opts = ExtractOptions {
        strip_prefix: Some(layer.prefix.clone()),
        read_only: true,
        ..ExtractOptions::default()
    };
    let stats =
        extract::extract_into(source.archive, &entries, tmp, shown, &opts).map_err(|source| {
            CacheError::Extract {
                path: shown.to_path_buf(),
                source,
            }
        })?;
    trace.say(|| {
        format!(
            "layer {}: extracted {} files ({} bytes)",
            layer.prefix, stats.files, stats.bytes
        )
    });

    let io_err = |what: &'static str, name: &str| {
        let path = shown.join(name);
        move |source| CacheError::Io { what, path, source }
    };
    let mut digest = Digester::new(layer);
    for e in &entries.entries {
        let name = layer.relative(e.name).expect("the subset is the layer's");
        let data = match e.kind {
            EntryKind::Dir => Vec::new(),
            EntryKind::Symlink => source.archive.contents(e, true)?.into_owned(),
            EntryKind::File => {
                let f = tmp.open_file(name).map_err(io_err("read", name))?;
                file_hash(f).map_err(io_err("read", name))?.to_vec()
            }
        };
        digest.entry(name, e.kind, e.mode, e.size, &data);
    }
    let found = digest.finish();
    if found != layer.digest {
        return Err(bad(format!(
            "its contents do not match its digest (expected {}, found {found}); pack the app again",
            layer.digest
        )));
    }
    trace.say(|| format!("layer {}: digest checked", layer.prefix));

    let bundled = choose_libc(layer);
    let root = tree.to_str().ok_or_else(|| CacheError::Io {
        what: "use",
        path: tree.to_path_buf(),
        source: io::Error::new(io::ErrorKind::InvalidInput, "the cache path is not UTF-8"),
    })?;
    for p in &layer.patches {
        let bytes = p.bytes(bundled, root).ok_or_else(|| CacheError::Io {
            what: "patch",
            path: shown.join(&p.path),
            source: io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "the cache path is too long for the {}-byte slot the packer reserved",
                    p.capacity
                ),
            ),
        })?;
        // Files are extracted read-only; ours to open for writing once, in the private temp dir.
        let mode = tmp.stat(&p.path).map_err(io_err("patch", &p.path))?.st_mode & 0o7777;
        tmp.open_file(&p.path)
            .and_then(|f| f.set_permissions(std::fs::Permissions::from_mode(mode | 0o200)))
            .map_err(io_err("patch", &p.path))?;
        let f = tmp
            .open_regular(&p.path, OFlags::WRONLY, 0)
            .map_err(io_err("patch", &p.path))?;
        f.set_permissions(std::fs::Permissions::from_mode(mode))
            .map_err(io_err("patch", &p.path))?;
        let len = f.metadata().map_err(io_err("patch", &p.path))?.len();
        if p.offset.saturating_add(u64::from(p.capacity)) > len {
            return Err(bad(format!("a patch slot lies outside `{}`", p.path)));
        }
        f.write_all_at(&bytes, p.offset)
            .map_err(io_err("patch", &p.path))?;
    }
    write_index(layer, &entries, tmp, shown)?;
    trace.say(|| {
        format!(
            "layer {}: glibc from {} ({} patches)",
            layer.prefix,
            if bundled { "the layer" } else { "the host" },
            layer.patches.len()
        )
    });
    Ok((stats, bundled))
}

/// Writes `.wrapkit/index` into the layer's tree: its entries by their names there, with the
/// CRC-32 of patched files as patched, so `wrapkit cache verify` checks a layer like a bundle.
fn write_index(
    layer: &Layer,
    entries: &crate::validate::Validated<'_>,
    tmp: &Dir,
    shown: &Path,
) -> Result<(), CacheError> {
    let io_err = |what: &'static str, name: &str| {
        let path = shown.join(name);
        move |source| CacheError::Io { what, path, source }
    };
    let mut index = IndexBuilder::default();
    for e in &entries.entries {
        let name = layer.relative(e.name).expect("the subset is the layer's");
        let mut e = Entry { name, ..e.clone() };
        if layer.patches.iter().any(|p| p.path == name) {
            let f = tmp.open_file(name).map_err(io_err("read", name))?;
            e.crc32 = super::manage::file_crc(f).map_err(io_err("read", name))?;
        }
        index.push(&e);
    }
    tmp.create_dir(RESERVED_DIR, 0o755)
        .map_err(io_err("create", RESERVED_DIR))?;
    let bytes = index.encode()?;
    tmp.create_file(INDEX_NAME, 0o644)
        .and_then(|mut f| io::Write::write_all(&mut f, &bytes))
        .map_err(io_err("write", INDEX_NAME))
}

/// Whether the layer runs on its own glibc: always for `bundle`, never for `host`, and for
/// `auto` when the host's is missing or older than the layer's floor.
fn choose_libc(layer: &Layer) -> bool {
    match layer.libc {
        Libc::Host => false,
        Libc::Bundle => true,
        Libc::Auto => {
            let floor = layer.glibc.as_deref().and_then(parse_version);
            match (host_glibc(Path::new(HOST_LOADER)), floor) {
                (Some(host), Some(floor)) => host < floor,
                (Some(_), None) => false,
                (None, _) => true,
            }
        }
    }
}

/// The version of the glibc whose loader is at `loader`, from the banner every glibc loader
/// carries (`ld.so --version`: "... stable release version 2.36."). Read once, at a layer's
/// fill, never at a warm start.
pub fn host_glibc(loader: &Path) -> Option<(u32, u32)> {
    let mut bytes = Vec::new();
    std::fs::File::open(loader)
        .ok()?
        .take(8 << 20)
        .read_to_end(&mut bytes)
        .ok()?;
    let needle = b"release version ";
    let at = bytes.windows(needle.len()).position(|w| w == needle)? + needle.len();
    let rest = &bytes[at..(at + 16).min(bytes.len())];
    let end = rest
        .iter()
        .position(|b| !(b.is_ascii_digit() || *b == b'.'))
        .unwrap_or(rest.len());
    let text = std::str::from_utf8(&rest[..end])
        .ok()?
        .trim_end_matches('.');
    let mut parts = text.split('.');
    let version = format!("{}.{}", parts.next()?, parts.next()?);
    parse_version(&version)
}

/// BLAKE3 of a file's bytes.
fn file_hash(f: std::fs::File) -> io::Result<[u8; 32]> {
    Ok(*blake3::Hasher::new()
        .update_reader(f)?
        .finalize()
        .as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_host_glibc_version_is_read_from_its_loader() {
        let v = host_glibc(Path::new(HOST_LOADER)).expect("this machine has glibc");
        assert!(v >= (2, 17), "{v:?}");
        let dir = tempfile::tempdir().unwrap();
        let fake = dir.path().join("ld.so");
        std::fs::write(
            &fake,
            b"\x7fELF...ld.so (GNU libc) stable release version 2.41.\n",
        )
        .unwrap();
        assert_eq!(host_glibc(&fake), Some((2, 41)));
        std::fs::write(&fake, b"nothing here").unwrap();
        assert_eq!(host_glibc(&fake), None);
        assert_eq!(host_glibc(&dir.path().join("missing")), None);
    }
}
