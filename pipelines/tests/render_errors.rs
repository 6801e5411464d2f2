//! Failures: missing and corrupt sources, cancellation, mixed inputs that must conform.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::*;
use nve_pipelines::render::{RenderOptions, plan};
use nve_pipelines::timeline::TrackKind;

#[test]
fn missing_source_is_refused_by_the_plan_and_the_builder() {
    init();
    let tl = timeline(
        output(320, 180, 25),
        vec![track("v", TrackKind::Video, vec![asset("nope", 0, 0, 10)])],
    );
    let err = plan(&tl, &|_| None, None).expect_err("no such asset");
    assert_eq!(err.code(), "missing-source");
    // Known to the lookup but gone from disk.
    let dir = tempfile::tempdir().expect("tempdir");
    let a = indexed_clip(dir.path(), "a.mp4", (25, 1), 20, tag_of(0), None);
    let mut m = media(&a);
    m.path = dir.path().join("gone.mp4");
    let lib = Library(vec![("nope".into(), m)]);
    let err = failure(capture(&plan_of(&tl, &lib, None)));
    assert_eq!(err.code(), "missing-source", "{err}");
}

#[test]
fn corrupt_source_fails_quickly_and_cleanly() {
    init();
    let dir = tempfile::tempdir().expect("tempdir");
    let a = indexed_clip(dir.path(), "a.mp4", (25, 1), 50, tag_of(0), None);
    let m = media(&a);
    let bytes = std::fs::read(&a).expect("read");
    let cut = dir.path().join("cut.mp4");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).expect("write");
    let mut broken = m.clone();
    broken.path = cut;
    let lib = Library(vec![("a".into(), broken)]);
    let tl = timeline(
        output(320, 180, 25),
        vec![track("v", TrackKind::Video, vec![asset("a", 0, 0, 40)])],
    );
    let t = Instant::now();
    let opts = RenderOptions {
        stall_timeout: Duration::from_secs(10),
        ..RenderOptions::default()
    };
    let err = failure(capture_with(
        &plan_of(&tl, &lib, None),
        &opts,
        &AtomicBool::new(false),
    ));
    assert!(matches!(err.code(), "not-decodable" | "timed-out"), "{err}");
    assert!(t.elapsed() < Duration::from_secs(15));
}

#[test]
fn cancel_stops_within_a_second() {
    init();
    let dir = tempfile::tempdir().expect("tempdir");
    let a = indexed_clip(dir.path(), "a.mp4", (25, 1), 250, tag_of(0), None);
    let lib = Library(vec![("a".into(), media(&a))]);
    // Slow enough to cancel mid-way: 80 s of large output.
    let clips = (0..8).map(|i| asset("a", i * 250, 0, 250)).collect();
    let tl = timeline(
        output(1920, 1080, 25),
        vec![track("v", TrackKind::Video, clips)],
    );
    let p = plan_of(&tl, &lib, None);
    let cancel = Arc::new(AtomicBool::new(false));
    let c2 = cancel.clone();
    let flagged = Arc::new(std::sync::Mutex::new(None::<Instant>));
    let f2 = flagged.clone();
    let t = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(700));
        *f2.lock().expect("lock") = Some(Instant::now());
        c2.store(true, Ordering::SeqCst);
    });
    let res = capture_with(&p, &RenderOptions::default(), &cancel);
    let done = Instant::now();
    t.join().expect("thread");
    let err = failure(res);
    assert_eq!(err.code(), "cancelled");
    let at = flagged.lock().expect("lock").expect("flagged");
    assert!(done.duration_since(at) < Duration::from_secs(1));
}

#[test]
fn mixed_inputs_conform() {
    init();
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let a = indexed_clip(d, "a.mp4", (30, 1), 60, tag_of(0), Some((440, 0.3)));
    let b = indexed_clip(d, "b.mp4", (25, 1), 60, tag_of(1), None);
    // A rotated copy (displayed 180x320).
    let r = d.join("r.mp4");
    let ok = std::process::Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-y", "-i"])
        .arg(&a)
        .args(["-c", "copy", "-metadata:s:v", "rotate=90"])
        .arg(&r)
        .status()
        .expect("ffmpeg")
        .success();
    assert!(ok);
    let rm = media(&r);
    assert!(rm.rotation == 90 || rm.rotation == 270, "{}", rm.rotation);
    let lib = Library(vec![
        ("a".into(), media(&a)),
        ("b".into(), media(&b)),
        ("r".into(), rm),
    ]);
    let tl = timeline(
        output(640, 360, 30),
        vec![track(
            "v",
            TrackKind::Video,
            vec![
                asset("a", 0, 0, 30),
                asset("b", 30, 0, 30),
                asset("r", 60, 0, 30),
            ],
        )],
    );
    let out = capture(&plan_of(&tl, &lib, None)).expect("render");
    assert_eq!(out.frames.len(), 90);
    for fr in &out.frames {
        assert_eq!((fr.width, fr.height), (640, 360));
    }
    assert_eq!(out.frames[10].index(), Some(10));
    assert_eq!(out.frames[40].index(), Some(8)); // floor(10 * 25 / 30)
    // The rotated clip is upright in a pillarbox: 180x320 displayed, fitted to 202x360 at
    // x=218.. with black bars around.
    let f = &out.frames[70];
    assert!(f.mean(0, 0, 200, 360) < 20.0, "left bar");
    assert!(f.mean(440, 0, 640, 360) < 20.0, "right bar");
    assert!(f.mean(230, 10, 410, 350) > 40.0, "picture in the middle");
    // Audio as long as the video, silence where clips have none.
    let secs = out.audio.len() as f64 / 2.0 / 48_000.0;
    assert!((secs - 3.0).abs() < 1.0 / 30.0, "audio {secs}");
    assert!(rms_db(&out.audio, 1.1, 1.9) < -80.0);
}
