//! Fan-out of project events to every connected session. Embedded: one in-process broadcast
//! channel per project. Distributed: every replica publishes to Redis and relays what it hears
//! (its own events included) into its local channels, so all replicas see one order per project.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;
use uuid::Uuid;

/// Capacity of each project's channel; a session that falls further behind re-reads the log.
const CHANNEL_CAPACITY: usize = 1024;
/// Presence entries not refreshed for this long are dropped.
pub const PRESENCE_TTL: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ProjectEvent {
    /// A committed version of the timeline.
    Op {
        version: i64,
        base_version: i64,
        author_id: Uuid,
        client_op_id: String,
        kind: String,
        /// The ops in wire form (seconds).
        ops: Vec<serde_json::Value>,
    },
    /// A job of the project (ingest, preview, render) changed state or progressed. Published
    /// by whoever runs the job; relayed to the project's sockets as it is.
    Job {
        job_id: Uuid,
        /// `probe`, `thumbnails`, `render`, …
        kind: String,
        /// `queued`, `running`, `succeeded`, `failed`, `cancelled`.
        status: String,
        /// 0.0 to 1.0 while running.
        progress: Option<f64>,
        /// Kind-specific facts (error code and message, output id, ETA…).
        detail: serde_json::Value,
    },
    /// Where a session's user is looking; ephemeral, never stored.
    Presence {
        session_id: Uuid,
        user_id: Uuid,
        display_name: String,
        playhead: Option<f64>,
        selection: Vec<String>,
        left: bool,
    },
}

#[derive(Debug, Clone, Serialize)]
pub struct PresenceState {
    pub session_id: Uuid,
    pub user_id: Uuid,
    pub display_name: String,
    pub playhead: Option<f64>,
    pub selection: Vec<String>,
    #[serde(skip)]
    seen: Option<Instant>,
}

type Channels = HashMap<Uuid, broadcast::Sender<Arc<ProjectEvent>>>;
type Presence = HashMap<Uuid, HashMap<Uuid, PresenceState>>;

#[derive(Clone)]
pub struct Hub {
    channels: Arc<Mutex<Channels>>,
    presence: Arc<Mutex<Presence>>,
    redis: Option<RedisFanout>,
}

#[derive(Clone)]
struct RedisFanout {
    client: redis::Client,
    /// Reconnects by itself after Redis restarts (a plain multiplexed connection stays broken).
    conn: redis::aio::ConnectionManager,
    prefix: String,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // The maps stay consistent even if a holder panicked; keep serving.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Hub {
    pub fn in_process() -> Self {
        Self {
            channels: Arc::default(),
            presence: Arc::default(),
            redis: None,
        }
    }

    /// Connects to Redis and starts relaying `{prefix}:project:*` into local channels.
    pub async fn redis(url: &str, prefix: &str) -> Result<Self, redis::RedisError> {
        let client = redis::Client::open(url)?;
        let conn = client.get_connection_manager().await?;
        let hub = Self {
            channels: Arc::default(),
            presence: Arc::default(),
            redis: Some(RedisFanout {
                client: client.clone(),
                conn,
                prefix: prefix.to_owned(),
            }),
        };
        // Subscribe before returning so no event published after start-up is missed.
        let pubsub = subscribe(&client, prefix).await?;
        tokio::spawn(hub.clone().relay(pubsub));
        Ok(hub)
    }

    async fn relay(self, first: redis::aio::PubSub) {
        let Some(fanout) = self.redis.clone() else {
            return;
        };
        let mut pubsub = Some(first);
        loop {
            if let Some(mut ps) = pubsub.take() {
                let mut stream = ps.on_message();
                while let Some(msg) = stream.next().await {
                    let channel = msg.get_channel_name().to_owned();
                    let Some(project) = channel
                        .rsplit(':')
                        .next()
                        .and_then(|s| Uuid::parse_str(s).ok())
                    else {
                        continue;
                    };
                    let payload: Vec<u8> = msg.get_payload().unwrap_or_default();
                    match serde_json::from_slice::<ProjectEvent>(&payload) {
                        Ok(event) => self.deliver(project, event),
                        Err(e) => {
                            tracing::warn!(error = %e, "undecodable project event from Redis")
                        }
                    }
                }
                tracing::warn!("Redis subscription ended; reconnecting");
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
            match subscribe(&fanout.client, &fanout.prefix).await {
                Ok(ps) => pubsub = Some(ps),
                Err(e) => tracing::warn!(error = %e, "cannot resubscribe to Redis"),
            }
        }
    }

    fn deliver(&self, project: Uuid, event: ProjectEvent) {
        if let ProjectEvent::Presence {
            session_id,
            user_id,
            display_name,
            playhead,
            selection,
            left,
        } = &event
        {
            let mut presence = lock(&self.presence);
            let sessions = presence.entry(project).or_default();
            if *left {
                sessions.remove(session_id);
            } else {
                sessions.insert(
                    *session_id,
                    PresenceState {
                        session_id: *session_id,
                        user_id: *user_id,
                        display_name: display_name.clone(),
                        playhead: *playhead,
                        selection: selection.clone(),
                        seen: Some(Instant::now()),
                    },
                );
            }
        }
        let sender = lock(&self.channels).get(&project).cloned();
        if let Some(tx) = sender {
            // No receivers is fine: nobody is watching this project on this replica.
            let _ = tx.send(Arc::new(event));
        }
    }

    /// Sends an event to every session of the project, on every replica.
    pub async fn publish(&self, project: Uuid, event: ProjectEvent) {
        match &self.redis {
            None => self.deliver(project, event),
            Some(fanout) => {
                let payload = match serde_json::to_vec(&event) {
                    Ok(p) => p,
                    Err(e) => {
                        tracing::error!(error = %e, "cannot encode project event");
                        return;
                    }
                };
                let channel = format!("{}:project:{project}", fanout.prefix);
                let mut conn = fanout.conn.clone();
                let sent: Result<i64, _> = redis::cmd("PUBLISH")
                    .arg(&channel)
                    .arg(payload)
                    .query_async(&mut conn)
                    .await;
                if let Err(e) = sent {
                    // Sessions catch up from the op log when they notice the gap.
                    tracing::warn!(error = %e, %project, "cannot publish project event");
                }
            }
        }
    }

    pub fn subscribe(&self, project: Uuid) -> broadcast::Receiver<Arc<ProjectEvent>> {
        lock(&self.channels)
            .entry(project)
            .or_insert_with(|| broadcast::channel(CHANNEL_CAPACITY).0)
            .subscribe()
    }

    /// Everyone currently present in the project (as far as this replica has heard).
    pub fn present(&self, project: Uuid) -> Vec<PresenceState> {
        let mut presence = lock(&self.presence);
        let Some(sessions) = presence.get_mut(&project) else {
            return Vec::new();
        };
        sessions.retain(|_, p| p.seen.is_some_and(|t| t.elapsed() < PRESENCE_TTL));
        let mut list: Vec<PresenceState> = sessions.values().cloned().collect();
        list.sort_by_key(|p| p.session_id);
        list
    }
}

async fn subscribe(
    client: &redis::Client,
    prefix: &str,
) -> Result<redis::aio::PubSub, redis::RedisError> {
    let mut pubsub = client.get_async_pubsub().await?;
    pubsub.psubscribe(format!("{prefix}:project:*")).await?;
    Ok(pubsub)
}

/// Workers running inside this process publish their job events through the hub, so they
/// reach sessions on every replica exactly as `nve-worker`'s Redis events do.
impl nve_worker::events::EventSink for Hub {
    fn publish(&self, event: nve_worker::events::JobEvent) -> nve_worker::events::SinkFuture<'_> {
        Box::pin(async move {
            let project = event.project_id;
            Hub::publish(
                self,
                project,
                ProjectEvent::Job {
                    job_id: event.job_id,
                    kind: event.kind,
                    status: event.status,
                    progress: event.progress,
                    detail: event.detail,
                },
            )
            .await;
        })
    }
}

#[cfg(test)]
mod wire_tests {
    use super::*;

    /// `nve-worker` encodes job events itself (it has no hub); the API's hub must read them.
    #[test]
    fn worker_job_events_decode_as_project_events() {
        let event = nve_worker::events::JobEvent {
            project_id: Uuid::now_v7(),
            job_id: Uuid::now_v7(),
            kind: "probe".into(),
            status: "running".into(),
            progress: Some(0.5),
            detail: serde_json::json!({"attempt": 1}),
        };
        let decoded: ProjectEvent =
            serde_json::from_slice(&nve_worker::events::encode(&event)).expect("decodes");
        assert_eq!(
            decoded,
            ProjectEvent::Job {
                job_id: event.job_id,
                kind: event.kind,
                status: event.status,
                progress: event.progress,
                detail: event.detail,
            }
        );
    }
}
