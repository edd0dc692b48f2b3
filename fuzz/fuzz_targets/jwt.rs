//! Bearer tokens through the identity verifier (header, issuer, algorithm, signature, claims
//! and their mapping), with two HS256 issuers configured.
//!
//! Input: a first byte choosing the mode, then
//! - mode 0: the token text as the caller sends it (an `Authorization` value when it starts
//!   with `Bearer `);
//! - mode 1: a JWS header JSON, a NUL byte, and a claims JSON, signed here with the issuers'
//!   secret, so that claims past the signature check are exercised.
#![no_main]

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, KeyInit, Mac};
use jsonwebtoken::Algorithm;
use libfuzzer_sys::fuzz_target;
use portcullis_fuzz::split_nul;
use portcullis_server::config::{IdentityConfig, IssuerConfig, KeySource};
use portcullis_server::identity::{bearer, Verifier};

const SECRET: &[u8] = b"fuzzing-secret-of-at-least-32-bytes!";

fn verifier() -> Option<Verifier> {
    Verifier::new(&IdentityConfig {
        principal_claim: "sub".into(),
        tenant_claim: "tenant".into(),
        roles_claim: "roles".into(),
        attribute_claims: vec!["email".into(), "groups".into()],
        leeway_seconds: 30,
        require_token_for_check: true,
        issuers: vec![
            IssuerConfig {
                issuer: "https://idp.test".into(),
                audiences: vec!["portcullis".into()],
                algorithms: vec![Algorithm::HS256],
                keys: KeySource::Secret(SECRET.to_vec()),
            },
            IssuerConfig {
                issuer: "other".into(),
                audiences: Vec::new(),
                algorithms: vec![Algorithm::HS256, Algorithm::HS384],
                keys: KeySource::Secret(SECRET.to_vec()),
            },
        ],
    })
    .ok()
}

fn sign(header: &[u8], claims: &[u8]) -> Option<String> {
    let signing_input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header),
        URL_SAFE_NO_PAD.encode(claims)
    );
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(SECRET).ok()?;
    mac.update(signing_input.as_bytes());
    let signature = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
    Some(format!("{signing_input}.{signature}"))
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    // A fresh verifier each time: it remembers verified tokens.
    let Some(verifier) = verifier() else {
        return;
    };
    let token = if mode % 2 == 0 {
        let Ok(text) = std::str::from_utf8(rest) else {
            return;
        };
        if text.starts_with("Bearer ") {
            let mut headers = http::HeaderMap::new();
            let Ok(value) = http::HeaderValue::from_str(text) else {
                return;
            };
            headers.insert(http::header::AUTHORIZATION, value);
            match bearer(&headers) {
                Ok(Some(token)) => token.to_owned(),
                _ => return,
            }
        } else {
            text.to_owned()
        }
    } else {
        let (header, claims) = split_nul(rest);
        let header: &[u8] = if header.is_empty() {
            br#"{"alg":"HS256","typ":"JWT"}"#
        } else {
            header
        };
        match sign(header, claims) {
            Some(token) => token,
            None => return,
        }
    };
    if let Ok(identity) = verifier.verify(&token) {
        // Verified twice: the second answer comes from the verifier's memory.
        let again = verifier.verify(&token);
        assert_eq!(again.ok().as_deref(), Some(&*identity));
    }
});
