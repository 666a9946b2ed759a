//! The in-process bus, for a single replica: a tokio broadcast channel.

use tokio::sync::{broadcast, watch};

use super::{BusEvent, BusMessage, EVENT_CAPACITY};

pub struct LocalBus {
    events: broadcast::Sender<BusEvent>,
    connected: watch::Sender<bool>,
}

impl LocalBus {
    pub fn new() -> Self {
        Self {
            events: broadcast::channel(EVENT_CAPACITY).0,
            connected: watch::channel(true).0,
        }
    }

    pub fn publish(&self, message: BusMessage) {
        let _span = tracing::info_span!(
            "bus.publish",
            bus = "in-process",
            revision = message.revision,
            flag = message.flag.as_deref()
        )
        .entered();
        // No receiver is fine: nobody needs telling.
        let _ = self.events.send(BusEvent::Message(message));
    }

    pub fn subscribe(&self) -> broadcast::Receiver<BusEvent> {
        self.events.subscribe()
    }

    pub fn connected(&self) -> watch::Receiver<bool> {
        self.connected.subscribe()
    }
}
