//! Whole-document validation. Reports every problem at once, each with a JSON-pointer-like path
//! into the document and a stable kebab-case code that API clients can switch on.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::model::{
    AnimProp, Clip, ClipAudio, Effect, Output, Source, Timeline, Title, Track, TrackKind,
    Transform, TransitionKind,
};
use super::time::{Frames, Rate};

/// What the timeline needs to know about an asset. The model cannot see the asset store, so
/// callers pass a lookup (see [`Context`]).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, schemars::JsonSchema,
)]
pub struct AssetInfo {
    /// Container duration in nanoseconds; ignored for images.
    pub duration_ns: i64,
    pub has_video: bool,
    pub has_audio: bool,
    pub is_image: bool,
    pub width: u32,
    pub height: u32,
}

/// Size limits, so one document cannot exhaust the renderer or the database.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default)]
pub struct TimelineLimits {
    pub max_tracks: usize,
    /// Over all tracks.
    pub max_clips: usize,
    pub max_keyframes_per_clip: usize,
    pub max_effects_per_clip: usize,
    pub max_title_chars: usize,
    /// No clip may end later than this.
    pub max_duration: Duration,
    /// When set, wire times that are not within 1 µs of a frame boundary are refused
    /// (`not-on-grid`) instead of being snapped silently.
    pub strict_grid: bool,
}

impl Default for TimelineLimits {
    fn default() -> Self {
        TimelineLimits {
            max_tracks: 32,
            max_clips: 2_000,
            max_keyframes_per_clip: 256,
            max_effects_per_clip: 8,
            max_title_chars: 2_000,
            max_duration: Duration::from_secs(6 * 3600),
            strict_grid: false,
        }
    }
}

impl TimelineLimits {
    /// No limits: for re-reading documents that were valid when they were stored (history
    /// replay, renders), which limits configured later must not make unreadable.
    pub fn unbounded() -> Self {
        TimelineLimits {
            max_tracks: usize::MAX,
            max_clips: usize::MAX,
            max_keyframes_per_clip: usize::MAX,
            max_effects_per_clip: usize::MAX,
            max_title_chars: usize::MAX,
            max_duration: Duration::from_secs(u64::from(u32::MAX)),
            strict_grid: false,
        }
    }

    /// The last frame a clip may end on.
    pub fn max_frames(&self, rate: Rate) -> Frames {
        let ns = i64::try_from(self.max_duration.as_nanos()).unwrap_or(i64::MAX);
        rate.ns_to_frames(ns)
    }
}

/// Everything validation needs besides the document.
#[derive(Clone, Copy)]
pub struct Context<'a> {
    pub limits: &'a TimelineLimits,
    /// Asset id → facts about it; `None` when the asset does not exist (or is not usable by
    /// this caller).
    // Sync so a Context can live across an await in a multi-threaded server.
    pub assets: &'a (dyn Fn(&str) -> Option<AssetInfo> + Sync),
}

impl fmt::Debug for Context<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Context")
            .field("limits", self.limits)
            .finish_non_exhaustive()
    }
}

/// Stable problem codes. The serialised (kebab-case) names are part of the API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Code {
    /// A number outside its documented range (or not finite).
    OutOfRange,
    /// Width or height odd.
    NotEven,
    BadColor,
    /// A frame rate that is not n/d with 1..=240 fps.
    BadFrameRate,
    /// A time that is not a finite number of seconds within range.
    BadTime,
    /// A wire time off the frame grid while `strict_grid` is set.
    NotOnGrid,
    /// Empty or over-long (128 bytes) id.
    BadId,
    DuplicateId,
    UnknownAsset,
    /// Asset of the wrong kind for the source (an image as `asset`, a video as `image`, no stream
    /// the track needs).
    SourceMismatch,
    /// Source or transition kind not allowed on this kind of track.
    WrongTrackKind,
    /// `in_point + duration * speed` past the end of the source.
    BeyondSource,
    OverlapWithoutTransition,
    /// More than two clips at one instant on one track.
    TooManyOverlaps,
    TransitionTooLong,
    TransitionWithoutOverlap,
    /// `from` must start and end before `to`.
    TransitionOrder,
    DuplicateTransition,
    /// A transition naming a clip that is not on its track.
    UnknownClip,
    TooManyTracks,
    TooManyClips,
    TooManyKeyframes,
    TooManyEffects,
    DuplicateEffect,
    DuplicateKeyframe,
    /// Fade-in plus fade-out longer than the clip.
    FadeTooLong,
    /// Crop removing the whole picture.
    CropTooLarge,
    /// A clip ending after `TimelineLimits::max_duration`.
    TimelineTooLong,
    EmptyText,
    TextTooLong,
}

impl Code {
    pub fn as_str(self) -> &'static str {
        match self {
            Code::OutOfRange => "out-of-range",
            Code::NotEven => "not-even",
            Code::BadColor => "bad-color",
            Code::BadFrameRate => "bad-frame-rate",
            Code::BadTime => "bad-time",
            Code::NotOnGrid => "not-on-grid",
            Code::BadId => "bad-id",
            Code::DuplicateId => "duplicate-id",
            Code::UnknownAsset => "unknown-asset",
            Code::SourceMismatch => "source-mismatch",
            Code::WrongTrackKind => "wrong-track-kind",
            Code::BeyondSource => "beyond-source",
            Code::OverlapWithoutTransition => "overlap-without-transition",
            Code::TooManyOverlaps => "too-many-overlaps",
            Code::TransitionTooLong => "transition-too-long",
            Code::TransitionWithoutOverlap => "transition-without-overlap",
            Code::TransitionOrder => "transition-order",
            Code::DuplicateTransition => "duplicate-transition",
            Code::UnknownClip => "unknown-clip",
            Code::TooManyTracks => "too-many-tracks",
            Code::TooManyClips => "too-many-clips",
            Code::TooManyKeyframes => "too-many-keyframes",
            Code::TooManyEffects => "too-many-effects",
            Code::DuplicateEffect => "duplicate-effect",
            Code::DuplicateKeyframe => "duplicate-keyframe",
            Code::FadeTooLong => "fade-too-long",
            Code::CropTooLarge => "crop-too-large",
            Code::TimelineTooLong => "timeline-too-long",
            Code::EmptyText => "empty-text",
            Code::TextTooLong => "text-too-long",
        }
    }
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ValidationError {
    /// JSON-pointer-like, e.g. `/tracks/1/clips/3/duration`.
    pub path: String,
    pub code: Code,
    pub message: String,
}

/// All problems of one document, in document order. Never empty when returned as an error.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(transparent)]
pub struct ValidationErrors(pub Vec<ValidationError>);

impl ValidationErrors {
    pub fn iter(&self) -> impl Iterator<Item = &ValidationError> {
        self.0.iter()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn has(&self, path: &str, code: Code) -> bool {
        self.0.iter().any(|e| e.path == path && e.code == code)
    }

    pub(crate) fn push(&mut self, path: impl Into<String>, code: Code, message: impl Into<String>) {
        self.0.push(ValidationError {
            path: path.into(),
            code,
            message: message.into(),
        });
    }

    /// Checks `lo <= v <= hi` (and finiteness).
    pub(crate) fn range(&mut self, path: impl Into<String>, v: f64, lo: f64, hi: f64) {
        if !(v.is_finite() && (lo..=hi).contains(&v)) {
            self.push(
                path,
                Code::OutOfRange,
                format!("{v} is outside {lo}..={hi}"),
            );
        }
    }

    pub(crate) fn into_result(self) -> Result<(), ValidationErrors> {
        if self.0.is_empty() { Ok(()) } else { Err(self) }
    }
}

impl fmt::Display for ValidationErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} problem(s)", self.0.len())?;
        for (i, e) in self.0.iter().enumerate() {
            let sep = if i == 0 { ": " } else { "; " };
            write!(f, "{sep}{} {} ({})", e.path, e.message, e.code)?;
        }
        Ok(())
    }
}

impl std::error::Error for ValidationErrors {}

pub const VOLUME_DB_RANGE: (f64, f64) = (-60.0, 24.0);
const MAX_ID_BYTES: usize = 128;

/// Thousandths of a frame of source a clip may use: the source's duration plus half an output
/// frame. The half frame is the snapping slack: any seconds value up to the source's true length
/// snaps to within half a frame of it, and the renderer holds the last frame for the remainder.
/// `None` when the arithmetic would overflow (absurd durations).
pub(crate) fn source_limit_milli(source_ns: i64, rate: Rate) -> Option<i128> {
    let ns = 1_000_000_000_i128;
    let (num, den) = (i128::from(rate.num()), i128::from(rate.den()));
    let top = i128::from(source_ns)
        .checked_mul(num)?
        .checked_mul(2000)?
        .checked_add(1000 * den * ns)?;
    Some(super::time::div_floor(top, 2 * den * ns))
}

/// Thousandths of a frame of source the clip consumes, `in_point + duration * speed`.
pub(crate) fn consumed_milli(c: &Clip) -> i128 {
    i128::from(c.in_point.0) * 1000 + c.speed.source_milli(c.duration)
}

pub(crate) fn check_id(errs: &mut ValidationErrors, path: String, id: &str) {
    if id.is_empty() || id.len() > MAX_ID_BYTES || id.chars().any(char::is_control) {
        errs.push(
            path,
            Code::BadId,
            format!("id must be 1..={MAX_ID_BYTES} bytes without control characters"),
        );
    }
}

impl Timeline {
    /// Checks every rule of the document and reports all violations.
    pub fn validate(&self, cx: &Context<'_>) -> Result<(), ValidationErrors> {
        let mut errs = ValidationErrors::default();
        validate_into(self, cx, &mut errs);
        errs.into_result()
    }
}

pub(crate) fn validate_into(tl: &Timeline, cx: &Context<'_>, errs: &mut ValidationErrors) {
    validate_output(&tl.output, errs);
    let limits = cx.limits;
    if tl.tracks.len() > limits.max_tracks {
        errs.push(
            "/tracks",
            Code::TooManyTracks,
            format!("{} tracks, at most {}", tl.tracks.len(), limits.max_tracks),
        );
    }
    let clips: usize = tl.tracks.iter().map(|t| t.clips.len()).sum();
    if clips > limits.max_clips {
        errs.push(
            "/tracks",
            Code::TooManyClips,
            format!("{clips} clips, at most {}", limits.max_clips),
        );
    }
    let mut ids: HashSet<&str> = HashSet::new();
    for (ti, track) in tl.tracks.iter().enumerate() {
        let tp = format!("/tracks/{ti}");
        check_id(errs, format!("{tp}/id"), &track.id);
        if !ids.insert(&track.id) {
            errs.push(
                format!("{tp}/id"),
                Code::DuplicateId,
                format!("id {:?} is used twice", track.id),
            );
        }
        let (lo, hi) = VOLUME_DB_RANGE;
        errs.range(format!("{tp}/volume_db"), track.volume_db, lo, hi);
        for (ci, clip) in track.clips.iter().enumerate() {
            let cp = format!("{tp}/clips/{ci}");
            if !ids.insert(&clip.id) {
                errs.push(
                    format!("{cp}/id"),
                    Code::DuplicateId,
                    format!("id {:?} is used twice", clip.id),
                );
            }
            validate_clip(tl.output.frame_rate, track.kind, clip, &cp, cx, errs);
        }
        validate_layout(track, &tp, errs);
    }
}

fn validate_output(o: &Output, errs: &mut ValidationErrors) {
    for (name, v) in [("width", o.width), ("height", o.height)] {
        if !(16..=8192).contains(&v) {
            errs.push(
                format!("/output/{name}"),
                Code::OutOfRange,
                format!("{v} is outside 16..=8192"),
            );
        } else if v % 2 != 0 {
            errs.push(
                format!("/output/{name}"),
                Code::NotEven,
                format!("{v} is odd; 4:2:0 video needs even sizes"),
            );
        }
    }
    if !(8_000..=192_000).contains(&o.sample_rate) {
        errs.push(
            "/output/sample_rate",
            Code::OutOfRange,
            format!("{} is outside 8000..=192000", o.sample_rate),
        );
    }
    if !(1..=8).contains(&o.channels) {
        errs.push(
            "/output/channels",
            Code::OutOfRange,
            format!("{} is outside 1..=8", o.channels),
        );
    }
}

fn validate_clip(
    rate: Rate,
    kind: TrackKind,
    c: &Clip,
    cp: &str,
    cx: &Context<'_>,
    errs: &mut ValidationErrors,
) {
    check_id(errs, format!("{cp}/id"), &c.id);
    if c.start < Frames::ZERO {
        errs.push(format!("{cp}/start"), Code::OutOfRange, "start is negative");
    }
    if c.in_point < Frames::ZERO {
        errs.push(
            format!("{cp}/in_point"),
            Code::OutOfRange,
            "in_point is negative",
        );
    }
    if c.duration < Frames(1) {
        errs.push(
            format!("{cp}/duration"),
            Code::OutOfRange,
            "duration must be at least one frame",
        );
    }
    let max = cx.limits.max_frames(rate);
    if c.end() > max {
        errs.push(
            format!("{cp}/duration"),
            Code::TimelineTooLong,
            format!(
                "clip ends after the {} s limit",
                cx.limits.max_duration.as_secs()
            ),
        );
    }
    validate_source(rate, kind, c, cp, cx, errs);
    validate_transform(&c.transform, &format!("{cp}/transform"), errs);
    validate_audio(&c.audio, c.duration, &format!("{cp}/audio"), errs);
    validate_effects(&c.effects, cx.limits, cp, errs);
    validate_keyframes(c, cx.limits, cp, errs);
}

fn validate_source(
    rate: Rate,
    kind: TrackKind,
    c: &Clip,
    cp: &str,
    cx: &Context<'_>,
    errs: &mut ValidationErrors,
) {
    let sp = format!("{cp}/source");
    let wrong_track = |errs: &mut ValidationErrors, what: &str| {
        errs.push(
            format!("{sp}/type"),
            Code::WrongTrackKind,
            format!("{what} cannot go on a {kind:?} track"),
        )
    };
    match &c.source {
        Source::Asset { asset_id } => {
            if kind == TrackKind::Overlay {
                wrong_track(errs, "a media asset");
            }
            let Some(info) = (cx.assets)(asset_id) else {
                errs.push(
                    format!("{sp}/asset_id"),
                    Code::UnknownAsset,
                    format!("no asset {asset_id:?}"),
                );
                return;
            };
            if info.is_image {
                errs.push(
                    format!("{sp}/type"),
                    Code::SourceMismatch,
                    "this asset is an image; use an image source",
                );
                return;
            }
            if kind == TrackKind::Video && !info.has_video {
                errs.push(
                    format!("{sp}/asset_id"),
                    Code::SourceMismatch,
                    "asset has no video stream; put it on an audio track",
                );
            }
            if kind == TrackKind::Audio && !info.has_audio {
                errs.push(
                    format!("{sp}/asset_id"),
                    Code::SourceMismatch,
                    "asset has no audio stream",
                );
            }
            let within = source_limit_milli(info.duration_ns, rate)
                .is_some_and(|limit| consumed_milli(c) <= limit);
            if !within {
                errs.push(
                    format!("{cp}/duration"),
                    Code::BeyondSource,
                    format!(
                        "in_point + duration * speed reaches past the source's end ({} ns)",
                        info.duration_ns
                    ),
                );
            }
        }
        Source::Image { asset_id } => {
            if kind == TrackKind::Audio {
                wrong_track(errs, "an image");
            }
            match (cx.assets)(asset_id) {
                None => errs.push(
                    format!("{sp}/asset_id"),
                    Code::UnknownAsset,
                    format!("no asset {asset_id:?}"),
                ),
                Some(info) if !info.is_image => errs.push(
                    format!("{sp}/type"),
                    Code::SourceMismatch,
                    "this asset is not an image; use an asset source",
                ),
                Some(_) => {}
            }
        }
        Source::Color { .. } => {
            if kind == TrackKind::Audio {
                wrong_track(errs, "a colour");
            }
        }
        Source::Title(t) => {
            if kind != TrackKind::Overlay {
                wrong_track(errs, "a title");
            }
            validate_title(t, c.duration, cx.limits, &sp, errs);
        }
    }
}

fn validate_title(
    t: &Title,
    duration: Frames,
    limits: &TimelineLimits,
    sp: &str,
    errs: &mut ValidationErrors,
) {
    if t.text.trim().is_empty() {
        errs.push(format!("{sp}/text"), Code::EmptyText, "title text is empty");
    }
    let chars = t.text.chars().count();
    if chars > limits.max_title_chars {
        errs.push(
            format!("{sp}/text"),
            Code::TextTooLong,
            format!("{chars} characters, at most {}", limits.max_title_chars),
        );
    }
    if t.font_family.chars().count() > 200 {
        errs.push(
            format!("{sp}/font_family"),
            Code::TextTooLong,
            "font family name over 200 characters",
        );
    }
    errs.range(format!("{sp}/size"), t.size, 1.0, 1000.0);
    errs.range(format!("{sp}/weight"), f64::from(t.weight), 100.0, 900.0);
    errs.range(format!("{sp}/x"), t.x, 0.0, 1.0);
    errs.range(format!("{sp}/y"), t.y, 0.0, 1.0);
    if let Some(o) = &t.outline {
        errs.range(format!("{sp}/outline/width"), o.width, 0.0, 100.0);
    }
    if let Some(s) = &t.shadow {
        errs.range(format!("{sp}/shadow/x"), s.x, -1000.0, 1000.0);
        errs.range(format!("{sp}/shadow/y"), s.y, -1000.0, 1000.0);
        errs.range(format!("{sp}/shadow/blur"), s.blur, 0.0, 100.0);
    }
    if let Some(b) = &t.background {
        errs.range(format!("{sp}/background/padding"), b.padding, 0.0, 1000.0);
    }
    validate_fades(t.fade_in, t.fade_out, duration, sp, errs);
}

fn validate_fades(
    fade_in: Frames,
    fade_out: Frames,
    duration: Frames,
    p: &str,
    errs: &mut ValidationErrors,
) {
    for (name, f) in [("fade_in", fade_in), ("fade_out", fade_out)] {
        if f < Frames::ZERO {
            errs.push(format!("{p}/{name}"), Code::OutOfRange, "fade is negative");
        }
    }
    if fade_in >= Frames::ZERO && fade_out >= Frames::ZERO && fade_in + fade_out > duration {
        errs.push(
            format!("{p}/fade_out"),
            Code::FadeTooLong,
            "fade_in + fade_out is longer than the clip",
        );
    }
}

fn validate_transform(t: &Transform, p: &str, errs: &mut ValidationErrors) {
    let props = [
        ("x", t.x, AnimProp::X),
        ("y", t.y, AnimProp::Y),
        ("scale", t.scale, AnimProp::Scale),
        ("rotation", t.rotation, AnimProp::Rotation),
        ("opacity", t.opacity, AnimProp::Opacity),
        ("crop_left", t.crop_left, AnimProp::CropLeft),
        ("crop_right", t.crop_right, AnimProp::CropRight),
        ("crop_top", t.crop_top, AnimProp::CropTop),
        ("crop_bottom", t.crop_bottom, AnimProp::CropBottom),
    ];
    for (name, v, prop) in props {
        let (lo, hi) = prop.range();
        errs.range(format!("{p}/{name}"), v, lo, hi);
    }
    if t.crop_left + t.crop_right >= 1.0 {
        errs.push(
            format!("{p}/crop_right"),
            Code::CropTooLarge,
            "crop_left + crop_right must be below 1",
        );
    }
    if t.crop_top + t.crop_bottom >= 1.0 {
        errs.push(
            format!("{p}/crop_bottom"),
            Code::CropTooLarge,
            "crop_top + crop_bottom must be below 1",
        );
    }
}

fn validate_audio(a: &ClipAudio, duration: Frames, p: &str, errs: &mut ValidationErrors) {
    let (lo, hi) = VOLUME_DB_RANGE;
    errs.range(format!("{p}/volume_db"), a.volume_db, lo, hi);
    validate_fades(a.fade_in, a.fade_out, duration, p, errs);
}

fn validate_effects(
    effects: &[Effect],
    limits: &TimelineLimits,
    cp: &str,
    errs: &mut ValidationErrors,
) {
    if effects.len() > limits.max_effects_per_clip {
        errs.push(
            format!("{cp}/effects"),
            Code::TooManyEffects,
            format!(
                "{} effects, at most {}",
                effects.len(),
                limits.max_effects_per_clip
            ),
        );
    }
    let mut seen = HashSet::new();
    for (i, e) in effects.iter().enumerate() {
        let p = format!("{cp}/effects/{i}");
        if !seen.insert(e.kind_name()) {
            errs.push(
                p.clone(),
                Code::DuplicateEffect,
                format!("{} appears twice", e.kind_name()),
            );
        }
        match *e {
            Effect::Brightness { value } => errs.range(format!("{p}/value"), value, -1.0, 1.0),
            Effect::Contrast { value } | Effect::Saturation { value } => {
                errs.range(format!("{p}/value"), value, 0.0, 2.0)
            }
            Effect::Greyscale => {}
            Effect::Blur { radius } => errs.range(format!("{p}/radius"), radius, 0.0, 100.0),
        }
    }
}

fn validate_keyframes(c: &Clip, limits: &TimelineLimits, cp: &str, errs: &mut ValidationErrors) {
    if c.keyframes.len() > limits.max_keyframes_per_clip {
        errs.push(
            format!("{cp}/keyframes"),
            Code::TooManyKeyframes,
            format!(
                "{} keyframes, at most {}",
                c.keyframes.len(),
                limits.max_keyframes_per_clip
            ),
        );
    }
    let mut seen = HashSet::new();
    for (i, k) in c.keyframes.iter().enumerate() {
        let p = format!("{cp}/keyframes/{i}");
        if k.time < Frames::ZERO || k.time > c.duration {
            errs.push(
                format!("{p}/time"),
                Code::OutOfRange,
                "keyframe time must be within the clip (0..=duration)",
            );
        }
        let (lo, hi) = k.property.range();
        errs.range(format!("{p}/value"), k.value, lo, hi);
        if !seen.insert((k.property, k.time)) {
            errs.push(
                p,
                Code::DuplicateKeyframe,
                format!("two {:?} keyframes at the same frame", k.property),
            );
        }
    }
}

/// Overlap and transition rules of one track.
fn validate_layout(track: &Track, tp: &str, errs: &mut ValidationErrors) {
    let index: HashMap<&str, usize> = track
        .clips
        .iter()
        .enumerate()
        .map(|(i, c)| (c.id.as_str(), i))
        .collect();
    let mut pairs = HashSet::new();
    for (i, tr) in track.transitions.iter().enumerate() {
        let p = format!("{tp}/transitions/{i}");
        if track.kind == TrackKind::Audio && tr.kind != TransitionKind::Crossfade {
            errs.push(
                format!("{p}/kind"),
                Code::WrongTrackKind,
                "audio tracks only take crossfades",
            );
        }
        if tr.duration < Frames(1) {
            errs.push(
                format!("{p}/duration"),
                Code::OutOfRange,
                "duration must be at least one frame",
            );
        }
        let from = index.get(tr.from.as_str()).map(|&i| &track.clips[i]);
        let to = index.get(tr.to.as_str()).map(|&i| &track.clips[i]);
        for (field, id, found) in [("from", &tr.from, from), ("to", &tr.to, to)] {
            if found.is_none() {
                errs.push(
                    format!("{p}/{field}"),
                    Code::UnknownClip,
                    format!("no clip {id:?} on this track"),
                );
            }
        }
        if !pairs.insert((tr.from.as_str(), tr.to.as_str()))
            || pairs.contains(&(tr.to.as_str(), tr.from.as_str()))
        {
            errs.push(
                p.clone(),
                Code::DuplicateTransition,
                "these two clips already have a transition",
            );
        }
        let (Some(a), Some(b)) = (from, to) else {
            continue;
        };
        if a.start >= b.start || a.end() >= b.end() {
            errs.push(
                p,
                Code::TransitionOrder,
                "`from` must start and end before `to`",
            );
            continue;
        }
        let overlap = a.end() - b.start;
        if overlap <= Frames::ZERO {
            errs.push(
                p,
                Code::TransitionWithoutOverlap,
                "the clips do not overlap",
            );
        } else if tr.duration > overlap {
            errs.push(
                format!("{p}/duration"),
                Code::TransitionTooLong,
                format!("duration is longer than the {} overlap", overlap),
            );
        }
    }

    let mut order: Vec<usize> = (0..track.clips.len())
        .filter(|&i| track.clips[i].duration > Frames::ZERO)
        .collect();
    order.sort_by_key(|&i| (track.clips[i].start, track.clips[i].end()));
    // Clips still running at the current start; with starts sorted, exactly the earlier clips
    // that overlap the current one.
    let mut active: Vec<usize> = Vec::new();
    for &j in &order {
        let b = &track.clips[j];
        active.retain(|&i| track.clips[i].end() > b.start);
        if active.len() >= 2 {
            errs.push(
                format!("{tp}/clips/{j}/start"),
                Code::TooManyOverlaps,
                "more than two clips overlap here",
            );
        }
        for &i in &active {
            let a = &track.clips[i];
            let covered = pairs.contains(&(a.id.as_str(), b.id.as_str()))
                || pairs.contains(&(b.id.as_str(), a.id.as_str()));
            if !covered {
                errs.push(
                    format!("{tp}/clips/{j}/start"),
                    Code::OverlapWithoutTransition,
                    format!("overlaps clip {:?} without a transition", a.id),
                );
            }
        }
        active.push(j);
    }
}

#[cfg(test)]
#[path = "validate_tests.rs"]
mod tests;
