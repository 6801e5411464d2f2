//! The append-only op log: one row per timeline version.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "edits")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub project_id: Uuid,
    #[sea_orm(primary_key, auto_increment = false)]
    pub version: i64,
    /// The version the client edited against (it may be older than `version - 1`).
    pub base_version: i64,
    pub author_id: Uuid,
    pub client_op_id: String,
    /// `edit`, `undo`, `redo`, `replace` or `restore`.
    pub kind: String,
    /// The domain ops applied (frames), as a JSON array.
    pub ops: Json,
    /// The op that reverts this version.
    pub inverse: Json,
    /// The whole document after this version, kept every `CHECKPOINT_EVERY` versions (and for
    /// replacements) so reading an old version replays at most that many ops.
    pub document: Option<Json>,
    /// For `undo`: the version undone; for `redo`: the undo version redone; for `restore`: the
    /// version restored.
    pub target_version: Option<i64>,
    /// An edit that has been undone, or an undo that has been redone.
    pub reverted: bool,
    pub created_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
