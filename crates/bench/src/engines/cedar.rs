//! Cedar: one `permit` per role, roles and principals as entities.
//!
//! A role's policy names only its direct permissions; inheritance is the entity hierarchy (a
//! role's parent is the role it inherits, a principal's parents are its roles), so Cedar's `in`
//! follows it. Two encodings of a role's permissions are measured: the action list
//! (`action in [Action::"t1:a2", ...]`, [`Encoding::ActionList`]) and action groups
//! (`action in Action::"role:r3"`, with each action entity a member of the groups of the roles
//! that grant it, [`Encoding::ActionGroups`]). Cedar 4 turns a policy's scope into an expression
//! on every evaluation, so a 20-element action list is rebuilt per policy per request; the group
//! form avoids that and is Cedar's usual way to name many actions at once. For W2 every policy carries the strategy as a `when` clause over context
//! attributes `ip`, `minute`, `holiday` and `cert`, which the timed request builder derives from
//! the raw query (local time via the tenant's zone and calendar).

use std::collections::HashSet;
use std::fmt::Write as _;
use std::str::FromStr;
use std::sync::Arc;

use anyhow::{Result, anyhow};
use cedar_policy::{
    Authorizer, Context, Decision, Entities, Entity, EntityId, EntityTypeName, EntityUid,
    PolicySet, Request, RestrictedExpression,
};

use super::Engine;
use crate::world::{
    ACCEPTED_CERTS, Names, OFFICE_NETWORK, RawQuery, TenantClock, WINDOW, Workload, World,
};

/// How a role's permissions are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// `action in [Action::"t1:a2", ...]`.
    ActionList,
    /// `action in Action::"role:r3"`, action entities being members of their roles' groups.
    ActionGroups,
}

/// The Cedar adapter.
#[derive(Debug)]
pub struct Cedar {
    encoding: Encoding,
    authorizer: Authorizer,
    policies: PolicySet,
    entities: Entities,
    user: EntityTypeName,
    action: EntityTypeName,
    resource_types: Vec<EntityTypeName>,
    names: Arc<Names>,
    clock: TenantClock,
    workload: Workload,
}

fn type_name(name: &str) -> Result<EntityTypeName> {
    EntityTypeName::from_str(name).map_err(|error| anyhow!("entity type {name}: {error}"))
}

/// The action group of a role.
fn group_id(role: &str) -> String {
    format!("role:{role}")
}

/// The policy text of `workload`.
pub fn policy_text(world: &World, workload: Workload, encoding: Encoding) -> String {
    let names = &world.names;
    let condition = format!(
        " when {{ context.ip.isInRange(ip(\"{OFFICE_NETWORK}\")) && \
         (((context.minute < {start} || context.minute >= {end}) && \
         context has cert && ({certs})) || context.holiday) }}",
        start = WINDOW.0,
        end = WINDOW.1,
        certs = ACCEPTED_CERTS
            .iter()
            .map(|id| format!("context.cert == \"{id}\""))
            .collect::<Vec<_>>()
            .join(" || "),
    );
    let mut text = String::new();
    for (index, role) in world.roles.iter().enumerate() {
        let role_name = &names.roles[index];
        let _ = write!(
            text,
            "@id(\"{role_name}\")\npermit(principal in Role::\"{role_name}\", action in "
        );
        match encoding {
            Encoding::ActionList => {
                text.push('[');
                for (i, p) in role.permissions.iter().enumerate() {
                    if i > 0 {
                        text.push_str(", ");
                    }
                    let action = usize::from(p.kind) * world.params.verbs + usize::from(p.verb);
                    let _ = write!(text, "Action::\"{}\"", names.actions[action]);
                }
                text.push(']');
            }
            Encoding::ActionGroups => {
                let _ = write!(text, "Action::\"{}\"", group_id(role_name));
            }
        }
        text.push_str(", resource)");
        if workload.has_strategy() {
            text.push_str(&condition);
        }
        text.push_str(";\n");
    }
    text
}

impl Cedar {
    /// Builds the policy set and the entity store.
    pub fn new(world: &World, workload: Workload, encoding: Encoding) -> Result<Self> {
        let names = Arc::clone(&world.names);
        let policies = PolicySet::from_str(&policy_text(world, workload, encoding))
            .map_err(|error| anyhow!("Cedar policies: {error}"))?;
        let role_type = type_name("Role")?;
        let user = type_name("User")?;
        let role_uid = |index: usize| {
            EntityUid::from_type_name_and_id(role_type.clone(), EntityId::new(&names.roles[index]))
        };
        let mut entities = Vec::with_capacity(world.roles.len() + world.principals.len());
        for (index, role) in world.roles.iter().enumerate() {
            let parents: HashSet<EntityUid> = role.inherits.map(role_uid).into_iter().collect();
            entities.push(Entity::new_no_attrs(role_uid(index), parents));
        }
        for (index, assigned) in world.principals.iter().enumerate() {
            let uid = EntityUid::from_type_name_and_id(
                user.clone(),
                EntityId::new(&names.principals[index]),
            );
            let parents = assigned.iter().map(|&role| role_uid(role)).collect();
            entities.push(Entity::new_no_attrs(uid, parents));
        }
        let action = type_name("Action")?;
        if encoding == Encoding::ActionGroups {
            let action_uid =
                |id: &str| EntityUid::from_type_name_and_id(action.clone(), EntityId::new(id));
            let mut groups: Vec<HashSet<EntityUid>> = vec![HashSet::new(); names.actions.len()];
            for (index, role) in world.roles.iter().enumerate() {
                let group = action_uid(&group_id(&names.roles[index]));
                for p in &role.permissions {
                    let action = usize::from(p.kind) * world.params.verbs + usize::from(p.verb);
                    if let Some(set) = groups.get_mut(action) {
                        set.insert(group.clone());
                    }
                }
                entities.push(Entity::new_no_attrs(group, HashSet::new()));
            }
            for (index, parents) in groups.into_iter().enumerate() {
                entities.push(Entity::new_no_attrs(
                    action_uid(&names.actions[index]),
                    parents,
                ));
            }
        }
        let entities = Entities::from_entities(entities, None)
            .map_err(|error| anyhow!("Cedar entities: {error}"))?;
        let resource_types = names
            .types
            .iter()
            .map(|name| type_name(name))
            .collect::<Result<_>>()?;
        Ok(Cedar {
            encoding,
            authorizer: Authorizer::new(),
            policies,
            entities,
            user,
            action,
            resource_types,
            clock: TenantClock::new(world)?,
            names,
            workload,
        })
    }

    /// The Cedar request for `query`.
    pub fn request(&self, query: &RawQuery) -> Result<Request> {
        let names = &*self.names;
        let principal = EntityUid::from_type_name_and_id(
            self.user.clone(),
            EntityId::new(&names.principals[query.principal()]),
        );
        let action = EntityUid::from_type_name_and_id(
            self.action.clone(),
            EntityId::new(&names.actions[query.action()]),
        );
        let resource = EntityUid::from_type_name_and_id(
            self.resource_types[usize::from(query.kind)].clone(),
            EntityId::new(&names.resources[query.resource()]),
        );
        let context = if self.workload.has_strategy() {
            let facts = self.clock.facts(query.time);
            let mut pairs = vec![
                (
                    "ip".to_owned(),
                    RestrictedExpression::new_ip(query.ip.to_string()),
                ),
                (
                    "minute".to_owned(),
                    RestrictedExpression::new_long(i64::from(facts.minute)),
                ),
                (
                    "holiday".to_owned(),
                    RestrictedExpression::new_bool(facts.holiday),
                ),
            ];
            if let Some(id) = query.cert_id() {
                pairs.push((
                    "cert".to_owned(),
                    RestrictedExpression::new_string(id.to_owned()),
                ));
            }
            Context::from_pairs(pairs).map_err(|error| anyhow!("Cedar context: {error}"))?
        } else {
            Context::empty()
        };
        Request::new(principal, action, resource, context, None)
            .map_err(|error| anyhow!("Cedar request: {error}"))
    }
}

impl Engine for Cedar {
    fn name(&self) -> &'static str {
        match self.encoding {
            Encoding::ActionList => "cedar",
            Encoding::ActionGroups => "cedar-groups",
        }
    }

    fn decide(&mut self, query: &RawQuery) -> Result<bool> {
        let request = self.request(query)?;
        let response = self
            .authorizer
            .is_authorized(&request, &self.policies, &self.entities);
        Ok(response.decision() == Decision::Allow)
    }
}
