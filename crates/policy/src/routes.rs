//! The route table: method + path pattern to action and resource, for forward-auth edges and the
//! gateway. Routes are tried most specific first (literal segments before captures before `**`,
//! exact length before a trailing `**`), so their order in the files never matters; the compiler
//! puts them in that order (`compile::route_specificity`), and matching takes the first that fits.

use std::borrow::Cow;

use portcullis_core::Resource;

use crate::compile::Snapshot;
use crate::model::PathSegment;

/// A route that matched a request.
#[derive(Debug, Clone, PartialEq)]
pub struct RouteMatch<'s> {
    /// The route's path pattern as written.
    pub pattern: &'s str,
    /// The action the route maps to.
    pub action: &'s str,
    /// The resource, with captures substituted.
    pub resource: Resource,
    /// The route's own strategy, if any.
    pub strategy: Option<&'s str>,
}

fn capture<'p>(segments: &[PathSegment], path: &'p str) -> Option<Vec<(&'p str, usize)>> {
    let rest = path.strip_prefix('/')?;
    // An empty remainder has no parts at all (not one empty part).
    let mut parts = rest.split('/').filter(|_| !rest.is_empty());
    // No allocation unless the route has captures and they match.
    let mut captures = Vec::new();
    for (index, segment) in segments.iter().enumerate() {
        match segment {
            PathSegment::Rest => return Some(captures),
            PathSegment::Literal(text) => {
                if parts.next() != Some(text.as_str()) {
                    return None;
                }
            }
            PathSegment::Param(_) => {
                let part = parts.next()?;
                if part.is_empty() {
                    return None;
                }
                captures.push((part, index));
            }
        }
    }
    parts.next().is_none().then_some(captures)
}

impl Snapshot {
    /// Finds the route for `method` and `path` (the query string, if any, is ignored).
    pub fn match_route(&self, method: &str, path: &str) -> Option<RouteMatch<'_>> {
        let path = path.split_once('?').map_or(path, |(path, _)| path);
        self.routes.iter().find_map(|route| {
            // Route methods are stored upper case.
            if !route.methods.is_empty()
                && !route
                    .methods
                    .iter()
                    .any(|allowed| allowed.eq_ignore_ascii_case(method))
            {
                return None;
            }
            let captures = capture(&route.segments, path)?;
            let resource = if captures.is_empty() {
                Cow::Borrowed(route.resource.as_str())
            } else {
                let mut resource = route.resource.clone();
                let mut needle = String::new();
                for (value, index) in captures {
                    if let Some(PathSegment::Param(name)) = route.segments.get(index) {
                        needle.clear();
                        needle.push('{');
                        needle.push_str(name);
                        needle.push('}');
                        resource = resource.replace(&needle, value);
                    }
                }
                Cow::Owned(resource)
            };
            let (kind, id) = resource.split_once(':')?;
            Some(RouteMatch {
                pattern: &route.path,
                action: &route.action,
                resource: Resource::new(kind, id),
                strategy: route.strategy.map(|id| &*self.strategies[id].name),
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The straightforward reading of a pattern: split the path into parts, then compare part by
    /// part. `capture` must agree with it without collecting the parts.
    fn reference<'p>(segments: &[PathSegment], path: &'p str) -> Option<Vec<(&'p str, usize)>> {
        let rest = path.strip_prefix('/')?;
        let parts: Vec<&str> = if rest.is_empty() {
            Vec::new()
        } else {
            rest.split('/').collect()
        };
        let mut captures = Vec::new();
        for (index, segment) in segments.iter().enumerate() {
            match segment {
                PathSegment::Rest => return Some(captures),
                PathSegment::Literal(text) => {
                    if parts.get(index) != Some(&text.as_str()) {
                        return None;
                    }
                }
                PathSegment::Param(_) => {
                    let part = parts.get(index)?;
                    if part.is_empty() {
                        return None;
                    }
                    captures.push((*part, index));
                }
            }
        }
        (parts.len() == segments.len()).then_some(captures)
    }

    fn segment() -> impl Strategy<Value = PathSegment> {
        prop_oneof![
            "[ab]{0,2}".prop_map(PathSegment::Literal),
            Just(PathSegment::Param("p".to_owned())),
            Just(PathSegment::Rest),
        ]
    }

    proptest! {
        #[test]
        fn capture_agrees_with_splitting_the_path(
            segments in proptest::collection::vec(segment(), 0..5),
            path in "/?[ab/]{0,8}",
        ) {
            prop_assert_eq!(capture(&segments, &path), reference(&segments, &path));
        }
    }

    #[test]
    fn captures_come_from_parameter_segments() {
        let segments = vec![
            PathSegment::Literal("apps".to_owned()),
            PathSegment::Param("app".to_owned()),
            PathSegment::Rest,
        ];
        assert_eq!(
            capture(&segments, "/apps/payments/logs/x"),
            Some(vec![("payments", 1)])
        );
        assert_eq!(capture(&segments, "/apps//logs"), None);
        assert_eq!(capture(&segments, "apps/payments"), None);
        assert_eq!(capture(&[], "/"), Some(vec![]));
        assert_eq!(capture(&[], "/x"), None);
    }
}
