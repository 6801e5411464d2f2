//! Probing media files: what a file is (container, duration, streams, orientation, tags),
//! whether it is whole, and whether it is within the deployment's limits. Runs GStreamer's
//! Discoverer, then, for timed media, decodes the last second to catch files whose header
//! promises more than the file holds. Meant to run in an isolated child: a hostile file may
//! crash a demuxer.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use gstreamer as gst;
use gstreamer_pbutils as pbutils;
use pbutils::prelude::*;
use serde::{Deserialize, Serialize};

/// What a probe found.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProbeReport {
    /// `video`, `audio` or `image`.
    pub kind: String,
    /// Container caps name (`video/quicktime`, `video/x-matroska`, `audio/x-wav` …), or the
    /// stream's own for bare streams and images.
    pub container: String,
    /// Seconds; absent for still images.
    pub duration: Option<f64>,
    pub seekable: bool,
    pub video: Vec<VideoStream>,
    pub audio: Vec<AudioStream>,
    pub tags: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VideoStream {
    /// Short codec name (`h264`, `vp9`, `png` …).
    pub codec: String,
    pub width: u32,
    pub height: u32,
    /// Frames per second as a fraction; 0/1 for images.
    pub fps_num: i32,
    pub fps_den: i32,
    pub par_num: i32,
    pub par_den: i32,
    /// Clockwise rotation to apply for display: 0, 90, 180 or 270.
    pub rotation: u32,
    /// Mirrored before rotation (`flip-rotate-*` orientations).
    pub flipped: bool,
    pub bit_depth: u32,
    pub has_alpha: bool,
    pub is_image: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AudioStream {
    pub codec: String,
    pub sample_rate: u32,
    pub channels: u32,
    pub bit_depth: u32,
}

/// Why a file is not accepted. `code` is stable; `message` is for people.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct Rejection {
    pub code: &'static str,
    pub message: String,
}

impl Rejection {
    fn new(code: &'static str, message: impl Into<String>) -> Self {
        Rejection {
            code,
            message: message.into(),
        }
    }
}

/// Configured bounds on what may be ingested.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MediaLimits {
    pub max_duration_secs: f64,
    pub max_width: u32,
    pub max_height: u32,
    pub max_pixels: u64,
    pub max_fps: f64,
    pub max_audio_channels: u32,
    pub max_audio_rate: u32,
    /// Short codec names accepted; empty: any.
    pub codecs: Vec<String>,
    /// Container caps names accepted; empty: any.
    pub containers: Vec<String>,
}

/// Probes `path` (a regular file). `timeout` bounds the discovery.
pub fn probe(path: &Path, timeout: Duration) -> Result<ProbeReport, Rejection> {
    let meta = std::fs::metadata(path)
        .map_err(|e| Rejection::new("unreadable", format!("cannot read the file: {e}")))?;
    if meta.len() == 0 {
        return Err(Rejection::new("empty", "the file is empty"));
    }
    check_iso_bmff(path)?;
    crate::elements::inventory().map_err(|e| Rejection::new("internal", e.to_string()))?;
    let abs = std::fs::canonicalize(path)
        .map_err(|e| Rejection::new("unreadable", format!("cannot resolve the path: {e}")))?;
    let uri = gst::glib::filename_to_uri(&abs, None)
        .map_err(|e| Rejection::new("unreadable", e.to_string()))?;
    let clock =
        gst::ClockTime::from_nseconds(u64::try_from(timeout.as_nanos()).unwrap_or(u64::MAX));
    let discoverer =
        pbutils::Discoverer::new(clock).map_err(|e| Rejection::new("internal", e.to_string()))?;
    let info = discoverer
        .discover_uri(&uri)
        .map_err(|e| classify(&e.to_string()))?;
    match info.result() {
        pbutils::DiscovererResult::Ok => {}
        pbutils::DiscovererResult::Timeout => {
            return Err(Rejection::new("timed-out", "probing took too long"));
        }
        pbutils::DiscovererResult::MissingPlugins => {
            return Err(Rejection::new(
                "unsupported-codec",
                "no decoder for this file's format is installed",
            ));
        }
        other => {
            return Err(Rejection::new(
                "not-media",
                format!("not a media file ({other:?})"),
            ));
        }
    }
    let report = report(&info);
    if report.video.is_empty() && report.audio.is_empty() {
        return Err(Rejection::new(
            "not-media",
            "the file has no video, audio or image",
        ));
    }
    if report.kind != "image" {
        check_whole(&uri, &report)?;
    }
    Ok(report)
}

/// MP4/MOV (ISO base media) files carry their index in a `moov` box; without it, or with a
/// box that runs past the end of the file, the file is incomplete. Walking the top-level box
/// headers answers that in a few reads, where a demuxer may wait a long time for data that
/// never comes. Other formats pass through untouched.
fn check_iso_bmff(path: &Path) -> Result<(), Rejection> {
    use std::io::{Read, Seek, SeekFrom};
    let truncated =
        |why: String| Rejection::new("truncated", format!("the file is incomplete: {why}"));
    let Ok(mut file) = std::fs::File::open(path) else {
        return Ok(());
    };
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    let mut header = [0u8; 8];
    if file.read_exact(&mut header).is_err() || &header[4..8] != b"ftyp" {
        return Ok(());
    }
    let mut offset = 0u64;
    let mut has_index = false;
    for _ in 0..100_000 {
        if offset >= len {
            break;
        }
        if file.seek(SeekFrom::Start(offset)).is_err() || file.read_exact(&mut header).is_err() {
            return Err(truncated(format!(
                "a box header at byte {offset} is cut off"
            )));
        }
        let kind = [header[4], header[5], header[6], header[7]];
        let mut size = u64::from(u32::from_be_bytes([
            header[0], header[1], header[2], header[3],
        ]));
        if size == 1 {
            let mut large = [0u8; 8];
            if file.read_exact(&mut large).is_err() {
                return Err(truncated(format!(
                    "a box header at byte {offset} is cut off"
                )));
            }
            size = u64::from_be_bytes(large);
        } else if size == 0 {
            size = len - offset;
        }
        if size < 8 {
            return Err(truncated(format!("a malformed box at byte {offset}")));
        }
        if offset.saturating_add(size) > len {
            return Err(truncated(format!(
                "the '{}' box needs {} bytes but the file ends after {}",
                String::from_utf8_lossy(&kind),
                size,
                len - offset
            )));
        }
        has_index |= &kind == b"moov";
        offset += size;
    }
    if has_index {
        Ok(())
    } else {
        Err(truncated("it has no index ('moov' box)".into()))
    }
}

/// Maps a Discoverer error to a rejection.
fn classify(message: &str) -> Rejection {
    let lower = message.to_ascii_lowercase();
    if lower.contains("moov") || lower.contains("no playable streams") || lower.contains("truncat")
    {
        Rejection::new("truncated", format!("the file is incomplete: {message}"))
    } else if lower.contains("missing") && lower.contains("plugin") {
        Rejection::new("unsupported-codec", message.to_owned())
    } else {
        Rejection::new("not-media", format!("not a media file: {message}"))
    }
}

fn short_codec(caps: Option<&gst::CapsRef>) -> String {
    let Some(s) = caps.and_then(|c| c.structure(0)) else {
        return "unknown".into();
    };
    let name = s.name().as_str();
    let version = |field: &str| s.get::<i32>(field).ok();
    match name {
        "video/x-h264" => "h264".into(),
        "video/x-h265" => "h265".into(),
        "video/x-vp8" => "vp8".into(),
        "video/x-vp9" => "vp9".into(),
        "video/x-av1" => "av1".into(),
        "video/x-prores" => "prores".into(),
        "video/x-theora" => "theora".into(),
        "video/mpeg" => match version("mpegversion") {
            Some(4) => "mpeg4".into(),
            Some(v) => format!("mpeg{v}video"),
            None => "mpegvideo".into(),
        },
        "image/png" => "png".into(),
        "image/jpeg" => "jpeg".into(),
        "image/webp" => "webp".into(),
        "image/gif" => "gif".into(),
        "audio/mpeg" => match (version("mpegversion"), version("layer")) {
            (Some(1), Some(3)) | (Some(1), None) => "mp3".into(),
            (Some(2 | 4), _) => "aac".into(),
            _ => "mpegaudio".into(),
        },
        "audio/x-opus" => "opus".into(),
        "audio/x-vorbis" => "vorbis".into(),
        "audio/x-flac" => "flac".into(),
        // Discoverer reports a WAV/AIFF file's stream with the container's caps.
        "audio/x-raw" | "audio/x-wav" | "audio/x-aiff" => "pcm".into(),
        "audio/x-ac3" => "ac3".into(),
        other => other
            .rsplit('/')
            .next()
            .unwrap_or(other)
            .trim_start_matches("x-")
            .into(),
    }
}

/// Rotation and mirroring from an `image-orientation` tag.
fn orientation(tags: Option<&gst::TagListRef>) -> Option<(u32, bool)> {
    let value = tags?.get::<gst::tags::ImageOrientation>()?;
    let v = value.get();
    let (flipped, rest) = match v.strip_prefix("flip-") {
        Some(r) => (true, r),
        None => (false, v),
    };
    let degrees = rest.strip_prefix("rotate-")?.parse::<u32>().ok()?;
    Some((degrees % 360, flipped))
}

fn report(info: &pbutils::DiscovererInfo) -> ProbeReport {
    let top = info.stream_info();
    let container = top
        .as_ref()
        .and_then(|s| s.caps())
        .and_then(|c| c.structure(0).map(|s| s.name().to_string()))
        .unwrap_or_else(|| "unknown".into());
    // Container-level tags (DiscovererInfo::tags is deprecated since 1.20).
    let global = top.as_ref().and_then(|s| s.tags());
    let video: Vec<VideoStream> = info
        .video_streams()
        .iter()
        .map(|v| {
            let caps = v.caps();
            let (rotation, flipped) = orientation(v.tags().as_deref())
                .or_else(|| orientation(global.as_deref()))
                .unwrap_or((0, false));
            let fps = v.framerate();
            let par = v.par();
            let format = caps
                .as_ref()
                .and_then(|c| c.structure(0))
                .and_then(|s| s.get::<String>("format").ok())
                .unwrap_or_default();
            let codec = short_codec(caps.as_deref());
            VideoStream {
                has_alpha: codec == "png" && matches!(format.as_str(), "" | "RGBA")
                    || format.contains('A'),
                codec,
                width: v.width(),
                height: v.height(),
                fps_num: fps.numer(),
                fps_den: fps.denom().max(1),
                par_num: par.numer().max(1),
                par_den: par.denom().max(1),
                rotation,
                flipped,
                bit_depth: v.depth(),
                is_image: v.is_image(),
            }
        })
        .collect();
    let audio = info
        .audio_streams()
        .iter()
        .map(|a| AudioStream {
            codec: short_codec(a.caps().as_deref()),
            sample_rate: a.sample_rate(),
            channels: a.channels(),
            bit_depth: a.depth(),
        })
        .collect::<Vec<_>>();
    let is_image = !video.is_empty() && video.iter().all(|v| v.is_image) && audio.is_empty();
    let kind = if is_image {
        "image"
    } else if video.is_empty() {
        "audio"
    } else {
        "video"
    };
    let mut tags = BTreeMap::new();
    if let Some(list) = global.as_ref() {
        for (name, values) in list.iter_generic() {
            if let Some(first) = values.into_iter().next()
                && let Ok(text) = first.transform::<String>()
                && let Ok(text) = text.get::<String>()
                && text.len() <= 512
            {
                tags.insert(name.to_string(), text);
            }
        }
    }
    ProbeReport {
        kind: kind.into(),
        container,
        duration: if is_image {
            None
        } else {
            info.duration().map(|d| d.nseconds() as f64 / 1e9)
        },
        seekable: info.is_seekable(),
        video,
        audio,
        tags,
    }
}

/// Decodes the last second: a file cut short (or with a lying header) fails here, not in
/// the middle of someone's render.
fn check_whole(uri: &str, report: &ProbeReport) -> Result<(), Rejection> {
    let Some(duration) = report.duration.filter(|d| *d > 0.0) else {
        return Ok(());
    };
    // One fakesink per decoded stream, linked as uridecodebin exposes them.
    let pipeline = gst::Pipeline::new();
    let decode = gst::ElementFactory::make("uridecodebin")
        .property("uri", uri)
        .build()
        .map_err(|e| Rejection::new("internal", e.to_string()))?;
    pipeline
        .add(&decode)
        .map_err(|e| Rejection::new("internal", e.to_string()))?;
    let sinks: std::sync::Arc<std::sync::Mutex<Vec<gst::Element>>> = Default::default();
    let added = sinks.clone();
    let weak = pipeline.downgrade();
    decode.connect_pad_added(move |_, pad| {
        let Some(pipeline) = weak.upgrade() else {
            return;
        };
        let Ok(sink) = gst::ElementFactory::make("fakesink")
            .property("sync", false)
            .build()
        else {
            return;
        };
        if pipeline.add(&sink).is_ok() {
            if let Ok(mut list) = added.lock() {
                list.push(sink.clone());
            }
            let _ = sink.sync_state_with_parent();
            if let Some(sinkpad) = sink.static_pad("sink") {
                let _ = pad.link(&sinkpad);
            }
        }
    });
    let bus = pipeline
        .bus()
        .ok_or_else(|| Rejection::new("internal", "no bus"))?;
    let fail = |pipeline: &gst::Pipeline, r: Rejection| {
        let _ = pipeline.set_state(gst::State::Null);
        Err(r)
    };
    if pipeline.set_state(gst::State::Paused).is_err() {
        return fail(
            &pipeline,
            Rejection::new("truncated", "the file cannot be decoded"),
        );
    }
    // Wait for preroll.
    let prerolled = wait(&bus, Duration::from_secs(20), |m| {
        matches!(m.view(), gst::MessageView::AsyncDone(_))
    });
    if let Err(e) = prerolled {
        return fail(&pipeline, e);
    }
    let target = gst::ClockTime::from_nseconds(((duration - 1.0).max(0.0) * 1e9) as u64);
    if pipeline
        .seek_simple(gst::SeekFlags::FLUSH | gst::SeekFlags::KEY_UNIT, target)
        .is_err()
    {
        return fail(
            &pipeline,
            Rejection::new("truncated", "the file cannot be sought to its end"),
        );
    }
    if pipeline.set_state(gst::State::Playing).is_err() {
        return fail(
            &pipeline,
            Rejection::new("truncated", "the file cannot be decoded"),
        );
    }
    // A demuxer may wait forever for data a cut file does not have: a time-out here is
    // judged by how far the streams got.
    let ended = wait(&bus, Duration::from_secs(10), |m| {
        matches!(m.view(), gst::MessageView::Eos(_))
    });
    // A demuxer may simply stop early on a file cut short: every stream must have reached
    // (nearly) the duration the header announced.
    let reached = sinks
        .lock()
        .map(|list| list.iter().map(last_end).collect::<Vec<_>>())
        .unwrap_or_default();
    let _ = pipeline.set_state(gst::State::Null);
    match ended {
        Err(e) if e.code != "timed-out" => return Err(e),
        _ => {}
    }
    let shortest = reached.iter().copied().fold(f64::INFINITY, f64::min);
    if reached.is_empty() || shortest < duration - 0.5 {
        return Err(Rejection::new(
            "truncated",
            format!(
                "the file is incomplete: its media ends at {:.2} s of the {duration:.2} s it announces",
                if shortest.is_finite() { shortest } else { 0.0 }
            ),
        ));
    }
    Ok(())
}

/// Where the last buffer a fakesink saw ends, in seconds (0 when it saw none).
fn last_end(sink: &gst::Element) -> f64 {
    let Some(sample) = sink.property::<Option<gst::Sample>>("last-sample") else {
        return 0.0;
    };
    let Some(buffer) = sample.buffer() else {
        return 0.0;
    };
    let pts = buffer.pts().map(|t| t.nseconds()).unwrap_or(0);
    let dur = buffer.duration().map(|t| t.nseconds()).unwrap_or(0);
    // Buffer times are in segment time; after a flushing seek the segment starts at 0 but
    // running time is what reached the sink, so convert through the segment when present.
    let segment = sample.segment();
    let stream = segment
        .and_then(|s| s.downcast_ref::<gst::format::Time>())
        .and_then(|s| s.to_stream_time(gst::ClockTime::from_nseconds(pts + dur)))
        .map(|t| t.nseconds())
        .unwrap_or(pts + dur);
    stream as f64 / 1e9
}

/// Pops bus messages until `done` accepts one; an error message is a truncated file.
fn wait(
    bus: &gst::Bus,
    limit: Duration,
    done: impl Fn(&gst::Message) -> bool,
) -> Result<(), Rejection> {
    let deadline = std::time::Instant::now() + limit;
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() {
            return Err(Rejection::new(
                "timed-out",
                "decoding the end of the file took too long",
            ));
        }
        let Some(msg) = bus.timed_pop(gst::ClockTime::from_mseconds(left.as_millis() as u64))
        else {
            continue;
        };
        if let gst::MessageView::Error(e) = msg.view() {
            return Err(Rejection::new(
                "truncated",
                format!("the file is damaged or incomplete: {}", e.error()),
            ));
        }
        if done(&msg) {
            return Ok(());
        }
    }
}

/// Checks a report against the limits; the first broken limit is the rejection.
pub fn check_limits(r: &ProbeReport, l: &MediaLimits) -> Result<(), Rejection> {
    if !l.containers.is_empty() && r.kind != "image" && !l.containers.contains(&r.container) {
        return Err(Rejection::new(
            "unsupported-container",
            format!("{} files are not accepted here", r.container),
        ));
    }
    if let Some(d) = r.duration
        && d > l.max_duration_secs
    {
        return Err(Rejection::new(
            "too-long",
            format!(
                "{d:.1} s is longer than the {:.0} s allowed",
                l.max_duration_secs
            ),
        ));
    }
    for v in &r.video {
        if !l.codecs.is_empty() && !l.codecs.contains(&v.codec) {
            return Err(Rejection::new(
                "unsupported-codec",
                format!("video codec {} is not accepted", v.codec),
            ));
        }
        if v.width > l.max_width || v.height > l.max_height {
            return Err(Rejection::new(
                "too-large",
                format!(
                    "{}x{} exceeds the {}x{} allowed",
                    v.width, v.height, l.max_width, l.max_height
                ),
            ));
        }
        if u64::from(v.width) * u64::from(v.height) > l.max_pixels {
            return Err(Rejection::new(
                "too-large",
                format!(
                    "{} pixels per frame exceeds {}",
                    u64::from(v.width) * u64::from(v.height),
                    l.max_pixels
                ),
            ));
        }
        if v.fps_den > 0 && f64::from(v.fps_num) / f64::from(v.fps_den) > l.max_fps {
            return Err(Rejection::new(
                "frame-rate-too-high",
                format!("{}/{} fps exceeds {} fps", v.fps_num, v.fps_den, l.max_fps),
            ));
        }
    }
    for a in &r.audio {
        if !l.codecs.is_empty() && !l.codecs.contains(&a.codec) {
            return Err(Rejection::new(
                "unsupported-codec",
                format!("audio codec {} is not accepted", a.codec),
            ));
        }
        if a.channels > l.max_audio_channels {
            return Err(Rejection::new(
                "too-many-channels",
                format!(
                    "{} audio channels exceed {}",
                    a.channels, l.max_audio_channels
                ),
            ));
        }
        if a.sample_rate > l.max_audio_rate {
            return Err(Rejection::new(
                "sample-rate-too-high",
                format!("{} Hz exceeds {} Hz", a.sample_rate, l.max_audio_rate),
            ));
        }
    }
    Ok(())
}
