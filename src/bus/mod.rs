//! The change bus: tells other replicas that a change committed. In-process
//! (one replica) or Redis pub/sub (many replicas).
//!
//! Pub/sub is at-most-once, so a message is only a hint: "revision N exists,
//! it changed flag F". Receivers catch up from the store's audit log, which
//! also covers whatever was lost while a replica was disconnected.

mod local;
mod redis;

use serde::{Deserialize, Serialize};
use tokio::sync::{broadcast, watch};

pub use self::redis::RedisBusConfig;
use crate::error::Result;

/// What a publisher announces: a change it committed (flag or segment, and
/// kind set), or, after it reconnects, just the revision its store is at,
/// so replicas that missed its announcements during the outage catch up at
/// once.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BusMessage {
    pub revision: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flag: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub segment: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<ChangeKind>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChangeKind {
    Upsert,
    Delete,
}

/// What a subscriber hears.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BusEvent {
    /// Another (or this) replica committed a change.
    Message(BusMessage),
    /// The bus (re)connected: messages may have been lost while it was down.
    Reconnected,
    /// The listener fell behind and dropped messages.
    Lagged,
}

/// Capacity of the in-process event channel between the bus and its listener.
const EVENT_CAPACITY: usize = 1024;

pub enum ChangeBus {
    InProcess(local::LocalBus),
    Redis(redis::RedisBus),
}

impl ChangeBus {
    pub fn in_process() -> Self {
        Self::InProcess(local::LocalBus::new())
    }

    /// Connects to Redis in the background: a replica starts (and serves)
    /// even while Redis is down, and catches up when it comes.
    pub fn redis(config: RedisBusConfig) -> Result<Self> {
        Ok(Self::Redis(redis::RedisBus::start(config)?))
    }

    /// Announces a committed change. Never fails and never blocks the
    /// caller: a lost announcement is repaired by the receivers' catch-up.
    pub fn publish(&self, message: BusMessage) {
        match self {
            Self::InProcess(bus) => bus.publish(message),
            Self::Redis(bus) => bus.publish(message),
        }
    }

    /// Events from now on. A receiver that lags should catch up from the store.
    pub fn subscribe(&self) -> broadcast::Receiver<BusEvent> {
        match self {
            Self::InProcess(bus) => bus.subscribe(),
            Self::Redis(bus) => bus.subscribe(),
        }
    }

    /// Whether the bus currently delivers messages (always, in process).
    pub fn connected(&self) -> watch::Receiver<bool> {
        match self {
            Self::InProcess(bus) => bus.connected(),
            Self::Redis(bus) => bus.connected(),
        }
    }

    pub async fn close(&self) {
        if let Self::Redis(bus) = self {
            bus.close().await;
        }
    }
}
