//! `moodscope-live`: Moodscope as a standalone application, for a DJ or a lighting operator
//! watching a mixer's output.
//!
//! In: a sound-card input (JACK, or ALSA through cpal; nice-plug's standalone wrapper picks the
//! backend, see `moodscope-live --help`), and the same settings as the plugin (set in the
//! editor). Out: the same editor as the plugin, and the same MIDI CC (to a MIDI output port:
//! `--midi-output`, or JACK's MIDI port) and OSC outputs. The audio itself passes through to the
//! output device unchanged, as in the plugin.
//!
//! Everything after the program name is nice-plug's standalone options, for example
//! `moodscope-live --backend alsa --input-device hw:1 --sample-rate 48000` or
//! `moodscope-live --backend jack --connect-jack-inputs system:capture_1,system:capture_2`.
//! `--backend dummy` runs without a sound card (silence in), for tests.

use std::process::ExitCode;

use moodscope::plugin::Moodscope;

fn main() -> ExitCode {
    if nice_plug::nice_export_standalone::<Moodscope>() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
