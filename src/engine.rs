//! The analysis engine: mono samples at the input rate in, one mood reading per window out.
//!
//! `Analyser` chains the front end, a shared backbone and a head; the plugin's worker and the
//! command-line tool both drive it, so both give the same numbers for the same audio.
//! `Smoother` turns raw readings into what users watch: exponentially smoothed probabilities
//! with a user-set time constant, and a dominant mood with hysteresis so it does not flicker.
