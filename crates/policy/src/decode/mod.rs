//! From YAML trees to the bundle model, collecting every problem with its location.
//!
//! Each file is decoded on its own and merged into one [`Bundle`]; an id defined twice (in the
//! same section of two files, or twice in a list) is reported at the second place with a pointer
//! to the first. Nothing here resolves references between sections; `compile` does that.
//!
//! This file reads a file's top level and hands each section to the module that decodes it,
//! one per section: `tenant` (the keys of `tenant.yaml`), `calendars`, `factors`,
//! `strategies`, `roles`, `principals`, `actions`, `rules`, `routes`, `bundle_tests` (the
//! `tests` section), `relationships` (`model` and `tuples`) and `temporary_access`. They all
//! walk nodes with the readers of `nodes`, and leave the text of single values to `values`.
//! The decoder builds on `yaml`, `diagnostic`, `model` and `values` only; it must not import
//! the compiler or anything that runs after it.

use std::path::Path;
use std::sync::Arc;

use crate::diagnostic::Diagnostics;
use crate::model::Bundle;
use crate::yaml::{Node, NodeKind};

mod actions;
mod bundle_tests;
mod calendars;
mod factors;
mod nodes;
mod principals;
mod relationships;
mod resources;
mod roles;
mod routes;
mod rules;
mod strategies;
mod temporary_access;
mod tenant;

use nodes::Decoder;
pub use temporary_access::parse_duration;

/// Sections any bundle file may hold.
pub const SECTIONS: &[&str] = &[
    "calendars",
    "factors",
    "strategies",
    "roles",
    "principals",
    "resources",
    "actions",
    "rules",
    "routes",
    "tests",
    "model",
    "tuples",
    "temporary_access",
];

/// Keys only `tenant.yaml` may hold.
pub const TENANT_KEYS: &[&str] = &[
    "tenant",
    "status",
    "timezone",
    "domain",
    "supply_chain",
    "accept_request_time",
    "trust_token_roles",
    "sensitive_attributes",
    "quota",
    "description",
];

/// Decodes one file into `bundle`, reporting problems into `diagnostics`.
pub fn decode_file(
    bundle: &mut Bundle,
    file: &Arc<Path>,
    source: &str,
    root: &Node,
    is_tenant_file: bool,
    diagnostics: &mut Diagnostics,
) {
    let mut decoder = Decoder {
        file: Arc::clone(file),
        source,
        diagnostics,
    };
    decoder.file_root(bundle, root, is_tenant_file);
}

impl Decoder<'_> {
    /// A file's top-level mapping: the tenant keys (in `tenant.yaml` only), then each section,
    /// decoded by its own module.
    fn file_root(&mut self, bundle: &mut Bundle, root: &Node, is_tenant_file: bool) {
        let mut allowed: Vec<&str> = SECTIONS.to_vec();
        if is_tenant_file {
            allowed.extend_from_slice(TENANT_KEYS);
        }
        if root.kind == NodeKind::Null {
            return;
        }
        let Some(fields) = self.fields(root, "a bundle file", &allowed) else {
            return;
        };
        if is_tenant_file {
            self.tenant(bundle, &fields, root);
        }
        for (name, key, value) in &fields.entries {
            match name.as_str() {
                "calendars" => {
                    self.named_section(value, "calendar", &mut bundle.calendars, Self::calendar)
                }
                "factors" => self.named_section(value, "factor", &mut bundle.factors, Self::factor),
                "strategies" => {
                    self.named_section(value, "strategy", &mut bundle.strategies, Self::strategy)
                }
                "roles" => self.named_section(value, "role", &mut bundle.roles, Self::role),
                "principals" => {
                    self.named_section(value, "principal", &mut bundle.principals, Self::principal)
                }
                "resources" => {
                    self.named_section(value, "resource", &mut bundle.resources, Self::resource)
                }
                "actions" => self.named_section(value, "action", &mut bundle.actions, Self::action),
                "rules" => self.rules(value, &mut bundle.rules),
                "routes" => self.routes(value, &mut bundle.routes),
                "tests" => self.tests(value, &mut bundle.tests),
                "model" => self.model_reference(key, value, &mut bundle.model),
                "tuples" => self.tuples(value, &mut bundle.tuples),
                "temporary_access" => {
                    self.temporary_access(key, value, &mut bundle.temporary_access)
                }
                _ => {}
            }
        }
    }
}
