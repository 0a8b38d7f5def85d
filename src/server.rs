//! `/metrics`, `/healthz` and `/readyz` over HTTP, with bounded resources.
//!
//! The port is reachable by anything in the cluster that the NetworkPolicy lets in, so every connection is
//! bounded: at most [`MAX_CONNECTIONS`] at once (a new one beyond that is closed at once, so file
//! descriptors are never exhausted and the Secret reads and the cloud calls of the operator go on), request
//! headers must arrive within [`HEADER_READ_TIMEOUT`] (also while a kept-alive connection waits for its next
//! request), at most [`MAX_HEADER_BYTES`] of them, and a connection lives at most [`MAX_CONNECTION_AGE`]. A
//! probe or a scrape needs one short connection, so idle connections cannot keep `/healthz` from answering
//! for longer than the header timeout.

use std::{
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use axum::{Router, extract::State, http::StatusCode, response::IntoResponse, routing::get};
use hyper_util::{
    rt::{TokioIo, TokioTimer},
    service::TowerToHyperService,
};
use tokio::sync::Semaphore;

use crate::metrics::Metrics;

/// Most connections served at once; more are accepted and closed at once.
pub const MAX_CONNECTIONS: usize = 128;
/// Time a client has to send a request's headers, from the connection's start or the previous response.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest life of one connection, busy or idle (a scrape takes milliseconds).
pub const MAX_CONNECTION_AGE: Duration = Duration::from_secs(60);
/// Largest request head (request line and headers) read.
pub const MAX_HEADER_BYTES: usize = 16 * 1024;

#[derive(Clone)]
struct AppState {
    metrics: Arc<Metrics>,
    ready: Arc<AtomicBool>,
}

/// Binds `addr` and serves until the process ends. `ready` flips `/readyz` to 200 once the operator is
/// initialised (leader or standby: a standby is healthy and ready to take over).
pub async fn serve(
    addr: SocketAddr,
    metrics: Arc<Metrics>,
    ready: Arc<AtomicBool>,
) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    tracing::info!(address = %listener.local_addr()?, "serving /metrics, /healthz and /readyz");
    serve_limited(listener, router(metrics, ready), MAX_CONNECTIONS).await
}

/// The accept loop: one task per connection, within the limits above.
async fn serve_limited(
    listener: tokio::net::TcpListener,
    router: Router,
    max_connections: usize,
) -> std::io::Result<()> {
    let slots = Arc::new(Semaphore::new(max_connections));
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .max_buf_size(MAX_HEADER_BYTES.max(8192))
        .keep_alive(true);
    let mut refused: u64 = 0;
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of file descriptors and the like: wait a little instead of spinning.
                tracing::warn!(error = %e, "cannot accept a connection");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            refused += 1;
            if refused.is_power_of_two() {
                tracing::warn!(%peer, refused, max_connections, "too many connections to the metrics port; closing new ones");
            }
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let service = TowerToHyperService::new(router.clone());
        let connection = http.serve_connection(TokioIo::new(stream), service);
        tokio::spawn(async move {
            let _slot = slot;
            // Dropping the connection at its age limit closes the socket.
            if let Ok(Err(e)) = tokio::time::timeout(MAX_CONNECTION_AGE, connection).await {
                tracing::debug!(%peer, error = %e, "metrics connection ended");
            }
        });
    }
}

fn router(metrics: Arc<Metrics>, ready: Arc<AtomicBool>) -> Router {
    Router::new()
        .route("/metrics", get(metrics_handler))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .with_state(AppState { metrics, ready })
}

async fn metrics_handler(State(state): State<AppState>) -> impl IntoResponse {
    match state.metrics.encode() {
        Ok(body) => (
            StatusCode::OK,
            [(
                "content-type",
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            body,
        )
            .into_response(),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    if state.ready.load(Ordering::Relaxed) {
        (StatusCode::OK, "ok")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "starting")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    async fn get(addr: SocketAddr, path: &str) -> std::io::Result<String> {
        let mut stream = tokio::net::TcpStream::connect(addr).await?;
        stream
            .write_all(
                format!("GET {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n").as_bytes(),
            )
            .await?;
        let mut answer = String::new();
        stream.read_to_string(&mut answer).await?;
        Ok(answer)
    }

    #[tokio::test]
    async fn idle_connections_beyond_the_limit_are_closed_and_healthz_answers() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let router = router(Arc::new(Metrics::new()), Arc::new(AtomicBool::new(true)));
        let limit = 8;
        let server = tokio::spawn(serve_limited(listener, router, limit));
        // Hold every slot with idle connections, then some more.
        let mut idle = Vec::new();
        for _ in 0..limit * 3 {
            idle.push(tokio::net::TcpStream::connect(addr).await.expect("connect"));
        }
        // The ones beyond the limit are closed by the server at once: reading gives EOF.
        let mut closed = 0;
        for stream in idle.iter_mut().skip(limit) {
            let mut buf = [0u8; 1];
            if let Ok(Ok(0)) =
                tokio::time::timeout(Duration::from_secs(2), stream.read(&mut buf)).await
            {
                closed += 1;
            }
        }
        assert_eq!(closed, limit * 2, "connections beyond the limit are closed");
        // Within the header timeout, the idle ones are dropped too and /healthz answers again.
        let answered = tokio::time::timeout(HEADER_READ_TIMEOUT * 3, async {
            loop {
                if let Ok(answer) = get(addr, "/healthz").await
                    && answer.starts_with("HTTP/1.1 200")
                {
                    return answer;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
        .await
        .expect("/healthz answers while idle connections are held");
        assert!(answered.ends_with("ok"), "{answered}");
        server.abort();
    }
}
