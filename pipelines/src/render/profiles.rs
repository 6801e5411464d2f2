//! Output profiles: what a render writes (container, codecs, their settings), as a JSON document
//! callers can post, plus the named presets (`h264`, `vp9`, `gif` …) most callers use instead.
//!
//! A profile says as little as it needs: every setting left out takes the codec's default and
//! every size, rate or channel count left out is the timeline's. [`OutputProfile::resolve`]
//! combines the two into the exact raw formats the renderer must deliver to
//! [`output_bin`](super::output::output_bin) — the compositor renders at the output size, so
//! nothing is scaled twice.
//!
//! ```
//! use nve_pipelines::render::profiles::{BaseFormat, OutputProfile};
//!
//! let p: OutputProfile = serde_json::from_str(r#"{
//!     "container": "mp4",
//!     "video": {"codec": "h264", "height": 720, "quality": 20},
//!     "audio": {"codec": "aac", "bitrate_kbps": 160}
//! }"#).unwrap();
//! p.validate().unwrap();
//! let formats = p.resolve(&BaseFormat::default()).unwrap(); // a 1920x1080 timeline
//! assert_eq!(formats.video.unwrap().width, 1280);
//! assert_eq!(OutputProfile::preset("vp9").unwrap().extension(), "webm");
//! ```

use serde::{Deserialize, Serialize};

use crate::timeline::{FrameRateDoc, Output};

/// Largest GIF frame: a palette format with no inter-frame compression grows very large and
/// slow to quantise beyond this, and players choke on it.
pub const GIF_MAX_PIXELS: u64 = 1280 * 720;
/// GIF delays are whole centiseconds and browsers slow down anything under 2 cs.
pub const GIF_MAX_FPS: f64 = 50.0;
/// Animated WebP frames are kept whole in memory by the encoder until the end.
pub const WEBP_MAX_PIXELS: u64 = 1920 * 1080;
/// Largest side of any output (the timeline's own bound).
pub const MAX_SIDE: u32 = 8192;
/// Smallest side of any output.
pub const MIN_SIDE: u32 = 16;

/// Why a profile cannot be used. `code()` is stable; the text is for people.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProfileError {
    #[error("unknown output profile {name:?} (known: {known})")]
    Unknown { name: String, known: String },
    #[error("invalid output profile: {field}: {message}")]
    Invalid { field: String, message: String },
}

impl ProfileError {
    pub fn code(&self) -> &'static str {
        match self {
            ProfileError::Unknown { .. } => "unknown-profile",
            ProfileError::Invalid { .. } => "invalid-profile",
        }
    }

    /// The offending field (`video.width`, `audio.codec` …) of an invalid profile.
    pub fn field(&self) -> Option<&str> {
        match self {
            ProfileError::Unknown { .. } => None,
            ProfileError::Invalid { field, .. } => Some(field),
        }
    }

    fn invalid(field: &str, message: impl Into<String>) -> Self {
        ProfileError::Invalid {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// The file format written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Container {
    /// ISO MP4, index first (faststart). Video h264/h265/av1, audio aac/opus.
    Mp4,
    /// QuickTime. Video prores/h264/h265, audio pcm/aac.
    Mov,
    /// WebM. Video vp9/av1, audio opus.
    Webm,
    /// Audio-only MP4 (AAC).
    M4a,
    Wav,
    Mp3,
    Flac,
    /// Animated GIF.
    Gif,
    /// Animated WebP.
    Webp,
    /// One PNG image.
    Png,
    /// One JPEG image.
    Jpeg,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum VideoCodec {
    H264,
    H265,
    Vp9,
    Av1,
    Prores,
    Gif,
    Webp,
    Png,
    Jpeg,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum AudioCodec {
    Aac,
    Opus,
    Mp3,
    Flac,
    /// Uncompressed little-endian PCM (WAV, MOV).
    Pcm,
}

/// Encoder effort, in x264's vocabulary; every encoder maps it onto its own knobs (see
/// `docs/rendering.md`). Faster presets give bigger files at the same quality.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Speed {
    Ultrafast,
    Superfast,
    Veryfast,
    Faster,
    Fast,
    Medium,
    Slow,
    Slower,
    Veryslow,
}

impl Speed {
    /// x264enc / x265enc `speed-preset` nick.
    pub fn x264_name(self) -> &'static str {
        match self {
            Speed::Ultrafast => "ultrafast",
            Speed::Superfast => "superfast",
            Speed::Veryfast => "veryfast",
            Speed::Faster => "faster",
            Speed::Fast => "fast",
            Speed::Medium => "medium",
            Speed::Slow => "slow",
            Speed::Slower => "slower",
            Speed::Veryslow => "veryslow",
        }
    }

    /// 0 (ultrafast) ..= 8 (veryslow).
    pub fn rank(self) -> u32 {
        self as u32
    }
}

/// Which YUV matrix the output is tagged with (and so which one the renderer converts with).
///
/// GStreamer tags everything it encodes, while players treat untagged sources by size (bt601
/// below 720 lines). Picking deliberately keeps reds where the source had them.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Colorimetry {
    /// bt709 for HD (720 lines or more), bt601 below: what players assume for untagged video.
    #[default]
    Auto,
    /// The sources' colorimetry as the renderer reports it (see
    /// [`BaseFormat::source_colorimetry`]); `auto` when it does not know.
    Carry,
    Bt709,
    Bt601,
}

/// ProRes 422 flavours (Apple's names). 4444 is not offered: the renderer composites opaque
/// 4:2:0 frames, so there is no alpha or full chroma to keep.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum ProresProfile {
    Proxy,
    Lt,
    #[default]
    Standard,
    Hq,
}

/// Video settings. Everything but `codec` is optional.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct VideoSettings {
    pub codec: VideoCodec,
    /// Output width; absent: the timeline's, or derived from `height` keeping the aspect.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub width: Option<u32>,
    /// Output height; absent: the timeline's, or derived from `width` keeping the aspect.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub height: Option<u32>,
    /// With neither `width` nor `height`: a timeline taller than this is shrunk to this many
    /// lines, keeping its aspect (never enlarged). `preview` uses 360.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_height: Option<u32>,
    /// `30` or `{"num": 30000, "den": 1001}`; absent: the timeline's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frame_rate: Option<FrameRateDoc>,
    /// Constant quality on the codec's own scale (lower is better): h264 0–51 (CRF, default
    /// 23), h265 0–51 (CRF, 28), vp9 0–63 (CQ level, 32), av1 0–63 (quantizer, 32); webp and
    /// jpeg 0–100 (higher is better; 75 and 90). Not with `bitrate_kbps`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quality: Option<u32>,
    /// Average bitrate instead of constant quality (h264, h265, vp9, av1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bitrate_kbps: Option<u32>,
    /// Longest distance between keyframes; absent: 250 frames (x264's default, and the
    /// reference encode's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keyframe_interval_secs: Option<f64>,
    /// Encoder effort; absent: `veryfast`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub speed: Option<Speed>,
    #[serde(default, skip_serializing_if = "is_default")]
    pub colorimetry: Colorimetry,
    /// ProRes only; absent: `standard`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prores_profile: Option<ProresProfile>,
    /// Stills (png, jpeg) only: the time of the frame taken, seconds from the start; absent: 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at_secs: Option<f64>,
}

/// Audio settings. Everything but `codec` is optional.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AudioSettings {
    pub codec: AudioCodec,
    /// aac, opus, mp3 only; absent: 128 (mp3: 192).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bitrate_kbps: Option<u32>,
    /// Absent: the timeline's, moved to a rate the codec supports (opus: 48000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sample_rate: Option<u32>,
    /// Absent: the timeline's, at most what the codec carries (mp3: 2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channels: Option<u32>,
    /// pcm and flac only: 16 or 24; absent: 16.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bit_depth: Option<u32>,
}

/// A complete description of one output file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OutputProfile {
    /// The preset this came from, or a caller's label; informational.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub container: Container,
    /// Absent: no video stream.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub video: Option<VideoSettings>,
    /// Absent: no audio stream.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audio: Option<AudioSettings>,
}

fn is_default<T: Default + PartialEq>(v: &T) -> bool {
    *v == T::default()
}

/// A profile by preset name or spelled out: `"h264"` or `{"container": "mp4", …}`.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
#[serde(untagged)]
pub enum ProfileSpec {
    Preset(String),
    Custom(OutputProfile),
}

// By hand rather than `untagged`: an untagged enum answers every mistake in a custom profile
// with "did not match any variant", where callers need the field that is wrong.
impl<'de> Deserialize<'de> for ProfileSpec {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match serde_json::Value::deserialize(d)? {
            serde_json::Value::String(name) => Ok(ProfileSpec::Preset(name)),
            other => OutputProfile::deserialize(other)
                .map(ProfileSpec::Custom)
                .map_err(serde::de::Error::custom),
        }
    }
}

impl ProfileSpec {
    /// The validated profile.
    pub fn to_profile(&self) -> Result<OutputProfile, ProfileError> {
        let p = match self {
            ProfileSpec::Preset(name) => OutputProfile::preset(name)?,
            ProfileSpec::Custom(p) => p.clone(),
        };
        p.validate()?;
        Ok(p)
    }
}

impl Default for ProfileSpec {
    fn default() -> Self {
        ProfileSpec::Preset(DEFAULT_PRESET.into())
    }
}

/// The preset used when a render names none.
pub const DEFAULT_PRESET: &str = "h264";

/// Every preset name, in the order documentation lists them.
pub const PRESETS: &[&str] = &[
    "h264",
    "h264-fast",
    "preview",
    "h265",
    "vp9",
    "av1",
    "prores",
    "prores-hq",
    "gif",
    "webp",
    "aac",
    "wav",
    "mp3",
    "flac",
    "png",
    "jpeg",
    "poster",
];

fn video(codec: VideoCodec) -> VideoSettings {
    VideoSettings {
        codec,
        width: None,
        height: None,
        max_height: None,
        frame_rate: None,
        quality: None,
        bitrate_kbps: None,
        keyframe_interval_secs: None,
        speed: None,
        colorimetry: Colorimetry::Auto,
        prores_profile: None,
        at_secs: None,
    }
}

fn audio(codec: AudioCodec) -> AudioSettings {
    AudioSettings {
        codec,
        bitrate_kbps: None,
        sample_rate: None,
        channels: None,
        bit_depth: None,
    }
}

/// The raw video the output bin takes: I420 at this size and rate, square pixels.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VideoFormat {
    pub width: u32,
    pub height: u32,
    pub fps_num: u32,
    pub fps_den: u32,
    /// GStreamer colorimetry string put on the caps (`bt709`, `bt601`, …).
    pub colorimetry: String,
}

impl VideoFormat {
    pub fn fps(&self) -> f64 {
        f64::from(self.fps_num) / f64::from(self.fps_den.max(1))
    }

    /// Duration of one frame in nanoseconds (rounded down).
    pub fn frame_ns(&self) -> u64 {
        u64::from(self.fps_den) * 1_000_000_000 / u64::from(self.fps_num.max(1))
    }
}

/// The raw audio the output bin takes: interleaved F32LE at this rate and channel count.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct AudioFormat {
    pub rate: u32,
    pub channels: u32,
}

/// What the render produces before the output stage: the timeline's output settings, plus the
/// sources' colorimetry when the renderer knows it (for [`Colorimetry::Carry`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BaseFormat {
    pub width: u32,
    pub height: u32,
    pub fps_num: u32,
    pub fps_den: u32,
    pub sample_rate: u32,
    pub channels: u32,
    pub source_colorimetry: Option<String>,
}

impl BaseFormat {
    pub fn from_output(o: &Output) -> Self {
        BaseFormat {
            width: o.width,
            height: o.height,
            fps_num: o.frame_rate.num(),
            fps_den: o.frame_rate.den(),
            sample_rate: o.sample_rate,
            channels: u32::from(o.channels),
            source_colorimetry: None,
        }
    }
}

impl Default for BaseFormat {
    fn default() -> Self {
        BaseFormat::from_output(&Output::default())
    }
}

/// The formats a render must feed the output bin; `None` where the profile has no such stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResolvedFormats {
    pub video: Option<VideoFormat>,
    pub audio: Option<AudioFormat>,
}

impl VideoCodec {
    pub fn name(self) -> &'static str {
        match self {
            VideoCodec::H264 => "h264",
            VideoCodec::H265 => "h265",
            VideoCodec::Vp9 => "vp9",
            VideoCodec::Av1 => "av1",
            VideoCodec::Prores => "prores",
            VideoCodec::Gif => "gif",
            VideoCodec::Webp => "webp",
            VideoCodec::Png => "png",
            VideoCodec::Jpeg => "jpeg",
        }
    }

    /// Encoders that take subsampled chroma need even sizes.
    pub fn needs_even_size(self) -> bool {
        matches!(
            self,
            VideoCodec::H264
                | VideoCodec::H265
                | VideoCodec::Vp9
                | VideoCodec::Av1
                | VideoCodec::Prores
        )
    }

    /// Codecs with inter-frame prediction, where keyframe spacing and bitrate mean something.
    pub fn is_temporal(self) -> bool {
        matches!(
            self,
            VideoCodec::H264 | VideoCodec::H265 | VideoCodec::Vp9 | VideoCodec::Av1
        )
    }

    pub fn is_still(self) -> bool {
        matches!(self, VideoCodec::Png | VideoCodec::Jpeg)
    }

    /// `(range, default)` of `quality`, or `None` where the codec has no quality knob.
    pub fn quality_range(self) -> Option<(std::ops::RangeInclusive<u32>, u32)> {
        match self {
            VideoCodec::H264 => Some((0..=51, 23)),
            VideoCodec::H265 => Some((0..=51, 28)),
            VideoCodec::Vp9 => Some((0..=63, 32)),
            VideoCodec::Av1 => Some((0..=63, 32)),
            VideoCodec::Webp => Some((0..=100, 75)),
            VideoCodec::Jpeg => Some((0..=100, 90)),
            VideoCodec::Prores | VideoCodec::Gif | VideoCodec::Png => None,
        }
    }
}

impl AudioCodec {
    pub fn name(self) -> &'static str {
        match self {
            AudioCodec::Aac => "aac",
            AudioCodec::Opus => "opus",
            AudioCodec::Mp3 => "mp3",
            AudioCodec::Flac => "flac",
            AudioCodec::Pcm => "pcm",
        }
    }

    pub fn max_channels(self) -> u32 {
        match self {
            AudioCodec::Mp3 => 2,
            _ => 8,
        }
    }

    fn default_bitrate(self) -> Option<u32> {
        match self {
            AudioCodec::Aac | AudioCodec::Opus => Some(128),
            AudioCodec::Mp3 => Some(192),
            AudioCodec::Flac | AudioCodec::Pcm => None,
        }
    }

    /// Whether the codec can carry `rate` Hz.
    pub fn supports_rate(self, rate: u32) -> bool {
        match self {
            AudioCodec::Opus => matches!(rate, 8000 | 12000 | 16000 | 24000 | 48000),
            AudioCodec::Mp3 => matches!(
                rate,
                8000 | 11025 | 12000 | 16000 | 22050 | 24000 | 32000 | 44100 | 48000
            ),
            AudioCodec::Aac => (8000..=96_000).contains(&rate),
            AudioCodec::Flac | AudioCodec::Pcm => (8000..=192_000).contains(&rate),
        }
    }

    /// The rate used when the timeline's is not one the codec carries.
    fn fallback_rate(self, rate: u32) -> u32 {
        match self {
            AudioCodec::Mp3 if rate.is_multiple_of(11025) => 44100,
            _ => 48000,
        }
    }
}

impl Container {
    pub fn name(self) -> &'static str {
        match self {
            Container::Mp4 => "mp4",
            Container::Mov => "mov",
            Container::Webm => "webm",
            Container::M4a => "m4a",
            Container::Wav => "wav",
            Container::Mp3 => "mp3",
            Container::Flac => "flac",
            Container::Gif => "gif",
            Container::Webp => "webp",
            Container::Png => "png",
            Container::Jpeg => "jpeg",
        }
    }

    fn video_codecs(self) -> &'static [VideoCodec] {
        use VideoCodec as V;
        match self {
            Container::Mp4 => &[V::H264, V::H265, V::Av1],
            Container::Mov => &[V::Prores, V::H264, V::H265],
            Container::Webm => &[V::Vp9, V::Av1],
            Container::Gif => &[V::Gif],
            Container::Webp => &[V::Webp],
            Container::Png => &[V::Png],
            Container::Jpeg => &[V::Jpeg],
            Container::M4a | Container::Wav | Container::Mp3 | Container::Flac => &[],
        }
    }

    fn audio_codecs(self) -> &'static [AudioCodec] {
        use AudioCodec as A;
        match self {
            Container::Mp4 => &[A::Aac, A::Opus],
            Container::Mov => &[A::Pcm, A::Aac],
            Container::Webm => &[A::Opus],
            Container::M4a => &[A::Aac],
            Container::Wav => &[A::Pcm],
            Container::Mp3 => &[A::Mp3],
            Container::Flac => &[A::Flac],
            Container::Gif | Container::Webp | Container::Png | Container::Jpeg => &[],
        }
    }
}

fn list<T>(items: &[T], name: impl Fn(&T) -> &'static str) -> String {
    items.iter().map(name).collect::<Vec<_>>().join(", ")
}

impl OutputProfile {
    /// The named preset (see [`PRESETS`]); `unknown-profile` otherwise.
    pub fn preset(name: &str) -> Result<OutputProfile, ProfileError> {
        use AudioCodec as A;
        use VideoCodec as V;
        let av = |container, v: VideoSettings, a: Option<AudioSettings>| OutputProfile {
            name: Some(name.to_owned()),
            container,
            video: Some(v),
            audio: a,
        };
        let audio_only = |container, a: AudioSettings| OutputProfile {
            name: Some(name.to_owned()),
            container,
            video: None,
            audio: Some(a),
        };
        let p = match name {
            "h264" => av(
                Container::Mp4,
                VideoSettings {
                    quality: Some(23),
                    speed: Some(Speed::Veryfast),
                    ..video(V::H264)
                },
                Some(AudioSettings {
                    bitrate_kbps: Some(128),
                    ..audio(A::Aac)
                }),
            ),
            "h264-fast" => av(
                Container::Mp4,
                VideoSettings {
                    quality: Some(28),
                    speed: Some(Speed::Ultrafast),
                    keyframe_interval_secs: Some(2.0),
                    ..video(V::H264)
                },
                Some(AudioSettings {
                    bitrate_kbps: Some(96),
                    ..audio(A::Aac)
                }),
            ),
            "preview" => av(
                Container::Mp4,
                VideoSettings {
                    max_height: Some(360),
                    quality: Some(30),
                    speed: Some(Speed::Ultrafast),
                    keyframe_interval_secs: Some(1.0),
                    ..video(V::H264)
                },
                Some(AudioSettings {
                    bitrate_kbps: Some(96),
                    ..audio(A::Aac)
                }),
            ),
            "h265" => av(
                Container::Mp4,
                VideoSettings {
                    quality: Some(28),
                    speed: Some(Speed::Veryfast),
                    ..video(V::H265)
                },
                Some(AudioSettings {
                    bitrate_kbps: Some(128),
                    ..audio(A::Aac)
                }),
            ),
            "vp9" => av(
                Container::Webm,
                VideoSettings {
                    quality: Some(32),
                    speed: Some(Speed::Veryfast),
                    ..video(V::Vp9)
                },
                Some(AudioSettings {
                    bitrate_kbps: Some(128),
                    ..audio(A::Opus)
                }),
            ),
            "av1" => av(
                Container::Webm,
                VideoSettings {
                    quality: Some(32),
                    speed: Some(Speed::Ultrafast),
                    ..video(V::Av1)
                },
                Some(AudioSettings {
                    bitrate_kbps: Some(128),
                    ..audio(A::Opus)
                }),
            ),
            "prores" | "prores-hq" => av(
                Container::Mov,
                VideoSettings {
                    prores_profile: Some(if name == "prores" {
                        ProresProfile::Standard
                    } else {
                        ProresProfile::Hq
                    }),
                    ..video(V::Prores)
                },
                Some(AudioSettings {
                    bit_depth: Some(24),
                    ..audio(A::Pcm)
                }),
            ),
            "gif" => av(
                Container::Gif,
                VideoSettings {
                    width: Some(480),
                    frame_rate: Some(FrameRateDoc::Whole(15)),
                    speed: Some(Speed::Medium),
                    ..video(V::Gif)
                },
                None,
            ),
            "webp" => av(
                Container::Webp,
                VideoSettings {
                    width: Some(480),
                    frame_rate: Some(FrameRateDoc::Whole(15)),
                    quality: Some(75),
                    ..video(V::Webp)
                },
                None,
            ),
            "aac" => audio_only(
                Container::M4a,
                AudioSettings {
                    bitrate_kbps: Some(192),
                    ..audio(A::Aac)
                },
            ),
            "wav" => audio_only(Container::Wav, audio(A::Pcm)),
            "mp3" => audio_only(
                Container::Mp3,
                AudioSettings {
                    bitrate_kbps: Some(192),
                    ..audio(A::Mp3)
                },
            ),
            "flac" => audio_only(Container::Flac, audio(A::Flac)),
            "png" => av(Container::Png, video(V::Png), None),
            "jpeg" => av(
                Container::Jpeg,
                VideoSettings {
                    quality: Some(90),
                    ..video(V::Jpeg)
                },
                None,
            ),
            // A poster frame: a second in, past a fade from black; callers set `at_secs`.
            "poster" => av(
                Container::Jpeg,
                VideoSettings {
                    quality: Some(85),
                    at_secs: Some(1.0),
                    ..video(V::Jpeg)
                },
                None,
            ),
            _ => {
                return Err(ProfileError::Unknown {
                    name: name.to_owned(),
                    known: PRESETS.join(", "),
                });
            }
        };
        Ok(p)
    }

    /// Every preset, for listings.
    pub fn presets() -> Vec<OutputProfile> {
        PRESETS
            .iter()
            .filter_map(|n| OutputProfile::preset(n).ok())
            .collect()
    }

    pub fn has_video(&self) -> bool {
        self.video.is_some()
    }

    pub fn has_audio(&self) -> bool {
        self.audio.is_some()
    }

    /// One image rather than a timed stream.
    pub fn is_still(&self) -> bool {
        self.video.as_ref().is_some_and(|v| v.codec.is_still())
    }

    /// Uses a codec gated by `media.experimental_codecs` (AV1: slow and immature here). The
    /// profile does not enforce the gate; callers that offer profiles do.
    pub fn is_experimental(&self) -> bool {
        self.video
            .as_ref()
            .is_some_and(|v| v.codec == VideoCodec::Av1)
    }

    /// File name extension, without the dot.
    pub fn extension(&self) -> &'static str {
        match self.container {
            Container::Jpeg => "jpg",
            c => c.name(),
        }
    }

    pub fn mime_type(&self) -> &'static str {
        match (self.container, self.has_video()) {
            (Container::Mp4, true) => "video/mp4",
            (Container::Mp4, false) | (Container::M4a, _) => "audio/mp4",
            (Container::Mov, _) => "video/quicktime",
            (Container::Webm, true) => "video/webm",
            (Container::Webm, false) => "audio/webm",
            (Container::Wav, _) => "audio/wav",
            (Container::Mp3, _) => "audio/mpeg",
            (Container::Flac, _) => "audio/flac",
            (Container::Gif, _) => "image/gif",
            (Container::Webp, _) => "image/webp",
            (Container::Png, _) => "image/png",
            (Container::Jpeg, _) => "image/jpeg",
        }
    }

    /// Checks the profile on its own (the timeline's sizes are checked by [`Self::resolve`]).
    /// The first problem found is the error.
    pub fn validate(&self) -> Result<(), ProfileError> {
        let c = self.container;
        if self.video.is_none() && self.audio.is_none() {
            return Err(ProfileError::invalid(
                "video",
                "a profile needs a video or an audio stream",
            ));
        }
        match &self.video {
            Some(v) => {
                if !c.video_codecs().contains(&v.codec) {
                    return Err(ProfileError::invalid(
                        "video.codec",
                        if c.video_codecs().is_empty() {
                            format!("{} files carry no video", c.name())
                        } else {
                            format!(
                                "{} files carry {}, not {}",
                                c.name(),
                                list(c.video_codecs(), |v| v.name()),
                                v.codec.name()
                            )
                        },
                    ));
                }
                validate_video(v)?;
            }
            None if matches!(
                c,
                Container::Gif | Container::Webp | Container::Png | Container::Jpeg
            ) =>
            {
                return Err(ProfileError::invalid(
                    "video",
                    format!("{} files need a video stream", c.name()),
                ));
            }
            None => {}
        }
        if let Some(a) = &self.audio {
            if !c.audio_codecs().contains(&a.codec) {
                return Err(ProfileError::invalid(
                    "audio.codec",
                    if c.audio_codecs().is_empty() {
                        format!("{} files carry no audio", c.name())
                    } else {
                        format!(
                            "{} files carry {}, not {}",
                            c.name(),
                            list(c.audio_codecs(), |a| a.name()),
                            a.codec.name()
                        )
                    },
                ));
            }
            validate_audio(a)?;
        }
        if let Some(name) = &self.name
            && name.len() > 128
        {
            return Err(ProfileError::invalid("name", "longer than 128 bytes"));
        }
        Ok(())
    }

    /// Validates the profile against the timeline's format and gives the exact raw formats the
    /// renderer must deliver. Sizes, rates and channel counts the profile leaves out follow the
    /// timeline, adjusted to what the codec accepts (even sizes for 4:2:0, GIF/WebP size
    /// bounds, codec sample rates); sizes the profile sets explicitly are never adjusted.
    pub fn resolve(&self, base: &BaseFormat) -> Result<ResolvedFormats, ProfileError> {
        self.validate()?;
        let video = match &self.video {
            Some(v) => Some(resolve_video(v, base)?),
            None => None,
        };
        let audio = match &self.audio {
            Some(a) => Some(resolve_audio(a, base)?),
            None => None,
        };
        Ok(ResolvedFormats { video, audio })
    }
}

fn validate_video(v: &VideoSettings) -> Result<(), ProfileError> {
    let codec = v.codec;
    let name = codec.name();
    for (field, value) in [
        ("video.width", v.width),
        ("video.height", v.height),
        ("video.max_height", v.max_height),
    ] {
        let Some(value) = value else { continue };
        if !(MIN_SIDE..=MAX_SIDE).contains(&value) {
            return Err(ProfileError::invalid(
                field,
                format!("{value} is outside {MIN_SIDE}..={MAX_SIDE}"),
            ));
        }
        if codec.needs_even_size() && value % 2 != 0 {
            return Err(ProfileError::invalid(
                field,
                format!("{name} stores chroma at half resolution: sizes must be even, not {value}"),
            ));
        }
    }
    if let (Some(w), Some(h)) = (v.width, v.height) {
        check_pixel_bound(codec, w, h)?;
    }
    if let Some(rate) = v.frame_rate {
        let Some(r) = rate.to_rate() else {
            return Err(ProfileError::invalid(
                "video.frame_rate",
                "not a frame rate of 1..=240 fps",
            ));
        };
        if codec == VideoCodec::Gif && r.fps() > GIF_MAX_FPS {
            return Err(ProfileError::invalid(
                "video.frame_rate",
                format!("GIF frame delays are whole centiseconds: at most {GIF_MAX_FPS} fps"),
            ));
        }
    }
    match (v.quality, codec.quality_range()) {
        (Some(_), None) => {
            return Err(ProfileError::invalid(
                "video.quality",
                format!(
                    "{name} has no quality setting{}",
                    if codec == VideoCodec::Prores {
                        " (use prores_profile)"
                    } else {
                        ""
                    }
                ),
            ));
        }
        (Some(q), Some((range, _))) if !range.contains(&q) => {
            return Err(ProfileError::invalid(
                "video.quality",
                format!(
                    "{q} is outside {}..={} for {name}",
                    range.start(),
                    range.end()
                ),
            ));
        }
        _ => {}
    }
    if let Some(b) = v.bitrate_kbps {
        if !codec.is_temporal() {
            return Err(ProfileError::invalid(
                "video.bitrate_kbps",
                format!("{name} has no bitrate setting"),
            ));
        }
        if v.quality.is_some() {
            return Err(ProfileError::invalid(
                "video.bitrate_kbps",
                "set either quality or bitrate_kbps, not both",
            ));
        }
        if !(50..=400_000).contains(&b) {
            return Err(ProfileError::invalid(
                "video.bitrate_kbps",
                format!("{b} is outside 50..=400000"),
            ));
        }
    }
    if let Some(k) = v.keyframe_interval_secs {
        if !codec.is_temporal() {
            return Err(ProfileError::invalid(
                "video.keyframe_interval_secs",
                format!("every {name} frame stands alone"),
            ));
        }
        if !k.is_finite() || !(0.04..=3600.0).contains(&k) {
            return Err(ProfileError::invalid(
                "video.keyframe_interval_secs",
                "must be between 0.04 and 3600 seconds",
            ));
        }
    }
    if v.prores_profile.is_some() && codec != VideoCodec::Prores {
        return Err(ProfileError::invalid(
            "video.prores_profile",
            format!("only for prores, not {name}"),
        ));
    }
    if let Some(t) = v.at_secs {
        if !codec.is_still() {
            return Err(ProfileError::invalid(
                "video.at_secs",
                format!("only for stills (png, jpeg), not {name}"),
            ));
        }
        if !t.is_finite() || !(0.0..=86_400.0).contains(&t) {
            return Err(ProfileError::invalid(
                "video.at_secs",
                "must be a time between 0 and 86400 seconds",
            ));
        }
    }
    Ok(())
}

fn check_pixel_bound(codec: VideoCodec, w: u32, h: u32) -> Result<(), ProfileError> {
    let bound = match codec {
        VideoCodec::Gif => GIF_MAX_PIXELS,
        VideoCodec::Webp => WEBP_MAX_PIXELS,
        _ => return Ok(()),
    };
    if u64::from(w) * u64::from(h) > bound {
        return Err(ProfileError::invalid(
            "video.width",
            format!(
                "{w}x{h} is too large for {} (at most {bound} pixels, e.g. {})",
                codec.name(),
                if codec == VideoCodec::Gif {
                    "1280x720"
                } else {
                    "1920x1080"
                }
            ),
        ));
    }
    Ok(())
}

fn validate_audio(a: &AudioSettings) -> Result<(), ProfileError> {
    let name = a.codec.name();
    if let Some(b) = a.bitrate_kbps {
        if a.codec.default_bitrate().is_none() {
            return Err(ProfileError::invalid(
                "audio.bitrate_kbps",
                format!("{name} is lossless: it has no bitrate setting"),
            ));
        }
        let range = match a.codec {
            AudioCodec::Opus => 6..=510,
            AudioCodec::Mp3 => 8..=320,
            _ => 8..=512,
        };
        if !range.contains(&b) {
            return Err(ProfileError::invalid(
                "audio.bitrate_kbps",
                format!(
                    "{b} is outside {}..={} for {name}",
                    range.start(),
                    range.end()
                ),
            ));
        }
    }
    if let Some(r) = a.sample_rate
        && !a.codec.supports_rate(r)
    {
        return Err(ProfileError::invalid(
            "audio.sample_rate",
            format!("{name} cannot carry {r} Hz"),
        ));
    }
    if let Some(ch) = a.channels
        && !(1..=a.codec.max_channels()).contains(&ch)
    {
        return Err(ProfileError::invalid(
            "audio.channels",
            format!("{name} carries 1..={} channels", a.codec.max_channels()),
        ));
    }
    if let Some(d) = a.bit_depth {
        if !matches!(a.codec, AudioCodec::Pcm | AudioCodec::Flac) {
            return Err(ProfileError::invalid(
                "audio.bit_depth",
                format!("only for pcm and flac, not {name}"),
            ));
        }
        if d != 16 && d != 24 {
            return Err(ProfileError::invalid("audio.bit_depth", "16 or 24"));
        }
    }
    Ok(())
}

fn round_to(value: f64, even: bool) -> u32 {
    let v = if even {
        (value / 2.0).round() * 2.0
    } else {
        value.round()
    };
    (v.max(2.0)).min(f64::from(MAX_SIDE)) as u32
}

fn resolve_video(v: &VideoSettings, base: &BaseFormat) -> Result<VideoFormat, ProfileError> {
    let even = v.codec.needs_even_size();
    if base.width == 0 || base.height == 0 || base.fps_num == 0 || base.fps_den == 0 {
        return Err(ProfileError::invalid(
            "video",
            "the timeline has no usable video size or rate",
        ));
    }
    let aspect = f64::from(base.width) / f64::from(base.height);
    let (mut w, mut h) = match (v.width, v.height) {
        (Some(w), Some(h)) => (w, h),
        (Some(w), None) => (w, round_to(f64::from(w) / aspect, even)),
        (None, Some(h)) => (round_to(f64::from(h) * aspect, even), h),
        // The timeline's own size: an odd one is brought down to even rather than refused,
        // the compositor renders at whatever it is asked.
        (None, None) => match v.max_height {
            Some(m) if base.height > m => (round_to(f64::from(m) * aspect, even), m),
            _ if even => (base.width & !1, base.height & !1),
            _ => (base.width, base.height),
        },
    };
    let explicit = v.width.is_some() && v.height.is_some();
    let bound = match v.codec {
        VideoCodec::Gif => Some(GIF_MAX_PIXELS),
        VideoCodec::Webp => Some(WEBP_MAX_PIXELS),
        _ => None,
    };
    if let Some(bound) = bound
        && !explicit
        && u64::from(w) * u64::from(h) > bound
    {
        // A size that came from the timeline is shrunk to fit, keeping the aspect.
        let scale = (bound as f64 / (f64::from(w) * f64::from(h))).sqrt();
        w = ((f64::from(w) * scale).floor() as u32).max(2);
        h = ((f64::from(h) * scale).floor() as u32).max(2);
    }
    if w < MIN_SIDE || h < MIN_SIDE {
        return Err(ProfileError::invalid(
            "video.width",
            format!("the output would be {w}x{h}, smaller than {MIN_SIDE} pixels on a side"),
        ));
    }
    check_pixel_bound(v.codec, w, h)?;
    let (mut num, mut den) = match v.frame_rate.and_then(FrameRateDoc::to_rate) {
        Some(r) => (r.num(), r.den()),
        None => (base.fps_num, base.fps_den),
    };
    if v.codec == VideoCodec::Gif && v.frame_rate.is_none() {
        // Divide by the smallest whole number that fits, so the cadence stays even.
        let fps = f64::from(num) / f64::from(den);
        let n = (fps / GIF_MAX_FPS).ceil().max(1.0) as u32;
        den = den.saturating_mul(n);
        let g = gcd(num, den);
        num /= g;
        den /= g;
    }
    let colorimetry = match v.colorimetry {
        Colorimetry::Bt709 => "bt709".to_owned(),
        Colorimetry::Bt601 => "bt601".to_owned(),
        Colorimetry::Carry => match base.source_colorimetry.as_deref() {
            Some(c) if is_colorimetry_name(c) => c.to_owned(),
            _ => auto_colorimetry(h),
        },
        Colorimetry::Auto => auto_colorimetry(h),
    };
    Ok(VideoFormat {
        width: w,
        height: h,
        fps_num: num,
        fps_den: den,
        colorimetry,
    })
}

fn gcd(mut a: u32, mut b: u32) -> u32 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a.max(1)
}

fn auto_colorimetry(height: u32) -> String {
    if height >= 720 { "bt709" } else { "bt601" }.to_owned()
}

/// A GStreamer colorimetry string: a named one or `range:matrix:transfer:primaries` digits.
/// Anything else from a source is not carried (the caps would fail to parse).
fn is_colorimetry_name(c: &str) -> bool {
    matches!(
        c,
        "bt601"
            | "bt709"
            | "bt2020"
            | "bt2020-10"
            | "bt2100-pq"
            | "bt2100-hlg"
            | "smpte240m"
            | "sRGB"
    ) || (c.split(':').count() == 4
        && c.split(':')
            .all(|p| !p.is_empty() && p.len() <= 3 && p.bytes().all(|b| b.is_ascii_digit())))
}

fn resolve_audio(a: &AudioSettings, base: &BaseFormat) -> Result<AudioFormat, ProfileError> {
    let rate = match a.sample_rate {
        Some(r) => r,
        None if a.codec.supports_rate(base.sample_rate) => base.sample_rate,
        None => a.codec.fallback_rate(base.sample_rate),
    };
    let channels = a
        .channels
        .unwrap_or_else(|| base.channels.clamp(1, a.codec.max_channels()));
    if channels == 0 {
        return Err(ProfileError::invalid("audio.channels", "at least 1"));
    }
    Ok(AudioFormat { rate, channels })
}

/// Resolved encoder settings with every default filled in; what the output bin configures.
#[derive(Debug, Clone, PartialEq)]
pub struct EffectiveVideo {
    pub codec: VideoCodec,
    pub quality: Option<u32>,
    pub bitrate_kbps: Option<u32>,
    /// Keyframe spacing in frames.
    pub keyframe_frames: u32,
    pub speed: Speed,
    pub prores_profile: ProresProfile,
    pub at_secs: f64,
}

impl VideoSettings {
    /// The settings with defaults applied, for a stream at `fps`.
    pub fn effective(&self, fps: f64) -> EffectiveVideo {
        let quality = match (self.quality, self.bitrate_kbps) {
            (Some(q), _) => Some(q),
            (None, Some(_)) => None,
            (None, None) => self.codec.quality_range().map(|(_, d)| d),
        };
        let keyframe_frames = self
            .keyframe_interval_secs
            .map(|s| (s * fps).round().clamp(1.0, 100_000.0) as u32)
            .unwrap_or(250);
        EffectiveVideo {
            codec: self.codec,
            quality,
            bitrate_kbps: self.bitrate_kbps,
            keyframe_frames,
            speed: self.speed.unwrap_or(Speed::Veryfast),
            prores_profile: self.prores_profile.unwrap_or_default(),
            at_secs: self.at_secs.unwrap_or(0.0),
        }
    }
}

impl AudioSettings {
    /// Bitrate with the codec default applied (lossless codecs: `None`).
    pub fn effective_bitrate_kbps(&self) -> Option<u32> {
        self.bitrate_kbps.or(self.codec.default_bitrate())
    }

    pub fn effective_bit_depth(&self) -> u32 {
        self.bit_depth.unwrap_or(16)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base(w: u32, h: u32, fps: u32) -> BaseFormat {
        BaseFormat {
            width: w,
            height: h,
            fps_num: fps,
            fps_den: 1,
            sample_rate: 44100,
            channels: 2,
            source_colorimetry: None,
        }
    }

    #[test]
    fn every_preset_resolves_and_validates() {
        for name in PRESETS {
            let p = OutputProfile::preset(name).expect(name);
            p.validate().unwrap_or_else(|e| panic!("{name}: {e}"));
            let r = p.resolve(&BaseFormat::default()).expect(name);
            assert_eq!(r.video.is_some(), p.has_video(), "{name}");
            assert_eq!(r.audio.is_some(), p.has_audio(), "{name}");
            assert_eq!(p.name.as_deref(), Some(*name));
            // Round trip through JSON: presets are plain documents.
            let json = serde_json::to_string(&p).expect("serialises");
            let back: OutputProfile = serde_json::from_str(&json).expect("parses");
            assert_eq!(back, p, "{json}");
        }
    }

    #[test]
    fn unknown_preset_has_stable_code() {
        let e = OutputProfile::preset("h263").unwrap_err();
        assert_eq!(e.code(), "unknown-profile");
        assert!(e.to_string().contains("h264-fast"), "{e}");
        let spec: ProfileSpec = serde_json::from_str("\"nope\"").expect("a string");
        assert_eq!(spec.to_profile().unwrap_err().code(), "unknown-profile");
    }

    #[test]
    fn spec_accepts_name_or_document() {
        let spec: ProfileSpec = serde_json::from_str("\"vp9\"").expect("name");
        assert_eq!(spec.to_profile().expect("ok").container, Container::Webm);
        let spec: ProfileSpec =
            serde_json::from_str(r#"{"container":"wav","audio":{"codec":"pcm","bit_depth":24}}"#)
                .expect("document");
        let p = spec.to_profile().expect("ok");
        assert!(!p.has_video() && p.has_audio());
        assert_eq!(
            ProfileSpec::default()
                .to_profile()
                .expect("ok")
                .name
                .as_deref(),
            Some("h264")
        );
    }

    #[test]
    fn spec_errors_name_the_problem() {
        let e = serde_json::from_str::<ProfileSpec>(
            r#"{"container":"mp4","video":{"codec":"h264","crf":20}}"#,
        )
        .expect_err("unknown field");
        assert!(e.to_string().contains("crf"), "{e}");
    }

    #[test]
    fn facts_per_preset() {
        let facts = |n: &str| {
            let p = OutputProfile::preset(n).expect(n);
            (
                p.extension(),
                p.mime_type(),
                p.has_video(),
                p.has_audio(),
                p.is_still(),
            )
        };
        assert_eq!(facts("h264"), ("mp4", "video/mp4", true, true, false));
        assert_eq!(facts("vp9"), ("webm", "video/webm", true, true, false));
        assert_eq!(
            facts("prores-hq"),
            ("mov", "video/quicktime", true, true, false)
        );
        assert_eq!(facts("gif"), ("gif", "image/gif", true, false, false));
        assert_eq!(facts("webp"), ("webp", "image/webp", true, false, false));
        assert_eq!(facts("aac"), ("m4a", "audio/mp4", false, true, false));
        assert_eq!(facts("wav"), ("wav", "audio/wav", false, true, false));
        assert_eq!(facts("mp3"), ("mp3", "audio/mpeg", false, true, false));
        assert_eq!(facts("flac"), ("flac", "audio/flac", false, true, false));
        assert_eq!(facts("png"), ("png", "image/png", true, false, true));
        assert_eq!(facts("poster"), ("jpg", "image/jpeg", true, false, true));
        assert!(OutputProfile::preset("av1").expect("av1").is_experimental());
        assert!(
            !OutputProfile::preset("h264")
                .expect("h264")
                .is_experimental()
        );
    }

    fn invalid_field(json: &str) -> String {
        let p: OutputProfile = serde_json::from_str(json).expect(json);
        let e = p.validate().expect_err(json);
        assert_eq!(e.code(), "invalid-profile", "{json}");
        e.field().expect("field").to_owned()
    }

    #[test]
    fn validation_names_the_field() {
        let cases = [
            (r#"{"container":"mp4"}"#, "video"),
            (
                r#"{"container":"mp4","video":{"codec":"vp9"}}"#,
                "video.codec",
            ),
            (
                r#"{"container":"wav","video":{"codec":"h264"}}"#,
                "video.codec",
            ),
            (
                r#"{"container":"webm","audio":{"codec":"aac"}}"#,
                "audio.codec",
            ),
            (
                r#"{"container":"gif","video":{"codec":"gif"},"audio":{"codec":"aac"}}"#,
                "audio.codec",
            ),
            (r#"{"container":"gif","audio":{"codec":"aac"}}"#, "video"),
            (
                r#"{"container":"mp4","video":{"codec":"h264","width":641}}"#,
                "video.width",
            ),
            (
                r#"{"container":"mp4","video":{"codec":"h264","height":8}}"#,
                "video.height",
            ),
            (
                r#"{"container":"gif","video":{"codec":"gif","width":1920,"height":1080}}"#,
                "video.width",
            ),
            (
                r#"{"container":"gif","video":{"codec":"gif","frame_rate":60}}"#,
                "video.frame_rate",
            ),
            (
                r#"{"container":"mp4","video":{"codec":"h264","frame_rate":0}}"#,
                "video.frame_rate",
            ),
            (
                r#"{"container":"mp4","video":{"codec":"h264","quality":52}}"#,
                "video.quality",
            ),
            (
                r#"{"container":"mov","video":{"codec":"prores","quality":10}}"#,
                "video.quality",
            ),
            (
                r#"{"container":"mp4","video":{"codec":"h264","quality":20,"bitrate_kbps":4000}}"#,
                "video.bitrate_kbps",
            ),
            (
                r#"{"container":"png","video":{"codec":"png","bitrate_kbps":4000}}"#,
                "video.bitrate_kbps",
            ),
            (
                r#"{"container":"mp4","video":{"codec":"h264","keyframe_interval_secs":-1}}"#,
                "video.keyframe_interval_secs",
            ),
            (
                r#"{"container":"mp4","video":{"codec":"h264","at_secs":3}}"#,
                "video.at_secs",
            ),
            (
                r#"{"container":"jpeg","video":{"codec":"jpeg","at_secs":-3}}"#,
                "video.at_secs",
            ),
            (
                r#"{"container":"mp4","video":{"codec":"h264","prores_profile":"hq"}}"#,
                "video.prores_profile",
            ),
            (
                r#"{"container":"webm","audio":{"codec":"opus","sample_rate":44100}}"#,
                "audio.sample_rate",
            ),
            (
                r#"{"container":"mp3","audio":{"codec":"mp3","channels":6}}"#,
                "audio.channels",
            ),
            (
                r#"{"container":"flac","audio":{"codec":"flac","bitrate_kbps":700}}"#,
                "audio.bitrate_kbps",
            ),
            (
                r#"{"container":"wav","audio":{"codec":"pcm","bit_depth":12}}"#,
                "audio.bit_depth",
            ),
            (
                r#"{"container":"mp4","audio":{"codec":"aac","bit_depth":24}}"#,
                "audio.bit_depth",
            ),
        ];
        for (json, field) in cases {
            assert_eq!(invalid_field(json), field, "{json}");
        }
    }

    #[test]
    fn unknown_fields_are_refused() {
        let r: Result<OutputProfile, _> =
            serde_json::from_str(r#"{"container":"mp4","video":{"codec":"h264","crf":20}}"#);
        assert!(r.is_err());
        let r: Result<OutputProfile, _> = serde_json::from_str(r#"{"container":"avi"}"#);
        assert!(r.is_err());
    }

    #[test]
    fn preview_shrinks_tall_timelines_to_360_lines_and_never_enlarges() {
        let p = OutputProfile::preset("preview").expect("preview");
        let v = p
            .resolve(&base(1920, 1080, 30))
            .expect("1080p")
            .video
            .expect("video");
        assert_eq!((v.width, v.height, v.fps_num), (640, 360, 30));
        let v = p
            .resolve(&base(1080, 1920, 30))
            .expect("portrait")
            .video
            .expect("video");
        assert_eq!((v.width, v.height), (202, 360));
        let v = p
            .resolve(&base(320, 240, 25))
            .expect("small")
            .video
            .expect("video");
        assert_eq!((v.width, v.height), (320, 240));
        assert_eq!(
            invalid_field(r#"{"container":"mp4","video":{"codec":"h264","max_height":7}}"#),
            "video.max_height"
        );
    }

    #[test]
    fn resolve_follows_the_timeline_and_keeps_aspect() {
        let p = OutputProfile::preset("h264").expect("h264");
        let r = p.resolve(&base(1280, 720, 25)).expect("resolves");
        let v = r.video.expect("video");
        assert_eq!(
            (v.width, v.height, v.fps_num, v.fps_den),
            (1280, 720, 25, 1)
        );
        assert_eq!(v.colorimetry, "bt709");
        let a = r.audio.expect("audio");
        assert_eq!((a.rate, a.channels), (44100, 2));

        // Only a height: the width follows the timeline's aspect, even for 4:2:0.
        let mut p = OutputProfile::preset("h264").expect("h264");
        if let Some(v) = p.video.as_mut() {
            v.height = Some(360);
        }
        let v = p
            .resolve(&base(1920, 1080, 30))
            .expect("ok")
            .video
            .expect("video");
        assert_eq!((v.width, v.height), (640, 360));
        assert_eq!(v.colorimetry, "bt601", "SD defaults to bt601");
        // An odd timeline size is brought down to even for 4:2:0 codecs.
        let p = OutputProfile::preset("h264").expect("h264");
        let v = p
            .resolve(&base(1279, 721, 30))
            .expect("ok")
            .video
            .expect("video");
        assert_eq!((v.width, v.height), (1278, 720));
    }

    #[test]
    fn resolve_bounds_gif_and_adapts_audio_rates() {
        let gif: OutputProfile =
            serde_json::from_str(r#"{"container":"gif","video":{"codec":"gif"}}"#).expect("gif");
        let v = gif
            .resolve(&base(3840, 2160, 60))
            .expect("ok")
            .video
            .expect("video");
        assert!(
            u64::from(v.width) * u64::from(v.height) <= GIF_MAX_PIXELS,
            "{v:?}"
        );
        assert_eq!((v.fps_num, v.fps_den), (30, 1), "60 fps halves to 30");
        let p = OutputProfile::preset("gif").expect("gif");
        let v = p
            .resolve(&base(1920, 1080, 30))
            .expect("ok")
            .video
            .expect("video");
        assert_eq!((v.width, v.height, v.fps_num), (480, 270, 15));

        let vp9 = OutputProfile::preset("vp9").expect("vp9");
        let a = vp9
            .resolve(&base(640, 360, 30))
            .expect("ok")
            .audio
            .expect("audio");
        assert_eq!(a.rate, 48000, "opus needs 48 kHz");
        let mp3 = OutputProfile::preset("mp3").expect("mp3");
        let mut b = base(640, 360, 30);
        b.channels = 6;
        b.sample_rate = 88200;
        let a = mp3.resolve(&b).expect("ok").audio.expect("audio");
        assert_eq!((a.rate, a.channels), (44100, 2));
    }

    #[test]
    fn colorimetry_choices() {
        let mut p = OutputProfile::preset("h264").expect("h264");
        let mut b = base(1920, 1080, 30);
        b.source_colorimetry = Some("bt601".into());
        assert_eq!(
            p.resolve(&b).expect("ok").video.expect("v").colorimetry,
            "bt709"
        );
        if let Some(v) = p.video.as_mut() {
            v.colorimetry = Colorimetry::Carry;
        }
        assert_eq!(
            p.resolve(&b).expect("ok").video.expect("v").colorimetry,
            "bt601"
        );
        b.source_colorimetry = Some("garbage, format=RGB".into());
        assert_eq!(
            p.resolve(&b).expect("ok").video.expect("v").colorimetry,
            "bt709"
        );
        b.source_colorimetry = Some("1:4:0:0".into());
        assert_eq!(
            p.resolve(&b).expect("ok").video.expect("v").colorimetry,
            "1:4:0:0"
        );
    }

    #[test]
    fn effective_settings_fill_defaults() {
        let p = OutputProfile::preset("h264").expect("h264");
        let v = p.video.as_ref().expect("video").effective(30.0);
        assert_eq!(v.quality, Some(23));
        assert_eq!(v.keyframe_frames, 250);
        assert_eq!(v.speed, Speed::Veryfast);
        let p = OutputProfile::preset("h264-fast").expect("fast");
        let v = p.video.as_ref().expect("video").effective(29.97);
        assert_eq!(v.keyframe_frames, 60);
        let custom: OutputProfile = serde_json::from_str(
            r#"{"container":"mp4","video":{"codec":"h265","bitrate_kbps":3000}}"#,
        )
        .expect("ok");
        let v = custom.video.as_ref().expect("video").effective(30.0);
        assert_eq!((v.quality, v.bitrate_kbps), (None, Some(3000)));
    }

    #[test]
    fn schema_is_generated() {
        let schema = schemars::schema_for!(OutputProfile);
        let text = serde_json::to_string(&schema).expect("schema");
        assert!(
            text.contains("prores_profile") && text.contains("ultrafast"),
            "{text}"
        );
    }
}
