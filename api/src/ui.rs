//! The web UI: the built single-page app when `ui.dist_dir` exists, otherwise a small page
//! saying the API is up and where its documentation is.

use poem::endpoint::StaticFilesEndpoint;
use poem::{EndpointExt, IntoEndpoint, Response, Route, get, handler};

use nve_config::Config;

const LANDING: &str = r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>native-video-editor</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>body{font-family:system-ui,sans-serif;max-width:40rem;margin:4rem auto;padding:0 1rem;line-height:1.5}code{background:#eee;padding:0 .2rem}</style>
</head><body>
<h1>native-video-editor</h1>
<p>The API is up. The editor UI is not built on this server (no <code>ui/dist</code>).</p>
<ul>
<li><a href="/docs">Interactive API documentation</a></li>
<li><a href="/openapi.json">OpenAPI document</a></li>
<li><a href="/readyz">Readiness</a> · <a href="/metrics">Metrics</a></li>
</ul>
</body></html>"#;

#[handler]
fn landing() -> Response {
    Response::builder()
        .content_type("text/html; charset=utf-8")
        .body(LANDING)
}

/// Mounts the UI on `route`: the whole built app (with client-side routing) when it exists,
/// otherwise only the landing page at `/`, so unknown paths stay 404s.
pub fn mount(route: Route, config: &Config) -> Route {
    let dist = &config.ui.dist_dir;
    if dist.join("index.html").is_file() {
        // Unknown paths fall back to index.html so client-side routes survive a reload.
        route.nest(
            "/",
            StaticFilesEndpoint::new(dist)
                .index_file("index.html")
                .fallback_to_index()
                .into_endpoint()
                .map_to_response(),
        )
    } else {
        route.at("/", get(landing))
    }
}
