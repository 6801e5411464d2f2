//! Resumable uploads: the tus 1.0.0 protocol (core, creation, termination, expiration) for
//! files too large to send in one request over an unreliable connection.
//!
//! Each PATCH is streamed to a staging file and committed as a stored part under
//! `uploads/{id}/{start offset}`, so any replica (and any storage backend) can take the next
//! one. When the last byte arrives the parts are concatenated, hashed, and handed to
//! [`register_staged`], the same path a plain upload ends on (de-duplication, probe job).
//!
//! The `uploads` row is the only record of progress. Every change to it is a guarded UPDATE on
//! the offset the change started from, so two requests racing on one upload cannot both win.

use std::time::Duration;

use base64::Engine as _;
use chrono::{DateTime, Utc};
use futures_util::StreamExt;
use poem::http::HeaderValue;
use poem::web::Data;
use poem::{Endpoint, Middleware, Request, RequestBody, Response};
use poem_openapi::param::{Header, Path};
use poem_openapi::payload::{Json, Payload};
use poem_openapi::registry::{MetaMediaType, MetaRequest, MetaSchema, MetaSchemaRef};
use poem_openapi::{
    ApiExtractor, ApiExtractorType, ApiResponse, ExtractParamOptions, Object, OpenApi,
};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect, Set,
};
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;
use uuid::Uuid;

use nve_entity::uploads;

use crate::auth::Auth;
use crate::error::{ApiError, ErrorKind, FieldError, ProblemMiddleware, RequestInfo};
use crate::payload::MediaBody;
use crate::routes::ApiTags;
use crate::routes::assets::{
    Registered, Staged, display_name, drain, register_staged, storage_error,
};
use crate::routes::projects::{Role, require_role};
use crate::state::AppState;

/// The only protocol version spoken.
pub const TUS_VERSION: &str = "1.0.0";
/// Advertised in `Tus-Extension`.
pub const TUS_EXTENSIONS: &str = "creation,termination,expiration";
/// An unfinished upload is discarded this long after its last activity (creation or PATCH);
/// a finished one's record is kept this long after completion, then only the asset remains.
pub const UPLOAD_TTL_SECS: i64 = 24 * 60 * 60;
/// Expired uploads removed per sweep (one per creation), so a sweep stays short after a backlog.
const SWEEP_BATCH: u64 = 20;
/// The one body type tus PATCH requests carry.
pub const OFFSET_CONTENT_TYPE: &str = "application/offset+octet-stream";
/// `Upload-Metadata` larger than this is refused; it only carries a name and a type.
const MAX_METADATA_BYTES: usize = 4096;

pub struct UploadsApi;

/// A resumable upload, for API integrators (tus clients use the headers instead).
#[derive(Debug, Object)]
pub struct Upload {
    pub id: Uuid,
    pub project_id: Uuid,
    /// Where to send `HEAD`, `PATCH` and `DELETE`: `/v1/uploads/{id}`.
    pub location: String,
    /// The declared size in bytes (`Upload-Length`).
    pub length: u64,
    /// Bytes received so far (`Upload-Offset`); the next PATCH starts here.
    pub offset: u64,
    /// All bytes arrived and the asset exists.
    pub complete: bool,
    /// From `Upload-Metadata` `filename`, cleaned for display.
    pub filename: String,
    /// From `Upload-Metadata` `filetype`; `application/octet-stream` when absent.
    pub content_type: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// When an unfinished upload is discarded (24 h after its last activity); for a complete
    /// one, when this record is.
    pub expires_at: DateTime<Utc>,
    /// The asset the upload became, once complete.
    #[oai(skip_serializing_if_is_none)]
    pub asset_id: Option<Uuid>,
    #[oai(skip_serializing_if_is_none)]
    pub asset_url: Option<String>,
}

impl From<&uploads::Model> for Upload {
    fn from(u: &uploads::Model) -> Self {
        Upload {
            id: u.id,
            project_id: u.project_id,
            location: location(u.id),
            length: bytes(u.length),
            offset: bytes(u.received_bytes),
            complete: u.asset_id.is_some(),
            filename: u.filename.clone(),
            content_type: u.content_type.clone(),
            created_at: u.created_at,
            updated_at: u.updated_at,
            expires_at: u.expires_at,
            asset_id: u.asset_id,
            asset_url: u.asset_id.map(asset_url),
        }
    }
}

#[derive(ApiResponse)]
pub enum OptionsResponse {
    /// What this server supports.
    #[oai(status = 204)]
    Capabilities(
        /// Always `1.0.0`.
        #[oai(header = "Tus-Resumable")]
        String,
        /// `1.0.0`.
        #[oai(header = "Tus-Version")]
        String,
        /// `creation,termination,expiration`.
        #[oai(header = "Tus-Extension")]
        String,
        /// The largest `Upload-Length` accepted (`media.max_upload_mb`), in bytes.
        #[oai(header = "Tus-Max-Size")]
        u64,
    ),
}

#[derive(ApiResponse)]
#[oai(header(name = "Tus-Resumable", ty = "String", description = "Always `1.0.0`."))]
pub enum CreateResponse {
    /// The upload exists; send its bytes with PATCH to `Location`. A zero-length upload is
    /// complete at once and names its asset.
    #[oai(status = 201)]
    Created(
        Json<Upload>,
        /// `/v1/uploads/{id}`.
        #[oai(header = "Location")]
        String,
        /// When the upload is discarded if nothing more arrives (RFC 7231 date).
        #[oai(header = "Upload-Expires")]
        String,
        #[oai(header = "Nve-Asset-Id")] Option<String>,
        #[oai(header = "Nve-Asset-Url")] Option<String>,
    ),
}

#[derive(ApiResponse)]
#[oai(header(name = "Tus-Resumable", ty = "String", description = "Always `1.0.0`."))]
pub enum HeadResponse {
    /// Where the upload stands. Never cached.
    #[oai(status = 200)]
    Found(
        /// Bytes received; resume from here.
        #[oai(header = "Upload-Offset")]
        u64,
        #[oai(header = "Upload-Length")] u64,
        /// `no-store`.
        #[oai(header = "Cache-Control")]
        String,
        /// The name and type given at creation, tus-encoded.
        #[oai(header = "Upload-Metadata")]
        String,
        /// Absent once complete.
        #[oai(header = "Upload-Expires")]
        Option<String>,
        /// The asset, once complete.
        #[oai(header = "Nve-Asset-Id")]
        Option<String>,
        #[oai(header = "Nve-Asset-Url")] Option<String>,
    ),
}

#[derive(ApiResponse)]
#[oai(header(name = "Tus-Resumable", ty = "String", description = "Always `1.0.0`."))]
pub enum PatchResponse {
    /// The bytes are stored. When `Upload-Offset` reaches `Upload-Length` the upload is
    /// complete and `Nve-Asset-Id`/`Nve-Asset-Url` name its asset (an existing one when the
    /// project already had this content).
    #[oai(status = 204)]
    Stored(
        /// The new offset.
        #[oai(header = "Upload-Offset")]
        u64,
        /// Absent once complete.
        #[oai(header = "Upload-Expires")]
        Option<String>,
        #[oai(header = "Nve-Asset-Id")] Option<String>,
        #[oai(header = "Nve-Asset-Url")] Option<String>,
    ),
}

#[derive(ApiResponse)]
#[oai(header(name = "Tus-Resumable", ty = "String", description = "Always `1.0.0`."))]
pub enum DeleteResponse {
    /// The upload and its stored parts are gone (an asset it already became stays).
    #[oai(status = 204)]
    Deleted,
}

/// A PATCH body: raw bytes of the upload from `Upload-Offset` on, streamed, never buffered.
/// Its extractor is written out (not the payload macro) so a missing or wrong `Content-Type`
/// is answered with a problem that names the type tus needs.
pub struct PartBody(poem::Body);

impl<'a> ApiExtractor<'a> for PartBody {
    const TYPES: &'static [ApiExtractorType] = &[ApiExtractorType::RequestObject];

    type ParamType = ();
    type ParamRawType = ();

    fn request_meta() -> Option<MetaRequest> {
        Some(MetaRequest {
            description: Some("The upload's bytes from `Upload-Offset` on."),
            content: vec![MetaMediaType {
                content_type: OFFSET_CONTENT_TYPE,
                schema: MetaSchemaRef::Inline(Box::new(MetaSchema::new_with_format(
                    "string", "binary",
                ))),
            }],
            required: true,
        })
    }

    async fn from_request(
        request: &'a Request,
        body: &mut RequestBody,
        _param_opts: ExtractParamOptions<Self::ParamType>,
    ) -> poem::Result<Self> {
        let declared = request.content_type();
        let matches = declared
            .and_then(|ct| ct.parse::<mime::Mime>().ok())
            .is_some_and(|m| m.essence_str() == OFFSET_CONTENT_TYPE);
        if !matches {
            return Err(ApiError::new(
                ErrorKind::UnsupportedMediaType,
                format!(
                    "PATCH bodies must be sent as `Content-Type: {OFFSET_CONTENT_TYPE}`, not {}",
                    declared.map_or_else(|| "without one".to_owned(), |ct| format!("`{ct}`"))
                ),
            )
            .into());
        }
        Ok(PartBody(body.take()?))
    }
}

#[OpenApi(tag = "ApiTags::Uploads")]
impl UploadsApi {
    /// tus discovery: the protocol version, extensions and the largest upload. No
    /// authentication needed.
    #[oai(
        path = "/uploads",
        method = "options",
        operation_id = "tusOptions",
        transform = "tus_lenient"
    )]
    async fn options(&self, state: Data<&AppState>) -> OptionsResponse {
        OptionsResponse::Capabilities(
            TUS_VERSION.to_owned(),
            TUS_VERSION.to_owned(),
            TUS_EXTENSIONS.to_owned(),
            max_size(&state),
        )
    }

    /// Start a resumable upload (tus creation; editors and owners). Send `Tus-Resumable:
    /// 1.0.0`, the total size in `Upload-Length` and, optionally, `Upload-Metadata` with
    /// base64 `filename` and `filetype`. A size over `media.max_upload_mb` gets 413 at once.
    /// Then PATCH the bytes to `Location`.
    #[oai(
        path = "/projects/:id/uploads",
        method = "post",
        operation_id = "createUpload",
        transform = "tus_strict"
    )]
    async fn create(
        &self,
        state: Data<&AppState>,
        auth: Auth,
        req: &Request,
        id: Path<Uuid>,
        /// The file's total size in bytes.
        #[oai(name = "Upload-Length")]
        upload_length: Header<u64>,
        /// tus metadata: comma-separated `key base64(value)` pairs; `filename` and `filetype`
        /// are used.
        #[oai(name = "Upload-Metadata")]
        upload_metadata: Header<Option<String>>,
    ) -> Result<CreateResponse, ApiError> {
        let user = auth.0.user_id;
        require_role(&state.db, id.0, user, Role::Editor).await?;
        let limit = max_size(&state);
        let length = upload_length.0;
        if length > limit {
            return Err(ApiError::new(
                ErrorKind::PayloadTooLarge,
                format!(
                    "uploads are limited to {} MiB ({limit} bytes)",
                    state.config.media.max_upload_mb
                ),
            ));
        }
        let length = i64::try_from(length)
            .map_err(|_| ApiError::new(ErrorKind::PayloadTooLarge, "Upload-Length is too large"))?;
        let meta = parse_metadata(upload_metadata.0.as_deref())?;
        let filename = display_name(meta.filename.as_deref());
        let content_type = media_type(meta.filetype.as_deref())?;

        let now = Utc::now();
        let upload = uploads::ActiveModel {
            id: Set(Uuid::now_v7()),
            project_id: Set(id.0),
            user_id: Set(user),
            length: Set(length),
            received_bytes: Set(0),
            parts: Set(serde_json::json!([])),
            filename: Set(filename),
            content_type: Set(content_type),
            asset_id: Set(None),
            created_at: Set(now),
            updated_at: Set(now),
            expires_at: Set(now + ttl()),
        }
        .insert(&state.db)
        .await?;
        tracing::info!(upload_id = %upload.id, project_id = %id.0, length, "resumable upload created");

        // Opportunistic: creating uploads is what fills the table, so it also empties it.
        tokio::spawn(sweep_expired(state.0.clone()));

        let upload = if length == 0 {
            // Nothing will ever be PATCHed: complete it now, or leave nothing behind.
            match complete(&state, &upload, RequestInfo::correlation_id(req)).await {
                Ok(asset_id) => uploads::Model {
                    asset_id: Some(asset_id),
                    ..upload
                },
                Err(e) => {
                    if let Err(db) = uploads::Entity::delete_by_id(upload.id)
                        .exec(&state.db)
                        .await
                    {
                        tracing::warn!(error = %db, upload_id = %upload.id, "could not remove a failed empty upload");
                    }
                    return Err(e);
                }
            }
        } else {
            upload
        };
        Ok(CreateResponse::Created(
            Json(Upload::from(&upload)),
            location(upload.id),
            http_date(upload.expires_at),
            upload.asset_id.map(|a| a.to_string()),
            upload.asset_id.map(asset_url),
        ))
    }

    /// Where a resumable upload stands (tus): `Upload-Offset` is where to resume.
    #[oai(
        path = "/uploads/:id",
        method = "head",
        operation_id = "headUpload",
        transform = "tus_strict"
    )]
    async fn head(
        &self,
        state: Data<&AppState>,
        auth: Auth,
        id: Path<Uuid>,
    ) -> Result<HeadResponse, ApiError> {
        let upload = owned(&state, auth.0.user_id, id.0).await?;
        ensure_live(&upload, Utc::now())?;
        Ok(HeadResponse::Found(
            bytes(upload.received_bytes),
            bytes(upload.length),
            "no-store".to_owned(),
            encode_metadata(&upload),
            upload
                .asset_id
                .is_none()
                .then(|| http_date(upload.expires_at)),
            upload.asset_id.map(|a| a.to_string()),
            upload.asset_id.map(asset_url),
        ))
    }

    /// A resumable upload as JSON: size, offset, expiry and, once complete, its asset.
    #[oai(
        path = "/uploads/:id",
        method = "get",
        operation_id = "getUpload",
        transform = "tus_lenient"
    )]
    async fn get(
        &self,
        state: Data<&AppState>,
        auth: Auth,
        id: Path<Uuid>,
    ) -> Result<Json<Upload>, ApiError> {
        let upload = owned(&state, auth.0.user_id, id.0).await?;
        ensure_live(&upload, Utc::now())?;
        Ok(Json(Upload::from(&upload)))
    }

    /// Send bytes (tus): `Content-Type: application/offset+octet-stream`, `Upload-Offset`
    /// equal to the current offset (409 `offset-mismatch` otherwise). Bytes that arrive before
    /// the connection breaks or stalls are kept; ask HEAD where to resume. A body that would
    /// pass `Upload-Length` gets 413 and nothing is stored. The PATCH that delivers the last
    /// byte creates the asset and names it in `Nve-Asset-Id`.
    #[oai(
        path = "/uploads/:id",
        method = "patch",
        operation_id = "patchUpload",
        transform = "tus_strict"
    )]
    async fn patch(
        &self,
        state: Data<&AppState>,
        auth: Auth,
        req: &Request,
        id: Path<Uuid>,
        /// Where these bytes start; must equal the upload's current offset.
        #[oai(name = "Upload-Offset")]
        upload_offset: Header<u64>,
        body: PartBody,
    ) -> Result<PatchResponse, ApiError> {
        let idle = idle_timeout(&state);
        let upload = match admit(&state, auth.0.user_id, id.0, upload_offset.0).await {
            Ok(upload) => upload,
            Err(e) => {
                // Read (a bounded amount of) the body so the client sees the answer rather
                // than a reset connection.
                drain(body.0.into_bytes_stream(), idle).await;
                return Err(e);
            }
        };
        let declared = req
            .headers()
            .get("content-length")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        let correlation_id = RequestInfo::correlation_id(req);
        // Spawned, so a client that vanishes mid-body cannot cancel the bookkeeping of the
        // bytes it did send: keeping them is what makes the upload resumable.
        let task = tokio::spawn(receive(
            state.0.clone(),
            upload,
            body.0,
            declared,
            correlation_id,
        ));
        task.await.map_err(ApiError::internal)?
    }

    /// Abandon a resumable upload (tus termination): its record and stored parts are removed.
    /// An asset it already became is not touched.
    #[oai(
        path = "/uploads/:id",
        method = "delete",
        operation_id = "deleteUpload",
        transform = "tus_strict"
    )]
    async fn delete(
        &self,
        state: Data<&AppState>,
        auth: Auth,
        id: Path<Uuid>,
    ) -> Result<DeleteResponse, ApiError> {
        // No expiry check: terminating an expired upload is the cleanup it is waiting for.
        let upload = owned(&state, auth.0.user_id, id.0).await?;
        // The row goes first: a PATCH that races this fails its guarded UPDATE, or, if it got
        // there first, finds the row gone after committing and removes its own part.
        uploads::Entity::delete_by_id(upload.id)
            .exec(&state.db)
            .await?;
        if let Err(e) = state.storage.remove_prefix(&parts_prefix(upload.id)).await {
            tracing::warn!(error = %e, upload_id = %upload.id, "parts of a deleted upload left in storage");
        }
        tracing::info!(upload_id = %upload.id, "resumable upload deleted");
        Ok(DeleteResponse::Deleted)
    }
}

// ---------------------------------------------------------------------------------------------
// Protocol framing: the version check and the `Tus-Resumable` header on every response.

/// For tus requests: refuses any `Tus-Resumable` but 1.0.0 with 412.
fn tus_strict<E: Endpoint>(ep: E) -> TusEndpoint<E> {
    TusEndpoint {
        inner: ProblemMiddleware.transform(ep),
        check_version: true,
    }
}

/// For OPTIONS (exempt by the protocol) and the JSON read (not a tus request).
fn tus_lenient<E: Endpoint>(ep: E) -> TusEndpoint<E> {
    TusEndpoint {
        inner: ProblemMiddleware.transform(ep),
        check_version: false,
    }
}

/// Errors become problem bodies here rather than in the outer middleware, so that they too
/// carry `Tus-Resumable` (a tus client reads it on every response).
pub struct TusEndpoint<E> {
    inner: crate::error::ProblemEndpoint<E>,
    check_version: bool,
}

impl<E: Endpoint> Endpoint for TusEndpoint<E> {
    type Output = Response;

    async fn call(&self, req: Request) -> poem::Result<Response> {
        let sent = req
            .headers()
            .get("tus-resumable")
            .and_then(|v| v.to_str().ok());
        let mut resp = if self.check_version && sent != Some(TUS_VERSION) {
            let detail = match sent {
                Some(v) => {
                    format!("tus version `{v}` is not supported; this server speaks {TUS_VERSION}")
                }
                None => format!("send `Tus-Resumable: {TUS_VERSION}`"),
            };
            let info = req.extensions().get::<RequestInfo>().cloned();
            let mut resp =
                ApiError::new(ErrorKind::TusVersionUnsupported, detail).to_response(info.as_ref());
            resp.headers_mut()
                .insert("tus-version", HeaderValue::from_static(TUS_VERSION));
            resp
        } else {
            self.inner.call(req).await?
        };
        resp.headers_mut()
            .insert("tus-resumable", HeaderValue::from_static(TUS_VERSION));
        Ok(resp)
    }
}

// ---------------------------------------------------------------------------------------------
// Access and state checks.

/// The caller's own upload, or 404 (another user's upload does not exist for them); a caller
/// who is no longer an editor of its project gets 403.
async fn owned(state: &AppState, user: Uuid, id: Uuid) -> Result<uploads::Model, ApiError> {
    let upload = uploads::Entity::find_by_id(id)
        .one(&state.db)
        .await?
        .filter(|u| u.user_id == user)
        .ok_or_else(|| ApiError::not_found("upload"))?;
    match require_role(&state.db, upload.project_id, user, Role::Editor).await {
        Ok(_) => Ok(upload),
        Err(e) if e.kind == ErrorKind::NotFound => Err(ApiError::not_found("upload")),
        Err(e) => Err(e),
    }
}

/// 410 for an unfinished upload past its expiry (it is waiting to be swept). A finished one
/// keeps answering until its record is swept.
fn ensure_live(upload: &uploads::Model, now: DateTime<Utc>) -> Result<(), ApiError> {
    if upload.asset_id.is_none() && upload.expires_at <= now {
        return Err(ApiError::new(
            ErrorKind::UploadExpired,
            format!(
                "the upload expired at {} after {} h without activity; start a new one",
                upload.expires_at.to_rfc3339(),
                UPLOAD_TTL_SECS / 3600
            ),
        ));
    }
    Ok(())
}

fn offset_mismatch(upload: &uploads::Model, sent: u64) -> ApiError {
    ApiError::new(
        ErrorKind::OffsetMismatch,
        format!(
            "Upload-Offset is {sent} but the upload is at {}; ask HEAD and resume from there",
            upload.received_bytes
        ),
    )
}

/// Why an upload that was fine a moment ago refused a change: it is gone, expired, or another
/// request moved its offset.
async fn why_refused(state: &AppState, id: Uuid, sent: u64) -> ApiError {
    match uploads::Entity::find_by_id(id).one(&state.db).await {
        Ok(None) => ApiError::not_found("upload"),
        Ok(Some(current)) => ensure_live(&current, Utc::now())
            .err()
            .unwrap_or_else(|| offset_mismatch(&current, sent)),
        Err(e) => e.into(),
    }
}

/// Checks a PATCH before its body is read, and marks the upload active so a long transfer is
/// not swept from under it.
async fn admit(
    state: &AppState,
    user: Uuid,
    id: Uuid,
    sent: u64,
) -> Result<uploads::Model, ApiError> {
    let mut upload = owned(state, user, id).await?;
    let now = Utc::now();
    ensure_live(&upload, now)?;
    if sent != bytes(upload.received_bytes) {
        return Err(offset_mismatch(&upload, sent));
    }
    if upload.asset_id.is_none() {
        let expires = now + ttl();
        let touched = uploads::Entity::update_many()
            .col_expr(uploads::Column::ExpiresAt, Expr::value(expires))
            .filter(uploads::Column::Id.eq(id))
            .filter(uploads::Column::ReceivedBytes.eq(upload.received_bytes))
            .filter(uploads::Column::AssetId.is_null())
            .filter(uploads::Column::ExpiresAt.gt(now))
            .exec(&state.db)
            .await?;
        if touched.rows_affected == 0 {
            return Err(why_refused(state, id, sent).await);
        }
        upload.expires_at = expires;
    }
    Ok(upload)
}

// ---------------------------------------------------------------------------------------------
// Receiving a part.

/// How reading one PATCH body ended.
enum Received {
    /// The whole body arrived.
    Whole(u64),
    /// The body broke off or stalled; what arrived before is in the file.
    Cut(u64, Cut),
    /// It would pass `Upload-Length`; the rest of the body, to drain.
    TooLarge(BodyStream),
    Write(std::io::Error),
}

enum Cut {
    Idle,
    Read(String),
}

type BodyStream = std::pin::Pin<
    Box<dyn futures_util::Stream<Item = Result<bytes::Bytes, std::io::Error>> + Send>,
>;

/// Streams `body` into `path`, at most `limit` bytes. Unlike a plain upload, a body that
/// breaks off is not an error to undo: its bytes stay in the file.
async fn receive_part(
    body: poem::Body,
    path: &std::path::Path,
    limit: u64,
    idle: Duration,
) -> Received {
    let mut file = match tokio::fs::File::create(path).await {
        Ok(f) => f,
        Err(e) => return Received::Write(e),
    };
    let mut stream: BodyStream = Box::pin(body.into_bytes_stream());
    let mut size = 0u64;
    let cut = loop {
        let next = match tokio::time::timeout(idle, stream.next()).await {
            Ok(next) => next,
            Err(_) => break Some(Cut::Idle),
        };
        let chunk = match next {
            None => break None,
            Some(Ok(chunk)) => chunk,
            Some(Err(e)) => break Some(Cut::Read(e.to_string())),
        };
        let len = chunk.len() as u64;
        if size.saturating_add(len) > limit {
            return Received::TooLarge(stream);
        }
        if let Err(e) = file.write_all(&chunk).await {
            return Received::Write(e);
        }
        size += len;
    };
    if let Err(e) = file.sync_all().await {
        return Received::Write(e);
    }
    match cut {
        None => Received::Whole(size),
        Some(why) => Received::Cut(size, why),
    }
}

/// The body of an admitted PATCH: stream, store, advance, and complete when the last byte is
/// in.
async fn receive(
    state: AppState,
    upload: uploads::Model,
    body: poem::Body,
    declared: Option<u64>,
    correlation_id: String,
) -> Result<PatchResponse, ApiError> {
    let idle = idle_timeout(&state);
    let start = bytes(upload.received_bytes);
    let remaining = bytes(upload.length).saturating_sub(start);
    let too_large = || {
        ApiError::new(
            ErrorKind::PayloadTooLarge,
            format!(
                "this body would pass Upload-Length: {remaining} bytes remain from offset {start}; nothing was stored"
            ),
        )
    };
    if declared.is_some_and(|n| n > remaining) {
        drain(body.into_bytes_stream(), idle).await;
        return Err(too_large());
    }
    let staging = match state.storage.staging_path() {
        Ok(path) => path,
        Err(e) => {
            drain(body.into_bytes_stream(), idle).await;
            return Err(storage_error(e));
        }
    };
    let (size, cut) = match receive_part(body, &staging, remaining, idle).await {
        Received::Whole(n) => (n, None),
        Received::Cut(n, why) => (n, Some(why)),
        Received::TooLarge(rest) => {
            let _ = tokio::fs::remove_file(&staging).await;
            drain(rest, idle).await;
            return Err(too_large());
        }
        Received::Write(e) => {
            let _ = tokio::fs::remove_file(&staging).await;
            return Err(storage_error(nve_worker::WorkerError::Storage {
                path: "staging".into(),
                source: e,
            }));
        }
    };
    let upload = if size > 0 {
        store_part(&state, &upload, &staging, size).await?
    } else {
        let _ = tokio::fs::remove_file(&staging).await;
        upload
    };
    let asset_id = if upload.received_bytes == upload.length {
        match complete(&state, &upload, correlation_id).await {
            Ok(asset_id) => Some(asset_id),
            Err(e) => {
                if size > 0 {
                    // Give the last part back, so the client's retry (HEAD, then PATCH) sends
                    // it again and completion runs again; an upload that reads as complete
                    // without an asset would strand a tus client, which stops at the length.
                    unstore_part(&state, &upload, start).await;
                }
                return Err(e);
            }
        }
    } else {
        None
    };
    if let Some(why) = cut {
        tracing::info!(
            upload_id = %upload.id,
            kept = size,
            offset = upload.received_bytes,
            "resumable upload interrupted; the bytes that arrived were kept"
        );
        let how = match why {
            Cut::Idle => format!("the body stalled for {} s and was cut", idle.as_secs()),
            Cut::Read(e) => format!("the body broke off ({e})"),
        };
        return Err(ApiError::new(
            ErrorKind::InvalidParameter,
            format!(
                "{how}; the {size} bytes that arrived were kept, resume from offset {}",
                upload.received_bytes
            ),
        ));
    }
    Ok(PatchResponse::Stored(
        bytes(upload.received_bytes),
        asset_id.is_none().then(|| http_date(upload.expires_at)),
        asset_id.map(|a| a.to_string()),
        asset_id.map(asset_url),
    ))
}

/// Records a received part and then stores it. The guarded UPDATE comes first: it decides
/// which of two racing PATCHes owns the key `uploads/{id}/{start}`, so the loser never touches
/// the winner's bytes.
async fn store_part(
    state: &AppState,
    upload: &uploads::Model,
    staging: &std::path::Path,
    size: u64,
) -> Result<uploads::Model, ApiError> {
    let start = upload.received_bytes;
    let end = i64::try_from(size)
        .ok()
        .and_then(|n| start.checked_add(n))
        .ok_or_else(|| ApiError::internal("upload offset overflow"))?;
    let before = match part_starts(upload) {
        Ok(p) => p,
        Err(e) => {
            let _ = tokio::fs::remove_file(staging).await;
            return Err(e);
        }
    };
    let mut after = before.clone();
    after.push(start);
    let now = Utc::now();
    let expires = now + ttl();
    let claimed = uploads::Entity::update_many()
        .col_expr(uploads::Column::ReceivedBytes, Expr::value(end))
        .col_expr(
            uploads::Column::Parts,
            Expr::value(serde_json::json!(after)),
        )
        .col_expr(uploads::Column::UpdatedAt, Expr::value(now))
        .col_expr(uploads::Column::ExpiresAt, Expr::value(expires))
        .filter(uploads::Column::Id.eq(upload.id))
        .filter(uploads::Column::ReceivedBytes.eq(start))
        .filter(uploads::Column::AssetId.is_null())
        .exec(&state.db)
        .await;
    let claimed = match claimed {
        Ok(r) => r.rows_affected,
        Err(e) => {
            let _ = tokio::fs::remove_file(staging).await;
            return Err(e.into());
        }
    };
    if claimed == 0 {
        let _ = tokio::fs::remove_file(staging).await;
        return Err(why_refused(state, upload.id, bytes(start)).await);
    }
    let key = part_key(upload.id, bytes(start));
    // `replace`, not `commit`: the key is ours alone now, and anything already there is stale.
    if let Err(e) = state.storage.replace(staging, &key).await {
        let undone = uploads::Entity::update_many()
            .col_expr(uploads::Column::ReceivedBytes, Expr::value(start))
            .col_expr(
                uploads::Column::Parts,
                Expr::value(serde_json::json!(before)),
            )
            .filter(uploads::Column::Id.eq(upload.id))
            .filter(uploads::Column::ReceivedBytes.eq(end))
            .exec(&state.db)
            .await;
        if let Err(db) = undone {
            tracing::error!(error = %db, upload_id = %upload.id, "a part was counted but not stored");
        }
        return Err(storage_error(e));
    }
    // A DELETE (or the sweep) between the claim and the commit has already removed the
    // prefix; this part would be left behind.
    if uploads::Entity::find_by_id(upload.id)
        .one(&state.db)
        .await?
        .is_none()
    {
        let _ = state.storage.remove(&key).await;
        return Err(ApiError::not_found("upload"));
    }
    Ok(uploads::Model {
        received_bytes: end,
        parts: serde_json::json!(after),
        updated_at: now,
        expires_at: expires,
        ..upload.clone()
    })
}

/// Undoes [`store_part`] for the part that started at `start`, if nothing moved since.
async fn unstore_part(state: &AppState, upload: &uploads::Model, start: u64) {
    let Ok(mut parts) = part_starts(upload) else {
        return;
    };
    parts.retain(|p| bytes(*p) != start);
    let undone = uploads::Entity::update_many()
        .col_expr(
            uploads::Column::ReceivedBytes,
            Expr::value(i64::try_from(start).unwrap_or(i64::MAX)),
        )
        .col_expr(
            uploads::Column::Parts,
            Expr::value(serde_json::json!(parts)),
        )
        .filter(uploads::Column::Id.eq(upload.id))
        .filter(uploads::Column::ReceivedBytes.eq(upload.received_bytes))
        .filter(uploads::Column::AssetId.is_null())
        .exec(&state.db)
        .await;
    match undone {
        Ok(r) if r.rows_affected == 1 => {
            let _ = state.storage.remove(&part_key(upload.id, start)).await;
        }
        Ok(_) => {}
        Err(e) => {
            tracing::error!(error = %e, upload_id = %upload.id, "could not give back the last part");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Completion.

/// Turns the stored parts into the project's asset and returns its id; idempotent.
async fn complete(
    state: &AppState,
    upload: &uploads::Model,
    correlation_id: String,
) -> Result<Uuid, ApiError> {
    if let Some(asset_id) = upload.asset_id {
        return Ok(asset_id);
    }
    let staging = state.storage.staging_path().map_err(storage_error)?;
    let (size, sha256) = match assemble(state, upload, &staging).await {
        Ok(v) => v,
        Err(e) => {
            let _ = tokio::fs::remove_file(&staging).await;
            return Err(e);
        }
    };
    let staged = Staged {
        path: staging,
        size,
        sha256,
        name: upload.filename.clone(),
        content_type: upload.content_type.clone(),
    };
    let asset = match register_staged(
        state,
        upload.project_id,
        upload.user_id,
        staged,
        correlation_id,
    )
    .await?
    {
        Registered::Created(asset) | Registered::Existing(asset) => asset,
    };
    let now = Utc::now();
    let recorded = uploads::Entity::update_many()
        .col_expr(uploads::Column::AssetId, Expr::value(asset.id))
        .col_expr(uploads::Column::Parts, Expr::value(serde_json::json!([])))
        .col_expr(uploads::Column::UpdatedAt, Expr::value(now))
        .col_expr(uploads::Column::ExpiresAt, Expr::value(now + ttl()))
        .filter(uploads::Column::Id.eq(upload.id))
        .filter(uploads::Column::AssetId.is_null())
        .exec(&state.db)
        .await?;
    let asset_id = if recorded.rows_affected == 1 {
        asset.id
    } else {
        // Completed concurrently (the same bytes, so the same asset), or deleted meanwhile.
        uploads::Entity::find_by_id(upload.id)
            .one(&state.db)
            .await?
            .and_then(|u| u.asset_id)
            .unwrap_or(asset.id)
    };
    if let Err(e) = state.storage.remove_prefix(&parts_prefix(upload.id)).await {
        // The sweep removes the prefix again when the record expires.
        tracing::warn!(error = %e, upload_id = %upload.id, "parts of a complete upload left in storage");
    }
    tracing::info!(upload_id = %upload.id, asset_id = %asset_id, size, "resumable upload complete");
    Ok(asset_id)
}

/// Concatenates the parts, read back through storage (they may be on another machine), into
/// `path`; returns size and SHA-256. Each part must be exactly as long as the offsets say.
async fn assemble(
    state: &AppState,
    upload: &uploads::Model,
    path: &std::path::Path,
) -> Result<(u64, String), ApiError> {
    let write_err = |e: std::io::Error| {
        storage_error(nve_worker::WorkerError::Storage {
            path: "staging".into(),
            source: e,
        })
    };
    let starts: Vec<u64> = part_starts(upload)?.into_iter().map(bytes).collect();
    let length = bytes(upload.length);
    let mut file = tokio::fs::File::create(path).await.map_err(write_err)?;
    let mut hasher = Sha256::new();
    let mut total = 0u64;
    for (i, &start) in starts.iter().enumerate() {
        let end = starts.get(i + 1).copied().unwrap_or(length);
        if start != total || end < start {
            return Err(ApiError::internal(format!(
                "upload {}: parts are not contiguous at {start}",
                upload.id
            )));
        }
        let key = part_key(upload.id, start);
        let mut stream = state
            .storage
            .read(&key, None)
            .await
            .map_err(storage_error)?
            .ok_or_else(|| {
                let mut e = ApiError::new(
                    ErrorKind::Unavailable,
                    format!("the part at offset {start} is not in storage (yet); retry"),
                );
                e.transient = true;
                e
            })?;
        let mut got = 0u64;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| {
                storage_error(nve_worker::WorkerError::Storage {
                    path: key.clone(),
                    source: e,
                })
            })?;
            hasher.update(&chunk);
            file.write_all(&chunk).await.map_err(write_err)?;
            got += chunk.len() as u64;
        }
        if got != end - start {
            return Err(ApiError::internal(format!(
                "upload {}: the part at {start} holds {got} bytes, expected {}",
                upload.id,
                end - start
            )));
        }
        total = end;
    }
    if total != length {
        return Err(ApiError::internal(format!(
            "upload {}: parts cover {total} of {length} bytes",
            upload.id
        )));
    }
    file.sync_all().await.map_err(write_err)?;
    Ok((total, hex::encode(hasher.finalize())))
}

/// Removes a bounded batch of expired uploads: parts first, so a storage failure leaves the
/// row for the next sweep to retry.
async fn sweep_expired(state: AppState) {
    let now = Utc::now();
    let expired = uploads::Entity::find()
        .filter(uploads::Column::ExpiresAt.lt(now))
        .order_by_asc(uploads::Column::ExpiresAt)
        .limit(SWEEP_BATCH)
        .all(&state.db)
        .await;
    let expired = match expired {
        Ok(rows) => rows,
        Err(e) => {
            tracing::warn!(error = %e, "could not list expired uploads");
            return;
        }
    };
    for upload in expired {
        if let Err(e) = state.storage.remove_prefix(&parts_prefix(upload.id)).await {
            tracing::warn!(error = %e, upload_id = %upload.id, "could not remove the parts of an expired upload");
            continue;
        }
        let removed = uploads::Entity::delete_many()
            .filter(uploads::Column::Id.eq(upload.id))
            .filter(uploads::Column::ExpiresAt.lt(now))
            .exec(&state.db)
            .await;
        match removed {
            Ok(r) if r.rows_affected == 1 => {
                tracing::info!(upload_id = %upload.id, "expired upload removed");
            }
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(error = %e, upload_id = %upload.id, "could not remove an expired upload")
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Small pieces.

/// `Upload-Metadata` fields this server uses.
#[derive(Debug, Default, PartialEq, Eq)]
struct Metadata {
    filename: Option<String>,
    filetype: Option<String>,
}

/// Parses tus metadata: `key base64,key base64,key`. Keys must be non-empty, unique and free
/// of spaces and commas; values are base64 (padding optional). `name`/`type` (what Uppy also
/// sends) stand in for a missing `filename`/`filetype`.
fn parse_metadata(raw: Option<&str>) -> Result<Metadata, ApiError> {
    use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
    const BASE64: GeneralPurpose = GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
    );
    let bad = |message: String| ApiError {
        errors: vec![FieldError::new(
            "Upload-Metadata",
            "invalid",
            message.clone(),
        )],
        ..ApiError::new(
            ErrorKind::InvalidParameter,
            format!("Upload-Metadata: {message}"),
        )
    };
    let Some(raw) = raw.map(str::trim).filter(|r| !r.is_empty()) else {
        return Ok(Metadata::default());
    };
    if raw.len() > MAX_METADATA_BYTES {
        return Err(bad(format!("longer than {MAX_METADATA_BYTES} bytes")));
    }
    let mut seen = std::collections::HashMap::new();
    for pair in raw.split(',') {
        let pair = pair.trim();
        let (key, value) = pair.split_once(' ').unwrap_or((pair, ""));
        if key.is_empty() {
            return Err(bad("an empty key".into()));
        }
        let value = value.trim();
        if value.contains(' ') {
            return Err(bad(format!("`{key}`: a key and one base64 value per pair")));
        }
        let decoded = BASE64
            .decode(value)
            .map_err(|_| bad(format!("`{key}`: the value is not base64")))?;
        if seen.insert(key, decoded).is_some() {
            return Err(bad(format!("`{key}` appears twice")));
        }
    }
    let mut text = |keys: [&'static str; 2]| -> Result<Option<String>, ApiError> {
        let Some(value) = keys.iter().find_map(|k| seen.remove(*k)) else {
            return Ok(None);
        };
        String::from_utf8(value)
            .map(Some)
            .map_err(|_| bad(format!("`{}` is not UTF-8 text", keys[0])))
    };
    Ok(Metadata {
        filename: text(["filename", "name"])?,
        filetype: text(["filetype", "type"])?,
    })
}

/// The asset's content type from `filetype`: the same media types a plain upload accepts.
fn media_type(filetype: Option<&str>) -> Result<String, ApiError> {
    let filetype = filetype.map(str::trim).filter(|t| !t.is_empty());
    let Some(t) = filetype else {
        return Ok("application/octet-stream".to_owned());
    };
    if t.len() > 255 || !<MediaBody as Payload>::check_content_type(t) {
        return Err(ApiError::new(
            ErrorKind::UnsupportedMediaType,
            "filetype must be video/*, audio/*, image/* or application/octet-stream",
        ));
    }
    Ok(t.to_owned())
}

/// The tus metadata of a stored upload, as HEAD returns it.
fn encode_metadata(upload: &uploads::Model) -> String {
    let b64 = base64::engine::general_purpose::STANDARD;
    format!(
        "filename {},filetype {}",
        b64.encode(&upload.filename),
        b64.encode(&upload.content_type)
    )
}

fn max_size(state: &AppState) -> u64 {
    state.config.media.max_upload_mb.saturating_mul(1024 * 1024)
}

fn idle_timeout(state: &AppState) -> Duration {
    Duration::from_secs(state.config.media.upload_idle_timeout_secs)
}

fn ttl() -> chrono::Duration {
    chrono::Duration::seconds(UPLOAD_TTL_SECS)
}

/// Sizes and offsets are stored as `BIGINT`; they are never negative.
fn bytes(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

fn part_starts(upload: &uploads::Model) -> Result<Vec<i64>, ApiError> {
    serde_json::from_value(upload.parts.clone())
        .map_err(|e| ApiError::internal(format!("upload {}: unreadable parts: {e}", upload.id)))
}

fn location(id: Uuid) -> String {
    format!("/v1/uploads/{id}")
}

fn asset_url(id: Uuid) -> String {
    format!("/v1/assets/{id}")
}

fn parts_prefix(id: Uuid) -> String {
    format!("uploads/{id}")
}

/// Zero-padded, so a listing of the prefix sorts in upload order.
fn part_key(id: Uuid, start: u64) -> String {
    format!("uploads/{id}/{start:020}")
}

/// An RFC 7231 HTTP-date (`Upload-Expires`).
fn http_date(t: DateTime<Utc>) -> String {
    t.format("%a, %d %b %Y %H:%M:%S GMT").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(s: &str) -> String {
        base64::engine::general_purpose::STANDARD.encode(s)
    }

    #[test]
    fn metadata_is_parsed_as_tus_writes_it() {
        let raw = format!(
            "filename {},filetype {},is_confidential",
            b64("holiday.mp4"),
            b64("video/mp4")
        );
        let m = parse_metadata(Some(&raw)).expect("valid");
        assert_eq!(m.filename.as_deref(), Some("holiday.mp4"));
        assert_eq!(m.filetype.as_deref(), Some("video/mp4"));
        // Unpadded base64 and Uppy's `name`/`type`.
        let raw = format!(
            "name {}, type {}",
            b64("a.mov").trim_end_matches('='),
            b64("video/quicktime")
        );
        let m = parse_metadata(Some(&raw)).expect("valid");
        assert_eq!(m.filename.as_deref(), Some("a.mov"));
        assert_eq!(m.filetype.as_deref(), Some("video/quicktime"));
        assert_eq!(parse_metadata(None).expect("none"), Metadata::default());
    }

    #[test]
    fn malformed_metadata_is_refused() {
        for raw in [
            "filename ***".to_owned(),
            format!("filename {0},filename {0}", b64("a")),
            format!(",filename {}", b64("a")),
            format!("filename {} {}", b64("a"), b64("b")),
            format!(
                "filename {}",
                base64::engine::general_purpose::STANDARD.encode([0xff, 0xfe])
            ),
            "x".repeat(MAX_METADATA_BYTES + 1),
        ] {
            let e = parse_metadata(Some(&raw)).expect_err(&raw);
            assert_eq!(e.kind, ErrorKind::InvalidParameter, "{raw}");
            assert_eq!(e.errors[0].pointer, "Upload-Metadata");
        }
    }

    #[test]
    fn filetype_must_be_media() {
        assert_eq!(
            media_type(None).expect("default"),
            "application/octet-stream"
        );
        assert_eq!(media_type(Some("video/mp4")).expect("video"), "video/mp4");
        let e = media_type(Some("text/html")).expect_err("not media");
        assert_eq!(e.kind, ErrorKind::UnsupportedMediaType);
    }

    #[test]
    fn keys_sort_in_offset_order_and_dates_are_http_dates() {
        let id = Uuid::nil();
        assert!(part_key(id, 9) < part_key(id, 10));
        assert!(part_key(id, 10).starts_with(&parts_prefix(id)));
        let t = DateTime::parse_from_rfc3339("1994-11-06T08:49:37Z")
            .expect("date")
            .with_timezone(&Utc);
        assert_eq!(http_date(t), "Sun, 06 Nov 1994 08:49:37 GMT");
    }
}
