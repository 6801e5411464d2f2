//! Shared test fixtures: a small fake asset store and document builders.

use super::model::{Clip, Rgba, Source, Timeline, Title, Track, TrackKind, Transition};
use super::time::Frames;
use super::validate::{AssetInfo, Context, TimelineLimits};
use super::{HAlign, TransitionKind, VAlign};

/// 10 s of video with sound.
pub const VIDEO: &str = "00000000-0000-4000-8000-000000000001";
/// 60 s of sound only.
pub const AUDIO: &str = "00000000-0000-4000-8000-000000000002";
pub const IMAGE: &str = "00000000-0000-4000-8000-000000000003";
/// 5 s of silent video.
pub const SILENT: &str = "00000000-0000-4000-8000-000000000004";

pub fn assets(id: &str) -> Option<AssetInfo> {
    let av = |secs: i64, v: bool, a: bool| AssetInfo {
        duration_ns: secs * 1_000_000_000,
        has_video: v,
        has_audio: a,
        is_image: false,
        width: if v { 1920 } else { 0 },
        height: if v { 1080 } else { 0 },
    };
    match id {
        VIDEO => Some(av(10, true, true)),
        AUDIO => Some(av(60, false, true)),
        SILENT => Some(av(5, true, false)),
        IMAGE => Some(AssetInfo {
            is_image: true,
            width: 800,
            height: 600,
            ..AssetInfo::default()
        }),
        _ => None,
    }
}

pub static LIMITS: TimelineLimits = TimelineLimits {
    max_tracks: 8,
    max_clips: 50,
    max_keyframes_per_clip: 4,
    max_effects_per_clip: 3,
    max_title_chars: 100,
    max_duration: std::time::Duration::from_secs(3600),
    strict_grid: false,
};

pub fn cx() -> Context<'static> {
    Context {
        limits: &LIMITS,
        assets: &assets,
    }
}

pub fn video_clip(id: &str, start: i64, duration: i64) -> Clip {
    Clip::new(
        id,
        Source::Asset {
            asset_id: VIDEO.into(),
        },
        Frames(start),
        Frames(duration),
    )
}

pub fn title(text: &str) -> Source {
    Source::Title(Box::new(Title {
        text: text.into(),
        font_family: "Sans".into(),
        size: 48.0,
        weight: 700,
        color: Rgba::WHITE,
        outline: None,
        shadow: None,
        background: None,
        align: HAlign::Center,
        valign: VAlign::Bottom,
        x: 0.5,
        y: 0.9,
        fade_in: Frames(0),
        fade_out: Frames(0),
    }))
}

/// 30 fps. Track `v` (video): `a` [0,90), `b` [60,150) with a 30-frame crossfade a→b,
/// `c` [150,210). Track `m` (audio): `s` [0,300). Track `o` (overlay): title `t` [30,90).
pub fn sample() -> Timeline {
    let mut v = Track::new("v", TrackKind::Video);
    v.clips = vec![
        video_clip("a", 0, 90),
        video_clip("b", 60, 90),
        video_clip("c", 150, 60),
    ];
    v.transitions = vec![Transition {
        from: "a".into(),
        to: "b".into(),
        kind: TransitionKind::Crossfade,
        duration: Frames(30),
    }];
    let mut m = Track::new("m", TrackKind::Audio);
    m.clips = vec![Clip::new(
        "s",
        Source::Asset {
            asset_id: AUDIO.into(),
        },
        Frames(0),
        Frames(300),
    )];
    let mut o = Track::new("o", TrackKind::Overlay);
    o.clips = vec![Clip::new("t", title("Hello"), Frames(30), Frames(60))];
    let mut tl = Timeline {
        output: Default::default(),
        tracks: vec![v, m, o],
    };
    tl.canonicalize();
    tl
}
