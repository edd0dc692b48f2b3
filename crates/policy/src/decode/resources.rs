//! The `resources` section: the resources a bundle knows, by `type:id`, with their attributes.
//!
//! Declared attributes are authoritative: the engine lets a request add attributes a resource
//! does not declare but never override a declared one. This module owns the shape of one
//! entry; `compile` checks the `type:id` form of the names.

use super::nodes::Decoder;
use crate::model::ResourceDef;
use crate::yaml::{Node, NodeKind};

impl Decoder<'_> {
    pub(super) fn resource(&mut self, node: &Node, label: &str) -> Option<ResourceDef> {
        if node.kind == NodeKind::Null {
            return Some(ResourceDef::default());
        }
        let fields = self.fields(node, label, &["attributes", "description"])?;
        self.description(&fields);
        let attributes = self.attributes(fields.get("attributes"), label);
        Some(ResourceDef { attributes })
    }
}
