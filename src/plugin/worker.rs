//! The worker: mono audio from the ring in, smoothed moods published out.
//!
//! A `Session` is one analysis stream: `engine::Analyser` (resample → log-mel → patch →
//! backbone → head, the same code as `moodscope analyze`), then `engine::Smoother`, then
//! `Published::publish` and the mood read-out parameters (`MoodscopeParams::mirror`), for each
//! window as it completes. The worker thread (one per plugin instance) drives a session from the
//! ring; during an offline render `process()` drives one directly so no window is dropped.
//!
//! Pace: a live stream brings audio at real-time pace, and a worker that falls behind by more
//! than `MAX_LAG_SECONDS` drops the oldest audio to stay current. A host that renders faster than
//! real time but calls the plugin in real-time mode (Ardour's export: it says "offline" only in
//! each block's process data, which nice-plug does not pass on) is not live: `PaceMeter` sees the
//! audio arrive more than `FREEWHEEL_AHEAD_SECONDS` ahead of the wall clock (decaying with a
//! `PACE_TIME_CONSTANT` time constant, so block bursts and model loads of a live stream never
//! count), and while it does the worker drops nothing and the audio thread waits for room in the
//! ring (`RingReader::set_writer_waits`): every window is analysed, as in an offline render.
//! A render may start pouring audio in at activation, before the worker has looked at the
//! pace: the ring is made waiting, and stays so for `SETTLE_SECONDS` after the first look (a
//! live stream cannot fill it that soon); and the models load on a thread of their own
//! (`SessionLoad`) while the worker goes on measuring, so such a render waits for them rather
//! than overrunning the ring while they load.
//!
//! Denormals: the worker thread flushes them to zero for its whole life, as `process()` does for
//! each call (`realtime::flush_denormals_on_this_thread`), so that the analysis runs in the same
//! floating-point mode wherever it runs (see the README for what this costs and changes).
//!
//! The thread never lets a failure escape: model files missing or corrupt, a bad head file or a
//! panic in the analysis become a status line a user can act on, the audio keeps passing through,
//! and the analysis is rebuilt (at once after a settings change or `Reload`, after a back-off
//! after an error, so that models installed while the plugin runs are picked up).
//!
//! Between looks at the ring (and every `IDLE_POLL_INTERVAL` without a stream) the thread runs
//! `crate::outputs::Outputs::poll`: OSC and the outputs' status.
//!
//! Control messages (start, stop, reload, shutdown) come from the main thread on a crossbeam
//! channel; parameters are read from their atomics, so host automation needs no message (the
//! audio thread sends nothing: a channel send may wake a thread, which is a syscall).

use std::fs::File;
use std::io::{BufWriter, Write};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};

use crate::engine::{
    Analyser, AnalyserConfig, EngineError, HeadChoice, Smoother, SmoothingSettings, WindowReading,
};
use crate::models::ModelDir;
use crate::outputs::Outputs;
use crate::ring::RingReader;

use super::params::{AnalysisSettings, MoodscopeParams};
use super::shared::{Health, LabelSet, MoodUpdate, Published};

/// Environment variable naming a CSV file the analysis writes every window to (full-precision
/// raw and smoothed values, and whether the thread that analysed it flushed denormals). Opt-in,
/// for tests and for users checking a render; written by the worker (or an offline render), never
/// by the real-time audio thread. Each new stream (after activation or a reset) that analyses a
/// window starts the file afresh at its first window; with `%n` in the path, each such stream
/// writes a file of its own instead, `%n` replaced by 1, 2, … in the order the streams start
/// writing in this process (a host that processes before and after a render, as Ardour's
/// command-line export does, then leaves the render's windows in a file of their own).
pub const WINDOW_LOG_ENV: &str = "MOODSCOPE_WINDOW_LOG";

/// Streams of this process that have opened a window log (numbers `%n`).
static LOGGED_STREAMS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// How long the worker sleeps between looks at the ring when idle.
pub const POLL_INTERVAL: Duration = Duration::from_millis(5);
/// How often the worker looks at the outputs (OSC, settings) while it has no stream to analyse
/// (deactivated, or an offline render analysing in `process()`).
pub const IDLE_POLL_INTERVAL: Duration = Duration::from_millis(20);
/// How far the analysis may fall behind the audio before the oldest audio is dropped.
pub const MAX_LAG_SECONDS: f64 = 2.0;
/// Ring length: room for the allowed lag and as much again for a worker that is not scheduled.
pub const RING_SECONDS: f64 = 2.0 * MAX_LAG_SECONDS;
/// Samples handed to the analyser at a time.
const CHUNK: usize = 4096;
/// Wait before retrying after a failed build (models missing or corrupt).
const RETRY_AFTER_FAILURE: Duration = Duration::from_secs(5);
/// Back-off after a panic, doubled on each consecutive one, up to `MAX_PANIC_BACKOFF`.
const FIRST_PANIC_BACKOFF: Duration = Duration::from_millis(500);
const MAX_PANIC_BACKOFF: Duration = Duration::from_secs(30);
/// How long "audio dropped" stays in the status after the last drop.
const DEGRADED_FOR: Duration = Duration::from_secs(10);
/// The status while the bypass pauses the analysis.
const PAUSED_STATUS: &str = "Bypassed: the analysis waits until the plugin is switched on again \
                             (\"Analyse while bypassed\" is off)";
/// How far ahead of the wall clock the audio must have arrived for the host to count as rendering
/// faster than real time, and how far it must fall back for it to count as live again.
pub const FREEWHEEL_AHEAD_SECONDS: f64 = 1.0;
pub const LIVE_AHEAD_SECONDS: f64 = 0.25;
/// Time constant with which the lead decays: a live stream's bursts (a block, a model load)
/// fade, while audio arriving at more than 1 + `FREEWHEEL_AHEAD_SECONDS` / `PACE_TIME_CONSTANT`
/// (2x) real time for long enough builds a lead.
pub const PACE_TIME_CONSTANT: f64 = 1.0;
/// How long after a stream's first look at the pace the audio thread waits for room even though
/// the pace is not known yet. A live stream cannot fill the ring (`RING_SECONDS`) in that time,
/// while a host pouring audio in from its first block (a render started at activation) fills it
/// within milliseconds, before the meter has two looks to compare, or before a worker slowed by
/// a busy machine looks at all.
pub const SETTLE_SECONDS: f64 = 0.25;

/// Ring capacity for a host rate.
pub fn ring_capacity(sample_rate: u32) -> usize {
    (sample_rate as f64 * RING_SECONDS).ceil() as usize
}

/// Most samples allowed to wait in the ring before the oldest are dropped.
pub fn max_backlog(sample_rate: u32) -> usize {
    (sample_rate as f64 * MAX_LAG_SECONDS).ceil() as usize
}

/// How far the audio has arrived ahead of the wall clock, decaying (see the module doc).
#[derive(Debug, Default)]
pub struct PaceMeter {
    first: Option<Instant>,
    last: Option<(Instant, u64)>,
    ahead_seconds: f64,
    freewheeling: bool,
}

impl PaceMeter {
    /// `arrived`: samples of the stream that have arrived by `now`, at `rate`. Returns whether
    /// the host renders faster than real time.
    pub fn update(&mut self, now: Instant, arrived: u64, rate: u32) -> bool {
        self.first.get_or_insert(now);
        if let Some((then, before)) = self.last {
            let wall = now.saturating_duration_since(then).as_secs_f64();
            let audio = arrived.saturating_sub(before) as f64 / rate.max(1) as f64;
            self.ahead_seconds =
                (self.ahead_seconds * (-wall / PACE_TIME_CONSTANT).exp() + audio - wall).max(0.0);
        }
        self.last = Some((now, arrived));
        if self.ahead_seconds > FREEWHEEL_AHEAD_SECONDS {
            self.freewheeling = true;
        } else if self.ahead_seconds < LIVE_AHEAD_SECONDS {
            self.freewheeling = false;
        }
        self.freewheeling
    }

    pub fn ahead_seconds(&self) -> f64 {
        self.ahead_seconds
    }

    /// Whether the audio thread should wait for room in the ring rather than drop audio: while
    /// the host renders faster than real time, and until `SETTLE_SECONDS` after the first look
    /// (the ring is made waiting, see `plugin::Moodscope::activate`).
    pub fn writer_waits(&self, now: Instant) -> bool {
        self.freewheeling
            || self.first.is_none_or(|first| {
                now.saturating_duration_since(first).as_secs_f64() < SETTLE_SECONDS
            })
    }
}

/// The window log: not created until the stream's first window (see `WINDOW_LOG_ENV`).
enum LogState {
    Off,
    Pending(PathBuf),
    Open(WindowLog),
}

/// One analysis stream: analyser, smoother, publication and the optional window log.
pub struct Session {
    analyser: Analyser,
    smoother: Smoother,
    settings: AnalysisSettings,
    published: Arc<Published>,
    /// The read-out parameters each mood is mirrored into.
    params: Arc<MoodscopeParams>,
    readings: Vec<WindowReading>,
    log: LogState,
    /// Samples lost since the last reset (their time still counts in published timestamps).
    dropped_since_reset: u64,
    /// A problem that does not stop the analysis (e.g. the head file fell back to the default).
    warning: Option<String>,
}

impl Session {
    /// Builds the analyser for `settings` at `input_rate`. A head file that cannot be used falls
    /// back to the default head, with a warning in the status.
    pub fn new(
        settings: &AnalysisSettings,
        input_rate: u32,
        models: &ModelDir,
        published: Arc<Published>,
        params: Arc<MoodscopeParams>,
    ) -> Result<Self, EngineError> {
        let config = AnalyserConfig {
            input_rate,
            backbone: settings.backbone,
            head: settings.head.clone(),
            moods: settings.moods,
            hop_frames: settings.hop_frames,
        };
        let (analyser, warning) = match Analyser::new(config.clone(), models) {
            Ok(analyser) => (analyser, None),
            Err(EngineError::Head(e)) if matches!(settings.head, HeadChoice::File(_)) => {
                let analyser = Analyser::new(
                    AnalyserConfig {
                        head: HeadChoice::Default,
                        ..config
                    },
                    models,
                )?;
                (
                    analyser,
                    Some(format!(
                        "The head file could not be used ({e}); using the default head"
                    )),
                )
            }
            Err(e) => return Err(e),
        };
        published.set_label_set(LabelSet {
            names: analyser.labels().clone(),
            groups: analyser.groups().clone(),
        });
        let warning = warning.or_else(|| analyser.note().map(str::to_owned));
        let mut session = Self {
            smoother: Smoother::new(SmoothingSettings::default()).with_groups(analyser.groups()),
            analyser,
            settings: settings.clone(),
            published,
            params,
            readings: Vec::new(),
            log: LogState::Off,
            dropped_since_reset: 0,
            warning,
        };
        session.open_log();
        Ok(session)
    }

    pub fn settings(&self) -> &AnalysisSettings {
        &self.settings
    }

    pub fn analyser(&self) -> &Analyser {
        &self.analyser
    }

    pub fn warning(&self) -> Option<&str> {
        self.warning.as_deref()
    }

    /// Back to the start of a stream: analyser, smoother and window log start afresh.
    pub fn reset(&mut self) {
        self.analyser.reset();
        self.smoother.reset();
        self.dropped_since_reset = 0;
        self.open_log();
    }

    /// Counts audio lost before the next samples (it still advances the stream's clock).
    pub fn note_dropped(&mut self, samples: u64) {
        self.dropped_since_reset += samples;
    }

    /// Analyses `samples` (mono, input rate); publishes, mirrors and logs every window they
    /// complete, smoothed with the parameters' current settings. Returns how many windows that
    /// was.
    pub fn push(&mut self, samples: &[f32]) -> Result<usize, EngineError> {
        #[cfg(debug_assertions)]
        injected_panic();
        self.readings.clear();
        self.analyser.push(samples, &mut self.readings)?;
        self.publish_readings();
        Ok(self.readings.len())
    }

    /// End of stream: analyses what the front end still holds (an offline render's last windows).
    pub fn finish(&mut self) -> Result<usize, EngineError> {
        self.readings.clear();
        self.analyser.finish(&mut self.readings)?;
        self.publish_readings();
        Ok(self.readings.len())
    }

    fn publish_readings(&mut self) {
        self.smoother.set_settings(self.params.smoothing_settings());
        let hop_seconds = self.analyser.config().hop_seconds();
        let dropped_seconds =
            self.dropped_since_reset as f64 / self.analyser.config().input_rate as f64;
        for reading in &self.readings {
            let state = self.smoother.update(reading, hop_seconds);
            let audio_end_seconds = reading.end_seconds + dropped_seconds;
            self.published.publish(&MoodUpdate {
                probabilities: &state.probabilities,
                dominant: state.dominant,
                uncertain: state.uncertain,
                confidence: state.confidence,
                valence: state.valence,
                arousal: state.arousal,
                presence: state.presence,
                window: reading.index,
                audio_end_seconds,
            });
            if let Some(snapshot) = self.published.read() {
                self.params.mirror(&snapshot);
            }
            if let LogState::Pending(path) = &self.log {
                let path = match path.to_str() {
                    Some(text) if text.contains("%n") => {
                        let n = LOGGED_STREAMS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        PathBuf::from(text.replace("%n", &(n + 1).to_string()))
                    }
                    _ => path.clone(),
                };
                self.log = match WindowLog::create(&path, self.analyser.labels()) {
                    Ok(log) => LogState::Open(log),
                    Err(e) => {
                        self.warning = Some(format!(
                            "The window log {} could not be created ({e})",
                            path.display()
                        ));
                        LogState::Off
                    }
                };
            }
            if let LogState::Open(log) = &mut self.log {
                let sequence = self.published.sequence();
                if let Err(e) = log.write(reading, state, sequence, audio_end_seconds) {
                    self.warning = Some(format!(
                        "The window log {} could not be written ({e})",
                        log.path.display()
                    ));
                    self.log = LogState::Off;
                }
            }
        }
    }

    /// A new stream: the window log (if asked for) starts afresh at its first window.
    fn open_log(&mut self) {
        self.log = match std::env::var_os(WINDOW_LOG_ENV) {
            Some(path) => LogState::Pending(PathBuf::from(path)),
            None => LogState::Off,
        };
    }
}

/// The opt-in CSV of every window: raw reading, then what was published.
struct WindowLog {
    path: PathBuf,
    out: BufWriter<File>,
}

impl WindowLog {
    fn create(path: &Path, labels: &[String]) -> std::io::Result<Self> {
        let mut out = BufWriter::new(File::create(path)?);
        let raw: Vec<String> = labels.iter().map(|l| format!("raw_{l}")).collect();
        writeln!(
            out,
            "window,start_seconds,end_seconds,raw_presence,{},sequence,audio_end_seconds,presence,dominant,confidence,denormals_flushed,{},raw_valence,raw_arousal,valence,arousal,uncertain",
            raw.join(","),
            labels.join(",")
        )?;
        out.flush()?;
        Ok(Self {
            path: path.to_owned(),
            out,
        })
    }

    /// One line; floats in Rust's shortest round-trip form, so they read back bit for bit.
    fn write(
        &mut self,
        reading: &WindowReading,
        state: &crate::engine::MoodState,
        sequence: u64,
        audio_end_seconds: f64,
    ) -> std::io::Result<()> {
        let join = |v: &[f32]| {
            v.iter()
                .map(|x| x.to_string())
                .collect::<Vec<_>>()
                .join(",")
        };
        let dominant = state.dominant.map_or(String::new(), |d| d.to_string());
        let axis = |v: Option<f32>| v.map_or(String::new(), |v| v.to_string());
        writeln!(
            self.out,
            "{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{}",
            reading.index,
            reading.start_seconds,
            reading.end_seconds,
            reading.presence,
            join(&reading.probabilities),
            sequence,
            audio_end_seconds,
            state.presence,
            dominant,
            state.confidence,
            // The thread analysing this window: the worker, or `process()` offline.
            super::realtime::denormals_flushed() as u8,
            join(&state.probabilities),
            axis(reading.valence),
            axis(reading.arousal),
            axis(state.valence),
            axis(state.arousal),
            u8::from(state.uncertain),
        )?;
        self.out.flush()
    }
}

/// Debug builds only: `MOODSCOPE_DEBUG_WORKER_PANICS=N` makes the first N analysis pushes of the
/// process panic, so that the host tests can prove a panicking analysis is caught, reported and
/// restarted. Release builds (what users install) have no such hook.
#[cfg(debug_assertions)]
fn injected_panic() {
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::sync::OnceLock;
    static LEFT: OnceLock<AtomicU32> = OnceLock::new();
    let left = LEFT.get_or_init(|| {
        let n = std::env::var("MOODSCOPE_DEBUG_WORKER_PANICS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        AtomicU32::new(n)
    });
    if left
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok()
    {
        panic!("injected by MOODSCOPE_DEBUG_WORKER_PANICS");
    }
}

/// Text of a caught panic's payload.
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "unknown panic".to_owned()
    }
}

enum Control {
    /// Analyse the audio arriving on this ring, at this rate.
    Start {
        reader: RingReader,
        sample_rate: u32,
    },
    /// The host deactivated the plugin: drop the stream.
    Stop,
    /// Rebuild the analysis now (model files or the head file changed).
    Reload,
    Shutdown,
}

/// Handle to one instance's worker thread. Dropping it stops the thread.
pub struct Worker {
    control: Sender<Control>,
    exited: Receiver<()>,
    thread: Option<JoinHandle<()>>,
}

impl Worker {
    /// Starts the worker thread; it idles until `start`.
    pub fn spawn(
        params: Arc<MoodscopeParams>,
        published: Arc<Published>,
        models: ModelDir,
    ) -> std::io::Result<Self> {
        let (control, inbox) = crossbeam_channel::unbounded();
        let (exited_tx, exited) = crossbeam_channel::bounded(1);
        let thread = std::thread::Builder::new()
            .name("moodscope-worker".into())
            .spawn(move || {
                super::realtime::flush_denormals_on_this_thread();
                run(inbox, &params, &published, &models);
                let _ = exited_tx.send(());
            })?;
        Ok(Self {
            control,
            exited,
            thread: Some(thread),
        })
    }

    /// Analyse the audio the audio thread pushes into `reader`'s ring.
    pub fn start(&self, reader: RingReader, sample_rate: u32) {
        let _ = self.control.send(Control::Start {
            reader,
            sample_rate,
        });
    }

    pub fn stop(&self) {
        let _ = self.control.send(Control::Stop);
    }

    /// Rebuild the analysis now (after installing models or choosing another head file).
    pub fn reload(&self) {
        let _ = self.control.send(Control::Reload);
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.control.send(Control::Shutdown);
        // The thread finishes its current window (or model load) and exits. Wait for it so that
        // logs are complete when the host unloads us, but never hang the host's main thread.
        if self.exited.recv_timeout(Duration::from_secs(5)).is_ok() {
            if let Some(thread) = self.thread.take() {
                let _ = thread.join();
            }
        }
    }
}

/// The worker thread's loop.
fn run(
    inbox: Receiver<Control>,
    params: &Arc<MoodscopeParams>,
    published: &Arc<Published>,
    models: &ModelDir,
) {
    let mut stream: Option<Stream> = None;
    // Model loads of streams that stopped or reloaded meanwhile: let go of once they finish (the
    // worker never waits for one, except when it shuts down).
    let mut abandoned: Vec<SessionLoad> = Vec::new();
    let mut outputs = Outputs::new();
    // Whether the last look left audio in the ring (a host rendering faster than real time):
    // look again at once.
    let mut more = false;
    loop {
        abandoned.retain(|load| !load.finished());
        // OSC, the read-out parameters and the outputs' status, after each look at the ring.
        if let Err(payload) = catch_unwind(AssertUnwindSafe(|| outputs.poll(params, published))) {
            published.set_outputs_status(&format!(
                "The outputs stopped on an internal error ({}); restarting them",
                panic_message(payload.as_ref())
            ));
            outputs = Outputs::new();
        }
        let message = if more {
            inbox.recv_timeout(Duration::ZERO)
        } else if stream.is_some() {
            inbox.recv_timeout(POLL_INTERVAL)
        } else {
            inbox.recv_timeout(IDLE_POLL_INTERVAL)
        };
        more = false;
        match message {
            Ok(Control::Start {
                reader,
                sample_rate,
            }) => {
                published.set_status(Health::Starting, "Loading the analysis models");
                abandoned.extend(stream.take().and_then(|mut s| s.loading.take()));
                stream = Some(Stream::new(reader, sample_rate));
            }
            Ok(Control::Stop) => {
                abandoned.extend(stream.take().and_then(|mut s| s.loading.take()));
                published.set_freewheeling(false);
                published.set_status(Health::Starting, "Waiting for the host to start audio");
            }
            Ok(Control::Reload) => {
                if let Some(stream) = &mut stream {
                    stream.session = None;
                    abandoned.extend(stream.loading.take());
                    stream.retry_at = Instant::now();
                }
            }
            Ok(Control::Shutdown) | Err(RecvTimeoutError::Disconnected) => return,
            Err(RecvTimeoutError::Timeout) => {}
        }
        let Some(active) = &mut stream else { continue };
        let outcome = catch_unwind(AssertUnwindSafe(|| {
            active.service(params, published, models)
        }));
        if let Ok(left_some) = outcome {
            more = left_some;
        }
        if let Err(payload) = outcome {
            let message = panic_message(payload.as_ref());
            published.add_restart();
            published.set_status(
                Health::Failed,
                format!(
                    "The analysis stopped on an internal error ({message}); restarting it in {:.1} s. \
                     Audio passes through unchanged.",
                    active.panic_backoff.as_secs_f64()
                ),
            );
            active.session = None;
            active.retry_at = Instant::now() + active.panic_backoff;
            active.panic_backoff = (active.panic_backoff * 2).min(MAX_PANIC_BACKOFF);
        }
    }
}

/// A `Session` built on a thread of its own, so that the worker keeps measuring the pace (and
/// a host rendering faster than real time is told to wait) while the models load.
struct SessionLoad {
    outcome: Receiver<Result<Session, String>>,
    thread: Option<JoinHandle<()>>,
}

impl SessionLoad {
    fn start(
        settings: AnalysisSettings,
        sample_rate: u32,
        models: ModelDir,
        published: Arc<Published>,
        params: Arc<MoodscopeParams>,
    ) -> Self {
        let (sender, outcome) = crossbeam_channel::bounded(1);
        let load = move || {
            super::realtime::flush_denormals_on_this_thread();
            let built = catch_unwind(AssertUnwindSafe(|| {
                Session::new(&settings, sample_rate, &models, published, params)
            }));
            let _ = sender.send(match built {
                Ok(session) => session.map_err(|e| e.to_string()),
                Err(payload) => Err(format!(
                    "Loading the analysis stopped on an internal error ({})",
                    panic_message(payload.as_ref())
                )),
            });
        };
        match std::thread::Builder::new()
            .name("moodscope-model-load".into())
            .spawn(load)
        {
            Ok(thread) => Self {
                outcome,
                thread: Some(thread),
            },
            Err(e) => {
                let (sender, outcome) = crossbeam_channel::bounded(1);
                let _ = sender.send(Err(format!("No thread to load the models on ({e})")));
                Self {
                    outcome,
                    thread: None,
                }
            }
        }
    }

    fn finished(&self) -> bool {
        self.thread.as_ref().is_none_or(JoinHandle::is_finished)
    }

    /// The session, or why there is none, once the load has finished.
    fn outcome(&self) -> Option<Result<Session, String>> {
        match self.outcome.try_recv() {
            Ok(outcome) => Some(outcome),
            Err(crossbeam_channel::TryRecvError::Empty) => None,
            Err(crossbeam_channel::TryRecvError::Disconnected) => {
                Some(Err("Loading the analysis stopped".into()))
            }
        }
    }
}

impl Drop for SessionLoad {
    /// Waits for the load to finish: no thread of ours may outlive the plugin's code.
    fn drop(&mut self) {
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The worker's side of one activation.
struct Stream {
    reader: RingReader,
    sample_rate: u32,
    session: Option<Session>,
    /// When to (re)try building the session.
    retry_at: Instant,
    panic_backoff: Duration,
    buffer: Vec<f32>,
    /// Samples of the host stream since the last reset that came through the ring (analysed,
    /// drained while there was no analysis, or dropped): where a session built mid-stream (after
    /// a failure, a panic or a settings change) starts on the stream's clock, so that its
    /// published timestamps stay host-stream time.
    stream_position: u64,
    last_drop: Option<Instant>,
    /// The analyser's count of NaN/Inf input samples as last seen, and when it last grew.
    non_finite_seen: u64,
    last_non_finite: Option<Instant>,
    /// The status last shown, to avoid rewriting it every poll.
    shown: Option<(Health, String)>,
    /// Whether the host delivers audio faster than real time.
    pace: PaceMeter,
    /// A session being built on a thread of its own (models load for a while).
    loading: Option<SessionLoad>,
}

impl Stream {
    fn new(reader: RingReader, sample_rate: u32) -> Self {
        Self {
            reader,
            sample_rate,
            session: None,
            retry_at: Instant::now(),
            panic_backoff: FIRST_PANIC_BACKOFF,
            buffer: vec![0.0; CHUNK],
            stream_position: 0,
            last_drop: None,
            non_finite_seen: 0,
            last_non_finite: None,
            shown: None,
            pace: PaceMeter::default(),
            loading: None,
        }
    }

    /// Measures the pace at which audio arrives. Returns whether to keep everything: while the
    /// host renders faster than real time, and while the pace is not known yet, the audio thread
    /// waits for room rather than dropping, and the worker drops nothing for lag.
    fn measure_pace(&mut self, published: &Published) -> bool {
        let now = Instant::now();
        let freewheeling = self
            .pace
            .update(now, self.reader.arrived(), self.sample_rate);
        let keep_everything = self.pace.writer_waits(now);
        self.reader.set_writer_waits(keep_everything);
        published.set_freewheeling(freewheeling);
        keep_everything
    }

    /// One look: rebuild if settings changed, then analyse what waits in the ring. Returns
    /// whether to look again at once (audio is coming faster than it can wait for a poll).
    fn service(
        &mut self,
        params: &Arc<MoodscopeParams>,
        published: &Arc<Published>,
        models: &ModelDir,
    ) -> bool {
        self.measure_pace(published);
        let settings = params.analysis_settings();
        if self
            .session
            .as_ref()
            .is_some_and(|s| s.settings() != &settings)
        {
            self.session = None;
            self.retry_at = Instant::now();
        }
        if self.session.is_none() && self.loading.is_none() && Instant::now() >= self.retry_at {
            self.loading = Some(SessionLoad::start(
                settings.clone(),
                self.sample_rate,
                models.clone(),
                published.clone(),
                params.clone(),
            ));
        }
        if let Some(outcome) = self.loading.as_ref().and_then(SessionLoad::outcome) {
            self.loading = None;
            match outcome {
                // Built for settings that have changed meanwhile: build again.
                Ok(_) if params.analysis_settings() != settings => {}
                Ok(mut session) => {
                    // What queued during the model load is analysed next, within the lag limit.
                    session.note_dropped(self.stream_position);
                    self.session = Some(session);
                    self.shown = None;
                }
                Err(message) => {
                    self.retry_at = Instant::now() + RETRY_AFTER_FAILURE;
                    self.show(
                        published,
                        Health::Failed,
                        format!("{message}. Audio passes through unchanged."),
                    );
                }
            }
        }
        let keep_everything = self.measure_pace(published);
        // At most one backlog's worth per look, so control messages are never starved. A host
        // rendering faster than real time is not live: nothing is dropped (nor in a stream's
        // first moments, before its pace is known: a live stream has no backlog to drop then).
        let backlog = max_backlog(self.sample_rate);
        let lag_limit = if keep_everything { usize::MAX } else { backlog };
        if self.loading.is_some() {
            // The models are loading: the audio waits in the ring for them. A host rendering
            // faster than real time waits for room (nothing is lost, the render pauses); a live
            // stream keeps its newest `backlog`, as it would with a slow analysis.
            let read = self.reader.read(&mut [], lag_limit);
            if read.reset {
                self.stream_position = 0;
            }
            self.stream_position += read.dropped;
            return false;
        }
        let mut budget = backlog;
        loop {
            let want = self.buffer.len().min(budget);
            let read = self.reader.read(&mut self.buffer[..want], lag_limit);
            if read.reset {
                self.stream_position = 0;
            }
            self.stream_position += read.dropped + read.len as u64;
            let Some(session) = &mut self.session else {
                // No analysis: keep the ring drained so nothing overruns; nothing is lost that
                // would have been analysed.
                if read.len == 0 {
                    break;
                }
                budget = budget.saturating_sub(read.len);
                continue;
            };
            if read.reset {
                session.reset();
            }
            if read.dropped > 0 {
                session.note_dropped(read.dropped);
                published.add_dropped_samples(read.dropped);
                self.last_drop = Some(Instant::now());
            }
            if read.len == 0 {
                break;
            }
            budget = budget.saturating_sub(read.len);
            if let Err(e) = session.push(&self.buffer[..read.len]) {
                self.session = None;
                self.retry_at = Instant::now() + RETRY_AFTER_FAILURE;
                self.show(
                    published,
                    Health::Failed,
                    format!("The analysis failed: {e}. Audio passes through unchanged."),
                );
                return false;
            }
            if budget == 0 {
                break;
            }
        }
        if let Some(session) = self.session.take() {
            self.panic_backoff = FIRST_PANIC_BACKOFF;
            let (health, message) = self.running_status(&session, published);
            self.session = Some(session);
            self.show(published, health, message);
        }
        // Look again at once when a whole budget was used, or while the host renders faster than
        // real time and more has come; a live stream waits for the next poll.
        budget == 0 || (keep_everything && self.reader.waiting() > 0)
    }

    fn running_status(&mut self, session: &Session, published: &Published) -> (Health, String) {
        let recent = |at: Option<Instant>| at.is_some_and(|at| at.elapsed() < DEGRADED_FOR);
        let non_finite = session.analyser().non_finite_samples();
        if non_finite > self.non_finite_seen {
            self.last_non_finite = Some(Instant::now());
        }
        self.non_finite_seen = non_finite;
        if let Some(warning) = session.warning() {
            (Health::Degraded, warning.to_owned())
        } else if recent(self.last_drop) {
            let seconds = published.dropped_samples() as f64 / self.sample_rate as f64;
            (
                Health::Degraded,
                format!(
                    "The analysis is falling behind the audio: {seconds:.1} s skipped so far \
                     (too many instances for this machine?)"
                ),
            )
        } else if recent(self.last_non_finite) {
            (
                Health::Degraded,
                "The input holds NaN or infinite samples: the analysis hears silence there \
                 (the audio itself passes through untouched)"
                    .to_owned(),
            )
        } else if published.paused() {
            (Health::Running, PAUSED_STATUS.to_owned())
        } else if self.pace.freewheeling {
            (
                Health::Running,
                format!(
                    "Rendering faster than real time ({}): every window is analysed",
                    session.settings().backbone.name()
                ),
            )
        } else {
            (
                Health::Running,
                format!("Listening ({})", session.settings().backbone.name()),
            )
        }
    }

    fn show(&mut self, published: &Published, health: Health, message: String) {
        if self.shown.as_ref() != Some(&(health, message.clone())) {
            published.set_status(health, message.clone());
            self.shown = Some((health, message));
        }
    }
}

/// The analysis of an offline render, run inside `process()`: the host waits for it, so every
/// window is analysed and the result is the same as `moodscope analyze` on the same audio.
/// Allocates and may take milliseconds per block: only for `ProcessMode::Offline`.
pub struct OfflineRender {
    session: Option<Session>,
    params: Arc<MoodscopeParams>,
    sample_rate: u32,
    mono: Vec<f32>,
}

impl OfflineRender {
    /// Builds the analysis now (on the host's main thread, in `activate()`).
    pub fn new(
        params: Arc<MoodscopeParams>,
        sample_rate: u32,
        max_block: usize,
        models: &ModelDir,
        published: &Arc<Published>,
    ) -> Self {
        let mut render = Self {
            session: None,
            params,
            sample_rate,
            mono: vec![0.0; max_block],
        };
        render.build(models, published);
        render
    }

    fn build(&mut self, models: &ModelDir, published: &Arc<Published>) {
        let settings = self.params.analysis_settings();
        let built = catch_unwind(AssertUnwindSafe(|| {
            Session::new(
                &settings,
                self.sample_rate,
                models,
                published.clone(),
                self.params.clone(),
            )
        }));
        self.session = match built {
            Ok(Ok(session)) => {
                match session.warning() {
                    Some(w) => published.set_status(Health::Degraded, w),
                    None => published.set_status(
                        Health::Running,
                        format!("Rendering offline ({})", settings.backbone.name()),
                    ),
                }
                Some(session)
            }
            Ok(Err(e)) => {
                published.set_status(
                    Health::Failed,
                    format!("{e}. Audio passes through unchanged."),
                );
                None
            }
            Err(payload) => {
                self.fail(published, &panic_message(payload.as_ref()));
                None
            }
        };
    }

    fn fail(&mut self, published: &Published, message: &str) {
        published.add_restart();
        published.set_status(
            Health::Failed,
            format!(
                "The analysis stopped on an internal error ({message}); it restarts with the next \
                 render. Audio passes through unchanged."
            ),
        );
        self.session = None;
    }

    /// Analyses one block of planar channels (inside `process()`, whose `FlushDenormals` guard
    /// holds).
    pub fn process<C: AsRef<[f32]>>(&mut self, channels: &[C], published: &Published) {
        let Some(session) = &mut self.session else {
            return;
        };
        let frames = channels.iter().map(|c| c.as_ref().len()).min().unwrap_or(0);
        if self.mono.len() < frames {
            self.mono.resize(frames, 0.0);
        }
        let parts: Vec<&[f32]> = channels.iter().map(|c| &c.as_ref()[..frames]).collect();
        crate::engine::downmix_planar(&parts, &mut self.mono[..frames]);
        let mono = &self.mono[..frames];
        match catch_unwind(AssertUnwindSafe(|| session.push(mono))) {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => {
                published.set_status(
                    Health::Failed,
                    format!("The analysis failed: {e}. Audio passes through unchanged."),
                );
                self.session = None;
            }
            Err(payload) => self.fail(published, &panic_message(payload.as_ref())),
        }
    }

    /// The status while the bypass pauses the render's analysis, and after.
    pub fn show_paused(&self, paused: bool, published: &Published) {
        let Some(session) = &self.session else {
            return;
        };
        if paused {
            published.set_status(Health::Running, PAUSED_STATUS);
        } else {
            published.set_status(
                Health::Running,
                format!("Rendering offline ({})", session.settings().backbone.name()),
            );
        }
    }

    /// Back to the start of the render; a session lost to an error is rebuilt.
    pub fn reset(&mut self, models: &ModelDir, published: &Arc<Published>) {
        let current = self.params.analysis_settings();
        match &mut self.session {
            Some(session) if session.settings() == &current => {
                if let Err(payload) = catch_unwind(AssertUnwindSafe(|| session.reset())) {
                    self.fail(published, &panic_message(payload.as_ref()));
                }
            }
            _ => self.build(models, published),
        }
    }

    /// The render ended (in `deactivate()`, on the host's main thread): analyse the windows the
    /// last audio completes, in the same floating-point mode as the rest of the render.
    pub fn finish(&mut self, published: &Published) {
        let Some(session) = &mut self.session else {
            return;
        };
        let _denormals = super::realtime::FlushDenormals::new();
        match catch_unwind(AssertUnwindSafe(|| session.finish())) {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => published.set_status(Health::Failed, format!("The analysis failed: {e}")),
            Err(payload) => self.fail(published, &panic_message(payload.as_ref())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Looks every 5 ms at a stream arriving at `speed` times real time (48 kHz); returns, per
    /// look, (freewheeling, writer waits).
    fn looks(speed: f64, count: usize) -> Vec<(bool, bool)> {
        let start = Instant::now();
        let mut meter = PaceMeter::default();
        (0..count)
            .map(|i| {
                let now = start + Duration::from_millis(5 * i as u64);
                let arrived = (speed * 48_000.0 * 0.005 * i as f64) as u64;
                let freewheeling = meter.update(now, arrived, 48_000);
                (freewheeling, meter.writer_waits(now))
            })
            .collect()
    }

    #[test]
    fn a_live_stream_is_never_freewheeling_and_the_writer_stops_waiting_once_settled() {
        assert!(
            PaceMeter::default().writer_waits(Instant::now()),
            "before any look"
        );
        let seen = looks(1.0, 400);
        assert!(seen.iter().all(|&(freewheeling, _)| !freewheeling));
        let settle_looks = (SETTLE_SECONDS / 0.005) as usize;
        assert!(seen[..settle_looks].iter().all(|&(_, waits)| waits));
        assert!(seen[settle_looks + 1..].iter().all(|&(_, waits)| !waits));
        // In the settling time a live stream brings far less than the ring holds.
        const { assert!(SETTLE_SECONDS * 4.0 < RING_SECONDS) };
    }

    #[test]
    fn a_render_pouring_in_from_the_first_block_is_waited_for_throughout() {
        for speed in [30.0, 100.0, 1000.0] {
            let seen = looks(speed, 400);
            assert!(seen.iter().all(|&(_, waits)| waits), "{speed}x");
            assert!(
                seen.last().is_some_and(|&(f, _)| f),
                "{speed}x: freewheeling"
            );
        }
    }
}
