//! `vexil health`: the standard gRPC health check against a server, as a
//! client (Docker's HEALTHCHECK, Kubernetes exec probes, scripts).

use std::time::Duration;

use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

use crate::error::{Error, Result};

/// Asks `address` (`http://` or `https://`) whether `service` (empty for
/// the whole server) is serving; the status's name, e.g. `SERVING`.
pub async fn probe(
    address: &str,
    service: &str,
    ca_pem: Option<Vec<u8>>,
    timeout: Duration,
) -> Result<(bool, String)> {
    let channel = tokio::time::timeout(timeout, connect(address, ca_pem, timeout))
        .await
        .map_err(|_| Error::Unavailable(format!("{address}: no answer within {timeout:?}")))??;
    let answer = HealthClient::new(channel)
        .check(HealthCheckRequest {
            service: service.to_owned(),
        })
        .await
        .map_err(|status| match status.code() {
            tonic::Code::NotFound => Error::NotFound(format!("{service:?}: no such service")),
            _ => Error::Unavailable(format!("{address}: {}", status.message())),
        })?
        .into_inner();
    let status = ServingStatus::try_from(answer.status).unwrap_or(ServingStatus::Unknown);
    Ok((
        status == ServingStatus::Serving,
        status.as_str_name().to_owned(),
    ))
}

async fn connect(address: &str, ca_pem: Option<Vec<u8>>, timeout: Duration) -> Result<Channel> {
    let invalid = |err: &dyn std::fmt::Display| Error::invalid("--addr", err.to_string());
    let mut endpoint = Endpoint::from_shared(address.to_owned())
        .map_err(|err| invalid(&err))?
        .connect_timeout(timeout)
        .timeout(timeout);
    if address.starts_with("https://") {
        let tls = match ca_pem {
            Some(pem) => ClientTlsConfig::new().ca_certificate(Certificate::from_pem(pem)),
            None => ClientTlsConfig::new().with_webpki_roots(),
        };
        endpoint = endpoint.tls_config(tls).map_err(|err| invalid(&err))?;
    }
    endpoint
        .connect()
        .await
        .map_err(|err| Error::Unavailable(format!("{address}: {}", with_causes(&err))))
}

/// An error and what caused it (tonic's transport error alone says only
/// "transport error").
fn with_causes(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut cause = err.source();
    while let Some(err) = cause {
        text.push_str(": ");
        text.push_str(&err.to_string());
        cause = err.source();
    }
    text
}
