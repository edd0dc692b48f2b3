//! casbin: an RBAC model with role inheritance (`g = _, _`) and policies `p = role, type, verb`.
//!
//! Assignments are `g, principal, role` lines and inheritance `g, role, inherited-role` lines,
//! so casbin's role manager follows the chain. For W2 the request carries `ip`, `minute`,
//! `holiday` and `cert` (derived from the raw query in the timed builder) and the matcher adds
//! the strategy, using casbin's built-in `ipMatch`. The matcher compares the cheap fields first
//! so that `g()` only runs for policies of the requested permission.

use std::fmt;
use std::fmt::Write as _;
use std::sync::Arc;

use anyhow::Result;
use casbin::{CoreApi, DefaultModel, Enforcer, StringAdapter};

use super::Engine;
use crate::world::{
    ACCEPTED_CERTS, Names, OFFICE_NETWORK, RawQuery, TenantClock, WINDOW, Workload, World,
};

/// The model text of `workload`.
pub fn model_text(workload: Workload) -> String {
    let (request, strategy) = if workload.has_strategy() {
        let certs = ACCEPTED_CERTS
            .iter()
            .map(|id| format!("r.cert == \"{id}\""))
            .collect::<Vec<_>>()
            .join(" || ");
        (
            "r = sub, obj, act, ip, minute, holiday, cert",
            format!(
                " && ipMatch(r.ip, \"{OFFICE_NETWORK}\") && \
                 (((r.minute < {start} || r.minute >= {end}) && ({certs})) || r.holiday)",
                start = WINDOW.0,
                end = WINDOW.1,
            ),
        )
    } else {
        ("r = sub, obj, act", String::new())
    };
    format!(
        "[request_definition]\n{request}\n\n\
         [policy_definition]\np = sub, obj, act\n\n\
         [role_definition]\ng = _, _\n\n\
         [policy_effect]\ne = some(where (p.eft == allow))\n\n\
         [matchers]\nm = r.obj == p.obj && r.act == p.act && g(r.sub, p.sub){strategy}\n"
    )
}

/// The policy lines (`p` and `g`).
pub fn policy_lines(world: &World) -> String {
    let names = &world.names;
    let mut text = String::new();
    for (index, role) in world.roles.iter().enumerate() {
        for p in &role.permissions {
            let _ = writeln!(
                text,
                "p, {}, {}, {}",
                names.roles[index],
                names.types[usize::from(p.kind)],
                names.verbs[usize::from(p.verb)]
            );
        }
        if let Some(parent) = role.inherits {
            let _ = writeln!(text, "g, {}, {}", names.roles[index], names.roles[parent]);
        }
    }
    for (index, assigned) in world.principals.iter().enumerate() {
        for &role in assigned {
            let _ = writeln!(
                text,
                "g, {}, {}",
                names.principals[index], names.roles[role]
            );
        }
    }
    text
}

/// The casbin adapter.
pub struct Casbin {
    enforcer: Enforcer,
    names: Arc<Names>,
    clock: TenantClock,
    workload: Workload,
}

impl fmt::Debug for Casbin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Casbin")
            .field("workload", &self.workload)
            .finish_non_exhaustive()
    }
}

impl Casbin {
    /// Builds the enforcer on a current-thread runtime (casbin constructs asynchronously).
    pub fn new(world: &World, workload: Workload) -> Result<Self> {
        let runtime = tokio::runtime::Builder::new_current_thread().build()?;
        let model = model_text(workload);
        let lines = policy_lines(world);
        let enforcer = runtime.block_on(async move {
            let model = DefaultModel::from_str(&model).await?;
            Enforcer::new(model, StringAdapter::new(lines)).await
        })?;
        Ok(Casbin {
            enforcer,
            names: Arc::clone(&world.names),
            clock: TenantClock::new(world)?,
            workload,
        })
    }
}

impl Engine for Casbin {
    fn name(&self) -> &'static str {
        "casbin"
    }

    fn decide(&mut self, query: &RawQuery) -> Result<bool> {
        let names = &*self.names;
        let subject = names.principals[query.principal()].as_str();
        let object = names.types[usize::from(query.kind)].as_str();
        let verb = names.verbs[usize::from(query.verb)].as_str();
        let allowed = if self.workload.has_strategy() {
            let facts = self.clock.facts(query.time);
            self.enforcer.enforce((
                subject,
                object,
                verb,
                query.ip.to_string(),
                i64::from(facts.minute),
                facts.holiday,
                query.cert_id().unwrap_or(""),
            ))?
        } else {
            self.enforcer.enforce((subject, object, verb))?
        };
        Ok(allowed)
    }
}
