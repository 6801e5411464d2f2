//! Derived media of a probed asset, each its own job so they run side by side and fail or
//! retry alone: `thumbnails` (poster and strip: pictures), `proxy` (a browser-playable
//! H.264/AAC MP4 for preview: video), `waveform` (peaks: anything with sound). Each is
//! idempotent: outputs are staged, committed under the asset's derived prefix, then recorded
//! in the asset's `derived` document under the row's lock, so two jobs finishing together
//! cannot drop each other's entry. An asset deleted meanwhile gets its files removed again.

use chrono::Utc;
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, DbBackend, EntityTrait, QueryFilter, QuerySelect};
use uuid::Uuid;

use nve_entity::assets;

use crate::child::{ProxyJob, ThumbsJob, WaveformJob};
use crate::handlers::{JobContext, KIND_PROXY, KIND_THUMBNAILS, KIND_WAVEFORM, isolated};
use crate::ingest::{asset_payload, db_failure, follow_up, input_file, send};
use crate::jobs::{self, Failure};

/// Queues the derived media that fit what the probe found (batch priority: nobody waits on
/// them the way they wait on the probe).
pub(crate) async fn queue_all(
    ctx: &JobContext,
    asset: Uuid,
    report: &serde_json::Value,
) -> Result<(), Failure> {
    let kind = report
        .get("kind")
        .and_then(|k| k.as_str())
        .unwrap_or_default();
    let has_audio = report
        .get("audio")
        .and_then(|a| a.as_array())
        .is_some_and(|a| !a.is_empty());
    let mut kinds = Vec::new();
    if matches!(kind, "video" | "image") {
        kinds.push(KIND_THUMBNAILS);
    }
    if kind == "video" {
        kinds.push(KIND_PROXY);
    }
    if kind != "image" && has_audio {
        kinds.push(KIND_WAVEFORM);
    }
    for k in kinds {
        let row = jobs::enqueue(&ctx.db, follow_up(ctx, k, asset, jobs::PRIORITY_BATCH))
            .await
            .map_err(|e| db_failure(sea_orm::DbErr::Custom(e.to_string())))?;
        send(ctx, &row).await;
    }
    Ok(())
}

fn storage_failure(e: crate::WorkerError) -> Failure {
    Failure {
        code: "storage-unavailable".into(),
        message: e.to_string(),
        transient: true,
    }
}

/// The asset, if it is still `ready` (derived media of a deleted or undecided asset are not
/// made).
async fn ready_asset(ctx: &JobContext) -> Result<Option<assets::Model>, Failure> {
    let payload = asset_payload(ctx)?;
    Ok(assets::Entity::find_by_id(payload.asset_id)
        .one(&ctx.db)
        .await
        .map_err(db_failure)?
        .filter(|a| a.status == "ready"))
}

fn prefix(asset: &assets::Model) -> String {
    format!("projects/{}/derived/{}", asset.project_id, asset.id)
}

/// Runs the child with staged outputs and commits them to `keys` (same order). Staging files
/// are removed whatever happens.
async fn produce(
    ctx: &JobContext,
    kind: &str,
    spec: serde_json::Value,
    staged: &[std::path::PathBuf],
    keys: &[String],
) -> Result<serde_json::Value, Failure> {
    let args = vec!["exec".to_owned(), kind.to_owned(), spec.to_string()];
    let result = isolated(ctx, &args).await;
    let committed = match result {
        Ok(r) => {
            let mut stored = Ok(());
            for (file, key) in staged.iter().zip(keys) {
                stored = ctx.storage.replace(file, key).await;
                if stored.is_err() {
                    break;
                }
            }
            stored.map(|()| r).map_err(storage_failure)
        }
        Err(f) => Err(f),
    };
    for file in staged {
        let _ = tokio::fs::remove_file(file).await;
    }
    committed
}

/// Merges `entries` into the asset's `derived` document under the row's lock. When the asset
/// is no longer `ready` (deleted meanwhile), the just-written `keys` are removed instead.
async fn record(
    ctx: &JobContext,
    asset: Uuid,
    entries: serde_json::Map<String, serde_json::Value>,
    keys: &[String],
) -> Result<bool, Failure> {
    let recorded = async {
        let txn = crate::db::begin_write(&ctx.db).await?;
        let mut select = assets::Entity::find_by_id(asset);
        // SQLite's IMMEDIATE transaction already holds the database's write lock.
        if ctx.db.get_database_backend() == DbBackend::Postgres {
            select = select.lock_exclusive();
        }
        let Some(row) = select.one(&txn).await?.filter(|a| a.status == "ready") else {
            return Ok(false);
        };
        let mut derived = match row.derived {
            Some(serde_json::Value::Object(map)) => map,
            _ => serde_json::Map::new(),
        };
        derived.extend(entries);
        assets::Entity::update_many()
            .col_expr(
                assets::Column::Derived,
                Expr::value(serde_json::Value::Object(derived)),
            )
            .col_expr(assets::Column::UpdatedAt, Expr::value(Utc::now()))
            .filter(assets::Column::Id.eq(asset))
            .exec(&txn)
            .await?;
        txn.commit().await?;
        Ok::<_, sea_orm::DbErr>(true)
    }
    .await
    .map_err(db_failure)?;
    if !recorded {
        for key in keys {
            let _ = ctx.storage.remove(key).await;
        }
    }
    Ok(recorded)
}

fn skipped(why: &str) -> serde_json::Value {
    serde_json::json!({ "skipped": why })
}

/// The poster and thumbnail strip of a picture-bearing asset.
pub async fn thumbnails(ctx: JobContext) -> Result<serde_json::Value, Failure> {
    let Some(asset) = ready_asset(&ctx).await? else {
        return Ok(skipped("the asset is not ready"));
    };
    let input = input_file(&ctx, &asset).await?;
    let duration = asset
        .probe
        .as_ref()
        .and_then(|p| p.get("duration"))
        .and_then(serde_json::Value::as_f64);
    let staged = [
        ctx.storage.staging_path().map_err(storage_failure)?,
        ctx.storage.staging_path().map_err(storage_failure)?,
    ];
    let keys = [
        format!("{}/poster.jpg", prefix(&asset)),
        format!("{}/strip.jpg", prefix(&asset)),
    ];
    let job = ThumbsJob {
        input,
        duration,
        poster: staged[0].clone(),
        strip: staged[1].clone(),
        spec: nve_pipelines::thumbs::ThumbSpec {
            poster_width: 640,
            tile_width: 160,
            count: 20,
            columns: 10,
        },
    };
    let spec = serde_json::to_value(&job).unwrap_or_default();
    let result = produce(&ctx, KIND_THUMBNAILS, spec, &staged, &keys).await?;
    let mut entries = serde_json::Map::new();
    entries.insert("poster_key".into(), keys[0].clone().into());
    entries.insert("strip_key".into(), keys[1].clone().into());
    entries.insert(
        "strip".into(),
        result.get("strip").cloned().unwrap_or_default(),
    );
    if !record(&ctx, asset.id, entries, &keys).await? {
        return Ok(skipped("the asset was deleted meanwhile"));
    }
    Ok(serde_json::json!({"asset_id": asset.id, "poster": keys[0], "strip": keys[1]}))
}

/// The browser proxy of a video asset.
pub async fn proxy(ctx: JobContext) -> Result<serde_json::Value, Failure> {
    single(ctx, KIND_PROXY, "proxy", "proxy.mp4", |input, output| {
        serde_json::to_value(ProxyJob {
            input,
            output,
            spec: nve_pipelines::proxy::ProxySpec::default(),
        })
    })
    .await
}

/// The waveform peaks of an asset with sound.
pub async fn waveform(ctx: JobContext) -> Result<serde_json::Value, Failure> {
    single(
        ctx,
        KIND_WAVEFORM,
        "waveform",
        "waveform.json",
        |input, output| {
            serde_json::to_value(WaveformJob {
                input,
                output,
                spec: nve_pipelines::waveform::WaveformSpec::default(),
            })
        },
    )
    .await
}

/// A derived file made by one child from the original: stored as `file` under the asset's
/// prefix and recorded as `{name}_key`, with the child's `name` result as `{name}`.
async fn single(
    ctx: JobContext,
    kind: &str,
    name: &str,
    file: &str,
    spec: impl FnOnce(
        std::path::PathBuf,
        std::path::PathBuf,
    ) -> Result<serde_json::Value, serde_json::Error>,
) -> Result<serde_json::Value, Failure> {
    let Some(asset) = ready_asset(&ctx).await? else {
        return Ok(skipped("the asset is not ready"));
    };
    let input = input_file(&ctx, &asset).await?;
    let staged = [ctx.storage.staging_path().map_err(storage_failure)?];
    let keys = [format!("{}/{file}", prefix(&asset))];
    let spec = spec(input, staged[0].clone()).unwrap_or_default();
    let result = produce(&ctx, kind, spec, &staged, &keys).await?;
    let made = result.get(name).cloned().unwrap_or_default();
    let mut entries = serde_json::Map::new();
    entries.insert(format!("{name}_key"), keys[0].clone().into());
    entries.insert(name.to_owned(), made.clone());
    if !record(&ctx, asset.id, entries, &keys).await? {
        return Ok(skipped("the asset was deleted meanwhile"));
    }
    Ok(serde_json::json!({"asset_id": asset.id, name: made}))
}
