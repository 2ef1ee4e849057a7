//! Every reader path over arbitrary bytes: open, validate, look up and read every entry,
//! resolve every name and every symlink target through the one resolver, verify. Nothing may
//! panic, hang or allocate beyond the input's size.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wrapkit_runtime::archive::Archive;
use wrapkit_runtime::format::{EntryKind, path};
use wrapkit_runtime::{validate, verify};

fuzz_target!(|data: &[u8]| {
    let Ok(archive) = Archive::open(data) else {
        let _ = verify::verify(data);
        return;
    };
    let _ = archive.manifest();
    for entry in archive.index().iter().flatten() {
        let _ = archive.resolve(entry.name);
        let _ = archive.resolve(&format!("{}/..", entry.name));
        let contents = archive.contents(&entry, true);
        if entry.kind == EntryKind::Symlink
            && let Ok(target) = &contents
            && let Ok(target) = std::str::from_utf8(target)
        {
            let dir = path::parent(entry.name);
            let _ = archive.resolve(target);
            let _ = archive.resolve(&format!("{dir}/{target}"));
        }
    }
    let _ = archive.index().children("");
    if let Ok(v) = validate::validate(&archive) {
        for e in &v.entries {
            let _ = archive.contents(e, true);
        }
    }
    let _ = verify::verify(data);
});
