//! Plain parameters: path parameters by name when the route has `{name}`,
//! query parameters by name otherwise.

use std::{fmt::Display, str::FromStr};

use super::{Inject, InjectOptional, Param, Provider, ResolveError, Resolver};
use crate::{Rejection, RequestContext};

enum Source {
    Path(usize),
    Query,
}

fn source(param: Param, resolver: &mut Resolver<'_>) -> Source {
    resolver
        .path_param(param.name)
        .map_or(Source::Query, Source::Path)
}

fn raw<'c>(cx: &'c RequestContext, name: &str, source: &Source) -> Option<&'c str> {
    match source {
        Source::Path(index) => cx.path_param(*index),
        Source::Query => cx.query(name),
    }
}

fn parse<T>(name: &'static str, value: &str) -> Result<T, Rejection>
where
    T: FromStr,
    T::Err: Display,
{
    value
        .parse()
        .map_err(|error: T::Err| Rejection::InvalidParameter {
            name,
            message: error.to_string(),
        })
}

fn required<T>(param: Param, resolver: &mut Resolver<'_>) -> Provider<T>
where
    T: FromStr + Send + 'static,
    T::Err: Display,
{
    let source = source(param, resolver);
    let name = param.name;
    Provider::from_fn(move |cx| {
        let value = raw(cx, name, &source).ok_or(Rejection::MissingQueryParameter(name))?;
        parse(name, value)
    })
}

fn optional<T>(param: Param, resolver: &mut Resolver<'_>) -> Provider<Option<T>>
where
    T: FromStr + Send + 'static,
    T::Err: Display,
{
    let source = source(param, resolver);
    let name = param.name;
    Provider::from_fn(move |cx| {
        raw(cx, name, &source)
            .map(|value| parse(name, value))
            .transpose()
    })
}

macro_rules! plain {
    ($($ty:ty),* $(,)?) => {$(
        impl Inject for $ty {
            fn resolve(param: Param, resolver: &mut Resolver<'_>) -> Result<Provider<Self>, ResolveError> {
                Ok(required(param, resolver))
            }
        }

        impl InjectOptional for $ty {
            fn resolve_optional(
                param: Param,
                resolver: &mut Resolver<'_>,
            ) -> Result<Provider<Option<Self>>, ResolveError> {
                Ok(optional(param, resolver))
            }
        }
    )*};
}

plain!(
    String, bool, char, i8, i16, i32, i64, i128, isize, u8, u16, u32, u64, u128, usize, f32, f64,
);
