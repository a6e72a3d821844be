//! Startup wiring: open the store, build the service, start the simulator, serve HTTP until a
//! shutdown signal.

use std::sync::Arc;

use anyhow::Context;
use jobd_api::{ApiConfig, AppState};
use jobd_auth::secrets::MasterKey;
use jobd_service::identity::{IdentityConfig, IdentityService, RootKey};
use jobd_service::maintenance::{self, MaintenanceConfig};
use jobd_service::{JobService, Simulator, SystemClock};
use jobd_store::{PgOptions, PgStore, SqliteStore, Store};
use tokio::net::TcpListener;

use crate::config::{ConfigError, ServerConfig};
use crate::http_server;

/// A started server: its address and the service behind it.
pub struct RunningServer {
    pub local_addr: std::net::SocketAddr,
    pub service: JobService,
    pub identity: IdentityService,
    pub task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

/// Opens everything and starts serving on `listener` in the background.
pub async fn start(config: &ServerConfig, listener: TcpListener) -> anyhow::Result<RunningServer> {
    let store: Arc<dyn Store> = match &config.database {
        Some(database) => {
            let options = PgOptions {
                max_connections: database.max_connections,
                statement_timeout: Some(database.statement_timeout),
                ..PgOptions::default()
            };
            let store = PgStore::connect(database.url.expose(), options).await.context("connecting to PostgreSQL")?;
            tracing::info!("job store: PostgreSQL");
            Arc::new(store)
        }
        None => {
            let store = SqliteStore::open(&config.data_dir)
                .await
                .with_context(|| format!("opening the store in {}", config.data_dir.display()))?;
            Arc::new(store)
        }
    };
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("creating the data directory {}", config.data_dir.display()))?;
    jobd_service::metric_labels::set_max_values(config.metrics_max_label_values);
    let clock = Arc::new(SystemClock);
    let mut service = JobService::new(store.clone(), clock.clone());
    if config.database.is_some() {
        // Other nodes' changes arrive by LISTEN/NOTIFY; a re-read bounds how late they are seen
        // should a notification be lost (the listener reconnecting).
        service = service.with_poll_fallback(std::time::Duration::from_secs(2));
        service.follow_other_nodes();
    }
    let master_key = load_master_key(config)?;
    if config.root.is_none() {
        tracing::warn!(
            "JOBD_ROOT_ACCESS_KEY / JOBD_ROOT_SECRET_KEY are not set: only stored credentials and tokens work"
        );
    }
    let root = config
        .root
        .as_ref()
        .map(|root| RootKey { access_key: root.access_key.clone(), secret_key: root.secret_key.expose().to_owned() });
    let identity_config = IdentityConfig {
        token_ttl: config.token_ttl,
        rate_limit_per_second: config.rate_limit_per_second,
        failed_auth_per_second: config.failed_auth_per_second,
        password_attempts_per_minute: config.password_attempts_per_minute,
        ..IdentityConfig::default()
    };
    let identity = IdentityService::new(store, clock, master_key, root, identity_config);
    Simulator::new(service.clone()).spawn();
    maintenance::spawn(
        service.clone(),
        Some(identity.clone()),
        MaintenanceConfig { retention: config.retention, ..MaintenanceConfig::default() },
    );
    let state = AppState::new(
        service.clone(),
        identity.clone(),
        ApiConfig {
            max_body_bytes: config.max_body_bytes,
            body_read_timeout: config.body_read_timeout,
            max_in_flight: config.max_in_flight,
            region: config.region.clone(),
            ..ApiConfig::default()
        },
    );
    let file_limit = http_server::raise_file_descriptor_limit();
    let max_connections = http_server::fit_connection_cap(config.connections.max_connections, file_limit);
    if max_connections < config.connections.max_connections {
        tracing::warn!(
            configured = config.connections.max_connections,
            max_connections,
            open_file_limit = file_limit,
            "the open file limit holds fewer connections than --max-connections: capped lower"
        );
    }
    let limits = http_server::ConnectionLimits { max_connections, ..config.connections };
    let app = jobd_api::app(state);
    let local_addr = listener.local_addr()?;
    let stopping = service.clone();
    let task = tokio::spawn(async move {
        let signal = async move {
            shutdown_signal().await;
            // End long polls, claim waits and event streams, so in-flight requests can finish.
            stopping.begin_shutdown();
        };
        http_server::serve(listener, app, jobd_api::overflow_app(), limits, signal).await.context("serving HTTP")
    });
    Ok(RunningServer { local_addr, service, identity, task })
}

/// The key that seals access-key secrets: `JOBD_MASTER_KEY`, or a key file created (0600) in the
/// data directory on first start.
fn load_master_key(config: &ServerConfig) -> anyhow::Result<MasterKey> {
    if let Some(material) = &config.master_key {
        return Ok(MasterKey::derive(material.expose().as_bytes()));
    }
    // Nodes sharing PostgreSQL must unseal each other's secrets: one key, given to all of them
    // (`ServeArgs::into_config` refuses the configuration before anything starts).
    if config.database.is_some() {
        return Err(ConfigError::MasterKeyRequired.into());
    }
    let path = config.data_dir.join(MASTER_KEY_FILE);
    match std::fs::read(&path) {
        Ok(material) => Ok(MasterKey::derive(&material)),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            let material = MasterKey::generate_material();
            let mut options = std::fs::OpenOptions::new();
            options.write(true).create_new(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
            let mut file = options.open(&path).with_context(|| format!("creating {}", path.display()))?;
            std::io::Write::write_all(&mut file, &material)?;
            file.sync_all()?;
            tracing::info!(path = %path.display(), "created a new master key file");
            Ok(MasterKey::derive(&material))
        }
        Err(error) => Err(error).with_context(|| format!("reading {}", path.display())),
    }
}

/// The master key file in the data directory.
pub const MASTER_KEY_FILE: &str = "master.key";

pub async fn serve(config: ServerConfig) -> anyhow::Result<()> {
    let listener = TcpListener::bind(config.listen).await.with_context(|| format!("binding {}", config.listen))?;
    let server = start(&config, listener).await?;
    tracing::info!(address = %server.local_addr, data_dir = %config.data_dir.display(), "jobd listening");
    // One machine-readable line, so that a supervisor that asked for port 0 learns the port.
    println!("jobd listening on http://{}", server.local_addr);
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
