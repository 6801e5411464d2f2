//! Logging setup and the per-request context: request id, span, access log line and metrics.

use std::time::Instant;

use nve_config::{LogConfig, LogFormat};
use poem::http::HeaderValue;
use poem::{Endpoint, IntoResponse, Middleware, Request, Response};
use tracing::Instrument;
use tracing_subscriber::EnvFilter;

use crate::error::RequestInfo;
use crate::metrics::{HTTP_REQUEST_DURATION, HTTP_REQUESTS_TOTAL};
use crate::state::AppState;

/// Installs the global subscriber once; later calls (tests start many servers) are no-ops.
pub fn init(log: &LogConfig) {
    let filter = EnvFilter::try_new(&log.level).unwrap_or_else(|_| EnvFilter::new("info"));
    let result = match log.format {
        LogFormat::Json => tracing_subscriber::fmt()
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .try_init(),
        LogFormat::Pretty => tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .try_init(),
    };
    drop(result);
}

pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// A caller's id is reused when it is short and plain, so ids can be followed across services
/// without letting a client inject arbitrary text into our logs.
fn incoming_request_id(req: &Request) -> Option<String> {
    let v = req.headers().get(REQUEST_ID_HEADER)?.to_str().ok()?;
    let ok = !v.is_empty()
        && v.len() <= 128
        && v.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':'));
    ok.then(|| v.to_owned())
}

pub struct RequestContext;

impl<E: Endpoint> Middleware<E> for RequestContext {
    type Output = RequestContextEndpoint<E>;

    fn transform(&self, ep: E) -> Self::Output {
        RequestContextEndpoint { inner: ep }
    }
}

pub struct RequestContextEndpoint<E> {
    inner: E,
}

impl<E: Endpoint> Endpoint for RequestContextEndpoint<E> {
    type Output = Response;

    async fn call(&self, mut req: Request) -> poem::Result<Self::Output> {
        let start = Instant::now();
        let request_id =
            incoming_request_id(&req).unwrap_or_else(|| uuid::Uuid::now_v7().to_string());
        let method = req.method().to_string();
        let path = req.uri().path().to_owned();
        let routes = req.data::<AppState>().map(|s| s.routes.clone());
        req.extensions_mut().insert(RequestInfo {
            path: path.clone(),
            request_id: request_id.clone(),
        });
        let span = tracing::info_span!(
            "request",
            request_id = %request_id,
            method = %method,
            route = tracing::field::Empty,
            user_id = tracing::field::Empty,
        );
        let result = self.inner.call(req).instrument(span.clone()).await;
        let mut resp = match result {
            Ok(r) => r.into_response(),
            Err(e) => e.into_response(),
        };
        let status = resp.status().as_u16();
        let route = resp
            .data::<poem_openapi::OperationId>()
            .and_then(|op| routes.as_ref()?.get(op.0).cloned())
            .unwrap_or_else(|| fallback_route(&path, status));
        span.record("route", route.as_str());
        let elapsed = start.elapsed();
        let labels = [
            ("method", method.clone()),
            ("route", route.clone()),
            ("status", status.to_string()),
        ];
        metrics::histogram!(HTTP_REQUEST_DURATION, &labels).record(elapsed.as_secs_f64());
        metrics::counter!(HTTP_REQUESTS_TOTAL, &labels).increment(1);
        let latency_ms = elapsed.as_secs_f64() * 1000.0;
        span.in_scope(|| {
            if status >= 500 {
                tracing::error!(status, latency_ms, path = %path, "request finished");
            } else {
                tracing::info!(status, latency_ms, path = %path, "request finished");
            }
        });
        if let Ok(v) = HeaderValue::from_str(&request_id) {
            resp.headers_mut().insert(REQUEST_ID_HEADER, v);
        }
        Ok(resp)
    }
}

/// Routes outside the OpenAPI document have fixed paths; anything else is collapsed so raw
/// paths (ids, probes of random URLs) never become label values.
fn fallback_route(path: &str, status: u16) -> String {
    match path {
        "/healthz" | "/readyz" | "/metrics" | "/openapi.json" | "/" => path.to_owned(),
        p if p.starts_with("/docs") => "/docs".to_owned(),
        _ if status == 404 || status == 405 => "unmatched".to_owned(),
        _ => "static".to_owned(),
    }
}
