//! Checkpoint signing keys and signed checkpoints.
//!
//! Owns the Ed25519 key files, the key id and the [`Checkpoint`] line (its encoding, signing and
//! signature check). The signing key lives outside the log directory; the log never stores
//! secret material. It must not decide *when* checkpoints are written (the store does that).
//!
//! # Key files
//! Secret key: a text file of two lines, `portcullis-audit-ed25519-secret-v1` and the 32-byte
//! Ed25519 seed in lower-case hex, written with mode 0600. Public key: the same with
//! `portcullis-audit-ed25519-public-v1` and the 32-byte public key. `key_id` is the first 16 hex
//! characters of SHA-256 of the public key bytes.

use std::path::Path;

use ed25519_dalek::Signer;
use serde::{Deserialize, Serialize};

use crate::AuditError;
use crate::record::{Hash, format_ts, push_hex, write_str};

const SECRET_HEADER: &str = "portcullis-audit-ed25519-secret-v1";
const PUBLIC_HEADER: &str = "portcullis-audit-ed25519-public-v1";
const SIGNING_DOMAIN: &[u8] = b"portcullis-audit-checkpoint-v1\n";

/// The checkpoint signing key (secret).
#[derive(Clone)]
pub struct SigningKey {
    inner: ed25519_dalek::SigningKey,
    key_id: String,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("SigningKey")
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

/// The public half, used by verifiers.
#[derive(Clone, PartialEq, Eq)]
pub struct VerifyingKey {
    inner: ed25519_dalek::VerifyingKey,
    key_id: String,
}

impl std::fmt::Debug for VerifyingKey {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("VerifyingKey")
            .field("key_id", &self.key_id)
            .finish()
    }
}

fn key_id_of(public: &ed25519_dalek::VerifyingKey) -> String {
    let digest = crate::record::hash_line(public.as_bytes());
    hex::encode(&digest[..8])
}

/// Generates a new signing key from the operating system's random source.
pub fn generate_key() -> Result<SigningKey, AuditError> {
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).map_err(|error| AuditError::Key {
        reason: format!("no random source: {error}"),
    })?;
    Ok(SigningKey::from_seed(seed))
}

impl SigningKey {
    /// A key from its 32-byte seed.
    pub fn from_seed(seed: [u8; 32]) -> SigningKey {
        let inner = ed25519_dalek::SigningKey::from_bytes(&seed);
        let key_id = key_id_of(&inner.verifying_key());
        SigningKey { inner, key_id }
    }

    /// The public key.
    pub fn verifying_key(&self) -> VerifyingKey {
        VerifyingKey {
            inner: self.inner.verifying_key(),
            key_id: self.key_id.clone(),
        }
    }

    /// Short id of the public key.
    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    /// Loads a secret key file (see the module docs for the format).
    pub fn load(path: &Path) -> Result<SigningKey, AuditError> {
        let seed = read_key_file(path, SECRET_HEADER)?;
        Ok(SigningKey::from_seed(seed))
    }

    /// Writes the secret key file (mode 0600 on Unix), failing if it exists.
    pub fn save(&self, path: &Path) -> Result<(), AuditError> {
        let mut text = format!("{SECRET_HEADER}\n");
        push_hex(&mut text, &self.inner.to_bytes());
        text.push('\n');
        write_new_file(path, text.as_bytes(), true)
    }

    fn sign(&self, message: &[u8]) -> [u8; 64] {
        self.inner.sign(message).to_bytes()
    }
}

impl VerifyingKey {
    /// A key from its 32 bytes.
    pub fn from_bytes(bytes: &[u8; 32]) -> Result<VerifyingKey, AuditError> {
        let inner =
            ed25519_dalek::VerifyingKey::from_bytes(bytes).map_err(|error| AuditError::Key {
                reason: format!("invalid public key: {error}"),
            })?;
        let key_id = key_id_of(&inner);
        Ok(VerifyingKey { inner, key_id })
    }

    /// The 32 public key bytes.
    pub fn to_bytes(&self) -> [u8; 32] {
        self.inner.to_bytes()
    }

    /// Short id of the key.
    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    /// Loads a public key file.
    pub fn load(path: &Path) -> Result<VerifyingKey, AuditError> {
        let bytes = read_key_file(path, PUBLIC_HEADER)?;
        VerifyingKey::from_bytes(&bytes)
    }

    /// Writes the public key file, failing if it exists.
    pub fn save(&self, path: &Path) -> Result<(), AuditError> {
        let mut text = format!("{PUBLIC_HEADER}\n");
        push_hex(&mut text, &self.to_bytes());
        text.push('\n');
        write_new_file(path, text.as_bytes(), false)
    }
}

fn read_key_file(path: &Path, header: &str) -> Result<[u8; 32], AuditError> {
    let text = std::fs::read_to_string(path).map_err(|source| AuditError::io(path, source))?;
    let mut lines = text.lines();
    if lines.next() != Some(header) {
        return Err(AuditError::Key {
            reason: format!("{}: first line must be `{header}`", path.display()),
        });
    }
    let mut bytes = [0u8; 32];
    let body = lines.next().unwrap_or("").trim();
    hex::decode_to_slice(body, &mut bytes).map_err(|_| AuditError::Key {
        reason: format!("{}: second line must be 64 hex characters", path.display()),
    })?;
    Ok(bytes)
}

fn write_new_file(path: &Path, bytes: &[u8], secret: bool) -> Result<(), AuditError> {
    use std::io::Write as _;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(if secret { 0o600 } else { 0o644 });
    }
    #[cfg(not(unix))]
    let _ = secret;
    let mut file = options
        .open(path)
        .map_err(|source| AuditError::io(path, source))?;
    file.write_all(bytes)
        .map_err(|source| AuditError::io(path, source))?;
    file.sync_all()
        .map_err(|source| AuditError::io(path, source))
}

/// A signed statement that the tenant's chain had `hash` at `seq`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Checkpoint {
    /// Always `checkpoint`.
    pub kind: CheckpointKind,
    /// Tenant id.
    pub tenant: String,
    /// Sequence number of the record covered (0 for an empty chain).
    pub seq: u64,
    /// Hex SHA-256 of that record's canonical encoding (zeros for seq 0).
    pub hash: String,
    /// When the checkpoint was made (RFC 3339 UTC, microseconds).
    pub ts: String,
    /// Id of the signing key.
    pub key_id: String,
    /// Hex Ed25519 signature over the domain string and the line without `signature`.
    pub signature: String,
}

/// The `kind` of a checkpoint line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckpointKind {
    /// The only value.
    Checkpoint,
}

/// Why a checkpoint does not check out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckpointFault {
    /// Signed by a key other than the one given to the verifier.
    WrongKey,
    /// The signature does not match the content (content altered or signature forged).
    BadSignature,
}

impl Checkpoint {
    /// Makes and signs a checkpoint.
    pub fn sign(
        key: &SigningKey,
        tenant: &str,
        seq: u64,
        hash: &Hash,
        ts: jiff::Timestamp,
    ) -> Checkpoint {
        let mut checkpoint = Checkpoint {
            kind: CheckpointKind::Checkpoint,
            tenant: tenant.to_owned(),
            seq,
            hash: hex::encode(hash),
            ts: format_ts(ts),
            key_id: key.key_id().to_owned(),
            signature: String::new(),
        };
        let mut message = SIGNING_DOMAIN.to_vec();
        message.extend_from_slice(checkpoint.unsigned_encoding().as_bytes());
        checkpoint.signature = hex::encode(key.sign(&message));
        checkpoint
    }

    fn unsigned_encoding(&self) -> String {
        let mut out = String::with_capacity(200);
        out.push_str("{\"kind\":\"checkpoint\",\"tenant\":");
        write_str(&mut out, &self.tenant);
        out.push_str(",\"seq\":");
        out.push_str(&self.seq.to_string());
        out.push_str(",\"hash\":");
        write_str(&mut out, &self.hash);
        out.push_str(",\"ts\":");
        write_str(&mut out, &self.ts);
        out.push_str(",\"key_id\":");
        write_str(&mut out, &self.key_id);
        out
    }

    /// The line written to the log (without newline).
    pub fn encode(&self) -> String {
        let mut out = self.unsigned_encoding();
        out.push_str(",\"signature\":");
        write_str(&mut out, &self.signature);
        out.push('}');
        out
    }

    /// Parses a checkpoint line.
    pub fn from_line(line: &[u8]) -> Result<Checkpoint, AuditError> {
        serde_json::from_slice(line).map_err(|error| AuditError::Malformed {
            reason: error.to_string(),
        })
    }

    /// The covered hash as bytes, if well-formed.
    pub fn hash_bytes(&self) -> Option<Hash> {
        let mut hash = [0u8; 32];
        hex::decode_to_slice(&self.hash, &mut hash).ok()?;
        Some(hash)
    }

    /// Checks the signature with `key`.
    pub fn check(&self, key: &VerifyingKey) -> Result<(), CheckpointFault> {
        if self.key_id != key.key_id {
            return Err(CheckpointFault::WrongKey);
        }
        let mut bytes = [0u8; 64];
        hex::decode_to_slice(&self.signature, &mut bytes)
            .map_err(|_| CheckpointFault::BadSignature)?;
        let signature = ed25519_dalek::Signature::from_bytes(&bytes);
        let mut message = SIGNING_DOMAIN.to_vec();
        message.extend_from_slice(self.unsigned_encoding().as_bytes());
        key.inner
            .verify_strict(&message, &signature)
            .map_err(|_| CheckpointFault::BadSignature)
    }
}
