//! Helpers shared by the integration tests that compare output folders.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Every file under `dir` (relative path → bytes), the lock file apart.
pub fn tree(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    fn walk(base: &Path, dir: &Path, acc: &mut BTreeMap<PathBuf, Vec<u8>>) {
        for e in std::fs::read_dir(dir).expect("readable") {
            let e = e.expect("entry");
            let p = e.path();
            if e.file_type().expect("type").is_dir() {
                walk(base, &p, acc);
            } else if e.file_name() != ".scarscope.lock" {
                let rel = p.strip_prefix(base).expect("inside").to_path_buf();
                acc.insert(rel, std::fs::read(&p).expect("readable"));
            }
        }
    }
    let mut acc = BTreeMap::new();
    walk(dir, dir, &mut acc);
    acc
}

/// The two folders hold the same files with the same bytes (lock files apart).
pub fn assert_same_tree(a: &Path, b: &Path) {
    let (ta, tb) = (tree(a), tree(b));
    let names = |t: &BTreeMap<PathBuf, Vec<u8>>| t.keys().cloned().collect::<Vec<_>>();
    assert_eq!(names(&ta), names(&tb), "same files");
    for (k, v) in &ta {
        assert!(v == &tb[k], "{} differs", k.display());
    }
}
