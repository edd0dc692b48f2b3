//! The `actions` section: per action, the strategy that must hold, whether it writes, and the
//! relation that grants it.
//!
//! This module owns the shape of an action's settings. It must not check the action's name or
//! resolve the strategy and relation it names: `compile` does.

use super::nodes::Decoder;
use crate::model::ActionDef;
use crate::yaml::Node;

impl Decoder<'_> {
    pub(super) fn action(&mut self, node: &Node, label: &str) -> Option<ActionDef> {
        let fields = self.fields(
            node,
            label,
            &["strategy", "write", "relation", "description"],
        )?;
        self.description(&fields);
        let strategy = fields
            .get("strategy")
            .and_then(|n| self.name(n, "a strategy name"));
        let write = match fields.get("write") {
            Some(flag) => self
                .bool(flag, &format!("write of {label}"))
                .unwrap_or(false),
            None => false,
        };
        let relation = fields
            .get("relation")
            .and_then(|n| self.name(n, "a relation name"));
        Some(ActionDef {
            strategy,
            write,
            relation,
        })
    }
}
