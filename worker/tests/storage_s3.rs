//! The object-storage backend against a real S3-compatible server (moto), driven through the
//! same `Storage` type the API and the workers use.

use futures_util::TryStreamExt;
use nve_worker::storage::Storage;
use nve_worker::testing::S3Server;

fn storage_for(server: &S3Server, data_dir: &std::path::Path, cache_mb: &str) -> Storage {
    let mut env = server.env();
    env.push(("NVE_DATA_DIR".into(), data_dir.display().to_string()));
    env.push(("NVE_STORAGE__CACHE_MB".into(), cache_mb.into()));
    let opts = nve_config::LoadOptions {
        profile: Some("dev".into()),
        file: None,
        overrides: Vec::new(),
    };
    let loaded = nve_config::load_from(&opts, &env).expect("config");
    Storage::open(&loaded.config).expect("open storage")
}

async fn put(storage: &Storage, key: &str, content: &[u8]) {
    let staged = storage.staging_path().expect("staging");
    std::fs::write(&staged, content).expect("write staging");
    storage.replace(&staged, key).await.expect("store");
    assert!(!staged.exists(), "the staging file is consumed");
}

async fn read(storage: &Storage, key: &str, range: Option<(u64, u64)>) -> Option<Vec<u8>> {
    let stream = storage.read(key, range).await.expect("read")?;
    let chunks: Vec<bytes::Bytes> = stream.try_collect().await.expect("bytes");
    Some(chunks.concat())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_round_trip_ranges_prefixes_and_readiness() {
    let server = S3Server::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let storage = storage_for(&server, dir.path(), "64");
    storage.check_writable().await.expect("bucket writable");

    // Larger than one multipart part (8 MiB), so the streamed upload takes several parts.
    let big: Vec<u8> = (0..20 * 1024 * 1024u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    put(&storage, "projects/p1/original", &big).await;
    put(&storage, "projects/p1/derived/a/poster.jpg", b"poster").await;
    put(&storage, "projects/p1/derived/a/strip.jpg", b"strip").await;
    let keys = server.keys().await;
    assert!(
        keys.contains(&"media/projects/p1/original".to_owned()),
        "{keys:?}"
    );

    assert_eq!(
        storage.size_of("projects/p1/original").await.expect("head"),
        Some(big.len() as u64)
    );
    assert_eq!(
        storage.size_of("projects/p1/none").await.expect("head"),
        None
    );
    assert_eq!(
        read(&storage, "projects/p1/original", None)
            .await
            .as_deref(),
        Some(&big[..])
    );
    assert_eq!(
        read(
            &storage,
            "projects/p1/original",
            Some((10_000_000, 10_000_009))
        )
        .await
        .as_deref(),
        Some(&big[10_000_000..10_000_010])
    );
    assert!(read(&storage, "projects/p1/none", None).await.is_none());

    // commit keeps what a content-addressed key already holds.
    let staged = storage.staging_path().expect("staging");
    std::fs::write(&staged, b"other").expect("write");
    storage
        .commit(&staged, "projects/p1/derived/a/poster.jpg")
        .await
        .expect("commit");
    assert_eq!(
        read(&storage, "projects/p1/derived/a/poster.jpg", None)
            .await
            .as_deref(),
        Some(&b"poster"[..])
    );

    storage
        .remove_prefix("projects/p1/derived/a")
        .await
        .expect("remove prefix");
    let keys = server.keys().await;
    assert_eq!(
        keys,
        vec!["media/projects/p1/original".to_owned()],
        "{keys:?}"
    );
    storage
        .remove("projects/p1/original")
        .await
        .expect("remove");
    storage
        .remove("projects/p1/original")
        .await
        .expect("removing twice is fine");
    assert!(server.keys().await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn worker_inputs_come_through_a_bounded_cache() {
    let server = S3Server::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    // 1 MiB bound, inputs of 400 KiB: the third input evicts the least recently used.
    let storage = storage_for(&server, dir.path(), "1");
    let content = |n: u8| vec![n; 400 * 1024];
    for n in 1..=3u8 {
        put(&storage, &format!("in/{n}"), &content(n)).await;
    }
    let first = storage.local_input("in/1").await.expect("fetch 1");
    assert_eq!(std::fs::read(&first).expect("cached file"), content(1));
    let again = storage.local_input("in/1").await.expect("hit 1");
    assert_eq!(first, again, "a second read is served from the cache");

    // A cache hit must not go to the server: with the object gone, the cached copy serves.
    storage.remove("in/1").await.expect("remove");
    assert_eq!(
        std::fs::read(storage.local_input("in/1").await.expect("hit")).expect("read"),
        content(1)
    );

    storage.local_input("in/2").await.expect("fetch 2");
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    // Use 1 again so 2 becomes the least recently used.
    storage.local_input("in/1").await.expect("hit 1");
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    storage.local_input("in/3").await.expect("fetch 3");
    let cache = dir.path().join("work").join("cache");
    let total: u64 = std::fs::read_dir(&cache)
        .expect("cache dir")
        .flatten()
        .filter_map(|e| e.metadata().ok())
        .map(|m| m.len())
        .sum();
    assert!(total <= 1024 * 1024, "cache holds {total} bytes");
    // 1 survived (recently used, and its object is gone, so only the cache can answer).
    assert!(
        storage.local_input("in/1").await.is_ok(),
        "the recently used input stayed"
    );

    let missing = storage.local_input("in/none").await.expect_err("missing");
    match missing {
        nve_worker::WorkerError::Storage { source, .. } => {
            assert_eq!(source.kind(), std::io::ErrorKind::NotFound)
        }
        other => panic!("unexpected error {other}"),
    }
    let leftovers: Vec<_> = std::fs::read_dir(dir.path().join("work").join("staging"))
        .expect("staging")
        .flatten()
        .collect();
    assert!(
        leftovers.is_empty(),
        "no partial downloads left: {leftovers:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_bucket_fails_readiness() {
    let server = S3Server::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let mut env = server.env();
    env.retain(|(k, _)| k != "NVE_STORAGE__S3_BUCKET");
    env.push(("NVE_STORAGE__S3_BUCKET".into(), "no-such-bucket".into()));
    env.push(("NVE_DATA_DIR".into(), dir.path().display().to_string()));
    let opts = nve_config::LoadOptions {
        profile: Some("dev".into()),
        file: None,
        overrides: Vec::new(),
    };
    let loaded = nve_config::load_from(&opts, &env).expect("config");
    let storage = Storage::open(&loaded.config).expect("open");
    assert!(storage.check_writable().await.is_err());
}
