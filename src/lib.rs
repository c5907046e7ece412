//! Moodscope: listens to a track and says, continuously, how the music feels.
//!
//! Data flows one way, and the modules follow it:
//!
//! ```text
//! audio thread:  plugin::realtime  --(ring)-->  worker thread:
//!   features (resample → log-mel → patch) → backbone (patch → embedding)
//!   → head (embedding → mood probabilities, state carried window to window)
//!   → engine (smoothing, publish) → editor / outputs (MIDI CC, OSC)
//! ```
//!
//! The command-line tool (`cli`, feature `cli`) runs the very same `engine::Analyser` on decoded
//! files, so a file analysed offline and the same audio rendered through the plugin give the same
//! numbers.

pub mod backbone;
pub mod cues;
pub mod editor;
pub mod engine;
pub mod features;
pub mod head;
pub mod models;
pub mod outputs;
pub mod plugin;
pub mod ring;

#[cfg(feature = "cli")]
pub mod cli;
#[cfg(feature = "cli")]
pub mod decode;

nice_plug::nice_export_clap!(plugin::Moodscope);
nice_plug::nice_export_vst3!(plugin::Moodscope);
