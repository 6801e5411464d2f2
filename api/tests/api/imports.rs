//! Imports by URL against a real HTTP server started by the test (a few lines of HTTP/1.1
//! over a socket, so stalls and lies about sizes are exact), with the worker fetching in
//! the embedded runtime.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::assets::{app, clip, settled};
use crate::both_dbs;
use crate::helpers::{Db, Session, TestApp};

both_dbs!(imports_fetch_probe_and_refuse);

/// Serves: `/clip.mp4` (the clip), `/moved` (302 to it), `/loop` (redirects to itself),
/// `/missing` (404), `/big` (2 MiB), `/stall` (half the clip, then nothing), `/short` (claims
/// more bytes than it sends).
pub(crate) async fn media_server(clip: Vec<u8>) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            let clip = clip.clone();
            tokio::spawn(async move {
                let mut request = Vec::new();
                let mut buf = [0u8; 1024];
                while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                    match socket.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => request.extend_from_slice(&buf[..n]),
                    }
                }
                let text = String::from_utf8_lossy(&request);
                let path = text.split_whitespace().nth(1).unwrap_or("/").to_owned();
                let head = |status: &str, extra: &str, len: usize| {
                    format!(
                        "HTTP/1.1 {status}\r\ncontent-length: {len}\r\nconnection: close\r\n{extra}\r\n"
                    )
                };
                match path.as_str() {
                    "/clip.mp4" => {
                        let _ = socket
                            .write_all(
                                head("200 OK", "content-type: video/mp4\r\n", clip.len())
                                    .as_bytes(),
                            )
                            .await;
                        let _ = socket.write_all(&clip).await;
                    }
                    "/moved" => {
                        let _ = socket
                            .write_all(head("302 Found", "location: /clip.mp4\r\n", 0).as_bytes())
                            .await;
                    }
                    "/loop" => {
                        let _ = socket
                            .write_all(head("302 Found", "location: /loop\r\n", 0).as_bytes())
                            .await;
                    }
                    "/big" => {
                        let big = vec![7u8; 2 * 1024 * 1024];
                        let _ = socket
                            .write_all(head("200 OK", "", big.len()).as_bytes())
                            .await;
                        let _ = socket.write_all(&big).await;
                    }
                    "/stall" => {
                        let _ = socket
                            .write_all(
                                head("200 OK", "content-type: video/mp4\r\n", clip.len())
                                    .as_bytes(),
                            )
                            .await;
                        let _ = socket.write_all(&clip[..clip.len() / 2]).await;
                        tokio::time::sleep(Duration::from_secs(30)).await;
                    }
                    "/short" => {
                        let _ = socket
                            .write_all(head("200 OK", "", clip.len() + 100).as_bytes())
                            .await;
                        let _ = socket.write_all(&clip).await;
                    }
                    _ => {
                        let _ = socket
                            .write_all(head("404 Not Found", "", 0).as_bytes())
                            .await;
                    }
                }
                let _ = socket.shutdown().await;
            });
        }
    });
    format!("http://{addr}")
}

async fn import(app: &TestApp, who: &Session, project: &str, body: Value) -> crate::helpers::Reply {
    app.post(
        &format!("/v1/projects/{project}/assets:import"),
        Some(&who.token),
        body,
    )
    .await
}

async fn imported(app: &TestApp, who: &Session, project: &str, url: String) -> Value {
    let r = import(app, who, project, json!({"url": url})).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    assert_eq!(r.body["status"], "importing", "{}", r.text);
    settled(app, who, r.body["id"].as_str().expect("id")).await
}

async fn imports_fetch_probe_and_refuse(db: Db) {
    let dir = tempfile::tempdir().expect("tempdir");
    let bytes = clip(dir.path());
    let base = media_server(bytes.clone()).await;
    let app = app(
        db,
        &[
            ("NVE_MEDIA__IMPORT_ALLOW_PRIVATE", "true"),
            ("NVE_MEDIA__MAX_UPLOAD_MB", "1"),
            ("NVE_MEDIA__UPLOAD_IDLE_TIMEOUT_SECS", "1"),
            ("NVE_JOBS__MAX_ATTEMPTS", "1"),
        ],
    )
    .await;
    let owner = app.user("im1@example.org").await;
    let viewer = app.user("im1v@example.org").await;
    let stranger = app.user("im1s@example.org").await;
    let p = app.project(&owner, "imports").await;
    app.post(
        &format!("/v1/projects/{p}/members"),
        Some(&owner.token),
        json!({"email": "im1v@example.org", "role": "viewer"}),
    )
    .await;

    let project = uuid::Uuid::parse_str(&p).expect("uuid");
    let mut events = app.state.collab.hub.subscribe(project);

    // Through a redirect: fetched, probed, downloadable, named after the URL.
    let asset = imported(&app, &owner, &p, format!("{base}/moved")).await;

    // The project's members saw the ingest happen: job events naming the asset, the import
    // then its probe.
    let mut seen = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while std::time::Instant::now() < deadline
        && !seen.contains(&("probe".to_owned(), "succeeded".to_owned()))
    {
        if let Ok(Ok(ev)) = tokio::time::timeout(Duration::from_secs(1), events.recv()).await {
            let v = serde_json::to_value(ev.as_ref()).expect("event json");
            if v["type"] == "job" && v["detail"]["asset_id"] == asset["id"] {
                seen.push((
                    v["kind"].as_str().unwrap_or_default().to_owned(),
                    v["status"].as_str().unwrap_or_default().to_owned(),
                ));
            }
        }
    }
    for expected in [
        ("import", "running"),
        ("import", "succeeded"),
        ("probe", "succeeded"),
    ] {
        assert!(
            seen.contains(&(expected.0.to_owned(), expected.1.to_owned())),
            "{expected:?} in {seen:?}"
        );
    }
    assert_eq!(asset["status"], "ready", "{asset}");
    assert_eq!(asset["kind"], "video");
    assert_eq!(asset["source_url"], format!("{base}/moved"));
    assert_eq!(asset["name"], "moved");
    assert_eq!(asset["content_type"], "video/mp4");
    assert_eq!(asset["size_bytes"], bytes.len());
    let original = app
        .client
        .get(app.url(&format!(
            "/v1/assets/{}/original",
            asset["id"].as_str().expect("id")
        )))
        .bearer_auth(&owner.token)
        .send()
        .await
        .expect("download");
    assert_eq!(
        original.bytes().await.expect("body").as_ref(),
        bytes.as_slice()
    );

    // The same content again: rejected as a duplicate naming the first asset.
    let again = imported(&app, &owner, &p, format!("{base}/clip.mp4")).await;
    assert_eq!(again["status"], "rejected", "{again}");
    assert_eq!(again["error"]["code"], "duplicate", "{again}");
    assert!(
        again["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains(asset["id"].as_str().expect("id"))),
        "{again}"
    );

    // Failures, each with its code; nothing is left in staging.
    for (path, code) in [
        ("/missing", "import-failed"),
        ("/loop", "import-failed"),
        ("/big", "too-large"),
        ("/stall", "import-stalled"),
        ("/short", "import-interrupted"),
    ] {
        let a = imported(&app, &owner, &p, format!("{base}{path}")).await;
        assert_eq!(a["status"], "rejected", "{path}: {a}");
        assert_eq!(a["error"]["code"], code, "{path}: {a}");
    }
    let staging = app.state.config.work_path().join("staging");
    assert_eq!(crate::assets::count_files(&staging), 0);

    // Refused before anything is queued.
    import(&app, &owner, &p, json!({"url": "ftp://example.org/a.mp4"}))
        .await
        .assert_problem(422, "validation-failed");
    import(&app, &owner, &p, json!({"url": 12}))
        .await
        .assert_problem(422, "validation-failed");
    import(
        &app,
        &viewer,
        &p,
        json!({"url": format!("{base}/clip.mp4")}),
    )
    .await
    .assert_problem(403, "forbidden");
    import(
        &app,
        &stranger,
        &p,
        json!({"url": format!("{base}/clip.mp4")}),
    )
    .await
    .assert_problem(404, "not-found");
}

/// Without `media.import_allow_private`, private and loopback destinations are refused when
/// the import is asked for.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn private_destinations_are_refused() {
    let app = app(Db::Sqlite, &[]).await;
    let owner = app.user("im2@example.org").await;
    let p = app.project(&owner, "guarded").await;
    for url in [
        "http://127.0.0.1:9/clip.mp4",
        "http://localhost/clip.mp4",
        "http://169.254.169.254/latest/meta-data",
        "http://10.0.0.8/a.mp4",
        "http://[::1]/a.mp4",
    ] {
        let r = import(&app, &owner, &p, json!({"url": url})).await;
        r.assert_problem(422, "validation-failed");
        assert!(r.text.contains("destination-refused"), "{url}: {}", r.text);
    }
    let list = app
        .get(&format!("/v1/projects/{p}/assets"), &owner.token)
        .await;
    assert_eq!(list.body["items"], json!([]), "nothing was created");
}
