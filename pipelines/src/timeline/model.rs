//! The domain timeline: integer frames everywhere. This is what is stored (database, op log) and
//! what the render compiler reads. Callers speak the wire form ([`super::doc`]) instead.
//!
//! Composite types have public fields so the compiler can read them directly; their invariants
//! (ranges, overlaps, sources) are checked as a whole by [`Timeline::validate`], which every
//! constructor path ([`Timeline::from_doc`], [`Timeline::apply`]) runs. A `Timeline` read back
//! from storage with serde should be validated again before use.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::time::{Frames, Rate, Speed};

/// An RGBA colour. On the wire and in storage it is `"#RRGGBB"` (opaque) or `"#RRGGBBAA"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(try_from = "String", into = "String")]
pub struct Rgba {
    pub r: u8,
    pub g: u8,
    pub b: u8,
    pub a: u8,
}

impl Rgba {
    pub const BLACK: Rgba = Rgba::opaque(0, 0, 0);
    pub const WHITE: Rgba = Rgba::opaque(255, 255, 255);

    pub const fn opaque(r: u8, g: u8, b: u8) -> Rgba {
        Rgba { r, g, b, a: 255 }
    }

    pub fn parse(s: &str) -> Option<Rgba> {
        let hex = s.strip_prefix('#')?;
        if !(hex.len() == 6 || hex.len() == 8) || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        let byte = |i: usize| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok();
        Some(Rgba {
            r: byte(0)?,
            g: byte(2)?,
            b: byte(4)?,
            a: if hex.len() == 8 { byte(6)? } else { 255 },
        })
    }
}

impl fmt::Display for Rgba {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{:02X}{:02X}{:02X}", self.r, self.g, self.b)?;
        if self.a != 255 {
            write!(f, "{:02X}", self.a)?;
        }
        Ok(())
    }
}

impl TryFrom<String> for Rgba {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        Rgba::parse(&s).ok_or_else(|| format!("{s:?} is not a #RRGGBB or #RRGGBBAA colour"))
    }
}

impl From<Rgba> for String {
    fn from(c: Rgba) -> String {
        c.to_string()
    }
}

/// Render settings of the whole document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Output {
    /// Even, 16..=8192 (4:2:0 encoders need even sizes).
    pub width: u32,
    /// Even, 16..=8192.
    pub height: u32,
    pub frame_rate: Rate,
    /// 8000..=192000 Hz.
    pub sample_rate: u32,
    /// 1..=8.
    pub channels: u8,
    /// Shown wherever no video track covers the frame.
    pub background: Rgba,
}

impl Default for Output {
    fn default() -> Self {
        Output {
            width: 1920,
            height: 1080,
            frame_rate: Rate::FPS_30,
            sample_rate: 48_000,
            channels: 2,
            background: Rgba::BLACK,
        }
    }
}

/// What a track may hold.
///
/// * `video`: asset clips with a video stream (their audio, if any, is mixed too), images and
///   colours.
/// * `audio`: asset clips with an audio stream; only their sound is used.
/// * `overlay`: titles, images and colours (logos, lower thirds, tints).
///
/// Visual tracks are composited in index order whatever their kind: index 0 is the bottom, a
/// higher track covers a lower one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum TrackKind {
    Video,
    Audio,
    Overlay,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Track {
    /// Unique in the document (tracks and clips share one id space).
    pub id: String,
    pub kind: TrackKind,
    pub name: String,
    /// Silences the track's sound.
    pub muted: bool,
    /// Hides the track's picture.
    pub hidden: bool,
    /// A locked track refuses every edit except unlocking it.
    pub locked: bool,
    /// Track gain in dB, -60..=24, applied after the clips' own volume.
    pub volume_db: f64,
    /// Sorted by (start, id).
    pub clips: Vec<Clip>,
    /// Sorted by (from, to).
    pub transitions: Vec<Transition>,
}

impl Track {
    pub fn new(id: impl Into<String>, kind: TrackKind) -> Track {
        Track {
            id: id.into(),
            kind,
            name: String::new(),
            muted: false,
            hidden: false,
            locked: false,
            volume_db: 0.0,
            clips: Vec::new(),
            transitions: Vec::new(),
        }
    }

    pub fn clip(&self, id: &str) -> Option<&Clip> {
        self.clips.iter().find(|c| c.id == id)
    }

    /// Puts clips, transitions and keyframes in their canonical order, so that equal documents
    /// compare equal whatever order edits happened in.
    pub(crate) fn canonicalize(&mut self) {
        self.clips
            .sort_by(|a, b| a.start.cmp(&b.start).then_with(|| a.id.cmp(&b.id)));
        for c in &mut self.clips {
            c.keyframes
                .sort_by(|a, b| a.property.cmp(&b.property).then(a.time.cmp(&b.time)));
        }
        self.transitions
            .sort_by(|a, b| a.from.cmp(&b.from).then_with(|| a.to.cmp(&b.to)));
    }
}

/// Where a clip's picture and sound come from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Source {
    /// A probed media asset (video and/or audio).
    Asset {
        asset_id: String,
    },
    /// A still image asset; lasts as long as the clip.
    Image {
        asset_id: String,
    },
    /// A solid colour filling the frame (before the clip transform).
    Color {
        rgba: Rgba,
    },
    Title(Box<Title>),
}

impl Source {
    /// Stills have no source duration: any in-point, duration and speed are fine.
    pub fn is_still(&self) -> bool {
        !matches!(self, Source::Asset { .. })
    }

    pub fn asset_id(&self) -> Option<&str> {
        match self {
            Source::Asset { asset_id } | Source::Image { asset_id } => Some(asset_id),
            _ => None,
        }
    }
}

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum HAlign {
    Left,
    #[default]
    Center,
    Right,
}

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum VAlign {
    Top,
    #[default]
    Middle,
    Bottom,
}

/// A text title. Sizes and widths are output pixels; the anchor is normalised to the frame.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Title {
    /// 1..=`TimelineLimits::max_title_chars` characters; `\n` breaks lines.
    pub text: String,
    pub font_family: String,
    /// Font size in output pixels, 1..=1000.
    pub size: f64,
    /// CSS-style weight, 100..=900.
    pub weight: u16,
    pub color: Rgba,
    pub outline: Option<Outline>,
    pub shadow: Option<Shadow>,
    pub background: Option<TitleBox>,
    /// Which point of the text block sits on the anchor (e.g. `left` + `bottom` puts the text's
    /// bottom-left corner there), also how lines are aligned to each other.
    pub align: HAlign,
    pub valign: VAlign,
    /// Anchor x as a fraction of the output width (0 = left edge, 1 = right edge).
    pub x: f64,
    /// Anchor y as a fraction of the output height (0 = top edge, 1 = bottom edge).
    pub y: f64,
    /// Opacity ramp at the start of the clip; fade_in + fade_out <= clip duration.
    pub fade_in: Frames,
    pub fade_out: Frames,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Outline {
    pub color: Rgba,
    /// Pixels, 0..=100.
    pub width: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Shadow {
    pub color: Rgba,
    /// Offset in pixels, -1000..=1000 each.
    pub x: f64,
    pub y: f64,
    /// Blur radius in pixels, 0..=100.
    pub blur: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TitleBox {
    pub color: Rgba,
    /// Pixels around the text, 0..=1000.
    pub padding: f64,
}

/// How a clip's (cropped) picture is first fitted to the output frame, before `scale`, `rotation`
/// and position are applied.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Fit {
    /// Scale uniformly until the whole picture fits inside the frame (letter/pillar-boxed).
    #[default]
    Contain,
    /// Scale uniformly until the picture fills the frame; the overflow is cut off.
    Cover,
    /// Scale each axis independently to exactly the frame size (aspect ratio not kept).
    Stretch,
}

/// Picture placement. Order of operations: crop the source, fit it to the frame (`fit`), scale
/// about its centre, rotate about its centre, then move its centre by (`x`, `y`).
///
/// Positions are **normalised**, not pixels, so a document keeps its layout when the output size
/// changes: `x` is the offset of the clip's centre from the frame's centre as a fraction of the
/// output width (`0.5` puts the centre on the right edge), `y` likewise of the height, positive
/// downwards.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct Transform {
    /// -10..=10.
    pub x: f64,
    /// -10..=10.
    pub y: f64,
    /// Uniform factor after fitting, 0.01..=100.
    pub scale: f64,
    /// Fractions of the source removed from each side, 0..1; left+right and top+bottom < 1.
    pub crop_left: f64,
    pub crop_right: f64,
    pub crop_top: f64,
    pub crop_bottom: f64,
    /// Clockwise degrees, -3600..=3600.
    pub rotation: f64,
    /// 0..=1.
    pub opacity: f64,
    pub fit: Fit,
}

impl Default for Transform {
    fn default() -> Self {
        Transform {
            x: 0.0,
            y: 0.0,
            scale: 1.0,
            crop_left: 0.0,
            crop_right: 0.0,
            crop_top: 0.0,
            crop_bottom: 0.0,
            rotation: 0.0,
            opacity: 1.0,
            fit: Fit::Contain,
        }
    }
}

impl Transform {
    pub fn is_default(&self) -> bool {
        *self == Transform::default()
    }
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ClipAudio {
    /// Gain in dB, -60..=24.
    pub volume_db: f64,
    /// Linear fade from silence over the clip's first frames; fade_in + fade_out <= duration.
    pub fade_in: Frames,
    pub fade_out: Frames,
    pub mute: bool,
}

/// Picture effects, applied in list order; each kind at most once per clip.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Effect {
    /// Added to luma, -1..=1 (0 = unchanged).
    Brightness {
        value: f64,
    },
    /// Factor, 0..=2 (1 = unchanged).
    Contrast {
        value: f64,
    },
    /// Factor, 0..=2 (1 = unchanged, 0 = grey).
    Saturation {
        value: f64,
    },
    Greyscale,
    /// Gaussian blur radius in output pixels, 0..=100.
    Blur {
        radius: f64,
    },
}

impl Effect {
    pub fn kind_name(&self) -> &'static str {
        match self {
            Effect::Brightness { .. } => "brightness",
            Effect::Contrast { .. } => "contrast",
            Effect::Saturation { .. } => "saturation",
            Effect::Greyscale => "greyscale",
            Effect::Blur { .. } => "blur",
        }
    }
}

/// A property that keyframes can animate. The value range is the static property's range.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum AnimProp {
    X,
    Y,
    Scale,
    Rotation,
    Opacity,
    CropLeft,
    CropRight,
    CropTop,
    CropBottom,
    VolumeDb,
}

impl AnimProp {
    /// Inclusive value range.
    pub fn range(self) -> (f64, f64) {
        match self {
            AnimProp::X | AnimProp::Y => (-10.0, 10.0),
            AnimProp::Scale => (0.01, 100.0),
            AnimProp::Rotation => (-3600.0, 3600.0),
            AnimProp::Opacity => (0.0, 1.0),
            AnimProp::CropLeft | AnimProp::CropRight | AnimProp::CropTop | AnimProp::CropBottom => {
                (0.0, 0.99)
            }
            AnimProp::VolumeDb => (-60.0, 24.0),
        }
    }
}

/// How a value travels from this keyframe to the next one of the same property.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Interpolation {
    #[default]
    Linear,
    EaseIn,
    EaseOut,
    EaseInOut,
    /// Keep this value until the next keyframe, then jump.
    Hold,
}

/// One animation point. Before the first keyframe of a property its value is held, likewise
/// after the last; keyframes override the static value of the property.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Keyframe {
    pub property: AnimProp,
    /// Relative to the clip's start on the timeline, 0..=duration.
    pub time: Frames,
    pub value: f64,
    pub interpolation: Interpolation,
}

/// A piece of a source placed on a track.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Clip {
    pub id: String,
    pub source: Source,
    /// Timeline frame where the clip starts, >= 0.
    pub start: Frames,
    /// Lower end of the used source range, in output frames from the source's start.
    pub in_point: Frames,
    /// Timeline frames, >= 1.
    pub duration: Frames,
    /// The clip plays `duration * speed` source frames from `in_point` up.
    pub speed: Speed,
    /// Plays the same source range backwards (the clip's first frame is the range's last).
    pub reverse: bool,
    pub transform: Transform,
    pub audio: ClipAudio,
    pub effects: Vec<Effect>,
    /// Sorted by (property, time).
    pub keyframes: Vec<Keyframe>,
}

impl Clip {
    pub fn new(id: impl Into<String>, source: Source, start: Frames, duration: Frames) -> Clip {
        Clip {
            id: id.into(),
            source,
            start,
            in_point: Frames::ZERO,
            duration,
            speed: Speed::NORMAL,
            reverse: false,
            transform: Transform::default(),
            audio: ClipAudio::default(),
            effects: Vec::new(),
            keyframes: Vec::new(),
        }
    }

    /// First timeline frame after the clip.
    pub fn end(&self) -> Frames {
        self.start + self.duration
    }
}

/// Transition patterns. Wipes name the direction the incoming clip is revealed in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum TransitionKind {
    Crossfade,
    WipeLeft,
    WipeRight,
    WipeUp,
    WipeDown,
    /// Opening circle from the centre.
    Iris,
    /// Clock hand sweeping clockwise from 12 o'clock.
    Clock,
    /// Two doors opening from the vertical centre line.
    BarnDoorHorizontal,
    /// Two doors opening from the horizontal centre line.
    BarnDoorVertical,
}

/// A transition between two overlapping clips of one track. It starts where `to` starts and runs
/// for `duration` (<= the overlap); after it only `to` is seen and heard, so the rest of `from`'s
/// overlap is not shown. Sound always crossfades over the transition, whatever the picture does.
/// Audio tracks accept only `crossfade`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Transition {
    /// The earlier clip (starts and ends first).
    pub from: String,
    /// The later clip.
    pub to: String,
    pub kind: TransitionKind,
    /// >= 1 frame.
    pub duration: Frames,
}

/// A whole timeline document in frames.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Timeline {
    pub output: Output,
    /// Index 0 is the bottom of the stack.
    pub tracks: Vec<Track>,
}

/// Where a clip lives: (track index, clip index).
pub(crate) type ClipPos = (usize, usize);

impl Timeline {
    /// First frame after the last clip.
    pub fn duration(&self) -> Frames {
        self.tracks
            .iter()
            .flat_map(|t| t.clips.iter().map(Clip::end))
            .max()
            .unwrap_or(Frames::ZERO)
    }

    pub fn rate(&self) -> Rate {
        self.output.frame_rate
    }

    pub fn track(&self, id: &str) -> Option<&Track> {
        self.tracks.iter().find(|t| t.id == id)
    }

    pub fn track_index(&self, id: &str) -> Option<usize> {
        self.tracks.iter().position(|t| t.id == id)
    }

    pub fn clip(&self, id: &str) -> Option<(&Track, &Clip)> {
        self.clip_pos(id)
            .map(|(t, c)| (&self.tracks[t], &self.tracks[t].clips[c]))
    }

    pub(crate) fn clip_pos(&self, id: &str) -> Option<ClipPos> {
        self.tracks
            .iter()
            .enumerate()
            .find_map(|(ti, t)| t.clips.iter().position(|c| c.id == id).map(|ci| (ti, ci)))
    }

    /// True when `id` names any track or clip.
    pub fn id_in_use(&self, id: &str) -> bool {
        self.tracks
            .iter()
            .any(|t| t.id == id || t.clips.iter().any(|c| c.id == id))
    }

    pub(crate) fn canonicalize(&mut self) {
        for t in &mut self.tracks {
            t.canonicalize();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colours_parse_and_print() {
        assert_eq!(Rgba::parse("#ff8000"), Some(Rgba::opaque(255, 128, 0)));
        assert_eq!(
            Rgba::parse("#FF800080"),
            Some(Rgba {
                r: 255,
                g: 128,
                b: 0,
                a: 128
            })
        );
        for bad in [
            "ff8000",
            "#ff80",
            "#gg8000",
            "#ff8000801",
            "#",
            "",
            "#ff800é",
        ] {
            assert_eq!(Rgba::parse(bad), None, "{bad}");
        }
        assert_eq!(Rgba::opaque(1, 2, 3).to_string(), "#010203");
        assert_eq!(
            Rgba {
                r: 1,
                g: 2,
                b: 3,
                a: 4
            }
            .to_string(),
            "#01020304"
        );
        let json = serde_json::to_string(&Rgba::WHITE).unwrap_or_default();
        assert_eq!(json, "\"#FFFFFF\"");
        assert!(serde_json::from_str::<Rgba>("\"#12\"").is_err());
    }

    #[test]
    fn canonical_order() {
        let mut t = Track::new("v", TrackKind::Video);
        let src = Source::Color { rgba: Rgba::BLACK };
        t.clips
            .push(Clip::new("b", src.clone(), Frames(10), Frames(5)));
        t.clips
            .push(Clip::new("a", src.clone(), Frames(10), Frames(5)));
        t.clips.push(Clip::new("c", src, Frames(0), Frames(5)));
        t.canonicalize();
        let ids: Vec<_> = t.clips.iter().map(|c| c.id.as_str()).collect();
        assert_eq!(ids, ["c", "a", "b"]);
    }
}
