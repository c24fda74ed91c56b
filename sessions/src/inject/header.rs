//! `Header<T>`: a request header by the parameter's name, `_` turned into `-`.

use std::{fmt::Display, str::FromStr};

use http::HeaderName;

use super::{Inject, InjectOptional, Param, Provider, ResolveError, Resolver};
use crate::{Rejection, RequestContext};

/// A request header, named after the parameter with `_` turned into `-`
/// (uapi's `Header`): `user_agent: Header` reads `User-Agent`.
///
/// `T` defaults to `String` and may be any `FromStr` type. A missing header
/// is a 400 naming it, unless the parameter is an `Option<Header<T>>`; one
/// that does not parse is a 400 saying why.
///
/// # Examples
///
/// ```
/// use sessions::{handler, Header};
///
/// #[handler]
/// async fn agent(user_agent: Header, x_retries: Option<Header<u32>>) -> String {
///     format!("{} ({})", user_agent.0, x_retries.map_or(0, |h| h.0))
/// }
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Header<T = String>(pub T);

fn header_name(param: Param) -> Result<HeaderName, ResolveError> {
    HeaderName::try_from(param.name.replace('_', "-"))
        .map_err(|_| ResolveError::new(format!("`{}` is not a valid header name", param.name)))
}

fn read<T>(cx: &RequestContext, name: &HeaderName) -> Option<Result<Header<T>, Rejection>>
where
    T: FromStr,
    T::Err: Display,
{
    let value = cx.headers().get(name)?;
    Some(
        value
            .to_str()
            .map_err(|_| "not visible ASCII".to_owned())
            .and_then(|text| text.parse().map_err(|e: T::Err| e.to_string()))
            .map(Header)
            .map_err(|message| Rejection::InvalidHeader {
                name: name.clone(),
                message,
            }),
    )
}

impl<T> Inject for Header<T>
where
    T: FromStr + Send + 'static,
    T::Err: Display,
{
    fn resolve(param: Param, _: &mut Resolver<'_>) -> Result<Provider<Self>, ResolveError> {
        let name = header_name(param)?;
        Ok(Provider::from_fn(move |cx| {
            read(cx, &name).unwrap_or_else(|| Err(Rejection::MissingHeader(name.clone())))
        }))
    }
}

impl<T> InjectOptional for Header<T>
where
    T: FromStr + Send + 'static,
    T::Err: Display,
{
    fn resolve_optional(
        param: Param,
        _: &mut Resolver<'_>,
    ) -> Result<Provider<Option<Self>>, ResolveError> {
        let name = header_name(param)?;
        Ok(Provider::from_fn(move |cx| read(cx, &name).transpose()))
    }
}
