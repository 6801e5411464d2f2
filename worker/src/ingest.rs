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
use crate::jobs::Failure;

#[derive(Debug, Deserialize)]
struct ProbePayload {
    asset_id: Uuid,
}

fn db_failure(e: sea_orm::DbErr) -> Failure {
    Failure {
        code: "database-unavailable".into(),
        message: e.to_string(),
        transient: true,
    }
}

pub async fn probe(ctx: JobContext) -> Result<serde_json::Value, Failure> {
    let payload: ProbePayload =
        serde_json::from_value(ctx.row.payload.clone()).map_err(|e| Failure {
            code: "invalid-payload".into(),
            message: format!("probe payload: {e}"),
            transient: false,
        })?;
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
    let path = ctx
        .storage
        .path_of(&asset.storage_key)
        .ok_or_else(|| Failure {
            code: "storage-unavailable".into(),
            message: "the asset's storage key is not valid".into(),
            transient: false,
        })?;
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
            settle(
                &ctx,
                asset.id,
                assets::Entity::update_many()
                    .col_expr(assets::Column::Status, Expr::value("ready"))
                    .col_expr(assets::Column::Kind, Expr::value(kind))
                    .col_expr(assets::Column::Probe, Expr::value(report)),
            )
            .await?;
            Ok(serde_json::json!({"asset_id": asset.id, "status": "ready"}))
        }
        Err(failure) => {
            // A decided rejection, or the last attempt at something that keeps failing (a
            // crashing demuxer): the asset is rejected with the reason. Otherwise the job is
            // retried and the asset stays `probing`.
            let last = ctx.lease.attempt >= ctx.row.max_attempts;
            if !failure.transient || last {
                settle(
                    &ctx,
                    asset.id,
                    assets::Entity::update_many()
                        .col_expr(assets::Column::Status, Expr::value("rejected"))
                        .col_expr(assets::Column::ErrorCode, Expr::value(failure.code.clone()))
                        .col_expr(
                            assets::Column::ErrorMessage,
                            Expr::value(failure.message.clone()),
                        ),
                )
                .await?;
            }
            Err(failure)
        }
    }
}

async fn settle(
    ctx: &JobContext,
    asset: Uuid,
    update: sea_orm::UpdateMany<assets::Entity>,
) -> Result<(), Failure> {
    update
        .col_expr(assets::Column::UpdatedAt, Expr::value(Utc::now()))
        .filter(assets::Column::Id.eq(asset))
        .filter(assets::Column::Status.eq("probing"))
        .exec(&ctx.db)
        .await
        .map_err(db_failure)?;
    Ok(())
}
