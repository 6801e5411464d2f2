//! Sound: levels, fades, mixing, and audio exactly as long as the video.

mod common;

use common::*;
use nve_pipelines::timeline::{Frames, TrackKind};

#[test]
fn gain_fades_mix_and_length() {
    init();
    let dir = tempfile::tempdir().expect("tempdir");
    // Peak 0.5 sine: RMS -9.03 dBFS.
    let a = indexed_clip(
        dir.path(),
        "a.mp4",
        (25, 1),
        100,
        tag_of(0),
        Some((440, 0.5)),
    );
    let b = indexed_clip(
        dir.path(),
        "b.mp4",
        (25, 1),
        100,
        tag_of(1),
        Some((660, 0.5)),
    );
    let lib = Library(vec![("a".into(), media(&a)), ("b".into(), media(&b))]);
    let reference = -9.03;

    // 0..2 s: a at -6 dB (clip) + track -3 dB; 2..3 s gap; 3..4 s: a fading in over 1 s.
    let mut quiet = asset("a", 0, 0, 50);
    quiet.audio.volume_db = -6.0;
    let mut fading = asset("a", 75, 10, 25);
    fading.audio.fade_in = Frames(25);
    let mut v = track("v", TrackKind::Video, vec![quiet, fading]);
    v.volume_db = -3.0;
    let tl = timeline(output(320, 180, 25), vec![v]);
    let out = capture(&plan_of(&tl, &lib, None)).expect("render");
    assert_eq!(out.frames.len(), 100);
    let secs = out.audio.len() as f64 / 2.0 / 48_000.0;
    assert!((secs - 4.0).abs() < 1.0 / 25.0, "audio lasts {secs} s");
    let l = rms_db(&out.audio, 0.2, 1.8);
    assert!((l - (reference - 9.0)).abs() < 0.5, "level {l}");
    assert!(rms_db(&out.audio, 2.1, 2.9) < -80.0, "gap is silent");
    // The fade ramps: the second quarter is quieter than the last.
    let q2 = rms_db(&out.audio, 3.25, 3.5);
    let q4 = rms_db(&out.audio, 3.75, 4.0);
    assert!(q2 < q4 - 3.0, "fade-in ramps: {q2} then {q4}");
    // Linear gain 0.75 → 1 over 3.75..4.0: RMS factor sqrt(mean(g²)) ≈ 0.878; track -3 dB.
    let ramp = ((1.0 - 0.75f64.powi(3)) / (3.0 * 0.25)).sqrt();
    assert!(
        (q4 - (reference - 3.0 + 20.0 * ramp.log10())).abs() < 0.5,
        "q4 {q4}"
    );

    // Two tracks mix: uncorrelated equal sines add in power (+3 dB).
    let tl = timeline(
        output(320, 180, 25),
        vec![
            track("v", TrackKind::Video, vec![asset("a", 0, 0, 50)]),
            track("m", TrackKind::Audio, vec![asset("b", 0, 0, 50)]),
        ],
    );
    let out = capture(&plan_of(&tl, &lib, None)).expect("render");
    let l = rms_db(&out.audio, 0.2, 1.8);
    assert!((l - (reference + 3.01)).abs() < 0.5, "mixed level {l}");
    let secs = out.audio.len() as f64 / 2.0 / 48_000.0;
    assert!((secs - 2.0).abs() < 1.0 / 25.0, "audio lasts {secs} s");
}
