//! The `roles` section: each role's permissions (action patterns, optionally with a CEL
//! condition) and the roles it inherits.
//!
//! This module owns the shape of a role and keeps its permissions in a canonical order. It must
//! not resolve inherited roles or look for inheritance cycles: `compile` does both.

use std::collections::BTreeSet;

use super::nodes::Decoder;
use crate::model::{PermissionDef, RoleDef};
use crate::yaml::{Node, NodeKind};

impl Decoder<'_> {
    pub(super) fn role(&mut self, node: &Node, label: &str) -> Option<RoleDef> {
        let fields = self.fields(node, label, &["inherits", "permissions", "description"])?;
        self.description(&fields);
        let mut inherits = BTreeSet::new();
        if let Some(list) = fields.get("inherits") {
            for item in self.list(list, &format!("inherits of {label}")) {
                if let Some(name) = self.name(item, "a role name") {
                    inherits.insert(name);
                }
            }
        }
        let mut permissions = Vec::new();
        if let Some(list) = fields.get("permissions") {
            for item in self.list(list, &format!("permissions of {label}")) {
                let (pattern_node, when) = match &item.kind {
                    NodeKind::Map(_) => {
                        let Some(entry) =
                            self.fields(item, "a permission", &["permission", "when"])
                        else {
                            continue;
                        };
                        let Some(pattern) =
                            self.required(&entry, item, "permission", "a conditional permission")
                        else {
                            continue;
                        };
                        let when = match entry.get("when") {
                            Some(cel) => match self.cel(cel, "a permission condition") {
                                Some(cel) => Some(cel),
                                None => continue,
                            },
                            None => None,
                        };
                        (pattern, when)
                    }
                    _ => (item, None),
                };
                let Some(pattern) = self.action_pattern(pattern_node) else {
                    continue;
                };
                permissions.push(PermissionDef { pattern, when });
            }
        }
        permissions.sort_by(|a, b| {
            (&a.pattern.value, a.when.as_ref().map(|c| &c.text))
                .cmp(&(&b.pattern.value, b.when.as_ref().map(|c| &c.text)))
        });
        Some(RoleDef {
            inherits,
            permissions,
        })
    }
}
