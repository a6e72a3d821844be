//! Startup wiring: open the store, build the service, start the simulator, serve HTTP until a
//! shutdown signal.

use std::sync::Arc;

use anyhow::Context;
use jobd_api::{ApiConfig, AppState, StaticCredentials};
use jobd_service::maintenance::{self, MaintenanceConfig};
use jobd_service::{JobService, SystemClock};
use jobd_store::SqliteStore;
use jobd_worker::Simulator;
use tokio::net::TcpListener;

use crate::config::ServerConfig;

/// A started server: its address and the service behind it.
pub struct RunningServer {
    pub local_addr: std::net::SocketAddr,
    pub service: JobService,
    pub task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

/// Opens everything and starts serving on `listener` in the background.
pub async fn start(config: &ServerConfig, listener: TcpListener) -> anyhow::Result<RunningServer> {
    let store = SqliteStore::open(&config.data_dir)
        .await
        .with_context(|| format!("opening the store in {}", config.data_dir.display()))?;
    let service = JobService::new(Arc::new(store), Arc::new(SystemClock));
    Simulator::new(service.clone()).spawn();
    maintenance::spawn(
        service.clone(),
        MaintenanceConfig { retention: config.retention, ..MaintenanceConfig::default() },
    );
    let credentials = match &config.root {
        Some(root) => StaticCredentials::with_root(&root.access_key, &root.secret_key),
        None => {
            tracing::warn!("JOBD_ROOT_ACCESS_KEY / JOBD_ROOT_SECRET_KEY are not set: every API call will be refused");
            StaticCredentials::default()
        }
    };
    let state = AppState {
        service: service.clone(),
        credentials: Arc::new(credentials),
        config: Arc::new(ApiConfig { max_body_bytes: config.max_body_bytes, ..ApiConfig::default() }),
    };
    let app = jobd_api::app(state);
    let local_addr = listener.local_addr()?;
    let task = tokio::spawn(async move {
        axum::serve(listener, app).with_graceful_shutdown(shutdown_signal()).await.context("serving HTTP")
    });
    Ok(RunningServer { local_addr, service, task })
}

pub async fn serve(config: ServerConfig) -> anyhow::Result<()> {
    let listener = TcpListener::bind(config.listen).await.with_context(|| format!("binding {}", config.listen))?;
    let server = start(&config, listener).await?;
    tracing::info!(address = %server.local_addr, data_dir = %config.data_dir.display(), "jobd listening");
    server.task.await?
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = terminate => {},
    }
    tracing::info!("shutting down");
}
