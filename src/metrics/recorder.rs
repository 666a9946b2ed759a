//! The evaluation hot path's counters: per flag × environment × UTC hour,
//! relaxed atomics only. A flag's [`FlagStats`] is resolved once (the hot
//! cache keeps it beside the flag), its environments sit in a few inline
//! slots, and each environment double-buffers hours by parity, so an
//! evaluation takes no lock, allocates nothing and inserts into no map
//! except the first time a flag (or an environment of it) is evaluated.
//!
//! Callers choose environment strings and flag names, so what is kept is
//! bounded whatever they send: an environment is counted on its own when
//! its flag names it, or within a global budget of other (flag,
//! environment) pairs ([`MAX_UNNAMED_PAIRS`]), and as [`OTHER_ENVIRONMENTS`]
//! after that; distinct users are kept exactly for the first few users of
//! an hour and in a 16 KiB sketch only past them; names that are not flags
//! are tracked as heavy hitters ([`MAX_UNKNOWN_FLAGS`] of the most asked
//! for, with no environments or users) and age out.
//!
//! A buffer holds one hour's cumulative figures on this replica. The
//! flusher writes them as they are (not as deltas), so a write that is
//! retried, or that committed while its reply was lost, counts once. When a
//! buffer is reused for a later hour before its last figures were written
//! (the store was down for an hour), they are kept aside, bounded.

use std::collections::BTreeMap;
use std::sync::atomic::{
    AtomicBool, AtomicI64, AtomicU32, AtomicU64, AtomicUsize, Ordering::Acquire, Ordering::Relaxed,
    Ordering::Release,
};
use std::sync::{Arc, Mutex, OnceLock};

use dashmap::DashMap;

use super::hll::{AtomicSketch, Sketch, position};
use crate::engine::Reason;

/// Upper bounds (inclusive, nanoseconds) of the evaluation-time histogram;
/// one more bucket counts everything slower.
pub const LATENCY_BOUNDS_NS: [u64; 11] = [
    250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 1_000_000,
];
pub const LATENCY_BUCKETS: usize = LATENCY_BOUNDS_NS.len() + 1;
/// Every reason, in the order of the counters.
pub const REASONS: [Reason; 15] = Reason::ALL;
/// Environments a flag keeps in inline slots; more go to a map.
const INLINE_ENVIRONMENTS: usize = 8;
/// (flag, environment) pairs counted on their own per replica where the
/// flag does not name the environment (callers choose the strings);
/// evaluations in further ones count under [`OTHER_ENVIRONMENTS`]. The
/// environments a flag names (`environments`, override keys) are always
/// counted on their own: their number is bounded by the flag's definition.
pub const MAX_UNNAMED_PAIRS: usize = 4_096;
/// Of those, at most this many per flag.
pub const MAX_UNNAMED_PER_FLAG: usize = 64;
pub const OTHER_ENVIRONMENTS: &str = "__other__";
/// Unknown flag names tracked per replica (the typo detector): the most
/// asked for, by a Space-Saving count, so a flood of one-off names cannot
/// push out a typo that code asks for often.
pub const MAX_UNKNOWN_FLAGS: usize = 1_000;
/// Distinct-user sketches (16 KiB each) per replica; flag hours past it
/// count evaluations but users only up to [`EARLY_USERS`].
pub const MAX_USER_SKETCHES: usize = 4_096;
/// Users an hour keeps exactly (as their sketch positions) before it takes
/// a sketch: most (flag, environment) hours see few users, and a caller
/// inventing environments makes many such hours.
const EARLY_USERS: usize = 8;
/// Evaluations of a flag × environment × hour timed before sampling
/// starts (one in `service::evaluate::TIMED_EVERY` after).
pub const ALWAYS_TIMED: u64 = 16;
/// Hour figures kept aside for a flusher that fell more than an hour behind.
const MAX_SET_ASIDE: usize = 10_000;
/// Variant names a flag × environment counts on its own (the first served
/// keep their slots for the replica's life); evaluations serving others
/// count under [`OTHER_VARIANTS`]. A flag has at most 100 variants, and
/// most 2 or 3.
pub const VARIANT_SLOTS: usize = 16;
pub const OTHER_VARIANTS: &str = "__other__";

fn reason_index(reason: Reason) -> usize {
    match reason {
        Reason::FlagNotFound => 0,
        Reason::Disabled => 1,
        Reason::NotStarted => 2,
        Reason::Expired => 3,
        Reason::EnvironmentNotAllowed => 4,
        Reason::Blacklisted => 5,
        Reason::Whitelisted => 6,
        Reason::EnvironmentOverride => 7,
        Reason::PercentageRollout => 8,
        Reason::OutsideRollout => 9,
        Reason::PrerequisiteFailed => 10,
        Reason::TargetMatch => 11,
        Reason::RuleMatch => 12,
        Reason::Split => 13,
        Reason::Default => 14,
    }
}

fn latency_bucket(nanos: u64) -> usize {
    LATENCY_BOUNDS_NS
        .iter()
        .position(|&bound| nanos <= bound)
        .unwrap_or(LATENCY_BOUNDS_NS.len())
}

/// One evaluation, as the hot path records it.
#[derive(Debug, Clone, Copy)]
pub struct Observation<'a> {
    pub environment: &'a str,
    pub user_id: &'a str,
    pub reason: Reason,
    pub enabled: bool,
    /// The variant served, as the flag's index and name (none: no value).
    pub variant: Option<(usize, &'a str)>,
    /// How long it took, when this evaluation was timed (a clock read costs
    /// about as much as an evaluation, so only some are: see
    /// `service::evaluate`).
    pub latency_ns: Option<u64>,
    /// Unix seconds of the evaluation.
    pub at: i64,
}

/// One flag × environment × hour's figures on this replica.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HourFigures {
    /// Evaluations by reason, as `[disabled, enabled]`.
    pub outcomes: [[u64; 2]; REASONS.len()],
    pub latency: [u64; LATENCY_BUCKETS],
    pub latency_sum_ns: u64,
    /// Evaluations by the variant served (evaluations serving no value are
    /// not counted here).
    pub variants: BTreeMap<String, u64>,
    /// Distinct users: absent when no sketch was available, and in a
    /// flush's records when the sketch has not changed since last written
    /// (the store keeps the one it has).
    pub users: Option<Sketch>,
}

impl HourFigures {
    // Saturating throughout: stored rows are read back, and a corrupt one
    // must not overflow.
    pub fn evaluations(&self) -> u64 {
        self.outcomes.iter().fold(0u64, |sum, [off, on]| {
            sum.saturating_add(*off).saturating_add(*on)
        })
    }

    pub fn enabled(&self) -> u64 {
        self.outcomes
            .iter()
            .fold(0u64, |sum, [_, on]| sum.saturating_add(*on))
    }

    pub fn count(&self, reason: Reason) -> u64 {
        let [off, on] = self.outcomes[reason_index(reason)];
        off.saturating_add(on)
    }

    /// Adds another replica's (or environment's) figures.
    pub fn add(&mut self, other: &HourFigures) {
        for (mine, theirs) in self.outcomes.iter_mut().zip(other.outcomes.iter()) {
            mine[0] = mine[0].saturating_add(theirs[0]);
            mine[1] = mine[1].saturating_add(theirs[1]);
        }
        for (mine, theirs) in self.latency.iter_mut().zip(other.latency.iter()) {
            *mine = mine.saturating_add(*theirs);
        }
        self.latency_sum_ns = self.latency_sum_ns.saturating_add(other.latency_sum_ns);
        for (variant, count) in &other.variants {
            let mine = self.variants.entry(variant.clone()).or_default();
            *mine = mine.saturating_add(*count);
        }
        match (&mut self.users, &other.users) {
            (Some(mine), Some(theirs)) => mine.merge(theirs),
            (None, Some(theirs)) => self.users = Some(theirs.clone()),
            _ => {}
        }
    }
}

/// A flag × environment × hour ready to be written.
#[derive(Debug, Clone)]
pub struct HourRecord {
    pub flag: Arc<str>,
    pub environment: Arc<str>,
    /// Unix hours (seconds / 3600).
    pub hour: i64,
    pub figures: HourFigures,
}

#[derive(Default)]
struct Counters {
    outcomes: [[AtomicU64; 2]; REASONS.len()],
    latency: [AtomicU64; LATENCY_BUCKETS],
    latency_sum_ns: AtomicU64,
    /// By the environment's variant slots, then [`OTHER_VARIANTS`].
    variants: [AtomicU64; VARIANT_SLOTS + 1],
    /// Timed evaluations: the first [`ALWAYS_TIMED`] of an hour are all
    /// timed, so a handful of evaluations has percentiles too.
    timed: AtomicU64,
}

struct HourBuffer {
    /// The unix hour it accumulates; -1 before its first use.
    hour: AtomicI64,
    counters: Counters,
    /// Sketch positions of the hour's first users, packed (0: free); a
    /// sketch is taken when they are full. `None` in `users`: they were
    /// full and no sketch was left (the hour's users are unknown).
    early: [AtomicU32; EARLY_USERS],
    users: OnceLock<Option<AtomicSketch>>,
    /// A user raised a register of `users` since the flusher last took it:
    /// unchanged sketches are not written again.
    users_changed: AtomicBool,
    /// Evaluations when its figures were last written.
    written: AtomicU64,
    /// Its hour is over and its final figures are written.
    finished: AtomicBool,
}

impl Default for HourBuffer {
    fn default() -> Self {
        Self {
            hour: AtomicI64::new(-1),
            counters: Counters::default(),
            early: Default::default(),
            users: OnceLock::new(),
            users_changed: AtomicBool::new(false),
            written: AtomicU64::new(0),
            finished: AtomicBool::new(false),
        }
    }
}

impl HourBuffer {
    fn evaluations(&self) -> u64 {
        self.counters
            .outcomes
            .iter()
            .map(|[off, on]| off.load(Relaxed) + on.load(Relaxed))
            .sum()
    }

    /// Its figures, distinct users included.
    fn figures(&self, names: &VariantNames) -> HourFigures {
        HourFigures {
            users: self.users(),
            ..self.counts(names)
        }
    }

    /// Its distinct users: none when it has seen none, or more than
    /// [`EARLY_USERS`] with no sketch to hold them.
    fn users(&self) -> Option<Sketch> {
        let mut early = self
            .early
            .iter()
            .map(|slot| slot.load(Relaxed))
            .filter(|&packed| packed != 0)
            .peekable();
        let mut users = match self.users.get() {
            Some(Some(sketch)) => sketch.snapshot(),
            Some(None) => return None,
            None if early.peek().is_none() => return None,
            None => Sketch::default(),
        };
        // A sketch holds the early users too (copied when it was taken);
        // adding them again covers one that raced with the copy.
        for packed in early {
            users.add_at(unpack(packed));
        }
        Some(users)
    }

    /// Adds a user while the hour has no sketch: to the early slots, or to
    /// a sketch taken now that they are full. True when that changed the
    /// hour's users.
    fn add_early(&self, user: (usize, u8), recorder: &Recorder) -> bool {
        let packed = pack(user);
        for slot in &self.early {
            match slot.compare_exchange(0, packed, Relaxed, Relaxed) {
                Ok(_) => return true,
                Err(held) if held == packed => return false,
                Err(_) => {}
            }
        }
        match self.users.get_or_init(|| recorder.new_sketch()) {
            Some(sketch) => {
                for packed in self.early.iter().map(|slot| slot.load(Relaxed)) {
                    if packed != 0 {
                        sketch.add_at(unpack(packed));
                    }
                }
                sketch.add_at(user)
            }
            None => false,
        }
    }

    /// Its figures without distinct users (no 16 KiB copy).
    fn counts(&self, names: &VariantNames) -> HourFigures {
        let c = &self.counters;
        let mut variants = BTreeMap::new();
        for (i, count) in c.variants.iter().enumerate() {
            let count = count.load(Relaxed);
            if count == 0 {
                continue;
            }
            let name = names
                .get(i)
                .and_then(OnceLock::get)
                .map_or(OTHER_VARIANTS, |name| &**name);
            *variants.entry(name.to_owned()).or_default() += count;
        }
        HourFigures {
            variants,
            outcomes: std::array::from_fn(|i| {
                [
                    c.outcomes[i][0].load(Relaxed),
                    c.outcomes[i][1].load(Relaxed),
                ]
            }),
            latency: std::array::from_fn(|i| c.latency[i].load(Relaxed)),
            latency_sum_ns: c.latency_sum_ns.load(Relaxed),
            users: None,
        }
    }

    fn clear(&self) {
        let c = &self.counters;
        for [off, on] in &c.outcomes {
            off.store(0, Relaxed);
            on.store(0, Relaxed);
        }
        for bucket in &c.latency {
            bucket.store(0, Relaxed);
        }
        c.latency_sum_ns.store(0, Relaxed);
        for count in &c.variants {
            count.store(0, Relaxed);
        }
        c.timed.store(0, Relaxed);
        for slot in &self.early {
            slot.store(0, Relaxed);
        }
        if let Some(Some(users)) = self.users.get() {
            users.clear();
        }
        self.users_changed.store(false, Relaxed);
        self.written.store(0, Relaxed);
        self.finished.store(false, Relaxed);
    }
}

/// A user's sketch position in one word (index below 2^14, rank below
/// 2^6), never 0.
fn pack((index, rank): (usize, u8)) -> u32 {
    ((index as u32) << 8 | u32::from(rank)) + 1
}

fn unpack(packed: u32) -> (usize, u8) {
    let packed = packed.wrapping_sub(1);
    ((packed >> 8) as usize, (packed & 0xff) as u8)
}

/// One environment of a flag.
struct EnvironmentStats {
    environment: Arc<str>,
    /// Whether it counts distinct users: not [`OTHER_ENVIRONMENTS`], where
    /// they mean nothing (and would take a sketch per flag).
    counts_users: bool,
    hours: [HourBuffer; 2],
    /// The variant names of the counters' slots, set at first use.
    variant_names: VariantNames,
    /// Everything counted in hours whose buffers were reused since: with
    /// the buffers, the running totals `/metrics` reports.
    /// Boxed once needed: most pairs never reuse a buffer while they matter.
    retired: Mutex<Option<Box<HourFigures>>>,
    /// Serialises reusing a buffer for a new hour (rare) with the flusher's
    /// final read of it.
    roll: Mutex<()>,
}

impl EnvironmentStats {
    fn new(environment: &str) -> Self {
        Self {
            environment: environment.into(),
            counts_users: environment != OTHER_ENVIRONMENTS,
            hours: Default::default(),
            variant_names: Default::default(),
            retired: Mutex::new(None),
            roll: Mutex::new(()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ()> {
        self.roll
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Names of a flag × environment's variant counters.
type VariantNames = [OnceLock<Box<str>>; VARIANT_SLOTS];

/// The counter slot of the variant at `index` named `name`: the slot of
/// that name, or a free one (the one at `index` first, so a flag's
/// variants usually sit at their own index), or the overflow.
#[inline(always)]
fn variant_slot(names: &VariantNames, index: usize, name: &str) -> usize {
    if let Some(slot) = names.get(index)
        && slot.get().is_some_and(|held| &**held == name)
    {
        return index;
    }
    variant_slot_slow(names, index, name)
}

#[cold]
fn variant_slot_slow(names: &VariantNames, index: usize, name: &str) -> usize {
    let holds = |slot: &OnceLock<Box<str>>| slot.get().is_some_and(|held| &**held == name);
    if let Some(i) = names.iter().position(holds) {
        return i;
    }
    let preferred = names.get(index).into_iter().map(|slot| (index, slot));
    for (i, slot) in preferred.chain(names.iter().enumerate()) {
        if slot.get().is_none() {
            // Another thread may take it first, for this name or another.
            let _ = slot.set(name.into());
        }
        if holds(slot) {
            return i;
        }
    }
    VARIANT_SLOTS
}

/// A flag's counters (or an unknown name's).
pub struct FlagStats {
    name: Arc<str>,
    /// Order of first evaluation as a flag on this replica (`/metrics`
    /// gives the first ones a label of their own); unset for a name only
    /// ever evaluated while it was not a flag.
    ordinal: OnceLock<usize>,
    /// Filled in order, under `admitting`.
    inline: [OnceLock<Arc<EnvironmentStats>>; INLINE_ENVIRONMENTS],
    more: OnceLock<DashMap<Arc<str>, Arc<EnvironmentStats>, ahash::RandomState>>,
    /// Serialises adding an environment (rare) and its budget.
    admitting: Mutex<()>,
    /// Environments counted on their own that the flag does not name.
    unnamed: AtomicUsize,
    /// Unix seconds of the latest evaluation (0: never on this replica).
    last_evaluated: AtomicI64,
    /// `last_evaluated` when it was last written.
    last_written: AtomicI64,
}

impl FlagStats {
    fn new(name: &str) -> Self {
        Self {
            name: name.into(),
            ordinal: OnceLock::new(),
            inline: Default::default(),
            more: OnceLock::new(),
            admitting: Mutex::new(()),
            unnamed: AtomicUsize::new(0),
            last_evaluated: AtomicI64::new(0),
            last_written: AtomicI64::new(0),
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Unix seconds of this replica's latest evaluation of the flag.
    pub fn last_evaluated(&self) -> Option<i64> {
        Some(self.last_evaluated.load(Relaxed)).filter(|&at| at > 0)
    }

    /// The counters `environment` is counted in: its own, created at its
    /// first evaluation if `named` (the flag names it) or within the
    /// budgets, else [`OTHER_ENVIRONMENTS`].
    #[inline(always)]
    fn environment(
        &self,
        recorder: &Recorder,
        environment: &str,
        named: impl FnOnce() -> bool,
    ) -> Environment<'_> {
        if let Some(found) = self.find(environment) {
            return found;
        }
        let named = named();
        if !named
            && !self.may_add_unnamed(recorder)
            && let Some(other) = self.find(OTHER_ENVIRONMENTS)
        {
            return other;
        }
        self.admit(recorder, environment, named)
    }

    #[inline(always)]
    fn find(&self, environment: &str) -> Option<Environment<'_>> {
        for slot in &self.inline {
            match slot.get() {
                Some(stats) if &*stats.environment == environment => {
                    return Some(Environment::Inline(stats));
                }
                Some(_) => {}
                // Slots fill in order, and the map only once they are full.
                None => return None,
            }
        }
        self.more
            .get()?
            .get(environment)
            .map(|stats| Environment::Shared(stats.clone()))
    }

    fn may_add_unnamed(&self, recorder: &Recorder) -> bool {
        self.unnamed.load(Relaxed) < MAX_UNNAMED_PER_FLAG
            && recorder.unnamed_pairs.load(Relaxed) < MAX_UNNAMED_PAIRS
    }

    /// Adds `environment`'s counters (or [`OTHER_ENVIRONMENTS`]'s).
    #[cold]
    fn admit(&self, recorder: &Recorder, environment: &str, named: bool) -> Environment<'_> {
        let _admitting = self
            .admitting
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(found) = self.find(environment) {
            return found;
        }
        let counted = if named || self.take_unnamed(recorder) {
            environment
        } else if let Some(other) = self.find(OTHER_ENVIRONMENTS) {
            return other;
        } else {
            OTHER_ENVIRONMENTS
        };
        let stats = Arc::new(EnvironmentStats::new(counted));
        if let Some(slot) = self.inline.iter().find(|slot| slot.get().is_none()) {
            return Environment::Inline(slot.get_or_init(|| stats));
        }
        let more = self.more.get_or_init(Default::default);
        Environment::Shared(more.entry(counted.into()).or_insert(stats).clone())
    }

    /// Takes a place for an environment the flag does not name (under
    /// `admitting`).
    fn take_unnamed(&self, recorder: &Recorder) -> bool {
        let taken = self.unnamed.load(Relaxed) < MAX_UNNAMED_PER_FLAG
            && recorder
                .unnamed_pairs
                .fetch_update(Relaxed, Relaxed, |pairs| {
                    (pairs < MAX_UNNAMED_PAIRS).then_some(pairs + 1)
                })
                .is_ok();
        if taken {
            self.unnamed.fetch_add(1, Relaxed);
        }
        taken
    }

    fn environments(&self) -> Vec<Arc<EnvironmentStats>> {
        let mut all: Vec<_> = self
            .inline
            .iter()
            .filter_map(|slot| slot.get().cloned())
            .collect();
        if let Some(more) = self.more.get() {
            all.extend(more.iter().map(|entry| entry.value().clone()));
        }
        all
    }
}

/// An environment's counters: in the flag's inline slots, or in its map.
enum Environment<'a> {
    Inline(&'a EnvironmentStats),
    Shared(Arc<EnvironmentStats>),
}

impl std::ops::Deref for Environment<'_> {
    type Target = EnvironmentStats;

    fn deref(&self) -> &EnvironmentStats {
        match self {
            Environment::Inline(stats) => stats,
            Environment::Shared(stats) => stats,
        }
    }
}

/// An evaluation about to be counted (see [`Recorder::prepare`]).
pub struct Prepared<'a> {
    recorder: &'a Recorder,
    flag: &'a FlagStats,
    environment: Environment<'a>,
    /// Unix seconds.
    at: i64,
    /// The user's distinct-user register and value.
    user: Option<(usize, u8)>,
    /// That register, read ahead while the buffer was on `at`'s hour.
    seen: Option<u8>,
}

impl Prepared<'_> {
    /// Whether this evaluation should be timed although the sample did not
    /// pick it: its hour has had fewer than [`ALWAYS_TIMED`] timed ones.
    #[inline(always)]
    pub fn among_first(&self) -> bool {
        let hour = self.at.div_euclid(3600);
        let buffer = &self.environment.hours[(hour & 1) as usize];
        buffer.hour.load(Relaxed) != hour || buffer.counters.timed.load(Relaxed) < ALWAYS_TIMED
    }

    /// Counts the evaluation's outcome.
    #[inline(always)]
    pub fn record(
        self,
        reason: Reason,
        enabled: bool,
        variant: Option<(usize, &str)>,
        latency_ns: Option<u64>,
    ) {
        let hour = self.at.div_euclid(3600);
        let environment = &*self.environment;
        let buffer = &environment.hours[(hour & 1) as usize];
        // Acquire: pairs with `roll`'s release, so a count made after
        // seeing the new hour is never wiped by its reset.
        let rolled = buffer.hour.load(Acquire) != hour;
        if rolled {
            self.recorder.roll(self.flag, environment, buffer, hour);
        }
        let c = &buffer.counters;
        c.outcomes[reason_index(reason)][usize::from(enabled)].fetch_add(1, Relaxed);
        if let Some((index, name)) = variant {
            c.variants[variant_slot(&environment.variant_names, index, name)].fetch_add(1, Relaxed);
        }
        if let Some(latency_ns) = latency_ns {
            c.latency[latency_bucket(latency_ns)].fetch_add(1, Relaxed);
            c.latency_sum_ns.fetch_add(latency_ns, Relaxed);
            c.timed.fetch_add(1, Relaxed);
        }
        if let Some(user) = self.user {
            let changed = match buffer.users.get() {
                Some(Some(users)) => match self.seen.filter(|_| !rolled) {
                    Some(seen) => users.add_seen(user, seen),
                    None => users.add_at(user),
                },
                Some(None) => false,
                None => buffer.add_early(user, self.recorder),
            };
            if changed {
                buffer.users_changed.store(true, Relaxed);
            }
        }
        let last = &self.flag.last_evaluated;
        if last.load(Relaxed) != self.at {
            last.store(self.at, Relaxed);
        }
    }
}

/// A flag's running totals.
#[derive(Debug)]
pub struct FlagTotals {
    pub name: Arc<str>,
    /// Order of first evaluation as a flag on this replica.
    pub ordinal: usize,
    /// Evaluations by reason, as `[disabled, enabled]`.
    pub outcomes: [[u64; 2]; REASONS.len()],
    /// Evaluations by variant served.
    pub variants: BTreeMap<String, u64>,
}

/// Running totals (see [`Recorder::totals`]).
#[derive(Debug, Default)]
pub struct Totals {
    pub flags: Vec<FlagTotals>,
    /// Evaluations of names that were not flags.
    pub unknown: u64,
    /// Evaluation time over every name (only its latency fields are set).
    pub latency: HourFigures,
}

/// What a flush wrote, to be confirmed once the write succeeded.
pub struct Collected {
    pub records: Vec<HourRecord>,
    /// Latest evaluation (unix seconds) of flags evaluated since the last flush.
    pub last_evaluated: Vec<(Arc<str>, i64)>,
    written: Vec<Written>,
}

struct Written {
    environment: Arc<EnvironmentStats>,
    parity: usize,
    hour: i64,
    evaluations: u64,
    finished: bool,
    /// Its distinct users went with it (they had changed).
    users: bool,
}

/// An unknown name tracked.
struct UnknownName {
    /// How often it was asked for (an overestimate by at most what the
    /// name it pushed out had), halved every hour.
    hits: AtomicU64,
    stats: Arc<FlagStats>,
}

/// The unknown names found with the fewest hits at the last scan: pushed
/// out first, so a flood of new names costs one scan per this many, not
/// one each (counts only grow between scans, so they stay the least).
#[derive(Default)]
struct Least {
    hits: u64,
    names: Vec<Arc<str>>,
}

/// Every flag's counters on this replica.
#[derive(Default)]
pub struct Recorder {
    /// Every name evaluated, flag or not (a name can be both over time:
    /// one set of counters per name, so one row per name and hour).
    flags: DashMap<Arc<str>, Arc<FlagStats>, ahash::RandomState>,
    /// The unknown names tracked (their counters are in `flags`), with a
    /// Space-Saving estimate of how often each was asked for.
    unknown: DashMap<Arc<str>, UnknownName, ahash::RandomState>,
    /// Serialises adding (and pushing out) unknown names.
    unknown_admission: Mutex<Least>,
    /// Unknown names pushed out by more frequent ones, or aged out.
    unknown_pushed_out: AtomicU64,
    /// Evaluations of names that were not flags, since start.
    unknown_evaluations: AtomicU64,
    /// The unix hour unknown names' counts were last halved.
    unknown_aged: AtomicI64,
    /// Flags given an ordinal so far (the next one's).
    names: AtomicUsize,
    /// Pairs counted on their own that their flag does not name.
    unnamed_pairs: AtomicUsize,
    sketches: AtomicUsize,
    set_aside: Mutex<Vec<HourRecord>>,
    /// Figures lost because the set-aside was full.
    dropped: AtomicU64,
}

impl Recorder {
    pub fn new() -> Self {
        Self::default()
    }

    /// The counters of an existing flag (created at its first evaluation).
    pub fn flag(&self, name: &str) -> Arc<FlagStats> {
        let stats = self.stats(name);
        stats
            .ordinal
            .get_or_init(|| self.names.fetch_add(1, Relaxed));
        stats
    }

    /// The counters of a name, flag or not.
    fn stats(&self, name: &str) -> Arc<FlagStats> {
        if let Some(stats) = self.flags.get(name) {
            return stats.clone();
        }
        self.flags
            .entry(name.into())
            .or_insert_with(|| Arc::new(FlagStats::new(name)))
            .clone()
    }

    /// Records an evaluation of a flag; `named` tells whether the flag
    /// names the observation's environment (asked only the first time an
    /// environment is seen).
    #[inline(always)]
    pub fn record(
        &self,
        stats: &FlagStats,
        observation: &Observation<'_>,
        named: impl FnOnce() -> bool,
    ) {
        self.prepare(
            stats,
            observation.environment,
            observation.user_id,
            observation.at,
            named,
        )
        .record(
            observation.reason,
            observation.enabled,
            observation.variant,
            observation.latency_ns,
        );
    }

    /// Finds where an evaluation of `stats` will be counted, before the
    /// engine runs, and reads the user's distinct-user register ahead: with a thousand flags the sketches are megabytes, and
    /// waiting for that cache line cost BulkEvaluate(25) a tenth of its
    /// throughput. `at` is unix seconds.
    #[inline(always)]
    pub fn prepare<'a>(
        &'a self,
        stats: &'a FlagStats,
        environment: &str,
        user_id: &str,
        at: i64,
        named: impl FnOnce() -> bool,
    ) -> Prepared<'a> {
        let environment = stats.environment(self, environment, named);
        let user =
            (environment.counts_users && !user_id.is_empty()).then(|| position(user_id.as_bytes()));
        let mut seen = None;
        if let Some((index, _)) = user {
            let hour = at.div_euclid(3600);
            let buffer = &environment.hours[(hour & 1) as usize];
            // Acquire, as in `record`: the buffer is on this hour, and a
            // reset for a later one cannot come before this evaluation's count.
            if buffer.hour.load(Acquire) == hour
                && let Some(Some(users)) = buffer.users.get()
            {
                seen = Some(users.read_ahead(index));
            }
        }
        Prepared {
            recorder: self,
            flag: stats,
            environment,
            at,
            user,
            seen,
        }
    }

    /// Records an evaluation of a name that is not a flag: how often, per
    /// hour, without its environment, user or time.
    pub fn record_unknown(&self, name: &str, observation: &Observation<'_>) {
        self.unknown_evaluations.fetch_add(1, Relaxed);
        let observation = Observation {
            environment: OTHER_ENVIRONMENTS,
            user_id: "",
            latency_ns: None,
            ..*observation
        };
        for _ in 0..2 {
            // Counted under the map's read guard: a name is not forgotten
            // (its counters set aside) while an evaluation is counted in them.
            if let Some(tracked) = self.unknown.get(name) {
                tracked.hits.fetch_add(1, Relaxed);
                self.record(&tracked.stats, &observation, || true);
                return;
            }
            self.track_unknown(name);
        }
    }

    /// Starts tracking an unknown name, pushing out the least asked-for
    /// one when full (Space-Saving: the newcomer inherits its count, so a
    /// name asked for often is never pushed out by one-off names).
    #[cold]
    fn track_unknown(&self, name: &str) {
        let mut least = self
            .unknown_admission
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if self.unknown.contains_key(name) {
            return;
        }
        let mut inherited = 0;
        if self.unknown.len() >= MAX_UNKNOWN_FLAGS
            && let Some((victim, hits)) = self.least_asked_for(&mut least)
        {
            self.forget_unknown(&victim);
            inherited = hits;
        }
        // The first evaluation is counted by the caller.
        self.unknown.insert(
            name.into(),
            UnknownName {
                hits: AtomicU64::new(inherited),
                stats: self.stats(name),
            },
        );
    }

    /// The tracked unknown name with the fewest hits, and its hits.
    fn least_asked_for(&self, least: &mut Least) -> Option<(Arc<str>, u64)> {
        for _ in 0..3 {
            while let Some(name) = least.names.pop() {
                let hits = self
                    .unknown
                    .get(&name)
                    .map(|entry| entry.hits.load(Relaxed));
                if hits == Some(least.hits) {
                    return Some((name, least.hits));
                }
            }
            least.names.clear();
            least.hits = u64::MAX;
            for entry in self.unknown.iter() {
                let hits = entry.value().hits.load(Relaxed);
                if hits < least.hits {
                    least.hits = hits;
                    least.names.clear();
                }
                if hits == least.hits {
                    least.names.push(entry.key().clone());
                }
            }
        }
        // Counts kept rising under the scans: any of the last ones will do.
        let name = least.names.pop()?;
        Some((name, least.hits))
    }

    /// Drops the counters of a name no longer tracked (unless it is a flag
    /// now), setting aside what they hold that is not written yet.
    fn forget_unknown(&self, name: &str) {
        // Waits for evaluations being counted under a read guard.
        drop(self.unknown.remove(name));
        self.unknown_pushed_out.fetch_add(1, Relaxed);
        let Some((_, stats)) = self.flags.remove_if(name, |_, stats| {
            Arc::strong_count(stats) == 1 && stats.ordinal.get().is_none()
        }) else {
            return;
        };
        for environment in stats.environments() {
            let _reading = environment.lock();
            for buffer in &environment.hours {
                let hour = buffer.hour.load(Relaxed);
                if hour >= 0
                    && !buffer.finished.load(Relaxed)
                    && buffer.evaluations() != buffer.written.load(Relaxed)
                {
                    self.set_aside(HourRecord {
                        flag: stats.name.clone(),
                        environment: environment.environment.clone(),
                        hour,
                        figures: buffer.counts(&environment.variant_names),
                    });
                }
            }
        }
    }

    /// Once an hour, halves every unknown name's count and forgets those
    /// that reach zero, so names no longer asked for age out.
    fn age_unknown(&self, hour: i64) {
        let aged = self.unknown_aged.swap(hour, Relaxed);
        if aged == hour || aged == 0 {
            return;
        }
        let mut least = self
            .unknown_admission
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        // Halved counts: the last scan's least are not the least any more.
        *least = Least::default();
        let mut gone = Vec::new();
        for entry in self.unknown.iter() {
            let hits = &entry.value().hits;
            let before = hits
                .fetch_update(Relaxed, Relaxed, |n| Some(n / 2))
                .unwrap_or_else(|n| n);
            if before / 2 == 0 {
                gone.push(entry.key().clone());
            }
        }
        for name in gone {
            self.forget_unknown(&name);
        }
    }

    /// Unknown names pushed out of the [`MAX_UNKNOWN_FLAGS`] tracked, or
    /// aged out.
    pub fn unknown_pushed_out(&self) -> u64 {
        self.unknown_pushed_out.load(Relaxed)
    }

    fn set_aside(&self, record: HourRecord) {
        let mut set_aside = self
            .set_aside
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if set_aside.len() < MAX_SET_ASIDE {
            set_aside.push(record);
        } else {
            self.dropped.fetch_add(1, Relaxed);
        }
    }

    /// Hour figures lost because the flusher fell too far behind.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Relaxed)
    }

    /// This replica's latest evaluation of `name`, unflushed included.
    pub fn last_evaluated(&self, name: &str) -> Option<i64> {
        self.flags
            .get(name)
            .and_then(|stats| stats.last_evaluated())
    }

    fn new_sketch(&self) -> Option<AtomicSketch> {
        let taken = self.sketches.fetch_add(1, Relaxed);
        if taken >= MAX_USER_SKETCHES {
            self.sketches.fetch_sub(1, Relaxed);
            return None;
        }
        Some(AtomicSketch::default())
    }

    /// Moves a buffer to `hour`, setting aside figures not yet written.
    fn roll(
        &self,
        flag: &FlagStats,
        environment: &EnvironmentStats,
        buffer: &HourBuffer,
        hour: i64,
    ) {
        let _rolling = environment.lock();
        let previous = buffer.hour.load(Relaxed);
        if previous == hour {
            return;
        }
        if previous >= 0
            && !buffer.finished.load(Relaxed)
            && buffer.evaluations() != buffer.written.load(Relaxed)
        {
            self.set_aside(HourRecord {
                flag: flag.name.clone(),
                environment: environment.environment.clone(),
                hour: previous,
                figures: buffer.figures(&environment.variant_names),
            });
        }
        if previous >= 0 {
            let figures = buffer.counts(&environment.variant_names);
            environment
                .retired
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .get_or_insert_default()
                .add(&figures);
        }
        buffer.clear();
        buffer.hour.store(hour, Release);
    }

    /// Every hour whose figures changed since they were last written:
    /// the current hours, and past hours once more to write their final
    /// figures. `now` is unix seconds.
    pub fn collect(&self, now: i64) -> Collected {
        let current = now.div_euclid(3600);
        self.age_unknown(current);
        let mut collected = Collected {
            records: std::mem::take(
                &mut *self
                    .set_aside
                    .lock()
                    .unwrap_or_else(|poisoned| poisoned.into_inner()),
            ),
            last_evaluated: Vec::new(),
            written: Vec::new(),
        };
        for entry in self.flags.iter() {
            let flag = entry.value();
            let last = flag.last_evaluated.load(Relaxed);
            if last > flag.last_written.load(Relaxed) {
                collected.last_evaluated.push((flag.name.clone(), last));
            }
            for environment in flag.environments() {
                for parity in 0..2 {
                    let buffer = &environment.hours[parity];
                    let _reading =
                        (buffer.hour.load(Relaxed) < current).then(|| environment.lock());
                    let hour = buffer.hour.load(Relaxed);
                    if hour < 0 || buffer.finished.load(Relaxed) {
                        continue;
                    }
                    let evaluations = buffer.evaluations();
                    let finished = hour < current;
                    if evaluations == buffer.written.load(Relaxed) && !finished {
                        continue;
                    }
                    // The stored sketch stays when this one has not changed
                    // (taken before the copy: a raise after it is seen next time).
                    let users = buffer.users_changed.swap(false, Relaxed);
                    let figures = if users {
                        buffer.figures(&environment.variant_names)
                    } else {
                        buffer.counts(&environment.variant_names)
                    };
                    collected.records.push(HourRecord {
                        flag: flag.name.clone(),
                        environment: environment.environment.clone(),
                        hour,
                        figures,
                    });
                    collected.written.push(Written {
                        environment: environment.clone(),
                        parity,
                        hour,
                        evaluations,
                        finished,
                        users,
                    });
                }
            }
        }
        collected
    }

    /// Marks what `collected` held as written.
    pub fn confirm(&self, collected: Collected) {
        for written in collected.written {
            let _reading = written.environment.lock();
            let buffer = &written.environment.hours[written.parity];
            if buffer.hour.load(Relaxed) == written.hour {
                buffer.written.store(written.evaluations, Relaxed);
                if written.finished {
                    buffer.finished.store(true, Relaxed);
                }
            }
        }
        for (name, at) in collected.last_evaluated {
            if let Some(stats) = self.flags.get(&name) {
                stats.last_written.fetch_max(at, Relaxed);
            }
        }
    }

    /// Puts back what a failed flush could not write (the figures still in
    /// their buffers are collected again anyway; their sketches, taken as
    /// changed, are marked changed again).
    pub fn retry_later(&self, collected: Collected) {
        for written in collected.written.iter().filter(|written| written.users) {
            let _reading = written.environment.lock();
            let buffer = &written.environment.hours[written.parity];
            if buffer.hour.load(Relaxed) == written.hour {
                buffer.users_changed.store(true, Relaxed);
            }
        }
        let pending = collected.written.len();
        // The records before the buffers' come from the set-aside itself.
        let set_aside_records = collected.records.len() - pending;
        for record in collected.records.into_iter().take(set_aside_records) {
            self.set_aside(record);
        }
    }

    /// This replica's live figures for one flag's hours in `[from, to]`
    /// (unix hours), by environment.
    pub fn live(&self, name: &str, from: i64, to: i64) -> Vec<HourRecord> {
        let Some(stats) = self.flags.get(name).map(|s| s.clone()) else {
            return Vec::new();
        };
        let mut records = Vec::new();
        for environment in stats.environments() {
            let _reading = environment.lock();
            for buffer in &environment.hours {
                let hour = buffer.hour.load(Relaxed);
                if (from..=to).contains(&hour) {
                    records.push(HourRecord {
                        flag: stats.name.clone(),
                        environment: environment.environment.clone(),
                        hour,
                        figures: buffer.figures(&environment.variant_names),
                    });
                }
            }
        }
        records
    }

    /// Running totals since start, per flag (with its ordinal) and in all:
    /// evaluations by reason and outcome per flag, of unknown names, and
    /// the evaluation-time histogram over every flag.
    pub fn totals(&self) -> Totals {
        let mut totals = Totals {
            unknown: self.unknown_evaluations.load(Relaxed),
            ..Totals::default()
        };
        for entry in self.flags.iter() {
            let flag = entry.value();
            // Names never evaluated as flags have no series of their own.
            let Some(&ordinal) = flag.ordinal.get() else {
                continue;
            };
            let mut outcomes = [[0u64; 2]; REASONS.len()];
            let mut variants = BTreeMap::new();
            for environment in flag.environments() {
                // Under the roll lock: an hour moves from its buffer to
                // `retired` all at once, so counters never go down.
                let _rolling = environment.lock();
                let mut figures = environment
                    .retired
                    .lock()
                    .unwrap_or_else(|poisoned| poisoned.into_inner())
                    .as_deref()
                    .cloned()
                    .unwrap_or_default();
                for buffer in &environment.hours {
                    if buffer.hour.load(Relaxed) >= 0 {
                        figures.add(&buffer.counts(&environment.variant_names));
                    }
                }
                for (sum, counted) in outcomes.iter_mut().zip(figures.outcomes.iter()) {
                    sum[0] = sum[0].saturating_add(counted[0]);
                    sum[1] = sum[1].saturating_add(counted[1]);
                }
                figures.outcomes = [[0; 2]; REASONS.len()];
                for (variant, count) in std::mem::take(&mut figures.variants) {
                    let sum: &mut u64 = variants.entry(variant).or_default();
                    *sum = sum.saturating_add(count);
                }
                totals.latency.add(&figures);
            }
            // Evaluated while it was not a flag: counted in `unknown`.
            outcomes[reason_index(Reason::FlagNotFound)] = [0, 0];
            totals.flags.push(FlagTotals {
                name: flag.name.clone(),
                ordinal,
                outcomes,
                variants,
            });
        }
        totals
    }

    /// Names evaluated while they were not flags (at most [`MAX_UNKNOWN_FLAGS`]).
    pub fn unknown_names(&self) -> Vec<Arc<str>> {
        self.unknown
            .iter()
            .map(|entry| entry.key().clone())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: i64 = 3_600;

    fn observation(user_id: &str, at: i64) -> Observation<'_> {
        Observation {
            environment: "prod",
            user_id,
            reason: Reason::PercentageRollout,
            enabled: true,
            variant: Some((0, "on")),
            latency_ns: None,
            at,
        }
    }

    /// Each variant name served has a counter of its own, wherever the
    /// flag lists it, up to the slots; the rest count as one.
    #[test]
    fn counts_by_variant_within_bounded_slots() {
        let recorder = Recorder::new();
        let stats = recorder.flag("typed");
        let at = 1_000 * HOUR;
        let serve = |index: usize, name: &str| {
            recorder.record(
                &stats,
                &Observation {
                    variant: Some((index, name)),
                    ..observation("u1", at)
                },
                || true,
            );
        };
        serve(0, "a");
        serve(1, "b");
        serve(1, "b");
        // The flag's variants reordered: "a" now at 1, keeps its counter.
        serve(1, "a");
        for i in 0..VARIANT_SLOTS + 5 {
            serve(i, &format!("v{i}"));
        }
        recorder.record(
            &stats,
            &Observation {
                variant: None,
                ..observation("u1", at)
            },
            || true,
        );
        let variants = &recorder.totals().flags[0].variants;
        assert_eq!(variants["a"], 2);
        assert_eq!(variants["b"], 2);
        // 16 slots: a, b and 14 of the others; 7 others overflow.
        assert_eq!(variants.len(), VARIANT_SLOTS + 1);
        assert_eq!(variants[OTHER_VARIANTS], 7);
        assert_eq!(variants.values().sum::<u64>(), 4 + VARIANT_SLOTS as u64 + 5);
        let collected = recorder.collect(at);
        assert_eq!(collected.records[0].figures.variants, *variants);
    }

    fn users_collected(recorder: &Recorder, now: i64) -> (bool, Collected) {
        let collected = recorder.collect(now);
        assert_eq!(collected.records.len(), 1);
        (collected.records[0].figures.users.is_some(), collected)
    }

    #[test]
    fn a_sketch_is_collected_only_when_it_changed() {
        let recorder = Recorder::new();
        let stats = recorder.flag("f");
        let at = 1_000 * HOUR;
        recorder.record(&stats, &observation("u1", at), || false);
        let (users, collected) = users_collected(&recorder, at);
        assert!(users, "a new sketch");
        recorder.confirm(collected);

        // The same user: counts change, the sketch does not.
        recorder.record(&stats, &observation("u1", at), || false);
        let (users, collected) = users_collected(&recorder, at);
        assert!(!users, "unchanged");
        assert_eq!(collected.records[0].figures.evaluations(), 2);
        recorder.confirm(collected);

        // A failed write of a changed sketch sends it again.
        recorder.record(&stats, &observation("u2", at), || false);
        let (users, collected) = users_collected(&recorder, at);
        assert!(users, "a new user");
        recorder.retry_later(collected);
        let (users, _) = users_collected(&recorder, at);
        assert!(users, "retried with its sketch");
    }

    #[test]
    fn totals_keep_hours_whose_buffers_were_reused() {
        let recorder = Recorder::new();
        let stats = recorder.flag("f");
        let at = 1_000 * HOUR;
        recorder.record(&stats, &observation("u1", at), || false);
        recorder.record(&stats, &observation("u1", at + HOUR), || false);
        // Two hours later: the first hour's buffer is reused.
        recorder.record(&stats, &observation("u1", at + 2 * HOUR), || false);
        let totals = recorder.totals();
        let outcomes = &totals.flags[0].outcomes;
        assert_eq!(outcomes[reason_index(Reason::PercentageRollout)], [0, 3]);
        assert_eq!(totals.flags[0].variants["on"], 3);
        // The reused hour's figures wait for the flusher, set aside.
        let collected = recorder.collect(at + 2 * HOUR);
        let mut hours: Vec<_> = collected.records.iter().map(|r| r.hour).collect();
        hours.sort();
        assert_eq!(hours, vec![1_000, 1_001, 1_002]);
    }

    fn observation_in<'a>(environment: &'a str, user_id: &'a str, at: i64) -> Observation<'a> {
        Observation {
            environment,
            ..observation(user_id, at)
        }
    }

    fn environments_of(recorder: &Recorder, name: &str) -> Vec<String> {
        let mut environments: Vec<String> = recorder
            .flags
            .get(name)
            .map(|stats| stats.environments())
            .unwrap_or_default()
            .iter()
            .map(|stats| stats.environment.to_string())
            .collect();
        environments.sort();
        environments
    }

    #[test]
    fn environments_a_flag_does_not_name_share_one_budget() {
        let recorder = Recorder::new();
        let at = 1_000 * HOUR;
        let flags: Vec<_> = (0..MAX_UNNAMED_PAIRS / MAX_UNNAMED_PER_FLAG + 2)
            .map(|i| recorder.flag(&format!("f{i}")))
            .collect();
        for (i, stats) in flags.iter().enumerate() {
            for env in 0..MAX_UNNAMED_PER_FLAG + 5 {
                let environment = format!("junk-{i}-{env}");
                recorder.record(stats, &observation_in(&environment, "u1", at), || false);
            }
        }
        assert_eq!(recorder.unnamed_pairs.load(Relaxed), MAX_UNNAMED_PAIRS);
        let first = environments_of(&recorder, "f0");
        assert_eq!(
            first.len(),
            MAX_UNNAMED_PER_FLAG + 1,
            "its own, then __other__"
        );
        assert!(first.contains(&OTHER_ENVIRONMENTS.to_string()));
        // Past the global budget, only __other__ and what a flag names.
        let last = flags.last().expect("flags");
        recorder.record(last, &observation_in("production", "u1", at), || true);
        assert_eq!(
            environments_of(&recorder, last.name()),
            vec![OTHER_ENVIRONMENTS.to_string(), "production".to_string()]
        );
        let figures = recorder.live(last.name(), 1_000, 1_000);
        let other = figures
            .iter()
            .find(|record| &*record.environment == OTHER_ENVIRONMENTS)
            .expect("__other__");
        assert_eq!(other.figures.evaluations(), MAX_UNNAMED_PER_FLAG as u64 + 5);
    }

    #[test]
    fn a_few_users_take_no_sketch_and_count_exactly() {
        let recorder = Recorder::new();
        let stats = recorder.flag("f");
        let at = 1_000 * HOUR;
        let users: Vec<String> = (0..EARLY_USERS).map(|i| format!("user-{i}")).collect();
        for user in users.iter().chain(users.iter()) {
            recorder.record(&stats, &observation(user, at), || true);
        }
        assert_eq!(recorder.sketches.load(Relaxed), 0, "no sketch yet");
        let live = recorder.live("f", 1_000, 1_000);
        let counted = live[0].figures.users.as_ref().expect("users").count();
        assert_eq!(counted, EARLY_USERS as u64);
        recorder.record(&stats, &observation("one-more", at), || true);
        assert_eq!(recorder.sketches.load(Relaxed), 1, "a sketch past them");
        let live = recorder.live("f", 1_000, 1_000);
        let counted = live[0].figures.users.as_ref().expect("users").count();
        assert_eq!(counted, EARLY_USERS as u64 + 1);
    }

    #[test]
    fn one_off_unknown_names_do_not_push_out_a_frequent_typo() {
        let recorder = Recorder::new();
        let at = 1_000 * HOUR;
        for _ in 0..100 {
            recorder.record_unknown("chekout_v2", &observation("u1", at));
        }
        for i in 0..10 * MAX_UNKNOWN_FLAGS {
            recorder.record_unknown(&format!("junk-{i}"), &observation("u1", at));
        }
        let names = recorder.unknown_names();
        assert_eq!(names.len(), MAX_UNKNOWN_FLAGS);
        assert!(names.iter().any(|name| &**name == "chekout_v2"));
        // Pushed-out names keep no counters; their figures wait to be written.
        assert_eq!(recorder.flags.len(), MAX_UNKNOWN_FLAGS);
        assert_eq!(
            recorder.unknown_pushed_out(),
            (9 * MAX_UNKNOWN_FLAGS + 1) as u64
        );
        // Unknown names: no environment, no users, no series of their own.
        assert_eq!(
            environments_of(&recorder, "chekout_v2"),
            vec![OTHER_ENVIRONMENTS]
        );
        let live = recorder.live("chekout_v2", 1_000, 1_000);
        assert!(live[0].figures.users.is_none());
        let totals = recorder.totals();
        assert!(totals.flags.is_empty());
        assert_eq!(totals.unknown, (100 + 10 * MAX_UNKNOWN_FLAGS) as u64);
    }

    #[test]
    fn unknown_names_no_longer_asked_for_age_out() {
        let recorder = Recorder::new();
        let at = 1_000 * HOUR;
        recorder.record_unknown("once", &observation("u1", at));
        for _ in 0..4 {
            recorder.record_unknown("often", &observation("u1", at));
        }
        recorder.confirm(recorder.collect(at));
        // An hour later the counts halve: "once" goes, "often" stays.
        recorder.confirm(recorder.collect(at + HOUR));
        let names = recorder.unknown_names();
        assert_eq!(names, vec![Arc::<str>::from("often")]);
    }
}
