//! Probing real files the tests generate with ffmpeg: every supported kind, and the broken
//! ones each rejected with its code.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use nve_pipelines::probe::{MediaLimits, ProbeReport, check_limits, probe};

mod common;

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

const VIDEO: [&str; 4] = [
    "-f",
    "lavfi",
    "-i",
    "testsrc=size=320x240:rate=25:duration=2",
];
const TONE: [&str; 4] = [
    "-f",
    "lavfi",
    "-i",
    "sine=frequency=440:sample_rate=48000:duration=2",
];

fn args<'a>(parts: &[&[&'a str]]) -> Vec<&'a str> {
    parts.iter().flat_map(|p| p.iter().copied()).collect()
}

fn ok(path: &Path) -> ProbeReport {
    probe(path, Duration::from_secs(20)).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn every_supported_kind_is_probed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();

    let mp4 = ok(&ffmpeg(
        d,
        "a.mp4",
        &args(&[
            &VIDEO,
            &TONE,
            &[
                "-c:v",
                "libx264",
                "-pix_fmt",
                "yuv420p",
                "-c:a",
                "aac",
                "-shortest",
            ],
        ]),
    ));
    assert_eq!(mp4.kind, "video");
    assert_eq!(mp4.container, "video/quicktime");
    assert_eq!(mp4.video[0].codec, "h264");
    assert_eq!((mp4.video[0].width, mp4.video[0].height), (320, 240));
    assert_eq!((mp4.video[0].fps_num, mp4.video[0].fps_den), (25, 1));
    assert_eq!(mp4.audio[0].codec, "aac");
    assert_eq!(mp4.audio[0].sample_rate, 48000);
    assert_eq!(mp4.audio[0].channels, 1);
    let dur = mp4.duration.expect("duration");
    assert!((dur - 2.0).abs() < 0.1, "{dur}");

    let webm = ok(&ffmpeg(
        d,
        "b.webm",
        &args(&[
            &VIDEO,
            &TONE,
            &[
                "-c:v",
                "libvpx-vp9",
                "-deadline",
                "realtime",
                "-cpu-used",
                "8",
                "-c:a",
                "libopus",
                "-shortest",
            ],
        ]),
    ));
    assert_eq!(webm.container, "video/webm");
    assert_eq!(webm.video[0].codec, "vp9");
    assert_eq!(webm.audio[0].codec, "opus");

    let mov = ok(&ffmpeg(
        d,
        "c.mov",
        &args(&[
            &VIDEO,
            &TONE,
            &[
                "-c:v",
                "libx264",
                "-pix_fmt",
                "yuv420p",
                "-c:a",
                "aac",
                "-shortest",
            ],
        ]),
    ));
    assert_eq!(mov.container, "video/quicktime");

    let mkv = ok(&ffmpeg(
        d,
        "d.mkv",
        &args(&[
            &VIDEO,
            &TONE,
            &[
                "-c:v",
                "libx264",
                "-pix_fmt",
                "yuv420p",
                "-c:a",
                "flac",
                "-shortest",
            ],
        ]),
    ));
    assert_eq!(mkv.container, "video/x-matroska");
    assert_eq!(mkv.audio[0].codec, "flac");

    // A phone's portrait clip: landscape pixels plus a display matrix in the container.
    // Debian's ffmpeg 5.1 writes the matrix when remuxing with the legacy `rotate` tag; that
    // matrix turns the picture a quarter counter-clockwise, i.e. 270 degrees clockwise.
    let plain = ffmpeg(
        d,
        "plain.mp4",
        &args(&[&VIDEO, &["-c:v", "libx264", "-pix_fmt", "yuv420p"]]),
    );
    let plain = plain.display().to_string();
    let portrait = ok(&ffmpeg(
        d,
        "p.mp4",
        &[
            "-i",
            plain.as_str(),
            "-c",
            "copy",
            "-metadata:s:v",
            "rotate=90",
        ],
    ));
    assert_eq!(portrait.video[0].rotation, 270, "{portrait:?}");
    assert_eq!(
        (portrait.video[0].width, portrait.video[0].height),
        (320, 240)
    );
    assert!(portrait.audio.is_empty(), "no audio track");

    let odd = ok(&ffmpeg(
        d,
        "odd.mp4",
        &[
            "-f",
            "lavfi",
            "-i",
            "testsrc=size=322x182:rate=30000/1001:duration=1",
            "-c:v",
            "libx264",
            "-pix_fmt",
            "yuv420p",
        ],
    ));
    assert_eq!((odd.video[0].width, odd.video[0].height), (322, 182));
    assert_eq!((odd.video[0].fps_num, odd.video[0].fps_den), (30000, 1001));

    for (name, codec, extra) in [
        ("t.mp3", "mp3", &["-c:a", "libmp3lame"][..]),
        ("t.m4a", "aac", &["-c:a", "aac"][..]),
        ("t.wav", "pcm", &["-c:a", "pcm_s16le"][..]),
        ("t.flac", "flac", &["-c:a", "flac"][..]),
        ("t.opus", "opus", &["-c:a", "libopus"][..]),
    ] {
        let r = ok(&ffmpeg(d, name, &args(&[&TONE, extra])));
        assert_eq!(r.kind, "audio", "{name}");
        assert!(r.video.is_empty(), "{name}");
        assert_eq!(r.audio[0].codec, codec, "{name}: {r:?}");
        assert!(
            (r.duration.expect("duration") - 2.0).abs() < 0.15,
            "{name}: {r:?}"
        );
    }

    let png = ok(&ffmpeg(
        d,
        "alpha.png",
        &[
            "-f",
            "lavfi",
            "-i",
            "color=c=red@0.5:s=64x48,format=rgba",
            "-frames:v",
            "1",
        ],
    ));
    assert_eq!(png.kind, "image");
    assert_eq!(png.video[0].codec, "png");
    assert!(png.video[0].has_alpha, "{png:?}");
    assert_eq!(png.duration, None);
    let jpg = ok(&ffmpeg(
        d,
        "x.jpg",
        &["-f", "lavfi", "-i", "testsrc=size=64x48", "-frames:v", "1"],
    ));
    assert_eq!(
        (jpg.kind.as_str(), jpg.video[0].codec.as_str()),
        ("image", "jpeg")
    );
    assert!(!jpg.video[0].has_alpha);
    let webp = ok(&ffmpeg(
        d,
        "x.webp",
        &[
            "-f",
            "lavfi",
            "-i",
            "testsrc=size=64x48",
            "-frames:v",
            "1",
            "-c:v",
            "libwebp",
        ],
    ));
    assert_eq!(
        (webp.kind.as_str(), webp.video[0].codec.as_str()),
        ("image", "webp")
    );
}

/// `rotation` means "turn the stored picture this far clockwise to display it": turning the
/// stored frame by the probed rotation must give the frame ffmpeg shows (ffmpeg applies the
/// display matrix, as players do). ffmpeg 5.1's `rotate=N` tag becomes a matrix that turns the
/// picture N degrees counter-clockwise, so 90 and 270 read back swapped; the white block in the
/// stored top-left corner pins the direction.
#[test]
fn rotation_is_the_clockwise_turn_ffmpeg_displays() {
    use common::{
        Corner, bright_corner, corner_clip, ffmpeg_display, ffmpeg_stored, turn_clockwise,
    };
    let dir = tempfile::tempdir().expect("tempdir");
    for (tag, rotation, corner) in [
        (0, 0, Corner::TopLeft),
        (90, 270, Corner::BottomLeft),
        (180, 180, Corner::BottomRight),
        (270, 90, Corner::TopRight),
    ] {
        let clip = corner_clip(dir.path(), tag);
        let r = ok(&clip);
        let v = &r.video[0];
        assert_eq!(
            (v.rotation, v.flipped),
            (rotation, false),
            "rotate={tag}: {r:?}"
        );
        assert_eq!((v.width, v.height), (320, 180), "stored size");

        let (w, h, shown) = ffmpeg_display(&clip);
        assert_eq!(bright_corner(&shown, w, h), Some(corner), "rotate={tag}");
        let (sw, sh, stored) = ffmpeg_stored(&clip);
        let (tw, th, turned) = turn_clockwise(&stored, sw, sh, v.rotation);
        assert_eq!((tw, th), (w, h), "rotate={tag}: displayed size");
        let off = turned
            .iter()
            .zip(&shown)
            .filter(|(a, b)| a.abs_diff(**b) > 32)
            .count();
        assert_eq!(
            off, 0,
            "rotate={tag}: pixels that differ from ffmpeg's picture"
        );
    }
}

#[test]
fn broken_files_are_rejected_with_their_code() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let code = |p: &Path| {
        probe(p, Duration::from_secs(20))
            .expect_err("rejected")
            .code
    };

    let empty = d.join("empty.mp4");
    std::fs::write(&empty, b"").expect("write");
    assert_eq!(code(&empty), "empty");

    let noise = d.join("noise.mp4");
    let bytes: Vec<u8> = (0..200_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    std::fs::write(&noise, &bytes).expect("write");
    assert_eq!(code(&noise), "not-media");

    let text = d.join("notes.mov");
    std::fs::write(&text, "just some words, not a movie\n".repeat(100)).expect("write");
    assert_eq!(code(&text), "not-media");

    // Cut in the middle: the index (moov, written last) is gone.
    let whole = ffmpeg(
        d,
        "whole.mp4",
        &args(&[
            &[
                "-f",
                "lavfi",
                "-i",
                "testsrc=size=320x240:rate=25:duration=4",
            ],
            &["-c:v", "libx264", "-pix_fmt", "yuv420p"],
        ]),
    );
    let data = std::fs::read(&whole).expect("read");
    let cut = d.join("cut.mp4");
    std::fs::write(&cut, &data[..data.len() / 2]).expect("write");
    assert_eq!(code(&cut), "truncated");

    // Index first (faststart), media cut short: the header promises 4 s that are not there.
    let fast = ffmpeg(
        d,
        "fast.mp4",
        &args(&[
            &[
                "-f",
                "lavfi",
                "-i",
                "testsrc=size=320x240:rate=25:duration=4",
            ],
            &[
                "-c:v",
                "libx264",
                "-pix_fmt",
                "yuv420p",
                "-movflags",
                "+faststart",
            ],
        ]),
    );
    let data = std::fs::read(&fast).expect("read");
    let short = d.join("short.mp4");
    std::fs::write(&short, &data[..data.len() / 2]).expect("write");
    assert_eq!(code(&short), "truncated");
}

#[test]
fn limits_reject_with_stable_codes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let r = ok(&ffmpeg(
        dir.path(),
        "a.mp4",
        &args(&[
            &VIDEO,
            &TONE,
            &[
                "-c:v",
                "libx264",
                "-pix_fmt",
                "yuv420p",
                "-c:a",
                "aac",
                "-shortest",
            ],
        ]),
    ));
    let roomy = MediaLimits {
        max_duration_secs: 3600.0,
        max_width: 7680,
        max_height: 4320,
        max_pixels: 7680 * 4320,
        max_fps: 120.0,
        max_audio_channels: 8,
        max_audio_rate: 192_000,
        codecs: vec![],
        containers: vec![],
    };
    assert!(check_limits(&r, &roomy).is_ok());
    let cases = [
        (
            MediaLimits {
                max_duration_secs: 1.0,
                ..roomy.clone()
            },
            "too-long",
        ),
        (
            MediaLimits {
                max_width: 100,
                ..roomy.clone()
            },
            "too-large",
        ),
        (
            MediaLimits {
                max_pixels: 1000,
                ..roomy.clone()
            },
            "too-large",
        ),
        (
            MediaLimits {
                max_fps: 24.0,
                ..roomy.clone()
            },
            "frame-rate-too-high",
        ),
        (
            MediaLimits {
                max_audio_rate: 44_100,
                ..roomy.clone()
            },
            "sample-rate-too-high",
        ),
        (
            MediaLimits {
                codecs: vec!["vp9".into(), "opus".into()],
                ..roomy.clone()
            },
            "unsupported-codec",
        ),
        (
            MediaLimits {
                containers: vec!["video/x-matroska".into()],
                ..roomy.clone()
            },
            "unsupported-container",
        ),
    ];
    for (limits, expected) in cases {
        assert_eq!(
            check_limits(&r, &limits).expect_err(expected).code,
            expected
        );
    }
}
