//! Integrity manifests: what is signed verifies; one byte changed in any covered file, a file
//! removed or added, a wrong key, a forged signature, a missing or malformed manifest each fail
//! and name the file.
#![allow(clippy::unwrap_used, reason = "test code: failures should be loud")]

use std::path::{Path, PathBuf};

use portcullis_supply::integrity::{
    IntegrityError, Manifest, PublicKey, Role, SecretKey, Subjects, Verified,
};

struct Setup {
    dir: tempfile::TempDir,
    key: SecretKey,
    public: PathBuf,
    manifest: PathBuf,
}

impl Setup {
    fn new() -> Setup {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::write(root.join("portcullis"), b"\x7fELF pretend binary").unwrap();
        std::fs::write(
            root.join("portcullis.toml"),
            "listen = \"127.0.0.1:9700\"\n",
        )
        .unwrap();
        for (path, text) in [
            ("bundles/acme/tenant.yaml", "tenant: acme\n"),
            ("bundles/acme/roles.yaml", "roles: {}\n"),
            ("bundles/globex/tenant.yaml", "tenant: globex\n"),
        ] {
            let path = root.join(path);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        }
        let key = SecretKey::from_seed([7; 32]);
        let public = root.join("integrity.pub");
        key.public().save(&public).unwrap();
        let manifest = root.join("manifest.json");
        Manifest::sign(&subjects(root), root, &key, jiff::Timestamp::UNIX_EPOCH)
            .unwrap()
            .save(&manifest)
            .unwrap();
        Setup {
            dir,
            key,
            public,
            manifest,
        }
    }

    fn root(&self) -> &Path {
        self.dir.path()
    }

    fn verify(&self) -> Result<Verified, IntegrityError> {
        let verified = Verified::open(&self.manifest, &PublicKey::load(&self.public)?)?;
        verified.check_files()?;
        Ok(verified)
    }
}

fn subjects(root: &Path) -> Subjects {
    Subjects {
        binary: Some(root.join("portcullis")),
        config: Some(root.join("portcullis.toml")),
        bundles: vec![root.join("bundles")],
    }
}

#[test]
fn a_signed_manifest_verifies_and_covers_every_file() {
    let setup = Setup::new();
    let verified = setup.verify().unwrap();
    let roles: Vec<(Role, String)> = verified
        .manifest
        .files
        .iter()
        .map(|entry| (entry.role, entry.path.clone()))
        .collect();
    assert_eq!(
        roles,
        vec![
            (Role::Binary, "portcullis".to_owned()),
            (Role::Config, "portcullis.toml".to_owned()),
            (Role::Bundle, "bundles/acme/roles.yaml".to_owned()),
            (Role::Bundle, "bundles/acme/tenant.yaml".to_owned()),
            (Role::Bundle, "bundles/globex/tenant.yaml".to_owned()),
        ]
    );
    verified
        .check_folder(&setup.root().join("bundles/acme"))
        .unwrap();
    // The digests are the files' SHA-256.
    let config = &verified.manifest.files[1];
    assert_eq!(
        config.sha256,
        portcullis_supply::integrity::file_digest(&setup.root().join("portcullis.toml")).unwrap()
    );
    assert_eq!(config.sha256.len(), 64);
}

#[test]
fn one_byte_changed_in_any_covered_file_is_named() {
    for file in [
        "portcullis",
        "portcullis.toml",
        "bundles/acme/tenant.yaml",
        "bundles/globex/tenant.yaml",
    ] {
        let setup = Setup::new();
        let path = setup.root().join(file);
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[0] ^= 1;
        std::fs::write(&path, bytes).unwrap();
        match setup.verify() {
            Err(IntegrityError::Mismatch { path: named, .. }) => {
                assert!(named.ends_with(file), "{file}: named {}", named.display())
            }
            other => panic!("{file}: {other:?}"),
        }
    }
}

#[test]
fn a_removed_file_is_missing_and_an_added_bundle_file_is_not_covered() {
    let setup = Setup::new();
    std::fs::remove_file(setup.root().join("bundles/acme/roles.yaml")).unwrap();
    let error = setup.verify().unwrap_err();
    assert!(
        matches!(&error, IntegrityError::Missing { path } if path.ends_with("bundles/acme/roles.yaml")),
        "{error:?}"
    );

    let setup = Setup::new();
    std::fs::write(setup.root().join("bundles/acme/rules.yaml"), "rules: []\n").unwrap();
    let verified = setup.verify().unwrap();
    let error = verified
        .check_folder(&setup.root().join("bundles/acme"))
        .unwrap_err();
    assert!(
        matches!(&error, IntegrityError::NotCovered { path } if path.ends_with("bundles/acme/rules.yaml")),
        "{error:?}"
    );
    assert!(error.to_string().contains("not covered"), "{error}");
}

#[test]
fn another_key_and_a_forged_signature_are_refused() {
    let setup = Setup::new();
    let other = setup.root().join("other.pub");
    SecretKey::from_seed([8; 32]).public().save(&other).unwrap();
    let error = Verified::open(&setup.manifest, &PublicKey::load(&other).unwrap()).unwrap_err();
    assert!(
        matches!(&error, IntegrityError::Signature { reason, .. } if reason.contains("not by the trusted key")),
        "{error:?}"
    );

    // A digest replaced in the manifest (as someone covering a changed file would).
    let mut manifest = Manifest::load(&setup.manifest).unwrap();
    manifest.files[1].sha256 = "0".repeat(64);
    manifest.save(&setup.manifest).unwrap();
    let error = setup.verify().unwrap_err();
    assert!(
        matches!(&error, IntegrityError::Signature { reason, .. } if reason.contains("does not match")),
        "{error:?}"
    );

    // A signature by another key with the trusted key's id.
    let setup = Setup::new();
    let mut manifest = Manifest::load(&setup.manifest).unwrap();
    let forged = Manifest::sign(
        &subjects(setup.root()),
        setup.root(),
        &SecretKey::from_seed([9; 32]),
        jiff::Timestamp::UNIX_EPOCH,
    )
    .unwrap();
    manifest.signature = forged.signature;
    manifest.save(&setup.manifest).unwrap();
    assert!(matches!(
        setup.verify(),
        Err(IntegrityError::Signature { .. })
    ));
    // The key that signed still verifies a fresh manifest.
    Manifest::sign(
        &subjects(setup.root()),
        setup.root(),
        &setup.key,
        jiff::Timestamp::UNIX_EPOCH,
    )
    .unwrap()
    .save(&setup.manifest)
    .unwrap();
    setup.verify().unwrap();
}

#[test]
fn missing_and_malformed_manifests_and_keys_name_their_file() {
    let setup = Setup::new();
    let key = PublicKey::load(&setup.public).unwrap();
    let missing = setup.root().join("absent.json");
    let error = Verified::open(&missing, &key).unwrap_err();
    assert!(matches!(error, IntegrityError::Io { .. }));
    assert!(error.to_string().contains("absent.json"), "{error}");

    std::fs::write(&setup.manifest, "{\"format\": 1}").unwrap();
    let error = Verified::open(&setup.manifest, &key).unwrap_err();
    assert!(
        matches!(&error, IntegrityError::Manifest { reason, .. } if reason.contains("line 1")),
        "{error:?}"
    );

    let bad_key = setup.root().join("bad.pub");
    std::fs::write(&bad_key, "portcullis-integrity-ed25519-public-v1\nxyz\n").unwrap();
    let error = PublicKey::load(&bad_key).unwrap_err();
    assert!(error.to_string().contains("bad.pub"), "{error}");
    // A secret key file is not a public key file.
    let secret = setup.root().join("integrity.key");
    setup.key.save(&secret).unwrap();
    assert!(PublicKey::load(&secret).is_err());
    // Keys are never overwritten.
    assert!(setup.key.save(&secret).is_err());
}
