//! Every check on the signature, collecting all errors before returning.

use std::collections::HashMap;

use proc_macro2::{TokenStream, TokenTree};
use quote::ToTokens;
use syn::{FnArg, ItemFn, ReturnType, Type};

use crate::{errors::Errors, model::Handler};

const PATTERN: &str = "handler parameters are injected by name; write `_name: T` to ignore a value";

pub(crate) fn handler(item: &ItemFn) -> syn::Result<()> {
    let mut errors = Errors::default();
    let sig = &item.sig;

    if let Some(constness) = &sig.constness {
        errors.push(constness, "a handler cannot be a `const fn`");
    }
    if let Some(unsafety) = &sig.unsafety {
        errors.push(unsafety, "a handler cannot be an `unsafe fn`");
    }
    if let Some(abi) = &sig.abi {
        errors.push(abi, "a handler cannot have an `extern` ABI");
    }
    if let Some(variadic) = &sig.variadic {
        errors.push(variadic, "a handler cannot be variadic");
    }
    if !sig.generics.params.is_empty() {
        errors.push(
            &sig.generics,
            "a handler cannot be generic: injection needs concrete parameter types",
        );
    } else if let Some(where_clause) = &sig.generics.where_clause {
        errors.push(
            where_clause,
            "a handler cannot have a `where` clause: injection needs concrete parameter types",
        );
    }

    for input in &sig.inputs {
        match input {
            FnArg::Receiver(receiver) => errors.push(
                receiver,
                "a handler cannot take `self`; `#[handler]` goes on a free function",
            ),
            FnArg::Typed(pat_type) => check_type(&pat_type.ty, &mut errors),
        }
    }

    let handler = Handler::new(item.clone());
    let mut seen: HashMap<String, &syn::Ident> = HashMap::new();
    for param in &handler.params {
        let (Some(ident), Some(name)) = (param.ident(), param.name()) else {
            errors.push(&param.original.pat, PATTERN);
            continue;
        };
        if name.starts_with("__sessions_") {
            errors.push(
                ident,
                "parameter names starting with `__sessions_` are reserved",
            );
        }
        if let Some(previous) = seen.get(&name) {
            let mut error = syn::Error::new_spanned(
                ident,
                format!("duplicate handler parameter `{name}`: each name is injected once"),
            );
            error.combine(syn::Error::new_spanned(
                previous,
                "previous parameter with the same name",
            ));
            errors.push_error(error);
        } else {
            seen.insert(name, ident);
        }
    }

    if let ReturnType::Type(_, ty) = &sig.output {
        if let Type::ImplTrait(impl_trait) = &**ty {
            errors.push(
                impl_trait,
                "a handler cannot return `impl Trait`; name the type so the app can turn it into a response",
            );
        }
    }

    errors.finish()
}

fn check_type(ty: &Type, errors: &mut Errors) {
    match ty {
        Type::Reference(reference) => errors.push(
            reference,
            "handler parameters are owned values; take an owned type such as `String` instead of a reference",
        ),
        Type::ImplTrait(impl_trait) => errors.push(
            impl_trait,
            "a handler parameter cannot be `impl Trait`; injection needs a concrete type",
        ),
        Type::Infer(infer) => errors.push(infer, "a handler parameter needs a concrete type"),
        _ => {
            if let Some(lifetime) = borrowed_lifetime(ty.to_token_stream()) {
                errors.push(
                    lifetime,
                    "handler parameters are owned values; a type that borrows cannot be injected",
                );
            }
        }
    }
}

/// The first lifetime other than `'static` in a type, as its two tokens.
fn borrowed_lifetime(tokens: TokenStream) -> Option<TokenStream> {
    let mut iter = tokens.into_iter().peekable();
    while let Some(token) = iter.next() {
        match token {
            TokenTree::Punct(punct) if punct.as_char() == '\'' => {
                if let Some(TokenTree::Ident(ident)) = iter.peek() {
                    if ident != "static" {
                        let mut lifetime = TokenStream::from(TokenTree::Punct(punct));
                        lifetime.extend([TokenTree::Ident(ident.clone())]);
                        return Some(lifetime);
                    }
                }
            }
            TokenTree::Group(group) => {
                if let Some(found) = borrowed_lifetime(group.stream()) {
                    return Some(found);
                }
            }
            _ => {}
        }
    }
    None
}
