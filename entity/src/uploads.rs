//! A resumable upload in progress (tus); see `nve_api::routes::uploads`.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "uploads")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub project_id: Uuid,
    pub user_id: Uuid,
    /// Declared total size in bytes.
    pub length: i64,
    /// Bytes stored so far (the tus `Upload-Offset`).
    pub received_bytes: i64,
    /// Start offsets of the stored parts, in order (JSON array of integers).
    pub parts: Json,
    /// Sanitized display name.
    #[sea_orm(column_type = "Text")]
    pub filename: String,
    pub content_type: String,
    /// The asset created when the last byte arrived.
    pub asset_id: Option<Uuid>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
    pub expires_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
