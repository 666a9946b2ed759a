//! `vexil import` and `vexil export` at scale, each against a ceiling
//! measured in the same run (docs/cli.md, "Figures").
//!
//! Import: N flags (10,000 by default) from one file into an empty server,
//! the CLI as users run it; the ceiling is the same N flags sent as
//! CreateFlag calls by one client in sequence (the store's single-writer
//! rate through the API: import sends one audited change at a time too).
//! Then the same file again (nothing to change).
//!
//! Export: M flags (10,000 and 100,000 by default) written straight into
//! the database; `vexil export` to a pipe, with the export process's peak
//! memory; the ceiling is the same flags read by ListFlags pages of 1,000
//! from one client (what export fetches, without building the document).
//!
//! Every server is the `vexil` binary in its own process, management
//! limits raised. Run: `cargo bench --bench cli` (SQLite); with
//! `VEXIL_BENCH_DATABASE_URL=postgres://postgres@127.0.0.1:5432/test`, on
//! PostgreSQL too. Options after `--`: `--import 10000`, `--export
//! 10000,100000`.

#[path = "support/database.rs"]
mod database;
#[path = "support/populate.rs"]
mod populate;
#[allow(dead_code)]
#[path = "support/process.rs"]
mod process;

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use clap::Parser;
use vexil::grpc::pb::{self, flag_service_client::FlagServiceClient};

use database::Db;
use process::ServerProcess;

#[derive(Debug, Parser)]
struct Args {
    /// Flags in the imported file.
    #[arg(long, default_value_t = 10_000)]
    import: usize,
    /// Flag counts to export.
    #[arg(long, value_delimiter = ',', default_value = "10000,100000")]
    export: Vec<usize>,
    #[arg(long, hide = true)]
    bench: bool,
}

/// Flag `i` of the benchmark: a boolean rollout with a description and
/// two tags, as a document entry and as the API's message.
fn entry(i: usize) -> (serde_json::Value, pb::Flag) {
    let name = format!("bench.flag-{i:06}");
    let description = format!("benchmark flag {i}");
    let tags = vec![format!("team-{}", i % 20), "bench".to_string()];
    let percentage = (i % 101) as f64;
    let enabled = !i.is_multiple_of(3);
    let json = serde_json::json!({
        "name": name, "description": description, "enabled": enabled,
        "percentage": percentage, "tags": tags,
    });
    let message = pb::Flag {
        name,
        description,
        enabled,
        percentage,
        tags,
        ..pb::Flag::default()
    };
    (json, message)
}

async fn start(url: &str) -> ServerProcess {
    ServerProcess::start(&[("DATABASE_URL", url.to_string())], "")
        .await
        .0
}

/// Runs `vexil ARGS` against `server`; its time, its standard output's
/// size, and its peak resident memory (sampled every millisecond from
/// /proc while it runs; the output is drained as it comes).
fn vexil(server: &ServerProcess, args: &[&str]) -> (Duration, usize, u64) {
    let started = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_vexil"))
        .args(args)
        .env("VEXIL_ADDR", format!("http://{}", server.address))
        .env_remove("VEXIL_TOKEN")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("run vexil");
    let status_path = format!("/proc/{}/status", child.id());
    let mut stdout = child.stdout.take().expect("stdout");
    let reader = std::thread::spawn(move || {
        let mut bytes = Vec::new();
        stdout.read_to_end(&mut bytes).map(|_| bytes.len())
    });
    let mut peak_kb = 0u64;
    loop {
        if let Some(kb) = std::fs::read_to_string(&status_path)
            .ok()
            .and_then(|status| {
                status
                    .lines()
                    .find(|line| line.starts_with("VmHWM:"))
                    .and_then(|line| line.split_whitespace().nth(1)?.parse().ok())
            })
        {
            peak_kb = peak_kb.max(kb);
        }
        if let Some(status) = child.try_wait().expect("wait") {
            assert!(status.success(), "vexil {args:?} failed: {status}");
            break;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    let bytes = reader.join().expect("reader").expect("read stdout");
    (started.elapsed(), bytes, peak_kb * 1024)
}

async fn import(backend: &str, postgres: Option<&str>, count: usize) {
    let entries: Vec<(serde_json::Value, pb::Flag)> = (0..count).map(entry).collect();

    // Ceiling: one client, CreateFlag after CreateFlag.
    let db = Db::create(postgres, "cli-ceiling").await;
    let server = start(&db.url).await;
    let mut client = FlagServiceClient::new(server.channel());
    let started = Instant::now();
    for (_, flag) in &entries {
        client
            .create_flag(pb::CreateFlagRequest {
                flag: Some(flag.clone()),
                reason: "ceiling".into(),
            })
            .await
            .expect("create");
    }
    let ceiling = started.elapsed();
    drop(server);

    let db = Db::create(postgres, "cli-import").await;
    let server = start(&db.url).await;
    let scratch = std::env::temp_dir().join(format!("vexil-bench-cli-{}.json", std::process::id()));
    let document = serde_json::json!({
        "schema": "vexil.flags/v1",
        "flags": entries.iter().map(|(json, _)| json.clone()).collect::<Vec<_>>(),
    });
    std::fs::write(&scratch, document.to_string()).expect("write the file");
    let file = scratch.to_str().expect("utf-8");
    let (first, _, first_rss) = vexil(&server, &["import", file, "--reason", "bench"]);
    let (second, _, _) = vexil(&server, &["import", file, "--reason", "bench"]);
    let _ = std::fs::remove_file(&scratch);
    let rate = |elapsed: Duration| count as f64 / elapsed.as_secs_f64();
    println!(
        "| {backend} | {count} | {:.1} | {:.0} | {:.0} | {:.2} | {:.2} | {:.0} |",
        first.as_secs_f64(),
        rate(first),
        rate(ceiling),
        rate(first) / rate(ceiling),
        second.as_secs_f64(),
        first_rss as f64 / (1024.0 * 1024.0),
    );
}

async fn export(backend: &str, postgres: Option<&str>, count: usize) {
    let db = Db::create(postgres, "cli-export").await;
    populate::populate(&db.url, count, false).await;
    let server = start(&db.url).await;

    // Ceiling: every flag through ListFlags pages of 1,000, nothing built.
    let mut client = FlagServiceClient::new(server.channel());
    let started = Instant::now();
    let mut listed = 0usize;
    loop {
        let page = client
            .list_flags(pb::ListFlagsRequest {
                skip: u32::try_from(listed).unwrap_or(u32::MAX),
                limit: 1000,
                ..Default::default()
            })
            .await
            .expect("list")
            .into_inner();
        listed += page.flags.len();
        if page.flags.is_empty() || listed >= page.total as usize {
            break;
        }
    }
    let ceiling = started.elapsed();
    assert_eq!(listed, count);

    let (took, bytes, rss) = vexil(&server, &["export"]);
    println!(
        "| {backend} | {count} | {:.2} | {:.2} | {:.2} | {:.1} | {:.0} |",
        took.as_secs_f64(),
        ceiling.as_secs_f64(),
        took.as_secs_f64() / ceiling.as_secs_f64(),
        bytes as f64 / 1e6,
        rss as f64 / (1024.0 * 1024.0),
    );
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    let postgres = std::env::var("VEXIL_BENCH_DATABASE_URL").ok();
    let mut backends = vec![("sqlite", None)];
    if let Some(url) = postgres.as_deref() {
        backends.push(("postgres", Some(url)));
    }
    println!(
        "| backend | flags imported | import s | writes/s | ceiling writes/s | ratio | again (no change) s | CLI peak MiB |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for (backend, url) in &backends {
        import(backend, *url, args.import).await;
    }
    println!();
    println!(
        "| backend | flags exported | export s | ListFlags ceiling s | ratio | MB written | CLI peak MiB |"
    );
    println!("|---|---|---|---|---|---|---|");
    for (backend, url) in &backends {
        for count in &args.export {
            export(backend, *url, *count).await;
        }
    }
}
