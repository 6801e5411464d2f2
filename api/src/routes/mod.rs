//! The `/v1` API, one OpenAPI struct per resource.

pub mod accounts;
pub mod ops;
pub mod projects;
pub mod timeline;

use std::collections::HashMap;

use poem_openapi::{OpenApiService, Tags};

#[derive(Tags)]
pub enum ApiTags {
    /// Accounts, sessions and tokens.
    Auth,
    /// API keys for integrators: created once, shown once, revocable.
    ApiKeys,
    /// Projects and their members (owner, editor, viewer).
    Projects,
    /// The project's timeline: document, edits, undo/redo, history and snapshots. Live
    /// collaboration runs over the WebSocket `GET /v1/projects/{id}/live` (docs/api.md).
    Timeline,
}

pub type Service = OpenApiService<
    (
        accounts::AuthApi,
        accounts::ApiKeysApi,
        projects::ProjectsApi,
        timeline::TimelineApi,
    ),
    (),
>;

pub fn service(public_url: Option<&str>) -> Service {
    let mut service = OpenApiService::new(
        (
            accounts::AuthApi,
            accounts::ApiKeysApi,
            projects::ProjectsApi,
            timeline::TimelineApi,
        ),
        "native-video-editor API",
        env!("CARGO_PKG_VERSION"),
    )
    .description(
        "Edit and render video over HTTP. Errors are RFC 9457 `application/problem+json` \
         bodies whose `code` is stable. Authenticate with `Authorization: Bearer <token>` \
         using an access token from `POST /v1/auth/login` or an API key.",
    )
    .server("/v1");
    if let Some(public) = public_url {
        service = service.server(format!("{}/v1", public.trim_end_matches('/')));
    }
    service
}

/// The document without a running server (`nve openapi`, the UI's client generator).
pub fn spec_json(public_url: Option<&str>) -> String {
    service(public_url).spec()
}

/// operationId -> `/v1/...` path template, read back from the generated document so the
/// metric labels can never drift from the routes.
pub fn route_templates(spec: &str) -> HashMap<String, String> {
    let mut out = HashMap::new();
    let Ok(doc) = serde_json::from_str::<serde_json::Value>(spec) else {
        return out;
    };
    let Some(paths) = doc.get("paths").and_then(|p| p.as_object()) else {
        return out;
    };
    for (path, ops) in paths {
        let Some(ops) = ops.as_object() else { continue };
        for op in ops.values() {
            if let Some(id) = op.get("operationId").and_then(|v| v.as_str()) {
                out.insert(id.to_owned(), format!("/v1{path}"));
            }
        }
    }
    out
}
