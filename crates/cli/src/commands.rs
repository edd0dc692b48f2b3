//! The offline subcommands: `validate`, `check` and `test`.

use std::io::Read;
use std::path::Path;

use portcullis_core::Request;
use portcullis_policy::{LoadOptions, PolicySet, all_passed, load_bundles, run_tests};

/// Exit code for allow, valid, passed.
const OK: u8 = 0;
/// Exit code for deny, invalid bundle, failed test.
const NO: u8 = 1;
/// Exit code for input that could not be used at all.
const INVALID: u8 = 2;

fn load(dir: &Path) -> Result<PolicySet, String> {
    load_bundles(dir, &LoadOptions::default()).map_err(|error| error.to_string())
}

pub fn validate(dir: &Path) -> u8 {
    match load(dir) {
        Ok(set) => {
            for snapshot in set.iter() {
                println!(
                    "ok: tenant {} ({} test{}), revision {}",
                    snapshot.tenant(),
                    snapshot.tests().len(),
                    if snapshot.tests().len() == 1 { "" } else { "s" },
                    snapshot.revision()
                );
                for warning in snapshot.warnings() {
                    eprintln!(
                        "{}: warning[{}]: {}",
                        warning.location,
                        warning.code.as_str(),
                        warning.message
                    );
                    if let Some(help) = &warning.help {
                        eprintln!("  help: {help}");
                    }
                }
            }
            OK
        }
        Err(message) => {
            eprint!("{message}");
            NO
        }
    }
}

fn read_request(path: &Path) -> Result<Request, String> {
    let text = if path.as_os_str() == "-" {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .map_err(|error| format!("cannot read the request from standard input: {error}"))?;
        text
    } else {
        std::fs::read_to_string(path)
            .map_err(|error| format!("cannot read {}: {error}", path.display()))?
    };
    serde_json::from_str(&text).map_err(|error| format!("invalid request: {error}"))
}

fn trace_id() -> String {
    let mut bytes = [0u8; 16];
    // A trace id without randomness is still a valid id; it just does not tell requests apart.
    let _ = getrandom::fill(&mut bytes);
    hex::encode(bytes)
}

pub fn check(bundles: &Path, request_path: &Path, compact: bool) -> u8 {
    let set = match load(bundles) {
        Ok(set) => set,
        Err(message) => {
            eprint!("{message}");
            return INVALID;
        }
    };
    let mut request = match read_request(request_path) {
        Ok(request) => request,
        Err(message) => {
            eprintln!("error: {message}");
            return INVALID;
        }
    };
    if set.get(&request.tenant).is_none() {
        let known: Vec<String> = set.iter().map(|s| s.tenant().to_string()).collect();
        eprintln!(
            "error: tenant `{}` has no bundle in {} (known: {})",
            request.tenant,
            bundles.display(),
            known.join(", ")
        );
        return INVALID;
    }
    // The CLI is an offline tool: a request without a time is decided at the current time.
    if request.context.time.is_none() {
        request.context.time = Some(jiff::Timestamp::now());
    }
    if request.trace_id.is_none() {
        request.trace_id = Some(trace_id());
    }
    let decision = set.decide(&request);
    let rendered = if compact {
        serde_json::to_string(&decision)
    } else {
        serde_json::to_string_pretty(&decision)
    };
    match rendered {
        Ok(text) => println!("{text}"),
        Err(error) => {
            eprintln!("error: cannot render the decision: {error}");
            return INVALID;
        }
    }
    if decision.is_allowed() { OK } else { NO }
}

pub fn test(dir: &Path, verbose: bool) -> u8 {
    let set = match load(dir) {
        Ok(set) => set,
        Err(message) => {
            eprint!("{message}");
            return INVALID;
        }
    };
    let outcomes = run_tests(&set);
    let failed = outcomes.iter().filter(|outcome| !outcome.passed()).count();
    for outcome in &outcomes {
        if outcome.passed() {
            if verbose {
                println!(
                    "PASS {} {} ({})",
                    outcome.tenant, outcome.name, outcome.location
                );
            }
            continue;
        }
        println!(
            "FAIL {} {} ({})",
            outcome.tenant, outcome.name, outcome.location
        );
        for failure in &outcome.failures {
            println!("  {failure}");
        }
        let explanation = serde_json::to_string_pretty(&outcome.decision).unwrap_or_default();
        for line in explanation.lines() {
            println!("  | {line}");
        }
    }
    println!(
        "{} test{}, {} passed, {failed} failed",
        outcomes.len(),
        if outcomes.len() == 1 { "" } else { "s" },
        outcomes.len() - failed
    );
    if outcomes.is_empty() {
        println!("note: the bundles carry no tests");
    }
    if all_passed(&outcomes) { OK } else { NO }
}

pub fn serve(config: Option<&Path>, overrides: portcullis_server::Overrides) -> u8 {
    match portcullis_server::Config::load(config, &overrides) {
        Ok(config) => run(config),
        Err(error) => {
            eprintln!("error: {error}");
            INVALID
        }
    }
}

/// `portcullis gateway`: the service with its `[gateway]` section, which must be there.
pub fn gateway(file: &Path, overrides: portcullis_server::Overrides) -> u8 {
    match portcullis_server::Config::load(Some(file), &overrides) {
        Ok(config) if config.gateway.is_none() => {
            eprintln!(
                "error: {}: no [gateway] section (the gateway needs at least one [[gateway.apps]])",
                file.display()
            );
            INVALID
        }
        Ok(config) => run(config),
        Err(error) => {
            eprintln!("error: {error}");
            INVALID
        }
    }
}

/// Runs the service on `config` until it is stopped.
fn run(mut config: portcullis_server::Config) -> u8 {
    // The supply-chain gate scans the packages compiled into this binary: its embedded SBOM.
    // Without a usable list the gate has nothing to scan and fails closed as configured.
    let packages = crate::supply::packages().ok().map(std::sync::Arc::new);
    if let Some(settings) = config.supply_chain.as_mut() {
        settings.packages = packages
            .as_deref()
            .and_then(|list| list.to_lockfile().ok())
            .map(std::sync::Arc::new);
    }
    config.sbom = packages;
    init_logging(&config.log);
    // Confined to one CPU (a container limit, `taskset`), a single-threaded scheduler serves
    // every connection without the work-stealing machinery a lone worker would still pay for.
    let one_cpu = std::thread::available_parallelism().is_ok_and(|cpus| cpus.get() == 1);
    let mut builder = if one_cpu {
        tokio::runtime::Builder::new_current_thread()
    } else {
        tokio::runtime::Builder::new_multi_thread()
    };
    let runtime = match builder.enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the runtime: {error}");
            return NO;
        }
    };
    match runtime.block_on(portcullis_server::serve::run(config)) {
        Ok(()) => OK,
        Err(message) => {
            eprintln!("error: {message}");
            NO
        }
    }
}

fn init_logging(log: &portcullis_server::config::LogConfig) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .or_else(|_| tracing_subscriber::EnvFilter::try_new(&log.level))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = if log.json {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}
