//! `#[handler(...)]` arguments: `crate = path`, `name = "..."`, `provider`.

use syn::{meta::ParseNestedMeta, LitStr, Path};

use crate::errors::Errors;

/// The parsed attribute arguments.
#[derive(Default)]
pub(crate) struct Args {
    /// Path of the runtime crate (`crate = my_sessions`); `::sessions` when absent.
    pub(crate) krate: Option<Path>,
    /// Route name override (`name = "index"`); the function's name when absent.
    pub(crate) name: Option<LitStr>,
    /// `provider`: the function provides a value for injection by name,
    /// so its return type need not be a response.
    pub(crate) provider: bool,
}

const EXPECTED: &str = "expected `crate`, `name` or `provider`";

impl Args {
    pub(crate) fn parse(tokens: proc_macro2::TokenStream) -> syn::Result<Self> {
        let mut args = Args::default();
        let mut errors = Errors::default();
        let mut seen_provider = false;
        let parser = syn::meta::parser(|meta: ParseNestedMeta<'_>| {
            if meta.path.is_ident("crate") {
                let path: Path = meta.value()?.parse()?;
                if args.krate.replace(path).is_some() {
                    errors.push(&meta.path, "duplicate `#[handler]` argument `crate`");
                }
            } else if meta.path.is_ident("name") {
                let name: LitStr = meta.value()?.parse()?;
                if name.value().is_empty() {
                    errors.push(&name, "the route name must not be empty");
                }
                if args.name.replace(name).is_some() {
                    errors.push(&meta.path, "duplicate `#[handler]` argument `name`");
                }
            } else if meta.path.is_ident("provider") {
                if seen_provider {
                    errors.push(&meta.path, "duplicate `#[handler]` argument `provider`");
                }
                seen_provider = true;
                args.provider = true;
            } else {
                let key = quote::ToTokens::to_token_stream(&meta.path)
                    .to_string()
                    .replace(' ', "");
                let hint = ["crate", "name", "provider"]
                    .into_iter()
                    .find(|known| edit_distance(known, &key) <= 2)
                    .map(|known| format!(" (did you mean `{known}`?)"))
                    .unwrap_or_default();
                return Err(meta.error(format!(
                    "unknown `#[handler]` argument `{key}`; {EXPECTED}{hint}"
                )));
            }
            Ok(())
        });
        syn::parse::Parser::parse2(parser, tokens)?;
        errors.finish()?;
        Ok(args)
    }
}

/// Levenshtein distance, for "did you mean" on short argument names.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut previous = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let current = row[j + 1];
            row[j + 1] = (previous + usize::from(ca != *cb))
                .min(row[j] + 1)
                .min(current + 1);
            previous = current;
        }
    }
    row[b.len()]
}
