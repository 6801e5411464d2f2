//! Resumable uploads (tus 1.0.0): chunks become an asset, offsets are enforced, interrupted
//! bodies keep what arrived, expiry, termination and the protocol's refusals.

use std::time::{Duration, Instant};

use base64::Engine as _;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::assets::{app, clip, count_files, settled};
use crate::both_dbs;
use crate::helpers::{Db, Reply, Session, TestApp};

both_dbs!(
    chunks_become_an_asset_and_duplicates_point_at_it,
    a_wrong_offset_conflicts_and_changes_nothing,
    an_interrupted_patch_keeps_what_arrived,
    protocol_and_access_refusals,
    delete_removes_the_upload_and_its_parts,
    expired_uploads_are_gone_and_swept,
    an_empty_upload_completes_at_creation,
);

const TUS: &str = "1.0.0";

fn b64(s: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(s)
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Bytes that are not media and do not repeat, so no two tests' uploads de-duplicate.
fn noise(len: usize, seed: u32) -> Vec<u8> {
    (0..len as u32)
        .map(|i| (i.wrapping_add(seed).wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect()
}

async fn create(
    app: &TestApp,
    who: &Session,
    project: &str,
    length: usize,
    metadata: &str,
) -> Reply {
    app.send(
        app.client
            .post(app.url(&format!("/v1/projects/{project}/uploads")))
            .bearer_auth(&who.token)
            .header("tus-resumable", TUS)
            .header("upload-length", length.to_string())
            .header("upload-metadata", metadata),
    )
    .await
}

/// Creates an upload and returns its `Location`.
async fn start(app: &TestApp, who: &Session, project: &str, length: usize) -> String {
    let meta = format!(
        "filename {},filetype {}",
        b64("data.bin"),
        b64("application/octet-stream")
    );
    let r = create(app, who, project, length, &meta).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    header(&r, "location")
}

async fn patch(
    app: &TestApp,
    who: &Session,
    location: &str,
    offset: usize,
    body: Vec<u8>,
) -> Reply {
    app.send(
        app.client
            .patch(app.url(location))
            .bearer_auth(&who.token)
            .header("tus-resumable", TUS)
            .header("upload-offset", offset.to_string())
            .header("content-type", "application/offset+octet-stream")
            .body(body),
    )
    .await
}

async fn head(app: &TestApp, who: &Session, location: &str) -> Reply {
    app.send(
        app.client
            .head(app.url(location))
            .bearer_auth(&who.token)
            .header("tus-resumable", TUS),
    )
    .await
}

fn header(r: &Reply, name: &str) -> String {
    r.headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_else(|| panic!("no {name} header: {:?} {}", r.headers, r.text))
        .to_owned()
}

fn offset_of(r: &Reply) -> usize {
    header(r, "upload-offset").parse().expect("numeric offset")
}

fn parts_dir(app: &TestApp, location: &str) -> std::path::PathBuf {
    let id = location.rsplit('/').next().expect("id");
    app.state
        .storage
        .local_root()
        .expect("local storage")
        .join("uploads")
        .join(id)
}

async fn download(app: &TestApp, who: &Session, path: &str) -> Vec<u8> {
    let resp = app
        .client
        .get(app.url(path))
        .bearer_auth(&who.token)
        .send()
        .await
        .expect("download");
    assert_eq!(resp.status(), StatusCode::OK);
    resp.bytes().await.expect("body").to_vec()
}

async fn chunks_become_an_asset_and_duplicates_point_at_it(db: Db) {
    let app = app(db, &[]).await;
    let owner = app.user("tus1@example.org").await;
    let p = app.project(&owner, "tus").await;
    let dir = tempfile::tempdir().expect("tempdir");
    let bytes = clip(dir.path());
    let meta = format!(
        "filename {},filetype {}",
        b64("../../holiday\u{202E}.mp4"),
        b64("video/mp4")
    );

    let created = create(&app, &owner, &p, bytes.len(), &meta).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    assert_eq!(header(&created, "tus-resumable"), TUS);
    let location = header(&created, "location");
    let id = created.body["id"].as_str().expect("id").to_owned();
    assert_eq!(location, format!("/v1/uploads/{id}"));
    assert_eq!(created.body["location"], location.as_str());
    assert_eq!(created.body["length"], bytes.len());
    assert_eq!(created.body["offset"], 0);
    assert_eq!(created.body["filename"], "holiday.mp4");
    let expires = header(&created, "upload-expires");
    let expires = chrono::DateTime::parse_from_rfc2822(&expires).expect("an HTTP date");
    let ahead = expires.with_timezone(&chrono::Utc) - chrono::Utc::now();
    assert!(ahead > chrono::Duration::hours(23), "{ahead}");

    // Three PATCHes of uneven sizes.
    let cuts = [
        0,
        bytes.len() / 5,
        bytes.len() / 5 + bytes.len() / 2,
        bytes.len(),
    ];
    let mut last = None;
    for w in cuts.windows(2) {
        let r = patch(&app, &owner, &location, w[0], bytes[w[0]..w[1]].to_vec()).await;
        assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
        assert_eq!(header(&r, "tus-resumable"), TUS);
        assert_eq!(offset_of(&r), w[1]);
        if w[1] < bytes.len() {
            assert!(r.headers.get("nve-asset-id").is_none());
            header(&r, "upload-expires");
            let h = head(&app, &owner, &location).await;
            assert_eq!(h.status, StatusCode::OK);
            assert_eq!(offset_of(&h), w[1]);
            assert_eq!(header(&h, "upload-length"), bytes.len().to_string());
            assert_eq!(header(&h, "cache-control"), "no-store");
            assert_eq!(header(&h, "tus-resumable"), TUS);
            assert!(
                header(&h, "upload-metadata")
                    .starts_with(&format!("filename {}", b64("holiday.mp4")))
            );
        }
        last = Some(r);
    }
    let last = last.expect("patched");
    let asset_id = header(&last, "nve-asset-id");
    assert_eq!(
        header(&last, "nve-asset-url"),
        format!("/v1/assets/{asset_id}")
    );

    // The asset: same bytes, same hash, probed like any upload.
    let asset = settled(&app, &owner, &asset_id).await;
    assert_eq!(asset["status"], "ready", "{asset}");
    assert_eq!(asset["kind"], "video");
    assert_eq!(asset["name"], "holiday.mp4");
    assert_eq!(asset["content_type"], "video/mp4");
    assert_eq!(asset["sha256"], sha256_hex(&bytes).as_str());
    assert_eq!(asset["size_bytes"], bytes.len());
    assert_eq!(
        download(&app, &owner, &format!("/v1/assets/{asset_id}/original")).await,
        bytes
    );
    assert_eq!(count_files(&parts_dir(&app, &location)), 0, "parts removed");

    // A complete upload reads as complete; PATCHing it again changes nothing.
    let h = head(&app, &owner, &location).await;
    assert_eq!(offset_of(&h), bytes.len());
    assert_eq!(header(&h, "nve-asset-id"), asset_id);
    assert!(h.headers.get("upload-expires").is_none());
    let g = app.get(&location, &owner.token).await;
    assert_eq!(g.status, StatusCode::OK, "{}", g.text);
    assert_eq!(g.body["complete"], true);
    assert_eq!(g.body["offset"], bytes.len());
    assert_eq!(g.body["asset_id"], asset_id.as_str());
    assert_eq!(
        g.body["asset_url"],
        format!("/v1/assets/{asset_id}").as_str()
    );
    let again = patch(&app, &owner, &location, bytes.len(), Vec::new()).await;
    assert_eq!(again.status, StatusCode::NO_CONTENT, "{}", again.text);
    assert_eq!(header(&again, "nve-asset-id"), asset_id);
    patch(&app, &owner, &location, 0, b"more".to_vec())
        .await
        .assert_problem(409, "offset-mismatch");
    patch(&app, &owner, &location, bytes.len(), b"more".to_vec())
        .await
        .assert_problem(413, "payload-too-large");

    // The same content again, in one PATCH: the existing asset.
    let created = create(&app, &owner, &p, bytes.len(), &meta).await;
    let second = header(&created, "location");
    let r = patch(&app, &owner, &second, 0, bytes.clone()).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
    assert_eq!(header(&r, "nve-asset-id"), asset_id);
    let list = app
        .get(&format!("/v1/projects/{p}/assets"), &owner.token)
        .await;
    assert_eq!(
        list.body["items"].as_array().map(Vec::len),
        Some(1),
        "{}",
        list.text
    );
}

async fn a_wrong_offset_conflicts_and_changes_nothing(db: Db) {
    let app = app(db, &[]).await;
    let owner = app.user("tus2@example.org").await;
    let p = app.project(&owner, "tus").await;
    let data = noise(4000, 2);
    let location = start(&app, &owner, &p, data.len()).await;

    let r = patch(&app, &owner, &location, 0, data[..1000].to_vec()).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
    for wrong in [0, 999, 1500] {
        let r = patch(
            &app,
            &owner,
            &location,
            wrong,
            data[wrong..wrong + 500].to_vec(),
        )
        .await;
        r.assert_problem(409, "offset-mismatch");
        assert_eq!(header(&r, "tus-resumable"), TUS);
    }
    assert_eq!(offset_of(&head(&app, &owner, &location).await), 1000);
    assert_eq!(count_files(&parts_dir(&app, &location)), 1);

    // Two PATCHes racing from the same offset: one wins, the other gets 409 and stores nothing.
    let racer = || {
        let (tx, rx) = tokio::sync::mpsc::channel::<bytes::Bytes>(4);
        let body = futures_util::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|b| (Ok::<_, std::io::Error>(b), rx))
        });
        let req = app
            .client
            .patch(app.url(&location))
            .bearer_auth(&owner.token)
            .header("tus-resumable", TUS)
            .header("upload-offset", "1000")
            .header("content-type", "application/offset+octet-stream")
            .body(reqwest::Body::wrap_stream(body));
        (tx, req)
    };
    let (tx_a, req_a) = racer();
    let (tx_b, req_b) = racer();
    let a = tokio::spawn(req_a.send());
    let b = tokio::spawn(req_b.send());
    tx_a.send(bytes::Bytes::from(vec![1u8; 300]))
        .await
        .expect("a");
    tx_b.send(bytes::Bytes::from(vec![2u8; 700]))
        .await
        .expect("b");
    tokio::time::sleep(Duration::from_millis(300)).await;
    drop((tx_a, tx_b));
    let a = a.await.expect("join").expect("a sent");
    let b = b.await.expect("join").expect("b sent");
    let mut statuses = [a.status().as_u16(), b.status().as_u16()];
    statuses.sort_unstable();
    assert_eq!(statuses, [204, 409]);
    let won = if a.status() == StatusCode::NO_CONTENT {
        300
    } else {
        700
    };
    assert_eq!(offset_of(&head(&app, &owner, &location).await), 1000 + won);
    assert_eq!(count_files(&parts_dir(&app, &location)), 2);
    let g = app.get(&location, &owner.token).await;
    assert_eq!(g.body["offset"], 1000 + won, "{}", g.text);
}

/// Sends a PATCH's head and `sent` bytes of a body announced as `announced` bytes long over a
/// raw socket, then waits: with `hang_up` it closes the connection, otherwise it returns what
/// the server answered (after cutting the stalled body).
async fn partial_patch(
    app: &TestApp,
    who: &Session,
    location: &str,
    offset: usize,
    sent: &[u8],
    announced: usize,
    hang_up: bool,
) -> String {
    let addr = app.base.trim_start_matches("http://").to_owned();
    let mut socket = tokio::net::TcpStream::connect(&addr)
        .await
        .expect("connect");
    let head = format!(
        "PATCH {location} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {}\r\n\
         Tus-Resumable: {TUS}\r\nUpload-Offset: {offset}\r\n\
         Content-Type: application/offset+octet-stream\r\nContent-Length: {announced}\r\n\r\n",
        who.token
    );
    socket.write_all(head.as_bytes()).await.expect("head");
    socket.write_all(sent).await.expect("body");
    socket.flush().await.expect("flush");
    if hang_up {
        tokio::time::sleep(Duration::from_millis(100)).await;
        drop(socket);
        return String::new();
    }
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = Instant::now() + Duration::from_secs(20);
    while !String::from_utf8_lossy(&answer).contains("\r\n\r\n") {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, socket.read(&mut buf)).await {
            Ok(Ok(0)) | Err(_) => break,
            Ok(Ok(n)) => answer.extend_from_slice(&buf[..n]),
            Ok(Err(e)) => panic!("read: {e}"),
        }
    }
    String::from_utf8_lossy(&answer).into_owned()
}

/// Polls HEAD until the offset is `want` (the server finishes a broken PATCH on its own time).
async fn wait_for_offset(app: &TestApp, who: &Session, location: &str, want: usize) {
    let begun = Instant::now();
    loop {
        let h = head(app, who, location).await;
        assert_eq!(h.status, StatusCode::OK);
        if offset_of(&h) == want {
            return;
        }
        assert!(
            begun.elapsed() < Duration::from_secs(20),
            "offset stuck at {}, expected {want}",
            offset_of(&h)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn an_interrupted_patch_keeps_what_arrived(db: Db) {
    let app = app(db, &[("NVE_MEDIA__UPLOAD_IDLE_TIMEOUT_SECS", "1")]).await;
    let owner = app.user("tus3@example.org").await;
    let p = app.project(&owner, "tus").await;
    let data = noise(300_000, 3);
    let location = start(&app, &owner, &p, data.len()).await;

    // A client that announced 100 000 bytes, sent half and lost its connection.
    partial_patch(&app, &owner, &location, 0, &data[..50_000], 100_000, true).await;
    wait_for_offset(&app, &owner, &location, 50_000).await;

    // One that sent part of a chunk and went quiet: cut after the idle timeout, bytes kept.
    let answer = partial_patch(
        &app,
        &owner,
        &location,
        50_000,
        &data[50_000..120_000],
        200_000,
        false,
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(
        answer.to_ascii_lowercase().contains("tus-resumable: 1.0.0"),
        "{answer}"
    );
    wait_for_offset(&app, &owner, &location, 120_000).await;
    assert_eq!(count_files(&parts_dir(&app, &location)), 2);

    // The client resumes from where HEAD says and finishes.
    let r = patch(&app, &owner, &location, 120_000, data[120_000..].to_vec()).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
    let asset_id = header(&r, "nve-asset-id");
    let asset = app
        .get(&format!("/v1/assets/{asset_id}"), &owner.token)
        .await;
    assert_eq!(
        asset.body["sha256"],
        sha256_hex(&data).as_str(),
        "{}",
        asset.text
    );
    assert_eq!(asset.body["size_bytes"], data.len());
    assert_eq!(
        download(&app, &owner, &format!("/v1/assets/{asset_id}/original")).await,
        data
    );
}

async fn protocol_and_access_refusals(db: Db) {
    let app = app(db, &[("NVE_MEDIA__MAX_UPLOAD_MB", "1")]).await;
    let owner = app.user("tus4@example.org").await;
    let editor = app.user("tus4e@example.org").await;
    let viewer = app.user("tus4v@example.org").await;
    let stranger = app.user("tus4s@example.org").await;
    let p = app.project(&owner, "tus").await;
    for (email, role) in [
        ("tus4e@example.org", "editor"),
        ("tus4v@example.org", "viewer"),
    ] {
        let r = app
            .post(
                &format!("/v1/projects/{p}/members"),
                Some(&owner.token),
                json!({"email": email, "role": role}),
            )
            .await;
        assert!(r.status.is_success(), "{}", r.text);
    }
    let uploads = format!("/v1/projects/{p}/uploads");
    let meta = format!("filename {}", b64("a.mp4"));

    // Too large: 413 before a byte is sent.
    create(&app, &owner, &p, 1024 * 1024 + 1, &meta)
        .await
        .assert_problem(413, "payload-too-large");
    // The protocol version is checked, and named in the answer.
    for version in [Some("0.2.2"), None] {
        let mut req = app
            .client
            .post(app.url(&uploads))
            .bearer_auth(&owner.token)
            .header("upload-length", "10");
        if let Some(v) = version {
            req = req.header("tus-resumable", v);
        }
        let r = app.send(req).await;
        r.assert_problem(412, "tus-version-unsupported");
        assert_eq!(header(&r, "tus-version"), TUS);
        assert_eq!(header(&r, "tus-resumable"), TUS);
    }
    // Missing length, malformed metadata, a type that is not media.
    app.send(
        app.client
            .post(app.url(&uploads))
            .bearer_auth(&owner.token)
            .header("tus-resumable", TUS),
    )
    .await
    .assert_problem(400, "invalid-parameter");
    create(&app, &owner, &p, 10, "filename not*base64")
        .await
        .assert_problem(400, "invalid-parameter");
    create(
        &app,
        &owner,
        &p,
        10,
        &format!("filetype {}", b64("text/html")),
    )
    .await
    .assert_problem(415, "unsupported-media-type");
    // Roles: viewers cannot upload, non-members do not see the project.
    create(&app, &viewer, &p, 10, &meta)
        .await
        .assert_problem(403, "forbidden");
    create(&app, &stranger, &p, 10, &meta)
        .await
        .assert_problem(404, "not-found");
    let r = app
        .send(
            app.client
                .post(app.url(&uploads))
                .header("tus-resumable", TUS)
                .header("upload-length", "10"),
        )
        .await;
    r.assert_problem(401, "unauthenticated");
    assert_eq!(header(&r, "tus-resumable"), TUS);

    let data = noise(1000, 4);
    let location = start(&app, &editor, &p, data.len()).await;
    // A PATCH needs the tus body type.
    for content_type in [Some("application/octet-stream"), None] {
        let mut req = app
            .client
            .patch(app.url(&location))
            .bearer_auth(&editor.token)
            .header("tus-resumable", TUS)
            .header("upload-offset", "0")
            .body(data.clone());
        if let Some(ct) = content_type {
            req = req.header("content-type", ct);
        }
        app.send(req)
            .await
            .assert_problem(415, "unsupported-media-type");
    }
    // A body longer than what remains: 413, nothing stored (announced or streamed).
    patch(&app, &editor, &location, 0, noise(1001, 5))
        .await
        .assert_problem(413, "payload-too-large");
    let chunks = futures_util::stream::iter(
        (0..3).map(|_| Ok::<_, std::io::Error>(bytes::Bytes::from(vec![7u8; 400]))),
    );
    app.send(
        app.client
            .patch(app.url(&location))
            .bearer_auth(&editor.token)
            .header("tus-resumable", TUS)
            .header("upload-offset", "0")
            .header("content-type", "application/offset+octet-stream")
            .body(reqwest::Body::wrap_stream(chunks)),
    )
    .await
    .assert_problem(413, "payload-too-large");
    assert_eq!(offset_of(&head(&app, &editor, &location).await), 0);
    assert_eq!(count_files(&parts_dir(&app, &location)), 0);
    assert_eq!(
        count_files(&app.state.config.work_path().join("staging")),
        0
    );

    // Someone else's upload does not exist for them, whatever their role; an unknown id neither.
    let unknown = format!("/v1/uploads/{}", uuid::Uuid::now_v7());
    for (who, path) in [
        (&owner, &location),
        (&stranger, &location),
        (&editor, &unknown),
    ] {
        app.get(path, &who.token)
            .await
            .assert_problem(404, "not-found");
        assert_eq!(head(&app, who, path).await.status, StatusCode::NOT_FOUND);
        patch(&app, who, path, 0, data.clone())
            .await
            .assert_problem(404, "not-found");
        app.send(
            app.client
                .delete(app.url(path))
                .bearer_auth(&who.token)
                .header("tus-resumable", TUS),
        )
        .await
        .assert_problem(404, "not-found");
    }
    // The uploader demoted to viewer: 403, as for assets.
    let r = app
        .call(
            Method::PATCH,
            &format!("/v1/projects/{p}/members/{}", editor.user_id),
            Some(&owner.token),
            Some(json!({"role": "viewer"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    app.get(&location, &editor.token)
        .await
        .assert_problem(403, "forbidden");
    assert_eq!(
        head(&app, &editor, &location).await.status,
        StatusCode::FORBIDDEN
    );
    patch(&app, &editor, &location, 0, data.clone())
        .await
        .assert_problem(403, "forbidden");
}

async fn delete_removes_the_upload_and_its_parts(db: Db) {
    let app = app(db, &[]).await;
    let owner = app.user("tus5@example.org").await;
    let p = app.project(&owner, "tus").await;
    let data = noise(5000, 6);
    let location = start(&app, &owner, &p, data.len()).await;
    for (a, b) in [(0, 2000), (2000, 3000)] {
        let r = patch(&app, &owner, &location, a, data[a..b].to_vec()).await;
        assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
    }
    assert_eq!(count_files(&parts_dir(&app, &location)), 2);

    let del = app
        .send(
            app.client
                .delete(app.url(&location))
                .bearer_auth(&owner.token)
                .header("tus-resumable", TUS),
        )
        .await;
    assert_eq!(del.status, StatusCode::NO_CONTENT, "{}", del.text);
    assert_eq!(header(&del, "tus-resumable"), TUS);
    assert_eq!(
        head(&app, &owner, &location).await.status,
        StatusCode::NOT_FOUND
    );
    app.get(&location, &owner.token)
        .await
        .assert_problem(404, "not-found");
    patch(&app, &owner, &location, 3000, data[3000..].to_vec())
        .await
        .assert_problem(404, "not-found");
    assert!(!parts_dir(&app, &location).exists());
    let list = app
        .get(&format!("/v1/projects/{p}/assets"), &owner.token)
        .await;
    assert_eq!(list.body["items"], json!([]));
}

async fn expired_uploads_are_gone_and_swept(db: Db) {
    use nve_entity::uploads;
    use sea_orm::sea_query::Expr;
    use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};

    let app = app(db, &[]).await;
    let owner = app.user("tus6@example.org").await;
    let p = app.project(&owner, "tus").await;
    let data = noise(3000, 7);
    let location = start(&app, &owner, &p, data.len()).await;
    let r = patch(&app, &owner, &location, 0, data[..1000].to_vec()).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
    let id: uuid::Uuid = location
        .rsplit('/')
        .next()
        .and_then(|s| s.parse().ok())
        .expect("id");

    // A day without activity passes.
    uploads::Entity::update_many()
        .col_expr(
            uploads::Column::ExpiresAt,
            Expr::value(chrono::Utc::now() - chrono::Duration::minutes(1)),
        )
        .filter(uploads::Column::Id.eq(id))
        .exec(&app.state.db)
        .await
        .expect("age the upload");
    app.get(&location, &owner.token)
        .await
        .assert_problem(410, "upload-expired");
    assert_eq!(head(&app, &owner, &location).await.status, StatusCode::GONE);
    patch(&app, &owner, &location, 1000, data[1000..].to_vec())
        .await
        .assert_problem(410, "upload-expired");

    // Creating another upload sweeps it: record and parts.
    start(&app, &owner, &p, 10).await;
    let begun = Instant::now();
    while uploads::Entity::find_by_id(id)
        .one(&app.state.db)
        .await
        .expect("query")
        .is_some()
    {
        assert!(begun.elapsed() < Duration::from_secs(20), "not swept");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(!parts_dir(&app, &location).exists());
    app.get(&location, &owner.token)
        .await
        .assert_problem(404, "not-found");
}

async fn an_empty_upload_completes_at_creation(db: Db) {
    let app = app(db, &[]).await;
    let owner = app.user("tus7@example.org").await;
    let p = app.project(&owner, "tus").await;
    let meta = format!(
        "filename {},filetype {}",
        b64("empty.mov"),
        b64("video/quicktime")
    );
    let r = create(&app, &owner, &p, 0, &meta).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let asset_id = header(&r, "nve-asset-id");
    assert_eq!(r.body["complete"], true);
    assert_eq!(r.body["asset_id"], asset_id.as_str());
    let asset = settled(&app, &owner, &asset_id).await;
    assert_eq!(asset["size_bytes"], 0);
    assert_eq!(asset["error"]["code"], "empty", "{asset}");
    let h = head(&app, &owner, &header(&r, "location")).await;
    assert_eq!(offset_of(&h), 0);
    assert_eq!(header(&h, "upload-length"), "0");
}

/// Discovery needs no credentials.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn options_advertise_the_protocol() {
    let app =
        crate::helpers::spawn_app_with(Db::Sqlite, &[("NVE_MEDIA__MAX_UPLOAD_MB", "3")]).await;
    let r = app
        .send(app.client.request(Method::OPTIONS, app.url("/v1/uploads")))
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
    assert_eq!(header(&r, "tus-resumable"), TUS);
    assert_eq!(header(&r, "tus-version"), TUS);
    assert_eq!(
        header(&r, "tus-extension"),
        "creation,termination,expiration"
    );
    assert_eq!(header(&r, "tus-max-size"), (3 * 1024 * 1024).to_string());

    // Every tus operation is in the OpenAPI document.
    let spec: Value = app
        .send(app.client.get(app.url("/openapi.json")))
        .await
        .body;
    assert!(spec["paths"]["/uploads"]["options"].is_object());
    assert!(spec["paths"]["/projects/{id}/uploads"]["post"].is_object());
    for method in ["head", "get", "patch", "delete"] {
        assert!(
            spec["paths"]["/uploads/{id}"][method].is_object(),
            "{method}"
        );
    }
    assert!(
        spec["paths"]["/uploads/{id}"]["patch"]["requestBody"]["content"]
            ["application/offset+octet-stream"]
            .is_object()
    );
}

/// With object storage, parts are objects too, and only the asset's blob remains at the end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parts_live_in_object_storage() {
    let server = nve_worker::testing::S3Server::start().await;
    let env = server.env();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let app = app(Db::Sqlite, &env).await;
    let owner = app.user("tus8@example.org").await;
    let p = app.project(&owner, "tus").await;
    let data = noise(200_000, 8);
    let location = start(&app, &owner, &p, data.len()).await;
    let id = location.rsplit('/').next().expect("id").to_owned();

    let r = patch(&app, &owner, &location, 0, data[..70_000].to_vec()).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
    let keys = server.keys().await;
    assert!(
        keys.iter()
            .any(|k| k.ends_with(&format!("uploads/{id}/{:020}", 0))),
        "{keys:?}"
    );
    let r = patch(&app, &owner, &location, 70_000, data[70_000..].to_vec()).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
    let asset_id = header(&r, "nve-asset-id");
    let asset = app
        .get(&format!("/v1/assets/{asset_id}"), &owner.token)
        .await;
    assert_eq!(asset.body["sha256"], sha256_hex(&data).as_str());
    assert_eq!(
        download(&app, &owner, &format!("/v1/assets/{asset_id}/original")).await,
        data
    );
    let keys = server.keys().await;
    assert!(!keys.iter().any(|k| k.contains("uploads/")), "{keys:?}");
    assert!(
        keys.iter()
            .any(|k| k.ends_with(&format!("projects/{p}/{}", sha256_hex(&data)))),
        "{keys:?}"
    );
}
