use super::*;
use crate::timeline::fixtures::{self, IMAGE, SILENT, VIDEO, cx, sample, title, video_clip};
use crate::timeline::model::{Keyframe, Rgba, Transition};
use crate::timeline::{Interpolation, Speed};

fn errors(tl: &Timeline) -> ValidationErrors {
    match tl.validate(&cx()) {
        Ok(()) => ValidationErrors::default(),
        Err(e) => e,
    }
}

#[track_caller]
fn expect(tl: &Timeline, path: &str, code: Code) {
    let errs = errors(tl);
    assert!(
        errs.has(path, code),
        "expected {code} at {path}, got {errs}"
    );
}

#[test]
fn sample_is_valid() {
    assert_eq!(sample().validate(&cx()), Ok(()));
}

#[test]
fn output_ranges() {
    let mut tl = sample();
    tl.output.width = 1921;
    tl.output.height = 8;
    tl.output.sample_rate = 4000;
    tl.output.channels = 9;
    let errs = errors(&tl);
    assert!(errs.has("/output/width", Code::NotEven));
    assert!(errs.has("/output/height", Code::OutOfRange));
    assert!(errs.has("/output/sample_rate", Code::OutOfRange));
    assert!(errs.has("/output/channels", Code::OutOfRange));
    assert_eq!(errs.0.len(), 4, "{errs}");
}

#[test]
fn reports_every_problem_at_once() {
    let mut tl = sample();
    tl.tracks[0].clips[2].duration = Frames(0);
    tl.tracks[1].volume_db = 40.0;
    tl.tracks[2].clips[0].transform.opacity = 2.0;
    let errs = errors(&tl);
    assert!(errs.has("/tracks/0/clips/2/duration", Code::OutOfRange));
    assert!(errs.has("/tracks/1/volume_db", Code::OutOfRange));
    assert!(errs.has("/tracks/2/clips/0/transform/opacity", Code::OutOfRange));
    assert_eq!(errs.0.len(), 3, "{errs}");
}

#[test]
fn unknown_asset_and_source_mismatch() {
    let mut tl = sample();
    tl.tracks[0].clips[2].source = Source::Asset {
        asset_id: "nope".into(),
    };
    expect(&tl, "/tracks/0/clips/2/source/asset_id", Code::UnknownAsset);
    tl.tracks[0].clips[2].source = Source::Asset {
        asset_id: IMAGE.into(),
    };
    expect(&tl, "/tracks/0/clips/2/source/type", Code::SourceMismatch);
    tl.tracks[0].clips[2].source = Source::Image {
        asset_id: VIDEO.into(),
    };
    expect(&tl, "/tracks/0/clips/2/source/type", Code::SourceMismatch);
    // Silent video cannot go on an audio track.
    tl = sample();
    tl.tracks[1].clips[0].source = Source::Asset {
        asset_id: SILENT.into(),
    };
    tl.tracks[1].clips[0].duration = Frames(30);
    expect(
        &tl,
        "/tracks/1/clips/0/source/asset_id",
        Code::SourceMismatch,
    );
}

#[test]
fn wrong_track_kind() {
    let mut tl = sample();
    tl.tracks[0].clips[2].source = title("x");
    expect(&tl, "/tracks/0/clips/2/source/type", Code::WrongTrackKind);
    tl = sample();
    tl.tracks[1].clips[0].source = Source::Color { rgba: Rgba::BLACK };
    expect(&tl, "/tracks/1/clips/0/source/type", Code::WrongTrackKind);
    tl = sample();
    tl.tracks[2].clips[0].source = Source::Asset {
        asset_id: VIDEO.into(),
    };
    expect(&tl, "/tracks/2/clips/0/source/type", Code::WrongTrackKind);
    tl = sample();
    tl.tracks[2].clips[0].source = Source::Image {
        asset_id: IMAGE.into(),
    };
    assert_eq!(tl.validate(&cx()), Ok(()));
}

#[test]
fn beyond_source_uses_speed_and_half_frame_slack() {
    // VIDEO is 10 s = 300 frames at 30 fps.
    let mut tl = sample();
    let c = &mut tl.tracks[0].clips[2];
    c.in_point = Frames(240);
    assert_eq!(tl.validate(&cx()), Ok(()));
    tl.tracks[0].clips[2].in_point = Frames(241);
    expect(&tl, "/tracks/0/clips/2/duration", Code::BeyondSource);
    let c = &mut tl.tracks[0].clips[2];
    c.in_point = Frames(0);
    c.speed = Speed::from_millis(5000).unwrap_or_default();
    assert_eq!(tl.validate(&cx()), Ok(()), "60 frames at 5x is 300");
    tl.tracks[0].clips[2].speed = Speed::from_millis(5008).unwrap_or_default();
    assert_eq!(
        tl.validate(&cx()),
        Ok(()),
        "300.48 frames: within half a frame"
    );
    tl.tracks[0].clips[2].speed = Speed::from_millis(5009).unwrap_or_default();
    expect(&tl, "/tracks/0/clips/2/duration", Code::BeyondSource);
    // Stills never run out.
    tl = sample();
    tl.tracks[2].clips[0].duration = Frames(100_000);
    assert_eq!(tl.validate(&cx()), Ok(()));
}

#[test]
fn overlaps_need_transitions() {
    let mut tl = sample();
    tl.tracks[0].transitions.clear();
    expect(
        &tl,
        "/tracks/0/clips/1/start",
        Code::OverlapWithoutTransition,
    );
    tl = sample();
    tl.tracks[0].clips.push(video_clip("d", 70, 10));
    let errs = errors(&tl);
    assert!(
        errs.has("/tracks/0/clips/3/start", Code::TooManyOverlaps),
        "{errs}"
    );
    assert!(errs.has("/tracks/0/clips/3/start", Code::OverlapWithoutTransition));
}

#[test]
fn transition_rules() {
    let mut tl = sample();
    tl.tracks[0].transitions[0].duration = Frames(31);
    expect(
        &tl,
        "/tracks/0/transitions/0/duration",
        Code::TransitionTooLong,
    );
    tl.tracks[0].transitions[0].duration = Frames(0);
    expect(&tl, "/tracks/0/transitions/0/duration", Code::OutOfRange);
    tl = sample();
    tl.tracks[0].transitions[0].to = "zz".into();
    expect(&tl, "/tracks/0/transitions/0/to", Code::UnknownClip);
    tl = sample();
    tl.tracks[0].transitions.push(Transition {
        from: "b".into(),
        to: "c".into(),
        kind: TransitionKind::WipeLeft,
        duration: Frames(5),
    });
    expect(
        &tl,
        "/tracks/0/transitions/1",
        Code::TransitionWithoutOverlap,
    );
    tl.tracks[0].transitions[1] = Transition {
        from: "b".into(),
        to: "a".into(),
        kind: TransitionKind::Iris,
        duration: Frames(5),
    };
    let errs = errors(&tl);
    assert!(
        errs.has("/tracks/0/transitions/1", Code::DuplicateTransition),
        "{errs}"
    );
    assert!(
        errs.has("/tracks/0/transitions/1", Code::TransitionOrder),
        "{errs}"
    );
    // Audio tracks only crossfade.
    tl = sample();
    let m = &mut tl.tracks[1];
    m.clips[0].duration = Frames(100);
    let mut s2 = m.clips[0].clone();
    s2.id = "s2".into();
    s2.start = Frames(90);
    m.clips.push(s2);
    m.transitions.push(Transition {
        from: "s".into(),
        to: "s2".into(),
        kind: TransitionKind::Clock,
        duration: Frames(10),
    });
    expect(&tl, "/tracks/1/transitions/0/kind", Code::WrongTrackKind);
    tl.tracks[1].transitions[0].kind = TransitionKind::Crossfade;
    assert_eq!(tl.validate(&cx()), Ok(()));
}

#[test]
fn ids() {
    let mut tl = sample();
    tl.tracks[1].clips[0].id = "a".into();
    expect(&tl, "/tracks/1/clips/0/id", Code::DuplicateId);
    tl = sample();
    tl.tracks[2].id = "v".into();
    expect(&tl, "/tracks/2/id", Code::DuplicateId);
    tl = sample();
    tl.tracks[0].clips[2].id = String::new();
    expect(&tl, "/tracks/0/clips/2/id", Code::BadId);
}

#[test]
fn limits() {
    let mut tl = sample();
    for i in 0..6 {
        tl.tracks
            .push(Track::new(format!("x{i}"), TrackKind::Video));
    }
    expect(&tl, "/tracks", Code::TooManyTracks);
    tl = sample();
    for i in 0..50 {
        tl.tracks[0]
            .clips
            .push(video_clip(&format!("k{i}"), 300 + 10 * i, 10));
    }
    expect(&tl, "/tracks", Code::TooManyClips);
    tl = sample();
    tl.tracks[0].clips[2].start = Frames(3600 * 30);
    expect(&tl, "/tracks/0/clips/2/duration", Code::TimelineTooLong);
}

#[test]
fn keyframes() {
    let mut tl = sample();
    let kf = |t: i64, v: f64| Keyframe {
        property: AnimProp::Opacity,
        time: Frames(t),
        value: v,
        interpolation: Interpolation::EaseInOut,
    };
    tl.tracks[0].clips[2].keyframes = vec![kf(0, 0.0), kf(60, 1.0)];
    assert_eq!(tl.validate(&cx()), Ok(()));
    tl.tracks[0].clips[2].keyframes = vec![kf(0, 0.0), kf(61, 1.5), kf(0, 1.0)];
    let errs = errors(&tl);
    assert!(errs.has("/tracks/0/clips/2/keyframes/1/time", Code::OutOfRange));
    assert!(errs.has("/tracks/0/clips/2/keyframes/1/value", Code::OutOfRange));
    assert!(errs.has("/tracks/0/clips/2/keyframes/2", Code::DuplicateKeyframe));
    tl.tracks[0].clips[2].keyframes = (0..5).map(|t| kf(t, 0.5)).collect();
    expect(&tl, "/tracks/0/clips/2/keyframes", Code::TooManyKeyframes);
}

#[test]
fn effects_transform_audio_title() {
    let mut tl = sample();
    let c = &mut tl.tracks[0].clips[2];
    c.effects = vec![
        Effect::Brightness { value: 1.5 },
        Effect::Greyscale,
        Effect::Greyscale,
        Effect::Blur { radius: 5.0 },
    ];
    c.transform.crop_left = 0.6;
    c.transform.crop_right = 0.5;
    c.transform.scale = f64::NAN;
    c.audio.fade_in = Frames(40);
    c.audio.fade_out = Frames(30);
    let errs = errors(&tl);
    let p = "/tracks/0/clips/2";
    assert!(
        errs.has(&format!("{p}/effects"), Code::TooManyEffects),
        "{errs}"
    );
    assert!(errs.has(&format!("{p}/effects/0/value"), Code::OutOfRange));
    assert!(errs.has(&format!("{p}/effects/2"), Code::DuplicateEffect));
    assert!(errs.has(&format!("{p}/transform/crop_right"), Code::CropTooLarge));
    assert!(errs.has(&format!("{p}/transform/scale"), Code::OutOfRange));
    assert!(errs.has(&format!("{p}/audio/fade_out"), Code::FadeTooLong));

    tl = sample();
    if let Source::Title(t) = &mut tl.tracks[2].clips[0].source {
        t.text = "  ".into();
        t.weight = 950;
        t.fade_in = Frames(-1);
    }
    let errs = errors(&tl);
    let p = "/tracks/2/clips/0/source";
    assert!(errs.has(&format!("{p}/text"), Code::EmptyText), "{errs}");
    assert!(errs.has(&format!("{p}/weight"), Code::OutOfRange));
    assert!(errs.has(&format!("{p}/fade_in"), Code::OutOfRange));
    if let Source::Title(t) = &mut tl.tracks[2].clips[0].source {
        t.text = "x".repeat(101);
    }
    expect(&tl, "/tracks/2/clips/0/source/text", Code::TextTooLong);
}

#[test]
fn codes_serialise_as_their_names() {
    for code in [
        Code::OverlapWithoutTransition,
        Code::BeyondSource,
        Code::NotOnGrid,
    ] {
        let json = serde_json::to_string(&code).unwrap_or_default();
        assert_eq!(json, format!("\"{}\"", code.as_str()));
    }
    let _ = fixtures::LIMITS.clone();
}
