//! The `principals` section: the principals a bundle knows, with their type, role assignments
//! (everywhere or on a resource pattern) and attributes.
//!
//! This module owns the shape of a principal and keeps its assignments in a canonical order
//! without repeats. It must not check that the assigned roles exist: `compile` resolves them.

use super::nodes::Decoder;
use crate::model::{AssignmentDef, PrincipalDef};
use crate::yaml::{Node, NodeKind};

impl Decoder<'_> {
    pub(super) fn principal(&mut self, node: &Node, label: &str) -> Option<PrincipalDef> {
        let fields = self.fields(node, label, &["type", "roles", "attributes", "description"])?;
        self.description(&fields);
        let kind = fields
            .get("type")
            .and_then(|n| self.name(n, "principal type"))
            .map(|n| n.value);
        let mut roles = Vec::new();
        if let Some(list) = fields.get("roles") {
            for item in self.list(list, &format!("roles of {label}")) {
                match &item.kind {
                    NodeKind::Map(_) => {
                        let Some(entry) = self.fields(item, "a role assignment", &["role", "on"])
                        else {
                            continue;
                        };
                        let Some(role_node) =
                            self.required(&entry, item, "role", "a role assignment")
                        else {
                            continue;
                        };
                        let Some(role) = self.name(role_node, "a role name") else {
                            continue;
                        };
                        let on = match entry.get("on") {
                            Some(on) => match self.resource_pattern(on) {
                                Some(pattern) => Some(pattern),
                                None => continue,
                            },
                            None => None,
                        };
                        roles.push(AssignmentDef { role, on });
                    }
                    _ => {
                        if let Some(role) = self.name(item, "a role name") {
                            roles.push(AssignmentDef { role, on: None });
                        }
                    }
                }
            }
        }
        roles.sort_by(|a, b| (&a.role, &a.on).cmp(&(&b.role, &b.on)));
        roles.dedup_by(|a, b| a.role == b.role && a.on == b.on);
        let attributes = self.attributes(fields.get("attributes"), label);
        Some(PrincipalDef {
            kind,
            roles,
            attributes,
        })
    }
}
