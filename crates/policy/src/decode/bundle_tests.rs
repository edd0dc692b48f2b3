//! The `tests` section: the test cases a bundle carries, each a name, a request, the expected
//! decision and optionally the granting statements and forbids the decision must name.
//!
//! This module owns reading a test case; its request is read into the model's `TestRequest`.
//! It must not run a test: the test runner (`testing`) does, once the bundle has compiled.

use std::collections::BTreeSet;

use portcullis_core::Effect;

use super::nodes::Decoder;
use crate::diagnostic::Code;
use crate::model::{At, TestDef, TestRequest};
use crate::yaml::Node;

impl Decoder<'_> {
    pub(super) fn tests(&mut self, node: &Node, target: &mut Vec<At<TestDef>>) {
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
