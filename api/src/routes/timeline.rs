//! The project's timeline over HTTP: read, replace, edit, undo/redo, history, snapshots.
//! The WebSocket (`/v1/projects/{id}/live`) carries the same edits through the same path.

use chrono::{DateTime, Utc};
use poem::web::Data;
use poem_openapi::param::{Header, Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect, Set,
};
use serde::Deserialize;
use uuid::Uuid;

use nve_entity::{edits, snapshots};

use crate::auth::Auth;
use crate::collab::service::{self, Change, Committed};
use crate::domain::{self, Fields, accepted};
use crate::error::{ApiError, ErrorKind};
use crate::payload::JsonBody;
use crate::routes::ApiTags;
use crate::routes::accounts::Created;
use crate::routes::projects::{Role, membership, require_role};
use crate::state::AppState;

pub struct TimelineApi;

#[derive(Debug, Object)]
pub struct TimelineState {
    pub version: i64,
    /// The timeline document, times in seconds (see docs/timeline.md).
    pub document: serde_json::Value,
}

#[derive(ApiResponse)]
pub enum TimelineResponse {
    /// The current timeline; `ETag` is its version, for `If-Match` on `PUT`.
    #[oai(status = 200)]
    Ok(Json<TimelineState>, #[oai(header = "ETag")] String),
}

#[derive(Debug, Deserialize, Object)]
#[serde(deny_unknown_fields)]
#[oai(deny_unknown_fields)]
pub struct EditRequest {
    /// The version the ops were made against. Older versions are accepted when nothing since
    /// touched what these ops touch (otherwise 409 with `current_version`).
    #[oai(validator(minimum(value = "0")))]
    pub base_version: i64,
    /// Unique per edit (a UUID). Sending the same id again returns the first result instead of
    /// applying twice, so retries are safe.
    #[oai(validator(min_length = 1, max_length = 128, pattern = r"^[!-~]+$"))]
    pub client_op_id: String,
    /// Edit operations (docs/timeline.md), applied all or nothing as one version.
    #[oai(validator(min_items = 1))]
    pub ops: Vec<serde_json::Value>,
}

#[derive(Debug, Deserialize, Object)]
#[serde(deny_unknown_fields)]
#[oai(deny_unknown_fields)]
pub struct ClientOpRequest {
    #[oai(validator(min_length = 1, max_length = 128, pattern = r"^[!-~]+$"))]
    pub client_op_id: String,
}

#[derive(Debug, Deserialize, Object)]
#[serde(deny_unknown_fields)]
#[oai(deny_unknown_fields)]
pub struct RestoreRequest {
    /// The version whose document becomes the new current version.
    #[oai(validator(minimum(value = "0")))]
    pub version: i64,
    #[oai(validator(min_length = 1, max_length = 128, pattern = r"^[!-~]+$"))]
    pub client_op_id: String,
}

#[derive(Debug, Object)]
pub struct EditResult {
    /// The version this edit produced.
    pub version: i64,
    pub client_op_id: String,
    /// True when this `client_op_id` had been applied before; nothing new happened.
    pub duplicate: bool,
}

impl From<Committed> for EditResult {
    fn from(c: Committed) -> Self {
        Self {
            version: c.version,
            client_op_id: c.client_op_id,
            duplicate: c.duplicate,
        }
    }
}

#[derive(Debug, Object)]
pub struct VersionInfo {
    pub version: i64,
    pub base_version: i64,
    pub author_id: Uuid,
    /// `edit`, `undo`, `redo`, `replace` or `restore`.
    pub kind: String,
    pub client_op_id: String,
    /// For undo: the version undone; redo: the undo redone; restore: the version restored.
    #[oai(skip_serializing_if_is_none)]
    pub target_version: Option<i64>,
    /// An edit that was undone, or an undo that was redone.
    pub reverted: bool,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Deserialize, Object)]
#[serde(deny_unknown_fields)]
#[oai(deny_unknown_fields)]
pub struct CreateSnapshot {
    #[oai(validator(min_length = 1, max_length = 100))]
    pub name: String,
}

#[derive(Debug, Object)]
pub struct Snapshot {
    pub id: Uuid,
    pub name: String,
    pub version: i64,
    pub created_by: Uuid,
    pub created_at: DateTime<Utc>,
}

impl From<snapshots::Model> for Snapshot {
    fn from(s: snapshots::Model) -> Self {
        Self {
            id: s.id,
            name: s.name,
            version: s.version,
            created_by: s.created_by,
            created_at: s.created_at,
        }
    }
}

fn etag(version: i64) -> String {
    format!("\"{version}\"")
}

/// Accepts `"12"`, `W/"12"` or `12`.
fn parse_if_match(value: &str) -> Option<i64> {
    let v = value.trim();
    let v = v.strip_prefix("W/").unwrap_or(v);
    v.trim_matches('"').parse().ok()
}

#[OpenApi(tag = "ApiTags::Timeline")]
impl TimelineApi {
    /// The project's timeline and its version.
    #[oai(
        path = "/projects/:id/timeline",
        method = "get",
        operation_id = "getTimeline"
    )]
    async fn get(
        &self,
        state: Data<&AppState>,
        auth: Auth,
        id: Path<Uuid>,
    ) -> Result<TimelineResponse, ApiError> {
        membership(&state.db, id.0, auth.0.user_id).await?;
        let (version, tl) = state.collab.current_cached(&state.db, id.0).await?;
        Ok(TimelineResponse::Ok(
            Json(TimelineState {
                version,
                document: serde_json::to_value(tl.to_doc()).map_err(ApiError::internal)?,
            }),
            etag(version),
        ))
    }

    /// Replace the whole document (integrators). `If-Match` must carry the current version
    /// (the `ETag` of `GET`); the replacement is validated and recorded in the history like
    /// any edit, so it can be undone.
    #[oai(
        path = "/projects/:id/timeline",
        method = "put",
        operation_id = "replaceTimeline"
    )]
    async fn put(
        &self,
        state: Data<&AppState>,
        auth: Auth,
        id: Path<Uuid>,
        #[oai(name = "If-Match")] if_match: Header<Option<String>>,
        body: JsonBody<serde_json::Value>,
    ) -> Result<TimelineResponse, ApiError> {
        require_role(&state.db, id.0, auth.0.user_id, Role::Editor).await?;
        let expected = match if_match.0.as_deref() {
            None => {
                return Err(ApiError::new(
                    ErrorKind::IfMatchRequired,
                    "send If-Match with the version from GET /timeline (its ETag)",
                ));
            }
            Some(v) => parse_if_match(v).ok_or_else(|| {
                ApiError::new(
                    ErrorKind::InvalidParameter,
                    format!("If-Match `{v}` is not a version"),
                )
            })?,
        };
        let committed = state
            .collab
            .commit(
                id.0,
                auth.0.user_id,
                &format!("put-{}", Uuid::now_v7()),
                Change::Replace {
                    expected_version: expected,
                    doc: body.0,
                },
            )
            .await?;
        let tl = service::at_version(&state.db, id.0, committed.version).await?;
        Ok(TimelineResponse::Ok(
            Json(TimelineState {
                version: committed.version,
                document: serde_json::to_value(tl.to_doc()).map_err(ApiError::internal)?,
            }),
            etag(committed.version),
        ))
    }

    /// Apply edit operations as one new version.
    #[oai(
        path = "/projects/:id/edits",
        method = "post",
        operation_id = "editTimeline"
    )]
    async fn edit(
        &self,
        state: Data<&AppState>,
        auth: Auth,
        id: Path<Uuid>,
        body: JsonBody<EditRequest>,
    ) -> Result<Json<EditResult>, ApiError> {
        let b = body.0;
        let change = Change::Ops {
            base_version: b.base_version,
            ops: b.ops,
        };
        commit_as_editor(&state, &auth, id.0, &b.client_op_id, change).await
    }

    /// Undo the caller's most recent change (as a new version).
    #[oai(path = "/projects/:id/undo", method = "post", operation_id = "undo")]
    async fn undo(
        &self,
        state: Data<&AppState>,
        auth: Auth,
        id: Path<Uuid>,
        body: JsonBody<ClientOpRequest>,
    ) -> Result<Json<EditResult>, ApiError> {
        commit_as_editor(&state, &auth, id.0, &body.0.client_op_id, Change::Undo).await
    }

    /// Redo the caller's most recently undone change (as a new version).
    #[oai(path = "/projects/:id/redo", method = "post", operation_id = "redo")]
    async fn redo(
        &self,
        state: Data<&AppState>,
        auth: Auth,
        id: Path<Uuid>,
        body: JsonBody<ClientOpRequest>,
    ) -> Result<Json<EditResult>, ApiError> {
        commit_as_editor(&state, &auth, id.0, &body.0.client_op_id, Change::Redo).await
    }

    /// The history: one entry per version, oldest first.
    #[oai(
        path = "/projects/:id/timeline/versions",
        method = "get",
        operation_id = "listVersions"
    )]
    async fn versions(
        &self,
        state: Data<&AppState>,
        auth: Auth,
        id: Path<Uuid>,
        /// Versions after this one (default 0: from the start).
        after: Query<Option<i64>>,
        /// Page size, 1 to 500.
        #[oai(validator(minimum(value = "1"), maximum(value = "500")))]
        limit: Query<Option<u64>>,
    ) -> Result<Json<Vec<VersionInfo>>, ApiError> {
        membership(&state.db, id.0, auth.0.user_id).await?;
        let rows = edits::Entity::find()
            .filter(edits::Column::ProjectId.eq(id.0))
            .filter(edits::Column::Version.gt(after.0.unwrap_or(0)))
            .order_by_asc(edits::Column::Version)
            .limit(limit.0.unwrap_or(100))
            .all(&state.db)
            .await?;
        Ok(Json(
            rows.into_iter()
                .map(|r| VersionInfo {
                    version: r.version,
                    base_version: r.base_version,
                    author_id: r.author_id,
                    kind: r.kind,
                    client_op_id: r.client_op_id,
                    target_version: r.target_version,
                    reverted: r.reverted,
                    created_at: r.created_at,
                })
                .collect(),
        ))
    }

    /// The document as it was at a version.
    #[oai(
        path = "/projects/:id/timeline/versions/:version",
        method = "get",
        operation_id = "getVersion"
    )]
    async fn version(
        &self,
        state: Data<&AppState>,
        auth: Auth,
        id: Path<Uuid>,
        version: Path<i64>,
    ) -> Result<Json<TimelineState>, ApiError> {
        membership(&state.db, id.0, auth.0.user_id).await?;
        let tl = service::at_version(&state.db, id.0, version.0).await?;
        Ok(Json(TimelineState {
            version: version.0,
            document: serde_json::to_value(tl.to_doc()).map_err(ApiError::internal)?,
        }))
    }

    /// Make an old version current again, as a new version (undoable).
    #[oai(
        path = "/projects/:id/timeline/restore",
        method = "post",
        operation_id = "restoreVersion"
    )]
    async fn restore(
        &self,
        state: Data<&AppState>,
        auth: Auth,
        id: Path<Uuid>,
        body: JsonBody<RestoreRequest>,
    ) -> Result<Json<EditResult>, ApiError> {
        let change = Change::Restore {
            version: body.0.version,
        };
        commit_as_editor(&state, &auth, id.0, &body.0.client_op_id, change).await
    }

    /// Name the current version.
    #[oai(
        path = "/projects/:id/snapshots",
        method = "post",
        operation_id = "createSnapshot"
    )]
    async fn snapshot(
        &self,
        state: Data<&AppState>,
        auth: Auth,
        id: Path<Uuid>,
        body: JsonBody<CreateSnapshot>,
    ) -> Result<Created<Snapshot>, ApiError> {
        require_role(&state.db, id.0, auth.0.user_id, Role::Editor).await?;
        let mut f = Fields::default();
        let name = f.check(
            "/name",
            domain::key_name(&body.0.name)
                .map_err(|(c, m)| (c, m.replace("key name", "snapshot name"))),
        );
        f.finish()?;
        let (version, _) = state.collab.current_cached(&state.db, id.0).await?;
        let row = snapshots::ActiveModel {
            id: Set(Uuid::now_v7()),
            project_id: Set(id.0),
            name: Set(accepted(name)?),
            version: Set(version),
            created_by: Set(auth.0.user_id),
            created_at: Set(Utc::now()),
        }
        .insert(&state.db)
        .await?;
        Ok(Created::Created(Json(row.into())))
    }

    /// Named snapshots, newest first.
    #[oai(
        path = "/projects/:id/snapshots",
        method = "get",
        operation_id = "listSnapshots"
    )]
    async fn snapshots(
        &self,
        state: Data<&AppState>,
        auth: Auth,
        id: Path<Uuid>,
    ) -> Result<Json<Vec<Snapshot>>, ApiError> {
        membership(&state.db, id.0, auth.0.user_id).await?;
        let rows = snapshots::Entity::find()
            .filter(snapshots::Column::ProjectId.eq(id.0))
            .order_by_desc(snapshots::Column::Id)
            .all(&state.db)
            .await?;
        Ok(Json(rows.into_iter().map(Into::into).collect()))
    }
}

/// Every change needs the editor role, checked on each request; then the shared commit path.
async fn commit_as_editor(
    state: &AppState,
    auth: &Auth,
    project: Uuid,
    client_op_id: &str,
    change: Change,
) -> Result<Json<EditResult>, ApiError> {
    require_role(&state.db, project, auth.0.user_id, Role::Editor).await?;
    let committed = state
        .collab
        .commit(project, auth.0.user_id, client_op_id, change)
        .await?;
    Ok(Json(committed.into()))
}

#[cfg(test)]
mod tests {
    use super::parse_if_match;

    #[test]
    fn if_match_forms() {
        assert_eq!(parse_if_match("\"12\""), Some(12));
        assert_eq!(parse_if_match("W/\"3\""), Some(3));
        assert_eq!(parse_if_match("7"), Some(7));
        assert_eq!(parse_if_match("*"), None);
    }
}
