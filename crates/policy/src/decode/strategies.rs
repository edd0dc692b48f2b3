//! The `strategies` section: each strategy is a list of branches, each branch a list of factor
//! names; the strategy holds when every factor of one branch holds.
//!
//! This module owns that shape and refuses strategies that could never hold or would always
//! hold. It must not check that the factors exist: `compile` resolves the names.

use std::collections::BTreeSet;

use super::nodes::Decoder;
use crate::diagnostic::Code;
use crate::model::StrategyDef;
use crate::yaml::{Node, NodeKind};

impl Decoder<'_> {
    pub(super) fn strategy(&mut self, node: &Node, label: &str) -> Option<StrategyDef> {
        let mut branches = BTreeSet::new();
        let items = self.list(node, label);
        if items.is_empty() {
            self.report_help(
                node,
                Code::Value,
                format!("{label} has no branch, so it could never hold"),
                "write it as a list of branches, each a list of factors: [[P1, P2], [P3]]",
            );
            return None;
        }
        for branch in items {
            let NodeKind::Seq(factors) = &branch.kind else {
                self.report_help(
                    branch,
                    Code::Type,
                    format!(
                        "a branch of {label} must be a list of factors, found {}",
                        branch.kind.describe()
                    ),
                    "a strategy is a list of branches, each a list of factors: [[P1, P2], [P3]]",
                );
                continue;
            };
            if factors.is_empty() {
                self.report(
                    branch,
                    Code::Value,
                    format!("{label} has an empty branch, which would always hold"),
                );
                continue;
            }
            let mut set = BTreeSet::new();
            for factor in factors {
                if let Some(name) = self.name(factor, "a factor name") {
                    set.insert(name);
                }
            }
            branches.insert(set);
        }
        Some(StrategyDef { branches })
    }
}
