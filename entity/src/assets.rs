//! A media asset of a project; see `nve_api::routes::assets` and the `probe` job.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "assets")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub project_id: Uuid,
    pub uploaded_by: Option<Uuid>,
    /// `importing`, `probing`, `ready` or `rejected`.
    pub status: String,
    /// `video`, `audio` or `image`, once probed.
    pub kind: Option<String>,
    /// Sanitized display name; never a path.
    #[sea_orm(column_type = "Text")]
    pub original_name: String,
    /// What the client declared.
    pub content_type: String,
    pub size_bytes: i64,
    /// Hex SHA-256 of the content.
    pub sha256: String,
    /// Where the original is stored (server-generated, content-addressed).
    pub storage_key: String,
    /// The probe report (`nve_pipelines::probe::ProbeReport`).
    pub probe: Option<Json>,
    /// Derived media: storage keys of the poster and thumbnail strip, and the strip's index.
    pub derived: Option<Json>,
    pub error_code: Option<String>,
    #[sea_orm(column_type = "Text", nullable)]
    pub error_message: Option<String>,
    /// The ingest job.
    pub job_id: Option<Uuid>,
    /// The URL an imported asset was fetched from.
    #[sea_orm(column_type = "Text", nullable)]
    pub source_url: Option<String>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
