//! One call from a timeline document to a verified file: conform the document to the
//! profile's output format, plan, build, encode with the best allowed encoder (falling back to
//! the next, software last, when a hardware encoder fails), then probe the result. The render
//! job and `nve render` both go through here, so they render alike.

use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use gst::prelude::*;
use gstreamer as gst;
use serde::{Deserialize, Serialize};

use super::encoders::{self, EncoderPolicy};
use super::output::{OutputBin, OutputError, output_bin, verify_file};
use super::plan::{SourceLookup, SourceMedia, plan};
use super::profiles::{BaseFormat, OutputProfile, ProfileError, ResolvedFormats};
use super::run::{Progress, RenderOptions, render};
use super::{BuildOptions, RenderError, RenderPlan};
use crate::timeline::{AssetInfo, Context, Op, OutputPatch, Rate, Timeline, TimelineLimits};

/// Why a file could not be made. [`FileError::code`] is stable.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    #[error(transparent)]
    Render(#[from] RenderError),
    #[error(transparent)]
    Output(#[from] OutputError),
    #[error(transparent)]
    Profile(#[from] ProfileError),
}

impl FileError {
    pub fn code(&self) -> &'static str {
        match self {
            FileError::Render(e) => e.code(),
            FileError::Output(e) => e.code(),
            FileError::Profile(e) => e.code(),
        }
    }

    /// The document, its media or the profile is at fault: asking again will not help.
    pub fn is_client_error(&self) -> bool {
        match self {
            FileError::Render(e) => e.is_client_error(),
            FileError::Profile(_) => true,
            FileError::Output(e) => matches!(
                e.code(),
                "invalid-profile" | "unknown-profile" | "invalid-format" | "no-frame"
            ),
        }
    }
}

/// What to render.
pub struct FileRender<'a> {
    pub timeline: &'a Timeline,
    pub sources: SourceLookup<'a>,
    pub profile: &'a OutputProfile,
    /// Seconds `[start, end)` of the timeline; snapped to its frames.
    pub range: Option<(f64, f64)>,
    pub policy: EncoderPolicy,
    pub output: &'a Path,
    /// Copy untouched GOPs when the document is only cuts of sources that match the profile
    /// (`smart` module); otherwise, or when it is off, everything is encoded.
    pub smart: bool,
}

/// Wall-clock milliseconds of each stage.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StageTimings {
    pub plan_ms: u64,
    pub render_ms: u64,
    pub verify_ms: u64,
}

/// What was made.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FileReport {
    pub bytes: u64,
    pub frames: i64,
    pub media_seconds: f64,
    pub wall_seconds: f64,
    /// Media seconds per wall second.
    pub speed: f64,
    pub video_encoder: Option<String>,
    pub audio_encoder: Option<String>,
    pub hardware: bool,
    /// Encoders that failed before the one used (hardware falling back), with why.
    pub fell_back: Vec<String>,
    /// What the verification probe found (`h264 1920x1080 30/1, aac 48000 Hz 2 ch, 29.00 s`).
    pub verified: String,
    pub timings: StageTimings,
    /// Smart rendering: what was copied and what encoded; absent when everything was encoded
    /// (with the reason smart rendering did not apply, when it was asked for).
    pub smart: Option<SmartSummary>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub smart_skipped: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SmartSummary {
    pub copied_seconds: f64,
    pub encoded_seconds: f64,
    pub gops_copied: u32,
    pub encoded_runs: u32,
}

fn ms(since: Instant) -> u64 {
    u64::try_from(since.elapsed().as_millis()).unwrap_or(u64::MAX)
}

/// The document with the profile's output format (size, frame rate, sample rate, channels),
/// re-timed onto the new frame grid the way an editor's change of output settings would.
pub fn conform(
    timeline: &Timeline,
    sources: SourceLookup<'_>,
    resolved: &ResolvedFormats,
) -> Result<Timeline, RenderError> {
    let o = &timeline.output;
    let mut patch = OutputPatch {
        width: None,
        height: None,
        frame_rate: None,
        sample_rate: None,
        channels: None,
        background: None,
    };
    if let Some(v) = &resolved.video {
        if (v.width, v.height) != (o.width, o.height) {
            patch.width = Some(v.width);
            patch.height = Some(v.height);
        }
        if (v.fps_num, v.fps_den) != (o.frame_rate.num(), o.frame_rate.den()) {
            let rate = Rate::new(u64::from(v.fps_num), u64::from(v.fps_den))
                .map_err(|e| RenderError::Unsupported(format!("output frame rate: {e}")))?;
            patch.frame_rate = Some(rate);
        }
    }
    if let Some(a) = &resolved.audio {
        if a.rate != o.sample_rate {
            patch.sample_rate = Some(a.rate);
        }
        let channels = u8::try_from(a.channels).unwrap_or(u8::MAX);
        if channels != o.channels {
            patch.channels = Some(channels);
        }
    }
    let unchanged = patch.width.is_none()
        && patch.frame_rate.is_none()
        && patch.sample_rate.is_none()
        && patch.channels.is_none();
    if unchanged {
        return Ok(timeline.clone());
    }
    // Validation wants a shareable lookup; the sources the document names, looked up once.
    let facts: std::collections::HashMap<String, AssetInfo> = timeline
        .tracks
        .iter()
        .flat_map(|t| t.clips.iter())
        .filter_map(|c| c.source.asset_id())
        .filter_map(|id| sources(id).map(|s| (id.to_owned(), asset_info(&s))))
        .collect();
    let info = |id: &str| facts.get(id).copied();
    // The document was valid when it was stored; its limits are not this render's business.
    let limits = TimelineLimits::unbounded();
    let cx = Context {
        limits: &limits,
        assets: &info,
    };
    timeline
        .apply(&Op::SetOutput { patch }, &cx)
        .map(|(t, _)| t)
        .map_err(|e| {
            RenderError::Unsupported(format!(
                "the document does not fit the profile's format: {e}"
            ))
        })
}

/// The validation facts of a source (display size: a rotated source as it looks).
pub fn asset_info(s: &SourceMedia) -> AssetInfo {
    let (width, height) = if s.rotation % 180 == 90 {
        (s.height, s.width)
    } else {
        (s.width, s.height)
    };
    AssetInfo {
        duration_ns: s.duration_ns,
        has_video: s.has_video && !s.is_image,
        has_audio: s.has_audio && !s.is_image,
        is_image: s.is_image,
        width,
        height,
    }
}

/// Plans `job` for printing (`nve render --print-plan`) or rendering.
pub fn plan_file(job: &FileRender<'_>) -> Result<(RenderPlan, ResolvedFormats), FileError> {
    job.profile.validate()?;
    let resolved = job
        .profile
        .resolve(&BaseFormat::from_output(&job.timeline.output))?;
    let conformed = conform(job.timeline, job.sources, &resolved)?;
    let range = match job.range {
        None => None,
        Some((a, b)) => {
            let rate = conformed.output.frame_rate;
            let snap = |s: f64| {
                rate.try_snap_seconds(s).ok_or_else(|| {
                    RenderError::InvalidRange(format!("{s} s is not a time on the timeline"))
                })
            };
            Some((snap(a)?.get(), snap(b)?.get()))
        }
    };
    Ok((plan(&conformed, job.sources, range)?, resolved))
}

/// Probes the written file; a file that does not check out is removed, so a failure leaves
/// nothing at the output path.
fn verify_or_remove(job: &FileRender<'_>) -> Result<String, FileError> {
    verify_file(job.profile, job.output).map_err(|e| {
        let _ = std::fs::remove_file(job.output);
        e.into()
    })
}

/// Renders `job` to its output file. On failure, nothing is left at the output path.
pub fn render_to_file(
    job: &FileRender<'_>,
    progress: &mut dyn FnMut(&Progress),
    cancel: &AtomicBool,
) -> Result<FileReport, FileError> {
    let started = Instant::now();
    let (plan, resolved) = plan_file(job)?;
    let plan_ms = ms(started);
    let mut smart_skipped = None;
    if job.smart {
        match super::smart::eligible(&plan, job.profile) {
            Ok(sp) => {
                let render_started = Instant::now();
                match super::smart::smart_render(&sp, job.output, progress, cancel) {
                    Ok(r) => {
                        let verify_started = Instant::now();
                        let verified = verify_or_remove(job)?;
                        return Ok(FileReport {
                            bytes: r.bytes,
                            frames: r.frames,
                            media_seconds: r.media_seconds,
                            wall_seconds: started.elapsed().as_secs_f64(),
                            speed: r.speed,
                            video_encoder: Some(r.video_encoder),
                            audio_encoder: r.audio_encoder,
                            hardware: false,
                            fell_back: Vec::new(),
                            verified,
                            timings: StageTimings {
                                plan_ms,
                                render_ms: ms(render_started),
                                verify_ms: ms(verify_started),
                            },
                            smart: Some(SmartSummary {
                                copied_seconds: r.copied_seconds,
                                encoded_seconds: r.encoded_seconds,
                                gops_copied: r.gops_copied,
                                encoded_runs: r.encoded_runs,
                            }),
                            smart_skipped: None,
                        });
                    }
                    // Found only while copying (variable frame rate, deep reordering): the
                    // full render still makes the file.
                    Err(e @ (RenderError::Unsupported(_) | RenderError::NotDecodable(_))) => {
                        tracing::info!(error = %e, "smart rendering gave up; encoding everything");
                        smart_skipped = Some(e.to_string());
                    }
                    Err(e) => return Err(e.into()),
                }
            }
            Err(why) => smart_skipped = Some(why.reason),
        }
    }
    let candidates = encoders::candidates(job.profile, job.policy)?;
    let opts = RenderOptions {
        build: BuildOptions {
            video: resolved.video.is_some(),
            audio: resolved.audio.is_some(),
            ..BuildOptions::default()
        },
        ..RenderOptions::default()
    };
    let mut fell_back = Vec::new();
    let render_started = Instant::now();
    for (i, candidate) in candidates.iter().enumerate() {
        let last = i + 1 == candidates.len();
        let mut out: Option<OutputBin> = None;
        let mut attach = |pipeline: &gst::Pipeline, built: &super::Built| {
            let bin = output_bin(
                job.profile,
                resolved.video.as_ref(),
                resolved.audio.as_ref(),
                candidate,
                job.output,
            )
            .map_err(|e| RenderError::Internal(e.to_string()))?;
            pipeline
                .add(&bin.bin)
                .map_err(|e| RenderError::Internal(e.to_string()))?;
            for (from, to, what) in [
                (&built.video, &bin.video_sink, "video"),
                (&built.audio, &bin.audio_sink, "audio"),
            ] {
                if let (Some(from), Some(to)) = (from, to) {
                    from.link(to).map_err(|e| {
                        RenderError::Internal(format!("linking the {what} output: {e}"))
                    })?;
                }
            }
            bin.bin
                .sync_state_with_parent()
                .map_err(|e| RenderError::Internal(e.to_string()))?;
            out = Some(bin);
            Ok(())
        };
        let rendered = render(&plan, &opts, &mut attach, progress, cancel);
        let finished = match rendered {
            Ok(report) => match out.take() {
                Some(bin) => bin.finish().map(|o| (report, o)).map_err(FileError::from),
                None => Err(RenderError::Internal("no output was attached".into()).into()),
            },
            Err(e) => {
                if let Some(bin) = out.take() {
                    bin.abort();
                }
                Err(e.into())
            }
        };
        match finished {
            Ok((report, written)) => {
                let verify_started = Instant::now();
                let verified = verify_or_remove(job)?;
                return Ok(FileReport {
                    bytes: written.bytes,
                    frames: report.frames,
                    media_seconds: report.media_seconds,
                    wall_seconds: started.elapsed().as_secs_f64(),
                    speed: report.speed,
                    video_encoder: written.video_encoder,
                    audio_encoder: written.audio_encoder,
                    hardware: written.hardware,
                    fell_back,
                    verified,
                    timings: StageTimings {
                        plan_ms,
                        render_ms: ms(render_started),
                        verify_ms: ms(verify_started),
                    },
                    smart: None,
                    smart_skipped: smart_skipped.clone(),
                });
            }
            // A hardware encoder that fails mid-render (driver, session limit, a format it
            // refuses) is not the document's fault: the next candidate, software last, tries.
            Err(e)
                if candidate.kind.is_hardware()
                    && !last
                    && !matches!(&e, FileError::Render(RenderError::Cancelled))
                    && !e.is_client_error() =>
            {
                tracing::warn!(encoder = %candidate.element, error = %e, "hardware encode failed; falling back");
                fell_back.push(format!("{}: {e}", candidate.element));
            }
            Err(e) => return Err(e),
        }
    }
    Err(OutputError::EncoderUnavailable {
        codec: "any".into(),
        detail: fell_back.join("; "),
    }
    .into())
}
