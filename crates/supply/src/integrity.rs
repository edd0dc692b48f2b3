//! Integrity manifests: the SHA-256 digests of the `portcullis` binary, its configuration file
//! and every file of its bundle folders, signed with Ed25519, so that a server refuses to start
//! (or starts read-only) when any of them differs from what was signed.
//!
//! # Files
//! Secret key: two lines, `portcullis-integrity-ed25519-secret-v1` and the 32-byte Ed25519 seed
//! in lower-case hex (written with mode 0600). Public key: the same with
//! `portcullis-integrity-ed25519-public-v1` and the 32-byte public key. The key id is the first
//! 16 hex characters of SHA-256 of the public key bytes.
//!
//! Manifest (JSON): `format` (`portcullis-integrity-manifest-v1`), `created_at` (RFC 3339),
//! `key_id`, `files` (each `role` — `binary`, `config` or `bundle` — `path` and `sha256`, in
//! the order signed) and `signature` (128 hex characters). A relative `path` is relative to
//! the manifest's folder. The signature covers the line `portcullis-integrity-manifest-v1`,
//! then `created_at\t<value>`, `key_id\t<value>` and one `<role>\t<path>\t<sha256>` line per
//! file, each ended by a newline; paths holding a tab or a line break are refused.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Read as _;
use std::path::{Path, PathBuf};

use ed25519_dalek::{Signer as _, Verifier as _};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

/// The manifest format this module writes and reads.
pub const MANIFEST_FORMAT: &str = "portcullis-integrity-manifest-v1";
const SECRET_HEADER: &str = "portcullis-integrity-ed25519-secret-v1";
const PUBLIC_HEADER: &str = "portcullis-integrity-ed25519-public-v1";

/// Why a key, a manifest or a covered file does not pass.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IntegrityError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A key file is not one this module writes.
    #[error("{path}: {reason}")]
    Key {
        /// The key file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The manifest does not read.
    #[error("{path}: {reason}")]
    Manifest {
        /// The manifest.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The manifest was not signed by the trusted key, or was changed after signing.
    #[error("{path}: {reason}")]
    Signature {
        /// The manifest.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A covered file is missing.
    #[error("{path}: covered by the integrity manifest but missing")]
    Missing {
        /// The file.
        path: PathBuf,
    },
    /// A covered file's digest differs from the signed one.
    #[error("{path}: its SHA-256 is {found}, the integrity manifest signed {expected}")]
    Mismatch {
        /// The file.
        path: PathBuf,
        /// The signed digest.
        expected: String,
        /// The digest of the file now.
        found: String,
    },
    /// A file the manifest does not cover (a bundle file added or renamed after signing).
    #[error("{path}: not covered by the integrity manifest")]
    NotCovered {
        /// The file.
        path: PathBuf,
    },
}

impl IntegrityError {
    fn io(path: &Path, source: std::io::Error) -> Self {
        IntegrityError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

/// What a covered file is to the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// The `portcullis` binary.
    Binary,
    /// The configuration file.
    Config,
    /// A file of a bundle folder.
    Bundle,
}

impl Role {
    fn as_str(self) -> &'static str {
        match self {
            Role::Binary => "binary",
            Role::Config => "config",
            Role::Bundle => "bundle",
        }
    }
}

/// One covered file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Entry {
    /// What it is.
    pub role: Role,
    /// Where it is: relative to the manifest's folder, or absolute.
    pub path: String,
    /// Its SHA-256, lower-case hex.
    pub sha256: String,
}

/// A signed manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// [`MANIFEST_FORMAT`].
    pub format: String,
    /// When it was signed (RFC 3339).
    pub created_at: String,
    /// The id of the key that signed it.
    pub key_id: String,
    /// The covered files.
    pub files: Vec<Entry>,
    /// The Ed25519 signature, hex.
    pub signature: String,
}

/// An integrity signing key (secret).
pub struct SecretKey {
    inner: ed25519_dalek::SigningKey,
}

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretKey")
            .field("key_id", &self.public().key_id())
            .finish_non_exhaustive()
    }
}

/// An integrity verifying key (public).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicKey {
    inner: ed25519_dalek::VerifyingKey,
}

impl SecretKey {
    /// A new key from the operating system's random source.
    pub fn generate() -> Result<SecretKey, std::io::Error> {
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed).map_err(|e| std::io::Error::other(e.to_string()))?;
        Ok(SecretKey::from_seed(seed))
    }

    /// The key of a 32-byte seed.
    pub fn from_seed(seed: [u8; 32]) -> SecretKey {
        SecretKey {
            inner: ed25519_dalek::SigningKey::from_bytes(&seed),
        }
    }

    /// Its public key.
    pub fn public(&self) -> PublicKey {
        PublicKey {
            inner: self.inner.verifying_key(),
        }
    }

    /// Reads a secret key file.
    pub fn load(path: &Path) -> Result<SecretKey, IntegrityError> {
        read_key(path, SECRET_HEADER).map(SecretKey::from_seed)
    }

    /// Writes the secret key file (mode 0600 on Unix); an existing file is not replaced.
    pub fn save(&self, path: &Path) -> Result<(), IntegrityError> {
        write_key(path, SECRET_HEADER, &self.inner.to_bytes(), true)
    }
}

impl PublicKey {
    /// The key's id: 16 hex characters of the SHA-256 of its bytes.
    pub fn key_id(&self) -> String {
        let digest = Sha256::digest(self.inner.as_bytes());
        hex::encode(&digest[..8])
    }

    /// Reads a public key file.
    pub fn load(path: &Path) -> Result<PublicKey, IntegrityError> {
        let bytes = read_key(path, PUBLIC_HEADER)?;
        let inner =
            ed25519_dalek::VerifyingKey::from_bytes(&bytes).map_err(|e| IntegrityError::Key {
                path: path.to_path_buf(),
                reason: format!("not an Ed25519 public key: {e}"),
            })?;
        Ok(PublicKey { inner })
    }

    /// Writes the public key file; an existing file is not replaced.
    pub fn save(&self, path: &Path) -> Result<(), IntegrityError> {
        write_key(path, PUBLIC_HEADER, self.inner.as_bytes(), false)
    }
}

fn read_key(path: &Path, header: &str) -> Result<[u8; 32], IntegrityError> {
    let text = std::fs::read_to_string(path).map_err(|e| IntegrityError::io(path, e))?;
    let mut lines = text.lines();
    let key_error = |reason: String| IntegrityError::Key {
        path: path.to_path_buf(),
        reason,
    };
    if lines.next() != Some(header) {
        return Err(key_error(format!("line 1 must be `{header}`")));
    }
    let mut bytes = [0u8; 32];
    hex::decode_to_slice(lines.next().unwrap_or("").trim(), &mut bytes)
        .map_err(|_| key_error("line 2 must be 64 hex characters".into()))?;
    Ok(bytes)
}

fn write_key(path: &Path, header: &str, bytes: &[u8], private: bool) -> Result<(), IntegrityError> {
    let text = format!("{header}\n{}\n", hex::encode(bytes));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    if private {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    #[cfg(not(unix))]
    let _ = private;
    use std::io::Write as _;
    options
        .open(path)
        .and_then(|mut file| file.write_all(text.as_bytes()))
        .map_err(|e| IntegrityError::io(path, e))
}

/// The SHA-256 of a file, lower-case hex, read in blocks.
pub fn file_digest(path: &Path) -> Result<String, IntegrityError> {
    let mut file = std::fs::File::open(path).map_err(|e| IntegrityError::io(path, e))?;
    let mut hasher = Sha256::new();
    let mut block = vec![0u8; 64 * 1024];
    loop {
        let read = file
            .read(&mut block)
            .map_err(|e| IntegrityError::io(path, e))?;
        if read == 0 {
            break;
        }
        hasher.update(&block[..read]);
    }
    Ok(hex::encode(hasher.finalize()))
}

/// Every file below `folder`, in path order (symbolic links are followed as the bundle loader
/// follows them).
pub fn files_below(folder: &Path) -> Result<Vec<PathBuf>, IntegrityError> {
    let mut found = Vec::new();
    let mut pending = vec![folder.to_path_buf()];
    while let Some(dir) = pending.pop() {
        let entries = std::fs::read_dir(&dir).map_err(|e| IntegrityError::io(&dir, e))?;
        for entry in entries {
            let path = entry.map_err(|e| IntegrityError::io(&dir, e))?.path();
            if path.is_dir() {
                pending.push(path);
            } else {
                found.push(path);
            }
        }
    }
    found.sort();
    Ok(found)
}

/// What a manifest covers.
#[derive(Debug, Clone, Default)]
pub struct Subjects {
    /// The binary.
    pub binary: Option<PathBuf>,
    /// The configuration file.
    pub config: Option<PathBuf>,
    /// Bundle folders (every file below each).
    pub bundles: Vec<PathBuf>,
}

/// How `path` is written in a manifest stored in `base`: relative when below it.
fn manifest_path(path: &Path, base: &Path) -> Result<String, IntegrityError> {
    let absolute = std::path::absolute(path).map_err(|e| IntegrityError::io(path, e))?;
    let base = std::path::absolute(base).map_err(|e| IntegrityError::io(base, e))?;
    let shown = absolute.strip_prefix(&base).unwrap_or(&absolute);
    let text = shown.to_str().ok_or_else(|| IntegrityError::Manifest {
        path: path.to_path_buf(),
        reason: "the path is not UTF-8".into(),
    })?;
    if text.contains(['\t', '\n', '\r']) {
        return Err(IntegrityError::Manifest {
            path: path.to_path_buf(),
            reason: "the path holds a tab or a line break".into(),
        });
    }
    Ok(text.to_owned())
}

/// The bytes a signature covers.
fn signed_bytes(created_at: &str, key_id: &str, files: &[Entry]) -> Vec<u8> {
    let mut text = format!("{MANIFEST_FORMAT}\ncreated_at\t{created_at}\nkey_id\t{key_id}\n");
    for entry in files {
        let _ = writeln!(
            text,
            "{}\t{}\t{}",
            entry.role.as_str(),
            entry.path,
            entry.sha256
        );
    }
    text.into_bytes()
}

impl Manifest {
    /// Digests `subjects` and signs them with `key`; paths are written relative to `base` (the
    /// folder the manifest will be stored in) when below it.
    pub fn sign(
        subjects: &Subjects,
        base: &Path,
        key: &SecretKey,
        created_at: jiff::Timestamp,
    ) -> Result<Manifest, IntegrityError> {
        let mut files = Vec::new();
        let mut add = |role: Role, path: &Path| -> Result<(), IntegrityError> {
            files.push(Entry {
                role,
                path: manifest_path(path, base)?,
                sha256: file_digest(path)?,
            });
            Ok(())
        };
        if let Some(binary) = &subjects.binary {
            add(Role::Binary, binary)?;
        }
        if let Some(config) = &subjects.config {
            add(Role::Config, config)?;
        }
        for folder in &subjects.bundles {
            for file in files_below(folder)? {
                add(Role::Bundle, &file)?;
            }
        }
        let created_at = created_at.to_string();
        let key_id = key.public().key_id();
        let signature = key.inner.sign(&signed_bytes(&created_at, &key_id, &files));
        Ok(Manifest {
            format: MANIFEST_FORMAT.into(),
            created_at,
            key_id,
            files,
            signature: hex::encode(signature.to_bytes()),
        })
    }

    /// Reads a manifest file (not yet verified).
    pub fn load(path: &Path) -> Result<Manifest, IntegrityError> {
        let text = std::fs::read_to_string(path).map_err(|e| IntegrityError::io(path, e))?;
        let manifest: Manifest =
            serde_json::from_str(&text).map_err(|e| IntegrityError::Manifest {
                path: path.to_path_buf(),
                reason: format!("line {} column {}: {e}", e.line(), e.column()),
            })?;
        if manifest.format != MANIFEST_FORMAT {
            return Err(IntegrityError::Manifest {
                path: path.to_path_buf(),
                reason: format!("format `{}` is not `{MANIFEST_FORMAT}`", manifest.format),
            });
        }
        Ok(manifest)
    }

    /// Writes the manifest as indented JSON.
    pub fn save(&self, path: &Path) -> Result<(), IntegrityError> {
        let mut text =
            serde_json::to_string_pretty(self).map_err(|e| IntegrityError::Manifest {
                path: path.to_path_buf(),
                reason: e.to_string(),
            })?;
        text.push('\n');
        std::fs::write(path, text).map_err(|e| IntegrityError::io(path, e))
    }

    /// Checks the signature with `key` (`path` names the manifest in errors).
    pub fn check_signature(&self, path: &Path, key: &PublicKey) -> Result<(), IntegrityError> {
        let bad = |reason: String| IntegrityError::Signature {
            path: path.to_path_buf(),
            reason,
        };
        if self.key_id != key.key_id() {
            return Err(bad(format!(
                "signed by key {}, not by the trusted key {}",
                self.key_id,
                key.key_id()
            )));
        }
        let mut bytes = [0u8; 64];
        hex::decode_to_slice(&self.signature, &mut bytes)
            .map_err(|_| bad("the signature is not 128 hex characters".into()))?;
        let signature = ed25519_dalek::Signature::from_bytes(&bytes);
        key.inner
            .verify(
                &signed_bytes(&self.created_at, &self.key_id, &self.files),
                &signature,
            )
            .map_err(|_| {
                bad(
                    "the signature does not match its contents (forged or changed after signing)"
                        .into(),
                )
            })
    }
}

/// A manifest whose signature passed, with its files located.
#[derive(Debug, Clone)]
pub struct Verified {
    /// The manifest.
    pub manifest: Manifest,
    /// Each covered file's absolute path and signed digest.
    pub files: BTreeMap<PathBuf, (Role, String)>,
}

impl Verified {
    /// Reads `manifest` and checks its signature with `key` (nothing else).
    pub fn open(manifest: &Path, key: &PublicKey) -> Result<Verified, IntegrityError> {
        let loaded = Manifest::load(manifest)?;
        loaded.check_signature(manifest, key)?;
        let base = manifest.parent().unwrap_or(Path::new("."));
        let base = std::path::absolute(base).map_err(|e| IntegrityError::io(base, e))?;
        let files = loaded
            .files
            .iter()
            .map(|entry| (base.join(&entry.path), (entry.role, entry.sha256.clone())))
            .collect();
        Ok(Verified {
            manifest: loaded,
            files,
        })
    }

    /// Checks every covered file; the first that is missing or differs is the error.
    pub fn check_files(&self) -> Result<(), IntegrityError> {
        for (path, (_, expected)) in &self.files {
            self.check_digest(path, expected)?;
        }
        Ok(())
    }

    fn check_digest(&self, path: &Path, expected: &str) -> Result<(), IntegrityError> {
        if !path.exists() {
            return Err(IntegrityError::Missing {
                path: path.to_path_buf(),
            });
        }
        let found = file_digest(path)?;
        if found != expected {
            return Err(IntegrityError::Mismatch {
                path: path.to_path_buf(),
                expected: expected.to_owned(),
                found,
            });
        }
        Ok(())
    }

    /// Checks that `path` (a file about to be used) is covered and unchanged.
    pub fn check_file(&self, path: &Path) -> Result<(), IntegrityError> {
        let absolute = std::path::absolute(path).map_err(|e| IntegrityError::io(path, e))?;
        match self.files.get(&absolute) {
            Some((_, expected)) => self.check_digest(&absolute, expected),
            None => Err(IntegrityError::NotCovered { path: absolute }),
        }
    }

    /// Checks every file below a bundle folder about to be loaded.
    pub fn check_folder(&self, folder: &Path) -> Result<(), IntegrityError> {
        for file in files_below(folder)? {
            self.check_file(&file)?;
        }
        Ok(())
    }
}
