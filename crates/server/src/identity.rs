//! Identity from bearer tokens: JWT verification (RS/PS/ES/EdDSA/HS with keys or a JWKS file
//! from the configuration) and the mapping of claims to a principal.
//!
//! A token is accepted only when its issuer is configured, its algorithm is one the issuer
//! allows (`none` never is), its signature verifies, `exp` has not passed and `nbf` has
//! (within the configured leeway, at most five minutes), and, where audiences are configured,
//! `aud` is present and names one of them. `exp` and `iss` are always required, and so is the
//! configured principal claim; the tenant claim is required when the identity is bound to a
//! tenant ([`Identity::bind`]). Binding the identity to the requested tenant and host is done by
//! [`Identity::bind`].
//!
//! A token that verified is remembered by its exact text, with the validity window of its
//! `exp` and `nbf` (leeway included), so repeated requests with the same token skip the
//! signature check; the remembered identity is used only inside that window, and a new
//! configuration (keys, issuers) starts with no remembered tokens.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, RwLock};

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{AlgorithmFamily, DecodingKey, Validation, errors::ErrorKind};
use portcullis_core::{Principal, TenantId};
use portcullis_policy::Snapshot;
use serde_json::{Map, Value};

use crate::config::{ConfigError, IdentityConfig, KeySource};

/// Why a caller's identity could not be established or bound. Each edge answers it in its own
/// protocol: a JSON 401, a gRPC `UNAUTHENTICATED`, a forward-auth 401.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct IdentityError {
    /// What kind of problem.
    pub kind: IdentityErrorKind,
    /// What was wrong, in words for the caller.
    pub message: String,
}

impl IdentityError {
    /// An error of `kind`.
    pub fn new(kind: IdentityErrorKind, message: impl Into<String>) -> Self {
        IdentityError {
            kind,
            message: message.into(),
        }
    }

    /// The stable code of the error.
    pub fn code(&self) -> &'static str {
        self.kind.code()
    }
}

/// The kinds of [`IdentityError`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdentityErrorKind {
    /// A token is required and none was sent.
    MissingToken,
    /// The token or the header carrying it is malformed, or a required claim is missing.
    InvalidToken,
    /// The token's issuer is not configured.
    UnknownIssuer,
    /// The token's algorithm is not one its issuer allows.
    UnsupportedAlgorithm,
    /// `exp` has passed.
    ExpiredToken,
    /// `nbf` has not come yet.
    TokenNotYetValid,
    /// `aud` names none of the issuer's audiences.
    WrongAudience,
    /// The signature does not verify.
    InvalidSignature,
    /// The token was issued for another tenant, or names none.
    TenantMismatch,
    /// The request is not for the tenant's domain.
    DomainMismatch,
}

impl IdentityErrorKind {
    /// The stable code answered to callers.
    pub fn code(self) -> &'static str {
        match self {
            IdentityErrorKind::MissingToken => "missing_token",
            IdentityErrorKind::InvalidToken => "invalid_token",
            IdentityErrorKind::UnknownIssuer => "unknown_issuer",
            IdentityErrorKind::UnsupportedAlgorithm => "unsupported_algorithm",
            IdentityErrorKind::ExpiredToken => "expired_token",
            IdentityErrorKind::TokenNotYetValid => "token_not_yet_valid",
            IdentityErrorKind::WrongAudience => "wrong_audience",
            IdentityErrorKind::InvalidSignature => "invalid_signature",
            IdentityErrorKind::TenantMismatch => "tenant_mismatch",
            IdentityErrorKind::DomainMismatch => "domain_mismatch",
        }
    }
}

/// Verifies tokens against the configured issuers.
pub struct Verifier {
    config: IdentityConfig,
    issuers: BTreeMap<String, IssuerKeys>,
    // Keyed by the token with a fast non-cryptographic hash: only tokens whose signature
    // verified are ever inserted, so a caller cannot fill the map with colliding keys.
    verified: RwLock<HashMap<Box<str>, Verified, rustc_hash::FxBuildHasher>>,
}

/// Tokens remembered at most (each a few hundred bytes).
const VERIFIED_CAPACITY: usize = 4096;

/// A token that verified, and the seconds (Unix time) between which it stays valid.
#[derive(Debug)]
struct Verified {
    identity: Arc<Identity>,
    from: i64,
    until: i64,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifier")
            .field("issuers", &self.issuers.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

struct IssuerKeys {
    validation: Validation,
    /// Keys with their key id (JWKS) and the algorithm family they serve.
    keys: Vec<(Option<String>, AlgorithmFamily, DecodingKey)>,
}

/// A verified identity.
#[derive(Debug, Clone, PartialEq)]
pub struct Identity {
    /// Principal id from the configured claim.
    pub principal_id: String,
    /// Tenant from the configured claim, when present.
    pub tenant: Option<String>,
    /// Roles from the configured claim (used only for tenants that trust them).
    pub roles: Vec<String>,
    /// Attributes copied from the configured claims.
    pub attributes: Map<String, Value>,
    /// The issuer.
    pub issuer: String,
}

impl Verifier {
    /// Builds the verifier, checking that every configured key parses for its algorithms.
    pub fn new(config: &IdentityConfig) -> Result<Verifier, ConfigError> {
        let mut issuers = BTreeMap::new();
        for (index, issuer) in config.issuers.iter().enumerate() {
            let key = format!("identity.issuers[{index}]");
            let families: Vec<AlgorithmFamily> = {
                let mut families: Vec<AlgorithmFamily> = Vec::new();
                for algorithm in &issuer.algorithms {
                    if !families.contains(&algorithm.family()) {
                        families.push(algorithm.family());
                    }
                }
                families
            };
            let mut keys = Vec::new();
            match &issuer.keys {
                KeySource::Secret(secret) => keys.push((
                    None,
                    AlgorithmFamily::Hmac,
                    DecodingKey::from_secret(secret),
                )),
                KeySource::Pem(pem) => {
                    for family in &families {
                        let parsed = match family {
                            AlgorithmFamily::Rsa => DecodingKey::from_rsa_pem(pem),
                            AlgorithmFamily::Ec => DecodingKey::from_ec_pem(pem),
                            AlgorithmFamily::Ed => DecodingKey::from_ed_pem(pem),
                            AlgorithmFamily::Hmac => continue,
                        };
                        match parsed {
                            Ok(decoding) => keys.push((None, *family, decoding)),
                            // One PEM key serves one family; algorithms of the others are skipped
                            // unless none fits.
                            Err(_) => continue,
                        }
                    }
                    if keys.is_empty() {
                        return Err(ConfigError {
                            key: format!("{key}.key_file"),
                            message:
                                "the PEM is not a public key for any of the configured algorithms"
                                    .into(),
                        });
                    }
                }
                KeySource::Jwks(json) => {
                    let set: JwkSet = serde_json::from_slice(json).map_err(|e| ConfigError {
                        key: format!("{key}.jwks_file"),
                        message: format!("not a JWKS document: {e}"),
                    })?;
                    for jwk in &set.keys {
                        let decoding = DecodingKey::from_jwk(jwk).map_err(|e| ConfigError {
                            key: format!("{key}.jwks_file"),
                            message: format!("key {:?} is unusable: {e}", jwk.common.key_id),
                        })?;
                        let family = match &jwk.algorithm {
                            jsonwebtoken::jwk::AlgorithmParameters::RSA(_) => AlgorithmFamily::Rsa,
                            jsonwebtoken::jwk::AlgorithmParameters::EllipticCurve(_) => {
                                AlgorithmFamily::Ec
                            }
                            jsonwebtoken::jwk::AlgorithmParameters::OctetKeyPair(_) => {
                                AlgorithmFamily::Ed
                            }
                            jsonwebtoken::jwk::AlgorithmParameters::OctetKey(_) => {
                                AlgorithmFamily::Hmac
                            }
                            _ => {
                                return Err(ConfigError {
                                    key: format!("{key}.jwks_file"),
                                    message: format!(
                                        "key {:?} has an unsupported key type",
                                        jwk.common.key_id
                                    ),
                                });
                            }
                        };
                        keys.push((jwk.common.key_id.clone(), family, decoding));
                    }
                    if keys.is_empty() {
                        return Err(ConfigError {
                            key: format!("{key}.jwks_file"),
                            message: "the JWKS holds no key".into(),
                        });
                    }
                }
            }
            let mut validation = Validation::new(issuer.algorithms[0]);
            validation.algorithms = issuer.algorithms.clone();
            validation.set_issuer(&[&issuer.issuer]);
            validation.leeway = config.leeway_seconds;
            validation.validate_exp = true;
            validation.validate_nbf = true;
            if issuer.audiences.is_empty() {
                validation.validate_aud = false;
                validation.set_required_spec_claims(&["exp", "iss"]);
            } else {
                // The library compares `aud` only when the token carries one: a token without
                // it (or with one that is not a string or a list of strings) would pass, so the
                // claim is required wherever audiences are configured.
                validation.set_audience(&issuer.audiences);
                validation.set_required_spec_claims(&["exp", "iss", "aud"]);
            }
            issuers.insert(issuer.issuer.clone(), IssuerKeys { validation, keys });
        }
        Ok(Verifier {
            config: config.clone(),
            issuers,
            verified: RwLock::new(HashMap::default()),
        })
    }

    /// Whether any issuer is configured.
    pub fn is_configured(&self) -> bool {
        !self.issuers.is_empty()
    }

    /// Whether check endpoints require a token.
    pub fn required_for_check(&self) -> bool {
        self.config.require_token_for_check
    }

    /// Verifies a compact JWS and maps its claims.
    pub fn verify(&self, token: &str) -> Result<Arc<Identity>, IdentityError> {
        let now = i64::try_from(jsonwebtoken::get_current_timestamp()).unwrap_or(i64::MAX);
        if let Some(identity) = self.remembered(token, now) {
            return Ok(identity);
        }
        let (identity, claims) = self.verify_signed(token)?;
        let identity = Arc::new(identity);
        let seconds = |name: &str| match claims.get(name) {
            Some(Value::Number(number)) => number
                .as_i64()
                .or_else(|| number.as_f64().map(|value| value as i64)),
            _ => None,
        };
        let leeway = i64::try_from(self.config.leeway_seconds).unwrap_or(0);
        if let Some(exp) = seconds("exp") {
            let from = seconds("nbf").map_or(i64::MIN, |nbf| nbf.saturating_sub(leeway));
            self.remember(token, &identity, from, exp.saturating_add(leeway), now);
        }
        Ok(identity)
    }

    /// The identity of a token verified earlier, if `now` is inside its validity window.
    fn remembered(&self, token: &str, now: i64) -> Option<Arc<Identity>> {
        let verified = self.verified.read().ok()?;
        let entry = verified.get(token)?;
        (entry.from <= now && now <= entry.until).then(|| Arc::clone(&entry.identity))
    }

    fn remember(&self, token: &str, identity: &Arc<Identity>, from: i64, until: i64, now: i64) {
        let Ok(mut verified) = self.verified.write() else {
            return;
        };
        if verified.len() >= VERIFIED_CAPACITY {
            verified.retain(|_, entry| now <= entry.until);
            if verified.len() >= VERIFIED_CAPACITY {
                verified.clear();
            }
        }
        verified.insert(
            token.into(),
            Verified {
                identity: Arc::clone(identity),
                from,
                until,
            },
        );
    }

    /// The full check of a token: header, issuer, algorithm, signature and claims.
    fn verify_signed(&self, token: &str) -> Result<(Identity, Map<String, Value>), IdentityError> {
        let invalid =
            |kind: IdentityErrorKind, message: &str| IdentityError::new(kind, message.to_owned());
        let header = jsonwebtoken::decode_header(token).map_err(|_| {
            invalid(
                IdentityErrorKind::InvalidToken,
                "the bearer token is not a well-formed JWT with a supported algorithm",
            )
        })?;
        // The issuer is read before verification only to choose the keys; it is verified after.
        let unverified: Map<String, Value> = jsonwebtoken::dangerous::insecure_decode_claims(token)
            .map_err(|_| {
                invalid(
                    IdentityErrorKind::InvalidToken,
                    "the bearer token's claims are not a JSON object",
                )
            })?;
        let issuer = unverified
            .get("iss")
            .and_then(Value::as_str)
            .ok_or_else(|| {
                invalid(
                    IdentityErrorKind::InvalidToken,
                    "the token has no `iss` claim",
                )
            })?;
        let keys = self.issuers.get(issuer).ok_or_else(|| {
            invalid(
                IdentityErrorKind::UnknownIssuer,
                "the token's issuer is not trusted",
            )
        })?;
        if !keys.validation.algorithms.contains(&header.alg) {
            return Err(invalid(
                IdentityErrorKind::UnsupportedAlgorithm,
                "the token's algorithm is not accepted for its issuer",
            ));
        }
        let family = header.alg.family();
        let candidates = keys.keys.iter().filter(|(kid, key_family, _)| {
            *key_family == family && (header.kid.is_none() || kid.is_none() || kid == &header.kid)
        });
        let mut last = ErrorKind::InvalidSignature;
        for (_, _, key) in candidates {
            match jsonwebtoken::decode::<Map<String, Value>>(token, key, &keys.validation) {
                Ok(data) => {
                    let identity = self.map_claims(issuer, &data.claims)?;
                    return Ok((identity, data.claims));
                }
                Err(error) => {
                    let kind = error.into_kind();
                    if kind != ErrorKind::InvalidSignature {
                        last = kind;
                        break;
                    }
                    last = kind;
                }
            }
        }
        Err(match last {
            ErrorKind::ExpiredSignature => {
                invalid(IdentityErrorKind::ExpiredToken, "the token has expired")
            }
            ErrorKind::ImmatureSignature => invalid(
                IdentityErrorKind::TokenNotYetValid,
                "the token is not valid yet (nbf)",
            ),
            ErrorKind::InvalidAudience => invalid(
                IdentityErrorKind::WrongAudience,
                "the token is not meant for this service (aud)",
            ),
            ErrorKind::InvalidIssuer => invalid(
                IdentityErrorKind::UnknownIssuer,
                "the token's issuer is not trusted",
            ),
            // A claim that is present but of the wrong type counts as missing.
            ErrorKind::MissingRequiredClaim(claim) => IdentityError::new(
                IdentityErrorKind::InvalidToken,
                format!("the token has no valid `{claim}` claim"),
            ),
            ErrorKind::InvalidAlgorithm => invalid(
                IdentityErrorKind::UnsupportedAlgorithm,
                "the token's algorithm is not accepted for its issuer",
            ),
            _ => invalid(
                IdentityErrorKind::InvalidSignature,
                "the token's signature does not verify",
            ),
        })
    }

    fn map_claims(
        &self,
        issuer: &str,
        claims: &Map<String, Value>,
    ) -> Result<Identity, IdentityError> {
        let principal_id = claims
            .get(&self.config.principal_claim)
            .and_then(Value::as_str)
            .filter(|id| !id.is_empty())
            .ok_or_else(|| {
                IdentityError::new(
                    IdentityErrorKind::InvalidToken,
                    format!(
                        "the token has no `{}` claim naming the principal",
                        self.config.principal_claim
                    ),
                )
            })?
            .to_owned();
        let tenant = claims
            .get(&self.config.tenant_claim)
            .and_then(Value::as_str)
            .map(str::to_owned);
        let roles = match claims.get(&self.config.roles_claim) {
            Some(Value::Array(items)) => items
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect(),
            Some(Value::String(spaced)) => spaced.split_whitespace().map(str::to_owned).collect(),
            _ => Vec::new(),
        };
        let attributes = self
            .config
            .attribute_claims
            .iter()
            .filter_map(|name| claims.get(name).map(|value| (name.clone(), value.clone())))
            .collect();
        Ok(Identity {
            principal_id,
            tenant,
            roles,
            attributes,
            issuer: issuer.to_owned(),
        })
    }
}

impl Identity {
    /// Binds the identity to the tenant and host of a request: the token's tenant claim must
    /// name the tenant, and where the tenant declares a domain the host must be it. Returns the
    /// principal, with token roles only if the tenant trusts them.
    pub fn bind(
        &self,
        tenant: &TenantId,
        snapshot: Option<&Snapshot>,
        host: HostBinding<'_>,
    ) -> Result<Principal, IdentityError> {
        match &self.tenant {
            Some(claimed) if claimed == tenant.as_str() => {}
            Some(_) => {
                return Err(IdentityError::new(
                    IdentityErrorKind::TenantMismatch,
                    "the token was issued for another tenant",
                ));
            }
            None => {
                return Err(IdentityError::new(
                    IdentityErrorKind::TenantMismatch,
                    "the token names no tenant",
                ));
            }
        }
        if let Some(domain) = snapshot.and_then(|s| s.settings().domain.as_deref()) {
            let (host, required) = match host {
                HostBinding::Original(host) => (host, true),
                HostBinding::Stated(host) => (host, false),
            };
            // Domains are stored lower case.
            let host = host.map(strip_port);
            let matches = host.is_some_and(|host| host.eq_ignore_ascii_case(domain));
            if !matches && (required || host.is_some()) {
                return Err(IdentityError::new(
                    IdentityErrorKind::DomainMismatch,
                    format!("tenant `{tenant}` only accepts requests for host {domain}"),
                ));
            }
        }
        let trust_roles = snapshot.is_some_and(|s| s.settings().trust_token_roles);
        Ok(Principal {
            id: self.principal_id.clone(),
            kind: "user".to_owned(),
            roles: if trust_roles {
                self.roles.clone()
            } else {
                Vec::new()
            },
            attributes: self.attributes.clone(),
        })
    }
}

/// Which host an identity is bound to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostBinding<'a> {
    /// The host of the original request, as a proxy saw it: it must be the tenant's domain.
    Original(Option<&'a str>),
    /// A host the caller stated for the request being checked (`context.host` on the decision
    /// APIs): when stated, it must be the tenant's domain.
    Stated(Option<&'a str>),
}

/// `host:port` or `[v6]:port` to the host part.
pub fn strip_port(host: &str) -> &str {
    if let Some(rest) = host.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    // The port is the digits after the last ':', when no other ':' precedes it (an IPv6
    // address without brackets has no port). Scanned from the end: a Host is short and read on
    // every request addressed by domain.
    let bytes = host.as_bytes();
    let mut end = bytes.len();
    while end > 0 && bytes[end - 1].is_ascii_digit() {
        end -= 1;
    }
    match end.checked_sub(1) {
        Some(colon) if bytes[colon] == b':' && !bytes[..colon].contains(&b':') => &host[..colon],
        _ => host,
    }
}

/// The token of an `Authorization: Bearer` header.
pub fn bearer(headers: &http::HeaderMap) -> Result<Option<&str>, IdentityError> {
    let Some(value) = headers.get(http::header::AUTHORIZATION) else {
        return Ok(None);
    };
    let value = value.to_str().map_err(|_| {
        IdentityError::new(
            IdentityErrorKind::InvalidToken,
            "the Authorization header is not text",
        )
    })?;
    let (scheme, token) = value.split_once(' ').ok_or_else(|| {
        IdentityError::new(
            IdentityErrorKind::InvalidToken,
            "the Authorization header is not `Bearer <token>`",
        )
    })?;
    if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() {
        return Err(IdentityError::new(
            IdentityErrorKind::InvalidToken,
            "the Authorization header is not `Bearer <token>`",
        ));
    }
    Ok(Some(token.trim()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::IssuerConfig;
    use jsonwebtoken::{Algorithm, EncodingKey, Header};

    const SECRET: &[u8] = b"a-test-secret-of-thirty-two-bytes!!";

    fn verifier() -> Verifier {
        verifier_for(Vec::new())
    }

    fn verifier_for(audiences: Vec<String>) -> Verifier {
        Verifier::new(&IdentityConfig {
            principal_claim: "sub".into(),
            tenant_claim: "tenant".into(),
            roles_claim: "roles".into(),
            attribute_claims: Vec::new(),
            leeway_seconds: 5,
            require_token_for_check: false,
            issuers: vec![IssuerConfig {
                issuer: "https://idp.test".into(),
                audiences,
                algorithms: vec![Algorithm::HS256],
                keys: KeySource::Secret(SECRET.to_vec()),
            }],
        })
        .unwrap()
    }

    fn token(sub: &str, exp_from_now: i64) -> String {
        let now = jsonwebtoken::get_current_timestamp() as i64;
        signed(
            serde_json::json!({"iss": "https://idp.test", "sub": sub, "exp": now + exp_from_now}),
        )
    }

    fn signed(claims: Value) -> String {
        jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(SECRET),
        )
        .unwrap()
    }

    fn now() -> i64 {
        jsonwebtoken::get_current_timestamp() as i64
    }

    #[test]
    fn a_verified_token_is_remembered_inside_its_window_only() {
        let verifier = verifier();
        let valid = token("ann", 600);
        let first = verifier.verify(&valid).unwrap();
        let second = verifier.verify(&valid).unwrap();
        assert!(
            Arc::ptr_eq(&first, &second),
            "the second use is served from memory"
        );
        assert_eq!(second.principal_id, "ann");
        let entry_until = verifier.verified.read().unwrap()[valid.as_str()].until;
        assert!(
            (entry_until - (now() + 600 + 5)).abs() <= 2,
            "{entry_until}"
        );

        // An expired token is refused even when an earlier window was remembered for it.
        let expired = token("bob", -60);
        verifier.remember(&expired, &first, now() - 120, now() - 1, now());
        let error = verifier.verify(&expired).unwrap_err();
        assert_eq!(error.code(), "expired_token", "{error:?}");

        // Inside a remembered window the signature is not checked again: the entry decides.
        verifier.remember("not-a-jwt", &first, now() - 1, now() + 60, now());
        assert!(Arc::ptr_eq(&verifier.verify("not-a-jwt").unwrap(), &first));
        // A window that has not opened yet (nbf) is not used.
        verifier.remember("later", &first, now() + 60, now() + 120, now());
        assert!(verifier.verify("later").is_err());
    }

    #[test]
    fn remembered_tokens_are_bounded() {
        let verifier = verifier();
        let identity = verifier.verify(&token("ann", 600)).unwrap();
        let now = now();
        for index in 0..VERIFIED_CAPACITY + 10 {
            verifier.remember(&format!("t{index}"), &identity, now - 1, now + 60, now);
            assert!(verifier.verified.read().unwrap().len() <= VERIFIED_CAPACITY);
        }
        // Expired entries go first when room is needed.
        let verifier = self::verifier();
        for index in 0..VERIFIED_CAPACITY - 1 {
            verifier.remember(&format!("old{index}"), &identity, now - 100, now - 50, now);
        }
        verifier.remember("fresh", &identity, now - 1, now + 60, now);
        verifier.remember("newer", &identity, now - 1, now + 60, now);
        let remembered = verifier.verified.read().unwrap();
        assert_eq!(remembered.len(), 2);
        assert!(remembered.contains_key("fresh") && remembered.contains_key("newer"));
    }

    #[test]
    fn aud_is_required_exactly_where_audiences_are_configured() {
        let exp = now() + 600;
        let code_and_message = |verifier: &Verifier, claims: Value| {
            let error = verifier.verify(&signed(claims)).unwrap_err();
            (error.code(), error.message)
        };
        let strict = verifier_for(vec!["portcullis".into()]);
        for (claims, code, message) in [
            (
                serde_json::json!({"iss": "https://idp.test", "sub": "ann", "exp": exp}),
                "invalid_token",
                "the token has no valid `aud` claim",
            ),
            // An `aud` of the wrong type is no audience at all.
            (
                serde_json::json!({"iss": "https://idp.test", "sub": "ann", "exp": exp, "aud": 7}),
                "invalid_token",
                "the token has no valid `aud` claim",
            ),
            (
                serde_json::json!({"iss": "https://idp.test", "sub": "ann", "exp": exp, "aud": []}),
                "wrong_audience",
                "the token is not meant for this service (aud)",
            ),
            (
                serde_json::json!({"iss": "https://idp.test", "sub": "ann", "exp": exp, "aud": "other"}),
                "wrong_audience",
                "the token is not meant for this service (aud)",
            ),
        ] {
            assert_eq!(
                code_and_message(&strict, claims.clone()),
                (code, message.to_owned()),
                "{claims}"
            );
        }
        for aud in [
            serde_json::json!("portcullis"),
            serde_json::json!(["other", "portcullis"]),
        ] {
            let claims = serde_json::json!({"iss": "https://idp.test", "sub": "ann", "exp": exp, "aud": aud});
            assert_eq!(strict.verify(&signed(claims)).unwrap().principal_id, "ann");
        }
        // Without configured audiences the claim is neither required nor compared.
        let open = verifier();
        for claims in [
            serde_json::json!({"iss": "https://idp.test", "sub": "ann", "exp": exp}),
            serde_json::json!({"iss": "https://idp.test", "sub": "ann", "exp": exp, "aud": "other"}),
        ] {
            assert!(open.verify(&signed(claims.clone())).is_ok(), "{claims}");
        }
        // `exp` and `iss` are required everywhere.
        assert_eq!(
            code_and_message(
                &open,
                serde_json::json!({"iss": "https://idp.test", "sub": "ann"})
            ),
            (
                "invalid_token",
                "the token has no valid `exp` claim".to_owned()
            )
        );
        assert_eq!(
            code_and_message(&open, serde_json::json!({"sub": "ann", "exp": exp})),
            ("invalid_token", "the token has no `iss` claim".to_owned())
        );
    }
}

#[cfg(test)]
mod host_tests {
    use super::strip_port;
    use proptest::prelude::*;

    #[test]
    fn the_port_is_stripped_from_names_and_addresses() {
        for (host, expected) in [
            ("ops.acme.example", "ops.acme.example"),
            ("ops.acme.example:8443", "ops.acme.example"),
            ("ops.acme.example:", "ops.acme.example"),
            ("127.0.0.1:9781", "127.0.0.1"),
            ("[::1]:9781", "::1"),
            ("[::1]", "::1"),
            ("::1", "::1"),
            ("fe80::1:80", "fe80::1:80"),
            ("host:80a", "host:80a"),
            (":80", ""),
            ("", ""),
        ] {
            assert_eq!(strip_port(host), expected, "{host}");
        }
    }

    proptest! {
        /// The host part is what remains after removing `:digits` at the end, unless the
        /// rest holds another ':' (an IPv6 address without brackets).
        #[test]
        fn stripping_agrees_with_splitting_at_the_last_colon(host in "[a-z0-9.:\\[\\]]{0,12}") {
            let expected = if let Some(rest) = host.strip_prefix('[') {
                rest.split(']').next().unwrap_or(rest)
            } else {
                match host.rsplit_once(':') {
                    Some((name, port))
                        if port.bytes().all(|b| b.is_ascii_digit()) && !name.contains(':') =>
                    {
                        name
                    }
                    _ => host.as_str(),
                }
            };
            prop_assert_eq!(strip_port(&host), expected);
        }
    }
}
