//! Checks that need more than types: each returns a problem line naming the key and its env var.

use std::net::SocketAddr;

use crate::{Config, Profile, QueueBackend};

pub(crate) const MIN_JWT_SECRET_BYTES: usize = 32;

/// Values that appear in our own example files; a deployment that kept one has no secret at all.
const KNOWN_PLACEHOLDER_SECRETS: &[&str] = &[
    "change-me-to-a-random-string-of-at-least-32-bytes",
    "changeme",
    "secret",
];

pub(crate) fn validate(c: &Config, profile: Profile) -> Vec<String> {
    let mut p = Vec::new();

    if c.server.bind.parse::<SocketAddr>().is_err() {
        p.push(format!(
            "server.bind (NVE_SERVER__BIND): `{}` is not an address like 127.0.0.1:8080",
            c.server.bind
        ));
    }
    if let Some(public) = &c.server.public_url {
        match url::Url::parse(public) {
            Ok(u) if matches!(u.scheme(), "http" | "https") => {}
            _ => p.push(format!(
                "server.public_url (NVE_SERVER__PUBLIC_URL): `{public}` is not an http(s) URL"
            )),
        }
    }
    if !(1024..=64 * 1024 * 1024).contains(&c.server.max_json_body_bytes) {
        p.push(format!(
            "server.max_json_body_bytes (NVE_SERVER__MAX_JSON_BODY_BYTES): {} is outside 1024..=67108864",
            c.server.max_json_body_bytes
        ));
    }
    if c.server.shutdown_grace_secs > 3600 {
        p.push(format!(
            "server.shutdown_grace_secs (NVE_SERVER__SHUTDOWN_GRACE_SECS): {} is more than an hour",
            c.server.shutdown_grace_secs
        ));
    }

    match &c.database.url {
        Some(url) => match url::Url::parse(url.expose()) {
            Ok(u) if matches!(u.scheme(), "sqlite" | "postgres" | "postgresql") => {}
            Ok(u) => p.push(format!(
                "database.url (NVE_DATABASE__URL): scheme `{}` is not supported; use sqlite:// or postgres://",
                u.scheme()
            )),
            Err(e) => p.push(format!(
                "database.url (NVE_DATABASE__URL): not a valid URL ({e})"
            )),
        },
        None if profile.is_strict() => p.push(format!(
            "database.url (NVE_DATABASE__URL): required in the `{profile}` profile (e.g. postgres://nve:…@db:5432/nve)"
        )),
        None => {}
    }
    if !(1..=1000).contains(&c.database.max_connections) {
        p.push(format!(
            "database.max_connections (NVE_DATABASE__MAX_CONNECTIONS): {} is outside 1..=1000",
            c.database.max_connections
        ));
    }

    match &c.auth.jwt_secret {
        Some(secret) => {
            if secret.expose().len() < MIN_JWT_SECRET_BYTES {
                p.push(format!(
                    "auth.jwt_secret (NVE_AUTH__JWT_SECRET): shorter than {MIN_JWT_SECRET_BYTES} bytes"
                ));
            }
            if profile.is_strict()
                && KNOWN_PLACEHOLDER_SECRETS
                    .iter()
                    .any(|d| d.eq_ignore_ascii_case(secret.expose()))
            {
                p.push(
                    "auth.jwt_secret (NVE_AUTH__JWT_SECRET): still the example value; generate one (openssl rand -hex 32)"
                        .to_owned(),
                );
            }
        }
        None if profile.is_strict() => p.push(format!(
            "auth.jwt_secret (NVE_AUTH__JWT_SECRET): required in the `{profile}` profile, at least {MIN_JWT_SECRET_BYTES} bytes"
        )),
        None => {}
    }
    if c.auth.jwt_issuer.trim().is_empty() {
        p.push("auth.jwt_issuer (NVE_AUTH__JWT_ISSUER): must not be empty".to_owned());
    }
    if c.auth.jwt_audience.trim().is_empty() {
        p.push("auth.jwt_audience (NVE_AUTH__JWT_AUDIENCE): must not be empty".to_owned());
    }
    if !(30..=86_400).contains(&c.auth.access_token_ttl_secs) {
        p.push(format!(
            "auth.access_token_ttl_secs (NVE_AUTH__ACCESS_TOKEN_TTL_SECS): {} is outside 30..=86400",
            c.auth.access_token_ttl_secs
        ));
    }
    if c.auth.refresh_token_ttl_secs < c.auth.access_token_ttl_secs
        || c.auth.refresh_token_ttl_secs > 365 * 86_400
    {
        p.push(format!(
            "auth.refresh_token_ttl_secs (NVE_AUTH__REFRESH_TOKEN_TTL_SECS): {} must be at least the access token lifetime and at most a year",
            c.auth.refresh_token_ttl_secs
        ));
    }
    if c.auth.login_attempts_per_minute == 0 {
        p.push(
            "auth.login_attempts_per_minute (NVE_AUTH__LOGIN_ATTEMPTS_PER_MINUTE): must be at least 1"
                .to_owned(),
        );
    }
    if c.auth.api_key_creations_per_minute == 0 {
        p.push(
            "auth.api_key_creations_per_minute (NVE_AUTH__API_KEY_CREATIONS_PER_MINUTE): must be at least 1"
                .to_owned(),
        );
    }

    match (&c.queue.backend, &c.queue.redis_url) {
        (QueueBackend::Redis, None) => p.push(
            "queue.redis_url (NVE_QUEUE__REDIS_URL): required when queue.backend = \"redis\""
                .to_owned(),
        ),
        (_, Some(url)) => match url::Url::parse(url.expose()) {
            Ok(u) if matches!(u.scheme(), "redis" | "rediss") => {}
            _ => p.push(
                "queue.redis_url (NVE_QUEUE__REDIS_URL): not a redis:// or rediss:// URL"
                    .to_owned(),
            ),
        },
        _ => {}
    }
    let m = &c.media;
    if m.import_timeout_secs == 0 {
        p.push("media.import_timeout_secs (NVE_MEDIA__IMPORT_TIMEOUT_SECS): at least 1".into());
    }
    if m.max_upload_mb == 0 || m.upload_idle_timeout_secs == 0 {
        p.push("media.max_upload_mb and media.upload_idle_timeout_secs: at least 1".into());
    }
    if !(m.max_fps.is_finite() && m.max_fps > 0.0) {
        p.push("media.max_fps (NVE_MEDIA__MAX_FPS): a positive number".into());
    }
    let j = &c.jobs;
    if !(3..=3600).contains(&j.lease_secs) {
        p.push("jobs.lease_secs (NVE_JOBS__LEASE_SECS): between 3 and 3600".into());
    }
    if j.edit_concurrency > 256 || j.render_concurrency > 256 {
        p.push("jobs.edit_concurrency / jobs.render_concurrency: at most 256".into());
    }
    if !(1..=100).contains(&j.max_attempts) {
        p.push("jobs.max_attempts (NVE_JOBS__MAX_ATTEMPTS): between 1 and 100".into());
    }
    if j.redis_backlog == 0 {
        p.push("jobs.redis_backlog (NVE_JOBS__REDIS_BACKLOG): at least 1".into());
    }
    if !(50..=60_000).contains(&j.reconcile_interval_ms) {
        p.push(
            "jobs.reconcile_interval_ms (NVE_JOBS__RECONCILE_INTERVAL_MS): between 50 and 60000"
                .into(),
        );
    }
    if j.worker_bind.parse::<std::net::SocketAddr>().is_err() {
        p.push("jobs.worker_bind (NVE_JOBS__WORKER_BIND): not a host:port address".into());
    }
    if !(1..=100).contains(&c.webhooks.max_attempts) {
        p.push("webhooks.max_attempts (NVE_WEBHOOKS__MAX_ATTEMPTS): between 1 and 100".into());
    }
    if !(1..=300).contains(&c.webhooks.timeout_secs) {
        p.push("webhooks.timeout_secs (NVE_WEBHOOKS__TIMEOUT_SECS): between 1 and 300".into());
    }
    let st = &c.storage;
    if st.backend == crate::StorageBackend::S3 {
        if st.s3_bucket.as_deref().is_none_or(str::is_empty) {
            p.push(
                "storage.s3_bucket (NVE_STORAGE__S3_BUCKET): required with backend = \"s3\"".into(),
            );
        }
        if st.s3_access_key_id.is_some() != st.s3_secret_access_key.is_some() {
            p.push(
                "storage.s3_access_key_id and storage.s3_secret_access_key: set both or neither (neither: credentials from the environment)"
                    .into(),
            );
        }
    }
    if let Some(endpoint) = &st.s3_endpoint {
        match url::Url::parse(endpoint) {
            Ok(u) if u.scheme() == "https" || (u.scheme() == "http" && st.s3_allow_http) => {}
            Ok(u) if u.scheme() == "http" => p.push(format!(
                "storage.s3_endpoint (NVE_STORAGE__S3_ENDPOINT): `{endpoint}` is plain HTTP; set storage.s3_allow_http to allow it"
            )),
            _ => p.push(format!(
                "storage.s3_endpoint (NVE_STORAGE__S3_ENDPOINT): `{endpoint}` is not an http(s) URL"
            )),
        }
    }
    if st.cache_mb == 0 {
        p.push("storage.cache_mb (NVE_STORAGE__CACHE_MB): at least 1".into());
    }
    if c.queue.redis_prefix.is_empty()
        || !c
            .queue
            .redis_prefix
            .chars()
            .all(|ch| ch.is_ascii_alphanumeric() || matches!(ch, '-' | '_' | ':' | '.'))
    {
        p.push(
            "queue.redis_prefix (NVE_QUEUE__REDIS_PREFIX): use letters, digits, '-', '_', ':' or '.'"
                .to_owned(),
        );
    }

    let t = &c.timeline;
    for (key, value, max) in [
        ("max_tracks", t.max_tracks, 1_000),
        ("max_clips", t.max_clips, 100_000),
        ("max_keyframes_per_clip", t.max_keyframes_per_clip, 100_000),
        ("max_effects_per_clip", t.max_effects_per_clip, 100),
        ("max_title_chars", t.max_title_chars, 100_000),
    ] {
        if value == 0 || value > max {
            p.push(format!(
                "timeline.{key} (NVE_TIMELINE__{}): {value} is outside 1..={max}",
                key.to_ascii_uppercase()
            ));
        }
    }
    if !(1..=48 * 3600).contains(&t.max_duration_secs) {
        p.push(format!(
            "timeline.max_duration_secs (NVE_TIMELINE__MAX_DURATION_SECS): {} is outside 1..=172800",
            t.max_duration_secs
        ));
    }

    if c.log.level.trim().is_empty() {
        p.push("log.level (NVE_LOG__LEVEL): must not be empty (e.g. `info`)".to_owned());
    }
    if c.data_dir.as_os_str().is_empty() {
        p.push("data_dir (NVE_DATA_DIR): must not be empty".to_owned());
    }
    p
}
