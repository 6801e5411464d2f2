//! Waveform peaks for the timeline: the minimum and maximum sample of each channel over fixed
//! runs of samples ("buckets"), at a few zoom levels, from one decoding pass.
//!
//! The shape follows the data of BBC's `audiowaveform` JSON (which peaks.js and similar editor
//! components read): per bucket, per channel, a `min, max` pair of 8-bit values. Levels are
//! given in samples per bucket at the source's own rate (no resampling); each level is a whole
//! multiple of the one before, so only the finest is computed from samples and every coarser
//! bucket is folded from finer ones. Memory is the size of the output, not of the input.

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use gst::prelude::*;
use gstreamer as gst;
use serde::{Deserialize, Serialize};

/// Which levels to compute.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct WaveformSpec {
    /// Samples per bucket of each level, finest first; each a multiple of the one before.
    pub samples_per_bucket: Vec<u32>,
    /// 2: stereo stays stereo and more channels are mixed down to two; 1: everything is mixed
    /// to mono.
    pub max_channels: u32,
    /// A level that would hold more buckets than this is left out (the coarser ones remain), so
    /// a six-hour recording does not produce a 50 MB document.
    pub max_buckets: u64,
}

impl Default for WaveformSpec {
    fn default() -> Self {
        WaveformSpec {
            samples_per_bucket: vec![256, 1024, 4096, 16384],
            max_channels: 2,
            max_buckets: 2_000_000,
        }
    }
}

/// Peaks of one file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Waveform {
    /// Format version of this document.
    pub version: u32,
    /// Samples per second per channel (the source's rate).
    pub sample_rate: u32,
    /// 1 or 2.
    pub channels: u32,
    /// Bits per value in `data`: values are in -127..=127 (full scale).
    pub bits: u32,
    /// Samples per channel decoded.
    pub samples: u64,
    /// Seconds of audio (`samples / sample_rate`).
    pub duration: f64,
    /// Finest first.
    pub levels: Vec<Level>,
}

/// One zoom level.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Level {
    pub samples_per_bucket: u32,
    /// `sample_rate / samples_per_bucket`: bucket `i` starts at `i / buckets_per_second` s.
    pub buckets_per_second: f64,
    /// Number of buckets; the last one may cover fewer samples.
    pub length: u64,
    /// `length × channels × 2` values: for each bucket, for each channel, min then max.
    pub data: Vec<i8>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct WaveformError {
    pub code: &'static str,
    pub message: String,
}

fn err(code: &'static str, message: impl Into<String>) -> WaveformError {
    WaveformError {
        code,
        message: message.into(),
    }
}

const CODES: &[&str] = &["not-decodable", "no-audio", "internal"];

/// How long decoding may stand still before the job is declared stuck.
const STALL: Duration = Duration::from_secs(120);

fn validate(spec: &WaveformSpec) -> Result<(), WaveformError> {
    let bad = |m: String| Err(err("invalid-spec", m));
    let levels = &spec.samples_per_bucket;
    if levels.is_empty() || levels.len() > 16 {
        return bad(format!("{} levels (1 to 16 allowed)", levels.len()));
    }
    if levels[0] == 0 {
        return bad("samples_per_bucket must be at least 1".into());
    }
    for pair in levels.windows(2) {
        if pair[1] <= pair[0] || pair[1] % pair[0] != 0 {
            return bad(format!(
                "{} is not a larger multiple of {}",
                pair[1], pair[0]
            ));
        }
    }
    if !(1..=2).contains(&spec.max_channels) {
        return bad(format!("max_channels {} is not 1 or 2", spec.max_channels));
    }
    if spec.max_buckets == 0 {
        return bad("max_buckets must be at least 1".into());
    }
    Ok(())
}

/// A full-scale float sample as an 8-bit peak value.
fn quantise(v: f32) -> i8 {
    // Float → int casts saturate in Rust, and NaN becomes 0.
    (v * 127.0).round().clamp(-127.0, 127.0) as i8
}

/// One level's running bucket and its output.
struct LevelAcc {
    samples_per_bucket: u32,
    /// Finer buckets (or samples, for the finest level) per bucket of this level.
    ratio: u64,
    filled: u64,
    min: [f32; 2],
    max: [f32; 2],
    length: u64,
    /// None once the level outgrew `max_buckets`.
    data: Option<Vec<i8>>,
}

/// Folds samples into buckets at every level.
struct Analyser {
    channels: usize,
    max_buckets: u64,
    levels: Vec<LevelAcc>,
    samples: u64,
}

impl Analyser {
    fn new(spec: &WaveformSpec, channels: usize) -> Self {
        let mut prev = 1u64;
        let levels = spec
            .samples_per_bucket
            .iter()
            .map(|&spb| {
                let ratio = u64::from(spb) / prev;
                prev = u64::from(spb);
                LevelAcc {
                    samples_per_bucket: spb,
                    ratio,
                    filled: 0,
                    min: [f32::INFINITY; 2],
                    max: [f32::NEG_INFINITY; 2],
                    length: 0,
                    data: Some(Vec::new()),
                }
            })
            .collect();
        Analyser {
            channels: channels.clamp(1, 2),
            max_buckets: spec.max_buckets,
            levels,
            samples: 0,
        }
    }

    /// Interleaved full-scale F32LE frames, as the pipeline delivers them; a trailing partial
    /// frame is ignored.
    fn push_bytes(&mut self, bytes: &[u8]) {
        let ch = self.channels;
        for frame in bytes.chunks_exact(4 * ch) {
            let first = &mut self.levels[0];
            for (c, b) in frame.chunks_exact(4).enumerate() {
                let v = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
                first.min[c] = first.min[c].min(v);
                first.max[c] = first.max[c].max(v);
            }
            first.filled += 1;
            self.samples += 1;
            if first.filled == first.ratio {
                self.close(0);
            }
        }
    }

    /// Ends level `i`'s bucket and folds it into the next level.
    fn close(&mut self, i: usize) {
        let ch = self.channels;
        let (min, max) = {
            let level = &mut self.levels[i];
            let (min, max) = (level.min, level.max);
            level.length += 1;
            if level.length > self.max_buckets {
                level.data = None;
            }
            if let Some(data) = level.data.as_mut() {
                for c in 0..ch {
                    data.push(quantise(min[c]));
                    data.push(quantise(max[c]));
                }
            }
            level.filled = 0;
            level.min = [f32::INFINITY; 2];
            level.max = [f32::NEG_INFINITY; 2];
            (min, max)
        };
        if let Some(next) = self.levels.get_mut(i + 1) {
            for c in 0..ch {
                next.min[c] = next.min[c].min(min[c]);
                next.max[c] = next.max[c].max(max[c]);
            }
            next.filled += 1;
            if next.filled == next.ratio {
                self.close(i + 1);
            }
        }
    }

    /// Closes the partial buckets at the end. Folding a partial bucket may complete the next
    /// level's last bucket, which `close` then ends itself; either way each level ends with
    /// one bucket for its remaining samples.
    fn finish(mut self, sample_rate: u32) -> Waveform {
        for i in 0..self.levels.len() {
            if self.levels[i].filled > 0 {
                self.close(i);
            }
        }
        let channels = self.channels as u32;
        let levels = self
            .levels
            .into_iter()
            .filter_map(|l| {
                let data = l.data?;
                Some(Level {
                    samples_per_bucket: l.samples_per_bucket,
                    buckets_per_second: f64::from(sample_rate) / f64::from(l.samples_per_bucket),
                    length: l.length,
                    data,
                })
            })
            .collect();
        Waveform {
            version: 1,
            sample_rate,
            channels,
            bits: 8,
            samples: self.samples,
            duration: if sample_rate > 0 {
                self.samples as f64 / f64::from(sample_rate)
            } else {
                0.0
            },
            levels,
        }
    }
}

/// An `autoplug-continue` answer: whether decodebin should go on plugging elements for a
/// stream, given `wanted(caps name)`. What typefind found is the container (`video/quicktime`
/// for an MP4 holding only sound), never a stream to stop at.
pub(crate) fn keep_plugging(values: &[gst::glib::Value], wanted: impl Fn(&str) -> bool) -> bool {
    // decodebin passes its own ghost pad; the element behind it is what produced the caps.
    let from_typefind = values
        .get(1)
        .and_then(|v| v.get::<gst::Pad>().ok())
        .and_then(|p| match p.downcast_ref::<gst::GhostPad>() {
            Some(g) => g.target(),
            None => Some(p),
        })
        .and_then(|p| p.parent_element())
        .and_then(|e| e.factory())
        .map(|f| f.name() == "typefind")
        .unwrap_or(false);
    if from_typefind {
        return true;
    }
    values
        .get(2)
        .and_then(|v| v.get::<gst::Caps>().ok())
        .and_then(|c| c.structure(0).map(|s| wanted(s.name().as_str())))
        .unwrap_or(true)
}

struct Shared {
    spec: WaveformSpec,
    audio_seen: AtomicBool,
    analyser: Mutex<Option<(Analyser, u32)>>,
    /// Stream time reached (ns), for the stall guard.
    reached: AtomicU64,
}

fn post_failure(element: &gst::Element, code: &'static str, message: String) {
    tracing::debug!(code, %message, "waveform branch failed");
    let s = gst::Structure::builder("nve-waveform-failure")
        .field("code", code)
        .field("message", message)
        .build();
    let _ = element.post_message(gst::message::Application::builder(s).src(element).build());
}

fn discard(pipeline: &gst::Pipeline, pad: &gst::Pad) -> Result<(), WaveformError> {
    let sink = gst::ElementFactory::make("fakesink")
        .property("sync", false)
        .property("async", false)
        .build()
        .map_err(|e| err("internal", e.to_string()))?;
    pipeline
        .add(&sink)
        .map_err(|e| err("internal", e.to_string()))?;
    sink.sync_state_with_parent()
        .map_err(|e| err("internal", e.to_string()))?;
    let sinkpad = sink
        .static_pad("sink")
        .ok_or_else(|| err("internal", "fakesink without a pad"))?;
    pad.link(&sinkpad)
        .map(|_| ())
        .map_err(|e| err("internal", format!("{e:?}")))
}

fn audio_branch(
    pipeline: &gst::Pipeline,
    shared: &Arc<Shared>,
    pad: &gst::Pad,
    caps: &gst::CapsRef,
) -> Result<(), WaveformError> {
    let s = caps
        .structure(0)
        .ok_or_else(|| err("not-decodable", "the audio decoder announced no format"))?;
    let rate = s
        .get::<i32>("rate")
        .ok()
        .and_then(|r| u32::try_from(r).ok())
        .filter(|r| *r > 0)
        .ok_or_else(|| err("not-decodable", "the decoded audio has no sample rate"))?;
    let source_channels = s
        .get::<i32>("channels")
        .ok()
        .and_then(|c| u32::try_from(c).ok())
        .unwrap_or(1)
        .max(1);
    let channels = source_channels.min(shared.spec.max_channels);
    let make = |f: &str| {
        gst::ElementFactory::make(f)
            .build()
            .map_err(|e| err("internal", format!("cannot create {f}: {e}")))
    };
    let queue = make("queue")?;
    let convert = make("audioconvert")?;
    if channels == 2
        && source_channels > 2
        && let Ok(mask) = s.get::<gst::Bitmask>("channel-mask")
        && let Some(matrix) = stereo_downmix(mask.0, source_channels)
    {
        convert.set_property("mix-matrix", matrix);
    }
    // Same rate as the source: bucket boundaries stay exact sample counts and nothing is
    // resampled; F32 so every source depth compares on one scale.
    let filter = gst::ElementFactory::make("capsfilter")
        .property(
            "caps",
            gst::Caps::builder("audio/x-raw")
                .field("format", "F32LE")
                .field("layout", "interleaved")
                .field("rate", i32::try_from(rate).unwrap_or(48_000))
                .field("channels", i32::try_from(channels).unwrap_or(2))
                .build(),
        )
        .build()
        .map_err(|e| err("internal", e.to_string()))?;
    // Gaps in the timestamps become silence, so bucket i is at i / buckets_per_second seconds
    // even when the stream has holes.
    let audiorate = make("audiorate")?;
    let sink = gst::ElementFactory::make("fakesink")
        .property("sync", false)
        .build()
        .map_err(|e| err("internal", e.to_string()))?;
    // Passthrough at the source's rate; it only works if the stream changes rate midway
    // (concatenated files), where the filter's fixed rate would otherwise stop the pipeline.
    let resample = make("audioresample")?;
    let chain = [&queue, &convert, &resample, &filter, &audiorate, &sink];
    pipeline
        .add_many(chain)
        .map_err(|e| err("internal", e.to_string()))?;
    gst::Element::link_many(chain).map_err(|e| err("internal", e.to_string()))?;

    if let Ok(mut a) = shared.analyser.lock() {
        *a = Some((Analyser::new(&shared.spec, channels as usize), rate));
    }
    let sinkpad = sink
        .static_pad("sink")
        .ok_or_else(|| err("internal", "fakesink without a pad"))?;
    let analyse = Arc::clone(shared);
    sinkpad.add_probe(
        gst::PadProbeType::BUFFER | gst::PadProbeType::BUFFER_LIST,
        move |_, info| {
            let feed = |buffer: &gst::BufferRef| {
                if let Some(pts) = buffer.pts() {
                    let end = pts + buffer.duration().unwrap_or(gst::ClockTime::ZERO);
                    analyse.reached.fetch_max(end.nseconds(), Ordering::Relaxed);
                }
                let Ok(map) = buffer.map_readable() else {
                    return;
                };
                if let Ok(mut guard) = analyse.analyser.lock()
                    && let Some((a, _)) = guard.as_mut()
                {
                    a.push_bytes(&map);
                }
            };
            if let Some(b) = info.buffer() {
                feed(b);
            } else if let Some(list) = info.buffer_list() {
                for b in list.iter() {
                    feed(b);
                }
            }
            gst::PadProbeReturn::Ok
        },
    );
    for e in chain.iter().rev() {
        e.sync_state_with_parent()
            .map_err(|e| err("internal", e.to_string()))?;
    }
    let q_sink = queue
        .static_pad("sink")
        .ok_or_else(|| err("internal", "queue without a pad"))?;
    pad.link(&q_sink)
        .map(|_| ())
        .map_err(|e| err("internal", format!("cannot link the audio: {e:?}")))
}

/// A stereo mix of positioned channels for display: front left/right at full level, centre
/// channels at -3 dB into both sides, every other left or right channel at -3 dB into its
/// side, LFE left out. audioconvert's own matrix is normalised so that nothing can clip,
/// which shows a 5.1 track at a fifth of its level; a waveform wants the loudness, and a peak
/// beyond full scale simply saturates. None for unpositioned channels (audioconvert's default
/// applies then).
fn stereo_downmix(mask: u64, channels: u32) -> Option<gst::Array> {
    // GstAudioChannelPosition numbers; interleaved order follows increasing position.
    const LEFT: &[u32] = &[0, 4, 6, 10, 12, 16, 18, 22, 24, 26];
    const RIGHT: &[u32] = &[1, 5, 7, 11, 13, 17, 19, 23, 25, 27];
    const CENTRE: &[u32] = &[2, 8, 14, 15, 20, 21];
    const HALF_POWER: f32 = std::f32::consts::FRAC_1_SQRT_2;
    let positions: Vec<u32> = (0..64).filter(|b| mask & (1u64 << b) != 0).collect();
    if positions.len() != channels as usize {
        return None;
    }
    let gain = |side: &[u32], front: u32, p: u32| -> f32 {
        if p == front {
            1.0
        } else if side.contains(&p) || CENTRE.contains(&p) {
            HALF_POWER
        } else {
            0.0
        }
    };
    let row = |side: &'static [u32], front: u32| {
        gst::Array::new(positions.iter().map(|p| gain(side, front, *p)))
    };
    Some(gst::Array::new([row(LEFT, 0), row(RIGHT, 1)]))
}

/// Computes the peaks of the first audio stream of `input` (an audio file or a video's sound).
pub fn peaks(input: &Path, spec: &WaveformSpec) -> Result<Waveform, WaveformError> {
    validate(spec)?;
    crate::elements::inventory().map_err(|e| err("internal", e.to_string()))?;
    let abs = std::fs::canonicalize(input).map_err(|e| err("unreadable", e.to_string()))?;
    if !abs.is_file() {
        return Err(err("unreadable", "not a regular file"));
    }
    let uri =
        gst::glib::filename_to_uri(&abs, None).map_err(|e| err("unreadable", e.to_string()))?;

    let pipeline = gst::Pipeline::new();
    let decode = gst::ElementFactory::make("uridecodebin")
        .property("uri", uri.as_str())
        .build()
        .map_err(|e| err("internal", e.to_string()))?;
    pipeline
        .add(&decode)
        .map_err(|e| err("internal", e.to_string()))?;
    // Stop at the demuxer for everything but audio: decoding a video's pictures only to throw
    // them away would cost more than the whole analysis.
    decode.connect("autoplug-continue", false, |values| {
        Some(
            keep_plugging(values, |name| {
                name.starts_with("audio/") || name.starts_with("application/")
            })
            .to_value(),
        )
    });
    let shared = Arc::new(Shared {
        spec: spec.clone(),
        audio_seen: AtomicBool::new(false),
        analyser: Mutex::new(None),
        reached: AtomicU64::new(0),
    });
    let weak = pipeline.downgrade();
    let on_pad = Arc::clone(&shared);
    decode.connect_pad_added(move |decode, pad| {
        let Some(pipeline) = weak.upgrade() else {
            return;
        };
        let caps = pad.current_caps().unwrap_or_else(|| pad.query_caps(None));
        let is_raw_audio = caps
            .structure(0)
            .map(|s| s.name() == "audio/x-raw")
            .unwrap_or(false);
        let result = if is_raw_audio && !on_pad.audio_seen.swap(true, Ordering::AcqRel) {
            audio_branch(&pipeline, &on_pad, pad, &caps)
        } else {
            discard(&pipeline, pad)
        };
        if let Err(e) = result {
            post_failure(decode, e.code, e.message);
        }
    });
    let on_done = Arc::clone(&shared);
    decode.connect_no_more_pads(move |decode| {
        if !on_done.audio_seen.load(Ordering::Acquire) {
            post_failure(decode, "no-audio", "the file has no audio stream".into());
        }
    });

    let bus = pipeline.bus().ok_or_else(|| err("internal", "no bus"))?;
    let outcome = (|| {
        if pipeline.set_state(gst::State::Playing).is_err() {
            return Err(first_error(&bus)
                .unwrap_or_else(|| err("not-decodable", "the file cannot be decoded")));
        }
        watch(&bus, &shared)
    })();
    let _ = pipeline.set_state(gst::State::Null);
    outcome?;
    let (analyser, rate) = shared
        .analyser
        .lock()
        .ok()
        .and_then(|mut a| a.take())
        .ok_or_else(|| err("no-audio", "no audio was decoded"))?;
    Ok(analyser.finish(rate))
}

fn watch(bus: &gst::Bus, shared: &Shared) -> Result<(), WaveformError> {
    let mut last = 0u64;
    let mut last_move = Instant::now();
    loop {
        if let Some(msg) = bus.timed_pop(gst::ClockTime::from_mseconds(100)) {
            match msg.view() {
                gst::MessageView::Eos(_) => return Ok(()),
                gst::MessageView::Error(e) => return Err(classify(e)),
                gst::MessageView::Application(a) => {
                    if let Some(f) = failure(a.structure()) {
                        return Err(f);
                    }
                }
                _ => {}
            }
        }
        let reached = shared.reached.load(Ordering::Relaxed);
        if reached != last {
            last = reached;
            last_move = Instant::now();
        } else if last_move.elapsed() > STALL {
            return Err(err(
                "timed-out",
                format!("no progress for {} s", STALL.as_secs()),
            ));
        }
    }
}

fn failure(s: Option<&gst::StructureRef>) -> Option<WaveformError> {
    let s = s.filter(|s| s.name() == "nve-waveform-failure")?;
    let code = s.get::<&str>("code").ok()?;
    let code = CODES
        .iter()
        .find(|c| **c == code)
        .copied()
        .unwrap_or("internal");
    Some(err(code, s.get::<String>("message").unwrap_or_default()))
}

fn first_error(bus: &gst::Bus) -> Option<WaveformError> {
    while let Some(msg) = bus.pop() {
        match msg.view() {
            gst::MessageView::Error(e) => return Some(classify(e)),
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

/// Everything in this pipeline reads the input, so a runtime error is the input's, except a
/// missing decoder, which is the installation's.
fn classify(e: &gst::message::Error) -> WaveformError {
    let error = e.error();
    let text = match e.debug() {
        Some(d) => format!("{error} ({d})"),
        None => error.to_string(),
    };
    if matches!(
        error.kind::<gst::StreamError>(),
        Some(gst::StreamError::CodecNotFound)
    ) || matches!(
        error.kind::<gst::CoreError>(),
        Some(gst::CoreError::MissingPlugin)
    ) {
        return err("unsupported-codec", text);
    }
    err("not-decodable", text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn push(a: &mut Analyser, samples: &[f32]) {
        let bytes: Vec<u8> = samples.iter().flat_map(|v| v.to_le_bytes()).collect();
        a.push_bytes(&bytes);
    }

    fn spec(levels: &[u32]) -> WaveformSpec {
        WaveformSpec {
            samples_per_bucket: levels.to_vec(),
            ..WaveformSpec::default()
        }
    }

    #[test]
    fn coarse_levels_are_the_extremes_of_the_fine_ones() {
        // A deterministic, jumpy signal of 10,000 stereo frames (not a multiple of any level).
        let mut x = 12345u32;
        let frames: Vec<f32> = (0..20_000)
            .map(|_| {
                x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
                ((x >> 16) as f32 / 32768.0) - 1.0
            })
            .collect();
        let mut a = Analyser::new(&spec(&[4, 16, 64]), 2);
        // Fed in odd-sized pieces, as buffers arrive.
        for piece in frames.chunks(2 * 37) {
            push(&mut a, piece);
        }
        let w = a.finish(48_000);
        assert_eq!(w.samples, 10_000);
        assert_eq!(w.levels.len(), 3);
        assert_eq!(w.levels[0].length, 2500);
        assert_eq!(w.levels[1].length, 625);
        assert_eq!(w.levels[2].length, 157); // 10000 / 64 = 156.25
        for (fine, coarse) in [(0usize, 1usize), (1, 2)] {
            let (f, c) = (&w.levels[fine], &w.levels[coarse]);
            let ratio = (c.samples_per_bucket / f.samples_per_bucket) as usize;
            assert_eq!(c.data.len() as u64, c.length * 4);
            for b in 0..c.length as usize {
                for ch in 0..2 {
                    let part: Vec<usize> =
                        (b * ratio..((b + 1) * ratio).min(f.length as usize)).collect();
                    let min = part.iter().map(|i| f.data[i * 4 + ch * 2]).min();
                    let max = part.iter().map(|i| f.data[i * 4 + ch * 2 + 1]).max();
                    assert_eq!(
                        Some(c.data[b * 4 + ch * 2]),
                        min,
                        "level {coarse} bucket {b}"
                    );
                    assert_eq!(
                        Some(c.data[b * 4 + ch * 2 + 1]),
                        max,
                        "level {coarse} bucket {b}"
                    );
                }
            }
        }
        // The finest level straight from the samples.
        for b in [0usize, 1, 1234, 2499] {
            let frames = &frames[b * 8..(b + 1) * 8];
            let left_max = frames.iter().step_by(2).copied().fold(f32::MIN, f32::max);
            assert_eq!(w.levels[0].data[b * 4 + 1], quantise(left_max));
        }
    }

    #[test]
    fn oversized_levels_are_dropped_and_the_rest_kept() {
        let mut s = spec(&[1, 10]);
        s.max_buckets = 50;
        let mut a = Analyser::new(&s, 1);
        push(&mut a, &[0.5f32; 100]);
        let w = a.finish(8000);
        assert_eq!(w.levels.len(), 1);
        assert_eq!(w.levels[0].samples_per_bucket, 10);
        assert_eq!(w.levels[0].data, vec![64i8; 20]);
    }

    #[test]
    fn specs_are_checked() {
        assert!(validate(&WaveformSpec::default()).is_ok());
        assert_eq!(
            validate(&spec(&[256, 1000])).map_err(|e| e.code),
            Err("invalid-spec")
        );
        assert_eq!(
            validate(&spec(&[])).map_err(|e| e.code),
            Err("invalid-spec")
        );
        let s = WaveformSpec {
            max_channels: 3,
            ..WaveformSpec::default()
        };
        assert_eq!(validate(&s).map_err(|e| e.code), Err("invalid-spec"));
    }

    #[test]
    fn quantising_saturates() {
        assert_eq!(quantise(1.5), 127);
        assert_eq!(quantise(-1.0), -127);
        assert_eq!(quantise(0.5), 64);
        assert_eq!(quantise(f32::NAN), 0);
    }
}
