//! A render of a pinned timeline version; see `nve_api::routes::renders` and the `render` job.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "renders")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub project_id: Uuid,
    pub created_by: Option<Uuid>,
    /// The `render` job; its status, progress and error are the render's.
    pub job_id: Uuid,
    pub timeline_version: i64,
    /// The timeline document at that version (`nve_pipelines::timeline::Timeline`).
    pub document: Json,
    /// The resolved output profile (`nve_pipelines::render::profiles::OutputProfile`).
    pub profile: Json,
    /// Timeline frames [start, end) when only a range is rendered.
    pub range_start: Option<i64>,
    pub range_end: Option<i64>,
    pub output_key: Option<String>,
    /// Verification probe, encoder, stage timings.
    pub output: Option<Json>,
    /// Standalone renders only: URL source name → the asset it was imported into (the job
    /// waits for those imports before rendering). `None` for a project's render.
    pub sources: Option<Json>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
