//! The console's HTTP edge (VEXIL_CONSOLE_LISTEN): the page built from
//! `console/` and embedded in the binary, and, on the same origin, Vexil's
//! API as gRPC-Web (`grpc::grpc_web`), so the page needs no CORS and every
//! call it makes is admitted, limited and audited like any other client's.
//!
//! The page is three files. Each is sent gzipped to browsers that accept
//! it (the build writes both forms), with a Content-Security-Policy that
//! lets it load and talk only to this origin.
//!
//! Every request must come from this origin: a browser request whose
//! `Origin` is another site's is refused, so no other page can drive the
//! API with whatever the browser holds. On a server that checks no tokens,
//! requests must also name the server by address or `localhost`, so a
//! site that rebinds its own name to this address (DNS rebinding) is not
//! this origin either.

use std::convert::Infallible;

use std::net::IpAddr;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

/// One embedded file of the built console, plain and gzipped.
struct Asset {
    content_type: &'static str,
    plain: &'static [u8],
    gzipped: &'static [u8],
    /// index.html changes with every build; the other files are named with
    /// their hash by index.html (`app.js?v=…`), so browsers may keep them.
    cache_control: &'static str,
}

const IMMUTABLE: &str = "public, max-age=31536000, immutable";

const INDEX: Asset = Asset {
    content_type: "text/html; charset=utf-8",
    plain: include_bytes!("../console/dist/index.html"),
    gzipped: include_bytes!("../console/dist/index.html.gz"),
    cache_control: "no-cache",
};
const SCRIPT: Asset = Asset {
    content_type: "text/javascript; charset=utf-8",
    plain: include_bytes!("../console/dist/app.js"),
    gzipped: include_bytes!("../console/dist/app.js.gz"),
    cache_control: IMMUTABLE,
};
const STYLE: Asset = Asset {
    content_type: "text/css; charset=utf-8",
    plain: include_bytes!("../console/dist/app.css"),
    gzipped: include_bytes!("../console/dist/app.css.gz"),
    cache_control: IMMUTABLE,
};

/// Only this origin: the page's own script and style, and gRPC-Web calls
/// back to where it came from. No frames, no plugins, no forms elsewhere.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; img-src 'self' data:; connect-src 'self'; \
     base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// The console's router: the page at `/` (and at any `#/…` route, which
/// browsers do not send), its two assets, and `api` for everything else
/// (gRPC-Web calls are POSTs to `/vexil.v1.…/Method`). `open`: the server
/// checks no tokens.
pub fn router<S>(api: S, open: bool) -> Router
where
    S: tower_service::Service<
            axum::extract::Request,
            Response: IntoResponse,
            Error = Infallible,
            Future: Send + 'static,
        > + Clone
        + Send
        + Sync
        + 'static,
{
    Router::new()
        .route(
            "/",
            get(|headers: HeaderMap| async move { serve(&INDEX, &headers) }),
        )
        .route(
            "/app.js",
            get(|headers: HeaderMap| async move { serve(&SCRIPT, &headers) }),
        )
        .route(
            "/app.css",
            get(|headers: HeaderMap| async move { serve(&STYLE, &headers) }),
        )
        .fallback_service(api)
        .layer(middleware::from_fn_with_state(open, same_origin))
}

/// Refuses (403) a request from another origin, and on an open server one
/// that names this server by a name other than `localhost`.
async fn same_origin(State(open): State<bool>, request: Request, next: Next) -> Response {
    // HTTP/2 carries the host in the URI (`:authority`), HTTP/1.1 in `Host`.
    let host = request
        .uri()
        .authority()
        .map(|authority| authority.as_str())
        .or_else(|| {
            request
                .headers()
                .get(header::HOST)
                .and_then(|value| value.to_str().ok())
        });
    let refusal = match (request.headers().get(header::ORIGIN), host) {
        (Some(origin), host) if origin_host(origin) != host => {
            Some("the console answers only its own pages (Origin differs from Host)")
        }
        (_, host) if open && !host.is_some_and(names_an_address) => Some(
            "this server checks no tokens, so the console answers only requests to \
             an IP address or localhost (open it by address)",
        ),
        _ => None,
    };
    match refusal {
        Some(why) => (StatusCode::FORBIDDEN, why).into_response(),
        None => next.run(request).await,
    }
}

/// `host[:port]` of an `Origin` such as `http://127.0.0.1:50080`; none for
/// `null` or anything unreadable.
fn origin_host(origin: &HeaderValue) -> Option<&str> {
    let (_, rest) = origin.to_str().ok()?.split_once("://")?;
    Some(rest)
}

/// Whether `host[:port]` is an IP address or `localhost`: names no other
/// site can point here.
fn names_an_address(host: &str) -> bool {
    if let Some(bracketed) = host.strip_prefix('[') {
        return bracketed
            .split_once(']')
            .is_some_and(|(ip, _)| ip.parse::<IpAddr>().is_ok());
    }
    let name = host.rsplit_once(':').map_or(host, |(name, _)| name);
    name.eq_ignore_ascii_case("localhost") || name.parse::<IpAddr>().is_ok()
}

fn serve(asset: &Asset, request: &HeaderMap) -> Response {
    let gzip = accepts_gzip(request);
    let body = if gzip { asset.gzipped } else { asset.plain };
    let mut response = (StatusCode::OK, Body::from(body)).into_response();
    let headers = response.headers_mut();
    let fixed = |value: &'static str| HeaderValue::from_static(value);
    headers.insert(header::CONTENT_TYPE, fixed(asset.content_type));
    headers.insert(header::CACHE_CONTROL, fixed(asset.cache_control));
    headers.insert(header::VARY, fixed("accept-encoding"));
    if gzip {
        headers.insert(header::CONTENT_ENCODING, fixed("gzip"));
    }
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        fixed(CONTENT_SECURITY_POLICY),
    );
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, fixed("nosniff"));
    headers.insert(header::REFERRER_POLICY, fixed("no-referrer"));
    headers.insert(header::X_FRAME_OPTIONS, fixed("DENY"));
    response
}

/// Whether `Accept-Encoding` lists gzip without refusing it (`gzip;q=0`).
fn accepts_gzip(request: &HeaderMap) -> bool {
    request
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .any(|coding| {
            let mut parts = coding.split(';').map(str::trim);
            let name = parts.next().unwrap_or_default();
            let refused = parts.any(|param| {
                param
                    .strip_prefix("q=")
                    .and_then(|q| q.parse::<f32>().ok())
                    .is_some_and(|q| q == 0.0)
            });
            (name.eq_ignore_ascii_case("gzip") || name == "*") && !refused
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accept(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::ACCEPT_ENCODING,
            HeaderValue::from_str(value).expect("header"),
        );
        headers
    }

    #[test]
    fn addresses_and_localhost_only() {
        for host in [
            "127.0.0.1:50080",
            "127.0.0.1",
            "[::1]:50080",
            "LOCALHOST:8",
            "10.1.2.3:80",
        ] {
            assert!(names_an_address(host), "{host}");
        }
        for host in [
            "evil.example:50080",
            "127.0.0.1.nip.io",
            "[::1",
            "localhost.evil.example",
        ] {
            assert!(!names_an_address(host), "{host}");
        }
    }

    #[test]
    fn gzip_only_when_accepted() {
        assert!(accepts_gzip(&accept("gzip, deflate, br")));
        assert!(accepts_gzip(&accept("br;q=1.0, GZIP;q=0.5")));
        assert!(accepts_gzip(&accept("*")));
        assert!(!accepts_gzip(&accept("gzip;q=0")));
        assert!(!accepts_gzip(&accept("br")));
        assert!(!accepts_gzip(&HeaderMap::new()));
    }
}
