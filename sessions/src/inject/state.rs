//! `State<T>`: shared app state by type.

use std::{ops::Deref, sync::Arc};

use super::{Inject, Param, Provider, ResolveError, Resolver};

/// Shared app state of type `T`, added with
/// [`App::add_state`](crate::App::add_state) and injected by type whatever
/// the parameter's name. Cloning is an `Arc` clone.
///
/// A handler asking for state that was never added is a start-up error.
///
/// # Examples
///
/// ```
/// use sessions::{handler, App, State};
///
/// struct Greeting {
///     text: &'static str,
/// }
///
/// #[handler]
/// async fn index(greeting: State<Greeting>) -> String {
///     greeting.text.to_owned()
/// }
///
/// let mut app = App::new();
/// app.add_state(Greeting { text: "hello" });
/// app.get("/", index);
/// assert!(app.build().is_ok());
/// ```
#[derive(Debug, Default)]
pub struct State<T>(pub Arc<T>);

impl<T> Clone for State<T> {
    fn clone(&self) -> Self {
        State(self.0.clone())
    }
}

impl<T> Deref for State<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T: Send + Sync + 'static> Inject for State<T> {
    fn resolve(param: Param, resolver: &mut Resolver<'_>) -> Result<Provider<Self>, ResolveError> {
        let state = resolver.state::<T>().ok_or_else(|| {
            ResolveError::new(format!("no state of type `{}` was added", param.type_name))
                .with_fix(format!(
                    "add it before building the app: `app.add_state(value)` with a value of the type in `{}`",
                    param.type_name
                ))
        })?;
        Ok(Provider::from_fn(move |_| Ok(State(state.clone()))))
    }
}
