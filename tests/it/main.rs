//! Integration tests: the real server over real gRPC, on SQLite and on
//! PostgreSQL (see `common`).

mod common;

mod atomicity;
mod concurrency;
mod evaluation;
mod lifecycle;
mod outage;
mod propagation;
mod restart;
mod validation;
mod watch;
