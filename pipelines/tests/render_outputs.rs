//! The output side of the render engine, end to end: for every preset, test-pattern video and
//! audio go through `output_bin` into a file, which is then probed, decoded and inspected.
//! Media is tiny (160x90, one second) so the suite stays quick on two cores.

use std::path::{Path, PathBuf};
use std::time::Duration;

use gstreamer as gst;
use gstreamer_pbutils as pbutils;
use nve_pipelines::probe::{ProbeReport, probe};
use nve_pipelines::render::encoders::{self, EncoderCandidate, EncoderPolicy};
use nve_pipelines::render::output::{OutputError, OutputReport, output_bin, run_to_eos};
use nve_pipelines::render::profiles::{
    BaseFormat, Colorimetry, OutputProfile, PRESETS, ResolvedFormats,
};
use pbutils::prelude::*;

const W: u32 = 160;
const H: u32 = 90;
const FPS: u32 = 25;

fn init() {
    nve_pipelines::elements::inventory().expect("GStreamer initialises");
}

fn base() -> BaseFormat {
    BaseFormat {
        width: W,
        height: H,
        fps_num: FPS,
        fps_den: 1,
        sample_rate: 48000,
        channels: 2,
        source_colorimetry: None,
    }
}

/// A preset, with the animated ones brought down to the test size (their presets ask for 480
/// pixels wide).
fn preset(name: &str) -> OutputProfile {
    let mut p = OutputProfile::preset(name).expect(name);
    if matches!(name, "gif" | "webp")
        && let Some(v) = p.video.as_mut()
    {
        v.width = Some(W);
    }
    p
}

struct Rendered {
    report: OutputReport,
    formats: ResolvedFormats,
    _dir: tempfile::TempDir,
}

impl Rendered {
    fn path(&self) -> &Path {
        &self.report.path
    }
}

/// `videotestsrc ! capsfilter ! <video_sink>` and `audiotestsrc ! capsfilter ! <audio_sink>`
/// (what the profile has), run to EOS. `frames: None` runs the video source without end (for
/// stills, which must stop the pipeline themselves).
fn render_with(
    profile: &OutputProfile,
    encoder: &EncoderCandidate,
    frames: Option<u32>,
    pattern: &str,
) -> Result<Rendered, OutputError> {
    init();
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join(format!("out.{}", profile.extension()));
    let formats = profile.resolve(&base())?;
    let out = output_bin(
        profile,
        formats.video.as_ref(),
        formats.audio.as_ref(),
        encoder,
        &path,
    )?;
    let pipeline = gst::Pipeline::new();
    pipeline.add(&out.bin).expect("add bin");
    if let (Some(v), Some(pad)) = (&formats.video, &out.video_sink) {
        let n = frames.map_or(-1, |f| f as i32);
        let src = gst::ElementFactory::make("videotestsrc")
            .property("num-buffers", n)
            .property_from_str("pattern", pattern)
            .build()
            .expect("videotestsrc");
        let caps = gst::Caps::builder("video/x-raw")
            .field("format", "I420")
            .field("width", v.width as i32)
            .field("height", v.height as i32)
            .field(
                "framerate",
                gst::Fraction::new(v.fps_num as i32, v.fps_den as i32),
            )
            .field("pixel-aspect-ratio", gst::Fraction::new(1, 1))
            .build();
        let filter = gst::ElementFactory::make("capsfilter")
            .property("caps", caps)
            .build()
            .expect("capsfilter");
        pipeline.add_many([&src, &filter]).expect("add");
        src.link(&filter).expect("link");
        filter
            .static_pad("src")
            .expect("src")
            .link(pad)
            .expect("link to video_sink");
    }
    if let (Some(a), Some(pad)) = (&formats.audio, &out.audio_sink) {
        let src = gst::ElementFactory::make("audiotestsrc")
            .property("num-buffers", 100i32)
            .property("samplesperbuffer", (a.rate / 100) as i32)
            .build()
            .expect("audiotestsrc");
        let caps = gst::Caps::builder("audio/x-raw")
            .field("format", "F32LE")
            .field("layout", "interleaved")
            .field("rate", a.rate as i32)
            .field("channels", a.channels as i32)
            .build();
        let filter = gst::ElementFactory::make("capsfilter")
            .property("caps", caps)
            .build()
            .expect("capsfilter");
        pipeline.add_many([&src, &filter]).expect("add");
        src.link(&filter).expect("link");
        filter
            .static_pad("src")
            .expect("src")
            .link(pad)
            .expect("link to audio_sink");
    }
    match run_to_eos(&pipeline, &out, Duration::from_secs(60)) {
        Ok(()) => Ok(Rendered {
            report: out.finish()?,
            formats,
            _dir: dir,
        }),
        Err(e) => {
            out.abort();
            Err(e)
        }
    }
}

fn software(profile: &OutputProfile) -> EncoderCandidate {
    encoders::best(profile, EncoderPolicy::Off).expect("a software encoder")
}

fn render(profile: &OutputProfile) -> Rendered {
    let frames = profile
        .resolve(&base())
        .expect("resolves")
        .video
        .map(|v| (v.fps() * 1.0).round() as u32);
    render_with(profile, &software(profile), frames, "ball")
        .unwrap_or_else(|e| panic!("{:?}: {} ({e})", profile.name, e.code()))
}

fn probed(r: &Rendered) -> ProbeReport {
    probe(r.path(), Duration::from_secs(20)).unwrap_or_else(|e| panic!("probe: {e}"))
}

/// Discoverer's caps of the first video stream (probe's report has no caps).
fn video_caps(path: &Path) -> gst::Caps {
    let uri = gst::glib::filename_to_uri(path, None).expect("uri");
    let d = pbutils::Discoverer::new(gst::ClockTime::from_seconds(10)).expect("discoverer");
    let info = d.discover_uri(&uri).expect("discovers");
    info.video_streams()
        .first()
        .and_then(|s| s.caps())
        .expect("video caps")
}

/// Decodes the whole file: video frames counted, the decoded video caps, audio seconds.
struct Decoded {
    video_frames: u64,
    raw_video_caps: Option<gst::Caps>,
    audio_secs: f64,
}

fn decode(path: &Path) -> Decoded {
    use std::sync::{Arc, Mutex};
    let uri = gst::glib::filename_to_uri(path, None).expect("uri");
    let pipeline = gst::Pipeline::new();
    let dec = gst::ElementFactory::make("uridecodebin")
        .property("uri", uri.as_str())
        .build()
        .expect("uridecodebin");
    pipeline.add(&dec).expect("add");
    let state = Arc::new(Mutex::new((0u64, None::<gst::Caps>, 0u64)));
    let weak = pipeline.downgrade();
    let st = state.clone();
    dec.connect_pad_added(move |_, pad| {
        let Some(pipeline) = weak.upgrade() else {
            return;
        };
        let sink = gst::ElementFactory::make("fakesink")
            .property("sync", false)
            .build()
            .expect("fakesink");
        pipeline.add(&sink).expect("add");
        sink.sync_state_with_parent().expect("sync");
        let is_video = pad
            .current_caps()
            .and_then(|c| c.structure(0).map(|s| s.name().starts_with("video/")))
            .unwrap_or(false);
        let sinkpad = sink.static_pad("sink").expect("sink pad");
        let st = st.clone();
        sinkpad.add_probe(gst::PadProbeType::BUFFER, move |pad, info| {
            if let (Some(buf), Ok(mut s)) = (info.buffer(), st.lock()) {
                if is_video {
                    s.0 += 1;
                    if s.1.is_none() {
                        s.1 = pad.current_caps();
                    }
                } else {
                    s.2 += buf.duration().map_or(0, |d| d.nseconds());
                }
            }
            gst::PadProbeReturn::Ok
        });
        pad.link(&sinkpad).expect("link decoded pad");
    });
    pipeline.set_state(gst::State::Playing).expect("play");
    let bus = pipeline.bus().expect("bus");
    let mut ok = false;
    for msg in bus.iter_timed(gst::ClockTime::from_seconds(30)) {
        match msg.view() {
            gst::MessageView::Eos(_) => {
                ok = true;
                break;
            }
            gst::MessageView::Error(e) => panic!("decoding {}: {}", path.display(), e.error()),
            _ => {}
        }
    }
    pipeline.set_state(gst::State::Null).expect("null");
    assert!(ok, "decoding {} did not finish", path.display());
    let s = state.lock().expect("lock");
    Decoded {
        video_frames: s.0,
        raw_video_caps: s.1.clone(),
        audio_secs: s.2 as f64 / 1e9,
    }
}

fn caps_str(caps: &gst::Caps, field: &str) -> String {
    caps.structure(0)
        .and_then(|s| s.get::<String>(field).ok())
        .unwrap_or_default()
}

/// Top-level ISO BMFF boxes in order.
fn boxes(path: &Path) -> Vec<String> {
    let data = std::fs::read(path).expect("read");
    let mut out = Vec::new();
    let mut off = 0usize;
    while off + 8 <= data.len() {
        let size = u32::from_be_bytes([data[off], data[off + 1], data[off + 2], data[off + 3]]);
        let kind = String::from_utf8_lossy(&data[off + 4..off + 8]).to_string();
        let size = match size {
            1 if off + 16 <= data.len() => {
                u64::from_be_bytes(data[off + 8..off + 16].try_into().expect("8 bytes")) as usize
            }
            0 => data.len() - off,
            s => s as usize,
        };
        out.push(kind);
        if size < 8 {
            break;
        }
        off += size;
    }
    out
}

fn assert_faststart(path: &Path) {
    let b = boxes(path);
    let moov = b.iter().position(|k| k == "moov").expect("moov");
    let mdat = b.iter().position(|k| k == "mdat").expect("mdat");
    assert!(moov < mdat, "index after media: {b:?}");
}

fn assert_duration(p: &ProbeReport, expected: f64, tolerance: f64) {
    let d = p.duration.expect("duration");
    assert!(
        (d - expected).abs() <= tolerance,
        "duration {d} s, expected {expected} ± {tolerance}"
    );
}

fn assert_av(r: &Rendered, container: &str, vcodec: &str, acodec: &str) -> ProbeReport {
    let p = probed(r);
    assert_eq!(p.container, container, "{p:?}");
    assert_eq!(p.video.len(), 1, "{p:?}");
    let v = &p.video[0];
    assert_eq!(v.codec, vcodec);
    assert_eq!((v.width, v.height), (W, H));
    assert_eq!((v.fps_num, v.fps_den), (FPS as i32, 1));
    assert_eq!(p.audio.len(), 1, "{p:?}");
    let a = &p.audio[0];
    assert_eq!(a.codec, acodec);
    let fmt = r.formats.audio.expect("audio format");
    assert_eq!((a.sample_rate, a.channels), (fmt.rate, fmt.channels));
    assert_duration(&p, 1.0, 1.0 / f64::from(FPS));
    let d = decode(r.path());
    assert_eq!(d.video_frames, u64::from(FPS), "every frame decodes once");
    assert!(
        (d.audio_secs - 1.0).abs() < 0.05,
        "audio {} s",
        d.audio_secs
    );
    assert_eq!(r.report.video_frames, u64::from(FPS));
    p
}

#[test]
fn h264_is_high_420_faststart_mp4_with_aac() {
    let r = render(&preset("h264"));
    assert_eq!(r.report.video_encoder.as_deref(), Some("x264enc"));
    assert_av(&r, "video/quicktime", "h264", "aac");
    assert_faststart(r.path());
    let caps = video_caps(r.path());
    assert_eq!(caps_str(&caps, "profile"), "high", "{caps}");
    assert_eq!(caps_str(&caps, "chroma-format"), "4:2:0", "{caps}");
    assert_eq!(
        caps_str(&caps, "colorimetry"),
        "bt601",
        "SD is tagged bt601: {caps}"
    );
    let raw = decode(r.path()).raw_video_caps.expect("decoded caps");
    assert_eq!(caps_str(&raw, "format"), "I420", "{raw}");
    // The side file for faststart is gone.
    let side = PathBuf::from(format!("{}.faststart", r.path().display()));
    assert!(!side.exists(), "{side:?} left behind");
}

#[test]
fn h264_colorimetry_is_chosen_deliberately() {
    let mut p = preset("h264-fast");
    if let Some(v) = p.video.as_mut() {
        v.colorimetry = Colorimetry::Bt709;
    }
    let r = render(&p);
    assert_av(&r, "video/quicktime", "h264", "aac");
    let caps = video_caps(r.path());
    assert_eq!(caps_str(&caps, "colorimetry"), "bt709", "{caps}");
}

#[test]
fn h265_mp4() {
    let r = render(&preset("h265"));
    assert_av(&r, "video/quicktime", "h265", "aac");
    assert_faststart(r.path());
    let caps = video_caps(r.path());
    assert_eq!(caps_str(&caps, "profile"), "main", "{caps}");
}

#[test]
fn vp9_webm_with_opus() {
    let r = render(&preset("vp9"));
    assert_av(&r, "video/webm", "vp9", "opus");
    let raw = decode(r.path()).raw_video_caps.expect("decoded caps");
    assert_eq!(caps_str(&raw, "format"), "I420", "{raw}");
}

#[test]
fn av1_webm_with_opus() {
    let p = preset("av1");
    assert!(p.is_experimental());
    let r = render(&p);
    assert_av(&r, "video/webm", "av1", "opus");
}

#[test]
fn prores_mov_is_422_10bit_with_pcm() {
    let r = render(&preset("prores"));
    let p = assert_av(&r, "video/quicktime", "prores", "pcm");
    assert_eq!(p.audio[0].bit_depth, 24, "{p:?}");
    let raw = decode(r.path()).raw_video_caps.expect("decoded caps");
    assert_eq!(caps_str(&raw, "format"), "I422_10LE", "{raw}");
    let caps = video_caps(r.path());
    assert_eq!(caps_str(&caps, "variant"), "standard", "{caps}");
}

#[test]
fn prores_hq_is_tagged_hq() {
    let r = render(&preset("prores-hq"));
    assert_av(&r, "video/quicktime", "prores", "pcm");
    let caps = video_caps(r.path());
    assert_eq!(caps_str(&caps, "variant"), "hq", "{caps}");
}

#[test]
fn gif_is_animated_with_every_frame() {
    let r = render(&preset("gif"));
    let v = r.formats.video.clone().expect("video");
    assert_eq!((v.width, v.height, v.fps_num), (W, H, 15));
    let file = std::fs::File::open(r.path()).expect("open");
    let mut opts = gif::DecodeOptions::new();
    opts.set_color_output(gif::ColorOutput::RGBA);
    let mut dec = opts.read_info(file).expect("a GIF");
    assert_eq!((u32::from(dec.width()), u32::from(dec.height())), (W, H));
    let (mut frames, mut centis) = (0u32, 0u32);
    while let Some(f) = dec.read_next_frame().expect("frame") {
        frames += 1;
        centis += u32::from(f.delay);
    }
    assert_eq!(frames, 15, "one GIF frame per (moving) input frame");
    assert_eq!(centis, 100, "delays add up to one second");
    assert_eq!(r.report.video_frames, 15);
}

#[test]
fn gif_merges_identical_frames() {
    let p = preset("gif");
    let r = render_with(&p, &software(&p), Some(15), "red").expect("renders");
    let file = std::fs::File::open(r.path()).expect("open");
    let mut dec = gif::DecodeOptions::new().read_info(file).expect("a GIF");
    let mut frames = Vec::new();
    while let Some(f) = dec.read_next_frame().expect("frame") {
        frames.push(f.delay);
    }
    assert_eq!(
        frames,
        vec![100],
        "a still picture is one frame of a second"
    );
}

#[test]
fn webp_is_animated_with_every_frame() {
    let r = render(&preset("webp"));
    let data = std::fs::read(r.path()).expect("read");
    assert_eq!(&data[0..4], b"RIFF");
    assert_eq!(&data[8..12], b"WEBP");
    let dec = webp_animation::Decoder::new(&data).expect("animated WebP");
    assert_eq!(dec.dimensions(), (W, H));
    let frames: Vec<_> = dec.into_iter().collect();
    assert_eq!(frames.len(), 15);
    // Timestamps are frame ends in the decoder's view; the last is the whole length.
    let last = frames.last().expect("frames").timestamp();
    assert!((last - 1000).abs() <= 1, "ends at {last} ms");
}

fn assert_audio_only(r: &Rendered, container: &str, codec: &str, tolerance: f64) -> ProbeReport {
    let p = probed(r);
    assert_eq!(p.container, container, "{p:?}");
    assert!(p.video.is_empty(), "{p:?}");
    assert_eq!(p.audio.len(), 1, "{p:?}");
    assert_eq!(p.audio[0].codec, codec);
    assert_eq!((p.audio[0].sample_rate, p.audio[0].channels), (48000, 2));
    assert_duration(&p, 1.0, tolerance);
    p
}

#[test]
fn aac_m4a() {
    let r = render(&preset("aac"));
    assert_audio_only(&r, "video/quicktime", "aac", 0.03);
    assert_faststart(r.path());
    assert_eq!(preset("aac").mime_type(), "audio/mp4");
}

#[test]
fn wav_pcm() {
    let r = render(&preset("wav"));
    let p = assert_audio_only(&r, "audio/x-wav", "pcm", 0.001);
    assert_eq!(p.audio[0].bit_depth, 16);
    // Exactly one second of 16-bit stereo plus the RIFF header (wavenc adds a LIST chunk).
    let header = r.report.bytes - 48000 * 4;
    assert!((44..=128).contains(&header), "{} bytes", r.report.bytes);
}

#[test]
fn mp3_cbr() {
    let r = render(&preset("mp3"));
    // LAME pads to whole 1152-sample frames and adds its encoder delay.
    assert_audio_only(&r, "audio/mpeg", "mp3", 0.08);
}

#[test]
fn flac_lossless() {
    let r = render(&preset("flac"));
    assert_audio_only(&r, "audio/x-flac", "flac", 0.001);
}

/// Average luma of a decoded still.
fn mean_luma(path: &Path) -> f64 {
    let pipeline = gst::parse::launch(&format!(
        "filesrc location=\"{}\" ! decodebin ! videoconvert ! video/x-raw,format=GRAY8 ! appsink name=s sync=false",
        path.display()
    ))
    .expect("pipeline")
    .downcast::<gst::Pipeline>()
    .expect("a pipeline");
    let sink = pipeline.by_name("s").expect("appsink");
    pipeline.set_state(gst::State::Playing).expect("play");
    let sample = sink.emit_by_name::<Option<gst::Sample>>("pull-sample", &[]);
    pipeline.set_state(gst::State::Null).expect("null");
    let sample = sample.expect("a decoded frame");
    let caps = sample.caps().expect("caps").to_owned();
    let s = caps.structure(0).expect("structure");
    let (w, h) = (
        s.get::<i32>("width").expect("w") as usize,
        s.get::<i32>("height").expect("h") as usize,
    );
    let buf = sample.buffer().expect("buffer");
    let map = buf.map_readable().expect("map");
    let stride = map.len() / h;
    let sum: u64 = (0..h)
        .flat_map(|y| {
            map[y * stride..y * stride + w]
                .iter()
                .map(|v| u64::from(*v))
        })
        .sum();
    sum as f64 / (w * h) as f64
}

fn still(name: &str, at: Option<f64>, pattern: &str) -> Result<Rendered, OutputError> {
    let mut p = preset(name);
    if let Some(v) = p.video.as_mut() {
        v.at_secs = at;
    }
    // No end to the source: the still must stop the pipeline by itself.
    render_with(&p, &software(&p), None, pattern)
}

#[test]
fn png_still_is_one_valid_image() {
    let r = still("png", None, "smpte").expect("renders");
    let data = std::fs::read(r.path()).expect("read");
    assert_eq!(&data[..8], b"\x89PNG\r\n\x1a\n");
    let p = probed(&r);
    assert_eq!(p.kind, "image", "{p:?}");
    assert_eq!(p.video[0].codec, "png");
    assert_eq!((p.video[0].width, p.video[0].height), (W, H));
    assert_eq!(r.report.video_frames, 1);
}

#[test]
fn jpeg_still_is_one_valid_image() {
    let r = still("jpeg", None, "smpte").expect("renders");
    let data = std::fs::read(r.path()).expect("read");
    assert_eq!(&data[..3], b"\xff\xd8\xff");
    assert_eq!(&data[data.len() - 2..], b"\xff\xd9");
    let p = probed(&r);
    assert_eq!(p.kind, "image", "{p:?}");
    assert_eq!(p.video[0].codec, "jpeg");
    assert_eq!((p.video[0].width, p.video[0].height), (W, H));
    assert_eq!(r.report.video_frames, 1);
    assert_eq!(r.path().extension().and_then(|e| e.to_str()), Some("jpg"));
}

#[test]
fn poster_takes_the_frame_at_its_time() {
    // `blink` alternates white and black frames: even and odd frames differ, so the luma
    // says which frame was taken.
    let luma = |at: f64| {
        let r = still("poster", Some(at), "blink").expect("renders");
        assert_eq!(r.report.video_frames, 1);
        mean_luma(r.path())
    };
    let frame0 = luma(0.0);
    let frame1 = luma(0.04);
    let frame12 = luma(0.5); // 0.48 ≤ 0.5 < 0.52: frame 12
    let frame13 = luma(0.53);
    assert!((frame0 - frame1).abs() > 100.0, "{frame0} vs {frame1}");
    assert!((frame12 - frame0).abs() < 10.0, "{frame12} vs {frame0}");
    assert!((frame13 - frame1).abs() < 10.0, "{frame13} vs {frame1}");
}

#[test]
fn still_past_the_end_is_no_frame() {
    let mut p = preset("poster");
    if let Some(v) = p.video.as_mut() {
        v.at_secs = Some(5.0);
    }
    let err = render_with(&p, &software(&p), Some(10), "smpte")
        .err()
        .expect("fails");
    assert_eq!(err.code(), "no-frame", "{err}");
}

#[test]
fn every_preset_renders_a_file_of_its_kind() {
    // The per-format tests above look closer; this one guards the preset list itself.
    for name in PRESETS {
        let p = preset(name);
        let frames = p
            .resolve(&base())
            .expect("resolves")
            .video
            .map(|v| v.fps().round() as u32);
        let cand = software(&p);
        let pattern = "ball";
        let r = if p.is_still() {
            render_with(&p, &cand, None, pattern)
        } else {
            render_with(&p, &cand, frames, pattern)
        }
        .unwrap_or_else(|e| panic!("{name}: {} ({e})", e.code()));
        assert!(r.report.bytes > 0, "{name}");
        assert_eq!(
            r.path().extension().and_then(|e| e.to_str()),
            Some(p.extension())
        );
    }
}

#[test]
fn wrong_inputs_have_stable_codes() {
    init();
    let dir = tempfile::tempdir().expect("tempdir");
    let p = preset("h264");
    let f = p.resolve(&base()).expect("resolves");
    let x264 = software(&p);
    let path = dir.path().join("x.mp4");
    // A video profile without a video format.
    let e = output_bin(&p, None, f.audio.as_ref(), &x264, &path)
        .err()
        .expect("fails");
    assert_eq!(e.code(), "invalid-format");
    // An encoder of another codec.
    let wav = preset("wav");
    let pcm = software(&wav);
    let e = output_bin(&p, f.video.as_ref(), f.audio.as_ref(), &pcm, &path)
        .err()
        .expect("fails");
    assert_eq!(e.code(), "encoder-unavailable");
    // An odd size for a 4:2:0 codec.
    let mut odd = f.video.clone().expect("video");
    odd.width = 161;
    let e = output_bin(&p, Some(&odd), f.audio.as_ref(), &x264, &path)
        .err()
        .expect("fails");
    assert_eq!(e.code(), "invalid-format");
    // A directory that does not exist.
    let e = output_bin(
        &p,
        f.video.as_ref(),
        f.audio.as_ref(),
        &x264,
        &dir.path().join("missing/x.mp4"),
    )
    .err()
    .expect("fails");
    assert_eq!(e.code(), "write-failed");
    // An invalid profile.
    let mut bad = p.clone();
    if let Some(v) = bad.video.as_mut() {
        v.quality = Some(99);
    }
    let e = output_bin(&bad, f.video.as_ref(), f.audio.as_ref(), &x264, &path)
        .err()
        .expect("fails");
    assert_eq!(e.code(), "invalid-profile");
}

#[test]
fn unwritable_output_fails_as_write_failed() {
    let p = preset("wav");
    init();
    let f = p.resolve(&base()).expect("resolves");
    // /proc exists but nothing can be created in it: filesink fails when it starts.
    let out = output_bin(
        &p,
        None,
        f.audio.as_ref(),
        &software(&p),
        Path::new("/proc/nve-test.wav"),
    )
    .expect("builds");
    let pipeline = gst::Pipeline::new();
    pipeline.add(&out.bin).expect("add");
    let src = gst::ElementFactory::make("audiotestsrc")
        .property("num-buffers", 10i32)
        .build()
        .expect("src");
    let conv = gst::ElementFactory::make("audioconvert")
        .build()
        .expect("conv");
    pipeline.add_many([&src, &conv]).expect("add");
    src.link(&conv).expect("link");
    conv.static_pad("src")
        .expect("src")
        .link(out.audio_sink.as_ref().expect("audio pad"))
        .expect("link");
    let e = run_to_eos(&pipeline, &out, Duration::from_secs(20)).expect_err("fails");
    assert_eq!(e.code(), "write-failed", "{e}");
}

#[test]
fn hardware_encoders_when_present() {
    init();
    let hw = encoders::working_hardware();
    if hw.is_empty() {
        // Test output, not logging: shown with --nocapture.
        eprintln!("skipped: {}", encoders::hardware_summary());
        return;
    }
    for status in hw {
        let c = &status.candidate;
        let name = match c.codec {
            encoders::Codec::Video(v) => v.name(),
            encoders::Codec::Audio(_) => continue,
        };
        let p = preset(name);
        let frames = Some(FPS);
        let r = render_with(&p, c, frames, "ball")
            .unwrap_or_else(|e| panic!("{}: {} ({e})", c.element, e.code()));
        assert!(r.report.hardware);
        let pr = probed(&r);
        assert_eq!(pr.video[0].codec, name, "{}", c.element);
        assert_eq!((pr.video[0].width, pr.video[0].height), (W, H));
        let d = decode(r.path());
        assert_eq!(d.video_frames, u64::from(FPS), "{}", c.element);
    }
}

#[test]
fn policy_orders_candidates() {
    init();
    let p = preset("h264");
    let auto = encoders::candidates(&p, EncoderPolicy::Auto).expect("candidates");
    let off = encoders::candidates(&p, EncoderPolicy::Off).expect("candidates");
    assert_eq!(off.len(), 1, "{off:?}");
    assert_eq!(off[0].element, "x264enc");
    assert_eq!(
        auto.last(),
        off.last(),
        "software is always the last resort"
    );
    let nv = encoders::candidates(&p, EncoderPolicy::Nvcodec).expect("candidates");
    assert!(nv.iter().all(|c| c.kind != encoders::EncoderKind::Vaapi));
}

#[test]
fn surround_audio_gets_an_encoder_that_carries_it() {
    init();
    let dir = tempfile::tempdir().expect("tempdir");
    let p = preset("aac");
    let mut b = base();
    b.channels = 6;
    // Candidates are listed before the channel count is known: the stereo-only voaacenc may
    // come first, and the bin must not use it for six channels.
    let first = software(&p);
    let path = dir.path().join("surround.m4a");
    let (report, _) = nve_pipelines::render::output::test_encode(
        &p,
        &first,
        &b,
        1.0,
        &path,
        Duration::from_secs(60),
    )
    .unwrap_or_else(|e| panic!("{} ({e})", e.code()));
    assert_eq!(report.audio_encoder.as_deref(), Some("avenc_aac"));
    let pr = probe(&path, Duration::from_secs(20)).expect("probe");
    assert_eq!(pr.audio[0].channels, 6, "{pr:?}");
}
