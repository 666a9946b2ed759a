//! The cost of applying Watch changes to the client's local copy at
//! scale: a copy of 100,000 flags, one change per batch (the worst case:
//! a quiet stream delivers changes one at a time) and batches of 100,
//! reported as the median time per batch and as the share of one core
//! that 100 changes a second would take in such batches; then a batch
//! that creates a flag (the map is rebuilt), and the cost of reading one
//! flag.
//!
//! Run: `cargo bench -p vexil-client --bench copy`

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use vexil_client::__bench::{FlagMap, LocalCopy};
use vexil_engine::{Flag, FlagName, FlagSpec, Stamp};

const FLAGS: usize = 100_000;

fn flag(i: usize, revision: u64) -> Arc<Flag> {
    let name = FlagName::parse("name", format!("flag.{i:06}")).expect("a name");
    let spec = FlagSpec {
        enabled: true,
        percentage: 50.0,
        ..FlagSpec::default()
    };
    let stamp = Stamp {
        revision,
        created_at: chrono::DateTime::UNIX_EPOCH,
        updated_at: chrono::DateTime::UNIX_EPOCH,
        created_by: String::new(),
        updated_by: String::new(),
    };
    Arc::new(Flag::new(name, spec, stamp))
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn main() {
    let flags: FlagMap = (0..FLAGS)
        .map(|i| {
            let flag = flag(i, 1);
            (Arc::from(flag.name.as_str()), flag)
        })
        .collect();
    let copy = LocalCopy::default();
    copy.replace(flags, Default::default(), 1);
    let mut revision = 1;
    for batch in [1usize, 100] {
        let mut samples = Vec::new();
        for round in 0..200 {
            let changes: Vec<_> = (0..batch)
                .map(|j| {
                    revision += 1;
                    let flag = flag((round * 7919 + j * 104_729) % FLAGS, revision);
                    (Arc::from(flag.name.as_str()), Some(flag))
                })
                .collect();
            let started = Instant::now();
            copy.apply(changes, revision);
            samples.push(started.elapsed());
        }
        let per_batch = median(samples);
        println!(
            "apply, {FLAGS} flags, batches of {batch:>3}: {per_batch:>10.2?} per batch; \
             100 changes/s in such batches take {:.2}% of a core",
            per_batch.as_secs_f64() * 100.0 / batch as f64 * 100.0
        );
    }
    // A batch creating a flag rebuilds the map (and drops deleted slots).
    let mut samples = Vec::new();
    for round in 0..20 {
        revision += 1;
        let flag = flag(FLAGS + round, revision);
        let created = vec![(Arc::from(flag.name.as_str()), Some(flag))];
        let started = Instant::now();
        copy.apply(created, revision);
        samples.push(started.elapsed());
    }
    println!(
        "apply, {FLAGS} flags, a batch creating one flag: {:.2?}",
        median(samples)
    );
    // Reading a flag, as every evaluation does.
    let names: Vec<String> = (0..1024).map(|i| format!("flag.{:06}", i * 97)).collect();
    let mut samples = Vec::new();
    for _ in 0..20 {
        let started = Instant::now();
        for name in &names {
            black_box(copy.with_flag(black_box(name), |flag| flag.map(|flag| flag.revision)));
        }
        samples.push(started.elapsed() / names.len() as u32);
    }
    println!("read one flag: {:.1?}", median(samples));
}
