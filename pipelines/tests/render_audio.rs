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

/// A 16-bit stereo WAV: silence for `silent` seconds, then a sine of `hz` at peak 0.5 until
/// `total` seconds.
fn tone_wav(path: &std::path::Path, silent: f64, total: f64, hz: f64) {
    let rate = 48_000u32;
    let n = (total * f64::from(rate)) as usize;
    let mut data = Vec::with_capacity(n * 4);
    for i in 0..n {
        let t = i as f64 / f64::from(rate);
        let v = if t < silent {
            0.0
        } else {
            0.5 * (2.0 * std::f64::consts::PI * hz * (t - silent)).sin()
        };
        let s = ((v * 32767.0) as i16).to_le_bytes();
        data.extend_from_slice(&s);
        data.extend_from_slice(&s);
    }
    let mut w = Vec::with_capacity(44 + data.len());
    w.extend_from_slice(b"RIFF");
    w.extend_from_slice(&(36 + data.len() as u32).to_le_bytes());
    w.extend_from_slice(b"WAVEfmt ");
    w.extend_from_slice(&16u32.to_le_bytes());
    w.extend_from_slice(&1u16.to_le_bytes());
    w.extend_from_slice(&2u16.to_le_bytes());
    w.extend_from_slice(&rate.to_le_bytes());
    w.extend_from_slice(&(rate * 4).to_le_bytes());
    w.extend_from_slice(&4u16.to_le_bytes());
    w.extend_from_slice(&16u16.to_le_bytes());
    w.extend_from_slice(b"data");
    w.extend_from_slice(&(data.len() as u32).to_le_bytes());
    w.extend_from_slice(&data);
    std::fs::write(path, w).expect("write wav");
}

/// Frequency of the left channel over `[from, to)` seconds, from its upward zero crossings.
fn frequency(samples: &[f32], from: f64, to: f64) -> f64 {
    let a = (from * 48_000.0) as usize;
    let b = ((to * 48_000.0) as usize).min(samples.len() / 2);
    let left: Vec<f32> = (a..b).map(|i| samples[i * 2]).collect();
    let ups = left
        .windows(2)
        .filter(|w| w[0] < 0.0 && w[1] >= 0.0)
        .count();
    ups as f64 / (to - from)
}

#[test]
fn sound_follows_speed_and_reverse_like_tape() {
    init();
    let dir = tempfile::tempdir().expect("tempdir");
    let wav = dir.path().join("tone.wav");
    // 1 s of silence, then 2 s of 440 Hz.
    tone_wav(&wav, 1.0, 3.0, 440.0);
    let lib = Library(vec![("t".into(), media(&wav))]);
    let render = |clip: nve_pipelines::timeline::Clip, frames: usize| {
        let tl = timeline(
            output(160, 90, 25),
            vec![track("m", TrackKind::Audio, vec![clip])],
        );
        let out = capture(&plan_of(&tl, &lib, None)).expect("render");
        assert_eq!(out.frames.len(), frames);
        let secs = out.audio.len() as f64 / 2.0 / 48_000.0;
        assert!(
            (secs - frames as f64 / 25.0).abs() < 0.5 / 25.0,
            "audio lasts {secs} s for {frames} frames"
        );
        out.audio
    };

    // Reversed, whole file: 2 s of tone (same pitch), then the silence that came first.
    let mut back = asset("t", 0, 0, 75);
    back.reverse = true;
    let a = render(back, 75);
    let f = frequency(&a, 0.1, 1.9);
    assert!((f - 440.0).abs() < 5.0, "reversed pitch {f}");
    assert!(
        rms_db(&a, 2.05, 2.95) < -80.0,
        "the leading silence now ends it"
    );
    assert!(rms_db(&a, 0.1, 1.9) > -12.0, "tone first");

    // Twice as fast: the silence lasts 0.5 s, the tone is an octave up.
    let mut fast = asset("t", 0, 0, 36);
    fast.speed = nve_pipelines::timeline::Speed::from_f64(2.0).expect("speed");
    let a = render(fast, 36);
    assert!(rms_db(&a, 0.0, 0.45) < -80.0, "silence for 0.5 s");
    let onset = (0..a.len() / 2)
        .find(|i| a[i * 2].abs() > 0.05)
        .map(|i| i as f64 / 48_000.0)
        .expect("tone");
    assert!((onset - 0.5).abs() < 0.002, "tone starts at {onset} s");
    let f = frequency(&a, 0.6, 1.4);
    assert!((f - 880.0).abs() < 8.0, "2x pitch {f}");

    // Half speed from 1 s in: the tone an octave down, for the whole 2 s.
    let slow = {
        let mut c = asset("t", 0, 25, 50);
        c.speed = nve_pipelines::timeline::Speed::from_f64(0.5).expect("speed");
        c
    };
    let a = render(slow, 50);
    let f = frequency(&a, 0.1, 1.9);
    assert!((f - 220.0).abs() < 3.0, "0.5x pitch {f}");
    let l = rms_db(&a, 0.1, 1.9);
    assert!((l - -9.03).abs() < 0.5, "level kept: {l}");
}
