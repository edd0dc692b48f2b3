//! regorus, executing on its RVM (the compiled program and register virtual machine).
//!
//! Data holds the facts as they are: `assignments` (principal → roles), `inherits` (role → the
//! roles it inherits) and `permissions` (role → set of direct permissions). The policy walks the
//! inheritance with `graph.reachable`, the idiomatic Rego way to follow a role hierarchy. For W2
//! the strategy is a pair of rules over `input.ip`, `input.minute`, `input.holiday` and
//! `input.cert`, which the timed request builder derives from the raw query.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use anyhow::Result;
use regorus::languages::rego::compiler::Compiler;
use regorus::rvm::RegoVM;
use regorus::{Engine as RegoEngine, Value};
use serde_json::{Map, Value as Json, json};

use super::Engine;
use crate::world::{
    ACCEPTED_CERTS, Names, OFFICE_NETWORK, RawQuery, TenantClock, WINDOW, Workload, World,
};

/// The rule every query asks for.
pub const ENTRY_POINT: &str = "data.bench.allow";

/// The Rego policy of `workload`.
pub fn policy_text(workload: Workload) -> String {
    let grant = "grant if {\n\
                 \tsome role in data.assignments[input.principal]\n\
                 \tsome held in graph.reachable(data.inherits, [role])\n\
                 \tdata.permissions[held][input.action]\n\
                 }\n";
    let mut text =
        format!("package bench\n\nimport rego.v1\n\ndefault allow := false\n\n{grant}\n");
    if workload.has_strategy() {
        let certs = ACCEPTED_CERTS
            .iter()
            .map(|id| format!("\"{id}\""))
            .collect::<Vec<_>>()
            .join(", ");
        text.push_str(&format!(
            "allow if {{\n\tgrant\n\tstrategy\n}}\n\n\
             office if net.cidr_contains(\"{OFFICE_NETWORK}\", input.ip)\n\n\
             outside_hours if input.minute < {start}\n\n\
             outside_hours if input.minute >= {end}\n\n\
             strategy if {{\n\toffice\n\toutside_hours\n\tinput.cert in {{{certs}}}\n}}\n\n\
             strategy if {{\n\toffice\n\tinput.holiday == true\n}}\n",
            start = WINDOW.0,
            end = WINDOW.1,
        ));
    } else {
        text.push_str("allow if grant\n");
    }
    text
}

/// The data document.
pub fn data(world: &World) -> Json {
    let names = &world.names;
    let mut assignments = Map::new();
    for (index, assigned) in world.principals.iter().enumerate() {
        assignments.insert(
            names.principals[index].clone(),
            Json::from(
                assigned
                    .iter()
                    .map(|&r| names.roles[r].clone())
                    .collect::<Vec<_>>(),
            ),
        );
    }
    let mut inherits = Map::new();
    let mut permissions = Map::new();
    for (index, role) in world.roles.iter().enumerate() {
        let parents: Vec<String> = role
            .inherits
            .map(|r| names.roles[r].clone())
            .into_iter()
            .collect();
        inherits.insert(names.roles[index].clone(), Json::from(parents));
        let mut set = Map::new();
        for p in &role.permissions {
            let action = usize::from(p.kind) * world.params.verbs + usize::from(p.verb);
            set.insert(names.actions[action].clone(), Json::Bool(true));
        }
        permissions.insert(names.roles[index].clone(), Json::Object(set));
    }
    json!({ "assignments": assignments, "inherits": inherits, "permissions": permissions })
}

/// Input keys, made once.
struct Keys {
    principal: Value,
    action: Value,
    resource: Value,
    kind: Value,
    id: Value,
    ip: Value,
    minute: Value,
    holiday: Value,
    cert: Value,
}

/// The regorus adapter.
pub struct Regorus {
    vm: RegoVM,
    keys: Keys,
    names: Arc<Names>,
    clock: TenantClock,
    workload: Workload,
    yes: Value,
}

impl fmt::Debug for Regorus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Regorus")
            .field("workload", &self.workload)
            .finish_non_exhaustive()
    }
}

impl Regorus {
    /// Compiles the policy to an RVM program and loads it with the data.
    pub fn new(world: &World, workload: Workload) -> Result<Self> {
        let mut engine = RegoEngine::new();
        engine.add_policy("bench.rego".to_owned(), policy_text(workload))?;
        let compiled = engine.compile_with_entrypoint(&ENTRY_POINT.into())?;
        let program = Compiler::compile_from_policy(&compiled, &[ENTRY_POINT])?;
        let mut vm = RegoVM::new();
        vm.load_program(program);
        vm.set_data(Value::from(data(world)))?;
        let key = |name: &str| Value::from(name);
        Ok(Regorus {
            vm,
            keys: Keys {
                principal: key("principal"),
                action: key("action"),
                resource: key("resource"),
                kind: key("type"),
                id: key("id"),
                ip: key("ip"),
                minute: key("minute"),
                holiday: key("holiday"),
                cert: key("cert"),
            },
            names: Arc::clone(&world.names),
            clock: TenantClock::new(world)?,
            workload,
            yes: Value::from(true),
        })
    }

    /// The input document for `query`.
    pub fn input(&self, query: &RawQuery) -> Value {
        let names = &*self.names;
        let keys = &self.keys;
        let mut resource = BTreeMap::new();
        resource.insert(
            keys.kind.clone(),
            Value::from(names.types[usize::from(query.kind)].as_str()),
        );
        resource.insert(
            keys.id.clone(),
            Value::from(names.resources[query.resource()].as_str()),
        );
        let mut input = BTreeMap::new();
        input.insert(
            keys.principal.clone(),
            Value::from(names.principals[query.principal()].as_str()),
        );
        input.insert(
            keys.action.clone(),
            Value::from(names.actions[query.action()].as_str()),
        );
        input.insert(keys.resource.clone(), Value::from(resource));
        if self.workload.has_strategy() {
            let facts = self.clock.facts(query.time);
            input.insert(keys.ip.clone(), Value::from(query.ip.to_string()));
            input.insert(keys.minute.clone(), Value::from(u64::from(facts.minute)));
            input.insert(keys.holiday.clone(), Value::from(facts.holiday));
            if let Some(id) = query.cert_id() {
                input.insert(keys.cert.clone(), Value::from(id));
            }
        }
        Value::from(input)
    }
}

impl Engine for Regorus {
    fn name(&self) -> &'static str {
        "regorus"
    }

    fn decide(&mut self, query: &RawQuery) -> Result<bool> {
        let input = self.input(query);
        self.vm.set_input(input);
        Ok(self.vm.execute()? == self.yes)
    }
}
