//! Wire form of edit operations: the same ops as [`Op`], with times in seconds and colours as
//! strings, mirroring [`super::doc`]. Convert with [`Timeline::op_from_doc`] against the version
//! the op will be applied to: its frame rate decides the grid the seconds snap to. Ops that apply
//! one after another (a batch, or the ops of one edit through [`OpIntake`]) each snap on the grid
//! in effect when they apply, so an op after a frame-rate change uses the new rate, and get their
//! defaults (an `add_track`'s id and index) from the document as the ops before them leave it.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};

use super::doc::{
    AudioDoc, ClipDoc, FrameRateDoc, Intake, KeyframeDoc, Outlet, SourceDoc, TimelineDoc, TrackDoc,
    TransitionDoc, dedup_paths,
};
use super::model::{Keyframe, Rgba, Timeline, Transform, TransitionKind};
use super::ops::{ClipPatch, EditError, Op, OutputPatch, TrackPatch, apply_op};
use super::time::Rate;
use super::validate::{Code, Context, ValidationErrors};

/// Clip properties to change (seconds); see [`ClipPatch`].
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct ClipPatchDoc {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<SourceDoc>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub in_point: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duration: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub speed: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reverse: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub transform: Option<Transform>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub audio: Option<AudioDoc>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub effects: Option<Vec<super::model::Effect>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keyframes: Option<Vec<KeyframeDoc>>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct OutputPatchDoc {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub width: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub height: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub frame_rate: Option<FrameRateDoc>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sample_rate: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub channels: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub background: Option<String>,
}

/// An edit as posted by API callers. Field meanings are those of [`Op`]'s variants.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum OpDoc {
    /// `index` defaults to the top of the stack; a track without an id gets the first free
    /// `track-<n>`. Both are taken from the document as the ops before this one leave it.
    AddTrack {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        index: Option<usize>,
        track: TrackDoc,
    },
    RemoveTrack {
        track_id: String,
    },
    MoveTrack {
        track_id: String,
        index: usize,
    },
    SetTrack {
        track_id: String,
        patch: TrackPatch,
    },
    AddClip {
        track_id: String,
        clip: ClipDoc,
    },
    RemoveClip {
        clip_id: String,
    },
    MoveClip {
        clip_id: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        track_id: Option<String>,
        start: f64,
    },
    TrimStart {
        clip_id: String,
        start: f64,
    },
    TrimEnd {
        clip_id: String,
        end: f64,
    },
    SplitClip {
        clip_id: String,
        at: f64,
        new_id: String,
    },
    DuplicateClip {
        clip_id: String,
        new_id: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        track_id: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        start: Option<f64>,
    },
    SetClip {
        clip_id: String,
        patch: ClipPatchDoc,
    },
    AddTransition {
        transition: TransitionDoc,
    },
    RemoveTransition {
        from: String,
        to: String,
    },
    SetTransition {
        from: String,
        to: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        kind: Option<TransitionKind>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        duration: Option<f64>,
    },
    SetOutput {
        patch: OutputPatchDoc,
    },
    RippleDelete {
        clip_id: String,
    },
    RippleTrimEnd {
        clip_id: String,
        end: f64,
    },
    ShiftClips {
        clip_ids: Vec<String>,
        delta: f64,
    },
    Batch {
        ops: Vec<OpDoc>,
    },
    ReplaceTimeline {
        timeline: TimelineDoc,
    },
}

impl Timeline {
    /// Converts a wire op to a domain op on this document's frame grid. Malformed values (bad
    /// colours, non-finite times, out-of-range speed) give `invalid-input` with every problem;
    /// whether the op makes sense against the document is [`Timeline::apply`]'s business.
    pub fn op_from_doc(&self, d: &OpDoc, cx: &Context<'_>) -> Result<Op, EditError> {
        self.op_intake().convert(d, cx)
    }

    /// Converts the wire ops of one edit (ops applied in order, like a batch's) one by one.
    pub fn op_intake(&self) -> OpIntake<'_> {
        OpIntake {
            rate: self.rate(),
            doc: Evolving {
                tl: Cow::Borrowed(self),
                pending: Vec::new(),
                stuck: false,
            },
        }
    }

    /// The wire form of `op`, an op meant for (or produced against) this document.
    pub fn op_to_doc(&self, op: &Op) -> OpDoc {
        to_doc(&mut Outlet { rate: self.rate() }, op)
    }
}

/// Converts wire ops that apply one after another to a document. Each op's seconds snap to the
/// grid in effect when it applies: the document's rate until an op changes it (`set_output`
/// with a frame rate, `replace_timeline`), that op's rate after. Snapping later ops on the
/// starting grid would put them on frames of the wrong length once the rate has changed.
/// Likewise an op's defaults come from the document as the ops before it leave it: two id-less
/// `add_track`s in one edit become `track-<n>` and `track-<n+1>`, one above the other, instead
/// of both claiming the same id and index. The converted ops carry the resolved values, so
/// history, replay and undo never resolve a default again.
pub struct OpIntake<'t> {
    rate: Rate,
    doc: Evolving<'t>,
}

/// The document the next op applies to: the starting one with the ops converted so far
/// performed on it, as a batch performs them (unvalidated, since only the end result of an edit
/// is validated). Performing is put off until an op needs a default, so converting an edit
/// without such ops never copies the document.
struct Evolving<'t> {
    tl: Cow<'t, Timeline>,
    /// Converted ops not yet performed on `tl`, in order (a batch's ops one by one).
    pending: Vec<Op>,
    /// An op failed to perform. The edit fails the same way when it is applied, so the
    /// defaults of the ops after it no longer matter and nothing more is performed.
    stuck: bool,
}

impl Evolving<'_> {
    fn current(&mut self, cx: &Context<'_>) -> &Timeline {
        if !self.stuck && !self.pending.is_empty() {
            let tl = self.tl.to_mut();
            for op in self.pending.drain(..) {
                if apply_op(tl, &op, cx).is_err() {
                    self.stuck = true;
                    break;
                }
                tl.canonicalize();
            }
        }
        self.pending.clear();
        &self.tl
    }
}

impl OpIntake<'_> {
    /// Converts the next op; see [`Timeline::op_from_doc`].
    pub fn convert(&mut self, d: &OpDoc, cx: &Context<'_>) -> Result<Op, EditError> {
        let mut errs = ValidationErrors::default();
        let mut intake = Intake {
            rate: self.rate,
            strict_grid: cx.limits.strict_grid,
            errs: &mut errs,
        };
        let op = convert(&mut self.doc, d, "", cx, &mut intake);
        self.rate = intake.rate;
        if errs.is_empty() {
            Ok(op)
        } else {
            Err(EditError::InvalidInput(dedup_paths(errs)))
        }
    }
}

fn convert(doc: &mut Evolving<'_>, d: &OpDoc, p: &str, cx: &Context<'_>, i: &mut Intake<'_>) -> Op {
    let op = match d {
        OpDoc::AddTrack { index, track } => {
            let tl = doc.current(cx);
            // Like a posted document, a track without an id gets `track-<n>`: the first such
            // name not already taken. Tracks and clips share one id space, and the new track's
            // own clips count too, or the default would be refused as `duplicate-id`.
            let default_id = if track.id.is_empty() {
                (tl.tracks.len()..)
                    .map(|n| format!("track-{n}"))
                    .find(|id| !tl.id_in_use(id) && track.clips.iter().all(|c| &c.id != id))
                    .unwrap_or_default()
            } else {
                String::new()
            };
            let index = index.unwrap_or(tl.tracks.len());
            Op::AddTrack {
                index,
                track: i.track(&format!("{p}/track"), default_id, track),
            }
        }
        OpDoc::RemoveTrack { track_id } => Op::RemoveTrack {
            track_id: track_id.clone(),
        },
        OpDoc::MoveTrack { track_id, index } => Op::MoveTrack {
            track_id: track_id.clone(),
            index: *index,
        },
        OpDoc::SetTrack { track_id, patch } => Op::SetTrack {
            track_id: track_id.clone(),
            patch: patch.clone(),
        },
        OpDoc::AddClip { track_id, clip } => Op::AddClip {
            track_id: track_id.clone(),
            clip: i.clip(&format!("{p}/clip"), clip),
        },
        OpDoc::RemoveClip { clip_id } => Op::RemoveClip {
            clip_id: clip_id.clone(),
        },
        OpDoc::MoveClip {
            clip_id,
            track_id,
            start,
        } => Op::MoveClip {
            clip_id: clip_id.clone(),
            track_id: track_id.clone(),
            start: i.time(&format!("{p}/start"), *start),
        },
        OpDoc::TrimStart { clip_id, start } => Op::TrimStart {
            clip_id: clip_id.clone(),
            start: i.time(&format!("{p}/start"), *start),
        },
        OpDoc::TrimEnd { clip_id, end } => Op::TrimEnd {
            clip_id: clip_id.clone(),
            end: i.time(&format!("{p}/end"), *end),
        },
        OpDoc::SplitClip {
            clip_id,
            at,
            new_id,
        } => Op::SplitClip {
            clip_id: clip_id.clone(),
            at: i.time(&format!("{p}/at"), *at),
            new_id: new_id.clone(),
        },
        OpDoc::DuplicateClip {
            clip_id,
            new_id,
            track_id,
            start,
        } => Op::DuplicateClip {
            clip_id: clip_id.clone(),
            new_id: new_id.clone(),
            track_id: track_id.clone(),
            start: start.map(|s| i.time(&format!("{p}/start"), s)),
        },
        OpDoc::SetClip { clip_id, patch } => Op::SetClip {
            clip_id: clip_id.clone(),
            patch: clip_patch(patch, &format!("{p}/patch"), i),
        },
        OpDoc::AddTransition { transition } => Op::AddTransition {
            transition: i.transition(&format!("{p}/transition"), transition),
        },
        OpDoc::RemoveTransition { from, to } => Op::RemoveTransition {
            from: from.clone(),
            to: to.clone(),
        },
        OpDoc::SetTransition {
            from,
            to,
            kind,
            duration,
        } => Op::SetTransition {
            from: from.clone(),
            to: to.clone(),
            kind: *kind,
            duration: duration.map(|s| i.time(&format!("{p}/duration"), s)),
        },
        OpDoc::SetOutput { patch } => {
            let patch = output_patch(patch, &format!("{p}/patch"), i);
            // The ops after this one apply on the new grid.
            if let Some(rate) = patch.frame_rate {
                i.rate = rate;
            }
            Op::SetOutput { patch }
        }
        OpDoc::RippleDelete { clip_id } => Op::RippleDelete {
            clip_id: clip_id.clone(),
        },
        OpDoc::RippleTrimEnd { clip_id, end } => Op::RippleTrimEnd {
            clip_id: clip_id.clone(),
            end: i.time(&format!("{p}/end"), *end),
        },
        OpDoc::ShiftClips { clip_ids, delta } => Op::ShiftClips {
            clip_ids: clip_ids.clone(),
            delta: i.time(&format!("{p}/delta"), *delta),
        },
        OpDoc::Batch { ops } => {
            // Its ops were queued one by one as they were converted.
            return Op::Batch {
                ops: ops
                    .iter()
                    .enumerate()
                    .map(|(n, o)| convert(doc, o, &format!("{p}/ops/{n}"), cx, i))
                    .collect(),
            };
        }
        OpDoc::ReplaceTimeline { timeline } => match Timeline::from_doc(timeline, cx) {
            Ok(t) => {
                i.rate = t.rate();
                Op::ReplaceTimeline {
                    timeline: Box::new(t),
                }
            }
            Err(errs) => {
                for e in errs.0 {
                    i.errs
                        .push(format!("{p}/timeline{}", e.path), e.code, e.message);
                }
                Op::Batch { ops: Vec::new() }
            }
        },
    };
    if !doc.stuck {
        doc.pending.push(op.clone());
    }
    op
}

fn clip_patch(d: &ClipPatchDoc, p: &str, i: &mut Intake<'_>) -> ClipPatch {
    let mut time = |name: &str, v: Option<f64>| v.map(|s| i.time(&format!("{p}/{name}"), s));
    let start = time("start", d.start);
    let in_point = time("in_point", d.in_point);
    let duration = time("duration", d.duration);
    ClipPatch {
        source: d
            .source
            .as_ref()
            .map(|s| i.source(&format!("{p}/source"), s)),
        start,
        in_point,
        duration,
        speed: d.speed.map(|v| i.speed(&format!("{p}/speed"), v)),
        reverse: d.reverse,
        transform: d.transform,
        audio: d.audio.as_ref().map(|a| i.audio(&format!("{p}/audio"), a)),
        effects: d.effects.clone(),
        keyframes: d.keyframes.as_ref().map(|ks| {
            ks.iter()
                .enumerate()
                .map(|(n, k)| Keyframe {
                    property: k.property,
                    time: i.time(&format!("{p}/keyframes/{n}/time"), k.time),
                    value: k.value,
                    interpolation: k.interpolation,
                })
                .collect()
        }),
    }
}

fn output_patch(d: &OutputPatchDoc, p: &str, i: &mut Intake<'_>) -> OutputPatch {
    let frame_rate = d.frame_rate.map(|r| {
        r.to_rate().unwrap_or_else(|| {
            i.errs.push(
                format!("{p}/frame_rate"),
                Code::BadFrameRate,
                "frame rate must be num/den with 1..=240 fps",
            );
            i.rate
        })
    });
    let channels = d.channels.map(|c| {
        u8::try_from(c).unwrap_or_else(|_| {
            i.errs.push(
                format!("{p}/channels"),
                Code::OutOfRange,
                format!("{c} is outside 1..=8"),
            );
            2
        })
    });
    OutputPatch {
        width: d.width,
        height: d.height,
        frame_rate,
        sample_rate: d.sample_rate,
        channels,
        background: d
            .background
            .as_ref()
            .map(|c| i.color(&format!("{p}/background"), c)),
    }
}

/// The wire form of `op`; like [`convert`], moves `o` to the grid the op leaves behind.
fn to_doc(o: &mut Outlet, op: &Op) -> OpDoc {
    match op {
        Op::AddTrack { index, track } => OpDoc::AddTrack {
            index: Some(*index),
            track: o.track(track),
        },
        Op::RemoveTrack { track_id } => OpDoc::RemoveTrack {
            track_id: track_id.clone(),
        },
        Op::MoveTrack { track_id, index } => OpDoc::MoveTrack {
            track_id: track_id.clone(),
            index: *index,
        },
        Op::SetTrack { track_id, patch } => OpDoc::SetTrack {
            track_id: track_id.clone(),
            patch: patch.clone(),
        },
        Op::AddClip { track_id, clip } => OpDoc::AddClip {
            track_id: track_id.clone(),
            clip: o.clip(clip),
        },
        Op::RemoveClip { clip_id } => OpDoc::RemoveClip {
            clip_id: clip_id.clone(),
        },
        Op::MoveClip {
            clip_id,
            track_id,
            start,
        } => OpDoc::MoveClip {
            clip_id: clip_id.clone(),
            track_id: track_id.clone(),
            start: o.s(*start),
        },
        Op::TrimStart { clip_id, start } => OpDoc::TrimStart {
            clip_id: clip_id.clone(),
            start: o.s(*start),
        },
        Op::TrimEnd { clip_id, end } => OpDoc::TrimEnd {
            clip_id: clip_id.clone(),
            end: o.s(*end),
        },
        Op::SplitClip {
            clip_id,
            at,
            new_id,
        } => OpDoc::SplitClip {
            clip_id: clip_id.clone(),
            at: o.s(*at),
            new_id: new_id.clone(),
        },
        Op::DuplicateClip {
            clip_id,
            new_id,
            track_id,
            start,
        } => OpDoc::DuplicateClip {
            clip_id: clip_id.clone(),
            new_id: new_id.clone(),
            track_id: track_id.clone(),
            start: start.map(|f| o.s(f)),
        },
        Op::SetClip { clip_id, patch } => OpDoc::SetClip {
            clip_id: clip_id.clone(),
            patch: ClipPatchDoc {
                source: patch.source.as_ref().map(|s| o.source(s)),
                start: patch.start.map(|f| o.s(f)),
                in_point: patch.in_point.map(|f| o.s(f)),
                duration: patch.duration.map(|f| o.s(f)),
                speed: patch.speed.map(|s| s.as_f64()),
                reverse: patch.reverse,
                transform: patch.transform,
                audio: patch.audio.as_ref().map(|a| o.audio(a)),
                effects: patch.effects.clone(),
                keyframes: patch.keyframes.as_ref().map(|ks| {
                    ks.iter()
                        .map(|k| KeyframeDoc {
                            property: k.property,
                            time: o.s(k.time),
                            value: k.value,
                            interpolation: k.interpolation,
                        })
                        .collect()
                }),
            },
        },
        Op::AddTransition { transition } => OpDoc::AddTransition {
            transition: o.transition(transition),
        },
        Op::RemoveTransition { from, to } => OpDoc::RemoveTransition {
            from: from.clone(),
            to: to.clone(),
        },
        Op::SetTransition {
            from,
            to,
            kind,
            duration,
        } => OpDoc::SetTransition {
            from: from.clone(),
            to: to.clone(),
            kind: *kind,
            duration: duration.map(|f| o.s(f)),
        },
        Op::SetOutput { patch } => {
            if let Some(rate) = patch.frame_rate {
                o.rate = rate;
            }
            OpDoc::SetOutput {
                patch: OutputPatchDoc {
                    width: patch.width,
                    height: patch.height,
                    frame_rate: patch.frame_rate.map(FrameRateDoc::from_rate),
                    sample_rate: patch.sample_rate,
                    channels: patch.channels.map(u32::from),
                    background: patch.background.map(|c: Rgba| c.to_string()),
                },
            }
        }
        Op::RippleDelete { clip_id } => OpDoc::RippleDelete {
            clip_id: clip_id.clone(),
        },
        Op::RippleTrimEnd { clip_id, end } => OpDoc::RippleTrimEnd {
            clip_id: clip_id.clone(),
            end: o.s(*end),
        },
        Op::ShiftClips { clip_ids, delta } => OpDoc::ShiftClips {
            clip_ids: clip_ids.clone(),
            delta: o.s(*delta),
        },
        Op::Batch { ops } => OpDoc::Batch {
            ops: ops.iter().map(|x| to_doc(o, x)).collect(),
        },
        Op::ReplaceTimeline { timeline } => {
            o.rate = timeline.rate();
            OpDoc::ReplaceTimeline {
                timeline: timeline.to_doc(),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::timeline::fixtures::{self, cx, sample};
    use crate::timeline::{Frames, Rate, TimelineLimits};

    #[test]
    fn wire_ops_snap_with_the_document_rate() {
        let tl = sample();
        let doc: OpDoc = serde_json::from_str(
            r#"{"type": "split_clip", "clip_id": "c", "at": 5.51, "new_id": "c2"}"#,
        )
        .unwrap_or(OpDoc::Batch { ops: vec![] });
        let op = tl.op_from_doc(&doc, &cx());
        assert_eq!(
            op,
            Ok(Op::SplitClip {
                clip_id: "c".into(),
                at: Frames(165),
                new_id: "c2".into()
            })
        );
    }

    #[test]
    fn malformed_wire_ops_report_every_problem() {
        let tl = sample();
        let doc = OpDoc::Batch {
            ops: vec![
                OpDoc::TrimEnd {
                    clip_id: "c".into(),
                    end: f64::INFINITY,
                },
                OpDoc::SetClip {
                    clip_id: "c".into(),
                    patch: ClipPatchDoc {
                        speed: Some(0.0),
                        ..ClipPatchDoc::default()
                    },
                },
                OpDoc::SetOutput {
                    patch: OutputPatchDoc {
                        background: Some("red".into()),
                        channels: Some(300),
                        ..OutputPatchDoc::default()
                    },
                },
            ],
        };
        let e = tl.op_from_doc(&doc, &cx());
        let errs = match e {
            Err(EditError::InvalidInput(errs)) => errs,
            other => panic!("{other:?}"),
        };
        assert!(errs.has("/ops/0/end", Code::BadTime), "{errs}");
        assert!(errs.has("/ops/1/patch/speed", Code::OutOfRange));
        assert!(errs.has("/ops/2/patch/background", Code::BadColor));
        assert!(errs.has("/ops/2/patch/channels", Code::OutOfRange));
    }

    #[test]
    fn ops_round_trip_through_the_wire() {
        let tl = sample();
        let cx = cx();
        let ops = [
            Op::SplitClip {
                clip_id: "c".into(),
                at: Frames(170),
                new_id: "c2".into(),
            },
            Op::RippleDelete {
                clip_id: "b".into(),
            },
            Op::SetOutput {
                patch: OutputPatch {
                    frame_rate: Some(Rate::NTSC_29_97),
                    ..OutputPatch::default()
                },
            },
        ];
        for op in ops {
            let (_, inverse) = match tl.apply(&op, &cx) {
                Ok(r) => r,
                Err(e) => panic!("{e}"),
            };
            for o in [op.clone(), inverse] {
                let wire = serde_json::to_string(&tl.op_to_doc(&o)).unwrap_or_default();
                let parsed: OpDoc = match serde_json::from_str(&wire) {
                    Ok(p) => p,
                    Err(e) => panic!("{e}: {wire}"),
                };
                assert_eq!(tl.op_from_doc(&parsed, &cx), Ok(o));
            }
        }
    }

    fn wire(json: &str) -> OpDoc {
        serde_json::from_str(json).unwrap_or_else(|e| panic!("{e}: {json}"))
    }

    /// A red clip `n` on the overlay track, in seconds.
    const ADD_CLIP: &str = r##"{"type": "add_clip", "track_id": "o", "clip": {"id": "n",
        "source": {"type": "color", "rgba": "#ff0000"}, "start": 4, "duration": 0.8}}"##;

    #[test]
    fn seconds_after_a_frame_rate_change_snap_on_the_new_grid() {
        // 30 fps, then 25 fps: the clip's 0.8 s is 20 frames of 25 fps (not 24 frames of the
        // 30 fps grid the batch started on, which would last 0.96 s at 25 fps).
        let tl = sample();
        let cx = cx();
        for doc in [
            wire(&format!(
                r#"{{"type": "batch", "ops": [
                    {{"type": "set_output", "patch": {{"frame_rate": 25}}}}, {ADD_CLIP}]}}"#
            )),
            // A rate set in a nested batch holds for the ops after that batch.
            wire(&format!(
                r#"{{"type": "batch", "ops": [{{"type": "batch", "ops": [
                    {{"type": "set_output", "patch": {{"frame_rate": 25}}}}]}}, {ADD_CLIP}]}}"#
            )),
            // A replaced document brings its own rate.
            wire(&format!(
                r#"{{"type": "batch", "ops": [{{"type": "replace_timeline", "timeline": {{
                    "output": {{"frame_rate": 25}},
                    "tracks": [{{"id": "o", "kind": "overlay"}}]}}}}, {ADD_CLIP}]}}"#
            )),
        ] {
            let op = tl.op_from_doc(&doc, &cx).expect("converts");
            let (next, inverse) = tl.apply(&op, &cx).expect("applies");
            assert_eq!(next.output.frame_rate, Rate::FPS_25);
            let Some((_, clip)) = next.clip("n") else {
                panic!("no clip n in {next:?}")
            };
            assert_eq!((clip.start, clip.duration), (Frames(100), Frames(20)));
            // The wire form of the op says what the posted one said, and undo still restores.
            assert_eq!(tl.op_from_doc(&tl.op_to_doc(&op), &cx), Ok(op.clone()));
            let Some(OpDoc::AddClip { clip, .. }) = (match tl.op_to_doc(&op) {
                OpDoc::Batch { ops } => ops.last().cloned(),
                other => Some(other),
            }) else {
                panic!("{op:?}")
            };
            assert_eq!((clip.start, clip.duration), (4.0, 0.8));
            assert_eq!(next.apply(&inverse, &cx).map(|(t, _)| t), Ok(tl.clone()));
        }
    }

    #[test]
    fn an_edits_ops_snap_on_the_grid_each_applies_on() {
        // The ops of one posted edit, converted one by one, behave like one batch.
        let tl = sample();
        let cx = cx();
        let mut intake = tl.op_intake();
        let rate = intake
            .convert(
                &wire(r#"{"type": "set_output", "patch": {"frame_rate": 25}}"#),
                &cx,
            )
            .expect("converts");
        let add = intake.convert(&wire(ADD_CLIP), &cx).expect("converts");
        let Op::AddClip { clip, .. } = &add else {
            panic!("{add:?}")
        };
        assert_eq!((clip.start, clip.duration), (Frames(100), Frames(20)));
        // Strict grids check against the grid in effect too: 0.04 s is one frame of 25 fps,
        // off the 30 fps grid.
        let strict = TimelineLimits {
            strict_grid: true,
            ..fixtures::LIMITS.clone()
        };
        let strict_cx = Context {
            limits: &strict,
            assets: &fixtures::assets,
        };
        let mut intake = tl.op_intake();
        assert_eq!(intake.convert(&tl.op_to_doc(&rate), &strict_cx), Ok(rate));
        let shift = wire(r#"{"type": "shift_clips", "clip_ids": ["c"], "delta": 0.04}"#);
        assert_eq!(
            intake.convert(&shift, &strict_cx),
            Ok(Op::ShiftClips {
                clip_ids: vec!["c".into()],
                delta: Frames(1)
            })
        );
        assert!(
            tl.op_from_doc(&shift, &strict_cx).is_err(),
            "off the 30 fps grid"
        );
    }

    #[test]
    fn add_track_defaults_to_the_top() {
        let tl = sample();
        let doc: OpDoc =
            serde_json::from_str(r#"{"type": "add_track", "track": {"kind": "overlay"}}"#)
                .unwrap_or(OpDoc::Batch { ops: vec![] });
        let op = tl
            .op_from_doc(&doc, &cx())
            .unwrap_or(Op::Batch { ops: vec![] });
        let Op::AddTrack { index, .. } = &op else {
            panic!("{op:?}")
        };
        assert_eq!(*index, 3);
        let (next, _) = tl.apply(&op, &cx()).expect("a default id is given");
        assert_eq!(next.tracks[3].id, "track-3");
        // The default never collides with an existing track.
        let again = next.op_from_doc(&doc, &cx()).expect("converts");
        let (after, _) = next.apply(&again, &cx()).expect("applies");
        assert_eq!(after.tracks[4].id, "track-4");
    }

    const ADD_OVERLAY: &str = r#"{"type": "add_track", "track": {"kind": "overlay"}}"#;

    /// The ids of the document's tracks, bottom to top.
    fn track_ids(tl: &Timeline) -> Vec<&str> {
        tl.tracks.iter().map(|t| t.id.as_str()).collect()
    }

    #[test]
    fn id_less_tracks_added_together_get_their_own_ids_and_places() {
        let tl = sample();
        let cx = cx();
        let batch = wire(&format!(
            r#"{{"type": "batch", "ops": [{ADD_OVERLAY}, {ADD_OVERLAY}]}}"#
        ));
        let op = tl.op_from_doc(&batch, &cx).expect("converts");
        let (next, inverse) = tl.apply(&op, &cx).expect("two tracks, no duplicate-id");
        assert_eq!(track_ids(&next), ["v", "m", "o", "track-3", "track-4"]);
        // The op holds the resolved ids and indices, so its replay and wire form say the same.
        assert_eq!(tl.op_from_doc(&tl.op_to_doc(&op), &cx), Ok(op.clone()));
        assert_eq!(tl.apply(&op, &cx).map(|(t, _)| t), Ok(next.clone()));
        assert_eq!(next.apply(&inverse, &cx).map(|(t, _)| t), Ok(tl.clone()));

        // The top-level ops of one edit, converted one after another, do the same.
        let mut intake = tl.op_intake();
        let ops = [wire(ADD_OVERLAY), wire(ADD_OVERLAY)]
            .iter()
            .map(|d| intake.convert(d, &cx))
            .collect::<Result<Vec<_>, _>>()
            .expect("converts");
        assert_eq!(ops, op_batch(&op));
        let (together, _) = tl.apply(&Op::Batch { ops }, &cx).expect("applies");
        assert_eq!(together, next);
    }

    fn op_batch(op: &Op) -> Vec<Op> {
        match op {
            Op::Batch { ops } => ops.clone(),
            other => vec![other.clone()],
        }
    }

    #[test]
    fn track_defaults_follow_the_ops_before_them() {
        let tl = sample();
        let cx = cx();
        // After a removal the top is lower, and the freed name is free again; a nested batch
        // counts like any other ops before.
        let op = tl
            .op_from_doc(
                &wire(&format!(
                    r#"{{"type": "batch", "ops": [{{"type": "batch", "ops": [
                        {{"type": "remove_track", "track_id": "o"}}, {ADD_OVERLAY}]}},
                        {ADD_OVERLAY}]}}"#
                )),
                &cx,
            )
            .expect("converts");
        let (next, _) = tl.apply(&op, &cx).expect("applies");
        assert_eq!(track_ids(&next), ["v", "m", "track-2", "track-3"]);
        // A replaced document starts the count afresh.
        let op = tl
            .op_from_doc(
                &wire(&format!(
                    r#"{{"type": "batch", "ops": [{{"type": "replace_timeline", "timeline": {{
                        "tracks": [{{"kind": "video"}}]}}}}, {ADD_OVERLAY}]}}"#
                )),
                &cx,
            )
            .expect("converts");
        let (next, _) = tl.apply(&op, &cx).expect("applies");
        assert_eq!(track_ids(&next), ["track-0", "track-1"]);
        // Tracks and clips share one id space: a clip already named `track-3` (added earlier in
        // the same edit) pushes the default on to `track-4`.
        let clip = r##"{"type": "add_clip", "track_id": "o", "clip": {"id": "track-3",
            "source": {"type": "color", "rgba": "#ff0000"}, "start": 4, "duration": 1}}"##;
        let op = tl
            .op_from_doc(
                &wire(&format!(
                    r#"{{"type": "batch", "ops": [{clip}, {ADD_OVERLAY}]}}"#
                )),
                &cx,
            )
            .expect("converts");
        let (next, _) = tl.apply(&op, &cx).expect("applies");
        assert_eq!(track_ids(&next), ["v", "m", "o", "track-4"]);
    }

    #[test]
    fn an_op_that_cannot_apply_still_converts() {
        // Its error is the edit's, found when the edit is applied; converting goes on.
        let tl = sample();
        let cx = cx();
        let op = tl
            .op_from_doc(
                &wire(&format!(
                    r#"{{"type": "batch", "ops": [{{"type": "remove_track", "track_id": "nope"}},
                        {ADD_OVERLAY}]}}"#
                )),
                &cx,
            )
            .expect("converts");
        assert!(matches!(
            tl.apply(&op, &cx),
            Err(EditError::TrackNotFound(_))
        ));
    }
}
