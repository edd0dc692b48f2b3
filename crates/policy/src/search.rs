//! Search: which subjects, resources or actions an evaluation would allow now (the subject,
//! resource and action searches of OpenID AuthZEN 1.0).
//!
//! A search enumerates candidates and keeps those whose decision is `allow`: every result is
//! checked by [`crate::decide`] on the same snapshot with the same request, so a result is
//! returned only if evaluating it would grant it, whatever grants it (role assignments from
//! the bundle or the store, permit rules, the relation graph) and whatever stands in the way
//! (forbids, strategies, conditions). What can be enumerated:
//!
//! * subjects: the principals the bundle declares and the store assigns, of the searched type
//!   (a principal declared without a type is a `user`), and, when the action maps to a
//!   relation, the users of that type the relation graph lists for the resource;
//! * resources: the resources the bundle declares (section `resources`), of the searched type,
//!   and, when the action maps to a relation, the objects of that type the graph lists for the
//!   subject;
//! * actions: every action the bundle names on the resource's type (`type:verb` in actions,
//!   permissions and rules) and every verb it grants on any type (`*:verb`).
//!
//! Anything else — a principal only a token knows, a resource only a request describes — is
//! not enumerable, and a search cannot find it even where a check would allow it.
//!
//! Candidates are ordered by id (by name for actions) and results come in pages: a page ends
//! after `limit` results or at the end, and names the last candidate it examined; the next page
//! starts after it. On the same snapshot, pages therefore neither repeat nor skip a result.

use std::borrow::Cow;
use std::collections::BTreeSet;

use portcullis_core::{Request, qualified_action};
use serde_json::{Map, Value};

use crate::compile::Snapshot;
use crate::model::split_action;

/// What a search enumerates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SearchKind {
    /// Subjects (principals) of the request's principal type.
    Subject,
    /// Resources of the request's resource type.
    Resource,
    /// Actions on the request's resource.
    Action,
}

/// One page of a search.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchPage {
    /// The ids (subjects, resources) or plain action names (actions) allowed, in order.
    pub results: Vec<String>,
    /// The last candidate examined, when candidates remain after it: where the next page
    /// starts.
    pub next: Option<String>,
}

/// A candidate of a search: its id (or action name) and, for a resource the bundle declares,
/// its declared attributes, which the decision then does not look up again.
type Candidate<'s> = (Cow<'s, str>, Option<&'s Map<String, Value>>);

/// A search that could not enumerate its candidates (a relation query over its budget).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchError(pub String);

impl std::fmt::Display for SearchError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for SearchError {}

impl Snapshot {
    /// The candidates a search of `kind` examines for `template`, sorted and each once (see the
    /// module documentation). The template's own id of the searched part is ignored.
    pub fn search_candidates(
        &self,
        kind: SearchKind,
        template: &Request,
    ) -> Result<Vec<String>, SearchError> {
        Ok(self
            .candidates_after(kind, template, None)?
            .map(|(id, _)| id.into_owned())
            .collect())
    }

    /// The candidates after `after` (all when `None`), in order, each once. Declared resources
    /// are read in place from their ordered map, so a page does not copy every id of a type.
    fn candidates_after<'s>(
        &'s self,
        kind: SearchKind,
        template: &Request,
        after: Option<&str>,
    ) -> Result<Box<dyn Iterator<Item = Candidate<'s>> + 's>, SearchError> {
        let after_owned = after.map(str::to_owned);
        let beyond = move |candidate: &str| after_owned.as_deref().is_none_or(|a| candidate > a);
        match kind {
            SearchKind::Subject => {
                let wanted = template.principal.kind.as_str();
                let order = self.principal_order.get_or_init(|| {
                    let mut ids: Vec<Box<str>> = self
                        .principals
                        .keys()
                        .map(|id| id.as_str().into())
                        .collect();
                    ids.sort_unstable();
                    ids
                });
                let start = after.map_or(0, |after| order.partition_point(|id| **id <= *after));
                let kind = wanted.to_owned();
                let declared = order[start..]
                    .iter()
                    .filter(move |id| {
                        self.principals
                            .get(&***id)
                            .is_some_and(|entry| entry.kind.as_deref().unwrap_or("user") == kind)
                    })
                    .map(|id| (Cow::Borrowed(&**id), None));
                let mut related = BTreeSet::new();
                if let Some(relation) = self.action_relation(template)
                    && let Some(relations) = &self.relations
                {
                    let object = crate::relations::resource_object(&template.resource);
                    let filter = portcullis_rebac::UserFilter {
                        user_type: wanted.to_owned(),
                        relation: None,
                    };
                    let users = relations
                        .read()
                        .list_users(&object, relation, &[filter], &Default::default(), &[])
                        .map_err(|error| SearchError(error.to_string()))?;
                    for user in users {
                        if let portcullis_rebac::User::Object(object) = user
                            && object.object_type == wanted
                            && object.id != "*"
                            && beyond(&object.id)
                        {
                            related.insert(object.id);
                        }
                    }
                }
                Ok(Box::new(Merged {
                    left: declared.peekable(),
                    right: related
                        .into_iter()
                        .map(|id| (Cow::Owned(id), None))
                        .peekable(),
                }))
            }
            SearchKind::Resource => {
                let wanted = template.resource.kind.as_str();
                let declared: Box<dyn Iterator<Item = Candidate<'s>> + 's> =
                    match self.resources.get(wanted) {
                        Some(ids) => {
                            let range = match after {
                                Some(after) => ids.range::<str, _>((
                                    std::ops::Bound::Excluded(after),
                                    std::ops::Bound::Unbounded,
                                )),
                                None => ids.range::<str, _>(..),
                            };
                            Box::new(range.map(|(id, attributes)| {
                                (Cow::Borrowed(id.as_str()), Some(attributes))
                            }))
                        }
                        None => Box::new(std::iter::empty()),
                    };
                let mut related = BTreeSet::new();
                if let Some(relation) = self.action_relation(template)
                    && let Some(relations) = &self.relations
                {
                    let user = portcullis_rebac::User::Object(portcullis_rebac::ObjectRef::new(
                        template.principal.kind.as_str(),
                        template.principal.id.as_str(),
                    ));
                    let objects = relations
                        .read()
                        .list_objects(&user, relation, wanted, &Default::default(), &[])
                        .map_err(|error| SearchError(error.to_string()))?;
                    related.extend(
                        objects
                            .into_iter()
                            .map(|object| object.id)
                            .filter(|id| beyond(id)),
                    );
                }
                // A related object that is not declared (the declared ones come from `left`).
                Ok(Box::new(Merged {
                    left: declared.peekable(),
                    right: related
                        .into_iter()
                        .map(|id| (Cow::Owned(id), None))
                        .peekable(),
                }))
            }
            SearchKind::Action => {
                let wanted = template.resource.kind.as_str();
                let mut found = BTreeSet::new();
                for name in self.actions.keys() {
                    let (kind, verb) = split_action(name);
                    if kind == wanted && !verb.is_empty() {
                        found.insert(verb.to_owned());
                    }
                }
                found.extend(self.wildcard_grant_index.verbs_on_any_type());
                found.extend(self.rule_index.verbs_on_any_type());
                found.retain(|verb| beyond(verb));
                Ok(Box::new(
                    found.into_iter().map(|verb| (Cow::Owned(verb), None)),
                ))
            }
        }
    }

    /// One page of a search: the candidates after `after` (all when `None`) whose decision,
    /// with the candidate in place of the template's subject, resource or action, allows; at
    /// most `limit` of them (at least one is looked for).
    pub fn search(
        &self,
        kind: SearchKind,
        template: &Request,
        after: Option<&str>,
        limit: usize,
    ) -> Result<SearchPage, SearchError> {
        let mut candidates = self.candidates_after(kind, template, after)?.peekable();
        let limit = limit.max(1);
        let mut results = Vec::new();
        // The part of the request no candidate changes is built into a condition variable once.
        let merged = std::sync::OnceLock::new();
        let shared = match kind {
            SearchKind::Resource => Some(crate::engine::Shared::principal(self, template, &merged)),
            SearchKind::Subject => Some(crate::engine::Shared::resource(self, template, &merged)),
            SearchKind::Action => None,
        };
        let mut request = template.clone();
        request.explain = false;
        // Every decision qualifies a plain action by the resource type, which no candidate
        // changes: qualified once here, it is not formatted again per candidate.
        request.qualify_action();
        let mut last = None;
        for (candidate, declared) in candidates.by_ref() {
            // What the decision need not look up: a resource candidate's declared attributes.
            let mut known = None;
            match kind {
                SearchKind::Subject => candidate.as_ref().clone_into(&mut request.principal.id),
                SearchKind::Resource => {
                    candidate.as_ref().clone_into(&mut request.resource.id);
                    known = Some(declared);
                }
                SearchKind::Action => {
                    request.action = format!("{}:{candidate}", template.resource.kind);
                }
            }
            let allowed =
                crate::engine::decide_sharing(self, &request, shared.as_ref(), known).is_allowed();
            if allowed {
                results.push(candidate.clone().into_owned());
            }
            last = Some(candidate);
            if allowed && results.len() == limit {
                break;
            }
        }
        let next = match (candidates.peek(), last) {
            (Some(_), Some(last)) => Some(last.into_owned()),
            _ => None,
        };
        Ok(SearchPage { results, next })
    }

    /// The relation the template's action maps to, if any.
    fn action_relation(&self, template: &Request) -> Option<&str> {
        let name = qualified_action(&template.action, &template.resource.kind);
        self.actions
            .get(name.as_ref())
            .and_then(|entry| entry.relation.as_deref())
    }
}

/// Two iterators of candidates ordered by id merged into one, each id once (the left one's
/// where both hold it).
struct Merged<L: Iterator, R: Iterator> {
    left: std::iter::Peekable<L>,
    right: std::iter::Peekable<R>,
}

impl<'s, L, R> Iterator for Merged<L, R>
where
    L: Iterator<Item = Candidate<'s>>,
    R: Iterator<Item = Candidate<'s>>,
{
    type Item = Candidate<'s>;

    fn next(&mut self) -> Option<Candidate<'s>> {
        match (self.left.peek(), self.right.peek()) {
            (Some(left), Some(right)) => match left.0.cmp(&right.0) {
                std::cmp::Ordering::Less => self.left.next(),
                std::cmp::Ordering::Greater => self.right.next(),
                std::cmp::Ordering::Equal => {
                    self.right.next();
                    self.left.next()
                }
            },
            (Some(_), None) => self.left.next(),
            (None, _) => self.right.next(),
        }
    }
}
