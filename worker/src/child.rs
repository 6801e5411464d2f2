//! The child side of [`crate::isolate`]: `nve exec KIND JSON` and `nve-worker exec KIND JSON`
//! run one piece of work and speak the JSON-lines protocol on stdout. Kinds: `thumbnails`,
//! `proxy` and `waveform` (derived media of an asset), `probe` (what a media file is, whether it is whole and
//! within the limits: untrusted input, so never in the worker itself) and `chaos`, the
//! operators' game-day job that makes a child misbehave on purpose (crash, hang, exhaust
//! memory, fail) so the isolation, retry and poison-job handling can be exercised live.

use std::io::{Read, Write};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// What a chaos job does in its child.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChaosAction {
    /// Work for `duration_ms`, reporting progress, then succeed.
    Sleep,
    /// Abort (SIGABRT) at once: a crashing decoder.
    Crash,
    /// Exit with status 3 without a result.
    Exit,
    /// Never finish: the wall-clock limit ends it.
    Hang,
    /// Allocate until the memory limit stops it.
    Memory,
    /// Report a transient failure (retried with backoff).
    FailTransient,
    /// Report a permanent failure (the job fails at once).
    FailPermanent,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChaosSpec {
    pub action: ChaosAction,
    /// For `sleep`: how long to work. Default 1000.
    #[serde(default)]
    pub duration_ms: Option<u64>,
}

/// Entry point of the `exec` subcommand. `args`: the kind, then its JSON spec.
pub fn main(args: &[String]) -> ExitCode {
    watch_parent();
    match args {
        [kind, spec] if kind == "chaos" => match serde_json::from_str::<ChaosSpec>(spec) {
            Ok(spec) => chaos(&spec),
            Err(e) => fail("invalid-payload", &format!("chaos spec: {e}"), false),
        },
        [kind, spec] if kind == "thumbnails" => match serde_json::from_str::<ThumbsJob>(spec) {
            Ok(spec) => thumbnails(&spec),
            Err(e) => fail("invalid-payload", &format!("thumbnails spec: {e}"), false),
        },
        [kind, spec] if kind == "proxy" => match serde_json::from_str::<ProxyJob>(spec) {
            Ok(spec) => proxy(&spec),
            Err(e) => fail("invalid-payload", &format!("proxy spec: {e}"), false),
        },
        [kind, spec] if kind == "waveform" => match serde_json::from_str::<WaveformJob>(spec) {
            Ok(spec) => waveform(&spec),
            Err(e) => fail("invalid-payload", &format!("waveform spec: {e}"), false),
        },
        // A render's document can be large: its spec comes in a file, not on the command line.
        [kind, path] if kind == "render" => match std::fs::read(path)
            .map_err(|e| e.to_string())
            .and_then(|b| serde_json::from_slice::<RenderJob>(&b).map_err(|e| e.to_string()))
        {
            Ok(spec) => render(&spec),
            Err(e) => fail("invalid-payload", &format!("render spec: {e}"), false),
        },
        [kind, spec] if kind == "probe" => match serde_json::from_str::<ProbeSpec>(spec) {
            Ok(spec) => probe(&spec),
            Err(e) => fail("invalid-payload", &format!("probe spec: {e}"), false),
        },
        [kind, ..] => fail(
            "unknown-kind",
            &format!("no child work of kind {kind:?}"),
            false,
        ),
        [] => fail("invalid-payload", "exec needs a kind and its JSON", false),
    }
}

/// Exits when stdin closes: the worker holds our stdin open while it lives, so a worker killed
/// with SIGKILL takes its children with it instead of leaving them running.
fn watch_parent() {
    std::thread::spawn(|| {
        let mut sink = [0u8; 64];
        let mut stdin = std::io::stdin();
        loop {
            match stdin.read(&mut sink) {
                Ok(0) | Err(_) => std::process::exit(70),
                Ok(_) => {}
            }
        }
    });
}

/// Where to read a clip and write its poster and strip.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ThumbsJob {
    pub input: std::path::PathBuf,
    /// Seconds; absent for still images.
    pub duration: Option<f64>,
    pub poster: std::path::PathBuf,
    pub strip: std::path::PathBuf,
    pub spec: nve_pipelines::thumbs::ThumbSpec,
}

/// Result: `{"strip": StripIndex}`.
fn thumbnails(job: &ThumbsJob) -> ExitCode {
    match nve_pipelines::thumbs::poster_and_strip(
        &job.input,
        job.duration,
        &job.poster,
        &job.strip,
        job.spec,
    ) {
        Ok(index) => {
            line(&serde_json::json!({"result": {"strip": index}}));
            ExitCode::SUCCESS
        }
        Err(e) => fail(e.code, &e.message, false),
    }
}

/// Where to read a clip and write its browser proxy.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProxyJob {
    pub input: std::path::PathBuf,
    pub output: std::path::PathBuf,
    #[serde(default)]
    pub spec: nve_pipelines::proxy::ProxySpec,
}

/// Result: `{"proxy": ProxyReport}`, with progress lines while it encodes (at most ten a
/// second: the worker only needs the latest).
fn proxy(job: &ProxyJob) -> ExitCode {
    let mut last = Instant::now();
    let mut report = |fraction: f64| {
        if last.elapsed() >= Duration::from_millis(100) {
            last = Instant::now();
            line(&serde_json::json!({"progress": fraction.clamp(0.0, 1.0)}));
        }
    };
    match nve_pipelines::proxy::make_proxy(&job.input, &job.output, &job.spec, &mut report) {
        Ok(made) => {
            line(&serde_json::json!({"result": {"proxy": made}}));
            ExitCode::SUCCESS
        }
        Err(e) => fail(e.code, &e.message, false),
    }
}

/// Where to read a file with sound and write its peaks (JSON).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WaveformJob {
    pub input: std::path::PathBuf,
    pub output: std::path::PathBuf,
    #[serde(default)]
    pub spec: nve_pipelines::waveform::WaveformSpec,
}

/// Writes the peaks document to `output`; result: its summary (levels without their data).
fn waveform(job: &WaveformJob) -> ExitCode {
    let peaks = match nve_pipelines::waveform::peaks(&job.input, &job.spec) {
        Ok(p) => p,
        Err(e) => return fail(e.code, &e.message, false),
    };
    let written = std::fs::File::create(&job.output).and_then(|f| {
        let mut out = std::io::BufWriter::new(f);
        serde_json::to_writer(&mut out, &peaks).map_err(std::io::Error::other)?;
        out.into_inner().map_err(|e| e.into_error())?.sync_all()
    });
    if let Err(e) = written {
        return fail("write-failed", &e.to_string(), true);
    }
    let levels: Vec<serde_json::Value> = peaks
        .levels
        .iter()
        .map(|l| {
            serde_json::json!({
                "samples_per_bucket": l.samples_per_bucket,
                "buckets_per_second": l.buckets_per_second,
                "length": l.length,
            })
        })
        .collect();
    line(&serde_json::json!({"result": {"waveform": {
        "sample_rate": peaks.sample_rate,
        "channels": peaks.channels,
        "duration": peaks.duration,
        "levels": levels,
    }}}));
    ExitCode::SUCCESS
}

/// A render, as the worker hands it to its child.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RenderJob {
    pub timeline: nve_pipelines::timeline::Timeline,
    /// Asset id → local file and probe facts.
    pub sources: std::collections::HashMap<String, nve_pipelines::render::SourceMedia>,
    pub profile: nve_pipelines::render::profiles::OutputProfile,
    /// Seconds `[start, end)`.
    pub range: Option<(f64, f64)>,
    pub policy: nve_pipelines::render::encoders::EncoderPolicy,
    pub output: std::path::PathBuf,
    /// Copy untouched GOPs of cut-only documents.
    #[serde(default)]
    pub smart: bool,
}

/// Result: `{"render": FileReport}`; progress lines carry the media time rendered, the speed
/// and an estimate of the time left.
fn render(job: &RenderJob) -> ExitCode {
    use nve_pipelines::render::file::{FileRender, render_to_file};
    let lookup = |id: &str| job.sources.get(id).cloned();
    let file = FileRender {
        timeline: &job.timeline,
        sources: &lookup,
        profile: &job.profile,
        range: job.range,
        policy: job.policy,
        output: &job.output,
        smart: job.smart,
    };
    let started = Instant::now();
    let mut last = Instant::now() - Duration::from_secs(1);
    let mut report = |p: &nve_pipelines::render::Progress| {
        if last.elapsed() >= Duration::from_millis(250) {
            last = Instant::now();
            let eta = if p.fraction > 0.0 {
                started.elapsed().as_secs_f64() * (1.0 - p.fraction) / p.fraction
            } else {
                0.0
            };
            line(&serde_json::json!({
                "progress": p.fraction.clamp(0.0, 1.0),
                "detail": {
                    "media_seconds": p.media_seconds,
                    "frames_done": p.frames_done,
                    "frames_total": p.frames_total,
                    "speed": p.speed,
                    "eta_seconds": eta,
                },
            }));
        }
    };
    // The worker stops a cancelled render by ending this process.
    let never = std::sync::atomic::AtomicBool::new(false);
    match render_to_file(&file, &mut report, &never) {
        Ok(made) => {
            line(&serde_json::json!({"result": {"render": made}}));
            ExitCode::SUCCESS
        }
        Err(e) => fail(e.code(), &e.to_string(), !e.is_client_error()),
    }
}

/// What to probe and against which limits.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProbeSpec {
    pub path: std::path::PathBuf,
    pub limits: nve_pipelines::probe::MediaLimits,
    /// Bound on the discovery itself.
    #[serde(default = "default_probe_secs")]
    pub timeout_secs: u64,
}

fn default_probe_secs() -> u64 {
    30
}

/// Result: `{"report": ProbeReport}`; a file that is not acceptable is an error line with the
/// rejection's code (`not-media`, `truncated`, `too-long` …), permanent: the same file would
/// be rejected again.
fn probe(spec: &ProbeSpec) -> ExitCode {
    use nve_pipelines::probe;
    let report = probe::probe(&spec.path, Duration::from_secs(spec.timeout_secs.max(1)))
        .and_then(|r| probe::check_limits(&r, &spec.limits).map(|()| r));
    match report {
        Ok(r) => {
            line(&serde_json::json!({"result": {"report": r}}));
            ExitCode::SUCCESS
        }
        Err(rej) => fail(rej.code, &rej.message, false),
    }
}

fn line(value: &serde_json::Value) {
    let mut out = std::io::stdout().lock();
    // A closed stdout means the worker is gone; the stdin watcher ends us.
    let _ = writeln!(out, "{value}");
    let _ = out.flush();
}

fn fail(code: &str, message: &str, transient: bool) -> ExitCode {
    line(&serde_json::json!({"error": {"code": code, "message": message, "transient": transient}}));
    ExitCode::from(1)
}

fn chaos(spec: &ChaosSpec) -> ExitCode {
    match spec.action {
        ChaosAction::Sleep => {
            let total = Duration::from_millis(spec.duration_ms.unwrap_or(1000));
            let start = Instant::now();
            while start.elapsed() < total {
                std::thread::sleep(Duration::from_millis(100).min(total));
                let done = start.elapsed().as_secs_f64() / total.as_secs_f64().max(1e-9);
                line(&serde_json::json!({"progress": done.min(1.0)}));
            }
            line(&serde_json::json!({"result": {"slept_ms": start.elapsed().as_millis() as u64}}));
            ExitCode::SUCCESS
        }
        ChaosAction::Crash => std::process::abort(),
        ChaosAction::Exit => ExitCode::from(3),
        ChaosAction::Hang => loop {
            std::thread::sleep(Duration::from_secs(3600));
        },
        ChaosAction::Memory => {
            let mut hoard: Vec<Vec<u8>> = Vec::new();
            loop {
                // Touch every page so the limit is really reached, not just reserved.
                hoard.push(vec![1u8; 64 << 20]);
                if hoard.len() > 1 << 16 {
                    return fail("memory", "no memory limit stopped the allocation", false);
                }
            }
        }
        ChaosAction::FailTransient => {
            fail("chaos-transient", "a transient failure, on purpose", true)
        }
        ChaosAction::FailPermanent => {
            fail("chaos-permanent", "a permanent failure, on purpose", false)
        }
    }
}
