//! One row per job; see `nve_worker::jobs` for the state machine.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "jobs")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub project_id: Option<Uuid>,
    /// Who asked for it; the owner of jobs outside projects (integrators' one-off renders).
    pub created_by: Option<Uuid>,
    /// `edit` or `render`.
    pub queue: String,
    pub kind: String,
    /// Ids and parameters only, never media.
    pub payload: Json,
    /// `queued`, `running`, `succeeded`, `failed` or `cancelled`.
    pub status: String,
    /// Lower runs first.
    pub priority: i16,
    /// Starts so far, counted when a worker claims the job.
    pub attempts: i32,
    pub max_attempts: i32,
    pub lease_owner: Option<String>,
    /// Changes on every claim; a worker may only write results while it holds the current one.
    pub lease_token: Option<Uuid>,
    pub lease_expires_at: Option<DateTimeUtc>,
    /// Not before this time (retry backoff).
    pub run_at: DateTimeUtc,
    pub progress: Option<f64>,
    pub error_code: Option<String>,
    #[sea_orm(column_type = "Text", nullable)]
    pub error_message: Option<String>,
    pub result: Option<Json>,
    pub correlation_id: String,
    pub cancel_requested: bool,
    pub queued_at: DateTimeUtc,
    pub started_at: Option<DateTimeUtc>,
    pub finished_at: Option<DateTimeUtc>,
    /// When the id was last handed to the queue backend; the reconciler re-dispatches queued
    /// jobs whose dispatch is older than its window (a lost Redis, a worker that died between
    /// taking the id and claiming the row).
    pub dispatched_at: Option<DateTimeUtc>,
    /// Where to POST the signed completion event, if anywhere.
    #[sea_orm(column_type = "Text", nullable)]
    pub callback_url: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
