//! The `routes` section: the forward-auth and gateway route table, each route a path pattern
//! with optional HTTP methods, the action and resource template it maps to, and an optional
//! strategy.
//!
//! This module owns the shape of a route and the HTTP methods a route may name; path patterns
//! and resource templates are parsed by `values`. It must not order the routes or resolve
//! their strategies: `compile` does both, and the engine matches requests against them.

use std::collections::BTreeSet;

use super::nodes::Decoder;
use crate::diagnostic::Code;
use crate::model::{At, RouteDef, Segment};
use crate::values::{check_resource_template, parse_action_pattern, parse_route_path};
use crate::yaml::Node;

/// Methods a route may name.
pub const HTTP_METHODS: &[&str] = &[
    "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "CONNECT", "TRACE",
];

impl Decoder<'_> {
    pub(super) fn routes(&mut self, node: &Node, target: &mut Vec<At<RouteDef>>) {
        let allowed = [
            "methods",
            "path",
            "action",
            "resource",
            "strategy",
            "description",
        ];
        for item in self.list(node, "the routes section") {
            let Some(fields) = self.fields(item, "a route", &allowed) else {
                continue;
            };
            self.description(&fields);
            let mut methods = BTreeSet::new();
            if let Some(list) = fields.get("methods") {
                for method in self.list(list, "methods of a route") {
                    let Some(text) = self.string(method, "an HTTP method") else {
                        continue;
                    };
                    let upper = text.to_ascii_uppercase();
                    if HTTP_METHODS.contains(&upper.as_str()) {
                        methods.insert(upper);
                    } else {
                        self.report_help(
                            method,
                            Code::Value,
                            format!("unknown HTTP method `{text}`"),
                            format!(
                                "methods are {}; leave `methods` out to match any",
                                HTTP_METHODS.join(", ")
                            ),
                        );
                    }
                }
            }
            let path_node = self.required(&fields, item, "path", "a route");
            let action_node = self.required(&fields, item, "action", "a route");
            let resource_node = self.required(&fields, item, "resource", "a route");
            let (Some(path_node), Some(action_node), Some(resource_node)) =
                (path_node, action_node, resource_node)
            else {
                continue;
            };
            let Some(path) = self.string(path_node, "route path") else {
                continue;
            };
            let segments = match parse_route_path(&path) {
                Ok(segments) => segments,
                Err(problem) => {
                    self.report_help(
                        path_node,
                        Code::Pattern,
                        format!("bad route path `{path}`: {problem}"),
                        "a path starts with '/', captures whole segments as {name} and may end with ** to match the rest",
                    );
                    continue;
                }
            };
            let Some(action) = self.string(action_node, "route action") else {
                continue;
            };
            if let Err(problem) = parse_action_pattern(&action).and_then(|p| {
                if p.kind == Segment::Any || p.verb == Segment::Any {
                    Err("a route maps to one action, without wildcards".to_owned())
                } else {
                    Ok(())
                }
            }) {
                self.report(
                    action_node,
                    Code::Pattern,
                    format!("bad route action `{action}`: {problem}"),
                );
                continue;
            }
            let Some(resource) = self.string(resource_node, "route resource") else {
                continue;
            };
            if let Err(problem) = check_resource_template(&resource, &segments) {
                self.report_help(
                    resource_node,
                    Code::Pattern,
                    format!("bad route resource `{resource}`: {problem}"),
                    "write type:id, where the id may use {name} captured by the path, e.g. app:{app}",
                );
                continue;
            }
            let strategy = fields
                .get("strategy")
                .and_then(|n| self.name(n, "a strategy name"));
            target.push(At {
                value: RouteDef {
                    methods,
                    path,
                    segments,
                    action,
                    resource,
                    strategy,
                },
                location: self.location(item),
            });
        }
    }
}
