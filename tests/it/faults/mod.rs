//! The fault suite: what happens when Redis or PostgreSQL goes down, goes
//! silent (black-holed) or loses history, when a replica dies mid-write,
//! when a subscriber stalls, and when a flag is as large as allowed. Each
//! module proves one failure mode listed in the README ("Failure modes").

mod audit_gap;
mod oversized_flag;
mod postgres_down;
mod postgres_half_open;
mod propagation;
mod redis_black_holed;
mod replica_killed;
mod restart;
mod stalled_subscriber;
mod watch_without_store;
