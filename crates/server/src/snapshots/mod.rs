//! Snapshots: what decisions read, and how it is kept current — bundles loaded from folders,
//! uploads and the store, overlaid with the store's principals and assignments ([`reload`]);
//! each tenant's relation index fed from the store ([`relations`]); sensitive principal
//! attributes encrypted for the store and decrypted into snapshots ([`crypto`]); and the tuple
//! writes and reads that change the index ([`tuples`]); and the supply-chain signal decisions
//! read as `env.supply_chain` ([`supply`]). Nothing here answers a request.

pub mod crypto;
pub mod loaded;
pub mod relations;
pub mod reload;
pub mod supply;
pub mod tuples;
