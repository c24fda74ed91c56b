//! Code generation only; every check lives in `validate`.

use proc_macro2::{Span, TokenStream};
use quote::{format_ident, quote, quote_spanned};
use syn::{parse_quote, spanned::Spanned, Attribute, ItemFn, Path, ReturnType};

use crate::{args::Args, model::Handler, validate};

pub(crate) fn handler(args: TokenStream, item: TokenStream) -> TokenStream {
    let item_fn: ItemFn = match syn::parse2(item.clone()) {
        Ok(item_fn) => item_fn,
        Err(_) => {
            let error = syn::Error::new(
                first_span(&item),
                "`#[handler]` goes on a function: `async fn name(...)` or `fn name(...)`",
            )
            .to_compile_error();
            return quote!(#error #item);
        }
    };
    let args = match Args::parse(args) {
        Ok(args) => args,
        Err(error) => return with_error(&item_fn, &error),
    };
    if let Err(error) = validate::handler(&item_fn) {
        return with_error(&item_fn, &error);
    }
    let expanded = expand(&Handler::new(item_fn), args);
    if std::env::var_os("SESSIONS_MACROS_DEBUG").is_some_and(|v| v == "1") {
        eprintln!("{expanded}");
    }
    expanded
}

/// The user's function unchanged plus the errors, so that IDEs and call
/// sites keep working while the errors are shown (tokio-macros does this).
fn with_error(item: &ItemFn, error: &syn::Error) -> TokenStream {
    let error = error.to_compile_error();
    quote!(#item #error)
}

fn first_span(tokens: &TokenStream) -> Span {
    tokens
        .clone()
        .into_iter()
        .next()
        .map_or_else(Span::call_site, |t| t.span())
}

fn expand(handler: &Handler, args: Args) -> TokenStream {
    let krate: Path = args.krate.unwrap_or_else(|| parse_quote!(::sessions));
    let private = quote!(#krate::__private);
    let ItemFn {
        attrs,
        vis,
        sig,
        block,
    } = &handler.original;
    let name = &sig.ident;
    let fn_name = name.to_string();
    let fn_name = fn_name.strip_prefix("r#").unwrap_or(&fn_name).to_owned();
    let route_name = args.name.map_or_else(|| fn_name.clone(), |lit| lit.value());
    let is_async = sig.asyncness.is_some();

    let (docs, cfgs, others) = split_attrs(attrs);

    let mut inner_sig = sig.clone();
    inner_sig.ident = format_ident!("__sessions_call", span = name.span());

    let output_ty = match &sig.output {
        ReturnType::Default => quote!(()),
        ReturnType::Type(_, ty) => quote!(#ty),
    };
    let tys: Vec<_> = handler.params.iter().map(|p| p.ty()).collect();
    let names: Vec<_> = handler
        .params
        .iter()
        .map(|p| p.name().unwrap_or_default())
        .collect();
    let type_names: Vec<_> = handler.params.iter().map(|p| p.type_name()).collect();
    let args_idents: Vec<_> = (0..tys.len())
        .map(|i| format_ident!("__sessions_a{}", i))
        .collect();
    let fields: Vec<_> = (0..tys.len())
        .map(|i| format_ident!("__sessions_p{}", i))
        .collect();
    let resolves = tys
        .iter()
        .enumerate()
        .map(|(i, ty)| quote_spanned!(ty.span()=> __sessions_cx.resolve::<#ty>(#i)));

    let (target, fn_value, call) = if is_async {
        (
            quote!(fn(#(#tys),*) -> #private::BoxFuture<'static, #output_ty>),
            quote!(|#(#args_idents),*| ::std::boxed::Box::pin(#name::__sessions_call(#(#args_idents),*))),
            quote!(#name::__sessions_call(#(#args_idents),*).await),
        )
    } else {
        (
            quote!(fn(#(#tys),*) -> #output_ty),
            quote!(#name::__sessions_call),
            quote!(#name::__sessions_call(#(#args_idents),*)),
        )
    };

    let response_check = if args.provider {
        quote!()
    } else {
        let span = match &sig.output {
            ReturnType::Default => sig.ident.span(),
            ReturnType::Type(_, ty) => ty.span(),
        };
        quote_spanned! {span=>
            #(#cfgs)*
            const _: () = {
                let _ = #private::assert_response::<#output_ty>;
            };
        }
    };

    quote! {
        #(#docs)*
        #(#cfgs)*
        #[allow(non_camel_case_types)]
        #[derive(Clone, Copy)]
        #vis struct #name;

        #(#cfgs)*
        impl #name {
            #[doc(hidden)]
            #(#others)*
            #vis #inner_sig #block
        }

        #(#cfgs)*
        impl ::core::fmt::Debug for #name {
            fn fmt(&self, f: &mut ::core::fmt::Formatter<'_>) -> ::core::fmt::Result {
                f.write_str(::core::concat!("handler `", #fn_name, "`"))
            }
        }

        #(#cfgs)*
        impl ::core::ops::Deref for #name {
            type Target = #target;
            fn deref(&self) -> &Self::Target {
                const __SESSIONS_FN: #target = #fn_value;
                &__SESSIONS_FN
            }
        }

        #response_check

        #(#cfgs)*
        impl #private::Handler for #name {
            type Output = #output_ty;

            fn info(&self) -> &'static #private::HandlerInfo {
                static __SESSIONS_INFO: #private::HandlerInfo = #private::HandlerInfo {
                    name: #fn_name,
                    route_name: #route_name,
                    params: &[#(#private::ParamInfo { name: #names, type_name: #type_names }),*],
                };
                &__SESSIONS_INFO
            }

            fn bind(
                &self,
                __sessions_cx: &mut #private::Resolver<'_>,
            ) -> ::core::option::Option<impl #private::Call<Output = Self::Output> + use<>> {
                #(let #fields = #resolves;)*
                #(let #fields = #fields?;)*

                #[allow(non_camel_case_types)]
                struct __sessions_Call {
                    #(#fields: #private::Provider<#tys>,)*
                }

                impl #private::Call for __sessions_Call {
                    type Output = #output_ty;

                    fn call<'a>(
                        &'a self,
                        __sessions_cx: &'a mut #private::RequestContext,
                    ) -> impl ::core::future::Future<
                        Output = ::core::result::Result<Self::Output, #private::Rejection>,
                    > + ::core::marker::Send + 'a {
                        async move {
                            #(let #args_idents = match self.#fields.provide_ready(__sessions_cx) {
                                ::core::option::Option::Some(value) => value?,
                                ::core::option::Option::None => self.#fields.provide(__sessions_cx).await?,
                            };)*
                            ::core::result::Result::Ok(#call)
                        }
                    }
                }

                ::core::option::Option::Some(__sessions_Call { #(#fields),* })
            }
        }
    }
}

/// Splits attributes into docs (for the struct), `cfg`s (for every item)
/// and the rest (for the function).
fn split_attrs(attrs: &[Attribute]) -> (Vec<&Attribute>, Vec<&Attribute>, Vec<&Attribute>) {
    let mut docs = Vec::new();
    let mut cfgs = Vec::new();
    let mut others = Vec::new();
    for attr in attrs {
        let path = attr.path();
        if path.is_ident("doc") || path.is_ident("deprecated") {
            docs.push(attr);
        } else if path.is_ident("cfg") {
            cfgs.push(attr);
        } else {
            others.push(attr);
        }
    }
    (docs, cfgs, others)
}
