//! Job handlers by kind. A handler gets the claimed row and returns the result document or a
//! [`Failure`]; the runtime owns leases, retries, events and metrics. Handlers must be
//! idempotent: a job may run again after a crash, and only the attempt holding the lease can
//! commit (outputs go to a temporary key first and are committed atomically by the caller of
//! the guarded transition).
//!
//! Kinds today:
//! * `canary`: a no-op round trip through the queue, recording which worker ran it and how
//!   long it waited. The runbook's end-to-end check, and what the queue benchmark drives.
//! * `probe`: what an uploaded asset is, in an isolated child ([`crate::ingest`]).
//! * `thumbnails`, `proxy`, `waveform`: an asset's derived media ([`crate::derive`]).
//! * `render`: a pinned timeline version to a file ([`crate::render`]).
//! * `import`: fetches an asset from a URL, then queues its probe ([`crate::import`]).
//! * `chaos`: game-day work in an isolated child that misbehaves on purpose (see
//!   [`crate::child::ChaosAction`]). Refused by the API unless `jobs.chaos` is enabled.

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;

use tokio::sync::watch;

use nve_entity::jobs as job_rows;

use crate::child::ChaosSpec;
use crate::isolate::{self, ChildError, Limits, Progress};
use crate::jobs::{Failure, Lease};

pub const KIND_CANARY: &str = "canary";
pub const KIND_CHAOS: &str = "chaos";
pub const KIND_PROBE: &str = "probe";
pub const KIND_THUMBNAILS: &str = "thumbnails";
pub const KIND_IMPORT: &str = "import";
pub const KIND_PROXY: &str = "proxy";
pub const KIND_WAVEFORM: &str = "waveform";
pub const KIND_RENDER: &str = "render";

/// What a handler may use.
pub struct JobContext {
    pub row: job_rows::Model,
    pub lease: Lease,
    pub owner: String,
    pub child_program: PathBuf,
    pub child_limits: Limits,
    pub db: sea_orm::DatabaseConnection,
    pub storage: crate::storage::Storage,
    pub media_limits: nve_pipelines::probe::MediaLimits,
    /// Derive posters and thumbnail strips after a successful probe.
    pub thumbnails: bool,
    pub imports: crate::import::ImportSettings,
    pub encoders: nve_pipelines::render::encoders::EncoderPolicy,
    /// For handlers that queue follow-up jobs.
    pub dispatcher: crate::dispatch::Dispatcher,
    pub(crate) progress: watch::Sender<Option<Progress>>,
    /// Turns true when the job must stop (cancelled, lease lost, worker shutting down).
    pub cancel: watch::Receiver<bool>,
}

impl JobContext {
    pub fn progress(&self, p: Progress) {
        let _ = self.progress.send(Some(p));
    }
}

type HandlerFuture = Pin<Box<dyn Future<Output = Result<serde_json::Value, Failure>> + Send>>;

/// Runs the handler of the job's kind.
pub fn run(ctx: JobContext) -> HandlerFuture {
    match ctx.row.kind.as_str() {
        KIND_CANARY => Box::pin(canary(ctx)),
        KIND_CHAOS => Box::pin(chaos(ctx)),
        KIND_PROBE => Box::pin(crate::ingest::probe(ctx)),
        KIND_THUMBNAILS => Box::pin(crate::derive::thumbnails(ctx)),
        KIND_PROXY => Box::pin(crate::derive::proxy(ctx)),
        KIND_WAVEFORM => Box::pin(crate::derive::waveform(ctx)),
        KIND_RENDER => Box::pin(crate::render::render(ctx)),
        KIND_IMPORT => Box::pin(crate::import::import(ctx)),
        other => {
            let kind = other.to_owned();
            Box::pin(async move {
                Err(Failure {
                    code: "unknown-kind".into(),
                    message: format!("this worker has no handler for jobs of kind {kind:?}"),
                    transient: false,
                })
            })
        }
    }
}

async fn canary(ctx: JobContext) -> Result<serde_json::Value, Failure> {
    let waited_ms = ctx
        .row
        .started_at
        .map(|s| (s - ctx.row.queued_at).num_milliseconds())
        .unwrap_or(0);
    Ok(serde_json::json!({
        "worker": ctx.owner,
        "attempt": ctx.lease.attempt,
        "waited_ms": waited_ms,
    }))
}

async fn chaos(ctx: JobContext) -> Result<serde_json::Value, Failure> {
    let spec: ChaosSpec = serde_json::from_value(ctx.row.payload.clone()).map_err(|e| Failure {
        code: "invalid-payload".into(),
        message: format!("chaos payload: {e}"),
        transient: false,
    })?;
    let spec = serde_json::to_string(&spec).unwrap_or_default();
    let args = vec!["exec".to_owned(), KIND_CHAOS.to_owned(), spec];
    isolated(&ctx, &args).await
}

/// Runs `child_program args…` in an isolated child and maps its failures to job failures.
pub async fn isolated(ctx: &JobContext, args: &[String]) -> Result<serde_json::Value, Failure> {
    let cancel = ctx.cancel.clone();
    isolate::run(&ctx.child_program, args, &ctx.child_limits, cancel, |p| {
        ctx.progress(p)
    })
    .await
    .map_err(|e: ChildError| Failure {
        code: e.code().to_owned(),
        message: e.to_string(),
        transient: e.transient(),
    })
}
