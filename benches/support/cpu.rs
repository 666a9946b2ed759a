//! CPU time from Linux's per-thread accounting, to the nanosecond.

use std::path::Path;
use std::time::Duration;

/// CPU time (user and system) used so far by the threads listed in `tasks`
/// (a `/proc/PID/task` directory) whose name starts with `name_prefix`.
pub fn threads_cpu(tasks: &Path, name_prefix: &str) -> Duration {
    let nanos: u64 = std::fs::read_dir(tasks)
        .map(|entries| {
            entries
                .flatten()
                .filter(|task| {
                    name_prefix.is_empty()
                        || std::fs::read_to_string(task.path().join("comm"))
                            .is_ok_and(|name| name.starts_with(name_prefix))
                })
                .filter_map(|task| std::fs::read_to_string(task.path().join("schedstat")).ok())
                .filter_map(|stat| stat.split_whitespace().next()?.parse::<u64>().ok())
                .sum()
        })
        .unwrap_or_default();
    Duration::from_nanos(nanos)
}

/// CPU time used so far by every thread of this process.
#[allow(dead_code)] // not every benchmark measures itself
pub fn own_cpu() -> Duration {
    threads_cpu(Path::new("/proc/self/task"), "")
}
