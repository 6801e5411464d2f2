//! The worker runtime: per queue, a fetch loop that takes a delivery only when one of the
//! queue's slots is free, claims the job's row (attempts counted, lease taken), runs its
//! handler, keeps the lease alive, watches for cancellation, and records the outcome through
//! the guarded transitions of [`crate::jobs`]. Beside it, a reconciler puts expired leases back,
//! feeds undispatched and lost jobs to the queue within its bound, and updates the depth gauge.
//!
//! The same runtime runs inside `nve serve` (embedded) and in `nve-worker run` (distributed);
//! only the [`Dispatcher`] and the [`EventSink`] differ.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use futures_util::FutureExt;
use sea_orm::DatabaseConnection;
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;
use tracing::Instrument;

use nve_entity::jobs as job_rows;

use crate::dispatch::{Delivery, Dispatcher};
use crate::events::{EventSink, JobEvent};
use crate::handlers::{self, JobContext};
use crate::isolate::{Limits, Progress};
use crate::jobs::{self, Failure, JobError, Lease, Queue, Status};
use crate::webhooks::Webhooks;

/// How a runtime behaves; built from configuration by the binaries.
#[derive(Debug, Clone)]
pub struct Settings {
    /// This process's name in leases and logs (host, pid, random suffix).
    pub owner: String,
    /// The queues served and each one's number of concurrent jobs.
    pub queues: Vec<(Queue, usize)>,
    /// A running job's lease; renewed every third of it. A worker that dies is noticed when
    /// its lease expires, so this bounds the recovery time.
    pub lease: Duration,
    /// How often the reconciler runs.
    pub tick: Duration,
    /// A queued job dispatched longer ago than this, and no longer in the queue, is sent again.
    pub redispatch_after: Duration,
    /// On shutdown, how long running jobs may finish before they are handed back.
    pub grace: Duration,
    /// The program whose `exec` subcommand runs isolated work (this binary).
    pub child_program: PathBuf,
    pub child_limits: Limits,
    /// Where media blobs are.
    pub storage: crate::storage::Storage,
    /// What ingest accepts.
    pub media_limits: nve_pipelines::probe::MediaLimits,
    /// `media.thumbnails`: derive posters and strips after ingest.
    pub thumbnails: bool,
    /// Limits of imports by URL.
    pub imports: crate::import::ImportSettings,
    /// Which encoders renders may use.
    pub encoders: nve_pipelines::render::encoders::EncoderPolicy,
}

struct Inner {
    db: DatabaseConnection,
    dispatcher: Dispatcher,
    events: Arc<dyn EventSink>,
    settings: Settings,
    webhooks: Option<Webhooks>,
}

pub struct Runtime {
    inner: Arc<Inner>,
}

/// A started runtime; [`RuntimeHandle::shutdown`] drains it.
pub struct RuntimeHandle {
    stop: watch::Sender<bool>,
    release: watch::Sender<bool>,
    loops: JoinSet<()>,
    grace: Duration,
}

impl Runtime {
    pub fn new(
        db: DatabaseConnection,
        dispatcher: Dispatcher,
        events: Arc<dyn EventSink>,
        settings: Settings,
        webhooks: Option<Webhooks>,
    ) -> Self {
        Runtime {
            inner: Arc::new(Inner {
                db,
                dispatcher,
                events,
                settings,
                webhooks,
            }),
        }
    }

    /// Starts the fetch loops, the reconciler and the webhook sender.
    pub fn start(self) -> RuntimeHandle {
        let (stop, stop_rx) = watch::channel(false);
        let (release, release_rx) = watch::channel(false);
        let mut loops = JoinSet::new();
        for (queue, slots) in self.inner.settings.queues.clone() {
            if slots == 0 {
                continue;
            }
            loops.spawn(fetch_loop(
                self.inner.clone(),
                queue,
                slots,
                stop_rx.clone(),
                release_rx.clone(),
            ));
        }
        loops.spawn(reconcile_loop(self.inner.clone(), stop_rx.clone()));
        if let Some(webhooks) = self.inner.webhooks.clone() {
            loops.spawn(webhooks.run(self.inner.settings.owner.clone(), stop_rx));
        }
        RuntimeHandle {
            stop,
            release,
            loops,
            grace: self.inner.settings.grace,
        }
    }
}

impl RuntimeHandle {
    /// Stops taking jobs, lets running ones finish within the grace period, then hands back
    /// what is still running (lease released, id dispatched again) so another worker takes it
    /// at once.
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        let drained = tokio::time::timeout(self.grace, async {
            while self.loops.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            tracing::info!("grace period over; handing running jobs back");
            let _ = self.release.send(true);
            while self.loops.join_next().await.is_some() {}
        }
    }
}

async fn changed_to_true(rx: &mut watch::Receiver<bool>) {
    while !*rx.borrow_and_update() {
        if rx.changed().await.is_err() {
            // The handle is gone: nobody can stop us any more, so never resolve.
            std::future::pending::<()>().await;
        }
    }
}

/// Most ids one receive takes at once.
const MAX_BATCH: usize = 64;

async fn fetch_loop(
    inner: Arc<Inner>,
    queue: Queue,
    slots: usize,
    mut stop: watch::Receiver<bool>,
    release: watch::Receiver<bool>,
) {
    let permits = Arc::new(Semaphore::new(slots));
    let mut running = JoinSet::new();
    let mut receiver = None;
    let mut failures = 0u32;
    let wait = Duration::from_secs(1);
    loop {
        if *stop.borrow() {
            break;
        }
        while running.try_join_next().is_some() {}
        let permit = tokio::select! {
            p = permits.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => break },
            () = changed_to_true(&mut stop) => break,
        };
        if receiver.is_none() {
            match inner.dispatcher.receiver(queue).await {
                Ok(r) => receiver = Some(r),
                Err(e) => {
                    backoff_after_error(&mut failures, &e.to_string(), queue, &mut stop).await;
                    continue;
                }
            }
        }
        let Some(rx) = receiver.as_mut() else {
            continue;
        };
        // Every slot free right now can take a job from this one round trip.
        let mut slots = vec![permit];
        while slots.len() < MAX_BATCH {
            match permits.clone().try_acquire_owned() {
                Ok(p) => slots.push(p),
                Err(_) => break,
            }
        }
        let deliveries = tokio::select! {
            d = rx.next(wait, slots.len()) => d,
            () = changed_to_true(&mut stop) => break,
        };
        let deliveries = match deliveries {
            Ok(d) => d,
            Err(e) => {
                receiver = None;
                backoff_after_error(&mut failures, &e.to_string(), queue, &mut stop).await;
                continue;
            }
        };
        failures = 0;
        for (delivery, permit) in deliveries.into_iter().zip(slots) {
            // The claim runs in the job's task, so the loop goes straight back to the queue.
            let inner = inner.clone();
            let release = release.clone();
            running.spawn(async move {
                let owner = &inner.settings.owner;
                let lease = inner.settings.lease;
                let claimed = match delivery {
                    Delivery::Job(id) => jobs::claim_row(&inner.db, id, owner, lease).await,
                    Delivery::Poll => {
                        let c = jobs::claim_next(&inner.db, queue, owner, lease).await;
                        if matches!(c, Ok(Some(_))) {
                            // More may be due: look again instead of waiting for a poke.
                            inner.dispatcher.poke(queue);
                        }
                        c
                    }
                };
                match claimed {
                    Ok(Some((lease, row))) => execute(inner, lease, row, release).await,
                    Ok(None) => {}
                    Err(e) => {
                        // The delivery is lost with the error; the reconciler re-sends the
                        // job once its dispatch goes stale.
                        tracing::warn!(error = %e, queue = queue.as_str(), "cannot claim a job");
                    }
                }
                drop(permit);
            });
        }
    }
    while running.join_next().await.is_some() {}
}

async fn backoff_after_error(
    failures: &mut u32,
    error: &str,
    queue: Queue,
    stop: &mut watch::Receiver<bool>,
) {
    *failures = failures.saturating_add(1);
    let delay = Duration::from_millis(200 * u64::from((*failures).min(10)));
    tracing::warn!(
        error,
        queue = queue.as_str(),
        ?delay,
        "queue backend unavailable"
    );
    metrics::counter!("nve_queue_errors_total", "queue" => queue.as_str()).increment(1);
    tokio::select! {
        () = tokio::time::sleep(delay) => {}
        () = changed_to_true(stop) => {}
    }
}

/// Why a running job stopped before its handler finished on its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Interrupt {
    Cancel,
    Release,
    LeaseLost,
}

async fn execute(
    inner: Arc<Inner>,
    lease: Lease,
    row: job_rows::Model,
    mut release: watch::Receiver<bool>,
) {
    let span = tracing::info_span!(
        "job",
        job_id = %row.id,
        kind = %row.kind,
        queue = %row.queue,
        correlation_id = %row.correlation_id,
        attempt = lease.attempt,
    );
    async move {
        let started = Instant::now();
        let queue = row.queue.clone();
        let kind = row.kind.clone();
        if let Some(at) = row.started_at {
            let waited = (at - row.run_at.max(row.queued_at)).num_microseconds().unwrap_or(0);
            metrics::histogram!("nve_job_wait_seconds", "queue" => queue.clone())
                .record(waited.max(0) as f64 / 1e6);
        }
        tracing::info!("job started");
        publish(&inner, &row, Status::Running, None, serde_json::json!({"attempt": lease.attempt}))
            .await;

        let (cancel_tx, cancel_rx) = watch::channel(false);
        let (progress_tx, mut progress_rx) = watch::channel::<Option<Progress>>(None);
        let ctx = JobContext {
            row: row.clone(),
            lease: lease.clone(),
            owner: inner.settings.owner.clone(),
            child_program: inner.settings.child_program.clone(),
            child_limits: inner.settings.child_limits.clone(),
            db: inner.db.clone(),
            storage: inner.settings.storage.clone(),
            media_limits: inner.settings.media_limits.clone(),
            thumbnails: inner.settings.thumbnails,
            imports: inner.settings.imports.clone(),
            encoders: inner.settings.encoders,
            dispatcher: inner.dispatcher.clone(),
            progress: progress_tx,
            cancel: cancel_rx,
        };
        let work = std::panic::AssertUnwindSafe(handlers::run(ctx)).catch_unwind();
        tokio::pin!(work);

        let lease_len = inner.settings.lease;
        let mut tick = tokio::time::interval_at(
            tokio::time::Instant::now() + Duration::from_secs(1),
            Duration::from_secs(1),
        );
        let mut last_beat = Instant::now();
        let mut last_event = Instant::now();
        let mut persisted: Option<f64> = None;
        let mut interrupt: Option<Interrupt> = None;
        let interrupt_now = |why: Interrupt, slot: &mut Option<Interrupt>| {
            if slot.is_none() {
                *slot = Some(why);
                let _ = cancel_tx.send(true);
            }
        };
        let outcome = loop {
            tokio::select! {
                out = &mut work => break out,
                _ = tick.tick() => {
                    match jobs::cancel_requested(&inner.db, lease.job_id).await {
                        Ok(true) => interrupt_now(Interrupt::Cancel, &mut interrupt),
                        Ok(false) => {}
                        Err(e) => tracing::warn!(error = %e, "cannot read the cancel flag"),
                    }
                    let fraction = progress_rx.borrow().as_ref().map(|p| p.fraction);
                    let fresh = fraction.is_some() && fraction != persisted;
                    let due = last_beat.elapsed() >= lease_len / 3
                        || (fresh && last_beat.elapsed() >= Duration::from_secs(2));
                    if due && interrupt.is_none() {
                        match jobs::heartbeat(&inner.db, &lease, lease_len, fraction).await {
                            Ok(_) => {
                                last_beat = Instant::now();
                                persisted = fraction;
                            }
                            Err(JobError::LeaseLost(_)) => {
                                tracing::warn!("lease lost while running; stopping");
                                interrupt_now(Interrupt::LeaseLost, &mut interrupt);
                            }
                            Err(e) => tracing::warn!(error = %e, "heartbeat failed"),
                        }
                    }
                }
                changed = release.changed(), if interrupt.is_none() => {
                    if changed.is_err() || *release.borrow() {
                        interrupt_now(Interrupt::Release, &mut interrupt);
                    }
                }
                changed = progress_rx.changed() => {
                    if changed.is_ok() && last_event.elapsed() >= Duration::from_millis(500) {
                        last_event = Instant::now();
                        let p = progress_rx.borrow().clone();
                        if let Some(p) = p {
                            publish(&inner, &row, Status::Running, Some(p.fraction), p.detail).await;
                        }
                    }
                }
            }
        };
        let outcome: Result<serde_json::Value, Failure> = match outcome {
            Ok(r) => r,
            Err(_) => Err(Failure {
                code: "internal".into(),
                message: "the job's handler panicked".into(),
                transient: true,
            }),
        };
        let elapsed = started.elapsed().as_secs_f64();
        let (label, status) = finish(&inner, &lease, &row, interrupt, outcome).await;
        metrics::counter!("nve_jobs_total", "queue" => queue.clone(), "kind" => kind.clone(), "outcome" => label)
            .increment(1);
        metrics::histogram!("nve_job_duration_seconds", "queue" => queue, "kind" => kind)
            .record(elapsed);
        if matches!(status, Some(Status::Succeeded | Status::Failed | Status::Cancelled)) {
            metrics::histogram!("nve_job_attempts").record(f64::from(lease.attempt));
        }
        tracing::info!(outcome = label, elapsed_s = elapsed, "job ended");
    }
    .instrument(span)
    .await
}

/// Records the outcome; returns the metric label and the status now in the database (None
/// when this worker could not write it).
async fn finish(
    inner: &Inner,
    lease: &Lease,
    row: &job_rows::Model,
    interrupt: Option<Interrupt>,
    outcome: Result<serde_json::Value, Failure>,
) -> (&'static str, Option<Status>) {
    let db = &inner.db;
    match interrupt {
        Some(Interrupt::LeaseLost) => return ("fenced", None),
        Some(Interrupt::Cancel) => {
            return match jobs::cancelled(db, lease).await {
                Ok(()) => {
                    publish(inner, row, Status::Cancelled, None, serde_json::json!({})).await;
                    ("cancelled", Some(Status::Cancelled))
                }
                Err(e) => written_nothing(&e),
            };
        }
        Some(Interrupt::Release) => {
            return match jobs::release(db, lease).await {
                Ok(()) => {
                    resend(inner, row).await;
                    publish(
                        inner,
                        row,
                        Status::Queued,
                        None,
                        serde_json::json!({"released": true}),
                    )
                    .await;
                    ("released", Some(Status::Queued))
                }
                Err(e) => written_nothing(&e),
            };
        }
        None => {}
    }
    match outcome {
        Ok(result) => match jobs::complete(db, lease, result.clone()).await {
            Ok(()) => {
                publish(
                    inner,
                    row,
                    Status::Succeeded,
                    Some(1.0),
                    serde_json::json!({"result": result}),
                )
                .await;
                ("succeeded", Some(Status::Succeeded))
            }
            Err(e) => written_nothing(&e),
        },
        Err(failure) => match jobs::fail(db, lease, row.max_attempts, &failure).await {
            Ok(status) => {
                let detail = serde_json::json!({
                    "error_code": failure.code,
                    "error_message": failure.message,
                    "attempt": lease.attempt,
                });
                if status == Status::Failed {
                    tracing::warn!(code = %failure.code, message = %failure.message, "job failed");
                } else {
                    tracing::info!(code = %failure.code, "attempt failed; retrying later");
                }
                publish(inner, row, status, None, detail).await;
                (
                    if status == Status::Failed {
                        "failed"
                    } else {
                        "retried"
                    },
                    Some(status),
                )
            }
            Err(e) => written_nothing(&e),
        },
    }
}

fn written_nothing(e: &JobError) -> (&'static str, Option<Status>) {
    match e {
        JobError::LeaseLost(_) => {
            tracing::warn!(
                "lease lost before the outcome was written; another worker owns the job"
            );
            ("fenced", None)
        }
        other => {
            // The lease expires and the reconciler gives the job another attempt.
            tracing::error!(error = %other, "cannot record the job's outcome");
            ("unrecorded", None)
        }
    }
}

/// Dispatches a job that went back to the queue, so it does not wait for the reconciler.
async fn resend(inner: &Inner, row: &job_rows::Model) {
    if let Ok(true) = jobs::take_one_for_dispatch(&inner.db, row.id).await
        && let Err(e) = dispatch_new(&inner.db, &inner.dispatcher, row).await
    {
        // Not sent: left for the reconciler's next pass.
        tracing::warn!(error = %e, job_id = %row.id, "cannot re-dispatch a released job");
        let _ = jobs::undispatched(&inner.db, row.id).await;
    }
}

async fn publish(
    inner: &Inner,
    row: &job_rows::Model,
    status: Status,
    progress: Option<f64>,
    detail: serde_json::Value,
) {
    let Some(project_id) = row.project_id else {
        return;
    };
    let mut detail = detail;
    // Ingest jobs name their asset, so an editor can update that asset's tile from the event
    // alone (import progress, probe outcome, derived media ready).
    if let (Some(asset), serde_json::Value::Object(map)) =
        (row.payload.get("asset_id"), &mut detail)
    {
        map.insert("asset_id".into(), asset.clone());
    }
    inner
        .events
        .publish(JobEvent {
            project_id,
            job_id: row.id,
            kind: row.kind.clone(),
            status: status.as_str().to_owned(),
            progress,
            detail,
        })
        .await;
}

async fn reconcile_loop(inner: Arc<Inner>, mut stop: watch::Receiver<bool>) {
    loop {
        let busy = match reconcile_once(&inner).await {
            Ok(busy) => busy,
            Err(e) => {
                tracing::warn!(error = %e, "reconciler pass failed");
                false
            }
        };
        // A full pass means more backlog waits for room: come back soon.
        let pause = if busy {
            Duration::from_millis(100)
        } else {
            inner.settings.tick
        };
        tokio::select! {
            () = tokio::time::sleep(pause) => {}
            () = changed_to_true(&mut stop) => return,
        }
    }
}

#[derive(Debug, thiserror::Error)]
enum ReconcileError {
    #[error(transparent)]
    Job(#[from] JobError),
    #[error(transparent)]
    Dispatch(#[from] crate::dispatch::DispatchError),
}

/// One pass; `Ok(true)` when it filled a queue to its bound and backlog remains.
async fn reconcile_once(inner: &Inner) -> Result<bool, ReconcileError> {
    let db = &inner.db;
    let requeued = jobs::reconcile(db).await?;
    if !requeued.is_empty() {
        tracing::warn!(
            count = requeued.len(),
            "took back jobs whose worker stopped answering"
        );
        metrics::counter!("nve_jobs_recovered_total").increment(requeued.len() as u64);
    }
    for (queue, depth) in jobs::queue_depths(db).await? {
        metrics::gauge!("nve_queue_depth", "queue" => queue).set(depth as f64);
    }
    let mut busy = false;
    for queue in [Queue::Edit, Queue::Render] {
        if inner.dispatcher.is_local() {
            inner.dispatcher.poke(queue);
            continue;
        }
        let room = inner.dispatcher.room(queue).await?;
        let stale_before = Utc::now()
            - chrono::Duration::from_std(inner.settings.redispatch_after)
                .unwrap_or_else(|_| chrono::Duration::seconds(30));
        let taken = jobs::take_for_dispatch(db, queue, stale_before, room as u64).await?;
        if taken.is_empty() {
            continue;
        }
        let resends: Vec<uuid::Uuid> = taken.iter().filter(|t| t.resend).map(|t| t.id).collect();
        let still_held = inner.dispatcher.held(queue, &resends).await?;
        let held: std::collections::HashSet<uuid::Uuid> = resends
            .iter()
            .zip(still_held)
            .filter(|(_, h)| *h)
            .map(|(id, _)| *id)
            .collect();
        let mut sent = 0usize;
        for t in &taken {
            if held.contains(&t.id) {
                continue;
            }
            match inner.dispatcher.dispatch(queue, t.priority, t.id).await {
                Ok(true) => sent += 1,
                Ok(false) => {
                    jobs::undispatched(db, t.id).await?;
                }
                Err(e) => {
                    jobs::undispatched(db, t.id).await?;
                    return Err(e.into());
                }
            }
        }
        if sent > 0 {
            tracing::debug!(queue = queue.as_str(), sent, "dispatched from the database");
        }
        busy |= taken.len() as u64 >= room as u64 && room > 0;
    }
    Ok(busy)
}

/// Hands a freshly recorded job to its queue; used by whoever enqueues (the API, tools).
/// `Ok(())` also when the queue was full: the job then waits in the database for room.
pub async fn dispatch_new(
    db: &DatabaseConnection,
    dispatcher: &Dispatcher,
    row: &job_rows::Model,
) -> Result<(), crate::dispatch::DispatchError> {
    let Some(queue) = Queue::parse(&row.queue) else {
        return Ok(());
    };
    if !dispatcher.dispatch(queue, row.priority, row.id).await?
        && let Err(e) = jobs::undispatched(db, row.id).await
    {
        // It stays marked dispatched; the reconciler resends it once that goes stale.
        tracing::warn!(error = %e, job_id = %row.id, "cannot mark a job undispatched");
    }
    Ok(())
}

impl Settings {
    /// Settings from configuration. `child_program`: the running binary (its `exec`
    /// subcommand runs isolated work).
    pub fn from_config(
        config: &nve_config::Config,
        queues: Vec<(Queue, usize)>,
        child_program: PathBuf,
        storage: crate::storage::Storage,
    ) -> Self {
        let j = &config.jobs;
        Settings {
            storage,
            media_limits: media_limits(&config.media),
            thumbnails: config.media.thumbnails,
            imports: crate::import::ImportSettings::from_config(&config.media),
            encoders: encoder_policy(&config.media),
            owner: owner_name(),
            queues,
            lease: Duration::from_secs(j.lease_secs),
            tick: Duration::from_millis(j.reconcile_interval_ms),
            redispatch_after: Duration::from_secs(j.redispatch_after_secs),
            grace: Duration::from_secs(j.shutdown_grace_secs),
            child_program,
            child_limits: Limits {
                wall: Duration::from_secs(j.child_timeout_secs),
                cpu_secs: j.child_cpu_secs,
                memory_bytes: j.child_memory_mb.saturating_mul(1024 * 1024),
            },
        }
    }
}

/// `host:pid:random`: unique per process, readable in leases and logs.
pub fn owner_name() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "host".into());
    format!(
        "{host}:{}:{:04x}",
        std::process::id(),
        rand::random::<u16>()
    )
}

/// The webhook sender's settings from configuration; `key` is the server key (the JWT secret)
/// the per-user signing secrets derive from.
pub fn webhook_settings(
    config: &nve_config::Config,
    key: &[u8],
) -> crate::webhooks::WebhookSettings {
    crate::webhooks::WebhookSettings {
        allow_private: config.webhooks.allow_private,
        timeout: Duration::from_secs(config.webhooks.timeout_secs),
        max_attempts: config.webhooks.max_attempts,
        signing_key: key.to_vec(),
    }
}

/// Which encoders renders may use, from `media.hardware_acceleration`.
pub fn encoder_policy(
    m: &nve_config::MediaConfig,
) -> nve_pipelines::render::encoders::EncoderPolicy {
    use nve_pipelines::render::encoders::EncoderPolicy;
    match m.hardware_acceleration {
        nve_config::HardwareAcceleration::Auto => EncoderPolicy::Auto,
        nve_config::HardwareAcceleration::Off => EncoderPolicy::Off,
        nve_config::HardwareAcceleration::Vaapi => EncoderPolicy::Vaapi,
        nve_config::HardwareAcceleration::Nvcodec => EncoderPolicy::Nvcodec,
    }
}

/// Ingest limits from configuration.
pub fn media_limits(m: &nve_config::MediaConfig) -> nve_pipelines::probe::MediaLimits {
    nve_pipelines::probe::MediaLimits {
        max_duration_secs: m.max_duration_secs as f64,
        max_width: m.max_width,
        max_height: m.max_height,
        max_pixels: m.max_pixels,
        max_fps: m.max_fps,
        max_audio_channels: m.max_audio_channels,
        max_audio_rate: m.max_audio_rate,
        codecs: m.codecs.clone(),
        containers: m.containers.clone(),
    }
}
