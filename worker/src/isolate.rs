//! Media work on untrusted input runs in a child process, so a crash in a GStreamer plugin (or
//! a file crafted to make one) ends that attempt, never the worker. The child gets a wall-clock
//! timeout, an address-space limit and a CPU-time limit, and reports on stdout, one JSON object
//! per line:
//!
//! ```text
//! {"progress": 0.42, "detail": {...}}          any number of times
//! {"result": {...}}                            once, on success
//! {"error": {"code": "not-media", "message": "...", "transient": false}}   once, on failure
//! ```
//!
//! Limits are applied with util-linux's `prlimit` (present on every Debian/Ubuntu system), so
//! no `unsafe` `pre_exec` is needed.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use serde::Deserialize;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::process::Command;
use tokio::sync::watch;

/// Resource limits of one child.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Killed after this long, whatever it is doing.
    pub wall: Duration,
    /// CPU seconds (user + system) before the kernel stops it (SIGXCPU).
    pub cpu_secs: u64,
    /// Address-space limit in bytes; allocations beyond it fail.
    pub memory_bytes: u64,
}

/// What a child reported while running.
#[derive(Debug, Clone, PartialEq)]
pub struct Progress {
    pub fraction: f64,
    pub detail: serde_json::Value,
}

/// Why a child did not produce a result.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ChildError {
    #[error("could not start {program}: {message}")]
    Spawn { program: String, message: String },
    #[error("timed out after {0:?} and was killed")]
    TimedOut(Duration),
    #[error("cancelled")]
    Cancelled,
    #[error("used more than its {0} s of CPU time")]
    CpuLimit(u64),
    #[error("crashed with signal {signal} ({name}){}", stderr_suffix(.stderr))]
    Signal {
        signal: i32,
        name: &'static str,
        stderr: String,
    },
    #[error("exited with status {code} without a result{}", stderr_suffix(.stderr))]
    Exited { code: i32, stderr: String },
    /// The child reported a failure of the work itself.
    #[error("{code}: {message}")]
    Failed {
        code: String,
        message: String,
        transient: bool,
    },
}

fn stderr_suffix(stderr: &str) -> String {
    if stderr.is_empty() {
        String::new()
    } else {
        format!(": {stderr}")
    }
}

impl ChildError {
    /// Stable code for the job record.
    pub fn code(&self) -> &str {
        match self {
            ChildError::Spawn { .. } => "worker-misconfigured",
            ChildError::TimedOut(_) => "timed-out",
            ChildError::Cancelled => "cancelled",
            ChildError::CpuLimit(_) => "cpu-limit",
            ChildError::Signal { .. } => "crashed",
            ChildError::Exited { .. } => "crashed",
            ChildError::Failed { code, .. } => code,
        }
    }

    /// Worth another attempt? A crash may come from the input (then the attempt limit ends it)
    /// or from the host; a timeout or limit on the same input would only repeat.
    pub fn transient(&self) -> bool {
        match self {
            ChildError::Spawn { .. } | ChildError::Signal { .. } | ChildError::Exited { .. } => {
                true
            }
            ChildError::Failed { transient, .. } => *transient,
            ChildError::TimedOut(_) | ChildError::Cancelled | ChildError::CpuLimit(_) => false,
        }
    }
}

#[derive(Deserialize)]
struct Line {
    progress: Option<f64>,
    #[serde(default)]
    detail: serde_json::Value,
    result: Option<serde_json::Value>,
    error: Option<LineError>,
}

#[derive(Deserialize)]
struct LineError {
    code: String,
    message: String,
    #[serde(default)]
    transient: bool,
}

type Outcome = Option<Result<serde_json::Value, ChildError>>;

/// Reads one protocol line. Other output is ignored: libraries sometimes print to stdout.
fn take_line(text: &str, result: &mut Outcome, on_progress: &mut impl FnMut(Progress)) {
    let Ok(parsed) = serde_json::from_str::<Line>(text) else {
        return;
    };
    if let Some(p) = parsed.progress.filter(|p| p.is_finite()) {
        on_progress(Progress {
            fraction: p.clamp(0.0, 1.0),
            detail: parsed.detail,
        });
    } else if let Some(r) = parsed.result {
        *result = Some(Ok(r));
    } else if let Some(e) = parsed.error {
        *result = Some(Err(ChildError::Failed {
            code: e.code,
            message: e.message,
            transient: e.transient,
        }));
    }
}

/// Keeps the last part of a child's stderr for the error message.
const STDERR_TAIL: usize = 2000;

fn signal_name(signal: i32) -> &'static str {
    match signal {
        4 => "SIGILL",
        6 => "SIGABRT",
        7 => "SIGBUS",
        8 => "SIGFPE",
        9 => "SIGKILL",
        11 => "SIGSEGV",
        15 => "SIGTERM",
        24 => "SIGXCPU",
        _ => "signal",
    }
}

/// Runs `program args…` under `limits`, calling `on_progress` for each progress line. Resolves
/// with the child's result, or why there is none. The child is killed when `cancel` turns true,
/// when the wall clock runs out, and when this future is dropped.
/// glibc gives each thread that allocates its own heap arena (up to 8 per core), and a media
/// child has dozens of streaming threads passing frames between them: freed frames stay spread
/// over many arenas. Two arenas cut the peak RSS of the reference render (E1) from 616–661 to
/// 507–558 MiB at no CPU cost (docs/benchmarks.md). An operator's own setting wins.
pub const MALLOC_ARENAS: (&str, &str) = ("MALLOC_ARENA_MAX", "2");

pub async fn run(
    program: impl Into<PathBuf>,
    args: &[String],
    limits: &Limits,
    mut cancel: watch::Receiver<bool>,
    mut on_progress: impl FnMut(Progress),
) -> Result<serde_json::Value, ChildError> {
    let program = program.into();
    let mut cmd = Command::new("prlimit");
    cmd.arg(format!("--as={}", limits.memory_bytes))
        .arg(format!("--cpu={}", limits.cpu_secs.max(1)))
        .arg("--")
        .arg(&program)
        .args(args)
        // The child's stdin stays open for as long as this worker lives: `nve … exec` children
        // exit when it closes, so a worker killed with SIGKILL leaves no orphan behind.
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    if std::env::var_os(MALLOC_ARENAS.0).is_none() {
        cmd.env(MALLOC_ARENAS.0, MALLOC_ARENAS.1);
    }
    let mut child = cmd.spawn().map_err(|e| ChildError::Spawn {
        program: program.display().to_string(),
        message: e.to_string(),
    })?;
    let _stdin = child.stdin.take();
    let stdout = child.stdout.take();
    let stderr = child.stderr.take();
    let stderr_task = tokio::spawn(async move {
        let mut buf = Vec::new();
        if let Some(mut s) = stderr {
            // Read everything (a full pipe would block the child) and keep the tail.
            let mut chunk = [0u8; 8192];
            while let Ok(n) = s.read(&mut chunk).await {
                if n == 0 {
                    break;
                }
                buf.extend_from_slice(&chunk[..n]);
                if buf.len() > 4 * STDERR_TAIL {
                    buf.drain(..buf.len() - STDERR_TAIL);
                }
            }
        }
        let text = String::from_utf8_lossy(&buf).trim().to_owned();
        let start = text.len().saturating_sub(STDERR_TAIL);
        text.get(start..).unwrap_or_default().to_owned()
    });

    let mut result: Outcome = None;
    let mut lines = stdout.map(|s| BufReader::new(s).lines());
    let deadline = tokio::time::sleep(limits.wall);
    tokio::pin!(deadline);
    let outcome = loop {
        tokio::select! {
            line = async {
                match lines.as_mut() {
                    Some(l) => l.next_line().await,
                    None => std::future::pending().await,
                }
            } => {
                match line {
                    Ok(Some(text)) => take_line(&text, &mut result, &mut on_progress),
                    // stdout closed: wait for the exit status below.
                    _ => lines = None,
                }
            }
            status = child.wait() => break status.ok(),
            () = &mut deadline => {
                let _ = child.kill().await;
                return Err(ChildError::TimedOut(limits.wall));
            }
            changed = cancel.changed() => {
                if changed.is_err() || *cancel.borrow() {
                    let _ = child.kill().await;
                    return Err(ChildError::Cancelled);
                }
            }
        }
    };
    // Lines written just before exit may still be buffered.
    if let Some(l) = lines.as_mut() {
        while let Ok(Some(text)) = l.next_line().await {
            take_line(&text, &mut result, &mut on_progress);
        }
    }
    let stderr = stderr_task.await.unwrap_or_default();
    let status = outcome.ok_or_else(|| ChildError::Exited {
        code: -1,
        stderr: stderr.clone(),
    })?;
    use std::os::unix::process::ExitStatusExt;
    if let Some(signal) = status.signal() {
        if signal == 24 {
            return Err(ChildError::CpuLimit(limits.cpu_secs));
        }
        return Err(ChildError::Signal {
            signal,
            name: signal_name(signal),
            stderr,
        });
    }
    // prlimit itself reports a program it could not execute with 126/127.
    if matches!(status.code(), Some(126 | 127)) && stderr.starts_with("prlimit: failed to execute")
    {
        return Err(ChildError::Spawn {
            program: program.display().to_string(),
            message: stderr,
        });
    }
    match (status.success(), result) {
        (_, Some(r)) if status.success() => r,
        (_, Some(Err(e))) => Err(e),
        (_, _) => Err(ChildError::Exited {
            code: status.code().unwrap_or(-1),
            stderr,
        }),
    }
}
