//! `portcullis`: the single binary of Portcullis.
//!
//! This file only parses arguments and dispatches; each subcommand lives in its own module and
//! returns the process exit code it wants.
#![forbid(unsafe_code)]

mod access;
mod audit;
mod client;
mod commands;
mod integrity;
mod model;
mod rebac;
mod render;
mod supply;
mod tenant;
mod token;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Every allocation of the process goes through mimalloc (see the workspace manifest).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Multi-tenant, zero-trust authorization: may this request happen?
#[derive(Debug, Parser)]
#[command(name = "portcullis", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the decision service (with no arguments: the demo bundles on 127.0.0.1:9700).
    Serve {
        /// A TOML configuration file (every key is documented in the README).
        #[arg(long)]
        config: Option<PathBuf>,
        /// Listen on this address and port instead of the configured one.
        #[arg(long)]
        listen: Option<std::net::SocketAddr>,
        /// Serve this bundle folder (or folder of bundles) instead of the configured ones.
        #[arg(long)]
        bundles: Option<PathBuf>,
        /// Serve the admin API on this address and port instead of the configured one.
        #[arg(long)]
        admin_listen: Option<std::net::SocketAddr>,
        /// Use this store instead of the configured one (`sqlite://…` or `postgres://…`).
        #[arg(long, env = "PORTCULLIS_DATABASE_URL", hide_env_values = true)]
        database_url: Option<String>,
        /// Check this signed integrity manifest at start (see `portcullis integrity`): refuse
        /// to start when this binary, the configuration file or a bundle file differs.
        #[arg(long, value_name = "MANIFEST", requires = "trust_key")]
        verify_integrity: Option<PathBuf>,
        /// The public key the integrity manifest must be signed with.
        #[arg(long, value_name = "FILE", requires = "verify_integrity")]
        trust_key: Option<PathBuf>,
    },
    /// Run the protecting gateway: the decision service with the `[gateway]` section of FILE,
    /// the guard's stages in front of each configured application.
    Gateway {
        /// A TOML configuration file with a `[gateway]` section (docs/gateway.md).
        #[arg(long)]
        config: PathBuf,
        /// Serve this bundle folder (or folder of bundles) instead of the configured ones.
        #[arg(long)]
        bundles: Option<PathBuf>,
        /// Use this store instead of the configured one (`sqlite://…` or `postgres://…`).
        #[arg(long, env = "PORTCULLIS_DATABASE_URL", hide_env_values = true)]
        database_url: Option<String>,
    },
    /// Validate a bundle (or a folder of bundles); print every problem with file:line:col.
    ///
    /// Exit status: 0 valid, 1 invalid.
    Validate {
        /// A bundle folder (holding tenant.yaml) or a folder of bundle folders.
        dir: PathBuf,
    },
    /// Decide one request against bundles and print the decision as JSON.
    ///
    /// Exit status: 0 allow, 1 deny, 2 invalid input (the error is on stderr).
    Check {
        /// A bundle folder or a folder of bundle folders.
        #[arg(long)]
        bundles: PathBuf,
        /// The request as JSON: a file, or `-` for standard input.
        #[arg(long)]
        request: PathBuf,
        /// Print the decision on one line instead of indented.
        #[arg(long)]
        compact: bool,
    },
    /// Run the tests carried by bundles; print each failure with the decision's explanation.
    ///
    /// Exit status: 0 all passed, 1 a test failed, 2 a bundle did not load.
    Test {
        /// A bundle folder or a folder of bundle folders.
        dir: PathBuf,
        /// Print every test, not only failures.
        #[arg(long, short)]
        verbose: bool,
    },
    /// Manage the tenants of a running server through its admin API.
    ///
    /// Exit status: 0 success, 1 the server refused (its error code and message are printed),
    /// 2 a usage error or the server could not be reached.
    Tenant {
        #[command(flatten)]
        options: tenant::Options,
        #[command(subcommand)]
        command: tenant::TenantCommand,
    },
    /// Temporary access (break-glass) on a running server: request, approve, reject, revoke,
    /// list. Calls are made with your identity token (`--api-token`).
    ///
    /// Exit status: 0 success, 1 the server refused (its error code and message are printed),
    /// 2 a usage error or a server that could not be reached.
    Access {
        #[command(flatten)]
        options: access::Options,
        #[command(subcommand)]
        command: access::AccessCommand,
    },
    /// Query and write the relationship graph (OpenFGA-style tuples) of a running server.
    ///
    /// Exit status: `check` 0 allowed, 1 not allowed, 2 an error; the others 0 success, 1 the
    /// server refused (its error code and message are printed), 2 a usage error, an unusable
    /// local file or a server that could not be reached.
    Rebac {
        #[command(flatten)]
        options: rebac::Options,
        #[command(subcommand)]
        command: rebac::RebacCommand,
    },
    /// Convert or validate a relationship model (OpenFGA modeling language or JSON), offline.
    ///
    /// Exit status: 0 valid, 1 invalid (every error as FILE:line:col: message), 2 unreadable.
    Model {
        #[command(subcommand)]
        command: model::ModelCommand,
    },
    /// Read and verify an audit trail kept in files (offline) or in the store's `audit_log`
    /// table (`--database-url`).
    ///
    /// Exit status: 0 success (`verify`: intact), 1 a problem found, 2 bad input.
    Audit {
        #[command(flatten)]
        options: audit::AuditOptions,
        #[command(subcommand)]
        command: audit::AuditCommand,
    },
    /// Print this binary's SBOM: every package compiled into it (captured when it was built),
    /// with version, purl, the registry's SHA-256 from Cargo.lock, licence and the dependency
    /// graph; build-only packages (build scripts' dependencies, procedural macros) are marked.
    ///
    /// Exit status: 0 printed, 2 the output file could not be written.
    Sbom {
        /// CycloneDX 1.6 JSON or SPDX 2.3 JSON.
        #[arg(long, value_enum, default_value = "cyclonedx")]
        format: supply::SbomFormat,
        /// Write the document to this file instead of standard output.
        #[arg(long, short, value_name = "FILE")]
        output: Option<PathBuf>,
    },
    /// Scan packages against a RustSec advisory database folder (and OSV files), offline:
    /// this binary's own SBOM (the default, `--self`), a `Cargo.lock` or an SBOM document.
    ///
    /// Exit status: 0 no unwaived high, critical or unknown-severity vulnerability, 1 at least
    /// one (high risk), 2 a usage error or an unusable input (the file is named).
    Scan(supply::ScanArgs),
    /// Sign and check integrity manifests: SHA-256 digests of the binary, the configuration
    /// file and every bundle file, signed with Ed25519 (`serve --verify-integrity` checks one at
    /// start).
    Integrity {
        #[command(subcommand)]
        command: integrity::IntegrityCommand,
    },
    /// Print an HS256 identity token signed with a shared secret from the environment, for
    /// trying a setup out without an identity provider.
    Token(token::TokenArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let code = match cli.command {
        Command::Serve {
            config,
            listen,
            bundles,
            admin_listen,
            database_url,
            verify_integrity,
            trust_key,
        } => commands::serve(
            config.as_deref(),
            portcullis_server::Overrides {
                listen,
                bundles,
                admin_listen,
                database_url,
                verify_integrity,
                trust_key,
            },
        ),
        Command::Gateway {
            config,
            bundles,
            database_url,
        } => commands::gateway(
            &config,
            portcullis_server::Overrides {
                bundles,
                database_url,
                ..Default::default()
            },
        ),
        Command::Validate { dir } => commands::validate(&dir),
        Command::Check {
            bundles,
            request,
            compact,
        } => commands::check(&bundles, &request, compact),
        Command::Test { dir, verbose } => commands::test(&dir, verbose),
        Command::Tenant { options, command } => tenant::run(options, command),
        Command::Access { options, command } => access::run(options, command),
        Command::Rebac { options, command } => rebac::run(options, command),
        Command::Model { command } => model::run(command),
        Command::Audit { options, command } => audit::run(options, command),
        Command::Sbom { format, output } => supply::sbom(format, output.as_deref()),
        Command::Scan(args) => supply::scan(&args),
        Command::Integrity { command } => integrity::run(command),
        Command::Token(args) => token::run(&args),
    };
    ExitCode::from(code)
}
