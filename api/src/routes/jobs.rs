//! Reading and cancelling jobs. A job of a project is visible to its members; a job outside
//! any project only to the user who asked for it. Anyone else gets 404.

use chrono::{DateTime, Utc};
use poem::web::Data;
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};
use uuid::Uuid;

use nve_entity::jobs;
use nve_worker::jobs as store;

use crate::auth::Auth;
use crate::error::{ApiError, ErrorKind};
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

#[OpenApi(tag = "ApiTags::Jobs")]
impl JobsApi {
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
        store::cancel(&state.db, job.id)
            .await
            .map_err(|e| match e {
                store::JobError::NotFound(_) => ApiError::not_found("job"),
                store::JobError::Database(db) => ApiError::from(db),
                other => ApiError::internal(other),
            })?;
        let job = jobs::Entity::find_by_id(job.id)
            .one(&state.db)
            .await?
            .ok_or_else(|| ApiError::not_found("job"))?;
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
