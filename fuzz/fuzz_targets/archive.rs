//! Every reader path over arbitrary bytes: open, validate, look up and read every entry,
//! verify. Nothing may panic, hang or allocate beyond the input's size.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wrapkit_runtime::archive::Archive;
use wrapkit_runtime::{validate, verify};

fuzz_target!(|data: &[u8]| {
    let Ok(archive) = Archive::open(data) else {
        let _ = verify::verify(data);
        return;
    };
    let _ = archive.manifest();
    for entry in archive.index().iter().flatten() {
        let _ = archive.resolve(entry.name);
        let _ = archive.contents(&entry, true);
    }
    let _ = archive.index().children("");
    if let Ok(v) = validate::validate(&archive) {
        for e in &v.entries {
            let _ = archive.contents(e, true);
        }
    }
    let _ = verify::verify(data);
});
