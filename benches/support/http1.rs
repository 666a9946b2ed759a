//! A keep-alive HTTP/1.1 client for one connection, as small as a load
//! generator's (wrk's) needs: POST a body, read the status and a
//! `Content-Length` body. Enough for OFREP's JSON answers.

use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

pub struct Connection {
    stream: TcpStream,
    /// Bytes read past the previous response (none with one request in
    /// flight, but kept rather than assumed).
    buffer: Vec<u8>,
}

pub struct Answer {
    pub status: u16,
    pub body: Vec<u8>,
}

impl Connection {
    pub async fn open(address: SocketAddr) -> Self {
        let stream = TcpStream::connect(address).await.expect("connect");
        stream.set_nodelay(true).expect("nodelay");
        Self {
            stream,
            buffer: Vec::with_capacity(16 * 1024),
        }
    }

    /// POSTs `body` as JSON to `path` and reads the whole answer.
    pub async fn post_json(&mut self, path: &str, body: &[u8]) -> Answer {
        let mut request = Vec::with_capacity(128 + body.len());
        request.extend_from_slice(
            format!(
                "POST {path} HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
                body.len()
            )
            .as_bytes(),
        );
        request.extend_from_slice(body);
        self.stream.write_all(&request).await.expect("send");
        let head_end = loop {
            if let Some(end) = find(&self.buffer, b"\r\n\r\n") {
                break end + 4;
            }
            self.fill().await;
        };
        let head = std::str::from_utf8(&self.buffer[..head_end]).expect("an ASCII head");
        let status = head
            .split(' ')
            .nth(1)
            .and_then(|code| code.parse().ok())
            .expect("a status line");
        let length: usize = head
            .lines()
            .find_map(|line| {
                let (name, value) = line.split_once(':')?;
                name.eq_ignore_ascii_case("content-length")
                    .then(|| value.trim().parse().ok())?
            })
            .expect("a Content-Length");
        while self.buffer.len() < head_end + length {
            self.fill().await;
        }
        let body = self.buffer[head_end..head_end + length].to_vec();
        self.buffer.drain(..head_end + length);
        Answer { status, body }
    }

    async fn fill(&mut self) {
        let mut chunk = [0u8; 16 * 1024];
        let read = self.stream.read(&mut chunk).await.expect("receive");
        assert!(read > 0, "the server closed the connection");
        self.buffer.extend_from_slice(&chunk[..read]);
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}
