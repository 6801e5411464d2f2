//! Standalone renders (`POST /v1/renders`): a whole document whose sources are the caller's
//! assets or URLs imported first, rendered by the embedded worker; every way such a request
//! can be wrong, refused before anything is queued; and sources that cannot be imported or do
//! not fit the document, failing the job with a clear code and no output.

use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};
use serde_json::{Value, json};

use crate::assets::{app, clip, count_files, settled, upload};
use crate::both_dbs;
use crate::helpers::{Db, Session, TestApp};
use crate::imports::media_server;

both_dbs!(
    a_standalone_render_imports_then_renders,
    another_users_asset_is_unknown,
    bad_standalone_requests_queue_nothing,
    sources_that_fail_fail_the_render
);

async fn finished(app: &TestApp, who: &Session, id: &str) -> Value {
    let start = Instant::now();
    loop {
        let r = app.get(&format!("/v1/renders/{id}"), &who.token).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        if !matches!(r.body["status"].as_str(), Some("queued" | "running")) {
            return r.body;
        }
        assert!(start.elapsed() < Duration::from_secs(120), "{}", r.text);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A 320x240, 25 fps document of clips `(id, asset_id, start, duration)` on one video track.
fn document(clips: &[(&str, &str, f64, f64)]) -> Value {
    let clips: Vec<Value> = clips
        .iter()
        .map(|(id, asset, start, duration)| {
            json!({"id": id, "source": {"type": "asset", "asset_id": asset},
                   "start": start, "duration": duration})
        })
        .collect();
    json!({
        "output": {"width": 320, "height": 240, "frame_rate": 25},
        "tracks": [{"id": "V1", "kind": "video", "clips": clips}],
    })
}

/// Render rows, render and import jobs, and projects in the database: what a refused request
/// must not leave. (Other jobs, such as an upload's thumbnails, come and go on their own.)
async fn queued(app: &TestApp) -> (u64, u64, u64) {
    let renders = nve_entity::renders::Entity::find()
        .count(&app.state.db)
        .await
        .expect("count renders");
    let jobs = nve_entity::jobs::Entity::find()
        .filter(nve_entity::jobs::Column::Kind.is_in(["render", "import"]))
        .count(&app.state.db)
        .await
        .expect("count jobs");
    let projects = nve_entity::projects::Entity::find()
        .count(&app.state.db)
        .await
        .expect("count projects");
    (renders, jobs, projects)
}

async fn a_standalone_render_imports_then_renders(db: Db) {
    let dir = tempfile::tempdir().expect("tempdir");
    let bytes = clip(dir.path());
    let base = media_server(bytes.clone()).await;
    let app = app(db, &[("NVE_MEDIA__IMPORT_ALLOW_PRIVATE", "true")]).await;
    let owner = app.user("sr1@example.org").await;
    // An asset the caller already has, in a project of theirs.
    let p = app.project(&owner, "library").await;
    let up = upload(&app, &owner, &p, "clip.mp4", "video/mp4", bytes).await;
    let asset = up.body["id"].as_str().expect("id").to_owned();
    assert_eq!(settled(&app, &owner, &asset).await["status"], "ready");

    let r = app
        .post(
            "/v1/renders",
            Some(&owner.token),
            json!({
                "timeline": document(&[("a", "intro", 0.0, 0.6), ("b", &asset, 0.6, 0.8)]),
                "sources": {"intro": format!("{base}/clip.mp4")},
                "profile": "h264",
            }),
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    assert_eq!(r.body["job"]["queue"], "render", "{}", r.text);
    assert_eq!(r.body["timeline_version"], 0, "{}", r.text);
    let id = r.body["id"].as_str().expect("id").to_owned();
    let scratch = r.body["project_id"].as_str().expect("project").to_owned();
    assert_ne!(scratch, p);
    let imported = r.body["sources"]["intro"]
        .as_str()
        .expect("the URL source's asset")
        .to_owned();

    let done = finished(&app, &owner, &id).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    let out = &done["output"];
    assert_eq!(out["frames"], 35, "{done}");
    assert!(
        out["verified"]
            .as_str()
            .is_some_and(|v| v.contains("h264 320x240")),
        "{done}"
    );
    assert!(out["timings"]["import_ms"].is_u64(), "{done}");

    // The URL source is an ordinary asset of the scratch project.
    let a = app
        .get(&format!("/v1/assets/{imported}"), &owner.token)
        .await;
    assert_eq!(a.body["status"], "ready", "{}", a.text);
    assert_eq!(a.body["project_id"], scratch.as_str(), "{}", a.text);
    assert_eq!(
        a.body["source_url"],
        format!("{base}/clip.mp4"),
        "{}",
        a.text
    );

    let url = app.url(done["output_url"].as_str().expect("output url"));
    let got = app
        .client
        .get(&url)
        .bearer_auth(&owner.token)
        .send()
        .await
        .expect("download");
    assert_eq!(got.status(), StatusCode::OK);
    let file = dir.path().join("standalone.mp4");
    std::fs::write(&file, got.bytes().await.expect("body")).expect("write");
    let probe = nve_pipelines::probe::probe(&file, Duration::from_secs(20)).expect("probe");
    assert!(
        (probe.duration.unwrap_or(0.0) - 1.4).abs() < 0.05,
        "{probe:?}"
    );
    assert_eq!(probe.video[0].width, 320);

    // Scratch projects stay out of the project list unless asked for.
    let listed = app.get("/v1/projects", &owner.token).await;
    let ids: Vec<&str> = listed.body["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|p| p["id"].as_str())
        .collect();
    assert_eq!(ids, vec![p.as_str()], "{}", listed.text);
    let all = app
        .get("/v1/projects?include_scratch=true", &owner.token)
        .await;
    assert!(
        all.body["items"]
            .as_array()
            .expect("items")
            .iter()
            .any(|p| p["id"] == scratch.as_str() && p["scratch"] == true),
        "{}",
        all.text
    );

    // Deleting the render takes its scratch project, imported media and output with it; the
    // asset it borrowed stays.
    let del = app
        .call(
            Method::DELETE,
            &format!("/v1/renders/{id}"),
            Some(&owner.token),
            None,
        )
        .await;
    assert_eq!(del.status, StatusCode::NO_CONTENT, "{}", del.text);
    app.get(&format!("/v1/projects/{scratch}"), &owner.token)
        .await
        .assert_problem(404, "not-found");
    let stored = app
        .state
        .storage
        .local_root()
        .expect("local storage")
        .join(format!("projects/{scratch}"));
    assert_eq!(
        count_files(&stored),
        0,
        "the scratch project's media is gone"
    );
    let kept = app.get(&format!("/v1/assets/{asset}"), &owner.token).await;
    assert_eq!(kept.body["status"], "ready", "{}", kept.text);
}

async fn another_users_asset_is_unknown(db: Db) {
    let app = app(db, &[]).await;
    let owner = app.user("sr2@example.org").await;
    let stranger = app.user("sr2s@example.org").await;
    let p = app.project(&owner, "private").await;
    let dir = tempfile::tempdir().expect("tempdir");
    let up = upload(&app, &owner, &p, "clip.mp4", "video/mp4", clip(dir.path())).await;
    let asset = up.body["id"].as_str().expect("id").to_owned();
    assert_eq!(settled(&app, &owner, &asset).await["status"], "ready");
    let before = queued(&app).await;

    // Someone else's asset answers exactly like one that does not exist.
    let mut answers = Vec::new();
    for id in [asset.clone(), uuid::Uuid::now_v7().to_string()] {
        let r = app
            .post(
                "/v1/renders",
                Some(&stranger.token),
                json!({"timeline": document(&[("a", &id, 0.0, 0.5)])}),
            )
            .await;
        r.assert_problem(422, "validation-failed");
        assert_eq!(
            r.body["errors"][0]["pointer"], "/timeline/tracks/0/clips/0/source/asset_id",
            "{}",
            r.text
        );
        assert_eq!(r.body["errors"][0]["code"], "unknown-asset", "{}", r.text);
        answers.push(
            r.body["errors"][0]["message"]
                .as_str()
                .map(|m| m.replace(&id, "ID")),
        );
    }
    assert_eq!(answers[0], answers[1]);
    assert_eq!(queued(&app).await, before, "nothing was recorded");
    let listed = app
        .get("/v1/projects?include_scratch=true", &stranger.token)
        .await;
    assert_eq!(listed.body["items"], json!([]), "{}", listed.text);

    // The owner may.
    let r = app
        .post(
            "/v1/renders",
            Some(&owner.token),
            json!({"timeline": document(&[("a", &asset, 0.0, 0.5)]), "profile": "wav"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    let done = finished(&app, &owner, r.body["id"].as_str().expect("id")).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    app.get(
        &format!("/v1/renders/{}", r.body["id"].as_str().expect("id")),
        &stranger.token,
    )
    .await
    .assert_problem(404, "not-found");
}

async fn bad_standalone_requests_queue_nothing(db: Db) {
    // The SSRF guard as deployed: private destinations refused.
    let app = app(db, &[]).await;
    let owner = app.user("sr3@example.org").await;
    let before = queued(&app).await;
    // A public address literal: checked without a resolver, never fetched (nothing is queued).
    let url = "http://93.184.215.14/clip.mp4";
    let good = document(&[("a", "intro", 0.0, 0.5)]);
    let mut too_many = serde_json::Map::new();
    let mut clips = Vec::new();
    for i in 0..51 {
        too_many.insert(format!("s{i}"), json!(url));
        clips.push((format!("c{i}"), format!("s{i}")));
    }
    let many_clips: Vec<(&str, &str, f64, f64)> = clips
        .iter()
        .enumerate()
        .map(|(i, (c, s))| (c.as_str(), s.as_str(), i as f64, 1.0))
        .collect();
    let cases: Vec<(Value, &str, &str)> = vec![
        (json!({}), "/timeline", "required"),
        (
            json!({"timeline": good, "sources": {"intro": url}, "colour": "red"}),
            "/colour",
            "unknown-field",
        ),
        (
            json!({"timeline": {"tracks": [], "trakcs": []}}),
            "/timeline/trakcs",
            "unknown-field",
        ),
        (
            json!({"timeline": {"tracks": [{"kind": "video", "clips": [
                {"id": "a", "source": {"type": "asset", "asset_id": "intro"}, "duration": "long"}]}]},
                   "sources": {"intro": url}}),
            "/timeline/tracks/0/clips/0/duration",
            "invalid-type",
        ),
        (
            json!({"timeline": {"output": {"width": 321, "height": 240},
                                "tracks": [{"kind": "video", "clips": [
                {"id": "a", "source": {"type": "asset", "asset_id": "intro"}, "duration": 1}]}]},
                   "sources": {"intro": url}}),
            "/timeline/output/width",
            "not-even",
        ),
        (
            json!({"timeline": good, "sources": {"intro": url, "outro": url}}),
            "/sources/outro",
            "unused-source",
        ),
        (
            json!({"timeline": good, "sources": {"intro": "ftp://example.org/clip.mp4"}}),
            "/sources/intro",
            "invalid-url",
        ),
        (
            json!({"timeline": good, "sources": {"intro": "http://127.0.0.1:9/clip.mp4"}}),
            "/sources/intro",
            "destination-refused",
        ),
        (
            json!({"timeline": good, "sources": {"in tro": url}}),
            "/sources/in tro",
            "invalid-value",
        ),
        (
            json!({"timeline": good}),
            "/timeline/tracks/0/clips/0/source/asset_id",
            "unknown-asset",
        ),
        (
            json!({"timeline": document(&many_clips), "sources": too_many}),
            "/sources",
            "too-many",
        ),
        (
            json!({"timeline": good, "sources": {"intro": url}, "range": {"start": 0.4, "end": 9}}),
            "/range",
            "invalid-range",
        ),
        (
            json!({"timeline": good, "sources": {"intro": url}, "profile": "mpeg1"}),
            "/profile",
            "unknown-profile",
        ),
        (
            json!({"timeline": good, "sources": {"intro": url},
                   "callback_url": "http://127.0.0.1/hook"}),
            "/callback_url",
            "destination-refused",
        ),
        (
            json!({"timeline": {"output": {"width": 320, "height": 240}, "tracks": []}}),
            "",
            "empty-timeline",
        ),
    ];
    for (body, pointer, code) in cases {
        let r = app
            .post("/v1/renders", Some(&owner.token), body.clone())
            .await;
        r.assert_problem(422, "validation-failed");
        let errors = r.body["errors"].as_array().cloned().unwrap_or_default();
        assert!(
            errors
                .iter()
                .any(|e| e["pointer"] == pointer && e["code"] == code),
            "{body}: expected {code} at {pointer:?}: {}",
            r.text
        );
    }
    // A feature the compiler refuses whatever the source turns out to be (an animated crop):
    // refused up front.
    let mut rotated = document(&[("a", "intro", 0.0, 0.5)]);
    rotated["tracks"][0]["clips"][0]["keyframes"] = json!([
        {"property": "crop_top", "time": 0, "value": 0},
        {"property": "crop_top", "time": 0.2, "value": 0.3}
    ]);
    let r = app
        .post(
            "/v1/renders",
            Some(&owner.token),
            json!({"timeline": rotated, "sources": {"intro": url}}),
        )
        .await;
    r.assert_problem(422, "validation-failed");
    assert_eq!(r.body["errors"][0]["code"], "unsupported", "{}", r.text);
    app.post("/v1/renders", None, json!({"timeline": good}))
        .await
        .assert_problem(401, "unauthenticated");
    assert_eq!(queued(&app).await, before, "nothing was recorded");
    let listed = app
        .get("/v1/projects?include_scratch=true", &owner.token)
        .await;
    assert_eq!(listed.body["items"], json!([]), "{}", listed.text);
}

async fn sources_that_fail_fail_the_render(db: Db) {
    let dir = tempfile::tempdir().expect("tempdir");
    let base = media_server(clip(dir.path())).await;
    let app = app(
        db,
        &[
            ("NVE_MEDIA__IMPORT_ALLOW_PRIVATE", "true"),
            ("NVE_JOBS__MAX_ATTEMPTS", "1"),
        ],
    )
    .await;
    let owner = app.user("sr4@example.org").await;

    // A URL that answers 404: the import fails, and so does the render, naming the source.
    let r = app
        .post(
            "/v1/renders",
            Some(&owner.token),
            json!({"timeline": document(&[("a", "intro", 0.0, 0.5)]),
                   "sources": {"intro": format!("{base}/missing")}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    let scratch = r.body["project_id"].as_str().expect("project").to_owned();
    let done = finished(&app, &owner, r.body["id"].as_str().expect("id")).await;
    assert_eq!(done["status"], "failed", "{done}");
    let error = &done["job"]["error"];
    assert_eq!(error["code"], "source-import-failed", "{done}");
    let message = error["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("\"intro\"") && message.contains("404"),
        "{done}"
    );
    assert!(done.get("output_url").is_none(), "{done}");
    let stored = app
        .state
        .storage
        .local_root()
        .expect("local storage")
        .join(format!("projects/{scratch}/renders"));
    assert_eq!(count_files(&stored), 0, "no output stored");

    // Imported fine, but shorter than its clip: refused once probed, with the validation's
    // code and the clip named.
    let r = app
        .post(
            "/v1/renders",
            Some(&owner.token),
            json!({"timeline": document(&[("long", "intro", 0.0, 3.0)]),
                   "sources": {"intro": format!("{base}/clip.mp4")}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    let done = finished(&app, &owner, r.body["id"].as_str().expect("id")).await;
    assert_eq!(done["status"], "failed", "{done}");
    assert_eq!(done["job"]["error"]["code"], "beyond-source", "{done}");
    assert!(
        done["job"]["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("\"long\"")),
        "{done}"
    );
    assert!(done.get("output_url").is_none(), "{done}");
}
