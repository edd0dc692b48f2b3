//! Helpers shared by the command line's integration tests.
#![allow(
    clippy::unwrap_used,
    reason = "test code: a failed setup step must fail the test"
)]
#![allow(dead_code, reason = "each test file uses a different subset")]

use std::path::{Path, PathBuf};

/// Copies the demo bundles into `into`, returning the bundles folder.
pub fn copy_demo(into: &Path) -> PathBuf {
    let source = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples/demo/bundles");
    let root = into.join("bundles");
    for tenant in std::fs::read_dir(source).unwrap().flatten() {
        let target = root.join(tenant.file_name());
        std::fs::create_dir_all(&target).unwrap();
        for file in std::fs::read_dir(tenant.path()).unwrap().flatten() {
            std::fs::copy(file.path(), target.join(file.file_name())).unwrap();
        }
    }
    root
}
