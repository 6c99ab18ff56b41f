//! Helpers shared by the end-to-end test binaries (each includes this file with `mod common;`).

// Every test binary compiles this module on its own and uses only some of it.
#![allow(dead_code)]

use std::path::Path;

/// Process output as text (lossy: tests compare against UTF-8 goldens).
pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Copy a fixture tree into a test's working directory.
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read_dir") {
        let entry = entry.expect("entry");
        let target = to.join(entry.file_name());
        if entry.path().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).expect("copy");
        }
    }
}
