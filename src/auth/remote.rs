//! Fetching a JWK set from `VEXIL_JWKS_URL`: the one place in `auth` that
//! does network I/O. A background task fetches at start, every
//! [`REFRESH_EVERY`], and when a token names an unknown `kid` (at most once
//! per [`super::keys::REFRESH_LIMIT`]); requests never wait for it.

use std::sync::Arc;
use std::time::Duration;

use http::Uri;
use http_body_util::{BodyExt, Empty, Limited};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::pki_types::ServerName;
use tokio_rustls::rustls::{ClientConfig, RootCertStore};

/// How often the JWKS is fetched again when nothing asks for it sooner.
pub const REFRESH_EVERY: Duration = Duration::from_secs(300);
/// How long one fetch may take, connection included.
const FETCH_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest JWKS accepted.
const MAX_BYTES: usize = 1024 * 1024;

/// Checks a JWKS URL: `https://…`, or `http://` to a loopback host only,
/// without credentials in it (they would travel in headers and logs).
pub fn check_url(url: &str) -> Result<Uri, String> {
    let uri: Uri = url
        .parse()
        .map_err(|_| "VEXIL_JWKS_URL is not a URL".to_string())?;
    if uri
        .authority()
        .is_some_and(|authority| authority.as_str().contains('@'))
    {
        return Err("VEXIL_JWKS_URL must not carry credentials (user:password@)".into());
    }
    let host = uri.host().unwrap_or_default();
    let loopback = host == "localhost"
        || host
            .trim_matches(['[', ']'])
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    match uri.scheme_str() {
        Some("https") => Ok(uri),
        Some("http") if loopback => Ok(uri),
        _ => Err("VEXIL_JWKS_URL must be https:// (http:// only to a loopback host)".into()),
    }
}

/// GETs `uri` and returns the body (200 only).
pub async fn fetch(uri: &Uri) -> Result<Bytes, String> {
    tokio::time::timeout(FETCH_TIMEOUT, get(uri))
        .await
        .map_err(|_| "fetching the JWKS timed out".to_string())?
}

async fn get(uri: &Uri) -> Result<Bytes, String> {
    let host = uri.host().ok_or("the URL has no host")?.to_string();
    let https = uri.scheme_str() == Some("https");
    let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
    let tcp = TcpStream::connect((host.trim_matches(['[', ']']), port))
        .await
        .map_err(|err| format!("connecting to {host}:{port}: {err}"))?;
    let path = uri.path_and_query().map_or("/", |path| path.as_str());
    let request = http::Request::get(path)
        .header(
            http::header::HOST,
            uri.authority().map_or("", |a| a.as_str()),
        )
        .header(http::header::ACCEPT, "application/json")
        .header(http::header::USER_AGENT, "vexil")
        .body(Empty::<Bytes>::new())
        .map_err(|err| format!("building the request: {err}"))?;
    if https {
        let server_name = ServerName::try_from(host.trim_matches(['[', ']']).to_string())
            .map_err(|err| format!("{host}: {err}"))?;
        let tls = connector()?
            .connect(server_name, tcp)
            .await
            .map_err(|err| format!("TLS with {host}: {err}"))?;
        exchange(TokioIo::new(tls), request).await
    } else {
        exchange(TokioIo::new(tcp), request).await
    }
}

async fn exchange<T>(io: T, request: http::Request<Empty<Bytes>>) -> Result<Bytes, String>
where
    T: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (mut sender, connection) = hyper::client::conn::http1::handshake(io)
        .await
        .map_err(|err| format!("HTTP handshake: {err}"))?;
    let driving = tokio::spawn(connection);
    let outcome = async {
        let response = sender
            .send_request(request)
            .await
            .map_err(|err| format!("HTTP request: {err}"))?;
        if response.status() != http::StatusCode::OK {
            return Err(format!("the JWKS URL answered {}", response.status()));
        }
        Limited::new(response.into_body(), MAX_BYTES)
            .collect()
            .await
            .map(|body| body.to_bytes())
            .map_err(|err| format!("reading the JWKS: {err}"))
    }
    .await;
    driving.abort();
    outcome
}

fn connector() -> Result<TlsConnector, String> {
    let roots = RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    let config = ClientConfig::builder_with_provider(Arc::new(
        tokio_rustls::rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|err| format!("TLS setup: {err}"))?
    .with_root_certificates(roots)
    .with_no_client_auth();
    Ok(TlsConnector::from(Arc::new(config)))
}

#[cfg(test)]
mod tests {
    use super::check_url;

    #[test]
    fn urls_must_be_https_except_to_loopback() {
        assert!(check_url("https://idp.example.com/.well-known/jwks.json").is_ok());
        assert!(check_url("http://127.0.0.1:8080/jwks").is_ok());
        assert!(check_url("http://localhost/jwks").is_ok());
        assert!(check_url("http://idp.example.com/jwks").is_err());
        assert!(check_url("ftp://idp.example.com/jwks").is_err());
        assert!(check_url("not a url").is_err());
        assert!(check_url("https://user:secret@idp.example.com/jwks").is_err());
    }
}
