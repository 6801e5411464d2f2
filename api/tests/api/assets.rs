//! Uploading, probing, reading back, downloading (Range) and deleting assets, with the
//! embedded workers running the probe in isolated `nve exec probe` children.

use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::both_dbs;
use crate::helpers::{Db, Session, TestApp, spawn_app_with};

both_dbs!(
    uploads_are_probed_deduplicated_downloaded_and_deleted,
    bad_uploads_are_refused,
    timelines_use_ready_assets_of_their_project,
    derived_media_follow_the_probe
);

pub(crate) const NVE: &str = env!("CARGO_BIN_EXE_nve");

pub(crate) fn clip(dir: &std::path::Path) -> Vec<u8> {
    let path = dir.join("clip.mp4");
    let status = std::process::Command::new("ffmpeg")
        .args([
            "-hide_banner",
            "-loglevel",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
        ])
        .arg("testsrc=size=320x240:rate=25:duration=1")
        .args([
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=440:sample_rate=48000:duration=1",
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
        .arg(&path)
        .status()
        .expect("ffmpeg");
    assert!(status.success());
    std::fs::read(path).expect("read clip")
}

pub(crate) async fn app(db: Db, extra: &[(&str, &str)]) -> TestApp {
    let mut env = vec![("NVE_JOBS__CHILD_PROGRAM", NVE)];
    env.extend_from_slice(extra);
    spawn_app_with(db, &env).await
}

pub(crate) async fn upload(
    app: &TestApp,
    who: &Session,
    project: &str,
    name: &str,
    content_type: &str,
    bytes: Vec<u8>,
) -> crate::helpers::Reply {
    let url = reqwest::Url::parse_with_params(
        &app.url(&format!("/v1/projects/{project}/assets")),
        &[("filename", name)],
    )
    .expect("url");
    app.send(
        app.client
            .post(url)
            .bearer_auth(&who.token)
            .header("content-type", content_type)
            .body(bytes),
    )
    .await
}

pub(crate) async fn settled(app: &TestApp, who: &Session, id: &str) -> Value {
    let start = Instant::now();
    loop {
        let r = app.get(&format!("/v1/assets/{id}"), &who.token).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        if r.body["status"] != "probing" && r.body["status"] != "importing" {
            return r.body;
        }
        assert!(start.elapsed() < Duration::from_secs(30), "{}", r.text);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn uploads_are_probed_deduplicated_downloaded_and_deleted(db: Db) {
    let app = app(db, &[]).await;
    let owner = app.user("as1@example.org").await;
    let stranger = app.user("as1s@example.org").await;
    let p = app.project(&owner, "media").await;
    let dir = tempfile::tempdir().expect("tempdir");
    let bytes = clip(dir.path());

    let r = upload(
        &app,
        &owner,
        &p,
        "../../holiday\u{202E}.mp4",
        "video/mp4",
        bytes.clone(),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    assert_eq!(r.body["status"], "probing");
    assert_eq!(r.body["name"], "holiday.mp4");
    assert_eq!(r.body["size_bytes"], bytes.len());
    let id = r.body["id"].as_str().expect("id").to_owned();
    let asset = settled(&app, &owner, &id).await;
    assert_eq!(asset["status"], "ready", "{asset}");
    assert_eq!(asset["kind"], "video");
    assert_eq!(asset["probe"]["video"][0]["width"], 320);
    assert_eq!(asset["probe"]["audio"][0]["codec"], "aac");
    // The asset is decided inside the job; the job's own record follows a moment later.
    let job_path = format!("/v1/jobs/{}", asset["job_id"].as_str().expect("job"));
    let start = Instant::now();
    let job = loop {
        let job = app.get(&job_path, &owner.token).await;
        if job.body["status"] != "running" || start.elapsed() > Duration::from_secs(10) {
            break job;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(job.body["status"], "succeeded", "{}", job.text);

    // Derived media follow: a poster and a 20-tile strip with its index.
    let start = Instant::now();
    let derived = loop {
        let r = app.get(&format!("/v1/assets/{id}"), &owner.token).await;
        if r.body["thumbnails_url"].is_string() {
            break r.body;
        }
        assert!(start.elapsed() < Duration::from_secs(30), "{}", r.text);
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(
        derived["thumbnails"]["times"].as_array().map(Vec::len),
        Some(20)
    );
    assert_eq!(derived["thumbnails"]["tile_width"], 160);
    assert_eq!(derived["thumbnails"]["tile_height"], 120);
    for what in ["poster", "thumbnails"] {
        let r = app
            .client
            .get(app.url(&format!("/v1/assets/{id}/{what}")))
            .bearer_auth(&owner.token)
            .send()
            .await
            .expect("get");
        assert_eq!(r.status(), StatusCode::OK, "{what}");
        assert_eq!(r.headers()["content-type"], "image/jpeg");
        let body = r.bytes().await.expect("body");
        assert_eq!(&body[..3], &[0xFF, 0xD8, 0xFF], "{what} is a JPEG");
    }

    // The same content again: the same asset.
    let again = upload(&app, &owner, &p, "copy.mp4", "video/mp4", bytes.clone()).await;
    assert_eq!(again.status, StatusCode::OK, "{}", again.text);
    assert_eq!(again.body["id"], id.as_str());

    // Downloads: whole, ranges, conditional.
    let url = app.url(&format!("/v1/assets/{id}/original"));
    let full = app
        .client
        .get(&url)
        .bearer_auth(&owner.token)
        .send()
        .await
        .expect("get");
    assert_eq!(full.status(), StatusCode::OK);
    assert_eq!(full.headers()["accept-ranges"], "bytes");
    assert_eq!(full.headers()["content-type"], "video/mp4");
    let etag = full.headers()["etag"].to_str().expect("etag").to_owned();
    assert_eq!(full.bytes().await.expect("body").as_ref(), bytes.as_slice());
    let part = app
        .client
        .get(&url)
        .bearer_auth(&owner.token)
        .header("range", "bytes=10-19")
        .send()
        .await
        .expect("range");
    assert_eq!(part.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(
        part.headers()["content-range"],
        format!("bytes 10-19/{}", bytes.len()).as_str()
    );
    assert_eq!(part.bytes().await.expect("body").as_ref(), &bytes[10..20]);
    let tail = app
        .client
        .get(&url)
        .bearer_auth(&owner.token)
        .header("range", "bytes=-7")
        .send()
        .await
        .expect("suffix");
    assert_eq!(tail.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(
        tail.bytes().await.expect("body").as_ref(),
        &bytes[bytes.len() - 7..]
    );
    let beyond = app
        .client
        .get(&url)
        .bearer_auth(&owner.token)
        .header("range", format!("bytes={}-", bytes.len() + 5))
        .send()
        .await
        .expect("beyond");
    assert_eq!(beyond.status(), StatusCode::RANGE_NOT_SATISFIABLE);
    let cached = app
        .client
        .get(&url)
        .bearer_auth(&owner.token)
        .header("if-none-match", &etag)
        .send()
        .await
        .expect("conditional");
    assert_eq!(cached.status(), StatusCode::NOT_MODIFIED);

    // Other users see nothing.
    app.get(&format!("/v1/assets/{id}"), &stranger.token)
        .await
        .assert_problem(404, "not-found");
    app.get(&format!("/v1/assets/{id}/original"), &stranger.token)
        .await
        .assert_problem(404, "not-found");
    let list = app
        .get(
            &format!("/v1/projects/{p}/assets?status=ready&kind=video"),
            &owner.token,
        )
        .await;
    assert_eq!(list.body["items"][0]["id"], id.as_str(), "{}", list.text);

    // Deleting removes the original and every derived file.
    let blobs = app
        .state
        .storage
        .local_root()
        .expect("local storage")
        .join("projects");
    wait_derived(
        &app,
        &owner,
        &id,
        &["poster_url", "thumbnails_url", "proxy_url", "waveform_url"],
    )
    .await;
    assert_eq!(
        count_files(&blobs),
        5,
        "the original and four derived files"
    );
    let del = app
        .call(
            Method::DELETE,
            &format!("/v1/assets/{id}"),
            Some(&owner.token),
            None,
        )
        .await;
    assert_eq!(del.status, StatusCode::NO_CONTENT, "{}", del.text);
    app.get(&format!("/v1/assets/{id}"), &owner.token)
        .await
        .assert_problem(404, "not-found");
    assert_eq!(count_files(&blobs), 0);
}

pub(crate) fn count_files(dir: &std::path::Path) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| {
            let p = e.path();
            if p.is_dir() { count_files(&p) } else { 1 }
        })
        .sum()
}

async fn bad_uploads_are_refused(db: Db) {
    let app = app(db, &[("NVE_MEDIA__MAX_UPLOAD_MB", "1")]).await;
    let owner = app.user("as2@example.org").await;
    let viewer = app.user("as2v@example.org").await;
    let p = app.project(&owner, "bad media").await;
    app.post(
        &format!("/v1/projects/{p}/members"),
        Some(&owner.token),
        json!({"email": "as2v@example.org", "role": "viewer"}),
    )
    .await;

    // Over the limit: 413, and nothing left in storage.
    let big = vec![0u8; 2 * 1024 * 1024];
    upload(&app, &owner, &p, "big.mp4", "video/mp4", big)
        .await
        .assert_problem(413, "payload-too-large");
    // The same without a Content-Length: cut while streaming.
    let chunks = futures_util::stream::iter(
        (0..40).map(|_| Ok::<_, std::io::Error>(bytes::Bytes::from(vec![1u8; 64 * 1024]))),
    );
    let streamed = app
        .send(
            app.client
                .post(app.url(&format!("/v1/projects/{p}/assets")))
                .bearer_auth(&owner.token)
                .header("content-type", "application/octet-stream")
                .body(reqwest::Body::wrap_stream(chunks)),
        )
        .await;
    streamed.assert_problem(413, "payload-too-large");
    assert_eq!(
        count_files(app.state.storage.local_root().expect("local storage"))
            + count_files(&app.state.config.work_path()),
        0,
        "nothing left behind, in storage or staging"
    );

    // Not media, a PNG called .mp4, an empty file: stored, then rejected with their codes.
    let noise: Vec<u8> = (0..50_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 11) as u8)
        .collect();
    let r = upload(&app, &owner, &p, "noise.mp4", "video/mp4", noise).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let rejected = settled(&app, &owner, r.body["id"].as_str().expect("id")).await;
    assert_eq!(rejected["status"], "rejected", "{rejected}");
    assert_eq!(rejected["error"]["code"], "not-media", "{rejected}");
    let empty = upload(&app, &owner, &p, "empty.mov", "video/quicktime", Vec::new()).await;
    assert_eq!(empty.status, StatusCode::CREATED, "{}", empty.text);
    let empty = settled(&app, &owner, empty.body["id"].as_str().expect("id")).await;
    assert_eq!(empty["error"]["code"], "empty", "{empty}");

    // A PNG renamed .mp4 and sent as video/mp4.
    let dir = tempfile::tempdir().expect("tempdir");
    let png = dir.path().join("frame.png");
    let ok = std::process::Command::new("ffmpeg")
        .args([
            "-hide_banner",
            "-loglevel",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
        ])
        .arg("testsrc=size=64x48")
        .args(["-frames:v", "1"])
        .arg(&png)
        .status()
        .expect("ffmpeg")
        .success();
    assert!(ok);
    let r = upload(
        &app,
        &owner,
        &p,
        "frame.mp4",
        "video/mp4",
        std::fs::read(&png).expect("png"),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let mismatch = settled(&app, &owner, r.body["id"].as_str().expect("id")).await;
    assert_eq!(mismatch["error"]["code"], "type-mismatch", "{mismatch}");

    // Wrong content type, wrong role, unknown project.
    upload(&app, &owner, &p, "a.txt", "text/plain", b"hello".to_vec())
        .await
        .assert_problem(415, "unsupported-media-type");
    upload(&app, &viewer, &p, "v.mp4", "video/mp4", b"x".to_vec())
        .await
        .assert_problem(403, "forbidden");
    let nowhere = uuid::Uuid::now_v7().to_string();
    upload(&app, &owner, &nowhere, "v.mp4", "video/mp4", b"x".to_vec())
        .await
        .assert_problem(404, "not-found");
}

async fn timelines_use_ready_assets_of_their_project(db: Db) {
    let app = app(db, &[]).await;
    let owner = app.user("as3@example.org").await;
    let p = app.project(&owner, "edit with media").await;
    let other = app.project(&owner, "another").await;
    let dir = tempfile::tempdir().expect("tempdir");
    let bytes = clip(dir.path());
    let up = upload(&app, &owner, &p, "clip.mp4", "video/mp4", bytes.clone()).await;
    let id = up.body["id"].as_str().expect("id").to_owned();
    assert_eq!(settled(&app, &owner, &id).await["status"], "ready");
    let elsewhere = upload(&app, &owner, &other, "clip.mp4", "video/mp4", bytes.clone()).await;
    let elsewhere = elsewhere.body["id"].as_str().expect("id").to_owned();
    settled(&app, &owner, &elsewhere).await;
    let noise = upload(&app, &owner, &p, "noise.mp4", "video/mp4", vec![7u8; 4096]).await;
    let noise = noise.body["id"].as_str().expect("id").to_owned();
    assert_eq!(settled(&app, &owner, &noise).await["status"], "rejected");

    // Each edit is made on the current version.
    let edit = |ops: Value| {
        let app = &app;
        let owner = &owner;
        let p = p.clone();
        async move {
            let current = app
                .get(&format!("/v1/projects/{p}/timeline"), &owner.token)
                .await;
            let base = current.body["version"].as_i64().expect("version");
            app.post(
                &format!("/v1/projects/{p}/edits"),
                Some(&owner.token),
                json!({"base_version": base, "client_op_id": uuid::Uuid::new_v4().to_string(), "ops": ops}),
            )
            .await
        }
    };
    let add = |clip_id: &str, asset: &str, kind: &str, track: &str, duration: f64| {
        json!([{"type": "add_clip", "track_id": track,
                "clip": {"id": clip_id, "source": {"type": kind, "asset_id": asset},
                         "start": 0, "duration": duration}}])
    };
    let ok = edit(add("c1", &id, "asset", "V1", 0.8)).await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.text);
    let with_clip = ok.body["version"].as_i64().expect("version");

    for (ops, code) in [
        (add("c2", &id, "asset", "A1", 5.0), "beyond-source"),
        (
            add("c3", &uuid::Uuid::new_v4().to_string(), "asset", "A1", 0.5),
            "unknown-asset",
        ),
        (add("c4", "not-a-uuid", "asset", "A1", 0.5), "unknown-asset"),
        (add("c5", &elsewhere, "asset", "A1", 0.5), "unknown-asset"),
        (add("c6", &noise, "asset", "A1", 0.5), "unknown-asset"),
        (add("c7", &id, "image", "V1", 0.5), "source-mismatch"),
    ] {
        let r = edit(ops).await;
        r.assert_problem(422, "invalid-edit");
        assert!(r.text.contains(code), "{code}: {}", r.text);
    }

    // In use: the asset cannot be deleted.
    let path = format!("/v1/assets/{id}");
    app.call(Method::DELETE, &path, Some(&owner.token), None)
        .await
        .assert_problem(409, "conflict");
    let removed = edit(json!([{"type": "remove_clip", "clip_id": "c1"}])).await;
    assert_eq!(removed.status, StatusCode::OK, "{}", removed.text);
    let del = app
        .call(Method::DELETE, &path, Some(&owner.token), None)
        .await;
    assert_eq!(del.status, StatusCode::NO_CONTENT, "{}", del.text);
    app.call(Method::DELETE, &path, Some(&owner.token), None)
        .await
        .assert_problem(404, "not-found");

    // History that used it stays readable; new references to it are refused.
    let old = app
        .get(
            &format!("/v1/projects/{p}/timeline/versions/{with_clip}"),
            &owner.token,
        )
        .await;
    assert_eq!(old.status, StatusCode::OK, "{}", old.text);
    assert_eq!(
        old.body["document"]["tracks"][0]["clips"][0]["source"]["asset_id"],
        id.as_str(),
        "{}",
        old.text
    );
    let r = edit(add("c8", &id, "asset", "V1", 0.5)).await;
    assert!(r.text.contains("unknown-asset"), "{}", r.text);
    let listed = app
        .get(&format!("/v1/projects/{p}/assets"), &owner.token)
        .await;
    assert!(!listed.text.contains(&id), "{}", listed.text);

    // The content is free again: the same bytes make a new asset.
    let again = upload(&app, &owner, &p, "clip.mp4", "video/mp4", bytes).await;
    assert_eq!(again.status, StatusCode::CREATED, "{}", again.text);
    assert_ne!(again.body["id"], id.as_str());

    // Deleting a project removes its media with it.
    let media = app
        .state
        .storage
        .local_root()
        .expect("local storage")
        .to_owned();
    assert!(count_files(&media.join(format!("projects/{other}"))) > 0);
    let gone = app
        .call(
            Method::DELETE,
            &format!("/v1/projects/{other}"),
            Some(&owner.token),
            None,
        )
        .await;
    assert_eq!(gone.status, StatusCode::NO_CONTENT, "{}", gone.text);
    assert_eq!(count_files(&media.join(format!("projects/{other}"))), 0);
}

fn ffmpeg(args: &[&str]) {
    let status = std::process::Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-y"])
        .args(args)
        .status()
        .expect("ffmpeg");
    assert!(status.success(), "ffmpeg {args:?}");
}

/// Waits until the asset lists every one of `urls` (derived media arrive one job at a time).
async fn wait_derived(app: &TestApp, who: &Session, id: &str, urls: &[&str]) -> Value {
    let start = Instant::now();
    loop {
        let r = app.get(&format!("/v1/assets/{id}"), &who.token).await;
        if urls.iter().all(|u| r.body[*u].is_string()) {
            return r.body;
        }
        assert!(start.elapsed() < Duration::from_secs(90), "{}", r.text);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn derived_media_follow_the_probe(db: Db) {
    let app = app(db, &[]).await;
    let owner = app.user("as4@example.org").await;
    let p = app.project(&owner, "derived").await;
    let dir = tempfile::tempdir().expect("tempdir");
    let d = |name: &str| dir.path().join(name).display().to_string();

    // A 720p clip with sound: poster, strip, proxy and waveform.
    let video = d("hd.mp4");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=1280x720:rate=30:duration=2",
        "-f",
        "lavfi",
        "-i",
        "sine=frequency=440:sample_rate=48000:duration=2",
        "-c:v",
        "libx264",
        "-pix_fmt",
        "yuv420p",
        "-c:a",
        "aac",
        "-shortest",
        &video,
    ]);
    let up = upload(
        &app,
        &owner,
        &p,
        "hd.mp4",
        "video/mp4",
        std::fs::read(&video).expect("read"),
    )
    .await;
    let id = up.body["id"].as_str().expect("id").to_owned();
    let asset = wait_derived(
        &app,
        &owner,
        &id,
        &["poster_url", "thumbnails_url", "proxy_url", "waveform_url"],
    )
    .await;
    assert_eq!(asset["proxy"]["height"], 540, "{asset}");
    assert_eq!(asset["proxy"]["width"], 960, "{asset}");
    assert_eq!(asset["proxy"]["has_audio"], true, "{asset}");
    assert_eq!(asset["waveform"]["channels"], 1, "{asset}");

    // The proxy seeks like any video file: ranges, the right type, faststart (moov first).
    let url = app.url(asset["proxy_url"].as_str().expect("proxy"));
    let whole = app
        .client
        .get(&url)
        .bearer_auth(&owner.token)
        .send()
        .await
        .expect("proxy");
    assert_eq!(whole.status(), StatusCode::OK);
    assert_eq!(whole.headers()["content-type"], "video/mp4");
    let bytes = whole.bytes().await.expect("body");
    let moov = bytes.windows(4).position(|w| w == b"moov").expect("moov");
    let mdat = bytes.windows(4).position(|w| w == b"mdat").expect("mdat");
    assert!(moov < mdat, "faststart: the index comes first");
    let part = app
        .client
        .get(&url)
        .bearer_auth(&owner.token)
        .header("range", "bytes=0-99")
        .send()
        .await
        .expect("range");
    assert_eq!(part.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(part.bytes().await.expect("body").as_ref(), &bytes[..100]);

    let peaks = app
        .client
        .get(app.url(asset["waveform_url"].as_str().expect("waveform")))
        .bearer_auth(&owner.token)
        .send()
        .await
        .expect("waveform");
    assert_eq!(peaks.headers()["content-type"], "application/json");
    let peaks: Value = peaks.json().await.expect("json");
    let levels = peaks["levels"].as_array().expect("levels");
    assert!(!levels.is_empty(), "{peaks}");
    let loudest = levels[0]["data"]
        .as_array()
        .expect("data")
        .iter()
        .filter_map(Value::as_i64)
        .map(i64::abs)
        .max()
        .unwrap_or(0);
    assert!(loudest > 0, "a 440 Hz tone is not silence");

    // Sound only: a waveform, no pictures.
    let music = d("music.m4a");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "sine=frequency=220:sample_rate=44100:duration=2",
        "-ac",
        "2",
        "-c:a",
        "aac",
        &music,
    ]);
    let up = upload(
        &app,
        &owner,
        &p,
        "music.m4a",
        "audio/mp4",
        std::fs::read(&music).expect("read"),
    )
    .await;
    let music_id = up.body["id"].as_str().expect("id").to_owned();
    let a = wait_derived(&app, &owner, &music_id, &["waveform_url"]).await;
    assert_eq!(a["kind"], "audio");
    assert_eq!(a["waveform"]["channels"], 2, "{a}");
    assert!(
        a.get("poster_url").is_none() && a.get("proxy_url").is_none(),
        "{a}"
    );

    // A picture: poster and strip, no proxy, no waveform.
    let logo = d("logo.png");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc=size=400x200",
        "-frames:v",
        "1",
        &logo,
    ]);
    let up = upload(
        &app,
        &owner,
        &p,
        "logo.png",
        "image/png",
        std::fs::read(&logo).expect("read"),
    )
    .await;
    let logo_id = up.body["id"].as_str().expect("id").to_owned();
    let a = wait_derived(&app, &owner, &logo_id, &["poster_url"]).await;
    assert_eq!(a["kind"], "image");
    assert!(
        a.get("proxy_url").is_none() && a.get("waveform_url").is_none(),
        "{a}"
    );
    // No proxy or waveform job was even queued for it.
    let jobs = app
        .get(&format!("/v1/projects/{p}/jobs?limit=100"), &owner.token)
        .await;
    let kinds: Vec<&str> = jobs.body["items"]
        .as_array()
        .expect("jobs")
        .iter()
        .filter(|j| j["asset_id"] == logo_id.as_str())
        .filter_map(|j| j["kind"].as_str())
        .collect();
    assert!(
        !kinds.contains(&"proxy") && !kinds.contains(&"waveform"),
        "{kinds:?}"
    );
}
