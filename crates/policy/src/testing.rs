//! Bundle tests: the `tests` section of a bundle, run by `portcullis test`.
//!
//! A test is a request (without a tenant, which defaults to the bundle's) and an expected
//! decision, optionally with the granting statements and forbids the decision must name. Every
//! test is decided with the explanation on, so a failure can show why.

use std::collections::BTreeSet;

use portcullis_core::{Decision, TenantId};

use crate::diagnostic::Location;
use crate::engine::PolicySet;
// The model owns the request type because decoding fills it in; callers find it here, next to
// the runner that uses it.
pub use crate::model::TestRequest;

/// The result of one test.
#[derive(Debug, Clone)]
pub struct TestOutcome {
    /// The bundle's tenant.
    pub tenant: TenantId,
    /// The test's name.
    pub name: String,
    /// Where the test is written.
    pub location: Location,
    /// What went wrong; empty when the test passed.
    pub failures: Vec<String>,
    /// The decision, with its explanation.
    pub decision: Decision,
}

impl TestOutcome {
    /// Whether the test passed.
    pub fn passed(&self) -> bool {
        self.failures.is_empty()
    }
}

/// Runs every test of every bundle in `set`, in tenant then file order.
pub fn run_tests(set: &PolicySet) -> Vec<TestOutcome> {
    let mut outcomes = Vec::new();
    for snapshot in set.iter() {
        for test in snapshot.tests() {
            let request = test.value.request.to_request(snapshot.tenant());
            let decision = set.decide(&request);
            let mut failures = Vec::new();
            if decision.decision != test.value.expect {
                failures.push(format!(
                    "expected {}, got {} ({})",
                    test.value.expect.as_str(),
                    decision.decision.as_str(),
                    serde_json::to_value(decision.cause)
                        .ok()
                        .and_then(|v| v.as_str().map(str::to_owned))
                        .unwrap_or_default()
                ));
            }
            if let Some(expected) = &test.value.reasons {
                let actual: BTreeSet<String> =
                    decision.reasons.iter().map(|r| r.id.to_string()).collect();
                if &actual != expected {
                    failures.push(format!("expected reasons {expected:?}, got {actual:?}"));
                }
            }
            if let Some(expected) = &test.value.forbids {
                let actual: BTreeSet<String> =
                    decision.forbids.iter().map(|f| f.to_string()).collect();
                if &actual != expected {
                    failures.push(format!("expected forbids {expected:?}, got {actual:?}"));
                }
            }
            outcomes.push(TestOutcome {
                tenant: snapshot.tenant().clone(),
                name: test.value.name.clone(),
                location: test.location.clone(),
                failures,
                decision,
            });
        }
    }
    outcomes
}

/// Whether every outcome passed.
pub fn all_passed(outcomes: &[TestOutcome]) -> bool {
    outcomes.iter().all(TestOutcome::passed)
}
