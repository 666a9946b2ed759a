//! A connection whose small writes are sent together once the runtime has
//! run the tasks that were ready.
//!
//! HTTP/2 serves each stream from a task of its own. When one change wakes
//! thousands of Watch streams, every stream's task hands its frame to the
//! connection and wakes it, and tokio runs the woken connection next: left
//! alone, the connection makes one `write` per message or two. Here a small
//! write is kept and a flush waits until the worker has nothing else ready
//! (or reaches its next I/O poll, every `event_interval` tasks), so the
//! frames of all the streams that ran meanwhile leave in one `write`. An
//! idle server flushes at once: the worker parks, which fires the wait.
//! Large writes (snapshots, big flags) are not copied: what is kept is sent
//! first, then they go straight to the socket.

use std::io::{self, IoSlice};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker, ready};

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Writes up to this size are kept to be sent together.
const KEEP_AT_MOST: usize = 4 * 1024;
/// What is kept is sent once it reaches this size, without waiting.
const SEND_AT: usize = 64 * 1024;

pub struct BatchedWrites<T> {
    inner: T,
    kept: BytesMut,
    /// Armed when a flush found bytes kept: fires once the worker has run
    /// what was ready.
    ready_to_send: Option<Arc<Idle>>,
}

impl<T> BatchedWrites<T> {
    pub fn new(inner: T) -> Self {
        Self {
            inner,
            kept: BytesMut::new(),
            ready_to_send: None,
        }
    }

    pub fn get_ref(&self) -> &T {
        &self.inner
    }
}

/// Fired by tokio's deferred wake-ups: those run when the worker parks or
/// polls for I/O, after the tasks that were ready.
struct Idle {
    fired: AtomicBool,
    flusher: Mutex<Option<Waker>>,
}

impl Idle {
    /// Arms a wait that wakes `flusher` when it fires.
    fn arm(flusher: &Waker) -> Arc<Self> {
        let idle = Arc::new(Self {
            fired: AtomicBool::new(false),
            flusher: Mutex::new(Some(flusher.clone())),
        });
        // tokio defers a yield's wake-up to the worker's next park or I/O
        // poll; outside a runtime it wakes at once.
        let waker = Waker::from(idle.clone());
        let mut yielding = std::pin::pin!(tokio::task::yield_now());
        let _ = yielding.as_mut().poll(&mut Context::from_waker(&waker));
        idle
    }

    /// Whether it fired; if not, `flusher` is woken when it does.
    fn fired(&self, flusher: &Waker) -> bool {
        if self.fired.load(Ordering::SeqCst) {
            return true;
        }
        if let Ok(mut waiting) = self.flusher.lock() {
            waiting.replace(flusher.clone());
        }
        self.fired.load(Ordering::SeqCst)
    }
}

impl Wake for Idle {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.fired.store(true, Ordering::SeqCst);
        let flusher = self
            .flusher
            .lock()
            .ok()
            .and_then(|mut waiting| waiting.take());
        if let Some(flusher) = flusher {
            flusher.wake();
        }
    }
}

impl<T: AsyncWrite + Unpin> BatchedWrites<T> {
    /// Sends everything kept.
    fn poll_send_kept(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while !self.kept.is_empty() {
            let sent = ready!(Pin::new(&mut self.inner).poll_write(cx, &self.kept))?;
            if sent == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.kept.advance(sent);
        }
        self.ready_to_send = None;
        Poll::Ready(Ok(()))
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for BatchedWrites<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.poll_write_vectored(cx, &[IoSlice::new(buf)])
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let len: usize = bufs.iter().map(|buf| buf.len()).sum();
        if len > KEEP_AT_MOST {
            ready!(this.poll_send_kept(cx))?;
            return Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        }
        if this.kept.len() + len > SEND_AT {
            ready!(this.poll_send_kept(cx))?;
        }
        for buf in bufs {
            this.kept.extend_from_slice(buf);
        }
        Poll::Ready(Ok(len))
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if !this.kept.is_empty() {
            match &this.ready_to_send {
                None => {
                    this.ready_to_send = Some(Idle::arm(cx.waker()));
                    return Poll::Pending;
                }
                Some(idle) if !idle.fired(cx.waker()) => return Poll::Pending,
                Some(_) => ready!(this.poll_send_kept(cx))?,
            }
        }
        Pin::new(&mut this.inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_send_kept(cx))?;
        Pin::new(&mut this.inner).poll_shutdown(cx)
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for BatchedWrites<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl<T: tonic::transport::server::Connected> tonic::transport::server::Connected
    for BatchedWrites<T>
{
    type ConnectInfo = T::ConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.inner.connect_info()
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    /// Small and large writes, flushed, arrive whole and in order.
    async fn sends_everything_in_order() {
        let (near, mut far) = tokio::io::duplex(1 << 20);
        let mut connection = BatchedWrites::new(near);
        let large = vec![7u8; KEEP_AT_MOST + 1];
        let mut expected = Vec::new();
        for (i, piece) in [&b"one"[..], b"two", &large, b"three"].iter().enumerate() {
            connection.write_all(piece).await.expect("write");
            expected.extend_from_slice(piece);
            if i == 1 {
                let written = connection
                    .write_vectored(&[IoSlice::new(b"-"), IoSlice::new(b"+")])
                    .await
                    .expect("write");
                assert_eq!(written, 2);
                expected.extend_from_slice(b"-+");
            }
        }
        connection.flush().await.expect("flush");
        assert!(connection.kept.is_empty());
        let mut received = vec![0; expected.len()];
        far.read_exact(&mut received).await.expect("read");
        assert_eq!(received, expected);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_flush_sends_what_was_kept_on_a_worker() {
        tokio::spawn(sends_everything_in_order())
            .await
            .expect("task");
    }

    #[tokio::test]
    async fn a_flush_sends_what_was_kept_on_one_thread() {
        sends_everything_in_order().await;
    }

    /// Records each write it is given.
    #[derive(Default)]
    struct Recorder {
        writes: Vec<Vec<u8>>,
    }

    impl AsyncWrite for Recorder {
        fn poll_write(
            self: Pin<&mut Self>,
            _cx: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<io::Result<usize>> {
            self.get_mut().writes.push(buf.to_vec());
            Poll::Ready(Ok(buf.len()))
        }

        fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }

        fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    /// What a connection does per stream: write a frame, try to flush.
    /// Flushes before the worker runs out of ready work all wait, and
    /// everything leaves in one write.
    #[tokio::test]
    async fn frames_flushed_while_work_is_ready_leave_in_one_write() {
        let mut connection = BatchedWrites::new(Recorder::default());
        std::future::poll_fn(|cx| {
            let mut connection = Pin::new(&mut connection);
            for frame in [&b"a"[..], b"bb", b"ccc"] {
                assert!(matches!(
                    connection.as_mut().poll_write(cx, frame),
                    Poll::Ready(Ok(_))
                ));
                assert!(connection.as_mut().poll_flush(cx).is_pending());
            }
            Poll::Ready(())
        })
        .await;
        assert!(connection.get_ref().writes.is_empty());
        connection.flush().await.expect("flush");
        assert_eq!(connection.get_ref().writes, vec![b"abbccc".to_vec()]);
    }

    #[test]
    fn a_flush_sends_what_was_kept_outside_a_runtime() {
        let (near, far) = tokio::io::duplex(1024);
        let mut connection = BatchedWrites::new(near);
        let waker = Waker::noop();
        let mut cx = Context::from_waker(waker);
        let mut write = Pin::new(&mut connection);
        assert!(matches!(
            write.as_mut().poll_write(&mut cx, b"kept"),
            Poll::Ready(Ok(4))
        ));
        // Outside a runtime the wait fires at once: the next poll sends.
        let _ = write.as_mut().poll_flush(&mut cx);
        assert!(matches!(
            write.as_mut().poll_flush(&mut cx),
            Poll::Ready(Ok(()))
        ));
        drop(connection);
        let mut far = far;
        let mut received = Vec::new();
        futures_read_to_end(&mut far, &mut received);
        assert_eq!(received, b"kept");
    }

    /// Reads what a closed duplex holds, without a runtime.
    fn futures_read_to_end(far: &mut tokio::io::DuplexStream, into: &mut Vec<u8>) {
        let mut cx = Context::from_waker(Waker::noop());
        let mut buf = [0u8; 64];
        loop {
            let mut read = ReadBuf::new(&mut buf);
            match Pin::new(&mut *far).poll_read(&mut cx, &mut read) {
                Poll::Ready(Ok(())) if read.filled().is_empty() => return,
                Poll::Ready(Ok(())) => into.extend_from_slice(read.filled()),
                other => panic!("read: {other:?}"),
            }
        }
    }
}
