//! The server's TLS identity, for every listener that serves TLS (gRPC,
//! flagd's API, OFREP): rustls with the ring provider, client certificates
//! required when a client CA is configured.

use std::sync::Arc;

use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls;

use crate::error::{Error, Result};

/// The PEM files of the server's TLS identity and, optionally, the CA
/// that signs the client certificates it requires.
pub struct TlsFiles<'a> {
    pub cert: &'a std::path::Path,
    pub key: &'a std::path::Path,
    pub client_ca: Option<&'a std::path::Path>,
}

/// A TLS acceptor for `files`, offering `alpn` (e.g. `h2`).
pub fn acceptor(files: &TlsFiles<'_>, alpn: &[&[u8]]) -> Result<TlsAcceptor> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let certs = CertificateDer::pem_file_iter(files.cert)
        .and_then(|certs| certs.collect::<std::result::Result<Vec<_>, _>>())
        .map_err(|err| Error::invalid("VEXIL_TLS_CERT_FILE", err.to_string()))?;
    let key = PrivateKeyDer::from_pem_file(files.key)
        .map_err(|err| Error::invalid("VEXIL_TLS_KEY_FILE", err.to_string()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|err| Error::Internal(format!("TLS versions: {err}")))?;
    let builder = match files.client_ca {
        None => builder.with_no_client_auth(),
        Some(ca) => {
            let invalid = |err: &dyn std::fmt::Display| {
                Error::invalid("VEXIL_TLS_CLIENT_CA_FILE", err.to_string())
            };
            let mut roots = rustls::RootCertStore::empty();
            for cert in CertificateDer::pem_file_iter(ca).map_err(|err| invalid(&err))? {
                roots
                    .add(cert.map_err(|err| invalid(&err))?)
                    .map_err(|err| invalid(&err))?;
            }
            let verifier =
                rustls::server::WebPkiClientVerifier::builder_with_provider(roots.into(), provider)
                    .build()
                    .map_err(|err| invalid(&err))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config = builder
        .with_single_cert(certs, key)
        .map_err(|err| Error::invalid("VEXIL_TLS_KEY_FILE", err.to_string()))?;
    config.alpn_protocols = alpn.iter().map(|protocol| protocol.to_vec()).collect();
    Ok(TlsAcceptor::from(Arc::new(config)))
}
