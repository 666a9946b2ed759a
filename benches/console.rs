//! The console's figures (docs/console.md, "Figures"), each against a
//! ceiling measured in the same run:
//!
//! - First page: headless Chromium loads the console on a server holding
//!   N flags (100,000 by default) until the first page of the flag list is
//!   drawn (`tests/console/first_page.mjs`): a first visit (new browser
//!   context, no cache) and a returning one (script and style cached).
//!   Ceiling: the same first page (ListFlags, 50 flags, total) asked over
//!   gRPC by a client already connected: the server's part of that time.
//! - Bytes of the first load, compressed as sent.
//! - Open pages: the server's resident memory for P open console pages
//!   (100 by default), each a gRPC-Web Watch stream from the listing's
//!   revision on its own HTTP/1.1 connection, as a browser holds it.
//!   Ceiling: the same number of Watch streams over gRPC (one HTTP/2
//!   connection), the cheapest way to follow changes.
//!
//! Run: `cargo bench --bench console` (needs `npm ci` in console/ and
//! tests/console, and Debian's chromium; `.ci/console` installs them).
//! Options after `--`: `--flags 100000 --pages 100`.

#[path = "support/database.rs"]
mod database;
#[path = "support/populate.rs"]
mod populate;
#[allow(dead_code)]
#[path = "support/process.rs"]
mod process;

use std::net::SocketAddr;
use std::process::Command;
use std::time::{Duration, Instant};

use clap::Parser;
use prost::Message;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use vexil::grpc::pb::{
    self, evaluation_service_client::EvaluationServiceClient,
    flag_service_client::FlagServiceClient,
};

use database::Db;
use process::{ServerProcess, free_port};

#[derive(Debug, Parser)]
struct Args {
    /// Flags on the server.
    #[arg(long, default_value_t = 100_000)]
    flags: usize,
    /// Console pages held open.
    #[arg(long, default_value_t = 100)]
    pages: usize,
    /// Cold loads of the page in the browser.
    #[arg(long, default_value_t = 5)]
    runs: usize,
    #[arg(long, hide = true)]
    bench: bool,
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// The first page as the console asks for it, over gRPC: median of 20.
async fn list_first_page(server: &ServerProcess) -> (f64, u64) {
    let mut client = FlagServiceClient::new(server.channel());
    let mut times = Vec::new();
    let mut revision = 0;
    for _ in 0..20 {
        let started = Instant::now();
        let page = client
            .list_flags(pb::ListFlagsRequest {
                limit: 50,
                ..Default::default()
            })
            .await
            .expect("list")
            .into_inner();
        times.push(started.elapsed().as_secs_f64() * 1e3);
        revision = page.revision;
    }
    (median(times), revision)
}

/// The first page in Chromium (`first_page.mjs`), medians of `runs`.
struct BrowserFigures {
    cold_ms: f64,
    warm_ms: f64,
    bytes: f64,
}

fn browser_first_page(console: SocketAddr, flags: usize, runs: usize) -> BrowserFigures {
    let root = env!("CARGO_MANIFEST_DIR");
    let output = Command::new("node")
        .arg(format!("{root}/tests/console/first_page.mjs"))
        .env("CONSOLE_URL", format!("http://{console}"))
        .env("EXPECT_FLAGS", flags.to_string())
        .env("RUNS", runs.to_string())
        .output()
        .expect("run node");
    assert!(
        output.status.success(),
        "first_page.mjs failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| serde_json::from_str(line).ok())
        .collect();
    let field = |mode: &str, name: &str| {
        median(
            lines
                .iter()
                .filter(|line| line["mode"] == mode)
                .filter_map(|line| line[name].as_f64())
                .collect(),
        )
    };
    BrowserFigures {
        cold_ms: field("cold", "first_page_ms"),
        warm_ms: field("warm", "first_page_ms"),
        bytes: field("cold", "bytes"),
    }
}

/// A console page's Watch: gRPC-Web over its own HTTP/1.1 connection,
/// open once the stream's first message (a heartbeat) has arrived.
async fn web_watch(console: SocketAddr, since: u64) -> TcpStream {
    let request = pb::WatchRequest {
        since_revision: Some(since),
        engine: vexil_engine::ENGINE,
        ..Default::default()
    }
    .encode_to_vec();
    let mut frame = vec![0u8];
    frame.extend_from_slice(&u32::try_from(request.len()).expect("small").to_be_bytes());
    frame.extend_from_slice(&request);
    let mut stream = TcpStream::connect(console).await.expect("connect");
    let head = format!(
        "POST /vexil.v1.EvaluationService/Watch HTTP/1.1\r\nhost: {console}\r\n\
         content-type: application/grpc-web+proto\r\nx-grpc-web: 1\r\n\
         content-length: {}\r\n\r\n",
        frame.len()
    );
    stream.write_all(head.as_bytes()).await.expect("write");
    stream.write_all(&frame).await.expect("write");
    let mut seen = Vec::new();
    let mut buffer = [0u8; 4096];
    while !seen.windows(4).any(|window| window == b"\r\n\r\n") || seen.len() < 200 {
        let read = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut buffer))
            .await
            .expect("the stream's first message in time")
            .expect("read");
        assert!(read > 0, "the Watch stream closed");
        seen.extend_from_slice(&buffer[..read]);
        if seen.windows(4).any(|window| window == b"\r\n\r\n") && seen.len() > 100 {
            break;
        }
    }
    assert!(
        seen.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&seen)
    );
    stream
}

/// Memory the server holds for `pages` gRPC-Web Watch streams, and for the
/// same number over gRPC (the ceiling), in bytes per stream.
async fn open_pages(
    server: &ServerProcess,
    console: SocketAddr,
    pages: usize,
    since: u64,
) -> (f64, f64) {
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = server.rss();
    let mut held = Vec::new();
    for _ in 0..pages {
        held.push(web_watch(console, since).await);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let web = server.rss().saturating_sub(before) as f64 / pages as f64;
    drop(held);
    tokio::time::sleep(Duration::from_millis(500)).await;

    let before = server.rss();
    let client = EvaluationServiceClient::new(server.channel());
    let mut streams = Vec::new();
    for _ in 0..pages {
        let mut stream = client
            .clone()
            .watch(pb::WatchRequest {
                since_revision: Some(since),
                engine: vexil_engine::ENGINE,
                ..Default::default()
            })
            .await
            .expect("watch")
            .into_inner();
        stream.message().await.expect("a message").expect("open");
        streams.push(stream);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let grpc = server.rss().saturating_sub(before) as f64 / pages as f64;
    (web, grpc)
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    let db = Db::create(None, "console").await;
    populate::populate(&db.url, args.flags, false).await;
    let console = free_port();
    let (server, _) = ServerProcess::start(
        &[
            ("DATABASE_URL", db.url.clone()),
            ("VEXIL_CONSOLE_LISTEN", console.to_string()),
        ],
        "",
    )
    .await;
    let rss_idle = server.rss();

    let (ceiling_ms, revision) = list_first_page(&server).await;
    let browser = browser_first_page(console, args.flags, args.runs);
    let (web, grpc) = open_pages(&server, console, args.pages, revision).await;

    println!("| figure | value | ceiling | ratio |");
    println!("|---|---|---|---|");
    for (visit, ms) in [
        ("first visit", browser.cold_ms),
        ("returning", browser.warm_ms),
    ] {
        println!(
            "| first page of {} flags in Chromium, {visit} (median of {}) | {ms:.0} ms | {ceiling_ms:.1} ms (ListFlags over gRPC) | {:.0} |",
            args.flags,
            args.runs,
            ms / ceiling_ms
        );
    }
    println!(
        "| first load, bytes on the wire | {:.0} KB | | |",
        browser.bytes / 1e3
    );
    println!(
        "| server memory per open console page ({} pages) | {:.1} KiB | {:.1} KiB (Watch over gRPC) | {:.1} |",
        args.pages,
        web / 1024.0,
        grpc / 1024.0,
        web / grpc.max(1.0)
    );
    println!(
        "| server resident memory with {} flags, idle | {:.0} MiB | | |",
        args.flags,
        rss_idle as f64 / (1024.0 * 1024.0)
    );
}
