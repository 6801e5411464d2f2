//! `nve render TIMELINE.json -o OUT`: renders a timeline document offline, without a server,
//! database or configuration. Sources are file paths in place of asset ids (relative paths
//! are read from the document's directory); each is probed first. The same compiler and
//! encoder choice as the render job, so what this makes is what the service makes.

use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use nve_pipelines::render::encoders::EncoderPolicy;
use nve_pipelines::render::file::{FileRender, plan_file, render_to_file};
use nve_pipelines::render::profiles::ProfileSpec;
use nve_pipelines::render::{Progress, SourceMedia};
use nve_pipelines::timeline::{AssetInfo, Context, Timeline, TimelineDoc, TimelineLimits};

pub struct RenderArgs<'a> {
    pub timeline: &'a Path,
    pub output: Option<&'a Path>,
    /// A preset name or a JSON profile document.
    pub profile: &'a str,
    /// `a..b` in seconds.
    pub range: Option<&'a str>,
    pub hardware: &'a str,
    pub print_plan: bool,
    /// Encode everything even when untouched GOPs could be copied.
    pub no_smart: bool,
}

fn fail(message: impl std::fmt::Display) -> ExitCode {
    eprintln!("nve render: {message}");
    ExitCode::FAILURE
}

fn parse_range(s: &str) -> Result<(f64, f64), String> {
    let (a, b) = s
        .split_once("..")
        .ok_or_else(|| format!("--range {s:?}: expected START..END in seconds, e.g. 2..7.5"))?;
    let num = |v: &str| {
        v.trim()
            .parse::<f64>()
            .ok()
            .filter(|x| x.is_finite() && *x >= 0.0)
            .ok_or_else(|| format!("--range {s:?}: {v:?} is not a number of seconds"))
    };
    Ok((num(a)?, num(b)?))
}

fn parse_policy(s: &str) -> Result<EncoderPolicy, String> {
    match s {
        "auto" => Ok(EncoderPolicy::Auto),
        "off" => Ok(EncoderPolicy::Off),
        "vaapi" => Ok(EncoderPolicy::Vaapi),
        "nvcodec" => Ok(EncoderPolicy::Nvcodec),
        other => Err(format!(
            "--hardware {other:?}: expected auto, off, vaapi or nvcodec"
        )),
    }
}

/// Every `asset_id` of the document, probed from the file it names.
fn probe_sources(
    doc: &serde_json::Value,
    base: &Path,
) -> Result<HashMap<String, SourceMedia>, String> {
    let mut ids = std::collections::HashSet::new();
    crate::collab::asset_facts::in_json(doc, &mut ids);
    // Probed side by side: each probe mostly waits on its demuxer, and a document's sources are
    // checked before anything can be built, so this is start-up time of every render.
    let probed: Vec<Result<(String, SourceMedia), String>> = std::thread::scope(|scope| {
        let handles: Vec<_> = ids
            .into_iter()
            .map(|id| {
                scope.spawn(move || {
                    let path = if Path::new(&id).is_absolute() {
                        PathBuf::from(&id)
                    } else {
                        base.join(&id)
                    };
                    nve_pipelines::probe::probe(&path, Duration::from_secs(60))
                        .map(|report| (id.clone(), SourceMedia::from_probe(path.clone(), &report)))
                        .map_err(|e| format!("source {id:?} ({}): {e}", path.display()))
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err("a source probe panicked".to_owned()))
            })
            .collect()
    });
    probed.into_iter().collect()
}

/// Draws progress on one line of a terminal, or a line per tenth elsewhere (CI logs).
struct Bar {
    tty: bool,
    last_tenth: i64,
    started: Instant,
}

impl Bar {
    fn show(&mut self, p: &Progress) {
        let eta = if p.fraction > 0.0 {
            self.started.elapsed().as_secs_f64() * (1.0 - p.fraction) / p.fraction
        } else {
            0.0
        };
        let line = format!(
            "{:5.1}%  frame {}/{}  {:.2} s rendered  {:.2}x  ETA {:.0} s",
            p.fraction * 100.0,
            p.frames_done,
            p.frames_total,
            p.media_seconds,
            p.speed,
            eta
        );
        let mut err = std::io::stderr().lock();
        if self.tty {
            let _ = write!(err, "\r{line}   ");
        } else {
            let tenth = (p.fraction * 10.0).floor() as i64;
            if tenth > self.last_tenth {
                self.last_tenth = tenth;
                let _ = writeln!(err, "{line}");
            }
        }
    }
}

pub fn main(args: &RenderArgs<'_>) -> ExitCode {
    fewer_malloc_arenas();
    let text = match std::fs::read_to_string(args.timeline) {
        Ok(t) => t,
        Err(e) => return fail(format!("{}: {e}", args.timeline.display())),
    };
    let raw: serde_json::Value = match serde_json::from_str(&text) {
        Ok(v) => v,
        Err(e) => return fail(format!("{}: not JSON: {e}", args.timeline.display())),
    };
    // A document as the API returns it (`{"version": …, "document": {…}}`) works too.
    let raw = raw.get("document").cloned().unwrap_or(raw);
    let base = args
        .timeline
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let sources = match probe_sources(&raw, base) {
        Ok(s) => s,
        Err(e) => return fail(e),
    };
    let doc: TimelineDoc = match serde_path_to_error::deserialize(&raw) {
        Ok(d) => d,
        Err(e) => {
            return fail(format!(
                "not a timeline document at {}: {}",
                e.path(),
                e.inner()
            ));
        }
    };
    let facts: HashMap<String, AssetInfo> = sources
        .iter()
        .map(|(k, v)| (k.clone(), nve_pipelines::render::file::asset_info(v)))
        .collect();
    let lookup_facts = |id: &str| facts.get(id).copied();
    let limits = TimelineLimits::default();
    let cx = Context {
        limits: &limits,
        assets: &lookup_facts,
    };
    let timeline = match Timeline::from_doc(&doc, &cx) {
        Ok(t) => t,
        Err(errors) => {
            let listed: Vec<String> = errors
                .iter()
                .map(|e| format!("  {} {}: {}", e.path, e.code.as_str(), e.message))
                .collect();
            return fail(format!("invalid timeline:\n{}", listed.join("\n")));
        }
    };
    let spec: ProfileSpec = if args.profile.trim_start().starts_with('{') {
        match serde_json::from_str(args.profile) {
            Ok(s) => s,
            Err(e) => return fail(format!("--profile: {e}")),
        }
    } else {
        ProfileSpec::Preset(args.profile.to_owned())
    };
    let profile = match spec.to_profile() {
        Ok(p) => p,
        Err(e) => return fail(format!("--profile: {e}")),
    };
    let range = match args.range.map(parse_range).transpose() {
        Ok(r) => r,
        Err(e) => return fail(e),
    };
    let policy = match parse_policy(args.hardware) {
        Ok(p) => p,
        Err(e) => return fail(e),
    };
    let lookup = |id: &str| sources.get(id).cloned();
    let default_out;
    let output = match args.output {
        Some(o) => o,
        None => {
            default_out = args.timeline.with_extension(profile.extension());
            &default_out
        }
    };
    let job = FileRender {
        timeline: &timeline,
        sources: &lookup,
        profile: &profile,
        range,
        policy,
        output,
        smart: !args.no_smart,
    };
    if args.print_plan {
        return match plan_file(&job) {
            Ok((plan, _)) => {
                let mut stdout = std::io::stdout().lock();
                match writeln!(stdout, "{plan}") {
                    Ok(()) => ExitCode::SUCCESS,
                    Err(e) => fail(e),
                }
            }
            Err(e) => fail(e.to_string()),
        };
    }
    let cancel = AtomicBool::new(false);
    let mut bar = Bar {
        tty: std::io::stderr().is_terminal(),
        last_tenth: -1,
        started: Instant::now(),
    };
    let result = render_to_file(&job, &mut |p| bar.show(p), &cancel);
    if bar.tty {
        eprintln!();
    }
    match result {
        Ok(r) => {
            let encoders: Vec<&str> = [r.video_encoder.as_deref(), r.audio_encoder.as_deref()]
                .into_iter()
                .flatten()
                .collect();
            let smart = r
                .smart
                .as_ref()
                .map(|s| {
                    format!(
                        ", smart: {:.2} s copied, {:.2} s encoded",
                        s.copied_seconds, s.encoded_seconds
                    )
                })
                .unwrap_or_default();
            let line = format!(
                "{}: {:.2} s, {} frames in {:.2} s ({:.2}x), {}{}{smart}; {}",
                output.display(),
                r.media_seconds,
                r.frames,
                r.wall_seconds,
                r.speed,
                encoders.join(" + "),
                if r.hardware { " (hardware)" } else { "" },
                r.verified
            );
            let mut stdout = std::io::stdout().lock();
            match writeln!(stdout, "{line}") {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => fail(e),
            }
        }
        Err(e) => fail(e.to_string()),
    }
}

/// Runs this process again with `MALLOC_ARENA_MAX` set (glibc reads it only at start-up), as
/// the worker does for its media children (`nve_worker::isolate::MALLOC_ARENAS`: lower peak
/// memory for the same work). Returns only when it is already set or the exec failed.
fn fewer_malloc_arenas() {
    use std::os::unix::process::CommandExt;
    let (name, value) = nve_worker::isolate::MALLOC_ARENAS;
    if std::env::var_os(name).is_some() {
        return;
    }
    let Ok(exe) = std::env::current_exe() else {
        return;
    };
    let err = std::process::Command::new(exe)
        .args(std::env::args_os().skip(1))
        .env(name, value)
        .exec();
    tracing::debug!(error = %err, "running again with fewer malloc arenas failed; going on");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_and_policies_parse() {
        assert_eq!(parse_range("2..7.5"), Ok((2.0, 7.5)));
        assert!(parse_range("7").is_err());
        assert!(parse_range("a..2").is_err());
        assert!(parse_range("-1..2").is_err());
        assert_eq!(parse_policy("off"), Ok(EncoderPolicy::Off));
        assert!(parse_policy("gpu").is_err());
    }
}
