//! The distributed storage mode end to end: uploads, ingest jobs (the worker reads the
//! original through its cache) and downloads with Range, all against a real S3-compatible
//! server (moto), with nothing media-related left on the API's local disk.

use reqwest::{Method, StatusCode};

use crate::assets::{app, clip, count_files, settled, upload};
use crate::helpers::Db;
use nve_worker::testing::S3Server;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn assets_live_in_object_storage() {
    let server = S3Server::start().await;
    let env = server.env();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let app = app(Db::Postgres, &env).await;
    let owner = app.user("s3@example.org").await;
    let p = app.project(&owner, "s3").await;
    let dir = tempfile::tempdir().expect("tempdir");
    let bytes = clip(dir.path());

    let r = upload(&app, &owner, &p, "clip.mp4", "video/mp4", bytes.clone()).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let id = r.body["id"].as_str().expect("id").to_owned();
    let asset = settled(&app, &owner, &id).await;
    assert_eq!(asset["status"], "ready", "{asset}");
    assert_eq!(asset["probe"]["video"][0]["width"], 320, "{asset}");

    let keys = server.keys().await;
    let sha = asset["sha256"].as_str().expect("sha");
    assert!(
        keys.iter()
            .any(|k| k.ends_with(&format!("projects/{p}/{sha}"))),
        "{keys:?}"
    );

    // Range straight from the bucket.
    let download = |path: String, range: Option<&'static str>| {
        let mut req = app.client.get(app.url(&path)).bearer_auth(&owner.token);
        if let Some(r) = range {
            req = req.header("range", r);
        }
        async move {
            let resp = req.send().await.expect("download");
            let status = resp.status();
            let headers = resp.headers().clone();
            (status, headers, resp.bytes().await.expect("body").to_vec())
        }
    };
    let (status, headers, body) =
        download(format!("/v1/assets/{id}/original"), Some("bytes=100-199")).await;
    assert_eq!(status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(body, bytes[100..200]);
    assert_eq!(
        headers["content-range"],
        format!("bytes 100-199/{}", bytes.len()).as_str()
    );
    let (status, _, body) = download(format!("/v1/assets/{id}/original"), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, bytes);

    // Derived media are written to the bucket too, once the thumbnails job has run.
    let start = std::time::Instant::now();
    let asset = loop {
        let a = app
            .get(&format!("/v1/assets/{id}"), &owner.token)
            .await
            .body;
        if a.get("poster_url").is_some() {
            break a;
        }
        assert!(start.elapsed() < std::time::Duration::from_secs(60), "{a}");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    };
    let (status, _, poster) = download(
        asset["poster_url"].as_str().expect("poster").to_owned(),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(&poster[..2], &[0xFF, 0xD8], "a JPEG");

    // The API keeps no media of its own: originals and derived files are only in the bucket.
    let data_dir = app.state.config.data_dir.clone();
    assert_eq!(count_files(&data_dir.join("media")), 0);
    assert_eq!(
        count_files(&app.state.config.work_path().join("staging")),
        0
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
    let left: Vec<String> = server
        .keys()
        .await
        .into_iter()
        .filter(|k| k.contains(&id) || k.ends_with(sha))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}
