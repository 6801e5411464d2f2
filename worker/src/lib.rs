//! The job side of nve: database connections, media storage, queue backends and (from the
//! job-system work on) job handlers. Shared by `nve serve` (embedded) and `nve-worker`.

pub mod db;
pub mod isolate;
pub mod jobs;
pub mod readiness;
pub mod storage;
#[cfg(feature = "test-support")]
pub mod testing;

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
