//! The trait `#[handler]` implements, and the per-parameter metadata it records.

use std::future::Future;

use crate::{inject::Resolver, Rejection, RequestContext};

/// What `#[handler]` records about a function: its name, its route name and
/// every parameter's name and type.
#[derive(Debug)]
pub struct HandlerInfo {
    /// The function's name.
    pub name: &'static str,
    /// The route name: the function's name unless `#[handler(name = "...")]`
    /// says otherwise, as uapi names routes after their handlers.
    pub route_name: &'static str,
    /// The parameters in declaration order.
    pub params: &'static [ParamInfo],
}

/// One parameter of a handler.
#[derive(Debug)]
pub struct ParamInfo {
    /// The name it is injected by: the identifier without one leading `_`.
    pub name: &'static str,
    /// The type as written, for messages.
    pub type_name: &'static str,
}

/// A function the app can route, or inject by name: implemented by
/// [`#[handler]`](macro@crate::handler), not by hand.
///
/// `bind` resolves every parameter's provider once, when the app is built;
/// the bound call then runs per request with no further lookups.
pub trait Handler: Send + Sync + 'static {
    /// What the function returns.
    type Output: Send + 'static;

    /// The recorded names and types.
    fn info(&self) -> &'static HandlerInfo;

    /// Resolves the providers of every parameter. On failure the problems
    /// are recorded in the resolver and `None` is returned.
    fn bind(
        &self,
        resolver: &mut Resolver<'_>,
    ) -> Option<impl Call<Output = Self::Output> + use<Self>>;
}

/// A handler with its providers resolved: runs it for one request.
pub trait Call: Send + Sync + 'static {
    /// What the function returns.
    type Output;

    /// Injects every parameter from the request and calls the function.
    fn call<'a>(
        &'a self,
        cx: &'a mut RequestContext,
    ) -> impl Future<Output = Result<Self::Output, Rejection>> + Send + 'a;
}
