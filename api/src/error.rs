//! The one place where errors become HTTP: RFC 9457 `application/problem+json` bodies with a
//! stable `type` per kind, so clients branch on `code`/`type`, never on prose.

use poem::http::{HeaderValue, StatusCode};
use poem::{Endpoint, IntoResponse, Middleware, Request, Response};
use poem_openapi::registry::{MetaMediaType, MetaResponse, MetaResponses, Registry};
use poem_openapi::types::Type;
use poem_openapi::{ApiResponse, Object};
use serde::Serialize;

pub const PROBLEM_CONTENT_TYPE: &str = "application/problem+json";

/// Every kind of failure the API reports. The kebab-case code is part of the API contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    MalformedJson,
    MissingBody,
    InvalidParameter,
    ValidationFailed,
    Unauthenticated,
    InvalidToken,
    InvalidCredentials,
    Forbidden,
    NotFound,
    MethodNotAllowed,
    Conflict,
    EmailTaken,
    LastOwner,
    EditConflict,
    InvalidEdit,
    NothingToUndo,
    VersionMismatch,
    IfMatchRequired,
    RegistrationClosed,
    PayloadTooLarge,
    UnsupportedMediaType,
    RateLimited,
    Unavailable,
    Internal,
    /// Resumable uploads (tus): the client's `Upload-Offset` is not where the upload is.
    OffsetMismatch,
    /// Resumable uploads: the upload was idle past its expiry and is being discarded.
    UploadExpired,
    /// Resumable uploads: the client speaks a tus version other than 1.0.0.
    TusVersionUnsupported,
}

impl ErrorKind {
    pub fn code(self) -> &'static str {
        match self {
            Self::MalformedJson => "malformed-json",
            Self::MissingBody => "missing-body",
            Self::InvalidParameter => "invalid-parameter",
            Self::ValidationFailed => "validation-failed",
            Self::Unauthenticated => "unauthenticated",
            Self::InvalidToken => "invalid-token",
            Self::InvalidCredentials => "invalid-credentials",
            Self::Forbidden => "forbidden",
            Self::NotFound => "not-found",
            Self::MethodNotAllowed => "method-not-allowed",
            Self::Conflict => "conflict",
            Self::EmailTaken => "email-taken",
            Self::LastOwner => "last-owner",
            Self::EditConflict => "edit-conflict",
            Self::InvalidEdit => "invalid-edit",
            Self::NothingToUndo => "nothing-to-undo",
            Self::VersionMismatch => "version-mismatch",
            Self::IfMatchRequired => "if-match-required",
            Self::RegistrationClosed => "registration-closed",
            Self::PayloadTooLarge => "payload-too-large",
            Self::UnsupportedMediaType => "unsupported-media-type",
            Self::RateLimited => "rate-limited",
            Self::Unavailable => "unavailable",
            Self::Internal => "internal",
            Self::OffsetMismatch => "offset-mismatch",
            Self::UploadExpired => "upload-expired",
            Self::TusVersionUnsupported => "tus-version-unsupported",
        }
    }

    pub fn status(self) -> StatusCode {
        match self {
            Self::MalformedJson | Self::MissingBody | Self::InvalidParameter => {
                StatusCode::BAD_REQUEST
            }
            Self::ValidationFailed | Self::InvalidEdit => StatusCode::UNPROCESSABLE_ENTITY,
            Self::EditConflict | Self::NothingToUndo | Self::OffsetMismatch => StatusCode::CONFLICT,
            Self::VersionMismatch | Self::TusVersionUnsupported => StatusCode::PRECONDITION_FAILED,
            Self::UploadExpired => StatusCode::GONE,
            Self::IfMatchRequired => StatusCode::PRECONDITION_REQUIRED,
            Self::Unauthenticated | Self::InvalidToken | Self::InvalidCredentials => {
                StatusCode::UNAUTHORIZED
            }
            Self::Forbidden | Self::RegistrationClosed => StatusCode::FORBIDDEN,
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::Conflict | Self::EmailTaken | Self::LastOwner => StatusCode::CONFLICT,
            Self::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::RateLimited => StatusCode::TOO_MANY_REQUESTS,
            Self::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub fn title(self) -> &'static str {
        match self {
            Self::MalformedJson => "The request body is not valid JSON",
            Self::MissingBody => "The request needs a body",
            Self::InvalidParameter => "A path or query parameter is invalid",
            Self::ValidationFailed => "The request is not valid",
            Self::Unauthenticated => "Authentication is required",
            Self::InvalidToken => "The credentials are invalid or expired",
            Self::InvalidCredentials => "Wrong e-mail address or password",
            Self::Forbidden => "Your role does not allow this",
            Self::NotFound => "Not found",
            Self::MethodNotAllowed => "Method not allowed",
            Self::Conflict => "Conflict with the current state",
            Self::EmailTaken => "That e-mail address is already registered",
            Self::LastOwner => "A project must keep an owner",
            Self::EditConflict => "The edit conflicts with changes made since its base version",
            Self::InvalidEdit => "The edit cannot be applied",
            Self::NothingToUndo => "Nothing to undo or redo",
            Self::VersionMismatch => "The resource changed since the version you sent",
            Self::IfMatchRequired => "An If-Match header is required",
            Self::RegistrationClosed => "Registration is closed",
            Self::PayloadTooLarge => "The request body is too large",
            Self::UnsupportedMediaType => "Unsupported content type",
            Self::RateLimited => "Too many requests",
            Self::Unavailable => "A dependency is unavailable",
            Self::Internal => "Internal error",
            Self::OffsetMismatch => "Upload-Offset does not match the bytes received",
            Self::UploadExpired => "The upload expired",
            Self::TusVersionUnsupported => "This tus protocol version is not supported",
        }
    }

    /// Whether the client caused it (4xx) or we did (5xx): decides log level.
    pub fn is_client_error(self) -> bool {
        self.status().is_client_error()
    }
}

/// One problem with one field of the request, addressed by a JSON pointer into the body.
#[derive(Debug, Clone, Serialize, Object, PartialEq, Eq)]
pub struct FieldError {
    /// JSON pointer into the request body (`/name`), or the parameter name.
    pub pointer: String,
    /// Stable machine-readable code (`required`, `too-long`, `invalid-type`, `unknown-field` …).
    pub code: String,
    pub message: String,
}

impl FieldError {
    pub fn new(
        pointer: impl Into<String>,
        code: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Self {
            pointer: pointer.into(),
            code: code.into(),
            message: message.into(),
        }
    }
}

/// RFC 9457 problem details.
#[derive(Debug, Clone, Serialize, Object)]
#[oai(rename = "Problem")]
pub struct Problem {
    /// URI identifying the kind of problem: `urn:nve:problem:<code>`.
    #[oai(rename = "type")]
    #[serde(rename = "type")]
    pub type_: String,
    /// Short summary of the kind of problem; the same for every occurrence.
    pub title: String,
    pub status: u16,
    /// What went wrong in this occurrence.
    pub detail: String,
    /// The request path.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instance: Option<String>,
    /// Stable kebab-case code, the last segment of `type`.
    pub code: String,
    /// The request id, also in the `X-Request-Id` response header; quote it in bug reports.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// Per-field problems of a validation failure.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    #[oai(skip_serializing_if_is_empty, default)]
    pub errors: Vec<FieldError>,
    /// For timeline conflicts: the version the server is at now.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub current_version: Option<i64>,
}

/// The API's error: a kind, a human detail, field errors, and (for 429) when to retry.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{}: {detail}", kind.code())]
pub struct ApiError {
    pub kind: ErrorKind,
    pub detail: String,
    pub errors: Vec<FieldError>,
    pub retry_after_secs: Option<u64>,
    pub current_version: Option<i64>,
    /// A failure that an immediate retry of the same work may not meet (database busy).
    pub transient: bool,
}

impl ApiError {
    pub fn new(kind: ErrorKind, detail: impl Into<String>) -> Self {
        Self {
            kind,
            detail: detail.into(),
            errors: Vec::new(),
            retry_after_secs: None,
            current_version: None,
            transient: false,
        }
    }

    pub fn with_version(mut self, version: i64) -> Self {
        self.current_version = Some(version);
        self
    }

    pub fn validation(errors: Vec<FieldError>) -> Self {
        let detail = match errors.as_slice() {
            [one] => format!("{}: {}", one.pointer, one.message),
            many => format!("{} fields are invalid", many.len()),
        };
        Self {
            kind: ErrorKind::ValidationFailed,
            detail,
            errors,
            retry_after_secs: None,
            current_version: None,
            transient: false,
        }
    }

    pub fn not_found(what: &str) -> Self {
        Self::new(ErrorKind::NotFound, format!("{what} not found"))
    }

    pub fn forbidden(detail: impl Into<String>) -> Self {
        Self::new(ErrorKind::Forbidden, detail)
    }

    pub fn rate_limited(retry_after_secs: u64) -> Self {
        Self {
            retry_after_secs: Some(retry_after_secs.max(1)),
            ..Self::new(
                ErrorKind::RateLimited,
                format!("too many attempts; retry in {} s", retry_after_secs.max(1)),
            )
        }
    }

    /// A server-side failure: the cause goes to the log, the client gets the request id.
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        tracing::error!(error = %cause, "internal error");
        Self::new(
            ErrorKind::Internal,
            "an internal error occurred; quote the request id when reporting it",
        )
    }

    fn problem(&self, req: Option<&RequestInfo>) -> Problem {
        Problem {
            type_: format!("urn:nve:problem:{}", self.kind.code()),
            title: self.kind.title().to_owned(),
            status: self.kind.status().as_u16(),
            detail: self.detail.clone(),
            instance: req.map(|r| r.path.clone()),
            code: self.kind.code().to_owned(),
            request_id: req.map(|r| r.request_id.clone()),
            errors: self.errors.clone(),
            current_version: self.current_version,
        }
    }

    /// The problem body as JSON, for channels other than an HTTP response (the WebSocket).
    pub fn problem_json(&self) -> serde_json::Value {
        serde_json::to_value(self.problem(None)).unwrap_or_default()
    }

    pub fn to_response(&self, req: Option<&RequestInfo>) -> Response {
        let body = serde_json::to_vec(&self.problem(req)).unwrap_or_default();
        let mut resp = Response::builder()
            .status(self.kind.status())
            .content_type(PROBLEM_CONTENT_TYPE)
            .body(body);
        if let Some(secs) = self.retry_after_secs
            && let Ok(v) = HeaderValue::from_str(&secs.to_string())
        {
            resp.headers_mut().insert("retry-after", v);
        }
        if self.kind == ErrorKind::Unauthenticated || self.kind == ErrorKind::InvalidToken {
            resp.headers_mut()
                .insert("www-authenticate", HeaderValue::from_static("Bearer"));
        }
        resp
    }
}

impl From<sea_orm::DbErr> for ApiError {
    fn from(e: sea_orm::DbErr) -> Self {
        use sea_orm::DbErr;
        match &e {
            DbErr::ConnectionAcquire(_) | DbErr::Conn(_) => {
                tracing::error!(error = %e, "database unavailable");
                ApiError::new(
                    ErrorKind::Unavailable,
                    "the database is unavailable; retry shortly",
                )
            }
            // A row it points at was deleted meanwhile (a project removed while an edit or a
            // member was being added): for the caller that thing no longer exists.
            _ if matches!(
                e.sql_err(),
                Some(sea_orm::SqlErr::ForeignKeyConstraintViolation(_))
            ) =>
            {
                ApiError::new(
                    ErrorKind::NotFound,
                    "it no longer exists (deleted meanwhile)",
                )
            }
            // SQLite answers "database is locked" when a transaction that has read must write
            // after another connection wrote; retrying the whole request is the remedy.
            _ if is_busy(&e) => {
                tracing::warn!(error = %e, "database busy");
                ApiError {
                    retry_after_secs: Some(1),
                    transient: true,
                    ..ApiError::new(ErrorKind::Unavailable, "the database is busy; retry")
                }
            }
            _ => ApiError::internal(e),
        }
    }
}

/// SQLITE_BUSY (5) and its extended codes (e.g. 517, BUSY_SNAPSHOT), and PostgreSQL's
/// serialization failure and deadlock, are all "try again".
fn is_busy(e: &sea_orm::DbErr) -> bool {
    let text = e.to_string();
    text.contains("database is locked")
        || text.contains("(code: 5)")
        || text.contains("(code: 517)")
        || text.contains("could not serialize access")
        || text.contains("deadlock detected")
}

/// Path and request id of the request being answered, stored in request extensions by the
/// request-context middleware so error bodies can carry them.
#[derive(Debug, Clone)]
pub struct RequestInfo {
    pub path: String,
    pub request_id: String,
}

impl RequestInfo {
    /// The request's id, carried into the jobs it creates as their correlation id.
    pub fn correlation_id(req: &poem::Request) -> String {
        req.extensions()
            .get::<RequestInfo>()
            .map(|r| r.request_id.clone())
            .unwrap_or_else(|| uuid::Uuid::now_v7().to_string())
    }
}

impl poem::error::ResponseError for ApiError {
    fn status(&self) -> StatusCode {
        self.kind.status()
    }

    fn as_response(&self) -> Response {
        self.to_response(None)
    }
}

impl ApiResponse for ApiError {
    fn meta() -> MetaResponses {
        let statuses: [(u16, &'static str); 14] = [
            (400, "Malformed request: invalid JSON or parameter"),
            (401, "Missing, invalid or expired credentials"),
            (403, "The caller's role does not allow this"),
            (404, "Not found, or not visible to the caller"),
            (409, "Conflicts with the current state"),
            (410, "Gone: an expired resumable upload"),
            (412, "The resource changed since the version in If-Match"),
            (413, "The request body is too large"),
            (415, "Unsupported content type"),
            (422, "Validation failed; see `errors`"),
            (428, "If-Match is required"),
            (429, "Rate limited; see `Retry-After`"),
            (500, "Internal error"),
            (503, "A dependency is unavailable"),
        ];
        MetaResponses {
            responses: statuses
                .into_iter()
                .map(|(status, description)| MetaResponse {
                    description,
                    status: Some(status),
                    status_range: None,
                    content: vec![MetaMediaType {
                        content_type: PROBLEM_CONTENT_TYPE,
                        schema: Problem::schema_ref(),
                    }],
                    headers: vec![],
                })
                .collect(),
        }
    }

    fn register(registry: &mut Registry) {
        Problem::register(registry);
    }
}

/// Turns every error leaving the router (our own, poem's, poem-openapi's) into a problem body,
/// so no client ever sees a plain-text error or a stack of framework prose.
pub struct ProblemMiddleware;

impl<E: Endpoint> Middleware<E> for ProblemMiddleware {
    type Output = ProblemEndpoint<E>;

    fn transform(&self, ep: E) -> Self::Output {
        ProblemEndpoint { inner: ep }
    }
}

pub struct ProblemEndpoint<E> {
    inner: E,
}

impl<E: Endpoint> Endpoint for ProblemEndpoint<E> {
    type Output = Response;

    async fn call(&self, req: Request) -> poem::Result<Self::Output> {
        let info = req.extensions().get::<RequestInfo>().cloned();
        let method = req.method().clone();
        let path = req.uri().path().to_owned();
        match self.inner.call(req).await {
            Ok(resp) => Ok(resp.into_response()),
            Err(err) => {
                // The operation id names the route template for metrics; keep it across the conversion.
                let operation = err.data::<poem_openapi::OperationId>().copied();
                let api = classify(err, &method, &path);
                if !api.kind.is_client_error() {
                    tracing::error!(code = api.kind.code(), detail = %api.detail, "request failed");
                }
                let mut resp = api.to_response(info.as_ref());
                if let Some(op) = operation {
                    resp.set_data(op);
                }
                Ok(resp)
            }
        }
    }
}

/// Maps framework errors to our kinds. poem-openapi reports most parse failures with its own
/// types; their messages are kept as the detail because they name the offending input.
fn classify(err: poem::Error, method: &poem::http::Method, path: &str) -> ApiError {
    use poem::error::{MethodNotAllowedError, NotFoundError, ReadBodyError, SizedLimitError};
    use poem_openapi::error::{
        AuthorizationError, ContentTypeError, ParseParamError, ParseRequestPayloadError,
    };
    if let Some(api) = err.downcast_ref::<ApiError>() {
        return api.clone();
    }
    if err.is::<NotFoundError>() {
        return ApiError::new(ErrorKind::NotFound, format!("no route for {method} {path}"));
    }
    if err.is::<MethodNotAllowedError>() {
        return ApiError::new(
            ErrorKind::MethodNotAllowed,
            format!("{method} is not allowed on {path}"),
        );
    }
    if let Some(e) = err.downcast_ref::<ParseParamError>() {
        return ApiError {
            errors: vec![FieldError::new(e.name, "invalid", e.reason.clone())],
            ..ApiError::new(
                ErrorKind::InvalidParameter,
                format!("parameter `{}`: {}", e.name, e.reason),
            )
        };
    }
    if let Some(e) = err.downcast_ref::<ParseRequestPayloadError>() {
        return ApiError::new(ErrorKind::ValidationFailed, e.reason.clone());
    }
    if let Some(e) = err.downcast_ref::<ContentTypeError>() {
        let detail = match e {
            ContentTypeError::ExpectContentType => {
                "a Content-Type header is required (application/json)".to_owned()
            }
            other => other.to_string(),
        };
        return ApiError::new(ErrorKind::UnsupportedMediaType, detail);
    }
    if err.is::<AuthorizationError>() {
        return ApiError::new(
            ErrorKind::Unauthenticated,
            "send `Authorization: Bearer <access token or API key>`",
        );
    }
    if let Some(ReadBodyError::PayloadTooLarge) = err.downcast_ref::<ReadBodyError>() {
        return ApiError::new(ErrorKind::PayloadTooLarge, "the request body is too large");
    }
    if err.is::<SizedLimitError>() || err.status() == StatusCode::PAYLOAD_TOO_LARGE {
        return ApiError::new(ErrorKind::PayloadTooLarge, "the request body is too large");
    }
    let status = err.status();
    let message = err.to_string();
    if status == StatusCode::BAD_REQUEST && message.starts_with("failed to parse path") {
        // poem names path parameters `param0…`; every path id here is a UUID.
        let reason = message
            .split_once("`: ")
            .map(|(_, r)| r)
            .unwrap_or(&message);
        return ApiError::new(
            ErrorKind::InvalidParameter,
            format!("a path segment is not a valid id (expected a UUID): {reason}"),
        );
    }
    if status.is_client_error() {
        let kind = match status {
            StatusCode::UNAUTHORIZED => ErrorKind::Unauthenticated,
            StatusCode::FORBIDDEN => ErrorKind::Forbidden,
            StatusCode::NOT_FOUND => ErrorKind::NotFound,
            StatusCode::UNPROCESSABLE_ENTITY => ErrorKind::ValidationFailed,
            _ => ErrorKind::InvalidParameter,
        };
        return ApiError::new(kind, message);
    }
    ApiError::internal(err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn problem_body_has_rfc9457_members_and_stable_type() {
        let e = ApiError::validation(vec![FieldError::new(
            "/name",
            "required",
            "name is required",
        )]);
        let p = e.problem(Some(&RequestInfo {
            path: "/v1/projects".into(),
            request_id: "r1".into(),
        }));
        let v = serde_json::to_value(&p).expect("json");
        assert_eq!(v["type"], "urn:nve:problem:validation-failed");
        assert_eq!(v["status"], 422);
        assert_eq!(v["code"], "validation-failed");
        assert_eq!(v["instance"], "/v1/projects");
        assert_eq!(v["errors"][0]["pointer"], "/name");
    }

    #[test]
    fn every_kind_has_a_distinct_code() {
        use ErrorKind::*;
        let all = [
            MalformedJson,
            MissingBody,
            InvalidParameter,
            ValidationFailed,
            Unauthenticated,
            InvalidToken,
            InvalidCredentials,
            Forbidden,
            NotFound,
            MethodNotAllowed,
            Conflict,
            EmailTaken,
            LastOwner,
            EditConflict,
            InvalidEdit,
            NothingToUndo,
            VersionMismatch,
            IfMatchRequired,
            RegistrationClosed,
            PayloadTooLarge,
            UnsupportedMediaType,
            RateLimited,
            Unavailable,
            Internal,
            OffsetMismatch,
            UploadExpired,
            TusVersionUnsupported,
        ];
        let mut codes: Vec<_> = all.iter().map(|k| k.code()).collect();
        codes.sort_unstable();
        codes.dedup();
        assert_eq!(codes.len(), all.len());
    }
}
