//! Readiness of everything a process needs before it takes traffic or jobs. Both binaries report
//! the same checks, so an operator reads one format everywhere.

use std::time::{Duration, Instant};

use nve_config::{Config, QueueBackend};
use sea_orm::DatabaseConnection;
use serde::Serialize;

use crate::storage::Storage;

/// How long any one dependency may take before it counts as down.
const CHECK_TIMEOUT: Duration = Duration::from_secs(3);

#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub name: &'static str,
    pub ok: bool,
    /// What was found, or why it failed.
    pub detail: String,
    pub duration_ms: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub ready: bool,
    pub checks: Vec<Check>,
}

async fn timed<F>(name: &'static str, fut: F) -> Check
where
    F: std::future::Future<Output = Result<String, String>>,
{
    let start = Instant::now();
    let result = tokio::time::timeout(CHECK_TIMEOUT, fut)
        .await
        .unwrap_or_else(|_| Err(format!("no answer within {}s", CHECK_TIMEOUT.as_secs())));
    let (ok, detail) = match result {
        Ok(d) => (true, d),
        Err(d) => (false, d),
    };
    Check {
        name,
        ok,
        detail,
        duration_ms: start.elapsed().as_millis().try_into().unwrap_or(u64::MAX),
    }
}

/// Runs every check concurrently.
pub async fn check(config: &Config, db: &DatabaseConnection, storage: &Storage) -> Report {
    let database = timed("database", async {
        db.ping().await.map_err(|e| e.to_string())?;
        Ok(format!("{:?} reachable", db.get_database_backend()))
    });
    let queue = timed("queue", queue_check(config, db));
    let storage = timed("storage", async {
        storage
            .check_writable()
            .await
            .map_err(|e| e.to_string())
            .map(|()| format!("{} writable", storage.describe()))
    });
    let gstreamer = timed("gstreamer", async {
        // Initialisation and registry scans block; keep them off the async workers.
        let inv = tokio::task::spawn_blocking(nve_pipelines::elements::inventory)
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())?;
        match inv.missing_summary() {
            None => Ok(format!("{}, all required elements present", inv.version)),
            Some(missing) => Err(missing),
        }
    });
    let (database, queue, storage, gstreamer) = tokio::join!(database, queue, storage, gstreamer);
    let checks = vec![database, queue, storage, gstreamer];
    Report {
        ready: checks.iter().all(|c| c.ok),
        checks,
    }
}

async fn queue_check(config: &Config, db: &DatabaseConnection) -> Result<String, String> {
    match config.queue.backend {
        // The embedded queue lives in the same SQLite database.
        QueueBackend::Sqlite => db
            .ping()
            .await
            .map(|()| "embedded queue in the database".to_owned())
            .map_err(|e| e.to_string()),
        QueueBackend::Redis => {
            let url = config
                .queue
                .redis_url
                .as_ref()
                .ok_or_else(|| "queue.redis_url is not set".to_owned())?;
            let client = redis::Client::open(url.expose()).map_err(|e| e.to_string())?;
            let mut conn = client
                .get_multiplexed_async_connection()
                .await
                .map_err(|e| e.to_string())?;
            let pong: String = redis::cmd("PING")
                .query_async(&mut conn)
                .await
                .map_err(|e| e.to_string())?;
            Ok(format!("redis answered {pong}"))
        }
    }
}
