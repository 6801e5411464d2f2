//! Renders of a project's timeline: asked for with a profile (a preset name or a whole
//! profile) and an optional range, pinned to the timeline version current at that moment (or a
//! named one), checked up front (profile, range, assets, and the render plan itself, so a
//! feature the compiler cannot render exactly is refused before anything is queued), then
//! rendered by a `render` job in the render queue. The result downloads with Range support.
//!
//! A single frame of the timeline, as the editor's preview, goes through the same compiler
//! (`GET /v1/projects/{id}/frame`), so what the editor shows is what renders.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;

use chrono::{DateTime, Utc};
use poem::web::Data;
use poem_openapi::param::{Header, Path, Query};
use poem_openapi::payload::{Binary, Json};
use poem_openapi::{ApiResponse, Object, OpenApi};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect, Set,
};
use uuid::Uuid;

use nve_entity::{assets, jobs, renders};
use nve_pipelines::render::SourceMedia;
use nve_pipelines::render::profiles::{OutputProfile, ProfileSpec};
use nve_pipelines::timeline::Timeline;
use nve_worker::handlers::KIND_RENDER;
use nve_worker::jobs as store;
use nve_worker::{netguard, runtime};

use crate::auth::Auth;
use crate::error::{ApiError, FieldError, RequestInfo};
use crate::payload::JsonBody;
use crate::routes::ApiTags;
use crate::routes::assets::{DownloadResponse, etag_matches, open_range};
use crate::routes::jobs::{Job, dispatch_or_defer, guard_error, job_error, publish};
use crate::routes::projects::{Role, membership, require_role};
use crate::state::AppState;

pub struct RendersApi;

/// Part of the timeline, in seconds.
#[derive(Debug, Clone, Copy, serde::Deserialize, Object)]
#[serde(deny_unknown_fields)]
#[oai(deny_unknown_fields)]
pub struct TimeRange {
    pub start: f64,
    pub end: f64,
}

#[derive(Debug, serde::Deserialize, Object)]
#[serde(deny_unknown_fields)]
#[oai(deny_unknown_fields)]
pub struct CreateRender {
    /// A preset name (`h264` (default), `h264-fast`, `preview`, `h265`, `vp9`, `av1`, `prores`,
    /// `prores-hq`, `gif`, `webp`, `aac`, `wav`, `mp3`, `flac`, `png`, `jpeg`, `poster`) or a
    /// whole profile document (docs/rendering.md).
    pub profile: Option<serde_json::Value>,
    /// Only this part of the timeline.
    pub range: Option<TimeRange>,
    /// The timeline version to render; default the current one.
    pub version: Option<i64>,
    /// An http(s) URL on a public address that receives the signed event when the render
    /// ends.
    #[oai(validator(max_length = 2048))]
    pub callback_url: Option<String>,
}

#[derive(Debug, Object)]
pub struct Render {
    pub id: Uuid,
    /// The project rendered; for a standalone render, the scratch project made for it (its
    /// imported sources are assets there).
    pub project_id: Uuid,
    /// The pinned timeline version; 0 for a standalone render (its document was posted whole).
    pub timeline_version: i64,
    /// Standalone renders only: each URL source's name and the asset it is imported into
    /// (follow it with `GET /v1/assets/{id}`).
    #[oai(skip_serializing_if_is_none)]
    pub sources: Option<BTreeMap<String, Uuid>>,
    /// `queued`, `running`, `succeeded`, `failed` or `cancelled` (the job's).
    pub status: String,
    /// 0 to 1 while running.
    #[oai(skip_serializing_if_is_none)]
    pub progress: Option<f64>,
    /// The `render` job: events, cancellation (`DELETE /v1/jobs/{id}`), errors.
    pub job: Job,
    /// The resolved output profile.
    pub profile: serde_json::Value,
    #[oai(skip_serializing_if_is_none)]
    pub range: Option<TimeRange>,
    /// Where to download the file, once rendered (supports Range).
    #[oai(skip_serializing_if_is_none)]
    pub output_url: Option<String>,
    /// What was made: size, frames, speed, encoders, the verification probe, stage timings.
    #[oai(skip_serializing_if_is_none)]
    pub output: Option<serde_json::Value>,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Object)]
pub struct RenderPage {
    pub items: Vec<Render>,
    #[oai(skip_serializing_if_is_none)]
    pub next_after: Option<Uuid>,
}

#[derive(ApiResponse)]
pub enum CreateRenderResponse {
    /// Queued.
    #[oai(status = 202)]
    Accepted(Json<Render>),
}

#[derive(ApiResponse)]
pub enum DeleteRenderResponse {
    #[oai(status = 204)]
    Deleted,
}

#[derive(ApiResponse)]
pub enum FrameResponse {
    /// The frame as JPEG.
    #[oai(status = 200, content_type = "image/jpeg")]
    Jpeg(Binary<Vec<u8>>, #[oai(header = "Cache-Control")] String),
}

pub(crate) fn to_render(r: renders::Model, job: jobs::Model) -> Render {
    // Only the frame rate is needed to show the range: lists must not decode whole documents.
    let rate = r
        .document
        .get("output")
        .and_then(|o| o.get("frame_rate"))
        .and_then(|v| serde_json::from_value::<nve_pipelines::timeline::Rate>(v.clone()).ok());
    let range = match (r.range_start, r.range_end, rate) {
        (Some(a), Some(b), Some(rate)) => Some(TimeRange {
            start: rate.frames_to_seconds(nve_pipelines::timeline::Frames(a)),
            end: rate.frames_to_seconds(nve_pipelines::timeline::Frames(b)),
        }),
        _ => None,
    };
    let sources = r
        .sources
        .as_ref()
        .and_then(|v| serde_json::from_value::<BTreeMap<String, Uuid>>(v.clone()).ok());
    Render {
        id: r.id,
        project_id: r.project_id,
        timeline_version: r.timeline_version,
        sources,
        status: job.status.clone(),
        progress: job.progress,
        output_url: r
            .output_key
            .as_ref()
            .map(|_| format!("/v1/renders/{}/output", r.id)),
        output: r.output,
        profile: r.profile,
        range,
        created_at: r.created_at,
        job: job.into(),
    }
}

async fn visible(
    state: &AppState,
    user: Uuid,
    id: Uuid,
) -> Result<(renders::Model, jobs::Model), ApiError> {
    let render = renders::Entity::find_by_id(id)
        .one(&state.db)
        .await?
        .ok_or_else(|| ApiError::not_found("render"))?;
    if membership(&state.db, render.project_id, user)
        .await
        .is_err()
    {
        return Err(ApiError::not_found("render"));
    }
    let job = jobs::Entity::find_by_id(render.job_id)
        .one(&state.db)
        .await?
        .ok_or_else(|| ApiError::not_found("render"))?;
    Ok((render, job))
}

/// The project's ready assets a document uses, with their probe reports.
async fn ready_assets(
    state: &AppState,
    project: Uuid,
    timeline: &Timeline,
) -> Result<Vec<(assets::Model, nve_pipelines::probe::ProbeReport)>, ApiError> {
    let ids: Vec<Uuid> = crate::collab::asset_facts::in_timeline(timeline)
        .iter()
        .filter_map(|s| Uuid::parse_str(s).ok())
        .collect();
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let rows = assets::Entity::find()
        .filter(assets::Column::ProjectId.eq(project))
        .filter(assets::Column::Id.is_in(ids))
        .filter(assets::Column::Status.eq("ready"))
        .all(&state.db)
        .await?;
    Ok(rows
        .into_iter()
        .filter_map(|a| {
            let report = serde_json::from_value(a.probe.clone()?).ok()?;
            Some((a, report))
        })
        .collect())
}

/// The sources of a document for planning: local paths are not needed to plan, so the asset
/// id stands in for the path.
async fn plan_sources(
    state: &AppState,
    project: Uuid,
    timeline: &Timeline,
) -> Result<HashMap<String, SourceMedia>, ApiError> {
    Ok(ready_assets(state, project, timeline)
        .await?
        .into_iter()
        .map(|(a, report)| {
            let id = a.id.to_string();
            (
                id.clone(),
                SourceMedia::from_probe(PathBuf::from(id), &report),
            )
        })
        .collect())
}

fn render_problem(code: &str, message: String) -> ApiError {
    ApiError::validation(vec![FieldError::new("", code, message)])
}

/// The profile of a request: a preset name or a whole profile, validated, experimental codecs
/// only where the deployment allows them.
pub(crate) fn resolve_profile(
    state: &AppState,
    raw: Option<&serde_json::Value>,
) -> Result<OutputProfile, ApiError> {
    let spec: ProfileSpec = match raw {
        None => ProfileSpec::default(),
        Some(v) => serde_json::from_value(v.clone()).map_err(|e| {
            ApiError::validation(vec![FieldError::new(
                "/profile",
                "invalid-profile",
                e.to_string(),
            )])
        })?,
    };
    let profile = spec.to_profile().map_err(|e| {
        let field = match e.field() {
            Some(f) => format!("/profile/{}", f.replace('.', "/")),
            None => "/profile".to_owned(),
        };
        ApiError::validation(vec![FieldError::new(field, e.code(), e.to_string())])
    })?;
    if profile.is_experimental() && !state.config.media.experimental_codecs {
        return Err(ApiError::validation(vec![FieldError::new(
            "/profile",
            "experimental-codec",
            "this deployment does not offer experimental codecs (media.experimental_codecs)",
        )]));
    }
    Ok(profile)
}

pub(crate) fn check_callback_length(url: Option<&str>) -> Result<(), ApiError> {
    if url.is_some_and(|u| u.len() > 2048) {
        return Err(ApiError::validation(vec![FieldError::new(
            "/callback_url",
            "too-long",
            "at most 2048 characters",
        )]));
    }
    Ok(())
}

/// The callback must reach a public address (unless `webhooks.allow_private`).
pub(crate) async fn check_callback_destination(
    state: &AppState,
    url: Option<&str>,
) -> Result<(), ApiError> {
    if let Some(url) = url {
        netguard::check(url, state.config.webhooks.allow_private)
            .await
            .map_err(|e| guard_error(&e))?;
    }
    Ok(())
}

/// The requested range in timeline frames; refuses an empty timeline and a range outside it.
pub(crate) fn frame_range(
    timeline: &Timeline,
    range: Option<TimeRange>,
) -> Result<Option<(i64, i64)>, ApiError> {
    let duration = timeline.duration().get();
    if duration <= 0 {
        return Err(render_problem(
            "empty-timeline",
            "the timeline has no clips".into(),
        ));
    }
    let rate = timeline.output.frame_rate;
    let Some(r) = range else {
        return Ok(None);
    };
    let snap = |s: f64| rate.try_snap_seconds(s).map(|f| f.get());
    match (snap(r.start), snap(r.end)) {
        (Some(a), Some(b)) if a >= 0 && a < b && b <= duration => Ok(Some((a, b))),
        _ => Err(ApiError::validation(vec![FieldError::new(
            "/range",
            "invalid-range",
            format!(
                "start and end must lie in 0..{:.3} s with start < end",
                rate.frames_to_seconds(nve_pipelines::timeline::Frames(duration))
            ),
        )])),
    }
}

/// Plans the render without rendering it, so what the compiler refuses is a 422 before
/// anything is queued. `sources` stand in for the files: planning needs their facts only.
pub(crate) fn plan_up_front(
    state: &AppState,
    timeline: &Timeline,
    sources: &HashMap<String, SourceMedia>,
    profile: &OutputProfile,
    range: Option<(i64, i64)>,
) -> Result<(), ApiError> {
    let rate = timeline.output.frame_rate;
    let lookup = |k: &str| sources.get(k).cloned();
    let file = nve_pipelines::render::file::FileRender {
        timeline,
        sources: &lookup,
        profile,
        range: range.map(|(a, b)| {
            (
                rate.frames_to_seconds(nve_pipelines::timeline::Frames(a)),
                rate.frames_to_seconds(nve_pipelines::timeline::Frames(b)),
            )
        }),
        policy: runtime::encoder_policy(&state.config.media),
        output: std::path::Path::new(""),
        smart: false,
    };
    nve_pipelines::render::file::plan_file(&file)
        .map(|_| ())
        .map_err(|e| render_problem(e.code(), e.to_string()))
}

/// What a new render row holds.
pub(crate) struct NewRender<'a> {
    pub id: Uuid,
    pub project_id: Uuid,
    pub user: Uuid,
    pub version: i64,
    pub timeline: &'a Timeline,
    pub profile: &'a OutputProfile,
    pub range: Option<(i64, i64)>,
    pub callback_url: Option<&'a str>,
    pub correlation_id: String,
    /// Standalone renders: URL source name → asset id.
    pub sources: Option<&'a BTreeMap<String, Uuid>>,
}

/// Records the render, its `render` job and its webhook in `txn`; dispatch the job with
/// [`dispatch_render`] once committed.
pub(crate) async fn record_render<C: sea_orm::ConnectionTrait>(
    txn: &C,
    state: &AppState,
    new: NewRender<'_>,
) -> Result<(renders::Model, jobs::Model), ApiError> {
    let now = Utc::now();
    let job = store::enqueue(
        txn,
        store::NewJob {
            project_id: Some(new.project_id),
            created_by: Some(new.user),
            // A preview is small and wanted now: the edit queue (several at once, short jobs)
            // rather than behind a long export in the render queue.
            queue: if new.profile.name.as_deref() == Some("preview") {
                store::Queue::Edit
            } else {
                store::Queue::Render
            },
            kind: KIND_RENDER.into(),
            payload: serde_json::json!({"render_id": new.id}),
            priority: store::PRIORITY_INTERACTIVE,
            max_attempts: state.config.jobs.max_attempts,
            correlation_id: new.correlation_id,
            callback_url: new.callback_url.map(str::to_owned),
        },
    )
    .await
    .map_err(job_error)?;
    if let Some(url) = new.callback_url {
        nve_worker::webhooks::enqueue(
            txn,
            job.id,
            Some(new.user),
            url,
            state.config.webhooks.max_attempts,
        )
        .await?;
    }
    let sources = new
        .sources
        .map(serde_json::to_value)
        .transpose()
        .map_err(ApiError::internal)?;
    let render = renders::ActiveModel {
        id: Set(new.id),
        project_id: Set(new.project_id),
        created_by: Set(Some(new.user)),
        job_id: Set(job.id),
        timeline_version: Set(new.version),
        document: Set(serde_json::to_value(new.timeline).map_err(ApiError::internal)?),
        profile: Set(serde_json::to_value(new.profile).map_err(ApiError::internal)?),
        range_start: Set(new.range.map(|r| r.0)),
        range_end: Set(new.range.map(|r| r.1)),
        output_key: Set(None),
        output: Set(None),
        sources: Set(sources),
        created_at: Set(now),
        updated_at: Set(now),
    }
    .insert(txn)
    .await?;
    Ok((render, job))
}

/// Sends a committed render job to its queue and announces it.
pub(crate) async fn dispatch_render(state: &AppState, job: &jobs::Model) {
    dispatch_or_defer(state, job).await;
    publish(state, job).await;
}

#[OpenApi(tag = "ApiTags::Renders")]
impl RendersApi {
    /// Render the project's timeline (editors and owners). The version is pinned when the
    /// render is asked for: later edits do not change it. Everything that can be checked is
    /// checked before queueing: the profile, the range, that every asset is ready, and that
    /// the compiler renders every feature used exactly (422 `unsupported` otherwise).
    #[oai(
        path = "/projects/:id/renders",
        method = "post",
        operation_id = "createRender"
    )]
    async fn create(
        &self,
        state: Data<&AppState>,
        auth: Auth,
        req: &poem::Request,
        id: Path<Uuid>,
        body: JsonBody<CreateRender>,
    ) -> Result<CreateRenderResponse, ApiError> {
        require_role(&state.db, id.0, auth.0.user_id, Role::Editor).await?;
        let body = body.0;
        let profile = resolve_profile(&state, body.profile.as_ref())?;
        check_callback_length(body.callback_url.as_deref())?;
        let (version, timeline) = match body.version {
            None => {
                let (v, t) = state.collab.current_cached(&state.db, id.0).await?;
                (v, (*t).clone())
            }
            Some(v) => (
                v,
                crate::collab::service::at_version(&state.db, id.0, v).await?,
            ),
        };
        let range = frame_range(&timeline, body.range)?;
        // Plan now: a missing asset or a feature the compiler cannot render exactly is the
        // caller's to fix, and should not cost a queued job to find out.
        let sources = plan_sources(&state, id.0, &timeline).await?;
        plan_up_front(&state, &timeline, &sources, &profile, range)?;
        check_callback_destination(&state, body.callback_url.as_deref()).await?;
        let txn = nve_worker::db::begin_write(&state.db).await?;
        let (render, job) = record_render(
            &txn,
            &state,
            NewRender {
                id: Uuid::now_v7(),
                project_id: id.0,
                user: auth.0.user_id,
                version,
                timeline: &timeline,
                profile: &profile,
                range,
                callback_url: body.callback_url.as_deref(),
                correlation_id: RequestInfo::correlation_id(req),
                sources: None,
            },
        )
        .await?;
        txn.commit().await?;
        dispatch_render(&state, &job).await;
        Ok(CreateRenderResponse::Accepted(Json(to_render(render, job))))
    }

    /// A render: status, progress, profile, and the output once made.
    #[oai(path = "/renders/:id", method = "get", operation_id = "getRender")]
    async fn get(
        &self,
        state: Data<&AppState>,
        auth: Auth,
        id: Path<Uuid>,
    ) -> Result<Json<Render>, ApiError> {
        let (render, job) = visible(&state, auth.0.user_id, id.0).await?;
        Ok(Json(to_render(render, job)))
    }

    /// A project's renders, newest first.
    #[oai(
        path = "/projects/:id/renders",
        method = "get",
        operation_id = "listRenders"
    )]
    async fn list(
        &self,
        state: Data<&AppState>,
        auth: Auth,
        id: Path<Uuid>,
        #[oai(validator(minimum(value = "1"), maximum(value = "100")))] limit: Query<Option<u64>>,
        after: Query<Option<Uuid>>,
    ) -> Result<Json<RenderPage>, ApiError> {
        membership(&state.db, id.0, auth.0.user_id).await?;
        let limit = limit.0.unwrap_or(50);
        let mut q = renders::Entity::find()
            .filter(renders::Column::ProjectId.eq(id.0))
            .order_by_desc(renders::Column::Id)
            .limit(limit + 1);
        if let Some(after) = after.0 {
            q = q.filter(renders::Column::Id.lt(after));
        }
        let mut rows = q.all(&state.db).await?;
        let more = rows.len() as u64 > limit;
        rows.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
        let job_ids: Vec<Uuid> = rows.iter().map(|r| r.job_id).collect();
        let mut jobs_by_id: HashMap<Uuid, jobs::Model> = jobs::Entity::find()
            .filter(jobs::Column::Id.is_in(job_ids))
            .all(&state.db)
            .await?
            .into_iter()
            .map(|j| (j.id, j))
            .collect();
        let next_after = if more {
            rows.last().map(|r| r.id)
        } else {
            None
        };
        let items = rows
            .into_iter()
            .filter_map(|r| {
                let job = jobs_by_id.remove(&r.job_id)?;
                Some(to_render(r, job))
            })
            .collect();
        Ok(Json(RenderPage { items, next_after }))
    }

    /// Download the rendered file, with `Range` (206) and `If-None-Match` (304) support.
    #[oai(
        path = "/renders/:id/output",
        method = "get",
        operation_id = "downloadRender"
    )]
    async fn output(
        &self,
        state: Data<&AppState>,
        auth: Auth,
        id: Path<Uuid>,
        #[oai(name = "Range")] range: Header<Option<String>>,
        #[oai(name = "If-None-Match")] if_none_match: Header<Option<String>>,
    ) -> Result<DownloadResponse, ApiError> {
        let (render, _) = visible(&state, auth.0.user_id, id.0).await?;
        let key = render
            .output_key
            .clone()
            .ok_or_else(|| ApiError::not_found("render output"))?;
        let profile: OutputProfile =
            serde_json::from_value(render.profile.clone()).map_err(ApiError::internal)?;
        let etag = format!("\"{}-{}\"", render.id, render.updated_at.timestamp());
        if etag_matches(if_none_match.0.as_deref(), &etag) {
            return Ok(DownloadResponse::NotModified(etag));
        }
        open_range(
            &state.storage,
            &key,
            profile.mime_type(),
            &etag,
            range.0.as_deref(),
        )
        .await
    }

    /// Delete a render (editors and owners): a running one is cancelled, the output removed.
    /// A standalone render (owners of its scratch project) takes its scratch project with it:
    /// the imported sources, their derived media and the output.
    #[oai(
        path = "/renders/:id",
        method = "delete",
        operation_id = "deleteRender"
    )]
    async fn delete(
        &self,
        state: Data<&AppState>,
        auth: Auth,
        id: Path<Uuid>,
    ) -> Result<DeleteRenderResponse, ApiError> {
        let (render, job) = visible(&state, auth.0.user_id, id.0).await?;
        let standalone = render.sources.is_some();
        // Deleting a standalone render deletes its scratch project, which only owners may do.
        let needed = if standalone {
            Role::Owner
        } else {
            Role::Editor
        };
        require_role(&state.db, render.project_id, auth.0.user_id, needed).await?;
        if matches!(job.status.as_str(), "queued" | "running") {
            store::cancel(&state.db, job.id).await.map_err(job_error)?;
        }
        if standalone {
            // A standalone render's scratch project exists for it alone: its imported
            // sources, job and output go with it.
            crate::routes::projects::delete_with_media(&state, render.project_id).await?;
            return Ok(DeleteRenderResponse::Deleted);
        }
        renders::Entity::delete_by_id(render.id)
            .exec(&state.db)
            .await?;
        if let Some(key) = &render.output_key
            && let Err(e) = state.storage.remove(key).await
        {
            tracing::warn!(error = %e, %key, "render output not removed");
        }
        Ok(DeleteRenderResponse::Deleted)
    }

    /// The timeline's picture at time `t` (seconds) as JPEG, `w` pixels wide (default 640,
    /// 16 to 1920), through the render compiler: the editor's preview is the render. Cached
    /// by the client per version (`version` pins one; default the current).
    #[oai(
        path = "/projects/:id/frame",
        method = "get",
        operation_id = "getTimelineFrame"
    )]
    async fn frame(
        &self,
        state: Data<&AppState>,
        auth: Auth,
        id: Path<Uuid>,
        t: Query<f64>,
        #[oai(validator(minimum(value = "16"), maximum(value = "1920")))] w: Query<Option<u32>>,
        version: Query<Option<i64>>,
    ) -> Result<FrameResponse, ApiError> {
        membership(&state.db, id.0, auth.0.user_id).await?;
        let width = w.0.unwrap_or(640);
        if !(16..=1920).contains(&width) {
            return Err(ApiError::validation(vec![FieldError::new(
                "/w",
                "out-of-range",
                "between 16 and 1920",
            )]));
        }
        let pinned = version.0.is_some();
        let timeline = match version.0 {
            None => (*state.collab.current_cached(&state.db, id.0).await?.1).clone(),
            Some(v) => crate::collab::service::at_version(&state.db, id.0, v).await?,
        };
        let rate = timeline.output.frame_rate;
        let duration = timeline.duration().get();
        let frame = rate
            .try_snap_seconds(t.0)
            .map(|f| f.get())
            .filter(|f| *f >= 0 && *f < duration.max(1))
            .ok_or_else(|| {
                ApiError::validation(vec![FieldError::new(
                    "/t",
                    "out-of-range",
                    "a time on the timeline",
                )])
            })?;
        // Local files for the assets in view: the API reads them through storage like a
        // worker (a local directory directly, object storage through the cache).
        let mut sources = HashMap::new();
        for (a, report) in ready_assets(&state, id.0, &timeline).await? {
            let path = state
                .storage
                .local_input(&a.storage_key)
                .await
                .map_err(crate::routes::assets::storage_error)?;
            sources.insert(a.id.to_string(), SourceMedia::from_probe(path, &report));
        }
        let jpeg = tokio::task::spawn_blocking(move || {
            let lookup = |k: &str| sources.get(k).cloned();
            nve_pipelines::render::frame_at(&timeline, &lookup, frame, width)
                .and_then(|f| f.to_jpeg(85))
        })
        .await
        .map_err(ApiError::internal)?
        .map_err(|e| {
            if e.is_client_error() {
                render_problem(e.code(), e.to_string())
            } else {
                ApiError::internal(e)
            }
        })?;
        // A pinned version's frame never changes; the current one may at the next edit.
        let cache = if pinned {
            "private, max-age=86400, immutable".to_owned()
        } else {
            "no-store".to_owned()
        };
        Ok(FrameResponse::Jpeg(Binary(jpeg), cache))
    }
}
