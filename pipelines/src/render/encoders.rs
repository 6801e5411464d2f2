//! Which encoders this host really has, and how each one is configured.
//!
//! A factory in the registry is not proof that an encoder works: the VA-API and NVENC
//! plugins register their elements when the libraries are installed, then fail at the first
//! frame when there is no device (or no NVENC block on the GPU). So every registered hardware
//! encoder is put through a tiny test encode (a few frames of `videotestsrc` into `fakesink`,
//! bounded by a timeout) before it is offered. Software encoders are only looked up: a broken
//! one is a broken installation, which `nve-worker selftest` reports.
//!
//! Results are cached per codec for the life of the process.
//!
//! [`candidates`] orders what works for a profile under an [`EncoderPolicy`]: hardware first
//! when allowed, software last, so a caller whose hardware encode fails mid-render can build
//! the output again with the next candidate.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use gst::prelude::*;
use gstreamer as gst;
use serde::{Deserialize, Serialize};

use super::output::OutputError;
use super::profiles::{
    AudioCodec, AudioSettings, EffectiveVideo, OutputProfile, ProresProfile, Speed, VideoCodec,
    VideoFormat,
};

/// Which encoders a render may use; mirrors the configuration's `media.hardware_acceleration`.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum EncoderPolicy {
    /// A hardware encoder when one passes the test encode, software otherwise.
    #[default]
    Auto,
    /// Software only.
    Off,
    /// VA-API encoders first, software as the fallback.
    Vaapi,
    /// NVIDIA NVENC encoders first, software as the fallback.
    Nvcodec,
}

/// Where an encoder runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EncoderKind {
    Software,
    Vaapi,
    Nvcodec,
}

impl EncoderKind {
    pub fn is_hardware(self) -> bool {
        self != EncoderKind::Software
    }

    pub fn label(self) -> &'static str {
        match self {
            EncoderKind::Software => "software",
            EncoderKind::Vaapi => "hardware (VA-API)",
            EncoderKind::Nvcodec => "hardware (NVENC)",
        }
    }
}

/// A codec an encoder produces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", tag = "type", content = "codec")]
pub enum Codec {
    Video(VideoCodec),
    Audio(AudioCodec),
}

impl Codec {
    pub fn name(self) -> &'static str {
        match self {
            Codec::Video(v) => v.name(),
            Codec::Audio(a) => a.name(),
        }
    }

    /// Every codec, video first.
    pub const ALL: [Codec; 14] = [
        Codec::Video(VideoCodec::H264),
        Codec::Video(VideoCodec::H265),
        Codec::Video(VideoCodec::Vp9),
        Codec::Video(VideoCodec::Av1),
        Codec::Video(VideoCodec::Prores),
        Codec::Video(VideoCodec::Gif),
        Codec::Video(VideoCodec::Webp),
        Codec::Video(VideoCodec::Png),
        Codec::Video(VideoCodec::Jpeg),
        Codec::Audio(AudioCodec::Aac),
        Codec::Audio(AudioCodec::Opus),
        Codec::Audio(AudioCodec::Mp3),
        Codec::Audio(AudioCodec::Flac),
        Codec::Audio(AudioCodec::Pcm),
    ];

    fn index(self) -> usize {
        Codec::ALL.iter().position(|c| *c == self).unwrap_or(0)
    }
}

/// Encoders that are not GStreamer elements: the animated formats are written by Rust crates
/// from frames pulled out of the pipeline, PCM needs no encoder at all.
pub const RUST_GIF: &str = "rust-gif";
pub const RUST_WEBP: &str = "rust-webp";
pub const PCM: &str = "pcm";

/// One encoder for one codec.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct EncoderCandidate {
    pub codec: Codec,
    /// GStreamer factory name, or [`RUST_GIF`], [`RUST_WEBP`], [`PCM`].
    pub element: String,
    pub kind: EncoderKind,
}

impl EncoderCandidate {
    fn new(codec: Codec, element: &str, kind: EncoderKind) -> Self {
        EncoderCandidate {
            codec,
            element: element.to_owned(),
            kind,
        }
    }

    /// The raw format the encoder takes (it is converted to from the renderer's I420).
    pub fn input_format(&self) -> &'static str {
        match (self.codec, self.kind) {
            (_, EncoderKind::Vaapi | EncoderKind::Nvcodec) => "NV12",
            (Codec::Video(VideoCodec::Prores), _) => "I422_10LE",
            (Codec::Video(VideoCodec::Gif | VideoCodec::Webp), _) => "RGBA",
            (Codec::Video(VideoCodec::Png), _) => "RGB",
            _ => "I420",
        }
    }
}

/// What discovery found for one encoder.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "state")]
pub enum Availability {
    /// Usable; `test_ms` is how long the test encode took (hardware only).
    Available { test_ms: Option<u64> },
    /// The factory is not registered (plugin not installed).
    NotInstalled,
    /// Registered, but the test encode failed (no device, driver error, time-out).
    Failed { reason: String },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EncoderStatus {
    pub candidate: EncoderCandidate,
    pub availability: Availability,
}

impl EncoderStatus {
    pub fn is_available(&self) -> bool {
        matches!(self.availability, Availability::Available { .. })
    }
}

/// Every encoder we know how to drive, per codec, in order of preference within a kind.
/// Hardware names cover the old `gstreamer-vaapi` plugin, the newer `va` plugin and the
/// `nvcodec` plugin across GStreamer releases; absent ones are simply not installed.
pub fn known_encoders(codec: Codec) -> Vec<EncoderCandidate> {
    use EncoderKind::{Nvcodec as N, Software as S, Vaapi as V};
    let list: &[(&str, EncoderKind)] = match codec {
        Codec::Video(VideoCodec::H264) => &[
            ("nvh264enc", N),
            ("nvcudah264enc", N),
            ("nvautogpuh264enc", N),
            ("vah264enc", V),
            ("vah264lpenc", V),
            ("vaapih264enc", V),
            ("x264enc", S),
        ],
        Codec::Video(VideoCodec::H265) => &[
            ("nvh265enc", N),
            ("nvcudah265enc", N),
            ("nvautogpuh265enc", N),
            ("vah265enc", V),
            ("vah265lpenc", V),
            ("vaapih265enc", V),
            ("x265enc", S),
        ],
        Codec::Video(VideoCodec::Vp9) => &[("vavp9enc", V), ("vaapivp9enc", V), ("vp9enc", S)],
        Codec::Video(VideoCodec::Av1) => &[
            ("nvav1enc", N),
            ("nvcudaav1enc", N),
            ("vaav1enc", V),
            ("av1enc", S),
        ],
        Codec::Video(VideoCodec::Prores) => &[("avenc_prores_ks", S)],
        Codec::Video(VideoCodec::Gif) => &[(RUST_GIF, S)],
        Codec::Video(VideoCodec::Webp) => &[(RUST_WEBP, S)],
        Codec::Video(VideoCodec::Png) => &[("pngenc", S)],
        Codec::Video(VideoCodec::Jpeg) => &[("jpegenc", S)],
        // voaacenc first: about half avenc_aac's CPU at the same bitrate, but stereo at most.
        Codec::Audio(AudioCodec::Aac) => &[("voaacenc", S), ("avenc_aac", S)],
        Codec::Audio(AudioCodec::Opus) => &[("opusenc", S)],
        Codec::Audio(AudioCodec::Mp3) => &[("lamemp3enc", S)],
        Codec::Audio(AudioCodec::Flac) => &[("flacenc", S)],
        Codec::Audio(AudioCodec::Pcm) => &[(PCM, S)],
    };
    list.iter()
        .map(|(e, k)| EncoderCandidate::new(codec, e, *k))
        .collect()
}

/// Most channels an audio encoder takes (voaacenc is stereo-only).
pub(crate) fn max_channels(element: &str) -> u32 {
    match element {
        "voaacenc" | "lamemp3enc" => 2,
        _ => 8,
    }
}

/// How long a hardware test encode may take, device initialisation included.
const TEST_TIMEOUT: Duration = Duration::from_secs(8);

/// What this host has for `codec` (cached per process).
pub fn discover(codec: Codec) -> &'static [EncoderStatus] {
    static CACHE: [OnceLock<Vec<EncoderStatus>>; Codec::ALL.len()] =
        [const { OnceLock::new() }; Codec::ALL.len()];
    CACHE[codec.index()].get_or_init(|| {
        known_encoders(codec)
            .into_iter()
            .map(|candidate| {
                let availability = probe_encoder(&candidate);
                match &availability {
                    Availability::Failed { reason } => tracing::warn!(
                        encoder = %candidate.element,
                        codec = codec.name(),
                        %reason,
                        "encoder registered but not usable"
                    ),
                    Availability::Available { test_ms } => tracing::debug!(
                        encoder = %candidate.element,
                        codec = codec.name(),
                        ?test_ms,
                        "encoder available"
                    ),
                    Availability::NotInstalled => {}
                }
                EncoderStatus {
                    candidate,
                    availability,
                }
            })
            .collect()
    })
}

/// Discovery for every codec.
pub fn discover_all() -> Vec<&'static EncoderStatus> {
    Codec::ALL.iter().flat_map(|c| discover(*c)).collect()
}

/// Hardware encoders that passed their test, over all video codecs.
pub fn working_hardware() -> Vec<&'static EncoderStatus> {
    discover_all()
        .into_iter()
        .filter(|s| s.candidate.kind.is_hardware() && s.is_available())
        .collect()
}

/// One line on the state of hardware encoding here, for logs and test output: which
/// hardware encoders work, or why none does.
pub fn hardware_summary() -> String {
    let all = discover_all();
    let hw: Vec<_> = all
        .iter()
        .filter(|s| s.candidate.kind.is_hardware())
        .collect();
    let working: Vec<&str> = hw
        .iter()
        .filter(|s| s.is_available())
        .map(|s| s.candidate.element.as_str())
        .collect();
    if !working.is_empty() {
        return format!("hardware encoders: {}", working.join(", "));
    }
    let failed: Vec<String> = hw
        .iter()
        .filter_map(|s| match &s.availability {
            Availability::Failed { reason } => Some(format!("{}: {reason}", s.candidate.element)),
            _ => None,
        })
        .collect();
    if failed.is_empty() {
        "no VA-API/NVIDIA encoder on this host (no va, vaapi or nvcodec encoder element is registered)"
            .to_owned()
    } else {
        format!(
            "no VA-API/NVIDIA encoder on this host (registered but failing: {})",
            failed.join("; ")
        )
    }
}

fn policy_allows(policy: EncoderPolicy, kind: EncoderKind) -> bool {
    match (policy, kind) {
        (_, EncoderKind::Software) => true,
        (EncoderPolicy::Auto, _) => true,
        (EncoderPolicy::Off, _) => false,
        (EncoderPolicy::Vaapi, k) => k == EncoderKind::Vaapi,
        (EncoderPolicy::Nvcodec, k) => k == EncoderKind::Nvcodec,
    }
}

/// The encoder that decides a profile's output: the video encoder, or the audio encoder of an
/// audio-only profile.
pub fn primary_codec(profile: &OutputProfile) -> Option<Codec> {
    match (&profile.video, &profile.audio) {
        (Some(v), _) => Some(Codec::Video(v.codec)),
        (None, Some(a)) => Some(Codec::Audio(a.codec)),
        (None, None) => None,
    }
}

/// Working encoders for the profile's primary codec, best first: hardware the policy allows
/// (NVENC, then VA-API), then software. Empty is `encoder-unavailable`.
pub fn candidates(
    profile: &OutputProfile,
    policy: EncoderPolicy,
) -> Result<Vec<EncoderCandidate>, OutputError> {
    let codec = primary_codec(profile).ok_or_else(|| OutputError::EncoderUnavailable {
        codec: "none".into(),
        detail: "the profile has no stream".into(),
    })?;
    let channels = profile.audio.as_ref().and_then(|a| a.channels).unwrap_or(2);
    let statuses = discover(codec);
    let list: Vec<EncoderCandidate> = statuses
        .iter()
        .filter(|s| s.is_available() && policy_allows(policy, s.candidate.kind))
        .filter(|s| {
            !matches!(codec, Codec::Audio(_)) || max_channels(&s.candidate.element) >= channels
        })
        .map(|s| s.candidate.clone())
        .collect();
    if list.is_empty() {
        let tried: Vec<String> = statuses
            .iter()
            .map(|s| {
                format!(
                    "{} ({})",
                    s.candidate.element,
                    match &s.availability {
                        Availability::Available { .. } => "not allowed or too few channels".into(),
                        Availability::NotInstalled => "not installed".to_owned(),
                        Availability::Failed { reason } => reason.clone(),
                    }
                )
            })
            .collect();
        return Err(OutputError::EncoderUnavailable {
            codec: codec.name().into(),
            detail: tried.join(", "),
        });
    }
    Ok(list)
}

/// The best working encoder for the profile under the policy.
pub fn best(
    profile: &OutputProfile,
    policy: EncoderPolicy,
) -> Result<EncoderCandidate, OutputError> {
    candidates(profile, policy)?
        .into_iter()
        .next()
        .ok_or_else(|| OutputError::EncoderUnavailable {
            codec: primary_codec(profile).map_or("none", Codec::name).into(),
            detail: "no candidate".into(),
        })
}

/// The audio encoder an audio+video profile uses (software; no hardware audio encoders).
pub fn audio_encoder_for(
    settings: &AudioSettings,
    channels: u32,
) -> Result<EncoderCandidate, OutputError> {
    let codec = Codec::Audio(settings.codec);
    discover(codec)
        .iter()
        .find(|s| s.is_available() && max_channels(&s.candidate.element) >= channels)
        .map(|s| s.candidate.clone())
        .ok_or_else(|| OutputError::EncoderUnavailable {
            codec: codec.name().into(),
            detail: format!(
                "none of {} is installed for {channels} channels",
                known_encoders(codec)
                    .iter()
                    .map(|c| c.element.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        })
}

fn registered(element: &str) -> bool {
    match element {
        RUST_GIF | RUST_WEBP => true,
        PCM => gst::ElementFactory::find("audioconvert").is_some(),
        e => gst::ElementFactory::find(e).is_some(),
    }
}

fn probe_encoder(candidate: &EncoderCandidate) -> Availability {
    if let Err(e) = crate::elements::inventory() {
        return Availability::Failed {
            reason: e.to_string(),
        };
    }
    if !registered(&candidate.element) {
        return Availability::NotInstalled;
    }
    if !candidate.kind.is_hardware() {
        return Availability::Available { test_ms: None };
    }
    let started = Instant::now();
    match test_encode_hardware(candidate) {
        Ok(()) => Availability::Available {
            test_ms: Some(started.elapsed().as_millis() as u64),
        },
        Err(reason) => Availability::Failed { reason },
    }
}

/// Pushes a few frames through the encoder exactly as an output bin would configure it.
fn test_encode_hardware(candidate: &EncoderCandidate) -> Result<(), String> {
    let Codec::Video(codec) = candidate.codec else {
        return Err("not a video encoder".into());
    };
    let format = VideoFormat {
        width: 320,
        height: 240,
        fps_num: 30,
        fps_den: 1,
        colorimetry: "bt601".into(),
    };
    let settings = super::profiles::VideoSettings {
        codec,
        width: None,
        height: None,
        max_height: None,
        frame_rate: None,
        quality: None,
        bitrate_kbps: None,
        keyframe_interval_secs: None,
        speed: None,
        colorimetry: Default::default(),
        prores_profile: None,
        at_secs: None,
    }
    .effective(30.0);
    let pipeline = gst::Pipeline::new();
    let result = (|| {
        let src = gst::ElementFactory::make("videotestsrc")
            .property("num-buffers", 10i32)
            .build()
            .map_err(|e| e.to_string())?;
        let caps = gst::ElementFactory::make("capsfilter")
            .property("caps", raw_video_caps("I420", &format))
            .build()
            .map_err(|e| e.to_string())?;
        let chain =
            video_encoder_chain(candidate, &settings, &format).map_err(|e| e.to_string())?;
        let sink = gst::ElementFactory::make("fakesink")
            .property("sync", false)
            .build()
            .map_err(|e| e.to_string())?;
        let mut all = vec![src, caps];
        all.extend(chain.elements.iter().cloned());
        all.push(sink);
        pipeline.add_many(&all).map_err(|e| e.to_string())?;
        gst::Element::link_many(&all).map_err(|e| e.to_string())?;
        pipeline
            .set_state(gst::State::Playing)
            .map_err(|_| "the encoder refused to start".to_owned())?;
        let bus = pipeline.bus().ok_or("no bus")?;
        let deadline = Instant::now() + TEST_TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(format!("no output within {} s", TEST_TIMEOUT.as_secs()));
            }
            let Some(msg) = bus.timed_pop(gst::ClockTime::from_mseconds(left.as_millis() as u64))
            else {
                continue;
            };
            match msg.view() {
                gst::MessageView::Eos(_) => return Ok(()),
                gst::MessageView::Error(e) => {
                    return Err(format!(
                        "{}{}",
                        e.error(),
                        e.debug()
                            .map(|d| format!(" ({})", d.lines().next().unwrap_or("")))
                            .unwrap_or_default()
                    ));
                }
                _ => {}
            }
        }
    })();
    let _ = pipeline.set_state(gst::State::Null);
    result
}

/// Caps of the raw video the renderer delivers (and the encoder chains start from).
pub(crate) fn raw_video_caps(format: &str, v: &VideoFormat) -> gst::Caps {
    gst::Caps::builder("video/x-raw")
        .field("format", format)
        .field("width", v.width as i32)
        .field("height", v.height as i32)
        .field(
            "framerate",
            gst::Fraction::new(v.fps_num as i32, v.fps_den.max(1) as i32),
        )
        .field("pixel-aspect-ratio", gst::Fraction::new(1, 1))
        .field("colorimetry", v.colorimetry.as_str())
        .build()
}

/// Sets a property from its string form when the element has it; false (and a log line)
/// otherwise. Hardware elements differ between GStreamer releases, so a missing property
/// must not abort the output; `set_property_from_str` would panic on a bad value.
pub(crate) fn set_prop(element: &gst::Element, name: &str, value: &str) -> bool {
    let Some(pspec) = element.find_property(name) else {
        tracing::debug!(element = %element.name(), property = name, "no such property");
        return false;
    };
    let flags = pspec.flags();
    if !flags.contains(gst::glib::ParamFlags::WRITABLE)
        || flags.contains(gst::glib::ParamFlags::CONSTRUCT_ONLY)
    {
        return false;
    }
    match gst::glib::Value::deserialize_with_pspec(value, &pspec) {
        Ok(v) => {
            element.set_property_from_value(name, &v);
            true
        }
        Err(_) => {
            tracing::warn!(element = %element.name(), property = name, value, "value not accepted");
            false
        }
    }
}

fn cpus() -> u32 {
    std::thread::available_parallelism()
        .map(|n| n.get() as u32)
        .unwrap_or(1)
}

/// The elements between the renderer's I420 frames and the encoded stream: conversion, the
/// configured encoder, caps fixing the profile, and a parser. Linked in order.
pub(crate) struct EncoderChain {
    pub elements: Vec<gst::Element>,
    pub encoder: gst::Element,
}

fn make(factory: &str) -> Result<gst::Element, OutputError> {
    gst::ElementFactory::make(factory)
        .build()
        .map_err(|_| OutputError::EncoderUnavailable {
            codec: factory.into(),
            detail: format!("the {factory} element is not installed"),
        })
}

fn capsfilter(caps: gst::Caps) -> Result<gst::Element, OutputError> {
    gst::ElementFactory::make("capsfilter")
        .property("caps", caps)
        .build()
        .map_err(|e| OutputError::Internal(e.to_string()))
}

/// A converter sized to the machine: format conversion of full frames is otherwise a
/// single-threaded stall in front of a multi-threaded encoder.
pub(crate) fn videoconvert() -> Result<gst::Element, OutputError> {
    let conv = make("videoconvert")?;
    conv.set_property("n-threads", cpus().min(8));
    Ok(conv)
}

/// Builds the video encoder chain for a GStreamer encoder element (not the Rust-written
/// animated formats).
pub(crate) fn video_encoder_chain(
    candidate: &EncoderCandidate,
    eff: &EffectiveVideo,
    format: &VideoFormat,
) -> Result<EncoderChain, OutputError> {
    let mut elements = Vec::new();
    let input = candidate.input_format();
    if input != "I420" {
        elements.push(videoconvert()?);
    }
    // Forced even when the input is already I420: without it x264/x265/vp9/av1 may negotiate
    // 4:4:4 or high bit depth, which browsers cannot play.
    elements.push(capsfilter(raw_video_caps(input, format))?);
    let enc = make(&candidate.element)?;
    enc.set_property("name", "video-encoder");
    configure_video(&enc, candidate, eff, format);
    elements.push(enc.clone());
    match eff.codec {
        VideoCodec::H264 => {
            elements.push(capsfilter(
                gst::Caps::builder("video/x-h264")
                    .field("profile", "high")
                    .build(),
            )?);
            elements.push(make("h264parse")?);
        }
        VideoCodec::H265 => {
            elements.push(capsfilter(
                gst::Caps::builder("video/x-h265")
                    .field("profile", "main")
                    .build(),
            )?);
            elements.push(make("h265parse")?);
        }
        VideoCodec::Vp9 => {
            if let Ok(p) = make("vp9parse") {
                elements.push(p);
            }
        }
        VideoCodec::Av1 => {
            // Muxers want temporal-unit aligned OBUs; libaom hands out a plain OBU stream.
            elements.push(make("av1parse")?);
        }
        _ => {}
    }
    Ok(EncoderChain {
        elements,
        encoder: enc,
    })
}

fn configure_video(
    enc: &gst::Element,
    candidate: &EncoderCandidate,
    eff: &EffectiveVideo,
    format: &VideoFormat,
) {
    let kf = eff.keyframe_frames.to_string();
    let speed = eff.speed;
    let set = |name: &str, value: &str| {
        set_prop(enc, name, value);
    };
    match candidate.element.as_str() {
        "x264enc" => {
            set("speed-preset", speed.x264_name());
            set("key-int-max", &kf);
            set("threads", "0");
            match (eff.quality, eff.bitrate_kbps) {
                (_, Some(kbps)) => {
                    // x264enc's "cbr" is single-pass ABR with the VBV at the bitrate.
                    set("pass", "cbr");
                    set("bitrate", &kbps.to_string());
                }
                (q, None) => {
                    set("pass", "qual");
                    set("quantizer", &q.unwrap_or(23).to_string());
                    // pass=qual keeps x264enc's default 2 Mb/s as a VBV cap unless raised.
                    set("bitrate", "100000");
                }
            }
        }
        "x265enc" => {
            set("speed-preset", speed.x264_name());
            set("key-int-max", &kf);
            set("log-level", "error");
            match (eff.quality, eff.bitrate_kbps) {
                (_, Some(kbps)) => {
                    set("bitrate", &kbps.min(102_400).to_string());
                }
                (q, None) => {
                    // x265enc has no CRF property; its option string reaches x265's parser.
                    set("option-string", &format!("crf={}", q.unwrap_or(28)));
                }
            }
        }
        "vp9enc" => {
            // libvpx: "realtime" only for the two fastest presets, "good" with cpu-used 5..0
            // otherwise; row-mt and threads matter most on few cores.
            let (deadline, cpu_used) = match speed {
                Speed::Ultrafast => ("1", 8),
                Speed::Superfast => ("1", 7),
                Speed::Veryfast => ("1000000", 5),
                Speed::Faster => ("1000000", 4),
                Speed::Fast => ("1000000", 3),
                Speed::Medium => ("1000000", 2),
                Speed::Slow => ("1000000", 1),
                Speed::Slower | Speed::Veryslow => ("1000000", 0),
            };
            set("deadline", deadline);
            set("cpu-used", &cpu_used.to_string());
            set("threads", &cpus().to_string());
            set("row-mt", "true");
            set("keyframe-max-dist", &kf);
            if deadline == "1" {
                set("lag-in-frames", "0");
            }
            match (eff.quality, eff.bitrate_kbps) {
                (_, Some(kbps)) => {
                    set("end-usage", "vbr");
                    set("target-bitrate", &(u64::from(kbps) * 1000).to_string());
                }
                (q, None) => {
                    set("end-usage", "cq");
                    set("cq-level", &q.unwrap_or(32).to_string());
                    // In CQ mode the target is a ceiling; keep it out of the way.
                    set("target-bitrate", "200000000");
                }
            }
        }
        "av1enc" => {
            // libaom is impractically slow outside its realtime mode here.
            set("usage-profile", "realtime");
            let cpu_used = match speed {
                Speed::Ultrafast | Speed::Superfast | Speed::Veryfast => 8,
                Speed::Faster => 7,
                Speed::Fast => 6,
                _ => 5,
            };
            set("cpu-used", &cpu_used.to_string());
            set("threads", &cpus().to_string());
            set("row-mt", "true");
            set("lag-in-frames", "0");
            set("keyframe-max-dist", &kf);
            if format.width >= 1280 {
                set("tile-columns", "1");
            }
            match (eff.quality, eff.bitrate_kbps) {
                (_, Some(kbps)) => {
                    set("end-usage", "vbr");
                    set("target-bitrate", &kbps.to_string());
                }
                (q, None) => {
                    // av1enc 1.22 has no cq-level: pin the quantizer range instead.
                    let q = q.unwrap_or(32).to_string();
                    set("end-usage", "q");
                    set("min-quantizer", &q);
                    set("max-quantizer", &q);
                }
            }
        }
        "avenc_prores_ks" => {
            set(
                "profile",
                match eff.prores_profile {
                    ProresProfile::Proxy => "proxy",
                    ProresProfile::Lt => "lt",
                    ProresProfile::Standard => "standard",
                    ProresProfile::Hq => "hq",
                },
            );
            // Apple's tools check the vendor field.
            set("vendor", "apl0");
            set("threads", "0");
        }
        "pngenc" => {
            let level = match speed.rank() {
                0 => 1,
                1 => 2,
                2 => 3,
                r => (r + 1).min(9),
            };
            set("compression-level", &level.to_string());
            set("snapshot", "true");
        }
        "jpegenc" => {
            set("quality", &eff.quality.unwrap_or(90).to_string());
            set("snapshot", "true");
        }
        e if e.starts_with("va") && candidate.kind == EncoderKind::Vaapi => {
            // `va` plugin (vah264enc …) and gstreamer-vaapi (vaapih264enc …) name things
            // differently; set_prop skips what an element lacks.
            let usage = (7u32.saturating_sub(speed.rank() * 6 / 8))
                .clamp(1, 7)
                .to_string();
            set("target-usage", &usage);
            set("quality-level", &usage);
            set("key-int-max", &kf);
            set("keyframe-period", &kf);
            match (eff.quality, eff.bitrate_kbps) {
                (_, Some(kbps)) => {
                    set("rate-control", "vbr");
                    set("bitrate", &kbps.to_string());
                }
                (q, None) => {
                    let q = hw_qp(eff.codec, q).to_string();
                    set("rate-control", "cqp");
                    for p in ["qpi", "qpp", "qpb", "init-qp"] {
                        set(p, &q);
                    }
                }
            }
        }
        e if e.starts_with("nv") => {
            let preset = match speed.rank() {
                0..=2 => "hp",
                3..=5 => "default",
                _ => "hq",
            };
            set("preset", preset);
            set("gop-size", &kf);
            match (eff.quality, eff.bitrate_kbps) {
                (_, Some(kbps)) => {
                    set("rc-mode", "vbr");
                    set("rate-control", "vbr");
                    set("bitrate", &kbps.to_string());
                }
                (q, None) => {
                    let q = hw_qp(eff.codec, q).to_string();
                    set("rc-mode", "constqp");
                    set("rate-control", "cqp");
                    for p in ["qp-const", "qp-i", "qp-p", "qp-b"] {
                        set(p, &q);
                    }
                }
            }
        }
        other => tracing::debug!(encoder = other, "no settings for this encoder"),
    }
}

/// Hardware encoders take a QP on the codec's native scale (0–51 for H.264/H.265, 0–255 for
/// VP9/AV1), where our quality for VP9/AV1 is on libvpx/libaom's 0–63 scale.
fn hw_qp(codec: VideoCodec, q: Option<u32>) -> u32 {
    let q = q.unwrap_or_else(|| codec.quality_range().map_or(26, |(_, d)| d));
    match codec {
        VideoCodec::Vp9 | VideoCodec::Av1 => (q * 4).min(255),
        _ => q.min(51),
    }
}

/// The audio encoder element configured for the settings; `None` for PCM.
pub(crate) fn audio_encoder(
    candidate: &EncoderCandidate,
    settings: &AudioSettings,
) -> Result<Option<gst::Element>, OutputError> {
    if candidate.element == PCM {
        return Ok(None);
    }
    let enc = make(&candidate.element)?;
    enc.set_property("name", "audio-encoder");
    let kbps = settings.effective_bitrate_kbps().unwrap_or(128);
    let bps = (u64::from(kbps) * 1000).to_string();
    match candidate.element.as_str() {
        "voaacenc" | "avenc_aac" | "opusenc" => {
            set_prop(&enc, "bitrate", &bps);
        }
        "lamemp3enc" => {
            // Constant bitrate: without a Xing header (GStreamer writes none) players
            // estimate a VBR file's duration wrongly.
            set_prop(&enc, "target", "bitrate");
            set_prop(&enc, "cbr", "true");
            set_prop(&enc, "bitrate", &kbps.to_string());
        }
        _ => {}
    }
    Ok(Some(enc))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn software_encoders_are_found_and_ordered_last() {
        let p = OutputProfile::preset("h264").expect("preset");
        let auto = candidates(&p, EncoderPolicy::Auto).expect("candidates");
        let last = auto.last().expect("one");
        assert_eq!(last.element, "x264enc");
        assert_eq!(last.kind, EncoderKind::Software);
        // Hardware, when present, comes first; software only under Off.
        let off = candidates(&p, EncoderPolicy::Off).expect("candidates");
        assert!(off.iter().all(|c| !c.kind.is_hardware()));
        let first_sw = auto.iter().position(|c| !c.kind.is_hardware()).expect("sw");
        assert!(auto[..first_sw].iter().all(|c| c.kind.is_hardware()));
    }

    #[test]
    fn policies_filter_families() {
        assert!(policy_allows(EncoderPolicy::Vaapi, EncoderKind::Vaapi));
        assert!(!policy_allows(EncoderPolicy::Vaapi, EncoderKind::Nvcodec));
        assert!(policy_allows(EncoderPolicy::Vaapi, EncoderKind::Software));
        assert!(!policy_allows(EncoderPolicy::Off, EncoderKind::Nvcodec));
        assert!(policy_allows(EncoderPolicy::Auto, EncoderKind::Nvcodec));
    }

    #[test]
    fn stereo_only_aac_encoder_is_skipped_for_surround() {
        let mut p = OutputProfile::preset("aac").expect("aac");
        if let Some(a) = p.audio.as_mut() {
            a.channels = Some(6);
        }
        match candidates(&p, EncoderPolicy::Off) {
            Ok(list) => assert!(list.iter().all(|c| c.element != "voaacenc"), "{list:?}"),
            Err(e) => assert_eq!(e.code(), "encoder-unavailable"),
        }
    }

    #[test]
    fn discovery_is_cached() {
        let a = discover(Codec::Video(VideoCodec::H264)).as_ptr();
        let b = discover(Codec::Video(VideoCodec::H264)).as_ptr();
        assert_eq!(a, b);
        assert!(!hardware_summary().is_empty());
    }

    #[test]
    fn hardware_qp_scales() {
        assert_eq!(hw_qp(VideoCodec::H264, Some(23)), 23);
        assert_eq!(hw_qp(VideoCodec::Vp9, Some(32)), 128);
        assert_eq!(hw_qp(VideoCodec::Av1, None), 128);
    }
}
