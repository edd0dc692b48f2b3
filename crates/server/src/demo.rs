//! The demo bundles, built into the binary so that `portcullis serve` works from anywhere:
//! the tenants of `examples/demo/bundles` and the AuthZEN certification tenant
//! `examples/authzen`. When `examples/demo/bundles` exists in the working directory, those
//! folders are served (and watched) instead.

use std::path::PathBuf;

use portcullis_policy::SourceFile;

macro_rules! demo_file {
    ($tenant:literal, $name:literal) => {
        (
            $tenant,
            $name,
            include_str!(concat!(
                "../../../examples/demo/bundles/",
                $tenant,
                "/",
                $name
            )),
        )
    };
}

macro_rules! authzen_file {
    ($name:literal) => {
        (
            "authzen",
            $name,
            include_str!(concat!("../../../examples/authzen/", $name)),
        )
    };
}

/// Every file of the demo bundles (a test checks this list against the folders).
pub const FILES: &[(&str, &str, &str)] = &[
    demo_file!("acme", "access.yaml"),
    demo_file!("acme", "actions.yaml"),
    demo_file!("acme", "calendar-2026.yaml"),
    demo_file!("acme", "factors.yaml"),
    demo_file!("acme", "model.fga"),
    demo_file!("acme", "principals.yaml"),
    demo_file!("acme", "roles.yaml"),
    demo_file!("acme", "routes.yaml"),
    demo_file!("acme", "rules.yaml"),
    demo_file!("acme", "strategies.yaml"),
    demo_file!("acme", "tenant.yaml"),
    demo_file!("acme", "tests-access.yaml"),
    demo_file!("acme", "tests-inventory.yaml"),
    demo_file!("acme", "tests-ops-read.yaml"),
    demo_file!("acme", "tests-release.yaml"),
    demo_file!("acme", "tuples.yaml"),
    demo_file!("system", "admin.yaml"),
    demo_file!("system", "tenant.yaml"),
    authzen_file!("policy.yaml"),
    authzen_file!("tenant.yaml"),
    authzen_file!("tests.yaml"),
];

/// The demo bundles as in-memory files, grouped by tenant folder.
pub fn bundles() -> Vec<(String, Vec<SourceFile>)> {
    let mut grouped: Vec<(String, Vec<SourceFile>)> = Vec::new();
    for (tenant, name, text) in FILES {
        let file = SourceFile {
            path: PathBuf::from("demo").join(tenant).join(name),
            text: (*text).to_owned(),
        };
        match grouped.iter_mut().find(|(folder, _)| folder == tenant) {
            Some((_, files)) => files.push(file),
            None => grouped.push(((*tenant).to_owned(), vec![file])),
        }
    }
    grouped
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_embedded_list_matches_the_demo_folder() {
        let root =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/demo/bundles");
        let mut on_disk = Vec::new();
        for tenant in std::fs::read_dir(&root).unwrap().flatten() {
            for file in std::fs::read_dir(tenant.path()).unwrap().flatten() {
                let name = file.file_name().to_string_lossy().into_owned();
                if name.ends_with(".yaml") || name.ends_with(".fga") {
                    on_disk.push((tenant.file_name().to_string_lossy().into_owned(), name));
                }
            }
        }
        let authzen =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/authzen");
        for file in std::fs::read_dir(&authzen).unwrap().flatten() {
            let name = file.file_name().to_string_lossy().into_owned();
            if name.ends_with(".yaml") || name.ends_with(".fga") {
                on_disk.push(("authzen".to_owned(), name));
            }
        }
        on_disk.sort();
        let mut embedded: Vec<(String, String)> = FILES
            .iter()
            .map(|(t, n, _)| ((*t).to_owned(), (*n).to_owned()))
            .collect();
        embedded.sort();
        assert_eq!(
            embedded, on_disk,
            "update demo::FILES when the demo bundles change"
        );
    }
}
