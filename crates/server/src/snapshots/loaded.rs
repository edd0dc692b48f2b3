//! The loader's memory: each tenant's base (a compiled bundle and where it came from), the
//! data revision its published snapshot was built on, and its relation index. Data only: the
//! code that fills it is in [`super::reload`] and [`super::relations`].

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use portcullis_core::TenantId;
use portcullis_policy::rebac::Model;
use portcullis_policy::{Relations, Snapshot};

/// Where a tenant's bundle comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A bundle folder.
    Folder(PathBuf),
    /// A bundle version in the store.
    Store(i64),
    /// The demo built into the binary.
    Embedded,
}

/// A compiled bundle and its origin.
#[derive(Debug, Clone)]
pub struct Base {
    /// The compiled bundle, without run-time data.
    pub snapshot: Arc<Snapshot>,
    /// Where it came from.
    pub source: Source,
}

/// The loader's memory, behind the reload lock.
#[derive(Debug, Default)]
pub struct Loaded {
    /// Bases by tenant.
    pub bases: BTreeMap<TenantId, Base>,
    /// The data revision each published snapshot was built on.
    pub data_revisions: BTreeMap<TenantId, i64>,
    /// The relation index of each tenant whose bundle has a model.
    pub relations: BTreeMap<TenantId, TenantIndex>,
}

/// One tenant's index and the model it was built for.
#[derive(Debug, Clone)]
pub struct TenantIndex {
    /// The model it was built for.
    pub model: Arc<Model>,
    /// The live index.
    pub relations: Arc<Relations>,
}
