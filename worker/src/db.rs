//! Database connections for both backends.

use std::time::Duration;

use nve_config::Config;
use sea_orm::{ConnectOptions, Database, DatabaseConnection};

use crate::WorkerError;

/// Opens the configured database. SQLite gets WAL (readers never block the writer) with
/// `synchronous=NORMAL`, which is durable across process crashes in WAL mode, a busy timeout
/// so concurrent writers queue instead of failing, and enforced foreign keys.
pub async fn connect(config: &Config) -> Result<DatabaseConnection, WorkerError> {
    open(config, false).await
}

/// The connection of a worker process. With `jobs.async_commit` on PostgreSQL, its commits
/// do not wait for the WAL flush (`synchronous_commit = off`). Every write a worker makes is
/// redone if lost: a lost claim leaves the job queued (re-dispatched), a lost completion
/// leaves it running until its lease expires (run again), a lost delivery mark re-sends a
/// webhook with the same id. What must survive a crash of PostgreSQL — a job's creation —
/// is written by the API on a synchronous connection. This halves PostgreSQL's cost per job.
pub async fn connect_worker(config: &Config) -> Result<DatabaseConnection, WorkerError> {
    open(config, config.jobs.async_commit).await
}

async fn open(config: &Config, async_commit: bool) -> Result<DatabaseConnection, WorkerError> {
    let url = config.database_url();
    if url.starts_with("sqlite:") {
        // The embedded database lives in the data directory, which may not exist on first start.
        std::fs::create_dir_all(&config.data_dir).map_err(|source| WorkerError::Storage {
            path: config.data_dir.display().to_string(),
            source,
        })?;
    }
    let mut opts = ConnectOptions::new(url);
    opts.max_connections(config.database.max_connections)
        .min_connections(1)
        .connect_timeout(Duration::from_secs(5))
        .acquire_timeout(Duration::from_secs(10))
        .sqlx_logging(false)
        .map_sqlx_sqlite_opts(|o| {
            o.journal_mode(sea_orm::sqlx::sqlite::SqliteJournalMode::Wal)
                .synchronous(sea_orm::sqlx::sqlite::SqliteSynchronous::Normal)
                .busy_timeout(Duration::from_secs(10))
                .foreign_keys(true)
        })
        .map_sqlx_postgres_opts(move |o| {
            if async_commit {
                o.options([("synchronous_commit", "off")])
            } else {
                o
            }
        });
    Ok(Database::connect(opts).await?)
}

/// Starts a transaction that will write after reading. On SQLite it takes the write lock at
/// `BEGIN` (IMMEDIATE), so it waits out the busy timeout instead of failing with "database is
/// locked" when another connection writes between its read and its write. Elsewhere it is a
/// plain transaction.
pub async fn begin_write(
    db: &sea_orm::DatabaseConnection,
) -> Result<sea_orm::DatabaseTransaction, sea_orm::DbErr> {
    use sea_orm::{SqliteTransactionMode, TransactionOptions, TransactionTrait};
    db.begin_with_options(TransactionOptions {
        sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate),
        ..Default::default()
    })
    .await
}
