//! A Vexil server in its own process (the `vexil` binary cargo built with
//! this benchmark), so that its CPU time and memory are measured apart from
//! the benchmark's clients.

#[path = "cpu.rs"]
pub mod cpu;

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tonic::transport::{Channel, Endpoint};

pub struct ServerProcess {
    child: Child,
    pub address: SocketAddr,
}

impl ServerProcess {
    /// Starts `vexil serve` on a free loopback port with `env` on top of a
    /// benchmark configuration (no caller limits, metrics off), and waits
    /// until its health service answers SERVING for `health_service` ("" for
    /// the server as a whole). Returns it and the time to ready.
    pub async fn start(env: &[(&str, String)], health_service: &str) -> (Self, Duration) {
        let address = free_port();
        let started = Instant::now();
        let child = Command::new(env!("CARGO_BIN_EXE_vexil"))
            .env("VEXIL_LISTEN", address.to_string())
            .env("FF_ENABLE_METRICS", "false")
            .env("VEXIL_MANAGEMENT_RATE", "1000000")
            .env("VEXIL_MANAGEMENT_BURST", "1000000")
            .env("VEXIL_EVALUATION_RATE", "1000000000")
            .env("VEXIL_EVALUATION_BURST", "1000000000")
            .env("VEXIL_MAX_WATCH_STREAMS_PER_CALLER", "1000000")
            .env("RUST_LOG", "warn")
            .envs(env.iter().map(|(key, value)| (key, value)))
            .stdout(Stdio::null())
            .spawn()
            .expect("start the vexil binary");
        let server = Self { child, address };
        let mut health = tonic_health::pb::health_client::HealthClient::new(server.channel());
        for _ in 0..6000 {
            let request = tonic_health::pb::HealthCheckRequest {
                service: health_service.into(),
            };
            if let Ok(answer) = health.check(request).await
                && answer.into_inner().status == 1
            {
                return (server, started.elapsed());
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        panic!("the vexil process did not become ready");
    }

    /// A connection to the server (lazy; many streams share one).
    pub fn channel(&self) -> Channel {
        Endpoint::from_shared(format!("http://{}", self.address))
            .expect("endpoint")
            .tcp_nodelay(true)
            .connect_lazy()
    }

    /// CPU time the process has used so far (every thread, user and
    /// system).
    pub fn cpu_time(&self) -> Duration {
        cpu::threads_cpu(Path::new(&format!("/proc/{}/task", self.child.id())), "")
    }

    /// Resident memory now, in bytes.
    pub fn rss(&self) -> u64 {
        self.status_kb("VmRSS:") * 1024
    }

    /// The highest resident memory since the last `reset_peak_rss`.
    pub fn peak_rss(&self) -> u64 {
        self.status_kb("VmHWM:") * 1024
    }

    /// Starts a new peak (Linux: writing 5 to clear_refs).
    pub fn reset_peak_rss(&self) {
        let _ = std::fs::write(format!("/proc/{}/clear_refs", self.child.id()), "5");
    }

    fn status_kb(&self, field: &str) -> u64 {
        std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .ok()
            .and_then(|status| {
                status
                    .lines()
                    .find(|line| line.starts_with(field))
                    .and_then(|line| line.split_whitespace().nth(1))
                    .and_then(|kb| kb.parse().ok())
            })
            .unwrap_or_default()
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A loopback address no one listens on (for the server's other ports).
pub fn free_port() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
}
