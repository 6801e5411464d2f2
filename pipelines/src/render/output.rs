//! The output side of a render: everything after the composited raw frames.
//!
//! [`output_bin`] builds a `gst::Bin` with ghost sink pads for the renderer's raw video (I420)
//! and audio (interleaved F32LE) and writes one file: conversion the encoder needs, the
//! configured encoder, parser, muxer and `filesink`. Queues in front of each encoder let
//! compositing, encoding and muxing run on separate threads.
//!
//! Animated GIF and WebP have no GStreamer encoder here: their frames leave the pipeline
//! through an `appsink` and a Rust encoder writes the file on its own thread. Stills (PNG,
//! JPEG) take exactly one frame, the one showing at the profile's `at_secs`, and tell
//! upstream to stop after it.
//!
//! The caller adds the bin to its pipeline, links the pads, runs to EOS (see
//! [`run_to_eos`]), sets the pipeline to `Null`, then calls [`OutputBin::finish`], which waits
//! for the Rust encoders and checks what was written. Errors on the bus that come from inside
//! the bin are mapped by [`OutputBin::classify_error`], so a hardware encoder failing
//! mid-render can be told apart and the render rebuilt with the next
//! [`candidate`](super::encoders::candidates).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use gst::prelude::*;
use gstreamer as gst;
use gstreamer_app as gst_app;
use serde::{Deserialize, Serialize};

use super::encoders::{
    self, Codec, EncoderCandidate, EncoderKind, PCM, RUST_GIF, RUST_WEBP, raw_video_caps,
};
use super::profiles::{
    AudioCodec, BaseFormat, Container, OutputProfile, ProfileError, Speed, VideoCodec,
};
pub use super::profiles::{AudioFormat, VideoFormat};

/// Why an output could not be built or written. `code()` is stable.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum OutputError {
    #[error(transparent)]
    Profile(#[from] ProfileError),
    /// The formats handed to the bin do not suit the profile (a missing stream, an odd size).
    #[error("invalid output format: {0}")]
    InvalidFormat(String),
    #[error("no {codec} encoder is available: {detail}")]
    EncoderUnavailable { codec: String, detail: String },
    /// The encoder failed while running. `hardware` tells the caller a software retry may work.
    #[error("the {element} encoder failed: {detail}")]
    EncoderFailed {
        element: String,
        hardware: bool,
        detail: String,
    },
    #[error("the muxer failed: {0}")]
    MuxFailed(String),
    #[error("cannot write {path}: {detail}")]
    WriteFailed { path: String, detail: String },
    /// A still's time lies after the last frame the render delivered.
    #[error("no frame reached the output (still at {at_secs} s)")]
    NoFrame { at_secs: f64 },
    /// `finish` ran before the stream ended.
    #[error("the output stream did not end (no EOS)")]
    Incomplete,
    #[error("the render did not finish within {0} s")]
    TimedOut(u64),
    /// An error from outside the output bin.
    #[error("the pipeline failed: {0}")]
    Pipeline(String),
    /// A written file is not what the profile promised (see [`verify_file`]).
    #[error("the output does not check out: {0}")]
    Verify(String),
    #[error("internal error: {0}")]
    Internal(String),
}

impl OutputError {
    pub fn code(&self) -> &'static str {
        match self {
            OutputError::Profile(p) => p.code(),
            OutputError::InvalidFormat(_) => "invalid-format",
            OutputError::EncoderUnavailable { .. } => "encoder-unavailable",
            OutputError::EncoderFailed { .. } => "encoder-failed",
            OutputError::MuxFailed(_) => "mux-failed",
            OutputError::WriteFailed { .. } => "write-failed",
            OutputError::NoFrame { .. } => "no-frame",
            OutputError::Incomplete => "incomplete",
            OutputError::TimedOut(_) => "timed-out",
            OutputError::Pipeline(_) => "pipeline-failed",
            OutputError::Verify(_) => "verify-failed",
            OutputError::Internal(_) => "internal",
        }
    }

    /// A hardware encoder failed: worth retrying with a software candidate.
    pub fn is_hardware_failure(&self) -> bool {
        matches!(self, OutputError::EncoderFailed { hardware: true, .. })
    }
}

/// What was written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutputReport {
    pub path: PathBuf,
    pub bytes: u64,
    /// Frames that reached the video encoder (stills: 1; GIF/WebP: frames given to the Rust
    /// encoder, before identical frames are merged).
    pub video_frames: u64,
    pub video_encoder: Option<String>,
    pub audio_encoder: Option<String>,
    pub hardware: bool,
}

/// A built output: add `bin` to the pipeline and link the renderer to the pads.
pub struct OutputBin {
    pub bin: gst::Bin,
    /// Takes `video/x-raw, format=I420` at the given size and rate, square pixels.
    pub video_sink: Option<gst::Pad>,
    /// Takes `audio/x-raw, format=F32LE, layout=interleaved` at the given rate and channels.
    pub audio_sink: Option<gst::Pad>,
    pub video_encoder: Option<String>,
    pub audio_encoder: Option<String>,
    pub encoder_kind: EncoderKind,
    pub path: PathBuf,
    frames: Arc<AtomicU64>,
    still_at: Option<f64>,
    animated: Option<AnimatedWriter>,
    side_files: Vec<PathBuf>,
}

fn internal(e: impl std::fmt::Display) -> OutputError {
    OutputError::Internal(e.to_string())
}

fn make(factory: &str, name: Option<&str>) -> Result<gst::Element, OutputError> {
    let mut b = gst::ElementFactory::make(factory);
    if let Some(n) = name {
        b = b.name(n);
    }
    b.build().map_err(|_| OutputError::EncoderUnavailable {
        codec: factory.into(),
        detail: format!("the {factory} element is not installed"),
    })
}

fn capsfilter(caps: gst::Caps) -> Result<gst::Element, OutputError> {
    gst::ElementFactory::make("capsfilter")
        .property("caps", caps)
        .build()
        .map_err(internal)
}

fn queue(max_buffers: u32, max_time: Duration) -> Result<gst::Element, OutputError> {
    gst::ElementFactory::make("queue")
        .property("max-size-buffers", max_buffers)
        .property("max-size-bytes", 0u32)
        .property("max-size-time", max_time.as_nanos() as u64)
        .build()
        .map_err(internal)
}

fn audio_caps(a: &AudioFormat) -> gst::Caps {
    gst::Caps::builder("audio/x-raw")
        .field("format", "F32LE")
        .field("layout", "interleaved")
        .field("rate", a.rate as i32)
        .field("channels", a.channels as i32)
        .build()
}

fn add_chain(bin: &gst::Bin, chain: &[gst::Element]) -> Result<(), OutputError> {
    bin.add_many(chain).map_err(internal)?;
    gst::Element::link_many(chain)
        .map_err(|e| OutputError::Internal(format!("cannot link the output chain: {e}")))
}

fn ghost(bin: &gst::Bin, name: &str, first: &gst::Element) -> Result<gst::Pad, OutputError> {
    let target = first
        .static_pad("sink")
        .ok_or_else(|| internal("no sink pad"))?;
    let pad = gst::GhostPad::builder_with_target(&target)
        .map_err(internal)?
        .name(name)
        .build();
    bin.add_pad(&pad).map_err(internal)?;
    Ok(pad.upcast())
}

fn path_str(path: &Path) -> Result<&str, OutputError> {
    path.to_str().ok_or_else(|| OutputError::WriteFailed {
        path: path.display().to_string(),
        detail: "the path is not valid UTF-8".into(),
    })
}

fn check_formats(
    profile: &OutputProfile,
    video: Option<&VideoFormat>,
    audio: Option<&AudioFormat>,
) -> Result<(), OutputError> {
    match (&profile.video, video) {
        (Some(_), None) => {
            return Err(OutputError::InvalidFormat(
                "the profile has video: a video format is needed".into(),
            ));
        }
        (None, Some(_)) => {
            return Err(OutputError::InvalidFormat(
                "the profile has no video stream".into(),
            ));
        }
        (Some(s), Some(v)) => {
            if v.width < 2 || v.height < 2 || v.fps_num == 0 || v.fps_den == 0 {
                return Err(OutputError::InvalidFormat(format!(
                    "{}x{} at {}/{} fps is not a video format",
                    v.width, v.height, v.fps_num, v.fps_den
                )));
            }
            if s.codec.needs_even_size() && (v.width % 2 != 0 || v.height % 2 != 0) {
                return Err(OutputError::InvalidFormat(format!(
                    "{} needs even sizes, not {}x{}",
                    s.codec.name(),
                    v.width,
                    v.height
                )));
            }
        }
        (None, None) => {}
    }
    match (&profile.audio, audio) {
        (Some(_), None) => Err(OutputError::InvalidFormat(
            "the profile has audio: an audio format is needed".into(),
        )),
        (None, Some(_)) => Err(OutputError::InvalidFormat(
            "the profile has no audio stream".into(),
        )),
        (Some(s), Some(a)) => {
            if !s.codec.supports_rate(a.rate)
                || a.channels == 0
                || a.channels > s.codec.max_channels()
            {
                Err(OutputError::InvalidFormat(format!(
                    "{} cannot carry {} Hz with {} channels",
                    s.codec.name(),
                    a.rate,
                    a.channels
                )))
            } else {
                Ok(())
            }
        }
        (None, None) => Ok(()),
    }
}

/// Builds the output for `profile`. `video`/`audio` are the formats the renderer delivers
/// (from [`OutputProfile::resolve`]); `encoder` is the profile's primary encoder (the video
/// encoder, or the audio encoder of an audio-only profile) from
/// [`candidates`](super::encoders::candidates). The audio encoder of a video profile is the
/// first installed software one.
pub fn output_bin(
    profile: &OutputProfile,
    video: Option<&VideoFormat>,
    audio: Option<&AudioFormat>,
    encoder: &EncoderCandidate,
    path: &Path,
) -> Result<OutputBin, OutputError> {
    profile.validate()?;
    check_formats(profile, video, audio)?;
    crate::elements::inventory().map_err(internal)?;
    let primary = encoders::primary_codec(profile);
    if primary != Some(encoder.codec) {
        return Err(OutputError::EncoderUnavailable {
            codec: primary.map_or("none", Codec::name).into(),
            detail: format!(
                "{} encodes {}, not what the profile needs",
                encoder.element,
                encoder.codec.name()
            ),
        });
    }
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty())
        && !parent.is_dir()
    {
        return Err(OutputError::WriteFailed {
            path: path.display().to_string(),
            detail: "its directory does not exist".into(),
        });
    }
    let location = path_str(path)?.to_owned();

    // Auto-named: a pipeline may hold several outputs (a render and its poster).
    let bin = gst::Bin::new();
    let mut out = OutputBin {
        bin: bin.clone(),
        video_sink: None,
        audio_sink: None,
        video_encoder: None,
        audio_encoder: None,
        encoder_kind: encoder.kind,
        path: path.to_owned(),
        frames: Arc::new(AtomicU64::new(0)),
        still_at: None,
        animated: None,
        side_files: Vec::new(),
    };

    let container = profile.container;
    // The muxer, when the container has one; its src goes to the file.
    let mux = match container {
        Container::Mp4 | Container::M4a => {
            let mux = make("mp4mux", Some("mux"))?;
            // Index first, so browsers play and seek before the whole file arrives. The mdat
            // is staged in a side file on the output's own filesystem, not in /tmp.
            let side = PathBuf::from(format!("{location}.faststart"));
            mux.set_property("faststart", true);
            mux.set_property("faststart-file", path_str(&side)?);
            out.side_files.push(side);
            Some(mux)
        }
        Container::Mov => Some(make("qtmux", Some("mux"))?),
        Container::Webm => Some(make("webmmux", Some("mux"))?),
        _ => None,
    };
    let needs_filesink = !matches!(container, Container::Gif | Container::Webp);
    let filesink = if needs_filesink {
        let sink = gst::ElementFactory::make("filesink")
            .name("sink")
            .property("location", location.as_str())
            .build()
            .map_err(internal)?;
        bin.add(&sink).map_err(internal)?;
        Some(sink)
    } else {
        None
    };
    if let (Some(mux), Some(sink)) = (&mux, &filesink) {
        bin.add(mux).map_err(internal)?;
        mux.link(sink).map_err(internal)?;
    }
    // Where an encoded stream goes: a request pad of the muxer, or the file directly.
    let downstream = |kind: &str| -> Result<gst::Pad, OutputError> {
        match (&mux, &filesink) {
            (Some(mux), _) => mux
                .request_pad_simple(&format!("{kind}_%u"))
                .ok_or_else(|| internal(format!("the muxer refused a {kind} stream"))),
            (None, Some(sink)) => sink
                .static_pad("sink")
                .ok_or_else(|| internal("filesink without a sink pad")),
            (None, None) => Err(internal("no destination")),
        }
    };

    if let (Some(settings), Some(format)) = (&profile.video, video) {
        let eff = settings.effective(format.fps());
        let entry = capsfilter(raw_video_caps("I420", format))?;
        let mut chain = vec![entry.clone()];
        match settings.codec {
            VideoCodec::Gif | VideoCodec::Webp => {
                // Frames are copied out to a Rust encoder; the queue lets it lag a little
                // without stalling the compositor.
                chain.push(queue(4, Duration::ZERO)?);
                chain.push(encoders::videoconvert()?);
                chain.push(capsfilter(raw_video_caps("RGBA", format))?);
                let sink = gst_app::AppSink::builder()
                    .name("sink")
                    .sync(false)
                    .max_buffers(4)
                    .build();
                let writer = AnimatedWriter::start(
                    &sink,
                    settings.codec,
                    format,
                    eff.quality,
                    eff.speed,
                    path,
                    out.frames.clone(),
                )?;
                out.animated = Some(writer);
                chain.push(sink.upcast());
                add_chain(&bin, &chain)?;
            }
            _ => {
                let built = encoders::video_encoder_chain(encoder, &eff, format)?;
                if settings.codec.is_still() {
                    out.still_at = Some(eff.at_secs);
                    gate_one_frame(&entry, eff.at_secs, format.frame_ns());
                } else {
                    // Raw frames are large: two or three are enough to decouple the threads.
                    chain.push(queue(3, Duration::ZERO)?);
                }
                count_frames(&built.encoder, out.frames.clone());
                chain.extend(built.elements);
                add_chain(&bin, &chain)?;
                let last = chain.last().ok_or_else(|| internal("empty chain"))?;
                let src = last
                    .static_pad("src")
                    .ok_or_else(|| internal("no src pad"))?;
                src.link(&downstream("video")?)
                    .map_err(|e| internal(format!("cannot link video to the muxer: {e:?}")))?;
            }
        }
        out.video_encoder = Some(encoder.element.clone());
        out.video_sink = Some(ghost(&bin, "video_sink", &entry)?);
    }

    if let (Some(settings), Some(format)) = (&profile.audio, audio) {
        // A video profile's audio encoder is ours to pick; an audio-only profile's is the
        // caller's, unless it cannot carry the channels the timeline resolved to (candidates
        // are listed before the channel count is known).
        let candidate = if profile.video.is_some()
            || encoders::max_channels(&encoder.element) < format.channels
        {
            encoders::audio_encoder_for(settings, format.channels)?
        } else {
            encoder.clone()
        };
        let entry = capsfilter(audio_caps(format))?;
        // Generous in time: the video encoder's lookahead holds video back for a second or
        // so, and the muxer needs both streams to progress; a short audio queue would stall
        // the renderer's audio and with it the shared demuxers upstream.
        let mut chain = vec![entry.clone(), queue(0, Duration::from_secs(5))?];
        chain.push(make("audioconvert", None)?);
        chain.push(make("audioresample", None)?);
        let mut target = gst::Caps::builder("audio/x-raw")
            .field("rate", format.rate as i32)
            .field("channels", format.channels as i32);
        if matches!(settings.codec, AudioCodec::Pcm | AudioCodec::Flac) {
            let depth = settings.effective_bit_depth();
            target = target
                .field("format", if depth == 24 { "S24LE" } else { "S16LE" })
                .field("layout", "interleaved");
        }
        chain.push(capsfilter(target.build())?);
        if let Some(enc) = encoders::audio_encoder(&candidate, settings)? {
            chain.push(enc);
        }
        if container == Container::Wav {
            chain.push(make("wavenc", Some("mux"))?);
        }
        add_chain(&bin, &chain)?;
        let last = chain.last().ok_or_else(|| internal("empty chain"))?;
        let src = last
            .static_pad("src")
            .ok_or_else(|| internal("no src pad"))?;
        src.link(&downstream("audio")?)
            .map_err(|e| internal(format!("cannot link audio to the muxer: {e:?}")))?;
        out.audio_encoder = Some(candidate.element.clone());
        out.audio_sink = Some(ghost(&bin, "audio_sink", &entry)?);
    }
    tracing::debug!(
        profile = profile.name.as_deref().unwrap_or("custom"),
        video_encoder = out.video_encoder.as_deref(),
        audio_encoder = out.audio_encoder.as_deref(),
        path = %path.display(),
        "output bin built"
    );
    Ok(out)
}

/// Counts buffers entering the encoder, for the report.
fn count_frames(encoder: &gst::Element, frames: Arc<AtomicU64>) {
    if let Some(pad) = encoder.static_pad("sink") {
        pad.add_probe(gst::PadProbeType::BUFFER, move |_, _| {
            frames.fetch_add(1, Ordering::Relaxed);
            gst::PadProbeReturn::Ok
        });
    }
}

/// Lets through only the frame showing at `at_secs` (stream time); earlier ones are dropped
/// before any conversion. The still encoders run with `snapshot=true`, so after that frame they
/// answer EOS upstream and the render stops.
fn gate_one_frame(entry: &gst::Element, at_secs: f64, frame_ns: u64) {
    let Some(pad) = entry.static_pad("src") else {
        return;
    };
    let at_ns = (at_secs * 1e9).round() as u64;
    let taken = AtomicBool::new(false);
    pad.add_probe(gst::PadProbeType::BUFFER, move |pad, info| {
        if taken.load(Ordering::Acquire) {
            return gst::PadProbeReturn::Drop;
        }
        let Some(buffer) = info.buffer() else {
            return gst::PadProbeReturn::Ok;
        };
        let Some(pts) = buffer.pts() else {
            return gst::PadProbeReturn::Drop;
        };
        let start = pad
            .sticky_event::<gst::event::Segment>(0)
            .and_then(|ev| {
                ev.segment()
                    .downcast_ref::<gst::ClockTime>()
                    .and_then(|s| s.to_stream_time(pts))
            })
            .unwrap_or(pts)
            .nseconds();
        let dur = buffer.duration().map_or(frame_ns, |d| d.nseconds()).max(1);
        if start + dur <= at_ns {
            return gst::PadProbeReturn::Drop;
        }
        taken.store(true, Ordering::Release);
        gst::PadProbeReturn::Ok
    });
}

impl OutputBin {
    /// Maps an error message from the bus to an output error when it comes from inside this
    /// bin; `None` for errors elsewhere in the pipeline.
    pub fn classify_error(&self, err: &gst::message::Error) -> Option<OutputError> {
        let src = err.src()?;
        let inside = src == self.bin.upcast_ref::<gst::Object>() || src.has_as_ancestor(&self.bin);
        if !inside {
            return None;
        }
        let detail = format!(
            "{}{}",
            err.error(),
            err.debug()
                .and_then(|d| d.lines().next().map(|l| format!(" ({l})")))
                .unwrap_or_default()
        );
        Some(match src.name().as_str() {
            "video-encoder" => OutputError::EncoderFailed {
                element: self.video_encoder.clone().unwrap_or_default(),
                hardware: self.encoder_kind.is_hardware(),
                detail,
            },
            "audio-encoder" => OutputError::EncoderFailed {
                element: self.audio_encoder.clone().unwrap_or_default(),
                hardware: false,
                detail,
            },
            "mux" => OutputError::MuxFailed(detail),
            "sink" => OutputError::WriteFailed {
                path: self.path.display().to_string(),
                detail,
            },
            _ => OutputError::Internal(format!("{}: {detail}", src.name())),
        })
    }

    /// After EOS (and the pipeline set to `Null`): waits for the Rust encoders, checks the
    /// file, removes side files, and reports.
    pub fn finish(mut self) -> Result<OutputReport, OutputError> {
        self.remove_side_files();
        let frames_in = self.frames.load(Ordering::Relaxed);
        if let Some(writer) = self.animated.take() {
            writer.finish()?;
        }
        if let Some(at_secs) = self.still_at
            && frames_in == 0
        {
            let _ = std::fs::remove_file(&self.path);
            return Err(OutputError::NoFrame { at_secs });
        }
        let bytes = std::fs::metadata(&self.path)
            .map_err(|e| OutputError::WriteFailed {
                path: self.path.display().to_string(),
                detail: e.to_string(),
            })?
            .len();
        if bytes == 0 {
            return Err(OutputError::WriteFailed {
                path: self.path.display().to_string(),
                detail: "nothing was written".into(),
            });
        }
        Ok(OutputReport {
            path: self.path.clone(),
            bytes,
            video_frames: self.frames.load(Ordering::Relaxed),
            video_encoder: self.video_encoder.clone(),
            audio_encoder: self.audio_encoder.clone(),
            hardware: self.encoder_kind.is_hardware(),
        })
    }

    /// After a failure: stops the Rust encoders and removes the partial output.
    pub fn abort(mut self) {
        if let Some(w) = self.animated.take() {
            w.abort.store(true, Ordering::Release);
        }
        self.remove_side_files();
        let _ = std::fs::remove_file(&self.path);
    }

    fn remove_side_files(&self) {
        for f in &self.side_files {
            match std::fs::remove_file(f) {
                Ok(()) => tracing::debug!(file = %f.display(), "removed a leftover side file"),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    tracing::warn!(file = %f.display(), error = %e, "cannot remove side file")
                }
            }
        }
    }
}

/// Runs `pipeline` (which holds `output`) to EOS within `timeout`, then sets it to `Null`.
/// Errors from inside the output bin come back classified.
pub fn run_to_eos(
    pipeline: &gst::Pipeline,
    output: &OutputBin,
    timeout: Duration,
) -> Result<(), OutputError> {
    let result = (|| {
        let bus = pipeline.bus().ok_or_else(|| internal("no bus"))?;
        // A failed state change carries no detail: the error message on the bus does.
        let _ = pipeline.set_state(gst::State::Playing);
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(OutputError::TimedOut(timeout.as_secs()));
            }
            let Some(msg) = bus.timed_pop(gst::ClockTime::from_mseconds(left.as_millis() as u64))
            else {
                continue;
            };
            match msg.view() {
                gst::MessageView::Eos(_) => return Ok(()),
                gst::MessageView::Error(e) => {
                    return Err(output.classify_error(e).unwrap_or_else(|| {
                        OutputError::Pipeline(format!(
                            "{}: {}{}",
                            e.src().map(|s| s.name().to_string()).unwrap_or_default(),
                            e.error(),
                            e.debug()
                                .and_then(|d| d.lines().next().map(|l| format!(" ({l})")))
                                .unwrap_or_default()
                        ))
                    }));
                }
                _ => {}
            }
        }
    })();
    let _ = pipeline.set_state(gst::State::Null);
    result
}

/// One encode of a test pattern through [`output_bin`]: what `nve-worker selftest` runs for
/// each encoder. `seconds` of `videotestsrc`/`audiotestsrc` at the formats `profile` resolves
/// to against `base`; stills get enough frames to reach their `at_secs`.
pub fn test_encode(
    profile: &OutputProfile,
    encoder: &EncoderCandidate,
    base: &BaseFormat,
    seconds: f64,
    path: &Path,
    timeout: Duration,
) -> Result<(OutputReport, Duration), OutputError> {
    let formats = profile.resolve(base)?;
    let out = output_bin(
        profile,
        formats.video.as_ref(),
        formats.audio.as_ref(),
        encoder,
        path,
    )?;
    let pipeline = gst::Pipeline::new();
    let started = Instant::now();
    let built = (|| {
        pipeline.add(&out.bin).map_err(internal)?;
        if let (Some(v), Some(pad)) = (&formats.video, &out.video_sink) {
            let mut frames = (seconds * v.fps()).round().max(1.0);
            if let Some(at) = profile.video.as_ref().and_then(|s| s.at_secs) {
                frames = frames.max((at * v.fps()).ceil() + 1.0);
            }
            let src = gst::ElementFactory::make("videotestsrc")
                .property("num-buffers", frames as i32)
                .property_from_str("pattern", "ball")
                .build()
                .map_err(internal)?;
            let caps = capsfilter(raw_video_caps("I420", v))?;
            pipeline.add_many([&src, &caps]).map_err(internal)?;
            src.link(&caps).map_err(internal)?;
            caps.static_pad("src")
                .ok_or_else(|| internal("no src pad"))?
                .link(pad)
                .map_err(|e| internal(format!("video link: {e:?}")))?;
        }
        if let (Some(a), Some(pad)) = (&formats.audio, &out.audio_sink) {
            // 10 ms buffers, so the length is exact.
            let per_buffer = (a.rate / 100).max(1);
            let src = gst::ElementFactory::make("audiotestsrc")
                .property("num-buffers", (seconds * 100.0).round().max(1.0) as i32)
                .property("samplesperbuffer", per_buffer as i32)
                .property("volume", 0.3f64)
                .build()
                .map_err(internal)?;
            let caps = capsfilter(audio_caps(a))?;
            pipeline.add_many([&src, &caps]).map_err(internal)?;
            src.link(&caps).map_err(internal)?;
            caps.static_pad("src")
                .ok_or_else(|| internal("no src pad"))?
                .link(pad)
                .map_err(|e| internal(format!("audio link: {e:?}")))?;
        }
        Ok::<(), OutputError>(())
    })();
    if let Err(e) = built {
        let _ = pipeline.set_state(gst::State::Null);
        out.abort();
        return Err(e);
    }
    match run_to_eos(&pipeline, &out, timeout) {
        Ok(()) => {
            let report = out.finish()?;
            Ok((report, started.elapsed()))
        }
        Err(e) => {
            out.abort();
            Err(e)
        }
    }
}

/// The thread that turns RGBA frames from an appsink into an animated GIF or WebP file.
struct AnimatedWriter {
    thread: Option<JoinHandle<Result<u64, OutputError>>>,
    abort: Arc<AtomicBool>,
    eos: Arc<AtomicBool>,
}

impl Drop for AnimatedWriter {
    fn drop(&mut self) {
        // The thread polls this; a bin dropped without finish must not leave it behind.
        self.abort.store(true, Ordering::Release);
    }
}

/// One frame as it left the pipeline: RGBA, with its timing in nanoseconds.
struct RgbaFrame {
    buffer: gst::Buffer,
}

trait AnimationEncoder {
    /// `start_ns`/`end_ns` relative to the first frame.
    fn frame(&mut self, rgba: &[u8], start_ns: u64, end_ns: u64) -> Result<(), OutputError>;
    fn finish(self: Box<Self>, end_ns: u64) -> Result<(), OutputError>;
}

impl AnimatedWriter {
    fn start(
        sink: &gst_app::AppSink,
        codec: VideoCodec,
        format: &VideoFormat,
        quality: Option<u32>,
        speed: Speed,
        path: &Path,
        frames: Arc<AtomicU64>,
    ) -> Result<Self, OutputError> {
        let (tx, rx) = std::sync::mpsc::sync_channel::<RgbaFrame>(4);
        let abort = Arc::new(AtomicBool::new(false));
        let eos = Arc::new(AtomicBool::new(false));
        let failed: Arc<Mutex<Option<String>>> = Arc::default();
        let sender: Arc<Mutex<Option<SyncSender<RgbaFrame>>>> = Arc::new(Mutex::new(Some(tx)));
        let eos_sender = sender.clone();
        let eos_flag = eos.clone();
        let failed_cb = failed.clone();
        sink.set_callbacks(
            gst_app::AppSinkCallbacks::builder()
                .new_sample(move |sink| {
                    let sample = sink.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                    let Some(buffer) = sample.buffer_owned() else {
                        return Ok(gst::FlowSuccess::Ok);
                    };
                    let tx = sender.lock().ok().and_then(|g| g.clone());
                    let sent = tx.is_some_and(|tx| tx.send(RgbaFrame { buffer }).is_ok());
                    if sent {
                        Ok(gst::FlowSuccess::Ok)
                    } else {
                        // The writer thread stopped: it failed. Say why on the bus.
                        let why = failed_cb
                            .lock()
                            .ok()
                            .and_then(|g| g.clone())
                            .unwrap_or_else(|| "the encoder stopped".into());
                        gst::element_error!(sink, gst::ResourceError::Write, ["{}", why]);
                        Err(gst::FlowError::Error)
                    }
                })
                .eos(move |_| {
                    eos_flag.store(true, Ordering::Release);
                    if let Ok(mut g) = eos_sender.lock() {
                        g.take();
                    }
                })
                .build(),
        );
        let (w, h) = (format.width, format.height);
        let path = path.to_owned();
        let abort_t = abort.clone();
        let eos_t = eos.clone();
        let thread = std::thread::Builder::new()
            .name(format!("nve-{}-writer", codec.name()))
            .spawn(move || {
                let result = (|| {
                    let enc: Box<dyn AnimationEncoder> = match codec {
                        VideoCodec::Gif => Box::new(GifWriter::new(&path, w, h, speed)?),
                        _ => Box::new(WebpWriter::new(&path, w, h, quality.unwrap_or(75))?),
                    };
                    pump(rx, enc, w, h, &abort_t, &eos_t, &frames)
                })();
                if let Err(e) = &result {
                    if let Ok(mut g) = failed.lock() {
                        *g = Some(e.to_string());
                    }
                    let _ = std::fs::remove_file(&path);
                }
                result
            })
            .map_err(internal)?;
        Ok(AnimatedWriter {
            thread: Some(thread),
            abort,
            eos,
        })
    }

    fn finish(mut self) -> Result<u64, OutputError> {
        // EOS reaches the bus right after the appsink's callback; allow a moment for it.
        let deadline = Instant::now() + Duration::from_secs(2);
        while !self.eos.load(Ordering::Acquire) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        if !self.eos.load(Ordering::Acquire) {
            self.abort.store(true, Ordering::Release);
        }
        match self.thread.take() {
            Some(t) => t
                .join()
                .map_err(|_| internal("the animation writer panicked"))?,
            None => Err(OutputError::Incomplete),
        }
    }
}

fn pump(
    rx: Receiver<RgbaFrame>,
    mut enc: Box<dyn AnimationEncoder>,
    w: u32,
    h: u32,
    abort: &AtomicBool,
    eos: &AtomicBool,
    frames: &AtomicU64,
) -> Result<u64, OutputError> {
    let need = (w as usize) * (h as usize) * 4;
    let mut first: Option<u64> = None;
    let mut end = 0u64;
    loop {
        match rx.recv_timeout(Duration::from_millis(100)) {
            Ok(f) => {
                let pts = f.buffer.pts().map_or(0, |t| t.nseconds());
                let base = *first.get_or_insert(pts);
                let start = pts.saturating_sub(base);
                let dur = f.buffer.duration().map_or(0, |d| d.nseconds());
                end = end.max(start + dur.max(1));
                let map = f.buffer.map_readable().map_err(internal)?;
                if map.len() < need {
                    return Err(internal(format!(
                        "a {}-byte frame where {w}x{h} RGBA needs {need}",
                        map.len()
                    )));
                }
                enc.frame(&map[..need], start, end)?;
                frames.fetch_add(1, Ordering::Relaxed);
            }
            Err(RecvTimeoutError::Timeout) => {
                if abort.load(Ordering::Acquire) {
                    return Err(OutputError::Incomplete);
                }
            }
            Err(RecvTimeoutError::Disconnected) => break,
        }
    }
    if !eos.load(Ordering::Acquire) || first.is_none() {
        return Err(if first.is_none() {
            OutputError::NoFrame { at_secs: 0.0 }
        } else {
            OutputError::Incomplete
        });
    }
    enc.finish(end)?;
    Ok(frames.load(Ordering::Relaxed))
}

fn write_failed(path: &Path, e: impl std::fmt::Display) -> OutputError {
    OutputError::WriteFailed {
        path: path.display().to_string(),
        detail: e.to_string(),
    }
}

/// GIF via the `gif` crate: each frame quantised to its own 256-colour palette (NeuQuant).
/// Identical consecutive frames are merged into one longer frame, so still passages cost
/// nothing; delays are whole centiseconds, rounded on the running total so none drift.
struct GifWriter {
    encoder: gif::Encoder<std::io::BufWriter<std::fs::File>>,
    path: PathBuf,
    width: u16,
    height: u16,
    speed: i32,
    /// The frame waiting for its end time, and its start in centiseconds.
    pending: Option<(Vec<u8>, u64)>,
}

fn centis(ns: u64) -> u64 {
    (ns + 5_000_000) / 10_000_000
}

impl GifWriter {
    fn new(path: &Path, w: u32, h: u32, speed: Speed) -> Result<Self, OutputError> {
        let (width, height) = (
            u16::try_from(w).map_err(|_| internal("GIF width over 65535"))?,
            u16::try_from(h).map_err(|_| internal("GIF height over 65535"))?,
        );
        let file = std::fs::File::create(path).map_err(|e| write_failed(path, e))?;
        let mut encoder = gif::Encoder::new(std::io::BufWriter::new(file), width, height, &[])
            .map_err(|e| write_failed(path, e))?;
        encoder
            .set_repeat(gif::Repeat::Infinite)
            .map_err(|e| write_failed(path, e))?;
        // NeuQuant's sampling factor: 1 is best and slowest, 30 fastest.
        let speed = match speed {
            Speed::Ultrafast => 30,
            Speed::Superfast => 25,
            Speed::Veryfast => 20,
            Speed::Faster => 15,
            Speed::Fast => 12,
            Speed::Medium => 10,
            Speed::Slow => 5,
            Speed::Slower => 3,
            Speed::Veryslow => 1,
        };
        Ok(GifWriter {
            encoder,
            path: path.to_owned(),
            width,
            height,
            speed,
            pending: None,
        })
    }

    fn flush_pending(&mut self, until_cs: u64) -> Result<(), OutputError> {
        let Some((mut rgba, start_cs)) = self.pending.take() else {
            return Ok(());
        };
        let mut frame = gif::Frame::from_rgba_speed(self.width, self.height, &mut rgba, self.speed);
        frame.delay = u16::try_from(until_cs.saturating_sub(start_cs).max(1)).unwrap_or(u16::MAX);
        self.encoder
            .write_frame(&frame)
            .map_err(|e| write_failed(&self.path, e))
    }
}

impl AnimationEncoder for GifWriter {
    fn frame(&mut self, rgba: &[u8], start_ns: u64, _end_ns: u64) -> Result<(), OutputError> {
        let start_cs = centis(start_ns);
        if let Some((prev, prev_cs)) = &self.pending {
            // Same picture, or a frame that rounds onto the previous one's centisecond.
            if prev.as_slice() == rgba || start_cs <= *prev_cs {
                return Ok(());
            }
        }
        self.flush_pending(start_cs)?;
        self.pending = Some((rgba.to_vec(), start_cs));
        Ok(())
    }

    fn finish(mut self: Box<Self>, end_ns: u64) -> Result<(), OutputError> {
        self.flush_pending(centis(end_ns))?;
        let GifWriter { encoder, path, .. } = *self;
        let mut out = encoder.into_inner().map_err(|e| write_failed(&path, e))?;
        std::io::Write::flush(&mut out).map_err(|e| write_failed(&path, e))?;
        out.get_ref().sync_all().map_err(|e| write_failed(&path, e))
    }
}

/// Animated WebP via libwebp's animation encoder (which merges unchanged areas and frames).
struct WebpWriter {
    encoder: webp_animation::Encoder,
    path: PathBuf,
    last_ms: Option<i32>,
}

fn millis(ns: u64) -> i32 {
    i32::try_from((ns + 500_000) / 1_000_000).unwrap_or(i32::MAX)
}

impl WebpWriter {
    fn new(path: &Path, w: u32, h: u32, quality: u32) -> Result<Self, OutputError> {
        let options = webp_animation::EncoderOptions {
            encoding_config: Some(webp_animation::EncodingConfig {
                encoding_type: webp_animation::EncodingType::new_lossy(),
                quality: quality.min(100) as f32,
                method: 4,
            }),
            ..Default::default()
        };
        let encoder = webp_animation::Encoder::new_with_options((w, h), options)
            .map_err(|e| internal(format!("libwebp: {e:?}")))?;
        // Fail early on an unwritable path rather than after the whole render.
        std::fs::File::create(path).map_err(|e| write_failed(path, e))?;
        Ok(WebpWriter {
            encoder,
            path: path.to_owned(),
            last_ms: None,
        })
    }
}

impl AnimationEncoder for WebpWriter {
    fn frame(&mut self, rgba: &[u8], start_ns: u64, _end_ns: u64) -> Result<(), OutputError> {
        let ms = millis(start_ns);
        // libwebp needs strictly increasing millisecond timestamps.
        if self.last_ms.is_some_and(|l| ms <= l) {
            return Ok(());
        }
        self.encoder
            .add_frame(rgba, ms)
            .map_err(|e| internal(format!("libwebp: {e:?}")))?;
        self.last_ms = Some(ms);
        Ok(())
    }

    fn finish(self: Box<Self>, end_ns: u64) -> Result<(), OutputError> {
        let WebpWriter {
            encoder,
            path,
            last_ms,
        } = *self;
        let end = millis(end_ns).max(last_ms.unwrap_or(0) + 1);
        let data = encoder
            .finalize(end)
            .map_err(|e| internal(format!("libwebp: {e:?}")))?;
        std::fs::write(&path, &*data).map_err(|e| write_failed(&path, e))
    }
}

/// A profile that exercises one encoder on its own, for self-tests: the codec's preset
/// (audio codecs: their audio-only preset; Opus: audio-only WebM).
pub fn test_profile(codec: Codec) -> OutputProfile {
    let name = match codec {
        Codec::Video(v) => v.name(),
        Codec::Audio(AudioCodec::Aac) => "aac",
        Codec::Audio(AudioCodec::Mp3) => "mp3",
        Codec::Audio(AudioCodec::Flac) => "flac",
        Codec::Audio(AudioCodec::Pcm) => "wav",
        Codec::Audio(AudioCodec::Opus) => {
            return OutputProfile {
                name: Some("opus".into()),
                container: Container::Webm,
                video: None,
                audio: OutputProfile::preset("vp9").ok().and_then(|p| p.audio),
            };
        }
    };
    OutputProfile::preset(name).unwrap_or_else(|_| OutputProfile {
        name: None,
        container: Container::Wav,
        video: None,
        audio: OutputProfile::preset("wav").ok().and_then(|p| p.audio),
    })
}

/// Names that tell a user which element a PCM or Rust-written output used.
pub fn describe_element(element: &str) -> &str {
    match element {
        RUST_GIF => "gif crate (Rust)",
        RUST_WEBP => "libwebp animation encoder",
        PCM => "audioconvert (raw PCM)",
        e => e,
    }
}

/// Reads a finished file back and checks it is what `profile` promised (the codecs, a video
/// size, a duration); returns a one-line summary. GStreamer cannot read animated GIF/WebP, so
/// those are decoded with the same crates that wrote them.
pub fn verify_file(profile: &OutputProfile, path: &Path) -> Result<String, OutputError> {
    let verify = |m: String| OutputError::Verify(m);
    match profile.container {
        Container::Gif => {
            let file = std::fs::File::open(path).map_err(|e| verify(e.to_string()))?;
            let mut dec = gif::DecodeOptions::new()
                .read_info(std::io::BufReader::new(file))
                .map_err(|e| verify(format!("not a GIF: {e}")))?;
            let (w, h) = (dec.width(), dec.height());
            let (mut frames, mut centis) = (0u32, 0u64);
            while let Some(f) = dec
                .read_next_frame()
                .map_err(|e| verify(format!("a damaged GIF frame: {e}")))?
            {
                frames += 1;
                centis += u64::from(f.delay);
            }
            if frames == 0 {
                return Err(verify("the GIF has no frames".into()));
            }
            Ok(format!(
                "gif {w}x{h}, {frames} frames, {:.2} s",
                centis as f64 / 100.0
            ))
        }
        Container::Webp => {
            let data = std::fs::read(path).map_err(|e| verify(e.to_string()))?;
            let dec = webp_animation::Decoder::new(&data)
                .map_err(|e| verify(format!("not an animated WebP: {e:?}")))?;
            let (w, h) = dec.dimensions();
            let mut frames = 0u32;
            let mut end_ms = 0i32;
            for f in dec {
                frames += 1;
                end_ms = end_ms.max(f.timestamp());
            }
            if frames == 0 {
                return Err(verify("the WebP has no frames".into()));
            }
            Ok(format!(
                "webp {w}x{h}, {frames} frames, {:.2} s",
                f64::from(end_ms) / 1000.0
            ))
        }
        _ => {
            let r = crate::probe::probe(path, Duration::from_secs(30))
                .map_err(|e| verify(format!("{}: {}", e.code, e.message)))?;
            let mut parts = Vec::new();
            if let Some(v) = &profile.video {
                let s = r
                    .video
                    .first()
                    .ok_or_else(|| verify("no video stream".into()))?;
                if s.codec != v.codec.name() {
                    return Err(verify(format!(
                        "video is {}, not {}",
                        s.codec,
                        v.codec.name()
                    )));
                }
                parts.push(if s.is_image {
                    format!("{} {}x{}", s.codec, s.width, s.height)
                } else {
                    format!(
                        "{} {}x{} {}/{}",
                        s.codec, s.width, s.height, s.fps_num, s.fps_den
                    )
                });
            }
            if let Some(a) = &profile.audio {
                let s = r
                    .audio
                    .first()
                    .ok_or_else(|| verify("no audio stream".into()))?;
                if s.codec != a.codec.name() {
                    return Err(verify(format!(
                        "audio is {}, not {}",
                        s.codec,
                        a.codec.name()
                    )));
                }
                parts.push(format!(
                    "{} {} Hz {} ch",
                    s.codec, s.sample_rate, s.channels
                ));
            }
            if let Some(d) = r.duration {
                parts.push(format!("{d:.2} s"));
            }
            Ok(parts.join(", "))
        }
    }
}
