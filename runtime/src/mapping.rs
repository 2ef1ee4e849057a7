//! Mapping a file read-only into memory. The one place the runtime trusts the OS with a slice.

// The runtime's `unsafe` is confined to named modules (lib.rs lists them); this is one.
#![allow(unsafe_code)]

use std::fs::File;
use std::io;

/// Maps `file` read-only for the rest of the process and returns its bytes.
///
/// The mapping is leaked on purpose: the runtime serves archive entries from it until exit.
pub fn map_for_process(file: &File) -> io::Result<&'static [u8]> {
    if file.metadata()?.len() == 0 {
        return Ok(&[]);
    }
    // SAFETY: the mapping is read-only (shared, so pages come straight from the page cache). What memmap2 cannot promise is that nobody
    // changes the file underneath us; for the stub the file is its own running executable, which
    // the kernel refuses to open for writing (ETXTBSY), and replacing it by rename keeps our inode.
    // For the packer's readers a concurrent writer can at worst change the bytes we read, which
    // every reader already treats as untrusted.
    let map = unsafe { memmap2::Mmap::map(file)? };
    Ok(Box::leak(Box::new(map)))
}
