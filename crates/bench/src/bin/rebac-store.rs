//! Rebuilding a node's relation index from the store: writes the generated 1,000,000-tuple
//! world into a fresh store, then times what a node does when it loads the tenant — read every
//! tuple (`all_tuples`) and build the index — three times.
//!
//! `cargo run --release -p portcullis-bench --bin rebac-store` (embedded SQLite), or with a
//! PostgreSQL URL as the argument (`postgres://postgres@127.0.0.1:5432/test`); the tenant
//! `rebac-bench` there is replaced.

use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context as _, Result, anyhow};
use portcullis_rebac::generate::{Params, world};
use portcullis_rebac::{Graph, Model, Tuple, TupleCondition};
use portcullis_store::{Store, StoreConfig, StoredTuple, TenantId};

fn stored(tuple: &Tuple) -> StoredTuple {
    StoredTuple {
        object: tuple.object.to_string(),
        relation: tuple.relation.clone(),
        user: tuple.user.to_string(),
        condition: tuple.condition.as_ref().map(|c| c.name.clone()),
        context: None,
    }
}

fn restored(stored: &StoredTuple) -> Result<Tuple> {
    let mut tuple = Tuple::parse(&stored.user, &stored.relation, &stored.object)?;
    if let Some(name) = &stored.condition {
        tuple.condition = Some(TupleCondition {
            name: name.clone(),
            context: stored.context.clone().unwrap_or_default(),
        });
    }
    Ok(tuple)
}

fn main() -> Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(run())
}

async fn run() -> Result<()> {
    let world = world(&Params::default());
    let model = Arc::new(Model::from_dsl(&world.model).map_err(|e| anyhow!("{e}"))?);
    let dir = tempfile::tempdir()?;
    let url = std::env::args()
        .nth(1)
        .unwrap_or_else(|| format!("sqlite://{}", dir.path().join("store.db").display()));
    let backend = if url.starts_with("sqlite") {
        "SQLite"
    } else {
        "PostgreSQL"
    };
    let store = Store::open(&StoreConfig {
        url,
        ..StoreConfig::default()
    })
    .await?;
    let tenant = TenantId::new("rebac-bench").map_err(|e| anyhow!("{e}"))?;
    let scope = store.tenant(&tenant);
    match scope.delete().await {
        Ok(()) | Err(portcullis_store::StoreError::NotFound(_)) => {}
        Err(error) => return Err(error.into()),
    }
    scope.create(None).await?;
    let started = Instant::now();
    let tuples: Vec<StoredTuple> = world.tuples.iter().map(stored).collect();
    for chunk in tuples.chunks(20_000) {
        scope
            .write_tuples(
                chunk,
                &[],
                portcullis_store::TupleWriteOptions {
                    ignore_duplicates: true,
                    ignore_missing: false,
                },
            )
            .await
            .context("loading the world")?;
    }
    println!(
        "loaded {} tuples into {backend} in {:.1} s",
        tuples.len(),
        started.elapsed().as_secs_f64()
    );
    drop(tuples);
    let mut runs = Vec::new();
    for _ in 0..3 {
        let started = Instant::now();
        let (_revision, rows) = scope.all_tuples().await?;
        let read = started.elapsed();
        let restored: Vec<Tuple> = rows.iter().map(restored).collect::<Result<_>>()?;
        let graph = Graph::build(Arc::clone(&model), restored).map_err(|e| anyhow!("{e}"))?;
        let total = started.elapsed();
        println!(
            "rebuild: read {:.2} s, total {:.2} s, {} tuples",
            read.as_secs_f64(),
            total.as_secs_f64(),
            graph.len()
        );
        runs.push(total.as_secs_f64());
    }
    runs.sort_by(f64::total_cmp);
    println!("rebuild-seconds median {:.2} ({backend})", runs[1]);
    scope.delete().await?;
    store.close().await;
    Ok(())
}
