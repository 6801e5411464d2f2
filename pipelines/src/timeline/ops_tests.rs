use super::*;
use crate::timeline::fixtures::{VIDEO, cx, sample, video_clip};
use crate::timeline::model::{AnimProp, Interpolation, TrackKind};
use crate::timeline::validate::Code;

/// Applies `op`, checks that the inverse restores `tl` exactly, returns the new document.
#[track_caller]
fn ok(tl: &Timeline, op: Op) -> Timeline {
    let (next, inverse) = match tl.apply(&op, &cx()) {
        Ok(r) => r,
        Err(e) => panic!("{op:?} failed: {e}"),
    };
    let (back, _) = match next.apply(&inverse, &cx()) {
        Ok(r) => r,
        Err(e) => panic!("inverse {inverse:?} failed: {e}"),
    };
    assert_eq!(&back, tl, "inverse of {op:?} did not restore");
    next
}

#[track_caller]
fn err(tl: &Timeline, op: Op) -> EditError {
    match tl.apply(&op, &cx()) {
        Ok(_) => panic!("{op:?} should fail"),
        Err(e) => e,
    }
}

#[track_caller]
fn invalid(tl: &Timeline, op: Op, path: &str, code: Code) {
    let e = err(tl, op);
    let problems = e.problems().cloned().unwrap_or_default();
    assert!(
        e.code() == "invalid-result" && problems.has(path, code),
        "expected {code} at {path}, got {e}"
    );
}

fn clip<'a>(tl: &'a Timeline, id: &str) -> &'a Clip {
    match tl.clip(id) {
        Some((_, c)) => c,
        None => panic!("no clip {id}"),
    }
}

fn locked(mut tl: Timeline, track: usize) -> Timeline {
    tl.tracks[track].locked = true;
    tl
}

fn s(x: &str) -> String {
    x.to_owned()
}

#[test]
fn tracks_add_remove_move_set() {
    let tl = sample();
    let next = ok(
        &tl,
        Op::AddTrack {
            index: 1,
            track: Track::new("v2", TrackKind::Video),
        },
    );
    assert_eq!(next.tracks[1].id, "v2");
    assert_eq!(
        err(
            &tl,
            Op::AddTrack {
                index: 4,
                track: Track::new("v2", TrackKind::Video)
            }
        )
        .code(),
        "bad-index"
    );
    assert_eq!(
        err(
            &tl,
            Op::AddTrack {
                index: 0,
                track: Track::new("a", TrackKind::Video)
            }
        )
        .code(),
        "duplicate-id"
    );

    let next = ok(&tl, Op::RemoveTrack { track_id: s("v") });
    assert_eq!(next.tracks.len(), 2);
    assert!(next.clip("a").is_none());
    assert_eq!(
        err(&tl, Op::RemoveTrack { track_id: s("zz") }).code(),
        "track-not-found"
    );

    let next = ok(
        &tl,
        Op::MoveTrack {
            track_id: s("o"),
            index: 0,
        },
    );
    assert_eq!(next.tracks[0].id, "o");
    assert_eq!(
        err(
            &tl,
            Op::MoveTrack {
                track_id: s("o"),
                index: 3
            }
        )
        .code(),
        "bad-index"
    );

    let patch = TrackPatch {
        muted: Some(true),
        volume_db: Some(-6.0),
        name: Some(s("Music")),
        ..TrackPatch::default()
    };
    let next = ok(
        &tl,
        Op::SetTrack {
            track_id: s("m"),
            patch,
        },
    );
    assert!(next.tracks[1].muted);
    assert_eq!(next.tracks[1].name, "Music");
    let bad = TrackPatch {
        volume_db: Some(99.0),
        ..TrackPatch::default()
    };
    invalid(
        &tl,
        Op::SetTrack {
            track_id: s("m"),
            patch: bad,
        },
        "/tracks/1/volume_db",
        Code::OutOfRange,
    );
}

#[test]
fn locked_tracks_refuse_edits_but_can_be_unlocked() {
    let tl = locked(sample(), 0);
    let refused = [
        Op::RemoveTrack { track_id: s("v") },
        Op::MoveTrack {
            track_id: s("v"),
            index: 1,
        },
        Op::SetTrack {
            track_id: s("v"),
            patch: TrackPatch {
                muted: Some(true),
                ..TrackPatch::default()
            },
        },
        Op::AddClip {
            track_id: s("v"),
            clip: video_clip("n", 300, 10),
        },
        Op::RemoveClip { clip_id: s("c") },
        Op::MoveClip {
            clip_id: s("c"),
            track_id: None,
            start: Frames(200),
        },
        Op::TrimEnd {
            clip_id: s("c"),
            end: Frames(200),
        },
        Op::SplitClip {
            clip_id: s("c"),
            at: Frames(160),
            new_id: s("n"),
        },
        Op::RemoveTransition {
            from: s("a"),
            to: s("b"),
        },
        Op::RippleDelete { clip_id: s("a") },
        Op::ShiftClips {
            clip_ids: vec![s("c")],
            delta: Frames(1),
        },
    ];
    for op in refused {
        assert_eq!(err(&tl, op.clone()).code(), "track-locked", "{op:?}");
    }
    // Moving a clip onto a locked track is refused too.
    let tl2 = locked(sample(), 0);
    let mut tl2 = tl2;
    tl2.tracks[0].locked = false;
    tl2.tracks[2].locked = true;
    assert_eq!(
        err(
            &tl2,
            Op::DuplicateClip {
                clip_id: s("a"),
                new_id: s("n"),
                track_id: Some(s("o")),
                start: None
            }
        )
        .code(),
        "track-locked"
    );
    let unlocked = ok(
        &tl,
        Op::SetTrack {
            track_id: s("v"),
            patch: TrackPatch {
                locked: Some(false),
                ..TrackPatch::default()
            },
        },
    );
    assert!(!unlocked.tracks[0].locked);
}

#[test]
fn add_remove_clip() {
    let tl = sample();
    let next = ok(
        &tl,
        Op::AddClip {
            track_id: s("v"),
            clip: video_clip("d", 210, 30),
        },
    );
    assert_eq!(clip(&next, "d").start, Frames(210));
    assert_eq!(
        err(
            &tl,
            Op::AddClip {
                track_id: s("v"),
                clip: video_clip("c", 210, 30)
            }
        )
        .code(),
        "duplicate-id"
    );
    invalid(
        &tl,
        Op::AddClip {
            track_id: s("v"),
            clip: video_clip("d", 200, 30),
        },
        "/tracks/0/clips/3/start",
        Code::OverlapWithoutTransition,
    );
    // Removing a clip takes its transitions with it; the inverse brings both back.
    let next = ok(&tl, Op::RemoveClip { clip_id: s("b") });
    assert!(next.tracks[0].transitions.is_empty());
    assert_eq!(clip(&next, "c").start, Frames(150));
    assert_eq!(
        err(&tl, Op::RemoveClip { clip_id: s("zz") }).code(),
        "clip-not-found"
    );
}

#[test]
fn move_clip_within_and_across_tracks() {
    let tl = sample();
    let next = ok(
        &tl,
        Op::MoveClip {
            clip_id: s("c"),
            track_id: None,
            start: Frames(300),
        },
    );
    assert_eq!(clip(&next, "c").start, Frames(300));
    // To a new video track.
    let with_v2 = ok(
        &tl,
        Op::AddTrack {
            index: 1,
            track: Track::new("v2", TrackKind::Video),
        },
    );
    let next = ok(
        &with_v2,
        Op::MoveClip {
            clip_id: s("c"),
            track_id: Some(s("v2")),
            start: Frames(10),
        },
    );
    assert_eq!(next.track("v2").map(|t| t.clips.len()), Some(1));
    // A clip with transitions stays on its track.
    assert_eq!(
        err(
            &with_v2,
            Op::MoveClip {
                clip_id: s("a"),
                track_id: Some(s("v2")),
                start: Frames(0)
            }
        )
        .code(),
        "clip-has-transitions"
    );
    // Onto the audio track: wrong kind.
    invalid(
        &tl,
        Op::MoveClip {
            clip_id: s("c"),
            track_id: Some(s("o")),
            start: Frames(300),
        },
        "/tracks/2/clips/1/source/type",
        Code::WrongTrackKind,
    );
    // Sliding b away from a breaks the transition.
    invalid(
        &tl,
        Op::MoveClip {
            clip_id: s("b"),
            track_id: None,
            start: Frames(90),
        },
        "/tracks/0/transitions/0",
        Code::TransitionWithoutOverlap,
    );
    invalid(
        &tl,
        Op::MoveClip {
            clip_id: s("c"),
            track_id: None,
            start: Frames(-1),
        },
        "/tracks/0/clips/0/start",
        Code::OutOfRange,
    );
    assert_eq!(
        err(
            &tl,
            Op::MoveClip {
                clip_id: s("c"),
                track_id: Some(s("zz")),
                start: Frames(0)
            }
        )
        .code(),
        "track-not-found"
    );
}

#[test]
fn trims_move_in_point_with_start() {
    let mut tl = sample();
    tl.tracks[0].clips[2].in_point = Frames(30);
    tl.tracks[0].clips[2].keyframes = vec![Keyframe {
        property: AnimProp::Opacity,
        time: Frames(5),
        value: 0.5,
        interpolation: Interpolation::Hold,
    }];
    tl.tracks[0].clips[2].audio.fade_in = Frames(20);
    tl.tracks[0].clips[2].audio.fade_out = Frames(20);
    // Extend left by 10: in_point goes back by 10 too, keyframe stays on its content.
    let left = ok(
        &tl.apply(
            &Op::MoveClip {
                clip_id: s("c"),
                track_id: None,
                start: Frames(160),
            },
            &cx(),
        )
        .map(|r| r.0)
        .unwrap_or_default(),
        Op::TrimStart {
            clip_id: s("c"),
            start: Frames(150),
        },
    );
    let c = clip(&left, "c");
    assert_eq!(
        (c.start, c.in_point, c.duration),
        (Frames(150), Frames(20), Frames(70))
    );
    assert_eq!(c.keyframes[0].time, Frames(15));

    let next = ok(
        &tl,
        Op::TrimStart {
            clip_id: s("c"),
            start: Frames(170),
        },
    );
    let c = clip(&next, "c");
    assert_eq!(
        (c.start, c.in_point, c.duration),
        (Frames(170), Frames(50), Frames(40))
    );
    assert!(
        c.keyframes.is_empty(),
        "keyframe at content frame 5 was cut"
    );
    assert_eq!(
        (c.audio.fade_in, c.audio.fade_out),
        (Frames(20), Frames(20))
    );

    let next = ok(
        &tl,
        Op::TrimEnd {
            clip_id: s("c"),
            end: Frames(180),
        },
    );
    let c = clip(&next, "c");
    assert_eq!(
        (c.start, c.in_point, c.duration),
        (Frames(150), Frames(30), Frames(30))
    );
    assert_eq!(
        (c.audio.fade_in, c.audio.fade_out),
        (Frames(20), Frames(10))
    );

    invalid(
        &tl,
        Op::TrimStart {
            clip_id: s("c"),
            start: Frames(100),
        },
        "/tracks/0/clips/2/in_point",
        Code::OutOfRange,
    );
    invalid(
        &tl,
        Op::TrimEnd {
            clip_id: s("c"),
            end: Frames(150),
        },
        "/tracks/0/clips/2/duration",
        Code::OutOfRange,
    );
    // 30 + 271 frames > 300 frames of source.
    invalid(
        &tl,
        Op::TrimEnd {
            clip_id: s("c"),
            end: Frames(421),
        },
        "/tracks/0/clips/2/duration",
        Code::BeyondSource,
    );
}

#[test]
fn trim_with_speed_and_reverse() {
    let mut tl = sample();
    let c = &mut tl.tracks[0].clips[2];
    c.speed = Speed::from_millis(1500).unwrap_or_default();
    c.in_point = Frames(10);
    let next = ok(
        &tl,
        Op::TrimStart {
            clip_id: s("c"),
            start: Frames(153),
        },
    );
    // 3 frames at 1.5x = 4.5 source frames, rounded down.
    assert_eq!(clip(&next, "c").in_point, Frames(14));

    tl.tracks[0].clips[2].reverse = true;
    let next = ok(
        &tl,
        Op::TrimStart {
            clip_id: s("c"),
            start: Frames(160),
        },
    );
    assert_eq!(
        clip(&next, "c").in_point,
        Frames(10),
        "reverse: start shows the top"
    );
    let next = ok(
        &tl,
        Op::TrimEnd {
            clip_id: s("c"),
            end: Frames(200),
        },
    );
    // Cut 10 frames = 15 source frames off the bottom of the range.
    assert_eq!(clip(&next, "c").in_point, Frames(25));
}

#[test]
fn split_is_exact() {
    let mut tl = sample();
    let c = &mut tl.tracks[0].clips[1]; // b, start 60, duration 90
    c.speed = Speed::from_millis(1500).unwrap_or_default();
    c.in_point = Frames(7);
    c.audio.fade_in = Frames(5);
    c.audio.fade_out = Frames(6);
    let orig = c.clone();
    let next = ok(
        &tl,
        Op::SplitClip {
            clip_id: s("b"),
            at: Frames(101),
            new_id: s("b2"),
        },
    );
    let (l, r) = (clip(&next, "b"), clip(&next, "b2"));
    assert_eq!(l.duration + r.duration, orig.duration);
    assert_eq!(r.start, l.end());
    assert_eq!(l.in_point, orig.in_point);
    // 41 frames at 1.5x = 61.5 -> 61.
    assert_eq!(r.in_point, l.in_point + Frames(61));
    assert_eq!((l.audio.fade_in, l.audio.fade_out), (Frames(5), Frames(0)));
    assert_eq!((r.audio.fade_in, r.audio.fade_out), (Frames(0), Frames(6)));
    // The incoming transition a→b stays with the left part.
    assert_eq!(next.tracks[0].transitions[0].to, "b");

    // Outgoing transitions move to the right part.
    let next = ok(
        &tl,
        Op::SplitClip {
            clip_id: s("a"),
            at: Frames(30),
            new_id: s("a2"),
        },
    );
    assert_eq!(next.tracks[0].transitions[0].from, "a2");

    // Reversed: the right part ends on the original in-point.
    tl.tracks[0].clips[2].reverse = true;
    tl.tracks[0].clips[2].in_point = Frames(100);
    let next = ok(
        &tl,
        Op::SplitClip {
            clip_id: s("c"),
            at: Frames(170),
            new_id: s("c2"),
        },
    );
    assert_eq!(clip(&next, "c2").in_point, Frames(100));
    assert_eq!(clip(&next, "c").in_point, Frames(140));

    for at in [150, 210, 0] {
        assert_eq!(
            err(
                &tl,
                Op::SplitClip {
                    clip_id: s("c"),
                    at: Frames(at),
                    new_id: s("c2")
                }
            )
            .code(),
            "split-outside-clip"
        );
    }
    assert_eq!(
        err(
            &tl,
            Op::SplitClip {
                clip_id: s("c"),
                at: Frames(170),
                new_id: s("a")
            }
        )
        .code(),
        "duplicate-id"
    );
}

#[test]
fn duplicate_and_set_clip() {
    let tl = sample();
    let next = ok(
        &tl,
        Op::DuplicateClip {
            clip_id: s("c"),
            new_id: s("c2"),
            track_id: None,
            start: None,
        },
    );
    assert_eq!(clip(&next, "c2").start, Frames(210));
    invalid(
        &tl,
        Op::DuplicateClip {
            clip_id: s("a"),
            new_id: s("a2"),
            track_id: None,
            start: None,
        },
        "/tracks/0/clips/2/start",
        Code::OverlapWithoutTransition,
    );

    let patch = ClipPatch {
        transform: Some(Transform {
            opacity: 0.5,
            ..Transform::default()
        }),
        reverse: Some(true),
        effects: Some(vec![Effect::Greyscale]),
        ..ClipPatch::default()
    };
    let next = ok(
        &tl,
        Op::SetClip {
            clip_id: s("c"),
            patch,
        },
    );
    let c = clip(&next, "c");
    assert!(c.reverse);
    assert_eq!(c.transform.opacity, 0.5);
    let bad = ClipPatch {
        speed: Some(Speed::from_millis(6000).unwrap_or_default()),
        ..ClipPatch::default()
    };
    invalid(
        &tl,
        Op::SetClip {
            clip_id: s("c"),
            patch: bad,
        },
        "/tracks/0/clips/2/duration",
        Code::BeyondSource,
    );
}

#[test]
fn transitions() {
    let tl = sample();
    let next = ok(
        &tl,
        Op::SetTransition {
            from: s("a"),
            to: s("b"),
            kind: Some(TransitionKind::Iris),
            duration: Some(Frames(20)),
        },
    );
    assert_eq!(next.tracks[0].transitions[0].kind, TransitionKind::Iris);
    invalid(
        &tl,
        Op::SetTransition {
            from: s("a"),
            to: s("b"),
            kind: None,
            duration: Some(Frames(31)),
        },
        "/tracks/0/transitions/0/duration",
        Code::TransitionTooLong,
    );
    let removed = ok(
        &tl,
        Op::Batch {
            ops: vec![
                Op::RemoveTransition {
                    from: s("a"),
                    to: s("b"),
                },
                Op::RemoveClip { clip_id: s("b") },
            ],
        },
    );
    assert!(removed.tracks[0].transitions.is_empty());
    assert_eq!(
        err(
            &tl,
            Op::RemoveTransition {
                from: s("b"),
                to: s("a")
            }
        )
        .code(),
        "transition-not-found"
    );
    assert_eq!(
        err(
            &tl,
            Op::AddTransition {
                transition: Transition {
                    from: s("b"),
                    to: s("a"),
                    kind: TransitionKind::Crossfade,
                    duration: Frames(3)
                }
            }
        )
        .code(),
        "transition-exists"
    );
    // Overlap c with b, then add the transition in one batch.
    let batch = Op::Batch {
        ops: vec![
            Op::MoveClip {
                clip_id: s("c"),
                track_id: None,
                start: Frames(140),
            },
            Op::AddTransition {
                transition: Transition {
                    from: s("b"),
                    to: s("c"),
                    kind: TransitionKind::WipeDown,
                    duration: Frames(10),
                },
            },
        ],
    };
    let next = ok(&tl, batch);
    assert_eq!(next.tracks[0].transitions.len(), 2);
}

#[test]
fn removing_a_needed_transition_is_invalid() {
    invalid(
        &sample(),
        Op::RemoveTransition {
            from: s("a"),
            to: s("b"),
        },
        "/tracks/0/clips/1/start",
        Code::OverlapWithoutTransition,
    );
}

#[test]
fn ripple_delete_closes_the_gap() {
    let tl = sample();
    // c alone: nothing after it moves.
    let next = ok(&tl, Op::RippleDelete { clip_id: s("c") });
    assert!(next.clip("c").is_none());
    // b [60,150) shares [60,90) with a; only [90,150) was b's alone, so c moves left by 60.
    let next = ok(&tl, Op::RippleDelete { clip_id: s("b") });
    assert_eq!(clip(&next, "c").start, Frames(90));
    assert!(next.tracks[0].transitions.is_empty());
    // a [0,90): b starts at 60, so [0,60) closes; b and c move left by 60.
    let next = ok(&tl, Op::RippleDelete { clip_id: s("a") });
    assert_eq!(clip(&next, "b").start, Frames(0));
    assert_eq!(clip(&next, "c").start, Frames(90));
    // Other tracks are untouched.
    assert_eq!(clip(&next, "t").start, Frames(30));
}

#[test]
fn ripple_trim_end_moves_later_clips() {
    let tl = sample();
    let next = ok(
        &tl,
        Op::RippleTrimEnd {
            clip_id: s("b"),
            end: Frames(120),
        },
    );
    assert_eq!(clip(&next, "b").duration, Frames(60));
    assert_eq!(clip(&next, "c").start, Frames(120));
    // Trimming a: its partner b follows, keeping the transition's overlap.
    let next = ok(
        &tl,
        Op::RippleTrimEnd {
            clip_id: s("a"),
            end: Frames(100),
        },
    );
    assert_eq!(clip(&next, "b").start, Frames(70));
    assert_eq!(clip(&next, "c").start, Frames(160));
    invalid(
        &tl,
        Op::RippleTrimEnd {
            clip_id: s("c"),
            end: Frames(460),
        },
        "/tracks/0/clips/2/duration",
        Code::BeyondSource,
    );
}

#[test]
fn batch_is_all_or_nothing() {
    let tl = sample();
    let op = Op::Batch {
        ops: vec![
            Op::RemoveClip { clip_id: s("c") },
            Op::RemoveClip { clip_id: s("zz") },
        ],
    };
    assert_eq!(err(&tl, op).code(), "clip-not-found");
    let ok_batch = Op::Batch {
        ops: vec![
            Op::RemoveClip { clip_id: s("c") },
            Op::AddClip {
                track_id: s("v"),
                clip: video_clip("c", 300, 30),
            },
        ],
    };
    let next = ok(&tl, ok_batch);
    assert_eq!(clip(&next, "c").start, Frames(300));
    ok(&tl, Op::Batch { ops: vec![] });
}

#[test]
fn frame_rate_change_rescales_everything() {
    let tl = sample();
    let patch = OutputPatch {
        frame_rate: Some(Rate::FPS_60),
        ..OutputPatch::default()
    };
    let next = ok(&tl, Op::SetOutput { patch });
    assert_eq!(clip(&next, "b").start, Frames(120));
    assert_eq!(clip(&next, "b").duration, Frames(180));
    assert_eq!(next.tracks[0].transitions[0].duration, Frames(60));

    // 29.97: 10 s of source is 299.7 frames; a clip using all 300 frames at 30 fps would land at
    // 300 frames after rounding, which is within the half-frame slack.
    let mut full = sample();
    full.tracks[0].clips[2].duration = Frames(300);
    full.tracks[0].clips[2].start = Frames(150);
    let patch = OutputPatch {
        frame_rate: Some(Rate::NTSC_29_97),
        ..OutputPatch::default()
    };
    let next = ok(&full, Op::SetOutput { patch });
    assert_eq!(next.output.frame_rate, Rate::NTSC_29_97);
    assert_eq!(clip(&next, "c").duration, Frames(300));

    // 24 fps from 30: 1 s stays 1 s.
    let patch = OutputPatch {
        frame_rate: Some(Rate::FPS_24),
        ..OutputPatch::default()
    };
    let next = ok(&tl, Op::SetOutput { patch });
    assert_eq!(clip(&next, "c").start, Frames(120));
    assert_eq!(clip(&next, "c").duration, Frames(48));
    assert_eq!(next.validate(&cx()), Ok(()));

    let patch = OutputPatch {
        width: Some(1280),
        height: Some(721),
        ..OutputPatch::default()
    };
    invalid(
        &tl,
        Op::SetOutput { patch },
        "/output/height",
        Code::NotEven,
    );
    let patch = OutputPatch {
        width: Some(1280),
        background: Some(crate::timeline::Rgba::WHITE),
        ..OutputPatch::default()
    };
    let next = ok(&tl, Op::SetOutput { patch });
    assert_eq!(next.output.width, 1280);
}

#[test]
fn rescale_shortens_clips_that_would_pass_their_source() {
    // VIDEO is 300 frames at 30 fps, 250 at 25. In-point 3 -> 2.5 -> 3, start 304 -> 253.3 ->
    // 253, end 601 -> 500.8 -> 501: the rescaled clip would use 251 frames, beyond the slack.
    let mut tl = sample();
    let c = &mut tl.tracks[0].clips[2];
    c.in_point = Frames(3);
    c.duration = Frames(297);
    c.start = Frames(304);
    let patch = OutputPatch {
        frame_rate: Some(Rate::FPS_25),
        ..OutputPatch::default()
    };
    let next = ok(&tl, Op::SetOutput { patch });
    let c = clip(&next, "c");
    assert_eq!((c.in_point, c.duration), (Frames(3), Frames(247)));
}

#[test]
fn touches_and_conflicts() {
    let tl = sample();
    let trim_c = Op::TrimEnd {
        clip_id: s("c"),
        end: Frames(200),
    };
    let ripple_a = Op::RippleDelete { clip_id: s("a") };
    let set_t = Op::SetClip {
        clip_id: s("t"),
        patch: ClipPatch::default(),
    };
    let rate = Op::SetOutput {
        patch: OutputPatch {
            frame_rate: Some(Rate::FPS_25),
            ..OutputPatch::default()
        },
    };
    let size = Op::SetOutput {
        patch: OutputPatch {
            width: Some(1280),
            ..OutputPatch::default()
        },
    };
    assert_eq!(trim_c.touches(), vec![Touch::Clip(s("c"))]);
    assert!(tl.ops_conflict(&trim_c, &ripple_a), "ripple moves c");
    assert!(!tl.ops_conflict(&trim_c, &set_t));
    assert!(tl.ops_conflict(&rate, &set_t));
    assert!(!tl.ops_conflict(&size, &set_t));
    assert!(tl.ops_conflict(&size, &size));
    let batch = Op::Batch {
        ops: vec![trim_c.clone(), trim_c.clone()],
    };
    assert_eq!(batch.touches(), vec![Touch::Clip(s("c"))]);
}

#[test]
fn op_serde_shape() {
    let op = Op::MoveClip {
        clip_id: s("c"),
        track_id: None,
        start: Frames(12),
    };
    let json = serde_json::to_value(&op).unwrap_or_default();
    assert_eq!(
        json,
        serde_json::json!({"type": "move_clip", "clip_id": "c", "start": 12})
    );
    let back: Op = serde_json::from_value(json).unwrap_or(Op::Batch { ops: vec![] });
    assert_eq!(back, op);
    assert!(serde_json::from_str::<Op>(r#"{"type":"remove_clip","clip_id":"c","x":1}"#).is_err());
    let e = EditError::ClipNotFound(s("x"));
    assert_eq!(e.code(), "clip-not-found");
    let _ = VIDEO;
}
