use reqwest::StatusCode;

use crate::both_dbs;
use crate::helpers::{Db, spawn_app};

both_dbs!(health_ready_metrics_and_docs);

async fn health_ready_metrics_and_docs(db: Db) {
    let app = spawn_app(db).await;
    let h = app.send(app.client.get(app.url("/healthz"))).await;
    assert_eq!(h.status, StatusCode::OK);
    assert_eq!(h.body["status"], "ok");

    let r = app.send(app.client.get(app.url("/readyz"))).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let names: Vec<&str> = r.body["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .filter_map(|c| c["name"].as_str())
        .collect();
    assert_eq!(names, ["database", "queue", "storage", "gstreamer"]);

    // Request ids: ours is echoed; without one, one is generated; junk is replaced.
    let mine = app
        .send(
            app.client
                .get(app.url("/healthz"))
                .header("x-request-id", "abc-123"),
        )
        .await;
    assert_eq!(mine.headers["x-request-id"], "abc-123");
    let junk = app
        .send(
            app.client
                .get(app.url("/healthz"))
                .header("x-request-id", "bad id\twith spaces"),
        )
        .await;
    assert_ne!(junk.headers["x-request-id"], "bad id\twith spaces");
    let problem = app
        .send(
            app.client
                .get(app.url("/v1/me"))
                .header("x-request-id", "req-42"),
        )
        .await;
    assert_eq!(problem.body["request_id"], "req-42");

    let s = app.user("metrics@example.org").await;
    let id = app.project(&s, "m").await;
    app.get(&format!("/v1/projects/{id}"), &s.token).await;
    app.get(&format!("/v1/projects/{}", uuid::Uuid::now_v7()), &s.token)
        .await;
    let m = app.send(app.client.get(app.url("/metrics"))).await;
    assert_eq!(m.status, StatusCode::OK);
    assert!(
        m.text
            .contains("# TYPE http_request_duration_seconds histogram"),
        "{}",
        m.text
    );
    assert!(
        m.text.contains(r#"http_request_duration_seconds_bucket{method="GET",route="/v1/projects/{id}",status="200""#),
        "route templates, not raw paths"
    );
    assert!(m.text.contains(r#"route="/v1/projects/{id}",status="404""#));
    assert!(!m.text.contains(&id), "raw ids must never become labels");
    assert!(m.text.contains("process_resident_memory_bytes"));
    assert!(m.text.contains("process_cpu_seconds_total"));

    let spec = app.send(app.client.get(app.url("/openapi.json"))).await;
    assert_eq!(spec.status, StatusCode::OK);
    assert!(
        spec.body["openapi"]
            .as_str()
            .unwrap_or_default()
            .starts_with("3.")
    );
    assert!(spec.body["components"]["schemas"]["Problem"].is_object());
    assert!(spec.body["paths"]["/projects/{id}"]["get"]["responses"]["404"].is_object());
    // The timeline document and ops are described by their JSON Schemas, and every reference
    // in the document resolves.
    let schemas = &spec.body["components"]["schemas"];
    assert!(schemas["TimelineDoc"]["properties"]["tracks"].is_object());
    assert!(schemas["OpDoc"].is_object());
    assert_eq!(
        spec.body["components"]["schemas"]["EditRequest"]["properties"]["ops"]["items"]["$ref"],
        "#/components/schemas/OpDoc"
    );
    fn refs(v: &serde_json::Value, out: &mut Vec<String>) {
        match v {
            serde_json::Value::Object(m) => {
                for (k, x) in m {
                    match (k.as_str(), x.as_str()) {
                        ("$ref", Some(r)) => out.push(r.to_owned()),
                        _ => refs(x, out),
                    }
                }
            }
            serde_json::Value::Array(a) => a.iter().for_each(|x| refs(x, out)),
            _ => {}
        }
    }
    let mut all = Vec::new();
    refs(&spec.body, &mut all);
    assert!(all.len() > 20);
    for r in all {
        let name = r.trim_start_matches("#/components/schemas/");
        assert!(schemas[name].is_object(), "dangling {r}");
    }
    let docs = app.send(app.client.get(app.url("/docs"))).await;
    assert_eq!(docs.status, StatusCode::OK);
    let landing = app.send(app.client.get(app.url("/"))).await;
    assert!(landing.text.contains("/docs"));
}
