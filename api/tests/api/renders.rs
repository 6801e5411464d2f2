//! Renders through the API: asked for, checked up front, rendered by the embedded worker in
//! an isolated child, verified, downloaded with Range; single preview frames; and every way
//! a render request can be wrong.

use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::assets::{app, clip, settled, upload};
use crate::both_dbs;
use crate::helpers::{Db, Session, TestApp};

both_dbs!(
    a_timeline_renders_to_a_file,
    a_cancelled_render_leaves_nothing
);

async fn edit(app: &TestApp, who: &Session, p: &str, ops: Value) -> crate::helpers::Reply {
    let current = app
        .get(&format!("/v1/projects/{p}/timeline"), &who.token)
        .await;
    let base = current.body["version"].as_i64().expect("version");
    app.post(
        &format!("/v1/projects/{p}/edits"),
        Some(&who.token),
        json!({"base_version": base, "client_op_id": uuid::Uuid::new_v4().to_string(), "ops": ops}),
    )
    .await
}

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

async fn a_timeline_renders_to_a_file(db: Db) {
    let app = app(db, &[]).await;
    let owner = app.user("rn1@example.org").await;
    let viewer = app.user("rn1v@example.org").await;
    let stranger = app.user("rn1s@example.org").await;
    let p = app.project(&owner, "renders").await;
    app.post(
        &format!("/v1/projects/{p}/members"),
        Some(&owner.token),
        json!({"email": "rn1v@example.org", "role": "viewer"}),
    )
    .await;
    let renders = format!("/v1/projects/{p}/renders");

    // Nothing to render yet.
    app.post(&renders, Some(&owner.token), json!({}))
        .await
        .assert_problem(422, "validation-failed");

    let dir = tempfile::tempdir().expect("tempdir");
    let up = upload(&app, &owner, &p, "clip.mp4", "video/mp4", clip(dir.path())).await;
    let asset = up.body["id"].as_str().expect("id").to_owned();
    assert_eq!(settled(&app, &owner, &asset).await["status"], "ready");
    // Two edits: the ops of one batch are read in seconds on the grid the batch starts from.
    for ops in [
        json!([{"type": "set_output", "patch": {"width": 320, "height": 240, "frame_rate": 25}}]),
        json!([{"type": "add_clip", "track_id": "V1",
                "clip": {"id": "c1", "source": {"type": "asset", "asset_id": asset}, "start": 0, "duration": 0.8}}]),
    ] {
        let ok = edit(&app, &owner, &p, ops).await;
        assert_eq!(ok.status, StatusCode::OK, "{}", ok.text);
    }

    let r = app
        .post(&renders, Some(&owner.token), json!({"profile": "h264"}))
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    assert_eq!(r.body["job"]["queue"], "render");
    assert_eq!(r.body["profile"]["name"], "h264");
    let id = r.body["id"].as_str().expect("id").to_owned();
    // A preview goes through the edit queue, at the timeline's size when that is under 360
    // lines.
    let pv = app
        .post(&renders, Some(&owner.token), json!({"profile": "preview"}))
        .await;
    assert_eq!(pv.status, StatusCode::ACCEPTED, "{}", pv.text);
    assert_eq!(pv.body["job"]["queue"], "edit");
    let preview_id = pv.body["id"].as_str().expect("id").to_owned();
    // A later edit does not change a render that was already asked for.
    edit(
        &app,
        &owner,
        &p,
        json!([{"type": "remove_clip", "clip_id": "c1"}]),
    )
    .await;
    let preview = finished(&app, &owner, &preview_id).await;
    assert_eq!(preview["status"], "succeeded", "{preview}");
    assert!(
        preview["output"]["verified"]
            .as_str()
            .is_some_and(|v| v.contains("h264 320x240")),
        "{preview}"
    );
    let done = finished(&app, &owner, &id).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    let out = &done["output"];
    assert_eq!(out["frames"], 20, "{done}");
    assert!(
        out["verified"]
            .as_str()
            .is_some_and(|v| v.contains("h264 320x240")),
        "{done}"
    );
    for stage in ["fetch_ms", "plan_ms", "render_ms", "verify_ms", "upload_ms"] {
        assert!(out["timings"][stage].is_u64(), "{stage}: {done}");
    }

    let url = app.url(done["output_url"].as_str().expect("output url"));
    let whole = app
        .client
        .get(&url)
        .bearer_auth(&owner.token)
        .send()
        .await
        .expect("download");
    assert_eq!(whole.status(), StatusCode::OK);
    assert_eq!(whole.headers()["content-type"], "video/mp4");
    let bytes = whole.bytes().await.expect("body");
    let file = dir.path().join("render.mp4");
    std::fs::write(&file, &bytes).expect("write");
    let probe = nve_pipelines::probe::probe(&file, Duration::from_secs(20)).expect("probe");
    assert!(
        (probe.duration.unwrap_or(0.0) - 0.8).abs() < 0.05,
        "{probe:?}"
    );
    assert_eq!(probe.video[0].width, 320);
    assert!(!probe.audio.is_empty(), "the clip's sound is in the render");
    let part = app
        .client
        .get(&url)
        .bearer_auth(&owner.token)
        .header("range", "bytes=0-31")
        .send()
        .await
        .expect("range");
    assert_eq!(part.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(part.bytes().await.expect("body").as_ref(), &bytes[..32]);
    app.get(&format!("/v1/renders/{id}"), &stranger.token)
        .await
        .assert_problem(404, "not-found");
    // Newest first: the preview, then the render.
    let listed = app.get(&renders, &viewer.token).await;
    assert_eq!(
        listed.body["items"][0]["id"],
        preview_id.as_str(),
        "{}",
        listed.text
    );
    assert_eq!(
        listed.body["items"][1]["id"],
        id.as_str(),
        "{}",
        listed.text
    );

    // Put the clip back, then: a range, a still, a sound-only file.
    edit(
        &app,
        &owner,
        &p,
        json!([{"type": "add_clip", "track_id": "V1",
                "clip": {"id": "c2", "source": {"type": "asset", "asset_id": asset}, "start": 0, "duration": 0.8}}]),
    )
    .await;
    for (body, frames, verified) in [
        (
            json!({"profile": "h264", "range": {"start": 0.2, "end": 0.6}}),
            10,
            "h264",
        ),
        (json!({"profile": "png"}), 1, "png"),
        (json!({"profile": "wav"}), 20, "pcm"),
    ] {
        let r = app.post(&renders, Some(&owner.token), body.clone()).await;
        assert_eq!(r.status, StatusCode::ACCEPTED, "{body}: {}", r.text);
        let done = finished(&app, &owner, r.body["id"].as_str().expect("id")).await;
        assert_eq!(done["status"], "succeeded", "{body}: {done}");
        assert!(
            done["output"]["verified"]
                .as_str()
                .is_some_and(|v| v.contains(verified)),
            "{body}: {done}"
        );
        if body["profile"] != "png" {
            assert_eq!(done["output"]["frames"], frames, "{body}: {done}");
        }
    }

    // The preview frame comes from the same compiler.
    let frame = app
        .client
        .get(app.url(&format!("/v1/projects/{p}/frame?t=0.4&w=160")))
        .bearer_auth(&viewer.token)
        .send()
        .await
        .expect("frame");
    assert_eq!(frame.status(), StatusCode::OK);
    assert_eq!(frame.headers()["content-type"], "image/jpeg");
    let jpeg = frame.bytes().await.expect("jpeg");
    assert_eq!(&jpeg[..2], &[0xFF, 0xD8]);
    app.get(&format!("/v1/projects/{p}/frame?t=99&w=160"), &owner.token)
        .await
        .assert_problem(422, "validation-failed");

    // Wrong requests, each refused before anything is queued.
    for (body, code) in [
        (json!({"profile": "mpeg1"}), "unknown-profile"),
        (
            json!({"profile": {"container": "mp4", "video": {"codec": "vp9"}}}),
            "invalid-profile",
        ),
        (json!({"profile": "av1"}), "experimental-codec"),
        (
            json!({"range": {"start": 0.5, "end": 0.2}}),
            "invalid-range",
        ),
        (json!({"range": {"start": 0, "end": 60}}), "invalid-range"),
        (json!({"profile": 7}), "invalid-profile"),
        (
            json!({"callback_url": "http://127.0.0.1/hook"}),
            "destination-refused",
        ),
    ] {
        let r = app.post(&renders, Some(&owner.token), body.clone()).await;
        r.assert_problem(422, "validation-failed");
        assert!(r.text.contains(code), "{body}: {}", r.text);
    }
    // A feature the compiler cannot render exactly is refused with `unsupported`.
    edit(
        &app,
        &owner,
        &p,
        json!([{"type": "set_clip", "clip_id": "c2", "patch": {"keyframes": [
            {"property": "crop_top", "time": 0, "value": 0},
            {"property": "crop_top", "time": 0.2, "value": 0.3}
        ]}}]),
    )
    .await;
    let r = app.post(&renders, Some(&owner.token), json!({})).await;
    r.assert_problem(422, "validation-failed");
    assert!(r.text.contains("unsupported"), "{}", r.text);
    app.post(&renders, Some(&viewer.token), json!({}))
        .await
        .assert_problem(403, "forbidden");
    app.post(&renders, Some(&stranger.token), json!({}))
        .await
        .assert_problem(404, "not-found");

    // Deleting a render removes its file.
    let del = app
        .call(
            Method::DELETE,
            &format!("/v1/renders/{id}"),
            Some(&owner.token),
            None,
        )
        .await;
    assert_eq!(del.status, StatusCode::NO_CONTENT, "{}", del.text);
    let gone = app
        .client
        .get(&url)
        .bearer_auth(&owner.token)
        .send()
        .await
        .expect("gone");
    assert_eq!(gone.status(), StatusCode::NOT_FOUND);
}

async fn a_cancelled_render_leaves_nothing(db: Db) {
    let app = app(db, &[]).await;
    let owner = app.user("rn2@example.org").await;
    let p = app.project(&owner, "cancel").await;
    let dir = tempfile::tempdir().expect("tempdir");
    // Ten seconds rendered at 1080p: long enough to be stopped in the middle.
    let long = dir.path().join("long.mp4");
    let made = std::process::Command::new("ffmpeg")
        .args([
            "-hide_banner",
            "-loglevel",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
        ])
        .arg("testsrc=size=320x240:rate=30:duration=10")
        .args([
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=440:sample_rate=48000:duration=10",
        ])
        .args([
            "-c:v",
            "libx264",
            "-pix_fmt",
            "yuv420p",
            "-c:a",
            "aac",
            "-shortest",
        ])
        .arg(&long)
        .status()
        .expect("ffmpeg");
    assert!(made.success());
    let bytes = std::fs::read(&long).expect("read");
    let up = upload(&app, &owner, &p, "long.mp4", "video/mp4", bytes).await;
    let asset = up.body["id"].as_str().expect("id").to_owned();
    assert_eq!(settled(&app, &owner, &asset).await["status"], "ready");
    let ok = edit(
        &app,
        &owner,
        &p,
        json!([{"type": "add_clip", "track_id": "V1",
                "clip": {"id": "c", "source": {"type": "asset", "asset_id": asset}, "start": 0, "duration": 9.5}}]),
    )
    .await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.text);
    let r = app
        .post(
            &format!("/v1/projects/{p}/renders"),
            Some(&owner.token),
            json!({}),
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    let id = r.body["id"].as_str().expect("id").to_owned();
    let job = r.body["job"]["id"].as_str().expect("job").to_owned();
    // Wait until it is really rendering, then stop it.
    let start = Instant::now();
    loop {
        let r = app.get(&format!("/v1/renders/{id}"), &owner.token).await;
        if r.body["progress"].as_f64().is_some_and(|p| p > 0.0) {
            break;
        }
        assert!(
            matches!(r.body["status"].as_str(), Some("queued" | "running")),
            "{}",
            r.text
        );
        assert!(start.elapsed() < Duration::from_secs(60), "{}", r.text);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let cancelled_at = Instant::now();
    let c = app
        .call(
            Method::DELETE,
            &format!("/v1/jobs/{job}"),
            Some(&owner.token),
            None,
        )
        .await;
    assert_eq!(c.status, StatusCode::ACCEPTED, "{}", c.text);
    let done = finished(&app, &owner, &id).await;
    assert_eq!(done["status"], "cancelled", "{done}");
    assert!(
        cancelled_at.elapsed() < Duration::from_secs(5),
        "stopped after {:?}",
        cancelled_at.elapsed()
    );
    assert!(done.get("output_url").is_none(), "{done}");
    // Nothing in staging, nothing stored under renders/.
    let staging = app.state.config.work_path().join("staging");
    let start = Instant::now();
    while crate::assets::count_files(&staging) > 0 && start.elapsed() < Duration::from_secs(5) {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(crate::assets::count_files(&staging), 0, "staging is empty");
    let stored = app
        .state
        .storage
        .local_root()
        .expect("local storage")
        .join(format!("projects/{p}/renders"));
    assert_eq!(crate::assets::count_files(&stored), 0, "no output stored");
}
