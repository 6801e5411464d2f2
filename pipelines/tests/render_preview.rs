//! A preview frame is the render's frame: `frame_at` (one frame, RGB, as the editor asks for
//! it) against the same frame of a full render, over cuts, a crossfade and a picture-in-picture.

mod common;

use common::*;
use nve_pipelines::render::frame_at;
use nve_pipelines::timeline::{Frames, TrackKind, Transition, TransitionKind};

/// BT.601 limited-range luma of an RGB pixel, the inverse of the render's I420 → RGB.
fn luma(r: u8, g: u8, b: u8) -> f64 {
    16.0 + (65.481 * f64::from(r) + 128.553 * f64::from(g) + 24.966 * f64::from(b)) / 255.0
}

#[test]
fn preview_frames_equal_the_rendered_frames() {
    init();
    let dir = tempfile::tempdir().expect("tempdir");
    let a = indexed_clip(dir.path(), "a.mp4", (25, 1), 60, tag_of(0), None);
    let b = indexed_clip(dir.path(), "b.mp4", (25, 1), 60, tag_of(1), None);
    let lib = Library(vec![("a".into(), media(&a)), ("b".into(), media(&b))]);
    let mut v1 = track(
        "v1",
        TrackKind::Video,
        vec![asset("a", 0, 3, 25), asset("b", 20, 7, 25)],
    );
    v1.transitions.push(Transition {
        from: v1.clips[0].id.clone(),
        to: v1.clips[1].id.clone(),
        kind: TransitionKind::Crossfade,
        duration: Frames(5),
    });
    let mut pip = asset("b", 8, 30, 20);
    pip.transform.scale = 0.4;
    pip.transform.x = 0.25;
    pip.transform.y = -0.25;
    let v2 = track("v2", TrackKind::Video, vec![pip]);
    let tl = timeline(output(320, 180, 25), vec![v1, v2]);
    let rendered = capture(&plan_of(&tl, &lib, None)).expect("render");
    let lookup = |id: &str| lib.get(id);
    for f in [0i64, 10, 22, 30, 44] {
        let preview = frame_at(&tl, &lookup, f, 320).expect("preview");
        assert_eq!((preview.width, preview.height), (320, 180));
        let full = &rendered.frames[usize::try_from(f).expect("frame")];
        let mut diff = 0.0;
        let mut worst: f64 = 0.0;
        let mut n = 0.0;
        for y in (0..180).step_by(3) {
            for x in (0..320).step_by(3) {
                let i = (y * 320 + x) * 3;
                let p = &preview.data[i..i + 3];
                let d = (luma(p[0], p[1], p[2]) - f64::from(full.y(x, y))).abs();
                diff += d;
                worst = worst.max(d);
                n += 1.0;
            }
        }
        // Only the I420 -> RGB -> luma round trip separates them (rounding: about 2 levels
        // everywhere); another frame would differ by ~200 on its index blocks.
        assert!(
            diff / n < 3.0,
            "frame {f}: mean luma difference {}",
            diff / n
        );
        assert!(worst < 4.0, "frame {f}: worst luma difference {worst}");
    }
}
