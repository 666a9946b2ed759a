//! `#[feature_flag]`: runs a function only when a Vexil flag is on for the
//! user; otherwise its fallback, with the same arguments. Use it through
//! `vexil_client::feature_flag`.
//!
//! ```ignore
//! #[vexil_client::feature_flag("new_dashboard", user = user_id, fallback = old_dashboard)]
//! async fn new_dashboard(user_id: &str, page: u32) -> Html { … }
//! ```
//!
//! Options: `user = <argument>` (required: the argument holding the user
//! id, anything `AsRef<str>`), `fallback = <function>` (called with the same
//! arguments, `.await`ed for an async function; without one the function
//! returns `Default::default()`), `environment = <expr>` (default: the
//! client's default environment) and `client = <expr>` (a `&Client`;
//! default: the process-wide client set with `vexil_client::set_default`).
//! With no client the flag is off.

use proc_macro::TokenStream;
use proc_macro2::Span;
use quote::quote;
use syn::parse::{Parse, ParseStream};
use syn::punctuated::Punctuated;
use syn::{Expr, FnArg, Ident, ItemFn, LitStr, Pat, Token};

#[proc_macro_attribute]
pub fn feature_flag(args: TokenStream, item: TokenStream) -> TokenStream {
    let args = syn::parse_macro_input!(args as Args);
    let function = syn::parse_macro_input!(item as ItemFn);
    expand(args, function)
        .unwrap_or_else(syn::Error::into_compile_error)
        .into()
}

struct Args {
    flag: LitStr,
    /// Run only when the flag serves this variant (else: when it is on).
    variant: Option<LitStr>,
    user: Option<Ident>,
    fallback: Option<Expr>,
    environment: Option<Expr>,
    client: Option<Expr>,
}

impl Parse for Args {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        let usage =
            "expected the flag's name first: #[feature_flag(\"new_dashboard\", user = user_id)]";
        if input.is_empty() {
            return Err(syn::Error::new(Span::call_site(), usage));
        }
        let flag: LitStr = input
            .parse()
            .map_err(|err| syn::Error::new(err.span(), usage))?;
        if let Err(err) = vexil_engine::validate_name("flag", &flag.value()) {
            return Err(syn::Error::new(
                flag.span(),
                format!("the flag name {}", err.message),
            ));
        }
        let mut args = Args {
            flag,
            variant: None,
            user: None,
            fallback: None,
            environment: None,
            client: None,
        };
        if input.is_empty() {
            return Ok(args);
        }
        input.parse::<Token![,]>()?;
        let options = Punctuated::<syn::MetaNameValue, Token![,]>::parse_terminated(input)?;
        for option in options {
            let Some(key) = option.path.get_ident() else {
                return Err(syn::Error::new_spanned(
                    &option.path,
                    "expected an option name",
                ));
            };
            let slot = match key.to_string().as_str() {
                "user" => {
                    let Expr::Path(path) = &option.value else {
                        return Err(syn::Error::new_spanned(
                            &option.value,
                            "`user` names the function's argument that holds the user id",
                        ));
                    };
                    let Some(ident) = path.path.get_ident() else {
                        return Err(syn::Error::new_spanned(
                            &option.value,
                            "`user` names the function's argument that holds the user id",
                        ));
                    };
                    if args.user.replace(ident.clone()).is_some() {
                        return Err(syn::Error::new_spanned(key, "`user` is given twice"));
                    }
                    continue;
                }
                "fallback" => {
                    if !matches!(option.value, Expr::Path(_)) {
                        return Err(syn::Error::new_spanned(
                            &option.value,
                            "`fallback` names a function taking the same arguments",
                        ));
                    }
                    &mut args.fallback
                }
                "variant" => {
                    let Expr::Lit(syn::ExprLit {
                        lit: syn::Lit::Str(variant),
                        ..
                    }) = &option.value
                    else {
                        return Err(syn::Error::new_spanned(
                            &option.value,
                            "`variant` is the name of the variant to run for, as a string",
                        ));
                    };
                    if args.variant.replace(variant.clone()).is_some() {
                        return Err(syn::Error::new_spanned(key, "`variant` is given twice"));
                    }
                    continue;
                }
                "environment" => &mut args.environment,
                "client" => &mut args.client,
                _ => {
                    return Err(syn::Error::new_spanned(
                        key,
                        format!(
                            "unknown option `{key}`: expected user, variant, fallback, environment or client"
                        ),
                    ));
                }
            };
            if slot.replace(option.value).is_some() {
                return Err(syn::Error::new_spanned(
                    key,
                    format!("`{key}` is given twice"),
                ));
            }
        }
        Ok(args)
    }
}

fn expand(args: Args, function: ItemFn) -> syn::Result<proc_macro2::TokenStream> {
    let Some(user) = &args.user else {
        return Err(syn::Error::new(
            args.flag.span(),
            "#[feature_flag] needs `user = <argument>`: the argument holding the user id",
        ));
    };
    for input in &function.sig.inputs {
        if let FnArg::Typed(typed) = input
            && !matches!(&*typed.pat, Pat::Ident(pat) if pat.subpat.is_none())
        {
            return Err(syn::Error::new_spanned(
                &typed.pat,
                "#[feature_flag] needs plain argument names (to pass them to the fallback); destructure inside the function",
            ));
        }
    }
    let named = function.sig.inputs.iter().any(|input| match input {
        FnArg::Typed(typed) => matches!(&*typed.pat, Pat::Ident(pat) if pat.ident == *user),
        FnArg::Receiver(_) => false,
    });
    if !named {
        return Err(syn::Error::new_spanned(
            user,
            format!("`user = {user}`: the function has no argument named `{user}`"),
        ));
    }
    // The arguments, in order, to call the fallback with.
    let arguments: Vec<_> = function
        .sig
        .inputs
        .iter()
        .map(|input| match input {
            FnArg::Receiver(_) => quote!(self),
            FnArg::Typed(typed) => match &*typed.pat {
                Pat::Ident(pat) => {
                    let ident = &pat.ident;
                    quote!(#ident)
                }
                _ => unreachable!("checked above"),
            },
        })
        .collect();
    let flag = &args.flag;
    let client = match &args.client {
        Some(client) => quote!(::core::option::Option::Some(#client)),
        None => quote!(::core::option::Option::None),
    };
    let environment = match &args.environment {
        Some(environment) => quote!(::core::option::Option::Some(#environment)),
        None => quote!(::core::option::Option::None),
    };
    let asynchronous = function.sig.asyncness.is_some();
    let otherwise = match &args.fallback {
        Some(fallback) if asynchronous => quote!(#fallback(#(#arguments),*).await),
        Some(fallback) => quote!(#fallback(#(#arguments),*)),
        None => quote!(<_ as ::vexil_client::__private::OffValue>::off()),
    };
    let ItemFn {
        attrs,
        vis,
        sig,
        block,
    } = function;
    let runs = match &args.variant {
        Some(variant) => quote! {
            ::vexil_client::__private::serves(
                #client,
                #flag,
                #variant,
                ::core::convert::AsRef::<str>::as_ref(&#user),
                #environment,
            )
        },
        None => quote! {
            ::vexil_client::__private::enabled(
                #client,
                #flag,
                ::core::convert::AsRef::<str>::as_ref(&#user),
                #environment,
            )
        },
    };
    Ok(quote! {
        #(#attrs)*
        #vis #sig {
            if !#runs {
                return #otherwise;
            }
            #block
        }
    })
}
