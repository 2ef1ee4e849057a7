//! Layers: a program with its libraries (an interpreter, a native tool, optionally glibc and its
//! loader) stored under one prefix of the archive and materialised by the cache into a tree of
//! its own, `layers-v1/<digest>/`, which every app carrying the same layer shares.
//!
//! ```json
//! "layers": [{"prefix": ".layers/jq", "digest": "…64 hex…", "libc": "auto", "glibc": "2.34",
//!             "patches": [{"path": "bin/jq", "offset": 28672, "capacity": 1024,
//!                          "host": "/lib64/ld-linux-x86-64.so.2",
//!                          "bundle": "{layer}/glibc/ld-linux-x86-64.so.2"}]}]
//! ```
//!
//! A layer's **digest** names its contents, not the archive that carries them: BLAKE3 over the
//! entries below the prefix (name relative to it, kind, normalised mode, size, the BLAKE3 of a
//! file's bytes or a link's target) and over the layer's libc mode, glibc floor and patches, in
//! name order ([`Digester`]). The packer computes it from its sources; the runtime recomputes it
//! from what it extracted before the tree is used, so a layer whose name does not match its
//! contents never enters the shared cache.
//!
//! **Patches** are the only bytes of a layer that differ from the archive once materialised:
//! fixed-size slots the packer reserved in an executable (its `PT_INTERP` and `DT_RPATH`
//! strings) into which the fill writes an absolute path, NUL-padded. That is how a bundled
//! program finds its bundled libraries and loader by absolute path, with `/proc/self/exe`,
//! `argv[0]` and re-executing itself honest and no `LD_LIBRARY_PATH` (docs/cache.md). `host`
//! is written when the target's glibc is used, `bundle` when the layer's own is; `{layer}`
//! expands to the layer's tree.

use serde::{Deserialize, Serialize};

use super::{EntryKind, normalised_mode, path};

/// Where a layer's glibc comes from at run time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Libc {
    /// The target's glibc and loader; the layer holds everything else.
    #[default]
    Host,
    /// The layer's own glibc and loader: runs in an empty chroot or on an older distribution.
    Bundle,
    /// The target's when it has one at least as new as the layer's glibc floor, else the
    /// layer's own; decided when the layer is filled.
    Auto,
}

impl Libc {
    pub fn as_str(self) -> &'static str {
        match self {
            Libc::Host => "host",
            Libc::Bundle => "bundle",
            Libc::Auto => "auto",
        }
    }
}

/// One layer of the manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Layer {
    /// The archive directory holding the layer's entries, e.g. `.layers/jq`.
    pub prefix: String,
    /// Lowercase hex [`Digester`] digest of the layer.
    pub digest: String,
    #[serde(default)]
    pub libc: Libc,
    /// The highest `GLIBC_x.y` symbol version any of the layer's ELF files needs, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub glibc: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub patches: Vec<Patch>,
}

/// A reserved slot in one of the layer's files and what to write into it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Patch {
    /// The file, relative to the layer's prefix.
    pub path: String,
    /// Byte offset of the slot in the file.
    pub offset: u64,
    /// The slot's size: the value and its terminating NUL must fit.
    pub capacity: u32,
    /// Written when the target's glibc is used (`{layer}` expanded).
    pub host: String,
    /// Written when the layer's own glibc is used.
    pub bundle: String,
}

/// Why a layer of a manifest cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LayerError {
    #[error("layer `{}`: {reason}", path::printable(prefix))]
    Bad { prefix: String, reason: String },
}

impl Layer {
    /// Checks what the runtime relies on before touching the disk: a valid prefix, a digest
    /// that can be a directory name, patches on valid paths with values that fit their slots.
    pub fn check(&self) -> Result<(), LayerError> {
        let bad = |reason: String| LayerError::Bad {
            prefix: self.prefix.clone(),
            reason,
        };
        if path::validate(&self.prefix).is_err() || path::is_reserved(&self.prefix) {
            return Err(bad("the prefix is not a valid archive directory".into()));
        }
        let hex = |s: &str| s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
        if self.digest.len() != 64 || !hex(&self.digest) {
            return Err(bad("the digest is not 64 lowercase hex digits".into()));
        }
        for p in &self.patches {
            if path::validate(&p.path).is_err() {
                return Err(bad(format!(
                    "patch path `{}` is not valid",
                    path::printable(&p.path)
                )));
            }
            if p.capacity == 0 || p.capacity > 4096 {
                return Err(bad(format!("patch slot of {} bytes", p.capacity)));
            }
        }
        if let Some(floor) = &self.glibc
            && parse_version(floor).is_none()
        {
            return Err(bad(format!(
                "glibc floor `{}` is not a version",
                path::printable(floor)
            )));
        }
        Ok(())
    }

    /// The name of `archive_name` inside the layer, if it lies below the prefix.
    pub fn relative<'n>(&self, archive_name: &'n str) -> Option<&'n str> {
        archive_name
            .strip_prefix(self.prefix.as_str())?
            .strip_prefix('/')
            .filter(|r| !r.is_empty())
    }

    /// Whether `archive_name` is the prefix itself or below it.
    pub fn holds(&self, archive_name: &str) -> bool {
        archive_name == self.prefix || self.relative(archive_name).is_some()
    }
}

impl Patch {
    /// The value for the chosen libc, `{layer}` expanded, as the bytes to write: the value, then
    /// NULs to the end of the slot. `None` if it does not fit.
    pub fn bytes(&self, bundled_libc: bool, layer_root: &str) -> Option<Vec<u8>> {
        let template = if bundled_libc {
            &self.bundle
        } else {
            &self.host
        };
        let value = template.replace("{layer}", layer_root);
        if value.len() >= self.capacity as usize || value.contains('\0') {
            return None;
        }
        let mut out = value.into_bytes();
        out.resize(self.capacity as usize, 0);
        Some(out)
    }
}

/// `"2.36"` → `(2, 36)`.
pub fn parse_version(s: &str) -> Option<(u32, u32)> {
    let (major, minor) = s.split_once('.')?;
    Some((major.parse().ok()?, minor.parse().ok()?))
}

/// The digest of a layer, fed its entries in name order.
pub struct Digester {
    hasher: blake3::Hasher,
}

impl Digester {
    /// Starts a digest with the layer's settings (everything but `prefix` and `digest`).
    pub fn new(layer: &Layer) -> Digester {
        let mut hasher = blake3::Hasher::new();
        hasher.update(b"wrapkit-layer 1\0");
        hasher.update(layer.libc.as_str().as_bytes());
        hasher.update(b"\0");
        hasher.update(layer.glibc.as_deref().unwrap_or("").as_bytes());
        hasher.update(b"\0");
        for p in &layer.patches {
            for field in [p.path.as_str(), &p.host, &p.bundle] {
                hasher.update(&(field.len() as u64).to_le_bytes());
                hasher.update(field.as_bytes());
            }
            hasher.update(&p.offset.to_le_bytes());
            hasher.update(&p.capacity.to_le_bytes());
        }
        Digester { hasher }
    }

    /// One entry: its name inside the layer, and for files the BLAKE3 of the contents, for
    /// symlinks the target.
    pub fn entry(&mut self, name: &str, kind: EntryKind, mode: u32, size: u64, data: &[u8]) {
        let h = &mut self.hasher;
        h.update(&[kind.to_byte()]);
        h.update(&normalised_mode(kind, mode).to_le_bytes());
        h.update(&size.to_le_bytes());
        h.update(&(name.len() as u64).to_le_bytes());
        h.update(name.as_bytes());
        h.update(&(data.len() as u64).to_le_bytes());
        h.update(data);
    }

    pub fn finish(self) -> String {
        self.hasher.finalize().to_hex().to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layer() -> Layer {
        Layer {
            prefix: ".layers/jq".into(),
            digest: "ab".repeat(32),
            libc: Libc::Auto,
            glibc: Some("2.34".into()),
            patches: vec![Patch {
                path: "bin/jq".into(),
                offset: 100,
                capacity: 16,
                host: "/lib/ld.so".into(),
                bundle: "{layer}/g/ld.so".into(),
            }],
        }
    }

    #[test]
    fn prefixes_and_patch_values() {
        let l = layer();
        assert_eq!(l.check(), Ok(()));
        assert_eq!(l.relative(".layers/jq/bin/jq"), Some("bin/jq"));
        assert_eq!(l.relative(".layers/jqx/bin"), None);
        assert_eq!(l.relative(".layers/jq"), None);
        assert!(l.holds(".layers/jq") && !l.holds(".layers"));
        let p = &l.patches[0];
        assert_eq!(p.bytes(false, "/c").unwrap(), b"/lib/ld.so\0\0\0\0\0\0");
        assert_eq!(&p.bytes(true, "/c").unwrap()[..11], b"/c/g/ld.so\0");
        assert_eq!(
            p.bytes(true, "/a/longer/root"),
            None,
            "must leave room for the NUL"
        );
    }

    #[test]
    fn bad_layers_are_refused() {
        for change in [
            |l: &mut Layer| l.prefix = "../x".into(),
            |l: &mut Layer| l.prefix = ".wrapkit/x".into(),
            |l: &mut Layer| l.digest = "AB".repeat(32),
            |l: &mut Layer| l.patches[0].path = "/etc/passwd".into(),
            |l: &mut Layer| l.patches[0].capacity = 1 << 20,
            |l: &mut Layer| l.glibc = Some("new".into()),
        ] {
            let mut l = layer();
            change(&mut l);
            assert!(l.check().is_err(), "{l:?}");
        }
    }

    #[test]
    fn the_digest_covers_settings_and_contents() {
        let digest = |l: &Layer, data: &[u8]| {
            let mut d = Digester::new(l);
            d.entry("bin/jq", EntryKind::File, 0o755, data.len() as u64, data);
            d.finish()
        };
        let l = layer();
        let base = digest(&l, b"x");
        assert_eq!(base, digest(&l, b"x"));
        assert_ne!(base, digest(&l, b"y"));
        let mut host = l.clone();
        host.libc = Libc::Host;
        assert_ne!(base, digest(&host, b"x"));
        let mut moved = l.clone();
        moved.patches[0].offset = 101;
        assert_ne!(base, digest(&moved, b"x"));
        let mut other_prefix = l;
        other_prefix.prefix = ".layers/other".into();
        assert_eq!(
            base,
            digest(&other_prefix, b"x"),
            "the prefix is not content"
        );
    }
}
