//! Runs every conformance corpus file against the library.
#![allow(clippy::unwrap_used, clippy::panic, reason = "test harness")]

use std::path::Path;
use std::sync::Arc;

use portcullis_rebac::corpus::load_dir;
use portcullis_rebac::{CheckRequest, Graph, Model, User, UserFilter};

#[test]
fn corpus() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus");
    let files = load_dir(&dir).unwrap();
    assert!(files.len() >= 12, "only {} corpus files", files.len());
    let mut failures = Vec::new();
    let mut cases = 0;
    for file in &files {
        let model =
            Arc::new(Model::from_dsl(&file.model).unwrap_or_else(|e| panic!("{}: {e}", file.name)));
        let graph = Graph::build(model, file.tuples.clone())
            .unwrap_or_else(|e| panic!("{}: {e}", file.name));
        for case in &file.tests.check {
            cases += 1;
            let request = CheckRequest {
                user: case.user.parse().unwrap(),
                relation: case.relation.clone(),
                object: case.object.parse().unwrap(),
                context: case.context.clone(),
                contextual_tuples: case.contextual_tuples.clone(),
            };
            let got = graph.check(&request);
            let ok = match (&got, case.expect, &case.error) {
                (Ok(result), Some(expect), None) => result.allowed == expect,
                (Err(error), None, Some(want)) => error.to_string().contains(want.as_str()),
                _ => false,
            };
            if !ok {
                failures.push(format!(
                    "{}: check {}#{}@{}: got {got:?}, want {:?}/{:?}",
                    file.name, case.object, case.relation, case.user, case.expect, case.error
                ));
            }
        }
        for case in &file.tests.list_objects {
            cases += 1;
            let user: User = case.user.parse().unwrap();
            let got = graph.list_objects(
                &user,
                &case.relation,
                &case.object_type,
                &case.context,
                &case.contextual_tuples,
            );
            let ok = match (&got, &case.error) {
                (Ok(objects), None) => {
                    let mut got: Vec<String> = objects.iter().map(ToString::to_string).collect();
                    let mut want = case.expect.clone();
                    got.sort();
                    want.sort();
                    got == want
                }
                (Err(error), Some(want)) => error.to_string().contains(want.as_str()),
                _ => false,
            };
            if !ok {
                failures.push(format!(
                    "{}: list_objects {} {} {}: got {got:?}, want {:?}",
                    file.name, case.user, case.relation, case.object_type, case.expect
                ));
            }
        }
        for case in &file.tests.list_users {
            cases += 1;
            let filters: Vec<UserFilter> =
                case.filters.iter().map(|f| f.parse().unwrap()).collect();
            let got = graph.list_users(
                &case.object.parse().unwrap(),
                &case.relation,
                &filters,
                &case.context,
                &case.contextual_tuples,
            );
            let ok = match (&got, &case.error) {
                (Ok(users), None) => {
                    let mut got: Vec<String> = users.iter().map(ToString::to_string).collect();
                    let mut want = case.expect.clone();
                    got.sort();
                    want.sort();
                    got == want
                }
                (Err(error), Some(want)) => error.to_string().contains(want.as_str()),
                _ => false,
            };
            if !ok {
                failures.push(format!(
                    "{}: list_users {}#{} {:?}: got {got:?}, want {:?}/{:?}",
                    file.name, case.object, case.relation, case.filters, case.expect, case.error
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {cases} corpus cases failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
