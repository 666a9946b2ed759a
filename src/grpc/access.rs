//! The gRPC edge's side of admission (`crate::admission`): reads a
//! request's `authorization` and `x-actor` metadata and its peer, and maps
//! refusals to statuses in one match: UNAUTHENTICATED, PERMISSION_DENIED,
//! INVALID_ARGUMENT, or RESOURCE_EXHAUSTED with `google.rpc.RetryInfo` and
//! `grpc-retry-pushback-ms`.

use tokio::sync::OwnedSemaphorePermit;
use tonic::metadata::MetadataValue;
use tonic::{Request, Status};
use tonic_types::{ErrorDetails, StatusExt};

use crate::admission::{Admitted, AdmittedStream, Call, Gatekeeper, Refusal, StreamKind};
use crate::auth::{Principal, Role};

/// What admission reads of a gRPC request (the actor header only for
/// management, the one place it names anybody).
fn call_of<T>(request: &Request<T>) -> Call<'_> {
    Call {
        authorization: request
            .metadata()
            .get("authorization")
            .map(|value| value.to_str().unwrap_or_default()),
        actor: None,
        peer: request.remote_addr().map(|peer| peer.ip()),
    }
}

/// An evaluation call's caller, admitted from its headers (see
/// `pre_admission`): the handler takes only an in-flight place.
#[derive(Clone)]
pub struct PreAdmittedCaller(pub Option<Principal>);

/// A refusal as a gRPC status.
// The one mapping of these errors to this wire: every variant named.
#[deny(clippy::wildcard_enum_match_arm)]
pub fn refusal_to_status(refusal: Refusal) -> Status {
    match refusal {
        Refusal::Unauthenticated(why) => Status::unauthenticated(why),
        Refusal::PermissionDenied(why) => Status::permission_denied(why),
        Refusal::InvalidArgument { field, message } => {
            Status::invalid_argument(format!("{field}: {message}"))
        }
        Refusal::Overloaded {
            message,
            retry_after,
        } => {
            let mut status = Status::with_error_details(
                tonic::Code::ResourceExhausted,
                message,
                ErrorDetails::with_retry_info(Some(retry_after)),
            );
            if let Ok(value) = MetadataValue::try_from(retry_after.as_millis().to_string()) {
                status
                    .metadata_mut()
                    .insert("grpc-retry-pushback-ms", value);
            }
            status
        }
    }
}

/// Admission for gRPC requests: [`Gatekeeper`]'s checks, answered as
/// statuses.
pub trait GrpcAdmission {
    fn admit_management<T>(
        &self,
        request: &Request<T>,
        role: Role,
        method: &str,
    ) -> Result<Admitted, Status>;
    fn admit_evaluation<T>(
        &self,
        request: &Request<T>,
        method: &str,
    ) -> Result<(Option<Principal>, OwnedSemaphorePermit), Status>;
    fn admit_stream<T>(
        &self,
        request: &Request<T>,
        kind: StreamKind,
        method: &str,
    ) -> Result<AdmittedStream, Status>;
}

impl GrpcAdmission for Gatekeeper {
    fn admit_management<T>(
        &self,
        request: &Request<T>,
        role: Role,
        method: &str,
    ) -> Result<Admitted, Status> {
        let call = Call {
            actor: request
                .metadata()
                .get("x-actor")
                .map(|value| value.as_bytes()),
            ..call_of(request)
        };
        self.management(&call, role, method)
            .map_err(refusal_to_status)
    }

    fn admit_evaluation<T>(
        &self,
        request: &Request<T>,
        method: &str,
    ) -> Result<(Option<Principal>, OwnedSemaphorePermit), Status> {
        // Admitted from its headers already: only its in-flight place now.
        if let Some(PreAdmittedCaller(principal)) = request.extensions().get() {
            let place = self.evaluation_place().map_err(refusal_to_status)?;
            return Ok((principal.clone(), place));
        }
        self.evaluation(&call_of(request), method)
            .map_err(refusal_to_status)
    }

    fn admit_stream<T>(
        &self,
        request: &Request<T>,
        kind: StreamKind,
        method: &str,
    ) -> Result<AdmittedStream, Status> {
        self.stream(&call_of(request), kind, method)
            .map_err(refusal_to_status)
    }
}
