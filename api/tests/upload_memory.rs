//! Memory stays flat under concurrent large uploads. A test binary of its own: resident
//! memory is per process, and the main suite runs many tests at once.

// The shared integration helpers; this binary uses a few of them.
#![allow(dead_code)]

#[path = "api/helpers.rs"]
mod helpers;

use reqwest::StatusCode;

use helpers::{Db, spawn_app_with};

fn rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .map(|kb| kb * 1024)
        .unwrap_or(0)
}

/// Four 64 MiB uploads at once: the server streams them to disk, so this process (client and
/// server both) grows by far less than one of them, let alone all four. Alone in its own test
/// binary, because resident memory is per process.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_large_uploads_keep_memory_flat() {
    let app = spawn_app_with(Db::Sqlite, &[("NVE_JOBS__EMBEDDED_WORKERS", "false")]).await;
    let owner = app.user("as3@example.org").await;
    let p = app.project(&owner, "big").await;
    const SIZE: usize = 64 * 1024 * 1024;
    let before = rss_bytes();
    let uploads = (0..4u8).map(|n| {
        let chunks = futures_util::stream::iter((0..SIZE / (1024 * 1024)).map(move |i| {
            // Distinct content per upload, so none is de-duplicated.
            let mut chunk = vec![n; 1024 * 1024];
            chunk[..8].copy_from_slice(&(i as u64).to_le_bytes());
            Ok::<_, std::io::Error>(bytes::Bytes::from(chunk))
        }));
        let req = app
            .client
            .post(app.url(&format!("/v1/projects/{p}/assets")))
            .bearer_auth(&owner.token)
            .header("content-type", "application/octet-stream")
            .body(reqwest::Body::wrap_stream(chunks));
        app.send(req)
    });
    for r in futures_util::future::join_all(uploads).await {
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
        assert_eq!(r.body["size_bytes"], SIZE);
    }
    let grown = rss_bytes().saturating_sub(before);
    eprintln!(
        "RSS grew by {} MiB for 4 x 64 MiB uploads",
        grown / (1024 * 1024)
    );
    assert!(
        grown < (SIZE as u64) / 2,
        "RSS grew by {grown} bytes: uploads are being buffered"
    );
}
