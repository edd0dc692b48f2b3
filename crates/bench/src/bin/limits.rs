//! Measures what the bundle and CEL limits bound, in one run, as Markdown:
//!
//! * compiling a bundle at every limit at once (`portcullis_policy::limits::bundle_at_limits`):
//!   wall time (median of several runs) against the time the same files take only to parse as
//!   YAML (the floor: nothing can compile a bundle without reading it), and the peak resident
//!   memory of a child process that only compiles it, against one that only parses it;
//! * the worst decision the CEL budget allows: conditions that together spend the whole
//!   per-decision budget, against a decision on the same bundle whose conditions stop early.
//!
//! Run with `cargo run --release -p portcullis-bench --bin limits`.

use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use portcullis_core::{Principal, Request, Resource, TenantId};
use portcullis_policy::{LoadOptions, SourceFile, compile_files, decide, limits};

const RUNS: usize = 5;

fn peak_resident_kib() -> Result<u64> {
    let status = std::fs::read_to_string("/proc/self/status").context("/proc/self/status")?;
    let line = status
        .lines()
        .find(|line| line.starts_with("VmHWM:"))
        .context("no VmHWM line")?;
    line.trim_start_matches("VmHWM:")
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .context("VmHWM value")
}

fn parse_only(files: &[SourceFile]) -> Result<()> {
    let options = portcullis_policy::yaml::YamlLimits::default();
    for file in files {
        if file.path.extension().is_some_and(|ext| ext == "yaml") {
            portcullis_policy::yaml::parse(&file.text, &options)
                .map_err(|error| anyhow::anyhow!("{}: {}", file.path.display(), error.message))?;
        }
    }
    Ok(())
}

fn compile(files: &[SourceFile]) -> Result<portcullis_policy::Snapshot> {
    compile_files("limits".as_ref(), files, &LoadOptions::default())
        .map_err(|error| anyhow::anyhow!("the bundle at the limits does not compile: {error}"))
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

/// In a child process: generate the bundle, then parse or compile it, and print the peak RSS
/// in KiB (what generating it costs is measured by `generate`).
fn child(mode: &str) -> Result<()> {
    let files = limits::bundle_at_limits();
    match mode {
        "generate" => {}
        "parse" => parse_only(&files)?,
        "compile" => {
            compile(&files)?;
        }
        other => bail!("unknown mode {other}"),
    }
    println!("{}", peak_resident_kib()?);
    Ok(())
}

fn child_peak(mode: &str) -> Result<u64> {
    let output = Command::new(std::env::current_exe()?)
        .args(["--child", mode])
        .output()?;
    if !output.status.success() {
        bail!("{}", String::from_utf8_lossy(&output.stderr));
    }
    Ok(String::from_utf8(output.stdout)?.trim().parse()?)
}

/// A bundle whose one action carries `rules` permit rules, each with a condition near the
/// static cost limit: a loop over a request list with a loop over five numbers in each step.
fn costly_bundle(rules: usize) -> Result<portcullis_policy::Snapshot> {
    let mut policy = String::from("rules:\n");
    for rule in 0..rules {
        policy.push_str(&format!(
            "  - {{ id: R{rule}, effect: permit, actions: [\"doc:read\"], when: \"context.tags.exists(t, [0,1,2,3,4].exists(n, t == principal.id + string(n)))\" }}\n"
        ));
    }
    let files = vec![
        SourceFile {
            path: "costly/tenant.yaml".into(),
            text: "tenant: costly\ntimezone: UTC\n".into(),
        },
        SourceFile {
            path: "costly/policy.yaml".into(),
            text: policy,
        },
    ];
    compile_files("costly".as_ref(), &files, &LoadOptions::default())
        .map_err(|error| anyhow::anyhow!("{error}"))
}

fn request(tags: usize) -> Result<Request> {
    let mut request = Request {
        tenant: TenantId::new("costly")?,
        principal: Principal::user("mallory"),
        action: "doc:read".into(),
        resource: Resource::new("doc", "1"),
        context: Default::default(),
        env: Default::default(),
        explain: false,
        action_properties: Default::default(),
        trace_id: None,
    };
    let list: Vec<serde_json::Value> = (0..tags).map(|i| format!("tag{i}").into()).collect();
    request
        .context
        .attributes
        .insert("tags".into(), serde_json::Value::Array(list));
    Ok(request)
}

fn time_decisions(snapshot: &portcullis_policy::Snapshot, request: &Request) -> Duration {
    let runs = 20;
    let mut samples = Vec::with_capacity(runs);
    for _ in 0..runs {
        let start = Instant::now();
        std::hint::black_box(decide(snapshot, request));
        samples.push(start.elapsed());
    }
    median(samples)
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    if args.len() == 3 && args[1] == "--child" {
        return child(&args[2]);
    }

    let files = limits::bundle_at_limits();
    let bytes: usize = files.iter().map(|file| file.text.len()).sum();
    let mut parse_times = Vec::new();
    let mut compile_times = Vec::new();
    // Alternate the two so that a slow spell of the machine hits both.
    for _ in 0..RUNS {
        let start = Instant::now();
        parse_only(&files)?;
        parse_times.push(start.elapsed());
        let start = Instant::now();
        std::hint::black_box(compile(&files)?);
        compile_times.push(start.elapsed());
    }
    let parse = median(parse_times);
    let compile_time = median(compile_times);
    let generate_kib = child_peak("generate")?;
    let parse_kib = child_peak("parse")?;
    let compile_kib = child_peak("compile")?;

    println!("## Bundle at every limit\n");
    println!(
        "{} files, {:.1} MiB of YAML and model text.\n",
        files.len(),
        bytes as f64 / 1048576.0
    );
    println!("| measure | parse only (floor) | compile | compile / floor | target |");
    println!("|---|---:|---:|---:|---|");
    println!(
        "| wall time, median of {RUNS} | {:.0} ms | {:.0} ms | {:.2}× | ≤ 1 s: {} |",
        parse.as_secs_f64() * 1e3,
        compile_time.as_secs_f64() * 1e3,
        compile_time.as_secs_f64() / parse.as_secs_f64(),
        if compile_time <= Duration::from_secs(1) {
            "met"
        } else {
            "NOT met"
        }
    );
    println!(
        "| peak RSS of a process (generating the text: {:.0} MiB) | {:.0} MiB | {:.0} MiB | {:.2}× | ≤ 256 MB: {} |",
        generate_kib as f64 / 1024.0,
        parse_kib as f64 / 1024.0,
        compile_kib as f64 / 1024.0,
        compile_kib as f64 / parse_kib as f64,
        if compile_kib * 1024 <= 256_000_000 {
            "met"
        } else {
            "NOT met"
        }
    );

    // The worst decision: five conditions of about 80,000 units each over a list at the input
    // limit spend the 200,000-unit budget; with a short list the same conditions stop early.
    let snapshot = costly_bundle(5)?;
    let worst = request(portcullis_cel::limits::MAX_INPUT_ITEMS)?;
    let cheap = request(3)?;
    let decision = decide(&snapshot, &worst);
    let stopped = decision
        .errors
        .iter()
        .any(|error| error.message.contains("budget"));
    let worst_time = time_decisions(&snapshot, &worst);
    let cheap_time = time_decisions(&snapshot, &cheap);
    println!("\n## Worst decision within the CEL budget\n");
    println!(
        "| decision | median | / cheap |\n|---|---:|---:|\n| 5 costly conditions over a 3-item list | {:.1} µs | 1× |\n| the same over a {}-item list (budget of {} units {}) | {:.2} ms | {:.0}× |",
        cheap_time.as_secs_f64() * 1e6,
        portcullis_cel::limits::MAX_INPUT_ITEMS,
        portcullis_cel::limits::EVALUATION_BUDGET,
        if stopped {
            "spent: evaluation stopped"
        } else {
            "not spent"
        },
        worst_time.as_secs_f64() * 1e3,
        worst_time.as_secs_f64() / cheap_time.as_secs_f64(),
    );
    Ok(())
}
