//! `Form<T>`: an urlencoded request body.

use serde::de::DeserializeOwned;

use super::{has_content_type, read_body, Inject, Param, Provider, ResolveError, Resolver};
use crate::Rejection;

const FORM: &str = "application/x-www-form-urlencoded";

/// An `application/x-www-form-urlencoded` body, deserialized into `T`
/// (uapi's `Form`).
///
/// Another content type is a 415; a body that does not deserialize is a
/// 400 saying why.
///
/// # Examples
///
/// ```
/// use sessions::{handler, Form};
///
/// #[derive(serde::Deserialize)]
/// struct Login {
///     username: String,
/// }
///
/// #[handler]
/// async fn login(form: Form<Login>) -> String {
///     form.0.username
/// }
/// # let _ = login;
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Form<T>(pub T);

impl<T: DeserializeOwned + Send + 'static> Inject for Form<T> {
    fn resolve(param: Param, resolver: &mut Resolver<'_>) -> Result<Provider<Self>, ResolveError> {
        resolver.take_body(param)?;
        let limit = resolver.body_limit();
        Ok(Provider::from_async(move |cx| {
            Box::pin(async move {
                if !has_content_type(cx, FORM) {
                    return Err(Rejection::UnsupportedMediaType { expected: FORM });
                }
                let bytes = read_body(cx, limit).await?;
                serde_urlencoded::from_bytes(&bytes)
                    .map(Form)
                    .map_err(|error| Rejection::InvalidForm(error.to_string()))
            })
        }))
    }
}
