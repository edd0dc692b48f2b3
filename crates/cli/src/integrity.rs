//! `portcullis integrity keygen|sign|verify`: Ed25519-signed manifests of the SHA-256 digests
//! of the binary, the configuration file and every bundle file (`portcullis_supply::integrity`),
//! which `serve --verify-integrity` checks at start.

use std::path::PathBuf;

use clap::Subcommand;
use portcullis_supply::integrity::{
    IntegrityError, Manifest, PublicKey, SecretKey, Subjects, Verified,
};

/// Exit code: done (`verify`: everything matches).
const OK: u8 = 0;
/// Exit code: `verify` found a file that differs, is missing, or a signature that does not pass.
const FAILED: u8 = 1;
/// Exit code: a usage error or an unusable key or manifest.
const UNUSABLE: u8 = 2;

/// The `integrity` subcommands.
#[derive(Debug, Subcommand)]
pub enum IntegrityCommand {
    /// Create a signing key pair (neither file may exist; the secret one is made readable by
    /// its owner only).
    ///
    /// Exit status: 0 written, 2 a file exists or cannot be written.
    Keygen {
        /// Where to write the secret key.
        #[arg(long, value_name = "FILE")]
        secret: PathBuf,
        /// Where to write the public key.
        #[arg(long, value_name = "FILE")]
        public: PathBuf,
    },
    /// Sign a manifest of SHA-256 digests: the binary, the configuration file and every file
    /// below each bundle folder. Paths below the manifest's folder are written relative to it.
    ///
    /// Exit status: 0 written, 2 a file cannot be read or written.
    Sign {
        /// The secret key.
        #[arg(long, value_name = "FILE")]
        key: PathBuf,
        /// The binary to cover (default: this executable).
        #[arg(long, value_name = "FILE")]
        binary: Option<PathBuf>,
        /// Leave the binary out.
        #[arg(long, conflicts_with = "binary")]
        no_binary: bool,
        /// The configuration file to cover.
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
        /// A bundle folder (or folder of bundles) to cover; repeatable.
        #[arg(long, value_name = "DIR")]
        bundles: Vec<PathBuf>,
        /// Where to write the manifest.
        #[arg(long, short, value_name = "FILE")]
        output: PathBuf,
    },
    /// Check a manifest: its signature with the trusted key, then every file it covers.
    ///
    /// Exit status: 0 all match, 1 a file differs or is missing or the signature does not
    /// pass (named on standard error), 2 the manifest or the key cannot be read.
    Verify {
        /// The manifest.
        #[arg(long, value_name = "FILE")]
        manifest: PathBuf,
        /// The public key it must be signed with.
        #[arg(long, value_name = "FILE")]
        trust_key: PathBuf,
    },
}

/// Runs an `integrity` subcommand; returns the exit code.
pub fn run(command: IntegrityCommand) -> u8 {
    match command {
        IntegrityCommand::Keygen { secret, public } => keygen(&secret, &public),
        IntegrityCommand::Sign {
            key,
            binary,
            no_binary,
            config,
            bundles,
            output,
        } => {
            let binary = if no_binary {
                None
            } else {
                match binary {
                    Some(binary) => Some(binary),
                    None => match std::env::current_exe() {
                        Ok(path) => Some(path),
                        Err(error) => {
                            eprintln!("error: cannot find this executable: {error}");
                            return UNUSABLE;
                        }
                    },
                }
            };
            sign(
                &key,
                Subjects {
                    binary,
                    config,
                    bundles,
                },
                &output,
            )
        }
        IntegrityCommand::Verify {
            manifest,
            trust_key,
        } => verify(&manifest, &trust_key),
    }
}

fn keygen(secret: &std::path::Path, public: &std::path::Path) -> u8 {
    for path in [secret, public] {
        if path.exists() {
            eprintln!(
                "error: {} exists; keys are never overwritten",
                path.display()
            );
            return UNUSABLE;
        }
    }
    let key = match SecretKey::generate() {
        Ok(key) => key,
        Err(error) => {
            eprintln!("error: no random source: {error}");
            return UNUSABLE;
        }
    };
    if let Err(error) = key.save(secret).and_then(|()| key.public().save(public)) {
        eprintln!("error: {error}");
        return UNUSABLE;
    }
    println!(
        "key {}: secret {}, public {}",
        key.public().key_id(),
        secret.display(),
        public.display()
    );
    OK
}

fn sign(key: &std::path::Path, subjects: Subjects, output: &std::path::Path) -> u8 {
    let key = match SecretKey::load(key) {
        Ok(key) => key,
        Err(error) => {
            eprintln!("error: {error}");
            return UNUSABLE;
        }
    };
    let base = output
        .parent()
        .filter(|parent| !parent.as_os_str().is_empty())
        .unwrap_or(std::path::Path::new("."));
    let signed = Manifest::sign(&subjects, base, &key, jiff::Timestamp::now())
        .and_then(|manifest| manifest.save(output).map(|()| manifest));
    match signed {
        Ok(manifest) => {
            println!(
                "signed {} files with key {} into {}",
                manifest.files.len(),
                manifest.key_id,
                output.display()
            );
            OK
        }
        Err(error) => {
            eprintln!("error: {error}");
            UNUSABLE
        }
    }
}

fn verify(manifest: &std::path::Path, trust_key: &std::path::Path) -> u8 {
    let checked = PublicKey::load(trust_key)
        .and_then(|key| Verified::open(manifest, &key))
        .and_then(|verified| verified.check_files().map(|()| verified));
    match checked {
        Ok(verified) => {
            println!(
                "ok: {} files match the manifest signed by key {}",
                verified.files.len(),
                verified.manifest.key_id
            );
            OK
        }
        Err(error) => {
            // The manifest or the key cannot be used: nothing was checked.
            let unusable = match &error {
                IntegrityError::Key { .. } | IntegrityError::Manifest { .. } => true,
                IntegrityError::Io { path, .. } => path == manifest || path == trust_key,
                _ => false,
            };
            if unusable {
                eprintln!("error: {error}");
                UNUSABLE
            } else {
                eprintln!("integrity check failed: {error}");
                FAILED
            }
        }
    }
}
