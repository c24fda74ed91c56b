//! The handler as the macro sees it: the user's function and its parameters.

use quote::ToTokens;
use syn::{FnArg, Ident, ItemFn, Pat, PatType, Type};

/// A `#[handler]` function whose signature passed validation.
pub(crate) struct Handler {
    pub(crate) original: ItemFn,
    pub(crate) params: Vec<Param>,
}

/// One parameter of a handler.
pub(crate) struct Param {
    pub(crate) original: PatType,
}

impl Handler {
    pub(crate) fn new(original: ItemFn) -> Self {
        let params = original
            .sig
            .inputs
            .iter()
            .filter_map(|arg| match arg {
                FnArg::Typed(pat) => Some(Param {
                    original: pat.clone(),
                }),
                FnArg::Receiver(_) => None,
            })
            .collect();
        Handler { original, params }
    }
}

impl Param {
    /// The binding identifier, for `name: T` and `mut name: T`.
    pub(crate) fn ident(&self) -> Option<&Ident> {
        match &*self.original.pat {
            Pat::Ident(pat) if pat.by_ref.is_none() && pat.subpat.is_none() => Some(&pat.ident),
            _ => None,
        }
    }

    /// The name the parameter is injected by: the identifier without one
    /// leading underscore, so `_session: Session` is still the session.
    pub(crate) fn name(&self) -> Option<String> {
        let ident = self.ident()?.to_string();
        let ident = ident.strip_prefix("r#").unwrap_or(&ident);
        Some(match ident.strip_prefix('_') {
            Some(rest) if !rest.is_empty() => rest.to_owned(),
            _ => ident.to_owned(),
        })
    }

    pub(crate) fn ty(&self) -> &Type {
        &self.original.ty
    }

    /// The type as written, for messages: `Option<String>`, not `Option < String >`.
    pub(crate) fn type_name(&self) -> String {
        pretty(self.ty())
    }
}

fn pretty(ty: &Type) -> String {
    let mut text = ty.to_token_stream().to_string();
    for (from, to) in [
        (" < ", "<"),
        ("< ", "<"),
        (" <", "<"),
        (" >", ">"),
        (" ,", ","),
        (" :: ", "::"),
        (":: ", "::"),
        ("& ", "&"),
        ("( ", "("),
        (" )", ")"),
        (" [", "["),
        ("[ ", "["),
        (" ]", "]"),
        (" ;", ";"),
    ] {
        text = text.replace(from, to);
    }
    text
}
