//! Creating, reading and cancelling jobs, and their webhooks. A job of a project is visible to
//! its members; a job outside any project only to the user who asked for it. Anyone else gets
//! 404.
//!
//! The job's row (and its webhook's outbox row) is committed first, then its id is dispatched;
//! if the queue backend is down the job is withdrawn and the request answers 503, so a client
//! never holds the id of a job that will not run.

use chrono::{DateTime, Utc};
use poem::web::Data;
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Enum, Object, OpenApi};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use nve_entity::{jobs, webhook_attempts, webhooks};
use nve_worker::handlers::{KIND_CANARY, KIND_CHAOS};
use nve_worker::jobs as store;
use nve_worker::{netguard, runtime};

use crate::auth::Auth;
use crate::error::{ApiError, ErrorKind, FieldError, RequestInfo};
use crate::payload::JsonBody;
use crate::routes::ApiTags;
use crate::routes::projects::{Role, membership, require_role};
use crate::state::AppState;

pub struct JobsApi;

#[derive(Debug, Object)]
pub struct JobError {
    /// Stable code (`not-media`, `timed-out`, `too-many-attempts`, …).
    pub code: String,
    pub message: String,
}

#[derive(Debug, Object)]
pub struct Job {
    pub id: Uuid,
    #[oai(skip_serializing_if_is_none)]
    pub project_id: Option<Uuid>,
    /// `edit` or `render`.
    pub queue: String,
    pub kind: String,
    /// `queued`, `running`, `succeeded`, `failed` or `cancelled`.
    pub status: String,
    /// The asset an ingest job (`import`, `probe`, `thumbnails`, `proxy`, `waveform`) works on.
    #[oai(skip_serializing_if_is_none)]
    pub asset_id: Option<Uuid>,
    pub priority: i16,
    /// Starts so far (a retry or a takeover after a worker died counts).
    pub attempts: i32,
    pub max_attempts: i32,
    /// 0 to 1 while running.
    #[oai(skip_serializing_if_is_none)]
    pub progress: Option<f64>,
    #[oai(skip_serializing_if_is_none)]
    pub error: Option<JobError>,
    #[oai(skip_serializing_if_is_none)]
    pub result: Option<serde_json::Value>,
    /// Follows the request that created the job into the worker's logs.
    pub correlation_id: String,
    pub cancel_requested: bool,
    /// Receives the signed event when the job ends.
    #[oai(skip_serializing_if_is_none)]
    pub callback_url: Option<String>,
    pub queued_at: DateTime<Utc>,
    #[oai(skip_serializing_if_is_none)]
    pub started_at: Option<DateTime<Utc>>,
    #[oai(skip_serializing_if_is_none)]
    pub finished_at: Option<DateTime<Utc>>,
}

impl From<jobs::Model> for Job {
    fn from(j: jobs::Model) -> Self {
        let error = j.error_code.map(|code| JobError {
            code,
            message: j.error_message.unwrap_or_default(),
        });
        Self {
            id: j.id,
            project_id: j.project_id,
            queue: j.queue,
            asset_id: j
                .payload
                .get("asset_id")
                .and_then(|v| v.as_str())
                .and_then(|v| Uuid::parse_str(v).ok()),
            kind: j.kind,
            status: j.status,
            priority: j.priority,
            attempts: j.attempts,
            max_attempts: j.max_attempts,
            progress: j.progress,
            error,
            result: j.result,
            correlation_id: j.correlation_id,
            cancel_requested: j.cancel_requested,
            callback_url: j.callback_url,
            queued_at: j.queued_at,
            started_at: j.started_at,
            finished_at: j.finished_at,
        }
    }
}

#[derive(Debug, Object)]
pub struct JobPage {
    pub items: Vec<Job>,
    /// Pass as `after` for the next page; absent on the last page.
    #[oai(skip_serializing_if_is_none)]
    pub next_after: Option<Uuid>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Enum)]
#[serde(rename_all = "snake_case")]
#[oai(rename_all = "snake_case")]
pub enum CreateJobKind {
    /// A no-op round trip through the queue: proves workers take and finish jobs.
    Canary,
    /// Game-day work in an isolated child that misbehaves on purpose; needs `jobs.chaos`.
    Chaos,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Enum)]
#[serde(rename_all = "snake_case")]
#[oai(rename_all = "snake_case")]
pub enum JobPriority {
    /// Someone is waiting: runs before batch work of the same queue.
    Interactive,
    Batch,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Enum)]
#[serde(rename_all = "snake_case")]
#[oai(rename_all = "snake_case")]
pub enum ChaosAction {
    Sleep,
    Crash,
    Exit,
    Hang,
    Memory,
    FailTransient,
    FailPermanent,
}

#[derive(Debug, Deserialize, Serialize, Object)]
#[serde(deny_unknown_fields)]
#[oai(deny_unknown_fields)]
pub struct ChaosRequest {
    pub action: ChaosAction,
    /// For `sleep`: how long the child works, in milliseconds.
    #[oai(validator(minimum(value = "0"), maximum(value = "3600000")))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<u64>,
}

#[derive(Debug, Deserialize, Object)]
#[serde(deny_unknown_fields)]
#[oai(deny_unknown_fields)]
pub struct CreateJob {
    pub kind: CreateJobKind,
    /// Default `interactive`.
    pub priority: Option<JobPriority>,
    /// Default from `jobs.max_attempts`.
    #[oai(validator(minimum(value = "1"), maximum(value = "20")))]
    pub max_attempts: Option<i32>,
    /// An http(s) URL on a public address that receives the signed event when the job ends.
    #[oai(validator(max_length = 2048))]
    pub callback_url: Option<String>,
    /// Required for `chaos` jobs.
    pub chaos: Option<ChaosRequest>,
}

#[derive(ApiResponse)]
pub enum CreateJobResponse {
    /// Queued.
    #[oai(status = 202)]
    Accepted(Json<Job>),
}

#[derive(Debug, Object)]
pub struct WebhookSecret {
    /// Your signing secret. Verify a delivery by computing
    /// `hex(HMAC-SHA256(secret, "<t>.<raw body>"))` and comparing it with `v1` in the
    /// `Nve-Signature: t=<unix seconds>,v1=<hex>` header; reject old `t`.
    pub secret: String,
    pub header: String,
    pub scheme: String,
}

#[derive(Debug, Object)]
pub struct WebhookAttempt {
    pub attempt: i32,
    pub started_at: DateTime<Utc>,
    pub duration_ms: i32,
    #[oai(skip_serializing_if_is_none)]
    pub status_code: Option<i16>,
    #[oai(skip_serializing_if_is_none)]
    pub error: Option<String>,
}

#[derive(Debug, Object)]
pub struct Webhook {
    pub id: Uuid,
    pub url: String,
    /// `job.succeeded`, `job.failed`, `job.cancelled`; empty until the job ends.
    pub event: String,
    /// `pending`, `delivered` or `failed`.
    pub status: String,
    pub attempts: i32,
    pub max_attempts: i32,
    pub next_attempt_at: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
    #[oai(skip_serializing_if_is_none)]
    pub finished_at: Option<DateTime<Utc>>,
    pub deliveries: Vec<WebhookAttempt>,
}

#[derive(ApiResponse)]
pub enum CancelResponse {
    /// Cancelled (it was queued), or cancellation requested (it is running; its worker stops
    /// it within seconds), or already finished: the body says which.
    #[oai(status = 202)]
    Accepted(Json<Job>),
}

/// The job, if the caller may see it, with the caller's role in its project.
async fn visible(
    state: &AppState,
    user: Uuid,
    id: Uuid,
) -> Result<(jobs::Model, Option<Role>), ApiError> {
    let job = jobs::Entity::find_by_id(id)
        .one(&state.db)
        .await?
        .ok_or_else(|| ApiError::not_found("job"))?;
    match job.project_id {
        Some(project) => match membership(&state.db, project, user).await {
            Ok((_, role)) => Ok((job, Some(role))),
            Err(_) => Err(ApiError::not_found("job")),
        },
        None if job.created_by == Some(user) => Ok((job, None)),
        None => Err(ApiError::not_found("job")),
    }
}

pub(crate) fn guard_error(e: &netguard::GuardError) -> ApiError {
    ApiError::validation(vec![FieldError::new(
        "/callback_url",
        e.code(),
        e.to_string(),
    )])
}

#[OpenApi(tag = "ApiTags::Jobs")]
impl JobsApi {
    /// Queue a job in a project (editors and owners). Kinds that do media work arrive with the
    /// features that need them (ingest, render); `canary` checks the queue end to end.
    #[oai(
        path = "/projects/:id/jobs",
        method = "post",
        operation_id = "createProjectJob"
    )]
    async fn create(
        &self,
        state: Data<&AppState>,
        auth: Auth,
        req: &poem::Request,
        id: Path<Uuid>,
        body: JsonBody<CreateJob>,
    ) -> Result<CreateJobResponse, ApiError> {
        require_role(&state.db, id.0, auth.0.user_id, Role::Editor).await?;
        let body = body.0;
        // The body is decoded with serde, so the schema's bounds are enforced here.
        let mut errors = Vec::new();
        if body.max_attempts.is_some_and(|n| !(1..=20).contains(&n)) {
            errors.push(FieldError::new(
                "/max_attempts",
                "out-of-range",
                "between 1 and 20",
            ));
        }
        if body.callback_url.as_ref().is_some_and(|u| u.len() > 2048) {
            errors.push(FieldError::new(
                "/callback_url",
                "too-long",
                "at most 2048 characters",
            ));
        }
        if body
            .chaos
            .as_ref()
            .and_then(|c| c.duration_ms)
            .is_some_and(|ms| ms > 3_600_000)
        {
            errors.push(FieldError::new(
                "/chaos/duration_ms",
                "out-of-range",
                "at most 3600000",
            ));
        }
        if !errors.is_empty() {
            return Err(ApiError::validation(errors));
        }
        let (kind, payload) = match (body.kind, body.chaos) {
            (CreateJobKind::Canary, None) => (KIND_CANARY, serde_json::json!({})),
            (CreateJobKind::Canary, Some(_)) => {
                return Err(ApiError::validation(vec![FieldError::new(
                    "/chaos",
                    "not-allowed",
                    "only chaos jobs take a chaos spec",
                )]));
            }
            (CreateJobKind::Chaos, _) if !state.config.jobs.chaos => {
                return Err(ApiError::forbidden(
                    "chaos jobs are disabled on this deployment (jobs.chaos)",
                ));
            }
            (CreateJobKind::Chaos, None) => {
                return Err(ApiError::validation(vec![FieldError::new(
                    "/chaos",
                    "required",
                    "a chaos job needs a chaos spec",
                )]));
            }
            // The request has the worker's wire shape (`nve_worker::child::ChaosSpec`), which
            // the worker checks again when it decodes the payload.
            (CreateJobKind::Chaos, Some(spec)) => (
                KIND_CHAOS,
                serde_json::to_value(&spec).map_err(ApiError::internal)?,
            ),
        };
        if let Some(url) = body.callback_url.as_deref() {
            netguard::check(url, state.config.webhooks.allow_private)
                .await
                .map_err(|e| guard_error(&e))?;
        }
        let correlation_id = RequestInfo::correlation_id(req);
        let txn = nve_worker::db::begin_write(&state.db).await?;
        let row = store::enqueue(
            &txn,
            store::NewJob {
                project_id: Some(id.0),
                created_by: Some(auth.0.user_id),
                queue: store::Queue::Edit,
                kind: kind.to_owned(),
                payload,
                priority: match body.priority {
                    Some(JobPriority::Batch) => store::PRIORITY_BATCH,
                    _ => store::PRIORITY_INTERACTIVE,
                },
                max_attempts: body.max_attempts.unwrap_or(state.config.jobs.max_attempts),
                correlation_id,
                callback_url: body.callback_url.clone(),
            },
        )
        .await
        .map_err(job_error)?;
        if let Some(url) = body.callback_url.as_deref() {
            nve_worker::webhooks::enqueue(
                &txn,
                row.id,
                Some(auth.0.user_id),
                url,
                state.config.webhooks.max_attempts,
            )
            .await?;
        }
        txn.commit().await?;
        if let Err(e) = runtime::dispatch_new(&state.db, &state.dispatcher, &row).await {
            tracing::warn!(error = %e, job_id = %row.id, "cannot dispatch; withdrawing the job");
            let withdrawn = store::withdraw(&state.db, row.id).await.unwrap_or(false);
            if withdrawn {
                let mut err = ApiError::new(
                    ErrorKind::Unavailable,
                    "the job queue is unavailable; nothing was queued, try again shortly",
                );
                err.transient = true;
                err.retry_after_secs = Some(2);
                return Err(err);
            }
            // It already started somewhere (or the database is down too and the reconciler
            // will dispatch it): the job exists, so report it.
        }
        publish(&state, &row).await;
        Ok(CreateJobResponse::Accepted(Json(row.into())))
    }

    /// Your webhook signing secret and how deliveries are signed.
    #[oai(
        path = "/webhooks/secret",
        method = "get",
        operation_id = "getWebhookSecret"
    )]
    async fn webhook_secret(
        &self,
        state: Data<&AppState>,
        auth: Auth,
    ) -> Result<Json<WebhookSecret>, ApiError> {
        Ok(Json(WebhookSecret {
            secret: nve_worker::webhooks::signing_secret(&state.webhook_key, auth.0.user_id),
            header: "Nve-Signature".into(),
            scheme: "t=<unix seconds>,v1=hex(HMAC-SHA256(secret, \"<t>.<raw body>\"))".into(),
        }))
    }

    /// A job's webhook deliveries, with every attempt.
    #[oai(
        path = "/jobs/:id/webhooks",
        method = "get",
        operation_id = "listJobWebhooks"
    )]
    async fn webhooks(
        &self,
        state: Data<&AppState>,
        auth: Auth,
        id: Path<Uuid>,
    ) -> Result<Json<Vec<Webhook>>, ApiError> {
        let (job, _) = visible(&state, auth.0.user_id, id.0).await?;
        let hooks = webhooks::Entity::find()
            .filter(webhooks::Column::JobId.eq(job.id))
            .order_by_asc(webhooks::Column::Id)
            .all(&state.db)
            .await?;
        let mut out = Vec::with_capacity(hooks.len());
        for h in hooks {
            let deliveries = webhook_attempts::Entity::find()
                .filter(webhook_attempts::Column::WebhookId.eq(h.id))
                .order_by_asc(webhook_attempts::Column::Attempt)
                .all(&state.db)
                .await?
                .into_iter()
                .map(|a| WebhookAttempt {
                    attempt: a.attempt,
                    started_at: a.started_at,
                    duration_ms: a.duration_ms,
                    status_code: a.status_code,
                    error: a.error,
                })
                .collect();
            out.push(Webhook {
                id: h.id,
                url: h.url,
                event: h.event,
                status: h.status,
                attempts: h.attempts,
                max_attempts: h.max_attempts,
                next_attempt_at: h.next_attempt_at,
                created_at: h.created_at,
                finished_at: h.finished_at,
                deliveries,
            });
        }
        Ok(Json(out))
    }

    /// A job: state, progress, attempts, error and timings.
    #[oai(path = "/jobs/:id", method = "get", operation_id = "getJob")]
    async fn get(
        &self,
        state: Data<&AppState>,
        auth: Auth,
        id: Path<Uuid>,
    ) -> Result<Json<Job>, ApiError> {
        let (job, _) = visible(&state, auth.0.user_id, id.0).await?;
        Ok(Json(job.into()))
    }

    /// Cancel a job (editors and owners of its project, or whoever created a job outside
    /// projects).
    #[oai(path = "/jobs/:id", method = "delete", operation_id = "cancelJob")]
    async fn cancel(
        &self,
        state: Data<&AppState>,
        auth: Auth,
        id: Path<Uuid>,
    ) -> Result<CancelResponse, ApiError> {
        let (job, role) = visible(&state, auth.0.user_id, id.0).await?;
        if let (Some(project), Some(_)) = (job.project_id, role) {
            require_role(&state.db, project, auth.0.user_id, Role::Editor).await?;
        }
        let before = job.status.clone();
        store::cancel(&state.db, job.id).await.map_err(job_error)?;
        let job = jobs::Entity::find_by_id(job.id)
            .one(&state.db)
            .await?
            .ok_or_else(|| ApiError::not_found("job"))?;
        if job.status != before {
            publish(&state, &job).await;
        }
        Ok(CancelResponse::Accepted(Json(job.into())))
    }

    /// A project's jobs, newest first.
    #[oai(
        path = "/projects/:id/jobs",
        method = "get",
        operation_id = "listProjectJobs"
    )]
    async fn list(
        &self,
        state: Data<&AppState>,
        auth: Auth,
        id: Path<Uuid>,
        /// Only jobs in this state.
        status: Query<Option<String>>,
        /// Page size, 1 to 100.
        #[oai(validator(minimum(value = "1"), maximum(value = "100")))]
        limit: Query<Option<u64>>,
        /// The `next_after` of the previous page.
        after: Query<Option<Uuid>>,
    ) -> Result<Json<JobPage>, ApiError> {
        membership(&state.db, id.0, auth.0.user_id).await?;
        let limit = limit.0.unwrap_or(50);
        let mut q = jobs::Entity::find()
            .filter(jobs::Column::ProjectId.eq(id.0))
            .order_by_desc(jobs::Column::Id)
            .limit(limit + 1);
        if let Some(s) = status.0.as_deref() {
            let s = store::Status::parse(s).ok_or_else(|| {
                ApiError::new(
                    ErrorKind::InvalidParameter,
                    "status must be queued, running, succeeded, failed or cancelled",
                )
            })?;
            q = q.filter(jobs::Column::Status.eq(s.as_str()));
        }
        if let Some(after) = after.0 {
            q = q.filter(jobs::Column::Id.lt(after));
        }
        let mut rows = q.all(&state.db).await?;
        let has_more = rows.len() as u64 > limit;
        rows.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
        let next_after = if has_more {
            rows.last().map(|j| j.id)
        } else {
            None
        };
        Ok(Json(JobPage {
            items: rows.into_iter().map(Into::into).collect(),
            next_after,
        }))
    }
}

pub(crate) fn job_error(e: store::JobError) -> ApiError {
    match e {
        store::JobError::NotFound(_) => ApiError::not_found("job"),
        store::JobError::Database(db) => ApiError::from(db),
        other => ApiError::internal(other),
    }
}

/// Sends a committed job to its queue. A queue that is down delays the job, it does not lose
/// it: the row is recorded and the reconciler dispatches it once the queue answers again.
pub(crate) async fn dispatch_or_defer(state: &AppState, job: &jobs::Model) {
    if let Err(e) = runtime::dispatch_new(&state.db, &state.dispatcher, job).await {
        tracing::warn!(error = %e, job_id = %job.id, kind = %job.kind, "job not dispatched yet");
    }
}

/// Tells the project's sessions about a state change made here (workers publish their own).
pub(crate) async fn publish(state: &AppState, job: &jobs::Model) {
    let Some(project) = job.project_id else {
        return;
    };
    let event = nve_worker::events::JobEvent {
        project_id: project,
        job_id: job.id,
        kind: job.kind.clone(),
        status: job.status.clone(),
        progress: job.progress,
        detail: serde_json::json!({}),
    };
    nve_worker::events::EventSink::publish(&state.collab.hub, event).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_chaos_request_is_a_chaos_spec_for_the_worker() {
        use ChaosAction::*;
        for action in [
            Sleep,
            Crash,
            Exit,
            Hang,
            Memory,
            FailTransient,
            FailPermanent,
        ] {
            let wire = serde_json::to_value(ChaosRequest {
                action,
                duration_ms: Some(5),
            })
            .expect("encode");
            let spec: nve_worker::child::ChaosSpec =
                serde_json::from_value(wire.clone()).expect("the worker decodes it");
            assert_eq!(serde_json::to_value(spec).expect("encode"), wire);
        }
    }
}
