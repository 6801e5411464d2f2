//! The render planner: a validated [`Timeline`] plus facts about its sources → a
//! [`RenderPlan`], plain data that says, frame by frame, what the output shows and plays.
//!
//! No GStreamer here. The plan is what the builder (`build.rs`) turns into a pipeline, what
//! `nve render --print-plan` prints, and what the unit tests (`plan_tests.rs`) check. Everything
//! the builder cannot render exactly is refused here with [`RenderError::Unsupported`], so a plan
//! that exists can be rendered.
//!
//! Conventions (see `docs/rendering.md`):
//! * frames are output frames; span and segment positions are relative to the range start;
//! * a clip's frame `k` (0-based from its start) shows the source at position
//!   `in_point + k × speed` output frames (`in_point + (duration − 1 − k) × speed` reversed);
//!   the picture is the source frame on screen at that time (the latest with a timestamp ≤ it);
//! * transition progress of the transition's frame `j` of `d` is `(j + 0.5) / d`.

use std::fmt;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::RenderError;
use crate::timeline::{
    AnimProp, Clip, Effect, Fit, Interpolation, Rgba, Source, Timeline, Title, Track, TrackKind,
    Transition, TransitionKind,
};

/// Reversed clips are decoded forwards and played back from memory; this bounds the decoded
/// frames one reversed span may hold.
pub const REVERSE_MEMORY_LIMIT: u64 = 1 << 30;

/// Sound played at another speed or backwards is decoded into memory first (about 23 MiB a
/// minute of stereo at 48 kHz, twice: decoded and retimed); this bounds one clip's stretch.
pub const RETIMED_SOUND_LIMIT_SECS: f64 = 600.0;

/// Largest picture a layer may be scaled to while its geometry is animated (a static layer is
/// cut to its visible part, so it never exceeds the output).
pub const MAX_ANIMATED_SIZE: i32 = 8192;

const NS_PER_S: i128 = 1_000_000_000;

/// What the planner needs to know about an asset; the caller looks it up (from the probe report
/// stored with the asset).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SourceMedia {
    /// A local file the renderer can open.
    pub path: PathBuf,
    /// Stored picture size (before rotation), 0 without video.
    pub width: u32,
    pub height: u32,
    /// Frame rate; 0/1 for images and when unknown.
    pub fps_num: u32,
    pub fps_den: u32,
    /// Pixel aspect ratio of the stored picture.
    pub par_num: u32,
    pub par_den: u32,
    /// Clockwise rotation to apply for display: 0, 90, 180 or 270.
    pub rotation: u32,
    pub has_video: bool,
    pub has_audio: bool,
    pub duration_ns: i64,
    pub is_image: bool,
}

impl SourceMedia {
    /// The facts a probe report holds about `path` (first video stream).
    pub fn from_probe(path: PathBuf, r: &crate::probe::ProbeReport) -> SourceMedia {
        let v = r.video.first();
        SourceMedia {
            path,
            width: v.map_or(0, |v| v.width),
            height: v.map_or(0, |v| v.height),
            fps_num: v.map_or(0, |v| u32::try_from(v.fps_num).unwrap_or(0)),
            fps_den: v.map_or(1, |v| u32::try_from(v.fps_den).unwrap_or(1).max(1)),
            par_num: v.map_or(1, |v| u32::try_from(v.par_num).unwrap_or(1).max(1)),
            par_den: v.map_or(1, |v| u32::try_from(v.par_den).unwrap_or(1).max(1)),
            rotation: v.map_or(0, |v| v.rotation % 360),
            has_video: v.is_some(),
            has_audio: !r.audio.is_empty(),
            duration_ns: r.duration.map_or(0, |d| (d * 1e9).round() as i64),
            is_image: r.kind == "image",
        }
    }
}

/// How the plan looks sources up: asset id → facts, `None` when the asset is unknown.
pub type SourceLookup<'a> = &'a dyn Fn(&str) -> Option<SourceMedia>;

/// A timeline range in output frames, `[start, end)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct FrameRange {
    pub start: i64,
    pub end: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlanOutput {
    pub width: u32,
    pub height: u32,
    pub fps_num: u32,
    pub fps_den: u32,
    pub sample_rate: u32,
    pub channels: u8,
    pub background: Rgba,
}

impl PlanOutput {
    /// Start of output frame `f` in nanoseconds, rounded down: the same grid GStreamer's
    /// aggregators and rate converters use (`gst_util_uint64_scale`), so timestamps computed
    /// here and there agree to the nanosecond.
    pub fn frame_ns(&self, f: i64) -> i64 {
        frames_ns_floor(i128::from(f) * 1000, self.fps_num, self.fps_den)
    }

    pub fn fps(&self) -> f64 {
        f64::from(self.fps_num) / f64::from(self.fps_den.max(1))
    }
}

/// `milli` thousandths of an output frame in nanoseconds, rounded toward minus infinity.
fn frames_ns_floor(milli: i128, num: u32, den: u32) -> i64 {
    let n = milli * i128::from(den) * NS_PER_S;
    let d = 1000 * i128::from(num.max(1));
    let q = n.div_euclid(d);
    q.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64
}

/// The whole render: what to output, frame by frame.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RenderPlan {
    pub output: PlanOutput,
    /// Timeline frames rendered; output frame 0 is timeline frame `range.start`.
    pub range: FrameRange,
    /// Output frames (`range.end - range.start`).
    pub frames: i64,
    /// Consecutive, covering `0..frames` without gaps.
    pub spans: Vec<VideoSpan>,
    /// Every piece of sound, in timeline order.
    pub audio: Vec<AudioSegment>,
}

/// A maximal run of output frames over which the same layers are visible.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VideoSpan {
    /// First output frame (relative to the range start).
    pub start: i64,
    pub frames: i64,
    /// Bottom first; empty for a gap (background only).
    pub layers: Vec<Layer>,
}

impl VideoSpan {
    pub fn end(&self) -> i64 {
        self.start + self.frames
    }
}

/// One clip's picture during one span.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Layer {
    pub clip_id: String,
    /// Track index (stacking order).
    pub track: usize,
    pub source: LayerSource,
    /// The clip's frame index shown at the span's first frame.
    pub clip_offset: i64,
    /// The clip's duration.
    pub clip_frames: i64,
    /// Which source times the span's frames show (video assets only).
    pub timing: Option<SourceTiming>,
    /// Placement at the span's first frame.
    pub geometry: Geometry,
    /// Opacity at the span's first frame (transform, keyframes and title fades; without the
    /// transition).
    pub opacity: f64,
    /// Per-frame values where they change within the span.
    pub animation: Option<Animation>,
    pub transition: Option<LayerTransition>,
    /// Picture effects in order (those that change nothing left out).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub effects: Vec<Effect>,
}

impl Layer {
    /// Placement at span frame `i`.
    pub fn rect_at(&self, i: i64) -> Rect {
        self.animation
            .as_ref()
            .and_then(|a| a.rects.as_ref())
            .and_then(|r| usize::try_from(i).ok().and_then(|i| r.get(i)))
            .copied()
            .unwrap_or(self.geometry.rect)
    }

    /// Opacity at span frame `i`, transition included.
    pub fn alpha_at(&self, i: i64) -> f64 {
        let base = self
            .animation
            .as_ref()
            .and_then(|a| a.opacity.as_ref())
            .and_then(|o| usize::try_from(i).ok().and_then(|i| o.get(i)))
            .copied()
            .unwrap_or(self.opacity);
        match &self.transition {
            Some(t) if t.kind == TransitionKind::Crossfade && t.role == Role::Incoming => {
                base * t.progress(i)
            }
            _ => base,
        }
    }

    /// Clockwise degrees of a turned picture at span frame `i` (0 when not turned).
    pub fn angle_at(&self, i: i64) -> f64 {
        self.animation
            .as_ref()
            .and_then(|a| a.angles.as_ref())
            .and_then(|v| usize::try_from(i).ok().and_then(|i| v.get(i)))
            .copied()
            .or(self.geometry.turned.map(|t| t.angle))
            .unwrap_or(0.0)
    }

    /// A turned picture's own size when its canvas is drawn `canvas` pixels large (the largest
    /// canvas of its occurrence: the picture scales with it); rounded to even sizes for 4:2:0
    /// frames when `even`. `None` when not turned.
    pub fn turned_size(&self, (w, h): (i32, i32), even: bool) -> Option<(i32, i32)> {
        let t = self.geometry.turned?;
        let k = f64::from(w) / f64::from(self.geometry.rect.width.max(1));
        let side = |v: i32, max: i32| {
            let v = f64::from(v) * k;
            let v = if even {
                2 * ((v / 2.0).round() as i32)
            } else {
                v.round() as i32
            };
            v.clamp(2, max.max(2))
        };
        Some((side(t.width, w), side(t.height, h)))
    }

    pub fn is_picture(&self) -> bool {
        matches!(self.source, LayerSource::Video { .. })
    }

    /// A mask transition reveals this layer progressively.
    pub fn masked(&self) -> Option<&LayerTransition> {
        self.transition
            .as_ref()
            .filter(|t| t.role == Role::Incoming && t.kind != TransitionKind::Crossfade)
    }

    /// Shows the whole frame, opaque, unmoving, for the whole span.
    pub fn is_full_frame(&self, out: &PlanOutput) -> bool {
        let full = Rect {
            x: 0,
            y: 0,
            width: out.width as i32,
            height: out.height as i32,
        };
        self.is_picture()
            && self.geometry.rect == full
            && self.geometry.turned.is_none()
            && self.animation.is_none()
            && self.transition.is_none()
            && self.opacity >= 1.0
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum LayerSource {
    Video {
        path: PathBuf,
        width: u32,
        height: u32,
        fps_num: u32,
        fps_den: u32,
        rotation: u32,
    },
    Image {
        path: PathBuf,
        width: u32,
        height: u32,
        rotation: u32,
    },
    Color {
        rgba: Rgba,
    },
    Title {
        title: Box<Title>,
        /// Moved, scaled, turned or cropped by the clip transform: drawn at its anchor on a
        /// transparent picture the size of the frame, which the transform then places like an
        /// image. Otherwise drawn where its anchor puts it.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        framed: bool,
    },
}

/// Placement of a layer in output pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rect {
    pub x: i32,
    pub y: i32,
    pub width: i32,
    pub height: i32,
}

/// Where a layer's picture goes and which part of the source it shows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Geometry {
    /// The visible picture on screen (after rotation), even coordinates and sizes (4:2:0).
    pub rect: Rect,
    /// Clockwise quarter turns of the clip's own rotation (0..=3), applied after the source's
    /// rotation metadata.
    pub quarter_turns: u8,
    /// Pixels of the stored (un-rotated) source picture left out on each side: the clip's crop
    /// plus whatever falls outside the frame. Zero for colours and titles.
    pub crop: Crop,
    /// Turned by an angle that is not a quarter turn (or by an animated one): `rect` is then a
    /// square canvas, centred on the picture, that the picture turns in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub turned: Option<Turned>,
}

/// A picture turned by any angle inside its square canvas.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Turned {
    /// Clockwise degrees at the span's first frame.
    pub angle: f64,
    /// The picture's size before it turns (even).
    pub width: i32,
    pub height: i32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Crop {
    pub left: u32,
    pub right: u32,
    pub top: u32,
    pub bottom: u32,
}

/// Per-frame values of a layer over its span (index = span frame).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Animation {
    pub rects: Option<Vec<Rect>>,
    pub opacity: Option<Vec<f64>>,
    /// Clockwise degrees of a turned picture, per frame.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub angles: Option<Vec<f64>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// The `to` clip, revealed.
    Incoming,
    /// The `from` clip, covered.
    Outgoing,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LayerTransition {
    pub kind: TransitionKind,
    pub role: Role,
    /// Transition length in frames.
    pub frames: i64,
    /// The transition's frame index at the span's first frame.
    pub offset: i64,
    /// Progress at the span's first and last frame.
    pub p0: f64,
    pub p1: f64,
}

impl LayerTransition {
    /// Progress at span frame `i`: `(j + 0.5) / d` for the transition's frame `j`.
    pub fn progress(&self, i: i64) -> f64 {
        progress(self.offset + i, self.frames)
    }
}

fn progress(j: i64, d: i64) -> f64 {
    ((j as f64 + 0.5) / d.max(1) as f64).clamp(0.0, 1.0)
}

/// Which source time each clip frame shows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SourceTiming {
    /// Output frames into the source.
    pub in_point: i64,
    /// Thousandths.
    pub speed_milli: u32,
    pub reverse: bool,
    pub clip_frames: i64,
    /// Output frame rate (the unit of `in_point`).
    pub fps_num: u32,
    pub fps_den: u32,
    /// Source time shown at the span's first and last frame (ns); for a reversed clip the
    /// first is the later one.
    pub first_ns: i64,
    pub last_ns: i64,
}

impl SourceTiming {
    /// Source position shown at clip frame `k`, in thousandths of an output frame.
    pub fn position_milli(&self, k: i64) -> i128 {
        let j = if self.reverse {
            self.clip_frames - 1 - k
        } else {
            k
        };
        i128::from(self.in_point) * 1000 + i128::from(j) * i128::from(self.speed_milli)
    }

    /// Source time shown at clip frame `k` (ns, rounded down).
    pub fn source_ns(&self, k: i64) -> i64 {
        frames_ns_floor(self.position_milli(k), self.fps_num, self.fps_den)
    }
}

/// One clip's sound over a stretch of the output.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AudioSegment {
    pub clip_id: String,
    pub track: usize,
    pub path: PathBuf,
    /// First output frame (relative to the range start).
    pub start: i64,
    pub frames: i64,
    /// The clip's frame index at `start`.
    pub clip_offset: i64,
    /// Source time at `start` (ns); the sound plays forwards at speed 1 from there. For a
    /// retimed segment (`speed_milli != 1000` or `reverse`), the start of the source stretch it
    /// plays (the earlier end, also when reversed).
    pub source_start_ns: i64,
    /// End of the source stretch a retimed segment plays (ns); 0 when not retimed.
    #[serde(default)]
    pub source_end_ns: i64,
    /// Playback speed in thousandths (1000 = normal). Sound follows the picture like tape: a
    /// faster clip plays higher, a slower one lower, and stays in sync to the sample.
    #[serde(default = "normal_speed")]
    pub speed_milli: u32,
    /// Played backwards.
    #[serde(default)]
    pub reverse: bool,
    /// Linear gain, piecewise linear between points; `frame` is relative to `start` (0..=frames).
    /// Clip and track gain, fades, transition crossfades and volume keyframes are all in it.
    pub gain: Vec<GainPoint>,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct GainPoint {
    pub frame: i64,
    pub gain: f64,
}

fn normal_speed() -> u32 {
    1000
}

impl AudioSegment {
    /// Played at another speed or backwards: decoded ahead and retimed, not streamed.
    pub fn retimed(&self) -> bool {
        self.speed_milli != 1000 || self.reverse
    }

    /// Linear gain at `frame` (relative to `start`, fractional).
    pub fn gain_at(&self, frame: f64) -> f64 {
        let pts = &self.gain;
        match pts.iter().position(|p| p.frame as f64 > frame) {
            None => pts.last().map_or(1.0, |p| p.gain),
            Some(0) => pts.first().map_or(1.0, |p| p.gain),
            Some(i) => {
                let (a, b) = (pts[i - 1], pts[i]);
                let u = (frame - a.frame as f64) / (b.frame - a.frame).max(1) as f64;
                a.gain + (b.gain - a.gain) * u
            }
        }
    }
}

/// Builds the plan for `timeline` (validated), over `range` (timeline frames `[a, b)`) or the
/// whole timeline.
pub fn plan(
    timeline: &Timeline,
    sources: SourceLookup<'_>,
    range: Option<(i64, i64)>,
) -> Result<RenderPlan, RenderError> {
    let duration = timeline.duration().get();
    if duration <= 0 {
        return Err(RenderError::EmptyTimeline);
    }
    let (a, b) = range.unwrap_or((0, duration));
    if a < 0 || b <= a || b > duration {
        return Err(RenderError::InvalidRange(format!(
            "frames {a}..{b} are not a non-empty part of the timeline's 0..{duration}"
        )));
    }
    let o = &timeline.output;
    let output = PlanOutput {
        width: o.width,
        height: o.height,
        fps_num: o.frame_rate.num(),
        fps_den: o.frame_rate.den(),
        sample_rate: o.sample_rate,
        channels: o.channels,
        background: o.background,
    };
    let cx = Cx {
        out: &output,
        sources,
        range: (a, b),
    };
    let spans = video_spans(timeline, &cx)?;
    let audio = audio_segments(timeline, &cx)?;
    Ok(RenderPlan {
        output,
        range: FrameRange { start: a, end: b },
        frames: b - a,
        spans,
        audio,
    })
}

struct Cx<'a> {
    out: &'a PlanOutput,
    sources: SourceLookup<'a>,
    range: (i64, i64),
}

impl Cx<'_> {
    fn media(&self, clip: &Clip) -> Result<Option<SourceMedia>, RenderError> {
        match clip.source.asset_id() {
            None => Ok(None),
            Some(id) => (self.sources)(id).map(Some).ok_or_else(|| {
                RenderError::MissingSource(format!(
                    "clip {:?}: asset {id} is not available",
                    clip.id
                ))
            }),
        }
    }
}

/// The transition in which `clip` is the `from` (outgoing) clip.
fn outgoing<'t>(track: &'t Track, clip: &Clip) -> Option<(&'t Transition, i64)> {
    track.transitions.iter().find_map(|t| {
        (t.from == clip.id)
            .then(|| track.clip(&t.to).map(|to| (t, to.start.get())))
            .flatten()
    })
}

fn incoming<'t>(track: &'t Track, clip: &Clip) -> Option<&'t Transition> {
    track.transitions.iter().find(|t| t.to == clip.id)
}

/// Last frame (exclusive) at which a clip is seen and heard: its end, or the end of its
/// outgoing transition (the rest of its overlap is not shown).
fn shown_end(track: &Track, clip: &Clip) -> i64 {
    let end = clip.end().get();
    match outgoing(track, clip) {
        Some((t, to_start)) => end.min(to_start + t.duration.get()),
        None => end,
    }
}

fn video_spans(tl: &Timeline, cx: &Cx<'_>) -> Result<Vec<VideoSpan>, RenderError> {
    let (a, b) = cx.range;
    let visual = |t: &Track| t.kind != TrackKind::Audio && !t.hidden;
    let mut cuts = vec![a, b];
    for t in tl.tracks.iter().filter(|t| visual(t)) {
        for c in &t.clips {
            cuts.push(c.start.get());
            cuts.push(shown_end(t, c));
        }
        for tr in &t.transitions {
            if let Some(to) = t.clip(&tr.to) {
                cuts.push(to.start.get() + tr.duration.get());
            }
        }
    }
    cuts.retain(|f| (a..=b).contains(f));
    cuts.sort_unstable();
    cuts.dedup();

    // Which clips (track, clip index, role) are visible in each elementary interval.
    type Key = Vec<(usize, usize, Option<Role>)>;
    let mut pieces: Vec<(i64, i64, Key)> = Vec::new();
    for w in cuts.windows(2) {
        let (p, q) = (w[0], w[1]);
        let mut key: Key = Vec::new();
        for (ti, t) in tl.tracks.iter().enumerate().filter(|(_, t)| visual(t)) {
            let mut here: Vec<(usize, Option<Role>)> = Vec::new();
            for (ci, c) in t.clips.iter().enumerate() {
                if c.start.get() <= p && p < shown_end(t, c) {
                    here.push((ci, None));
                }
            }
            if here.len() == 2 {
                // Two clips of a track overlap only inside their transition: `to` goes on top.
                let (x, y) = (&t.clips[here[0].0], &t.clips[here[1].0]);
                let x_is_from = t
                    .transitions
                    .iter()
                    .any(|tr| tr.from == x.id && tr.to == y.id);
                let (from, to) = if x_is_from {
                    (here[0].0, here[1].0)
                } else {
                    (here[1].0, here[0].0)
                };
                here = vec![(from, Some(Role::Outgoing)), (to, Some(Role::Incoming))];
            } else if here.len() > 2 {
                return Err(RenderError::Unsupported(format!(
                    "track {:?} shows more than two clips at frame {p}",
                    t.id
                )));
            }
            key.extend(here.into_iter().map(|(ci, r)| (ti, ci, r)));
        }
        match pieces.last_mut() {
            Some(last) if last.2 == key && last.1 == p => last.1 = q,
            _ => pieces.push((p, q, key)),
        }
    }

    let mut spans = Vec::with_capacity(pieces.len());
    for (p, q, key) in pieces {
        let mut layers = Vec::with_capacity(key.len());
        for (ti, ci, role) in key {
            let track = &tl.tracks[ti];
            let clip = &track.clips[ci];
            if let Some(layer) = layer(cx, ti, track, clip, role, p, q)? {
                layers.push(layer);
            }
        }
        spans.push(VideoSpan {
            start: p - a,
            frames: q - p,
            layers,
        });
    }
    Ok(spans)
}

/// The values of the animatable properties at one clip frame.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Props {
    x: f64,
    y: f64,
    scale: f64,
    rotation: f64,
    opacity: f64,
    crop: [f64; 4],
}

fn props_at(clip: &Clip, k: i64) -> Props {
    let t = &clip.transform;
    let v = |p: AnimProp, d: f64| keyframed(clip, p, k as f64).unwrap_or(d);
    Props {
        x: v(AnimProp::X, t.x),
        y: v(AnimProp::Y, t.y),
        scale: v(AnimProp::Scale, t.scale),
        rotation: v(AnimProp::Rotation, t.rotation),
        opacity: v(AnimProp::Opacity, t.opacity),
        crop: [
            v(AnimProp::CropLeft, t.crop_left),
            v(AnimProp::CropRight, t.crop_right),
            v(AnimProp::CropTop, t.crop_top),
            v(AnimProp::CropBottom, t.crop_bottom),
        ],
    }
}

/// Value of a keyframed property at clip frame `f`, or `None` without keyframes for it.
pub fn keyframed(clip: &Clip, prop: AnimProp, f: f64) -> Option<f64> {
    let kf: Vec<_> = clip
        .keyframes
        .iter()
        .filter(|k| k.property == prop)
        .collect();
    let first = kf.first()?;
    if f <= first.time.get() as f64 {
        return Some(first.value);
    }
    for w in kf.windows(2) {
        let (k0, k1) = (w[0], w[1]);
        let (t0, t1) = (k0.time.get() as f64, k1.time.get() as f64);
        if f < t1 {
            let u = ((f - t0) / (t1 - t0).max(1.0)).clamp(0.0, 1.0);
            return Some(k0.value + (k1.value - k0.value) * ease(k0.interpolation, u));
        }
    }
    kf.last().map(|k| k.value)
}

/// The easing curves: quadratic in, out and in-out; hold keeps the start value.
pub fn ease(i: Interpolation, u: f64) -> f64 {
    match i {
        Interpolation::Linear => u,
        Interpolation::EaseIn => u * u,
        Interpolation::EaseOut => 1.0 - (1.0 - u) * (1.0 - u),
        Interpolation::EaseInOut => {
            if u < 0.5 {
                2.0 * u * u
            } else {
                1.0 - 2.0 * (1.0 - u) * (1.0 - u)
            }
        }
        Interpolation::Hold => 0.0,
    }
}

/// Keyframes of a property must agree on one value when the builder cannot animate it.
fn constant_keyframes(clip: &Clip, prop: AnimProp, what: &str) -> Result<(), RenderError> {
    let mut values = clip
        .keyframes
        .iter()
        .filter(|k| k.property == prop)
        .map(|k| k.value);
    if let Some(first) = values.next()
        && values.any(|v| v != first)
    {
        return Err(RenderError::Unsupported(format!(
            "clip {:?}: animated {what} is not rendered yet",
            clip.id
        )));
    }
    Ok(())
}

fn layer(
    cx: &Cx<'_>,
    ti: usize,
    track: &Track,
    clip: &Clip,
    role: Option<Role>,
    p: i64,
    q: i64,
) -> Result<Option<Layer>, RenderError> {
    for (prop, what) in [
        (AnimProp::CropLeft, "crop"),
        (AnimProp::CropRight, "crop"),
        (AnimProp::CropTop, "crop"),
        (AnimProp::CropBottom, "crop"),
    ] {
        constant_keyframes(clip, prop, what)?;
    }
    let out = cx.out;
    let media = cx.media(clip)?;
    let (source, src_dims) = match (&clip.source, &media) {
        (Source::Asset { .. }, Some(m)) => {
            if !m.has_video || m.width == 0 || m.height == 0 {
                return Err(RenderError::Unsupported(format!(
                    "clip {:?}: the asset has no picture to show on a video track",
                    clip.id
                )));
            }
            (
                LayerSource::Video {
                    path: m.path.clone(),
                    width: m.width,
                    height: m.height,
                    fps_num: m.fps_num,
                    fps_den: m.fps_den,
                    rotation: m.rotation % 360,
                },
                Some(SrcDims::of(m)),
            )
        }
        (Source::Image { .. }, Some(m)) => {
            if m.width == 0 || m.height == 0 {
                return Err(RenderError::Unsupported(format!(
                    "clip {:?}: the image's size is unknown",
                    clip.id
                )));
            }
            (
                LayerSource::Image {
                    path: m.path.clone(),
                    width: m.width,
                    height: m.height,
                    rotation: m.rotation % 360,
                },
                Some(SrcDims::of(m)),
            )
        }
        (Source::Color { rgba }, _) => (
            LayerSource::Color { rgba: *rgba },
            Some(SrcDims {
                width: out.width,
                height: out.height,
                par: 1.0,
                rotation: 0,
            }),
        ),
        (Source::Title(t), _) => {
            let geometric = [
                AnimProp::X,
                AnimProp::Y,
                AnimProp::Scale,
                AnimProp::Rotation,
                AnimProp::CropLeft,
                AnimProp::CropRight,
                AnimProp::CropTop,
                AnimProp::CropBottom,
            ];
            let tr = &clip.transform;
            let plain = crate::timeline::Transform {
                opacity: tr.opacity,
                fit: tr.fit,
                ..Default::default()
            };
            let framed = *tr != plain
                || clip
                    .keyframes
                    .iter()
                    .any(|k| geometric.contains(&k.property));
            (
                LayerSource::Title {
                    title: t.clone(),
                    framed,
                },
                framed.then_some(SrcDims {
                    width: out.width,
                    height: out.height,
                    par: 1.0,
                    rotation: 0,
                }),
            )
        }
        (_, None) => {
            return Err(RenderError::MissingSource(format!(
                "clip {:?}: no source",
                clip.id
            )));
        }
    };
    let frames = q - p;
    let k0 = p - clip.start.get();
    let fade = |k: i64| -> f64 {
        match &clip.source {
            Source::Title(t) => title_fade(t, clip.duration.get(), k),
            _ => 1.0,
        }
    };

    // Per-frame placement and opacity; stored only where they change.
    let mut rects = Vec::with_capacity(usize::try_from(frames).unwrap_or(0));
    let mut opac = Vec::with_capacity(rects.capacity());
    let mut first_geom: Option<Geometry> = None;
    let animated_geometry = clip.keyframes.iter().any(|k| {
        matches!(
            k.property,
            AnimProp::X | AnimProp::Y | AnimProp::Scale | AnimProp::Rotation
        )
    });
    // Any angle that is not a quarter turn, or a rotation that changes, turns the picture in a
    // canvas (quarter turns alone are exact flips of the picture).
    let rotations: Vec<f64> = std::iter::once(clip.transform.rotation)
        .chain(
            clip.keyframes
                .iter()
                .filter(|k| k.property == AnimProp::Rotation)
                .map(|k| k.value),
        )
        .collect();
    let turning = rotations
        .iter()
        .any(|r| (r / 90.0 - (r / 90.0).round()).abs() > 1e-9)
        || rotations.iter().skip(1).any(|r| *r != rotations[1]);
    if turning && !matches!(clip.source, Source::Asset { .. }) {
        // Stills are rasterised once, turned once.
        constant_keyframes(
            clip,
            AnimProp::Rotation,
            "rotation of an image, colour or title",
        )?;
    }
    let mut angles = Vec::new();
    for i in 0..frames {
        let pr = props_at(clip, k0 + i);
        opac.push((pr.opacity * fade(k0 + i)).clamp(0.0, 1.0));
        if let Some(dims) = &src_dims
            && (i == 0 || animated_geometry)
        {
            let g = place(
                out,
                dims,
                clip.transform.fit,
                &pr,
                !animated_geometry && !turning,
                turning,
            )
            .map_err(|m| RenderError::Unsupported(format!("clip {:?}: {m}", clip.id)))?;
            rects.push(g.rect);
            angles.push(g.turned.map_or(0.0, |t| t.angle));
            if first_geom.is_none() {
                first_geom = Some(g);
            }
        }
    }
    if turning
        && rects
            .iter()
            .any(|r| r.width > MAX_ANIMATED_SIZE || r.height > MAX_ANIMATED_SIZE)
    {
        return Err(RenderError::Unsupported(format!(
            "clip {:?}: a turned picture larger than {MAX_ANIMATED_SIZE} pixels",
            clip.id
        )));
    }
    let geometry = first_geom.unwrap_or(Geometry {
        rect: Rect {
            x: 0,
            y: 0,
            width: out.width as i32,
            height: out.height as i32,
        },
        quarter_turns: 0,
        crop: Crop::default(),
        turned: None,
    });
    if animated_geometry
        && rects
            .iter()
            .any(|r| r.width > MAX_ANIMATED_SIZE || r.height > MAX_ANIMATED_SIZE)
    {
        return Err(RenderError::Unsupported(format!(
            "clip {:?}: an animated picture larger than {MAX_ANIMATED_SIZE} pixels",
            clip.id
        )));
    }
    let opacity = opac.first().copied().unwrap_or(1.0);
    let rects = (rects.len() > 1 && rects.iter().any(|r| *r != rects[0])).then_some(rects);
    let opac = opac.iter().any(|o| *o != opacity).then_some(opac);
    let angles = (angles.len() > 1 && angles.iter().any(|a| *a != angles[0])).then_some(angles);
    let animation = (rects.is_some() || opac.is_some() || angles.is_some()).then_some(Animation {
        rects,
        opacity: opac,
        angles,
    });
    // A layer entirely outside the frame shows nothing (unless animated into it).
    if animation.is_none() && (geometry.rect.width <= 0 || geometry.rect.height <= 0) {
        return Ok(None);
    }

    let timing = match (&clip.source, &media) {
        (Source::Asset { .. }, Some(m)) => {
            let mut t = timing(cx.out, clip, k0, frames);
            // A slow or reversed clip shows a source frame for longer than its own duration;
            // nothing to check. A reversed clip is played from memory: bound it.
            if clip.reverse {
                let span_ns = (t.first_ns - t.last_ns).unsigned_abs();
                let fps = if m.fps_num > 0 {
                    f64::from(m.fps_num) / f64::from(m.fps_den.max(1))
                } else {
                    60.0
                };
                let decoded = (span_ns as f64 / 1e9 * fps).ceil() as u64 + 2;
                let bytes = decoded * u64::from(m.width) * u64::from(m.height) * 3 / 2;
                if bytes > REVERSE_MEMORY_LIMIT {
                    return Err(RenderError::Unsupported(format!(
                        "clip {:?}: reversing {decoded} source frames needs more than {} MiB; \
                         split the clip",
                        clip.id,
                        REVERSE_MEMORY_LIMIT >> 20
                    )));
                }
            }
            t.first_ns = t.source_ns(k0);
            Some(t)
        }
        _ => None,
    };

    let transition = role.and_then(|role| {
        let tr = match role {
            Role::Incoming => incoming(track, clip).map(|t| (t, clip.start.get())),
            Role::Outgoing => outgoing(track, clip),
        };
        tr.map(|(t, to_start)| {
            let d = t.duration.get();
            let offset = p - to_start;
            LayerTransition {
                kind: t.kind,
                role,
                frames: d,
                offset,
                p0: progress(offset, d),
                p1: progress(offset + frames - 1, d),
            }
        })
    });

    Ok(Some(Layer {
        clip_id: clip.id.clone(),
        track: ti,
        source,
        clip_offset: k0,
        clip_frames: clip.duration.get(),
        timing,
        geometry,
        opacity,
        animation,
        transition,
        effects: clip
            .effects
            .iter()
            .filter(|e| super::effects::visible(e))
            .copied()
            .collect(),
    }))
}

fn timing(out: &PlanOutput, clip: &Clip, k0: i64, frames: i64) -> SourceTiming {
    let mut t = SourceTiming {
        in_point: clip.in_point.get(),
        speed_milli: clip.speed.millis(),
        reverse: clip.reverse,
        clip_frames: clip.duration.get(),
        fps_num: out.fps_num,
        fps_den: out.fps_den,
        first_ns: 0,
        last_ns: 0,
    };
    t.first_ns = t.source_ns(k0);
    t.last_ns = t.source_ns(k0 + frames - 1);
    t
}

/// Title opacity ramps: frame `k` of a fade of `n` frames has `(k + 0.5) / n`.
fn title_fade(t: &Title, duration: i64, k: i64) -> f64 {
    let (fi, fo) = (t.fade_in.get(), t.fade_out.get());
    let mut a = 1.0;
    if fi > 0 && k < fi {
        a *= progress(k, fi);
    }
    if fo > 0 && k >= duration - fo {
        a *= progress(duration - 1 - k, fo);
    }
    a
}

/// A source picture's stored size, pixel aspect and rotation metadata.
#[derive(Debug, Clone, Copy)]
struct SrcDims {
    width: u32,
    height: u32,
    par: f64,
    rotation: u32,
}

impl SrcDims {
    fn of(m: &SourceMedia) -> SrcDims {
        SrcDims {
            width: m.width,
            height: m.height,
            par: if m.par_num > 0 && m.par_den > 0 {
                f64::from(m.par_num) / f64::from(m.par_den)
            } else {
                1.0
            },
            rotation: m.rotation % 360,
        }
    }
}

fn even(v: f64) -> i32 {
    (2.0 * (v / 2.0).round()) as i32
}

/// Places a picture: crop, fit, scale, quarter-turn rotation, move (docs/timeline.md
/// "Transform"). With `clip_to_frame`, the part outside the frame is cut off in the source (so
/// no layer is ever larger than the output); animated layers keep their whole picture.
fn place(
    out: &PlanOutput,
    src: &SrcDims,
    fit: Fit,
    pr: &Props,
    clip_to_frame: bool,
    turning: bool,
) -> Result<Geometry, String> {
    let turns_f = pr.rotation / 90.0;
    let q = if turning {
        0
    } else {
        (turns_f.round() as i64).rem_euclid(4) as u8
    };
    let (ow, oh) = (f64::from(out.width), f64::from(out.height));
    // Upright display size of the source.
    let (sw, sh) = (f64::from(src.width) * src.par, f64::from(src.height));
    let (dw, dh) = if src.rotation % 180 == 90 {
        (sh, sw)
    } else {
        (sw, sh)
    };
    let [cl, cr, ct, cb] = pr.crop;
    let (cw, ch) = (dw * (1.0 - cl - cr), dh * (1.0 - ct - cb));
    if cw <= 0.0 || ch <= 0.0 {
        return Err("the crop removes the whole picture".into());
    }
    let (fw, fh) = match fit {
        Fit::Contain => {
            let f = (ow / cw).min(oh / ch);
            (cw * f, ch * f)
        }
        Fit::Cover => {
            let f = (ow / cw).max(oh / ch);
            (cw * f, ch * f)
        }
        Fit::Stretch => (ow, oh),
    };
    let (pw, ph) = (fw * pr.scale, fh * pr.scale);
    let (cxp, cyp) = (ow / 2.0 + pr.x * ow, oh / 2.0 + pr.y * oh);
    let turned = turning.then(|| {
        // The canvas holds the picture at every angle: a square as wide as its diagonal.
        let (iw, ih) = (even(pw).max(2), even(ph).max(2));
        let side = f64::from(iw).hypot(f64::from(ih));
        let d = 2 * ((side / 2.0).ceil() as i32);
        (
            Turned {
                angle: pr.rotation.rem_euclid(360.0),
                width: iw,
                height: ih,
            },
            d,
        )
    });
    let (bw, bh) = match turned {
        Some((_, d)) => (f64::from(d), f64::from(d)),
        None if q % 2 == 1 => (ph, pw),
        None => (pw, ph),
    };
    let (x0, y0) = (cxp - bw / 2.0, cyp - bh / 2.0);
    // Visible part in on-screen fractions of the placed picture.
    let (mut u0, mut u1, mut v0, mut v1) = (0.0, 1.0, 0.0, 1.0);
    if clip_to_frame {
        u0 = ((0.0 - x0) / bw).clamp(0.0, 1.0);
        u1 = ((ow - x0) / bw).clamp(0.0, 1.0);
        v0 = ((0.0 - y0) / bh).clamp(0.0, 1.0);
        v1 = ((oh - y0) / bh).clamp(0.0, 1.0);
    }
    let rect = if u1 <= u0 || v1 <= v0 {
        Rect {
            x: 0,
            y: 0,
            width: 0,
            height: 0,
        }
    } else {
        let (rx0, ry0) = (x0 + u0 * bw, y0 + v0 * bh);
        let (rx1, ry1) = (x0 + u1 * bw, y0 + v1 * bh);
        let x = even(rx0);
        let y = even(ry0);
        Rect {
            x,
            y,
            width: (even(rx1) - x).max(if clip_to_frame { 0 } else { 2 }),
            height: (even(ry1) - y).max(if clip_to_frame { 0 } else { 2 }),
        }
    };
    // On-screen fractions → the picture before the clip's rotation (inverse quarter turns).
    let (a0, a1, b0, b1) = match q {
        1 => (v0, v1, 1.0 - u1, 1.0 - u0),
        2 => (1.0 - u1, 1.0 - u0, 1.0 - v1, 1.0 - v0),
        3 => (1.0 - v1, 1.0 - v0, u0, u1),
        _ => (u0, u1, v0, v1),
    };
    // Picture fractions → upright source fractions (the clip's crop), as sides removed.
    let left = cl + a0 * (1.0 - cl - cr);
    let right = cr + (1.0 - a1) * (1.0 - cl - cr);
    let top = ct + b0 * (1.0 - ct - cb);
    let bottom = cb + (1.0 - b1) * (1.0 - ct - cb);
    // Upright sides → stored sides (the source's rotation metadata turns stored into upright).
    let (sl, sr, st, sb) = match src.rotation {
        90 => (top, bottom, right, left),
        180 => (right, left, bottom, top),
        270 => (bottom, top, left, right),
        _ => (left, right, top, bottom),
    };
    let px = |f: f64, n: u32| (even(f * f64::from(n)).max(0) as u32).min(n);
    let mut crop = Crop {
        left: px(sl, src.width),
        right: px(sr, src.width),
        top: px(st, src.height),
        bottom: px(sb, src.height),
    };
    // Keep at least 2x2 source pixels.
    if crop.left + crop.right + 2 > src.width {
        crop.right = src.width.saturating_sub(crop.left + 2);
    }
    if crop.top + crop.bottom + 2 > src.height {
        crop.bottom = src.height.saturating_sub(crop.top + 2);
    }
    let rect = match turned {
        // The canvas keeps its size (even when partly off screen) so the picture turns about
        // its centre.
        Some((_, d)) => Rect {
            x: even(cxp - f64::from(d) / 2.0),
            y: even(cyp - f64::from(d) / 2.0),
            width: d,
            height: d,
        },
        None => rect,
    };
    Ok(Geometry {
        rect,
        quarter_turns: q,
        crop,
        turned: turned.map(|t| t.0),
    })
}

fn audio_segments(tl: &Timeline, cx: &Cx<'_>) -> Result<Vec<AudioSegment>, RenderError> {
    let (a, b) = cx.range;
    let mut segs = Vec::new();
    for (ti, track) in tl.tracks.iter().enumerate() {
        if track.muted {
            continue;
        }
        for clip in &track.clips {
            if clip.audio.mute || !matches!(clip.source, Source::Asset { .. }) {
                continue;
            }
            let start = clip.start.get().max(a);
            let end = shown_end(track, clip).min(b);
            if end <= start {
                continue;
            }
            let Some(m) = cx.media(clip)? else {
                continue;
            };
            if !m.has_audio {
                continue;
            }
            let k0 = start - clip.start.get();
            let frames = end - start;
            let gain = gain_points(track, clip, k0, frames);
            let speed = clip.speed.millis();
            let (fps_num, fps_den) = (cx.out.fps_num, cx.out.fps_den);
            // Source position (thousandths of an output frame) at clip frame `k`, continuous:
            // a reversed clip plays its source stretch from its end back to its start.
            let at = |k: i64| -> i128 {
                let j = if clip.reverse {
                    clip.duration.get() - k
                } else {
                    k
                };
                i128::from(clip.in_point.get()) * 1000 + i128::from(j) * i128::from(speed)
            };
            let (lo, hi) = if clip.reverse {
                (at(k0 + frames), at(k0))
            } else {
                (at(k0), at(k0 + frames))
            };
            let retimed = speed != 1000 || clip.reverse;
            if retimed {
                // The stretch is decoded into memory before it plays (both the decoded and
                // the retimed samples), so its length is bounded.
                let longest = (hi - lo).max(i128::from(frames) * 1000);
                let seconds = longest as f64 / 1000.0 / cx.out.fps();
                if seconds > RETIMED_SOUND_LIMIT_SECS {
                    return Err(RenderError::Unsupported(format!(
                        "clip {:?}: sound at another speed or reversed is limited to {} \
                         minutes per clip; split the clip",
                        clip.id,
                        RETIMED_SOUND_LIMIT_SECS / 60.0
                    )));
                }
            }
            segs.push(AudioSegment {
                clip_id: clip.id.clone(),
                track: ti,
                path: m.path.clone(),
                start: start - a,
                frames,
                clip_offset: k0,
                source_start_ns: frames_ns_floor(lo, fps_num, fps_den),
                source_end_ns: if retimed {
                    frames_ns_floor(hi, fps_num, fps_den)
                } else {
                    0
                },
                speed_milli: speed,
                reverse: clip.reverse,
                gain,
            });
        }
    }
    segs.sort_by(|x, y| x.start.cmp(&y.start).then(x.track.cmp(&y.track)));
    Ok(segs)
}

/// The gain envelope of a clip's sound from clip frame `k0` for `frames` frames, sampled at
/// every frame boundary and thinned to the points where its slope changes.
fn gain_points(track: &Track, clip: &Clip, k0: i64, frames: i64) -> Vec<GainPoint> {
    let d = clip.duration.get();
    let (fi, fo) = (clip.audio.fade_in.get(), clip.audio.fade_out.get());
    let xin = incoming(track, clip).map(|t| t.duration.get());
    let xout =
        outgoing(track, clip).map(|(t, to_start)| (to_start - clip.start.get(), t.duration.get()));
    let at = |k: f64| -> f64 {
        let db = keyframed(clip, AnimProp::VolumeDb, k).unwrap_or(clip.audio.volume_db)
            + track.volume_db;
        let mut g = 10f64.powf(db / 20.0);
        if fi > 0 {
            g *= (k / fi as f64).clamp(0.0, 1.0);
        }
        if fo > 0 {
            g *= ((d as f64 - k) / fo as f64).clamp(0.0, 1.0);
        }
        if let Some(n) = xin {
            g *= (k / n as f64).clamp(0.0, 1.0);
        }
        if let Some((s, n)) = xout {
            g *= (1.0 - (k - s as f64) / n as f64).clamp(0.0, 1.0);
        }
        g
    };
    let raw: Vec<GainPoint> = (0..=frames)
        .map(|i| GainPoint {
            frame: i,
            gain: at((k0 + i) as f64),
        })
        .collect();
    // Drop points that lie on the line through their neighbours.
    let mut out: Vec<GainPoint> = Vec::new();
    for (i, p) in raw.iter().enumerate() {
        if i == 0 || i + 1 == raw.len() {
            out.push(*p);
            continue;
        }
        let prev = out.last().copied().unwrap_or(*p);
        let next = raw[i + 1];
        let u = (p.frame - prev.frame) as f64 / (next.frame - prev.frame) as f64;
        let line = prev.gain + (next.gain - prev.gain) * u;
        if (line - p.gain).abs() > 1e-9 {
            out.push(*p);
        }
    }
    out
}

impl fmt::Display for RenderPlan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let o = &self.output;
        let secs = |fr: i64| fr as f64 * f64::from(o.fps_den) / f64::from(o.fps_num.max(1));
        writeln!(
            f,
            "output {}x{} at {}/{} fps, {} Hz x{}, background {}",
            o.width, o.height, o.fps_num, o.fps_den, o.sample_rate, o.channels, o.background
        )?;
        writeln!(
            f,
            "range  timeline frames {}..{} ({} frames, {:.3} s)",
            self.range.start,
            self.range.end,
            self.frames,
            secs(self.frames)
        )?;
        writeln!(f, "video  {} spans", self.spans.len())?;
        for s in &self.spans {
            write!(f, "  {:>6}..{:<6}", s.start, s.end())?;
            if s.layers.is_empty() {
                writeln!(f, " background")?;
                continue;
            }
            writeln!(f)?;
            for l in &s.layers {
                writeln!(f, "      {l}")?;
            }
        }
        writeln!(f, "audio  {} segments", self.audio.len())?;
        for a in &self.audio {
            let g = |p: &GainPoint| 20.0 * p.gain.max(1e-9).log10();
            write!(
                f,
                "  {:>6}..{:<6} {} [track {}] {} from {:.3} s",
                a.start,
                a.start + a.frames,
                a.clip_id,
                a.track,
                file_name(&a.path),
                a.source_start_ns as f64 / 1e9
            )?;
            if a.retimed() {
                write!(
                    f,
                    " to {:.3} s at {}x{}",
                    a.source_end_ns as f64 / 1e9,
                    f64::from(a.speed_milli) / 1000.0,
                    if a.reverse { " reversed" } else { "" }
                )?;
            }
            match a.gain.as_slice() {
                [p] => writeln!(f, ", {:+.1} dB", g(p))?,
                [p, q] if (p.gain - q.gain).abs() < 1e-12 => writeln!(f, ", {:+.1} dB", g(p))?,
                pts => writeln!(f, ", gain envelope of {} points", pts.len())?,
            }
        }
        Ok(())
    }
}

fn file_name(p: &std::path::Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| p.display().to_string())
}

impl fmt::Display for Layer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[track {}] {} ", self.track, self.clip_id)?;
        match &self.source {
            LayerSource::Video { path, .. } => write!(f, "video {}", file_name(path))?,
            LayerSource::Image { path, .. } => write!(f, "image {}", file_name(path))?,
            LayerSource::Color { rgba } => write!(f, "colour {rgba}")?,
            LayerSource::Title { title, .. } => write!(f, "title {:?}", title.text)?,
        }
        if let Some(t) = &self.timing {
            let speed = f64::from(t.speed_milli) / 1000.0;
            write!(
                f,
                " src {:.3}..{:.3} s",
                t.first_ns as f64 / 1e9,
                t.last_ns as f64 / 1e9
            )?;
            if t.speed_milli != 1000 {
                write!(f, " x{speed}")?;
            }
            if t.reverse {
                write!(f, " reversed")?;
            }
        }
        if !matches!(self.source, LayerSource::Title { framed: false, .. }) {
            let r = self.geometry.rect;
            write!(f, " at {},{} {}x{}", r.x, r.y, r.width, r.height)?;
            if self.geometry.quarter_turns != 0 {
                write!(
                    f,
                    " turned {}°",
                    u32::from(self.geometry.quarter_turns) * 90
                )?;
            }
            if let Some(t) = self.geometry.turned {
                write!(f, " turned {:.1}° ({}x{})", t.angle, t.width, t.height)?;
            }
            let c = self.geometry.crop;
            if c != Crop::default() {
                write!(f, " crop l{} r{} t{} b{}", c.left, c.right, c.top, c.bottom)?;
            }
        }
        if self.opacity < 1.0 {
            write!(f, " opacity {:.3}", self.opacity)?;
        }
        for e in &self.effects {
            write!(f, " {}", e.kind_name())?;
        }
        if let Some(a) = &self.animation {
            write!(f, " animated")?;
            if a.rects.is_some() {
                write!(f, " position")?;
            }
            if a.opacity.is_some() {
                write!(f, " opacity")?;
            }
        }
        if let Some(t) = &self.transition {
            write!(
                f,
                " {} {:?} {:.3}..{:.3}",
                match t.role {
                    Role::Incoming => "in",
                    Role::Outgoing => "out",
                },
                t.kind,
                t.p0,
                t.p1
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
#[path = "plan_tests.rs"]
mod tests;
