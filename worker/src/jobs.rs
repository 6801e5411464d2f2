//! The job record and its state machine. The database row is the truth about a job; queues
//! (apalis on SQLite or Redis) only deliver its id, so a lost or duplicated delivery can never
//! lose or double a job's effect:
//!
//! ```text
//!            claim (attempts += 1, new lease token)
//!  queued ───────────────────────────────────────► running ──complete──► succeeded
//!    ▲  ▲                                            │  │
//!    │  └── fail(transient, attempts < max): run_at = now + backoff
//!    │                                               │  └──fail(permanent or attempts = max)──► failed
//!    └── release (shutdown) / reconcile (lease expired, attempts < max)
//!  queued/running ──cancel──► cancelled   (running: when its worker sees the request)
//! ```
//!
//! Every transition is one guarded `UPDATE … WHERE status = … [AND lease_token = …]`: a worker
//! whose lease expired (and whose job was handed to another) cannot write a result (fencing).

use std::time::Duration;

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect, Set,
};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use nve_entity::jobs;

/// Why a transition did not happen.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    #[error("database: {0}")]
    Database(#[from] sea_orm::DbErr),
    /// The caller no longer holds the job's lease: another worker owns it now, or it ended.
    #[error("job {0} is no longer leased by this worker")]
    LeaseLost(Uuid),
    #[error("job {0} not found")]
    NotFound(Uuid),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Queue {
    /// Short, latency-sensitive media work.
    Edit,
    /// Timeline renders.
    Render,
}

impl Queue {
    pub fn as_str(self) -> &'static str {
        match self {
            Queue::Edit => "edit",
            Queue::Render => "render",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "edit" => Some(Queue::Edit),
            "render" => Some(Queue::Render),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Queued,
    Running,
    Succeeded,
    Failed,
    Cancelled,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Queued => "queued",
            Status::Running => "running",
            Status::Succeeded => "succeeded",
            Status::Failed => "failed",
            Status::Cancelled => "cancelled",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "queued" => Status::Queued,
            "running" => Status::Running,
            "succeeded" => Status::Succeeded,
            "failed" => Status::Failed,
            "cancelled" => Status::Cancelled,
            _ => return None,
        })
    }
}

/// Interactive work (a user waiting on a thumbnail) before batch work.
pub const PRIORITY_INTERACTIVE: i16 = 0;
pub const PRIORITY_BATCH: i16 = 10;

#[derive(Debug, Clone)]
pub struct NewJob {
    pub project_id: Option<Uuid>,
    pub created_by: Option<Uuid>,
    pub queue: Queue,
    pub kind: String,
    pub payload: serde_json::Value,
    pub priority: i16,
    pub max_attempts: i32,
    pub correlation_id: String,
    /// Receives the signed completion event; checked by the caller (see `netguard`).
    pub callback_url: Option<String>,
}

/// A claim on a running job. Results are accepted only while `token` is the job's token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub job_id: Uuid,
    pub token: Uuid,
    /// The attempt this lease is for, starting at 1.
    pub attempt: i32,
}

/// How a failed attempt ends.
#[derive(Debug, Clone)]
pub struct Failure {
    /// Stable kebab-case code (`not-media`, `storage-unavailable`, …).
    pub code: String,
    pub message: String,
    /// Transient failures are retried (with backoff) until `max_attempts`; permanent ones end
    /// the job at once.
    pub transient: bool,
}

/// Records a new job. Call it inside the transaction of the request that creates the job, so
/// the job exists exactly when the request's other writes do.
pub async fn enqueue<C: ConnectionTrait>(db: &C, new: NewJob) -> Result<jobs::Model, JobError> {
    let now = Utc::now();
    Ok(jobs::ActiveModel {
        id: Set(Uuid::now_v7()),
        project_id: Set(new.project_id),
        created_by: Set(new.created_by),
        queue: Set(new.queue.as_str().to_owned()),
        kind: Set(new.kind),
        payload: Set(new.payload),
        status: Set(Status::Queued.as_str().to_owned()),
        priority: Set(new.priority),
        attempts: Set(0),
        max_attempts: Set(Ord::max(new.max_attempts, 1)),
        lease_owner: Set(None),
        lease_token: Set(None),
        lease_expires_at: Set(None),
        run_at: Set(now),
        progress: Set(None),
        error_code: Set(None),
        error_message: Set(None),
        result: Set(None),
        correlation_id: Set(new.correlation_id),
        cancel_requested: Set(false),
        queued_at: Set(now),
        started_at: Set(None),
        finished_at: Set(None),
        // Assumes the caller dispatches right after commit; it clears this when it could not
        // (queue full), and the reconciler re-sends what stays undispatched or goes stale.
        dispatched_at: Set(Some(now)),
        callback_url: Set(new.callback_url),
    }
    .insert(db)
    .await?)
}

/// Forgets that `job_id` was dispatched, so the reconciler sends it when the queue has room.
pub async fn undispatched<C: ConnectionTrait>(db: &C, job_id: Uuid) -> Result<(), JobError> {
    jobs::Entity::update_many()
        .col_expr(
            jobs::Column::DispatchedAt,
            Expr::value(Option::<DateTime<Utc>>::None),
        )
        .filter(jobs::Column::Id.eq(job_id))
        .filter(jobs::Column::Status.eq(Status::Queued.as_str()))
        .exec(db)
        .await?;
    Ok(())
}

/// Takes back a job that was recorded but could not be dispatched (the queue backend is
/// down), so the request that created it can fail cleanly. Only a job nobody started is
/// withdrawn; `Ok(false)` means it already ran or runs, and stays.
pub async fn withdraw<C: ConnectionTrait>(db: &C, job_id: Uuid) -> Result<bool, JobError> {
    let done = jobs::Entity::delete_many()
        .filter(jobs::Column::Id.eq(job_id))
        .filter(jobs::Column::Status.eq(Status::Queued.as_str()))
        .filter(jobs::Column::Attempts.eq(0))
        .exec(db)
        .await?;
    Ok(done.rows_affected == 1)
}

/// Marks one queued job as dispatched now; `Ok(false)` when it is no longer queued.
pub async fn take_one_for_dispatch<C: ConnectionTrait>(
    db: &C,
    job_id: Uuid,
) -> Result<bool, JobError> {
    let done = jobs::Entity::update_many()
        .col_expr(jobs::Column::DispatchedAt, Expr::value(Utc::now()))
        .filter(jobs::Column::Id.eq(job_id))
        .filter(jobs::Column::Status.eq(Status::Queued.as_str()))
        .exec(db)
        .await?;
    Ok(done.rows_affected == 1)
}

/// A job handed to the dispatcher by [`take_for_dispatch`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ToDispatch {
    pub id: Uuid,
    pub priority: i16,
    /// It had been dispatched before (and went stale): send it only if the queue lost it.
    pub resend: bool,
}

/// Marks up to `limit` due, queued jobs of `queue` as dispatched now and returns them, best
/// first: those never dispatched, and those dispatched before `stale_before`. One guarded
/// update takes them, so concurrent reconcilers split the rows instead of both sending them.
pub async fn take_for_dispatch<C: ConnectionTrait>(
    db: &C,
    queue: Queue,
    stale_before: DateTime<Utc>,
    limit: u64,
) -> Result<Vec<ToDispatch>, JobError> {
    if limit == 0 {
        return Ok(Vec::new());
    }
    let now = Utc::now();
    let undispatched_or_stale = || {
        sea_orm::Condition::any()
            .add(jobs::Column::DispatchedAt.is_null())
            .add(jobs::Column::DispatchedAt.lt(stale_before))
    };
    let candidates: Vec<(Uuid, Option<DateTime<Utc>>)> = jobs::Entity::find()
        .select_only()
        .column(jobs::Column::Id)
        .column(jobs::Column::DispatchedAt)
        .filter(jobs::Column::Queue.eq(queue.as_str()))
        .filter(jobs::Column::Status.eq(Status::Queued.as_str()))
        .filter(jobs::Column::RunAt.lte(now))
        .filter(undispatched_or_stale())
        .order_by_asc(jobs::Column::Priority)
        .order_by_asc(jobs::Column::Id)
        .limit(limit)
        .into_tuple()
        .all(db)
        .await?;
    if candidates.is_empty() {
        return Ok(Vec::new());
    }
    let resent: std::collections::HashSet<Uuid> = candidates
        .iter()
        .filter(|(_, at)| at.is_some())
        .map(|(id, _)| *id)
        .collect();
    let mut taken: Vec<ToDispatch> = jobs::Entity::update_many()
        .col_expr(jobs::Column::DispatchedAt, Expr::value(now))
        .filter(jobs::Column::Id.is_in(candidates.iter().map(|(id, _)| *id)))
        .filter(jobs::Column::Status.eq(Status::Queued.as_str()))
        .filter(undispatched_or_stale())
        .exec_with_returning(db)
        .await?
        .into_iter()
        .map(|row| ToDispatch {
            id: row.id,
            priority: row.priority,
            resend: resent.contains(&row.id),
        })
        .collect();
    taken.sort_by_key(|t| (t.priority, t.id));
    Ok(taken)
}

fn lease_until(now: DateTime<Utc>, lease: Duration) -> DateTime<Utc> {
    now + chrono::Duration::from_std(lease).unwrap_or_else(|_| chrono::Duration::seconds(60))
}

/// Takes `job_id` if it is queued and due. `Ok(None)`: someone else has it, or it is not due.
/// A job that has already used all its attempts is failed here instead of started again, which
/// is what stops a job that crashes its worker every time.
pub async fn claim<C: ConnectionTrait>(
    db: &C,
    job_id: Uuid,
    owner: &str,
    lease: Duration,
) -> Result<Option<Lease>, JobError> {
    Ok(claim_row(db, job_id, owner, lease)
        .await?
        .map(|(lease, _)| lease))
}

/// [`claim`], also returning the claimed row.
pub async fn claim_row<C: ConnectionTrait>(
    db: &C,
    job_id: Uuid,
    owner: &str,
    lease: Duration,
) -> Result<Option<(Lease, jobs::Model)>, JobError> {
    let now = Utc::now();
    let token = Uuid::now_v7();
    // One statement takes the row and returns it; RETURNING works on PostgreSQL and SQLite.
    let mut claimed = jobs::Entity::update_many()
        .col_expr(jobs::Column::Status, Expr::value(Status::Running.as_str()))
        .col_expr(
            jobs::Column::Attempts,
            Expr::col(jobs::Column::Attempts).add(1),
        )
        .col_expr(jobs::Column::LeaseOwner, Expr::value(owner))
        .col_expr(jobs::Column::LeaseToken, Expr::value(token))
        .col_expr(
            jobs::Column::LeaseExpiresAt,
            Expr::value(lease_until(now, lease)),
        )
        .col_expr(jobs::Column::StartedAt, Expr::value(now))
        .filter(jobs::Column::Id.eq(job_id))
        .filter(jobs::Column::Status.eq(Status::Queued.as_str()))
        .filter(jobs::Column::CancelRequested.eq(false))
        .filter(jobs::Column::RunAt.lte(now))
        .filter(Expr::col(jobs::Column::Attempts).lt(Expr::col(jobs::Column::MaxAttempts)))
        .exec_with_returning(db)
        .await?;
    if let Some(row) = claimed.pop() {
        return Ok(Some((
            Lease {
                job_id,
                token,
                attempt: row.attempts,
            },
            row,
        )));
    }
    // Not claimable: taken, not due, or out of attempts. The last is what stops a job that
    // crashes its worker every time; it ends here instead of starting again.
    jobs::Entity::update_many()
        .col_expr(jobs::Column::Status, Expr::value(Status::Failed.as_str()))
        .col_expr(jobs::Column::ErrorCode, Expr::value("too-many-attempts"))
        .col_expr(
            jobs::Column::ErrorMessage,
            Expr::value("the job did not finish in its allowed attempts (its worker died or it kept failing)"),
        )
        .col_expr(jobs::Column::FinishedAt, Expr::value(now))
        .filter(jobs::Column::Id.eq(job_id))
        .filter(jobs::Column::Status.eq(Status::Queued.as_str()))
        .filter(Expr::col(jobs::Column::Attempts).gte(Expr::col(jobs::Column::MaxAttempts)))
        .exec(db)
        .await?;
    Ok(None)
}

/// Claims the next due job of `queue` (lowest priority value, then oldest). Several workers may
/// race for the same row; the guarded update lets exactly one win and the others try the next.
pub async fn claim_next<C: ConnectionTrait>(
    db: &C,
    queue: Queue,
    owner: &str,
    lease: Duration,
) -> Result<Option<(Lease, jobs::Model)>, JobError> {
    let candidates: Vec<Uuid> = jobs::Entity::find()
        .select_only()
        .column(jobs::Column::Id)
        .filter(jobs::Column::Queue.eq(queue.as_str()))
        .filter(jobs::Column::Status.eq(Status::Queued.as_str()))
        .filter(jobs::Column::RunAt.lte(Utc::now()))
        .order_by_asc(jobs::Column::Priority)
        .order_by_asc(jobs::Column::Id)
        .limit(16)
        .into_tuple()
        .all(db)
        .await?;
    for id in candidates {
        if let Some(claimed) = claim_row(db, id, owner, lease).await? {
            return Ok(Some(claimed));
        }
    }
    Ok(None)
}

fn held(lease: &Lease) -> sea_orm::Condition {
    sea_orm::Condition::all()
        .add(jobs::Column::Id.eq(lease.job_id))
        .add(jobs::Column::Status.eq(Status::Running.as_str()))
        .add(jobs::Column::LeaseToken.eq(lease.token))
}

async fn guarded<C: ConnectionTrait>(
    db: &C,
    lease: &Lease,
    update: sea_orm::UpdateMany<jobs::Entity>,
) -> Result<(), JobError> {
    let done = update.filter(held(lease)).exec(db).await?;
    if done.rows_affected == 1 {
        Ok(())
    } else {
        Err(JobError::LeaseLost(lease.job_id))
    }
}

/// Extends the lease (the worker's heartbeat) and records progress. `Ok(true)` when the job's
/// cancellation was requested: the worker should stop it.
pub async fn heartbeat<C: ConnectionTrait>(
    db: &C,
    lease: &Lease,
    extend_by: Duration,
    progress: Option<f64>,
) -> Result<bool, JobError> {
    let mut update = jobs::Entity::update_many().col_expr(
        jobs::Column::LeaseExpiresAt,
        Expr::value(lease_until(Utc::now(), extend_by)),
    );
    if let Some(p) = progress.filter(|p| p.is_finite()) {
        update = update.col_expr(jobs::Column::Progress, Expr::value(p.clamp(0.0, 1.0)));
    }
    guarded(db, lease, update).await?;
    let cancel = jobs::Entity::find_by_id(lease.job_id)
        .select_only()
        .column(jobs::Column::CancelRequested)
        .into_tuple::<bool>()
        .one(db)
        .await?
        .unwrap_or(false);
    Ok(cancel)
}

/// Ends the attempt successfully. Fails with `LeaseLost` (and writes nothing) when the lease
/// expired and the job moved on.
pub async fn complete<C: ConnectionTrait>(
    db: &C,
    lease: &Lease,
    result: serde_json::Value,
) -> Result<(), JobError> {
    let update = jobs::Entity::update_many()
        .col_expr(
            jobs::Column::Status,
            Expr::value(Status::Succeeded.as_str()),
        )
        .col_expr(jobs::Column::Result, Expr::value(result))
        .col_expr(jobs::Column::Progress, Expr::value(1.0))
        .col_expr(jobs::Column::FinishedAt, Expr::value(Utc::now()))
        .col_expr(jobs::Column::LeaseToken, Expr::value(Option::<Uuid>::None));
    guarded(db, lease, update).await
}

/// Exponential backoff with jitter: 2 s, 4 s, 8 s … capped at 5 minutes, ±25 %.
pub fn backoff(attempt: i32) -> Duration {
    let exp = u32::try_from(attempt.clamp(1, 16) - 1).unwrap_or(0);
    let base = Ord::min(2u64.saturating_pow(exp + 1), 300);
    let jitter = 0.75 + f64::from(rand::random::<u16>()) / f64::from(u16::MAX) * 0.5;
    Duration::from_secs_f64(base as f64 * jitter)
}

/// Ends the attempt with a failure: retried later when transient and attempts remain,
/// otherwise the job fails with the code and message.
pub async fn fail<C: ConnectionTrait>(
    db: &C,
    lease: &Lease,
    max_attempts: i32,
    failure: &Failure,
) -> Result<Status, JobError> {
    let now = Utc::now();
    let retry = failure.transient && lease.attempt < max_attempts;
    let mut update = jobs::Entity::update_many()
        .col_expr(jobs::Column::ErrorCode, Expr::value(failure.code.clone()))
        .col_expr(
            jobs::Column::ErrorMessage,
            Expr::value(failure.message.clone()),
        )
        .col_expr(jobs::Column::LeaseToken, Expr::value(Option::<Uuid>::None))
        .col_expr(
            jobs::Column::LeaseExpiresAt,
            Expr::value(Option::<DateTime<Utc>>::None),
        );
    let status = if retry {
        let at = now + chrono::Duration::from_std(backoff(lease.attempt)).unwrap_or_default();
        update = update
            .col_expr(jobs::Column::Status, Expr::value(Status::Queued.as_str()))
            .col_expr(jobs::Column::RunAt, Expr::value(at))
            .col_expr(
                jobs::Column::DispatchedAt,
                Expr::value(Option::<DateTime<Utc>>::None),
            );
        Status::Queued
    } else {
        update = update
            .col_expr(jobs::Column::Status, Expr::value(Status::Failed.as_str()))
            .col_expr(jobs::Column::FinishedAt, Expr::value(now));
        Status::Failed
    };
    guarded(db, lease, update).await?;
    Ok(status)
}

/// Gives a running job back without counting the attempt (graceful shutdown), so another
/// worker takes it at once instead of waiting for the lease to expire.
pub async fn release<C: ConnectionTrait>(db: &C, lease: &Lease) -> Result<(), JobError> {
    let update = jobs::Entity::update_many()
        .col_expr(jobs::Column::Status, Expr::value(Status::Queued.as_str()))
        .col_expr(
            jobs::Column::Attempts,
            Expr::col(jobs::Column::Attempts).sub(1),
        )
        .col_expr(jobs::Column::LeaseToken, Expr::value(Option::<Uuid>::None))
        .col_expr(
            jobs::Column::LeaseExpiresAt,
            Expr::value(Option::<DateTime<Utc>>::None),
        )
        .col_expr(jobs::Column::RunAt, Expr::value(Utc::now()))
        .col_expr(
            jobs::Column::DispatchedAt,
            Expr::value(Option::<DateTime<Utc>>::None),
        );
    guarded(db, lease, update).await
}

/// Cancels a job: a queued one at once; a running one is flagged and its worker stops it at
/// its next heartbeat (`Ok(Status::Running)`). Finished jobs stay as they are.
pub async fn cancel<C: ConnectionTrait>(db: &C, job_id: Uuid) -> Result<Status, JobError> {
    let now = Utc::now();
    let queued = jobs::Entity::update_many()
        .col_expr(
            jobs::Column::Status,
            Expr::value(Status::Cancelled.as_str()),
        )
        .col_expr(jobs::Column::FinishedAt, Expr::value(now))
        .filter(jobs::Column::Id.eq(job_id))
        .filter(jobs::Column::Status.eq(Status::Queued.as_str()))
        .exec(db)
        .await?;
    if queued.rows_affected == 1 {
        return Ok(Status::Cancelled);
    }
    jobs::Entity::update_many()
        .col_expr(jobs::Column::CancelRequested, Expr::value(true))
        .filter(jobs::Column::Id.eq(job_id))
        .filter(jobs::Column::Status.eq(Status::Running.as_str()))
        .exec(db)
        .await?;
    let row = jobs::Entity::find_by_id(job_id)
        .one(db)
        .await?
        .ok_or(JobError::NotFound(job_id))?;
    Status::parse(&row.status).ok_or(JobError::NotFound(job_id))
}

/// Marks a running job whose cancellation was honoured.
pub async fn cancelled<C: ConnectionTrait>(db: &C, lease: &Lease) -> Result<(), JobError> {
    let update = jobs::Entity::update_many()
        .col_expr(
            jobs::Column::Status,
            Expr::value(Status::Cancelled.as_str()),
        )
        .col_expr(jobs::Column::FinishedAt, Expr::value(Utc::now()))
        .col_expr(jobs::Column::LeaseToken, Expr::value(Option::<Uuid>::None));
    guarded(db, lease, update).await
}

/// Running jobs whose lease expired (their worker died or hung) go back to the queue, or fail
/// once they have used their attempts. Returns the ids put back, for re-dispatch.
pub async fn reconcile<C: ConnectionTrait>(db: &C) -> Result<Vec<Uuid>, JobError> {
    let now = Utc::now();
    let expired: Vec<(Uuid, i32, i32, bool)> = jobs::Entity::find()
        .select_only()
        .column(jobs::Column::Id)
        .column(jobs::Column::Attempts)
        .column(jobs::Column::MaxAttempts)
        .column(jobs::Column::CancelRequested)
        .filter(jobs::Column::Status.eq(Status::Running.as_str()))
        .filter(jobs::Column::LeaseExpiresAt.lt(now))
        .into_tuple()
        .all(db)
        .await?;
    let mut requeued = Vec::new();
    for (id, attempts, max, cancel) in expired {
        let base = jobs::Entity::update_many()
            .col_expr(jobs::Column::LeaseToken, Expr::value(Option::<Uuid>::None))
            .col_expr(
                jobs::Column::LeaseExpiresAt,
                Expr::value(Option::<DateTime<Utc>>::None),
            )
            .filter(jobs::Column::Id.eq(id))
            .filter(jobs::Column::Status.eq(Status::Running.as_str()))
            .filter(jobs::Column::LeaseExpiresAt.lt(now));
        // A job whose cancellation was asked for ends cancelled: it must not run again.
        let update = if cancel {
            base.col_expr(
                jobs::Column::Status,
                Expr::value(Status::Cancelled.as_str()),
            )
            .col_expr(jobs::Column::FinishedAt, Expr::value(now))
        } else if attempts >= max {
            base.col_expr(jobs::Column::Status, Expr::value(Status::Failed.as_str()))
                .col_expr(jobs::Column::ErrorCode, Expr::value("too-many-attempts"))
                .col_expr(
                    jobs::Column::ErrorMessage,
                    Expr::value("the worker running the job stopped answering on every attempt"),
                )
                .col_expr(jobs::Column::FinishedAt, Expr::value(now))
        } else {
            base.col_expr(jobs::Column::Status, Expr::value(Status::Queued.as_str()))
                .col_expr(jobs::Column::RunAt, Expr::value(now))
                .col_expr(
                    jobs::Column::DispatchedAt,
                    Expr::value(Option::<DateTime<Utc>>::None),
                )
        };
        let done = update.exec(db).await?;
        if done.rows_affected == 1 && attempts < max && !cancel {
            requeued.push(id);
        }
    }
    Ok(requeued)
}

/// Whether someone asked to cancel `job_id` (read by the running worker once a second).
pub async fn cancel_requested<C: ConnectionTrait>(db: &C, job_id: Uuid) -> Result<bool, JobError> {
    Ok(jobs::Entity::find_by_id(job_id)
        .select_only()
        .column(jobs::Column::CancelRequested)
        .into_tuple::<bool>()
        .one(db)
        .await?
        .unwrap_or(false))
}

/// Jobs waiting per queue (queued, due or not), for the `nve_queue_depth` gauge.
pub async fn queue_depths<C: ConnectionTrait>(db: &C) -> Result<Vec<(String, i64)>, JobError> {
    Ok(jobs::Entity::find()
        .select_only()
        .column(jobs::Column::Queue)
        .column_as(jobs::Column::Id.count(), "n")
        .filter(jobs::Column::Status.eq(Status::Queued.as_str()))
        .group_by(jobs::Column::Queue)
        .into_tuple()
        .all(db)
        .await?)
}
