//! The render compiler: timeline → [`plan::RenderPlan`] (plain data) → a GStreamer pipeline
//! built directly (`build`), driven to the end by [`run::render`]. The same compiler makes full
//! renders, range renders and single frames ([`run::frame_at`]), so a preview is the render.
//!
//! ```text
//! Timeline ──plan()──► RenderPlan ──build()──► video pad (I420, output size and rate)
//!                                              audio pad (F32LE interleaved, output rate)
//!                                                  └── linked by the caller to an encoder
//!                                                      (output.rs) or to appsinks (tests)
//! ```
//!
//! See `docs/rendering.md` for what is rendered exactly and what is refused.

pub mod build;
mod effects;
pub mod encoders;
pub mod file;
mod framemap;
pub mod output;
pub mod plan;
pub mod profiles;
mod retime;
pub mod run;
pub mod smart;
mod stills;
mod window;

pub use build::{BuildOptions, Built, build};
pub use plan::{RenderPlan, SourceMedia, plan};
pub use run::{Progress, RenderOptions, RenderReport, RgbFrame, frame_at, plan_frame, render};

/// Why a render could not be planned, built or finished. [`RenderError::code`] is stable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RenderError {
    /// The lookup knows no such asset, or its file is gone.
    #[error("missing-source: {0}")]
    MissingSource(String),
    /// Something the compiler cannot render exactly (yet); the message says what.
    #[error("unsupported: {0}")]
    Unsupported(String),
    #[error("empty-timeline: the timeline has no clips")]
    EmptyTimeline,
    #[error("invalid-range: {0}")]
    InvalidRange(String),
    /// A source could not be read or decoded (corrupt, truncated, no decoder).
    #[error("not-decodable: {0}")]
    NotDecodable(String),
    /// The render made no progress for too long.
    #[error("timed-out: {0}")]
    TimedOut(String),
    #[error("cancelled: the render was cancelled")]
    Cancelled,
    /// A failure of the pipeline itself or of an encoder/sink attached to it.
    #[error("internal: {0}")]
    Internal(String),
}

impl RenderError {
    pub fn code(&self) -> &'static str {
        match self {
            RenderError::MissingSource(_) => "missing-source",
            RenderError::Unsupported(_) => "unsupported",
            RenderError::EmptyTimeline => "empty-timeline",
            RenderError::InvalidRange(_) => "invalid-range",
            RenderError::NotDecodable(_) => "not-decodable",
            RenderError::TimedOut(_) => "timed-out",
            RenderError::Cancelled => "cancelled",
            RenderError::Internal(_) => "internal",
        }
    }

    /// The caller's document or media is at fault (as opposed to the renderer).
    pub fn is_client_error(&self) -> bool {
        !matches!(
            self,
            RenderError::Internal(_) | RenderError::TimedOut(_) | RenderError::Cancelled
        )
    }
}

pub(crate) fn internal(e: impl std::fmt::Display) -> RenderError {
    RenderError::Internal(e.to_string())
}
