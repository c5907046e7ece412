//! The live monitor on nice-plug's dummy backend (no sound card: it feeds silence in periods of
//! the configured size, paced in real time): it starts, loads the models, analyses what comes in
//! (the window log fills) and exits cleanly on Ctrl-C (SIGINT), as a user stops it.
//!
//! Runs without a display (DISPLAY unset): the editor cannot open there, which nice-plug reports
//! before it keeps processing headless until SIGINT.
//!
//! Needs the models (`cargo xtask install-models`).

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("workspace root")
}

#[test]
fn runs_on_the_dummy_backend_analyses_and_stops_on_ctrl_c() {
    let models = workspace_root().join("models");
    assert!(
        models.join("yamnet.onnx").is_file(),
        "no YAMNet model in {}: install the models with `cargo xtask install-models`",
        models.display()
    );
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("windows.csv");
    let mut child = Command::new(env!("CARGO_BIN_EXE_moodscope-live"))
        .args([
            "--backend",
            "dummy",
            "--sample-rate",
            "48000",
            "--period-size",
            "512",
        ])
        .env("MOODSCOPE_MODELS", &models)
        .env("MOODSCOPE_WINDOW_LOG", &log)
        .env_remove("DISPLAY")
        .env_remove("WAYLAND_DISPLAY")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting moodscope-live");
    let mut stderr = child.stderr.take().unwrap();
    let err_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let mut stdout = child.stdout.take().unwrap();
    let out_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stdout.read_to_string(&mut s);
        s
    });

    // Wait for the analysis to publish a few windows (models load first), at most 60 s.
    let started = Instant::now();
    let rows = |log: &Path| {
        std::fs::read_to_string(log)
            .map(|t| t.lines().count().saturating_sub(1))
            .unwrap_or(0)
    };
    while rows(&log) < 4 && started.elapsed() < Duration::from_secs(60) {
        if let Some(status) = child.try_wait().unwrap() {
            panic!(
                "moodscope-live exited early ({status}):\n{}",
                err_reader.join().unwrap()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let analysed = rows(&log);

    // Ctrl-C: nice-plug's handler stops the audio thread and deactivates the plugin.
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let stopped = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if stopped.elapsed() > Duration::from_secs(15) {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let stderr = err_reader.join().unwrap();
    let stdout = out_reader.join().unwrap();
    let output = format!("--- stderr ---\n{stderr}\n--- stdout ---\n{stdout}");
    let status = status.unwrap_or_else(|| panic!("no exit within 15 s of SIGINT\n{output}"));

    assert!(
        analysed >= 4,
        "the monitor analysed {analysed} windows in 60 s\n{output}"
    );
    assert!(
        !output.contains("panicked"),
        "a panic in the monitor\n{output}"
    );
    // Processing silence, the analysis says so (and has no dominant mood).
    let text = std::fs::read_to_string(&log).unwrap();
    let header = text.lines().next().unwrap();
    assert!(
        header.contains("Happy") && header.contains("Scary"),
        "{header}"
    );
    // A clean exit: success, or (when the plugin has an editor and there is no display to
    // open it on) nice-plug's report that the window could not open, after a clean shutdown.
    assert!(
        status.success() || output.contains("Failed to open editor"),
        "moodscope-live exited with {status}\n{output}"
    );
    assert!(
        status.code().is_some(),
        "moodscope-live was killed by a signal ({status})\n{output}"
    );
}
