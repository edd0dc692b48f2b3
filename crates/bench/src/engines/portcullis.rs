//! Portcullis: the world compiled from its generated YAML bundle.
//!
//! The timed call builds a [`Request`] the way an edge does (owned strings for the principal,
//! action and resource; address, time and certificate for W2) and calls [`decide`].

use anyhow::{Result, anyhow};
use portcullis_core::{ClientCert, Context, Principal, Request, Resource, TenantId};
use portcullis_policy::{LoadOptions, Snapshot, compile_files, decide};
use std::sync::Arc;

use super::Engine;
use crate::world::{Names, RawQuery, Workload, World, bundle_files};

/// The Portcullis adapter.
#[derive(Debug)]
pub struct Portcullis {
    snapshot: Snapshot,
    tenant: TenantId,
    names: Arc<Names>,
    workload: Workload,
}

/// Compiles the bundle of `workload` from its YAML text.
pub fn compile(world: &World, workload: Workload) -> Result<Snapshot> {
    let files = bundle_files(world, workload);
    compile_files("bench".as_ref(), &files, &LoadOptions::default())
        .map_err(|error| anyhow!("the generated bundle does not load: {error:?}"))
}

impl Portcullis {
    /// Compiles the world's bundle.
    pub fn new(world: &World, workload: Workload) -> Result<Self> {
        Ok(Self::from_snapshot(
            compile(world, workload)?,
            world,
            workload,
        ))
    }

    /// Wraps an already compiled snapshot.
    pub fn from_snapshot(snapshot: Snapshot, world: &World, workload: Workload) -> Self {
        Portcullis {
            tenant: snapshot.tenant().clone(),
            snapshot,
            names: Arc::clone(&world.names),
            workload,
        }
    }

    /// The compiled snapshot.
    pub fn snapshot(&self) -> &Snapshot {
        &self.snapshot
    }

    /// The request for `query`, as an edge would build it.
    pub fn request(&self, query: &RawQuery) -> Request {
        let names = &*self.names;
        let context = if self.workload.has_strategy() {
            Context {
                ip: Some(query.ip),
                time: Some(query.time),
                cert: query.cert_id().map(|id| ClientCert {
                    id: Some(id.to_owned()),
                    ..ClientCert::default()
                }),
                ..Context::default()
            }
        } else {
            Context::default()
        };
        Request {
            tenant: self.tenant.clone(),
            principal: Principal::user(names.principals[query.principal()].clone()),
            action: names.actions[query.action()].clone(),
            resource: Resource::new(
                names.types[usize::from(query.kind)].clone(),
                names.resources[query.resource()].clone(),
            ),
            context,
            env: Default::default(),
            explain: false,
            action_properties: Default::default(),
            trace_id: None,
        }
    }
}

impl Engine for Portcullis {
    fn name(&self) -> &'static str {
        "portcullis"
    }

    fn decide(&mut self, query: &RawQuery) -> Result<bool> {
        let request = self.request(query);
        Ok(decide(&self.snapshot, &request).is_allowed())
    }
}
