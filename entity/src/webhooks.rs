//! The webhook outbox: one row per event to deliver; see `nve_worker::webhooks`.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "webhooks")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub job_id: Uuid,
    /// The user whose signing secret signs the event (the job's creator).
    pub owner_id: Option<Uuid>,
    #[sea_orm(column_type = "Text")]
    pub url: String,
    /// `job.succeeded`, `job.failed`, `job.cancelled`.
    pub event: String,
    /// The exact JSON document POSTed (and signed).
    pub body: Json,
    /// `pending`, `delivered` or `failed` (attempts used up, or the destination refused).
    pub status: String,
    pub attempts: i32,
    pub max_attempts: i32,
    pub next_attempt_at: DateTimeUtc,
    pub lease_owner: Option<String>,
    pub lease_expires_at: Option<DateTimeUtc>,
    pub created_at: DateTimeUtc,
    pub finished_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
