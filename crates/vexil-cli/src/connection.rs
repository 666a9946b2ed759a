//! Where the server is and who is asking: the address, the bearer token
//! (from `VEXIL_TOKEN` or a file, never the command line, which other
//! users of the machine can read) and TLS.

use std::path::PathBuf;
use std::time::Duration;

use tonic::metadata::MetadataValue;
use tonic::service::Interceptor;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};
use vexil_proto::vexil::v1::evaluation_service_client::EvaluationServiceClient;
use vexil_proto::vexil::v1::flag_service_client::FlagServiceClient;

use crate::failure::{Failure, Kind};

#[derive(Debug, Clone, clap::Args)]
pub struct Connection {
    /// The server, e.g. `http://127.0.0.1:50051` (`https://` for TLS).
    #[arg(long, env = "VEXIL_ADDR", default_value = "http://127.0.0.1:50051")]
    pub addr: String,
    /// A file holding the bearer token (else VEXIL_TOKEN; none for a
    /// server without authentication).
    #[arg(long, env = "VEXIL_TOKEN_FILE")]
    pub token_file: Option<PathBuf>,
    /// PEM CA certificates that sign an `https://` server's certificate
    /// (the system's roots otherwise).
    #[arg(long, env = "VEXIL_CA_FILE")]
    pub ca_file: Option<PathBuf>,
    /// PEM client certificate (chain), for a server that requires one
    /// (mutual TLS); with --key-file.
    #[arg(long, env = "VEXIL_CERT_FILE", requires = "key_file")]
    pub cert_file: Option<PathBuf>,
    /// PEM private key of --cert-file.
    #[arg(long, env = "VEXIL_KEY_FILE", requires = "cert_file")]
    pub key_file: Option<PathBuf>,
    /// Give up on a call after this many seconds.
    #[arg(long, default_value_t = 10)]
    pub timeout_secs: u64,
}

/// Adds `authorization: Bearer …` to every call, when there is a token.
#[derive(Clone)]
pub struct Bearer(Option<MetadataValue<tonic::metadata::Ascii>>);

impl Interceptor for Bearer {
    fn call(
        &mut self,
        mut request: tonic::Request<()>,
    ) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(token) = &self.0 {
            request
                .metadata_mut()
                .insert("authorization", token.clone());
        }
        Ok(request)
    }
}

type Authorized = tonic::service::interceptor::InterceptedService<Channel, Bearer>;
pub type Flags = FlagServiceClient<Authorized>;
pub type Evaluation = EvaluationServiceClient<Authorized>;

impl Connection {
    /// A client of the server's FlagService.
    pub async fn flags(&self) -> Result<Flags, Failure> {
        let bearer = self.bearer()?;
        Ok(FlagServiceClient::with_interceptor(
            self.channel().await?,
            bearer,
        ))
    }

    /// A client of the server's EvaluationService (for Watch).
    pub async fn evaluation(&self) -> Result<Evaluation, Failure> {
        let bearer = self.bearer()?;
        Ok(EvaluationServiceClient::with_interceptor(
            self.channel().await?,
            bearer,
        ))
    }

    fn bearer(&self) -> Result<Bearer, Failure> {
        let token = match &self.token_file {
            Some(path) => Some(std::fs::read_to_string(path).map_err(|err| {
                Failure::new(Kind::Invalid, format!("reading {}: {err}", path.display()))
            })?),
            None => std::env::var("VEXIL_TOKEN").ok(),
        };
        let token = token
            .map(|token| token.trim().to_owned())
            .filter(|t| !t.is_empty());
        token
            .map(|token| {
                format!("Bearer {token}").parse().map_err(|_| {
                    Failure::new(Kind::Invalid, "the token holds characters a header cannot")
                })
            })
            .transpose()
            .map(Bearer)
    }

    async fn channel(&self) -> Result<Channel, Failure> {
        let invalid = |err: &dyn std::fmt::Display| {
            Failure::new(Kind::Invalid, format!("--addr {}: {err}", self.addr))
        };
        let timeout = Duration::from_secs(self.timeout_secs.max(1));
        let mut endpoint = Endpoint::from_shared(self.addr.clone())
            .map_err(|err| invalid(&err))?
            .connect_timeout(timeout)
            .timeout(timeout);
        if self.addr.starts_with("https://") {
            let read = |path: &PathBuf| {
                std::fs::read(path).map_err(|err| {
                    Failure::new(Kind::Invalid, format!("reading {}: {err}", path.display()))
                })
            };
            let mut tls = match &self.ca_file {
                Some(path) => {
                    ClientTlsConfig::new().ca_certificate(Certificate::from_pem(read(path)?))
                }
                None => ClientTlsConfig::new().with_webpki_roots(),
            };
            if let (Some(cert), Some(key)) = (&self.cert_file, &self.key_file) {
                tls = tls.identity(Identity::from_pem(read(cert)?, read(key)?));
            }
            endpoint = endpoint.tls_config(tls).map_err(|err| invalid(&err))?;
        }
        endpoint.connect().await.map_err(|err| {
            Failure::new(
                Kind::Unreachable,
                format!("{}: cannot connect: {err}", self.addr),
            )
        })
    }
}
