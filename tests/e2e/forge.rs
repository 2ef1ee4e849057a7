//! Forging hostile packed executables: a real stub and a zip payload with a valid trailer,
//! index and manifest, but whatever entries a test wants — names wrapkit would never write,
//! headers that disagree, entries that overlap. What the validator must reject has to get past
//! `Archive::open` first, so everything else about the file is correct.

#![allow(dead_code)]

use wrapkit_runtime::format::index::{Entry, IndexBuilder};
use wrapkit_runtime::format::manifest::{Manifest, Run, StubInfo};
use wrapkit_runtime::format::trailer::{TRAILER_LEN, Trailer};
use wrapkit_runtime::format::zip::{self, CentralEnd, HeaderFields};
use wrapkit_runtime::format::{EntryKind, FORMAT_VERSION, INDEX_NAME, MANIFEST_NAME, method};

/// One forged entry.
#[derive(Clone, Debug)]
pub struct Forged {
    /// Name in the central directory (directories end in `/`).
    pub name: String,
    /// Name in the local header (defaults to `name`).
    pub local_name: Option<String>,
    pub kind: EntryKind,
    /// Full Unix mode bits for the external attributes.
    pub mode: u32,
    pub method: u16,
    pub flags: u16,
    /// Bytes as stored.
    pub data: Vec<u8>,
    pub size: u64,
    pub crc32: u32,
    /// Point the central record at the local header of entry `i` instead of its own.
    pub share_header_of: Option<usize>,
    /// Override the local header's sizes.
    pub local_sizes: Option<(u64, u64)>,
}

impl Forged {
    pub fn file(name: &str, contents: &[u8]) -> Self {
        Forged {
            name: name.into(),
            local_name: None,
            kind: EntryKind::File,
            mode: 0o100644,
            method: method::STORED,
            flags: if name.is_ascii() { 0 } else { zip::FLAG_UTF8 },
            data: contents.to_vec(),
            size: contents.len() as u64,
            crc32: crc32fast::hash(contents),
            share_header_of: None,
            local_sizes: None,
        }
    }

    pub fn deflated(name: &str, contents: &[u8]) -> Self {
        let mut f = Forged::file(name, contents);
        f.method = method::DEFLATE;
        f.data = method::deflate(contents, 6);
        f
    }

    pub fn dir(name: &str) -> Self {
        let mut f = Forged::file(&format!("{name}/"), b"");
        f.kind = EntryKind::Dir;
        f.mode = 0o040755;
        f
    }

    pub fn symlink(name: &str, target: &str) -> Self {
        let mut f = Forged::file(name, target.as_bytes());
        f.kind = EntryKind::Symlink;
        f.mode = 0o120777;
        f
    }

    pub fn mode(mut self, mode: u32) -> Self {
        self.mode = mode;
        self
    }
}

/// Builds a packed executable: `stub` then a payload holding `entries` and a Lua manifest
/// running `entry`.
pub fn forge(stub: &[u8], entries: &[Forged], entry: &str) -> Vec<u8> {
    let manifest = Manifest {
        format: FORMAT_VERSION,
        name: "forged".into(),
        version: "0".into(),
        packer: "forge".into(),
        stub: StubInfo::of(stub),
        run: Run::Lua {
            entry: entry.into(),
        },
        layers: Vec::new(),
    };
    forge_with(stub, entries, &manifest)
}

/// [`forge`] with any manifest.
pub fn forge_with(stub: &[u8], entries: &[Forged], manifest: &Manifest) -> Vec<u8> {
    let mut out = stub.to_vec();
    let start = out.len() as u64;
    let mut central = Vec::new();
    let mut index = IndexBuilder::default();
    let mut offsets = Vec::new();
    let dos = zip::dos_datetime(0);
    let fields_of = |e: &Forged| HeaderFields {
        flags: e.flags,
        method: e.method,
        dos_time: dos.0,
        dos_date: dos.1,
        crc32: e.crc32,
        compressed_size: e.data.len() as u64,
        size: e.size,
    };
    for e in entries {
        let offset = out.len() as u64;
        offsets.push(offset);
        if e.share_header_of.is_some() {
            continue;
        }
        let mut local = fields_of(e);
        if let Some((cs, s)) = e.local_sizes {
            local.compressed_size = cs;
            local.size = s;
        }
        out.extend_from_slice(&zip::encode_local(
            e.local_name.as_deref().unwrap_or(&e.name),
            &local,
        ));
        out.extend_from_slice(&e.data);
    }
    for (i, e) in entries.iter().enumerate() {
        let offset = e.share_header_of.map_or(offsets[i], |j| offsets[j]);
        central.extend_from_slice(&zip::encode_central(
            &e.name,
            &fields_of(e),
            e.mode << 16,
            offset,
        ));
        index.push(&Entry {
            name: e.name.trim_end_matches('/'),
            kind: e.kind,
            method: e.method,
            mode: e.mode & 0o7777,
            crc32: e.crc32,
            header_offset: offset,
            compressed_size: e.data.len() as u64,
            size: e.size,
        });
    }
    let mut reserved_at = Vec::new();
    for (name, data) in [
        (INDEX_NAME, index.encode().unwrap()),
        (MANIFEST_NAME, manifest.to_json()),
    ] {
        let offset = out.len() as u64;
        reserved_at.push(offset);
        let f = HeaderFields {
            flags: 0,
            method: method::STORED,
            dos_time: dos.0,
            dos_date: dos.1,
            crc32: crc32fast::hash(&data),
            compressed_size: data.len() as u64,
            size: data.len() as u64,
        };
        out.extend_from_slice(&zip::encode_local(name, &f));
        out.extend_from_slice(&data);
        central.extend_from_slice(&zip::encode_central(name, &f, 0o100644 << 16, offset));
    }
    let end = CentralEnd {
        entries: entries.len() as u64 + 2,
        cd_size: central.len() as u64,
        cd_offset: out.len() as u64,
    };
    out.extend_from_slice(&central);
    let zip64_at = out.len() as u64;
    let placeholder = zip::encode_end(&end, zip64_at, &[0; TRAILER_LEN]);
    let zip64_len = placeholder.len() - zip::EOCD_LEN - TRAILER_LEN;
    out.extend_from_slice(&placeholder[..zip64_len]);
    let trailer = Trailer {
        version: FORMAT_VERSION,
        start,
        index: reserved_at[0],
        manifest: reserved_at[1],
        digest: *blake3::hash(&out[start as usize..]).as_bytes(),
    };
    let full = zip::encode_end(&end, zip64_at, &trailer.encode());
    out.extend_from_slice(&full[zip64_len..]);
    out
}
