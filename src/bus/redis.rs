//! The Redis pub/sub bus (fred). One subscriber connection listens on the
//! channel; a pool publishes.
//!
//! fred pitfalls handled here: an explicit reconnect policy (none by
//! default); initial connection retried in the background (`fail_fast`
//! off) so a replica starts while Redis is down; re-subscribing after every
//! reconnect, then asking for a catch-up, in that order; a lagging message
//! receiver is logged and answered with a catch-up instead of ending the
//! listener; a black-holed connection (peer gone, NAT or load-balancer
//! idle drop), which never errors by itself, is found by TCP keepalive and
//! a PING every few seconds, then closed and reconnected.

use std::time::Duration;

use fred::clients::SubscriberClient;
use fred::prelude::{ClientLike, Config, EventInterface, Pool, PubsubInterface, ReconnectPolicy};
use fred::types::Builder;
use fred::types::config::UnresponsiveConfig;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::{broadcast, watch};
use tokio::task::JoinHandle;
use tracing::field::Empty;

use super::{BusEvent, BusMessage, EVENT_CAPACITY};
use crate::error::{Error, Result};

/// Reconnect backoff: from 100 ms, doubling, at most 5 s apart, forever.
const RECONNECT_MIN_DELAY_MS: u32 = 100;
const RECONNECT_MAX_DELAY_MS: u32 = 5_000;
/// How long a publish may wait (e.g. while reconnecting) before it is dropped.
const PUBLISH_TIMEOUT: Duration = Duration::from_secs(2);
/// fred's own broadcast buffer for incoming messages.
const MESSAGE_BUFFER: usize = 1024;
/// How often the subscriber connection is pinged while idle.
const PING_INTERVAL: Duration = Duration::from_secs(2);
/// How long a PING (or any command) may go unanswered before the
/// connection is taken as dead and replaced.
const UNRESPONSIVE_TIMEOUT: Duration = Duration::from_secs(3);
/// TCP keepalive: idle time before the first probe, and between probes.
const KEEPALIVE_IDLE: Duration = Duration::from_secs(10);
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(5);

pub struct RedisBusConfig {
    pub url: String,
    /// Publisher pool size (`REDIS_MAX_CONNECTIONS`).
    pub pool_size: usize,
    pub channel: String,
}

pub struct RedisBus {
    publisher: Pool,
    subscriber: SubscriberClient,
    channel: String,
    events: broadcast::Sender<BusEvent>,
    connected: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    connections: Vec<fred::types::ConnectHandle>,
}

fn bus_error(err: fred::error::Error) -> Error {
    Error::Internal(format!("redis bus: {err}"))
}

impl RedisBus {
    pub fn start(config: RedisBusConfig) -> Result<Self> {
        let redis_config = Config::from_url(&config.url).map_err(|err| {
            Error::invalid("REDIS_URL", format!("is not a valid Redis URL: {err}"))
        })?;
        let mut builder = Builder::from_config(redis_config);
        builder
            .with_config(|c| c.fail_fast = false)
            // Announcements are tiny: without NODELAY, Nagle's algorithm and
            // delayed ACKs hold them back for ~40 ms.
            .with_connection_config(|c| {
                c.tcp.nodelay = Some(true);
                c.tcp.keepalive = Some(
                    socket2::TcpKeepalive::new()
                        .with_time(KEEPALIVE_IDLE)
                        .with_interval(KEEPALIVE_INTERVAL),
                );
                // A command unanswered this long closes the connection, and
                // the reconnect policy opens a new one.
                c.unresponsive = UnresponsiveConfig {
                    max_timeout: Some(UNRESPONSIVE_TIMEOUT),
                    interval: Duration::from_millis(500),
                };
                c.connection_timeout = UNRESPONSIVE_TIMEOUT;
                c.internal_command_timeout = UNRESPONSIVE_TIMEOUT;
            })
            .with_performance_config(|p| {
                p.default_command_timeout = PUBLISH_TIMEOUT;
                p.broadcast_channel_capacity = MESSAGE_BUFFER;
            })
            .set_policy(ReconnectPolicy::new_exponential(
                0,
                RECONNECT_MIN_DELAY_MS,
                RECONNECT_MAX_DELAY_MS,
                2,
            ));
        let publisher = builder
            .build_pool(config.pool_size.max(1))
            .map_err(bus_error)?;
        let subscriber = builder.build_subscriber_client().map_err(bus_error)?;

        let events = broadcast::channel(EVENT_CAPACITY).0;
        let connected = watch::channel(false).0;
        let tasks = vec![
            tokio::spawn(forward_messages(subscriber.message_rx(), events.clone())),
            tokio::spawn(on_reconnect(
                subscriber.reconnect_rx(),
                subscriber.clone(),
                config.channel.clone(),
                events.clone(),
                connected.clone(),
            )),
            tokio::spawn(on_error(subscriber.error_rx(), connected.clone())),
            tokio::spawn(keep_checking(
                subscriber.clone(),
                connected.clone(),
                events.clone(),
            )),
        ];
        // Connection tasks run (and reconnect) in the background; `quit`
        // ends them.
        let mut connections = publisher.connect_pool();
        connections.push(subscriber.connect());

        Ok(Self {
            publisher,
            subscriber,
            channel: config.channel,
            events,
            connected,
            tasks,
            connections,
        })
    }

    pub fn publish(&self, message: BusMessage) {
        let span = tracing::info_span!(
            "bus.publish",
            bus = "redis",
            revision = message.revision,
            flag = message.flag.as_deref()
        );
        let payload = match span.in_scope(|| serde_json::to_string(&message)) {
            Ok(payload) => payload,
            Err(err) => {
                tracing::error!(error = %err, "encoding a bus message");
                return;
            }
        };
        let client = self.publisher.next().clone();
        let channel = self.channel.clone();
        tokio::spawn(tracing::Instrument::instrument(
            async move {
                let published: std::result::Result<i64, _> = client.publish(channel, payload).await;
                if let Err(err) = published {
                    tracing::debug!(error = %err, revision = message.revision, "publish failed; replicas will catch up");
                }
            },
            span,
        ));
    }

    pub fn subscribe(&self) -> broadcast::Receiver<BusEvent> {
        self.events.subscribe()
    }

    pub fn connected(&self) -> watch::Receiver<bool> {
        self.connected.subscribe()
    }

    pub async fn close(&self) {
        for task in &self.tasks {
            task.abort();
        }
        let _ = self.subscriber.quit().await;
        let _ = self.publisher.quit().await;
        for connection in &self.connections {
            connection.abort();
        }
    }
}

/// Moves pub/sub messages into the bus's event channel.
async fn forward_messages(
    mut messages: broadcast::Receiver<fred::types::Message>,
    events: broadcast::Sender<BusEvent>,
) {
    loop {
        match messages.recv().await {
            Ok(message) => {
                let span = tracing::info_span!(
                    "bus.receive",
                    bus = "redis",
                    revision = Empty,
                    flag = Empty
                )
                .entered();
                let parsed = message
                    .value
                    .as_str()
                    .and_then(|text| serde_json::from_str::<BusMessage>(&text).ok());
                match parsed {
                    Some(parsed) => {
                        span.record("revision", parsed.revision);
                        span.record("flag", parsed.flag.as_deref());
                        let _ = events.send(BusEvent::Message(parsed));
                    }
                    None => {
                        tracing::warn!(channel = %message.channel, "ignoring a malformed bus message")
                    }
                }
            }
            Err(RecvError::Lagged(missed)) => {
                tracing::warn!(
                    missed,
                    "bus listener fell behind; catching up from the store"
                );
                let _ = events.send(BusEvent::Lagged);
            }
            Err(RecvError::Closed) => return,
        }
    }
}

/// On every (re)connect: subscribe again, then ask for a catch-up, so
/// nothing published while disconnected is missed for long.
/// (Taking `reconnects` before the client connects, so the first connect is
/// not missed.)
async fn on_reconnect(
    mut reconnects: broadcast::Receiver<fred::types::config::Server>,
    subscriber: SubscriberClient,
    channel: String,
    events: broadcast::Sender<BusEvent>,
    connected: watch::Sender<bool>,
) {
    loop {
        match reconnects.recv().await {
            Ok(server) => {
                if subscribe_until_done(&subscriber, &channel).await {
                    tracing::info!(%server, channel = %channel, "change bus connected to redis");
                    connected.send_replace(true);
                    let _ = events.send(BusEvent::Reconnected);
                }
            }
            Err(RecvError::Lagged(_)) => {
                let _ = events.send(BusEvent::Lagged);
            }
            Err(RecvError::Closed) => return,
        }
    }
}

/// Subscribes to `channel`, retrying while the connection stays up. False
/// when the connection dropped first (the next reconnect tries again).
async fn subscribe_until_done(subscriber: &SubscriberClient, channel: &str) -> bool {
    let mut delay = Duration::from_millis(u64::from(RECONNECT_MIN_DELAY_MS));
    loop {
        match subscriber.subscribe(channel).await {
            Ok(()) => return true,
            Err(err) => {
                tracing::warn!(error = %err, "subscribing to the change channel failed; retrying");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_millis(u64::from(RECONNECT_MAX_DELAY_MS)));
                if !subscriber.is_connected() {
                    return false;
                }
            }
        }
    }
}

/// Marks the bus disconnected on a connection error, logging once per
/// outage (and once if Redis is unreachable from the start).
async fn on_error(
    mut errors: broadcast::Receiver<(fred::error::Error, Option<fred::types::config::Server>)>,
    connected: watch::Sender<bool>,
) {
    let mut first = true;
    loop {
        match errors.recv().await {
            Ok((err, _)) => {
                let was_connected = connected.send_replace(false);
                if was_connected || std::mem::take(&mut first) {
                    tracing::warn!(error = %err, "change bus lost redis; serving from cache, replicas converge by catch-up until it returns");
                }
            }
            Err(RecvError::Lagged(_)) => {}
            Err(RecvError::Closed) => return,
        }
    }
}

/// Pings the subscriber connection every [`PING_INTERVAL`]: an idle pub/sub
/// connection that silently stopped delivering (black-holed) is otherwise
/// never noticed. An unanswered PING marks the bus disconnected (health
/// NOT_SERVING) and forces a reconnect, after which `on_reconnect`
/// subscribes again and asks for a catch-up. Should the same connection
/// answer again instead, the bus is marked connected and a catch-up asked
/// for here (messages may have been lost meanwhile).
async fn keep_checking(
    subscriber: SubscriberClient,
    connected: watch::Sender<bool>,
    events: broadcast::Sender<BusEvent>,
) {
    let mut ticks = tokio::time::interval(PING_INTERVAL);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut marked_down = false;
    loop {
        ticks.tick().await;
        let answered = tokio::time::timeout(
            UNRESPONSIVE_TIMEOUT,
            subscriber.ping::<fred::types::Value>(None),
        )
        .await;
        if matches!(answered, Ok(Ok(_))) {
            if std::mem::take(&mut marked_down) && !connected.send_replace(true) {
                tracing::info!("redis answers again on the change bus");
                let _ = events.send(BusEvent::Lagged);
            }
            continue;
        }
        if !*connected.borrow() && !marked_down {
            // Down already (a connection error): reconnecting is fred's job.
            continue;
        }
        marked_down = true;
        if connected.send_replace(false) {
            tracing::warn!(
                timeout = ?UNRESPONSIVE_TIMEOUT,
                "redis did not answer a ping on the change bus; reconnecting, serving from cache meanwhile"
            );
        }
        let reconnect =
            tokio::time::timeout(UNRESPONSIVE_TIMEOUT * 3, subscriber.force_reconnection());
        if let Ok(Err(err)) = reconnect.await {
            tracing::debug!(error = %err, "forcing a redis reconnect");
        }
    }
}
