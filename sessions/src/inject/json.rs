//! `Json<T>` as a parameter: the request body as JSON.

use serde::de::DeserializeOwned;

use super::{has_content_type, read_body, Inject, Param, Provider, ResolveError, Resolver};
use crate::{Json, Rejection};

impl<T: DeserializeOwned + Send + 'static> Inject for Json<T> {
    fn resolve(param: Param, resolver: &mut Resolver<'_>) -> Result<Provider<Self>, ResolveError> {
        resolver.take_body(param)?;
        let limit = resolver.body_limit();
        Ok(Provider::from_async(move |cx| {
            Box::pin(async move {
                if !has_content_type(cx, "application/json") {
                    return Err(Rejection::UnsupportedMediaType {
                        expected: "application/json",
                    });
                }
                let bytes = read_body(cx, limit).await?;
                serde_json::from_slice(&bytes)
                    .map(Json)
                    .map_err(|error| Rejection::InvalidJson(error.to_string()))
            })
        }))
    }
}
