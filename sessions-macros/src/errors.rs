//! Collects several `syn::Error`s so that one expansion reports every mistake.

use std::fmt::Display;

use quote::ToTokens;

#[derive(Default)]
pub(crate) struct Errors(Option<syn::Error>);

impl Errors {
    pub(crate) fn push(&mut self, tokens: impl ToTokens, message: impl Display) {
        self.push_error(syn::Error::new_spanned(tokens, message));
    }

    pub(crate) fn push_error(&mut self, error: syn::Error) {
        match &mut self.0 {
            Some(first) => first.combine(error),
            None => self.0 = Some(error),
        }
    }

    pub(crate) fn finish(self) -> syn::Result<()> {
        self.0.map_or(Ok(()), Err)
    }
}
