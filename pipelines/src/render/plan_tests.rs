use super::*;
use crate::timeline::{
    AnimProp, Clip, Frames, Interpolation, Keyframe, Output, Rate, Rgba, Source, Speed, Timeline,
    Track, TrackKind, Transition, TransitionKind,
};

fn media(id: &str) -> Option<SourceMedia> {
    let base = SourceMedia {
        path: PathBuf::from(format!("/m/{id}.mp4")),
        width: 1920,
        height: 1080,
        fps_num: 30,
        fps_den: 1,
        par_num: 1,
        par_den: 1,
        rotation: 0,
        has_video: true,
        has_audio: true,
        duration_ns: 60_000_000_000,
        is_image: false,
    };
    match id {
        "a" | "b" => Some(base),
        "rot" => Some(SourceMedia {
            rotation: 90,
            ..base
        }),
        "sd" => Some(SourceMedia {
            width: 720,
            height: 576,
            par_num: 16,
            par_den: 15,
            ..base
        }),
        "silent" => Some(SourceMedia {
            has_audio: false,
            ..base
        }),
        _ => None,
    }
}

fn clip(id: &str, asset: &str, start: i64, in_point: i64, dur: i64) -> Clip {
    let mut c = Clip::new(
        id,
        Source::Asset {
            asset_id: asset.into(),
        },
        Frames(start),
        Frames(dur),
    );
    c.in_point = Frames(in_point);
    c
}

fn tl(tracks: Vec<Track>) -> Timeline {
    Timeline {
        output: Output {
            frame_rate: Rate::FPS_30,
            ..Output::default()
        },
        tracks,
    }
}

fn video(id: &str, clips: Vec<Clip>) -> Track {
    let mut t = Track::new(id, TrackKind::Video);
    t.clips = clips;
    t
}

fn p(t: &Timeline) -> RenderPlan {
    plan(t, &media, None).expect("plan")
}

fn spans(p: &RenderPlan) -> Vec<(i64, i64, Vec<&str>)> {
    p.spans
        .iter()
        .map(|s| {
            (
                s.start,
                s.frames,
                s.layers.iter().map(|l| l.clip_id.as_str()).collect(),
            )
        })
        .collect()
}

#[test]
fn cuts_splits_and_gaps_make_spans() {
    let t = tl(vec![video(
        "v",
        vec![
            clip("x", "a", 0, 60, 30),
            clip("y", "a", 30, 90, 30),
            clip("z", "b", 90, 0, 30),
        ],
    )]);
    let plan = p(&t);
    assert_eq!(plan.frames, 120);
    assert_eq!(
        spans(&plan),
        vec![
            (0, 30, vec!["x"]),
            (30, 30, vec!["y"]),
            (60, 30, vec![]),
            (90, 30, vec!["z"])
        ]
    );
    let y = &plan.spans[1].layers[0];
    let tm = y.timing.as_ref().expect("timing");
    assert_eq!(tm.first_ns, 3_000_000_000);
    assert_eq!(tm.last_ns, 3_966_666_666);
    assert!(y.is_full_frame(&plan.output));
    assert_eq!(plan.spans[3].layers[0].clip_offset, 0);
}

#[test]
fn errors_have_codes() {
    let empty = tl(vec![video("v", vec![])]);
    assert_eq!(
        plan(&empty, &media, None).err().map(|e| e.code()),
        Some("empty-timeline")
    );
    let t = tl(vec![video("v", vec![clip("x", "nope", 0, 0, 10)])]);
    assert_eq!(
        plan(&t, &media, None).err().map(|e| e.code()),
        Some("missing-source")
    );
    let t = tl(vec![video("v", vec![clip("x", "a", 0, 0, 10)])]);
    for r in [(5, 5), (-1, 3), (0, 11), (7, 3)] {
        assert_eq!(
            plan(&t, &media, Some(r)).err().map(|e| e.code()),
            Some("invalid-range"),
            "{r:?}"
        );
    }
    // An animated crop is still refused; any angle and effects are planned.
    let mut c = clip("x", "a", 0, 0, 10);
    c.keyframes = [(0, 0.0), (5, 0.2)]
        .into_iter()
        .map(|(t, v)| crate::timeline::Keyframe {
            property: AnimProp::CropTop,
            time: Frames(t),
            value: v,
            interpolation: Interpolation::Linear,
        })
        .collect();
    let e = plan(&tl(vec![video("v", vec![c])]), &media, None).expect_err("unsupported");
    assert_eq!(e.code(), "unsupported");
    let mut c = clip("x", "a", 0, 0, 10);
    c.transform.rotation = 45.0;
    c.transform.scale = 0.5;
    c.effects = vec![crate::timeline::Effect::Greyscale];
    let p = plan(&tl(vec![video("v", vec![c])]), &media, None).expect("plan");
    let l = &p.spans[0].layers[0];
    let t = l.geometry.turned.expect("turned");
    assert_eq!(t.angle, 45.0);
    // The canvas is a square as wide as the picture's diagonal, centred on it.
    let r = l.geometry.rect;
    assert_eq!(r.width, r.height);
    let diag = f64::from(t.width).hypot(f64::from(t.height));
    assert!(f64::from(r.width) >= diag && f64::from(r.width) < diag + 3.0);
    assert_eq!(l.effects, vec![crate::timeline::Effect::Greyscale]);
}

#[test]
fn overlapping_tracks_stack_bottom_first() {
    let mut pip = clip("pip", "b", 10, 0, 10);
    pip.transform.scale = 0.25;
    pip.transform.x = 0.25;
    pip.transform.y = -0.25;
    let t = tl(vec![
        video("v1", vec![clip("main", "a", 0, 0, 40)]),
        video("v2", vec![pip]),
    ]);
    let plan = p(&t);
    assert_eq!(
        spans(&plan),
        vec![
            (0, 10, vec!["main"]),
            (10, 10, vec!["main", "pip"]),
            (20, 20, vec!["main"])
        ]
    );
    let pip = &plan.spans[1].layers[1];
    // 480x270 centred at (1440, 270): edges 135..405 rounded to even rows.
    assert_eq!(
        pip.geometry.rect,
        Rect {
            x: 1200,
            y: 136,
            width: 480,
            height: 270
        }
    );
    // main continues with the right source time.
    assert_eq!(plan.spans[1].layers[0].clip_offset, 10);
}

#[test]
fn hidden_and_muted_tracks() {
    let mut v2 = video("v2", vec![clip("hid", "b", 0, 0, 10)]);
    v2.hidden = true;
    let mut v1 = video("v1", vec![clip("main", "a", 0, 0, 10)]);
    v1.muted = true;
    let plan = p(&tl(vec![v1, v2]));
    assert_eq!(spans(&plan), vec![(0, 10, vec!["main"])]);
    // The hidden track is still heard; the muted one is not.
    let heard: Vec<_> = plan.audio.iter().map(|a| a.clip_id.as_str()).collect();
    assert_eq!(heard, ["hid"]);
}

#[test]
fn transitions_show_to_from_its_start_and_hide_from_after() {
    let mut v = video(
        "v",
        vec![clip("from", "a", 0, 0, 60), clip("to", "b", 30, 5, 60)],
    );
    v.transitions = vec![Transition {
        from: "from".into(),
        to: "to".into(),
        kind: TransitionKind::Crossfade,
        duration: Frames(10),
    }];
    let plan = p(&tl(vec![v]));
    assert_eq!(
        spans(&plan),
        vec![
            (0, 30, vec!["from"]),
            (30, 10, vec!["from", "to"]),
            (40, 50, vec!["to"])
        ]
    );
    let s = &plan.spans[1];
    let (f, t) = (&s.layers[0], &s.layers[1]);
    let tr = t.transition.as_ref().expect("transition");
    assert_eq!(tr.role, Role::Incoming);
    assert!((tr.p0 - 0.05).abs() < 1e-9 && (tr.p1 - 0.95).abs() < 1e-9);
    assert!((t.alpha_at(0) - 0.05).abs() < 1e-9);
    assert_eq!(f.alpha_at(0), 1.0);
    assert_eq!(f.transition.as_ref().map(|t| t.role), Some(Role::Outgoing));
    // Audio: from ends with the transition, fading out; to fades in.
    let from = plan
        .audio
        .iter()
        .find(|a| a.clip_id == "from")
        .expect("from");
    assert_eq!((from.start, from.frames), (0, 40));
    assert!((from.gain_at(30.0) - 1.0).abs() < 1e-9);
    assert!((from.gain_at(35.0) - 0.5).abs() < 1e-9);
    assert!(from.gain_at(40.0).abs() < 1e-9);
    let to = plan.audio.iter().find(|a| a.clip_id == "to").expect("to");
    assert!((to.gain_at(5.0) - 0.5).abs() < 1e-9);
    assert_eq!(to.source_start_ns, 166_666_666);

    // A range cutting through the transition.
    let r = plan_range(&plan, 35, 50);
    let want: Vec<(i64, i64, Vec<String>)> = vec![
        (0, 5, vec!["from".into(), "to".into()]),
        (5, 10, vec!["to".into()]),
    ];
    assert_eq!(r.0, want);
    assert!((r.1 - 0.55).abs() < 1e-9);
}

fn plan_range(full: &RenderPlan, a: i64, b: i64) -> (Vec<(i64, i64, Vec<String>)>, f64) {
    let _ = full;
    let mut v = video(
        "v",
        vec![clip("from", "a", 0, 0, 60), clip("to", "b", 30, 5, 60)],
    );
    v.transitions = vec![Transition {
        from: "from".into(),
        to: "to".into(),
        kind: TransitionKind::Crossfade,
        duration: Frames(10),
    }];
    let plan = plan(&tl(vec![v]), &media, Some((a, b))).expect("plan");
    let p0 = plan.spans[0].layers[1]
        .transition
        .as_ref()
        .map_or(0.0, |t| t.p0);
    (
        plan.spans
            .iter()
            .map(|s| {
                (
                    s.start,
                    s.frames,
                    s.layers.iter().map(|l| l.clip_id.clone()).collect(),
                )
            })
            .collect(),
        p0,
    )
}

#[test]
fn speed_and_reverse_map_source_times() {
    let mut fast = clip("fast", "a", 0, 30, 10);
    fast.speed = Speed::from_f64(2.5).expect("speed");
    let mut back = clip("back", "a", 10, 30, 10);
    back.reverse = true;
    let mut slow = clip("slow", "a", 20, 0, 10);
    slow.speed = Speed::from_f64(0.5).expect("speed");
    for c in [&mut fast, &mut back, &mut slow] {
        c.audio.mute = true;
    }
    let plan = p(&tl(vec![video("v", vec![fast, back, slow])]));
    let t = |i: usize| plan.spans[i].layers[0].timing.clone().expect("timing");
    // fast: 30 + 2.5k frames at 30 fps.
    assert_eq!(t(0).source_ns(0), 1_000_000_000);
    assert_eq!(t(0).source_ns(1), 1_083_333_333);
    assert_eq!(t(0).source_ns(9), 1_750_000_000);
    // back: first frame shows 30 + 9, last shows 30.
    assert_eq!(t(1).source_ns(0), 1_300_000_000);
    assert_eq!(t(1).source_ns(9), 1_000_000_000);
    assert_eq!(t(1).first_ns, 1_300_000_000);
    assert_eq!(t(1).last_ns, 1_000_000_000);
    // slow: half frames.
    assert_eq!(t(2).source_ns(3), 50_000_000);
}

#[test]
fn sound_at_speed_or_reversed_plays_the_stretch_the_picture_shows() {
    // 30 fps output; in-point 30 frames (1 s).
    let mut fast = clip("fast", "a", 0, 30, 10);
    fast.speed = Speed::from_f64(2.0).expect("speed");
    let mut back = clip("back", "a", 10, 30, 10);
    back.reverse = true;
    let mut slow = clip("slow", "a", 20, 30, 10);
    slow.speed = Speed::from_f64(0.5).expect("speed");
    slow.reverse = true;
    let plan = p(&tl(vec![video("v", vec![fast, back, slow])]));
    let a = |id: &str| {
        plan.audio
            .iter()
            .find(|s| s.clip_id == id)
            .cloned()
            .expect("segment")
    };
    let ns = |f: i64| f * 1_000_000_000 / 30;
    // 10 frames at 2x: source 30..50.
    let f = a("fast");
    assert!(f.retimed() && !f.reverse && f.speed_milli == 2000);
    assert_eq!((f.source_start_ns, f.source_end_ns), (ns(30), ns(50)));
    // Reversed at 1x: source 30..40 played from 40 back to 30.
    let b = a("back");
    assert!(b.retimed() && b.reverse);
    assert_eq!((b.source_start_ns, b.source_end_ns), (ns(30), ns(40)));
    // Half speed, reversed: source 30..35.
    let s = a("slow");
    assert_eq!(s.source_start_ns, ns(30));
    assert!((s.source_end_ns - ns(35)).abs() <= 1);
    // A range that starts inside a reversed clip plays the earlier source part.
    let r = clips_plan(&[("back", 10, 30, 10, true)], (13, 18));
    let seg = &r.audio[0];
    assert_eq!((seg.start, seg.frames), (0, 5));
    // Clip frames 3..8 of 10 reversed show source 30 + (10-8)..30 + (10-3).
    assert!((seg.source_start_ns - ns(32)).abs() <= 1);
    assert!((seg.source_end_ns - ns(37)).abs() <= 1);
    // Plain sound is unchanged.
    let plain = clips_plan(&[("p", 0, 30, 10, false)], (0, 10));
    assert!(!plain.audio[0].retimed());
    assert_eq!(plain.audio[0].source_start_ns, ns(30));
}

fn clips_plan(clips: &[(&str, i64, i64, i64, bool)], range: (i64, i64)) -> RenderPlan {
    let media = |id: &str| media(id);
    let list = clips
        .iter()
        .map(|(id, start, inp, dur, rev)| {
            let mut c = clip(id, "a", *start, *inp, *dur);
            c.reverse = *rev;
            c
        })
        .collect();
    plan(&tl(vec![video("v", list)]), &media, Some(range)).expect("plan")
}

#[test]
fn rotation_metadata_and_pixel_aspect_shape_the_geometry() {
    let plan = p(&tl(vec![video(
        "v",
        vec![clip("r", "rot", 0, 0, 10), clip("s", "sd", 10, 0, 10)],
    )]));
    // 1920x1080 turned upright is 1080x1920: contained in 1920x1080 it is 608x1080 (even).
    let g = &plan.spans[0].layers[0].geometry;
    assert_eq!(g.rect.height, 1080);
    assert_eq!(g.rect.width, 608);
    assert_eq!(g.rect.x, 656);
    // 720x576 at 16/15 pixels is 768x576 shown: 1440x1080 pillarboxed.
    let g = &plan.spans[1].layers[0].geometry;
    assert_eq!(
        g.rect,
        Rect {
            x: 240,
            y: 0,
            width: 1440,
            height: 1080
        }
    );
    // The clip's own quarter turn on a landscape source.
    let mut c = clip("t", "a", 0, 0, 10);
    c.transform.rotation = -90.0;
    let plan = p(&tl(vec![video("v", vec![c])]));
    let g = &plan.spans[0].layers[0].geometry;
    assert_eq!(g.quarter_turns, 3);
    // Fitted 1920x1080 then turned: 1080 wide, 1920 tall, cut to the frame's 1080 rows.
    assert_eq!(g.rect.width, 1080);
    assert_eq!(g.rect.height, 1080);
    assert!(g.crop.left > 0 && g.crop.right > 0, "{:?}", g.crop);
}

#[test]
fn fit_modes_and_crop() {
    let mk = |fit: Fit| {
        let mut c = clip("x", "sd", 0, 0, 10);
        c.transform.fit = fit;
        let plan = p(&tl(vec![video("v", vec![c])]));
        plan.spans[0].layers[0].geometry.clone()
    };
    assert_eq!(mk(Fit::Contain).rect.width, 1440);
    let cover = mk(Fit::Cover);
    assert_eq!(
        cover.rect,
        Rect {
            x: 0,
            y: 0,
            width: 1920,
            height: 1080
        }
    );
    // Cover cuts the overflow in the source: 576 rows shown as 1440 of 1080 → 432 rows kept.
    assert_eq!(cover.crop.top + cover.crop.bottom, 144);
    assert_eq!(
        mk(Fit::Stretch).rect,
        Rect {
            x: 0,
            y: 0,
            width: 1920,
            height: 1080
        }
    );
    let mut c = clip("x", "a", 0, 0, 10);
    c.transform.crop_left = 0.25;
    c.transform.crop_right = 0.25;
    let plan = p(&tl(vec![video("v", vec![c])]));
    let g = &plan.spans[0].layers[0].geometry;
    assert_eq!(g.crop.left, 480);
    assert_eq!(g.crop.right, 480);
    assert_eq!(g.rect.width, 960);
}

#[test]
fn keyframes_are_sampled_per_frame() {
    let mut c = clip("x", "a", 0, 0, 20);
    c.transform.scale = 0.5;
    c.keyframes = vec![
        Keyframe {
            property: AnimProp::X,
            time: Frames(0),
            value: 0.0,
            interpolation: Interpolation::Linear,
        },
        Keyframe {
            property: AnimProp::X,
            time: Frames(10),
            value: 0.25,
            interpolation: Interpolation::Hold,
        },
        Keyframe {
            property: AnimProp::Opacity,
            time: Frames(0),
            value: 0.0,
            interpolation: Interpolation::EaseIn,
        },
        Keyframe {
            property: AnimProp::Opacity,
            time: Frames(10),
            value: 1.0,
            interpolation: Interpolation::Linear,
        },
    ];
    let plan = p(&tl(vec![video("v", vec![c])]));
    let l = &plan.spans[0].layers[0];
    assert_eq!(l.rect_at(0).x, 480);
    assert_eq!(l.rect_at(5).x, 720);
    assert_eq!(l.rect_at(10).x, 960);
    assert_eq!(l.rect_at(19).x, 960);
    assert!((l.alpha_at(5) - 0.25).abs() < 1e-9);
    assert_eq!(l.alpha_at(15), 1.0);
    // Animated crop is refused.
    let mut c = clip("x", "a", 0, 0, 20);
    c.keyframes = vec![
        Keyframe {
            property: AnimProp::CropLeft,
            time: Frames(0),
            value: 0.0,
            interpolation: Interpolation::Linear,
        },
        Keyframe {
            property: AnimProp::CropLeft,
            time: Frames(5),
            value: 0.2,
            interpolation: Interpolation::Linear,
        },
    ];
    assert_eq!(
        super::plan(&tl(vec![video("v", vec![c])]), &media, None)
            .err()
            .map(|e| e.code()),
        Some("unsupported")
    );
}

#[test]
fn audio_tracks_fades_and_volume_keyframes() {
    let mut music = clip("bed", "a", 0, 0, 60);
    music.audio.volume_db = -6.0;
    music.audio.fade_in = Frames(30);
    music.keyframes = vec![
        Keyframe {
            property: AnimProp::VolumeDb,
            time: Frames(40),
            value: -6.0,
            interpolation: Interpolation::Linear,
        },
        Keyframe {
            property: AnimProp::VolumeDb,
            time: Frames(50),
            value: -26.0,
            interpolation: Interpolation::Linear,
        },
    ];
    let mut t = Track::new("m", TrackKind::Audio);
    t.volume_db = -3.0;
    t.clips = vec![music];
    let plan = p(&tl(vec![
        video("v", vec![clip("x", "silent", 0, 0, 60)]),
        t,
    ]));
    assert!(plan.spans.iter().all(|s| s.layers.len() == 1));
    assert_eq!(plan.audio.len(), 1);
    let a = &plan.audio[0];
    let db = |f: f64| 20.0 * a.gain_at(f).log10();
    assert!((a.gain_at(15.0) - 0.5 * 10f64.powf(-9.0 / 20.0)).abs() < 1e-9);
    assert!((db(35.0) + 9.0).abs() < 1e-9);
    assert!((db(55.0) + 29.0).abs() < 1e-9);
    assert!((db(45.0) + 19.0).abs() < 1e-9);
    // Thinned: constant stretches need no points.
    assert!(a.gain.len() < 20, "{}", a.gain.len());
}

#[test]
fn stills_and_titles_are_layers() {
    let mut o = Track::new("o", TrackKind::Overlay);
    let colour = Clip::new(
        "c",
        Source::Color {
            rgba: Rgba::opaque(255, 0, 0),
        },
        Frames(0),
        Frames(10),
    );
    o.clips = vec![colour];
    let plan = p(&tl(vec![video("v", vec![clip("x", "a", 0, 0, 10)]), o]));
    let l = &plan.spans[0].layers[1];
    assert!(matches!(l.source, LayerSource::Color { .. }));
    assert!(!l.is_picture());
    let json = serde_json::to_value(&plan).expect("json");
    assert_eq!(json["spans"][0]["layers"][1]["source"]["type"], "color");
    let text = plan.to_string();
    assert!(text.contains("colour #FF0000"), "{text}");
}
