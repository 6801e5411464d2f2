//! Ingest jobs: the `probe` of an uploaded asset. The child reports what the file is, or why
//! it is not acceptable; this side records it on the asset. Writes are guarded by the asset's
//! status, so a repeated attempt changes nothing that is already decided.

use chrono::Utc;
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use serde::Deserialize;
use uuid::Uuid;

use nve_entity::assets;

use crate::child::ProbeSpec;
use crate::handlers::{JobContext, isolated};
use crate::jobs::{self, Failure};

/// The payload of every ingest job: the asset it works on.
#[derive(Debug, Deserialize)]
pub(crate) struct AssetPayload {
    pub asset_id: Uuid,
}

pub(crate) fn asset_payload(ctx: &JobContext) -> Result<AssetPayload, Failure> {
    serde_json::from_value(ctx.row.payload.clone()).map_err(|e| Failure {
        code: "invalid-payload".into(),
        message: format!("{} payload: {e}", ctx.row.kind),
        transient: false,
    })
}

pub(crate) fn db_failure(e: sea_orm::DbErr) -> Failure {
    Failure {
        code: "database-unavailable".into(),
        message: e.to_string(),
        transient: true,
    }
}

pub async fn probe(ctx: JobContext) -> Result<serde_json::Value, Failure> {
    let payload = asset_payload(&ctx)?;
    let asset = assets::Entity::find_by_id(payload.asset_id)
        .one(&ctx.db)
        .await
        .map_err(db_failure)?
        .ok_or_else(|| Failure {
            code: "asset-gone".into(),
            message: "the asset was deleted before it was probed".into(),
            transient: false,
        })?;
    if asset.status != "probing" {
        return Ok(serde_json::json!({"asset_id": asset.id, "status": asset.status}));
    }
    let path = input_file(&ctx, &asset).await?;
    let spec = ProbeSpec {
        path,
        limits: ctx.media_limits.clone(),
        timeout_secs: 60,
    };
    let args = vec![
        "exec".to_owned(),
        "probe".to_owned(),
        serde_json::to_string(&spec).unwrap_or_default(),
    ];
    match isolated(&ctx, &args).await {
        Ok(result) => {
            let report = result.get("report").cloned().unwrap_or_default();
            let kind = report
                .get("kind")
                .and_then(|k| k.as_str())
                .map(str::to_owned);
            if let Some(found) = kind.as_deref()
                && let Some(declared) = declared_kind(&asset.content_type)
                // Video and audio share containers (an .m4a sent as video/mp4 is fine); a
                // still image posing as a clip, or the reverse, is not.
                && (declared == "image") != (found == "image")
            {
                let failure = Failure {
                    code: "type-mismatch".into(),
                    message: format!(
                        "uploaded as {} but the file is {} {found}",
                        asset.content_type,
                        if found == "image" { "an" } else { "a" },
                    ),
                    transient: false,
                };
                reject(&ctx, asset.id, &failure).await?;
                return Err(failure);
            }
            settle(
                &ctx,
                asset.id,
                assets::Entity::update_many()
                    .col_expr(assets::Column::Status, Expr::value("ready"))
                    .col_expr(assets::Column::Kind, Expr::value(kind.clone()))
                    .col_expr(assets::Column::Probe, Expr::value(report.clone())),
            )
            .await?;
            if ctx.thumbnails {
                crate::derive::queue_all(&ctx, asset.id, &report).await?;
            }
            Ok(serde_json::json!({"asset_id": asset.id, "status": "ready"}))
        }
        Err(failure) => {
            // A decided rejection, or the last attempt at something that keeps failing (a
            // crashing demuxer): the asset is rejected with the reason. Otherwise the job is
            // retried and the asset stays `probing`.
            let last = ctx.lease.attempt >= ctx.row.max_attempts;
            if !failure.transient || last {
                reject(&ctx, asset.id, &failure).await?;
            }
            Err(failure)
        }
    }
}

/// A local file with the asset's original (from the read-through cache with object
/// storage). A blob that is gone fails the job for good; a storage service that does not
/// answer is retried.
pub(crate) async fn input_file(
    ctx: &JobContext,
    asset: &assets::Model,
) -> Result<std::path::PathBuf, Failure> {
    ctx.storage
        .local_input(&asset.storage_key)
        .await
        .map_err(|e| {
            let missing = matches!(&e, crate::WorkerError::Storage { source, .. }
                if source.kind() == std::io::ErrorKind::NotFound);
            Failure {
                code: if missing {
                    "original-missing"
                } else {
                    "storage-unavailable"
                }
                .into(),
                message: e.to_string(),
                transient: !missing,
            }
        })
}

/// What the client said it uploaded: `video/*`, `audio/*` or `image/*`; nothing for
/// `application/octet-stream` and the like.
fn declared_kind(content_type: &str) -> Option<&'static str> {
    match content_type
        .split('/')
        .next()?
        .trim()
        .to_ascii_lowercase()
        .as_str()
    {
        "video" => Some("video"),
        "audio" => Some("audio"),
        "image" => Some("image"),
        _ => None,
    }
}

/// Marks an asset `rejected` with the failure's code and message (only while it is still
/// being ingested: a decided asset is never changed).
pub(crate) async fn reject(
    ctx: &JobContext,
    asset: Uuid,
    failure: &Failure,
) -> Result<(), Failure> {
    settle(
        ctx,
        asset,
        assets::Entity::update_many()
            .col_expr(assets::Column::Status, Expr::value("rejected"))
            .col_expr(assets::Column::ErrorCode, Expr::value(failure.code.clone()))
            .col_expr(
                assets::Column::ErrorMessage,
                Expr::value(failure.message.clone()),
            ),
    )
    .await
}

async fn settle(
    ctx: &JobContext,
    asset: Uuid,
    update: sea_orm::UpdateMany<assets::Entity>,
) -> Result<(), Failure> {
    update
        .col_expr(assets::Column::UpdatedAt, Expr::value(Utc::now()))
        .filter(assets::Column::Id.eq(asset))
        .filter(assets::Column::Status.is_in(["importing", "probing"]))
        .exec(&ctx.db)
        .await
        .map_err(db_failure)?;
    Ok(())
}

/// A job on the same asset, project, user and correlation id as the running one.
pub(crate) fn follow_up(ctx: &JobContext, kind: &str, asset: Uuid, priority: i16) -> jobs::NewJob {
    jobs::NewJob {
        project_id: ctx.row.project_id,
        created_by: ctx.row.created_by,
        queue: jobs::Queue::Edit,
        kind: kind.into(),
        payload: serde_json::json!({"asset_id": asset}),
        priority,
        max_attempts: ctx.row.max_attempts,
        correlation_id: ctx.row.correlation_id.clone(),
        callback_url: None,
    }
}

/// Dispatches a job recorded by a handler. Failing to is not the handler's failure: the row is
/// recorded and the reconciler sends it once the queue answers again.
pub(crate) async fn send(ctx: &JobContext, row: &nve_entity::jobs::Model) {
    if let Err(e) = crate::runtime::dispatch_new(&ctx.db, &ctx.dispatcher, row).await {
        tracing::warn!(error = %e, job_id = %row.id, kind = %row.kind, "follow-up job not dispatched yet");
    }
}
