//! Sensitive principal attributes: encrypted with the tenant's field key before the store sees
//! them, decrypted when a snapshot is built. The key ring and its algorithms belong to
//! `portcullis-tenant`; this module only turns JSON values into ciphertexts and back.

use portcullis_core::TenantId;
use portcullis_tenant::crypto::KeyRing;
use serde_json::Value;

/// Encrypts a sensitive attribute value for storage.
pub fn encrypt_attribute(
    keyring: &KeyRing,
    tenant: &TenantId,
    key: &str,
    value: &Value,
) -> Result<Value, String> {
    let plain = serde_json::to_vec(value).map_err(|e| e.to_string())?;
    keyring
        .encrypt(tenant, key, &plain)
        .map(Value::String)
        .map_err(|e| e.to_string())
}

/// Decrypts a stored sensitive attribute value.
pub fn decrypt_attribute(
    keyring: &KeyRing,
    tenant: &TenantId,
    key: &str,
    value: &Value,
) -> Result<Value, String> {
    let Value::String(ciphertext) = value else {
        return Err("the stored value is not a ciphertext".to_owned());
    };
    let plain = keyring
        .decrypt(tenant, key, ciphertext)
        .map_err(|e| e.to_string())?;
    serde_json::from_slice(&plain).map_err(|e| e.to_string())
}
