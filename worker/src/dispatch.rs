//! How a job's id reaches a worker. The database row is the job; a dispatch is only a wake-up
//! that carries the id, so a lost dispatch delays a job (the reconciler sends it again) and a
//! duplicated one is harmless (the second claim finds the row taken).
//!
//! * `Local` (embedded mode, and any process whose workers share its memory): enqueuers poke
//!   an in-process notifier and workers claim the next due row of their queue straight from
//!   the database, by priority. Nothing to lose, nothing to bound.
//! * `Redis` (distributed mode): one list per queue and priority class under the configured
//!   prefix. Workers `BLMPOP` the interactive list before the batch list (as many ids as they
//!   have free slots), so pickup is a single round trip when the queue is idle. Pushes go through a script that refuses once the
//!   queue holds `backlog` ids: the rest of a large backlog stays in the database (its
//!   `dispatched_at` unset) and the reconciler feeds it in as the lists drain, so Redis memory
//!   and the per-pop cost stay flat however many jobs wait.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use uuid::Uuid;

use crate::jobs::{PRIORITY_INTERACTIVE, Queue};

#[derive(Debug, thiserror::Error)]
pub enum DispatchError {
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
}

/// What a worker slot got from [`Dispatcher::next`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// This job's id: claim exactly it.
    Job(Uuid),
    /// Something may be due: claim the next due row of the queue from the database.
    Poll,
}

#[derive(Clone)]
pub enum Dispatcher {
    Local(Arc<LocalDispatch>),
    Redis(RedisDispatch),
}

pub struct LocalDispatch {
    edit: Notify,
    render: Notify,
}

#[derive(Clone)]
pub struct RedisDispatch {
    client: redis::Client,
    conn: redis::aio::ConnectionManager,
    prefix: String,
    backlog: usize,
    push: Arc<redis::Script>,
}

/// Atomically: push the id unless the queue's lists already hold `ARGV[2]` ids. Returns 1 when
/// pushed, 0 when full.
const PUSH_BOUNDED: &str = r"
local held = redis.call('LLEN', KEYS[1]) + redis.call('LLEN', KEYS[2])
if held >= tonumber(ARGV[2]) then return 0 end
redis.call('RPUSH', KEYS[ARGV[3] + 0], ARGV[1])
return 1
";

impl Dispatcher {
    pub fn local() -> Self {
        Dispatcher::Local(Arc::new(LocalDispatch {
            edit: Notify::new(),
            render: Notify::new(),
        }))
    }

    /// Connects to Redis. `backlog` bounds the ids held per queue.
    pub async fn redis(url: &str, prefix: &str, backlog: usize) -> Result<Self, DispatchError> {
        let client = redis::Client::open(url)?;
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(2)))
            .set_response_timeout(Some(Duration::from_secs(5)))
            .set_number_of_retries(2);
        let conn = client.get_connection_manager_with_config(config).await?;
        Ok(Dispatcher::Redis(RedisDispatch {
            client,
            conn,
            prefix: prefix.to_owned(),
            backlog: backlog.max(1),
            push: Arc::new(redis::Script::new(PUSH_BOUNDED)),
        }))
    }

    /// Hands `job` to its queue. `Ok(false)`: the queue is full; the job stays undispatched in
    /// the database until the reconciler has room for it.
    pub async fn dispatch(
        &self,
        queue: Queue,
        priority: i16,
        job: Uuid,
    ) -> Result<bool, DispatchError> {
        match self {
            Dispatcher::Local(local) => {
                local.notify(queue);
                Ok(true)
            }
            Dispatcher::Redis(r) => {
                let [interactive, batch] = r.keys(queue);
                let which = if priority <= PRIORITY_INTERACTIVE {
                    1
                } else {
                    2
                };
                let mut conn = r.conn.clone();
                let pushed: i64 = r
                    .push
                    .key(interactive)
                    .key(batch)
                    .arg(job.to_string())
                    .arg(r.backlog)
                    .arg(which)
                    .invoke_async(&mut conn)
                    .await?;
                Ok(pushed == 1)
            }
        }
    }

    /// How many ids the queue may still take before it is full (`usize::MAX` for `Local`).
    pub async fn room(&self, queue: Queue) -> Result<usize, DispatchError> {
        match self {
            Dispatcher::Local(_) => Ok(usize::MAX),
            Dispatcher::Redis(r) => {
                let [interactive, batch] = r.keys(queue);
                let mut conn = r.conn.clone();
                let (a, b): (usize, usize) = redis::pipe()
                    .llen(interactive)
                    .llen(batch)
                    .query_async(&mut conn)
                    .await?;
                Ok(r.backlog.saturating_sub(a + b))
            }
        }
    }

    /// Which of `ids` the queue still holds (Redis); `Local` holds nothing. Used before
    /// re-sending a stale dispatch, so a long but healthy backlog is not duplicated.
    pub async fn held(&self, queue: Queue, ids: &[Uuid]) -> Result<Vec<bool>, DispatchError> {
        match self {
            Dispatcher::Local(_) => Ok(vec![false; ids.len()]),
            Dispatcher::Redis(r) => {
                if ids.is_empty() {
                    return Ok(Vec::new());
                }
                let keys = r.keys(queue);
                let mut pipe = redis::pipe();
                for id in ids {
                    for key in &keys {
                        pipe.cmd("LPOS").arg(key).arg(id.to_string());
                    }
                }
                let mut conn = r.conn.clone();
                let found: Vec<Option<i64>> = pipe.query_async(&mut conn).await?;
                Ok(found
                    .chunks(2)
                    .map(|pair| pair.iter().any(Option::is_some))
                    .collect())
            }
        }
    }

    /// Whether dispatch is answering (Redis reachable).
    pub async fn ping(&self) -> Result<(), DispatchError> {
        match self {
            Dispatcher::Local(_) => Ok(()),
            Dispatcher::Redis(r) => {
                let mut conn = r.conn.clone();
                let _: String = redis::cmd("PING").query_async(&mut conn).await?;
                Ok(())
            }
        }
    }

    /// A receiving end for one queue; each worker process opens one per queue it serves.
    pub async fn receiver(&self, queue: Queue) -> Result<Receiver, DispatchError> {
        Ok(match self {
            Dispatcher::Local(local) => Receiver::Local {
                dispatch: local.clone(),
                queue,
            },
            Dispatcher::Redis(r) => Receiver::Redis {
                // BLMPOP blocks its connection: the receiver gets one of its own, not the shared
                // multiplexed one.
                client: r.client.clone(),
                conn: None,
                keys: r.keys(queue),
            },
        })
    }

    /// Wakes local receivers of `queue` (a job became due without a dispatch, e.g. a retry
    /// whose backoff elapsed). No-op for Redis, whose receivers only take ids.
    pub fn poke(&self, queue: Queue) {
        if let Dispatcher::Local(local) = self {
            local.notify(queue);
        }
    }

    pub fn is_local(&self) -> bool {
        matches!(self, Dispatcher::Local(_))
    }
}

impl LocalDispatch {
    fn notify(&self, queue: Queue) {
        // notify_one stores a permit when nobody waits, so a poke between a receiver's empty
        // claim and its wait is not lost.
        match queue {
            Queue::Edit => self.edit.notify_one(),
            Queue::Render => self.render.notify_one(),
        }
    }
}

impl RedisDispatch {
    fn keys(&self, queue: Queue) -> [String; 2] {
        [
            format!("{}:jobs:{}:interactive", self.prefix, queue.as_str()),
            format!("{}:jobs:{}:batch", self.prefix, queue.as_str()),
        ]
    }
}

// One receiver per queue per process: its size does not matter.
#[allow(clippy::large_enum_variant)]
pub enum Receiver {
    Local {
        dispatch: Arc<LocalDispatch>,
        queue: Queue,
    },
    Redis {
        client: redis::Client,
        conn: Option<Box<redis::aio::MultiplexedConnection>>,
        keys: [String; 2],
    },
}

impl Receiver {
    /// Waits up to `wait` for deliveries, at most `max` of them (the caller's free slots).
    /// Empty: nothing arrived in time (callers use the tick to notice shutdown).
    pub async fn next(
        &mut self,
        wait: Duration,
        max: usize,
    ) -> Result<Vec<Delivery>, DispatchError> {
        match self {
            Receiver::Local { dispatch, queue } => {
                let notify = match queue {
                    Queue::Edit => &dispatch.edit,
                    Queue::Render => &dispatch.render,
                };
                // Either way the caller looks for due rows: the timeout covers retries whose
                // backoff elapsed while nobody poked.
                let _ = tokio::time::timeout(wait, notify.notified()).await;
                Ok(vec![Delivery::Poll])
            }
            Receiver::Redis { client, conn, keys } => {
                if conn.is_none() {
                    let config = redis::AsyncConnectionConfig::new()
                        .set_connection_timeout(Some(Duration::from_secs(2)))
                        // BLMPOP's own timeout plus slack; a dead server surfaces as an error.
                        .set_response_timeout(Some(wait + Duration::from_secs(3)));
                    *conn = Some(Box::new(
                        client
                            .get_multiplexed_async_connection_with_config(&config)
                            .await?,
                    ));
                }
                let Some(c) = conn.as_mut() else {
                    return Ok(Vec::new());
                };
                // One round trip takes as many ids as there are free slots, interactive first.
                let popped: Result<Option<(String, Vec<String>)>, redis::RedisError> =
                    redis::cmd("BLMPOP")
                        .arg(wait.as_secs_f64().max(0.01))
                        .arg(2)
                        .arg(&keys[0])
                        .arg(&keys[1])
                        .arg("LEFT")
                        .arg("COUNT")
                        .arg(max.max(1))
                        .query_async(c.as_mut())
                        .await;
                match popped {
                    Ok(Some((_, ids))) => Ok(ids
                        .iter()
                        .filter_map(|id| Uuid::parse_str(id).ok())
                        .map(Delivery::Job)
                        .collect()),
                    Ok(None) => Ok(Vec::new()),
                    Err(e) => {
                        // Reconnect on the next call.
                        *conn = None;
                        Err(e.into())
                    }
                }
            }
        }
    }
}
