//! Per-tenant field encryption (SPEC.md C4).
//!
//! This module owns the master [`KeyRing`], the derivation of one AES-256-GCM key per tenant and
//! master key, and the ciphertext text format. It must never write a key into a log, a `Debug`
//! string, an error message or the database; the ring is loaded from a file or an environment
//! variable (see [`KeyRing::parse`]) and lives only in memory.
//!
//! # Construction
//! - **Key derivation**: HKDF-SHA256 (RFC 5869) with the 32-byte master key as input keying
//!   material, the fixed salt [`HKDF_SALT`] (an application context string: it separates these
//!   keys from anything else a master key might ever be used for) and the tenant id's bytes as
//!   `info`, expanded to 32 bytes: the tenant's AES-256-GCM key for that master key.
//! - **Encryption**: AES-256-GCM with a fresh random 96-bit nonce from the operating system for
//!   every value, and associated data that binds the key id, the tenant and the field (layout
//!   below), so a ciphertext copied to another tenant, another field or relabelled with another
//!   key id fails authentication.
//! - **Text format**: `v1:<key-id>:<base64(nonce ‖ ciphertext ‖ tag)>`, standard base64 alphabet
//!   with padding. Key ids are `^[A-Za-z0-9_-]{1,32}$`, so the text never contains a second `:`
//!   inside the key id.
//! - **Associated data**: the ASCII bytes `portcullis-field-v1`, then three length-prefixed parts,
//!   each a 4-byte big-endian length followed by the bytes: the key id, the tenant id, the field
//!   name. The length prefixes make the encoding injective, so no choice of tenant and field can
//!   collide with another (`("ab", "c")` and `("a", "bc")` differ).
//!
//! Random nonces are safe for about 2³² encryptions under one key; because every tenant has its
//! own key per master key, that budget is per tenant, and rotating the master key resets it.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, PoisonError, RwLock};

use aes_gcm::Aes256Gcm;
use aes_gcm::aead::{AeadInOut, KeyInit, Nonce};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use hkdf::Hkdf;
use sha2::Sha256;
use zeroize::Zeroizing;

use crate::TenantId;

/// The version tag that starts every ciphertext this build writes.
pub const CIPHERTEXT_VERSION: &str = "v1";

/// The HKDF salt: a fixed application context string (see the module documentation).
pub const HKDF_SALT: &[u8] = b"portcullis/tenant-field-key/v1";

/// The prefix of the associated data (see the module documentation).
const AAD_CONTEXT: &[u8] = b"portcullis-field-v1";

/// Length of a master key and of a derived key, in bytes.
pub const KEY_LEN: usize = 32;

/// Length of the AES-GCM nonce, in bytes (96 bits).
pub const NONCE_LEN: usize = 12;

/// Length of the AES-GCM authentication tag, in bytes.
pub const TAG_LEN: usize = 16;

/// How many derived tenant keys the ring keeps. When the cache is full it is emptied and refills
/// with the tenants in use; a derivation costs a few microseconds, so this only bounds memory.
pub const DERIVED_KEY_CACHE_CAPACITY: usize = 4096;

/// Longest key id, in characters.
pub const KEY_ID_MAX_LEN: usize = 32;

// ---------------------------------------------------------------------------------------------
// Key ids and master keys
// ---------------------------------------------------------------------------------------------

/// The name of a master key, written into every ciphertext: `^[A-Za-z0-9_-]{1,32}$`.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyId(Box<str>);

impl KeyId {
    /// Validates `value` as a key id.
    pub fn new(value: &str) -> Result<Self, InvalidKeyId> {
        if is_key_id(value) {
            Ok(KeyId(value.into()))
        } else {
            Err(InvalidKeyId {
                value: value.chars().take(64).collect(),
            })
        }
    }

    /// The id as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

fn is_key_id(value: &str) -> bool {
    (1..=KEY_ID_MAX_LEN).contains(&value.len())
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

impl fmt::Debug for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Why a string is not a key id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid key id {value:?}: a key id is 1 to 32 characters of ASCII letters, digits, '_' and '-'"
)]
pub struct InvalidKeyId {
    /// The rejected value (truncated to 64 characters).
    pub value: String,
}

/// A 32-byte master key. Its bytes are wiped from memory when it is dropped and never shown by
/// `Debug`.
#[derive(Clone)]
pub struct MasterKey(Zeroizing<[u8; KEY_LEN]>);

/// The text encodings a master key may be written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyEncoding {
    /// 64 hexadecimal digits (either case).
    Hex,
    /// 44 characters of standard base64 (the trailing `=` may be left out).
    Base64,
}

impl fmt::Display for KeyEncoding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            KeyEncoding::Hex => "hex",
            KeyEncoding::Base64 => "base64",
        })
    }
}

/// Why a text is not a master key. The message never repeats the key text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidMasterKey {
    /// The text is not valid in its encoding.
    #[error("the key is not valid {encoding}: {problem}")]
    BadEncoding {
        /// The encoding the text was read as.
        encoding: KeyEncoding,
        /// What is wrong, without quoting the key.
        problem: String,
    },
    /// The text decodes to the wrong number of bytes.
    #[error(
        "the key is {actual} bytes long, but a master key is exactly 32 bytes (64 hex digits, or 44 base64 characters)"
    )]
    WrongLength {
        /// The decoded length.
        actual: usize,
    },
}

impl MasterKey {
    /// A master key from its 32 bytes.
    pub fn from_bytes(bytes: [u8; KEY_LEN]) -> Self {
        MasterKey(Zeroizing::new(bytes))
    }

    /// A master key from 64 hexadecimal digits (surrounding whitespace is ignored).
    pub fn from_hex(text: &str) -> Result<Self, InvalidMasterKey> {
        let decoded = Zeroizing::new(hex::decode(text.trim()).map_err(|error| {
            InvalidMasterKey::BadEncoding {
                encoding: KeyEncoding::Hex,
                problem: match error {
                    hex::FromHexError::InvalidHexCharacter { index, .. } => {
                        format!("character {} is not a hexadecimal digit", index + 1)
                    }
                    hex::FromHexError::OddLength => "it has an odd number of digits".to_owned(),
                    hex::FromHexError::InvalidStringLength => "it has the wrong length".to_owned(),
                },
            }
        })?);
        Self::from_slice(&decoded)
    }

    /// A master key from standard base64 (padding optional; surrounding whitespace is ignored).
    pub fn from_base64(text: &str) -> Result<Self, InvalidMasterKey> {
        let text = text.trim();
        let engine = if text.ends_with('=') {
            &STANDARD
        } else {
            &STANDARD_NO_PAD
        };
        let decoded =
            Zeroizing::new(
                engine
                    .decode(text)
                    .map_err(|error| InvalidMasterKey::BadEncoding {
                        encoding: KeyEncoding::Base64,
                        problem: describe_base64_error(&error),
                    })?,
            );
        Self::from_slice(&decoded)
    }

    /// A master key written as `hex:<64 hex digits>` or `base64:<base64>`; without a prefix, 64
    /// hexadecimal digits are read as hex and anything else as base64 (the two cannot be confused:
    /// 32 bytes are 64 hex digits but 43 or 44 base64 characters).
    pub fn parse(text: &str) -> Result<Self, InvalidMasterKey> {
        let text = text.trim();
        if let Some(rest) = text.strip_prefix("hex:") {
            Self::from_hex(rest)
        } else if let Some(rest) = text.strip_prefix("base64:") {
            Self::from_base64(rest)
        } else if text.len() == 2 * KEY_LEN && text.bytes().all(|b| b.is_ascii_hexdigit()) {
            Self::from_hex(text)
        } else {
            Self::from_base64(text)
        }
    }

    fn from_slice(bytes: &[u8]) -> Result<Self, InvalidMasterKey> {
        let mut key = Zeroizing::new([0_u8; KEY_LEN]);
        if bytes.len() != KEY_LEN {
            return Err(InvalidMasterKey::WrongLength {
                actual: bytes.len(),
            });
        }
        key.copy_from_slice(bytes);
        Ok(MasterKey(key))
    }
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MasterKey(<redacted>)")
    }
}

fn describe_base64_error(error: &base64::DecodeError) -> String {
    match error {
        base64::DecodeError::InvalidByte(offset, _) => {
            format!("character {} is not a base64 character", offset + 1)
        }
        base64::DecodeError::InvalidLength(_) => "it has the wrong number of characters".to_owned(),
        base64::DecodeError::InvalidLastSymbol(offset, _) => {
            format!("character {} is not a valid last character", offset + 1)
        }
        base64::DecodeError::InvalidPadding => "its '=' padding is wrong".to_owned(),
    }
}

// ---------------------------------------------------------------------------------------------
// The key ring
// ---------------------------------------------------------------------------------------------

/// Why a key ring could not be built or loaded.
#[derive(Debug, thiserror::Error)]
pub enum KeyRingError {
    /// A key id is malformed.
    #[error("{location}{source}")]
    InvalidKeyId {
        /// Where in the text (empty when built from values).
        location: Location,
        /// The problem.
        #[source]
        source: InvalidKeyId,
    },
    /// A key's text is not a 32-byte key.
    #[error("{location}key {key_id}: {source}")]
    InvalidKey {
        /// Where in the text (empty when built from values).
        location: Location,
        /// The key's id.
        key_id: String,
        /// The problem.
        #[source]
        source: InvalidMasterKey,
    },
    /// Two keys share an id.
    #[error("{location}key id {key_id:?} is defined twice; every key needs its own id")]
    DuplicateKeyId {
        /// Where in the text (empty when built from values).
        location: Location,
        /// The repeated id.
        key_id: String,
    },
    /// An entry is not `name = value`.
    #[error("{location}{problem}")]
    Syntax {
        /// Where in the text.
        location: Location,
        /// What is wrong and what is expected.
        problem: &'static str,
    },
    /// The text names no current key.
    #[error(
        "the key ring names no current key: add `current = <key id>` naming the key for new writes"
    )]
    MissingCurrent,
    /// The ring holds no keys.
    #[error("the key ring holds no keys: add at least one `<key id> = hex:<64 hex digits>`")]
    Empty,
    /// The current key id is not one of the ring's keys.
    #[error("the current key id {current:?} is not in the key ring (it holds {known})")]
    UnknownCurrent {
        /// The id named as current.
        current: String,
        /// The ids the ring holds, comma-separated.
        known: String,
    },
    /// The key file could not be read.
    #[error("cannot read the key file {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The environment variable is unset or not Unicode.
    #[error("environment variable {name}: {problem}")]
    Environment {
        /// The variable's name.
        name: String,
        /// What is wrong.
        problem: &'static str,
    },
}

/// A position in key-ring text, shown as a prefix of error messages.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Location {
    /// 1-based line, 0 when the error is not tied to text.
    pub line: usize,
    /// 1-based entry within the line (entries are separated by `;`), 0 when not tied to text.
    pub entry: usize,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.line, self.entry) {
            (0, _) => Ok(()),
            (line, 0 | 1) => write!(f, "line {line}: "),
            (line, entry) => write!(f, "line {line}, entry {entry}: "),
        }
    }
}

/// Master keys by key id, plus the id used for new writes.
///
/// Keys that are not current stay readable, so values written under them can still be decrypted
/// and re-encrypted under the current key ([`KeyRing::reencrypt`]); remove an old key only after
/// every value that names it has been rotated.
pub struct KeyRing {
    keys: Vec<(KeyId, MasterKey)>,
    current: usize,
    derived: DerivedKeys,
}

impl KeyRing {
    /// A key ring from keys and the id of the key for new writes.
    pub fn new(
        current: &KeyId,
        keys: impl IntoIterator<Item = (KeyId, MasterKey)>,
    ) -> Result<Self, KeyRingError> {
        let mut ring: Vec<(KeyId, MasterKey)> = Vec::new();
        for (id, key) in keys {
            if ring.iter().any(|(known, _)| *known == id) {
                return Err(KeyRingError::DuplicateKeyId {
                    location: Location::default(),
                    key_id: id.as_str().to_owned(),
                });
            }
            ring.push((id, key));
        }
        Self::assemble(current, ring)
    }

    fn assemble(current: &KeyId, keys: Vec<(KeyId, MasterKey)>) -> Result<Self, KeyRingError> {
        if keys.is_empty() {
            return Err(KeyRingError::Empty);
        }
        let Some(index) = keys.iter().position(|(id, _)| id == current) else {
            return Err(KeyRingError::UnknownCurrent {
                current: current.as_str().to_owned(),
                known: keys
                    .iter()
                    .map(|(id, _)| id.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            });
        };
        Ok(KeyRing {
            keys,
            current: index,
            derived: DerivedKeys::default(),
        })
    }

    /// A ring holding one key, which is current.
    pub fn single(id: KeyId, key: MasterKey) -> Self {
        KeyRing {
            keys: vec![(id, key)],
            current: 0,
            derived: DerivedKeys::default(),
        }
    }

    /// Parses key-ring text, the format of both the key file and the environment variable.
    ///
    /// The text is a list of `name = value` entries, separated by line breaks or by `;` (so the
    /// whole ring fits on one line of an environment variable). Blank entries and lines whose first
    /// non-blank character is `#` are ignored. One entry is `current = <key id>`, naming the key
    /// for new writes; every other entry is `<key id> = <key>`, where the key is 32 bytes written as
    /// `hex:<64 hex digits>` or `base64:<standard base64>` (see [`MasterKey::parse`]).
    ///
    /// A key file:
    /// ```text
    /// # Portcullis field-encryption master keys; `current` encrypts new values.
    /// current = k2026
    /// k2026 = hex:000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f
    /// k2025 = base64:ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8=
    /// ```
    /// The same ring in an environment variable:
    /// ```text
    /// PORTCULLIS_MASTER_KEYS='current=k2026; k2026=hex:0001…1e1f; k2025=base64:ICEi…Pj8='
    /// ```
    /// Generate a key with `openssl rand -hex 32` (or `openssl rand -base64 32`).
    pub fn parse(text: &str) -> Result<Self, KeyRingError> {
        let mut current: Option<(KeyId, Location)> = None;
        let mut keys: Vec<(KeyId, MasterKey)> = Vec::new();
        for (line_index, line) in text.lines().enumerate() {
            if line.trim_start().starts_with('#') {
                continue;
            }
            for (entry_index, entry) in line.split(';').enumerate() {
                let location = Location {
                    line: line_index + 1,
                    entry: entry_index + 1,
                };
                let entry = entry.trim();
                if entry.is_empty() {
                    continue;
                }
                let Some((name, value)) = entry.split_once('=') else {
                    return Err(KeyRingError::Syntax {
                        location,
                        problem: "expected `current = <key id>` or `<key id> = hex:<64 hex digits>`",
                    });
                };
                let (name, value) = (name.trim(), value.trim());
                if name == "current" {
                    if current.is_some() {
                        return Err(KeyRingError::Syntax {
                            location,
                            problem: "`current` is given twice; name exactly one key for new writes",
                        });
                    }
                    let id = KeyId::new(value)
                        .map_err(|source| KeyRingError::InvalidKeyId { location, source })?;
                    current = Some((id, location));
                    continue;
                }
                let id = KeyId::new(name)
                    .map_err(|source| KeyRingError::InvalidKeyId { location, source })?;
                if keys.iter().any(|(known, _)| *known == id) {
                    return Err(KeyRingError::DuplicateKeyId {
                        location,
                        key_id: id.as_str().to_owned(),
                    });
                }
                let key = MasterKey::parse(value).map_err(|source| KeyRingError::InvalidKey {
                    location,
                    key_id: id.as_str().to_owned(),
                    source,
                })?;
                keys.push((id, key));
            }
        }
        if keys.is_empty() {
            return Err(KeyRingError::Empty);
        }
        let Some((current, _)) = current else {
            return Err(KeyRingError::MissingCurrent);
        };
        Self::assemble(&current, keys)
    }

    /// Reads and parses a key file (format: [`KeyRing::parse`]).
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self, KeyRingError> {
        let path = path.as_ref();
        let text =
            Zeroizing::new(
                std::fs::read_to_string(path).map_err(|source| KeyRingError::Read {
                    path: path.to_owned(),
                    source,
                })?,
            );
        Self::parse(&text)
    }

    /// Reads and parses an environment variable (format: [`KeyRing::parse`]).
    pub fn from_env(name: &str) -> Result<Self, KeyRingError> {
        let text =
            Zeroizing::new(
                std::env::var(name).map_err(|error| KeyRingError::Environment {
                    name: name.to_owned(),
                    problem: match error {
                        std::env::VarError::NotPresent => "it is not set",
                        std::env::VarError::NotUnicode(_) => "it is not valid Unicode",
                    },
                })?,
            );
        Self::parse(&text)
    }

    /// The id of the key used for new writes.
    pub fn current_key_id(&self) -> &KeyId {
        &self.keys[self.current].0
    }

    /// Every key id in the ring, in the order given.
    pub fn key_ids(&self) -> impl Iterator<Item = &KeyId> {
        self.keys.iter().map(|(id, _)| id)
    }

    /// Whether the ring holds a key with this id.
    pub fn contains(&self, key_id: &str) -> bool {
        self.index_of(key_id).is_some()
    }

    fn index_of(&self, key_id: &str) -> Option<usize> {
        self.keys.iter().position(|(id, _)| id.as_str() == key_id)
    }

    /// Encrypts `plaintext` as the value of `field` for `tenant`, under the current key.
    pub fn encrypt(
        &self,
        tenant: &TenantId,
        field: &str,
        plaintext: &[u8],
    ) -> Result<String, CryptoError> {
        self.encrypt_with(self.current, tenant, field, plaintext)
    }

    fn encrypt_with(
        &self,
        key_index: usize,
        tenant: &TenantId,
        field: &str,
        plaintext: &[u8],
    ) -> Result<String, CryptoError> {
        let key_id = &self.keys[key_index].0;
        let cipher = self.cipher(key_index, tenant)?;
        let aad = associated_data(key_id.as_str(), tenant.as_str(), field)?;
        let mut nonce = [0_u8; NONCE_LEN];
        getrandom::fill(&mut nonce).map_err(|source| CryptoError::Randomness { source })?;

        let mut payload = Vec::with_capacity(NONCE_LEN + plaintext.len() + TAG_LEN);
        payload.extend_from_slice(&nonce);
        payload.extend_from_slice(plaintext);
        let tag = cipher
            .encrypt_inout_detached(
                &Nonce::<Aes256Gcm>::from(nonce),
                &aad,
                (&mut payload[NONCE_LEN..]).into(),
            )
            .map_err(|_| CryptoError::TooLong)?;
        payload.extend_from_slice(&tag);

        let mut text = String::with_capacity(
            CIPHERTEXT_VERSION.len() + key_id.as_str().len() + 2 + payload.len().div_ceil(3) * 4,
        );
        text.push_str(CIPHERTEXT_VERSION);
        text.push(':');
        text.push_str(key_id.as_str());
        text.push(':');
        STANDARD.encode_string(&payload, &mut text);
        Ok(text)
    }

    /// Encrypts a text value (see [`KeyRing::encrypt`]).
    pub fn encrypt_str(
        &self,
        tenant: &TenantId,
        field: &str,
        plaintext: &str,
    ) -> Result<String, CryptoError> {
        self.encrypt(tenant, field, plaintext.as_bytes())
    }

    /// Decrypts a value written by [`KeyRing::encrypt`] for the same tenant and field, under any key
    /// still in the ring.
    pub fn decrypt(
        &self,
        tenant: &TenantId,
        field: &str,
        ciphertext: &str,
    ) -> Result<Vec<u8>, CryptoError> {
        let parsed = parse_ciphertext(ciphertext)?;
        let key_index = self
            .index_of(parsed.key_id)
            .ok_or_else(|| CryptoError::UnknownKeyId {
                key_id: parsed.key_id.to_owned(),
            })?;
        let mut payload = STANDARD
            .decode(parsed.payload)
            .map_err(|_| CryptoError::Malformed {
                problem: "the payload is not valid standard base64",
            })?;
        if payload.len() < NONCE_LEN + TAG_LEN {
            return Err(CryptoError::Malformed {
                problem: "the payload is shorter than a nonce and a tag (28 bytes)",
            });
        }
        let cipher = self.cipher(key_index, tenant)?;
        let aad = associated_data(parsed.key_id, tenant.as_str(), field)?;
        let authentication_failed = || CryptoError::AuthenticationFailed {
            key_id: parsed.key_id.to_owned(),
        };

        let tag_start = payload.len() - TAG_LEN;
        let (head, tag) = payload.split_at_mut(tag_start);
        let (nonce, body) = head.split_at_mut(NONCE_LEN);
        let nonce: [u8; NONCE_LEN] = (&*nonce).try_into().map_err(|_| authentication_failed())?;
        let tag: [u8; TAG_LEN] = (&*tag).try_into().map_err(|_| authentication_failed())?;
        cipher
            .decrypt_inout_detached(
                &Nonce::<Aes256Gcm>::from(nonce),
                &aad,
                body.into(),
                &tag.into(),
            )
            .map_err(|_| authentication_failed())?;
        payload.truncate(tag_start);
        payload.drain(..NONCE_LEN);
        Ok(payload)
    }

    /// Decrypts a text value (see [`KeyRing::decrypt`]).
    pub fn decrypt_string(
        &self,
        tenant: &TenantId,
        field: &str,
        ciphertext: &str,
    ) -> Result<String, CryptoError> {
        String::from_utf8(self.decrypt(tenant, field, ciphertext)?)
            .map_err(|_| CryptoError::NotUtf8)
    }

    /// Whether `ciphertext` was written under a key other than the current one.
    ///
    /// Errors when the text is not a ciphertext or names a key the ring does not hold (it could
    /// then not be re-encrypted).
    pub fn needs_rotation(&self, ciphertext: &str) -> Result<bool, CryptoError> {
        let parsed = parse_ciphertext(ciphertext)?;
        match self.index_of(parsed.key_id) {
            Some(index) => Ok(index != self.current),
            None => Err(CryptoError::UnknownKeyId {
                key_id: parsed.key_id.to_owned(),
            }),
        }
    }

    /// Decrypts `ciphertext` with the key it names and encrypts the plaintext again under the
    /// current key (with a fresh nonce).
    pub fn reencrypt(
        &self,
        tenant: &TenantId,
        field: &str,
        ciphertext: &str,
    ) -> Result<String, CryptoError> {
        let plaintext = Zeroizing::new(self.decrypt(tenant, field, ciphertext)?);
        self.encrypt(tenant, field, &plaintext)
    }

    /// The tenant's AES-256-GCM cipher under one master key, derived once and cached.
    fn cipher(&self, key_index: usize, tenant: &TenantId) -> Result<Arc<Aes256Gcm>, CryptoError> {
        let cache_key = (key_index, tenant.clone());
        if let Some(cipher) = self
            .derived
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&cache_key)
        {
            return Ok(Arc::clone(cipher));
        }
        let mut key = Zeroizing::new([0_u8; KEY_LEN]);
        hkdf_sha256(
            Some(HKDF_SALT),
            &*self.keys[key_index].1.0,
            tenant.as_str().as_bytes(),
            &mut *key,
        )
        .map_err(|_| CryptoError::Derivation)?;
        let cipher =
            Arc::new(Aes256Gcm::new_from_slice(&*key).map_err(|_| CryptoError::Derivation)?);
        let mut derived = self.derived.write().unwrap_or_else(PoisonError::into_inner);
        if derived.len() >= DERIVED_KEY_CACHE_CAPACITY {
            derived.clear();
        }
        derived.insert(cache_key, Arc::clone(&cipher));
        Ok(cipher)
    }
}

impl fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyRing")
            .field(
                "key_ids",
                &self.keys.iter().map(|(id, _)| id).collect::<Vec<_>>(),
            )
            .field("current", self.current_key_id())
            .finish_non_exhaustive()
    }
}

type DerivedKeys = RwLock<HashMap<(usize, TenantId), Arc<Aes256Gcm>>>;

/// HKDF-SHA256 (RFC 5869): extract with `salt` from `ikm`, expand with `info` into `okm`.
/// Returns the pseudorandom key of the extract step. This is the one place key derivation happens;
/// the RFC 5869 test vectors exercise it directly.
fn hkdf_sha256(
    salt: Option<&[u8]>,
    ikm: &[u8],
    info: &[u8],
    okm: &mut [u8],
) -> Result<Zeroizing<[u8; 32]>, hkdf::InvalidLength> {
    let (prk, hkdf) = Hkdf::<Sha256>::extract(salt, ikm);
    hkdf.expand(info, okm)?;
    let mut out = Zeroizing::new([0_u8; 32]);
    out.copy_from_slice(&prk);
    Ok(out)
}

/// The associated data for one value (layout in the module documentation).
fn associated_data(key_id: &str, tenant: &str, field: &str) -> Result<Vec<u8>, CryptoError> {
    let mut aad =
        Vec::with_capacity(AAD_CONTEXT.len() + 12 + key_id.len() + tenant.len() + field.len());
    aad.extend_from_slice(AAD_CONTEXT);
    for part in [key_id, tenant, field] {
        let length = u32::try_from(part.len()).map_err(|_| CryptoError::TooLong)?;
        aad.extend_from_slice(&length.to_be_bytes());
        aad.extend_from_slice(part.as_bytes());
    }
    Ok(aad)
}

struct ParsedCiphertext<'a> {
    key_id: &'a str,
    payload: &'a str,
}

fn parse_ciphertext(text: &str) -> Result<ParsedCiphertext<'_>, CryptoError> {
    let Some((version, rest)) = text.split_once(':') else {
        return Err(CryptoError::Malformed {
            problem: "it has no `:`-separated version and key id",
        });
    };
    if version != CIPHERTEXT_VERSION {
        if !version.is_empty()
            && version.len() <= 8
            && version.bytes().all(|b| b.is_ascii_alphanumeric())
        {
            return Err(CryptoError::UnsupportedVersion {
                version: version.to_owned(),
            });
        }
        return Err(CryptoError::Malformed {
            problem: "it does not start with a version such as `v1`",
        });
    }
    let Some((key_id, payload)) = rest.split_once(':') else {
        return Err(CryptoError::Malformed {
            problem: "it has no key id after the version",
        });
    };
    if !is_key_id(key_id) {
        return Err(CryptoError::Malformed {
            problem: "the key id is not 1 to 32 characters of ASCII letters, digits, '_' and '-'",
        });
    }
    Ok(ParsedCiphertext { key_id, payload })
}

/// Why a value could not be encrypted or decrypted. Messages never contain key material or
/// plaintext.
#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    /// The text is not a ciphertext of the form `v1:<key-id>:<base64>`.
    #[error("malformed ciphertext: {problem}; expected `v1:<key id>:<base64>`")]
    Malformed {
        /// What is wrong.
        problem: &'static str,
    },
    /// The ciphertext has a version this build cannot read.
    #[error("unsupported ciphertext version {version:?}; this build reads `v1`")]
    UnsupportedVersion {
        /// The version found (at most 8 letters and digits).
        version: String,
    },
    /// The ciphertext names a key the ring does not hold.
    #[error(
        "ciphertext key id {key_id:?} is not in the key ring; add that key (as an old, non-current key) to read it"
    )]
    UnknownKeyId {
        /// The key id found.
        key_id: String,
    },
    /// AES-GCM authentication failed.
    #[error(
        "ciphertext failed authentication under key {key_id:?}: it was altered, belongs to another tenant or field, or the key with that id is not the one that wrote it"
    )]
    AuthenticationFailed {
        /// The key id the ciphertext names.
        key_id: String,
    },
    /// The value or a name is too long for AES-GCM.
    #[error("the value is too long to encrypt")]
    TooLong,
    /// The decrypted bytes are not UTF-8 (asked for as text).
    #[error("the decrypted value is not UTF-8 text")]
    NotUtf8,
    /// The operating system's random number generator failed.
    #[error("the operating system's random number generator failed: {source}")]
    Randomness {
        /// The underlying error.
        source: getrandom::Error,
    },
    /// Key derivation failed (cannot happen with 32-byte keys; kept so no path panics).
    #[error("tenant key derivation failed")]
    Derivation,
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashSet;

    fn tenant(id: &str) -> TenantId {
        TenantId::new(id).unwrap()
    }

    fn ring() -> KeyRing {
        KeyRing::parse(
            "current = k1\nk1 = hex:000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f",
        )
        .unwrap()
    }

    // RFC 5869, appendix A, test cases 1 to 3 (HKDF-SHA256), through the derivation function.
    #[test]
    fn rfc5869_test_case_1() {
        let ikm = [0x0b_u8; 22];
        let salt: Vec<u8> = (0x00..=0x0c).collect();
        let info: Vec<u8> = (0xf0..=0xf9).collect();
        let mut okm = [0_u8; 42];
        let prk = hkdf_sha256(Some(&salt), &ikm, &info, &mut okm).unwrap();
        assert_eq!(
            hex::encode(*prk),
            "077709362c2e32df0ddc3f0dc47bba6390b6c73bb50f9c3122ec844ad7c2b3e5"
        );
        assert_eq!(
            hex::encode(okm),
            "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865"
        );
    }

    #[test]
    fn rfc5869_test_case_2() {
        let ikm: Vec<u8> = (0x00..=0x4f).collect();
        let salt: Vec<u8> = (0x60..=0xaf).collect();
        let info: Vec<u8> = (0xb0..=0xff).collect();
        let mut okm = [0_u8; 82];
        let prk = hkdf_sha256(Some(&salt), &ikm, &info, &mut okm).unwrap();
        assert_eq!(
            hex::encode(*prk),
            "06a6b88c5853361a06104c9ceb35b45cef760014904671014a193f40c15fc244"
        );
        assert_eq!(
            hex::encode(okm),
            "b11e398dc80327a1c8e7f78c596a49344f012eda2d4efad8a050cc4c19afa97c\
             59045a99cac7827271cb41c65e590e09da3275600c2f09b8367793a9aca3db71\
             cc30c58179ec3e87c14c01d5c1f3434f1d87"
        );
    }

    #[test]
    fn rfc5869_test_case_3() {
        let ikm = [0x0b_u8; 22];
        let expected_prk = "19ef24a32c717b167f33a91d6f648bdf96596776afdb6377ac434c1c293ccb04";
        let expected_okm =
            "8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d9d201395faa4b61a96c8";
        // "salt not provided" and an explicit empty salt are the same construction.
        for salt in [None, Some(&[][..])] {
            let mut okm = [0_u8; 42];
            let prk = hkdf_sha256(salt, &ikm, &[], &mut okm).unwrap();
            assert_eq!(hex::encode(*prk), expected_prk);
            assert_eq!(hex::encode(okm), expected_okm);
        }
    }

    #[test]
    fn tenant_keys_are_hkdf_of_the_master_key_with_the_tenant_as_info() {
        let ring = ring();
        let acme = tenant("acme");
        let ciphertext = ring.encrypt(&acme, "ssn", b"123").unwrap();
        // Rebuild the key independently from the documented construction and decrypt with it.
        let master: Vec<u8> = (0..32).collect();
        let mut key = [0_u8; 32];
        Hkdf::<Sha256>::new(Some(HKDF_SALT), &master)
            .expand(b"acme", &mut key)
            .unwrap();
        let payload = STANDARD
            .decode(ciphertext.strip_prefix("v1:k1:").unwrap())
            .unwrap();
        let (nonce, body) = payload.split_at(NONCE_LEN);
        let nonce: [u8; NONCE_LEN] = nonce.try_into().unwrap();
        let mut aad = b"portcullis-field-v1".to_vec();
        for part in ["k1", "acme", "ssn"] {
            aad.extend_from_slice(&(part.len() as u32).to_be_bytes());
            aad.extend_from_slice(part.as_bytes());
        }
        let cipher = Aes256Gcm::new_from_slice(&key).unwrap();
        let plaintext = aes_gcm::aead::Aead::decrypt(
            &cipher,
            &Nonce::<Aes256Gcm>::from(nonce),
            aes_gcm::aead::Payload {
                msg: body,
                aad: &aad,
            },
        )
        .unwrap();
        assert_eq!(plaintext, b"123");
    }

    #[test]
    fn round_trip_and_format() {
        let ring = ring();
        let acme = tenant("acme");
        let ciphertext = ring.encrypt_str(&acme, "phone", "18912345678").unwrap();
        let parts: Vec<&str> = ciphertext.splitn(3, ':').collect();
        assert_eq!(parts[0], "v1");
        assert_eq!(parts[1], "k1");
        let payload = STANDARD.decode(parts[2]).unwrap();
        assert_eq!(payload.len(), NONCE_LEN + "18912345678".len() + TAG_LEN);
        assert!(!ciphertext.contains("18912345678"));
        assert_eq!(
            ring.decrypt_string(&acme, "phone", &ciphertext).unwrap(),
            "18912345678"
        );
        // Empty values round-trip too.
        let empty = ring.encrypt(&acme, "phone", b"").unwrap();
        assert_eq!(ring.decrypt(&acme, "phone", &empty).unwrap(), b"");
    }

    #[test]
    fn another_tenant_cannot_decrypt() {
        let ring = ring();
        let ciphertext = ring.encrypt(&tenant("acme"), "ssn", b"secret").unwrap();
        let err = ring
            .decrypt(&tenant("globex"), "ssn", &ciphertext)
            .unwrap_err();
        assert!(
            matches!(err, CryptoError::AuthenticationFailed { .. }),
            "{err}"
        );
        assert!(err.to_string().contains("another tenant"), "{err}");
    }

    #[test]
    fn another_field_cannot_decrypt() {
        let ring = ring();
        let acme = tenant("acme");
        let ciphertext = ring.encrypt(&acme, "ssn", b"secret").unwrap();
        let err = ring.decrypt(&acme, "phone", &ciphertext).unwrap_err();
        assert!(
            matches!(err, CryptoError::AuthenticationFailed { .. }),
            "{err}"
        );
    }

    #[test]
    fn associated_data_is_unambiguous() {
        // Same concatenation of tenant and field, different split.
        assert_ne!(
            associated_data("k1", "abc", "def").unwrap(),
            associated_data("k1", "abcd", "ef").unwrap()
        );
        let ring = ring();
        let ciphertext = ring.encrypt(&tenant("abc"), "def", b"x").unwrap();
        assert!(ring.decrypt(&tenant("abcd"), "ef", &ciphertext).is_err());
    }

    #[test]
    fn tampering_with_any_part_of_the_payload_fails() {
        let ring = ring();
        let acme = tenant("acme");
        let ciphertext = ring.encrypt(&acme, "ssn", b"sensitive value").unwrap();
        let payload = STANDARD
            .decode(ciphertext.strip_prefix("v1:k1:").unwrap())
            .unwrap();
        let body_end = payload.len() - TAG_LEN;
        // First and last byte of the nonce, of the ciphertext body and of the tag.
        for index in [
            0,
            NONCE_LEN - 1,
            NONCE_LEN,
            body_end - 1,
            body_end,
            payload.len() - 1,
        ] {
            let mut tampered = payload.clone();
            tampered[index] ^= 0x01;
            let text = format!("v1:k1:{}", STANDARD.encode(&tampered));
            let err = ring.decrypt(&acme, "ssn", &text).unwrap_err();
            assert!(
                matches!(err, CryptoError::AuthenticationFailed { .. }),
                "byte {index}: {err}"
            );
        }
    }

    #[test]
    fn tampering_with_the_header_fails() {
        let ring = KeyRing::parse(&format!(
            "current = k1; k1 = hex:{}; k2 = hex:{}",
            "11".repeat(32),
            "22".repeat(32)
        ))
        .unwrap();
        let acme = tenant("acme");
        let ciphertext = ring.encrypt(&acme, "ssn", b"secret").unwrap();
        let relabelled = ciphertext.replacen("v1:k1:", "v1:k2:", 1);
        assert!(matches!(
            ring.decrypt(&acme, "ssn", &relabelled),
            Err(CryptoError::AuthenticationFailed { .. })
        ));
        let unknown = ciphertext.replacen("v1:k1:", "v1:k9:", 1);
        assert!(matches!(
            ring.decrypt(&acme, "ssn", &unknown),
            Err(CryptoError::UnknownKeyId { key_id }) if key_id == "k9"
        ));
        let version = ciphertext.replacen("v1:", "v2:", 1);
        assert!(matches!(
            ring.decrypt(&acme, "ssn", &version),
            Err(CryptoError::UnsupportedVersion { version }) if version == "v2"
        ));
    }

    #[test]
    fn malformed_and_truncated_input_is_an_error_not_a_panic() {
        let ring = ring();
        let acme = tenant("acme");
        let ciphertext = ring.encrypt(&acme, "ssn", b"secret").unwrap();
        for cut in 0..ciphertext.len() {
            let err = ring.decrypt(&acme, "ssn", &ciphertext[..cut]).unwrap_err();
            assert!(
                matches!(
                    err,
                    CryptoError::Malformed { .. } | CryptoError::AuthenticationFailed { .. }
                ),
                "cut at {cut}: {err}"
            );
        }
        for bad in [
            "",
            "v1",
            "v1:",
            "v1:k1",
            "v1::AAAA",
            "v1:k 1:AAAA",
            "v1:k1:not base64!",
            "v1:k1:AAAA",
            ":k1:AAAA",
            "plain text",
            "v1:k1:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", // 39 characters: bad length
        ] {
            let err = ring.decrypt(&acme, "ssn", bad).unwrap_err();
            assert!(
                matches!(err, CryptoError::Malformed { .. }),
                "{bad:?}: {err}"
            );
        }
        // 28 zero bytes: well-formed, but not authentic.
        let zeros = format!("v1:k1:{}", STANDARD.encode([0_u8; 28]));
        assert!(matches!(
            ring.decrypt(&acme, "ssn", &zeros),
            Err(CryptoError::AuthenticationFailed { .. })
        ));
    }

    #[test]
    fn rotation_keeps_old_keys_readable_and_moves_values_to_the_current_key() {
        let old = KeyRing::parse(&format!("current = old\nold = hex:{}", "aa".repeat(32))).unwrap();
        let acme = tenant("acme");
        let written_before = old.encrypt(&acme, "ssn", b"123-45-6789").unwrap();
        assert!(!old.needs_rotation(&written_before).unwrap());

        let new_key = STANDARD.encode([0xbb_u8; 32]);
        let rotated = KeyRing::parse(&format!(
            "# the new key first, the old one kept readable\ncurrent = new\nnew = base64:{new_key}\nold = hex:{}",
            "aa".repeat(32)
        ))
        .unwrap();
        assert_eq!(rotated.current_key_id().as_str(), "new");
        assert_eq!(
            rotated.decrypt(&acme, "ssn", &written_before).unwrap(),
            b"123-45-6789"
        );
        assert!(rotated.needs_rotation(&written_before).unwrap());

        let moved = rotated.reencrypt(&acme, "ssn", &written_before).unwrap();
        assert!(moved.starts_with("v1:new:"), "{moved}");
        assert!(!rotated.needs_rotation(&moved).unwrap());
        assert_eq!(
            rotated.decrypt(&acme, "ssn", &moved).unwrap(),
            b"123-45-6789"
        );
        // Re-encryption checks the tenant and field like decryption does.
        assert!(
            rotated
                .reencrypt(&tenant("globex"), "ssn", &written_before)
                .is_err()
        );
        // The old ring cannot read what the new key wrote.
        assert!(matches!(
            old.decrypt(&acme, "ssn", &moved),
            Err(CryptoError::UnknownKeyId { .. })
        ));
        assert!(matches!(
            old.needs_rotation(&moved),
            Err(CryptoError::UnknownKeyId { .. })
        ));
        assert!(matches!(
            old.needs_rotation("garbage"),
            Err(CryptoError::Malformed { .. })
        ));
    }

    #[test]
    fn nonces_do_not_repeat() {
        let ring = ring();
        let acme = tenant("acme");
        let mut nonces = HashSet::new();
        let mut texts = HashSet::new();
        for _ in 0..10_000 {
            let text = ring.encrypt(&acme, "ssn", b"same value").unwrap();
            let payload = STANDARD
                .decode(text.strip_prefix("v1:k1:").unwrap())
                .unwrap();
            assert!(
                nonces.insert(payload[..NONCE_LEN].to_vec()),
                "nonce repeated"
            );
            assert!(texts.insert(text), "ciphertext repeated");
        }
    }

    #[test]
    fn key_ring_text_errors_are_clear() {
        let hex64 = "ab".repeat(32);
        let cases: Vec<(String, &str)> = vec![
            (String::new(), "holds no keys"),
            (format!("k1 = hex:{hex64}"), "names no current key"),
            (
                format!("current = k2; k1 = hex:{hex64}"),
                "\"k2\" is not in the key ring (it holds k1)",
            ),
            (
                format!("current = k1\nk1 = hex:{}", "ab".repeat(31)),
                "line 2: key k1: the key is 31 bytes long",
            ),
            (
                format!("current = k1\nk1 = hex:{}zz", "ab".repeat(31)),
                "character 63 is not a hexadecimal digit",
            ),
            (
                "current = k1; k1 = base64:AAAA".to_owned(),
                "line 1, entry 2: key k1: the key is 3 bytes long",
            ),
            (
                "current = k1; k1 = base64:AA*A".to_owned(),
                "character 3 is not a base64 character",
            ),
            (
                format!("current = k1; k1 = hex:{hex64}; k1 = hex:{hex64}"),
                "entry 3: key id \"k1\" is defined twice",
            ),
            (
                format!("current = k1; current = k1; k1 = hex:{hex64}"),
                "`current` is given twice",
            ),
            (
                format!("current = k1; key.1 = hex:{hex64}"),
                "invalid key id \"key.1\"",
            ),
            (
                format!("current = {}; k1 = hex:{hex64}", "k".repeat(33)),
                "invalid key id",
            ),
            (
                "current k1".to_owned(),
                "line 1: expected `current = <key id>`",
            ),
        ];
        for (text, expected) in cases {
            let err = KeyRing::parse(&text).unwrap_err().to_string();
            assert!(err.contains(expected), "{text:?}: {err}");
            // A key's text never appears in an error.
            assert!(!err.contains(&hex64), "{err}");
        }
    }

    #[test]
    fn master_keys_accept_hex_and_base64_with_or_without_prefix() {
        let bytes: [u8; 32] = core::array::from_fn(|i| i as u8 * 7);
        let hex_text = hex::encode(bytes);
        let padded = STANDARD.encode(bytes);
        let unpadded = STANDARD_NO_PAD.encode(bytes);
        let upper = hex_text.to_uppercase();
        for text in [
            hex_text.clone(),
            format!("hex:{hex_text}"),
            format!("hex:{upper}"),
            padded.clone(),
            unpadded.clone(),
            format!("base64:{padded}"),
            format!("  base64:{unpadded}\n"),
        ] {
            let key = MasterKey::parse(&text).unwrap();
            assert_eq!(*key.0, bytes, "{text}");
        }
        assert_eq!(*MasterKey::from_hex(&hex_text).unwrap().0, bytes);
        assert_eq!(*MasterKey::from_base64(&padded).unwrap().0, bytes);
        assert!(matches!(
            MasterKey::from_hex("abc"),
            Err(InvalidMasterKey::BadEncoding {
                encoding: KeyEncoding::Hex,
                ..
            })
        ));
        assert!(matches!(
            MasterKey::from_base64(&STANDARD.encode([0_u8; 16])),
            Err(InvalidMasterKey::WrongLength { actual: 16 })
        ));
    }

    #[test]
    fn keys_never_appear_in_debug_output() {
        let hex_text = "5a".repeat(32);
        let ring = KeyRing::parse(&format!("current = k1\nk1 = hex:{hex_text}")).unwrap();
        ring.encrypt(&tenant("acme"), "f", b"x").unwrap();
        let debug = format!("{ring:?}");
        assert!(debug.contains("k1"), "{debug}");
        assert!(
            !debug.contains("5a5a") && !debug.contains("90, 90"),
            "{debug}"
        );
        let key = MasterKey::from_hex(&hex_text).unwrap();
        assert_eq!(format!("{key:?}"), "MasterKey(<redacted>)");
    }

    #[test]
    fn key_ring_from_values_checks_duplicates_and_current() {
        let id = |s: &str| KeyId::new(s).unwrap();
        let key = || MasterKey::from_bytes([7; 32]);
        assert!(KeyRing::new(&id("a"), [(id("a"), key()), (id("b"), key())]).is_ok());
        assert!(matches!(
            KeyRing::new(&id("a"), [(id("a"), key()), (id("a"), key())]),
            Err(KeyRingError::DuplicateKeyId { .. })
        ));
        assert!(matches!(
            KeyRing::new(&id("c"), [(id("a"), key())]),
            Err(KeyRingError::UnknownCurrent { .. })
        ));
        assert!(matches!(
            KeyRing::new(&id("a"), []),
            Err(KeyRingError::Empty)
        ));
        let single = KeyRing::single(id("only"), key());
        assert_eq!(single.current_key_id().as_str(), "only");
        assert_eq!(single.key_ids().count(), 1);
        assert!(single.contains("only") && !single.contains("other"));
    }

    #[test]
    fn key_ring_loads_from_a_file() {
        let dir = std::env::temp_dir().join(format!("portcullis-keyring-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("keys");
        std::fs::write(
            &path,
            format!("current = f1\nf1 = hex:{}\n", "01".repeat(32)),
        )
        .unwrap();
        let ring = KeyRing::from_file(&path).unwrap();
        assert_eq!(ring.current_key_id().as_str(), "f1");
        std::fs::remove_dir_all(&dir).unwrap();
        let err = KeyRing::from_file(dir.join("missing")).unwrap_err();
        assert!(
            err.to_string().contains("cannot read the key file"),
            "{err}"
        );
        let err = KeyRing::from_env("PORTCULLIS_TEST_KEY_RING_THAT_IS_NEVER_SET").unwrap_err();
        assert!(err.to_string().contains("is not set"), "{err}");
    }

    #[test]
    fn the_derived_key_cache_stays_bounded() {
        let ring = ring();
        for i in 0..(DERIVED_KEY_CACHE_CAPACITY + 10) {
            let t = tenant(&format!("t-{i}"));
            let text = ring.encrypt(&t, "f", b"v").unwrap();
            assert_eq!(ring.decrypt(&t, "f", &text).unwrap(), b"v");
        }
        assert!(ring.derived.read().unwrap().len() <= DERIVED_KEY_CACHE_CAPACITY);
    }

    fn tenant_strategy() -> impl Strategy<Value = TenantId> {
        "[a-zA-Z0-9-]{3,32}".prop_map(|s| TenantId::new(&s).unwrap())
    }

    proptest! {
        #[test]
        fn decrypt_inverts_encrypt(
            tenant in tenant_strategy(),
            field in "\\PC{0,40}",
            plaintext in proptest::collection::vec(any::<u8>(), 0..300),
        ) {
            let ring = ring();
            let text = ring.encrypt(&tenant, &field, &plaintext).unwrap();
            prop_assert_eq!(ring.decrypt(&tenant, &field, &text).unwrap(), plaintext);
        }

        #[test]
        fn any_single_character_change_in_the_payload_fails(
            tenant in tenant_strategy(),
            field in "\\PC{0,20}",
            plaintext in proptest::collection::vec(any::<u8>(), 0..100),
            position in any::<prop::sample::Index>(),
            // Any printable ASCII character: base64 characters, padding and characters outside the
            // alphabet.
            replacement in 0x20_u8..0x7f,
        ) {
            let ring = ring();
            let text = ring.encrypt(&tenant, &field, &plaintext).unwrap();
            let header_len = "v1:k1:".len();
            let mut bytes = text.into_bytes();
            let index = header_len + position.index(bytes.len() - header_len);
            prop_assume!(bytes[index] != replacement);
            bytes[index] = replacement;
            let mutated = String::from_utf8(bytes).unwrap();
            prop_assert!(ring.decrypt(&tenant, &field, &mutated).is_err());
        }

        #[test]
        fn any_single_byte_change_in_the_decoded_payload_fails_authentication(
            tenant in tenant_strategy(),
            field in "\\PC{0,20}",
            plaintext in proptest::collection::vec(any::<u8>(), 0..100),
            position in any::<prop::sample::Index>(),
            flip in 1_u8..=255,
        ) {
            let ring = ring();
            let text = ring.encrypt(&tenant, &field, &plaintext).unwrap();
            let mut payload = STANDARD.decode(text.strip_prefix("v1:k1:").unwrap()).unwrap();
            let index = position.index(payload.len());
            payload[index] ^= flip;
            let mutated = format!("v1:k1:{}", STANDARD.encode(&payload));
            let is_authentication_failure = matches!(
                ring.decrypt(&tenant, &field, &mutated),
                Err(CryptoError::AuthenticationFailed { .. })
            );
            prop_assert!(is_authentication_failure);
        }
    }
}
