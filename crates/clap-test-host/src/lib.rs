//! A small CLAP host for tests, on clack-host.
//!
//! In: a built `.clap` bundle and real music. Out: proof that the plugin behaves in a host —
//! audio passes through bit for bit at any rate and block size, parameters and state work,
//! activation cycles are clean — and what the plugin published (read from its window log).
//!
//! `host` drives one plugin instance; `audio` decodes, resamples and cuts test audio;
//! `window_log` reads the plugin's opt-in per-window CSV; `scenario` strings these into the runs
//! the `clap-test-host` binary performs and reports as JSON; `gui` opens the plugin's editor in
//! an X11 window while music plays and takes a screenshot of it.

pub mod audio;
pub mod gui;
pub mod host;
pub mod scenario;
pub mod window_log;
