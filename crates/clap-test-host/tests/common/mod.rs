//! What the host tests share: where the built plugins, the models and the music are, excerpts of
//! real music written as float WAV files, and `run`, which plays a scenario through the plugin in
//! a separate `clap-test-host` process (so that each run has its own environment — models
//! folder, window log — and an allocation caught by `assert_process_allocs`, which aborts the
//! process, fails one test instead of the whole test binary).
//!
//! Nothing here skips: a missing bundle, model or music file fails the test with the command
//! that provides it.

#![allow(dead_code)]

use std::ffi::OsString;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use clap_test_host::audio::{self, Audio};
use clap_test_host::scenario::Report;
use clap_test_host::window_log::{self, WindowLog};

/// The track most tests play: HyperRogue's "Caves" (Debian `hyperrogue-music`, freely licensed).
pub const MUSIC: &str = "hr3-caves.ogg";
/// A second track, for variety.
pub const OTHER_MUSIC: &str = "hr-savino-ocean.ogg";

pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("workspace root")
}

pub fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => {
            let dir = PathBuf::from(dir);
            if dir.is_absolute() {
                dir
            } else {
                workspace_root().join(dir)
            }
        }
        None => workspace_root().join("target"),
    }
}

/// The release CLAP bundle (what users install).
pub fn release_clap() -> PathBuf {
    let path = target_dir().join("bundled/Moodscope.clap");
    assert!(
        path.is_file(),
        "the plugin bundle {} is missing: build it first with `cargo xtask bundle moodscope --release`",
        path.display()
    );
    path
}

/// The release VST3 bundle (what users install).
pub fn release_vst3() -> PathBuf {
    let path = target_dir().join("bundled/Moodscope.vst3");
    assert!(
        path.join(format!("Contents/{}-linux/Moodscope.so", std::env::consts::ARCH))
            .is_file(),
        "the plugin bundle {} is missing: build it first with `cargo xtask bundle moodscope --release`",
        path.display()
    );
    path
}

/// The debug build with nice-plug's `assert_process_allocs` (any allocation inside `process()`
/// aborts the host process), made by `crates/clap-test-host/build-alloc-check.sh`.
pub fn alloc_check_clap() -> PathBuf {
    let path = target_dir().join("alloc-check/Moodscope.clap");
    assert!(
        path.is_file(),
        "the allocation-checking plugin build {} is missing: build it first with \
         `bash crates/clap-test-host/build-alloc-check.sh` (a debug build of the plugin with \
         `--features assert_process_allocs`)",
        path.display()
    );
    let binary = std::fs::read(&path).expect("reading the alloc-check build");
    // The message nice-assert-no-alloc logs before aborting: present only when the check is
    // compiled in (debug assertions and the feature), so a plain build cannot pass for it.
    assert!(
        binary.windows(20).any(|w| w == b" bytes failed from:\n"),
        "{} was built without the allocation check: rebuild it with \
         `bash crates/clap-test-host/build-alloc-check.sh`",
        path.display()
    );
    path
}

/// The installed model files (YAMNet at least).
pub fn models() -> PathBuf {
    let dir = workspace_root().join("models");
    assert!(
        dir.join("yamnet.onnx").is_file(),
        "no YAMNet model in {}: install the models with `cargo xtask install-models`",
        dir.display()
    );
    dir
}

/// A track of Debian's `hyperrogue-music`.
pub fn music(name: &str) -> PathBuf {
    let path = Path::new("/usr/share/hyperrogue/music").join(name);
    assert!(
        path.is_file(),
        "{} is missing: `apt-get install hyperrogue-music`",
        path.display()
    );
    path
}

/// The first `seconds` of a track, from `skip` seconds in, with `channels` channels at `rate`
/// (resampled when that is not the file's own), written as a float WAV file in `dir`. Returns
/// the file and the audio it holds (bit for bit what a decoder reads back).
pub fn excerpt(
    dir: &Path,
    track: &str,
    skip: f64,
    seconds: f64,
    rate: Option<u32>,
    channels: usize,
) -> (PathBuf, Audio) {
    let mut audio =
        audio::decode_prefix(&music(track), Some(skip + seconds)).expect("decoding the music");
    let skip_frames = (skip * audio.rate as f64).round() as usize;
    for c in &mut audio.channels {
        c.drain(..skip_frames.min(c.len()));
    }
    let want = (seconds * audio.rate as f64).round() as usize;
    assert_eq!(
        audio.frames(),
        want,
        "{track} is shorter than {skip} + {seconds} s"
    );
    let mut audio = audio.with_channels(channels);
    if let Some(rate) = rate {
        audio = audio.resampled(rate).expect("resampling the music");
    }
    let name = format!(
        "{}-{skip}s-{seconds}s-{}hz-{channels}ch.wav",
        track.trim_end_matches(".ogg"),
        audio.rate
    );
    let path = dir.join(name);
    audio::write_wav_f32(&path, &audio).expect("writing the excerpt");
    (path, audio)
}

/// One run of the `clap-test-host` binary.
pub struct HostRun {
    pub plugin: PathBuf,
    pub args: Vec<OsString>,
    /// `MOODSCOPE_MODELS` for the plugin.
    pub models: PathBuf,
    /// `MOODSCOPE_WINDOW_LOG` for the plugin (unset when `None`).
    pub window_log: Option<PathBuf>,
    pub env: Vec<(String, OsString)>,
    pub timeout: Duration,
}

/// What a run gave.
pub struct HostOutcome {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
    pub elapsed: Duration,
}

impl HostOutcome {
    /// The JSON report of a successful run; panics with the host's stderr otherwise.
    pub fn report(&self) -> Report {
        assert!(
            self.status.success(),
            "clap-test-host failed ({}):\n--- stderr ---\n{}\n--- stdout ---\n{}",
            self.status,
            tail(&self.stderr, 6000),
            tail(&self.stdout, 2000)
        );
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("unreadable report ({e}):\n{}", tail(&self.stdout, 4000)))
    }
}

/// The last `n` bytes of `s` (from a character boundary).
pub fn tail(s: &str, n: usize) -> &str {
    let start = s.len().saturating_sub(n);
    let start = (start..s.len())
        .find(|&i| s.is_char_boundary(i))
        .unwrap_or(s.len());
    &s[start..]
}

impl HostRun {
    pub fn new(plugin: &Path, input: &Path) -> Self {
        Self {
            plugin: plugin.to_owned(),
            args: vec!["--input".into(), input.into()],
            models: models(),
            window_log: None,
            env: Vec::new(),
            timeout: Duration::from_secs(240),
        }
    }

    /// Appends command-line arguments (`--rate 48000`, `--block variable:8192`, ...).
    pub fn arg(mut self, arg: impl Into<OsString>) -> Self {
        self.args.push(arg.into());
        self
    }

    pub fn args<I: IntoIterator<Item = S>, S: Into<OsString>>(mut self, args: I) -> Self {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    pub fn models(mut self, dir: &Path) -> Self {
        self.models = dir.to_owned();
        self
    }

    pub fn window_log(mut self, path: &Path) -> Self {
        self.window_log = Some(path.to_owned());
        self
    }

    pub fn env(mut self, key: &str, value: impl Into<OsString>) -> Self {
        self.env.push((key.to_owned(), value.into()));
        self
    }

    /// Runs the host; kills it after the timeout.
    pub fn run(self) -> HostOutcome {
        let mut command = Command::new(env!("CARGO_BIN_EXE_clap-test-host"));
        command
            .arg("run")
            .arg("--plugin")
            .arg(&self.plugin)
            .args(&self.args);
        command.env("MOODSCOPE_MODELS", &self.models);
        command.env_remove("MOODSCOPE_WINDOW_LOG");
        command.env_remove("MOODSCOPE_DEBUG_WORKER_PANICS");
        if let Some(log) = &self.window_log {
            // The host sets MOODSCOPE_WINDOW_LOG from it and reports what the log holds.
            command.arg("--window-log").arg(log);
        }
        for (k, v) in &self.env {
            command.env(k, v);
        }
        let finished = run_child(&mut command, self.timeout);
        let Some(status) = finished.status else {
            panic!(
                "clap-test-host did not finish within {:?}; args {:?}\n--- stderr ---\n{}",
                self.timeout,
                self.args,
                tail(&finished.stderr, 6000)
            );
        };
        HostOutcome {
            status,
            stdout: finished.stdout,
            stderr: finished.stderr,
            elapsed: finished.elapsed,
        }
    }
}

/// A child process run to its end, or killed at a timeout.
pub struct Finished {
    /// `None`: killed at the timeout.
    pub status: Option<ExitStatus>,
    pub stdout: String,
    pub stderr: String,
    pub elapsed: Duration,
}

/// Runs `command` with its output captured (read on threads of their own, so that a chatty child
/// never blocks on a full pipe); kills it after `timeout`.
pub fn run_child(command: &mut Command, timeout: Duration) -> Finished {
    command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .stdin(Stdio::null());
    let started = Instant::now();
    let mut child = command.spawn().expect("starting clap-test-host");
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let out_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        s
    });
    let err_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let status = loop {
        if let Some(status) = child.try_wait().expect("waiting for the child") {
            break Some(status);
        }
        if started.elapsed() > timeout {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Finished {
        status,
        stdout: out_reader.join().unwrap_or_default(),
        stderr: err_reader.join().unwrap_or_default(),
        elapsed: started.elapsed(),
    }
}

/// Every pass of a report passed the audio through bit for bit with zero latency.
pub fn assert_clean_passes(report: &Report, what: &str) {
    assert!(!report.passes.is_empty(), "{what}: no pass ran");
    for pass in report.flaps.iter().chain(&report.passes) {
        assert!(
            pass.passthrough.bit_exact,
            "{what}: audio changed at {} Hz: {} samples differ, first at (channel, frame) {:?}",
            pass.rate, pass.passthrough.mismatches, pass.passthrough.first_mismatch
        );
        assert_eq!(
            pass.latency,
            Some(0),
            "{what}: the plugin must report zero latency at {} Hz",
            pass.rate
        );
    }
}

pub fn read_log(path: &Path) -> WindowLog {
    window_log::read(path).unwrap_or_else(|e| panic!("{e:#}"))
}

/// The moods of every row are probabilities (finite, 0–1, summing to 1), raw and smoothed, and
/// presence is in 0–1.
pub fn assert_sane_moods(log: &WindowLog, what: &str) {
    assert_eq!(
        log.labels,
        ["Happy", "Sad", "Calm", "Angry", "Scary"],
        "{what}: labels (the default readout's)"
    );
    for row in &log.rows {
        for (kind, values) in [("raw", &row.raw), ("published", &row.probabilities)] {
            assert_eq!(values.len(), 5, "{what}: window {}", row.window);
            assert!(
                values
                    .iter()
                    .all(|p| p.is_finite() && (0.0..=1.0).contains(p)),
                "{what}: window {} {kind} moods {values:?}",
                row.window
            );
            let sum: f32 = values.iter().sum();
            assert!(
                (sum - 1.0).abs() < 1e-4,
                "{what}: window {} {kind} moods sum to {sum}",
                row.window
            );
        }
        for (kind, p) in [("raw", row.raw_presence), ("published", row.presence)] {
            assert!(
                p.is_finite() && (0.0..=1.0).contains(&p),
                "{what}: window {} {kind} presence {p}",
                row.window
            );
        }
        assert!(
            row.confidence.is_finite(),
            "{what}: window {} confidence {}",
            row.window,
            row.confidence
        );
        if let Some(d) = row.dominant {
            assert!(d < 5, "{what}: window {} dominant {d}", row.window);
            // The confidence is the dominant mood's group's probability: the default readout's
            // Happy and Calm (0, 2) decide together, and so do Angry and Scary (3, 4).
            let groups = moodscope::head::CALIBRATED_GROUPS;
            let group: f32 = (0..5)
                .filter(|&i| groups[i] == groups[d])
                .map(|i| row.probabilities[i])
                .sum();
            assert!(
                (row.confidence - group).abs() < 1e-6,
                "{what}: window {}: confidence {} for dominant {d} of {:?}",
                row.window,
                row.confidence,
                row.probabilities
            );
        } else {
            assert_eq!(row.confidence, 0.0, "{what}: window {}", row.window);
        }
    }
    for pair in log.rows.windows(2) {
        assert!(
            pair[1].sequence > pair[0].sequence,
            "{what}: sequence numbers must grow"
        );
        assert!(
            pair[1].window == pair[0].window + 1,
            "{what}: windows must follow one another"
        );
    }
}

/// One logged window is `analyze`'s window of the same index: the same place in the audio and,
/// bit for bit, the same probabilities and presence.
pub fn assert_window_is_analyzes(
    row: &window_log::WindowRow,
    reading: &moodscope::engine::WindowReading,
    what: &str,
) {
    assert_eq!(
        (row.window, row.start_seconds, row.end_seconds),
        (reading.index, reading.start_seconds, reading.end_seconds),
        "{what}"
    );
    assert!(
        same_bits(&row.raw, &reading.probabilities)
            && row.raw_presence.to_bits() == reading.presence.to_bits(),
        "{what}: window {} differs: logged {:?} presence {}, analyze {:?} presence {}",
        row.window,
        row.raw,
        row.raw_presence,
        reading.probabilities,
        reading.presence
    );
}

/// Tolerance-free comparison helper: the bits of two float slices.
pub fn same_bits(a: &[f32], b: &[f32]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits())
}
