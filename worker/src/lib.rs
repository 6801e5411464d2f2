//! The job side of nve: database connections, media storage, job records and dispatch, the
//! worker runtime, job handlers, webhooks. Shared by `nve serve` (embedded) and `nve-worker`.

pub mod child;
pub mod db;
pub mod derive;
pub mod dispatch;
pub mod events;
pub mod handlers;
pub mod import;
pub mod ingest;
pub mod isolate;
pub mod jobs;
pub mod metrics;
pub mod netguard;
pub mod readiness;
pub mod render;
pub mod runtime;
pub mod storage;
#[cfg(feature = "test-support")]
pub mod testing;
pub mod webhooks;

/// One error type for the crate; the API maps it to problems at its edge.
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    #[error("database: {0}")]
    Database(#[from] sea_orm::DbErr),
    #[error("storage at {path}: {source}")]
    Storage {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("queue backend: {0}")]
    Queue(String),
}

/// Installs ring as rustls' process-wide crypto provider (outbound HTTPS: webhooks). Call once
/// at start; later calls are no-ops.
pub fn install_tls_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}
