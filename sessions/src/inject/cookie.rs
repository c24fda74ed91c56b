//! `Cookie<T>`: a request cookie by the parameter's exact name.

use std::{fmt::Display, str::FromStr};

use super::{Inject, InjectOptional, Param, Provider, ResolveError, Resolver};
use crate::{Rejection, RequestContext};

/// A request cookie, named exactly as the parameter (uapi's `Cookie`).
///
/// `T` defaults to `String` and may be any `FromStr` type. A missing cookie
/// is a 400 naming it, unless the parameter is an `Option<Cookie<T>>`.
///
/// # Examples
///
/// ```
/// use sessions::{handler, Cookie};
///
/// #[handler]
/// async fn page(theme: Option<Cookie>) -> String {
///     theme.map_or_else(|| "light".to_owned(), |c| c.0)
/// }
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Cookie<T = String>(pub T);

fn read<T>(cx: &RequestContext, name: &'static str) -> Option<Result<Cookie<T>, Rejection>>
where
    T: FromStr,
    T::Err: Display,
{
    let value = cx.cookie(name)?;
    Some(
        value
            .parse()
            .map(Cookie)
            .map_err(|e: T::Err| Rejection::InvalidCookie {
                name,
                message: e.to_string(),
            }),
    )
}

impl<T> Inject for Cookie<T>
where
    T: FromStr + Send + 'static,
    T::Err: Display,
{
    fn resolve(param: Param, _: &mut Resolver<'_>) -> Result<Provider<Self>, ResolveError> {
        let name = param.name;
        Ok(Provider::from_fn(move |cx| {
            read(cx, name).unwrap_or(Err(Rejection::MissingCookie(name)))
        }))
    }
}

impl<T> InjectOptional for Cookie<T>
where
    T: FromStr + Send + 'static,
    T::Err: Display,
{
    fn resolve_optional(
        param: Param,
        _: &mut Resolver<'_>,
    ) -> Result<Provider<Option<Self>>, ResolveError> {
        let name = param.name;
        Ok(Provider::from_fn(move |cx| read(cx, name).transpose()))
    }
}
