//! Edit operations on the domain timeline (times in frames of the document's current rate).
//!
//! Callers post [`super::op_doc::OpDoc`] (seconds); the server converts it with the rate of the
//! version the op is applied to (an op after a frame-rate change in the same edit with the new
//! rate), applies the resulting [`Op`], and stores the `Op` and its inverse in the op log. Undo is
//! applying the stored inverse; redo is applying the op again.
//!
//! Clips, tracks and transitions are addressed by id, never by index, so an op means the same
//! thing on top of a slightly newer version of the document.

use serde::{Deserialize, Serialize};

use super::model::{
    Clip, ClipAudio, Effect, Keyframe, Rgba, Source, Timeline, Track, Transform, Transition,
    TransitionKind,
};
use super::time::{Frames, Rate, Speed};
use super::validate::{Context, ValidationErrors, consumed_milli, source_limit_milli};

/// Why an edit was refused. The document is unchanged whenever this is returned.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum EditError {
    #[error("no clip {0:?}")]
    ClipNotFound(String),
    #[error("no track {0:?}")]
    TrackNotFound(String),
    #[error("no transition from {from:?} to {to:?}")]
    TransitionNotFound { from: String, to: String },
    #[error("clips {from:?} and {to:?} already have a transition")]
    TransitionExists { from: String, to: String },
    #[error("track {0:?} is locked")]
    TrackLocked(String),
    #[error("id {0:?} is already in use")]
    DuplicateId(String),
    #[error("index {index} is out of range (0..={max})")]
    BadIndex { index: usize, max: usize },
    #[error("frame {at} is not strictly inside clip {clip_id:?}")]
    SplitOutsideClip { clip_id: String, at: Frames },
    #[error("clip {0:?} has transitions; remove them before moving it to another track")]
    ClipHasTransitions(String),
    #[error("invalid edit: {0}")]
    InvalidEdit(String),
    /// The op itself (as posted on the wire) is malformed.
    #[error("invalid op: {0}")]
    InvalidInput(ValidationErrors),
    /// The op applies, but the document it produces breaks a rule.
    #[error("the edit would make the timeline invalid: {0}")]
    InvalidResult(ValidationErrors),
}

impl EditError {
    /// Stable kebab-case code for API responses.
    pub fn code(&self) -> &'static str {
        match self {
            EditError::ClipNotFound(_) => "clip-not-found",
            EditError::TrackNotFound(_) => "track-not-found",
            EditError::TransitionNotFound { .. } => "transition-not-found",
            EditError::TransitionExists { .. } => "transition-exists",
            EditError::TrackLocked(_) => "track-locked",
            EditError::DuplicateId(_) => "duplicate-id",
            EditError::BadIndex { .. } => "bad-index",
            EditError::SplitOutsideClip { .. } => "split-outside-clip",
            EditError::ClipHasTransitions(_) => "clip-has-transitions",
            EditError::InvalidEdit(_) => "invalid-edit",
            EditError::InvalidInput(_) => "invalid-input",
            EditError::InvalidResult(_) => "invalid-result",
        }
    }

    /// The individual problems, for `invalid-input` and `invalid-result`.
    pub fn problems(&self) -> Option<&ValidationErrors> {
        match self {
            EditError::InvalidInput(v) | EditError::InvalidResult(v) => Some(v),
            _ => None,
        }
    }
}

/// Track properties to change; `None` leaves a property as it is.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct TrackPatch {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub muted: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hidden: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub locked: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub volume_db: Option<f64>,
}

/// Clip properties to change; `None` leaves a property as it is. Sub-structures (`transform`,
/// `audio`, `effects`, `keyframes`) are replaced whole.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct ClipPatch {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<Source>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start: Option<Frames>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub in_point: Option<Frames>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duration: Option<Frames>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub speed: Option<Speed>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reverse: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub transform: Option<Transform>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub audio: Option<ClipAudio>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub effects: Option<Vec<Effect>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keyframes: Option<Vec<Keyframe>>,
}

impl ClipPatch {
    /// A patch that sets every property to `c`'s value (the id aside): restores `c` exactly.
    pub fn restoring(c: &Clip) -> ClipPatch {
        ClipPatch {
            source: Some(c.source.clone()),
            start: Some(c.start),
            in_point: Some(c.in_point),
            duration: Some(c.duration),
            speed: Some(c.speed),
            reverse: Some(c.reverse),
            transform: Some(c.transform),
            audio: Some(c.audio.clone()),
            effects: Some(c.effects.clone()),
            keyframes: Some(c.keyframes.clone()),
        }
    }
}

/// Output settings to change. A new `frame_rate` rescales every time in the document.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct OutputPatch {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub width: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub height: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub frame_rate: Option<Rate>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sample_rate: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub channels: Option<u8>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub background: Option<Rgba>,
}

/// One edit. See each variant for its exact semantics.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Op {
    /// Inserts `track` (which may already hold clips) so that it ends up at `index`.
    AddTrack {
        index: usize,
        track: Track,
    },
    /// Removes a track with its clips and transitions.
    RemoveTrack {
        track_id: String,
    },
    /// Moves a track so that it ends up at `index`.
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
        clip: Clip,
    },
    /// Removes a clip and the transitions that involve it; later clips stay where they are.
    RemoveClip {
        clip_id: String,
    },
    /// Moves a clip to a new start, on another track when `track_id` is given. A clip with
    /// transitions can only move within its track (and the transitions must stay valid).
    MoveClip {
        clip_id: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        track_id: Option<String>,
        start: Frames,
    },
    /// Moves the clip's start to `start` keeping its end: the in-point moves by the same amount
    /// of source time (`delta * speed`, rounded down), so the picture under the end stays put.
    /// Keyframes stay attached to the same content; those that fall off are dropped, and fades
    /// are shortened to fit.
    TrimStart {
        clip_id: String,
        start: Frames,
    },
    /// Moves the clip's end to `end` keeping its start.
    TrimEnd {
        clip_id: String,
        end: Frames,
    },
    /// Cuts a clip at timeline frame `at` (strictly inside it). The left part keeps the id and
    /// incoming transitions, the right part gets `new_id` and the outgoing transitions. The two
    /// parts' durations add up to the original's; the right part's in-point is the left's plus
    /// `left.duration * speed` rounded down (mirrored for reversed clips). Fade-out and fade-in
    /// go to the outer ends; keyframes go to the part they are in (both, at the cut itself).
    SplitClip {
        clip_id: String,
        at: Frames,
        new_id: String,
    },
    /// Copies a clip (without its transitions) under `new_id`, on `track_id` (default: the same
    /// track) at `start` (default: right after the original).
    DuplicateClip {
        clip_id: String,
        new_id: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        track_id: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        start: Option<Frames>,
    },
    SetClip {
        clip_id: String,
        patch: ClipPatch,
    },
    /// Adds a transition on the track holding `transition.from`.
    AddTransition {
        transition: Transition,
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
        duration: Option<Frames>,
    },
    /// Changes output settings. A new frame rate rescales every time in the document to the new
    /// grid (each clip's start and end separately, so adjacent clips stay adjacent), then
    /// shortens clips by the rounding that would reach past their source and transitions that
    /// would outlast their overlap. Locked tracks are rescaled too.
    SetOutput {
        patch: OutputPatch,
    },
    /// Removes a clip and closes the stretch of track that only it covered: every later clip on
    /// the track moves left by that much. Its transitions are removed.
    RippleDelete {
        clip_id: String,
    },
    /// Trims a clip's end to `end` and moves every clip that starts after it on the same track
    /// by the same amount, so the cut between them is kept.
    RippleTrimEnd {
        clip_id: String,
        end: Frames,
    },
    /// Moves the listed clips by `delta` frames (the inverse of the ripple edits; also handy
    /// for moving a selection). Listing clips rather than "everything after t" keeps the
    /// inverse exact whatever else is on the track.
    ShiftClips {
        clip_ids: Vec<String>,
        delta: Frames,
    },
    /// Applies ops in order, all or nothing; the result is validated once, at the end.
    Batch {
        ops: Vec<Op>,
    },
    /// Replaces the whole document; the inverse of a frame-rate change.
    ReplaceTimeline {
        timeline: Box<Timeline>,
    },
}

/// Which output setting an op touches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum OutputField {
    Size,
    FrameRate,
    Audio,
    Background,
}

/// Something an op reads or writes, for deciding whether two concurrent edits conflict. Every
/// op is validated again when applied on top of a newer version, so touches only need to catch
/// edits whose *intents* collide, not edits whose combination is invalid.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "type", content = "id", rename_all = "snake_case")]
pub enum Touch {
    /// The whole document (frame-rate changes, replacements).
    All,
    Output(OutputField),
    /// The set and order of tracks.
    TrackList,
    /// A track's properties or the arrangement of all its clips.
    Track(String),
    /// Like `Track`, for the track that holds this clip (the op names the clip, not the track).
    TrackOfClip(String),
    Clip(String),
}

impl Op {
    /// What this op reads or writes. `TrackOfClip` needs the document to resolve; see
    /// [`Timeline::ops_conflict`].
    pub fn touches(&self) -> Vec<Touch> {
        let clip = |id: &String| Touch::Clip(id.clone());
        let track = |id: &String| Touch::Track(id.clone());
        match self {
            Op::AddTrack { track: t, .. } => {
                let mut v = vec![Touch::TrackList, track(&t.id)];
                v.extend(t.clips.iter().map(|c| clip(&c.id)));
                v
            }
            Op::RemoveTrack { track_id } | Op::MoveTrack { track_id, .. } => {
                vec![Touch::TrackList, track(track_id)]
            }
            Op::SetTrack { track_id, .. } => vec![track(track_id)],
            Op::ShiftClips { clip_ids, .. } => clip_ids.iter().map(clip).collect(),
            Op::AddClip { track_id, clip: c } => vec![track(track_id), clip(&c.id)],
            Op::RemoveClip { clip_id }
            | Op::TrimStart { clip_id, .. }
            | Op::TrimEnd { clip_id, .. }
            | Op::SetClip { clip_id, .. } => vec![clip(clip_id)],
            Op::MoveClip {
                clip_id, track_id, ..
            } => {
                let mut v = vec![clip(clip_id)];
                v.extend(track_id.iter().map(track));
                v
            }
            Op::SplitClip {
                clip_id, new_id, ..
            } => vec![clip(clip_id), clip(new_id)],
            Op::DuplicateClip {
                clip_id,
                new_id,
                track_id,
                ..
            } => {
                let mut v = vec![clip(clip_id), clip(new_id)];
                v.extend(track_id.iter().map(track));
                v
            }
            Op::AddTransition { transition: t } => vec![clip(&t.from), clip(&t.to)],
            Op::RemoveTransition { from, to } | Op::SetTransition { from, to, .. } => {
                vec![clip(from), clip(to)]
            }
            Op::SetOutput { patch } => {
                let mut v = Vec::new();
                if patch.frame_rate.is_some() {
                    v.push(Touch::All);
                }
                if patch.width.is_some() || patch.height.is_some() {
                    v.push(Touch::Output(OutputField::Size));
                }
                if patch.sample_rate.is_some() || patch.channels.is_some() {
                    v.push(Touch::Output(OutputField::Audio));
                }
                if patch.background.is_some() {
                    v.push(Touch::Output(OutputField::Background));
                }
                v
            }
            Op::RippleDelete { clip_id } | Op::RippleTrimEnd { clip_id, .. } => {
                vec![clip(clip_id), Touch::TrackOfClip(clip_id.clone())]
            }
            Op::Batch { ops } => {
                let mut v: Vec<Touch> = Vec::new();
                for t in ops.iter().flat_map(Op::touches) {
                    if !v.contains(&t) {
                        v.push(t);
                    }
                }
                v
            }
            Op::ReplaceTimeline { .. } => vec![Touch::All],
        }
    }
}

fn locked_check(tl: &Timeline, ti: usize) -> Result<(), EditError> {
    let t = &tl.tracks[ti];
    if t.locked {
        Err(EditError::TrackLocked(t.id.clone()))
    } else {
        Ok(())
    }
}

fn find_track(tl: &Timeline, id: &str) -> Result<usize, EditError> {
    tl.track_index(id)
        .ok_or_else(|| EditError::TrackNotFound(id.to_owned()))
}

fn find_clip(tl: &Timeline, id: &str) -> Result<(usize, usize), EditError> {
    tl.clip_pos(id)
        .ok_or_else(|| EditError::ClipNotFound(id.to_owned()))
}

/// A clip edit on an unlocked track: its position.
fn editable_clip(tl: &Timeline, id: &str) -> Result<(usize, usize), EditError> {
    let pos = find_clip(tl, id)?;
    locked_check(tl, pos.0)?;
    Ok(pos)
}

fn fresh_id(tl: &Timeline, id: &str) -> Result<(), EditError> {
    if tl.id_in_use(id) {
        Err(EditError::DuplicateId(id.to_owned()))
    } else {
        Ok(())
    }
}

/// (track index, transition index) of the transition between `from` and `to`.
fn find_transition(tl: &Timeline, from: &str, to: &str) -> Result<(usize, usize), EditError> {
    tl.tracks
        .iter()
        .enumerate()
        .find_map(|(ti, t)| {
            t.transitions
                .iter()
                .position(|x| x.from == from && x.to == to)
                .map(|i| (ti, i))
        })
        .ok_or_else(|| EditError::TransitionNotFound {
            from: from.to_owned(),
            to: to.to_owned(),
        })
}

/// Removes and returns the transitions of track `ti` that involve clip `id`.
fn take_transitions(tl: &mut Timeline, ti: usize, id: &str) -> Vec<Transition> {
    let (taken, kept) = std::mem::take(&mut tl.tracks[ti].transitions)
        .into_iter()
        .partition(|x| x.from == id || x.to == id);
    tl.tracks[ti].transitions = kept;
    taken
}

fn batch_or_single(mut ops: Vec<Op>) -> Op {
    if ops.len() == 1 {
        ops.remove(0)
    } else {
        Op::Batch { ops }
    }
}

/// Makes fades and keyframes fit a clip whose duration changed: drops keyframes past the end,
/// shortens the fade-out, then the fade-in, until both fit.
fn fit_to_duration(c: &mut Clip) {
    let d = c.duration.max(Frames::ZERO);
    c.keyframes
        .retain(|k| k.time >= Frames::ZERO && k.time <= d);
    let fit = |fin: &mut Frames, fout: &mut Frames| {
        if *fin + *fout > d {
            *fout = (d - *fin).max(Frames::ZERO);
            *fin = (*fin).min(d);
        }
    };
    fit(&mut c.audio.fade_in, &mut c.audio.fade_out);
    if let Source::Title(t) = &mut c.source {
        fit(&mut t.fade_in, &mut t.fade_out);
    }
}

fn set_fade_in(c: &mut Clip, f: Frames) {
    c.audio.fade_in = f;
    if let Source::Title(t) = &mut c.source {
        t.fade_in = f;
    }
}

fn set_fade_out(c: &mut Clip, f: Frames) {
    c.audio.fade_out = f;
    if let Source::Title(t) = &mut c.source {
        t.fade_out = f;
    }
}

impl Timeline {
    /// Applies `op` and validates the result. Returns the new document and the inverse op:
    /// applying the inverse to the new document gives back `self` exactly. On error `self` is
    /// untouched (it is never modified; the edit happens on a copy).
    pub fn apply(&self, op: &Op, cx: &Context<'_>) -> Result<(Timeline, Op), EditError> {
        let mut next = self.clone();
        let inverse = apply_op(&mut next, op, cx)?;
        next.canonicalize();
        next.validate(cx).map_err(EditError::InvalidResult)?;
        Ok((next, inverse))
    }

    /// Whether two ops touch the same thing, resolving clip-owned tracks against `self`.
    pub fn ops_conflict(&self, a: &Op, b: &Op) -> bool {
        let resolve = |op: &Op| -> Vec<Touch> {
            op.touches()
                .into_iter()
                .map(|t| match t {
                    Touch::TrackOfClip(c) => match self.clip(&c) {
                        Some((track, _)) => Touch::Track(track.id.clone()),
                        None => Touch::Clip(c),
                    },
                    t => t,
                })
                .collect()
        };
        let (ta, tb) = (resolve(a), resolve(b));
        let track_of = |c: &str| self.clip(c).map(|(t, _)| t.id.clone());
        let hit = |x: &Touch, y: &Touch| match (x, y) {
            (Touch::All, _) | (_, Touch::All) => true,
            (Touch::Track(t), Touch::Clip(c)) | (Touch::Clip(c), Touch::Track(t)) => {
                track_of(c).as_ref() == Some(t)
            }
            _ => x == y,
        };
        ta.iter().any(|x| tb.iter().any(|y| hit(x, y)))
    }
}

/// Performs `op` on `tl` without validating the result; returns the inverse. Also used to
/// follow an edit's ops while converting them ([`super::OpIntake`]).
pub(crate) fn apply_op(tl: &mut Timeline, op: &Op, cx: &Context<'_>) -> Result<Op, EditError> {
    match op {
        Op::AddTrack { index, track } => {
            if *index > tl.tracks.len() {
                return Err(EditError::BadIndex {
                    index: *index,
                    max: tl.tracks.len(),
                });
            }
            fresh_id(tl, &track.id)?;
            let mut track = track.clone();
            track.canonicalize();
            let id = track.id.clone();
            tl.tracks.insert(*index, track);
            Ok(Op::RemoveTrack { track_id: id })
        }
        Op::RemoveTrack { track_id } => {
            let ti = find_track(tl, track_id)?;
            locked_check(tl, ti)?;
            let track = tl.tracks.remove(ti);
            Ok(Op::AddTrack { index: ti, track })
        }
        Op::MoveTrack { track_id, index } => {
            let ti = find_track(tl, track_id)?;
            locked_check(tl, ti)?;
            if *index >= tl.tracks.len() {
                return Err(EditError::BadIndex {
                    index: *index,
                    max: tl.tracks.len().saturating_sub(1),
                });
            }
            let t = tl.tracks.remove(ti);
            tl.tracks.insert(*index, t);
            Ok(Op::MoveTrack {
                track_id: track_id.clone(),
                index: ti,
            })
        }
        Op::SetTrack { track_id, patch } => {
            let ti = find_track(tl, track_id)?;
            if patch.locked != Some(false) {
                locked_check(tl, ti)?;
            }
            let t = &mut tl.tracks[ti];
            let mut old = TrackPatch::default();
            if let Some(v) = &patch.name {
                old.name = Some(std::mem::replace(&mut t.name, v.clone()));
            }
            if let Some(v) = patch.muted {
                old.muted = Some(std::mem::replace(&mut t.muted, v));
            }
            if let Some(v) = patch.hidden {
                old.hidden = Some(std::mem::replace(&mut t.hidden, v));
            }
            if let Some(v) = patch.locked {
                old.locked = Some(std::mem::replace(&mut t.locked, v));
            }
            if let Some(v) = patch.volume_db {
                old.volume_db = Some(std::mem::replace(&mut t.volume_db, v));
            }
            Ok(Op::SetTrack {
                track_id: track_id.clone(),
                patch: old,
            })
        }
        Op::AddClip { track_id, clip } => {
            let ti = find_track(tl, track_id)?;
            locked_check(tl, ti)?;
            fresh_id(tl, &clip.id)?;
            tl.tracks[ti].clips.push(clip.clone());
            Ok(Op::RemoveClip {
                clip_id: clip.id.clone(),
            })
        }
        Op::RemoveClip { clip_id } => {
            let (ti, ci) = editable_clip(tl, clip_id)?;
            let clip = tl.tracks[ti].clips.remove(ci);
            let transitions = take_transitions(tl, ti, clip_id);
            let mut inv = vec![Op::AddClip {
                track_id: tl.tracks[ti].id.clone(),
                clip,
            }];
            inv.extend(
                transitions
                    .into_iter()
                    .map(|transition| Op::AddTransition { transition }),
            );
            Ok(batch_or_single(inv))
        }
        Op::MoveClip {
            clip_id,
            track_id,
            start,
        } => {
            let (ti, ci) = editable_clip(tl, clip_id)?;
            let dst = match track_id {
                Some(id) => find_track(tl, id)?,
                None => ti,
            };
            locked_check(tl, dst)?;
            let src_id = tl.tracks[ti].id.clone();
            let old_start = tl.tracks[ti].clips[ci].start;
            if dst != ti {
                let involved = tl.tracks[ti]
                    .transitions
                    .iter()
                    .any(|x| x.from == *clip_id || x.to == *clip_id);
                if involved {
                    return Err(EditError::ClipHasTransitions(clip_id.clone()));
                }
                let mut c = tl.tracks[ti].clips.remove(ci);
                c.start = *start;
                tl.tracks[dst].clips.push(c);
            } else {
                tl.tracks[ti].clips[ci].start = *start;
            }
            Ok(Op::MoveClip {
                clip_id: clip_id.clone(),
                track_id: Some(src_id),
                start: old_start,
            })
        }
        Op::TrimStart { clip_id, start } => {
            let (ti, ci) = editable_clip(tl, clip_id)?;
            let c = &mut tl.tracks[ti].clips[ci];
            let old = c.clone();
            let delta = *start - c.start;
            c.start = *start;
            c.duration = c.duration - delta;
            if !c.reverse {
                c.in_point = c.in_point + c.speed.source_floor(delta);
            }
            for k in &mut c.keyframes {
                k.time = k.time - delta;
            }
            fit_to_duration(c);
            Ok(restore(old))
        }
        Op::TrimEnd { clip_id, end } => {
            let (ti, ci) = editable_clip(tl, clip_id)?;
            let c = &mut tl.tracks[ti].clips[ci];
            let old = c.clone();
            trim_end(c, *end);
            Ok(restore(old))
        }
        Op::SplitClip {
            clip_id,
            at,
            new_id,
        } => split(tl, clip_id, *at, new_id),
        Op::DuplicateClip {
            clip_id,
            new_id,
            track_id,
            start,
        } => {
            let (ti, ci) = find_clip(tl, clip_id)?;
            let dst = match track_id {
                Some(id) => find_track(tl, id)?,
                None => ti,
            };
            locked_check(tl, dst)?;
            fresh_id(tl, new_id)?;
            let mut c = tl.tracks[ti].clips[ci].clone();
            c.start = start.unwrap_or_else(|| c.end());
            c.id = new_id.clone();
            tl.tracks[dst].clips.push(c);
            Ok(Op::RemoveClip {
                clip_id: new_id.clone(),
            })
        }
        Op::SetClip { clip_id, patch } => {
            let (ti, ci) = editable_clip(tl, clip_id)?;
            let c = &mut tl.tracks[ti].clips[ci];
            Ok(Op::SetClip {
                clip_id: clip_id.clone(),
                patch: patch_clip(c, patch),
            })
        }
        Op::AddTransition { transition } => {
            let (ti, _) = editable_clip(tl, &transition.from)?;
            let exists = tl.tracks[ti].transitions.iter().any(|x| {
                (x.from == transition.from && x.to == transition.to)
                    || (x.from == transition.to && x.to == transition.from)
            });
            if exists {
                return Err(EditError::TransitionExists {
                    from: transition.from.clone(),
                    to: transition.to.clone(),
                });
            }
            tl.tracks[ti].transitions.push(transition.clone());
            Ok(Op::RemoveTransition {
                from: transition.from.clone(),
                to: transition.to.clone(),
            })
        }
        Op::RemoveTransition { from, to } => {
            let (ti, i) = find_transition(tl, from, to)?;
            locked_check(tl, ti)?;
            let transition = tl.tracks[ti].transitions.remove(i);
            Ok(Op::AddTransition { transition })
        }
        Op::SetTransition {
            from,
            to,
            kind,
            duration,
        } => {
            let (ti, i) = find_transition(tl, from, to)?;
            locked_check(tl, ti)?;
            let x = &mut tl.tracks[ti].transitions[i];
            let old_kind = kind.map(|k| std::mem::replace(&mut x.kind, k));
            let old_duration = duration.map(|d| std::mem::replace(&mut x.duration, d));
            Ok(Op::SetTransition {
                from: from.clone(),
                to: to.clone(),
                kind: old_kind,
                duration: old_duration,
            })
        }
        Op::SetOutput { patch } => set_output(tl, patch, cx),
        Op::RippleDelete { clip_id } => ripple_delete(tl, clip_id),
        Op::RippleTrimEnd { clip_id, end } => {
            let (ti, ci) = editable_clip(tl, clip_id)?;
            let c = &mut tl.tracks[ti].clips[ci];
            let old = c.clone();
            let delta = *end - c.end();
            trim_end(c, *end);
            // Everything that starts after the clip's start is after it on the track (or is its
            // transition partner, which must keep its overlap): all of it follows the new end.
            let later: Vec<String> = tl.tracks[ti]
                .clips
                .iter()
                .filter(|x| x.start > old.start)
                .map(|x| x.id.clone())
                .collect();
            let unshift = shift_clips(tl, &later, delta)?;
            Ok(Op::Batch {
                ops: vec![unshift, restore(old)],
            })
        }
        Op::ShiftClips { clip_ids, delta } => shift_clips(tl, clip_ids, *delta),
        Op::Batch { ops } => {
            let mut inverses = Vec::with_capacity(ops.len());
            for op in ops {
                inverses.push(apply_op(tl, op, cx)?);
                tl.canonicalize();
            }
            inverses.reverse();
            Ok(Op::Batch { ops: inverses })
        }
        Op::ReplaceTimeline { timeline } => {
            let old = std::mem::replace(tl, (**timeline).clone());
            tl.canonicalize();
            Ok(Op::ReplaceTimeline {
                timeline: Box::new(old),
            })
        }
    }
}

fn restore(old: Clip) -> Op {
    Op::SetClip {
        patch: ClipPatch::restoring(&old),
        clip_id: old.id,
    }
}

fn trim_end(c: &mut Clip, end: Frames) {
    let new_duration = end - c.start;
    if c.reverse {
        // A reversed clip ends on its in-point; keep the top of its source range where it is.
        c.in_point = c.in_point + c.speed.source_floor(c.duration - new_duration);
    }
    c.duration = new_duration;
    fit_to_duration(c);
}

fn patch_clip(c: &mut Clip, p: &ClipPatch) -> ClipPatch {
    fn swap<T: Clone>(slot: &mut T, v: &Option<T>) -> Option<T> {
        v.as_ref().map(|v| std::mem::replace(slot, v.clone()))
    }
    ClipPatch {
        source: swap(&mut c.source, &p.source),
        start: swap(&mut c.start, &p.start),
        in_point: swap(&mut c.in_point, &p.in_point),
        duration: swap(&mut c.duration, &p.duration),
        speed: swap(&mut c.speed, &p.speed),
        reverse: swap(&mut c.reverse, &p.reverse),
        transform: swap(&mut c.transform, &p.transform),
        audio: swap(&mut c.audio, &p.audio),
        effects: swap(&mut c.effects, &p.effects),
        keyframes: swap(&mut c.keyframes, &p.keyframes),
    }
}

fn split(tl: &mut Timeline, clip_id: &str, at: Frames, new_id: &str) -> Result<Op, EditError> {
    let (ti, ci) = editable_clip(tl, clip_id)?;
    fresh_id(tl, new_id)?;
    let old = tl.tracks[ti].clips[ci].clone();
    if at <= old.start || at >= old.end() {
        return Err(EditError::SplitOutsideClip {
            clip_id: clip_id.to_owned(),
            at,
        });
    }
    let left_d = at - old.start;
    let right_d = old.end() - at;
    let mut left = old.clone();
    let mut right = old.clone();
    right.id = new_id.to_owned();
    left.duration = left_d;
    right.start = at;
    right.duration = right_d;
    if old.reverse {
        left.in_point = old.in_point + old.speed.source_floor(right_d);
    } else {
        right.in_point = old.in_point + old.speed.source_floor(left_d);
    }
    for k in &mut right.keyframes {
        k.time = k.time - left_d;
    }
    set_fade_out(&mut left, Frames::ZERO);
    set_fade_in(&mut right, Frames::ZERO);
    fit_to_duration(&mut left);
    fit_to_duration(&mut right);

    let track = &mut tl.tracks[ti];
    track.clips[ci] = left;
    track.clips.push(right);
    let mut moved = Vec::new();
    for x in &mut track.transitions {
        if x.from == clip_id {
            moved.push(x.clone());
            x.from = new_id.to_owned();
        }
    }
    let mut inv = vec![
        Op::RemoveClip {
            clip_id: new_id.to_owned(),
        },
        restore(old),
    ];
    inv.extend(
        moved
            .into_iter()
            .map(|transition| Op::AddTransition { transition }),
    );
    Ok(Op::Batch { ops: inv })
}

fn shift_clips(tl: &mut Timeline, clip_ids: &[String], delta: Frames) -> Result<Op, EditError> {
    for id in clip_ids {
        let (ti, ci) = editable_clip(tl, id)?;
        let c = &mut tl.tracks[ti].clips[ci];
        c.start = c.start + delta;
    }
    Ok(Op::ShiftClips {
        clip_ids: clip_ids.to_vec(),
        delta: -delta,
    })
}

fn ripple_delete(tl: &mut Timeline, clip_id: &str) -> Result<Op, EditError> {
    let (ti, ci) = editable_clip(tl, clip_id)?;
    let track_id = tl.tracks[ti].id.clone();
    let clip = tl.tracks[ti].clips.remove(ci);
    let transitions = take_transitions(tl, ti, clip_id);
    let others = &tl.tracks[ti].clips;
    // The stretch only this clip covered: from the latest end of the clips that started no later
    // than it, to the earliest start of the clips that start after it.
    let gap_start = others
        .iter()
        .filter(|c| c.start <= clip.start)
        .map(Clip::end)
        .fold(clip.start, Frames::max);
    let gap_end = others
        .iter()
        .filter(|c| c.start > clip.start)
        .map(|c| c.start)
        .fold(clip.end(), Frames::min);
    let later: Vec<String> = others
        .iter()
        .filter(|c| c.start > clip.start)
        .map(|c| c.id.clone())
        .collect();
    let mut inv = Vec::new();
    if gap_end > gap_start {
        inv.push(shift_clips(tl, &later, gap_start - gap_end)?);
    }
    inv.push(Op::AddClip { track_id, clip });
    inv.extend(
        transitions
            .into_iter()
            .map(|transition| Op::AddTransition { transition }),
    );
    Ok(Op::Batch { ops: inv })
}

fn set_output(tl: &mut Timeline, p: &OutputPatch, cx: &Context<'_>) -> Result<Op, EditError> {
    let before = tl.clone();
    let o = &mut tl.output;
    let mut old = OutputPatch {
        width: p.width.map(|v| std::mem::replace(&mut o.width, v)),
        height: p.height.map(|v| std::mem::replace(&mut o.height, v)),
        frame_rate: None,
        sample_rate: p
            .sample_rate
            .map(|v| std::mem::replace(&mut o.sample_rate, v)),
        channels: p.channels.map(|v| std::mem::replace(&mut o.channels, v)),
        background: p
            .background
            .map(|v| std::mem::replace(&mut o.background, v)),
    };
    match p.frame_rate {
        Some(rate) if rate != tl.output.frame_rate => {
            rescale(tl, rate, cx);
            Ok(Op::ReplaceTimeline {
                timeline: Box::new(before),
            })
        }
        Some(rate) => {
            old.frame_rate = Some(rate);
            Ok(Op::SetOutput { patch: old })
        }
        None => Ok(Op::SetOutput { patch: old }),
    }
}

/// Moves every time in `tl` onto the grid of `to`.
fn rescale(tl: &mut Timeline, to: Rate, cx: &Context<'_>) {
    let from = tl.output.frame_rate;
    let r = |f: Frames| from.rescale(f, to);
    tl.output.frame_rate = to;
    for track in &mut tl.tracks {
        for c in &mut track.clips {
            let (start, end) = (r(c.start), r(c.end()));
            c.start = start;
            c.duration = end - start;
            c.in_point = r(c.in_point);
            c.audio.fade_in = r(c.audio.fade_in);
            c.audio.fade_out = r(c.audio.fade_out);
            if let Source::Title(t) = &mut c.source {
                t.fade_in = r(t.fade_in);
                t.fade_out = r(t.fade_out);
            }
            for k in &mut c.keyframes {
                k.time = r(k.time);
            }
            // Two keyframes may land on one frame; keep the earlier one.
            c.keyframes
                .sort_by(|a, b| a.property.cmp(&b.property).then(a.time.cmp(&b.time)));
            c.keyframes
                .dedup_by(|b, a| a.property == b.property && a.time == b.time);
            // Rounding both ends may reach a little past the source; give that back.
            if let Source::Asset { asset_id } = &c.source
                && let Some(info) = (cx.assets)(asset_id)
                && let Some(limit) = source_limit_milli(info.duration_ns, to)
                && consumed_milli(c) > limit
            {
                let room = limit - i128::from(c.in_point.0) * 1000;
                let fits = super::time::div_floor(room, i128::from(c.speed.millis()));
                c.duration = Frames(super::time::clamp_i64(fits)).max(Frames(1));
            }
            fit_to_duration(c);
        }
        let ends: std::collections::HashMap<&str, (Frames, Frames)> = track
            .clips
            .iter()
            .map(|c| (c.id.as_str(), (c.start, c.end())))
            .collect();
        for x in &mut track.transitions {
            x.duration = r(x.duration);
            if let (Some(a), Some(b)) = (ends.get(x.from.as_str()), ends.get(x.to.as_str())) {
                let overlap = a.1 - b.0;
                if overlap >= Frames(1) {
                    x.duration = x.duration.min(overlap);
                }
            }
            x.duration = x.duration.max(Frames(1));
        }
    }
}

#[cfg(test)]
#[path = "ops_tests.rs"]
mod tests;
