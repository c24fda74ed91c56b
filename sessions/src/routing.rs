//! Method + path routing on `matchit`, with `{name}` path parameters.

use std::{
    collections::HashMap,
    hash::{BuildHasherDefault, Hasher},
};

use http::{HeaderValue, Method};

/// The parameter names of a route pattern, in order: `/users/{id}/{*rest}`
/// has `id` and `rest`.
pub(crate) fn param_names(pattern: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut rest = pattern;
    while let Some(start) = rest.find('{') {
        if rest[start..].starts_with("{{") {
            rest = &rest[start + 2..];
            continue;
        }
        let Some(len) = rest[start..].find('}') else {
            break;
        };
        let name = &rest[start + 1..start + len];
        names.push(name.trim_start_matches('*').to_owned());
        rest = &rest[start + len + 1..];
    }
    names
}

/// What a request path and method lead to.
#[derive(Debug)]
pub(crate) enum Match<'r, E> {
    /// An endpoint and the decoded path parameters.
    Found(&'r E, Vec<String>),
    /// The path exists, the method does not: the `Allow` header.
    MethodNotAllowed(&'r HeaderValue),
    /// No route has this path.
    NotFound,
    /// A path parameter is not valid percent-encoded UTF-8.
    BadPath,
}

struct Slot<E> {
    endpoints: Vec<(Method, E)>,
    allow: HeaderValue,
}

/// The routing table: built once, read per request.
///
/// Patterns without parameters are also kept in a hash table, looked up first: matchit
/// gives a static route priority over parameters anyway, and for `POST /login` the table
/// took the whole lookup from about 260 instructions (matchit's walk was 155 of them) to
/// about 170 in callgrind.
pub(crate) struct Router<E> {
    matcher: matchit::Router<usize>,
    statics: HashMap<Box<str>, usize, BuildHasherDefault<Fnv1a>>,
    slots: Vec<Slot<E>>,
    patterns: Vec<String>,
}

impl<E> Default for Router<E> {
    fn default() -> Self {
        Router {
            matcher: matchit::Router::new(),
            statics: HashMap::default(),
            slots: Vec::new(),
            patterns: Vec::new(),
        }
    }
}

/// FNV-1a, 64 bits: a few instructions per byte of a short path. The table is filled when
/// the app is built and only read per request, so a request cannot choose colliding keys
/// to make inserts slow (what SipHash, the default, defends against).
struct Fnv1a(u64);

impl Default for Fnv1a {
    /// FNV's 64-bit offset basis.
    fn default() -> Self {
        Fnv1a(0xcbf2_9ce4_8422_2325)
    }
}

impl Hasher for Fnv1a {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.0 ^= u64::from(byte);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }
}

impl<E> Router<E> {
    /// Adds a route.
    ///
    /// # Errors
    ///
    /// A message when the pattern is invalid, conflicts with another one, or
    /// the method is already routed for it.
    pub(crate) fn insert(&mut self, method: Method, path: &str, endpoint: E) -> Result<(), String> {
        let index = match self.matcher.at(path) {
            Ok(found) if self.pattern_of(*found.value) == Some(path) => *found.value,
            _ => {
                let index = self.slots.len();
                self.matcher
                    .insert(path, index)
                    .map_err(|error| format!("invalid route `{path}`: {error}"))?;
                self.slots.push(Slot {
                    endpoints: Vec::new(),
                    allow: HeaderValue::from_static(""),
                });
                self.patterns.push(path.to_owned());
                if !path.contains(['{', '}']) {
                    self.statics.insert(path.into(), index);
                }
                index
            }
        };
        let slot = &mut self.slots[index];
        if slot.endpoints.iter().any(|(m, _)| *m == method) {
            return Err(format!("`{method} {path}` is routed twice"));
        }
        slot.endpoints.push((method, endpoint));
        let mut allow: Vec<&str> = slot.endpoints.iter().map(|(m, _)| m.as_str()).collect();
        if allow.contains(&"GET") && !allow.contains(&"HEAD") {
            allow.push("HEAD");
        }
        allow.sort_unstable();
        slot.allow = HeaderValue::from_str(&allow.join(", "))
            .unwrap_or_else(|_| HeaderValue::from_static("GET"));
        Ok(())
    }

    fn pattern_of(&self, index: usize) -> Option<&str> {
        self.patterns.get(index).map(String::as_str)
    }

    /// Finds the endpoint for a request.
    pub(crate) fn find(&self, method: &Method, path: &str) -> Match<'_, E> {
        let (index, found) = match self.statics.get(path) {
            Some(&index) => (index, None),
            None => match self.matcher.at(path) {
                Ok(found) => (*found.value, Some(found)),
                Err(_) => return Match::NotFound,
            },
        };
        let slot = &self.slots[index];
        let endpoint = slot
            .endpoints
            .iter()
            .find(|(m, _)| m == method)
            .or_else(|| {
                (*method == Method::HEAD)
                    .then(|| slot.endpoints.iter().find(|(m, _)| *m == Method::GET))
                    .flatten()
            });
        let Some((_, endpoint)) = endpoint else {
            return Match::MethodNotAllowed(&slot.allow);
        };
        let Some(found) = found else {
            return Match::Found(endpoint, Vec::new());
        };
        let mut params = Vec::with_capacity(found.params.len());
        for (_, value) in found.params.iter() {
            match percent_encoding::percent_decode_str(value).decode_utf8() {
                Ok(value) => params.push(value.into_owned()),
                Err(_) => return Match::BadPath,
            }
        }
        Match::Found(endpoint, params)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn param_names_in_order() {
        assert_eq!(param_names("/users/{id}/posts/{post}"), ["id", "post"]);
        assert_eq!(param_names("/files/{*path}"), ["path"]);
        assert!(param_names("/").is_empty());
    }

    #[test]
    fn finds_method_and_decodes_params() {
        let mut router = Router::default();
        router.insert(Method::GET, "/users/{id}", 1).unwrap();
        router.insert(Method::POST, "/users/{id}", 2).unwrap();
        match router.find(&Method::POST, "/users/a%20b") {
            Match::Found(endpoint, params) => {
                assert_eq!(*endpoint, 2);
                assert_eq!(params, ["a b"]);
            }
            other => panic!("expected a match, got {other:?}"),
        }
    }

    #[test]
    fn the_static_table_agrees_with_matchit() {
        let patterns = [
            "/",
            "/login",
            "/users/me",
            "/users/{id}",
            "/files/index",
            "/files/{*path}",
            "/a{{b}}",
            "/x/{y}/z",
        ];
        let mut router = Router::default();
        for (i, pattern) in patterns.iter().enumerate() {
            router.insert(Method::GET, pattern, i).unwrap();
        }
        assert_eq!(router.statics.len(), 4, "only patterns without braces");
        for path in [
            "/",
            "/login",
            "/login/",
            "/Login",
            "/users/me",
            "/users/you",
            "/files/index",
            "/files/a/b",
            "/a{b}",
            "/x/1/z",
            "/nope",
            "",
        ] {
            let by_matchit = router
                .matcher
                .at(path)
                .ok()
                .map(|found| router.slots[*found.value].endpoints[0].1);
            let by_find = match router.find(&Method::GET, path) {
                Match::Found(endpoint, _) => Some(*endpoint),
                _ => None,
            };
            assert_eq!(by_find, by_matchit, "{path:?}");
        }
    }

    #[test]
    fn head_falls_back_to_get() {
        let mut router = Router::default();
        router.insert(Method::GET, "/", 1).unwrap();
        assert!(matches!(
            router.find(&Method::HEAD, "/"),
            Match::Found(1, _)
        ));
    }

    #[test]
    fn wrong_method_lists_allowed_ones() {
        let mut router = Router::default();
        router.insert(Method::GET, "/", 1).unwrap();
        router.insert(Method::POST, "/", 2).unwrap();
        match router.find(&Method::DELETE, "/") {
            Match::MethodNotAllowed(allow) => assert_eq!(allow, "GET, HEAD, POST"),
            other => panic!("expected 405, got {other:?}"),
        }
    }

    #[test]
    fn unknown_path_is_not_found() {
        let router: Router<u8> = Router::default();
        assert!(matches!(
            router.find(&Method::GET, "/nope"),
            Match::NotFound
        ));
    }

    #[test]
    fn invalid_utf8_in_param_is_bad_path() {
        let mut router = Router::default();
        router.insert(Method::GET, "/{name}", 1).unwrap();
        assert!(matches!(router.find(&Method::GET, "/%FF"), Match::BadPath));
    }

    #[test]
    fn duplicate_route_is_refused() {
        let mut router = Router::default();
        router.insert(Method::GET, "/", 1).unwrap();
        assert!(router.insert(Method::GET, "/", 2).is_err());
    }

    #[test]
    fn conflicting_patterns_are_refused() {
        let mut router = Router::default();
        router.insert(Method::GET, "/{a}", 1).unwrap();
        assert!(router.insert(Method::GET, "/{b}", 2).is_err());
    }
}
