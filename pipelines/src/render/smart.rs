//! Smart rendering: when a render is nothing but cuts of H.264 sources that already have the
//! output's size, frame rate and pixel format, the untouched GOPs are copied into the output
//! and only the frames around each cut point are decoded and re-encoded.
//!
//! How (see `docs/rendering.md`, "Smart rendering"):
//! * [`eligible`] checks the (conformed) plan and the profile, then opens each source and reads
//!   its first GOPs: codec, profile, chroma, bit depth, size, rate, and how deep the stream
//!   reorders frames;
//! * [`smart_render`] demuxes each cut's source from the keyframe before the cut, groups the
//!   access units into GOPs (IDR to IDR, decode order) and copies every GOP whose frames are all
//!   wanted; the others (the partial GOPs at the cut points) go through one decoder → x264
//!   session per run, which encodes only the wanted frames;
//! * everything is muxed as `avc3` (parameter sets in band, before every IDR), so copied and
//!   re-encoded pieces can each carry their own SPS/PPS in one track. GStreamer's own smart
//!   encoder (GES) does the same;
//! * timestamps are rewritten onto the output grid: presentation = output frame, decode =
//!   decode order with a constant delay of the measured reorder depth, so DTS stays strictly
//!   increasing across pieces from different encoders;
//! * sound is rendered and encoded by the normal engine (`run::render`, audio only): it is cheap,
//!   and exact to the sample, so gains, fades and other audio are no reason to refuse.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use gst::prelude::*;
use gstreamer as gst;
use gstreamer_app as gst_app;
use serde::{Deserialize, Serialize};

use super::plan::{LayerSource, PlanOutput, RenderPlan};
use super::profiles::{AudioCodec, AudioFormat, AudioSettings, Container, OutputProfile, Speed};
use super::run::{Progress, RenderOptions, render};
use super::{BuildOptions, Built, RenderError, internal};

/// Why a render cannot be smart-rendered; the caller renders it normally instead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not smart-renderable: {reason}")]
pub struct Ineligible {
    pub reason: String,
}

fn no(reason: impl Into<String>) -> Ineligible {
    Ineligible {
        reason: reason.into(),
    }
}

/// One cut: output frames `[start, start + frames)` show source frames from `first_ns` on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SmartCut {
    pub path: PathBuf,
    pub clip_id: String,
    /// First output frame.
    pub start: i64,
    pub frames: i64,
    /// Source time shown at the cut's first and last frame.
    pub first_ns: i64,
    pub last_ns: i64,
}

/// What [`smart_render`] needs: the cuts, the stream format shared by the sources, and how to
/// encode the re-encoded pieces and the sound.
#[derive(Debug, Clone)]
pub struct SmartPlan {
    pub cuts: Vec<SmartCut>,
    /// The plan, for the sound.
    plan: RenderPlan,
    /// Caps of the output's video track (`avc3`, from the first cut's source).
    caps: gst::Caps,
    /// Most frames any access unit is decoded ahead of its presentation.
    reorder: i64,
    container: Container,
    speed: Speed,
    quality: Option<u32>,
    bitrate_kbps: Option<u32>,
    audio: Option<(AudioSettings, AudioFormat)>,
}

impl SmartPlan {
    pub fn frames(&self) -> i64 {
        self.plan.frames
    }
}

/// What a smart render did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SmartReport {
    pub frames: i64,
    pub copied_frames: i64,
    pub encoded_frames: i64,
    pub copied_seconds: f64,
    pub encoded_seconds: f64,
    pub media_seconds: f64,
    /// GOPs copied as they were.
    pub gops_copied: u32,
    /// Runs of frames re-encoded (one per partial GOP, or per run of adjacent ones).
    pub encoded_runs: u32,
    pub bytes: u64,
    pub wall_seconds: f64,
    /// Media seconds per wall second.
    pub speed: f64,
    pub video_encoder: String,
    pub audio_encoder: Option<String>,
}

/// Elements a smart render uses; missing ones make every render ineligible.
const ELEMENTS: &[&str] = &[
    "filesrc",
    "parsebin",
    "h264parse",
    "avdec_h264",
    "x264enc",
    "appsrc",
    "appsink",
    "mp4mux",
    "qtmux",
    "filesink",
];

/// H.264 profiles whose streams a High-profile decoder (what the output announces) decodes.
const PROFILES: &[&str] = &["high", "progressive-high", "constrained-high"];

/// Says whether `plan` (made from a document conformed to `profile`, as `file::plan_file`
/// returns it) can be smart-rendered, and prepares it. Reads the first GOPs of each source.
pub fn eligible(plan: &RenderPlan, profile: &OutputProfile) -> Result<SmartPlan, Ineligible> {
    let video = profile
        .video
        .as_ref()
        .ok_or_else(|| no("the profile has no video"))?;
    if video.codec != super::profiles::VideoCodec::H264 {
        return Err(no(format!(
            "the profile encodes {:?}, smart rendering copies H.264 only",
            video.codec
        )));
    }
    if !matches!(profile.container, Container::Mp4 | Container::Mov) {
        return Err(no(format!(
            "the {:?} container cannot carry H.264 copied with in-band parameter sets",
            profile.container
        )));
    }
    let audio = match &profile.audio {
        None => None,
        Some(a) if a.codec == AudioCodec::Aac => Some((
            a.clone(),
            AudioFormat {
                rate: plan.output.sample_rate,
                channels: u32::from(plan.output.channels),
            },
        )),
        Some(a) => return Err(no(format!("audio codec {:?} (AAC only)", a.codec))),
    };
    if let Some(missing) = ELEMENTS
        .iter()
        .find(|e| gst::init().is_err() || gst::ElementFactory::find(e).is_none())
    {
        return Err(no(format!("GStreamer element {missing} is not installed")));
    }
    let out = &plan.output;
    let cuts = cuts_of(plan)?;
    let mut facts: HashMap<PathBuf, StreamFacts> = HashMap::new();
    for cut in &cuts {
        if !facts.contains_key(&cut.path) {
            let f = inspect(&cut.path, out).map_err(|reason| {
                no(format!(
                    "clip {:?} ({}): {reason}",
                    cut.clip_id,
                    cut.path.display()
                ))
            })?;
            facts.insert(cut.path.clone(), f);
        }
    }
    let first = cuts
        .first()
        .and_then(|c| facts.get(&c.path))
        .ok_or_else(|| no("the render shows no video"))?;
    let eff = video.effective(out.fps());
    Ok(SmartPlan {
        caps: first.caps.clone(),
        reorder: facts.values().map(|f| f.reorder).max().unwrap_or(0),
        cuts,
        plan: plan.clone(),
        container: profile.container,
        speed: eff.speed,
        quality: eff.quality,
        bitrate_kbps: eff.bitrate_kbps,
        audio,
    })
}

/// The plan's spans as cuts, or why the picture is more than cuts of sources.
fn cuts_of(plan: &RenderPlan) -> Result<Vec<SmartCut>, Ineligible> {
    let out = &plan.output;
    let at = |f: i64| format!("output frame {f}");
    let mut cuts = Vec::with_capacity(plan.spans.len());
    for span in &plan.spans {
        let layer = match span.layers.as_slice() {
            [] => return Err(no(format!("{}: a gap (background)", at(span.start)))),
            [one] => one,
            many => {
                return Err(no(format!(
                    "{}: {} layers are composited (overlay, title or transition)",
                    at(span.start),
                    many.len()
                )));
            }
        };
        let clip = &layer.clip_id;
        let (path, width, height, fps_num, fps_den, rotation) = match &layer.source {
            LayerSource::Video {
                path,
                width,
                height,
                fps_num,
                fps_den,
                rotation,
            } => (path, *width, *height, *fps_num, *fps_den, *rotation),
            LayerSource::Image { .. } => return Err(no(format!("clip {clip:?} is an image"))),
            LayerSource::Color { .. } => return Err(no(format!("clip {clip:?} is a colour"))),
            LayerSource::Title { .. } => return Err(no(format!("clip {clip:?} is a title"))),
        };
        if layer.transition.is_some() {
            return Err(no(format!("clip {clip:?} is in a transition")));
        }
        if layer.animation.is_some() {
            return Err(no(format!("clip {clip:?} has keyframes")));
        }
        if layer.opacity < 1.0 {
            return Err(no(format!("clip {clip:?} is not opaque")));
        }
        if (width, height) != (out.width, out.height) {
            return Err(no(format!(
                "clip {clip:?} is {width}x{height}, the output {}x{}",
                out.width, out.height
            )));
        }
        // Same rate: compare the fractions, not the floats.
        if u64::from(fps_num) * u64::from(out.fps_den)
            != u64::from(out.fps_num) * u64::from(fps_den)
        {
            return Err(no(format!(
                "clip {clip:?} runs at {fps_num}/{fps_den} fps, the output at {}/{}",
                out.fps_num, out.fps_den
            )));
        }
        if rotation != 0 || layer.geometry.quarter_turns != 0 {
            return Err(no(format!("clip {clip:?} is rotated")));
        }
        if !layer.effects.is_empty() {
            return Err(no(format!("clip {clip:?} has effects")));
        }
        if !layer.is_full_frame(out) || layer.geometry.crop != Default::default() {
            return Err(no(format!("clip {clip:?} is moved, scaled or cropped")));
        }
        let timing = layer
            .timing
            .as_ref()
            .ok_or_else(|| no(format!("clip {clip:?} has no source timing")))?;
        if timing.speed_milli != 1000 {
            return Err(no(format!(
                "clip {clip:?} plays at {}x",
                f64::from(timing.speed_milli) / 1000.0
            )));
        }
        if timing.reverse {
            return Err(no(format!("clip {clip:?} plays reversed")));
        }
        // Adjacent spans of one clip continuing in the source are one cut.
        if let Some(prev) = cuts.last_mut()
            && prev_continues(prev, &layer.clip_id, path, timing.first_ns, out)
        {
            prev.frames += span.frames;
            prev.last_ns = timing.last_ns;
            continue;
        }
        cuts.push(SmartCut {
            path: path.clone(),
            clip_id: layer.clip_id.clone(),
            start: span.start,
            frames: span.frames,
            first_ns: timing.first_ns,
            last_ns: timing.last_ns,
        });
    }
    if cuts.is_empty() {
        return Err(no("the render shows no video"));
    }
    Ok(cuts)
}

fn prev_continues(
    prev: &SmartCut,
    clip: &str,
    path: &Path,
    first_ns: i64,
    out: &PlanOutput,
) -> bool {
    let step = out.frame_ns(1);
    prev.clip_id == clip && prev.path == path && (first_ns - prev.last_ns - step).abs() <= 1
}

/// What a source's video stream is, as far as copying it goes.
struct StreamFacts {
    caps: gst::Caps,
    reorder: i64,
}

/// Opens `path`, checks its video stream against the output, and measures how far ahead of
/// presentation it decodes (over its first GOPs; encoders keep this constant).
fn inspect(path: &Path, out: &PlanOutput) -> Result<StreamFacts, String> {
    let demux = Demux::open(path, None).map_err(|e| e.to_string())?;
    let caps = demux.caps.clone();
    let s = caps.structure(0).ok_or("no caps")?;
    if s.name() != "video/x-h264" {
        return Err(format!("its video is {}, not H.264", s.name()));
    }
    let field = |name: &str| s.get::<&str>(name).ok();
    let profile = field("profile").unwrap_or("unknown");
    if !PROFILES.contains(&profile) {
        return Err(format!("H.264 profile {profile} (High only)"));
    }
    if let Some(chroma) = field("chroma-format")
        && chroma != "4:2:0"
    {
        return Err(format!("chroma {chroma}, not 4:2:0"));
    }
    for depth in ["bit-depth-luma", "bit-depth-chroma"] {
        if let Ok(d) = s.get::<u32>(depth)
            && d != 8
        {
            return Err(format!("{d}-bit video, not 8-bit"));
        }
    }
    if let Some(mode) = field("interlace-mode")
        && mode != "progressive"
    {
        return Err(format!("{mode} video"));
    }
    if let Ok(par) = s.get::<gst::Fraction>("pixel-aspect-ratio")
        && par.numer() != par.denom()
    {
        return Err(format!(
            "non-square pixels ({}:{})",
            par.numer(),
            par.denom()
        ));
    }
    let (w, h) = (s.get::<i32>("width"), s.get::<i32>("height"));
    if (w.ok(), h.ok())
        != (
            i32::try_from(out.width).ok(),
            i32::try_from(out.height).ok(),
        )
    {
        return Err("its coded size differs from the output".into());
    }
    match s.get::<gst::Fraction>("framerate") {
        Ok(f)
            if i64::from(f.numer()) * i64::from(out.fps_den)
                == i64::from(out.fps_num) * i64::from(f.denom()) => {}
        _ => return Err("its stream does not declare the output's constant frame rate".into()),
    }
    // Decode order vs presentation order over the first GOPs.
    let mut units: Vec<i64> = Vec::new();
    let mut idrs = 0;
    let halt = AtomicBool::new(false);
    while let Some(au) = demux.next(&halt).map_err(|e| e.to_string())? {
        if au.idr {
            idrs += 1;
            if idrs > 3 {
                break;
            }
        }
        units.push(au.pts);
        if units.len() >= 600 {
            break;
        }
    }
    if idrs == 0 {
        return Err("no IDR frame in its first 600 frames".into());
    }
    let mut sorted = units.clone();
    sorted.sort_unstable();
    let rank: HashMap<i64, usize> = sorted.iter().enumerate().map(|(i, p)| (*p, i)).collect();
    let reorder = units
        .iter()
        .enumerate()
        .filter_map(|(i, p)| rank.get(p).map(|r| i as i64 - *r as i64))
        .max()
        .unwrap_or(0)
        .max(0);
    Ok(StreamFacts { caps, reorder })
}

/// One access unit from a source, decode order.
struct Unit {
    buffer: gst::Buffer,
    /// Stream time: the position in the source the frame is shown at. Raw timestamps are not:
    /// the demuxer's segment carries the edit list (B-frame delay) and the seek.
    pts: i64,
    /// The buffer's own timestamp, as a decoder fed this buffer hands it back.
    raw_pts: u64,
    idr: bool,
}

/// A source's video stream as `avc3` access units from a position on.
struct Demux {
    pipeline: gst::Pipeline,
    sink: gst_app::AppSink,
    caps: gst::Caps,
    nal_len: usize,
}

impl Drop for Demux {
    fn drop(&mut self) {
        let _ = self.pipeline.set_state(gst::State::Null);
    }
}

const WAIT: Duration = Duration::from_secs(30);

fn not_decodable(path: &Path, what: impl std::fmt::Display) -> RenderError {
    RenderError::NotDecodable(format!("{}: {what}", path.display()))
}

fn bus_error(pipeline: &gst::Pipeline) -> Option<String> {
    let bus = pipeline.bus()?;
    while let Some(msg) = bus.pop_filtered(&[gst::MessageType::Error]) {
        if let gst::MessageView::Error(e) = msg.view() {
            return Some(format!(
                "{} ({})",
                e.error(),
                e.debug().map(|d| d.to_string()).unwrap_or_default()
            ));
        }
    }
    None
}

impl Demux {
    /// Opens `path`; with `from`, starts at the keyframe at or before that source time.
    fn open(path: &Path, from: Option<i64>) -> Result<Demux, RenderError> {
        let pipeline = gst::Pipeline::new();
        let mk = |f: &str| gst::ElementFactory::make(f).build().map_err(internal);
        let src = mk("filesrc")?;
        src.set_property(
            "location",
            path.to_str()
                .ok_or_else(|| not_decodable(path, "the path is not UTF-8"))?,
        );
        let parse = mk("parsebin")?;
        // Whatever the container's H.264 form, copy as avc3: parameter sets before every IDR,
        // so a copied GOP decodes after a re-encoded one (and the reverse).
        let h264parse = mk("h264parse")?;
        h264parse.set_property("config-interval", -1i32);
        let filter = gst::ElementFactory::make("capsfilter")
            .property(
                "caps",
                gst::Caps::builder("video/x-h264")
                    .field("stream-format", "avc3")
                    .field("alignment", "au")
                    .build(),
            )
            .build()
            .map_err(internal)?;
        let sink = gst_app::AppSink::builder()
            .sync(false)
            .max_buffers(64)
            .build();
        pipeline
            .add_many([&src, &parse, &h264parse, &filter, sink.upcast_ref()])
            .map_err(internal)?;
        src.link(&parse).map_err(internal)?;
        gst::Element::link_many([&h264parse, &filter, sink.upcast_ref()]).map_err(internal)?;
        let linked = Arc::new(AtomicBool::new(false));
        let parser_sink = h264parse
            .static_pad("sink")
            .ok_or_else(|| internal("h264parse without a sink pad"))?;
        parse.connect_pad_added(move |_, pad| {
            let is_h264 = pad
                .current_caps()
                .or_else(|| Some(pad.query_caps(None)))
                .and_then(|c| c.structure(0).map(|s| s.name() == "video/x-h264"))
                .unwrap_or(false);
            if is_h264 && !linked.swap(true, Ordering::SeqCst) {
                if let Err(e) = pad.link(&parser_sink) {
                    tracing::warn!(error = ?e, "smart render: cannot link the video stream");
                }
                return;
            }
            // Other streams (sound, a second video) are dropped at the pad. Not a fakesink:
            // in PAUSED a sink holds the demuxer's only thread until it prerolls, and the
            // video sink then never gets its first frame.
            pad.add_probe(
                gst::PadProbeType::BUFFER | gst::PadProbeType::BUFFER_LIST,
                |_, info| {
                    // Taken and released here, then `Handled`: with `Drop` the bindings and
                    // the core both release the buffer (a GStreamer-CRITICAL).
                    drop(info.data.take());
                    gst::PadProbeReturn::Handled
                },
            );
        });
        let demux = |caps| Demux {
            pipeline: pipeline.clone(),
            sink: sink.clone(),
            caps,
            nal_len: 4,
        };
        let fail = |what: &str| {
            not_decodable(
                path,
                bus_error(&pipeline).unwrap_or_else(|| what.to_owned()),
            )
        };
        pipeline
            .set_state(gst::State::Paused)
            .map_err(|_| fail("cannot open"))?;
        let (res, _, _) = pipeline.state(gst::ClockTime::from_seconds(WAIT.as_secs()));
        res.map_err(|_| fail("cannot read the file"))?;
        if let Some(from) = from {
            let at = gst::ClockTime::from_nseconds(u64::try_from(from).unwrap_or(0));
            pipeline
                .seek_simple(
                    gst::SeekFlags::FLUSH | gst::SeekFlags::KEY_UNIT | gst::SeekFlags::SNAP_BEFORE,
                    at,
                )
                .map_err(|_| fail("cannot seek"))?;
            let (res, _, _) = pipeline.state(gst::ClockTime::from_seconds(WAIT.as_secs()));
            res.map_err(|_| fail("cannot seek"))?;
        }
        let caps = sink
            .static_pad("sink")
            .and_then(|p| p.current_caps())
            .ok_or_else(|| fail("no H.264 video stream"))?;
        let mut d = demux(caps);
        d.nal_len = nal_length_size(&d.caps).unwrap_or(4);
        pipeline
            .set_state(gst::State::Playing)
            .map_err(|_| fail("cannot play"))?;
        Ok(d)
    }

    /// The next access unit, `None` at the end of the stream.
    fn next(&self, halt: &AtomicBool) -> Result<Option<Unit>, RenderError> {
        let started = Instant::now();
        loop {
            if halt.load(Ordering::Relaxed) {
                return Err(RenderError::Cancelled);
            }
            if let Some(sample) = self
                .sink
                .try_pull_sample(gst::ClockTime::from_mseconds(100))
            {
                let buffer = sample
                    .buffer_owned()
                    .ok_or_else(|| internal("a sample without a buffer"))?;
                let Some(raw) = buffer.pts() else {
                    return Err(RenderError::NotDecodable(
                        "a video frame without a timestamp".into(),
                    ));
                };
                let segment = sample
                    .segment()
                    .and_then(|s| s.downcast_ref::<gst::ClockTime>().cloned())
                    .ok_or_else(|| internal("a sample without a time segment"))?;
                let pts = match segment.to_stream_time_full(raw) {
                    Some(gst::Signed::Positive(t)) => {
                        i64::try_from(t.nseconds()).unwrap_or(i64::MAX)
                    }
                    Some(gst::Signed::Negative(t)) => {
                        -i64::try_from(t.nseconds()).unwrap_or(i64::MAX)
                    }
                    None => return Err(internal("a frame outside the stream's time")),
                };
                let idr = is_idr(&buffer, self.nal_len);
                return Ok(Some(Unit {
                    buffer,
                    pts,
                    raw_pts: raw.nseconds(),
                    idr,
                }));
            }
            if self.sink.is_eos() {
                return Ok(None);
            }
            if let Some(e) = bus_error(&self.pipeline) {
                return Err(RenderError::NotDecodable(e));
            }
            if started.elapsed() > WAIT {
                return Err(RenderError::TimedOut(format!(
                    "the demuxer gave nothing for {WAIT:?}"
                )));
            }
        }
    }
}

/// NAL length prefix size from an `avcC` record in the caps, when there is one.
fn nal_length_size(caps: &gst::Caps) -> Option<usize> {
    let s = caps.structure(0)?;
    let data = s.get::<gst::Buffer>("codec_data").ok()?;
    let map = data.map_readable().ok()?;
    map.get(4).map(|b| usize::from(b & 3) + 1)
}

/// Whether an access unit (length-prefixed NALs) holds an IDR slice. IDRs, not just the
/// container's keyframes, bound copyable GOPs: nothing after an IDR refers to anything before.
fn is_idr(buffer: &gst::BufferRef, nal_len: usize) -> bool {
    let Ok(map) = buffer.map_readable() else {
        return false;
    };
    let data = map.as_slice();
    let mut at = 0usize;
    while at + nal_len < data.len() {
        let mut len = 0usize;
        for b in &data[at..at + nal_len] {
            len = (len << 8) | usize::from(*b);
        }
        let start = at + nal_len;
        if let Some(header) = data.get(start)
            && header & 0x1f == 5
        {
            return true;
        }
        at = start.saturating_add(len);
    }
    false
}

/// The output's video track: rewrites timestamps onto the output grid and pushes.
struct VideoOut<'a> {
    src: gst_app::AppSrc,
    caps: gst::Caps,
    segment: gst::FormattedSegment<gst::ClockTime>,
    out: &'a PlanOutput,
    reorder: i64,
    /// Access units pushed (decode order).
    pushed: i64,
    done: &'a AtomicI64,
}

impl VideoOut<'_> {
    /// Pushes the unit shown at output frame `pos`.
    fn push(&mut self, buffer: gst::Buffer, pos: i64) -> Result<(), RenderError> {
        // Presentation on the output grid, shifted by the reorder depth so that decode times
        // (one per frame, in decode order) never pass presentation times; the segment starts
        // at the shift, so the muxer sees presentation from 0 and writes the edit.
        if self.pushed > pos + self.reorder {
            return Err(RenderError::Unsupported(format!(
                "a source reorders frames deeper ({}) than its first GOPs ({})",
                self.pushed - pos,
                self.reorder
            )));
        }
        let ns = |f: i64| {
            gst::ClockTime::from_nseconds(u64::try_from(self.out.frame_ns(f)).unwrap_or(0))
        };
        let mut buffer = buffer;
        {
            let b = buffer.make_mut();
            b.set_pts(ns(pos + self.reorder));
            b.set_dts(ns(self.pushed));
            b.set_duration(ns(pos + self.reorder + 1) - ns(pos + self.reorder));
            b.unset_flags(gst::BufferFlags::DISCONT);
        }
        let sample = gst::Sample::builder()
            .buffer(&buffer)
            .caps(&self.caps)
            .segment(&self.segment)
            .build();
        self.src.push_sample(&sample).map_err(|e| {
            if e == gst::FlowError::Flushing {
                RenderError::Cancelled
            } else {
                internal(format!("the muxer refused video: {e:?}"))
            }
        })?;
        self.pushed += 1;
        self.done.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}

/// How the re-encoded pieces are encoded.
struct EncodeSettings {
    speed: Speed,
    quality: Option<u32>,
    bitrate_kbps: Option<u32>,
}

/// Decodes GOPs and encodes only the wanted frames, with x264 set up like the output profile.
struct EncodeSession {
    pipeline: gst::Pipeline,
    src: gst_app::AppSrc,
    sink: gst_app::AppSink,
    /// Source pts → output frame of the frames to encode (the others are dropped after
    /// decoding).
    wanted: Arc<Mutex<HashMap<u64, i64>>>,
    fed: i64,
}

impl Drop for EncodeSession {
    fn drop(&mut self) {
        let _ = self.pipeline.set_state(gst::State::Null);
    }
}

impl EncodeSession {
    fn start(caps: &gst::Caps, settings: &EncodeSettings) -> Result<Self, RenderError> {
        let pipeline = gst::Pipeline::new();
        let mk = |f: &str| gst::ElementFactory::make(f).build().map_err(internal);
        let src = gst_app::AppSrc::builder()
            .caps(caps)
            .format(gst::Format::Time)
            .build();
        // avdec_h264 takes avc or byte-stream, not avc3.
        let unpack = mk("h264parse")?;
        let dec = mk("avdec_h264")?;
        let enc = mk("x264enc")?;
        let set = |name: &str, value: &str| {
            super::encoders::set_prop(&enc, name, value);
        };
        // The profile's speed and quality, as the normal output would encode; no B-frames and
        // one IDR: a piece is short, and its decode order then equals its presentation order.
        set("speed-preset", settings.speed.x264_name());
        set("threads", "0");
        set("bframes", "0");
        set("key-int-max", "100000");
        match (settings.quality, settings.bitrate_kbps) {
            (_, Some(kbps)) => {
                set("pass", "cbr");
                set("bitrate", &kbps.to_string());
            }
            (q, None) => {
                set("pass", "qual");
                set("quantizer", &q.unwrap_or(23).to_string());
                // pass=qual keeps x264enc's default 2 Mb/s as a VBV cap unless raised.
                set("bitrate", "100000");
            }
        }
        let raw = gst::ElementFactory::make("capsfilter")
            .property(
                "caps",
                gst::Caps::builder("video/x-raw")
                    .field("format", "I420")
                    .build(),
            )
            .build()
            .map_err(internal)?;
        let profile = gst::ElementFactory::make("capsfilter")
            .property(
                "caps",
                gst::Caps::builder("video/x-h264")
                    .field("profile", "high")
                    .build(),
            )
            .build()
            .map_err(internal)?;
        let parse = mk("h264parse")?;
        parse.set_property("config-interval", -1i32);
        let avc3 = gst::ElementFactory::make("capsfilter")
            .property(
                "caps",
                gst::Caps::builder("video/x-h264")
                    .field("stream-format", "avc3")
                    .field("alignment", "au")
                    .build(),
            )
            .build()
            .map_err(internal)?;
        let sink = gst_app::AppSink::builder().sync(false).build();
        let chain = [
            src.upcast_ref(),
            &unpack,
            &dec,
            &raw,
            &enc,
            &profile,
            &parse,
            &avc3,
            sink.upcast_ref(),
        ];
        pipeline.add_many(chain).map_err(internal)?;
        gst::Element::link_many(chain).map_err(internal)?;
        let wanted: Arc<Mutex<HashMap<u64, i64>>> = Arc::default();
        let w = wanted.clone();
        // Frames before the cut (decoded only as references) never reach the encoder.
        enc.static_pad("sink")
            .ok_or_else(|| internal("x264enc without a sink pad"))?
            .add_probe(gst::PadProbeType::BUFFER, move |_, info| {
                let keep = match &info.data {
                    Some(gst::PadProbeData::Buffer(b)) => b
                        .pts()
                        .is_some_and(|p| w.lock().is_ok_and(|w| w.contains_key(&p.nseconds()))),
                    _ => true,
                };
                if keep {
                    gst::PadProbeReturn::Ok
                } else {
                    drop(info.data.take());
                    gst::PadProbeReturn::Handled
                }
            });
        pipeline
            .set_state(gst::State::Playing)
            .map_err(|_| internal("the re-encoder cannot start"))?;
        Ok(EncodeSession {
            pipeline,
            src,
            sink,
            wanted,
            fed: 0,
        })
    }

    fn feed(&mut self, gop: Vec<Unit>, wanted: &HashMap<u64, i64>) -> Result<(), RenderError> {
        if let Ok(mut w) = self.wanted.lock() {
            w.extend(wanted.iter().map(|(k, v)| (*k, *v)));
        }
        self.fed += wanted.len() as i64;
        for u in gop {
            self.src
                .push_buffer(u.buffer)
                .map_err(|e| internal(format!("the re-encoder refused a frame: {e:?}")))?;
        }
        Ok(())
    }

    /// Ends the input and pushes every encoded frame to the output.
    fn finish(self, out: &mut VideoOut<'_>, halt: &AtomicBool) -> Result<i64, RenderError> {
        self.src
            .end_of_stream()
            .map_err(|e| internal(format!("the re-encoder: {e:?}")))?;
        let wanted = self
            .wanted
            .lock()
            .map(|w| w.clone())
            .map_err(|_| internal("poisoned"))?;
        let mut n = 0i64;
        let started = Instant::now();
        loop {
            if halt.load(Ordering::Relaxed) {
                return Err(RenderError::Cancelled);
            }
            if let Some(sample) = self
                .sink
                .try_pull_sample(gst::ClockTime::from_mseconds(100))
            {
                let buffer = sample
                    .buffer_owned()
                    .ok_or_else(|| internal("a sample without a buffer"))?;
                // x264enc shifts timestamps and its segment (by 1000 hours, against negative
                // DTS); the running time is what it keeps, and the input's segment starts at 0,
                // so running time = the source buffer's timestamp.
                let segment = sample
                    .segment()
                    .and_then(|s| s.downcast_ref::<gst::ClockTime>().cloned());
                let pos = buffer
                    .pts()
                    .and_then(|p| segment.and_then(|s| s.to_running_time(p)))
                    .and_then(|p| wanted.get(&p.nseconds()).copied())
                    .ok_or_else(|| internal("the encoder returned a frame with a new timestamp"))?;
                out.push(buffer, pos)?;
                n += 1;
                continue;
            }
            if self.sink.is_eos() {
                break;
            }
            if let Some(e) = bus_error(&self.pipeline) {
                return Err(RenderError::NotDecodable(format!("re-encoding a cut: {e}")));
            }
            if started.elapsed() > WAIT {
                return Err(RenderError::TimedOut("the re-encoder stalled".into()));
            }
        }
        if n != self.fed {
            return Err(RenderError::NotDecodable(format!(
                "re-encoding a cut gave {n} of {} frames (undecodable source frames?)",
                self.fed
            )));
        }
        Ok(n)
    }
}

#[derive(Default)]
struct VideoStats {
    copied: i64,
    encoded: i64,
    gops: u32,
    runs: u32,
}

/// Produces the whole video track (all cuts, in order) into `out`.
fn produce_video(
    sp: &SmartPlan,
    out: &mut VideoOut<'_>,
    halt: &AtomicBool,
) -> Result<VideoStats, RenderError> {
    let settings = EncodeSettings {
        speed: sp.speed,
        quality: sp.quality,
        bitrate_kbps: sp.bitrate_kbps,
    };
    let step = sp.plan.output.frame_ns(1);
    // Source frames within this of a wanted time count as on it (container timescales round).
    let eps = (step / 4).min(1_000_000);
    let mut stats = VideoStats::default();
    for cut in &sp.cuts {
        let demux = Demux::open(&cut.path, Some(cut.first_ns))?;
        let (first, last) = (cut.first_ns + eps, cut.last_ns + eps);
        // The frame on screen at t is the latest with pts <= t: wanted from the one on screen
        // at the first frame to the one on screen at the last.
        let is_wanted = |p: i64| p.saturating_add(step) > first && p <= last;
        let mut emitted = 0i64;
        let mut session: Option<EncodeSession> = None;
        let mut gop: Vec<Unit> = Vec::new();
        let mut process = |gop: Vec<Unit>,
                           session: &mut Option<EncodeSession>,
                           out: &mut VideoOut<'_>,
                           emitted: &mut i64|
         -> Result<(), RenderError> {
            let mut pts: Vec<(i64, u64)> = gop
                .iter()
                .filter(|u| is_wanted(u.pts))
                .map(|u| (u.pts, u.raw_pts))
                .collect();
            if pts.is_empty() {
                return Ok(());
            }
            pts.sort_unstable();
            // Keyed by raw timestamp: what the re-encoder hands back.
            let mut at: HashMap<u64, i64> = HashMap::with_capacity(pts.len());
            for (j, (p, raw)) in pts.iter().enumerate() {
                let k = *emitted + j as i64;
                // Exactness: the k-th wanted frame must be the one on screen at the cut's
                // k-th frame; irregular (variable-rate) sources are not copied.
                let expect = cut.first_ns + sp.plan.output.frame_ns(k);
                if (p - expect).abs() > step / 2 {
                    return Err(RenderError::Unsupported(format!(
                        "{}: frame timing is irregular at {} ns (variable frame rate)",
                        cut.path.display(),
                        p
                    )));
                }
                at.insert(*raw, cut.start + k);
            }
            let whole = gop.first().is_some_and(|u| u.idr) && pts.len() == gop.len();
            *emitted += pts.len() as i64;
            if whole {
                if let Some(s) = session.take() {
                    stats.encoded += s.finish(out, halt)?;
                }
                for u in gop {
                    let pos = at
                        .get(&u.raw_pts)
                        .copied()
                        .ok_or_else(|| internal("a copied frame lost its place"))?;
                    out.push(u.buffer, pos)?;
                }
                stats.copied += pts.len() as i64;
                stats.gops += 1;
            } else {
                if session.is_none() {
                    *session = Some(EncodeSession::start(&demux.caps, &settings)?);
                    stats.runs += 1;
                }
                if let Some(s) = session.as_mut() {
                    s.feed(gop, &at)?;
                }
            }
            Ok(())
        };
        loop {
            let next = demux.next(halt)?;
            match next {
                Some(u) if u.idr && !gop.is_empty() => {
                    process(std::mem::take(&mut gop), &mut session, out, &mut emitted)?;
                    // Closed GOPs: nothing from this IDR on is shown before it.
                    if u.pts > last {
                        break;
                    }
                    gop.push(u);
                }
                Some(u) => gop.push(u),
                None => {
                    process(std::mem::take(&mut gop), &mut session, out, &mut emitted)?;
                    break;
                }
            }
        }
        if let Some(s) = session.take() {
            stats.encoded += s.finish(out, halt)?;
        }
        if emitted != cut.frames {
            return Err(RenderError::NotDecodable(format!(
                "{}: {emitted} of the cut's {} frames are in the source",
                cut.path.display(),
                cut.frames
            )));
        }
        tracing::debug!(clip = %cut.clip_id, frames = cut.frames, "smart render: cut done");
    }
    Ok(stats)
}

/// Renders `sp` to `output`: copies whole GOPs, re-encodes the rest, renders the sound. On
/// failure, nothing is left at `output`.
pub fn smart_render(
    sp: &SmartPlan,
    output: &Path,
    progress: &mut dyn FnMut(&Progress),
    cancel: &AtomicBool,
) -> Result<SmartReport, RenderError> {
    let side = PathBuf::from(format!("{}.faststart", output.display()));
    let result = smart_render_inner(sp, output, &side, progress, cancel);
    let _ = std::fs::remove_file(&side);
    if result.is_err() {
        let _ = std::fs::remove_file(output);
    }
    result
}

fn smart_render_inner(
    sp: &SmartPlan,
    output: &Path,
    side: &Path,
    progress: &mut dyn FnMut(&Progress),
    cancel: &AtomicBool,
) -> Result<SmartReport, RenderError> {
    let started = Instant::now();
    crate::elements::inventory().map_err(internal)?;
    let location = output
        .to_str()
        .ok_or_else(|| RenderError::Unsupported("the output path is not UTF-8".into()))?;
    let pipeline = gst::Pipeline::new();
    let guard = NullOnDrop(pipeline.clone());
    let mux = match sp.container {
        Container::Mov => gst::ElementFactory::make("qtmux")
            .build()
            .map_err(internal)?,
        _ => {
            let m = gst::ElementFactory::make("mp4mux")
                .build()
                .map_err(internal)?;
            // Index first, as the normal output writes it (browsers play before the end).
            m.set_property("faststart", true);
            m.set_property(
                "faststart-file",
                side.to_str().ok_or_else(|| {
                    RenderError::Unsupported("the output path is not UTF-8".into())
                })?,
            );
            m
        }
    };
    let sink = gst::ElementFactory::make("filesink")
        .property("location", location)
        .build()
        .map_err(internal)?;
    let vsrc = gst_app::AppSrc::builder()
        .caps(&sp.caps)
        .format(gst::Format::Time)
        .block(true)
        .max_bytes(32 << 20)
        .build();
    // The segment given with each sample (it starts at the reorder shift) is the one used.
    vsrc.set_property("handle-segment-change", true);
    pipeline
        .add_many([vsrc.upcast_ref(), &mux, &sink])
        .map_err(internal)?;
    mux.link(&sink).map_err(internal)?;
    let link = |src: &gst_app::AppSrc, kind: &str| -> Result<(), RenderError> {
        let pad = mux
            .request_pad_simple(&format!("{kind}_%u"))
            .ok_or_else(|| internal(format!("the muxer refused a {kind} stream")))?;
        src.static_pad("src")
            .ok_or_else(|| internal("appsrc without a src pad"))?
            .link(&pad)
            .map(|_| ())
            .map_err(|e| internal(format!("linking {kind} to the muxer: {e:?}")))
    };
    link(&vsrc, "video")?;
    let asrc = match &sp.audio {
        Some(_) => {
            let a = gst_app::AppSrc::builder()
                .format(gst::Format::Time)
                .block(true)
                .max_bytes(4 << 20)
                .build();
            pipeline.add(&a).map_err(internal)?;
            link(&a, "audio")?;
            Some(a)
        }
        None => None,
    };
    let bus = pipeline
        .bus()
        .ok_or_else(|| internal("pipeline without a bus"))?;
    pipeline
        .set_state(gst::State::Playing)
        .map_err(|_| internal("the muxer cannot start"))?;

    let halt = AtomicBool::new(false);
    let failure: Mutex<Option<RenderError>> = Mutex::new(None);
    let fail = |e: RenderError| {
        if let Ok(mut f) = failure.lock()
            && f.is_none()
        {
            *f = Some(e);
        }
        halt.store(true, Ordering::SeqCst);
    };
    let done = AtomicI64::new(0);
    let audio_encoder: Mutex<Option<String>> = Mutex::new(None);
    let mut segment = gst::FormattedSegment::<gst::ClockTime>::new();
    segment.set_start(gst::ClockTime::from_nseconds(
        u64::try_from(sp.plan.output.frame_ns(sp.reorder)).unwrap_or(0),
    ));
    let outcome: Result<VideoStats, RenderError> = std::thread::scope(|scope| {
        let video = scope.spawn(|| {
            let mut out = VideoOut {
                src: vsrc.clone(),
                caps: sp.caps.clone(),
                segment: segment.clone(),
                out: &sp.plan.output,
                reorder: sp.reorder,
                pushed: 0,
                done: &done,
            };
            match produce_video(sp, &mut out, &halt) {
                Ok(stats) => {
                    let _ = vsrc.end_of_stream();
                    Some(stats)
                }
                Err(e) => {
                    fail(e);
                    None
                }
            }
        });
        if let (Some(asrc), Some((settings, format))) = (&asrc, &sp.audio) {
            let (fail, halt, audio_encoder) = (&fail, &halt, &audio_encoder);
            scope.spawn(
                move || match produce_audio(&sp.plan, settings, format, asrc, halt) {
                    Ok(name) => {
                        if let Ok(mut a) = audio_encoder.lock() {
                            *a = Some(name);
                        }
                        let _ = asrc.end_of_stream();
                    }
                    Err(e) => fail(e),
                },
            );
        }
        let mut last_report = Instant::now();
        let result = loop {
            if cancel.load(Ordering::Relaxed) {
                fail(RenderError::Cancelled);
            }
            if halt.load(Ordering::SeqCst) {
                break Err(failure
                    .lock()
                    .ok()
                    .and_then(|mut f| f.take())
                    .unwrap_or(RenderError::Cancelled));
            }
            if let Some(msg) = bus.timed_pop(gst::ClockTime::from_mseconds(100)) {
                match msg.view() {
                    gst::MessageView::Eos(_) => break Ok(()),
                    gst::MessageView::Error(e) => {
                        let err = internal(format!(
                            "muxing: {} ({})",
                            e.error(),
                            e.debug().map(|d| d.to_string()).unwrap_or_default()
                        ));
                        fail(err.clone());
                        break Err(err);
                    }
                    _ => {}
                }
            }
            if last_report.elapsed() >= Duration::from_millis(100) {
                last_report = Instant::now();
                progress(&progress_of(sp, done.load(Ordering::Relaxed), started));
            }
        };
        if result.is_err() {
            halt.store(true, Ordering::SeqCst);
            // Unblocks pushes waiting on the muxer.
            let _ = pipeline.set_state(gst::State::Null);
        }
        let stats = video.join().ok().flatten();
        result.and_then(|()| stats.ok_or_else(|| internal("the video producer failed")))
    });
    drop(guard);
    let stats = outcome?;
    let frames = sp.plan.frames;
    progress(&progress_of(sp, frames, started));
    let fps = sp.plan.output.fps();
    let wall = started.elapsed().as_secs_f64();
    let media = frames as f64 / fps;
    let bytes = std::fs::metadata(output).map(|m| m.len()).unwrap_or(0);
    let report = SmartReport {
        frames,
        copied_frames: stats.copied,
        encoded_frames: stats.encoded,
        copied_seconds: stats.copied as f64 / fps,
        encoded_seconds: stats.encoded as f64 / fps,
        media_seconds: media,
        gops_copied: stats.gops,
        encoded_runs: stats.runs,
        bytes,
        wall_seconds: wall,
        speed: if wall > 0.0 { media / wall } else { 0.0 },
        video_encoder: "x264enc".into(),
        audio_encoder: audio_encoder.lock().ok().and_then(|a| a.clone()),
    };
    tracing::info!(
        frames,
        copied = report.copied_seconds,
        encoded = report.encoded_seconds,
        wall = report.wall_seconds,
        "smart render done"
    );
    Ok(report)
}

struct NullOnDrop(gst::Pipeline);

impl Drop for NullOnDrop {
    fn drop(&mut self) {
        let _ = self.0.set_state(gst::State::Null);
    }
}

fn progress_of(sp: &SmartPlan, d: i64, started: Instant) -> Progress {
    let media = d as f64 / sp.plan.output.fps();
    let wall = started.elapsed().as_secs_f64();
    Progress {
        frames_done: d,
        frames_total: sp.plan.frames,
        fraction: (d as f64 / sp.plan.frames.max(1) as f64).clamp(0.0, 1.0),
        media_seconds: media,
        speed: if wall > 0.0 { media / wall } else { 0.0 },
    }
}

/// Renders the plan's sound with the normal engine, encodes it and pushes it to `asrc`.
/// Returns the encoder's name.
fn produce_audio(
    plan: &RenderPlan,
    settings: &AudioSettings,
    format: &AudioFormat,
    asrc: &gst_app::AppSrc,
    halt: &AtomicBool,
) -> Result<String, RenderError> {
    let candidate = super::encoders::audio_encoder_for(settings, format.channels)
        .map_err(|e| internal(e.to_string()))?;
    let opts = RenderOptions {
        build: BuildOptions {
            video: false,
            audio: true,
            ..BuildOptions::default()
        },
        ..RenderOptions::default()
    };
    let target = asrc.clone();
    let mut attach = |pipeline: &gst::Pipeline, built: &Built| -> Result<(), RenderError> {
        let pad = built
            .audio
            .as_ref()
            .ok_or_else(|| internal("no audio output"))?;
        let mk = |f: &str| gst::ElementFactory::make(f).build().map_err(internal);
        let caps = gst::ElementFactory::make("capsfilter")
            .property(
                "caps",
                gst::Caps::builder("audio/x-raw")
                    .field("rate", i32::try_from(format.rate).unwrap_or(48_000))
                    .field("channels", i32::try_from(format.channels).unwrap_or(2))
                    .build(),
            )
            .build()
            .map_err(internal)?;
        let enc = super::encoders::audio_encoder(&candidate, settings)
            .map_err(|e| internal(e.to_string()))?
            .ok_or_else(|| internal("no AAC encoder"))?;
        let sink = gst_app::AppSink::builder().sync(false).build();
        let chain = [
            &mk("audioconvert")?,
            &mk("audioresample")?,
            &caps,
            &enc,
            sink.upcast_ref(),
        ];
        pipeline.add_many(chain).map_err(internal)?;
        gst::Element::link_many(chain).map_err(internal)?;
        let first = chain[0]
            .static_pad("sink")
            .ok_or_else(|| internal("audioconvert without a sink pad"))?;
        pad.link(&first)
            .map_err(|e| internal(format!("linking the audio: {e:?}")))?;
        let target = target.clone();
        let mut caps_set = false;
        sink.set_callbacks(
            gst_app::AppSinkCallbacks::builder()
                .new_sample(move |s| {
                    let sample = s.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                    if !caps_set {
                        if let Some(c) = sample.caps() {
                            target.set_caps(Some(&c.to_owned()));
                        }
                        caps_set = true;
                    }
                    let Some(buffer) = sample.buffer_owned() else {
                        return Ok(gst::FlowSuccess::Ok);
                    };
                    // Running time, so the sound starts where the picture does whatever
                    // segment the renderer's pipeline used.
                    let seg = sample
                        .segment()
                        .and_then(|s| s.downcast_ref::<gst::ClockTime>().cloned());
                    let mut buffer = buffer;
                    if let Some(seg) = seg {
                        let b = buffer.make_mut();
                        let pts = b.pts().and_then(|p| seg.to_running_time(p));
                        let dts = b.dts().and_then(|p| seg.to_running_time(p));
                        b.set_pts(pts);
                        b.set_dts(dts);
                    }
                    target.push_buffer(buffer)
                })
                .build(),
        );
        sink.sync_state_with_parent().map_err(internal)?;
        for e in &chain[..4] {
            e.sync_state_with_parent().map_err(internal)?;
        }
        Ok(())
    };
    render(plan, &opts, &mut attach, &mut |_| {}, halt)?;
    Ok(candidate.element)
}

/// Distinct sources of a smart plan (for logs and tests).
pub fn sources(sp: &SmartPlan) -> Vec<PathBuf> {
    let mut seen = HashSet::new();
    sp.cuts
        .iter()
        .filter(|c| seen.insert(c.path.clone()))
        .map(|c| c.path.clone())
        .collect()
}
