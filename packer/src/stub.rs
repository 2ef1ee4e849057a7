//! Where the runtime stub comes from: built into `wrapkit` itself (see `build.rs`), or the file
//! given with `--runtime`. A runtime that is itself a packed executable has its payload cut off
//! first, so repacking replaces a payload instead of stacking a second one.

use std::borrow::Cow;
use std::path::Path;

use wrapkit_runtime::archive::Archive;
use wrapkit_runtime::format::elf;

use crate::error::PackError;

/// The stub for the machine `wrapkit` was built for.
pub static BUILT_IN: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/wrapkit-stub"));

const ELF_MAGIC: &[u8] = b"\x7fELF";

/// The stub bytes to put in front of a payload.
pub fn load(runtime: Option<&Path>) -> Result<Cow<'static, [u8]>, PackError> {
    let Some(path) = runtime else {
        return Ok(Cow::Borrowed(BUILT_IN));
    };
    let bytes = std::fs::read(path).map_err(|source| PackError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    if !bytes.starts_with(ELF_MAGIC) {
        return Err(PackError::BadRuntime {
            path: path.to_path_buf(),
            reason: "it is not an ELF executable".into(),
        });
    }
    let Ok(archive) = Archive::open(&bytes) else {
        return Ok(Cow::Owned(bytes));
    };
    let stub = match archive.carried() {
        // The exact stub it was packed with; if strip rewrote the file since, its loaded image
        // with no section headers (the payload then goes after it).
        Some(c) => elf::original_stub(&bytes, c).unwrap_or_else(|| {
            let mut image = archive.stub().to_vec();
            image[0x28..0x30].fill(0);
            image[0x3c..0x40].fill(0);
            image
        }),
        None => bytes[..archive.start_pos() as usize].to_vec(),
    };
    Ok(Cow::Owned(stub))
}
