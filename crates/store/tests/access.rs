//! Requests for temporary access on both backends: every approval rule, checked in the store's
//! own transaction, with the statement audit active throughout.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code: a failed setup step must fail the test"
)]

mod support;

use portcullis_store::{AccessFilter, AccessStatus, NewAccessRequest, StoreError, TenantId};
use support::{audit_check, backends};

const HOUR_US: i64 = 3_600_000_000;

/// A window start a day from now, so that the store's own clock (which its run-time read
/// uses) sees the grants as live.
fn t0() -> i64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_micros();
    i64::try_from(now).unwrap() + 24 * HOUR_US
}

fn tenant(id: &str) -> TenantId {
    TenantId::new(id).unwrap()
}

fn new_request(id: &str, requester: &str, required: u8, t0: i64) -> NewAccessRequest {
    NewAccessRequest {
        id: id.to_owned(),
        requester: requester.to_owned(),
        action: "app:release".to_owned(),
        resource: "app:payments".to_owned(),
        reason: "incident 42: payments are down".to_owned(),
        not_before_us: t0,
        not_after_us: t0 + HOUR_US,
        cert: Some("laptop-7".to_owned()),
        networks: vec!["192.0.2.0/24".to_owned()],
        approvals_required: required,
    }
}

fn refused(result: Result<impl std::fmt::Debug, StoreError>) -> &'static str {
    match result {
        Err(StoreError::Refused { code, .. }) => code,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[tokio::test]
async fn approval_rules_hold_on_every_backend() {
    for backend in backends().await {
        let name = backend.name;
        let t0 = t0();
        let acme = backend.store.tenant(&tenant("acme"));
        acme.create(None).await.unwrap();
        let during = t0 + 60_000_000;

        // One approval needed.
        let created = acme
            .create_access_request(&new_request("ta-1", "olga", 1, t0))
            .await
            .unwrap();
        assert_eq!(created.status, AccessStatus::Pending, "{name}");
        assert_eq!(
            refused(
                acme.approve_access_request("ta-1", "olga", None, during)
                    .await
            ),
            "self_approval",
            "{name}: nobody approves their own request"
        );
        let before = acme.get().await.unwrap().unwrap().data_revision;
        let approved = acme
            .approve_access_request("ta-1", "sofia", Some("ok, incident open"), during)
            .await
            .unwrap();
        assert_eq!(approved.status, AccessStatus::Approved, "{name}");
        assert_eq!(approved.approvals[0].approver, "sofia");
        assert!(
            acme.get().await.unwrap().unwrap().data_revision > before,
            "{name}: a new grant raises the data revision"
        );
        assert_eq!(
            refused(
                acme.approve_access_request("ta-1", "leo", None, during)
                    .await
            ),
            "not_pending",
            "{name}"
        );
        let runtime = acme.runtime().await.unwrap();
        assert_eq!(runtime.grants.len(), 1, "{name}");
        assert_eq!(runtime.grants[0].approvals[0].approver, "sofia");

        // Two approvals needed: two different people.
        acme.create_access_request(&new_request("ta-2", "olga", 2, t0))
            .await
            .unwrap();
        let first = acme
            .approve_access_request("ta-2", "sofia", None, during)
            .await
            .unwrap();
        assert_eq!(first.status, AccessStatus::Pending, "{name}: one of two");
        assert_eq!(
            refused(
                acme.approve_access_request("ta-2", "sofia", None, during)
                    .await
            ),
            "already_approved",
            "{name}: one person cannot give both approvals"
        );
        let second = acme
            .approve_access_request("ta-2", "leo", None, during)
            .await
            .unwrap();
        assert_eq!(second.status, AccessStatus::Approved, "{name}");
        let approvers: Vec<&str> = second
            .approvals
            .iter()
            .map(|a| a.approver.as_str())
            .collect();
        assert_eq!(approvers, ["sofia", "leo"], "{name}");

        // A rejected request cannot be approved later.
        acme.create_access_request(&new_request("ta-3", "olga", 1, t0))
            .await
            .unwrap();
        assert_eq!(
            refused(
                acme.reject_access_request("ta-3", "olga", None, during)
                    .await
            ),
            "self_approval",
            "{name}"
        );
        let rejected = acme
            .reject_access_request("ta-3", "sofia", Some("use the runbook"), during)
            .await
            .unwrap();
        assert_eq!(rejected.status, AccessStatus::Rejected);
        assert_eq!(rejected.closed_by.as_deref(), Some("sofia"));
        assert_eq!(
            refused(
                acme.approve_access_request("ta-3", "leo", None, during)
                    .await
            ),
            "not_pending",
            "{name}"
        );

        // An expired request cannot be approved: at the window's end exactly.
        acme.create_access_request(&new_request("ta-4", "olga", 1, t0))
            .await
            .unwrap();
        assert_eq!(
            refused(
                acme.approve_access_request("ta-4", "sofia", None, t0 + HOUR_US)
                    .await
            ),
            "window_ended",
            "{name}"
        );
        acme.approve_access_request("ta-4", "sofia", None, t0 + HOUR_US - 1)
            .await
            .unwrap();

        // Revocation: at once, and only of an open request.
        let revoked = acme
            .revoke_access_request("ta-1", "sofia", Some("incident closed"), during)
            .await
            .unwrap();
        assert_eq!(revoked.status, AccessStatus::Revoked, "{name}");
        assert_eq!(
            refused(
                acme.revoke_access_request("ta-1", "sofia", None, during)
                    .await
            ),
            "not_open",
            "{name}"
        );
        assert_eq!(
            refused(
                acme.revoke_access_request("ta-3", "sofia", None, during)
                    .await
            ),
            "not_open",
            "{name}: a rejected request stays rejected"
        );
        let ids: Vec<String> = acme
            .runtime()
            .await
            .unwrap()
            .grants
            .into_iter()
            .map(|g| g.id)
            .collect();
        assert_eq!(ids, ["ta-2", "ta-4"], "{name}: revoked grants are gone");

        // Expiry is recorded once, by whoever records it first.
        acme.create_access_request(&new_request("ta-5", "olga", 1, t0))
            .await
            .unwrap();
        let expired = acme.expire_access(t0 + HOUR_US).await.unwrap();
        let ids: Vec<&str> = expired.iter().map(|r| r.id.as_str()).collect();
        assert_eq!(ids, ["ta-2", "ta-4", "ta-5"], "{name}");
        assert!(acme.expire_access(t0 + HOUR_US).await.unwrap().is_empty());
        assert!(acme.runtime().await.unwrap().grants.is_empty(), "{name}");

        // Listing, filtered.
        let all = acme
            .access_requests(&AccessFilter {
                limit: 100,
                ..AccessFilter::default()
            })
            .await
            .unwrap();
        assert_eq!(all.len(), 5, "{name}");
        let rejected = acme
            .access_requests(&AccessFilter {
                status: Some(AccessStatus::Rejected),
                requester: Some("olga".into()),
                limit: 100,
            })
            .await
            .unwrap();
        assert_eq!(rejected.len(), 1, "{name}");
        assert_eq!(rejected[0].id, "ta-3");
        let one = acme.access_request("ta-2").await.unwrap().unwrap();
        assert_eq!(one.approvals.len(), 2, "{name}");
        assert!(acme.access_request("nope").await.unwrap().is_none());
        assert!(matches!(
            acme.approve_access_request("nope", "sofia", None, during)
                .await,
            Err(StoreError::NotFound(_))
        ));

        // Bad input and duplicates.
        assert!(matches!(
            acme.create_access_request(&new_request("ta-1", "olga", 1, t0))
                .await,
            Err(StoreError::Conflict(_))
        ));
        let mut empty = new_request("ta-9", "olga", 1, t0);
        empty.not_after_us = empty.not_before_us;
        assert!(matches!(
            acme.create_access_request(&empty).await,
            Err(StoreError::Invalid(_))
        ));
        let mut three = new_request("ta-9", "olga", 3, t0);
        three.approvals_required = 3;
        assert!(matches!(
            acme.create_access_request(&three).await,
            Err(StoreError::Invalid(_))
        ));
        let ghost = backend.store.tenant(&tenant("ghost"));
        assert!(matches!(
            ghost
                .create_access_request(&new_request("ta-1", "olga", 1, t0))
                .await,
            Err(StoreError::NotFound(_))
        ));

        // Another tenant sees none of it; deleting the tenant removes it.
        let other = backend.store.tenant(&tenant("other"));
        other.create(None).await.unwrap();
        assert!(other.access_request("ta-2").await.unwrap().is_none());
        acme.delete().await.unwrap();
        acme.create(None).await.unwrap();
        assert!(
            acme.access_request("ta-2").await.unwrap().is_none(),
            "{name}"
        );
    }
    audit_check();
}

#[tokio::test]
async fn concurrent_approvals_by_one_person_count_once() {
    for backend in backends().await {
        let name = backend.name;
        let t0 = t0();
        let acme = backend.store.tenant(&tenant("acme"));
        acme.create(None).await.unwrap();
        acme.create_access_request(&new_request("ta-1", "olga", 2, t0))
            .await
            .unwrap();
        let during = t0 + 1;
        let attempts = (0..6).map(|_| {
            let store = backend.store.clone();
            tokio::spawn(async move {
                store
                    .tenant(&tenant("acme"))
                    .approve_access_request("ta-1", "sofia", None, during)
                    .await
            })
        });
        let mut accepted = 0;
        for attempt in attempts {
            match attempt.await.unwrap() {
                Ok(_) => accepted += 1,
                Err(StoreError::Refused { code, .. }) => assert_eq!(code, "already_approved"),
                // The primary key stops a racing insert the row lock did not (SQLite's
                // busy writer may also answer so).
                Err(StoreError::Conflict(_)) => {}
                Err(other) => panic!("{name}: {other:?}"),
            }
        }
        assert_eq!(accepted, 1, "{name}");
        let request = acme.access_request("ta-1").await.unwrap().unwrap();
        assert_eq!(request.status, AccessStatus::Pending, "{name}");
        assert_eq!(request.approvals.len(), 1, "{name}");
    }
    audit_check();
}
