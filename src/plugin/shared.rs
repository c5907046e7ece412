//! What the worker publishes and everyone else reads.
//!
//! In: one writer at a time (the worker thread, or `process()` itself during an offline render)
//! publishing a smoothed mood per window, and status changes.
//! Out: lock-free, wait-free snapshots for any thread — the audio thread (MIDI CC out), the
//! editor, the OSC sender — plus the label names and a status text for threads that may lock, and
//! two flags the status line explains: the analysis paused by the bypass (set by `process()`) and
//! a host rendering faster than real time (set by the worker).
//!
//! The mood is a seqlock over atomics: the writer makes the sequence odd, stores the values and
//! makes it even again; a reader retries (a bounded number of times, never waiting) when the
//! sequence moved under it. Every value is an atomic, so a torn read is detected, never UB.

use std::sync::atomic::{
    fence, AtomicBool, AtomicI32, AtomicU32, AtomicU64, AtomicU8, AtomicUsize, Ordering,
};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use atomic_float::{AtomicF32, AtomicF64};

/// Most labels a head may have (the shipped readouts have 4 to 6; user-trained heads may have
/// more).
pub const MAX_LABELS: usize = 16;

/// A consistent copy of the published mood.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MoodSnapshot {
    /// Publications since the plugin was created (0: nothing published yet).
    pub sequence: u64,
    /// Number of labels; `probabilities[..labels]` are meaningful.
    pub labels: usize,
    /// Smoothed probability per label.
    pub probabilities: [f32; MAX_LABELS],
    /// Dominant label, or `None` when there is no music or the verdict is uncertain.
    pub dominant: Option<usize>,
    /// There is music but no mood is clear enough to name (`engine::Smoother::update`).
    pub uncertain: bool,
    /// Smoothed probability of the dominant mood's group (0 without one).
    pub confidence: f32,
    /// Smoothed valence and arousal, −1..1, when the head reads them.
    pub valence: Option<f32>,
    pub arousal: Option<f32>,
    /// Smoothed music presence, 0–1.
    pub presence: f32,
    /// Index of the window this describes, counted from the last reset.
    pub window: u64,
    /// Host-stream time (seconds since the last reset, dropped audio included) at which the
    /// window's audio ends.
    pub audio_end_seconds: f64,
    /// When it was published, on `shared::clock()`.
    pub published_at: Duration,
}

impl MoodSnapshot {
    const EMPTY: Self = Self {
        sequence: 0,
        labels: 0,
        probabilities: [0.0; MAX_LABELS],
        dominant: None,
        uncertain: false,
        confidence: 0.0,
        valence: None,
        arousal: None,
        presence: 0.0,
        window: 0,
        audio_end_seconds: 0.0,
        published_at: Duration::ZERO,
    };

    pub fn probabilities(&self) -> &[f32] {
        &self.probabilities[..self.labels]
    }
}

impl Default for MoodSnapshot {
    fn default() -> Self {
        Self::EMPTY
    }
}

/// Time since the process first asked, monotonic: the clock of `MoodSnapshot::published_at`.
pub fn clock() -> Duration {
    static START: OnceLock<Instant> = OnceLock::new();
    START.get_or_init(Instant::now).elapsed()
}

/// One smoothed mood to publish, borrowed from the worker.
#[derive(Clone, Copy, Debug)]
pub struct MoodUpdate<'a> {
    pub probabilities: &'a [f32],
    pub dominant: Option<usize>,
    pub uncertain: bool,
    pub confidence: f32,
    pub valence: Option<f32>,
    pub arousal: Option<f32>,
    pub presence: f32,
    pub window: u64,
    pub audio_end_seconds: f64,
}

/// What state the analysis is in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Health {
    /// Not activated yet, or loading models.
    Starting = 0,
    /// Analysing.
    Running = 1,
    /// Analysing, but something needs attention (audio dropped, a fallback in use).
    Degraded = 2,
    /// Not analysing (models missing or corrupt, internal error); audio still passes through.
    Failed = 3,
}

impl Health {
    fn from_u8(v: u8) -> Self {
        match v {
            1 => Health::Running,
            2 => Health::Degraded,
            3 => Health::Failed,
            _ => Health::Starting,
        }
    }
}

/// The status line: what the plugin is doing, or what is wrong and how to fix it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Status {
    pub health: Health,
    pub message: String,
}

/// The labels of the head in use: names, in the order of `MoodSnapshot::probabilities`, and
/// each one's decision group (`MoodHead::groups`; empty: each label its own).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LabelSet {
    pub names: Arc<[String]>,
    pub groups: Arc<[usize]>,
}

impl LabelSet {
    /// Labels that each decide alone.
    pub fn ungrouped(names: Arc<[String]>) -> Self {
        Self {
            names,
            groups: Arc::from(Vec::new()),
        }
    }
}

/// Everything one plugin instance publishes.
pub struct Published {
    sequence: AtomicU64,
    labels: AtomicUsize,
    probabilities: [AtomicF32; MAX_LABELS],
    dominant: AtomicI32,
    uncertain: AtomicBool,
    confidence: AtomicF32,
    /// NaN when the head does not read them.
    valence: AtomicF32,
    arousal: AtomicF32,
    presence: AtomicF32,
    window: AtomicU64,
    audio_end_seconds: AtomicF64,
    published_at_nanos: AtomicU64,

    health: AtomicU8,
    status: Mutex<String>,
    /// The head's label names and decision groups, set together so they never disagree.
    label_set: Mutex<LabelSet>,
    /// `process()` is not feeding the analysis (bypassed with "Analyse while bypassed" off).
    paused: AtomicBool,
    /// The worker found the host delivering audio faster than real time (an offline render that
    /// the host did not announce).
    freewheeling: AtomicBool,
    /// Samples lost because the analysis fell behind, since the plugin was created.
    dropped_samples: AtomicU64,
    /// Times the analysis was restarted after an internal error.
    restarts: AtomicU32,
    /// What is wrong with the MIDI and OSC output settings, in plain words ("" when nothing).
    outputs_status: Mutex<String>,
}

impl Default for Published {
    fn default() -> Self {
        Self {
            sequence: AtomicU64::new(0),
            labels: AtomicUsize::new(0),
            probabilities: std::array::from_fn(|_| AtomicF32::new(0.0)),
            dominant: AtomicI32::new(-1),
            uncertain: AtomicBool::new(false),
            confidence: AtomicF32::new(0.0),
            valence: AtomicF32::new(f32::NAN),
            arousal: AtomicF32::new(f32::NAN),
            presence: AtomicF32::new(0.0),
            window: AtomicU64::new(0),
            audio_end_seconds: AtomicF64::new(0.0),
            published_at_nanos: AtomicU64::new(0),
            health: AtomicU8::new(Health::Starting as u8),
            status: Mutex::new("Waiting for the host to start audio".into()),
            label_set: Mutex::new(LabelSet::default()),
            paused: AtomicBool::new(false),
            freewheeling: AtomicBool::new(false),
            dropped_samples: AtomicU64::new(0),
            restarts: AtomicU32::new(0),
            outputs_status: Mutex::new(String::new()),
        }
    }
}

/// How many times a reader retries a snapshot that a write overlapped.
const READ_ATTEMPTS: usize = 8;

impl Published {
    /// The latest mood, or `None` only if a write overlapped every attempt (the caller keeps its
    /// previous snapshot). Wait-free and allocation-free: safe on the audio thread.
    pub fn read(&self) -> Option<MoodSnapshot> {
        for _ in 0..READ_ATTEMPTS {
            let before = self.sequence.load(Ordering::Acquire);
            if before % 2 == 1 {
                std::hint::spin_loop();
                continue;
            }
            let labels = self.labels.load(Ordering::Relaxed).min(MAX_LABELS);
            let mut snapshot = MoodSnapshot {
                sequence: before / 2,
                labels,
                ..MoodSnapshot::EMPTY
            };
            for (out, value) in snapshot
                .probabilities
                .iter_mut()
                .zip(&self.probabilities)
                .take(labels)
            {
                *out = value.load(Ordering::Relaxed);
            }
            let dominant = self.dominant.load(Ordering::Relaxed);
            snapshot.dominant = usize::try_from(dominant).ok();
            snapshot.uncertain = self.uncertain.load(Ordering::Relaxed);
            snapshot.confidence = self.confidence.load(Ordering::Relaxed);
            let axis = |a: &AtomicF32| Some(a.load(Ordering::Relaxed)).filter(|v| !v.is_nan());
            snapshot.valence = axis(&self.valence);
            snapshot.arousal = axis(&self.arousal);
            snapshot.presence = self.presence.load(Ordering::Relaxed);
            snapshot.window = self.window.load(Ordering::Relaxed);
            snapshot.audio_end_seconds = self.audio_end_seconds.load(Ordering::Relaxed);
            snapshot.published_at =
                Duration::from_nanos(self.published_at_nanos.load(Ordering::Relaxed));
            fence(Ordering::Acquire);
            if self.sequence.load(Ordering::Relaxed) == before {
                return Some(snapshot);
            }
        }
        None
    }

    /// Publications so far (cheap check for "anything new?").
    pub fn sequence(&self) -> u64 {
        self.sequence.load(Ordering::Acquire) / 2
    }

    /// Publishes one smoothed mood. Callers are never the audio thread; if two ever overlap (a
    /// worker finishing its last window while an offline render starts), the second waits for
    /// the first's few stores.
    pub fn publish(&self, mood: &MoodUpdate<'_>) {
        let mut current = self.sequence.load(Ordering::Relaxed);
        loop {
            if current % 2 == 1 {
                std::hint::spin_loop();
                current = self.sequence.load(Ordering::Relaxed);
                continue;
            }
            match self.sequence.compare_exchange_weak(
                current,
                current + 1,
                Ordering::Acquire,
                Ordering::Relaxed,
            ) {
                Ok(_) => break,
                Err(seen) => current = seen,
            }
        }
        fence(Ordering::Release);
        let labels = mood.probabilities.len().min(MAX_LABELS);
        self.labels.store(labels, Ordering::Relaxed);
        for (slot, &p) in self.probabilities.iter().zip(&mood.probabilities[..labels]) {
            slot.store(p, Ordering::Relaxed);
        }
        let dominant = mood
            .dominant
            .filter(|&d| d < labels)
            .map_or(-1, |d| d as i32);
        self.dominant.store(dominant, Ordering::Relaxed);
        self.uncertain.store(mood.uncertain, Ordering::Relaxed);
        self.confidence.store(mood.confidence, Ordering::Relaxed);
        self.valence
            .store(mood.valence.unwrap_or(f32::NAN), Ordering::Relaxed);
        self.arousal
            .store(mood.arousal.unwrap_or(f32::NAN), Ordering::Relaxed);
        self.presence.store(mood.presence, Ordering::Relaxed);
        self.window.store(mood.window, Ordering::Relaxed);
        self.audio_end_seconds
            .store(mood.audio_end_seconds, Ordering::Relaxed);
        self.published_at_nanos
            .store(clock().as_nanos() as u64, Ordering::Relaxed);
        self.sequence.store(current + 2, Ordering::Release);
    }

    /// Health, readable anywhere (one atomic load).
    pub fn health(&self) -> Health {
        Health::from_u8(self.health.load(Ordering::Acquire))
    }

    /// The status line. Locks: not for the audio thread.
    pub fn status(&self) -> Status {
        let message = self
            .status
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        Status {
            health: self.health(),
            message,
        }
    }

    /// Sets the status line and logs it (nice-plug's log: stderr or `NICE_LOG`), so a host's log
    /// shows what went wrong even without the editor. Not for the audio thread.
    pub fn set_status(&self, health: Health, message: impl Into<String>) {
        let message = message.into();
        match health {
            Health::Starting | Health::Running => nice_plug::nice_log!("Moodscope: {message}"),
            Health::Degraded | Health::Failed => nice_plug::nice_warn!("Moodscope: {message}"),
        }
        *self.status.lock().unwrap_or_else(|e| e.into_inner()) = message;
        self.health.store(health as u8, Ordering::Release);
    }

    /// The labels of the head in use (empty before one is loaded). Locks: not for the audio
    /// thread.
    pub fn label_set(&self) -> LabelSet {
        self.label_set
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Label names, in the order of `MoodSnapshot::probabilities`. Locks: not for the audio thread.
    pub fn label_names(&self) -> Arc<[String]> {
        self.label_set().names
    }

    /// Publishes the labels of a newly loaded head: names and groups in one step, so a reader
    /// never sees one head's names with another's groups.
    pub fn set_label_set(&self, labels: LabelSet) {
        *self.label_set.lock().unwrap_or_else(|e| e.into_inner()) = labels;
    }

    /// Set by `process()` every block (one relaxed store: safe on the audio thread): whether the
    /// analysis is paused by the bypass.
    #[inline]
    pub fn set_paused(&self, paused: bool) {
        self.paused.store(paused, Ordering::Relaxed);
    }

    pub fn paused(&self) -> bool {
        self.paused.load(Ordering::Relaxed)
    }

    /// Set by the worker: the host delivers audio faster than real time.
    pub fn set_freewheeling(&self, freewheeling: bool) {
        self.freewheeling.store(freewheeling, Ordering::Relaxed);
    }

    pub fn freewheeling(&self) -> bool {
        self.freewheeling.load(Ordering::Relaxed)
    }

    /// Samples the analysis skipped because it fell behind, since the plugin was created.
    pub fn dropped_samples(&self) -> u64 {
        self.dropped_samples.load(Ordering::Relaxed)
    }

    pub fn add_dropped_samples(&self, samples: u64) {
        self.dropped_samples.fetch_add(samples, Ordering::Relaxed);
    }

    /// Times the analysis restarted after an internal error.
    pub fn restarts(&self) -> u32 {
        self.restarts.load(Ordering::Relaxed)
    }

    pub fn add_restart(&self) {
        self.restarts.fetch_add(1, Ordering::Relaxed);
    }

    /// Problems with the MIDI CC and OSC outputs (bad settings, an unreachable OSC host), one per
    /// line, for the editor; empty when both are fine or off. Written by the worker
    /// (`crate::outputs`). Locks: not for the audio thread.
    pub fn outputs_status(&self) -> String {
        self.outputs_status
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Sets the outputs' problems (logged when they change). Not for the audio thread.
    pub fn set_outputs_status(&self, message: &str) {
        let mut current = self
            .outputs_status
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if *current != message {
            if !message.is_empty() {
                nice_plug::nice_warn!("Moodscope outputs: {message}");
            }
            message.clone_into(&mut current);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mood(p: &[f32], window: u64) -> MoodUpdate<'_> {
        MoodUpdate {
            probabilities: p,
            dominant: Some(1),
            uncertain: false,
            confidence: p[1],
            valence: Some(-0.5),
            arousal: None,
            presence: 0.9,
            window,
            audio_end_seconds: 1.5,
        }
    }

    #[test]
    fn a_new_head_s_names_and_groups_are_read_together() {
        let published = Published::default();
        assert!(published.label_names().is_empty());
        let five = LabelSet {
            names: ["Happy", "Sad", "Calm", "Angry", "Scary"]
                .map(String::from)
                .into(),
            groups: vec![0, 1, 0, 2, 2].into(),
        };
        published.set_label_set(five.clone());
        assert_eq!(published.label_set(), five);
        assert_eq!(published.label_names(), five.names);
        // A head with ungrouped labels replaces both: no groups of the five-mood head remain.
        let four = LabelSet::ungrouped(["Happy", "Sad", "Angry", "Scary"].map(String::from).into());
        published.set_label_set(four.clone());
        assert_eq!(published.label_set(), four);
        assert!(published.label_set().groups.is_empty());
    }

    #[test]
    fn a_snapshot_reads_back_what_was_published() {
        let published = Published::default();
        assert_eq!(published.read(), Some(MoodSnapshot::default()));
        published.publish(&mood(&[0.1, 0.6, 0.2, 0.1], 3));
        let s = published.read().unwrap();
        assert_eq!(s.sequence, 1);
        assert_eq!(s.probabilities(), &[0.1, 0.6, 0.2, 0.1]);
        assert_eq!(
            (s.dominant, s.confidence, s.presence, s.window),
            (Some(1), 0.6, 0.9, 3)
        );
        assert_eq!(s.audio_end_seconds, 1.5);
        assert_eq!(
            (s.valence, s.arousal, s.uncertain),
            (Some(-0.5), None, false)
        );
    }

    #[test]
    fn more_labels_than_fit_are_cut_not_overflowed() {
        let published = Published::default();
        let many: Vec<f32> = (0..MAX_LABELS + 4).map(|i| i as f32).collect();
        published.publish(&MoodUpdate {
            dominant: Some(MAX_LABELS + 2),
            ..mood(&many, 0)
        });
        let s = published.read().unwrap();
        assert_eq!(s.labels, MAX_LABELS);
        assert_eq!(
            s.dominant, None,
            "a dominant label that does not fit is not reported"
        );
    }

    #[test]
    fn readers_never_see_a_torn_mood() {
        let published = Arc::new(Published::default());
        let writer = {
            let published = published.clone();
            std::thread::spawn(move || {
                for i in 0..50_000u64 {
                    let v = i as f32;
                    published.publish(&MoodUpdate {
                        probabilities: &[v, v, v, v],
                        dominant: Some(0),
                        uncertain: false,
                        confidence: v,
                        valence: Some(v),
                        arousal: Some(v),
                        presence: v,
                        window: i,
                        audio_end_seconds: i as f64,
                    });
                }
            })
        };
        let mut last = 0;
        while !writer.is_finished() {
            if let Some(s) = published.read() {
                let v = s.window as f32;
                assert!(
                    s.probabilities().iter().all(|&p| p == v)
                        && s.confidence == v
                        && s.valence == (s.sequence > 0).then_some(v)
                        && s.arousal == (s.sequence > 0).then_some(v)
                        && s.presence == v,
                    "{s:?}"
                );
                assert!(s.sequence >= last);
                last = s.sequence;
            }
        }
        writer.join().unwrap();
        assert_eq!(published.sequence(), 50_000);
    }
}
