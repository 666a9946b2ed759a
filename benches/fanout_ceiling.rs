//! Fan-out ceiling: what one change reaching N Watch subscribers costs when
//! nothing but HTTP/2 stands between the change and the subscribers, on the
//! same machine, with the same tonic clients as `propagation`'s fan-out.
//!
//! The server here is the bare `h2` crate (no hyper, no tonic, no Vexil). It
//! answers every stream with a pre-encoded snapshot, then sends each change
//! as one pre-encoded gRPC frame (a real Vexil change message) to every
//! stream, in one of two ways:
//!
//! - `connection loop`: one task per connection writes the frame to all of
//!   its streams in a loop, so h2 batches a connection's frames into few
//!   writes. No gRPC server on hyper works this way; it is the floor for any
//!   design.
//! - `stream tasks`: one task per stream, woken by a watch channel, writes
//!   its frame: the shape of hyper's server (a task per stream) and of
//!   Vexil's Watch, without either's own work.
//! - `stream tasks, batched writes`: the same over Vexil's `BatchedWrites`
//!   connection, as Vexil serves.
//!
//! Both report the time until the last subscriber has the change, the
//! server threads' CPU time and the clients' CPU time. Server and clients
//! run on separate runtimes (threads named `ceiling-server`/`ceiling-client`)
//! and share the machine's cores, as in `propagation`.
//!
//! Run: `cargo bench --bench fanout_ceiling`. Options after `--`:
//! `--connections 16`, `--fanouts 1000,10000`, `--rounds 5`.

#[path = "support/arrival.rs"]
mod arrival;
#[path = "support/cpu.rs"]
mod cpu;

use std::path::Path;
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use clap::Parser;
use prost::Message;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tonic::transport::{Channel, Endpoint};
use vexil::grpc::{BatchedWrites, pb};

use arrival::watch_light;

const FLAG: &str = "bench.propagation";
const SERVER_THREADS: &str = "ceiling-server";
const CLIENT_THREADS: &str = "ceiling-client";

#[derive(Debug, Parser)]
struct Args {
    /// HTTP/2 connections the subscribers share.
    #[arg(long, default_value_t = 16)]
    connections: usize,
    #[arg(long, value_delimiter = ',', default_value = "1000,10000")]
    fanouts: Vec<usize>,
    /// Changes per fan-out.
    #[arg(long, default_value_t = 5)]
    rounds: usize,
    #[arg(long, hide = true)]
    bench: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Writers {
    ConnectionLoop,
    StreamTasks,
    /// Per stream, over Vexil's `BatchedWrites` connection.
    BatchedStreamTasks,
}

impl Writers {
    fn name(self) -> &'static str {
        match self {
            Self::ConnectionLoop => "connection loop",
            Self::StreamTasks => "stream tasks",
            Self::BatchedStreamTasks => "stream tasks, batched writes",
        }
    }
}

/// `message` as one gRPC frame: not compressed, its length, its bytes.
fn frame(message: &pb::WatchResponse) -> Bytes {
    let mut frame = BytesMut::with_capacity(5 + message.encoded_len());
    frame.put_u8(0);
    frame.put_u32(message.encoded_len() as u32);
    message.encode_raw(&mut frame);
    frame.freeze()
}

fn snapshot_frame() -> Bytes {
    frame(&pb::WatchResponse {
        event: Some(pb::watch_response::Event::Snapshot(pb::WatchSnapshot {
            flags: Vec::new(),
            segments: Vec::new(),
            revision: 0,
            last: true,
        })),
    })
}

/// The message Vexil sends for `propagation`'s small flag.
fn change_frame(revision: u64) -> Bytes {
    frame(&pb::WatchResponse {
        event: Some(pb::watch_response::Event::Change(pb::FlagChange {
            revision,
            flag_name: FLAG.into(),
            kind: pb::ChangeKind::Upserted as i32,
            flag: Some(pb::Flag {
                name: FLAG.into(),
                enabled: true,
                percentage: (revision % 101) as f64,
                ..pb::Flag::default()
            }),
        })),
    })
}

async fn serve(listener: TcpListener, changes: watch::Receiver<Bytes>, writers: Writers) {
    while let Ok((tcp, _)) = listener.accept().await {
        let _ = tcp.set_nodelay(true);
        if writers == Writers::BatchedStreamTasks {
            tokio::spawn(connection(
                BatchedWrites::new(tcp),
                changes.clone(),
                writers,
            ));
        } else {
            tokio::spawn(connection(tcp, changes.clone(), writers));
        }
    }
}

async fn connection<T>(tcp: T, mut changes: watch::Receiver<Bytes>, writers: Writers)
where
    T: AsyncRead + AsyncWrite + Unpin,
{
    let Ok(mut connection) = h2::server::handshake(tcp).await else {
        return;
    };
    let snapshot = snapshot_frame();
    let mut streams = Vec::new();
    loop {
        tokio::select! {
            request = connection.accept() => {
                let Some(Ok((request, mut respond))) = request else { return };
                // Read the WatchRequest so its bytes return to the window.
                let mut body = request.into_body();
                tokio::spawn(async move {
                    while let Some(Ok(chunk)) = body.data().await {
                        let _ = body.flow_control().release_capacity(chunk.len());
                    }
                });
                let response = http::Response::builder()
                    .header("content-type", "application/grpc")
                    .body(())
                    .expect("response");
                let Ok(mut stream) = respond.send_response(response, false) else { continue };
                let _ = stream.send_data(snapshot.clone(), false);
                match writers {
                    Writers::ConnectionLoop => streams.push(stream),
                    Writers::StreamTasks | Writers::BatchedStreamTasks => {
                        let mut changes = changes.clone();
                        changes.mark_unchanged();
                        tokio::spawn(async move {
                            while changes.changed().await.is_ok() {
                                let change = changes.borrow_and_update().clone();
                                if stream.send_data(change, false).is_err() {
                                    return;
                                }
                            }
                        });
                    }
                }
            }
            changed = changes.changed(), if writers == Writers::ConnectionLoop => {
                if changed.is_err() {
                    return;
                }
                let change = changes.borrow_and_update().clone();
                for stream in &mut streams {
                    let _ = stream.send_data(change.clone(), false);
                }
            }
        }
    }
}

fn threads_cpu(prefix: &str) -> Duration {
    cpu::threads_cpu(Path::new("/proc/self/task"), prefix)
}

struct Round {
    delay: Duration,
    server_cpu: Duration,
    client_cpu: Duration,
}

async fn fan_out(args: &Args, writers: Writers, subscribers: usize) {
    let server = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name(SERVER_THREADS)
        .enable_all()
        .build()
        .expect("server runtime");
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.set_nonblocking(true).expect("non-blocking");
    let address = listener.local_addr().expect("address");
    let (publish, changes) = watch::channel(Bytes::new());
    server.spawn(async move {
        let listener = TcpListener::from_std(listener).expect("listener");
        serve(listener, changes, writers).await;
    });

    let channels: Vec<Channel> = (0..args.connections.max(1))
        .map(|_| {
            Endpoint::from_shared(format!("http://{address}"))
                .expect("endpoint")
                .tcp_nodelay(true)
                .connect_lazy()
        })
        .collect();
    let (arrived, mut arrivals) = mpsc::unbounded_channel::<(u64, Instant)>();
    let mut readers = Vec::with_capacity(subscribers);
    for i in 0..subscribers {
        let mut stream = watch_light(&channels[i % channels.len()], FLAG).await;
        let arrived = arrived.clone();
        readers.push(tokio::spawn(async move {
            while let Ok(Some(message)) = stream.message().await {
                if let Some(change) = message.change
                    && arrived.send((change.revision, Instant::now())).is_err()
                {
                    return;
                }
            }
        }));
    }
    let mut rounds = Vec::with_capacity(args.rounds);
    for revision in 1..=args.rounds as u64 {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let change = change_frame(revision);
        let server_cpu = threads_cpu(SERVER_THREADS);
        let client_cpu = threads_cpu(CLIENT_THREADS);
        let sent = Instant::now();
        publish.send_replace(change);
        let mut last = sent;
        let mut reached = 0;
        while reached < subscribers {
            let (arrived, at) = arrivals.recv().await.expect("a subscriber");
            assert_eq!(arrived, revision);
            reached += 1;
            last = last.max(at);
        }
        rounds.push(Round {
            delay: last - sent,
            server_cpu: threads_cpu(SERVER_THREADS).saturating_sub(server_cpu),
            client_cpu: threads_cpu(CLIENT_THREADS).saturating_sub(client_cpu),
        });
    }
    for reader in readers {
        reader.abort();
    }
    drop(channels);
    server.shutdown_background();

    let median = |mut values: Vec<Duration>| {
        values.sort();
        values[values.len() / 2]
    };
    let delays: Vec<Duration> = rounds.iter().map(|round| round.delay).collect();
    println!(
        "ceiling, {:>29}, {subscribers:>6} subscribers on {} connections: one change reaches all in median {} (min {}, max {}); server CPU {}, client CPU {} (medians over {} changes)",
        writers.name(),
        args.connections,
        ms(median(delays.clone())),
        ms(delays.iter().copied().min().unwrap_or_default()),
        ms(delays.iter().copied().max().unwrap_or_default()),
        ms(median(
            rounds.iter().map(|round| round.server_cpu).collect()
        )),
        ms(median(
            rounds.iter().map(|round| round.client_cpu).collect()
        )),
        rounds.len(),
    );
}

fn ms(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1e3)
}

fn main() {
    let args = Args::parse();
    let clients = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name(CLIENT_THREADS)
        .enable_all()
        .build()
        .expect("client runtime");
    for &subscribers in &args.fanouts {
        for writers in [
            Writers::ConnectionLoop,
            Writers::StreamTasks,
            Writers::BatchedStreamTasks,
        ] {
            clients.block_on(fan_out(&args, writers, subscribers));
        }
    }
}
