//! Who may call, and how often, for every transport (gRPC, flagd's API,
//! OFREP): authenticates bearer tokens (when keys are configured), checks
//! roles, applies per-caller rate limits (keyed by token subject, else peer
//! address) and limits on calls and streams in progress. It reads what
//! every transport has (the authorization header, the actor header, the
//! peer address) and answers with a principal or a typed [`Refusal`]; each
//! edge maps refusals to its wire in one match.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use dashmap::DashMap;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::auth::{AuthError, Authenticator, Principal, Role};

/// Who may evaluate and watch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum EvaluationAuth {
    /// Anyone who can reach the port (as the reference has it).
    Open,
    /// Any valid token.
    Required,
    /// A token with the `evaluator` (or `admin`) role.
    Evaluator,
}

/// Who may Watch when authentication is on. Watch streams whole flag
/// definitions (lists, metadata, actors), which GetFlag keeps for `reader`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum WatchAuth {
    /// A token with the `reader` or `evaluator` role (or a larger one).
    Token,
    /// Anyone; streams for callers without such a token carry flags without
    /// their lists, metadata, description and actors.
    Open,
}

/// What admission reads of a call, whatever its transport.
#[derive(Debug, Clone, Copy, Default)]
pub struct Call<'a> {
    /// The `authorization` header's value, when it has one that is text.
    pub authorization: Option<&'a str>,
    /// The `x-actor` header's raw bytes (authentication off only).
    pub actor: Option<&'a [u8]>,
    /// The caller's address, when the transport knows it.
    pub peer: Option<IpAddr>,
}

/// Why a call was not admitted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// No valid credentials.
    Unauthenticated(String),
    /// Valid credentials without the role needed.
    PermissionDenied(String),
    /// Over a rate or capacity limit: retry after the given time.
    Overloaded {
        message: String,
        retry_after: Duration,
    },
    /// A malformed header; `field` names it.
    InvalidArgument {
        field: &'static str,
        message: String,
    },
}

/// Time left until `exp` (seconds since the epoch): a stream admitted with
/// a token ends then.
pub fn until(exp: u64) -> Duration {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    Duration::from_secs(exp).saturating_sub(now)
}

/// Management calls in progress at once, in a pool of their own: evaluation
/// traffic, however heavy, never takes the kill switch's place.
const MANAGEMENT_IN_FLIGHT: usize = 256;

/// The header naming who makes a change when authentication is off.
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

/// What a stream carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamKind {
    /// Whole flag definitions (Watch): admitted as [`Gatekeeper::watch`].
    Definitions,
    /// Notices that flags changed (flagd's EventStream, OFREP's events):
    /// admitted as an evaluation.
    Notices,
}

/// An admitted stream: its place among the open streams (held for its
/// life), when its token runs out, and what it may show.
pub struct AdmittedStream {
    pub slot: WatchSlot,
    /// Time left on the token that admitted it; the stream ends then.
    pub expires_in: Option<Duration>,
    pub visibility: Visibility,
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
    pub fn pre_admit(&self, call: &Call<'_>) -> Result<(), Refusal> {
        match &self.auth {
            None => Ok(()),
            Some(auth) => self.authenticate(auth, call, "management").map(|_| ()),
        }
    }

    /// Refuses, from its headers alone, an evaluation call that needs a
    /// token (`VEXIL_AUTH_EVALUATION`, or `VEXIL_WATCH_AUTH` for a Watch when
    /// `definitions`) and has no valid one. Roles, scopes and limits are
    /// still checked when the call is admitted.
    pub fn pre_admit_evaluation(&self, call: &Call<'_>, definitions: bool) -> Result<(), Refusal> {
        let Some(auth) = &self.auth else {
            return Ok(());
        };
        let token_required = self.evaluation_auth != EvaluationAuth::Open
            || (definitions && self.watch_auth == WatchAuth::Token);
        if !token_required {
            return Ok(());
        }
        let method = if definitions { "Watch" } else { "evaluation" };
        self.authenticate(auth, call, method).map(|_| ())
    }

    /// Admits a management call needing `role`.
    pub fn management(
        &self,
        call: &Call<'_>,
        role: Role,
        method: &str,
    ) -> Result<Admitted, Refusal> {
        let principal = match &self.auth {
            None => None,
            Some(auth) => Some(self.authenticate(auth, call, method)?),
        };
        if let Some(principal) = &principal
            && !principal.has(role)
        {
            tracing::info!(subject = %principal.subject, method, needed = %role, "refused: missing role");
            return Err(Refusal::PermissionDenied(format!(
                "{method} needs the {role} role"
            )));
        }
        let caller = caller(principal.as_ref(), call);
        limit(&self.management, &caller, "management")?;
        let permit = acquire(&self.management_in_flight)?;
        let actor = match &principal {
            Some(principal) => principal.subject.clone(),
            None => header_actor(call)?,
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
    pub fn evaluation(
        &self,
        call: &Call<'_>,
        method: &str,
    ) -> Result<(Option<Principal>, OwnedSemaphorePermit), Refusal> {
        let principal = self.evaluation_caller(call, method)?;
        Ok((principal, self.evaluation_place()?))
    }

    /// Who an evaluation call is (a token when `VEXIL_AUTH_EVALUATION`
    /// asks for one), within the rate limits: the part of
    /// [`Self::evaluation`] that needs only the headers.
    pub fn evaluation_caller(
        &self,
        call: &Call<'_>,
        method: &str,
    ) -> Result<Option<Principal>, Refusal> {
        let principal = match (&self.auth, self.evaluation_auth) {
            (None, _) | (Some(_), EvaluationAuth::Open) => None,
            (Some(auth), mode) => {
                // Before verifying: the peer's evaluation budget.
                limit(&self.evaluation, &caller(None, call), "evaluation")?;
                let principal = self.authenticate(auth, call, method)?;
                if mode == EvaluationAuth::Evaluator && !principal.has(Role::Evaluator) {
                    return Err(Refusal::PermissionDenied(format!(
                        "{method} needs the evaluator role"
                    )));
                }
                Some(principal)
            }
        };
        limit(
            &self.evaluation,
            &caller(principal.as_ref(), call),
            "evaluation",
        )?;
        Ok(principal)
    }

    /// An evaluation's place among the calls in progress: taken once its
    /// message is decoded, so no call holds one while its body arrives.
    pub fn evaluation_place(&self) -> Result<OwnedSemaphorePermit, Refusal> {
        self.in_flight()
    }

    /// Admits a Watch, which streams whole flag definitions. With
    /// authentication on it needs a token with `reader` or `evaluator`
    /// (`VEXIL_WATCH_AUTH=token`, the default); with `open`, a caller
    /// without one is admitted to a redacted stream. The token's expiry
    /// ends the stream.
    fn watch(
        &self,
        call: &Call<'_>,
    ) -> Result<(Option<Principal>, OwnedSemaphorePermit, Visibility), Refusal> {
        const METHOD: &str = "Watch";
        let Some(auth) = &self.auth else {
            limit(&self.evaluation, &caller(None, call), "evaluation")?;
            return Ok((None, self.in_flight()?, Visibility::Full));
        };
        let token_required =
            self.watch_auth == WatchAuth::Token || self.evaluation_auth != EvaluationAuth::Open;
        // Before verifying: the peer's evaluation budget.
        limit(&self.evaluation, &caller(None, call), "evaluation")?;
        if !token_required && call.authorization.is_none() {
            return Ok((None, self.in_flight()?, Visibility::Redacted));
        }
        let principal = self.authenticate(auth, call, METHOD)?;
        if self.evaluation_auth == EvaluationAuth::Evaluator && !principal.has(Role::Evaluator) {
            return Err(Refusal::PermissionDenied(format!(
                "{METHOD} needs the evaluator role"
            )));
        }
        let visibility = if principal.has(Role::Reader) || principal.has(Role::Evaluator) {
            Visibility::Full
        } else if token_required {
            tracing::info!(subject = %principal.subject, method = METHOD, "refused: missing role");
            return Err(Refusal::PermissionDenied(format!(
                "{METHOD} needs the reader or evaluator role"
            )));
        } else {
            Visibility::Redacted
        };
        limit(
            &self.evaluation,
            &caller(Some(&principal), call),
            "evaluation",
        )?;
        Ok((Some(principal), self.in_flight()?, visibility))
    }

    /// Admits a stream (Watch, flagd's EventStream, OFREP's events): the
    /// caller, then a stream slot. It keeps no in-flight place: open streams
    /// are bounded by their slots.
    pub fn stream(
        &self,
        call: &Call<'_>,
        kind: StreamKind,
        method: &str,
    ) -> Result<AdmittedStream, Refusal> {
        let (principal, in_flight, visibility) = match kind {
            StreamKind::Definitions => self.watch(call)?,
            StreamKind::Notices => {
                let (principal, in_flight) = self.evaluation(call, method)?;
                (principal, in_flight, Visibility::Full)
            }
        };
        let slot = self.watch_slot(call, principal.as_ref())?;
        drop(in_flight);
        Ok(AdmittedStream {
            slot,
            expires_in: principal.map(|principal| until(principal.expires_at)),
            visibility,
        })
    }

    /// A place among the open Watch streams, and among its caller's (the
    /// token's subject, else the peer IP), held for the stream's life.
    fn watch_slot(
        &self,
        call: &Call<'_>,
        principal: Option<&Principal>,
    ) -> Result<WatchSlot, Refusal> {
        let caller = caller(principal, call);
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
    /// Whether callers must present tokens (keys are configured).
    pub fn checks_tokens(&self) -> bool {
        self.auth.is_some()
    }

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

    fn authenticate(
        &self,
        auth: &Authenticator,
        call: &Call<'_>,
        method: &str,
    ) -> Result<Principal, Refusal> {
        let header = call.authorization;
        if let Some(principal) = auth.cached(header) {
            return Ok(principal);
        }
        if header.is_some() {
            limit(&self.unverified, &caller(None, call), "token verification")?;
        }
        auth.authenticate(header).map_err(|err| {
            tracing::info!(method, reason = %err, "refused: not authenticated");
            match err {
                AuthError::Unauthenticated(why) => Refusal::Unauthenticated(why),
                AuthError::PermissionDenied(why) => Refusal::PermissionDenied(why),
            }
        })
    }

    fn in_flight(&self) -> Result<OwnedSemaphorePermit, Refusal> {
        acquire(&self.in_flight)
    }
}

/// A place among the calls in progress, or RESOURCE_EXHAUSTED at once.
fn acquire(places: &Arc<Semaphore>) -> Result<OwnedSemaphorePermit, Refusal> {
    places.clone().try_acquire_owned().map_err(|_| {
        overloaded(
            "the server has too many calls in progress; retry shortly",
            Duration::from_millis(100),
        )
    })
}

fn caller(principal: Option<&Principal>, call: &Call<'_>) -> Caller {
    match (principal, call.peer) {
        (Some(principal), _) => Caller::Subject(principal.subject.clone()),
        (None, Some(peer)) => Caller::Peer(network(peer)),
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
) -> Result<(), Refusal> {
    limiter.check_key(caller).map_err(|not_until| {
        let wait = not_until.wait_time_from(DefaultClock::default().now());
        overloaded(&format!("{kind} rate limit exceeded for this caller"), wait)
    })
}

/// Over a limit: retry after `retry_after` (at least 1 ms).
fn overloaded(message: &str, retry_after: Duration) -> Refusal {
    Refusal::Overloaded {
        message: message.to_owned(),
        retry_after: retry_after.max(Duration::from_millis(1)),
    }
}

/// The actor of a change when authentication is off: the `x-actor`
/// metadata, or "anonymous".
fn header_actor(call: &Call<'_>) -> Result<String, Refusal> {
    let Some(value) = call.actor else {
        return Ok(ANONYMOUS.to_string());
    };
    let printable = value.iter().all(|b| (0x20..=0x7e).contains(b));
    match std::str::from_utf8(value).map(str::trim) {
        Ok("") if printable => Ok(ANONYMOUS.to_string()),
        Ok(actor) if printable => Ok(actor.to_string()),
        _ => Err(Refusal::InvalidArgument {
            field: ACTOR_HEADER,
            message: "must be printable ASCII".into(),
        }),
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
        let call = Call::default();
        let held: Vec<_> = (0..2)
            .map(|_| gate.evaluation(&call, "Evaluate").expect("a place"))
            .collect();
        let refused = gate.evaluation(&call, "Evaluate").expect_err("full");
        assert!(matches!(refused, Refusal::Overloaded { .. }), "{refused:?}");
        let admitted = gate.management(&call, Role::Editor, "UpdateFlag");
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
