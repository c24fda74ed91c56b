//! [`RequestContext`]: one request as providers see it, and
//! [`ResponseCookies`], the cookies queued for its response.

use std::{
    fmt,
    sync::{Arc, Mutex, OnceLock, PoisonError},
};

use cookie::Cookie;
use http::{header, request::Parts, Extensions, HeaderMap, HeaderValue, Method, Uri, Version};

use crate::{cookies::SetCookieTemplate, Body, Response};

/// One request, as providers see it while they inject a handler's parameters.
///
/// Custom [`Inject`](crate::Inject) implementations read from it; the query
/// string is parsed once, on first use; a cookie lookup scans the `Cookie`
/// headers in place, without copying them.
pub struct RequestContext {
    parts: Parts,
    body: Option<Body>,
    path: Vec<String>,
    route_name: &'static str,
    query: OnceLock<Vec<(String, String)>>,
    response_cookies: Option<ResponseCookies>,
}

impl fmt::Debug for RequestContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RequestContext")
            .field("method", &self.parts.method)
            .field("uri", &self.parts.uri)
            .field("route_name", &self.route_name)
            .finish_non_exhaustive()
    }
}

impl RequestContext {
    pub(crate) fn new(
        parts: Parts,
        body: Body,
        path: Vec<String>,
        route_name: &'static str,
    ) -> Self {
        RequestContext {
            parts,
            body: Some(body),
            path,
            route_name,
            query: OnceLock::new(),
            response_cookies: None,
        }
    }

    /// The request method.
    pub fn method(&self) -> &Method {
        &self.parts.method
    }

    /// The request URI.
    pub fn uri(&self) -> &Uri {
        &self.parts.uri
    }

    /// The HTTP version.
    pub fn version(&self) -> Version {
        self.parts.version
    }

    /// The request headers.
    pub fn headers(&self) -> &HeaderMap {
        &self.parts.headers
    }

    /// The request extensions.
    pub fn extensions(&self) -> &Extensions {
        &self.parts.extensions
    }

    /// The request extensions, mutably: providers may cache per-request
    /// values here.
    pub fn extensions_mut(&mut self) -> &mut Extensions {
        &mut self.parts.extensions
    }

    /// The route's name (the handler's name unless overridden).
    pub fn route_name(&self) -> &'static str {
        self.route_name
    }

    /// The path parameter at `index` in the route pattern, percent-decoded.
    /// Providers get the index from
    /// [`Resolver::path_param`](crate::inject::Resolver::path_param).
    pub fn path_param(&self, index: usize) -> Option<&str> {
        self.path.get(index).map(String::as_str)
    }

    /// The first value of query parameter `name`, decoded.
    pub fn query(&self, name: &str) -> Option<&str> {
        let query = self.parts.uri.query()?;
        match find_plain_query_value(query, name) {
            Some(found) => found,
            None => self.decoded_query(name),
        }
    }

    /// [`query`](Self::query) through the whole query string decoded once into pairs.
    fn decoded_query(&self, name: &str) -> Option<&str> {
        let pairs = self.query.get_or_init(|| {
            self.parts.uri.query().map_or_else(Vec::new, |query| {
                form_urlencoded::parse(query.as_bytes())
                    .into_owned()
                    .collect()
            })
        });
        pairs
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }

    /// The value of request cookie `name`, as sent (the first one when a
    /// browser sends several with one name, which is the most specific).
    ///
    /// Each `;`-separated pair of each `Cookie` header is split at its first
    /// `=`; the name and the value lose their leading and trailing spaces and
    /// tabs (RFC 6265, section 5.2), and quotes stay. A pair whose value is not
    /// UTF-8 is passed over, so that one cookie set by some other software on
    /// the domain cannot hide the others. A name that is empty or holds `=` or
    /// `;` is never found.
    pub fn cookie(&self, name: &str) -> Option<&str> {
        // Scanned at each lookup (a request looks up one or two cookies): copying every
        // pair into a list cost more than the scans.
        let name = name.as_bytes();
        if name.is_empty()
            || name.iter().any(|b| matches!(b, b'=' | b';'))
            || trim_wsp(name).len() != name.len()
        {
            return None;
        }
        let headers = &self.parts.headers;
        if headers.keys_len() <= LINEAR_HEADER_LOOKUP {
            // A request carries a few headers: comparing each name (a standard name is a
            // small integer) costs less than hashing `cookie` for the map's index, which was
            // 142 of a login's instructions (callgrind, a request with one header).
            headers
                .iter()
                .filter(|(header_name, _)| **header_name == header::COOKIE)
                .find_map(|(_, header)| cookie_in(header, name))
        } else {
            headers
                .get_all(header::COOKIE)
                .iter()
                .find_map(|header| cookie_in(header, name))
        }
    }

    /// Takes the request body; `None` once taken.
    pub fn take_body(&mut self) -> Option<Body> {
        self.body.take()
    }

    /// The cookies queued for this request's response. Session parameters
    /// keep a handle to it so that `update_session` can queue a
    /// `Set-Cookie` after the parameter was handed to the handler.
    pub fn response_cookies(&mut self) -> ResponseCookies {
        self.response_cookies
            .get_or_insert_with(ResponseCookies::default)
            .clone()
    }

    /// The request's header map, for a response to take over once the handler is done
    /// ([`IntoResponse::into_response_reusing`](crate::IntoResponse::into_response_reusing)).
    pub(crate) fn request_headers_for_reuse(&mut self) -> &mut HeaderMap {
        &mut self.parts.headers
    }

    /// Adds the queued cookies to the response. Takes the context by reference: moving
    /// it (some 300 bytes) cost a copy.
    ///
    /// A response with no header yet (a `Created(())`, a `NoContent`) gets the request's
    /// header map, emptied, for its `Set-Cookie`s: its room is already allocated, and
    /// hyper keeps a response's map to parse the connection's next request into. The map
    /// then goes round, from request to response to request, instead of two allocations
    /// (its index and its entries) for each response that sets a cookie and two frees for
    /// each request.
    pub(crate) fn finish(&mut self, response: &mut Response) {
        if let Some(cookies) = self.response_cookies.take() {
            let headers = response.headers_mut();
            if headers.capacity() == 0 {
                let mut recycled = std::mem::take(&mut self.parts.headers);
                recycled.clear();
                *headers = recycled;
            }
            cookies.write_to(headers);
        }
    }
}

/// The value of cookie `name` in one `Cookie` header (see [`RequestContext::cookie`]).
fn cookie_in<'a>(header: &'a HeaderValue, name: &[u8]) -> Option<&'a str> {
    let mut rest = header.as_bytes();
    loop {
        // One pass over the header: a pair is skipped as soon as its name differs, and
        // only the value found is checked as UTF-8.
        let end = memchr::memchr(b';', rest);
        let pair = &rest[..end.unwrap_or(rest.len())];
        if let Some(value) = cookie_pair(pair, name) {
            return Some(value);
        }
        rest = &rest[end? + 1..];
    }
}

/// Up to this many distinct header names, [`RequestContext::cookie`] finds the `Cookie`
/// headers by going through them all, in order, rather than through the map's index.
const LINEAR_HEADER_LOOKUP: usize = 16;

/// The value of one `name=value` pair of a `Cookie` header if its name is `name` (which has
/// no `=` and no surrounding whitespace) and its value is UTF-8: the value as sent, quotes
/// included (a quoted value is not the value that was set), without surrounding spaces and
/// tabs.
fn cookie_pair<'a>(pair: &'a [u8], name: &[u8]) -> Option<&'a str> {
    let after_name = trim_wsp_start(pair).strip_prefix(name)?;
    let value = trim_wsp_start(after_name).strip_prefix(b"=")?;
    std::str::from_utf8(trim_wsp(value)).ok()
}

/// Whether `b` is whitespace in the sense of RFC 6265's cookie parsing (`WSP`: space, tab).
fn is_wsp(b: &u8) -> bool {
    matches!(b, b' ' | b'\t')
}

fn trim_wsp_start(bytes: &[u8]) -> &[u8] {
    let start = bytes.iter().position(|b| !is_wsp(b)).unwrap_or(bytes.len());
    &bytes[start..]
}

fn trim_wsp(bytes: &[u8]) -> &[u8] {
    let bytes = trim_wsp_start(bytes);
    let end = bytes
        .iter()
        .rposition(|b| !is_wsp(b))
        .map_or(0, |last| last + 1);
    &bytes[..end]
}

/// The `Set-Cookie`s queued for one response. Cheap to clone: clones share
/// the queue.
#[derive(Clone, Default)]
pub struct ResponseCookies(Arc<Mutex<Queue>>);

/// The queue, in order. A response usually sets one cookie, kept inline: no second
/// allocation (a vector's first, of four cookies) for it.
#[derive(Clone, Default)]
struct Queue {
    first: Option<Queued>,
    more: Vec<Queued>,
}

impl Queue {
    fn iter(&self) -> impl DoubleEndedIterator<Item = &Queued> {
        self.first.iter().chain(&self.more)
    }

    fn retain(&mut self, mut keep: impl FnMut(&Queued) -> bool) {
        if self.first.as_ref().is_some_and(|first| !keep(first)) {
            self.first = None;
        }
        self.more.retain(keep);
    }

    fn is_empty(&self) -> bool {
        self.first.is_none() && self.more.is_empty()
    }

    fn push(&mut self, queued: Queued) {
        if self.is_empty() {
            self.first = Some(queued);
        } else {
            self.more.push(queued);
        }
    }
}

/// A queued cookie: one built by the caller, or a session cookie's `Set-Cookie` value,
/// already formatted by its template (no cookie is built for it, unless
/// [`ResponseCookies::get`] asks), which becomes the header value as it is.
#[derive(Clone)]
enum Queued {
    /// Boxed: a cookie is large, a templated value small.
    Cookie(Box<Cookie<'static>>),
    Templated {
        template: Arc<SetCookieTemplate>,
        /// `name=value; attributes`, UTF-8, of exactly its capacity.
        formatted: Vec<u8>,
    },
}

impl Queued {
    fn name(&self) -> &str {
        match self {
            Queued::Cookie(cookie) => cookie.name(),
            Queued::Templated { template, .. } => template.name(),
        }
    }

    /// Name, path and domain, as `Cookie`'s accessors give them: a later cookie with the
    /// same replaces this one.
    fn key(&self) -> (&str, Option<&str>, Option<&str>) {
        match self {
            Queued::Cookie(cookie) => (cookie.name(), cookie.path(), cookie.domain()),
            Queued::Templated { template, .. } => template.key(),
        }
    }
}

impl fmt::Debug for ResponseCookies {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let cookies = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        f.debug_list()
            .entries(cookies.iter().map(Queued::name))
            .finish()
    }
}

impl ResponseCookies {
    /// Queues a cookie, replacing one queued earlier with the same name,
    /// path and domain (the browser would keep only the last one anyway).
    pub fn set(&self, cookie: Cookie<'static>) {
        self.queue(Queued::Cookie(Box::new(cookie)));
    }

    /// [`set`](Self::set) for the cookie `template` makes of the value that is `pieces`
    /// one after the other.
    pub(crate) fn set_templated<S: AsRef<str>>(
        &self,
        template: &Arc<SetCookieTemplate>,
        pieces: &[S],
    ) {
        self.set_formatted(template, template.format(pieces).into_bytes());
    }

    /// [`set`](Self::set) for a `Set-Cookie` value that `template` formatted, or that was
    /// written as it does it (`name=`, the value, then the template's attributes), with no
    /// spare capacity: a signed session's, written around the token as it is signed.
    pub(crate) fn set_formatted(&self, template: &Arc<SetCookieTemplate>, formatted: Vec<u8>) {
        debug_assert!(template.value_of(&formatted).is_some());
        self.queue(Queued::Templated {
            template: Arc::clone(template),
            formatted,
        });
    }

    fn queue(&self, queued: Queued) {
        let mut cookies = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        // Most responses set one cookie: nothing to compare it with.
        if !cookies.is_empty() {
            let key = queued.key();
            cookies.retain(|earlier| earlier.key() != key);
        }
        cookies.push(queued);
    }

    /// The queued cookies, for tests and middleware.
    pub fn get(&self, name: &str) -> Option<Cookie<'static>> {
        let cookies = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let found = cookies
            .iter()
            .rev()
            .find(|queued| queued.name() == name)
            .map(|queued| match queued {
                Queued::Cookie(cookie) => Cookie::clone(cookie),
                Queued::Templated {
                    template,
                    formatted,
                } => template.cookie(&String::from_utf8_lossy(
                    template.value_of(formatted).unwrap_or_default(),
                )),
            });
        found
    }

    /// Adds the queued cookies to `headers`, in order. When this is the last handle (the
    /// session parameters are gone with the handler), the queue is taken, without a lock,
    /// and a session's formatted value becomes its header value as it is; otherwise the
    /// queue is copied, so that the cookies stay visible to the other handles.
    fn write_to(self, headers: &mut HeaderMap) {
        // `Arc::try_unwrap` is one atomic read-modify-write and the free another; checking
        // `Arc::get_mut` and then dropping took one more (about 9 ns each on a 2-core VM).
        let cookies = match Arc::try_unwrap(self.0) {
            Ok(queue) => queue.into_inner().unwrap_or_else(PoisonError::into_inner),
            Err(shared) => shared
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone(),
        };
        let cookies = cookies.first.into_iter().chain(cookies.more);
        for queued in cookies {
            let value = match queued {
                Queued::Cookie(cookie) => HeaderValue::try_from(format_set_cookie(&cookie))
                    .map_err(|_| cookie.name().to_owned()),
                Queued::Templated {
                    template,
                    formatted,
                } => HeaderValue::try_from(formatted).map_err(|_| template.name().to_owned()),
            };
            match value {
                Ok(value) => {
                    headers.append(header::SET_COOKIE, value);
                }
                Err(name) => tracing::error!(name, "a queued cookie is not a valid header value"),
            }
        }
    }
}

/// A cookie as its `Set-Cookie` value: exactly `Cookie`'s `Display`, written piece by piece
/// into one allocation of the exact size. A header value then takes the buffer over as it
/// is (a longer buffer would cost `Bytes` another allocation to track the spare room), and
/// none of `Display`'s formatting machinery runs. A cookie with an `Expires` date, which
/// needs date formatting, goes through `Display`.
pub(crate) fn format_set_cookie(cookie: &Cookie<'_>) -> String {
    if cookie.expires_datetime().is_some() {
        let mut formatted = cookie.to_string();
        formatted.shrink_to_fit();
        return formatted;
    }
    let same_site = cookie.same_site().map(|same_site| match same_site {
        cookie::SameSite::Strict => "Strict",
        cookie::SameSite::Lax => "Lax",
        cookie::SameSite::None => "None",
    });
    let partitioned = cookie.partitioned() == Some(true);
    // `Display`'s rule: a partitioned cookie, or `SameSite=None` with `Secure` unset, is
    // written `Secure`.
    let secure = cookie.secure() == Some(true)
        || partitioned
        || cookie.secure().is_none() && same_site == Some("None");
    let mut digits = itoa::Buffer::new();
    let max_age = cookie
        .max_age()
        .map(|max_age| digits.format(max_age.whole_seconds()));
    let pieces: [(bool, &str, &str); 7] = [
        (cookie.http_only() == Some(true), "; HttpOnly", ""),
        (same_site.is_some(), "; SameSite=", same_site.unwrap_or("")),
        (partitioned, "; Partitioned", ""),
        (secure, "; Secure", ""),
        (
            cookie.path().is_some(),
            "; Path=",
            cookie.path().unwrap_or(""),
        ),
        (
            cookie.domain().is_some(),
            "; Domain=",
            cookie.domain().unwrap_or(""),
        ),
        (max_age.is_some(), "; Max-Age=", max_age.unwrap_or("")),
    ];
    let len = cookie.name().len()
        + 1
        + cookie.value().len()
        + pieces
            .iter()
            .filter(|(on, ..)| *on)
            .map(|(_, label, value)| label.len() + value.len())
            .sum::<usize>();
    let mut formatted = String::with_capacity(len);
    formatted.push_str(cookie.name());
    formatted.push('=');
    formatted.push_str(cookie.value());
    for (_, label, value) in pieces.iter().filter(|(on, ..)| *on) {
        formatted.push_str(label);
        formatted.push_str(value);
    }
    debug_assert_eq!(formatted.len(), formatted.capacity());
    formatted
}

/// Looks `name` up in a raw query string without decoding or copying anything, as long as
/// every pair up to the answer is plain (no `%` or `+`, which decoding would change): then
/// `Some(answer)`. `None` when a pair that needs decoding comes first, for the caller to
/// decode the whole query. Splits as `application/x-www-form-urlencoded` does: on `&`, empty
/// pieces skipped, the name ending at the first `=`.
fn find_plain_query_value<'q>(query: &'q str, name: &str) -> Option<Option<&'q str>> {
    // One pass over the bytes, pair by pair; `&`, `=`, `%` and `+` are ASCII, so every
    // slice below starts and ends on a character boundary. (`split` and `split_once` cost
    // 348 instructions for `username=bench` in callgrind; this, 219.)
    let bytes = query.as_bytes();
    let mut start = 0;
    while start < bytes.len() {
        let mut end = start;
        let mut equals = None;
        let mut key_plain = true;
        let mut value_plain = true;
        while let Some(&b) = bytes.get(end) {
            match b {
                b'&' => break,
                b'=' if equals.is_none() => equals = Some(end),
                b'%' | b'+' if equals.is_none() => key_plain = false,
                b'%' | b'+' => value_plain = false,
                _ => {}
            }
            end += 1;
        }
        if end > start {
            if !key_plain {
                return None;
            }
            let key_end = equals.unwrap_or(end);
            if &query[start..key_end] == name {
                let value = equals.map_or("", |equals| &query[equals + 1..end]);
                return value_plain.then_some(Some(value));
            }
        }
        start = end + 1;
    }
    Some(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What `form_urlencoded` finds: the first pair named `name`, decoded.
    fn decoded(query: &str, name: &str) -> Option<String> {
        form_urlencoded::parse(query.as_bytes())
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.into_owned())
    }

    #[test]
    fn a_templated_cookie_and_a_built_one_replace_each_other() {
        let settings = crate::CookieSettings {
            path: Some("/app".into()),
            // Compared without its leading dot, as the cookie crate gives it.
            domain: Some(".example.com".into()),
            ..crate::CookieSettings::default()
        };
        let template = Arc::new(SetCookieTemplate::new(&settings, "session"));
        let cookies = ResponseCookies::default();
        cookies.set_templated(&template, &["token"]);
        assert_eq!(
            cookies.get("session"),
            Some(settings.cookie("session", "token".into()))
        );
        // Same name, path and domain: the removal replaces the session cookie.
        cookies.set(settings.removal("session"));
        // Another path: kept beside it.
        cookies.set(crate::CookieSettings::default().cookie("session", "other".into()));
        cookies.set_templated(&template, &["ne", "wer"]);
        let written = |cookies: ResponseCookies| {
            let mut headers = HeaderMap::new();
            cookies.write_to(&mut headers);
            headers
                .get_all(header::SET_COOKIE)
                .iter()
                .map(|value| value.to_str().unwrap().to_owned())
                .collect::<Vec<_>>()
        };
        let expected = [
            "session=other; HttpOnly; SameSite=Lax; Secure",
            "session=newer; HttpOnly; SameSite=Lax; Secure; Path=/app; Domain=example.com",
        ];
        // Another handle is alive: the response takes a copy, and the cookies stay queued.
        assert_eq!(written(cookies.clone()), expected);
        assert_eq!(cookies.get("session").unwrap().value(), "newer");
        // The last handle: the response takes the queue itself, with the same result.
        assert_eq!(written(cookies), expected);
    }

    #[test]
    fn a_response_gets_only_its_own_headers() {
        let with_headers = || {
            let (parts, ()) = http::Request::builder()
                .uri("/")
                .header(header::HOST, "example.com")
                .header(header::COOKIE, "session=secret")
                .header("x-request", "1")
                .body(())
                .expect("a valid request")
                .into_parts();
            RequestContext::new(parts, Body::empty(), Vec::new(), "test")
        };
        let template = Arc::new(SetCookieTemplate::new(
            &crate::CookieSettings::default(),
            "session",
        ));
        let names = |response: &Response| {
            response
                .headers()
                .iter()
                .map(|(name, value)| format!("{name}: {}", value.to_str().unwrap()))
                .collect::<Vec<_>>()
        };
        let set_cookie = "set-cookie: session=new; HttpOnly; SameSite=Lax; Secure";

        // No header yet: the request's map is reused, emptied first.
        let mut cx = with_headers();
        cx.response_cookies().set_templated(&template, &["new"]);
        let mut response = Response::new(Body::empty());
        cx.finish(&mut response);
        assert_eq!(names(&response), [set_cookie]);

        // A header of the handler's own: kept, and the request's stay out.
        let mut cx = with_headers();
        cx.response_cookies().set_templated(&template, &["new"]);
        let mut response = crate::IntoResponse::into_response("hi");
        cx.finish(&mut response);
        assert_eq!(
            names(&response),
            ["content-type: text/plain; charset=utf-8", set_cookie]
        );

        // The request's map taken over by the handler's response, as the app does it:
        // emptied first, whatever the response type, and the cookie still added.
        let reusing = |output: Box<dyn FnOnce(&mut HeaderMap) -> Response>| {
            let mut cx = with_headers();
            cx.response_cookies().set_templated(&template, &["new"]);
            let mut response = output(cx.request_headers_for_reuse());
            cx.finish(&mut response);
            names(&response)
        };
        use crate::{IntoResponse, IntoResponseExt};
        let text = "content-type: text/plain; charset=utf-8";
        let text_response = [text, set_cookie];
        assert_eq!(
            reusing(Box::new(|h| "hi".into_response_reusing(h))),
            text_response
        );
        assert_eq!(
            reusing(Box::new(|h| String::from("hi").into_response_reusing(h))),
            text_response
        );
        assert_eq!(
            reusing(Box::new(|h| crate::Created("hi").into_response_reusing(h))),
            text_response
        );
        assert_eq!(
            reusing(Box::new(|h| {
                Result::<&str, crate::Error>::Ok("hi").into_response_reusing(h)
            })),
            text_response
        );
        assert_eq!(
            reusing(Box::new(|h| vec![1_u8].into_response_reusing(h))),
            ["content-type: application/octet-stream", set_cookie]
        );
        assert_eq!(
            reusing(Box::new(|h| crate::Json(1).into_response_reusing(h))),
            ["content-type: application/json", set_cookie]
        );
        assert_eq!(
            reusing(Box::new(
                |h| crate::SeeOther("/next".into()).into_response_reusing(h)
            )),
            ["location: /next", set_cookie]
        );
        assert_eq!(
            reusing(Box::new(|h| "hi"
                .with_header("x-a", "1")
                .into_response_reusing(h))),
            [text, "x-a: 1", set_cookie]
        );
        // A response that sets no header leaves the map to `finish`, which reuses it too.
        assert_eq!(
            reusing(Box::new(|h| crate::NoContent.into_response_reusing(h))),
            [set_cookie]
        );

        // No cookie queued: nothing added.
        let mut cx = with_headers();
        let mut response = Response::new(Body::empty());
        cx.finish(&mut response);
        assert!(response.headers().is_empty());
        assert_eq!(cx.headers().len(), 3);
    }

    fn context(query: &str) -> RequestContext {
        let (parts, ()) = http::Request::builder()
            .uri(format!("/?{query}"))
            .body(())
            .expect("a valid request")
            .into_parts();
        RequestContext::new(parts, Body::empty(), Vec::new(), "test")
    }

    #[test]
    fn plain_lookups_borrow_and_escaped_ones_decode() {
        assert_eq!(find_plain_query_value("a=1&b=2", "b"), Some(Some("2")));
        assert_eq!(find_plain_query_value("a=1&&b", "b"), Some(Some("")));
        assert_eq!(find_plain_query_value("a=1", "b"), Some(None));
        assert_eq!(find_plain_query_value("a=x%20y", "a"), None);
        assert_eq!(find_plain_query_value("%62=1&b=2", "b"), None);
        let cx = context("%62=first&b=second&c=x+y");
        assert_eq!(cx.query("b"), Some("first"));
        assert_eq!(cx.query("c"), Some("x y"));
        assert_eq!(cx.query("d"), None);
    }

    /// A request with these `Cookie` headers.
    fn with_cookies(headers: &[Vec<u8>]) -> RequestContext {
        with_cookies_among(headers, 2)
    }

    /// A request with these `Cookie` headers, each after `others` headers of other names.
    fn with_cookies_among(headers: &[Vec<u8>], others: usize) -> RequestContext {
        let mut builder = http::Request::builder().uri("/");
        for (i, header) in headers.iter().enumerate() {
            for other in 0..others {
                // Pairs a lookup would wrongly find if it read other headers.
                builder = builder.header(format!("x-other-{i}-{other}"), "a=other; b=other");
            }
            let value = HeaderValue::from_bytes(header).expect("a valid header value");
            builder = builder.header(header::COOKIE, value);
        }
        let (parts, ()) = builder.body(()).expect("a valid request").into_parts();
        RequestContext::new(parts, Body::empty(), Vec::new(), "test")
    }

    /// The lookup the plain way: each `;`-separated pair of each header in turn, split at its
    /// first `=`, its name and its value each UTF-8 and trimmed of spaces and tabs.
    fn cookie_reference(headers: &[Vec<u8>], name: &str) -> Option<String> {
        let wsp: &[char] = &[' ', '\t'];
        headers
            .iter()
            .flat_map(|header| header.split(|b| *b == b';'))
            .find_map(|pair| {
                let eq = pair.iter().position(|b| *b == b'=')?;
                let key = std::str::from_utf8(&pair[..eq]).ok()?.trim_matches(wsp);
                if key != name || key.is_empty() {
                    return None;
                }
                let value = std::str::from_utf8(&pair[eq + 1..]).ok()?;
                Some(value.trim_matches(wsp).to_owned())
            })
    }

    #[test]
    fn cookies_are_found_by_exact_name() {
        let headers = [b"session_id=1; session =2".to_vec(), b"session=3".to_vec()];
        let cx = with_cookies(&headers);
        assert_eq!(cx.cookie("session"), Some("2"));
        assert_eq!(cx.cookie("session_id"), Some("1"));
        assert_eq!(cx.cookie("sess"), None);
        assert_eq!(cx.cookie(""), None);
        let cx = with_cookies(&[b"junk=\xff; theme=\"dark\" ".to_vec()]);
        assert_eq!(cx.cookie("theme"), Some("\"dark\""));
        assert_eq!(cx.cookie("junk"), None);
        // Spaces and tabs are trimmed (RFC 6265), other whitespace is not.
        let cx = with_cookies(&["a\u{a0}=1; \tb\t= 2\t; c=\u{a0}3\u{a0}".as_bytes().to_vec()]);
        assert_eq!(cx.cookie("a"), None);
        assert_eq!(cx.cookie("a\u{a0}"), Some("1"));
        assert_eq!(cx.cookie("b"), Some("2"));
        assert_eq!(cx.cookie("c"), Some("\u{a0}3\u{a0}"));
        // Names no pair can have.
        let cx = with_cookies(&[b"a=b=c; =d".to_vec()]);
        assert_eq!(cx.cookie("a"), Some("b=c"));
        assert_eq!(cx.cookie("a=b"), None);
        assert_eq!(cx.cookie(" a"), None);
        assert_eq!(cx.cookie(""), None);
    }

    proptest::proptest! {
        /// A `Set-Cookie` is written exactly as `Cookie`'s `Display` writes it.
        #[test]
        fn set_cookies_are_formatted_as_display_does(
            name in "[a-z_]{1,8}",
            value in "[a-zA-Z0-9!#$%&'()*+./:<>?@^_`{|}~-]{0,20}",
            http_only in proptest::option::of(proptest::bool::ANY),
            secure in proptest::option::of(proptest::bool::ANY),
            partitioned in proptest::option::of(proptest::bool::ANY),
            same_site in proptest::option::of(0..3_u8),
            path in proptest::option::of("/[a-z/]{0,8}"),
            domain in proptest::option::of("[.]?[a-z]{1,6}[.]test"),
            max_age in proptest::option::of(-5..100_000_000_i64),
            expires in proptest::option::of(0..2_000_000_000_i64),
        ) {
            let mut cookie = Cookie::new(name, value);
            cookie.set_http_only(http_only);
            cookie.set_secure(secure);
            cookie.set_partitioned(partitioned);
            cookie.set_same_site(same_site.map(|s| match s {
                0 => cookie::SameSite::Strict,
                1 => cookie::SameSite::Lax,
                _ => cookie::SameSite::None,
            }));
            if let Some(path) = path {
                cookie.set_path(path);
            }
            if let Some(domain) = domain {
                cookie.set_domain(domain);
            }
            if let Some(max_age) = max_age {
                cookie.set_max_age(cookie::time::Duration::seconds(max_age));
            }
            if let Some(expires) = expires {
                let at = cookie::time::OffsetDateTime::from_unix_timestamp(expires).unwrap();
                cookie.set_expires(at);
            }
            let formatted = format_set_cookie(&cookie);
            proptest::prop_assert_eq!(&formatted, &cookie.to_string());
            proptest::prop_assert_eq!(formatted.len(), formatted.capacity());
        }

        /// The lookup agrees with the byte-by-byte reference, non-UTF-8 bytes included.
        #[test]
        fn cookie_lookup_agrees_with_the_reference(
            headers in proptest::collection::vec(
                proptest::collection::vec(
                    proptest::sample::select(b"ab=; \t\"\xff\xc3\xa9\xc2\xa0".to_vec()),
                    0..16,
                ),
                0..3,
            ),
            name in "[ab= \t]{0,3}",
        ) {
            let expected = cookie_reference(&headers, &name);
            // Through the headers one by one, and (with too many other names around them)
            // through the map's index.
            for others in [2, LINEAR_HEADER_LOOKUP + 1] {
                let cx = with_cookies_among(&headers, others);
                proptest::prop_assert_eq!(cx.cookie(&name).map(str::to_owned), expected.clone());
            }
        }

        /// The in-place lookup agrees with decoding the whole query.
        #[test]
        fn query_lookup_agrees_with_form_urlencoded(
            query in "([abc%+=&]|%2[0-9]|%6[1-3]){0,24}",
            name in "[abc]{1,2}",
        ) {
            let cx = context(&query);
            proptest::prop_assert_eq!(cx.query(&name).map(str::to_owned), decoded(&query, &name));
        }
    }
}
