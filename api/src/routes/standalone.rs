//! Renders without a project (`POST /v1/renders`), for integrators who do not keep projects:
//! a whole timeline document whose clip sources are asset ids the caller can read, or names
//! of URL sources that are imported first.
//!
//! The render still lives in a project, because renders and assets belong to projects: each
//! request makes a scratch project owned by the caller. URL sources become assets of it through
//! the same path as `assets:import` (fetch with the SSRF guard, probe, deduplication), and the
//! stored document names them by their new asset ids, so the render job sees only asset ids.
//! The job waits for those imports before it renders (`nve_worker::render`).
//!
//! Everything that can be checked without the media is checked before anything is recorded:
//! the document (the validation a project's timeline gets, with stand-in facts for sources not
//! fetched yet), the URLs, the profile, the range and the render plan. What needs the media
//! (a source shorter than its clips, a missing stream) is checked by the job once the sources
//! are probed, and fails it with the validation's or the planner's code.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::path::PathBuf;

use chrono::Utc;
use poem::web::Data;
use poem_openapi::payload::Json;
use poem_openapi::{Object, OpenApi};
use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter, Set};
use uuid::Uuid;

use nve_entity::{assets, project_members, projects};
use nve_pipelines::render::SourceMedia;
use nve_pipelines::timeline::{
    AssetInfo, Context, Source, Timeline, TimelineDoc, TrackKind, ValidationErrors,
};
use nve_worker::netguard;

use crate::auth::Auth;
use crate::error::{ApiError, FieldError, RequestInfo};
use crate::payload::{JsonBody, decode_value_at};
use crate::routes::ApiTags;
use crate::routes::projects::Role;
use crate::routes::renders::{
    CreateRenderResponse, NewRender, TimeRange, check_callback_destination, check_callback_length,
    dispatch_render, frame_range, plan_up_front, record_render, resolve_profile, to_render,
};
use crate::state::AppState;

/// URL sources one request may import.
pub const MAX_URL_SOURCES: usize = 50;
/// Longest source name (the longest id a timeline document accepts).
const MAX_NAME_LEN: usize = 128;
const MAX_URL_LEN: usize = 2048;
/// What a URL source is assumed to last until it is probed: long enough for any clip the
/// timeline limits allow at any speed, far from overflowing nanoseconds.
const STAND_IN_DURATION_NS: i64 = 100 * 24 * 3600 * 1_000_000_000;

pub struct StandaloneRendersApi;

#[derive(Debug, serde::Deserialize, Object)]
#[serde(deny_unknown_fields)]
#[oai(deny_unknown_fields)]
pub struct CreateStandaloneRender {
    /// The timeline document (docs/timeline.md, the format of a project's timeline). A clip's
    /// `asset_id` is either a name from `sources` or the id of a `ready` asset of a project
    /// the caller is a member of.
    pub timeline: serde_json::Value,
    /// URL sources: name (1 to 128 of `A-Z a-z 0-9 _ . : -`) → an http(s) URL on a public
    /// address (at most 50). Each is imported into the render's scratch project before the
    /// render starts, and every name must be used by a clip.
    pub sources: Option<BTreeMap<String, String>>,
    /// A preset name (`h264`, the default, …) or a whole profile document
    /// (docs/rendering.md).
    pub profile: Option<serde_json::Value>,
    /// Only this part of the timeline.
    pub range: Option<TimeRange>,
    /// An http(s) URL on a public address that receives the signed event when the render
    /// ends.
    #[oai(validator(max_length = 2048))]
    pub callback_url: Option<String>,
}

/// How the document uses one URL source, which decides what it is assumed to be until probed.
#[derive(Debug, Default, Clone, Copy)]
struct Use {
    image: bool,
    on_video_track: bool,
    on_audio_track: bool,
}

/// `key` as one JSON pointer segment.
fn pointer_segment(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

fn valid_name(key: &str) -> bool {
    !key.is_empty()
        && key.len() <= MAX_NAME_LEN
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b':' | b'-'))
}

/// The asset references of a document, with the track kind each sits on.
fn references(doc: &TimelineDoc) -> Vec<(String, bool, TrackKind)> {
    let mut out = Vec::new();
    for track in &doc.tracks {
        for clip in &track.clips {
            match &clip.source {
                nve_pipelines::timeline::SourceDoc::Asset { asset_id } => {
                    out.push((asset_id.clone(), false, track.kind));
                }
                nve_pipelines::timeline::SourceDoc::Image { asset_id } => {
                    out.push((asset_id.clone(), true, track.kind));
                }
                _ => {}
            }
        }
    }
    out
}

/// Facts assumed for a URL source until it is probed: whatever its uses need (a picture for a
/// video track, sound for an audio track), as long as any clip, the output's size and rate.
/// Only what holds whatever the file turns out to be is refused up front; the render job
/// checks the rest against the real facts.
fn stand_in(key: &str, u: Use, timeline_size: (u32, u32), rate: (u32, u32)) -> SourceMedia {
    SourceMedia {
        path: PathBuf::from(key),
        width: timeline_size.0,
        height: timeline_size.1,
        fps_num: if u.image { 0 } else { rate.0 },
        fps_den: if u.image { 1 } else { rate.1 },
        par_num: 1,
        par_den: 1,
        rotation: 0,
        has_video: u.image || u.on_video_track,
        has_audio: !u.image && u.on_audio_track,
        duration_ns: STAND_IN_DURATION_NS,
        is_image: u.image,
    }
}

fn timeline_problems(errors: &ValidationErrors) -> Vec<FieldError> {
    errors
        .iter()
        .map(|p| {
            FieldError::new(
                format!("/timeline{}", p.path),
                p.code.as_str(),
                p.message.clone(),
            )
        })
        .collect()
}

/// The `ready` assets among `ids` that belong to a project `user` is a member of. Anything
/// else is left out, so another user's asset is exactly as unknown as one that does not exist.
async fn readable_ready(
    state: &AppState,
    user: Uuid,
    ids: &[Uuid],
) -> Result<Vec<(assets::Model, nve_pipelines::probe::ProbeReport)>, ApiError> {
    let mut found = Vec::new();
    // Bounded IN lists: a document may reference many assets.
    for chunk in ids.chunks(500) {
        found.extend(
            assets::Entity::find()
                .filter(assets::Column::Id.is_in(chunk.iter().copied()))
                .filter(assets::Column::Status.eq("ready"))
                .all(&state.db)
                .await?,
        );
    }
    let projects: BTreeSet<Uuid> = found.iter().map(|a| a.project_id).collect();
    if projects.is_empty() {
        return Ok(Vec::new());
    }
    let member_of: HashSet<Uuid> = project_members::Entity::find()
        .filter(project_members::Column::UserId.eq(user))
        .filter(project_members::Column::ProjectId.is_in(projects))
        .all(&state.db)
        .await?
        .into_iter()
        .map(|m| m.project_id)
        .collect();
    Ok(found
        .into_iter()
        .filter(|a| member_of.contains(&a.project_id))
        .filter_map(|a| {
            let report = serde_json::from_value(a.probe.clone()?).ok()?;
            Some((a, report))
        })
        .collect())
}

#[OpenApi(tag = "ApiTags::Renders")]
impl StandaloneRendersApi {
    /// Render a timeline document without a project (API integrators).
    ///
    /// Clip sources name assets the caller can read, or URL sources (`sources`) that are
    /// imported first into a scratch project made for this render (its `project_id`;
    /// deleting the render deletes it). The document, URLs, profile, range and plan are
    /// checked before anything is queued (422 with JSON pointers); what needs the media
    /// itself is checked once the sources are probed, failing the render's job
    /// (`source-import-failed` when a URL source cannot be imported). Follow it with
    /// `GET /v1/renders/{id}`.
    #[oai(
        path = "/renders",
        method = "post",
        operation_id = "createStandaloneRender"
    )]
    async fn create(
        &self,
        state: Data<&AppState>,
        auth: Auth,
        req: &poem::Request,
        body: JsonBody<CreateStandaloneRender>,
    ) -> Result<CreateRenderResponse, ApiError> {
        let user = auth.0.user_id;
        let body = body.0;
        let profile = resolve_profile(&state, body.profile.as_ref())?;
        check_callback_length(body.callback_url.as_deref())?;
        let doc: TimelineDoc = decode_value_at(&body.timeline, "/timeline")?;
        let urls = body.sources.unwrap_or_default();

        // The sources' names and URLs, and which of them the document uses how.
        let mut problems = Vec::new();
        if urls.len() > MAX_URL_SOURCES {
            problems.push(FieldError::new(
                "/sources",
                "too-many",
                format!("at most {MAX_URL_SOURCES} URL sources"),
            ));
        }
        let refs = references(&doc);
        let mut uses: HashMap<&str, Use> = HashMap::new();
        for (id, image, kind) in &refs {
            if let Some((key, _)) = urls.get_key_value(id) {
                let u = uses.entry(key.as_str()).or_default();
                u.image |= *image;
                u.on_video_track |= *kind != TrackKind::Audio;
                u.on_audio_track |= *kind == TrackKind::Audio;
            }
        }
        for (key, url) in &urls {
            let pointer = format!("/sources/{}", pointer_segment(key));
            if !valid_name(key) {
                problems.push(FieldError::new(
                    pointer,
                    "invalid-value",
                    format!(
                        "a source name is 1 to {MAX_NAME_LEN} of A-Z a-z 0-9 _ . : - (got {key:?})"
                    ),
                ));
            } else if url.len() > MAX_URL_LEN {
                problems.push(FieldError::new(
                    pointer,
                    "too-long",
                    format!("at most {MAX_URL_LEN} characters"),
                ));
            } else if !uses.contains_key(key.as_str()) {
                problems.push(FieldError::new(
                    pointer,
                    "unused-source",
                    format!("no clip uses the source {key:?}"),
                ));
            }
        }
        if !problems.is_empty() {
            return Err(ApiError::validation(problems));
        }
        // The same guard as imports, for every URL at once (each resolves its host).
        let allow_private = state.config.media.import_allow_private;
        let checks = futures_util::future::join_all(
            urls.iter()
                .map(|(key, url)| async move { (key, netguard::check(url, allow_private).await) }),
        )
        .await;
        let mut checked = BTreeMap::new();
        for (key, result) in checks {
            match result {
                Ok(c) => {
                    checked.insert(key.clone(), c);
                }
                Err(e) => problems.push(FieldError::new(
                    format!("/sources/{}", pointer_segment(key)),
                    e.code(),
                    e.to_string(),
                )),
            }
        }
        if !problems.is_empty() {
            return Err(ApiError::validation(problems));
        }

        // Validate the document as a project's timeline is validated: real facts for assets,
        // stand-ins for URL sources.
        let ids: Vec<Uuid> = refs
            .iter()
            .filter(|(id, _, _)| !urls.contains_key(id))
            .filter_map(|(id, _, _)| Uuid::parse_str(id).ok())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let readable = readable_ready(&state, user, &ids).await?;
        let size = (doc.output.width, doc.output.height);
        let rate = doc
            .output
            .frame_rate
            .to_rate()
            .map(|r| (r.num(), r.den()))
            .unwrap_or((30, 1));
        let mut sources: HashMap<String, SourceMedia> = HashMap::new();
        let mut facts: HashMap<String, AssetInfo> = HashMap::new();
        for (asset, report) in &readable {
            let id = asset.id.to_string();
            if let Some(info) =
                crate::collab::asset_facts::info(asset.kind.as_deref(), asset.probe.as_ref())
            {
                facts.insert(id.clone(), info);
            }
            sources.insert(
                id.clone(),
                SourceMedia::from_probe(PathBuf::from(id), report),
            );
        }
        for (key, u) in &uses {
            let media = stand_in(key, *u, size, rate);
            facts.insert(
                (*key).to_owned(),
                nve_pipelines::render::file::asset_info(&media),
            );
            sources.insert((*key).to_owned(), media);
        }
        let lookup = |id: &str| facts.get(id).copied();
        let limits = state.collab.limits.clone();
        let cx = Context {
            limits: &limits,
            assets: &lookup,
        };
        let mut timeline = Timeline::from_doc(&doc, &cx)
            .map_err(|errors| ApiError::validation(timeline_problems(&errors)))?;
        let range = frame_range(&timeline, body.range)?;
        plan_up_front(&state, &timeline, &sources, &profile, range)?;
        check_callback_destination(&state, body.callback_url.as_deref()).await?;

        let render_id = Uuid::now_v7();
        let project_id = Uuid::now_v7();
        let correlation_id = RequestInfo::correlation_id(req);
        let now = Utc::now();
        let txn = nve_worker::db::begin_write(&state.db).await?;
        projects::ActiveModel {
            id: Set(project_id),
            name: Set(format!("render {render_id}")),
            description: Set(
                "Made for a standalone render (POST /v1/renders); deleting the render deletes it."
                    .into(),
            ),
            owner_id: Set(user),
            scratch: Set(true),
            created_at: Set(now),
            updated_at: Set(now),
        }
        .insert(&txn)
        .await?;
        project_members::ActiveModel {
            project_id: Set(project_id),
            user_id: Set(user),
            role: Set(Role::Owner.as_str().to_owned()),
            created_at: Set(now),
        }
        .insert(&txn)
        .await?;
        // One import per distinct URL: two names for one file share its asset.
        let mut imported: BTreeMap<String, Uuid> = BTreeMap::new();
        let mut by_url: HashMap<String, Uuid> = HashMap::new();
        let mut imports = Vec::new();
        for (key, c) in &checked {
            let asset_id = match by_url.get(c.url.as_str()) {
                Some(id) => *id,
                None => {
                    let (asset, job) = crate::routes::assets::record_import(
                        &txn,
                        &state,
                        project_id,
                        user,
                        c,
                        None,
                        correlation_id.clone(),
                    )
                    .await?;
                    by_url.insert(c.url.to_string(), asset.id);
                    imports.push(job);
                    asset.id
                }
            };
            imported.insert(key.clone(), asset_id);
        }
        // The stored document names the imported assets by id, like any other.
        for track in &mut timeline.tracks {
            for clip in &mut track.clips {
                if let Source::Asset { asset_id } | Source::Image { asset_id } = &mut clip.source
                    && let Some(id) = imported.get(asset_id.as_str())
                {
                    *asset_id = id.to_string();
                }
            }
        }
        let (render, job) = record_render(
            &txn,
            &state,
            NewRender {
                id: render_id,
                project_id,
                user,
                version: 0,
                timeline: &timeline,
                profile: &profile,
                range,
                callback_url: body.callback_url.as_deref(),
                correlation_id,
                sources: Some(&imported),
            },
        )
        .await?;
        txn.commit().await?;
        for import in &imports {
            crate::routes::jobs::dispatch_or_defer(&state, import).await;
        }
        dispatch_render(&state, &job).await;
        tracing::info!(
            render_id = %render.id,
            project_id = %project_id,
            url_sources = imported.len(),
            "standalone render queued"
        );
        Ok(CreateRenderResponse::Accepted(Json(to_render(render, job))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn source_names() {
        assert!(valid_name("intro"));
        assert!(valid_name("a-b_c.d:e"));
        assert!(!valid_name(""));
        assert!(!valid_name("a b"));
        assert!(!valid_name("a/b"));
        assert!(!valid_name(&"x".repeat(129)));
        assert_eq!(pointer_segment("a/b~c"), "a~1b~0c");
    }

    #[test]
    fn stand_ins_have_what_their_uses_need() {
        let on_video = stand_in(
            "v",
            Use {
                on_video_track: true,
                ..Use::default()
            },
            (640, 360),
            (25, 1),
        );
        assert!(on_video.has_video && !on_video.has_audio && !on_video.is_image);
        assert_eq!((on_video.fps_num, on_video.fps_den), (25, 1));
        let on_audio = stand_in(
            "a",
            Use {
                on_audio_track: true,
                ..Use::default()
            },
            (640, 360),
            (25, 1),
        );
        assert!(on_audio.has_audio && !on_audio.has_video);
        let image = stand_in(
            "i",
            Use {
                image: true,
                on_video_track: true,
                ..Use::default()
            },
            (640, 360),
            (25, 1),
        );
        assert!(image.is_image && image.has_video && !image.has_audio);
        assert_eq!(image.fps_num, 0);
    }
}
