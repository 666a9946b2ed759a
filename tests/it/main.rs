//! Integration tests: the real server over real gRPC, on SQLite and on
//! PostgreSQL (see `common`).
//!
//! `faults` is the fault suite: every failure mode the README lists under
//! "Failure modes", run alone with `cargo test --test it faults::` (with
//! `VEXIL_TEST_DATABASE_URL` and `VEXIL_TEST_REDIS_URL` set).

mod common;

mod atomicity;
mod auth;
mod cli;
mod client;
mod concurrency;
mod console;
mod evaluation;
mod exactness;
mod explain;
mod faults;
mod flagd_import;
mod hostile;
mod lifecycle;
mod listing;
mod metrics;
mod openfeature;
mod prometheus;
mod secrets;
mod segments;
mod telemetry;
mod tls;
mod typed;
mod validation;
mod watch;
