use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::both_dbs;
use crate::helpers::{Db, spawn_app};

both_dbs!(malformed_requests_get_precise_problems);

async fn malformed_requests_get_precise_problems(db: Db) {
    let app = spawn_app(db).await;
    let a = app.user("bad@example.org").await;
    let post_raw = |body: &'static str, ct: Option<&'static str>| {
        let mut req = app
            .client
            .post(app.url("/v1/projects"))
            .bearer_auth(&a.token)
            .body(body);
        if let Some(ct) = ct {
            req = req.header("content-type", ct);
        }
        req
    };

    let r = app
        .send(post_raw("{\"name\": \"x\"", Some("application/json")))
        .await;
    r.assert_problem(400, "malformed-json");
    assert!(
        r.body["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("line 1"),
        "{}",
        r.text
    );
    app.send(post_raw("", Some("application/json")))
        .await
        .assert_problem(400, "missing-body");
    app.send(post_raw("[1,2]", Some("application/json")))
        .await
        .assert_problem(422, "validation-failed");
    app.send(post_raw(
        "{\"name\":\"x\"} trailing",
        Some("application/json"),
    ))
    .await
    .assert_problem(400, "malformed-json");
    app.send(post_raw("{\"name\":\"x\"}", None))
        .await
        .assert_problem(415, "unsupported-media-type");
    app.send(post_raw(
        "name=x",
        Some("application/x-www-form-urlencoded"),
    ))
    .await
    .assert_problem(415, "unsupported-media-type");

    let wrong_type = app
        .post("/v1/projects", Some(&a.token), json!({"name": 42}))
        .await;
    wrong_type.assert_problem(422, "validation-failed");
    assert_eq!(wrong_type.body["errors"][0]["pointer"], "/name");
    assert_eq!(wrong_type.body["errors"][0]["code"], "invalid-type");
    let missing = app
        .post(
            "/v1/projects",
            Some(&a.token),
            json!({"description": "no name"}),
        )
        .await;
    assert_eq!(missing.body["errors"][0]["pointer"], "/name");
    assert_eq!(missing.body["errors"][0]["code"], "required");
    let long = app
        .post(
            "/v1/projects",
            Some(&a.token),
            json!({"name": "x".repeat(500)}),
        )
        .await;
    long.assert_problem(422, "validation-failed");
    assert_eq!(long.body["errors"][0]["code"], "too-long");

    // 2 MiB against the 1 MiB default, with and without a Content-Length.
    let huge = format!("{{\"name\":\"{}\"}}", "x".repeat(2 * 1024 * 1024));
    let r = app
        .send(
            app.client
                .post(app.url("/v1/projects"))
                .bearer_auth(&a.token)
                .header("content-type", "application/json")
                .body(huge.clone()),
        )
        .await;
    r.assert_problem(413, "payload-too-large");
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> = huge
        .into_bytes()
        .chunks(64 * 1024)
        .map(|c| Ok(c.to_vec()))
        .collect();
    let streamed = reqwest::Body::wrap_stream(futures_util::stream::iter(chunks));
    let r = app
        .send(
            app.client
                .post(app.url("/v1/projects"))
                .bearer_auth(&a.token)
                .header("content-type", "application/json")
                .body(streamed),
        )
        .await;
    r.assert_problem(413, "payload-too-large");

    app.get("/v1/projects/not-a-uuid", &a.token)
        .await
        .assert_problem(400, "invalid-parameter");
    app.get("/v1/projects?limit=0", &a.token)
        .await
        .assert_problem(400, "invalid-parameter");
    app.get("/v1/projects?limit=abc", &a.token)
        .await
        .assert_problem(400, "invalid-parameter");
    app.get("/v1/no-such-thing", &a.token)
        .await
        .assert_problem(404, "not-found");
    app.get("/definitely/not/here", &a.token)
        .await
        .assert_problem(404, "not-found");
    app.call(Method::PUT, "/v1/projects", Some(&a.token), Some(json!({})))
        .await
        .assert_problem(405, "method-not-allowed");

    // None of the above left anything behind.
    let list = app.get("/v1/projects", &a.token).await;
    assert_eq!(list.status, StatusCode::OK);
    assert!(list.body["items"].as_array().expect("items").is_empty());
}
