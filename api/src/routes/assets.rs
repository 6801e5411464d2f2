//! Media assets: streaming uploads (hashed and counted on the way to disk, never held in
//! memory, refused with 413 the moment they cross the limit), content de-duplication per
//! project, the probe job, reading back, deleting, and downloads with HTTP Range.

use std::time::Duration;

use chrono::{DateTime, Utc};
use poem::web::Data;
use poem_openapi::param::{Header, Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect, Set,
};
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;
use uuid::Uuid;

use nve_entity::assets;
use nve_worker::handlers::{KIND_IMPORT, KIND_PROBE};
use nve_worker::jobs as store;
use nve_worker::storage::Storage;

use crate::auth::Auth;
use crate::error::FieldError;
use crate::error::{ApiError, ErrorKind};
use crate::payload::{JsonBody, MediaBody};
use crate::routes::ApiTags;
use crate::routes::projects::{Role, membership, require_role};
use crate::state::AppState;

pub struct AssetsApi;

#[derive(Debug, Object)]
pub struct AssetError {
    /// Stable code: `empty`, `not-media`, `truncated`, `unsupported-codec`, `too-long`,
    /// `too-large`, … (docs/media.md).
    pub code: String,
    pub message: String,
}

#[derive(Debug, Object)]
pub struct Asset {
    pub id: Uuid,
    pub project_id: Uuid,
    /// `importing`, `probing`, `ready` or `rejected`.
    pub status: String,
    /// `video`, `audio` or `image`, once probed.
    #[oai(skip_serializing_if_is_none)]
    pub kind: Option<String>,
    /// The uploaded file's name, cleaned for display.
    pub name: String,
    pub content_type: String,
    pub size_bytes: i64,
    pub sha256: String,
    /// Container, duration, streams (codec, size, frame rate, rotation, audio rate and
    /// channels) and tags, once probed.
    #[oai(skip_serializing_if_is_none)]
    pub probe: Option<serde_json::Value>,
    #[oai(skip_serializing_if_is_none)]
    pub error: Option<AssetError>,
    /// The ingest job (the import, then the probe); follow it for progress.
    #[oai(skip_serializing_if_is_none)]
    pub job_id: Option<Uuid>,
    /// The URL an imported asset was fetched from.
    #[oai(skip_serializing_if_is_none)]
    pub source_url: Option<String>,
    /// Where to download the original (supports Range).
    pub original_url: String,
    /// A JPEG poster frame, once derived.
    #[oai(skip_serializing_if_is_none)]
    pub poster_url: Option<String>,
    /// A JPEG sprite sheet of evenly spaced frames, once derived; `thumbnails` says where each
    /// tile is.
    #[oai(skip_serializing_if_is_none)]
    pub thumbnails_url: Option<String>,
    #[oai(skip_serializing_if_is_none)]
    pub thumbnails: Option<ThumbnailIndex>,
    /// A browser-playable H.264/AAC MP4 (at most 540 lines, faststart) for preview, once
    /// derived; supports Range, so a `<video>` element can seek in it.
    #[oai(skip_serializing_if_is_none)]
    pub proxy_url: Option<String>,
    /// The proxy's size, frame rate, duration and whether it has sound.
    #[oai(skip_serializing_if_is_none)]
    pub proxy: Option<serde_json::Value>,
    /// Waveform peaks (JSON: min/max per bucket at several zoom levels), once derived.
    #[oai(skip_serializing_if_is_none)]
    pub waveform_url: Option<String>,
    /// The waveform's sample rate, channels and levels (without their data).
    #[oai(skip_serializing_if_is_none)]
    pub waveform: Option<serde_json::Value>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<assets::Model> for Asset {
    fn from(a: assets::Model) -> Self {
        let error = a.error_code.map(|code| AssetError {
            code,
            message: a.error_message.unwrap_or_default(),
        });
        let derived = a.derived.as_ref();
        let thumbnails = derived
            .and_then(|d| d.get("strip"))
            .and_then(|s| serde_json::from_value::<ThumbnailIndex>(s.clone()).ok());
        let has = |key: &str| derived.and_then(|d| d.get(key)).is_some();
        // Until an import has its content, the hash column holds a unique placeholder.
        let importing = a.status == "importing";
        Asset {
            poster_url: has("poster_key").then(|| format!("/v1/assets/{}/poster", a.id)),
            thumbnails_url: has("strip_key").then(|| format!("/v1/assets/{}/thumbnails", a.id)),
            thumbnails,
            proxy_url: has("proxy_key").then(|| format!("/v1/assets/{}/proxy", a.id)),
            proxy: derived.and_then(|d| d.get("proxy")).cloned(),
            waveform_url: has("waveform_key").then(|| format!("/v1/assets/{}/waveform", a.id)),
            waveform: derived.and_then(|d| d.get("waveform")).cloned(),
            original_url: format!("/v1/assets/{}/original", a.id),
            id: a.id,
            project_id: a.project_id,
            status: a.status,
            kind: a.kind,
            name: a.original_name,
            content_type: a.content_type,
            size_bytes: a.size_bytes,
            sha256: if importing { String::new() } else { a.sha256 },
            probe: a.probe,
            error,
            job_id: a.job_id,
            source_url: a.source_url,
            created_at: a.created_at,
            updated_at: a.updated_at,
        }
    }
}

/// The layout of a thumbnail sprite sheet.
#[derive(Debug, Object, serde::Deserialize)]
pub struct ThumbnailIndex {
    pub tile_width: u32,
    pub tile_height: u32,
    pub columns: u32,
    pub rows: u32,
    /// Seconds into the clip of each tile, left to right, top to bottom.
    pub times: Vec<f64>,
}

#[derive(Debug, Object)]
pub struct AssetPage {
    pub items: Vec<Asset>,
    #[oai(skip_serializing_if_is_none)]
    pub next_after: Option<Uuid>,
}

#[derive(ApiResponse)]
pub enum UploadResponse {
    /// Stored; probing has been queued.
    #[oai(status = 201)]
    Created(Json<Asset>),
    /// This project already has this exact content: the existing asset.
    #[oai(status = 200)]
    Existing(Json<Asset>),
}

/// An import by URL.
#[derive(Debug, serde::Deserialize, Object)]
#[serde(deny_unknown_fields)]
#[oai(deny_unknown_fields)]
pub struct ImportAsset {
    /// An http(s) URL on a public address. Redirects are followed (at most 5), each one
    /// checked the same way.
    #[oai(validator(max_length = 2048))]
    pub url: String,
    /// Display name; default: the last segment of the URL's path.
    #[oai(validator(max_length = 1024))]
    pub name: Option<String>,
}

#[derive(ApiResponse)]
pub enum ImportResponse {
    /// Accepted: the asset is `importing`; its `job_id` is the fetch job, then the probe's.
    #[oai(status = 202)]
    Accepted(Json<Asset>),
}

#[derive(ApiResponse)]
pub enum DeleteResponse {
    #[oai(status = 204)]
    Deleted,
}

/// A stored file's bytes. Documented as any media type: an original is served with the type
/// it was uploaded with, derived pictures as `image/jpeg`; the `Content-Type` header says
/// which.
pub struct FileBody(poem::Body);

impl poem_openapi::payload::Payload for FileBody {
    const CONTENT_TYPE: &'static str = "*/*";

    fn schema_ref() -> poem_openapi::registry::MetaSchemaRef {
        poem_openapi::registry::MetaSchemaRef::Inline(Box::new(
            poem_openapi::registry::MetaSchema::new_with_format("string", "binary"),
        ))
    }
}

impl poem::IntoResponse for FileBody {
    fn into_response(self) -> poem::Response {
        poem::Response::builder().body(self.0)
    }
}

#[derive(ApiResponse)]
pub enum DownloadResponse {
    /// The whole file.
    #[oai(status = 200)]
    Full(
        FileBody,
        #[oai(header = "Content-Type")] String,
        #[oai(header = "Content-Length")] u64,
        #[oai(header = "Accept-Ranges")] String,
        #[oai(header = "ETag")] String,
    ),
    /// The requested byte range.
    #[oai(status = 206)]
    Partial(
        FileBody,
        #[oai(header = "Content-Type")] String,
        #[oai(header = "Content-Length")] u64,
        #[oai(header = "Content-Range")] String,
        #[oai(header = "Accept-Ranges")] String,
        #[oai(header = "ETag")] String,
    ),
    /// `If-None-Match` matched.
    #[oai(status = 304)]
    NotModified(#[oai(header = "ETag")] String),
    /// The range lies outside the file.
    #[oai(status = 416)]
    RangeNotSatisfiable(#[oai(header = "Content-Range")] String),
}

/// A display name from a client-supplied file name: the last path segment, without control,
/// bidirectional-override or other invisible formatting characters, trimmed, at most 255
/// characters. Never used as a path.
pub fn display_name(raw: Option<&str>) -> String {
    let raw = raw.unwrap_or_default();
    let last = raw.rsplit(['/', '\\']).next().unwrap_or_default();
    let cleaned: String = last
        .chars()
        .filter(|c| {
            !c.is_control()
                && !matches!(
                    *c,
                    '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}'
                        | '\u{FEFF}'
                )
        })
        .collect();
    let trimmed = cleaned.trim().trim_matches('.').trim();
    let short: String = trimmed.chars().take(255).collect();
    if short.is_empty() {
        "upload".into()
    } else {
        short
    }
}

/// Records an import by URL in `txn`: the asset, `importing`, and its `import` job (to
/// dispatch once committed). Named `name`, or after the last segment of the URL's path.
/// Standalone renders import their URL sources through here too, so those go through the
/// same fetch, probe and deduplication as any import.
pub(crate) async fn record_import<C: sea_orm::ConnectionTrait>(
    txn: &C,
    state: &AppState,
    project: Uuid,
    user: Uuid,
    checked: &nve_worker::netguard::CheckedUrl,
    name: Option<&str>,
    correlation_id: String,
) -> Result<(assets::Model, nve_entity::jobs::Model), ApiError> {
    let from_url = checked
        .url
        .path_segments()
        .and_then(|mut segments| segments.next_back())
        .map(|s| {
            url::form_urlencoded::parse(format!("n={s}").as_bytes())
                .next()
                .map(|(_, v)| v.into_owned())
                .unwrap_or_default()
        });
    let name = display_name(name.or(from_url.as_deref()));
    let now = Utc::now();
    let asset_id = Uuid::now_v7();
    let job = store::enqueue(
        txn,
        store::NewJob {
            project_id: Some(project),
            created_by: Some(user),
            queue: store::Queue::Edit,
            kind: KIND_IMPORT.into(),
            payload: serde_json::json!({"asset_id": asset_id}),
            priority: store::PRIORITY_INTERACTIVE,
            max_attempts: state.config.jobs.max_attempts,
            correlation_id,
            callback_url: None,
        },
    )
    .await
    .map_err(|e| match e {
        store::JobError::Database(db) => ApiError::from(db),
        other => ApiError::internal(other),
    })?;
    let asset = assets::ActiveModel {
        id: Set(asset_id),
        project_id: Set(project),
        uploaded_by: Set(Some(user)),
        status: Set("importing".into()),
        kind: Set(None),
        original_name: Set(name),
        content_type: Set("application/octet-stream".into()),
        size_bytes: Set(0),
        // Unique per project: a placeholder until the content is known.
        sha256: Set(format!("importing:{asset_id}")),
        storage_key: Set(String::new()),
        probe: Set(None),
        derived: Set(None),
        error_code: Set(None),
        error_message: Set(None),
        job_id: Set(Some(job.id)),
        source_url: Set(Some(checked.url.to_string())),
        created_at: Set(now),
        updated_at: Set(now),
    }
    .insert(txn)
    .await?;
    Ok((asset, job))
}

/// Why an upload stopped.
enum Stop {
    /// Over the limit; the rest of the body, to drain.
    TooLarge(BodyStream),
    Idle,
    Read(String),
    Write(std::io::Error),
}

type BodyStream = std::pin::Pin<
    Box<dyn futures_util::Stream<Item = Result<bytes::Bytes, std::io::Error>> + Send>,
>;

/// Past the limit, this much more is read and discarded before answering 413, so a client
/// still sending its body reads the answer instead of a reset connection; beyond it the
/// connection is simply closed.
const DRAIN_LIMIT: u64 = 32 * 1024 * 1024;

pub(crate) async fn drain(
    mut rest: impl futures_util::Stream<Item = Result<bytes::Bytes, std::io::Error>> + Unpin,
    idle: Duration,
) {
    use futures_util::StreamExt;
    let mut seen = 0u64;
    while seen < DRAIN_LIMIT {
        match tokio::time::timeout(idle, rest.next()).await {
            Ok(Some(Ok(chunk))) => seen += chunk.len() as u64,
            _ => break,
        }
    }
}

/// Streams `body` into `path`, hashing and counting. Nothing is held in memory beyond one
/// chunk.
async fn stream_to_file(
    body: poem::Body,
    path: &std::path::Path,
    limit: u64,
    idle: Duration,
) -> Result<(u64, String), Stop> {
    use futures_util::StreamExt;
    let mut file = tokio::fs::File::create(path).await.map_err(Stop::Write)?;
    let mut stream: BodyStream = Box::pin(body.into_bytes_stream());
    let mut hasher = Sha256::new();
    let mut size = 0u64;
    loop {
        let next = tokio::time::timeout(idle, stream.next())
            .await
            .map_err(|_| Stop::Idle)?;
        let Some(chunk) = next else { break };
        let chunk = chunk.map_err(|e| Stop::Read(e.to_string()))?;
        size = size.saturating_add(chunk.len() as u64);
        if size > limit {
            drop(file);
            return Err(Stop::TooLarge(stream));
        }
        hasher.update(&chunk);
        file.write_all(&chunk).await.map_err(Stop::Write)?;
    }
    file.sync_all().await.map_err(Stop::Write)?;
    Ok((size, hex::encode(hasher.finalize())))
}

async fn visible(
    state: &AppState,
    user: Uuid,
    id: Uuid,
) -> Result<(assets::Model, Role), ApiError> {
    let asset = assets::Entity::find_by_id(id)
        .one(&state.db)
        .await?
        .filter(|a| a.status != "deleted")
        .ok_or_else(|| ApiError::not_found("asset"))?;
    match membership(&state.db, asset.project_id, user).await {
        Ok((_, role)) => Ok((asset, role)),
        Err(_) => Err(ApiError::not_found("asset")),
    }
}

pub(crate) fn storage_error(e: nve_worker::WorkerError) -> ApiError {
    let mut err = ApiError::new(ErrorKind::Unavailable, format!("media storage: {e}"));
    err.transient = true;
    err
}

/// Parses a single `bytes=a-b`, `bytes=a-` or `bytes=-n` range against `size`.
/// `Ok(None)`: no (usable) Range header; `Err(())`: unsatisfiable.
fn parse_range(header: Option<&str>, size: u64) -> Result<Option<(u64, u64)>, ()> {
    let Some(spec) = header.and_then(|h| h.trim().strip_prefix("bytes=")) else {
        return Ok(None);
    };
    // Several ranges would need multipart/byteranges; serve the whole file instead (allowed).
    if spec.contains(',') {
        return Ok(None);
    }
    let Some((a, b)) = spec.split_once('-') else {
        return Ok(None);
    };
    let (a, b) = (a.trim(), b.trim());
    let (start, end) = match (a.is_empty(), b.is_empty()) {
        (true, false) => {
            let n: u64 = b.parse().map_err(|_| ())?;
            if n == 0 || size == 0 {
                return Err(());
            }
            (size.saturating_sub(n), size - 1)
        }
        (false, _) => {
            let start: u64 = a.parse().map_err(|_| ())?;
            let end: u64 = if b.is_empty() {
                size.saturating_sub(1)
            } else {
                b.parse::<u64>()
                    .map_err(|_| ())?
                    .min(size.saturating_sub(1))
            };
            (start, end)
        }
        (true, true) => return Ok(None),
    };
    if size == 0 || start >= size || start > end {
        return Err(());
    }
    Ok(Some((start, end)))
}

#[OpenApi(tag = "ApiTags::Assets")]
impl AssetsApi {
    /// Upload a clip, image or music file (editors and owners). The body is the file itself
    /// (`Content-Type: video/*`, `audio/*`, `image/*` or `application/octet-stream`); the name
    /// goes in `?filename=`. Bodies over `media.max_upload_mb` get 413 at once and leave
    /// nothing behind. The same content uploaded again returns the existing asset (200).
    #[oai(
        path = "/projects/:id/assets",
        method = "post",
        operation_id = "uploadAsset"
    )]
    async fn upload(
        &self,
        state: Data<&AppState>,
        auth: Auth,
        req: &poem::Request,
        id: Path<Uuid>,
        /// The file's name, for display only.
        filename: Query<Option<String>>,
        body: MediaBody,
    ) -> Result<UploadResponse, ApiError> {
        require_role(&state.db, id.0, auth.0.user_id, Role::Editor).await?;
        let media = &state.config.media;
        let limit = media.max_upload_mb.saturating_mul(1024 * 1024);
        let too_large = || {
            ApiError::new(
                ErrorKind::PayloadTooLarge,
                format!("uploads are limited to {} MiB", media.max_upload_mb),
            )
        };
        let idle = Duration::from_secs(media.upload_idle_timeout_secs);
        let declared = req
            .headers()
            .get("content-length")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|n| n > limit) {
            drain(body.body.into_bytes_stream(), idle).await;
            return Err(too_large());
        }
        let staged = state.storage.staging_path().map_err(storage_error)?;
        let streamed = stream_to_file(body.body, &staged, limit, idle).await;
        let (size, sha) = match streamed {
            Ok(v) => v,
            Err(stop) => {
                let _ = tokio::fs::remove_file(&staged).await;
                return Err(match stop {
                    Stop::TooLarge(rest) => {
                        drain(rest, idle).await;
                        too_large()
                    }
                    Stop::Idle => ApiError::new(
                        ErrorKind::InvalidParameter,
                        format!(
                            "the upload stalled for {} s and was cut",
                            media.upload_idle_timeout_secs
                        ),
                    ),
                    Stop::Read(e) => ApiError::new(
                        ErrorKind::InvalidParameter,
                        format!("the upload was interrupted: {e}"),
                    ),
                    Stop::Write(e) => storage_error(nve_worker::WorkerError::Storage {
                        path: "staging".into(),
                        source: e,
                    }),
                });
            }
        };
        let stored = Staged {
            path: staged,
            size,
            sha256: sha,
            name: display_name(filename.0.as_deref()),
            content_type: body.content_type.clone(),
        };
        let correlation_id = crate::error::RequestInfo::correlation_id(req);
        Ok(
            match register_staged(&state, id.0, auth.0.user_id, stored, correlation_id).await? {
                Registered::Created(asset) => UploadResponse::Created(Json(asset.into())),
                Registered::Existing(asset) => UploadResponse::Existing(Json(asset.into())),
            },
        )
    }

    /// Import a file from a URL (editors and owners), for integrators whose media already
    /// lives on a web server or in a bucket with signed URLs. The fetch runs in a worker with
    /// the upload size limit, `media.import_timeout_secs`, and the same refusal of private,
    /// loopback and link-local destinations as webhooks (checked again at every redirect).
    /// The asset answers `importing`, then goes through probing like an upload; content the
    /// project already has ends `rejected` with code `duplicate`, naming the existing asset.
    #[oai(
        path = "/projects/:id/assets:import",
        method = "post",
        operation_id = "importAsset"
    )]
    async fn import(
        &self,
        state: Data<&AppState>,
        auth: Auth,
        req: &poem::Request,
        id: Path<Uuid>,
        body: JsonBody<ImportAsset>,
    ) -> Result<ImportResponse, ApiError> {
        require_role(&state.db, id.0, auth.0.user_id, Role::Editor).await?;
        let body = body.0;
        if body.url.len() > 2048 {
            return Err(ApiError::validation(vec![FieldError::new(
                "/url",
                "too-long",
                "at most 2048 characters",
            )]));
        }
        let checked =
            nve_worker::netguard::check(&body.url, state.config.media.import_allow_private)
                .await
                .map_err(|e| {
                    ApiError::validation(vec![FieldError::new("/url", e.code(), e.to_string())])
                })?;
        let correlation_id = crate::error::RequestInfo::correlation_id(req);
        let txn = nve_worker::db::begin_write(&state.db).await?;
        let (asset, job) = record_import(
            &txn,
            &state,
            id.0,
            auth.0.user_id,
            &checked,
            body.name.as_deref(),
            correlation_id,
        )
        .await?;
        txn.commit().await?;
        crate::routes::jobs::dispatch_or_defer(&state, &job).await;
        Ok(ImportResponse::Accepted(Json(asset.into())))
    }

    /// An asset: status, probe summary, error.
    #[oai(path = "/assets/:id", method = "get", operation_id = "getAsset")]
    async fn get(
        &self,
        state: Data<&AppState>,
        auth: Auth,
        id: Path<Uuid>,
    ) -> Result<Json<Asset>, ApiError> {
        let (asset, _) = visible(&state, auth.0.user_id, id.0).await?;
        Ok(Json(asset.into()))
    }

    /// A project's assets, newest first.
    #[oai(
        path = "/projects/:id/assets",
        method = "get",
        operation_id = "listAssets"
    )]
    // Each argument is one documented HTTP parameter.
    #[allow(clippy::too_many_arguments)]
    async fn list(
        &self,
        state: Data<&AppState>,
        auth: Auth,
        id: Path<Uuid>,
        /// `importing`, `probing`, `ready` or `rejected`.
        status: Query<Option<String>>,
        /// `video`, `audio` or `image`.
        kind: Query<Option<String>>,
        #[oai(validator(minimum(value = "1"), maximum(value = "100")))] limit: Query<Option<u64>>,
        after: Query<Option<Uuid>>,
    ) -> Result<Json<AssetPage>, ApiError> {
        membership(&state.db, id.0, auth.0.user_id).await?;
        let limit = limit.0.unwrap_or(50);
        let mut q = assets::Entity::find()
            .filter(assets::Column::ProjectId.eq(id.0))
            .filter(assets::Column::Status.ne("deleted"))
            .order_by_desc(assets::Column::Id)
            .limit(limit + 1);
        if let Some(s) = status.0.as_deref() {
            if !matches!(s, "importing" | "probing" | "ready" | "rejected") {
                return Err(ApiError::new(
                    ErrorKind::InvalidParameter,
                    "status must be importing, probing, ready or rejected",
                ));
            }
            q = q.filter(assets::Column::Status.eq(s));
        }
        if let Some(k) = kind.0.as_deref() {
            if !matches!(k, "video" | "audio" | "image") {
                return Err(ApiError::new(
                    ErrorKind::InvalidParameter,
                    "kind must be video, audio or image",
                ));
            }
            q = q.filter(assets::Column::Kind.eq(k));
        }
        if let Some(after) = after.0 {
            q = q.filter(assets::Column::Id.lt(after));
        }
        let mut rows = q.all(&state.db).await?;
        let more = rows.len() as u64 > limit;
        rows.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
        let next_after = if more {
            rows.last().map(|a| a.id)
        } else {
            None
        };
        Ok(Json(AssetPage {
            items: rows.into_iter().map(Into::into).collect(),
            next_after,
        }))
    }

    /// Delete an asset (editors and owners): 409 while the timeline uses it.
    #[oai(path = "/assets/:id", method = "delete", operation_id = "deleteAsset")]
    async fn delete(
        &self,
        state: Data<&AppState>,
        auth: Auth,
        id: Path<Uuid>,
    ) -> Result<DeleteResponse, ApiError> {
        let (asset, _) = visible(&state, auth.0.user_id, id.0).await?;
        require_role(&state.db, asset.project_id, auth.0.user_id, Role::Editor).await?;
        let (_, timeline) = state
            .collab
            .current_cached(&state.db, asset.project_id)
            .await?;
        if crate::collab::asset_facts::in_timeline(&timeline).contains(&asset.id.to_string()) {
            return Err(ApiError::new(
                ErrorKind::Conflict,
                "the timeline uses this asset; remove its clips first",
            ));
        }
        // The row stays, without its media, so the timeline's history (which may name the
        // asset) stays readable; the placeholder hash frees the content for a new upload.
        let deleted = assets::Entity::update_many()
            .col_expr(assets::Column::Status, Expr::value("deleted"))
            .col_expr(
                assets::Column::Sha256,
                Expr::value(format!("deleted:{}", asset.id)),
            )
            .col_expr(
                assets::Column::Derived,
                Expr::value(Option::<serde_json::Value>::None),
            )
            .col_expr(assets::Column::UpdatedAt, Expr::value(Utc::now()))
            .filter(assets::Column::Id.eq(asset.id))
            .filter(assets::Column::Status.ne("deleted"))
            .exec(&state.db)
            .await?;
        if deleted.rows_affected == 0 {
            return Err(ApiError::not_found("asset"));
        }
        if !asset.storage_key.is_empty() {
            state
                .storage
                .remove(&asset.storage_key)
                .await
                .map_err(storage_error)?;
        }
        state
            .storage
            .remove_prefix(&format!(
                "projects/{}/derived/{}",
                asset.project_id, asset.id
            ))
            .await
            .map_err(storage_error)?;
        Ok(DeleteResponse::Deleted)
    }

    /// Download the original, with `Range` (206) and `If-None-Match` (304) support.
    #[oai(
        path = "/assets/:id/original",
        method = "get",
        operation_id = "downloadAssetOriginal"
    )]
    async fn original(
        &self,
        state: Data<&AppState>,
        auth: Auth,
        id: Path<Uuid>,
        #[oai(name = "Range")] range: Header<Option<String>>,
        #[oai(name = "If-None-Match")] if_none_match: Header<Option<String>>,
    ) -> Result<DownloadResponse, ApiError> {
        let (asset, _) = visible(&state, auth.0.user_id, id.0).await?;
        let etag = format!("\"{}\"", asset.sha256);
        if etag_matches(if_none_match.0.as_deref(), &etag) {
            return Ok(DownloadResponse::NotModified(etag));
        }
        open_range(
            &state.storage,
            &asset.storage_key,
            &asset.content_type,
            &etag,
            range.0.as_deref(),
        )
        .await
    }

    /// The poster frame (JPEG), once derived; 404 before.
    #[oai(
        path = "/assets/:id/poster",
        method = "get",
        operation_id = "downloadAssetPoster"
    )]
    async fn poster(
        &self,
        state: Data<&AppState>,
        auth: Auth,
        id: Path<Uuid>,
        #[oai(name = "Range")] range: Header<Option<String>>,
        #[oai(name = "If-None-Match")] if_none_match: Header<Option<String>>,
    ) -> Result<DownloadResponse, ApiError> {
        derived_file(
            &state,
            auth.0.user_id,
            id.0,
            "poster_key",
            "image/jpeg",
            range.0,
            if_none_match.0,
        )
        .await
    }

    /// The thumbnail sprite sheet (JPEG), once derived; the asset's `thumbnails` gives its
    /// layout and times.
    #[oai(
        path = "/assets/:id/thumbnails",
        method = "get",
        operation_id = "downloadAssetThumbnails"
    )]
    async fn thumbnails(
        &self,
        state: Data<&AppState>,
        auth: Auth,
        id: Path<Uuid>,
        #[oai(name = "Range")] range: Header<Option<String>>,
        #[oai(name = "If-None-Match")] if_none_match: Header<Option<String>>,
    ) -> Result<DownloadResponse, ApiError> {
        derived_file(
            &state,
            auth.0.user_id,
            id.0,
            "strip_key",
            "image/jpeg",
            range.0,
            if_none_match.0,
        )
        .await
    }

    /// The browser proxy (H.264/AAC MP4), once derived; with Range, for `<video>` seeking.
    #[oai(
        path = "/assets/:id/proxy",
        method = "get",
        operation_id = "downloadAssetProxy"
    )]
    async fn proxy(
        &self,
        state: Data<&AppState>,
        auth: Auth,
        id: Path<Uuid>,
        #[oai(name = "Range")] range: Header<Option<String>>,
        #[oai(name = "If-None-Match")] if_none_match: Header<Option<String>>,
    ) -> Result<DownloadResponse, ApiError> {
        derived_file(
            &state,
            auth.0.user_id,
            id.0,
            "proxy_key",
            "video/mp4",
            range.0,
            if_none_match.0,
        )
        .await
    }

    /// Waveform peaks (JSON), once derived: per level, min/max pairs per bucket and channel
    /// (docs/media.md has the layout).
    #[oai(
        path = "/assets/:id/waveform",
        method = "get",
        operation_id = "downloadAssetWaveform"
    )]
    async fn waveform(
        &self,
        state: Data<&AppState>,
        auth: Auth,
        id: Path<Uuid>,
        #[oai(name = "Range")] range: Header<Option<String>>,
        #[oai(name = "If-None-Match")] if_none_match: Header<Option<String>>,
    ) -> Result<DownloadResponse, ApiError> {
        derived_file(
            &state,
            auth.0.user_id,
            id.0,
            "waveform_key",
            "application/json",
            range.0,
            if_none_match.0,
        )
        .await
    }
}

/// A complete file in staging, hashed and counted.
pub(crate) struct Staged {
    pub path: std::path::PathBuf,
    pub size: u64,
    pub sha256: String,
    /// Already cleaned with [`display_name`].
    pub name: String,
    pub content_type: String,
}

pub(crate) enum Registered {
    Created(assets::Model),
    /// The project already had this content.
    Existing(assets::Model),
}

/// Turns a complete staged file into a project's asset: the project's existing asset when it
/// already has this content, otherwise the blob is committed and the asset row is written
/// together with its probe job. Every way in (upload, resumable upload) ends here.
pub(crate) async fn register_staged(
    state: &AppState,
    project: Uuid,
    user: Uuid,
    staged: Staged,
    correlation_id: String,
) -> Result<Registered, ApiError> {
    let Staged {
        path: staged,
        size,
        sha256: sha,
        name,
        content_type,
    } = staged;
    let existing = assets::Entity::find()
        .filter(assets::Column::ProjectId.eq(project))
        .filter(assets::Column::Sha256.eq(sha.clone()))
        .one(&state.db)
        .await?;
    if let Some(found) = existing {
        let _ = tokio::fs::remove_file(&staged).await;
        return Ok(Registered::Existing(found));
    }
    let key = format!("projects/{project}/{sha}");
    if let Err(e) = state.storage.commit(&staged, &key).await {
        let _ = tokio::fs::remove_file(&staged).await;
        return Err(storage_error(e));
    }
    let now = Utc::now();
    let asset_id = Uuid::now_v7();
    let recorded = async {
        let txn = nve_worker::db::begin_write(&state.db).await?;
        let job = store::enqueue(
            &txn,
            store::NewJob {
                project_id: Some(project),
                created_by: Some(user),
                queue: store::Queue::Edit,
                kind: KIND_PROBE.into(),
                payload: serde_json::json!({"asset_id": asset_id}),
                priority: store::PRIORITY_INTERACTIVE,
                max_attempts: state.config.jobs.max_attempts,
                correlation_id,
                callback_url: None,
            },
        )
        .await
        .map_err(|e| match e {
            store::JobError::Database(db) => db,
            other => sea_orm::DbErr::Custom(other.to_string()),
        })?;
        let asset = assets::ActiveModel {
            id: Set(asset_id),
            project_id: Set(project),
            uploaded_by: Set(Some(user)),
            status: Set("probing".into()),
            kind: Set(None),
            original_name: Set(name),
            content_type: Set(content_type),
            size_bytes: Set(i64::try_from(size).unwrap_or(i64::MAX)),
            sha256: Set(sha.clone()),
            storage_key: Set(key.clone()),
            probe: Set(None),
            derived: Set(None),
            error_code: Set(None),
            error_message: Set(None),
            job_id: Set(Some(job.id)),
            source_url: Set(None),
            created_at: Set(now),
            updated_at: Set(now),
        }
        .insert(&txn)
        .await?;
        txn.commit().await?;
        Ok::<_, sea_orm::DbErr>((asset, job))
    }
    .await;
    let (asset, job) = match recorded {
        Ok(v) => v,
        Err(e) => {
            // A concurrent upload of the same content won the unique index: answer with its
            // asset (the blob is the same file).
            if let Some(found) = assets::Entity::find()
                .filter(assets::Column::ProjectId.eq(project))
                .filter(assets::Column::Sha256.eq(sha.clone()))
                .one(&state.db)
                .await?
            {
                return Ok(Registered::Existing(found));
            }
            let _ = state.storage.remove(&key).await;
            return Err(e.into());
        }
    };
    // A queue that is down delays the probe, it does not lose the upload.
    crate::routes::jobs::dispatch_or_defer(state, &job).await;
    Ok(Registered::Created(asset))
}

async fn derived_file(
    state: &AppState,
    user: Uuid,
    id: Uuid,
    which: &str,
    content_type: &str,
    range: Option<String>,
    if_none_match: Option<String>,
) -> Result<DownloadResponse, ApiError> {
    let (asset, _) = visible(state, user, id).await?;
    let key = asset
        .derived
        .as_ref()
        .and_then(|d| d.get(which))
        .and_then(|k| k.as_str())
        .map(str::to_owned)
        .ok_or_else(|| ApiError::not_found("derived media"))?;
    let etag = format!(
        "\"{}-{}-{}\"",
        asset.sha256,
        which,
        asset.updated_at.timestamp()
    );
    if etag_matches(if_none_match.as_deref(), &etag) {
        return Ok(DownloadResponse::NotModified(etag));
    }
    open_range(&state.storage, &key, content_type, &etag, range.as_deref()).await
}

/// Whether an `If-None-Match` header names `etag` (or `*`).
pub(crate) fn etag_matches(if_none_match: Option<&str>, etag: &str) -> bool {
    if_none_match.is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"))
}

pub(crate) async fn open_range(
    storage: &Storage,
    key: &str,
    content_type: &str,
    etag: &str,
    range: Option<&str>,
) -> Result<DownloadResponse, ApiError> {
    let size = storage
        .size_of(key)
        .await
        .map_err(storage_error)?
        .ok_or_else(|| ApiError::not_found("file"))?;
    let accept = "bytes".to_owned();
    let wanted = match parse_range(range, size) {
        Err(()) => {
            return Ok(DownloadResponse::RangeNotSatisfiable(format!(
                "bytes */{size}"
            )));
        }
        Ok(wanted) => wanted,
    };
    let stream = storage
        .read(key, wanted)
        .await
        .map_err(storage_error)?
        .ok_or_else(|| ApiError::not_found("file"))?;
    let body = FileBody(poem::Body::from_bytes_stream(stream));
    Ok(match wanted {
        None => {
            DownloadResponse::Full(body, content_type.to_owned(), size, accept, etag.to_owned())
        }
        Some((start, end)) => DownloadResponse::Partial(
            body,
            content_type.to_owned(),
            end - start + 1,
            format!("bytes {start}-{end}/{size}"),
            accept,
            etag.to_owned(),
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_names_are_harmless() {
        assert_eq!(display_name(Some("../../etc/passwd")), "passwd");
        assert_eq!(display_name(Some("..\\..\\boot.ini")), "boot.ini");
        assert_eq!(display_name(Some("a\0b\u{7}c.mp4")), "abc.mp4");
        assert_eq!(display_name(Some("evil\u{202E}4pm.exe")), "evil4pm.exe");
        assert_eq!(display_name(Some("../..")), "upload");
        assert_eq!(display_name(None), "upload");
        assert_eq!(display_name(Some(&"x".repeat(300))).chars().count(), 255);
        assert_eq!(
            display_name(Some("Holiday – día 1.MOV")),
            "Holiday – día 1.MOV"
        );
    }

    #[test]
    fn ranges() {
        assert_eq!(parse_range(None, 100), Ok(None));
        assert_eq!(parse_range(Some("bytes=0-9"), 100), Ok(Some((0, 9))));
        assert_eq!(parse_range(Some("bytes=90-"), 100), Ok(Some((90, 99))));
        assert_eq!(parse_range(Some("bytes=-10"), 100), Ok(Some((90, 99))));
        assert_eq!(parse_range(Some("bytes=50-500"), 100), Ok(Some((50, 99))));
        assert_eq!(parse_range(Some("bytes=100-"), 100), Err(()));
        assert_eq!(parse_range(Some("bytes=5-2"), 100), Err(()));
        assert_eq!(parse_range(Some("bytes=0-1,5-6"), 100), Ok(None));
        assert_eq!(parse_range(Some("items=0-1"), 100), Ok(None));
    }
}
