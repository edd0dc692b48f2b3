//! The store's repository API on both backends, with the statement audit active throughout.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code: a failed setup step must fail the test"
)]

mod support;

use std::collections::BTreeMap;

use portcullis_store::{
    AuditFilter, AuditLine, Change, StoreError, StoredTuple, TenantId, TenantStatus, TupleFilter,
    TupleOperation, TupleWriteOptions,
};
use serde_json::json;
use sqlx::Row;
use support::{audit_check, backends, violation};

fn tenant(id: &str) -> TenantId {
    TenantId::new(id).unwrap()
}

fn attributes(value: serde_json::Value) -> serde_json::Map<String, serde_json::Value> {
    value.as_object().unwrap().clone()
}

#[test]
fn the_audit_rule_catches_what_it_should() {
    assert!(violation("SELECT * FROM principals").is_some());
    assert!(violation("SELECT * FROM principals WHERE principal_id = $1").is_some());
    assert!(violation("DELETE FROM role_assignments WHERE role = $1").is_some());
    assert!(violation("UPDATE tenants SET status = $1").is_some());
    assert!(violation("INSERT INTO bundles (version, files) VALUES ($1, $2)").is_some());
    assert!(violation("SELECT a FROM principals WHERE tenant_id = $1").is_none());
    assert!(violation("INSERT INTO bundles (tenant_id, version) VALUES ($1, $2)").is_none());
    assert!(violation("SELECT set_config('app.tenant_id', $1, true)").is_none());
    assert!(violation("SELECT 1").is_none());
    assert!(
        violation("SELECT a FROM principals WHERE tenant_id = $1 OR principal_id = $2").is_some()
    );
}

#[tokio::test]
async fn tenant_lifecycle_and_bad_input() {
    for backend in backends().await {
        let name = backend.name;
        let acme = backend.store.tenant(&tenant("acme"));
        let created = acme.create(Some("ops.acme.example")).await.unwrap();
        assert_eq!(created.status, TenantStatus::Active, "{name}");
        assert!(
            matches!(acme.create(None).await, Err(StoreError::Conflict(message)) if message.contains("already exists")),
            "{name}"
        );
        let before = acme.get().await.unwrap().unwrap().data_revision;
        let after = acme.set_status(TenantStatus::Suspended).await.unwrap();
        assert!(after > before, "{name}: a change raises the data revision");
        assert_eq!(
            acme.get().await.unwrap().unwrap().status,
            TenantStatus::Suspended
        );

        let ghost = backend.store.tenant(&tenant("ghost"));
        assert!(ghost.get().await.unwrap().is_none());
        assert!(
            matches!(
                ghost.set_status(TenantStatus::Active).await,
                Err(StoreError::NotFound(_))
            ),
            "{name}"
        );
        assert!(
            matches!(
                ghost
                    .upsert_principal("p", "user", &attributes(json!({})))
                    .await,
                Err(StoreError::NotFound(_))
            ),
            "{name}"
        );
        assert!(
            matches!(
                ghost.assign("p", "r", "*").await,
                Err(StoreError::NotFound(_))
            ),
            "{name}"
        );
        assert!(
            matches!(ghost.delete().await, Err(StoreError::NotFound(_))),
            "{name}"
        );

        assert!(
            matches!(
                acme.assign("p", "r", "no-colon").await,
                Err(StoreError::Invalid(_))
            ),
            "{name}"
        );
        assert!(
            matches!(acme.assign("", "r", "*").await, Err(StoreError::Invalid(_))),
            "{name}"
        );
        assert!(
            matches!(
                acme.assign("p\n", "r", "*").await,
                Err(StoreError::Invalid(_))
            ),
            "{name}"
        );
        assert!(
            matches!(
                acme.upsert_principal(&"x".repeat(300), "user", &attributes(json!({})))
                    .await,
                Err(StoreError::Invalid(_))
            ),
            "{name}"
        );
        assert!(
            matches!(
                acme.revoke("nobody", "r", "*").await,
                Err(StoreError::NotFound(_))
            ),
            "{name}"
        );
        assert!(
            matches!(
                acme.delete_principal("nobody").await,
                Err(StoreError::NotFound(_))
            ),
            "{name}"
        );

        acme.delete().await.unwrap();
        assert!(acme.get().await.unwrap().is_none());
        assert!(audit_check() > 0);
        backend.finish().await;
    }
}

#[tokio::test]
async fn bundles_keep_their_history_and_roll_back() {
    for backend in backends().await {
        let name = backend.name;
        let acme = backend.store.tenant(&tenant("acme"));
        acme.create(None).await.unwrap();
        assert!(acme.bundle(None).await.unwrap().is_none());
        let v1_files = BTreeMap::from([("tenant.yaml".to_owned(), "tenant: acme\n".to_owned())]);
        let v2_files = BTreeMap::from([
            ("tenant.yaml".to_owned(), "tenant: acme\n".to_owned()),
            ("roles.yaml".to_owned(), "roles: {}\n".to_owned()),
        ]);
        let v1 = acme
            .put_bundle(&v1_files, "sha256:one", "ops")
            .await
            .unwrap();
        let v2 = acme
            .put_bundle(&v2_files, "sha256:two", "audit")
            .await
            .unwrap();
        assert_eq!((v1.version, v2.version), (1, 2), "{name}");
        let active = acme.bundle(None).await.unwrap().unwrap();
        assert_eq!(
            (active.version.version, active.files.clone()),
            (2, v2_files.clone()),
            "{name}"
        );
        let history = acme.bundle_history().await.unwrap();
        assert_eq!(
            history
                .iter()
                .map(|v| (v.version, v.active, v.uploaded_by.as_str()))
                .collect::<Vec<_>>(),
            [(2, true, "audit"), (1, false, "ops")]
        );
        acme.activate_bundle(1).await.unwrap();
        assert_eq!(
            acme.bundle(None).await.unwrap().unwrap().files,
            v1_files,
            "{name}: rolled back"
        );
        assert_eq!(
            acme.bundle(Some(2)).await.unwrap().unwrap().files,
            v2_files,
            "{name}: later versions stay"
        );
        assert!(
            matches!(acme.activate_bundle(9).await, Err(StoreError::NotFound(_))),
            "{name}"
        );
        audit_check();
        backend.finish().await;
    }
}

#[tokio::test]
async fn principals_and_assignments_round_trip() {
    for backend in backends().await {
        let name = backend.name;
        let acme = backend.store.tenant(&tenant("acme"));
        acme.create(None).await.unwrap();
        acme.upsert_principal(
            "dave",
            "user",
            &attributes(json!({"phone": "v1:k1:abc", "level": 3})),
        )
        .await
        .unwrap();
        acme.upsert_principal("dave", "service", &attributes(json!({"level": 4})))
            .await
            .unwrap();
        let dave = acme.principal("dave").await.unwrap().unwrap();
        assert_eq!(
            (dave.kind.as_str(), dave.attributes.get("level")),
            ("service", Some(&json!(4))),
            "{name}: upsert replaces"
        );
        for id in ["erin", "carl", "bea"] {
            acme.upsert_principal(id, "user", &attributes(json!({})))
                .await
                .unwrap();
        }
        let first = acme.principals(None, 2).await.unwrap();
        let next = acme.principals(Some(&first[1].id), 10).await.unwrap();
        let ids: Vec<&str> = first.iter().chain(&next).map(|p| p.id.as_str()).collect();
        assert_eq!(
            ids,
            ["bea", "carl", "dave", "erin"],
            "{name}: paginated in id order"
        );

        acme.assign("dave", "operator", "*").await.unwrap();
        acme.assign("dave", "operator", "*").await.unwrap();
        acme.assign("dave", "owner", "doc:*").await.unwrap();
        acme.assign("erin", "viewer", "*").await.unwrap();
        let daves = acme.assignments(Some("dave")).await.unwrap();
        assert_eq!(
            daves
                .iter()
                .map(|a| (a.role.as_str(), a.resource.as_str()))
                .collect::<Vec<_>>(),
            [("operator", "*"), ("owner", "doc:*")],
            "{name}"
        );
        acme.revoke("dave", "owner", "doc:*").await.unwrap();
        let runtime = acme.runtime().await.unwrap();
        assert_eq!(runtime.principals.len(), 4);
        assert_eq!(
            runtime.assignments.len(),
            2,
            "{name}: {:?}",
            runtime.assignments
        );
        acme.delete_principal("dave").await.unwrap();
        assert_eq!(
            acme.assignments(Some("dave")).await.unwrap(),
            [],
            "{name}: assignments go with the principal"
        );
        audit_check();
        backend.finish().await;
    }
}

#[tokio::test]
async fn every_call_sees_only_its_tenant() {
    for backend in backends().await {
        let name = backend.name;
        let (a, b) = (tenant("tenant-a"), tenant("tenant-b"));
        for (id, secret) in [(&a, "alpha"), (&b, "bravo")] {
            let scope = backend.store.tenant(id);
            scope.create(None).await.unwrap();
            scope
                .upsert_principal(
                    "shared-name",
                    "user",
                    &attributes(json!({ "secret": secret })),
                )
                .await
                .unwrap();
            scope
                .upsert_principal(&format!("only-{secret}"), "user", &attributes(json!({})))
                .await
                .unwrap();
            scope
                .assign("shared-name", &format!("role-{secret}"), "*")
                .await
                .unwrap();
            scope
                .put_bundle(
                    &BTreeMap::from([("tenant.yaml".to_owned(), format!("tenant: {id}\n"))]),
                    &format!("sha256:{secret}"),
                    "ops",
                )
                .await
                .unwrap();
        }
        let scope = backend.store.tenant(&a);
        assert_eq!(
            scope
                .principal("shared-name")
                .await
                .unwrap()
                .unwrap()
                .attributes["secret"],
            "alpha",
            "{name}"
        );
        assert!(
            scope.principal("only-bravo").await.unwrap().is_none(),
            "{name}"
        );
        assert!(
            scope
                .principals(None, 100)
                .await
                .unwrap()
                .iter()
                .all(|p| p.id != "only-bravo")
        );
        assert!(
            scope
                .assignments(None)
                .await
                .unwrap()
                .iter()
                .all(|x| x.role == "role-alpha"),
            "{name}"
        );
        assert_eq!(
            scope.bundle(None).await.unwrap().unwrap().version.revision,
            "sha256:alpha"
        );
        assert_eq!(scope.bundle_history().await.unwrap().len(), 1);
        assert!(
            matches!(
                scope.revoke("shared-name", "role-bravo", "*").await,
                Err(StoreError::NotFound(_))
            ),
            "{name}: cannot touch B's assignment"
        );
        assert!(
            matches!(
                scope.delete_principal("only-bravo").await,
                Err(StoreError::NotFound(_))
            ),
            "{name}"
        );
        let runtime = scope.runtime().await.unwrap();
        assert!(
            runtime.principals.iter().all(
                |p| p.id != "only-bravo" && p.attributes.get("secret") != Some(&json!("bravo"))
            )
        );
        scope.delete().await.unwrap();
        let other = backend.store.tenant(&b).runtime().await.unwrap();
        assert_eq!(
            other.principals.len(),
            2,
            "{name}: deleting A leaves B whole"
        );
        let directory = backend.store.directory().await.unwrap();
        assert_eq!(
            directory
                .iter()
                .map(|e| e.tenant.as_str())
                .collect::<Vec<_>>(),
            ["tenant-b"]
        );
        audit_check();
        backend.finish().await;
    }
}

/// (b) and (c): the PostgreSQL backstop through the service role itself.
#[tokio::test]
async fn row_level_security_backs_up_the_scoping() {
    if !support::postgres_available().await {
        return;
    }
    let backend = support::postgres().await;
    for (id, secret) in [("tenant-a", "alpha"), ("tenant-b", "bravo")] {
        let scope = backend.store.tenant(&tenant(id));
        scope.create(None).await.unwrap();
        scope
            .upsert_principal("p", "user", &attributes(json!({ "secret": secret })))
            .await
            .unwrap();
    }
    let database = backend.database.clone().unwrap();
    let service = sqlx::PgPool::connect(&format!(
        "postgres://portcullis_service@127.0.0.1:5432/{database}"
    ))
    .await
    .unwrap();
    let who: String = sqlx::query("SELECT current_user AS u")
        .fetch_one(&service)
        .await
        .unwrap()
        .get("u");
    assert_eq!(who, "portcullis_service");
    let bypass: bool =
        sqlx::query("SELECT rolbypassrls AS b FROM pg_roles WHERE rolname = current_user")
            .fetch_one(&service)
            .await
            .unwrap()
            .get("b");
    assert!(!bypass);

    // (b) A query that forgot its tenant sees nothing.
    for table in portcullis_store::TENANT_TABLES {
        let count: i64 = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT /* rls-probe */ count(*) AS n FROM {table}"
        )))
        .fetch_one(&service)
        .await
        .unwrap()
        .get("n");
        assert_eq!(count, 0, "{table} without a tenant");
    }
    // With the tenant set, exactly that tenant's rows.
    let mut tx = service.begin().await.unwrap();
    sqlx::query("SELECT set_config('app.tenant_id', 'tenant-a', true)")
        .execute(&mut *tx)
        .await
        .unwrap();
    let secrets: Vec<String> =
        sqlx::query("SELECT /* rls-probe */ attributes->>'secret' AS s FROM principals")
            .fetch_all(&mut *tx)
            .await
            .unwrap()
            .iter()
            .map(|row| row.get("s"))
            .collect();
    assert_eq!(secrets, ["alpha"]);
    // (c) An insert claiming tenant B inside A's transaction fails.
    let error = sqlx::query("INSERT /* rls-probe */ INTO principals (tenant_id, principal_id, kind, attributes, created_at_us, updated_at_us) VALUES ('tenant-b', 'intruder', 'user', '{}', 0, 0)")
        .execute(&mut *tx)
        .await
        .unwrap_err();
    assert!(error.to_string().contains("row-level security"), "{error}");
    tx.rollback().await.unwrap();
    // Moving A's row to B is refused as well.
    let mut tx = service.begin().await.unwrap();
    sqlx::query("SELECT set_config('app.tenant_id', 'tenant-a', true)")
        .execute(&mut *tx)
        .await
        .unwrap();
    let error = sqlx::query(
        "UPDATE /* rls-probe */ principals SET tenant_id = 'tenant-b' WHERE principal_id = 'p'",
    )
    .execute(&mut *tx)
    .await
    .unwrap_err();
    assert!(error.to_string().contains("row-level security"), "{error}");
    tx.rollback().await.unwrap();
    // The setting is transaction-local: after commit a new transaction sees nothing again.
    let mut tx = service.begin().await.unwrap();
    sqlx::query("SELECT set_config('app.tenant_id', 'tenant-a', true)")
        .execute(&mut *tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let count: i64 = sqlx::query("SELECT /* rls-probe */ count(*) AS n FROM principals")
        .fetch_one(&service)
        .await
        .unwrap()
        .get("n");
    assert_eq!(count, 0);
    // The service role owns no table and cannot switch the policies off.
    let error = sqlx::query("ALTER TABLE principals DISABLE ROW LEVEL SECURITY")
        .execute(&service)
        .await
        .unwrap_err();
    assert!(error.to_string().contains("must be owner"), "{error}");
    service.close().await;
    audit_check();
    backend.finish().await;
}

#[tokio::test]
async fn postgres_announces_changes() {
    if !support::postgres_available().await {
        return;
    }
    let backend = support::postgres().await;
    let mut changes = backend.store.listen();
    // Give the listener a moment to subscribe.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let acme = backend.store.tenant(&tenant("acme"));
    acme.create(None).await.unwrap();
    acme.assign("dave", "operator", "*").await.unwrap();
    let mut seen = Vec::new();
    while seen.len() < 2 {
        let change = tokio::time::timeout(std::time::Duration::from_secs(5), changes.recv())
            .await
            .unwrap()
            .unwrap();
        seen.push(change);
    }
    assert!(
        seen.iter().all(|c| *c == Change::Tenant(tenant("acme"))),
        "{seen:?}"
    );
    audit_check();
    backend.finish().await;
}

#[tokio::test]
async fn shards_keep_each_tenant_on_its_own_database() {
    if !support::postgres_available().await {
        return;
    }
    support::audit_on();
    let (main_url, main_owner, main_name) = support::fresh_postgres_database().await;
    let (shard_url, shard_owner, shard_name) = support::fresh_postgres_database().await;
    let config = portcullis_store::StoreConfig {
        url: main_url,
        migrate_url: Some(main_owner.clone()),
        shards: std::collections::BTreeMap::from([(
            tenant("globex"),
            (shard_url, Some(shard_owner.clone())),
        )]),
        max_connections: 4,
    };
    let store = portcullis_store::Store::open(&config).await.unwrap();
    for id in ["acme", "globex"] {
        let scope = store.tenant(&tenant(id));
        scope.create(None).await.unwrap();
        scope
            .upsert_principal(&format!("{id}-user"), "user", &attributes(json!({})))
            .await
            .unwrap();
        scope
            .assign(&format!("{id}-user"), "viewer", "*")
            .await
            .unwrap();
    }
    let listed: Vec<String> = store
        .directory()
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.tenant.to_string())
        .collect();
    assert_eq!(listed, ["acme", "globex"]);

    // Count each tenant's rows on each database, as the owner (who is not subject to the
    // policies' filtering of the service role).
    async fn rows(owner: &str, id: &str) -> i64 {
        let pool = sqlx::PgPool::connect(owner).await.unwrap();
        let mut total = 0;
        for table in ["tenants", "principals", "role_assignments"] {
            let count: i64 = sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT /* rls-probe */ count(*) AS n FROM {table} WHERE tenant_id = $1"
            )))
            .bind(id)
            .fetch_one(&pool)
            .await
            .unwrap()
            .get("n");
            total += count;
        }
        pool.close().await;
        total
    }
    assert_eq!(
        (
            rows(&main_owner, "acme").await,
            rows(&main_owner, "globex").await
        ),
        (3, 0),
        "globex never touches the main database"
    );
    assert_eq!(
        (
            rows(&shard_owner, "acme").await,
            rows(&shard_owner, "globex").await
        ),
        (0, 3),
        "acme never touches the shard"
    );

    // A stray globex row on the main database is not believed: globex is read from its shard.
    let main = sqlx::PgPool::connect(&main_owner).await.unwrap();
    sqlx::query("INSERT /* rls-probe */ INTO tenants (tenant_id, status, data_revision, created_at_us, updated_at_us) VALUES ('globex', 'suspended', 99, 0, 0)")
        .execute(&main)
        .await
        .unwrap();
    main.close().await;
    let globex = store
        .directory()
        .await
        .unwrap()
        .into_iter()
        .find(|e| e.tenant.as_str() == "globex")
        .unwrap();
    assert_eq!(
        (globex.status, globex.data_revision < 99),
        (TenantStatus::Active, true)
    );
    store.close().await;
    support::drop_database(&main_name).await;
    support::drop_database(&shard_name).await;
    audit_check();
}

#[tokio::test]
async fn concurrent_uploads_take_turns_choosing_versions() {
    for backend in backends().await {
        let name = backend.name;
        let acme = tenant("acme");
        backend.store.tenant(&acme).create(None).await.unwrap();
        let mut uploads = Vec::new();
        for n in 0..40 {
            let store = backend.store.clone();
            let acme = acme.clone();
            uploads.push(tokio::spawn(async move {
                let files =
                    BTreeMap::from([("tenant.yaml".to_owned(), format!("tenant: acme\n# {n}\n"))]);
                store
                    .tenant(&acme)
                    .put_bundle(&files, &format!("sha256:{n}"), "ops")
                    .await
                    .map(|v| v.version)
            }));
        }
        let mut versions = Vec::new();
        for upload in uploads {
            versions.push(
                upload
                    .await
                    .unwrap()
                    .unwrap_or_else(|e| panic!("{name}: {e}")),
            );
        }
        versions.sort_unstable();
        assert_eq!(versions, (1..=40).collect::<Vec<i64>>(), "{name}");
        audit_check();
        backend.finish().await;
    }
}

fn tuple(object: &str, relation: &str, user: &str) -> StoredTuple {
    StoredTuple {
        object: object.to_owned(),
        relation: relation.to_owned(),
        user: user.to_owned(),
        condition: None,
        context: None,
    }
}

#[tokio::test]
async fn tuples_write_read_page_and_log_their_changes() {
    for backend in backends().await {
        let name = backend.name;
        let acme = backend.store.tenant(&tenant("acme"));
        let globex = backend.store.tenant(&tenant("globex"));
        acme.create(None).await.unwrap();
        globex.create(None).await.unwrap();
        let start = acme.get().await.unwrap().unwrap().data_revision;

        // A batch is all or nothing: the duplicate in it rolls back the other writes.
        let mut conditional = tuple("doc:plan", "viewer", "user:carol");
        conditional.condition = Some("office_hours".to_owned());
        conditional.context = Some(attributes(json!({ "start": "09:00" })));
        let writes = vec![
            tuple("doc:plan", "viewer", "user:anne"),
            tuple("doc:plan", "viewer", "group:eng#member"),
            tuple("doc:spec", "editor", "user:bob"),
            conditional.clone(),
        ];
        let first = acme
            .write_tuples(&writes, &[], Default::default())
            .await
            .unwrap();
        assert!(first > start, "{name}: a write raises the data revision");
        let again = acme
            .write_tuples(&writes[..1], &[], Default::default())
            .await;
        assert!(
            matches!(&again, Err(StoreError::Conflict(m)) if m.contains("already exists") && m.contains("doc:plan#viewer@user:anne")),
            "{name}: {again:?}"
        );
        let rolled_back = acme
            .write_tuples(
                &[tuple("doc:new", "viewer", "user:zed"), writes[0].clone()],
                &[],
                Default::default(),
            )
            .await;
        assert!(rolled_back.is_err(), "{name}");
        let ignore = TupleWriteOptions {
            ignore_duplicates: true,
            ignore_missing: true,
        };
        let mut different = conditional.clone();
        different.context = Some(attributes(json!({ "start": "10:00" })));
        assert!(
            matches!(acme.write_tuples(&[different], &[], ignore).await, Err(StoreError::Conflict(m)) if m.contains("different condition")),
            "{name}: ignoring duplicates never hides a changed condition"
        );
        acme.write_tuples(
            &writes[..1],
            &[tuple("doc:none", "viewer", "user:x")],
            ignore,
        )
        .await
        .unwrap();
        let missing = acme
            .write_tuples(
                &[],
                &[tuple("doc:none", "viewer", "user:x")],
                Default::default(),
            )
            .await;
        assert!(
            matches!(&missing, Err(StoreError::NotFound(m)) if m.contains("does not exist")),
            "{name}: {missing:?}"
        );
        assert!(
            matches!(
                acme.write_tuples(&[tuple("nocolon", "viewer", "user:x")], &[], ignore).await,
                Err(StoreError::Invalid(m)) if m.contains("type:id")
            ),
            "{name}"
        );

        // Reads: filters, and pages that cover everything exactly once.
        let all = acme
            .read_tuples(&TupleFilter::default(), None, 100)
            .await
            .unwrap();
        assert_eq!(all.tuples.len(), 4, "{name}");
        assert!(all.continuation.is_none(), "{name}");
        assert!(all.tuples.contains(&conditional), "{name}: condition kept");
        let mut paged = Vec::new();
        let mut token = None;
        loop {
            let page = acme
                .read_tuples(&TupleFilter::default(), token.as_deref(), 1)
                .await
                .unwrap();
            paged.extend(page.tuples);
            match page.continuation {
                Some(next) => token = Some(next),
                None => break,
            }
        }
        assert_eq!(paged, all.tuples, "{name}");
        let plan = TupleFilter {
            object_type: Some("doc".to_owned()),
            object_id: Some("plan".to_owned()),
            relation: Some("viewer".to_owned()),
            user: None,
        };
        assert_eq!(
            acme.read_tuples(&plan, None, 100)
                .await
                .unwrap()
                .tuples
                .len(),
            3
        );
        let bob = TupleFilter {
            user: Some("user:bob".to_owned()),
            ..Default::default()
        };
        assert_eq!(
            acme.read_tuples(&bob, None, 100).await.unwrap().tuples,
            vec![tuple("doc:spec", "editor", "user:bob")]
        );
        assert!(matches!(
            acme.read_tuples(&TupleFilter::default(), Some("garbage"), 10)
                .await,
            Err(StoreError::Invalid(_))
        ));
        assert!(
            globex
                .read_tuples(&TupleFilter::default(), None, 100)
                .await
                .unwrap()
                .tuples
                .is_empty(),
            "{name}: another tenant sees none of them"
        );

        // Deletes and the change log.
        let deleted = acme
            .write_tuples(&[], &[conditional.clone()], Default::default())
            .await
            .unwrap();
        let changes = acme.tuple_changes(start, 100).await.unwrap();
        assert_eq!(changes.len(), 5, "{name}: four writes, one delete");
        assert!(changes.windows(2).all(|w| w[0].revision <= w[1].revision));
        let last = changes.last().unwrap();
        assert_eq!(last.operation, TupleOperation::Delete);
        assert_eq!(last.revision, deleted);
        assert_eq!(
            last.tuple, conditional,
            "{name}: a delete records the condition it removed"
        );
        assert_eq!(acme.tuple_changes(deleted, 100).await.unwrap(), vec![]);
        assert!(globex.tuple_changes(0, 100).await.unwrap().is_empty());
        let (revision, tuples) = acme.all_tuples().await.unwrap();
        assert_eq!(revision, deleted, "{name}");
        assert_eq!(tuples.len(), 3, "{name}");
        // Reading in pages (SQLite) gives the same tuples, conditions and contexts included,
        // whatever the page size: boundaries inside and at the end of the set.
        let mut many: Vec<StoredTuple> = (0..11)
            .map(|i| {
                tuple(
                    &format!("doc:p{i:02}"),
                    "viewer",
                    &format!("user:u{}", i % 4),
                )
            })
            .collect();
        many[4].condition = Some("in_office".to_owned());
        many[4].context = Some(
            serde_json::json!({"cidr": "10.0.0.0/8", "n": [1, 2]})
                .as_object()
                .unwrap()
                .clone(),
        );
        acme.write_tuples(&many, &[], Default::default())
            .await
            .unwrap();
        let (_, whole) = acme.all_tuples().await.unwrap();
        let mut expected = whole.clone();
        expected.sort_by_key(|t| format!("{}#{}@{}", t.object, t.relation, t.user));
        assert_eq!(whole.len(), 14, "{name}");
        assert!(whole.contains(&many[4]), "{name}: context survives");
        for page in [1, 3, 7, 14, 15] {
            let (_, paged) = acme.all_tuples_paged(page).await.unwrap();
            let mut sorted = paged.clone();
            sorted.sort_by_key(|t| format!("{}#{}@{}", t.object, t.relation, t.user));
            assert_eq!(sorted, expected, "{name}: pages of {page}");
        }

        acme.delete().await.unwrap();
        assert!(globex.all_tuples().await.unwrap().1.is_empty());
        audit_check();
        backend.finish().await;
    }
}

fn audit_line(position: i64, kind: &str, actor: &str, trace: &str) -> AuditLine {
    AuditLine {
        position,
        seq: position,
        kind: kind.to_owned(),
        ts_us: position * 1_000,
        actor: actor.to_owned(),
        action: "doc:read".to_owned(),
        outcome: if position % 2 == 0 { "deny" } else { "allow" }.to_owned(),
        trace_id: trace.to_owned(),
        line: format!("{{\"seq\":{position}}}"),
    }
}

#[tokio::test]
async fn the_audit_log_only_grows() {
    for backend in backends().await {
        let name = backend.name;
        let acme = backend.store.tenant(&tenant("acme"));
        let globex = backend.store.tenant(&tenant("globex"));
        // No tenant row is needed: the trail outlives its tenant.
        let lines: Vec<AuditLine> = (1..=6)
            .map(|n| {
                audit_line(
                    n,
                    "decision",
                    if n < 4 { "anne" } else { "bob" },
                    &format!("t{n}"),
                )
            })
            .collect();
        acme.append_audit(&lines[..3]).await.unwrap();
        acme.append_audit(&lines[3..]).await.unwrap();
        globex.append_audit(&lines[..1]).await.unwrap();
        let taken = acme
            .append_audit(&[lines[5].clone(), audit_line(7, "decision", "x", "t7")])
            .await;
        assert!(
            taken.is_err(),
            "{name}: a taken position fails the whole append"
        );
        assert_eq!(acme.audit_lines(0, 100).await.unwrap(), lines, "{name}");
        assert_eq!(acme.audit_lines(4, 100).await.unwrap(), lines[4..].to_vec());
        assert_eq!(acme.audit_tail(2).await.unwrap(), lines[4..].to_vec());
        let by_actor = AuditFilter {
            actor: Some("bob".to_owned()),
            outcome: Some("deny".to_owned()),
            ..Default::default()
        };
        let found: Vec<i64> = acme
            .audit_query(&by_actor, 0, 100)
            .await
            .unwrap()
            .iter()
            .map(|l| l.position)
            .collect();
        assert_eq!(found, [4, 6], "{name}");
        let window = AuditFilter {
            from_us: Some(2_000),
            to_us: Some(4_000),
            ..Default::default()
        };
        assert_eq!(acme.audit_query(&window, 0, 100).await.unwrap().len(), 2);
        let trace = AuditFilter {
            trace_id: Some("t5".to_owned()),
            ..Default::default()
        };
        assert_eq!(
            acme.audit_query(&trace, 0, 100).await.unwrap()[0].position,
            5
        );
        assert_eq!(globex.audit_lines(0, 100).await.unwrap().len(), 1);
        audit_check();
        backend.finish().await;
    }
}

/// A batch is stored as given (one statement on PostgreSQL), text of any kind included; a
/// records-only lookup leaves the checkpoints out.
#[tokio::test]
async fn audit_batches_round_trip_and_leave_checkpoints_out_on_request() {
    for backend in backends().await {
        let name = backend.name;
        let acme = backend.store.tenant(&tenant("acme"));
        let lines: Vec<AuditLine> = (1..=1500)
            .map(|n| {
                let mut line = audit_line(
                    n,
                    if n % 100 == 0 {
                        "checkpoint"
                    } else {
                        "decision"
                    },
                    "anne",
                    "",
                );
                line.line =
                    format!("{{\"n\":{n},\"text\":\"caf\u{e9} \\\"quoted\\\" \u{1f512}\"}}");
                line
            })
            .collect();
        acme.append_audit(&lines[..1000]).await.unwrap();
        acme.append_audit(&lines[1000..]).await.unwrap();
        assert!(
            acme.append_audit(&lines[1499..]).await.is_err(),
            "{name}: a taken position fails"
        );
        let mut read = acme.audit_lines(0, 1000).await.unwrap();
        read.extend(acme.audit_lines(1000, 1000).await.unwrap());
        assert_eq!(read, lines, "{name}");
        let records_only = AuditFilter {
            records_only: true,
            ..Default::default()
        };
        let records = acme.audit_query(&records_only, 0, 10_000).await.unwrap();
        assert_eq!(records.len(), 1485, "{name}");
        assert!(records.iter().all(|line| line.kind == "decision"));
        assert_eq!(
            acme.audit_query(&AuditFilter::default(), 0, 10_000)
                .await
                .unwrap()
                .len(),
            1500
        );
        audit_check();
        backend.finish().await;
    }
}

/// The service role cannot rewrite history: it has no UPDATE or DELETE privilege.
#[tokio::test]
async fn audit_rows_cannot_be_changed_or_removed() {
    if !support::postgres_available().await {
        return;
    }
    let backend = support::postgres().await;
    backend
        .store
        .tenant(&tenant("acme"))
        .append_audit(&[audit_line(1, "change", "ops", "t1")])
        .await
        .unwrap();
    let database = backend.database.clone().unwrap();
    let service = sqlx::PgPool::connect(&format!(
        "postgres://portcullis_service@127.0.0.1:5432/{database}"
    ))
    .await
    .unwrap();
    for statement in [
        "UPDATE /* rls-probe */ audit_log SET line = 'forged' WHERE tenant_id = 'acme'",
        "DELETE /* rls-probe */ FROM audit_log WHERE tenant_id = 'acme'",
    ] {
        let mut tx = service.begin().await.unwrap();
        sqlx::query("SELECT set_config('app.tenant_id', 'acme', true)")
            .execute(&mut *tx)
            .await
            .unwrap();
        let error = sqlx::query(statement).execute(&mut *tx).await.unwrap_err();
        assert!(error.to_string().contains("permission denied"), "{error}");
        tx.rollback().await.unwrap();
    }
    service.close().await;
    backend.finish().await;
}
