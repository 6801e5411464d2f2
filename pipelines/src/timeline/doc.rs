//! The wire form of a timeline: what API callers post and receive. Times are seconds (`f64`);
//! colours are `"#RRGGBB[AA]"` strings; most fields are optional so a minimal document is short.
//! [`Timeline::from_doc`] snaps every time to the output frame grid (half away from zero) and
//! validates; [`Timeline::to_doc`] writes the frames back as seconds, so doc → domain → doc →
//! domain is a fixed point.
//!
//! Clip, transition and keyframe order in a document does not matter; the domain keeps them
//! sorted (clips by start then id), so a document read back may list them in another order.

use serde::{Deserialize, Serialize};

use super::model::{
    AnimProp, Clip, ClipAudio, Effect, HAlign, Interpolation, Keyframe, Outline, Output, Rgba,
    Shadow, Source, Timeline, Title, TitleBox, Track, TrackKind, Transform, Transition,
    TransitionKind, VAlign,
};
use super::time::{Frames, Rate, Speed};
use super::validate::{Code, Context, ValidationErrors, validate_into};

fn is_false(b: &bool) -> bool {
    !*b
}

fn is_zero(v: &f64) -> bool {
    *v == 0.0
}

fn is_default<T: Default + PartialEq>(v: &T) -> bool {
    *v == T::default()
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TimelineDoc {
    #[serde(default)]
    pub output: OutputDoc,
    #[serde(default)]
    pub tracks: Vec<TrackDoc>,
}

/// Output settings. Defaults: 1920x1080, 30 fps, 48 kHz stereo, black background.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct OutputDoc {
    pub width: u32,
    pub height: u32,
    pub frame_rate: FrameRateDoc,
    pub sample_rate: u32,
    pub channels: u32,
    pub background: String,
}

impl Default for OutputDoc {
    fn default() -> Self {
        output_to_doc(&Output::default())
    }
}

/// `30` or `{"num": 30000, "den": 1001}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(untagged)]
pub enum FrameRateDoc {
    Whole(u64),
    Ratio(RatioDoc),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RatioDoc {
    pub num: u64,
    #[serde(default = "one")]
    pub den: u64,
}

fn one() -> u64 {
    1
}

impl FrameRateDoc {
    pub fn to_rate(self) -> Option<Rate> {
        match self {
            FrameRateDoc::Whole(n) => Rate::new(n, 1).ok(),
            FrameRateDoc::Ratio(r) => Rate::new(r.num, r.den).ok(),
        }
    }

    pub fn from_rate(r: Rate) -> FrameRateDoc {
        if r.den() == 1 {
            FrameRateDoc::Whole(u64::from(r.num()))
        } else {
            FrameRateDoc::Ratio(RatioDoc {
                num: u64::from(r.num()),
                den: u64::from(r.den()),
            })
        }
    }
}

impl Default for FrameRateDoc {
    fn default() -> Self {
        FrameRateDoc::Whole(30)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TrackDoc {
    /// Optional; an empty id becomes `track-<index>`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub id: String,
    pub kind: TrackKind,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    #[serde(default, skip_serializing_if = "is_false")]
    pub muted: bool,
    #[serde(default, skip_serializing_if = "is_false")]
    pub hidden: bool,
    #[serde(default, skip_serializing_if = "is_false")]
    pub locked: bool,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub volume_db: f64,
    #[serde(default)]
    pub clips: Vec<ClipDoc>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub transitions: Vec<TransitionDoc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ClipDoc {
    pub id: String,
    pub source: SourceDoc,
    /// Seconds on the timeline.
    #[serde(default)]
    pub start: f64,
    /// Seconds into the source.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub in_point: f64,
    /// Seconds on the timeline.
    pub duration: f64,
    #[serde(default = "one_f64", skip_serializing_if = "is_one")]
    pub speed: f64,
    #[serde(default, skip_serializing_if = "is_false")]
    pub reverse: bool,
    #[serde(default, skip_serializing_if = "Transform::is_default")]
    pub transform: Transform,
    #[serde(default, skip_serializing_if = "is_default")]
    pub audio: AudioDoc,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub effects: Vec<Effect>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub keyframes: Vec<KeyframeDoc>,
}

fn one_f64() -> f64 {
    1.0
}

fn is_one(v: &f64) -> bool {
    *v == 1.0
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum SourceDoc {
    Asset { asset_id: String },
    Image { asset_id: String },
    Color { rgba: String },
    Title(Box<TitleDoc>),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct TitleDoc {
    pub text: String,
    pub font_family: String,
    pub size: f64,
    pub weight: u16,
    pub color: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outline: Option<OutlineDoc>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shadow: Option<ShadowDoc>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub background: Option<BoxDoc>,
    pub align: HAlign,
    pub valign: VAlign,
    pub x: f64,
    pub y: f64,
    /// Seconds.
    #[serde(skip_serializing_if = "is_zero")]
    pub fade_in: f64,
    #[serde(skip_serializing_if = "is_zero")]
    pub fade_out: f64,
}

impl Default for TitleDoc {
    fn default() -> Self {
        TitleDoc {
            text: String::new(),
            font_family: "Sans".into(),
            size: 64.0,
            weight: 400,
            color: "#FFFFFF".into(),
            outline: None,
            shadow: None,
            background: None,
            align: HAlign::Center,
            valign: VAlign::Middle,
            x: 0.5,
            y: 0.5,
            fade_in: 0.0,
            fade_out: 0.0,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OutlineDoc {
    pub color: String,
    pub width: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ShadowDoc {
    pub color: String,
    #[serde(default)]
    pub x: f64,
    #[serde(default)]
    pub y: f64,
    #[serde(default)]
    pub blur: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BoxDoc {
    pub color: String,
    #[serde(default)]
    pub padding: f64,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct AudioDoc {
    pub volume_db: f64,
    /// Seconds.
    pub fade_in: f64,
    pub fade_out: f64,
    pub mute: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct KeyframeDoc {
    pub property: AnimProp,
    /// Seconds from the clip's start.
    pub time: f64,
    pub value: f64,
    #[serde(default, skip_serializing_if = "is_default")]
    pub interpolation: Interpolation,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TransitionDoc {
    pub from: String,
    pub to: String,
    pub kind: TransitionKind,
    /// Seconds.
    pub duration: f64,
}

/// Converts wire values to domain values, recording every conversion problem and substituting
/// a neutral value so that conversion (and validation after it) can carry on.
pub(crate) struct Intake<'e> {
    pub rate: Rate,
    pub strict_grid: bool,
    pub errs: &'e mut ValidationErrors,
}

impl Intake<'_> {
    pub fn time(&mut self, path: &str, s: f64) -> Frames {
        let Some(f) = self.rate.try_snap_seconds(s) else {
            self.errs.push(
                path,
                Code::BadTime,
                format!("{s} is not a usable number of seconds"),
            );
            return Frames::ZERO;
        };
        if self.strict_grid && (self.rate.frames_to_seconds(f) - s).abs() > 1e-6 {
            self.errs.push(
                path,
                Code::NotOnGrid,
                format!("{s} s is not on the {} fps frame grid", self.rate),
            );
        }
        f
    }

    pub fn color(&mut self, path: &str, s: &str) -> Rgba {
        Rgba::parse(s).unwrap_or_else(|| {
            self.errs.push(
                path,
                Code::BadColor,
                format!("{s:?} is not #RRGGBB or #RRGGBBAA"),
            );
            Rgba::BLACK
        })
    }

    pub fn speed(&mut self, path: &str, v: f64) -> Speed {
        Speed::from_f64(v).unwrap_or_else(|e| {
            self.errs.push(path, Code::OutOfRange, e.to_string());
            Speed::NORMAL
        })
    }

    pub fn output(&mut self, d: &OutputDoc) -> Output {
        let frame_rate = d.frame_rate.to_rate().unwrap_or_else(|| {
            self.errs.push(
                "/output/frame_rate",
                Code::BadFrameRate,
                "frame rate must be num/den with 1..=240 fps",
            );
            Rate::default()
        });
        let channels = u8::try_from(d.channels).unwrap_or(0);
        Output {
            width: d.width,
            height: d.height,
            frame_rate,
            sample_rate: d.sample_rate,
            channels,
            background: self.color("/output/background", &d.background),
        }
    }

    /// `tp` is the track's path; `fallback_id` names a track posted without an id.
    pub fn track(&mut self, tp: &str, fallback_id: String, d: &TrackDoc) -> Track {
        Track {
            id: if d.id.is_empty() {
                fallback_id
            } else {
                d.id.clone()
            },
            kind: d.kind,
            name: d.name.clone(),
            muted: d.muted,
            hidden: d.hidden,
            locked: d.locked,
            volume_db: d.volume_db,
            clips: d
                .clips
                .iter()
                .enumerate()
                .map(|(ci, c)| self.clip(&format!("{tp}/clips/{ci}"), c))
                .collect(),
            transitions: d
                .transitions
                .iter()
                .enumerate()
                .map(|(i, t)| self.transition(&format!("{tp}/transitions/{i}"), t))
                .collect(),
        }
    }

    pub fn transition(&mut self, p: &str, d: &TransitionDoc) -> Transition {
        Transition {
            from: d.from.clone(),
            to: d.to.clone(),
            kind: d.kind,
            duration: self.time(&format!("{p}/duration"), d.duration),
        }
    }

    pub fn clip(&mut self, cp: &str, d: &ClipDoc) -> Clip {
        Clip {
            id: d.id.clone(),
            source: self.source(&format!("{cp}/source"), &d.source),
            start: self.time(&format!("{cp}/start"), d.start),
            in_point: self.time(&format!("{cp}/in_point"), d.in_point),
            duration: self.time(&format!("{cp}/duration"), d.duration),
            speed: self.speed(&format!("{cp}/speed"), d.speed),
            reverse: d.reverse,
            transform: d.transform,
            audio: self.audio(&format!("{cp}/audio"), &d.audio),
            effects: d.effects.clone(),
            keyframes: d
                .keyframes
                .iter()
                .enumerate()
                .map(|(i, k)| Keyframe {
                    property: k.property,
                    time: self.time(&format!("{cp}/keyframes/{i}/time"), k.time),
                    value: k.value,
                    interpolation: k.interpolation,
                })
                .collect(),
        }
    }

    pub fn audio(&mut self, p: &str, d: &AudioDoc) -> ClipAudio {
        ClipAudio {
            volume_db: d.volume_db,
            fade_in: self.time(&format!("{p}/fade_in"), d.fade_in),
            fade_out: self.time(&format!("{p}/fade_out"), d.fade_out),
            mute: d.mute,
        }
    }

    pub fn source(&mut self, sp: &str, d: &SourceDoc) -> Source {
        match d {
            SourceDoc::Asset { asset_id } => Source::Asset {
                asset_id: asset_id.clone(),
            },
            SourceDoc::Image { asset_id } => Source::Image {
                asset_id: asset_id.clone(),
            },
            SourceDoc::Color { rgba } => Source::Color {
                rgba: self.color(&format!("{sp}/rgba"), rgba),
            },
            SourceDoc::Title(t) => Source::Title(Box::new(Title {
                text: t.text.clone(),
                font_family: t.font_family.clone(),
                size: t.size,
                weight: t.weight,
                color: self.color(&format!("{sp}/color"), &t.color),
                outline: t.outline.as_ref().map(|o| Outline {
                    color: self.color(&format!("{sp}/outline/color"), &o.color),
                    width: o.width,
                }),
                shadow: t.shadow.as_ref().map(|s| Shadow {
                    color: self.color(&format!("{sp}/shadow/color"), &s.color),
                    x: s.x,
                    y: s.y,
                    blur: s.blur,
                }),
                background: t.background.as_ref().map(|b| TitleBox {
                    color: self.color(&format!("{sp}/background/color"), &b.color),
                    padding: b.padding,
                }),
                align: t.align,
                valign: t.valign,
                x: t.x,
                y: t.y,
                fade_in: self.time(&format!("{sp}/fade_in"), t.fade_in),
                fade_out: self.time(&format!("{sp}/fade_out"), t.fade_out),
            })),
        }
    }
}

/// Writes domain values back out in seconds.
pub(crate) struct Outlet {
    pub rate: Rate,
}

impl Outlet {
    pub fn s(&self, f: Frames) -> f64 {
        self.rate.frames_to_seconds(f)
    }

    pub fn track(&self, t: &Track) -> TrackDoc {
        TrackDoc {
            id: t.id.clone(),
            kind: t.kind,
            name: t.name.clone(),
            muted: t.muted,
            hidden: t.hidden,
            locked: t.locked,
            volume_db: t.volume_db,
            clips: t.clips.iter().map(|c| self.clip(c)).collect(),
            transitions: t.transitions.iter().map(|x| self.transition(x)).collect(),
        }
    }

    pub fn transition(&self, t: &Transition) -> TransitionDoc {
        TransitionDoc {
            from: t.from.clone(),
            to: t.to.clone(),
            kind: t.kind,
            duration: self.s(t.duration),
        }
    }

    pub fn clip(&self, c: &Clip) -> ClipDoc {
        ClipDoc {
            id: c.id.clone(),
            source: self.source(&c.source),
            start: self.s(c.start),
            in_point: self.s(c.in_point),
            duration: self.s(c.duration),
            speed: c.speed.as_f64(),
            reverse: c.reverse,
            transform: c.transform,
            audio: self.audio(&c.audio),
            effects: c.effects.clone(),
            keyframes: c
                .keyframes
                .iter()
                .map(|k| KeyframeDoc {
                    property: k.property,
                    time: self.s(k.time),
                    value: k.value,
                    interpolation: k.interpolation,
                })
                .collect(),
        }
    }

    pub fn audio(&self, a: &ClipAudio) -> AudioDoc {
        AudioDoc {
            volume_db: a.volume_db,
            fade_in: self.s(a.fade_in),
            fade_out: self.s(a.fade_out),
            mute: a.mute,
        }
    }

    pub fn source(&self, s: &Source) -> SourceDoc {
        match s {
            Source::Asset { asset_id } => SourceDoc::Asset {
                asset_id: asset_id.clone(),
            },
            Source::Image { asset_id } => SourceDoc::Image {
                asset_id: asset_id.clone(),
            },
            Source::Color { rgba } => SourceDoc::Color {
                rgba: rgba.to_string(),
            },
            Source::Title(t) => SourceDoc::Title(Box::new(TitleDoc {
                text: t.text.clone(),
                font_family: t.font_family.clone(),
                size: t.size,
                weight: t.weight,
                color: t.color.to_string(),
                outline: t.outline.map(|o| OutlineDoc {
                    color: o.color.to_string(),
                    width: o.width,
                }),
                shadow: t.shadow.map(|s| ShadowDoc {
                    color: s.color.to_string(),
                    x: s.x,
                    y: s.y,
                    blur: s.blur,
                }),
                background: t.background.map(|b| BoxDoc {
                    color: b.color.to_string(),
                    padding: b.padding,
                }),
                align: t.align,
                valign: t.valign,
                x: t.x,
                y: t.y,
                fade_in: self.s(t.fade_in),
                fade_out: self.s(t.fade_out),
            })),
        }
    }
}

pub(crate) fn output_to_doc(o: &Output) -> OutputDoc {
    OutputDoc {
        width: o.width,
        height: o.height,
        frame_rate: FrameRateDoc::from_rate(o.frame_rate),
        sample_rate: o.sample_rate,
        channels: u32::from(o.channels),
        background: o.background.to_string(),
    }
}

/// Keeps only the first problem reported at each path: a value that failed conversion was
/// replaced by a placeholder, and validating the placeholder would only repeat the complaint.
pub(crate) fn dedup_paths(errs: ValidationErrors) -> ValidationErrors {
    let mut seen = std::collections::HashSet::new();
    ValidationErrors(
        errs.0
            .into_iter()
            .filter(|e| seen.insert(e.path.clone()))
            .collect(),
    )
}

impl Timeline {
    /// Snaps, converts and validates a wire document. Error paths refer to the document as
    /// posted (its own clip order), and every problem found is reported.
    pub fn from_doc(doc: &TimelineDoc, cx: &Context<'_>) -> Result<Timeline, ValidationErrors> {
        let mut errs = ValidationErrors::default();
        let output = Intake {
            rate: Rate::default(),
            strict_grid: false,
            errs: &mut errs,
        }
        .output(&doc.output);
        let mut intake = Intake {
            rate: output.frame_rate,
            strict_grid: cx.limits.strict_grid,
            errs: &mut errs,
        };
        let tracks = doc
            .tracks
            .iter()
            .enumerate()
            .map(|(ti, t)| intake.track(&format!("/tracks/{ti}"), format!("track-{ti}"), t))
            .collect();
        let mut tl = Timeline { output, tracks };
        validate_into(&tl, cx, &mut errs);
        if !errs.is_empty() {
            return Err(dedup_paths(errs));
        }
        tl.canonicalize();
        Ok(tl)
    }

    /// The wire form, times in seconds.
    pub fn to_doc(&self) -> TimelineDoc {
        let out = Outlet { rate: self.rate() };
        TimelineDoc {
            output: output_to_doc(&self.output),
            tracks: self.tracks.iter().map(|t| out.track(t)).collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::timeline::fixtures::{VIDEO, cx, sample};
    use crate::timeline::validate::TimelineLimits;

    fn parse(json: &str) -> TimelineDoc {
        match serde_json::from_str(json) {
            Ok(d) => d,
            Err(e) => panic!("{e}"),
        }
    }

    #[track_caller]
    fn problems(doc: &TimelineDoc) -> ValidationErrors {
        match Timeline::from_doc(doc, &cx()) {
            Ok(_) => panic!("document should be refused"),
            Err(e) => e,
        }
    }

    fn minimal() -> String {
        format!(
            r#"{{"tracks": [{{"kind": "video", "clips": [
                {{"id": "c1", "source": {{"type": "asset", "asset_id": "{VIDEO}"}}, "duration": 2.5}}
            ]}}]}}"#
        )
    }

    #[test]
    fn minimal_document_uses_defaults() {
        let tl = Timeline::from_doc(&parse(&minimal()), &cx());
        let tl = match tl {
            Ok(t) => t,
            Err(e) => panic!("{e}"),
        };
        assert_eq!(tl.output, Output::default());
        assert_eq!(tl.tracks[0].id, "track-0");
        let c = &tl.tracks[0].clips[0];
        assert_eq!((c.start, c.duration), (Frames(0), Frames(75)));
        let back = serde_json::to_value(tl.to_doc()).unwrap_or_default();
        assert_eq!(
            back,
            serde_json::json!({
                "output": {"width": 1920, "height": 1080, "frame_rate": 30, "sample_rate": 48000,
                           "channels": 2, "background": "#000000"},
                "tracks": [{"id": "track-0", "kind": "video", "clips": [
                    {"id": "c1", "source": {"type": "asset", "asset_id": VIDEO},
                     "start": 0.0, "duration": 2.5}
                ]}]
            })
        );
    }

    #[test]
    fn unknown_fields_are_refused() {
        let bad = minimal().replace("\"duration\"", "\"lenght\": 1, \"duration\"");
        assert!(serde_json::from_str::<TimelineDoc>(&bad).is_err());
        let title = r##"{"type": "title", "text": "hi", "colour": "#fff"}"##;
        assert!(serde_json::from_str::<SourceDoc>(title).is_err());
        let title = r##"{"type": "title", "text": "hi", "color": "#FFF000"}"##;
        assert!(serde_json::from_str::<SourceDoc>(title).is_ok());
    }

    #[test]
    fn frame_rate_forms() {
        let r: FrameRateDoc =
            serde_json::from_str(r#"{"num": 30000, "den": 1001}"#).unwrap_or_default();
        assert_eq!(r.to_rate(), Some(Rate::NTSC_29_97));
        let r: FrameRateDoc = serde_json::from_str("25").unwrap_or_default();
        assert_eq!(r.to_rate(), Some(Rate::FPS_25));
        assert_eq!(
            serde_json::to_string(&FrameRateDoc::from_rate(Rate::NTSC_23_976)).unwrap_or_default(),
            r#"{"num":24000,"den":1001}"#
        );
    }

    #[test]
    fn conversion_problems_have_paths_and_are_not_repeated() {
        let mut doc = sample().to_doc();
        doc.output.frame_rate = FrameRateDoc::Whole(0);
        doc.output.background = "black".into();
        doc.tracks[0].clips[2].duration = 1e300;
        doc.tracks[0].clips[2].speed = 20.0;
        doc.tracks[0].clips[1].start = f64::NAN;
        if let SourceDoc::Title(t) = &mut doc.tracks[2].clips[0].source {
            t.color = "#12345".into();
        }
        let errs = problems(&doc);
        assert!(errs.has("/output/frame_rate", Code::BadFrameRate), "{errs}");
        assert!(errs.has("/output/background", Code::BadColor));
        assert!(errs.has("/tracks/0/clips/2/duration", Code::BadTime));
        assert!(errs.has("/tracks/0/clips/2/speed", Code::OutOfRange));
        assert!(errs.has("/tracks/0/clips/1/start", Code::BadTime));
        assert!(errs.has("/tracks/2/clips/0/source/color", Code::BadColor));
        let dur_errors = errs
            .iter()
            .filter(|e| e.path == "/tracks/0/clips/2/duration")
            .count();
        assert_eq!(dur_errors, 1, "{errs}");
    }

    #[test]
    fn paths_follow_the_posted_order() {
        let mut doc = sample().to_doc();
        // Post clips in reverse order; the bad one is listed first.
        doc.tracks[0].clips.reverse();
        doc.tracks[0].clips[0].transform.opacity = -1.0;
        let errs = problems(&doc);
        assert!(
            errs.has("/tracks/0/clips/0/transform/opacity", Code::OutOfRange),
            "{errs}"
        );
    }

    #[test]
    fn ntsc_snapping_and_fixed_point() {
        let mut doc = sample().to_doc();
        doc.output.frame_rate = FrameRateDoc::Ratio(RatioDoc {
            num: 30000,
            den: 1001,
        });
        doc.tracks[0].clips[2].start = 5.0 + 1e-4;
        let tl = match Timeline::from_doc(&doc, &cx()) {
            Ok(t) => t,
            Err(e) => panic!("{e}"),
        };
        // 5 s at 29.97 is 149.85 frames.
        let c = tl.clip("c").map(|x| x.1.start);
        assert_eq!(c, Some(Frames(150)));
        let again = match Timeline::from_doc(&tl.to_doc(), &cx()) {
            Ok(t) => t,
            Err(e) => panic!("{e}"),
        };
        assert_eq!(again, tl);
        assert_eq!(again.to_doc(), tl.to_doc());
    }

    #[test]
    fn strict_grid_refuses_off_grid_times() {
        let limits = TimelineLimits {
            strict_grid: true,
            ..TimelineLimits::default()
        };
        let strict = Context {
            limits: &limits,
            assets: &crate::timeline::fixtures::assets,
        };
        let mut doc = sample().to_doc();
        assert!(Timeline::from_doc(&doc, &strict).is_ok());
        doc.tracks[0].clips[2].start = 5.01;
        let errs = match Timeline::from_doc(&doc, &strict) {
            Ok(_) => panic!("off-grid start accepted"),
            Err(e) => e,
        };
        assert!(
            errs.has("/tracks/0/clips/2/start", Code::NotOnGrid),
            "{errs}"
        );
    }

    #[test]
    fn domain_serde_round_trips() {
        let tl = sample();
        let json = serde_json::to_string(&tl).unwrap_or_default();
        let back: Timeline = match serde_json::from_str(&json) {
            Ok(t) => t,
            Err(e) => panic!("{e}: {json}"),
        };
        assert_eq!(back, tl);
    }
}
