//! A bundle (tenant.yaml, policy files, an OpenFGA model) compiled from memory into a snapshot;
//! when it compiles, the tests the bundle carries run against it.
#![no_main]

use std::path::PathBuf;
use std::sync::Arc;

use libfuzzer_sys::fuzz_target;
use portcullis_fuzz::split_files;
use portcullis_policy::{compile_files, run_tests, LoadOptions, PolicySet, SourceFile};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let files: Vec<SourceFile> = split_files(text)
        .into_iter()
        .map(|(name, text)| SourceFile {
            path: PathBuf::from("bundle").join(name),
            text,
        })
        .collect();
    let root = PathBuf::from("bundle");
    if let Ok(snapshot) = compile_files(&root, &files, &LoadOptions::default()) {
        let mut set = PolicySet::new();
        set.insert(Arc::new(snapshot));
        let _ = run_tests(&set);
    }
});
