//! Each node's in-memory relation index per tenant, fed from the store.
//!
//! A tenant whose bundle has a relationship model gets one [`Relations`] index holding the
//! bundle's tuples and the store's. It is built once per model (a full read of the tenant's
//! tuples), then kept current by replaying the store's change log from the index's revision
//! whenever the tenant's data changes (a write on this node, a change notification, or the
//! periodic poll). Queries read the index only; they never wait on the database, except a query
//! that demands a revision this node has not seen yet, which first catches up.
//!
//! Everything here runs under the reload lock, so builds and replays never interleave.

use std::collections::BTreeMap;
use std::sync::Arc;

use portcullis_core::TenantId;
use portcullis_policy::rebac::{Graph, Model, Tuple, TupleCondition};
use portcullis_policy::{Relations, Snapshot};
use portcullis_store::{StoreError, StoredTuple, TupleOperation};

use crate::snapshots::loaded::TenantIndex;
use crate::state::AppState;

/// Changes read per round trip while catching up.
const CHANGES_PER_READ: u32 = 5_000;

/// A stored tuple in the library's form.
pub fn from_stored(stored: &StoredTuple) -> Result<Tuple, String> {
    let mut tuple =
        Tuple::parse(&stored.user, &stored.relation, &stored.object).map_err(|e| e.to_string())?;
    if let Some(name) = &stored.condition {
        tuple.condition = Some(TupleCondition {
            name: name.clone(),
            context: stored.context.clone().unwrap_or_default(),
        });
    }
    Ok(tuple)
}

/// A tuple in the store's form.
pub fn to_stored(tuple: &Tuple) -> StoredTuple {
    StoredTuple {
        object: tuple.object.to_string(),
        relation: tuple.relation.clone(),
        user: tuple.user.to_string(),
        condition: tuple.condition.as_ref().map(|c| c.name.clone()),
        context: tuple
            .condition
            .as_ref()
            .filter(|c| !c.context.is_empty())
            .map(|c| c.context.clone()),
    }
}

/// The snapshot with the tenant's live index attached: built when the tenant first has a model
/// (or a new one), otherwise brought up to date with the store's change log.
pub async fn attach(
    state: &AppState,
    indexes: &mut BTreeMap<TenantId, TenantIndex>,
    snapshot: Arc<Snapshot>,
    data_revision: Option<i64>,
) -> Arc<Snapshot> {
    let tenant = snapshot.tenant().clone();
    let Some(model) = snapshot.model().cloned() else {
        indexes.remove(&tenant);
        return snapshot;
    };
    let current = indexes
        .get(&tenant)
        .filter(|index| index.model.ast() == model.ast())
        .cloned();
    let index = match current {
        Some(index) => {
            catch_up(state, &tenant, &index.relations).await;
            index
        }
        None => match build(state, &tenant, &model, &snapshot).await {
            Ok(relations) => {
                let index = TenantIndex {
                    model: Arc::clone(&model),
                    relations,
                };
                indexes.insert(tenant.clone(), index.clone());
                index
            }
            Err(error) => {
                // Fail closed on the store's tuples: decide on the bundle's alone, and try again
                // on the next refresh.
                tracing::error!(tenant = %tenant, %error, "cannot read the tenant's tuples; deciding on the bundle's tuples only");
                indexes.remove(&tenant);
                return snapshot;
            }
        },
    };
    if let Some(revision) = data_revision.and_then(|r| u64::try_from(r).ok())
        && revision > index.relations.revision()
    {
        // The tenant's data moved on without tuple changes (a role assignment, say): the index
        // is as fresh as that revision.
        index.relations.set_revision(revision);
    }
    Arc::new(snapshot.with_relations(index.relations))
}

async fn build(
    state: &AppState,
    tenant: &TenantId,
    model: &Arc<Model>,
    snapshot: &Snapshot,
) -> Result<Arc<Relations>, StoreError> {
    let (revision, stored) = match state.store.tenant(tenant).all_tuples().await {
        Ok(found) => found,
        Err(StoreError::NotFound(_)) => (0, Vec::new()),
        Err(error) => return Err(error),
    };
    let mut graph = Graph::new(Arc::clone(model));
    for tuple in snapshot.bundle_tuples() {
        let _ = graph.write(tuple.clone());
    }
    let mut skipped = 0usize;
    for stored in &stored {
        match from_stored(stored).and_then(|t| graph.write(t).map_err(|e| e.to_string())) {
            Ok(_) => {}
            Err(error) => {
                skipped += 1;
                tracing::debug!(tenant = %tenant, %error, "stored tuple does not fit the model");
            }
        }
    }
    if skipped > 0 {
        tracing::warn!(tenant = %tenant, skipped, "stored tuples that do not fit the current model are ignored until they do");
    }
    let relations = Relations::new(graph, u64::try_from(revision).unwrap_or(0));
    catch_up(state, tenant, &relations).await;
    tracing::info!(tenant = %tenant, tuples = relations.read().len(), revision = relations.revision(), "relation index built");
    Ok(relations)
}

/// Replays the store's changes after the index's revision.
pub async fn catch_up(state: &AppState, tenant: &TenantId, relations: &Relations) {
    loop {
        let since = i64::try_from(relations.revision()).unwrap_or(i64::MAX);
        let changes = match state
            .store
            .tenant(tenant)
            .tuple_changes(since, CHANGES_PER_READ)
            .await
        {
            Ok(changes) => changes,
            Err(error) => {
                tracing::error!(tenant = %tenant, %error, "cannot read tuple changes; the index stays at its revision");
                return;
            }
        };
        let Some(last) = changes.last().map(|c| c.revision) else {
            return;
        };
        let full = changes.len() == CHANGES_PER_READ as usize;
        // A page may end inside one revision's changes; apply only whole revisions unless the
        // page is all one revision.
        let upto = if full {
            changes
                .iter()
                .map(|c| c.revision)
                .filter(|r| *r < last)
                .max()
                .unwrap_or(last)
        } else {
            last
        };
        {
            let mut graph = relations.write();
            for change in changes.iter().filter(|c| c.revision <= upto) {
                let tuple = match from_stored(&change.tuple) {
                    Ok(tuple) => tuple,
                    Err(error) => {
                        tracing::warn!(tenant = %tenant, %error, "unreadable tuple change skipped");
                        continue;
                    }
                };
                match change.operation {
                    TupleOperation::Write => {
                        if let Err(error) = graph.write(tuple) {
                            tracing::debug!(tenant = %tenant, %error, "stored tuple does not fit the model");
                        }
                    }
                    TupleOperation::Delete => {
                        graph.delete(&tuple);
                    }
                }
            }
        }
        relations.set_revision(u64::try_from(upto).unwrap_or(0));
        if !full {
            return;
        }
    }
}
