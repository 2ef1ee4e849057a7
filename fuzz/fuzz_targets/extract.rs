//! Extraction of arbitrary archives into a temporary directory, with the invariant that
//! nothing is ever written outside it and no extracted symlink points outside it.
#![no_main]

use std::path::{Component, Path};

use libfuzzer_sys::fuzz_target;
use wrapkit_runtime::archive::Archive;
use wrapkit_runtime::extract::{self, ExtractOptions};
use wrapkit_runtime::validate;

fuzz_target!(|data: &[u8]| {
    let Ok(archive) = Archive::open(data) else { return };
    let Ok(validated) = validate::validate(&archive) else { return };
    if validated.total_size > 64 << 20 {
        return;
    }
    let sandbox = tempfile::tempdir().expect("temp dir");
    let root = sandbox.path().join("root");
    std::fs::create_dir(&root).expect("root");
    let _ = extract::extract(&archive, &validated, &root, &ExtractOptions { fsync: false, threads: 1, ..Default::default() });
    let outside: Vec<_> = std::fs::read_dir(sandbox.path()).expect("list").collect();
    assert_eq!(outside.len(), 1, "something was written beside the target");
    check_tree(&root, &root);
});

/// Every symlink under `dir` resolves, lexically, inside `root`.
fn check_tree(root: &Path, dir: &Path) {
    for entry in std::fs::read_dir(dir).expect("list") {
        let path = entry.expect("entry").path();
        let meta = std::fs::symlink_metadata(&path).expect("stat");
        if meta.file_type().is_symlink() {
            let target = std::fs::read_link(&path).expect("readlink");
            assert!(!target.is_absolute(), "absolute link {path:?} -> {target:?}");
            let mut depth: i64 = path.parent().unwrap().strip_prefix(root).unwrap().components().count() as i64;
            for c in target.components() {
                match c {
                    Component::ParentDir => depth -= 1,
                    Component::Normal(_) => depth += 1,
                    _ => {}
                }
                assert!(depth >= 0, "link {path:?} -> {target:?} leaves the root");
            }
        } else if meta.is_dir() {
            check_tree(root, &path);
        }
    }
}
