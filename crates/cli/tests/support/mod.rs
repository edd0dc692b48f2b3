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

/// Reads a starting server's standard output (piped) until its banner names the address after
/// `label` (such as `API:`), for at most `within`; then keeps draining the output in the
/// background, so the server never blocks on a full pipe.
pub fn banner_address(
    child: &mut std::process::Child,
    label: &str,
    within: std::time::Duration,
) -> Option<String> {
    use std::io::{BufRead, BufReader};
    let stdout = child.stdout.take()?;
    let mut lines = BufReader::new(stdout).lines();
    let deadline = std::time::Instant::now() + within;
    let mut found = None;
    while found.is_none() && std::time::Instant::now() < deadline {
        let Some(Ok(line)) = lines.next() else { break };
        if let Some(rest) = line.trim().strip_prefix(label) {
            found = rest.split_whitespace().next().map(str::to_owned);
        }
    }
    std::thread::spawn(move || for _ in lines {});
    found
}
