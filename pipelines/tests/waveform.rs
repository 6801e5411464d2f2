//! Waveform peaks of generated sound whose levels are known: a half-scale sine, silence, a
//! stereo file loud on one side only, and the usual containers (MP4/AAC with video, WAV,
//! Ogg/Opus, 5.1).

use std::path::{Path, PathBuf};
use std::process::Command;

use nve_pipelines::waveform::{Level, Waveform, WaveformSpec, peaks};

fn gst_launch(dir: &Path, name: &str, pipeline: &str) -> PathBuf {
    let out = dir.join(name);
    let description = format!("{pipeline} ! filesink location={}", out.display());
    let status = Command::new("gst-launch-1.0")
        .arg("-q")
        .args(description.split_whitespace())
        .status()
        .expect("gst-launch-1.0 runs (apt-get install gstreamer1.0-tools)");
    assert!(status.success(), "gst-launch-1.0 failed for {name}");
    out
}

fn ffmpeg(dir: &Path, name: &str, args: &[&str]) -> PathBuf {
    let out = dir.join(name);
    let status = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-y"])
        .args(args)
        .arg(&out)
        .status()
        .expect("ffmpeg runs (apt-get install ffmpeg)");
    assert!(status.success(), "ffmpeg failed for {name}");
    out
}

fn ok(path: &Path) -> Waveform {
    peaks(path, &WaveformSpec::default()).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// (min, max) of channel `ch` in bucket `i`.
fn bucket(level: &Level, channels: u32, i: usize, ch: usize) -> (i8, i8) {
    let at = (i * channels as usize + ch) * 2;
    (level.data[at], level.data[at + 1])
}

/// Checks the document's own arithmetic: lengths, sizes, rates.
fn consistent(w: &Waveform) {
    assert_eq!(w.version, 1);
    assert_eq!(w.bits, 8);
    assert!((w.duration - w.samples as f64 / f64::from(w.sample_rate)).abs() < 1e-9);
    assert_eq!(
        w.levels.len(),
        WaveformSpec::default().samples_per_bucket.len()
    );
    for l in &w.levels {
        assert_eq!(
            l.length,
            w.samples.div_ceil(u64::from(l.samples_per_bucket))
        );
        assert_eq!(l.data.len() as u64, l.length * u64::from(w.channels) * 2);
        assert!(
            (l.buckets_per_second - f64::from(w.sample_rate) / f64::from(l.samples_per_bucket))
                .abs()
                < 1e-9
        );
        assert!(l.data.iter().all(|v| (-127..=127).contains(v)));
    }
}

/// The typical peak of a channel: the median bucket maximum of the finest level, which
/// ignores codec ramps at the very start and end.
fn typical_peak(w: &Waveform, ch: usize) -> i8 {
    let l = &w.levels[0];
    let mut maxima: Vec<i8> = (0..l.length as usize)
        .map(|i| bucket(l, w.channels, i, ch).1)
        .collect();
    maxima.sort_unstable();
    maxima[maxima.len() / 2]
}

#[test]
fn a_half_scale_sine_peaks_at_half_scale_in_every_bucket() {
    let dir = tempfile::tempdir().expect("tempdir");
    // 94 buffers of 1024 samples: 96,256 samples, 2.005 s, not a multiple of any level.
    let wav = gst_launch(
        dir.path(),
        "sine.wav",
        "audiotestsrc wave=sine freq=440 volume=0.5 num-buffers=94 samplesperbuffer=1024 \
         ! audio/x-raw,format=S16LE,rate=48000,channels=1 ! wavenc",
    );
    let w = ok(&wav);
    consistent(&w);
    assert_eq!((w.sample_rate, w.channels, w.samples), (48_000, 1, 96_256));
    // 0.5 full scale = 63.5 on the 127 scale; S16 rounding lands on 63 or 64. A 256-sample
    // bucket spans more than two periods of 440 Hz, so every bucket reaches both peaks.
    for (n, l) in w.levels.iter().enumerate() {
        for i in 0..l.length as usize {
            let (min, max) = bucket(l, 1, i, 0);
            assert!((62..=65).contains(&max), "level {n} bucket {i}: max {max}");
            assert!(
                (-65..=-62).contains(&min),
                "level {n} bucket {i}: min {min}"
            );
        }
    }
}

#[test]
fn silence_is_all_zeros() {
    let dir = tempfile::tempdir().expect("tempdir");
    let wav = gst_launch(
        dir.path(),
        "silence.wav",
        "audiotestsrc wave=silence num-buffers=50 samplesperbuffer=1000 \
         ! audio/x-raw,format=S16LE,rate=22050,channels=2 ! wavenc",
    );
    let w = ok(&wav);
    consistent(&w);
    assert_eq!((w.sample_rate, w.channels, w.samples), (22_050, 2, 50_000));
    assert!(w.levels.iter().all(|l| l.data.iter().all(|v| *v == 0)));
}

#[test]
fn channels_stay_apart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let wav = ffmpeg(
        dir.path(),
        "lr.wav",
        &[
            "-f",
            "lavfi",
            "-i",
            "aevalsrc=0|0.8*sin(2*PI*440*t):s=44100:d=2",
            "-c:a",
            "pcm_s16le",
        ],
    );
    let w = ok(&wav);
    consistent(&w);
    assert_eq!((w.sample_rate, w.channels), (44_100, 2));
    assert!((w.duration - 2.0).abs() < 0.001, "{}", w.duration);
    let l = &w.levels[0];
    for i in 0..l.length as usize {
        assert_eq!(bucket(l, 2, i, 0), (0, 0), "left, bucket {i}");
        let (min, max) = bucket(l, 2, i, 1);
        // 0.8 × 127 = 101.6
        assert!(
            (100..=103).contains(&max) && (-103..=-100).contains(&min),
            "right, bucket {i}: {min} {max}"
        );
    }
    // Mixed to mono on request: a single channel, still loud.
    let mono = peaks(
        &wav,
        &WaveformSpec {
            max_channels: 1,
            ..WaveformSpec::default()
        },
    )
    .expect("mono peaks");
    assert_eq!(mono.channels, 1);
    assert!(typical_peak(&mono, 0) > 30, "{}", typical_peak(&mono, 0));
}

#[test]
fn compressed_sound_in_the_usual_containers() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    // ffmpeg's sine source is at 1/8 full scale: about 16 on the 127 scale.
    let tone = [
        "-f",
        "lavfi",
        "-i",
        "sine=frequency=440:sample_rate=48000:duration=2",
    ];
    let with = |extra: &[&'static str]| -> Vec<&'static str> {
        tone.iter().chain(extra.iter()).copied().collect()
    };

    let mp4 = ffmpeg(
        d,
        "clip.mp4",
        &[
            "-f",
            "lavfi",
            "-i",
            "testsrc=size=320x240:rate=25:duration=2",
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=440:sample_rate=48000:duration=2",
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-pix_fmt",
            "yuv420p",
            "-c:a",
            "aac",
        ],
    );
    let opus = ffmpeg(d, "tone.ogg", &with(&["-c:a", "libopus"]));
    for path in [&mp4, &opus] {
        let w = ok(path);
        consistent(&w);
        assert_eq!(
            (w.sample_rate, w.channels),
            (48_000, 1),
            "{}",
            path.display()
        );
        assert!(
            (w.duration - 2.0).abs() < 0.05,
            "{}: {}",
            path.display(),
            w.duration
        );
        let peak = typical_peak(&w, 0);
        assert!((14..=18).contains(&peak), "{}: {peak}", path.display());
    }

    // 5.1 with a half-scale tone on front left and back right only: front left is the left
    // side at full level, a back channel joins its side at -3 dB (0.5 × 0.707 × 127 ≈ 45).
    let surround = ffmpeg(
        d,
        "surround.mka",
        &[
            "-f",
            "lavfi",
            "-i",
            "aevalsrc=0.5*sin(2*PI*440*t)|0|0|0|0|0.5*sin(2*PI*440*t):c=5.1:s=48000:d=2",
            "-c:a",
            "flac",
        ],
    );
    let w = ok(&surround);
    consistent(&w);
    assert_eq!((w.sample_rate, w.channels), (48_000, 2));
    let (left, right) = (typical_peak(&w, 0), typical_peak(&w, 1));
    assert!((62..=65).contains(&left), "left {left}");
    assert!((43..=47).contains(&right), "right {right}");
}

#[test]
fn failures_have_codes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let code = |p: &Path| {
        peaks(p, &WaveformSpec::default())
            .map(|_| ())
            .map_err(|e| e.code)
    };

    let silent_video = ffmpeg(
        d,
        "video.mp4",
        &[
            "-f",
            "lavfi",
            "-i",
            "testsrc=size=160x120:rate=25:duration=1",
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-pix_fmt",
            "yuv420p",
        ],
    );
    assert_eq!(code(&silent_video), Err("no-audio"));

    let junk = d.join("junk.wav");
    std::fs::write(&junk, b"RIFF but not really, just text ".repeat(100)).expect("write");
    assert_eq!(code(&junk), Err("not-decodable"));
    assert_eq!(code(&d.join("missing.wav")), Err("unreadable"));

    let bad = WaveformSpec {
        samples_per_bucket: vec![256, 300],
        ..WaveformSpec::default()
    };
    assert_eq!(
        peaks(&silent_video, &bad).map(|_| ()).map_err(|e| e.code),
        Err("invalid-spec")
    );
}

#[test]
fn the_document_has_the_documented_shape() {
    let dir = tempfile::tempdir().expect("tempdir");
    let wav = gst_launch(
        dir.path(),
        "short.wav",
        "audiotestsrc wave=sine volume=0.25 num-buffers=4 samplesperbuffer=1000 \
         ! audio/x-raw,format=S16LE,rate=8000,channels=1 ! wavenc",
    );
    let spec: WaveformSpec =
        serde_json::from_str(r#"{"samples_per_bucket":[100,1000]}"#).expect("partial spec");
    assert_eq!(spec.max_channels, 2);
    let w = peaks(&wav, &spec).expect("peaks");
    let json = serde_json::to_value(&w).expect("json");
    for key in [
        "version",
        "sample_rate",
        "channels",
        "bits",
        "samples",
        "duration",
        "levels",
    ] {
        assert!(json.get(key).is_some(), "{key} missing");
    }
    let level = &json["levels"][1];
    assert_eq!(level["samples_per_bucket"], 1000);
    assert_eq!(level["buckets_per_second"], 8.0);
    assert_eq!(level["length"], 4);
    assert_eq!(level["data"].as_array().map(|a| a.len()), Some(8));
    assert_eq!(json["levels"][0]["length"], 40);
}
