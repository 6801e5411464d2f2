//! Proxies of clips the tests generate with ffmpeg: sizes, rotation, pixel aspect, frame-rate
//! caps, audio conforming, the MP4 layout browsers need, and the failures.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use nve_pipelines::probe::{ProbeReport, probe};
use nve_pipelines::proxy::{ProxyReport, ProxySpec, make_proxy};

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

fn probed(path: &Path) -> ProbeReport {
    probe(path, Duration::from_secs(20)).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Top-level MP4 box types in file order.
fn boxes(path: &Path) -> Vec<String> {
    let data = std::fs::read(path).expect("read output");
    let mut out = Vec::new();
    let mut at = 0usize;
    while at + 8 <= data.len() {
        let mut size =
            u32::from_be_bytes([data[at], data[at + 1], data[at + 2], data[at + 3]]) as usize;
        let kind = String::from_utf8_lossy(&data[at + 4..at + 8]).into_owned();
        if size == 1 && at + 16 <= data.len() {
            let mut large = [0u8; 8];
            large.copy_from_slice(&data[at + 8..at + 16]);
            size = u64::from_be_bytes(large) as usize;
        } else if size == 0 {
            size = data.len() - at;
        }
        assert!(size >= 8, "malformed box {kind} at {at}");
        out.push(kind);
        at += size;
    }
    assert_eq!(at, data.len(), "boxes do not add up to the file");
    out
}

/// Runs a proxy and checks what every proxy must be: H.264 High-or-lower 4:2:0 video with
/// square pixels and even sizes, moov before mdat, the report matching the file.
fn proxy_of(input: &Path, output: &Path, spec: &ProxySpec) -> (ProxyReport, ProbeReport) {
    let mut fractions = Vec::new();
    let report = make_proxy(input, output, spec, &mut |f| fractions.push(f))
        .unwrap_or_else(|e| panic!("proxy of {}: {e}", input.display()));
    assert!(
        fractions.windows(2).all(|w| w[0] <= w[1]),
        "progress goes backwards: {fractions:?}"
    );
    assert_eq!(fractions.last().copied(), Some(1.0), "{fractions:?}");
    assert!(fractions.iter().all(|f| (0.0..=1.0).contains(f)));

    let order = boxes(output);
    let moov = order.iter().position(|b| b == "moov").expect("a moov box");
    let mdat = order.iter().position(|b| b == "mdat").expect("an mdat box");
    assert!(
        moov < mdat,
        "moov must precede mdat for progressive playback: {order:?}"
    );

    let p = probed(output);
    assert_eq!(p.container, "video/quicktime");
    assert_eq!(p.video.len(), 1);
    let v = &p.video[0];
    assert_eq!(v.codec, "h264");
    assert_eq!((v.width, v.height), (report.width, report.height));
    assert_eq!(v.width % 2, 0);
    assert_eq!(v.height % 2, 0);
    assert_eq!((v.par_num, v.par_den), (1, 1));
    assert_eq!(v.rotation, 0, "the proxy is upright itself");
    assert_eq!((v.fps_num, v.fps_den), (report.fps_num, report.fps_den));
    assert_eq!(p.audio.is_empty(), !report.has_audio);
    for a in &p.audio {
        assert_eq!(a.codec, "aac");
        assert_eq!((a.sample_rate, a.channels), (48_000, 2));
    }
    assert_eq!(
        report.bytes,
        std::fs::metadata(output).expect("output").len()
    );
    (report, p)
}

fn frame(r: &ProxyReport) -> f64 {
    f64::from(r.fps_den) / f64::from(r.fps_num)
}

fn assert_lasts(r: &ProxyReport, p: &ProbeReport, seconds: f64) {
    let one = frame(r);
    assert!(
        (r.duration - seconds).abs() <= one + 1e-6,
        "video lasts {} s, expected {seconds} ± {one}",
        r.duration
    );
    let file = p.duration.expect("duration");
    assert!(
        (file - seconds).abs() <= one + 1e-6,
        "file lasts {file} s, expected {seconds} ± {one}"
    );
}

#[test]
fn hd_becomes_540p_with_its_aac_copied() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let clip = ffmpeg(
        d,
        "hd.mp4",
        &[
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=1280x720:rate=25:duration=2",
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=440:sample_rate=48000:duration=2",
            "-ac",
            "2",
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
    let (r, p) = proxy_of(&clip, &d.join("p.mp4"), &ProxySpec::default());
    assert_eq!((r.width, r.height), (960, 540));
    assert_eq!((r.fps_num, r.fps_den), (25, 1));
    assert!(r.has_audio && r.audio_copied, "{r:?}");
    assert_lasts(&r, &p, 2.0);

    // The report is what the worker sends back as JSON.
    let json = serde_json::to_value(&r).expect("json");
    for key in [
        "width",
        "height",
        "fps_num",
        "fps_den",
        "has_audio",
        "audio_copied",
        "duration",
        "bytes",
    ] {
        assert!(json.get(key).is_some(), "{key} missing from {json}");
    }
}

#[test]
fn odd_sizes_come_out_even_and_foreign_audio_is_conformed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    // VP9 allows odd sizes (H.264 4:2:0 does not); mono FLAC at 44.1 kHz.
    let clip = ffmpeg(
        d,
        "odd.mkv",
        &[
            "-f",
            "lavfi",
            "-i",
            "testsrc=size=853x479:rate=25:duration=2",
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=440:sample_rate=44100:duration=2",
            "-c:v",
            "libvpx-vp9",
            "-deadline",
            "realtime",
            "-cpu-used",
            "8",
            "-c:a",
            "flac",
        ],
    );
    let (r, p) = proxy_of(&clip, &d.join("p.mp4"), &ProxySpec::default());
    assert_eq!((r.width, r.height), (852, 478));
    assert!(r.has_audio && !r.audio_copied, "{r:?}");
    assert_lasts(&r, &p, 2.0);
}

#[test]
fn a_rotated_phone_clip_gives_an_upright_portrait_proxy_without_audio() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let landscape = ffmpeg(
        d,
        "l.mp4",
        &[
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=1280x720:rate=30:duration=2",
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-pix_fmt",
            "yuv420p",
        ],
    );
    let plain = landscape.display().to_string();
    let rotated = ffmpeg(
        d,
        "r.mp4",
        &[
            "-i",
            plain.as_str(),
            "-c",
            "copy",
            "-metadata:s:v",
            "rotate=90",
        ],
    );
    // ffmpeg's rotate=90 reads back as a 270° display rotation (see tests/probe.rs).
    assert_eq!(
        probed(&rotated).video[0].rotation,
        270,
        "the fixture is rotated"
    );
    let (r, p) = proxy_of(&rotated, &d.join("p.mp4"), &ProxySpec::default());
    assert_eq!((r.width, r.height), (304, 540));
    assert!(!r.has_audio && !r.audio_copied);
    assert!(p.audio.is_empty());
    assert_lasts(&r, &p, 2.0);
}

#[test]
fn sixty_fps_is_halved_and_small_sources_are_not_upscaled() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let clip = ffmpeg(
        d,
        "fast.mp4",
        &[
            "-f",
            "lavfi",
            "-i",
            "testsrc=size=320x240:rate=60:duration=2",
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-pix_fmt",
            "yuv420p",
        ],
    );
    let spec = ProxySpec {
        max_height: 1080,
        ..ProxySpec::default()
    };
    let (r, p) = proxy_of(&clip, &d.join("p.mp4"), &spec);
    assert_eq!((r.width, r.height), (320, 240));
    assert_eq!((r.fps_num, r.fps_den), (30, 1));
    assert_lasts(&r, &p, 2.0);
}

#[test]
fn anamorphic_pixels_are_made_square_and_surround_is_mixed_to_stereo() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    // 16:9 PAL DV style: 720x576 stored, 64:45 pixels, shown as 1024x576; 5.1 AAC.
    let clip = ffmpeg(
        d,
        "ana.mp4",
        &[
            "-f",
            "lavfi",
            "-i",
            "testsrc=size=720x576:rate=25:duration=2",
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=440:sample_rate=48000:duration=2",
            "-vf",
            "setsar=64/45",
            "-ac",
            "6",
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
    let source = probed(&clip);
    assert_eq!(
        (source.video[0].par_num, source.video[0].par_den),
        (64, 45),
        "the fixture is anamorphic"
    );
    assert_eq!(source.audio[0].channels, 6, "the fixture is 5.1");
    let (r, p) = proxy_of(&clip, &d.join("p.mp4"), &ProxySpec::default());
    assert_eq!((r.width, r.height), (960, 540));
    assert!(r.has_audio && !r.audio_copied, "{r:?}");
    assert_lasts(&r, &p, 2.0);
}

#[test]
fn failures_have_codes_and_leave_nothing_behind() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let out = d.join("p.mp4");
    let run = |input: &Path, output: &Path, spec: &ProxySpec| {
        make_proxy(input, output, spec, &mut |_| {}).map_err(|e| e.code)
    };

    let junk = d.join("junk.mp4");
    std::fs::write(&junk, b"this is not a video, just some text ".repeat(200)).expect("write");
    assert_eq!(
        run(&junk, &out, &ProxySpec::default()),
        Err("not-decodable")
    );
    assert!(!out.exists());

    assert_eq!(
        run(&d.join("missing.mp4"), &out, &ProxySpec::default()),
        Err("unreadable")
    );

    let music = ffmpeg(
        d,
        "music.m4a",
        &[
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=440:sample_rate=48000:duration=1",
            "-c:a",
            "aac",
        ],
    );
    assert_eq!(run(&music, &out, &ProxySpec::default()), Err("no-video"));
    assert!(!out.exists());

    let clip = ffmpeg(
        d,
        "c.mp4",
        &[
            "-f",
            "lavfi",
            "-i",
            "testsrc=size=320x240:rate=25:duration=1",
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-pix_fmt",
            "yuv420p",
        ],
    );
    let bad = ProxySpec {
        speed_preset: "warp".into(),
        ..ProxySpec::default()
    };
    assert_eq!(run(&clip, &out, &bad), Err("invalid-spec"));
    assert_eq!(
        run(
            &clip,
            &d.join("no-such-dir").join("p.mp4"),
            &ProxySpec::default()
        ),
        Err("write-failed")
    );
    let leftovers: Vec<_> = std::fs::read_dir(d)
        .expect("list")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("p.mp4"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn specs_travel_as_json_with_defaults() {
    let spec: ProxySpec =
        serde_json::from_str(r#"{"max_height":360,"video_bitrate_kbps":800}"#).expect("json");
    assert_eq!(spec.max_height, 360);
    assert_eq!(spec.video_bitrate_kbps, 800);
    assert_eq!(spec.max_fps, 30);
    let back: ProxySpec =
        serde_json::from_value(serde_json::to_value(&spec).expect("to json")).expect("from json");
    assert_eq!(back, spec);
}
