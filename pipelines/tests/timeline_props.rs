//! Property tests of the timeline model: random valid documents and random edit sequences.

use nve_pipelines::timeline::{
    AnimProp, AssetInfo, ClipDoc, ClipPatch, Context, FrameRateDoc, Frames, KeyframeDoc, Op,
    OutputPatch, Rate, RatioDoc, SourceDoc, Timeline, TimelineDoc, TimelineLimits, TitleDoc, Track,
    TrackDoc, TrackKind, TrackPatch, Transform, Transition, TransitionDoc, TransitionKind,
};
use proptest::prelude::*;

const LONG_VIDEO: &str = "10000000-0000-4000-8000-000000000001";
const SHORT_VIDEO: &str = "10000000-0000-4000-8000-000000000002";
const LONG_AUDIO: &str = "10000000-0000-4000-8000-000000000003";
const IMAGE: &str = "10000000-0000-4000-8000-000000000004";

fn assets(id: &str) -> Option<AssetInfo> {
    let av = |secs: i64, video: bool| AssetInfo {
        duration_ns: secs * 1_000_000_000,
        has_video: video,
        has_audio: true,
        is_image: false,
        width: 1280,
        height: 720,
    };
    match id {
        LONG_VIDEO => Some(av(600, true)),
        SHORT_VIDEO => Some(av(4, true)),
        LONG_AUDIO => Some(av(600, false)),
        IMAGE => Some(AssetInfo {
            is_image: true,
            width: 640,
            height: 480,
            ..AssetInfo::default()
        }),
        _ => None,
    }
}

fn limits() -> TimelineLimits {
    TimelineLimits {
        max_tracks: 6,
        max_clips: 40,
        max_keyframes_per_clip: 6,
        ..TimelineLimits::default()
    }
}

const RATES: [(u64, u64); 6] = [
    (24000, 1001),
    (24, 1),
    (25, 1),
    (30000, 1001),
    (50, 1),
    (60, 1),
];

fn rate(i: usize) -> Rate {
    let (n, d) = RATES[i % RATES.len()];
    Rate::new(n, d).unwrap_or_default()
}

#[derive(Debug, Clone)]
struct ClipPlan {
    gap: i64,
    dur: i64,
    overlap: Option<(i64, i64)>,
    src: u8,
    in_point: i64,
    speed: u8,
    reverse: bool,
    opacity: f64,
    keyframes: u8,
}

fn clip_plan() -> impl Strategy<Value = ClipPlan> {
    (
        0i64..20,
        1i64..60,
        proptest::option::weighted(0.3, (1i64..30, 1i64..30)),
        0u8..4,
        0i64..100,
        0u8..4,
        any::<bool>(),
        // Few decimals: serde_json without `float_roundtrip` may misread long ones by an ulp.
        (0u32..=100).prop_map(|v| f64::from(v) / 100.0),
        0u8..3,
    )
        .prop_map(
            |(gap, dur, overlap, src, in_point, speed, reverse, opacity, keyframes)| ClipPlan {
                gap,
                dur,
                overlap,
                src,
                in_point,
                speed,
                reverse,
                opacity,
                keyframes,
            },
        )
}

#[derive(Debug, Clone)]
struct DocPlan {
    rate: usize,
    tracks: Vec<(u8, Vec<ClipPlan>)>,
}

fn doc_plan() -> impl Strategy<Value = DocPlan> {
    (
        0usize..RATES.len(),
        prop::collection::vec((0u8..3, prop::collection::vec(clip_plan(), 0..6)), 1..4),
    )
        .prop_map(|(rate, tracks)| DocPlan { rate, tracks })
}

/// Builds a valid wire document from a plan (times written in seconds on the plan's grid).
fn build(plan: &DocPlan) -> TimelineDoc {
    let r = rate(plan.rate);
    let s = |f: i64| r.frames_to_seconds(Frames(f));
    let mut doc = TimelineDoc::default();
    doc.output.frame_rate = match RATES[plan.rate] {
        (n, 1) => FrameRateDoc::Whole(n),
        (num, den) => FrameRateDoc::Ratio(RatioDoc { num, den }),
    };
    let mut n = 0;
    for (ti, (kind, clips)) in plan.tracks.iter().enumerate() {
        let kind = [TrackKind::Video, TrackKind::Audio, TrackKind::Overlay][usize::from(*kind)];
        let mut track = TrackDoc {
            id: format!("t{ti}"),
            kind,
            name: String::new(),
            muted: false,
            hidden: false,
            locked: false,
            volume_db: 0.0,
            clips: Vec::new(),
            transitions: Vec::new(),
        };
        // (start, end) of the previous two clips.
        let mut prev: Option<(i64, i64)> = None;
        let mut prev2_end = 0;
        let mut cursor = 0;
        for p in clips {
            n += 1;
            let id = format!("c{n}");
            let short = kind == TrackKind::Video && p.src == 3;
            let speed = if short {
                1.0
            } else {
                [0.5, 1.0, 1.5, 2.0][usize::from(p.speed)]
            };
            let mut start = cursor + p.gap;
            let mut transition = None;
            if let (Some((o, t)), Some((ps, pe))) = (p.overlap, prev) {
                let o = o.min(pe - ps - 1).min(p.dur - 1);
                if o >= 1 && pe - o >= prev2_end {
                    start = pe - o;
                    let kinds = [
                        TransitionKind::Crossfade,
                        TransitionKind::WipeLeft,
                        TransitionKind::Iris,
                        TransitionKind::Clock,
                    ];
                    let tk = if kind == TrackKind::Audio {
                        TransitionKind::Crossfade
                    } else {
                        kinds[usize::try_from(t).unwrap_or(0) % kinds.len()]
                    };
                    transition = Some(TransitionDoc {
                        from: track.clips.last().map(|c| c.id.clone()).unwrap_or_default(),
                        to: id.clone(),
                        kind: tk,
                        duration: s(t.min(o)),
                    });
                }
            }
            let source = match (kind, p.src % 3) {
                (TrackKind::Video, _) if short => SourceDoc::Asset {
                    asset_id: SHORT_VIDEO.into(),
                },
                (TrackKind::Video, 0) => SourceDoc::Asset {
                    asset_id: LONG_VIDEO.into(),
                },
                (TrackKind::Video | TrackKind::Overlay, 1) => SourceDoc::Color {
                    rgba: "#336699CC".into(),
                },
                (TrackKind::Video | TrackKind::Overlay, _) if p.src == 2 => SourceDoc::Image {
                    asset_id: IMAGE.into(),
                },
                (TrackKind::Overlay, _) => SourceDoc::Title(Box::new(TitleDoc {
                    text: format!("Title {n}"),
                    fade_in: s(p.dur / 4),
                    ..TitleDoc::default()
                })),
                (TrackKind::Video, _) => SourceDoc::Color {
                    rgba: "#000000".into(),
                },
                (TrackKind::Audio, _) => SourceDoc::Asset {
                    asset_id: LONG_AUDIO.into(),
                },
            };
            let keyframes = (0..i64::from(p.keyframes).min(p.dur))
                .map(|k| KeyframeDoc {
                    property: if kind == TrackKind::Audio {
                        AnimProp::VolumeDb
                    } else {
                        AnimProp::Opacity
                    },
                    time: s(k * p.dur / 2),
                    value: if kind == TrackKind::Audio {
                        -(p.opacity * 100.0).round() / 10.0
                    } else {
                        p.opacity
                    },
                    interpolation: Default::default(),
                })
                .collect();
            track.clips.push(ClipDoc {
                id: id.clone(),
                source,
                start: s(start),
                in_point: if short { 0.0 } else { s(p.in_point) },
                duration: s(p.dur),
                speed,
                reverse: p.reverse,
                transform: Transform {
                    opacity: p.opacity,
                    ..Transform::default()
                },
                audio: Default::default(),
                effects: Vec::new(),
                keyframes,
            });
            if let Some(t) = transition {
                track.transitions.push(t);
            }
            prev2_end = prev.map_or(0, |(_, e)| e);
            prev = Some((start, start + p.dur));
            cursor = start + p.dur;
        }
        doc.tracks.push(track);
    }
    doc
}

#[derive(Debug, Clone)]
enum OpPlan {
    Move(usize, Option<usize>, i64),
    TrimStart(usize, i64),
    TrimEnd(usize, i64),
    Split(usize, u8),
    Duplicate(usize, Option<usize>),
    SetClip(usize, f64, u8, bool),
    Remove(usize),
    RippleDelete(usize),
    RippleTrimEnd(usize, i64),
    AddTransition(usize, i64),
    RemoveTransition(usize),
    SetTransition(usize, i64),
    AddTrack(u8, usize),
    RemoveTrack(usize),
    MoveTrack(usize, usize),
    SetTrack(usize, bool, bool),
    FrameRate(usize),
    Size(u32),
    AddClip(usize, i64, i64),
    Shift(usize, i64),
}

fn op_plan() -> impl Strategy<Value = OpPlan> {
    let c = 0usize..64;
    prop_oneof![
        (c.clone(), proptest::option::of(0usize..8), 0i64..400)
            .prop_map(|(c, t, s)| OpPlan::Move(c, t, s)),
        (c.clone(), -30i64..30).prop_map(|(c, d)| OpPlan::TrimStart(c, d)),
        (c.clone(), -30i64..30).prop_map(|(c, d)| OpPlan::TrimEnd(c, d)),
        (c.clone(), any::<u8>()).prop_map(|(c, f)| OpPlan::Split(c, f)),
        (c.clone(), proptest::option::of(0usize..8)).prop_map(|(c, t)| OpPlan::Duplicate(c, t)),
        (
            c.clone(),
            (0u32..=100).prop_map(|v| f64::from(v) / 100.0),
            0u8..4,
            any::<bool>()
        )
            .prop_map(|(c, o, s, r)| OpPlan::SetClip(c, o, s, r)),
        c.clone().prop_map(OpPlan::Remove),
        c.clone().prop_map(OpPlan::RippleDelete),
        (c.clone(), -30i64..30).prop_map(|(c, d)| OpPlan::RippleTrimEnd(c, d)),
        (c.clone(), 1i64..20).prop_map(|(c, d)| OpPlan::AddTransition(c, d)),
        (0usize..8).prop_map(OpPlan::RemoveTransition),
        (0usize..8, 1i64..20).prop_map(|(i, d)| OpPlan::SetTransition(i, d)),
        (0u8..3, 0usize..8).prop_map(|(k, i)| OpPlan::AddTrack(k, i)),
        (0usize..8).prop_map(OpPlan::RemoveTrack),
        (0usize..8, 0usize..8).prop_map(|(t, i)| OpPlan::MoveTrack(t, i)),
        (0usize..8, any::<bool>(), any::<bool>()).prop_map(|(t, l, m)| OpPlan::SetTrack(t, l, m)),
        (0usize..RATES.len()).prop_map(OpPlan::FrameRate),
        prop_oneof![Just(1280u32), Just(1281u32), Just(3840u32)].prop_map(OpPlan::Size),
        (0usize..8, 0i64..400, 1i64..60).prop_map(|(t, s, d)| OpPlan::AddClip(t, s, d)),
        (c, -20i64..20).prop_map(|(c, d)| OpPlan::Shift(c, d)),
    ]
}

/// Turns a plan into a concrete op against `tl`; `n` feeds fresh ids.
fn materialize(tl: &Timeline, plan: &OpPlan, n: &mut usize) -> Op {
    let clips: Vec<(&Track, &nve_pipelines::timeline::Clip)> = tl
        .tracks
        .iter()
        .flat_map(|t| t.clips.iter().map(move |c| (t, c)))
        .collect();
    let transitions: Vec<&Transition> = tl
        .tracks
        .iter()
        .flat_map(|t| t.transitions.iter())
        .collect();
    let track_id = |i: usize| {
        tl.tracks
            .get(i % tl.tracks.len().max(1))
            .map_or_else(|| "none".to_owned(), |t| t.id.clone())
    };
    let mut fresh = || {
        *n += 1;
        format!("n{n}")
    };
    let noop = Op::Batch { ops: Vec::new() };
    let pick = |i: usize| clips.get(i % clips.len().max(1)).copied();
    match plan {
        OpPlan::Move(c, t, start) => pick(*c).map_or(noop, |(_, c)| Op::MoveClip {
            clip_id: c.id.clone(),
            track_id: t.map(track_id),
            start: Frames(*start),
        }),
        OpPlan::TrimStart(c, d) => pick(*c).map_or(noop, |(_, c)| Op::TrimStart {
            clip_id: c.id.clone(),
            start: c.start + Frames(*d),
        }),
        OpPlan::TrimEnd(c, d) => pick(*c).map_or(noop, |(_, c)| Op::TrimEnd {
            clip_id: c.id.clone(),
            end: c.end() + Frames(*d),
        }),
        OpPlan::RippleTrimEnd(c, d) => pick(*c).map_or(noop, |(_, c)| Op::RippleTrimEnd {
            clip_id: c.id.clone(),
            end: c.end() + Frames(*d),
        }),
        OpPlan::Split(c, f) => pick(*c).map_or(noop, |(_, c)| Op::SplitClip {
            clip_id: c.id.clone(),
            at: c.start + Frames(c.duration.get() * i64::from(*f) / 255),
            new_id: fresh(),
        }),
        OpPlan::Duplicate(c, t) => pick(*c).map_or(noop, |(_, c)| Op::DuplicateClip {
            clip_id: c.id.clone(),
            new_id: fresh(),
            track_id: t.map(track_id),
            start: None,
        }),
        OpPlan::SetClip(c, o, s, r) => pick(*c).map_or(noop, |(_, c)| Op::SetClip {
            clip_id: c.id.clone(),
            patch: ClipPatch {
                transform: Some(Transform {
                    opacity: *o,
                    ..c.transform
                }),
                speed: nve_pipelines::timeline::Speed::from_f64(
                    [0.5, 1.0, 1.25, 3.0][usize::from(*s)],
                )
                .ok(),
                reverse: Some(*r),
                ..ClipPatch::default()
            },
        }),
        OpPlan::Remove(c) => pick(*c).map_or(noop, |(_, c)| Op::RemoveClip {
            clip_id: c.id.clone(),
        }),
        OpPlan::RippleDelete(c) => pick(*c).map_or(noop, |(_, c)| Op::RippleDelete {
            clip_id: c.id.clone(),
        }),
        OpPlan::AddTransition(c, d) => match pick(*c) {
            Some((t, c)) => {
                let next = t
                    .clips
                    .iter()
                    .filter(|x| x.start > c.start)
                    .min_by_key(|x| x.start);
                next.map_or(noop, |to| Op::AddTransition {
                    transition: Transition {
                        from: c.id.clone(),
                        to: to.id.clone(),
                        kind: TransitionKind::Crossfade,
                        duration: Frames(*d),
                    },
                })
            }
            None => noop,
        },
        OpPlan::RemoveTransition(i) => {
            transitions
                .get(i % transitions.len().max(1))
                .map_or(noop, |t| Op::RemoveTransition {
                    from: t.from.clone(),
                    to: t.to.clone(),
                })
        }
        OpPlan::SetTransition(i, d) => {
            transitions
                .get(i % transitions.len().max(1))
                .map_or(noop, |t| Op::SetTransition {
                    from: t.from.clone(),
                    to: t.to.clone(),
                    kind: Some(TransitionKind::WipeUp),
                    duration: Some(Frames(*d)),
                })
        }
        OpPlan::AddTrack(k, i) => Op::AddTrack {
            index: i % (tl.tracks.len() + 2),
            track: Track::new(
                fresh(),
                [TrackKind::Video, TrackKind::Audio, TrackKind::Overlay][usize::from(*k)],
            ),
        },
        OpPlan::RemoveTrack(t) => Op::RemoveTrack {
            track_id: track_id(*t),
        },
        OpPlan::MoveTrack(t, i) => Op::MoveTrack {
            track_id: track_id(*t),
            index: *i,
        },
        OpPlan::SetTrack(t, l, m) => Op::SetTrack {
            track_id: track_id(*t),
            patch: TrackPatch {
                locked: Some(*l),
                muted: Some(*m),
                ..TrackPatch::default()
            },
        },
        OpPlan::FrameRate(r) => Op::SetOutput {
            patch: OutputPatch {
                frame_rate: Some(rate(*r)),
                ..OutputPatch::default()
            },
        },
        OpPlan::Size(w) => Op::SetOutput {
            patch: OutputPatch {
                width: Some(*w),
                ..OutputPatch::default()
            },
        },
        OpPlan::AddClip(t, s, d) => {
            let track = track_id(*t);
            let mut clip = nve_pipelines::timeline::Clip::new(
                fresh(),
                nve_pipelines::timeline::Source::Color {
                    rgba: nve_pipelines::timeline::Rgba::WHITE,
                },
                Frames(*s),
                Frames(*d),
            );
            clip.transform.scale = 0.5;
            Op::AddClip {
                track_id: track,
                clip,
            }
        }
        OpPlan::Shift(c, d) => pick(*c).map_or(noop, |(t, c)| Op::ShiftClips {
            clip_ids: t
                .clips
                .iter()
                .filter(|x| x.start >= c.start)
                .map(|x| x.id.clone())
                .collect(),
            delta: Frames(*d),
        }),
    }
}

fn check_fixed_point(tl: &Timeline, cx: &Context<'_>) -> Result<(), TestCaseError> {
    let again = Timeline::from_doc(&tl.to_doc(), cx)
        .map_err(|e| TestCaseError::fail(format!("to_doc not accepted back: {e}")))?;
    prop_assert_eq!(&again, tl);
    let json = serde_json::to_string(tl).map_err(|e| TestCaseError::fail(e.to_string()))?;
    let back: Timeline =
        serde_json::from_str(&json).map_err(|e| TestCaseError::fail(e.to_string()))?;
    prop_assert_eq!(&back, tl);
    Ok(())
}

proptest! {
    // No failure persistence: it would write regression files next to the sources.
    #![proptest_config(ProptestConfig {
        cases: 256,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn generated_documents_are_valid_and_fixed_points(plan in doc_plan()) {
        let limits = limits();
        let cx = Context { limits: &limits, assets: &assets };
        let doc = build(&plan);
        let tl = Timeline::from_doc(&doc, &cx)
            .map_err(|e| TestCaseError::fail(format!("generator made an invalid doc: {e}")))?;
        check_fixed_point(&tl, &cx)?;
        // The wire form round-trips through JSON too.
        // The wire form survives JSON: seconds may come back an ulp off (serde_json without
        // `float_roundtrip`), which snapping absorbs.
        let wire = serde_json::to_string(&tl.to_doc()).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let parsed: TimelineDoc = serde_json::from_str(&wire).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let again = Timeline::from_doc(&parsed, &cx)
            .map_err(|e| TestCaseError::fail(format!("wire JSON not accepted back: {e}")))?;
        prop_assert_eq!(again, tl);
    }

    #[test]
    fn edits_keep_documents_valid_and_inverses_restore(
        plan in doc_plan(),
        ops in prop::collection::vec(prop::collection::vec(op_plan(), 1..3), 1..12),
    ) {
        let limits = limits();
        let cx = Context { limits: &limits, assets: &assets };
        let mut tl = Timeline::from_doc(&build(&plan), &cx)
            .map_err(|e| TestCaseError::fail(format!("generator made an invalid doc: {e}")))?;
        let mut n = 0;
        for group in &ops {
            let mut concrete: Vec<Op> = group.iter().map(|p| materialize(&tl, p, &mut n)).collect();
            let op = if concrete.len() == 1 { concrete.remove(0) } else { Op::Batch { ops: concrete } };
            // Domain ops survive JSON.
            let json = serde_json::to_string(&op).map_err(|e| TestCaseError::fail(e.to_string()))?;
            let parsed: Op = serde_json::from_str(&json).map_err(|e| TestCaseError::fail(format!("{e}: {json}")))?;
            prop_assert_eq!(&parsed, &op);
            // ... and the wire form.
            let wire = tl.op_to_doc(&op);
            prop_assert_eq!(tl.op_from_doc(&wire, &cx), Ok(op.clone()));

            let Ok((next, inverse)) = tl.apply(&op, &cx) else { continue };
            prop_assert!(next.validate(&cx).is_ok(), "apply produced an invalid doc");
            let (back, _) = next.apply(&inverse, &cx)
                .map_err(|e| TestCaseError::fail(format!("inverse {inverse:?} of {op:?} failed: {e}")))?;
            prop_assert_eq!(&back, &tl, "inverse of {:?} did not restore", op);
            check_fixed_point(&next, &cx)?;
            tl = next;
        }
    }

    #[test]
    fn snapping_is_idempotent(r in 0usize..RATES.len(), s in -1.0e6f64..1.0e6) {
        let rate = rate(r);
        let once = rate.snap_seconds(s);
        prop_assert_eq!(rate.snap_seconds(rate.frames_to_seconds(once)), once);
        prop_assert_eq!(rate.ns_to_frames(rate.frames_to_ns(once)), once);
        // The snapped time is the nearest frame: within half a frame of the input.
        let err = (rate.frames_to_seconds(once) - s).abs() * rate.fps();
        prop_assert!(err <= 0.5 + 1e-6, "{} s snapped to {} ({} frames off)", s, once, err);
    }

    #[test]
    fn frames_survive_seconds(r in 0usize..RATES.len(), f in -(1i64 << 36)..(1i64 << 36)) {
        let rate = rate(r);
        prop_assert_eq!(rate.snap_seconds(rate.frames_to_seconds(Frames(f))), Frames(f));
        prop_assert_eq!(rate.ns_to_frames(rate.frames_to_ns(Frames(f))), Frames(f));
    }
}
