//! The media domain of nve. Knows nothing of HTTP, databases or queues.

pub mod elements;
pub mod probe;
pub mod proxy;
pub mod render;
pub mod thumbs;
pub mod timeline;
pub mod waveform;
