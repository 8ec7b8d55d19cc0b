//! /metrics, /healthz and /readyz.

use std::{
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
};

use axum::{Router, extract::State, http::StatusCode, response::IntoResponse, routing::get};
use tokio::net::TcpListener;

use crate::{
    error::{Error, Result},
    metrics::Metrics,
};

#[derive(Clone)]
pub struct Health {
    pub metrics: Arc<Metrics>,
    /// True while the replica is a standby waiting for the lease, or leads and every cache of
    /// its current controller (the profiles' and each Flux kind's) is filled; false while a
    /// controller starts or restarts (a takeover, Flux's CRDs changed).
    pub ready: Arc<AtomicBool>,
}

/// Binds `--http-addr` before anything else starts: a port already in use ends the process at
/// once, with the address and the reason, instead of an operator running without health checks.
pub async fn bind(addr: SocketAddr) -> Result<TcpListener> {
    TcpListener::bind(addr).await.map_err(|e| {
        Error::Http(std::io::Error::new(
            e.kind(),
            format!("cannot listen on --http-addr {addr}: {e}"),
        ))
    })
}

pub async fn serve(
    listener: TcpListener,
    health: Health,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    let app = Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .with_state(health);
    let addr = listener.local_addr()?;
    tracing::info!(%addr, "serving /metrics, /healthz, /readyz");
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await?;
    Ok(())
}

async fn metrics(State(h): State<Health>) -> impl IntoResponse {
    (
        [(
            "content-type",
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        h.metrics.encode(),
    )
}

async fn readyz(State(h): State<Health>) -> impl IntoResponse {
    if h.ready.load(Ordering::Relaxed) {
        (StatusCode::OK, "ready")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "starting")
    }
}
