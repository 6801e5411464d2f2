//! The `/v1` API, one OpenAPI struct per resource.

pub mod accounts;
pub mod assets;
pub mod jobs;
pub mod ops;
pub mod projects;
pub mod renders;
pub mod standalone;
pub mod timeline;
pub mod uploads;

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
    /// Background work (ingest, previews, renders): state, progress, cancellation.
    Jobs,
    /// Media assets: uploads, probing, downloads.
    Assets,
    /// Resumable uploads of large files (tus 1.0.0: creation, termination, expiration).
    Uploads,
    /// Renders of the timeline to files (a project's, or a document posted whole), and single
    /// frames for previews.
    Renders,
}

pub type Service = OpenApiService<
    (
        accounts::AuthApi,
        accounts::ApiKeysApi,
        projects::ProjectsApi,
        timeline::TimelineApi,
        jobs::JobsApi,
        assets::AssetsApi,
        uploads::UploadsApi,
        renders::RendersApi,
        standalone::StandaloneRendersApi,
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
            jobs::JobsApi,
            assets::AssetsApi,
            uploads::UploadsApi,
            renders::RendersApi,
            standalone::StandaloneRendersApi,
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
    with_timeline_schemas(&service(public_url).spec())
}

/// poem-openapi only knows its own types; the timeline document and its ops are serde types of
/// the media domain. Their JSON Schemas (from schemars, in OpenAPI 3.0 form) are added under
/// `components.schemas` and referenced where the API carries them.
pub fn with_timeline_schemas(spec: &str) -> String {
    use nve_pipelines::timeline::{OpDoc, TimelineDoc};
    use serde_json::{Value, json};
    let Ok(mut doc) = serde_json::from_str::<Value>(spec) else {
        return spec.to_owned();
    };
    let mut generator = schemars::generate::SchemaSettings::openapi3().into_generator();
    let timeline_ref = Value::from(generator.subschema_for::<TimelineDoc>());
    let op_ref = Value::from(generator.subschema_for::<OpDoc>());
    let definitions = generator.take_definitions(true);
    if let Some(schemas) = doc
        .pointer_mut("/components/schemas")
        .and_then(Value::as_object_mut)
    {
        for (name, schema) in definitions {
            schemas.entry(name).or_insert(schema);
        }
    }
    let set = |doc: &mut Value, pointer: &str, value: &Value| {
        if let Some(slot) = doc.pointer_mut(pointer) {
            let description = slot.get("description").cloned();
            *slot = value.clone();
            if let (Some(d), Some(obj)) = (description, slot.as_object_mut()) {
                // OpenAPI 3.0 ignores siblings of $ref; wrap to keep the field's description.
                let reference = Value::Object(obj.clone());
                *slot = json!({"allOf": [reference], "description": d});
            }
        }
    };
    // Request bodies reject unknown fields (no mass assignment); say so in the schema.
    let mut request_types = Vec::new();
    if let Some(paths) = doc.get("paths").and_then(Value::as_object) {
        for ops in paths.values().filter_map(Value::as_object) {
            for op in ops.values() {
                if let Some(r) = op
                    .pointer("/requestBody/content/application~1json/schema/$ref")
                    .and_then(Value::as_str)
                {
                    request_types.push(r.trim_start_matches("#/components/schemas/").to_owned());
                }
            }
        }
    }
    for name in request_types {
        if let Some(schema) = doc
            .pointer_mut(&format!("/components/schemas/{name}"))
            .and_then(Value::as_object_mut)
        {
            schema.insert("additionalProperties".into(), Value::Bool(false));
        }
    }
    set(
        &mut doc,
        "/components/schemas/TimelineState/properties/document",
        &timeline_ref,
    );
    set(
        &mut doc,
        "/components/schemas/EditRequest/properties/ops/items",
        &op_ref,
    );
    set(
        &mut doc,
        "/paths/~1projects~1{id}~1timeline/put/requestBody/content/application~1json/schema",
        &timeline_ref,
    );
    set(
        &mut doc,
        "/components/schemas/CreateStandaloneRender/properties/timeline",
        &timeline_ref,
    );
    serde_json::to_string(&doc).unwrap_or_else(|_| spec.to_owned())
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
