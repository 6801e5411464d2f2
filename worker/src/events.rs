//! Job events: every status change and (throttled) progress of a project's job, published for
//! the API replicas to relay to the project's WebSocket sessions. Embedded, the API's hub is
//! the sink; `nve-worker` publishes to Redis on the channel the API's hub listens to.

use std::future::Future;
use std::pin::Pin;

use serde::Serialize;
use uuid::Uuid;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct JobEvent {
    #[serde(skip)]
    pub project_id: Uuid,
    pub job_id: Uuid,
    pub kind: String,
    pub status: String,
    pub progress: Option<f64>,
    /// Attempt, error code and message, result, ETA… as they apply.
    pub detail: serde_json::Value,
}

pub type SinkFuture<'a> = Pin<Box<dyn Future<Output = ()> + Send + 'a>>;

/// Where job events go. Publishing never fails the job: a lost event is repaired by the next
/// one, and clients can always read the job.
pub trait EventSink: Send + Sync {
    fn publish(&self, event: JobEvent) -> SinkFuture<'_>;
}

/// Drops events (workers of jobs outside any project, tools).
pub struct NoEvents;

impl EventSink for NoEvents {
    fn publish(&self, _event: JobEvent) -> SinkFuture<'_> {
        Box::pin(async {})
    }
}

/// The Redis channel of a project's events: the API's hub subscribes to `{prefix}:project:*`.
pub fn project_channel(prefix: &str, project: Uuid) -> String {
    format!("{prefix}:project:{project}")
}

/// A job event as the hub's wire format carries it (`{"type":"job", …}`).
pub fn encode(event: &JobEvent) -> Vec<u8> {
    #[derive(Serialize)]
    #[serde(tag = "type", rename_all = "snake_case")]
    enum Wire<'a> {
        Job(&'a JobEvent),
    }
    serde_json::to_vec(&Wire::Job(event)).unwrap_or_default()
}

/// Publishes to Redis pub/sub for `nve-worker` processes.
pub struct RedisEvents {
    conn: redis::aio::ConnectionManager,
    prefix: String,
}

impl RedisEvents {
    pub async fn connect(url: &str, prefix: &str) -> Result<Self, redis::RedisError> {
        let client = redis::Client::open(url)?;
        Ok(RedisEvents {
            conn: client.get_connection_manager().await?,
            prefix: prefix.to_owned(),
        })
    }
}

impl EventSink for RedisEvents {
    fn publish(&self, event: JobEvent) -> SinkFuture<'_> {
        Box::pin(async move {
            let mut conn = self.conn.clone();
            let sent: Result<i64, _> = redis::cmd("PUBLISH")
                .arg(project_channel(&self.prefix, event.project_id))
                .arg(encode(&event))
                .query_async(&mut conn)
                .await;
            if let Err(e) = sent {
                tracing::warn!(error = %e, job_id = %event.job_id, "cannot publish job event");
            }
        })
    }
}
