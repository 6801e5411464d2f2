//! Imports by URL: the worker fetches the file in our own code (never by handing the URL to
//! GStreamer, whose HTTP sources follow redirects anywhere and speak protocols we do not
//! guard), with the size limit of uploads, a wall-clock limit, an idle limit, and the SSRF
//! guard of webhooks applied to the URL and to every redirect hop. The bytes go to staging
//! while they are hashed, then become the asset's original and the probe is queued.

use std::time::{Duration, Instant};

use chrono::Utc;
use futures_util::StreamExt;
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

use nve_entity::assets;

use crate::handlers::{JobContext, KIND_PROBE};
use crate::ingest::{asset_payload, db_failure, follow_up, reject, send};
use crate::isolate::Progress;
use crate::jobs::{self, Failure};
use crate::netguard;

/// Redirects followed, each one checked like the first URL.
const MAX_REDIRECTS: usize = 5;

#[derive(Debug, Clone)]
pub struct ImportSettings {
    pub max_bytes: u64,
    pub timeout: Duration,
    pub idle: Duration,
    pub allow_private: bool,
}

impl ImportSettings {
    pub fn from_config(m: &nve_config::MediaConfig) -> Self {
        Self {
            max_bytes: m.max_upload_mb.saturating_mul(1024 * 1024),
            timeout: Duration::from_secs(m.import_timeout_secs),
            idle: Duration::from_secs(m.upload_idle_timeout_secs),
            allow_private: m.import_allow_private,
        }
    }
}

fn failure(code: &str, message: impl Into<String>, transient: bool) -> Failure {
    Failure {
        code: code.into(),
        message: message.into(),
        transient,
    }
}

/// What the fetch produced.
struct Fetched {
    size: u64,
    sha256: String,
    content_type: Option<String>,
}

pub async fn import(ctx: JobContext) -> Result<serde_json::Value, Failure> {
    let payload = asset_payload(&ctx)?;
    let Some(asset) = assets::Entity::find_by_id(payload.asset_id)
        .one(&ctx.db)
        .await
        .map_err(db_failure)?
    else {
        return Ok(serde_json::json!({"skipped": "the asset was deleted"}));
    };
    if asset.status != "importing" {
        return Ok(serde_json::json!({"asset_id": asset.id, "status": asset.status}));
    }
    let url = asset.source_url.clone().unwrap_or_default();
    let staged = ctx
        .storage
        .staging_path()
        .map_err(|e| failure("storage-unavailable", e.to_string(), true))?;
    let fetched = fetch(&ctx, &url, &staged).await;
    let fetched = match fetched {
        Ok(f) => f,
        Err(f) => {
            let _ = tokio::fs::remove_file(&staged).await;
            let last = ctx.lease.attempt >= ctx.row.max_attempts;
            if !f.transient || last {
                reject(&ctx, asset.id, &f).await?;
            }
            return Err(f);
        }
    };

    let duplicate = |existing: &assets::Model| {
        failure(
            "duplicate",
            format!(
                "this project already has this content as asset {}",
                existing.id
            ),
            false,
        )
    };
    let existing = assets::Entity::find()
        .filter(assets::Column::ProjectId.eq(asset.project_id))
        .filter(assets::Column::Sha256.eq(fetched.sha256.clone()))
        .one(&ctx.db)
        .await
        .map_err(db_failure)?;
    if let Some(existing) = existing {
        let _ = tokio::fs::remove_file(&staged).await;
        let f = duplicate(&existing);
        reject(&ctx, asset.id, &f).await?;
        return Ok(serde_json::json!({
            "asset_id": asset.id, "status": "rejected", "duplicate_of": existing.id,
        }));
    }
    let key = format!("projects/{}/{}", asset.project_id, fetched.sha256);
    ctx.storage
        .commit(&staged, &key)
        .await
        .map_err(|e| failure("storage-unavailable", e.to_string(), true))?;

    // The original and its probe job in one transaction: a crash between them cannot leave
    // an asset that is `probing` with nothing to probe it.
    let content_type = fetched
        .content_type
        .clone()
        .unwrap_or_else(|| asset.content_type.clone());
    let recorded = async {
        let txn = crate::db::begin_write(&ctx.db).await?;
        let probe = jobs::enqueue(
            &txn,
            follow_up(&ctx, KIND_PROBE, asset.id, jobs::PRIORITY_INTERACTIVE),
        )
        .await
        .map_err(|e| sea_orm::DbErr::Custom(e.to_string()))?;
        let updated = assets::Entity::update_many()
            .col_expr(assets::Column::Status, Expr::value("probing"))
            .col_expr(assets::Column::Sha256, Expr::value(fetched.sha256.clone()))
            .col_expr(
                assets::Column::SizeBytes,
                Expr::value(i64::try_from(fetched.size).unwrap_or(i64::MAX)),
            )
            .col_expr(assets::Column::StorageKey, Expr::value(key.clone()))
            .col_expr(
                assets::Column::ContentType,
                Expr::value(content_type.clone()),
            )
            .col_expr(assets::Column::JobId, Expr::value(probe.id))
            .col_expr(assets::Column::UpdatedAt, Expr::value(Utc::now()))
            .filter(assets::Column::Id.eq(asset.id))
            .filter(assets::Column::Status.eq("importing"))
            .exec(&txn)
            .await?;
        if updated.rows_affected == 0 {
            // Deleted or decided meanwhile: nothing to probe.
            return Ok(None);
        }
        txn.commit().await?;
        Ok::<_, sea_orm::DbErr>(Some(probe))
    }
    .await;
    match recorded {
        Ok(Some(probe)) => {
            send(&ctx, &probe).await;
            Ok(serde_json::json!({
                "asset_id": asset.id,
                "status": "probing",
                "size_bytes": fetched.size,
                "sha256": fetched.sha256,
                "probe_job_id": probe.id,
            }))
        }
        Ok(None) => Ok(serde_json::json!({"asset_id": asset.id, "skipped": "the asset changed"})),
        Err(e) => {
            // The same content arriving through another upload at the same moment wins the
            // unique index; this import is then a duplicate of it.
            let winner = assets::Entity::find()
                .filter(assets::Column::ProjectId.eq(asset.project_id))
                .filter(assets::Column::Sha256.eq(fetched.sha256.clone()))
                .one(&ctx.db)
                .await
                .map_err(db_failure)?;
            match winner {
                Some(existing) => {
                    let f = duplicate(&existing);
                    reject(&ctx, asset.id, &f).await?;
                    Ok(serde_json::json!({
                        "asset_id": asset.id, "status": "rejected", "duplicate_of": existing.id,
                    }))
                }
                None => Err(db_failure(e)),
            }
        }
    }
}

/// Downloads `url` into `to`, following at most [`MAX_REDIRECTS`] redirects, each to a
/// checked destination.
async fn fetch(ctx: &JobContext, url: &str, to: &std::path::Path) -> Result<Fetched, Failure> {
    let settings = &ctx.imports;
    let started = Instant::now();
    let deadline = started + settings.timeout;
    let mut current = url.to_owned();
    let mut hops = 0usize;
    let response = loop {
        let checked = netguard::check(&current, settings.allow_private)
            .await
            .map_err(|e| {
                let transient = matches!(e, netguard::GuardError::Unresolved(_));
                failure(e.code(), e.to_string(), transient)
            })?;
        // Connect only to the addresses just checked; redirects are followed here, one
        // checked hop at a time, never by the client.
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(Duration::from_secs(10))
            .resolve_to_addrs(&checked.host, &checked.addrs)
            .user_agent(concat!("nve-import/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| failure("internal", format!("http client: {e}"), true))?;
        let remaining = deadline.saturating_duration_since(Instant::now());
        let sent = tokio::time::timeout(remaining, client.get(checked.url.clone()).send()).await;
        let response = match sent {
            Err(_) => return Err(timeout(settings)),
            Ok(Err(e)) => {
                return Err(failure(
                    "import-unreachable",
                    format!("could not fetch {}: {e}", checked.url),
                    true,
                ));
            }
            Ok(Ok(r)) => r,
        };
        let status = response.status();
        if status.is_redirection() {
            hops += 1;
            if hops > MAX_REDIRECTS {
                return Err(failure(
                    "import-failed",
                    format!("more than {MAX_REDIRECTS} redirects"),
                    false,
                ));
            }
            let location = response
                .headers()
                .get(reqwest::header::LOCATION)
                .and_then(|v| v.to_str().ok())
                .ok_or_else(|| failure("import-failed", "a redirect without a Location", false))?;
            current = checked
                .url
                .join(location)
                .map_err(|e| failure("import-failed", format!("bad redirect: {e}"), false))?
                .to_string();
            continue;
        }
        if !status.is_success() {
            // The server may recover from overload or errors; a missing or forbidden file
            // will not appear by asking again.
            let transient = status.is_server_error() || status.as_u16() == 429;
            return Err(failure(
                "import-failed",
                format!("{} answered {status}", checked.url),
                transient,
            ));
        }
        break response;
    };

    let max = settings.max_bytes;
    let declared = response.content_length();
    if declared.is_some_and(|n| n > max) {
        return Err(too_large(max));
    }
    let content_type = response
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|v| v.trim().to_ascii_lowercase())
        .filter(|v| {
            ["video/", "audio/", "image/"]
                .iter()
                .any(|p| v.starts_with(p))
        });

    let mut file = tokio::fs::File::create(to)
        .await
        .map_err(|e| failure("storage-unavailable", e.to_string(), true))?;
    let mut stream = response.bytes_stream();
    let mut hasher = Sha256::new();
    let mut size = 0u64;
    let mut cancel = ctx.cancel.clone();
    let mut reported = Instant::now();
    loop {
        let remaining = deadline.saturating_duration_since(Instant::now());
        let wait = remaining.min(settings.idle);
        let next = tokio::select! {
            next = tokio::time::timeout(wait, stream.next()) => next,
            _ = cancel.wait_for(|c| *c) => {
                return Err(failure("cancelled", "the import was stopped", true));
            }
        };
        let chunk = match next {
            Err(_) if remaining <= settings.idle => return Err(timeout(settings)),
            Err(_) => {
                return Err(failure(
                    "import-stalled",
                    format!("the source sent nothing for {} s", settings.idle.as_secs()),
                    true,
                ));
            }
            Ok(None) => break,
            Ok(Some(Err(e))) => {
                return Err(failure(
                    "import-interrupted",
                    format!("the download broke off after {size} bytes: {e}"),
                    true,
                ));
            }
            Ok(Some(Ok(chunk))) => chunk,
        };
        size = size.saturating_add(chunk.len() as u64);
        if size > max {
            return Err(too_large(max));
        }
        hasher.update(&chunk);
        file.write_all(&chunk)
            .await
            .map_err(|e| failure("storage-unavailable", e.to_string(), true))?;
        if reported.elapsed() >= Duration::from_millis(250) {
            reported = Instant::now();
            let fraction = declared
                .filter(|n| *n > 0)
                .map(|n| (size as f64 / n as f64).min(1.0))
                .unwrap_or(0.0);
            ctx.progress(Progress {
                fraction,
                detail: serde_json::json!({"received_bytes": size, "total_bytes": declared}),
            });
        }
    }
    if declared.is_some_and(|n| n != size) {
        return Err(failure(
            "import-interrupted",
            format!(
                "the source announced {} bytes and sent {size}",
                declared.unwrap_or_default()
            ),
            true,
        ));
    }
    file.sync_all()
        .await
        .map_err(|e| failure("storage-unavailable", e.to_string(), true))?;
    Ok(Fetched {
        size,
        sha256: hex::encode(hasher.finalize()),
        content_type,
    })
}

fn too_large(max: u64) -> Failure {
    failure(
        "too-large",
        format!(
            "the file is larger than the {} MiB limit",
            max / (1024 * 1024)
        ),
        false,
    )
}

fn timeout(settings: &ImportSettings) -> Failure {
    failure(
        "import-timeout",
        format!(
            "the download did not finish within {} s",
            settings.timeout.as_secs()
        ),
        true,
    )
}
