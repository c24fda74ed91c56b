//! The request itself: method, URI, version, headers, parts, body, route name.

use bytes::Bytes;
use http::{request::Parts, HeaderMap, Method, Request, Uri, Version};

use super::{read_body, Inject, Param, Provider, ResolveError, Resolver};

/// The name of the matched route: the handler's name unless
/// `#[handler(name = "...")]` overrides it (uapi's `RouteName`).
///
/// # Examples
///
/// ```
/// use sessions::{handler, RouteName};
///
/// #[handler]
/// async fn index(route: RouteName) -> &'static str {
///     route.0 // "index"
/// }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RouteName(pub &'static str);

macro_rules! from_request {
    ($($(#[$doc:meta])* $ty:ty => |$cx:ident| $value:expr;)*) => {$(
        $(#[$doc])*
        impl Inject for $ty {
            fn resolve(_: Param, _: &mut Resolver<'_>) -> Result<Provider<Self>, ResolveError> {
                Ok(Provider::from_fn(|$cx| Ok($value)))
            }
        }
    )*};
}

from_request! {
    /// The request method (uapi's `ReqMethod`).
    Method => |cx| cx.method().clone();
    /// The request URI.
    Uri => |cx| cx.uri().clone();
    /// The HTTP version.
    Version => |cx| cx.version();
    /// A copy of the request headers.
    HeaderMap => |cx| cx.headers().clone();
    /// The route name.
    RouteName => |cx| RouteName(cx.route_name());
    /// A copy of the request head: method, URI, version, headers and extensions.
    Parts => |cx| {
        let (mut parts, ()) = Request::new(()).into_parts();
        parts.method = cx.method().clone();
        parts.uri = cx.uri().clone();
        parts.version = cx.version();
        parts.headers = cx.headers().clone();
        parts.extensions = cx.extensions().clone();
        parts
    };
}

/// The whole request body, up to the app's body limit (413 beyond it).
impl Inject for Bytes {
    fn resolve(param: Param, resolver: &mut Resolver<'_>) -> Result<Provider<Self>, ResolveError> {
        resolver.take_body(param)?;
        let limit = resolver.body_limit();
        Ok(Provider::from_async(move |cx| {
            Box::pin(read_body(cx, limit))
        }))
    }
}
