//! The route table: method + path pattern to action and resource, for forward-auth edges and the
//! gateway. Routes are tried most specific first (literal segments before captures before `**`,
//! exact length before a trailing `**`), so their order in the files never matters.

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

/// Orders routes: a larger key is more specific.
pub(crate) fn specificity(segments: &[PathSegment]) -> Vec<u8> {
    let mut key: Vec<u8> = segments
        .iter()
        .map(|segment| match segment {
            PathSegment::Literal(_) => 3,
            PathSegment::Param(_) => 2,
            PathSegment::Rest => 1,
        })
        .collect();
    if !matches!(segments.last(), Some(PathSegment::Rest)) {
        key.push(4);
    }
    key
}

fn capture<'p>(segments: &[PathSegment], path: &'p str) -> Option<Vec<(&'p str, usize)>> {
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

impl Snapshot {
    /// Finds the route for `method` and `path` (the query string, if any, is ignored).
    pub fn match_route(&self, method: &str, path: &str) -> Option<RouteMatch<'_>> {
        let path = path.split_once('?').map_or(path, |(path, _)| path);
        let method = method.to_ascii_uppercase();
        self.routes.iter().find_map(|route| {
            if !route.methods.is_empty() && !route.methods.contains(&method) {
                return None;
            }
            let captures = capture(&route.segments, path)?;
            let mut resource = route.resource.clone();
            for (value, index) in captures {
                if let Some(PathSegment::Param(name)) = route.segments.get(index) {
                    resource = resource.replace(&format!("{{{name}}}"), value);
                }
            }
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
