//! The `rules` section: permit and forbid rules, each with an id, the actions, resources,
//! principals and roles it covers, and an optional CEL condition.
//!
//! This module owns the shape of a rule and the check that ids are unique across the bundle's
//! files. It must not resolve the roles a rule names or compile its condition: `compile` does.

use std::collections::{BTreeMap, BTreeSet};

use portcullis_core::Effect;

use super::nodes::Decoder;
use crate::diagnostic::{Code, Diagnostic};
use crate::model::{At, RuleDef};
use crate::yaml::Node;

impl Decoder<'_> {
    pub(super) fn rules(&mut self, node: &Node, target: &mut BTreeMap<String, At<RuleDef>>) {
        let allowed = [
            "id",
            "effect",
            "actions",
            "resources",
            "principals",
            "roles",
            "when",
            "description",
        ];
        for item in self.list(node, "the rules section") {
            let Some(fields) = self.fields(item, "a rule", &allowed) else {
                continue;
            };
            self.description(&fields);
            let Some(id) = self
                .required(&fields, item, "id", "a rule")
                .and_then(|n| self.name(n, "rule id"))
            else {
                continue;
            };
            let label = format!("rule `{}`", id.value);
            let effect = match self
                .required(&fields, item, "effect", &label)
                .map(|n| (n, self.string(n, "effect")))
            {
                Some((_, Some(text))) if text == "permit" => Some(Effect::Allow),
                Some((_, Some(text))) if text == "forbid" => Some(Effect::Deny),
                Some((effect_node, Some(text))) => {
                    self.report_help(
                        effect_node,
                        Code::Value,
                        format!("unknown effect `{text}` in {label}"),
                        "effect is `permit` or `forbid`",
                    );
                    None
                }
                _ => None,
            };
            let mut actions = BTreeSet::new();
            if let Some(list) = self.required(&fields, item, "actions", &label) {
                let items = self.list(list, &format!("actions of {label}"));
                if items.is_empty() {
                    self.report_help(
                        list,
                        Code::Value,
                        format!("{label} lists no action"),
                        "use [\"*\"] for every action",
                    );
                }
                for action in items {
                    if let Some(pattern) = self.action_pattern(action) {
                        actions.insert(pattern.value);
                    }
                }
            }
            let mut resources = BTreeSet::new();
            if let Some(list) = fields.get("resources") {
                for resource in self.list(list, &format!("resources of {label}")) {
                    if let Some(pattern) = self.resource_pattern(resource) {
                        resources.insert(pattern);
                    }
                }
            }
            let mut principals = BTreeSet::new();
            if let Some(list) = fields.get("principals") {
                for principal in self.list(list, &format!("principals of {label}")) {
                    if let Some(name) = self.name(principal, "a principal id") {
                        principals.insert(name.value);
                    }
                }
            }
            let mut roles = BTreeSet::new();
            if let Some(list) = fields.get("roles") {
                for role in self.list(list, &format!("roles of {label}")) {
                    if let Some(name) = self.name(role, "a role name") {
                        roles.insert(name);
                    }
                }
            }
            let when = fields
                .get("when")
                .and_then(|n| self.cel(n, &format!("the condition of {label}")));
            let Some(effect) = effect else {
                continue;
            };
            if let Some(previous) = target.get(&id.value) {
                let message = format!("{label} is defined twice; first at {}", previous.location);
                let location = id.location.clone();
                self.diagnostics.push(
                    Diagnostic::new(location, Code::Duplicate, message)
                        .with_help("give each rule a unique id"),
                );
                continue;
            }
            target.insert(
                id.value,
                At {
                    value: RuleDef {
                        effect,
                        actions,
                        resources,
                        principals,
                        roles,
                        when,
                    },
                    location: id.location,
                },
            );
        }
    }
}
