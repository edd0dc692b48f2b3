//! The `model` and `tuples` sections: the file holding a bundle's relationship model, and the
//! relationship tuples the bundle ships, in OpenFGA's wire shape.
//!
//! This module owns the shape of these two sections. It must not read the model file or check
//! tuples against the model: the compiler does both (`relations`), once every file is decoded.

use serde_json::Value;

use super::nodes::Decoder;
use crate::diagnostic::Code;
use crate::model::{At, TupleDef};
use crate::yaml::Node;

impl Decoder<'_> {
    /// The name of the file holding the bundle's relationship model; the compiler reads the file.
    pub(super) fn model_reference(
        &mut self,
        key: &Node,
        value: &Node,
        target: &mut Option<At<String>>,
    ) {
        if let Some(previous) = &*target {
            let first = previous.location.clone();
            self.report_help(
                key,
                Code::Duplicate,
                "`model` is set twice in the bundle",
                format!("keep one; the other is at {first}"),
            );
        } else if let Some(name) = self.name(value, "the model file name") {
            *target = Some(name);
        }
    }

    /// Relationship tuples shipped with the bundle, in OpenFGA's wire shape; they are checked
    /// against the model when the bundle is compiled.
    pub(super) fn tuples(&mut self, node: &Node, target: &mut Vec<At<TupleDef>>) {
        for item in self.list(node, "the tuples section") {
            let Some(fields) = self.fields(
                item,
                "a tuple",
                &["user", "relation", "object", "condition"],
            ) else {
                continue;
            };
            let user = self
                .required(&fields, item, "user", "a tuple")
                .and_then(|n| self.string(n, "the tuple's user"));
            let relation = self
                .required(&fields, item, "relation", "a tuple")
                .and_then(|n| self.string(n, "the tuple's relation"));
            let object = self
                .required(&fields, item, "object", "a tuple")
                .and_then(|n| self.string(n, "the tuple's object"));
            let condition = match fields.get("condition") {
                None => None,
                Some(node) => {
                    let Some(condition) =
                        self.fields(node, "a tuple condition", &["name", "context"])
                    else {
                        continue;
                    };
                    let name = self
                        .required(&condition, node, "name", "a tuple condition")
                        .and_then(|n| self.string(n, "the condition name"));
                    let context = match condition.get("context") {
                        Some(context) => match self.json(context) {
                            Value::Object(map) => map,
                            _ => {
                                self.wrong_type(context, "the condition context", "a mapping");
                                continue;
                            }
                        },
                        None => serde_json::Map::new(),
                    };
                    match name {
                        Some(name) => Some((name, context)),
                        None => continue,
                    }
                }
            };
            if let (Some(user), Some(relation), Some(object)) = (user, relation, object) {
                target.push(At {
                    value: TupleDef {
                        user,
                        relation,
                        object,
                        condition,
                    },
                    location: self.location(item),
                });
            }
        }
    }
}
