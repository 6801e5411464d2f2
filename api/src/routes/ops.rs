//! The operations surface, outside `/v1`: liveness, readiness, metrics.

use poem::http::StatusCode;
use poem::web::Data;
use poem::{IntoResponse, Response, handler};

use crate::state::AppState;

/// Liveness: the process answers. Never checks dependencies, so a database outage does not get
/// every replica restarted.
#[handler]
pub fn healthz() -> Response {
    Response::builder()
        .content_type("application/json")
        .body(r#"{"status":"ok"}"#)
}

/// Readiness: database, queue backend, storage and GStreamer, each with what was found.
#[handler]
pub async fn readyz(state: Data<&AppState>) -> Response {
    let report = nve_worker::readiness::check(&state.config, &state.db, &state.storage).await;
    let status = if report.ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    for c in report.checks.iter().filter(|c| !c.ok) {
        tracing::warn!(check = c.name, detail = %c.detail, "not ready");
    }
    match serde_json::to_vec(&report) {
        Ok(body) => Response::builder()
            .status(status)
            .content_type("application/json")
            .body(body),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

#[handler]
pub fn metrics() -> Response {
    Response::builder()
        .content_type("text/plain; version=0.0.4")
        .body(crate::metrics::render())
}

/// Serves the OpenAPI document computed at start-up.
pub fn spec_endpoint(spec: String) -> impl poem::Endpoint<Output = Response> {
    let spec = std::sync::Arc::new(spec);
    poem::endpoint::make_sync(move |_| {
        Response::builder()
            .content_type("application/json")
            .body(spec.as_str().to_owned())
    })
}
