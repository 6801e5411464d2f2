//! The `render` job: a pinned timeline version to a file. The worker fetches the sources
//! (through the storage cache), hands the document, the sources' local paths and the profile
//! to an isolated child (`exec render SPEC`), then checks, stores and records the output.
//! Stage timings (fetch, plan, render, verify, upload) are kept with the render and exported.
//!
//! A standalone render (`POST /v1/renders`) may name URL sources, imported into its scratch
//! project by their own `import` and `probe` jobs in the edit queue. Its job first waits for
//! those assets to be `ready` ([`wait_for_imports`]): it only reads the database, so a worker
//! that dies while waiting leaves nothing to undo, and the next attempt simply waits again.
//! Once the sources are probed, the document is validated against their real facts (it was
//! checked against stand-ins when it was posted). Its other sources may be assets of any
//! project the render's creator is a member of.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, Instant};

use chrono::Utc;
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use serde::Deserialize;
use uuid::Uuid;

use nve_entity::{assets, jobs as job_rows, project_members, renders};
use nve_pipelines::render::SourceMedia;
use nve_pipelines::render::profiles::OutputProfile;
use nve_pipelines::timeline::{AssetInfo, Context, Timeline, TimelineLimits, ValidationErrors};

use crate::child::RenderJob;
use crate::handlers::{JobContext, isolated};
use crate::ingest::db_failure;
use crate::isolate::Progress;
use crate::jobs::{self, Failure};

/// The code of a render whose URL source could not be imported.
pub const SOURCE_IMPORT_FAILED: &str = "source-import-failed";
/// What one probe of an imported source may take, queueing included.
const PROBE_ALLOWANCE: Duration = Duration::from_secs(120);
/// Time for the import and probe jobs to be picked up at all.
const QUEUE_ALLOWANCE: Duration = Duration::from_secs(120);

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
    let imported: Option<BTreeMap<String, Uuid>> = row
        .sources
        .clone()
        .map(serde_json::from_value)
        .transpose()
        .map_err(|e| failure("invalid-payload", format!("stored sources: {e}"), false))?;

    // A standalone render's URL sources: imported and probed before anything else.
    let import_started = Instant::now();
    let aliases = match &imported {
        Some(imported) if !imported.is_empty() => wait_for_imports(&ctx, &row, imported).await?,
        _ => HashMap::new(),
    };
    let import_ms = imported
        .as_ref()
        .is_some_and(|i| !i.is_empty())
        .then(|| ms(import_started));

    // Fetch: every asset the document uses, as a local file.
    let fetch_started = Instant::now();
    let ids: Vec<Uuid> = timeline
        .tracks
        .iter()
        .flat_map(|t| t.clips.iter())
        .filter_map(|c| c.source.asset_id())
        .filter_map(|id| Uuid::parse_str(id).ok())
        .collect();
    // An import that found its content already in the project stands for that asset.
    let wanted: Vec<Uuid> = ids
        .iter()
        .map(|id| aliases.get(id).copied().unwrap_or(*id))
        .collect();
    let mut probed = HashMap::new();
    for asset in usable_assets(&ctx, &row, imported.is_some(), &wanted).await? {
        if let Some(Ok(report)) = asset
            .probe
            .clone()
            .map(serde_json::from_value::<nve_pipelines::probe::ProbeReport>)
        {
            probed.insert(asset.id, (asset, report));
        }
    }
    let found = |id: &Uuid| {
        probed.get(aliases.get(id).unwrap_or(id)).ok_or_else(|| {
            failure(
                "missing-source",
                format!("asset {id} is gone or not ready"),
                false,
            )
        })
    };
    if imported.is_some() {
        // Checked against stand-ins when it was posted; now against what the sources are,
        // before any file is fetched.
        let mut facts = HashMap::new();
        for id in &ids {
            let (_, report) = found(id)?;
            let media = SourceMedia::from_probe(std::path::PathBuf::new(), report);
            facts.insert(id.to_string(), media);
        }
        check_against_sources(&timeline, &facts)?;
    }
    let mut paths = HashMap::new();
    let mut sources = HashMap::new();
    for id in &ids {
        let (asset, report) = found(id)?;
        let path = match paths.get(&asset.id) {
            Some(p) => std::path::PathBuf::clone(p),
            None => {
                let p = crate::ingest::input_file(&ctx, asset).await?;
                paths.insert(asset.id, p.clone());
                p
            }
        };
        sources.insert(id.to_string(), SourceMedia::from_probe(path, report));
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
            if let Some(import_ms) = import_ms {
                t.insert("import_ms".into(), import_ms.into());
            }
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

/// The assets among `ids` a render may read: `ready` ones of its project, and for a standalone
/// render also of any project its creator is a member of (as when it was asked for; a creator
/// removed from a project since has lost its assets).
async fn usable_assets(
    ctx: &JobContext,
    row: &renders::Model,
    standalone: bool,
    ids: &[Uuid],
) -> Result<Vec<assets::Model>, Failure> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let mut projects = HashSet::from([row.project_id]);
    if standalone && let Some(user) = row.created_by {
        projects.extend(
            project_members::Entity::find()
                .filter(project_members::Column::UserId.eq(user))
                .all(&ctx.db)
                .await
                .map_err(db_failure)?
                .into_iter()
                .map(|m| m.project_id),
        );
    }
    let mut found = Vec::new();
    for chunk in ids.chunks(500) {
        found.extend(
            assets::Entity::find()
                .filter(assets::Column::Id.is_in(chunk.iter().copied()))
                .filter(assets::Column::Status.eq("ready"))
                .all(&ctx.db)
                .await
                .map_err(db_failure)?
                .into_iter()
                .filter(|a| projects.contains(&a.project_id)),
        );
    }
    Ok(found)
}

/// How long a standalone render waits for its imports, from when it was asked for: every
/// attempt of each import (`media.import_timeout_secs`) and its probe, the backoff between
/// attempts, and time to be picked up. Past it, something is wedged (no worker serves the
/// edit queue, say) and the render fails rather than hold a render slot for good.
fn import_wait(ctx: &JobContext) -> Duration {
    let attempts = ctx.row.max_attempts.max(1);
    let per_attempt = ctx.imports.timeout + PROBE_ALLOWANCE;
    let backoffs: Duration = (1..attempts).map(jobs::backoff).sum();
    per_attempt * u32::try_from(attempts).unwrap_or(1) + backoffs * 2 + QUEUE_ALLOWANCE
}

fn import_failed(key: &str, why: impl std::fmt::Display) -> Failure {
    failure(
        SOURCE_IMPORT_FAILED,
        format!("source {key:?}: {why}"),
        false,
    )
}

/// Waits until the asset of every URL source is `ready`, polling the database with backoff,
/// and returns the aliases of imports that found their content already in the project
/// (rejected as `duplicate`: the asset they duplicate stands for them). Fails with
/// [`SOURCE_IMPORT_FAILED`], naming the source, when an import or its probe failed, the asset
/// is gone, or the wait outlasts [`import_wait`]; stops when the job is cancelled.
async fn wait_for_imports(
    ctx: &JobContext,
    row: &renders::Model,
    imported: &BTreeMap<String, Uuid>,
) -> Result<HashMap<Uuid, Uuid>, Failure> {
    let limit = import_wait(ctx);
    let deadline = row.created_at + chrono::Duration::from_std(limit).unwrap_or_default();
    let mut delay = Duration::from_millis(100);
    let mut cancel = ctx.cancel.clone();
    loop {
        let state = import_state(ctx, row, imported).await?;
        if state.pending.is_empty() {
            return Ok(state.aliases);
        }
        ctx.progress(Progress {
            fraction: 0.0,
            detail: serde_json::json!({
                "stage": "importing",
                "sources": imported.len(),
                "sources_ready": imported.len() - state.pending.len(),
            }),
        });
        if Utc::now() > deadline {
            let key = state
                .pending
                .first()
                .map(String::as_str)
                .unwrap_or_default();
            return Err(import_failed(
                key,
                format!(
                    "still not imported {} s after the render was asked for (is a worker serving \
                     the edit queue?)",
                    limit.as_secs()
                ),
            ));
        }
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = cancel.wait_for(|c| *c) => {
                return Err(failure("cancelled", "the render was stopped", true));
            }
        }
        delay = (delay * 2).min(Duration::from_secs(2));
    }
}

/// Where the imports of a standalone render stand.
struct ImportState {
    /// Names of the sources not ready yet.
    pending: Vec<String>,
    aliases: HashMap<Uuid, Uuid>,
}

async fn import_state(
    ctx: &JobContext,
    row: &renders::Model,
    imported: &BTreeMap<String, Uuid>,
) -> Result<ImportState, Failure> {
    let find = |ids: Vec<Uuid>| {
        assets::Entity::find()
            .filter(assets::Column::ProjectId.eq(row.project_id))
            .filter(assets::Column::Id.is_in(ids))
            .all(&ctx.db)
    };
    let mut assets: HashMap<Uuid, assets::Model> = find(imported.values().copied().collect())
        .await
        .map_err(db_failure)?
        .into_iter()
        .map(|a| (a.id, a))
        .collect();
    // Duplicates: the import job's result names the asset that already had the content.
    let mut aliases = HashMap::new();
    for asset in assets.values() {
        if asset.status == "rejected" && asset.error_code.as_deref() == Some("duplicate") {
            let original = job_of(ctx, asset)
                .await?
                .and_then(|j| j.result)
                .and_then(|r| r.get("duplicate_of").cloned())
                .and_then(|v| serde_json::from_value::<Uuid>(v).ok());
            if let Some(original) = original {
                aliases.insert(asset.id, original);
            }
        }
    }
    let missing: Vec<Uuid> = aliases
        .values()
        .filter(|id| !assets.contains_key(id))
        .copied()
        .collect();
    if !missing.is_empty() {
        assets.extend(
            find(missing)
                .await
                .map_err(db_failure)?
                .into_iter()
                .map(|a| (a.id, a)),
        );
    }
    let mut pending = Vec::new();
    for (key, id) in imported {
        let id = aliases.get(id).unwrap_or(id);
        let Some(asset) = assets.get(id) else {
            return Err(import_failed(key, "its asset was deleted"));
        };
        match asset.status.as_str() {
            "ready" => {}
            "rejected" => {
                return Err(import_failed(
                    key,
                    format!(
                        "{}: {}",
                        asset.error_code.as_deref().unwrap_or("rejected"),
                        asset
                            .error_message
                            .as_deref()
                            .unwrap_or("the import failed")
                    ),
                ));
            }
            "importing" | "probing" => {
                // An import or probe job that ended without deciding the asset (cancelled,
                // or out of attempts without a verdict) never will.
                if let Some(job) = job_of(ctx, asset).await?
                    && matches!(job.status.as_str(), "failed" | "cancelled")
                {
                    return Err(import_failed(
                        key,
                        format!(
                            "{} {}: {}",
                            job.kind,
                            job.status,
                            job.error_message.as_deref().unwrap_or("no reason recorded")
                        ),
                    ));
                }
                pending.push(key.clone());
            }
            other => return Err(import_failed(key, format!("the asset is {other}"))),
        }
    }
    Ok(ImportState { pending, aliases })
}

async fn job_of(
    ctx: &JobContext,
    asset: &assets::Model,
) -> Result<Option<job_rows::Model>, Failure> {
    let Some(id) = asset.job_id else {
        return Ok(None);
    };
    job_rows::Entity::find_by_id(id)
        .one(&ctx.db)
        .await
        .map_err(db_failure)
}

/// Validates the document against its sources' probed facts (duration, streams, kind). Fails
/// with the first problem's code, every problem listed with the clip it concerns.
fn check_against_sources(
    timeline: &Timeline,
    sources: &HashMap<String, SourceMedia>,
) -> Result<(), Failure> {
    let facts: HashMap<String, AssetInfo> = sources
        .iter()
        .map(|(id, s)| (id.clone(), nve_pipelines::render::file::asset_info(s)))
        .collect();
    let lookup = |id: &str| facts.get(id).copied();
    // Its limits were checked when it was posted; only the facts are new.
    let limits = TimelineLimits::unbounded();
    let cx = Context {
        limits: &limits,
        assets: &lookup,
    };
    timeline
        .validate(&cx)
        .map_err(|errors| unfit(timeline, &errors))
}

fn unfit(timeline: &Timeline, errors: &ValidationErrors) -> Failure {
    let code = errors
        .iter()
        .next()
        .map_or("invalid-timeline", |e| e.code.as_str());
    let listed: Vec<String> = errors
        .iter()
        .map(|e| {
            format!(
                "{}{} {}: {}",
                e.path,
                clip_named(timeline, &e.path)
                    .map(|id| format!(" (clip {id:?})"))
                    .unwrap_or_default(),
                e.code.as_str(),
                e.message
            )
        })
        .collect();
    failure(
        code,
        format!(
            "the document does not fit its sources: {}",
            listed.join("; ")
        ),
        false,
    )
}

/// The id of the clip a domain path (`/tracks/T/clips/C/...`) points into: its position in the
/// stored document is not where the caller put it (clips are kept sorted).
fn clip_named<'t>(timeline: &'t Timeline, path: &str) -> Option<&'t str> {
    let mut parts = path.split('/').skip(1);
    let (Some("tracks"), Some(t), Some("clips"), Some(c)) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return None;
    };
    let track = timeline.tracks.get(t.parse::<usize>().ok()?)?;
    Some(track.clips.get(c.parse::<usize>().ok()?)?.id.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;
    use nve_pipelines::timeline::{Clip, Frames, Source, Track, TrackKind};

    fn timeline(clip_duration: i64) -> Timeline {
        let mut track = Track::new("V1", TrackKind::Video);
        track.clips.push(Clip::new(
            "intro",
            Source::Asset {
                asset_id: "a".into(),
            },
            Frames(0),
            Frames(clip_duration),
        ));
        Timeline {
            output: Default::default(),
            tracks: vec![track],
        }
    }

    fn source(duration_ns: i64) -> HashMap<String, SourceMedia> {
        HashMap::from([(
            "a".to_owned(),
            SourceMedia {
                path: "a.mp4".into(),
                width: 320,
                height: 240,
                fps_num: 30,
                fps_den: 1,
                par_num: 1,
                par_den: 1,
                rotation: 0,
                has_video: true,
                has_audio: true,
                duration_ns,
                is_image: false,
            },
        )])
    }

    #[test]
    fn documents_are_checked_against_probed_sources() {
        // 30 frames at 30 fps from a 2 s source: fine; 90 frames: past its end.
        assert!(check_against_sources(&timeline(30), &source(2_000_000_000)).is_ok());
        let f = check_against_sources(&timeline(90), &source(2_000_000_000)).expect_err("too long");
        assert_eq!(f.code, "beyond-source");
        assert!(!f.transient);
        assert!(f.message.contains("(clip \"intro\")"), "{}", f.message);
    }

    #[test]
    fn problems_name_their_clip() {
        let tl = timeline(30);
        assert_eq!(clip_named(&tl, "/tracks/0/clips/0/duration"), Some("intro"));
        assert_eq!(clip_named(&tl, "/tracks/0/clips/1"), None);
        assert_eq!(clip_named(&tl, "/output/width"), None);
    }
}
