//! The accept loop and connections, on hyper directly (instead of `axum::serve`) so that a fault
//! can reset a connection without sending a response, which an axum handler cannot express.
//! Every response gets an `X-Request-Id`; the admin API answers loopback peers only.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::HeaderValue;
use axum::response::Response;
use bytes::Bytes;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use tokio::task::JoinSet;
use tower_service::Service as _;

use crate::model::random_hex32;

/// The request id of the current request, also sent as `X-Request-Id`.
#[derive(Clone)]
pub(super) struct RequestId(pub String);

/// Lets a handler drop its connection without a response.
#[derive(Clone)]
pub(super) struct ConnControl {
    kill: Arc<Notify>,
    reset: Arc<AtomicBool>,
}

impl ConnControl {
    /// Closes the connection with an RST as soon as the handler yields; the handler's future is
    /// dropped with it.
    pub(super) fn reset(&self) {
        self.reset.store(true, Ordering::Relaxed);
        self.kill.notify_one();
    }
}

/// Accepts connections until the task is aborted (dropping the `JoinSet` aborts every connection).
pub(crate) async fn serve(listener: TcpListener, router: Router) {
    let mut conns = JoinSet::new();
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                // EMFILE and friends: back off briefly instead of spinning.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            }
        };
        while conns.try_join_next().is_some() {}
        let _ = stream.set_nodelay(true);
        let control = ConnControl {
            kill: Arc::new(Notify::new()),
            reset: Arc::new(AtomicBool::new(false)),
        };
        let io = KillableStream {
            inner: stream,
            reset: control.reset.clone(),
        };
        let router = router.clone();
        conns.spawn(serve_connection(io, peer, control, router));
    }
}

async fn serve_connection(
    io: KillableStream,
    peer: SocketAddr,
    control: ConnControl,
    router: Router,
) {
    let kill = control.kill.clone();
    let svc = hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
        let mut router = router.clone();
        let control = control.clone();
        async move {
            let rid = random_hex32();
            let mut req = req.map(Body::new);
            if req.uri().path().starts_with("/admin") && !peer.ip().is_loopback() {
                let mut resp = super::admin::local_only();
                set_request_id(&mut resp, &rid);
                return Ok::<_, Infallible>(resp);
            }
            req.extensions_mut().insert(RequestId(rid.clone()));
            req.extensions_mut().insert(control);
            let mut resp = match router.call(req).await {
                Ok(r) => r,
                Err(never) => match never {},
            };
            set_request_id(&mut resp, &rid);
            Ok(resp)
        }
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .keep_alive(true)
        .serve_connection(TokioIo::new(io), svc);
    tokio::select! {
        res = conn => {
            if let Err(e) = res {
                tracing::debug!(error = %e, "connection ended with an error");
            }
        }
        // Dropping `conn` drops the socket; KillableStream turns that into an RST.
        () = kill.notified() => {}
    }
}

fn set_request_id(resp: &mut Response, rid: &str) {
    if let Ok(v) = HeaderValue::from_str(rid) {
        resp.headers_mut().insert("x-request-id", v);
    }
}

/// A TCP stream that, once marked for reset, closes with SO_LINGER=0 (an RST) so the client sees
/// "connection reset" rather than a clean EOF. Normal connections close gracefully.
struct KillableStream {
    inner: TcpStream,
    reset: Arc<AtomicBool>,
}

impl Drop for KillableStream {
    fn drop(&mut self) {
        if self.reset.load(Ordering::Relaxed) {
            let _ = self.inner.set_zero_linger();
        }
    }
}

impl AsyncRead for KillableStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for KillableStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// A body of unknown length (no size hint), so hyper trusts our `Content-Length` header even when
/// it lies; hyper then aborts the connection when the body ends early. The pause before the end
/// lets hyper flush the partial body first, so the client sees headers and a short body rather
/// than nothing.
pub(super) struct UnsizedBody {
    chunk: Option<Bytes>,
    pause: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl UnsizedBody {
    pub(super) fn new(chunk: Bytes) -> Self {
        Self {
            chunk: Some(chunk),
            pause: Some(Box::pin(tokio::time::sleep(Duration::from_millis(50)))),
        }
    }
}

impl http_body::Body for UnsizedBody {
    type Data = Bytes;
    type Error = Infallible;
    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, Infallible>>> {
        if let Some(chunk) = self.chunk.take() {
            return Poll::Ready(Some(Ok(http_body::Frame::data(chunk))));
        }
        if let Some(pause) = self.pause.as_mut() {
            if pause.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            self.pause = None;
        }
        Poll::Ready(None)
    }
}
