//! Who may call, and how often: the gRPC edge's gatekeeper. Authenticates
//! bearer tokens (when keys are configured), checks roles, applies
//! per-caller rate limits (keyed by token subject, else peer IP) and a
//! global limit on calls in progress, and turns refusals into statuses:
//! UNAUTHENTICATED, PERMISSION_DENIED, or RESOURCE_EXHAUSTED with
//! `google.rpc.RetryInfo` and `grpc-retry-pushback-ms`.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use dashmap::DashMap;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tonic::metadata::MetadataValue;
use tonic::{Request, Status};
use tonic_types::{ErrorDetails, StatusExt};

use crate::auth::{AuthError, Authenticator, Principal, Role};
use crate::config::{EvaluationAuth, WatchAuth};

/// Management calls in progress at once, in a pool of their own: evaluation
/// traffic, however heavy, never takes the kill switch's place.
const MANAGEMENT_IN_FLIGHT: usize = 256;

/// Request metadata naming who makes a change when authentication is off.
const ACTOR_HEADER: &str = "x-actor";
const ANONYMOUS: &str = "anonymous";

/// Rate-limit settings.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub management_rate: u32,
    pub management_burst: u32,
    pub evaluation_rate: u32,
    pub evaluation_burst: u32,
    pub max_in_flight: u32,
    pub max_watch_streams: u32,
    pub max_watch_streams_per_caller: u32,
}

/// Whom a rate limit counts against.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Caller {
    Subject(String),
    Peer(IpAddr),
    Unknown,
}

/// An admitted call: who made it (for the audit trail) and what they may
/// touch. Holds its place among the calls in progress until dropped.
pub struct Admitted {
    pub actor: String,
    /// `None` when authentication is off.
    pub principal: Option<Principal>,
    _in_flight: OwnedSemaphorePermit,
}

pub struct Gatekeeper {
    auth: Option<Authenticator>,
    evaluation_auth: EvaluationAuth,
    watch_auth: WatchAuth,
    management: DefaultKeyedRateLimiter<Caller>,
    evaluation: DefaultKeyedRateLimiter<Caller>,
    /// Signature checks per peer address: tokens not verified before
    /// (valid ones are cached until they expire), counted before checking,
    /// so a flood of forged tokens costs bounded work. Twice a caller's
    /// management budget (100/s, bursts of 200, by default).
    unverified: DefaultKeyedRateLimiter<Caller>,
    /// Evaluation calls (Evaluate, BulkEvaluate, Watch's start, flagd, OFREP)
    /// in progress.
    in_flight: Arc<Semaphore>,
    /// Management calls in progress: a pool evaluation cannot take.
    management_in_flight: Arc<Semaphore>,
    watch_streams: Arc<Semaphore>,
    max_watch_streams: usize,
    /// Open Watch streams per caller, so one caller cannot take them all.
    watchers: Arc<DashMap<Caller, u32, ahash::RandomState>>,
    max_watch_streams_per_caller: u32,
}

/// What a Watch stream may show of each flag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Visibility {
    /// Whole definitions (a caller that may read them).
    Full,
    /// Without the lists, metadata, description and actors that GetFlag
    /// keeps for `reader`.
    Redacted,
}

/// A Watch stream's place: among all streams and among its caller's.
/// Released when the stream ends.
pub struct WatchSlot {
    _slot: OwnedSemaphorePermit,
    _counted: CallerStream,
}

/// One stream counted against its caller; uncounted when dropped.
struct CallerStream {
    watchers: Arc<DashMap<Caller, u32, ahash::RandomState>>,
    caller: Caller,
}

impl Drop for CallerStream {
    fn drop(&mut self) {
        self.watchers.remove_if_mut(&self.caller, |_, open| {
            *open = open.saturating_sub(1);
            *open == 0
        });
    }
}

impl Gatekeeper {
    pub fn new(
        auth: Option<Authenticator>,
        evaluation_auth: EvaluationAuth,
        watch_auth: WatchAuth,
        limits: Limits,
    ) -> Self {
        let quota = |rate: u32, burst: u32| {
            let rate = NonZeroU32::new(rate).unwrap_or(NonZeroU32::MIN);
            let burst = NonZeroU32::new(burst).unwrap_or(rate);
            Quota::per_second(rate).allow_burst(burst)
        };
        Self {
            auth,
            evaluation_auth,
            watch_auth,
            management: RateLimiter::keyed(quota(limits.management_rate, limits.management_burst)),
            unverified: RateLimiter::keyed(quota(
                limits.management_rate.saturating_mul(2),
                limits.management_burst.saturating_mul(2),
            )),
            evaluation: RateLimiter::keyed(quota(limits.evaluation_rate, limits.evaluation_burst)),
            in_flight: Arc::new(Semaphore::new(limits.max_in_flight as usize)),
            management_in_flight: Arc::new(Semaphore::new(MANAGEMENT_IN_FLIGHT)),
            watch_streams: Arc::new(Semaphore::new(limits.max_watch_streams as usize)),
            max_watch_streams: limits.max_watch_streams as usize,
            watchers: Arc::new(DashMap::default()),
            max_watch_streams_per_caller: limits.max_watch_streams_per_caller,
        }
    }

    /// Refuses, from its headers alone, a call without a valid token when
    /// authentication is on (see `pre_admission`).
    pub fn pre_admit<T>(&self, request: &Request<T>) -> Result<(), Status> {
        match &self.auth {
            None => Ok(()),
            Some(auth) => self.authenticate(auth, request, "management").map(|_| ()),
        }
    }

    /// Admits a management call needing `role`.
    pub fn management<T>(
        &self,
        request: &Request<T>,
        role: Role,
        method: &str,
    ) -> Result<Admitted, Status> {
        let principal = match &self.auth {
            None => None,
            Some(auth) => Some(self.authenticate(auth, request, method)?),
        };
        if let Some(principal) = &principal
            && !principal.has(role)
        {
            tracing::info!(subject = %principal.subject, method, needed = %role, "refused: missing role");
            return Err(Status::permission_denied(format!(
                "{method} needs the {role} role"
            )));
        }
        let caller = caller(principal.as_ref(), request);
        limit(&self.management, &caller, "management")?;
        let permit = acquire(&self.management_in_flight)?;
        let actor = match &principal {
            Some(principal) => principal.subject.clone(),
            None => header_actor(request)?,
        };
        Ok(Admitted {
            actor,
            principal,
            _in_flight: permit,
        })
    }

    /// Admits an evaluation (or a Watch, which also takes a stream slot
    /// through [`Self::watch_slot`]). Returns the token's expiry when one
    /// was required.
    pub fn evaluation<T>(
        &self,
        request: &Request<T>,
        method: &str,
    ) -> Result<(Option<Principal>, OwnedSemaphorePermit), Status> {
        let principal = match (&self.auth, self.evaluation_auth) {
            (None, _) | (Some(_), EvaluationAuth::Open) => None,
            (Some(auth), mode) => {
                // Before verifying: the peer's evaluation budget.
                limit(&self.evaluation, &caller(None, request), "evaluation")?;
                let principal = self.authenticate(auth, request, method)?;
                if mode == EvaluationAuth::Evaluator && !principal.has(Role::Evaluator) {
                    return Err(Status::permission_denied(format!(
                        "{method} needs the evaluator role"
                    )));
                }
                Some(principal)
            }
        };
        limit(
            &self.evaluation,
            &caller(principal.as_ref(), request),
            "evaluation",
        )?;
        Ok((principal, self.in_flight()?))
    }

    /// Admits a Watch, which streams whole flag definitions. With
    /// authentication on it needs a token with `reader` or `evaluator`
    /// (`VEXIL_WATCH_AUTH=token`, the default); with `open`, a caller
    /// without one is admitted to a redacted stream. The token's expiry
    /// ends the stream.
    pub fn watch<T>(
        &self,
        request: &Request<T>,
    ) -> Result<(Option<Principal>, OwnedSemaphorePermit, Visibility), Status> {
        const METHOD: &str = "Watch";
        let Some(auth) = &self.auth else {
            limit(&self.evaluation, &caller(None, request), "evaluation")?;
            return Ok((None, self.in_flight()?, Visibility::Full));
        };
        let token_required =
            self.watch_auth == WatchAuth::Token || self.evaluation_auth != EvaluationAuth::Open;
        // Before verifying: the peer's evaluation budget.
        limit(&self.evaluation, &caller(None, request), "evaluation")?;
        if !token_required && request.metadata().get("authorization").is_none() {
            return Ok((None, self.in_flight()?, Visibility::Redacted));
        }
        let principal = self.authenticate(auth, request, METHOD)?;
        if self.evaluation_auth == EvaluationAuth::Evaluator && !principal.has(Role::Evaluator) {
            return Err(Status::permission_denied(format!(
                "{METHOD} needs the evaluator role"
            )));
        }
        let visibility = if principal.has(Role::Reader) || principal.has(Role::Evaluator) {
            Visibility::Full
        } else if token_required {
            tracing::info!(subject = %principal.subject, method = METHOD, "refused: missing role");
            return Err(Status::permission_denied(format!(
                "{METHOD} needs the reader or evaluator role"
            )));
        } else {
            Visibility::Redacted
        };
        limit(
            &self.evaluation,
            &caller(Some(&principal), request),
            "evaluation",
        )?;
        Ok((Some(principal), self.in_flight()?, visibility))
    }

    /// A place among the open Watch streams, and among its caller's (the
    /// token's subject, else the peer IP), held for the stream's life.
    pub fn watch_slot<T>(
        &self,
        request: &Request<T>,
        principal: Option<&Principal>,
    ) -> Result<WatchSlot, Status> {
        let caller = caller(principal, request);
        {
            let mut open = self.watchers.entry(caller.clone()).or_insert(0);
            if *open >= self.max_watch_streams_per_caller {
                return Err(overloaded(
                    "this caller has too many open Watch streams",
                    Duration::from_secs(1),
                ));
            }
            *open += 1;
        }
        let counted = CallerStream {
            watchers: self.watchers.clone(),
            caller,
        };
        // Refused here, `counted` is dropped and uncounts the stream.
        let slot = self
            .watch_streams
            .clone()
            .try_acquire_owned()
            .map_err(|_| {
                overloaded(
                    "too many open Watch streams on this replica; retry later or on another",
                    Duration::from_secs(1),
                )
            })?;
        Ok(WatchSlot {
            _slot: slot,
            _counted: counted,
        })
    }

    /// The background task fetching `VEXIL_JWKS_URL`, when configured.
    pub fn key_fetcher(&self) -> Option<impl Future<Output = ()> + Send + 'static> {
        self.auth.as_ref().and_then(Authenticator::fetcher)
    }

    /// Re-reads key files that may have rotated.
    pub fn refresh_keys(&self) {
        if let Some(auth) = &self.auth {
            auth.refresh();
        }
    }

    /// Forgets callers not seen lately, so the limiters' key maps stay bounded.
    /// Streams holding a Watch slot now.
    pub fn open_watch_streams(&self) -> usize {
        self.max_watch_streams
            .saturating_sub(self.watch_streams.available_permits())
    }

    pub fn forget_idle_callers(&self) {
        for limiter in [&self.management, &self.evaluation, &self.unverified] {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
        if let Some(auth) = &self.auth {
            auth.forget_stale_tokens();
        }
    }

    fn authenticate<T>(
        &self,
        auth: &Authenticator,
        request: &Request<T>,
        method: &str,
    ) -> Result<Principal, Status> {
        let header = request
            .metadata()
            .get("authorization")
            .map(|value| value.to_str().unwrap_or_default());
        if let Some(principal) = auth.cached(header) {
            return Ok(principal);
        }
        if header.is_some() {
            limit(
                &self.unverified,
                &caller(None, request),
                "token verification",
            )?;
        }
        auth.authenticate(header).map_err(|err| {
            tracing::info!(method, reason = %err, "refused: not authenticated");
            match err {
                AuthError::Unauthenticated(why) => Status::unauthenticated(why),
                AuthError::PermissionDenied(why) => Status::permission_denied(why),
            }
        })
    }

    fn in_flight(&self) -> Result<OwnedSemaphorePermit, Status> {
        acquire(&self.in_flight)
    }
}

/// A place among the calls in progress, or RESOURCE_EXHAUSTED at once.
fn acquire(places: &Arc<Semaphore>) -> Result<OwnedSemaphorePermit, Status> {
    places.clone().try_acquire_owned().map_err(|_| {
        overloaded(
            "the server has too many calls in progress; retry shortly",
            Duration::from_millis(100),
        )
    })
}

fn caller<T>(principal: Option<&Principal>, request: &Request<T>) -> Caller {
    match (principal, request.remote_addr()) {
        (Some(principal), _) => Caller::Subject(principal.subject.clone()),
        (None, Some(peer)) => Caller::Peer(network(peer.ip())),
        (None, None) => Caller::Unknown,
    }
}

/// The address a limit counts against: an IPv4 address, or an IPv6 /64
/// (one host usually holds a whole /64, so single addresses are free).
fn network(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(std::net::Ipv6Addr::from(
                u128::from(v6) & !((1u128 << 64) - 1),
            )),
        },
    }
}

fn limit(
    limiter: &DefaultKeyedRateLimiter<Caller>,
    caller: &Caller,
    kind: &str,
) -> Result<(), Status> {
    limiter.check_key(caller).map_err(|not_until| {
        let wait = not_until.wait_time_from(DefaultClock::default().now());
        overloaded(&format!("{kind} rate limit exceeded for this caller"), wait)
    })
}

/// RESOURCE_EXHAUSTED telling the client when to retry, in the standard
/// detail and in the header gRPC clients' retry policies read.
fn overloaded(message: &str, retry_after: Duration) -> Status {
    let retry_after = retry_after.max(Duration::from_millis(1));
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

/// The actor of a change when authentication is off: the `x-actor`
/// metadata, or "anonymous".
fn header_actor<T>(request: &Request<T>) -> Result<String, Status> {
    match request.metadata().get(ACTOR_HEADER) {
        None => Ok(ANONYMOUS.to_string()),
        Some(value) => {
            let printable = value.as_bytes().iter().all(|b| (0x20..=0x7e).contains(b));
            match value.to_str().map(str::trim) {
                Ok("") if printable => Ok(ANONYMOUS.to_string()),
                Ok(actor) if printable => Ok(actor.to_string()),
                _ => Err(Status::invalid_argument("x-actor: must be printable ASCII")),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Evaluation filling every in-flight place leaves the kill switch its
    /// own: management calls have a pool evaluation cannot take.
    #[test]
    fn evaluation_cannot_take_managements_places() {
        let limits = Limits {
            management_rate: 1_000,
            management_burst: 1_000,
            evaluation_rate: 1_000,
            evaluation_burst: 1_000,
            max_in_flight: 2,
            max_watch_streams: 10,
            max_watch_streams_per_caller: 10,
        };
        let gate = Gatekeeper::new(None, EvaluationAuth::Open, WatchAuth::Token, limits);
        let request = Request::new(());
        let held: Vec<_> = (0..2)
            .map(|_| gate.evaluation(&request, "Evaluate").expect("a place"))
            .collect();
        let refused = gate.evaluation(&request, "Evaluate").expect_err("full");
        assert_eq!(refused.code(), tonic::Code::ResourceExhausted);
        let admitted = gate.management(&request, Role::Editor, "UpdateFlag");
        assert!(admitted.is_ok(), "the kill switch is admitted");
        drop(held);
    }

    #[test]
    fn ipv6_callers_count_per_64() {
        let a = network("2001:db8:1:2:aaaa::1".parse().unwrap());
        let b = network("2001:db8:1:2:bbbb::9".parse().unwrap());
        let c = network("2001:db8:1:3::1".parse().unwrap());
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_eq!(
            network("::ffff:192.0.2.7".parse().unwrap()),
            "192.0.2.7".parse::<std::net::IpAddr>().unwrap()
        );
    }
}
