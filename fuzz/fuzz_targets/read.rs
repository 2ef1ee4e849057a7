//! What `wrapkit cat` and `wrapkit unpack` do with an archive: open, validate, then read every
//! file through the bounded paths (resolve, stream with `decompress_to` into a sink, and
//! `contents`, which never allocates a declared size up front). Nothing may panic, hang or use
//! memory beyond the input's size and the real output (`-rss_limit_mb`), whatever the sizes
//! the entries declare.
#![no_main]

use std::io::Write;

use libfuzzer_sys::fuzz_target;
use wrapkit_runtime::archive::Archive;
use wrapkit_runtime::format::{EntryKind, method};
use wrapkit_runtime::validate;

/// Counts bytes, keeps none: `cat` writing to a pipe.
struct Sink(u64);

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0 += buf.len() as u64;
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(archive) = Archive::open(data) else { return };
    let Ok(validated) = validate::validate(&archive) else { return };
    for e in &validated.entries {
        // `cat NAME`: resolve, then stream.
        let Ok(Some(target)) = archive.resolve(e.name) else { continue };
        if target.kind != EntryKind::File {
            continue;
        }
        let Ok(raw) = archive.raw_data(&target) else { continue };
        let mut sink = Sink(0);
        if method::decompress_to(target.name, target.method, raw, target.size, target.crc32, &mut sink)
            .is_ok()
        {
            assert_eq!(sink.0, target.size, "streamed another size than declared");
        }
        // `unpack`'s compression inference: the whole contents.
        if let Ok(contents) = archive.contents(&target, true) {
            assert_eq!(contents.len() as u64, target.size);
        }
    }
});
