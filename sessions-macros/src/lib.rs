//! The `#[handler]` attribute of the [`sessions`](https://docs.rs/sessions) crate.
//!
//! Users never name this crate: it is re-exported as `sessions::handler`, and
//! its documentation lives there.

mod args;
mod errors;
mod expand;
mod model;
mod validate;

use proc_macro::TokenStream;

/// Turns a function into a handler that an `App` can route. See
/// `sessions::handler` for the documentation.
#[proc_macro_attribute]
pub fn handler(args: TokenStream, item: TokenStream) -> TokenStream {
    expand::handler(args.into(), item.into()).into()
}
