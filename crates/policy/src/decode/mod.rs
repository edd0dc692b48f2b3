//! From YAML trees to the bundle model, collecting every problem with its location.
//!
//! Each file is decoded on its own and merged into one [`Bundle`]; an id defined twice (in the
//! same section of two files, or twice in a list) is reported at the second place with a pointer
//! to the first. Nothing here resolves references between sections; `compile` does that.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;

use portcullis_core::Effect;
use serde_json::Value;

use crate::diagnostic::{Code, Diagnostics};
use crate::model::*;
use crate::values::{check_resource_template, parse_action_pattern, parse_route_path};
use crate::yaml::{Node, NodeKind};

mod actions;
mod calendars;
mod factors;
mod nodes;
mod principals;
mod roles;
mod rules;
mod strategies;
mod tenant;

use nodes::Decoder;

/// Sections any bundle file may hold.
pub const SECTIONS: &[&str] = &[
    "calendars",
    "factors",
    "strategies",
    "roles",
    "principals",
    "actions",
    "rules",
    "routes",
    "tests",
    "model",
    "tuples",
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
    // ---------------------------------------------------------------- file and sections

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
                "actions" => self.named_section(value, "action", &mut bundle.actions, Self::action),
                "rules" => self.rules(value, &mut bundle.rules),
                "routes" => self.routes(value, &mut bundle.routes),
                "tests" => self.tests(value, &mut bundle.tests),
                "model" => {
                    if let Some(previous) = &bundle.model {
                        let first = previous.location.clone();
                        self.report_help(
                            key,
                            Code::Duplicate,
                            "`model` is set twice in the bundle",
                            format!("keep one; the other is at {first}"),
                        );
                    } else if let Some(name) = self.name(value, "the model file name") {
                        bundle.model = Some(name);
                    }
                }
                "tuples" => self.tuples(value, &mut bundle.tuples),
                _ => {}
            }
        }
    }

    // ---------------------------------------------------------------- tuples

    /// Relationship tuples shipped with the bundle, in OpenFGA's wire shape; they are checked
    /// against the model when the bundle is compiled.
    fn tuples(&mut self, node: &Node, target: &mut Vec<At<TupleDef>>) {
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

    // ---------------------------------------------------------------- routes

    fn routes(&mut self, node: &Node, target: &mut Vec<At<RouteDef>>) {
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

    // ---------------------------------------------------------------- tests

    fn tests(&mut self, node: &Node, target: &mut Vec<At<TestDef>>) {
        let allowed = ["name", "request", "expect", "reasons", "forbids"];
        for item in self.list(node, "the tests section") {
            let Some(fields) = self.fields(item, "a test", &allowed) else {
                continue;
            };
            let name = self
                .required(&fields, item, "name", "a test")
                .and_then(|n| self.string(n, "test name"));
            let request_node = self.required(&fields, item, "request", "a test");
            let request = request_node.and_then(|request_node| {
                let value = self.json(request_node);
                match serde_json::from_value::<TestRequest>(value) {
                    Ok(request) => Some(request),
                    Err(error) => {
                        self.report_help(
                            request_node,
                            Code::Value,
                            format!("bad test request: {error}"),
                            "a request has principal, action, resource and optionally context, env, explain",
                        );
                        None
                    }
                }
            });
            let expect = match self
                .required(&fields, item, "expect", "a test")
                .map(|n| (n, self.string(n, "expect")))
            {
                Some((_, Some(text))) if text == "allow" => Some(Effect::Allow),
                Some((_, Some(text))) if text == "deny" => Some(Effect::Deny),
                Some((expect_node, Some(text))) => {
                    self.report_help(
                        expect_node,
                        Code::Value,
                        format!("unknown expectation `{text}`"),
                        "expect `allow` or `deny`",
                    );
                    None
                }
                _ => None,
            };
            let id_set = |key: &str, decoder: &mut Self| {
                fields.get(key).map(|list| {
                    decoder
                        .list(list, key)
                        .iter()
                        .filter_map(|entry| decoder.string(entry, "an id"))
                        .collect::<BTreeSet<String>>()
                })
            };
            let reasons = id_set("reasons", self);
            let forbids = id_set("forbids", self);
            if let (Some(name), Some(request), Some(expect)) = (name, request, expect) {
                target.push(At {
                    value: TestDef {
                        name,
                        request,
                        expect,
                        reasons,
                        forbids,
                    },
                    location: self.location(item),
                });
            }
        }
    }
}

/// Methods a route may name.
pub const HTTP_METHODS: &[&str] = &[
    "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "CONNECT", "TRACE",
];
