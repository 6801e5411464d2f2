//! Browser proxies: a small H.264/AAC MP4 of an asset that any browser plays and seeks
//! (moov before mdat), upright, with square pixels, even dimensions and a bounded frame rate.
//!
//! One pipeline: `uridecodebin` → video branch (`queue ! videoscale ! videoconvert ! videoflip !
//! videorate ! capsfilter ! queue ! x264enc`) and audio branch (a copy of conforming AAC, or
//! `queue ! audioconvert ! audioresample ! capsfilter ! AAC encoder`) into `mp4mux faststart=true`.
//! The queues put decoding, scaling and encoding on separate threads; scaling happens first, at
//! the decoder's native format and full frame, so every later stage works on the small picture.
//!
//! The output size, rotation and frame rate depend on the decoded stream's caps *and* its
//! orientation tag, and the tag only arrives after the caps. So the video branch is linked to
//! the decoder lazily: a probe on the first queue's output records caps and tags while the pad
//! is still unlinked (sticky events are kept, not lost) and, at the first frame, configures the
//! scaler target, the flip and the frame rate and only then links. The encoder and the muxer
//! therefore see exactly one set of caps; a caps change after the muxer has its header is
//! refused by `mp4mux`.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use gst::prelude::*;
use gstreamer as gst;
use serde::{Deserialize, Serialize};

/// What to make. Every field has a default, so `{}` is a valid spec.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ProxySpec {
    /// Largest output height in pixels (after rotation). Smaller sources are not upscaled.
    pub max_height: u32,
    /// Highest output frame rate. A faster source is divided by the smallest whole number that
    /// brings it under (60 → 30, 50 → 25, 120 → 30), so the cadence stays even, unless that
    /// leaves less than three quarters of it (35 → 30, not 17.5).
    pub max_fps: u32,
    /// Average video bitrate (x264 ABR). x264enc also uses it as the VBV maximum rate.
    pub video_bitrate_kbps: u32,
    /// VBV buffer, in milliseconds at `video_bitrate_kbps`.
    pub vbv_buffer_ms: u32,
    /// Longest distance between keyframes, in seconds (seeking in the editor lands on these).
    pub keyframe_interval_secs: f64,
    /// x264 speed preset: `ultrafast`, `superfast`, `veryfast`, `faster`, `fast`, `medium`,
    /// `slow`, `slower`, `veryslow`.
    pub speed_preset: String,
    /// AAC bitrate when the audio has to be encoded.
    pub audio_bitrate_kbps: u32,
}

impl Default for ProxySpec {
    fn default() -> Self {
        ProxySpec {
            max_height: 540,
            max_fps: 30,
            video_bitrate_kbps: 1500,
            vbv_buffer_ms: 2000,
            keyframe_interval_secs: 2.0,
            speed_preset: "veryfast".into(),
            audio_bitrate_kbps: 128,
        }
    }
}

/// What was made.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProxyReport {
    pub width: u32,
    pub height: u32,
    pub fps_num: i32,
    pub fps_den: i32,
    /// False when the source has no audio track: the proxy then has none either.
    pub has_audio: bool,
    /// True when the source's AAC (stereo, 48 kHz, LC) was copied instead of re-encoded.
    pub audio_copied: bool,
    /// Seconds of video written.
    pub duration: f64,
    /// Size of the output file.
    pub bytes: u64,
}

/// Why no proxy was made. `code` is stable; `message` is for people.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct ProxyError {
    pub code: &'static str,
    pub message: String,
}

fn err(code: &'static str, message: impl Into<String>) -> ProxyError {
    ProxyError {
        code,
        message: message.into(),
    }
}

/// Codes a streaming thread may report through the bus (see [`post_failure`]).
const CODES: &[&str] = &[
    "not-decodable",
    "unsupported-codec",
    "no-video",
    "internal",
    "write-failed",
];

const PRESETS: &[&str] = &[
    "ultrafast",
    "superfast",
    "veryfast",
    "faster",
    "fast",
    "medium",
    "slow",
    "slower",
    "veryslow",
];

/// How long the video may stand still before the job is declared stuck. The worker's own
/// wall-clock limit still applies; this only turns a silent hang into an error sooner.
const STALL: Duration = Duration::from_secs(120);

/// Audio is copied when it already is what a proxy carries.
const AAC_CAPS: &str = "audio/mpeg, mpegversion=(int)4, stream-format=(string)raw";

fn validate(spec: &ProxySpec) -> Result<(), ProxyError> {
    let bad = |m: String| Err(err("invalid-spec", m));
    if spec.max_height < 2 {
        return bad(format!("max_height {} is below 2", spec.max_height));
    }
    if spec.max_fps == 0 {
        return bad("max_fps must be at least 1".into());
    }
    if spec.video_bitrate_kbps == 0 || spec.video_bitrate_kbps > 100_000 {
        return bad(format!(
            "video_bitrate_kbps {} is outside 1..=100000",
            spec.video_bitrate_kbps
        ));
    }
    if !(8..=320).contains(&spec.audio_bitrate_kbps) {
        return bad(format!(
            "audio_bitrate_kbps {} is outside 8..=320",
            spec.audio_bitrate_kbps
        ));
    }
    if spec.vbv_buffer_ms == 0 || spec.vbv_buffer_ms > 10_000 {
        return bad(format!(
            "vbv_buffer_ms {} is outside 1..=10000",
            spec.vbv_buffer_ms
        ));
    }
    if !(spec.keyframe_interval_secs > 0.0 && spec.keyframe_interval_secs <= 60.0) {
        return bad(format!(
            "keyframe_interval_secs {} is outside (0, 60]",
            spec.keyframe_interval_secs
        ));
    }
    // set_property_from_str panics on an unknown enum nick.
    if !PRESETS.contains(&spec.speed_preset.as_str()) {
        return bad(format!(
            "unknown speed_preset {:?} (one of {})",
            spec.speed_preset,
            PRESETS.join(", ")
        ));
    }
    Ok(())
}

/// The decoded stream as the first frame sees it.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Source {
    width: u32,
    height: u32,
    par_num: i32,
    par_den: i32,
    fps_num: i32,
    fps_den: i32,
    /// Clockwise degrees to turn the picture upright, and whether it is mirrored first.
    rotation: u32,
    flipped: bool,
}

/// What the video branch produces for a source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Plan {
    width: u32,
    height: u32,
    fps_num: i32,
    fps_den: i32,
    keyframe_interval: u32,
}

fn even(x: f64) -> u32 {
    // Saturating float → int; sizes are far below u32::MAX.
    ((x / 2.0).round() as u32).saturating_mul(2).max(2)
}

fn gcd(a: i64, b: i64) -> i64 {
    if b == 0 {
        a.abs().max(1)
    } else {
        gcd(b, a % b)
    }
}

fn plan(src: &Source, spec: &ProxySpec) -> Plan {
    let par = if src.par_num > 0 && src.par_den > 0 {
        f64::from(src.par_num) / f64::from(src.par_den)
    } else {
        1.0
    };
    // The displayed shape: stored width stretched by the pixel aspect, then turned.
    let (mut disp_w, mut disp_h) = (f64::from(src.width) * par, f64::from(src.height));
    if src.rotation % 180 == 90 {
        std::mem::swap(&mut disp_w, &mut disp_h);
    }
    let disp_w = disp_w.max(1.0);
    let disp_h = disp_h.max(1.0);
    // Never above the source; floor to even so an odd height (479) does not round up past it.
    let target_h = disp_h.min(f64::from(spec.max_height));
    let height = ((target_h as u32) & !1).max(2);
    let width = even(f64::from(height) * disp_w / disp_h);

    let (fps_num, fps_den) = if src.fps_num > 0 && src.fps_den > 0 {
        let (n, d) = (i64::from(src.fps_num), i64::from(src.fps_den));
        let max = i64::from(spec.max_fps);
        // Smallest whole divisor that brings the rate to max_fps or below: every k-th frame,
        // an even cadence. When that falls below three quarters of max_fps (35 → 17.5 for a
        // maximum of 30), cap at max_fps instead and let videorate drop unevenly.
        let k = if n <= max * d {
            1
        } else {
            (n + max * d - 1) / (max * d)
        };
        let (n, d) = if 4 * n < 3 * max * d * k {
            (max, 1)
        } else {
            (n, d * k)
        };
        let g = gcd(n, d);
        (
            i32::try_from(n / g).unwrap_or(i32::MAX),
            i32::try_from(d / g).unwrap_or(1),
        )
    } else {
        // Variable or unknown rate: the proxy is constant-rate at the maximum.
        (i32::try_from(spec.max_fps).unwrap_or(30), 1)
    };
    let fps = f64::from(fps_num) / f64::from(fps_den);
    let keyframe_interval = ((spec.keyframe_interval_secs * fps).round() as u32).max(1);
    Plan {
        width,
        height,
        fps_num,
        fps_den,
        keyframe_interval,
    }
}

/// `videoflip` direction that makes a picture with this orientation upright.
pub(crate) fn flip_direction(rotation: u32, flipped: bool) -> &'static str {
    match (rotation % 360, flipped) {
        (90, false) => "90r",
        (180, false) => "180",
        (270, false) => "90l",
        (0, true) => "horiz",
        (90, true) => "ul-lr",
        (180, true) => "vert",
        (270, true) => "ur-ll",
        _ => "identity",
    }
}

/// Rotation and mirroring from an `image-orientation` tag (`rotate-90`, `flip-rotate-0` …).
pub(crate) fn parse_orientation(value: &str) -> Option<(u32, bool)> {
    let (flipped, rest) = match value.strip_prefix("flip-") {
        Some(r) => (true, r),
        None => (false, value),
    };
    let degrees = rest.strip_prefix("rotate-")?.parse::<u32>().ok()?;
    Some((degrees % 360, flipped))
}

/// What a decoded video pad announces before its first frame: its caps, then (from the
/// demuxer, passed on by the decoder) the orientation tag.
#[derive(Default)]
pub(crate) struct Preamble {
    pub(crate) caps: Option<gst::Caps>,
    pub(crate) orientation: Option<(u32, bool)>,
}

impl Preamble {
    pub(crate) fn observe(&mut self, event: &gst::EventRef) {
        match event.view() {
            gst::EventView::Caps(c) => self.caps = Some(c.caps_owned()),
            gst::EventView::Tag(t) => {
                if let Some(v) = t.tag().get::<gst::tags::ImageOrientation>()
                    && let Some(o) = parse_orientation(v.get())
                {
                    self.orientation = Some(o);
                }
            }
            _ => {}
        }
    }
}

/// State shared between the caller's thread and GStreamer's streaming threads.
struct Shared {
    spec: ProxySpec,
    mux: gst::Element,
    video_pad_seen: AtomicBool,
    /// A video stream was found that no installed decoder handles.
    video_undecodable: AtomicBool,
    audio_pad_seen: AtomicBool,
    audio_copied: AtomicBool,
    plan: Mutex<Option<Plan>>,
    /// Stream time of the first and past-the-last video frame entering the encoder (ns).
    video_start: AtomicU64,
    video_end: AtomicU64,
    video_eos: AtomicBool,
    /// Source duration (ns), 0 while unknown.
    duration: AtomicU64,
}

/// Reports a failure found in a streaming thread through the bus, where the caller's loop
/// picks it up; an error returned from a signal handler would be lost.
fn post_failure(element: &gst::Element, code: &'static str, message: String) {
    tracing::debug!(code, %message, "proxy branch failed");
    let s = gst::Structure::builder("nve-proxy-failure")
        .field("code", code)
        .field("message", message)
        .build();
    let _ = element.post_message(gst::message::Application::builder(s).src(element).build());
}

fn make(factory: &str) -> Result<gst::Element, ProxyError> {
    gst::ElementFactory::make(factory)
        .build()
        .map_err(|e| err("internal", format!("cannot create {factory}: {e}")))
}

fn add_and_link(pipeline: &gst::Pipeline, chain: &[&gst::Element]) -> Result<(), ProxyError> {
    pipeline
        .add_many(chain.iter().copied())
        .map_err(|e| err("internal", e.to_string()))?;
    gst::Element::link_many(chain.iter().copied()).map_err(|e| err("internal", e.to_string()))?;
    // Downstream first, so nothing pushes into an element that is not running yet. A locked
    // element starts later, when it has been configured.
    for e in chain.iter().rev().filter(|e| !e.is_locked_state()) {
        e.sync_state_with_parent()
            .map_err(|e| err("internal", e.to_string()))?;
    }
    Ok(())
}

fn link_to_mux(shared: &Shared, from: &gst::Element, template: &str) -> Result<(), ProxyError> {
    let sink = shared
        .mux
        .request_pad_simple(template)
        .ok_or_else(|| err("internal", format!("mp4mux gave no {template} pad")))?;
    let src = from
        .static_pad("src")
        .ok_or_else(|| err("internal", "element without a src pad"))?;
    src.link(&sink)
        .map(|_| ())
        .map_err(|e| err("internal", format!("cannot link to the muxer: {e:?}")))
}

fn discard(pipeline: &gst::Pipeline, pad: &gst::Pad) -> Result<(), ProxyError> {
    let sink = gst::ElementFactory::make("fakesink")
        .property("sync", false)
        .property("async", false)
        .build()
        .map_err(|e| err("internal", e.to_string()))?;
    add_and_link(pipeline, &[&sink])?;
    let sinkpad = sink
        .static_pad("sink")
        .ok_or_else(|| err("internal", "fakesink without a pad"))?;
    pad.link(&sinkpad)
        .map(|_| ())
        .map_err(|e| err("internal", format!("{e:?}")))
}

/// Threads for the scaler: it is one of three stages sharing the cores with the decoder's and
/// x264's own threads, so a few are enough.
fn scaler_threads() -> u32 {
    std::thread::available_parallelism()
        .map(|n| n.get().min(4))
        .unwrap_or(2) as u32
}

/// Builds the video branch for a decoded pad; it is linked at the first frame.
fn video_branch(
    pipeline: &gst::Pipeline,
    shared: &Arc<Shared>,
    pad: &gst::Pad,
) -> Result<(), ProxyError> {
    let spec = &shared.spec;
    // Decoded frames are large: bound the queues by count, not by bytes or time.
    let q1 = gst::ElementFactory::make("queue")
        .property("max-size-buffers", 4u32)
        .property("max-size-bytes", 0u32)
        .property("max-size-time", 0u64)
        .build()
        .map_err(|e| err("internal", e.to_string()))?;
    // matrix-mode=none: the output is tagged with the source's colorimetry (below), so no
    // YUV matrix conversion is due; without it videoscale converts BT.709 → BT.601 on every
    // frame because an untagged 540p frame defaults to BT.601 (4× the cost of the scaling).
    // bilinear2 widens its kernel with the reduction, so 1080p → 540p is filtered, not aliased;
    // sharpness 1.5 narrows it to the width of an area average. Measured on clipA's frames
    // (SSIM against ffmpeg's area scaling): 0.999, against 0.993 at the default sharpness and
    // 0.988 for the 2-tap default method, at 0.8× the default sharpness' cost and below
    // ffmpeg's bicubic.
    let scale = gst::ElementFactory::make("videoscale")
        .property_from_str("method", "bilinear2")
        .property("sharpness", 1.5f64)
        .property_from_str("matrix-mode", "none")
        .property("n-threads", scaler_threads())
        .build()
        .map_err(|e| err("internal", e.to_string()))?;
    // Only converts when the decoder's format is not I420 (4:4:4, 10-bit …), on the small
    // picture since it sits after the scaler.
    let convert = gst::ElementFactory::make("videoconvert")
        .property_from_str("matrix-mode", "none")
        .property("n-threads", scaler_threads())
        .build()
        .map_err(|e| err("internal", e.to_string()))?;
    let flip = make("videoflip")?;
    let rate = make("videorate")?;
    let filter = make("capsfilter")?;
    let q2 = gst::ElementFactory::make("queue")
        .property("max-size-buffers", 8u32)
        .property("max-size-bytes", 0u32)
        .property("max-size-time", 0u64)
        .build()
        .map_err(|e| err("internal", e.to_string()))?;
    let enc = gst::ElementFactory::make("x264enc")
        .property("bitrate", spec.video_bitrate_kbps)
        .property("vbv-buf-capacity", spec.vbv_buffer_ms)
        .property_from_str("speed-preset", &spec.speed_preset)
        .build()
        .map_err(|e| err("internal", e.to_string()))?;
    // x264enc reads key-int-max only when it is not running, and the interval depends on the
    // frame rate known at the first frame: keep it stopped until then.
    enc.set_locked_state(true);
    add_and_link(
        pipeline,
        &[&scale, &convert, &flip, &rate, &filter, &q2, &enc],
    )?;
    pipeline
        .add(&q1)
        .map_err(|e| err("internal", e.to_string()))?;
    link_to_mux(shared, &enc, "video_%u")?;

    // The encoder's input tells how far the proxy has got and how long it is.
    if let Some(enc_sink) = enc.static_pad("sink") {
        let progress = Arc::clone(shared);
        enc_sink.add_probe(
            gst::PadProbeType::BUFFER | gst::PadProbeType::EVENT_DOWNSTREAM,
            move |_, info| {
                if let Some(buffer) = info.buffer() {
                    if let Some(pts) = buffer.pts() {
                        let end = pts + buffer.duration().unwrap_or(gst::ClockTime::ZERO);
                        progress
                            .video_start
                            .fetch_min(pts.nseconds(), Ordering::Relaxed);
                        progress
                            .video_end
                            .fetch_max(end.nseconds(), Ordering::Relaxed);
                    }
                } else if let Some(event) = info.event()
                    && event.type_() == gst::EventType::Eos
                {
                    progress.video_eos.store(true, Ordering::Relaxed);
                }
                gst::PadProbeReturn::Ok
            },
        );
    }

    let q1_sink = q1
        .static_pad("sink")
        .ok_or_else(|| err("internal", "queue without a sink pad"))?;
    let q1_src = q1
        .static_pad("src")
        .ok_or_else(|| err("internal", "queue without a src pad"))?;
    let scale_sink = scale
        .static_pad("sink")
        .ok_or_else(|| err("internal", "videoscale without a sink pad"))?;
    let seen = Mutex::new(Preamble::default());
    let linked = AtomicBool::new(false);
    let branch = Arc::clone(shared);
    let q1_weak = q1.downgrade();
    q1_src.add_probe(
        gst::PadProbeType::BUFFER
            | gst::PadProbeType::BUFFER_LIST
            | gst::PadProbeType::EVENT_DOWNSTREAM,
        move |pad, info| {
            if linked.load(Ordering::Acquire) {
                return gst::PadProbeReturn::Remove;
            }
            if let Some(event) = info.event() {
                if let Ok(mut seen) = seen.lock() {
                    seen.observe(event);
                }
                if event.type_() == gst::EventType::Eos
                    && let Some(q) = q1_weak.upgrade()
                {
                    post_failure(
                        &q,
                        "no-video",
                        "the video track has no decodable frames".into(),
                    );
                }
                return gst::PadProbeReturn::Ok;
            }
            // The first frame: caps and tags are all in.
            let (caps, orientation) = match seen.lock() {
                Ok(s) => (s.caps.clone(), s.orientation),
                Err(_) => (None, None),
            };
            let configured = configure(
                &branch,
                caps.as_ref(),
                orientation,
                &flip,
                &rate,
                &filter,
                &enc,
            );
            let result = configured.and_then(|()| {
                pad.link(&scale_sink)
                    .map(|_| ())
                    .map_err(|e| err("internal", format!("cannot link the video branch: {e:?}")))
            });
            linked.store(true, Ordering::Release);
            match result {
                Ok(()) => gst::PadProbeReturn::Remove,
                Err(e) => {
                    if let Some(q) = q1_weak.upgrade() {
                        post_failure(&q, e.code, e.message);
                    }
                    gst::PadProbeReturn::Drop
                }
            }
        },
    );
    pad.link(&q1_sink)
        .map(|_| ())
        .map_err(|e| err("internal", format!("cannot link the decoder: {e:?}")))?;
    q1.sync_state_with_parent()
        .map_err(|e| err("internal", e.to_string()))?;
    // The source's length, for progress; the demuxer answers through the decoder.
    if let Some(d) = q1_sink.peer_query_duration::<gst::ClockTime>() {
        shared.duration.store(d.nseconds(), Ordering::Relaxed);
    }
    Ok(())
}

/// The colorimetry a decoded YUV stream's values are in, to carry onto the scaled picture so
/// that nothing converts them and players show the same colours. GStreamer infers a missing
/// one from the frame height, which differs between a 1080p source (BT.709) and a 540p proxy
/// (BT.601): left implicit, videoscale converts the matrix on every frame (4× the cost of the
/// scaling itself) and the label then depends on the size. RGB and grey have no matrix: None.
pub(crate) fn source_colorimetry(s: &gst::StructureRef) -> Option<String> {
    // Only strings GStreamer itself writes (named, or `a:b:c:d`) are carried: anything else
    // would make the caps unparsable.
    if let Ok(c) = s.get::<&str>("colorimetry")
        && !c.is_empty()
        && c.chars().all(|ch| ch.is_ascii_alphanumeric() || ch == ':')
    {
        return Some(c.to_owned());
    }
    let format = s.get::<&str>("format").unwrap_or("");
    if format.is_empty()
        || format.contains("RGB")
        || format.contains("BGR")
        || format.contains("GBR")
        || format.starts_with("GRAY")
    {
        return None;
    }
    let height = s.get::<i32>("height").unwrap_or(0);
    Some(
        if height >= 2160 {
            "bt2020"
        } else if height > 576 {
            "bt709"
        } else {
            "bt601"
        }
        .to_owned(),
    )
}

/// Sets the branch up for the stream described by `caps` and the orientation tag.
fn configure(
    shared: &Shared,
    caps: Option<&gst::Caps>,
    orientation: Option<(u32, bool)>,
    flip: &gst::Element,
    rate: &gst::Element,
    filter: &gst::Element,
    enc: &gst::Element,
) -> Result<(), ProxyError> {
    let s = caps
        .and_then(|c| c.structure(0))
        .ok_or_else(|| err("not-decodable", "the video decoder announced no format"))?;
    let dim = |f: &str| {
        s.get::<i32>(f)
            .ok()
            .and_then(|v| u32::try_from(v).ok())
            .filter(|v| *v > 0)
            .ok_or_else(|| err("not-decodable", format!("the decoded video has no {f}")))
    };
    let (width, height) = (dim("width")?, dim("height")?);
    let par = s
        .get::<gst::Fraction>("pixel-aspect-ratio")
        .unwrap_or_else(|_| gst::Fraction::new(1, 1));
    let fps = s
        .get::<gst::Fraction>("framerate")
        .unwrap_or_else(|_| gst::Fraction::new(0, 1));
    let (rotation, flipped) = orientation.unwrap_or((0, false));
    let source = Source {
        width,
        height,
        par_num: par.numer(),
        par_den: par.denom(),
        fps_num: fps.numer(),
        fps_den: fps.denom(),
        rotation,
        flipped,
    };
    let plan = plan(&source, &shared.spec);
    tracing::debug!(?source, ?plan, "proxy video plan");

    let colorimetry = source_colorimetry(s);
    let mut out = gst::Caps::builder("video/x-raw")
        .field("format", "I420")
        .field("width", i32::try_from(plan.width).unwrap_or(i32::MAX))
        .field("height", i32::try_from(plan.height).unwrap_or(i32::MAX))
        .field("pixel-aspect-ratio", gst::Fraction::new(1, 1))
        .field("framerate", gst::Fraction::new(plan.fps_num, plan.fps_den))
        .build();
    if let Some(c) = colorimetry
        && let Some(st) = out.make_mut().structure_mut(0)
    {
        st.set("colorimetry", c.as_str());
    }
    flip.set_property_from_str("video-direction", flip_direction(rotation, flipped));
    // A known rate is only ever reduced: duplicating frames where a variable-rate phone clip
    // slows down would add frames that were never shot. An unknown rate is made constant.
    rate.set_property("drop-only", source.fps_num > 0 && source.fps_den > 0);
    filter.set_property("caps", &out);
    enc.set_property("key-int-max", plan.keyframe_interval);
    enc.set_locked_state(false);
    enc.sync_state_with_parent()
        .map_err(|e| err("internal", format!("the encoder does not start: {e}")))?;
    if let Ok(mut p) = shared.plan.lock() {
        *p = Some(plan);
    }
    Ok(())
}

/// Encodes decoded audio to stereo 48 kHz AAC.
fn audio_encode_branch(
    pipeline: &gst::Pipeline,
    shared: &Shared,
    pad: &gst::Pad,
    decoder: Option<&str>,
) -> Result<(), ProxyError> {
    let queue = audio_queue()?;
    let mut chain = vec![queue];
    if let Some(factory) = decoder {
        chain.push(make(factory)?);
    }
    chain.push(make("audioconvert")?);
    chain.push(make("audioresample")?);
    let filter = gst::ElementFactory::make("capsfilter")
        .property(
            "caps",
            gst::Caps::builder("audio/x-raw")
                .field("rate", 48_000i32)
                .field("channels", 2i32)
                .build(),
        )
        .build()
        .map_err(|e| err("internal", e.to_string()))?;
    chain.push(filter);
    // voaacenc: half the CPU of avenc_aac at the same bitrate (decoding and encoding clipA's
    // 20 s: 0.19 vs 0.39 CPU s); a proxy's sound is for scrubbing, not for the final render.
    let enc = match gst::ElementFactory::find("voaacenc") {
        Some(_) => gst::ElementFactory::make("voaacenc")
            .property(
                "bitrate",
                i32::try_from(shared.spec.audio_bitrate_kbps * 1000).unwrap_or(128_000),
            )
            .build(),
        None => gst::ElementFactory::make("avenc_aac")
            .property(
                "bitrate",
                i32::try_from(shared.spec.audio_bitrate_kbps * 1000).unwrap_or(128_000),
            )
            .build(),
    }
    .map_err(|e| err("internal", format!("no AAC encoder: {e}")))?;
    chain.push(enc);
    let refs: Vec<&gst::Element> = chain.iter().collect();
    add_and_link(pipeline, &refs)?;
    let last = chain
        .last()
        .ok_or_else(|| err("internal", "empty audio chain"))?;
    link_to_mux(shared, last, "audio_%u")?;
    let sink = chain[0]
        .static_pad("sink")
        .ok_or_else(|| err("internal", "queue without a sink pad"))?;
    pad.link(&sink)
        .map(|_| ())
        .map_err(|e| err("internal", format!("cannot link the audio: {e:?}")))
}

fn audio_queue() -> Result<gst::Element, ProxyError> {
    // The muxer takes audio only as fast as video comes out of x264, whose lookahead holds back
    // the better part of a second: the audio queue must cover that or the demuxer, blocked on a
    // full audio queue, starves the video and everything stops.
    gst::ElementFactory::make("queue")
        .property("max-size-buffers", 0u32)
        .property("max-size-bytes", 0u32)
        .property("max-size-time", 10 * gst::ClockTime::SECOND.nseconds())
        .build()
        .map_err(|e| err("internal", e.to_string()))
}

/// AAC that already is stereo, 48 kHz and LC goes into the file as it is. The decoder
/// configuration decides, not the caps' `channels`: MP4 sample entries say 2 for 5.1 AAC too.
fn aac_conforms(caps: &gst::CapsRef) -> bool {
    use gstreamer_pbutils as pbutils;
    let Some(config) = caps
        .structure(0)
        .and_then(|s| s.get::<gst::Buffer>("codec_data").ok())
    else {
        return false;
    };
    let Ok(map) = config.map_readable() else {
        return false;
    };
    let asc = map.as_slice();
    asc.len() >= 2
        && pbutils::codec_utils_aac_get_channels(asc) == 2
        && pbutils::codec_utils_aac_get_sample_rate(asc) == 48_000
        && pbutils::codec_utils_aac_get_profile(asc)
            .map(|p| p == "lc")
            .unwrap_or(false)
}

fn pad_added(
    pipeline: &gst::Pipeline,
    shared: &Arc<Shared>,
    pad: &gst::Pad,
) -> Result<(), ProxyError> {
    let caps = pad.current_caps().or_else(|| Some(pad.query_caps(None)));
    let Some(caps) = caps else {
        return discard(pipeline, pad);
    };
    let name = caps
        .structure(0)
        .map(|s| s.name().to_string())
        .unwrap_or_default();
    if name == "video/x-raw" {
        if shared.video_pad_seen.swap(true, Ordering::AcqRel) {
            return discard(pipeline, pad);
        }
        return video_branch(pipeline, shared, pad);
    }
    if name.starts_with("video/") || name.starts_with("image/") {
        // Exposed undecoded: no decoder for it. Only fatal if no other video stream decodes,
        // which no-more-pads decides.
        tracing::debug!(caps = %caps, "video stream without a decoder");
        shared.video_undecodable.store(true, Ordering::Release);
        return discard(pipeline, pad);
    }
    let raw_aac = name == "audio/mpeg"
        && caps.structure(0).is_some_and(|s| {
            s.get::<i32>("mpegversion").ok() == Some(4)
                && s.get::<&str>("stream-format").ok() == Some("raw")
        });
    if name == "audio/x-raw" || raw_aac {
        if shared.audio_pad_seen.swap(true, Ordering::AcqRel) {
            return discard(pipeline, pad);
        }
        if name == "audio/x-raw" {
            return audio_encode_branch(pipeline, shared, pad, None);
        }
        if aac_conforms(&caps) {
            let queue = audio_queue()?;
            add_and_link(pipeline, &[&queue])?;
            link_to_mux(shared, &queue, "audio_%u")?;
            shared.audio_copied.store(true, Ordering::Relaxed);
            let sink = queue
                .static_pad("sink")
                .ok_or_else(|| err("internal", "queue without a sink pad"))?;
            return pad
                .link(&sink)
                .map(|_| ())
                .map_err(|e| err("internal", format!("{e:?}")));
        }
        return audio_encode_branch(pipeline, shared, pad, Some("avdec_aac"));
    }
    discard(pipeline, pad)
}

/// Makes a proxy of `input` at `output` (overwritten). `progress` is called from this thread
/// with the fraction done, from 0 to 1. On failure nothing is left at `output`.
pub fn make_proxy(
    input: &Path,
    output: &Path,
    spec: &ProxySpec,
    progress: &mut dyn FnMut(f64),
) -> Result<ProxyReport, ProxyError> {
    validate(spec)?;
    crate::elements::inventory().map_err(|e| err("internal", e.to_string()))?;
    let abs = std::fs::canonicalize(input).map_err(|e| err("unreadable", e.to_string()))?;
    if !abs.is_file() {
        return Err(err("unreadable", "not a regular file"));
    }
    let uri =
        gst::glib::filename_to_uri(&abs, None).map_err(|e| err("unreadable", e.to_string()))?;
    // mp4mux writes the media data to a side file and copies it behind the index at the end;
    // keep that file next to the output (same disk, cleaned up with it), not in /tmp.
    let side = {
        let mut s = output.as_os_str().to_owned();
        s.push(".mdat-part");
        PathBuf::from(s)
    };
    let result = run(&uri, output, &side, spec, progress);
    if result.is_err() {
        let _ = std::fs::remove_file(output);
    }
    let _ = std::fs::remove_file(&side);
    result
}

fn run(
    uri: &str,
    output: &Path,
    side: &Path,
    spec: &ProxySpec,
    progress: &mut dyn FnMut(f64),
) -> Result<ProxyReport, ProxyError> {
    let pipeline = gst::Pipeline::new();
    let decode = gst::ElementFactory::make("uridecodebin")
        .property("uri", uri)
        .property(
            "caps",
            format!("video/x-raw; audio/x-raw; {AAC_CAPS}")
                .parse::<gst::Caps>()
                .map_err(|e| err("internal", e.to_string()))?,
        )
        .build()
        .map_err(|e| err("internal", e.to_string()))?;
    let mux = gst::ElementFactory::make("mp4mux")
        .property("faststart", true)
        .property("faststart-file", side.to_string_lossy().to_string())
        .build()
        .map_err(|e| err("internal", e.to_string()))?;
    let sink = gst::ElementFactory::make("filesink")
        .property("location", output.to_string_lossy().to_string())
        .build()
        .map_err(|e| err("internal", e.to_string()))?;
    pipeline
        .add_many([&decode, &mux, &sink])
        .map_err(|e| err("internal", e.to_string()))?;
    mux.link(&sink)
        .map_err(|e| err("internal", e.to_string()))?;

    let shared = Arc::new(Shared {
        spec: spec.clone(),
        mux: mux.clone(),
        video_pad_seen: AtomicBool::new(false),
        video_undecodable: AtomicBool::new(false),
        audio_pad_seen: AtomicBool::new(false),
        audio_copied: AtomicBool::new(false),
        plan: Mutex::new(None),
        video_start: AtomicU64::new(u64::MAX),
        video_end: AtomicU64::new(0),
        video_eos: AtomicBool::new(false),
        duration: AtomicU64::new(0),
    });
    let weak = pipeline.downgrade();
    let on_pad = Arc::clone(&shared);
    decode.connect_pad_added(move |decode, pad| {
        let Some(pipeline) = weak.upgrade() else {
            return;
        };
        if let Err(e) = pad_added(&pipeline, &on_pad, pad) {
            post_failure(decode, e.code, e.message);
        }
    });
    let on_done = Arc::clone(&shared);
    decode.connect_no_more_pads(move |decode| {
        if on_done.video_pad_seen.load(Ordering::Acquire) {
            return;
        }
        if on_done.video_undecodable.load(Ordering::Acquire) {
            post_failure(
                decode,
                "unsupported-codec",
                "no decoder for the file's video is installed".into(),
            );
        } else {
            post_failure(decode, "no-video", "the file has no video stream".into());
        }
    });

    let bus = pipeline.bus().ok_or_else(|| err("internal", "no bus"))?;
    let outcome = (|| {
        pipeline.set_state(gst::State::Playing).map_err(|_| {
            first_error(&bus, &decode)
                .unwrap_or_else(|| err("not-decodable", "the file cannot be decoded"))
        })?;
        watch(&bus, &decode, &shared, progress)
    })();
    let _ = pipeline.set_state(gst::State::Null);
    outcome?;

    let plan = shared
        .plan
        .lock()
        .ok()
        .and_then(|p| *p)
        .ok_or_else(|| err("no-video", "no video frame was encoded"))?;
    let start = shared.video_start.load(Ordering::Relaxed);
    let end = shared.video_end.load(Ordering::Relaxed);
    let duration = if start == u64::MAX {
        0.0
    } else {
        end.saturating_sub(start) as f64 / 1e9
    };
    let bytes = std::fs::metadata(output)
        .map(|m| m.len())
        .map_err(|e| err("write-failed", e.to_string()))?;
    progress(1.0);
    Ok(ProxyReport {
        width: plan.width,
        height: plan.height,
        fps_num: plan.fps_num,
        fps_den: plan.fps_den,
        has_audio: shared.audio_pad_seen.load(Ordering::Relaxed),
        audio_copied: shared.audio_copied.load(Ordering::Relaxed),
        duration,
        bytes,
    })
}

/// The caller's loop: bus messages, progress and the stall guard, until EOS or a failure.
fn watch(
    bus: &gst::Bus,
    decode: &gst::Element,
    shared: &Shared,
    progress: &mut dyn FnMut(f64),
) -> Result<(), ProxyError> {
    let mut last_end = 0u64;
    let mut last_move = Instant::now();
    let mut last_reported = -1.0f64;
    loop {
        if let Some(msg) = bus.timed_pop(gst::ClockTime::from_mseconds(100)) {
            match msg.view() {
                gst::MessageView::Eos(_) => return Ok(()),
                gst::MessageView::Error(e) => return Err(classify(e, decode)),
                gst::MessageView::Application(a) => {
                    if let Some(f) = failure(a.structure()) {
                        return Err(f);
                    }
                }
                _ => {}
            }
        }
        let end = shared.video_end.load(Ordering::Relaxed);
        if end != last_end {
            last_end = end;
            last_move = Instant::now();
        } else if !shared.video_eos.load(Ordering::Relaxed) && last_move.elapsed() > STALL {
            return Err(err(
                "timed-out",
                format!("no progress for {} s", STALL.as_secs()),
            ));
        }
        let total = shared.duration.load(Ordering::Relaxed);
        let start = shared.video_start.load(Ordering::Relaxed);
        if total > 0 && start != u64::MAX {
            let f = (end as f64 / total as f64).clamp(0.0, 1.0);
            // At most one call per percent: the worker forwards each one as an event.
            if f - last_reported >= 0.01 {
                last_reported = f;
                progress(f);
            }
        }
    }
}

fn failure(s: Option<&gst::StructureRef>) -> Option<ProxyError> {
    let s = s.filter(|s| s.name() == "nve-proxy-failure")?;
    let code = s.get::<&str>("code").ok()?;
    let code = CODES
        .iter()
        .find(|c| **c == code)
        .copied()
        .unwrap_or("internal");
    let message = s.get::<String>("message").unwrap_or_default();
    Some(err(code, message))
}

/// The first error waiting on the bus, for a state change that failed without saying why.
fn first_error(bus: &gst::Bus, decode: &gst::Element) -> Option<ProxyError> {
    while let Some(msg) = bus.pop() {
        match msg.view() {
            gst::MessageView::Error(e) => return Some(classify(e, decode)),
            gst::MessageView::Application(a) => {
                if let Some(f) = failure(a.structure()) {
                    return Some(f);
                }
            }
            _ => {}
        }
    }
    None
}

/// Maps a bus error to a code by what failed and where: anything inside the decoder bin is the
/// input's fault, the muxer's and the file sink's resource errors are the output's.
fn classify(e: &gst::message::Error, decode: &gst::Element) -> ProxyError {
    let error = e.error();
    let text = match e.debug() {
        Some(d) => format!("{error} ({d})"),
        None => error.to_string(),
    };
    let inside_decoder = e
        .src()
        .map(|src| {
            let mut cur = Some(src.clone());
            while let Some(o) = cur {
                if o == *decode.upcast_ref::<gst::Object>() {
                    return true;
                }
                cur = o.parent();
            }
            false
        })
        .unwrap_or(false);
    if let Some(r) = error.kind::<gst::ResourceError>() {
        if matches!(
            r,
            gst::ResourceError::OpenWrite
                | gst::ResourceError::Write
                | gst::ResourceError::NoSpaceLeft
                | gst::ResourceError::OpenReadWrite
                | gst::ResourceError::Close
        ) && !inside_decoder
        {
            return err("write-failed", text);
        }
        if inside_decoder {
            return err("not-decodable", text);
        }
        return err("internal", text);
    }
    if matches!(
        error.kind::<gst::StreamError>(),
        Some(gst::StreamError::CodecNotFound)
    ) || matches!(
        error.kind::<gst::CoreError>(),
        Some(gst::CoreError::MissingPlugin)
    ) {
        return err("unsupported-codec", text);
    }
    if inside_decoder {
        return err("not-decodable", text);
    }
    err("internal", text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn src(width: u32, height: u32, fps: (i32, i32)) -> Source {
        Source {
            width,
            height,
            par_num: 1,
            par_den: 1,
            fps_num: fps.0,
            fps_den: fps.1,
            rotation: 0,
            flipped: false,
        }
    }

    #[test]
    fn sizes_keep_the_shape_even_and_never_grow() {
        let spec = ProxySpec::default();
        let p = plan(&src(1920, 1080, (30, 1)), &spec);
        assert_eq!((p.width, p.height), (960, 540));
        let p = plan(&src(853, 479, (25, 1)), &spec);
        assert_eq!((p.width, p.height), (852, 478));
        let p = plan(&src(320, 240, (25, 1)), &spec);
        assert_eq!((p.width, p.height), (320, 240));
        let mut portrait = src(1280, 720, (30, 1));
        portrait.rotation = 90;
        let p = plan(&portrait, &spec);
        assert_eq!((p.width, p.height), (304, 540));
        // 16:9 anamorphic PAL: 720x576 stored, 1024x576 shown.
        let mut ana = src(720, 576, (25, 1));
        (ana.par_num, ana.par_den) = (64, 45);
        let p = plan(&ana, &spec);
        assert_eq!((p.width, p.height), (960, 540));
    }

    #[test]
    fn frame_rates_are_divided_evenly() {
        let spec = ProxySpec::default();
        let fps = |n, d| {
            let p = plan(&src(640, 360, (n, d)), &spec);
            (p.fps_num, p.fps_den, p.keyframe_interval)
        };
        assert_eq!(fps(60, 1), (30, 1, 60));
        assert_eq!(fps(60000, 1001), (30000, 1001, 60));
        assert_eq!(fps(50, 1), (25, 1, 50));
        assert_eq!(fps(120, 1), (30, 1, 60));
        assert_eq!(fps(100, 1), (25, 1, 50));
        assert_eq!(fps(24, 1), (24, 1, 48));
        assert_eq!(fps(30000, 1001), (30000, 1001, 60));
        assert_eq!(fps(0, 1), (30, 1, 60));
        // Halving would leave 17.5: capped instead.
        assert_eq!(fps(35, 1), (30, 1, 60));
        assert_eq!(fps(144, 1), (144, 5, 58));
    }

    #[test]
    fn orientations_map_to_flips() {
        assert_eq!(parse_orientation("rotate-90"), Some((90, false)));
        assert_eq!(parse_orientation("flip-rotate-270"), Some((270, true)));
        assert_eq!(parse_orientation("sideways"), None);
        assert_eq!(flip_direction(90, false), "90r");
        assert_eq!(flip_direction(270, false), "90l");
        assert_eq!(flip_direction(0, true), "horiz");
        assert_eq!(flip_direction(0, false), "identity");
    }

    #[test]
    fn bad_specs_are_refused_before_any_work() {
        let mut s = ProxySpec {
            speed_preset: "ludicrous".into(),
            ..ProxySpec::default()
        };
        assert_eq!(validate(&s).map_err(|e| e.code), Err("invalid-spec"));
        s.speed_preset = "fast".into();
        assert!(validate(&s).is_ok());
        s.max_fps = 0;
        assert_eq!(validate(&s).map_err(|e| e.code), Err("invalid-spec"));
    }

    #[test]
    fn a_partial_json_spec_takes_the_defaults() {
        let s: ProxySpec = serde_json::from_str(r#"{"max_height": 360}"#).expect("json");
        assert_eq!(s.max_height, 360);
        assert_eq!(s.speed_preset, "veryfast");
    }
}
