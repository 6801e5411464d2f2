//! Frame-exact checks of rendered pictures: cuts, splits, gaps, ranges, transitions, speed,
//! frame-rate conversion, transforms, stills and titles. Sources carry their frame index.

mod common;

use common::*;
use nve_pipelines::timeline::{Frames, Speed, TrackKind, Transition, TransitionKind};

struct Media {
    _dir: tempfile::TempDir,
    lib: Library,
}

fn media_set() -> Media {
    init();
    let dir = tempfile::tempdir().expect("tempdir");
    let a = indexed_clip(
        dir.path(),
        "a.mp4",
        (25, 1),
        100,
        tag_of(0),
        Some((440, 0.25)),
    );
    let b = indexed_clip(dir.path(), "b.mp4", (25, 1), 100, tag_of(1), None);
    let lib = Library(vec![("a".into(), media(&a)), ("b".into(), media(&b))]);
    Media { _dir: dir, lib }
}

#[test]
fn cuts_splits_gaps_and_ranges_are_frame_exact() {
    let m = media_set();
    let tl = timeline(
        output(320, 180, 25),
        vec![track(
            "v",
            TrackKind::Video,
            vec![
                asset("a", 0, 5, 20),
                asset("a", 20, 25, 10),
                asset("b", 40, 3, 20),
            ],
        )],
    );
    let plan = plan_of(&tl, &m.lib, None);
    let out = capture(&plan).expect("render");
    assert_eq!(out.frames.len(), 60);
    let expect = |f: i64| -> Option<(u32, u8)> {
        match f {
            0..20 => Some((5 + f as u32, tag_of(0))),
            20..30 => Some((25 + (f - 20) as u32, tag_of(0))),
            30..40 => None,
            _ => Some((3 + (f - 40) as u32, tag_of(1))),
        }
    };
    for (f, fr) in out.frames.iter().enumerate() {
        match expect(f as i64) {
            Some((idx, tag)) => {
                assert_eq!(fr.index(), Some(idx), "frame {f}");
                assert!(
                    (fr.tag() - f64::from(tag)).abs() < 4.0,
                    "frame {f} tag {}",
                    fr.tag()
                );
            }
            None => assert!(
                fr.mean(0, 0, 320, 180) < 20.0,
                "frame {f} should be background"
            ),
        }
    }
    // A range through the split and into the gap and the last clip.
    let plan = plan_of(&tl, &m.lib, Some((15, 45)));
    let out = capture(&plan).expect("range render");
    assert_eq!(out.frames.len(), 30);
    for (i, fr) in out.frames.iter().enumerate() {
        let f = i as i64 + 15;
        match expect(f) {
            Some((idx, _)) => assert_eq!(fr.index(), Some(idx), "range frame {i}"),
            None => assert!(fr.mean(0, 0, 320, 180) < 20.0),
        }
    }
}

fn transition(from: &str, to: &str, kind: TransitionKind, d: i64) -> Transition {
    Transition {
        from: from.into(),
        to: to.into(),
        kind,
        duration: Frames(d),
    }
}

#[test]
fn crossfade_mixes_and_hides_the_tail_of_from() {
    let m = media_set();
    let mut v = track(
        "v",
        TrackKind::Video,
        vec![asset("a", 0, 0, 40), asset("b", 20, 10, 40)],
    );
    v.transitions = vec![transition("a@0", "b@20", TransitionKind::Crossfade, 10)];
    let tl = timeline(output(320, 180, 25), vec![v]);
    let out = capture(&plan_of(&tl, &m.lib, None)).expect("render");
    assert_eq!(out.frames.len(), 60);
    let (ta, tb) = (f64::from(tag_of(0)), f64::from(tag_of(1)));
    for (f, fr) in out.frames.iter().enumerate() {
        let f = f as i64;
        if f < 20 {
            assert_eq!(fr.index(), Some(f as u32), "frame {f}");
        } else if f < 30 {
            // Progress (j + 0.5) / 10 of b over a.
            let p = ((f - 20) as f64 + 0.5) / 10.0;
            let want = ta * (1.0 - p) + tb * p;
            assert!(
                (fr.tag() - want).abs() < 3.0,
                "frame {f}: {} vs {want}",
                fr.tag()
            );
        } else {
            // b from its in-point 10 + (f - 20); a's overlap tail (30..40) is not shown.
            assert_eq!(fr.index(), Some(10 + (f - 20) as u32), "frame {f}");
            assert!((fr.tag() - tb).abs() < 3.0);
        }
    }
    let mid = &out.frames[25];
    assert!(mid.tag() > ta + 20.0 && mid.tag() < tb - 20.0);
}

#[test]
fn frame_rate_conversion_and_speed_follow_the_floor_rule() {
    let m = media_set();
    // 25 fps sources on a 30 fps grid: frame k shows source frame floor(k * 25 / 30).
    let mut slow = asset("b", 30, 0, 20);
    slow.speed = Speed::from_f64(0.5).expect("speed");
    let mut fast = asset("a", 50, 0, 20);
    fast.speed = Speed::from_f64(2.0).expect("speed");
    // Sound at another speed is refused; the picture is what is checked here.
    fast.audio.mute = true;
    let mut rev = asset("b", 70, 30, 15);
    rev.reverse = true;
    let tl = timeline(
        output(320, 180, 30),
        vec![track(
            "v",
            TrackKind::Video,
            vec![asset("a", 0, 0, 30), slow, fast, rev],
        )],
    );
    let plan = plan_of(&tl, &m.lib, None);
    let out = capture(&plan).expect("render");
    assert_eq!(out.frames.len(), 85);
    // Source position p (output frames at 30 fps) → the 25 fps frame on screen.
    let shown = |p_milli: i64| (p_milli * 25 / (30 * 1000)) as u32;
    for (f, fr) in out.frames.iter().enumerate() {
        let f = f as i64;
        let want = match f {
            0..30 => shown(f * 1000),
            30..50 => shown((f - 30) * 500),
            50..70 => shown((f - 50) * 2000),
            _ => shown(30_000 + (15 - 1 - (f - 70)) * 1000),
        };
        assert_eq!(fr.index(), Some(want), "frame {f}");
    }
}

#[test]
fn transforms_and_keyframes_place_the_picture() {
    let m = media_set();
    // Half size, centre moved right by a quarter of the width: 160x90 at (160, 46)..
    let mut pip = asset("b", 0, 0, 20);
    pip.transform.scale = 0.5;
    pip.transform.x = 0.25;
    let mut moving = asset("b", 0, 0, 20);
    moving.id = "moving".into();
    moving.transform.scale = 0.5;
    moving.keyframes = vec![
        nve_pipelines::timeline::Keyframe {
            property: nve_pipelines::timeline::AnimProp::X,
            time: Frames(0),
            value: -0.25,
            interpolation: nve_pipelines::timeline::Interpolation::Linear,
        },
        nve_pipelines::timeline::Keyframe {
            property: nve_pipelines::timeline::AnimProp::X,
            time: Frames(10),
            value: 0.25,
            interpolation: nve_pipelines::timeline::Interpolation::Linear,
        },
    ];
    let tl = timeline(
        output(320, 180, 25),
        vec![
            track("v1", TrackKind::Video, vec![asset("a", 0, 0, 20)]),
            track("v2", TrackKind::Video, vec![pip]),
        ],
    );
    let out = capture(&plan_of(&tl, &m.lib, None)).expect("render");
    assert_eq!(out.frames.len(), 20);
    for (f, fr) in out.frames.iter().enumerate() {
        // Background picture a on the left half, pip b on the right half, lower part.
        assert_eq!(
            fr.index_in(160, 44, 160, 90),
            Some(f as u32),
            "pip frame {f}"
        );
        assert!((fr.mean(170, 110, 310, 130) - f64::from(tag_of(1))).abs() < 4.0);
        assert!((fr.mean(10, 150, 150, 175) - f64::from(tag_of(0))).abs() < 4.0);
    }
    // Keyframed x: from -0.25 (centre at 80) to 0.25 (centre at 240) over 10 frames.
    let tl = timeline(
        output(320, 180, 25),
        vec![track("v2", TrackKind::Video, vec![moving])],
    );
    let out = capture(&plan_of(&tl, &m.lib, None)).expect("render");
    for (f, fr) in out.frames.iter().enumerate() {
        let x = -0.25 + 0.5 * (f.min(10) as f64 / 10.0);
        let left = (160.0 + x * 320.0 - 80.0) as i32;
        let left = 2 * ((left as f64) / 2.0).round() as i32;
        assert_eq!(
            fr.index_in(left, 44, 160, 90),
            Some(f as u32),
            "moving frame {f} at {left}"
        );
        // Left of the picture is background.
        if left > 4 {
            assert!(
                fr.mean(0, 100, (left - 2) as usize, 130) < 20.0,
                "frame {f}"
            );
        }
    }
}

#[test]
fn colours_images_and_titles_appear_in_place() {
    init();
    let dir = tempfile::tempdir().expect("tempdir");
    let a = indexed_clip(dir.path(), "a.mp4", (25, 1), 40, tag_of(0), None);
    let red = png(dir.path(), "red.png", "red");
    let lib = Library(vec![("a".into(), media(&a)), ("red".into(), media(&red))]);
    let colour = nve_pipelines::timeline::Clip::new(
        "blue",
        nve_pipelines::timeline::Source::Color {
            rgba: nve_pipelines::timeline::Rgba::opaque(0, 0, 255),
        },
        Frames(10),
        Frames(10),
    );
    let mut image = nve_pipelines::timeline::Clip::new(
        "img",
        nve_pipelines::timeline::Source::Image {
            asset_id: "red".into(),
        },
        Frames(20),
        Frames(10),
    );
    image.transform.scale = 0.5;
    image.transform.x = -0.25;
    image.transform.y = 0.25;
    let title = nve_pipelines::timeline::Title {
        text: "HELLO".into(),
        font_family: "DejaVu Sans".into(),
        size: 40.0,
        weight: 700,
        color: nve_pipelines::timeline::Rgba::WHITE,
        outline: None,
        shadow: None,
        background: None,
        align: nve_pipelines::timeline::HAlign::Center,
        valign: nve_pipelines::timeline::VAlign::Middle,
        x: 0.5,
        y: 0.75,
        fade_in: Frames(0),
        fade_out: Frames(0),
    };
    let titled = nve_pipelines::timeline::Clip::new(
        "t",
        nve_pipelines::timeline::Source::Title(Box::new(title)),
        Frames(0),
        Frames(40),
    );
    let tl = timeline(
        output(320, 180, 25),
        vec![
            track(
                "v",
                TrackKind::Video,
                vec![asset("a", 0, 0, 10), colour, image, asset("a", 30, 30, 10)],
            ),
            track("o", TrackKind::Overlay, vec![titled]),
        ],
    );
    let out = capture(&plan_of(&tl, &lib, None)).expect("render");
    assert_eq!(out.frames.len(), 40);
    // Frames 0..10: a, with white title glyphs around (160, 135).
    let f = &out.frames[5];
    assert_eq!(f.index(), Some(5));
    let bright = (100..220)
        .flat_map(|x| (120..150).map(move |y| (x, y)))
        .filter(|(x, y)| f.y(*x, *y) > 220)
        .count();
    assert!(bright > 100, "title glyphs: {bright}");
    // Frames 10..20: blue above the title area (Y 41 with bt601 weights, 32 with bt709: the
    // overlay blender converts stills with its own matrix).
    let f = &out.frames[15];
    let blue = f.mean(10, 10, 310, 60);
    assert!((28.0..45.0).contains(&blue), "blue luma {blue}");
    // Frames 20..30: red image 160x90 (2:1 image fitted: 320x160 × 0.5 = 160x80) centred at
    // (80, 135) on the background.
    let f = &out.frames[25];
    let red_l = f.mean(50, 110, 110, 125);
    assert!((58.0..86.0).contains(&red_l), "red luma {red_l}");
    assert!(
        f.mean(200, 10, 310, 60) < 20.0,
        "background right of the image"
    );
    // Frames 30..40: a again, from its in-point.
    assert_eq!(out.frames[35].index(), Some(35));
}

#[test]
fn wipes_reveal_the_incoming_clip() {
    let m = media_set();
    let mut v = track(
        "v",
        TrackKind::Video,
        vec![asset("a", 0, 0, 30), asset("b", 10, 0, 30)],
    );
    v.transitions = vec![transition("a@0", "b@10", TransitionKind::WipeRight, 10)];
    let tl = timeline(output(320, 180, 25), vec![v]);
    let out = capture(&plan_of(&tl, &m.lib, None)).expect("render");
    assert_eq!(out.frames.len(), 40);
    let (ta, tb) = (f64::from(tag_of(0)), f64::from(tag_of(1)));
    // Frame 15: progress 0.55, b shows on x < 176.
    let f = &out.frames[15];
    assert!((f.mean(10, 140, 160, 170) - tb).abs() < 4.0);
    assert!((f.mean(190, 140, 310, 170) - ta).abs() < 4.0);
    assert_eq!(out.frames[9].index(), Some(9));
    assert_eq!(out.frames[20].index(), Some(10));
}

/// A render whose later parts are built while it runs (a lookahead of 3 frames instead of
/// seconds) is the same render: every frame exact at every cut and in a crossfade, and the same
/// sound, sample for sample within float noise, as one built whole.
#[test]
fn parts_built_while_rendering_match_a_render_built_whole() {
    let m = media_set();
    // 16 cuts of 5 frames, alternating sources, one crossfade; sound pieces on their own track
    // starting at many different times.
    let mut clips = Vec::new();
    for i in 0..16i64 {
        let src = if i % 2 == 0 { "a" } else { "b" };
        clips.push(asset(src, i * 5, 3 + i * 4, 5));
    }
    let mut xf = asset("a", 80, 10, 10);
    xf.id = "xf-to".into();
    clips.push(xf);
    let from = clips[15].id.clone();
    clips[15].duration = Frames(7);
    let mut v = track("v", TrackKind::Video, clips);
    v.transitions = vec![transition(&from, "xf-to", TransitionKind::Crossfade, 2)];
    let sound: Vec<_> = (0..6i64)
        .map(|i| asset("a", 3 + i * 14, i * 7, 9))
        .collect();
    let tl = timeline(
        output(320, 180, 25),
        vec![v, track("m", TrackKind::Audio, sound)],
    );
    let plan = plan_of(&tl, &m.lib, None);
    let whole = capture(&plan).expect("render built whole");
    let windowed = capture_with(
        &plan,
        &nve_pipelines::render::RenderOptions {
            build: nve_pipelines::render::BuildOptions {
                lookahead_ns: 120_000_000,
                ..Default::default()
            },
            ..Default::default()
        },
        &std::sync::atomic::AtomicBool::new(false),
    )
    .expect("render built while running");
    assert_eq!(whole.frames.len(), 90);
    assert_eq!(windowed.frames.len(), 90);
    for f in 0..78usize {
        let i = (f / 5) as u32;
        let expect = 3 + i * 4 + (f % 5) as u32;
        for (what, out) in [("whole", &whole), ("windowed", &windowed)] {
            assert_eq!(out.frames[f].index(), Some(expect), "{what} frame {f}");
        }
    }
    for f in 78..90usize {
        assert_eq!(
            windowed.frames[f].index(),
            whole.frames[f].index(),
            "frame {f}"
        );
        assert!(
            (windowed.frames[f].tag() - whole.frames[f].tag()).abs() < 1.0,
            "frame {f}"
        );
    }
    assert_eq!(whole.audio.len(), windowed.audio.len());
    let worst = whole
        .audio
        .iter()
        .zip(&windowed.audio)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    assert!(worst < 1e-4, "sound differs by up to {worst}");
    // There is sound where the pieces are, silence between them.
    assert!(rms_db(&windowed.audio, 0.13, 0.45) > -20.0);
    assert!(rms_db(&windowed.audio, 0.61, 0.67) < -80.0);
}

/// Mean of the V (Cr) plane over a rectangle in luma coordinates.
fn mean_v(f: &Frame, x0: usize, y0: usize, x1: usize, y1: usize) -> f64 {
    let (cw, ch) = (f.width / 2, f.height / 2);
    let base = f.width * f.height + cw * ch;
    let mut s = 0u64;
    for y in y0 / 2..y1 / 2 {
        for x in x0 / 2..x1 / 2 {
            s += u64::from(f.data[base + y * cw + x]);
        }
    }
    s as f64 / ((x1 / 2 - x0 / 2) * (y1 / 2 - y0 / 2)) as f64
}

/// Luma steps between horizontal neighbours over the index blocks: sharp edges have few,
/// large ones; a blur spreads them into many small ones.
fn soft_edges(f: &Frame) -> usize {
    (0..16)
        .flat_map(|y| (0..f.width - 1).map(move |x| (x, y)))
        .filter(|(x, y)| {
            let d = (i32::from(f.y(*x, *y)) - i32::from(f.y(x + 1, *y))).abs();
            (3..60).contains(&d)
        })
        .count()
}

#[test]
fn effects_change_the_picture_where_and_when_they_apply() {
    use nve_pipelines::timeline::{Clip, Effect, Source};
    init();
    let dir = tempfile::tempdir().expect("tempdir");
    let a = indexed_clip(dir.path(), "a.mp4", (25, 1), 60, tag_of(0), None);
    let red = png(dir.path(), "red.png", "red");
    let lib = Library(vec![("a".into(), media(&a)), ("red".into(), media(&red))]);
    let with = |mut c: Clip, e: Effect| {
        c.effects = vec![e];
        c
    };
    let image = |start: i64| {
        Clip::new(
            format!("img{start}"),
            Source::Image {
                asset_id: "red".into(),
            },
            Frames(start),
            Frames(10),
        )
    };
    let tl = timeline(
        output(320, 180, 25),
        vec![track(
            "v",
            TrackKind::Video,
            vec![
                asset("a", 0, 0, 10),
                with(asset("a", 10, 10, 10), Effect::Brightness { value: 0.2 }),
                with(asset("a", 20, 20, 10), Effect::Contrast { value: 0.0 }),
                with(asset("a", 30, 30, 10), Effect::Blur { radius: 3.0 }),
                image(40),
                with(image(50), Effect::Greyscale),
            ],
        )],
    );
    let plan = plan_of(&tl, &lib, None);
    assert!(plan.to_string().contains("brightness"), "{plan}");
    let out = capture(&plan).expect("render");
    assert_eq!(out.frames.len(), 60);
    // Brightness +0.2: the grey band (128) and the tag area go up by 0.2 × 255.
    let (plain, lit) = (&out.frames[5], &out.frames[15]);
    let band = |f: &Frame| f.mean(10, 40, 310, 80);
    assert!((band(plain) - 128.0).abs() < 3.0, "band {}", band(plain));
    assert!(
        (band(lit) - band(plain) - 51.0).abs() < 3.0,
        "brightened band {}",
        band(lit)
    );
    assert!((lit.tag() - plain.tag() - 51.0).abs() < 3.0);
    // Contrast 0: everything flat at black level.
    let flat = &out.frames[25];
    assert!((flat.mean(0, 0, 320, 180) - 16.0).abs() < 2.0);
    // Blur: the blocks' hard edges become ramps; the plain clip stays sharp.
    let (sharp, soft) = (
        soft_edges(&out.frames[35 - 30]),
        soft_edges(&out.frames[35]),
    );
    assert!(
        soft > sharp * 4 + 50,
        "edges: sharp {sharp}, blurred {soft}"
    );
    // Greyscale on a still: red has Cr far above 128; grey has 128 and the same place.
    let (r, g) = (&out.frames[45], &out.frames[55]);
    assert!(
        mean_v(r, 100, 60, 220, 120) > 180.0,
        "red Cr {}",
        mean_v(r, 100, 60, 220, 120)
    );
    assert!((mean_v(g, 100, 60, 220, 120) - 128.0).abs() < 3.0);
    assert!(g.mean(100, 60, 220, 120) > 40.0, "the grey image is there");
}

/// Pictures turn clockwise by any angle about their centre, also animated; a turned colour is a
/// turned rectangle. Positions are computed from the geometry (picture 160x90 centred in 320x180).
#[test]
fn pictures_turn_by_any_angle() {
    use nve_pipelines::timeline::{AnimProp, Interpolation, Keyframe, Rgba, Source};
    let m = media_set();
    let mut tilted = asset("a", 0, 0, 10);
    tilted.transform.scale = 0.5;
    tilted.transform.rotation = 45.0;
    let mut spinning = asset("a", 10, 10, 10);
    spinning.transform.scale = 0.5;
    spinning.keyframes = [(0, 0.0), (9, 90.0)]
        .into_iter()
        .map(|(t, v)| Keyframe {
            property: AnimProp::Rotation,
            time: Frames(t),
            value: v,
            interpolation: Interpolation::Linear,
        })
        .collect();
    let mut colour = nve_pipelines::timeline::Clip::new(
        "white",
        Source::Color {
            rgba: Rgba::opaque(255, 255, 255),
        },
        Frames(20),
        Frames(10),
    );
    colour.transform.scale = 0.5;
    colour.transform.rotation = -30.0;
    let tl = timeline(
        output(320, 180, 25),
        vec![track("v", TrackKind::Video, vec![tilted, spinning, colour])],
    );
    let plan = plan_of(&tl, &m.lib, None);
    assert!(plan.to_string().contains("turned 45.0°"), "{plan}");
    let out = capture(&plan).expect("render");
    assert_eq!(out.frames.len(), 30);
    // 45°: the picture's top-left block (source pixel (8, 8) → (-76, -41) from the centre)
    // turns to (135, 7): white when the frame index is odd (its bit 0).
    let (odd, even) = (&out.frames[1], &out.frames[2]);
    assert!(
        odd.mean(133, 5, 138, 10) > 150.0,
        "{}",
        odd.mean(133, 5, 138, 10)
    );
    assert!(even.mean(133, 5, 138, 10) < 60.0);
    // Turned counter-clockwise it would be at (72, 115): the tag area or background there.
    assert!(odd.mean(70, 113, 75, 118) < 70.0);
    // Outside the turned picture (but inside its canvas): background.
    assert!(odd.mean(96, 16, 104, 24) < 20.0);
    assert!(odd.mean(216, 156, 224, 164) < 20.0);
    // Centre: the tag area's luma.
    assert!((odd.mean(156, 96, 164, 104) - f64::from(tag_of(0))).abs() < 6.0);
    // Animated 0° → 90°: at 90° the block at (-76, -41) is at (41, -76) → (201, 14); frame 19
    // shows source index 19 (odd). At 0° (frame 10) it is at (84, 49), index 10 (even).
    let (start, end) = (&out.frames[10], &out.frames[19]);
    assert!(
        end.mean(199, 12, 204, 17) > 150.0,
        "{}",
        end.mean(199, 12, 204, 17)
    );
    assert!(start.mean(82, 47, 87, 52) < 60.0);
    // Halfway (45°) the picture is not axis-aligned: the canvas corner is background.
    assert!(out.frames[14].mean(84, 10, 90, 16) < 20.0);
    // A white rectangle turned -30°: its centre white, its canvas corners background, and the
    // edge antialiased (some pixels between black and white).
    let c = &out.frames[25];
    assert!(c.mean(150, 80, 170, 100) > 220.0);
    assert!(c.mean(70, 0, 80, 10) < 20.0);
    let grey = (0..180)
        .flat_map(|y| (0..320).map(move |x| (x, y)))
        .filter(|(x, y)| (60..180).contains(&c.y(*x, *y)))
        .count();
    assert!(grey > 100, "antialiased edges: {grey}");
}

/// A title moved and scaled by the clip transform lands where the transform puts the frame it
/// is drawn on: here its anchor (centre of the frame) moves right by a quarter of the width and
/// the text shrinks to half; turned by 90° it stands upright.
#[test]
fn titles_follow_the_clip_transform() {
    use nve_pipelines::timeline::{Clip, HAlign, Rgba, Source, Title, VAlign};
    init();
    let title = |id: &str, start: i64| {
        Clip::new(
            id,
            Source::Title(Box::new(Title {
                text: "WIDE TITLE".into(),
                font_family: "DejaVu Sans".into(),
                size: 30.0,
                weight: 700,
                color: Rgba::WHITE,
                outline: None,
                shadow: None,
                background: None,
                align: HAlign::Center,
                valign: VAlign::Middle,
                x: 0.5,
                y: 0.5,
                fade_in: Frames(0),
                fade_out: Frames(0),
            })),
            Frames(start),
            Frames(5),
        )
    };
    let plain = title("plain", 0);
    let mut moved = title("moved", 5);
    moved.transform.x = 0.25;
    moved.transform.scale = 0.5;
    let mut turned = title("turned", 10);
    turned.transform.rotation = 90.0;
    let tl = timeline(
        output(320, 180, 25),
        vec![track("o", TrackKind::Overlay, vec![plain, moved, turned])],
    );
    let lib = Library(Vec::new());
    let plan = plan_of(&tl, &lib, None);
    let out = capture(&plan).expect("render");
    assert_eq!(out.frames.len(), 15);
    // Bounding box of bright pixels.
    let bbox = |f: &Frame| {
        let (mut x0, mut y0, mut x1, mut y1) = (usize::MAX, usize::MAX, 0, 0);
        for y in 0..f.height {
            for x in 0..f.width {
                if f.y(x, y) > 128 {
                    x0 = x0.min(x);
                    y0 = y0.min(y);
                    x1 = x1.max(x);
                    y1 = y1.max(y);
                }
            }
        }
        (x0, y0, x1, y1)
    };
    let (a0, b0, a1, b1) = bbox(&out.frames[2]);
    let (w, h) = ((a1 - a0) as f64, (b1 - b0) as f64);
    let centre = ((a0 + a1) as f64 / 2.0, (b0 + b1) as f64 / 2.0);
    assert!((centre.0 - 160.0).abs() < 4.0 && (centre.1 - 90.0).abs() < 4.0);
    assert!(w > 2.5 * h, "a wide title: {w}x{h}");
    // Moved: the frame it is drawn on is half size, centred at x = 240: the text centre at
    // (240, 90), half as wide.
    let (c0, d0, c1, d1) = bbox(&out.frames[7]);
    let (mw, mc) = (
        (c1 - c0) as f64,
        ((c0 + c1) as f64 / 2.0, (d0 + d1) as f64 / 2.0),
    );
    assert!(
        (mc.0 - 240.0).abs() < 4.0 && (mc.1 - 90.0).abs() < 4.0,
        "{mc:?}"
    );
    assert!((mw / w - 0.5).abs() < 0.1, "half as wide: {mw} of {w}");
    // Turned 90° (the frame fitted into the frame again: contain): taller than wide.
    let (e0, f0, e1, f1) = bbox(&out.frames[12]);
    assert!(
        (f1 - f0) > 2 * (e1 - e0),
        "upright: {}x{}",
        e1 - e0,
        f1 - f0
    );
}
