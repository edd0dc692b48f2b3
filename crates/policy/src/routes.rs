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

/// Paths with at most this many parts are split once per match, on the stack.
const SPLIT_PARTS: usize = 24;

/// A path split into its parts.
#[derive(Clone, Copy)]
enum Split<'b, 'p> {
    /// The parts (none for `/`).
    Parts(&'b [&'p str]),
    /// The path does not start with `/`: no route matches it.
    NotAbsolute,
    /// More parts than the buffer holds.
    TooMany,
}

/// Splits `path` into the parts [`capture`] walks, into `buffer`.
fn split_path<'b, 'p>(path: &'p str, buffer: &'b mut [&'p str; SPLIT_PARTS]) -> Split<'b, 'p> {
    let Some(rest) = path.strip_prefix('/') else {
        return Split::NotAbsolute;
    };
    if rest.is_empty() {
        return Split::Parts(&buffer[..0]);
    }
    let mut count = 0;
    for part in rest.split('/') {
        let Some(slot) = buffer.get_mut(count) else {
            return Split::TooMany;
        };
        *slot = part;
        count += 1;
    }
    Split::Parts(&buffer[..count])
}

/// [`capture`] on a path already split into its parts.
fn capture_parts<'p>(segments: &[PathSegment], parts: &[&'p str]) -> Option<Vec<(&'p str, usize)>> {
    let mut parts = parts.iter();
    let mut captures = Vec::new();
    for (index, segment) in segments.iter().enumerate() {
        match segment {
            PathSegment::Rest => return Some(captures),
            PathSegment::Literal(text) => {
                if parts.next().copied() != Some(text.as_str()) {
                    return None;
                }
            }
            PathSegment::Param(_) => {
                let part = *parts.next()?;
                if part.is_empty() {
                    return None;
                }
                captures.push((part, index));
            }
        }
    }
    parts.next().is_none().then_some(captures)
}

/// The resource template with every `{name}` replaced by the path part captured for `name`
/// (a name the path did not capture stays as written), in one pass over the template.
fn substitute(template: &str, segments: &[PathSegment], captures: &[(&str, usize)]) -> String {
    let captured = |name: &str| {
        captures
            .iter()
            .find_map(|(value, index)| match segments.get(*index) {
                Some(PathSegment::Param(param)) if param == name => Some(*value),
                _ => None,
            })
    };
    let mut out = String::with_capacity(template.len() + 16);
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        match after.find('}') {
            Some(close) => {
                let name = &after[..close];
                match captured(name) {
                    Some(value) => out.push_str(value),
                    None => {
                        out.push('{');
                        out.push_str(name);
                        out.push('}');
                    }
                }
                rest = &after[close + 1..];
            }
            None => {
                out.push_str(&rest[open..]);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

impl Snapshot {
    /// Finds the route for `method` and `path` (the query string, if any, is ignored).
    pub fn match_route(&self, method: &str, path: &str) -> Option<RouteMatch<'_>> {
        let path = path.split_once('?').map_or(path, |(path, _)| path);
        // The path is split once for every route; one too long for the buffer is split by each
        // route as it is tried.
        let mut buffer = [""; SPLIT_PARTS];
        let parts = split_path(path, &mut buffer);
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
            let captures = match parts {
                Split::Parts(parts) => capture_parts(&route.segments, parts)?,
                Split::NotAbsolute => return None,
                Split::TooMany => capture(&route.segments, path)?,
            };
            let resource = if captures.is_empty() {
                Cow::Borrowed(route.resource.as_str())
            } else {
                Cow::Owned(substitute(&route.resource, &route.segments, &captures))
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
            let mut buffer = [""; SPLIT_PARTS];
            let split = match split_path(&path, &mut buffer) {
                Split::Parts(parts) => capture_parts(&segments, parts),
                Split::NotAbsolute => None,
                Split::TooMany => capture(&segments, &path),
            };
            prop_assert_eq!(split, reference(&segments, &path));
        }

        #[test]
        fn substitution_replaces_each_captured_name(
            template in "[a-z:]{0,6}(\\{(p|q|r)\\}[a-z:]{0,3}){0,3}",
            p in "[a-z0-9]{1,4}",
            q in "[a-z0-9]{1,4}",
        ) {
            let segments = vec![
                PathSegment::Param("p".to_owned()),
                PathSegment::Param("q".to_owned()),
            ];
            let captures = vec![(p.as_str(), 0), (q.as_str(), 1)];
            // Values without braces: replacing name after name gives the same text.
            let expected = template.replace("{p}", &p).replace("{q}", &q);
            prop_assert_eq!(substitute(&template, &segments, &captures), expected);
        }
    }

    #[test]
    fn paths_split_once_unless_too_long() {
        let mut buffer = [""; SPLIT_PARTS];
        assert!(matches!(split_path("x/y", &mut buffer), Split::NotAbsolute));
        assert!(matches!(split_path("/", &mut buffer), Split::Parts([])));
        assert!(matches!(
            split_path("/a//b", &mut buffer),
            Split::Parts(["a", "", "b"])
        ));
        let long = format!("/a{}", "/b".repeat(SPLIT_PARTS));
        assert!(matches!(split_path(&long, &mut buffer), Split::TooMany));
        let fits = format!("/a{}", "/b".repeat(SPLIT_PARTS - 1));
        assert!(
            matches!(split_path(&fits, &mut buffer), Split::Parts(parts) if parts.len() == SPLIT_PARTS)
        );
    }

    #[test]
    fn substitution_leaves_unknown_names_and_open_braces() {
        let segments = vec![PathSegment::Param("app".to_owned())];
        let captures = vec![("payments", 0)];
        assert_eq!(
            substitute("app:{app}-{env}", &segments, &captures),
            "app:payments-{env}"
        );
        assert_eq!(substitute("app:{app", &segments, &captures), "app:{app");
        assert_eq!(
            substitute("app:{app}{app}", &segments, &captures),
            "app:paymentspayments"
        );
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
