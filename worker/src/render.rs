//! The `render` job: a pinned timeline version to a file. The worker fetches the sources
//! (through the storage cache), hands the document, the sources' local paths and the profile
//! to an isolated child (`exec render SPEC`), then checks, stores and records the output.
//! Stage timings (fetch, plan, render, verify, upload) are kept with the render and exported.

use std::collections::HashMap;
use std::time::Instant;

use chrono::Utc;
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use serde::Deserialize;
use uuid::Uuid;

use nve_entity::{assets, renders};
use nve_pipelines::render::SourceMedia;
use nve_pipelines::render::profiles::OutputProfile;
use nve_pipelines::timeline::Timeline;

use crate::child::RenderJob;
use crate::handlers::{JobContext, isolated};
use crate::ingest::db_failure;
use crate::jobs::Failure;

#[derive(Debug, Deserialize)]
struct RenderPayload {
    render_id: Uuid,
}

fn failure(code: &str, message: impl Into<String>, transient: bool) -> Failure {
    Failure {
        code: code.into(),
        message: message.into(),
        transient,
    }
}

fn ms(since: Instant) -> u64 {
    u64::try_from(since.elapsed().as_millis()).unwrap_or(u64::MAX)
}

/// Where a render's output is stored.
pub fn output_key(render: &renders::Model, profile: &OutputProfile) -> String {
    format!(
        "projects/{}/renders/{}.{}",
        render.project_id,
        render.id,
        profile.extension()
    )
}

pub async fn render(ctx: JobContext) -> Result<serde_json::Value, Failure> {
    let payload: RenderPayload = serde_json::from_value(ctx.row.payload.clone())
        .map_err(|e| failure("invalid-payload", format!("render payload: {e}"), false))?;
    let Some(row) = renders::Entity::find_by_id(payload.render_id)
        .one(&ctx.db)
        .await
        .map_err(db_failure)?
    else {
        return Ok(serde_json::json!({"skipped": "the render was deleted"}));
    };
    if row.output_key.is_some() {
        // A repeated attempt after the output was recorded: nothing left to do.
        return Ok(serde_json::json!({"render_id": row.id, "output": row.output}));
    }
    let timeline: Timeline = serde_json::from_value(row.document.clone())
        .map_err(|e| failure("invalid-payload", format!("stored document: {e}"), false))?;
    let profile: OutputProfile = serde_json::from_value(row.profile.clone())
        .map_err(|e| failure("invalid-payload", format!("stored profile: {e}"), false))?;

    // Fetch: every asset the document uses, as a local file.
    let fetch_started = Instant::now();
    let ids: Vec<Uuid> = timeline
        .tracks
        .iter()
        .flat_map(|t| t.clips.iter())
        .filter_map(|c| c.source.asset_id())
        .filter_map(|id| Uuid::parse_str(id).ok())
        .collect();
    let rows = if ids.is_empty() {
        Vec::new()
    } else {
        assets::Entity::find()
            .filter(assets::Column::ProjectId.eq(row.project_id))
            .filter(assets::Column::Id.is_in(ids.clone()))
            .filter(assets::Column::Status.eq("ready"))
            .all(&ctx.db)
            .await
            .map_err(db_failure)?
    };
    let mut sources = HashMap::new();
    for asset in rows {
        let report: nve_pipelines::probe::ProbeReport =
            match asset.probe.clone().map(serde_json::from_value) {
                Some(Ok(r)) => r,
                _ => continue,
            };
        let path = crate::ingest::input_file(&ctx, &asset).await?;
        sources.insert(asset.id.to_string(), SourceMedia::from_probe(path, &report));
    }
    if let Some(missing) = ids.iter().find(|id| !sources.contains_key(&id.to_string())) {
        return Err(failure(
            "missing-source",
            format!("asset {missing} is gone or not ready"),
            false,
        ));
    }
    let fetch_ms = ms(fetch_started);

    let storage_failure =
        |e: crate::WorkerError| failure("storage-unavailable", e.to_string(), true);
    // A directory of its own: the child may leave side files (the MP4 muxer's) when it is
    // stopped, and removing the directory removes them all.
    let work = ctx.storage.staging_path().map_err(storage_failure)?;
    tokio::fs::create_dir_all(&work)
        .await
        .map_err(|e| failure("storage-unavailable", e.to_string(), true))?;
    let output = work.join(format!("output.{}", profile.extension()));
    let spec_path = work.join("spec.json");
    let rate = timeline.output.frame_rate;
    let range = match (row.range_start, row.range_end) {
        (Some(a), Some(b)) => Some((
            rate.frames_to_seconds(nve_pipelines::timeline::Frames(a)),
            rate.frames_to_seconds(nve_pipelines::timeline::Frames(b)),
        )),
        _ => None,
    };
    let job = RenderJob {
        timeline,
        sources,
        profile: profile.clone(),
        range,
        policy: ctx.encoders,
        output: output.clone(),
        smart: true,
    };
    let written = serde_json::to_vec(&job)
        .map_err(|e| failure("internal", e.to_string(), false))
        .map(|bytes| std::fs::write(&spec_path, bytes));
    let written = match written {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(failure("storage-unavailable", e.to_string(), true)),
        Err(f) => Err(f),
    };
    if let Err(f) = written {
        let _ = tokio::fs::remove_dir_all(&work).await;
        return Err(f);
    }
    let args = vec![
        "exec".to_owned(),
        "render".to_owned(),
        spec_path.display().to_string(),
    ];
    let result = isolated(&ctx, &args).await;
    let result = match result {
        Ok(r) => r,
        Err(f) => {
            // A cancelled or failed render leaves nothing behind.
            let _ = tokio::fs::remove_dir_all(&work).await;
            return Err(f);
        }
    };
    let mut made = result.get("render").cloned().unwrap_or_default();

    let upload_started = Instant::now();
    let key = output_key(&row, &profile);
    let stored = ctx.storage.replace(&output, &key).await;
    let _ = tokio::fs::remove_dir_all(&work).await;
    stored.map_err(storage_failure)?;
    let upload_ms = ms(upload_started);
    if let Some(map) = made.as_object_mut() {
        let timings = map
            .entry("timings")
            .or_insert_with(|| serde_json::json!({}));
        if let Some(t) = timings.as_object_mut() {
            t.insert("fetch_ms".into(), fetch_ms.into());
            t.insert("upload_ms".into(), upload_ms.into());
        }
    }
    let speed = made.get("speed").and_then(serde_json::Value::as_f64);
    if let Some(speed) = speed {
        metrics::histogram!("nve_render_speed_ratio", "profile" => profile_label(&profile))
            .record(speed);
    }
    if let Some(timings) = made.get("timings").and_then(|t| t.as_object()) {
        for (stage, value) in timings {
            if let Some(v) = value.as_u64() {
                metrics::histogram!(
                    "nve_render_stage_seconds",
                    "stage" => stage.trim_end_matches("_ms").to_owned()
                )
                .record(v as f64 / 1000.0);
            }
        }
    }
    let updated = renders::Entity::update_many()
        .col_expr(renders::Column::OutputKey, Expr::value(key.clone()))
        .col_expr(renders::Column::Output, Expr::value(made.clone()))
        .col_expr(renders::Column::UpdatedAt, Expr::value(Utc::now()))
        .filter(renders::Column::Id.eq(row.id))
        .exec(&ctx.db)
        .await
        .map_err(db_failure)?;
    if updated.rows_affected == 0 {
        // Deleted while it rendered.
        let _ = ctx.storage.remove(&key).await;
        return Ok(serde_json::json!({"skipped": "the render was deleted"}));
    }
    Ok(serde_json::json!({"render_id": row.id, "output": made}))
}

fn profile_label(p: &OutputProfile) -> String {
    p.name.clone().unwrap_or_else(|| "custom".into())
}
