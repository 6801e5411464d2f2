//! GStreamer initialisation and the element inventory, checked once at start-up and reported
//! on the readiness endpoint: a missing plugin package should be one clear message listing every
//! missing factory, not a pipeline failure in the middle of a user's render.

use std::sync::OnceLock;

/// Factories the ingest, preview and render paths need, grouped by the Debian package that ships them
/// so the message tells an operator what to install.
pub const REQUIRED_ELEMENTS: &[(&str, &str)] = &[
    ("filesrc", "gstreamer1.0 (core)"),
    ("queue", "gstreamer1.0 (core)"),
    ("identity", "gstreamer1.0 (core)"),
    ("concat", "gstreamer1.0 (core)"),
    ("appsink", "gstreamer1.0-plugins-base"),
    ("decodebin", "gstreamer1.0-plugins-base"),
    ("videoconvert", "gstreamer1.0-plugins-base"),
    ("videoscale", "gstreamer1.0-plugins-base"),
    ("videorate", "gstreamer1.0-plugins-base"),
    ("audioconvert", "gstreamer1.0-plugins-base"),
    ("audioresample", "gstreamer1.0-plugins-base"),
    ("audiomixer", "gstreamer1.0-plugins-base"),
    ("compositor", "gstreamer1.0-plugins-base"),
    ("volume", "gstreamer1.0-plugins-base"),
    ("textoverlay", "gstreamer1.0-plugins-base"),
    ("qtdemux", "gstreamer1.0-plugins-good"),
    ("matroskademux", "gstreamer1.0-plugins-good"),
    ("mp4mux", "gstreamer1.0-plugins-good"),
    ("jpegenc", "gstreamer1.0-plugins-good"),
    ("pngenc", "gstreamer1.0-plugins-good"),
    ("vp9enc", "gstreamer1.0-plugins-good"),
    ("webmmux", "gstreamer1.0-plugins-good"),
    ("gdkpixbufoverlay", "gstreamer1.0-plugins-good"),
    ("h264parse", "gstreamer1.0-plugins-bad"),
    ("voaacenc", "gstreamer1.0-plugins-bad"),
    ("x264enc", "gstreamer1.0-plugins-ugly"),
    ("avdec_h264", "gstreamer1.0-libav"),
    ("avdec_aac", "gstreamer1.0-libav"),
];

/// What start-up found: GStreamer's version, or why it could not start, and what is missing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inventory {
    pub version: String,
    /// `(factory, package)` pairs that are not registered.
    pub missing: Vec<(&'static str, &'static str)>,
}

impl Inventory {
    pub fn is_complete(&self) -> bool {
        self.missing.is_empty()
    }

    /// One line naming every missing factory and the packages that provide them.
    pub fn missing_summary(&self) -> Option<String> {
        if self.missing.is_empty() {
            return None;
        }
        let mut packages: Vec<&str> = self.missing.iter().map(|(_, p)| *p).collect();
        packages.sort_unstable();
        packages.dedup();
        let factories: Vec<&str> = self.missing.iter().map(|(f, _)| *f).collect();
        Some(format!(
            "missing GStreamer elements: {} (install: {})",
            factories.join(", "),
            packages.join(", ")
        ))
    }
}

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum ElementsError {
    #[error("GStreamer failed to initialise: {0}")]
    Init(String),
}

/// Initialises GStreamer (once per process) and looks up every required factory.
pub fn inventory() -> Result<&'static Inventory, ElementsError> {
    static INVENTORY: OnceLock<Result<Inventory, ElementsError>> = OnceLock::new();
    INVENTORY
        .get_or_init(|| {
            gstreamer::init().map_err(|e| ElementsError::Init(e.to_string()))?;
            let missing = REQUIRED_ELEMENTS
                .iter()
                .filter(|(name, _)| gstreamer::ElementFactory::find(name).is_none())
                .copied()
                .collect();
            Ok(Inventory {
                version: gstreamer::version_string().to_string(),
                missing,
            })
        })
        .as_ref()
        .map_err(Clone::clone)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inventory_finds_core_elements_and_names_packages() {
        let inv = inventory().expect("GStreamer initialises");
        assert!(inv.version.starts_with("GStreamer"), "{}", inv.version);
        // Core elements ship with libgstreamer itself, so they can never be missing.
        assert!(!inv.missing.iter().any(|(f, _)| *f == "queue"));
        if let Some(summary) = inv.missing_summary() {
            assert!(summary.contains("install:"));
        }
    }

    #[test]
    fn summary_lists_each_package_once() {
        let inv = Inventory {
            version: "x".into(),
            missing: vec![
                ("x264enc", "gstreamer1.0-plugins-ugly"),
                ("avdec_h264", "gstreamer1.0-libav"),
                ("avdec_aac", "gstreamer1.0-libav"),
            ],
        };
        let s = inv.missing_summary().expect("missing");
        assert_eq!(s.matches("gstreamer1.0-libav").count(), 1, "{s}");
        assert!(s.contains("x264enc, avdec_h264, avdec_aac"), "{s}");
    }
}
