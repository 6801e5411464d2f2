//! The timeline document and its edits (pure data, no I/O).
//!
//! Two layers:
//!
//! * the **domain** [`Timeline`]: every time is an integer number of output frames
//!   ([`Frames`]); this is stored, logged and compiled into render plans;
//! * the **wire** [`TimelineDoc`] / [`OpDoc`]: times in seconds, what API callers post and
//!   receive. [`Timeline::from_doc`] and [`Timeline::op_from_doc`] snap seconds to the frame
//!   grid once (half away from zero), so cuts are frame-accurate and nothing drifts.
//!
//! Edits are [`Op`]s. [`Timeline::apply`] works on a copy, validates the result and returns it
//! with the inverse op, so undo is "apply the inverse" and a failed edit changes nothing.
//!
//! Validation needs facts about assets that only the caller can look up; they come in through a
//! [`Context`] together with the [`TimelineLimits`]:
//!
//! ```
//! use nve_pipelines::timeline::{AssetInfo, Context, Timeline, TimelineDoc, TimelineLimits};
//!
//! let doc: TimelineDoc = serde_json::from_str(r##"{
//!     "output": {"width": 1280, "height": 720, "frame_rate": {"num": 30000, "den": 1001}},
//!     "tracks": [{"id": "v1", "kind": "video", "clips": [
//!         {"id": "c1", "source": {"type": "asset", "asset_id": "a"}, "start": 0, "duration": 2.5}
//!     ]}]
//! }"##).unwrap();
//! let assets = |id: &str| (id == "a").then(|| AssetInfo {
//!     duration_ns: 10_000_000_000, has_video: true, has_audio: true,
//!     is_image: false, width: 1920, height: 1080,
//! });
//! let limits = TimelineLimits::default();
//! let cx = Context { limits: &limits, assets: &assets };
//! let tl = Timeline::from_doc(&doc, &cx).unwrap();
//! assert_eq!(tl.tracks[0].clips[0].duration.get(), 75); // 2.5 s at 29.97 fps
//! ```

mod doc;
mod model;
mod op_doc;
mod ops;
mod time;
mod validate;

#[cfg(test)]
mod fixtures;

pub use doc::{
    AudioDoc, BoxDoc, ClipDoc, FrameRateDoc, KeyframeDoc, OutlineDoc, OutputDoc, RatioDoc,
    ShadowDoc, SourceDoc, TimelineDoc, TitleDoc, TrackDoc, TransitionDoc,
};
pub use model::{
    AnimProp, Clip, ClipAudio, Effect, Fit, HAlign, Interpolation, Keyframe, Outline, Output, Rgba,
    Shadow, Source, Timeline, Title, TitleBox, Track, TrackKind, Transform, Transition,
    TransitionKind, VAlign,
};
pub use op_doc::{ClipPatchDoc, OpDoc, OpIntake, OutputPatchDoc};
pub use ops::{ClipPatch, EditError, Op, OutputField, OutputPatch, Touch, TrackPatch};
pub use time::{Frames, MAX_FRAMES, Rate, Speed, TimeError};
pub use validate::{
    AssetInfo, Code, Context, TimelineLimits, VOLUME_DB_RANGE, ValidationError, ValidationErrors,
};
