//! `portcullis token`: an HS256 identity token from a shared secret, for trying a setup out
//! (the gateway's credential stage, forward-auth, `curl` against the decision API) without an
//! identity provider. The secret is read from an environment variable, never from the command
//! line, so it does not land in shell history or process listings.

use clap::Args;
use serde_json::{Map, Value, json};

/// `portcullis token`'s options.
#[derive(Debug, Args)]
pub struct TokenArgs {
    /// The environment variable holding the issuer's shared secret (as `secret_env` of an
    /// `[[identity.issuers]]` entry).
    #[arg(long, value_name = "VARIABLE")]
    secret_env: String,
    /// The issuer (`iss`), as configured.
    #[arg(long)]
    issuer: String,
    /// The principal (`sub`).
    #[arg(long)]
    subject: String,
    /// The tenant claim.
    #[arg(long)]
    tenant: Option<String>,
    /// The audience (`aud`), when the issuer lists audiences.
    #[arg(long)]
    audience: Option<String>,
    /// Seconds until it expires.
    #[arg(long, default_value_t = 3600)]
    ttl: u64,
}

/// Prints the token; returns the exit code.
pub fn run(args: &TokenArgs) -> u8 {
    let Some(secret) = std::env::var(&args.secret_env)
        .ok()
        .filter(|s| !s.is_empty())
    else {
        eprintln!("error: environment variable {} is not set", args.secret_env);
        return 2;
    };
    let now = jiff::Timestamp::now().as_second();
    let mut claims = Map::new();
    claims.insert("iss".into(), json!(args.issuer));
    claims.insert("sub".into(), json!(args.subject));
    claims.insert("iat".into(), json!(now));
    claims.insert(
        "exp".into(),
        json!(now.saturating_add(i64::try_from(args.ttl).unwrap_or(i64::MAX))),
    );
    if let Some(tenant) = &args.tenant {
        claims.insert("tenant".into(), json!(tenant));
    }
    if let Some(audience) = &args.audience {
        claims.insert("aud".into(), json!(audience));
    }
    match jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &Value::Object(claims),
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    ) {
        Ok(token) => {
            println!("{token}");
            0
        }
        Err(error) => {
            eprintln!("error: cannot sign the token: {error}");
            2
        }
    }
}
