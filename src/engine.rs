//! The analysis engine: mono samples at the input rate in, one mood reading per window out.
//!
//! `Analyser` chains the front end, a shared backbone, the window's signal cues and a head; the
//! plugin's worker and the command-line tool both drive it, so both give the same numbers for the
//! same audio. `Smoother` turns raw readings into what users watch: exponentially smoothed
//! probabilities, valence and arousal with a user-set time constant, moods that relax when there
//! is no music, and a verdict — a dominant mood with hysteresis so it does not flicker, "no
//! music", or "uncertain" when the evidence is weak (see `Smoother::update`).

use std::path::PathBuf;
use std::sync::Arc;

use crate::backbone::{self, Backbone, BackboneError, BackboneKind};
use crate::cues::{self, WindowCues};
use crate::features::{self, FrontEnd, FrontEndConfig, FrontEndError, Patch};
use crate::head::{
    self, CalibratedReadout, Calibration, HeadError, MoodHead, MoodSet, TrainedHead, YamnetReadout,
};
use crate::models::{self, ModelDir};

/// Largest absolute sample value passed to the model; anything beyond is clamped.
/// (Full scale is 1.0; this only guards against absurd values, it does not limit real audio.)
pub const SAMPLE_LIMIT: f32 = 16.0;

/// Downmixes planar channels to mono into `out` (the length of the shortest of them): the mean of
/// the channels, summed in channel order. The plugin (planar host buffers) and the command-line
/// tool (`downmix_interleaved`) compute exactly the same values, so their analyses agree bit for bit.
/// Real-time safe: no allocation.
pub fn downmix_planar(channels: &[&[f32]], out: &mut [f32]) {
    let Some((first, rest)) = channels.split_first() else {
        out.fill(0.0);
        return;
    };
    let scale = 1.0 / channels.len() as f32;
    for (i, o) in out.iter_mut().enumerate() {
        let mut sum = first[i];
        for channel in rest {
            sum += channel[i];
        }
        *o = sum * scale;
    }
}

/// Downmixes interleaved frames of `channels` samples to mono, appending to `out`; the same
/// arithmetic as `downmix_planar`.
pub fn downmix_interleaved(interleaved: &[f32], channels: usize, out: &mut Vec<f32>) {
    let channels = channels.max(1);
    let scale = 1.0 / channels as f32;
    out.extend(interleaved.chunks_exact(channels).map(|frame| {
        let mut sum = frame[0];
        for &x in &frame[1..] {
            sum += x;
        }
        sum * scale
    }));
}

/// Which head reads the backbone's embeddings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HeadChoice {
    /// The recommended readout of the mood set: with YAMNet, the calibrated readout for five
    /// moods and YAMNet's own classes for four or six; with VGGish, the shipped AudioSet head of
    /// the set (six moods when five are asked for: the calibration is YAMNet's).
    Default,
    /// YAMNet's own mood classes for the set, without calibration (VGGish: as `Default`).
    Uncalibrated,
    /// A head file written by `cargo moodscope-train` (`NAME.json` beside `NAME.onnx`); its
    /// labels are the moods.
    File(PathBuf),
}

/// How an analyser is set up.
#[derive(Clone, Debug, PartialEq)]
pub struct AnalyserConfig {
    /// Sample rate of the audio pushed in, Hz.
    pub input_rate: u32,
    pub backbone: BackboneKind,
    pub head: HeadChoice,
    /// The moods to name (ignored by a head file, whose labels are its own).
    pub moods: MoodSet,
    /// Frames between window starts; `None` for the backbone's own (48 YAMNet, 96 VGGish).
    pub hop_frames: Option<usize>,
}

impl AnalyserConfig {
    pub fn new(input_rate: u32, backbone: BackboneKind) -> Self {
        Self {
            input_rate,
            backbone,
            head: HeadChoice::Default,
            moods: MoodSet::default(),
            hop_frames: None,
        }
    }

    pub fn hop_frames(&self) -> usize {
        self.hop_frames
            .unwrap_or_else(|| self.backbone.default_hop_frames())
    }

    /// Seconds between window starts.
    pub fn hop_seconds(&self) -> f64 {
        (self.hop_frames() * features::STFT_HOP) as f64 / features::MODEL_RATE as f64
    }
}

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    FrontEnd(#[from] FrontEndError),
    #[error(transparent)]
    Backbone(#[from] BackboneError),
    #[error(transparent)]
    Head(#[from] HeadError),
}

/// The mood of one window of audio, as the head read it (not smoothed).
#[derive(Clone, Debug, PartialEq)]
pub struct WindowReading {
    /// 0 for the first window after a reset.
    pub index: u64,
    /// Input time the window's audio starts and ends, seconds.
    pub start_seconds: f64,
    pub end_seconds: f64,
    /// One probability per label (see `Analyser::labels`).
    pub probabilities: Vec<f32>,
    /// Valence (unpleasant −1 to pleasant 1) and arousal (calm −1 to energetic 1), when the
    /// head's labels have a place on the circumplex.
    pub valence: Option<f32>,
    pub arousal: Option<f32>,
    /// How sure the analyser is that the window holds music, 0–1.
    pub presence: f32,
}

impl WindowReading {
    /// Index of the most probable label, group first (`MoodHead::groups`).
    pub fn dominant(&self, groups: &[usize]) -> usize {
        dominant_of(&self.probabilities, groups)
    }
}

/// The most probable label of the most probable group (`MoodHead::groups`).
pub fn dominant_of(probabilities: &[f32], groups: &[usize]) -> usize {
    let group = leading_groups(probabilities, groups).0;
    probabilities
        .iter()
        .enumerate()
        .filter(|(i, _)| groups.get(*i).copied().unwrap_or(*i) == group)
        .max_by(|a, b| a.1.total_cmp(b.1))
        .map_or(0, |(i, _)| i)
}

/// The most probable group, its probability and the runner-up group's probability.
fn leading_groups(probabilities: &[f32], groups: &[usize]) -> (usize, f32, f32) {
    let count = groups
        .iter()
        .copied()
        .max()
        .map_or(0, |g| g + 1)
        .max(probabilities.len());
    let mut total = vec![0.0f32; count];
    for (i, p) in probabilities.iter().enumerate() {
        total[groups.get(i).copied().unwrap_or(i)] += p;
    }
    let leader = argmax(&total);
    let runner_up = total
        .iter()
        .enumerate()
        .filter(|(g, _)| *g != leader)
        .map(|(_, p)| *p)
        .fold(0.0, f32::max);
    (leader, total[leader], runner_up)
}

fn argmax(values: &[f32]) -> usize {
    values
        .iter()
        .enumerate()
        .max_by(|a, b| a.1.total_cmp(b.1))
        .map_or(0, |(i, _)| i)
}

/// Presence for backbones that cannot tell music from other sound (VGGish): a level gate on the
/// patch's mean log-mel energy, 0 at silence, rising to 1 over a 30 dB range above −70 dBFS-ish.
fn level_presence(patch: &Patch, log_offset: f32) -> f32 {
    let mean = patch.data.iter().sum::<f32>() / patch.data.len() as f32;
    // Every band of a silent patch sits at ln(offset); each +10 dB is +ln(10)/2·… in power terms
    // of magnitude, so measure the mean rise above the floor in natural-log units.
    let rise = mean - log_offset.ln();
    let (quiet, loud) = (0.5f32, 3.5f32);
    ((rise - quiet) / (loud - quiet)).clamp(0.0, 1.0)
}

/// Front end + backbone + head: samples in, window readings out.
pub struct Analyser {
    config: AnalyserConfig,
    front_end: FrontEnd,
    backbone: Arc<dyn Backbone>,
    head: Box<dyn MoodHead>,
    labels: Arc<[String]>,
    groups: Arc<[usize]>,
    /// What the analyser chose instead of what was asked, in plain words (VGGish asked for the
    /// five calibrated moods reads six).
    note: Option<String>,
    /// Sanitized copy of the samples being pushed.
    clean: Vec<f32>,
    patches: Vec<Patch>,
    /// Patches cut but not embedded yet: offline, the last few that do not fill a batch.
    pending: Vec<Patch>,
    non_finite_samples: u64,
    /// Threads embedding the patches of one push (1 in the plugin's worker).
    threads: usize,
    /// Windows per backbone run: the backbone's batch size offline (`Analyser::new_offline`),
    /// else 1 (its one-window plan).
    run_windows: usize,
    /// With more than one thread: the helpers that embed whole runs in the background.
    pool: Option<EmbedPool>,
}

impl Analyser {
    /// Sets up an analyser; the backbone is loaded once per process and shared.
    pub fn new(config: AnalyserConfig, models: &ModelDir) -> Result<Self, EngineError> {
        Self::with_batches(config, models, false)
    }

    /// Sets up an analyser for offline work (`analyze`, library scans): its backbone runs the
    /// windows in batches (`BackboneKind::batch_windows`, spread over `set_threads` threads)
    /// through its batched plan, which gives each window the bits the one-window plan gives it
    /// (`Backbone::embed_batch`): the readings are `new`'s, bit for bit, whatever the threads and
    /// the pushes' sizes. Windows that do not fill a batch wait for the next push (or `finish`).
    pub fn new_offline(config: AnalyserConfig, models: &ModelDir) -> Result<Self, EngineError> {
        Self::with_batches(config, models, true)
    }

    fn with_batches(
        config: AnalyserConfig,
        models: &ModelDir,
        batched: bool,
    ) -> Result<Self, EngineError> {
        let front_end = FrontEnd::new(FrontEndConfig {
            input_rate: config.input_rate,
            log_offset: config.backbone.log_offset(),
            patch_hop_frames: config.hop_frames(),
        })?;
        let (head, note) = load_head(&config, models)?;
        let (plan, run_windows) = if batched {
            (backbone::Batch::Windows, config.backbone.batch_windows())
        } else {
            (backbone::Batch::One, 1)
        };
        let backbone = backbone::load_for(config.backbone, models, plan)?;
        let labels = head.labels().to_vec().into();
        let groups = head.groups().into();
        Ok(Self {
            config,
            front_end,
            backbone,
            head,
            labels,
            groups,
            note,
            clean: Vec::new(),
            patches: Vec::new(),
            pending: Vec::new(),
            non_finite_samples: 0,
            threads: 1,
            run_windows,
            pool: None,
        })
    }

    pub fn config(&self) -> &AnalyserConfig {
        &self.config
    }

    /// Label names, in the order of `WindowReading::probabilities`.
    pub fn labels(&self) -> &Arc<[String]> {
        &self.labels
    }

    /// The decision group of each label (`MoodHead::groups`).
    pub fn groups(&self) -> &Arc<[usize]> {
        &self.groups
    }

    /// The readout's name (`yamnet-emotify-v2`, `yamnet-raw-4`, a trained head's name).
    pub fn readout_name(&self) -> String {
        self.head.name()
    }

    /// What the analyser chose instead of what was asked, if anything.
    pub fn note(&self) -> Option<&str> {
        self.note.as_deref()
    }

    /// Lets `threads` threads embed the patches (each run of patches is embedded on its own, so
    /// the readings do not depend on the thread count). With more than one, the analysis is
    /// pipelined (`EmbedPool`): `threads - 1` helpers embed runs in the background while the
    /// calling thread cuts the next push's patches and embeds runs too, and a push's readings
    /// come with a later push (or `finish`).
    pub fn set_threads(&mut self, threads: usize) {
        self.threads = threads.max(1);
        self.pool = (self.threads > 1).then(|| {
            EmbedPool::new(
                Arc::clone(&self.backbone),
                self.threads - 1,
                self.run_windows,
            )
        });
    }

    /// Windows per backbone run (1, or the backbone's batch size offline). A push that completes
    /// at least `threads` times this many windows keeps every thread busy.
    pub fn run_windows(&self) -> usize {
        self.run_windows
    }

    /// NaN or infinite input samples replaced by silence since the last reset.
    pub fn non_finite_samples(&self) -> u64 {
        self.non_finite_samples
    }

    /// Feeds mono samples at the input rate; appends a reading for every window they complete
    /// (with more than one thread, for the windows whose embedding is done, in order).
    pub fn push(
        &mut self,
        samples: &[f32],
        out: &mut Vec<WindowReading>,
    ) -> Result<(), EngineError> {
        self.clean.clear();
        self.clean.extend_from_slice(samples);
        self.non_finite_samples += features::sanitize(&mut self.clean, SAMPLE_LIMIT) as u64;
        // With a pool, its helpers go on with the runs still queued while this thread cuts the
        // push's patches.
        self.front_end.push(&self.clean, &mut self.pending);
        if let Some(pool) = &mut self.pool {
            // Then this thread embeds runs too, leaving one queued per helper for the next
            // push's front end, and reads the runs that are done, in order.
            let whole = self.pending.len() / self.run_windows * self.run_windows;
            pool.submit(self.pending.drain(..whole));
            pool.help(pool.helpers());
            let done = pool.take_done(false);
            return self.read_runs(done, out);
        }
        self.take_whole_runs();
        self.embed_and_read_patches(out)
    }

    /// End of stream: reads the windows completed by what the front end still holds.
    pub fn finish(&mut self, out: &mut Vec<WindowReading>) -> Result<(), EngineError> {
        self.front_end.finish(&mut self.pending);
        if let Some(pool) = &mut self.pool {
            pool.submit(self.pending.drain(..));
            pool.help(0);
            let done = pool.take_done(true);
            return self.read_runs(done, out);
        }
        self.patches.clear();
        self.patches.append(&mut self.pending);
        self.embed_and_read_patches(out)
    }

    /// One thread (no pool): embeds `self.patches` and steps the head through them.
    fn embed_and_read_patches(&mut self, out: &mut Vec<WindowReading>) -> Result<(), EngineError> {
        let embedded = embed_in_runs(self.backbone.as_ref(), &self.patches, self.run_windows);
        let patches = std::mem::take(&mut self.patches);
        let read = self.read(&patches, embedded, out);
        self.patches = patches;
        read
    }

    /// Moves the pending patches that fill whole backbone runs to `self.patches`, in order; the
    /// rest stay pending.
    fn take_whole_runs(&mut self) {
        let whole = self.pending.len() / self.run_windows * self.run_windows;
        self.patches.clear();
        self.patches.extend(self.pending.drain(..whole));
    }

    /// Back to the start of a stream: no buffered audio, head state cleared.
    pub fn reset(&mut self) {
        if let Some(pool) = &mut self.pool {
            pool.take_done(true);
        }
        self.front_end.reset();
        self.head.reset();
        self.pending.clear();
        self.non_finite_samples = 0;
    }

    /// Steps the head through runs of patches and their embeddings, in order.
    fn read_runs(
        &mut self,
        runs: Vec<EmbeddedRun>,
        out: &mut Vec<WindowReading>,
    ) -> Result<(), EngineError> {
        for (patches, embedded) in runs {
            self.read(&patches, embedded, out)?;
        }
        Ok(())
    }

    /// Steps the head through `patches` and their embeddings, in order.
    fn read(
        &mut self,
        patches: &[Patch],
        embedded: Vec<Result<backbone::BackboneOutput, BackboneError>>,
        out: &mut Vec<WindowReading>,
    ) -> Result<(), EngineError> {
        for (patch, embedded) in patches.iter().zip(embedded) {
            let embedded = embedded?;
            let cues = window_cues(patch, self.config.backbone.log_offset());
            let reading = self.head.step(&embedded, &cues)?;
            let presence = match (reading.presence, &embedded.scores) {
                (Some(p), _) => p,
                (None, Some(scores)) => scores[head::YAMNET_MUSIC_ROW],
                (None, None) => level_presence(patch, self.config.backbone.log_offset()),
            };
            let (valence, arousal) = reading.valence_arousal.unzip();
            out.push(WindowReading {
                index: patch.index,
                start_seconds: patch.start_seconds(),
                end_seconds: patch.end_seconds(),
                probabilities: reading.probabilities,
                valence,
                arousal,
                presence,
            });
        }
        Ok(())
    }
}

/// Embeds patches in order, `run_windows` at a time (one run of the backbone: `embed` for one,
/// `embed_batch` for more), on this thread.
fn embed_in_runs(
    backbone: &dyn Backbone,
    patches: &[Patch],
    run_windows: usize,
) -> Vec<Result<backbone::BackboneOutput, BackboneError>> {
    let batch = run_windows.max(1);
    patches
        .chunks(batch)
        .flat_map(|run| embed_run(backbone, run, batch))
        .collect()
}

/// Embeds a whole set of patches on `threads` threads, this one included (`EmbedPool`), keeping
/// their order; the runs and so the bits are `embed_in_runs`'s whatever the threads. (Training,
/// `moodscope-train`, embeds whole data sets this way.)
pub fn embed_all(
    backbone: &Arc<dyn Backbone>,
    patches: Vec<Patch>,
    threads: usize,
    run_windows: usize,
) -> Vec<Result<backbone::BackboneOutput, BackboneError>> {
    if threads <= 1 {
        return embed_in_runs(backbone.as_ref(), &patches, run_windows);
    }
    let mut pool = EmbedPool::new(Arc::clone(backbone), threads - 1, run_windows);
    pool.submit(patches.into_iter());
    pool.take_done(true)
        .into_iter()
        .flat_map(|(_, embedded)| embedded)
        .collect()
}

/// Embeds one run of patches: `embed` window by window when `batch` is 1, else one
/// `embed_batch` (which pads a short run).
fn embed_run(
    backbone: &dyn Backbone,
    run: &[Patch],
    batch: usize,
) -> Vec<Result<backbone::BackboneOutput, BackboneError>> {
    if batch == 1 {
        return run.iter().map(|p| backbone.embed(&p.data)).collect();
    }
    let refs: Vec<&[f32]> = run.iter().map(|p| p.data.as_slice()).collect();
    match backbone.embed_batch(&refs) {
        Ok(outputs) => outputs.into_iter().map(Ok).collect(),
        // One error for the run: its first window reports it (the reading stops there).
        Err(e) => std::iter::once(Err(e))
            .chain(std::iter::repeat_with(|| {
                Err(BackboneError::Inference("an earlier window failed".into()))
            }))
            .take(run.len())
            .collect(),
    }
}

/// A run of patches and what the backbone made of each.
type EmbeddedRun = (
    Vec<Patch>,
    Vec<Result<backbone::BackboneOutput, BackboneError>>,
);

/// Offline analysis on more than one thread: helper threads that embed whole runs of patches
/// in the background, across pushes, so that no thread waits at the end of a push for another's
/// last run. Runs are numbered as submitted and read in that order (`take_done`); each run is
/// embedded exactly as `embed_in_runs` would, so the readings do not depend on who embedded what.
struct EmbedPool {
    backbone: Arc<dyn Backbone>,
    run_windows: usize,
    /// Runs waiting to be embedded (`None` once the pool is dropped, which stops the helpers).
    queue_in: Option<crossbeam_channel::Sender<(u64, Vec<Patch>)>>,
    /// The same queue, for this thread to take runs from too.
    queue_out: crossbeam_channel::Receiver<(u64, Vec<Patch>)>,
    /// Embedded runs from the helpers (disconnected only if every helper has stopped).
    embedded_out: crossbeam_channel::Receiver<(u64, EmbeddedRun)>,
    helpers: Vec<std::thread::JoinHandle<()>>,
    /// Runs submitted so far, and the number of the next run to read.
    submitted: u64,
    next: u64,
    /// Embedded runs that arrived before an earlier one.
    arrived: std::collections::BTreeMap<u64, EmbeddedRun>,
}

impl EmbedPool {
    fn new(backbone: Arc<dyn Backbone>, helpers: usize, run_windows: usize) -> Self {
        let run_windows = run_windows.max(1);
        let (queue_in, queue_out) = crossbeam_channel::unbounded::<(u64, Vec<Patch>)>();
        let (embedded_in, embedded_out) = crossbeam_channel::unbounded();
        let helpers = (0..helpers)
            .map(|_| {
                let (backbone, queue, embedded) = (
                    Arc::clone(&backbone),
                    queue_out.clone(),
                    embedded_in.clone(),
                );
                std::thread::spawn(move || {
                    for (number, run) in queue {
                        let outputs = embed_run(backbone.as_ref(), &run, run_windows);
                        if embedded.send((number, (run, outputs))).is_err() {
                            return;
                        }
                    }
                })
            })
            .collect();
        Self {
            backbone,
            run_windows,
            queue_in: Some(queue_in),
            queue_out,
            embedded_out,
            helpers,
            submitted: 0,
            next: 0,
            arrived: Default::default(),
        }
    }

    fn helpers(&self) -> usize {
        self.helpers.len()
    }

    /// Queues `patches` in runs of `run_windows` (the last run may be short).
    fn submit(&mut self, patches: impl Iterator<Item = Patch>) {
        let mut patches = patches.peekable();
        while patches.peek().is_some() {
            let run: Vec<Patch> = patches.by_ref().take(self.run_windows).collect();
            if let Some(queue) = &self.queue_in {
                // The helpers hold the receiving end until the pool is dropped.
                let _ = queue.send((self.submitted, run));
            }
            self.submitted += 1;
        }
    }

    /// Embeds queued runs on this thread until no more than `leave` are queued.
    fn help(&mut self, leave: usize) {
        while self.queue_out.len() > leave {
            let Ok((number, run)) = self.queue_out.try_recv() else {
                break;
            };
            let outputs = embed_run(self.backbone.as_ref(), &run, self.run_windows);
            self.arrived.insert(number, (run, outputs));
        }
    }

    /// The embedded runs that can be read now, in order; with `all`, waits for every submitted
    /// run (embedding queued ones on this thread too).
    fn take_done(&mut self, all: bool) -> Vec<EmbeddedRun> {
        if all {
            self.help(0);
        }
        let mut ready = Vec::new();
        while self.next < self.submitted {
            if let Some(run) = self.arrived.remove(&self.next) {
                ready.push(run);
                self.next += 1;
                continue;
            }
            let arrived = if all {
                self.embedded_out.recv().ok()
            } else {
                self.embedded_out.try_recv().ok()
            };
            match arrived {
                Some((number, run)) => {
                    self.arrived.insert(number, run);
                }
                None if all => self.helper_stopped(),
                None => break,
            }
        }
        ready
    }

    /// Every helper stopped with runs still out: a helper panicked (the backbone did); the
    /// panic goes on here, as it would have from a scoped thread.
    fn helper_stopped(&mut self) -> ! {
        for helper in self.helpers.drain(..) {
            if let Err(panic) = helper.join() {
                std::panic::resume_unwind(panic);
            }
        }
        panic!("the embedding helpers stopped with runs still to embed");
    }
}

impl Drop for EmbedPool {
    fn drop(&mut self) {
        self.queue_in = None;
        for helper in self.helpers.drain(..) {
            let _ = helper.join();
        }
    }
}

/// The signal cues of one window (`cues`).
pub fn window_cues(patch: &Patch, log_offset: f32) -> WindowCues {
    let (flux, hf_ratio) = cues::mel_cues(&patch.data, log_offset);
    WindowCues {
        flux,
        hf_ratio,
        key_major: patch.key.major,
        key_minor: patch.key.minor,
    }
}

type LoadedHead = (Box<dyn MoodHead>, Option<String>);

fn load_head(config: &AnalyserConfig, models: &ModelDir) -> Result<LoadedHead, EngineError> {
    use BackboneKind::{Vggish, Yamnet};
    let loaded: Box<dyn MoodHead> = match (&config.head, config.backbone, config.moods) {
        (HeadChoice::File(path), backbone, _) => {
            let head = TrainedHead::load(path)?;
            head.check_backbone(backbone)?;
            Box::new(head)
        }
        (HeadChoice::Default, Yamnet, MoodSet::Five) => {
            let calibration = load_calibration(models)?;
            Box::new(CalibratedReadout::new(calibration))
        }
        (_, Yamnet, set) => Box::new(YamnetReadout::new(set)),
        (_, Vggish, MoodSet::Four) => {
            Box::new(TrainedHead::load(&models.path().join(VGGISH_HEAD_FOUR))?)
        }
        (_, Vggish, MoodSet::Five | MoodSet::Six) => {
            let head = Box::new(TrainedHead::load(&models.path().join(VGGISH_HEAD_SIX))?);
            let note = (config.moods == MoodSet::Five).then(|| {
                "VGGish reads six moods: the calibrated five-mood readout is YAMNet's".to_owned()
            });
            return Ok((head, note));
        }
    };
    Ok((loaded, None))
}

/// The calibration of the default readout, loaded once per process and folder.
fn load_calibration(models: &ModelDir) -> Result<Arc<Calibration>, EngineError> {
    use std::collections::HashMap;
    use std::sync::{Mutex, OnceLock};
    static CACHE: OnceLock<Mutex<HashMap<PathBuf, Arc<Calibration>>>> = OnceLock::new();
    let path = models
        .file(DEFAULT_CALIBRATION)
        .map_err(BackboneError::from)?;
    let mut cache = CACHE
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    if let Some(calibration) = cache.get(&path) {
        return Ok(calibration.clone());
    }
    let calibration = Arc::new(Calibration::load(&path)?);
    cache.insert(path, calibration.clone());
    Ok(calibration)
}

/// The shipped VGGish heads, relative to the models folder: the study's four moods, and
/// AudioSet's six.
pub const VGGISH_HEAD_FOUR: &str = "heads/audioset-moods4.json";
pub const VGGISH_HEAD_SIX: &str = "heads/audioset-moods6.json";
/// The calibration of the default readout, relative to the models folder.
pub const DEFAULT_CALIBRATION: &str = models::CALIBRATION;

/// How raw readings become what users watch.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SmoothingSettings {
    /// Time constant of the exponential smoothing, seconds (0 = none).
    pub time_constant_seconds: f32,
    /// How far (in probability) a challenger must lead the current dominant mood to replace it.
    pub hysteresis: f32,
    /// Below this (smoothed) presence there is no dominant mood: "no music".
    pub presence_threshold: f32,
    /// Below this lead of the dominant mood over the next one (smoothed probability), the verdict
    /// is "uncertain": the probabilities are too flat to name a mood.
    pub min_lead: f32,
    /// Below this share of the recent windows (`RECENT_WINDOWS`) that read the dominant mood
    /// themselves, the verdict is "uncertain": the windows flip between moods.
    pub min_agreement: f32,
}

impl Default for SmoothingSettings {
    fn default() -> Self {
        Self {
            time_constant_seconds: 2.0,
            hysteresis: 0.1,
            presence_threshold: 0.3,
            min_lead: 0.02,
            min_agreement: 0.5,
        }
    }
}

/// Windows the agreement rule looks back over (about 4 s with YAMNet's 0.48 s hop).
pub const RECENT_WINDOWS: usize = 8;

/// The smoothed mood at one moment.
#[derive(Clone, Debug, PartialEq)]
pub struct MoodState {
    /// Smoothed probability per label; relaxes towards uniform when there is no music.
    pub probabilities: Vec<f32>,
    /// Smoothed valence and arousal (−1..1), relaxing towards 0 when there is no music; `None`
    /// when the labels have no place on the circumplex.
    pub valence: Option<f32>,
    pub arousal: Option<f32>,
    /// The dominant label, or `None` when there is no music or the verdict is uncertain.
    pub dominant: Option<usize>,
    /// There is music, but no mood is clear enough to name (see `Smoother::update`).
    pub uncertain: bool,
    /// Smoothed probability of the dominant mood's group (for the calibrated readout, Happy and
    /// Calm together, Angry and Scary together; else the mood's own), 0 without a dominant mood.
    pub confidence: f32,
    /// Smoothed music presence, 0–1.
    pub presence: f32,
}

impl MoodState {
    fn relaxed(labels: usize) -> Self {
        Self {
            probabilities: vec![1.0 / labels as f32; labels],
            valence: None,
            arousal: None,
            dominant: None,
            uncertain: false,
            confidence: 0.0,
            presence: 0.0,
        }
    }
}

/// Exponential smoothing with presence-weighted relaxation and a verdict: a hysteretic dominant
/// mood, "no music", or "uncertain".
pub struct Smoother {
    settings: SmoothingSettings,
    /// Decision group of each label (`MoodHead::groups`); each label its own when empty.
    groups: Vec<usize>,
    state: Option<MoodState>,
    /// The group currently held (kept through uncertain stretches, for the hysteresis).
    held: Option<usize>,
    /// Leading group of each recent window with music, newest last.
    recent: std::collections::VecDeque<usize>,
}

impl Smoother {
    pub fn new(settings: SmoothingSettings) -> Self {
        Self {
            settings,
            groups: Vec::new(),
            state: None,
            held: None,
            recent: Default::default(),
        }
    }

    /// Sets the labels' decision groups (`MoodHead::groups`, `Analyser::groups`).
    pub fn with_groups(mut self, groups: &[usize]) -> Self {
        self.set_groups(groups);
        self
    }

    pub fn set_groups(&mut self, groups: &[usize]) {
        if self.groups != groups {
            self.groups = groups.to_vec();
            self.reset();
        }
    }

    pub fn settings(&self) -> SmoothingSettings {
        self.settings
    }

    pub fn set_settings(&mut self, settings: SmoothingSettings) {
        self.settings = settings;
    }

    pub fn reset(&mut self) {
        self.state = None;
        self.held = None;
        self.recent.clear();
    }

    /// Folds in one window reading, `hop_seconds` after the previous one, and gives the verdict:
    ///
    /// 1. **No music** when the smoothed presence is below `presence_threshold`.
    /// 2. Otherwise the group with the most smoothed probability leads; the group held so far
    ///    stays until a challenger leads it by `hysteresis`.
    /// 3. **Uncertain** when the leading group's lead over the runner-up is below `min_lead`
    ///    (flat probabilities), or when no more than `min_agreement` of the last
    ///    `RECENT_WINDOWS` windows with music led with the held group themselves (moods flipping
    ///    window to window: with the default 0.5, half the windows saying otherwise is enough).
    ///    The lead is the leader's, not the held group's: a mood held by hysteresis while a
    ///    challenger leads it by less than `hysteresis` is still named.
    /// 4. Else the dominant mood is the held group's most probable label.
    pub fn update(&mut self, reading: &WindowReading, hop_seconds: f64) -> &MoodState {
        let labels = reading.probabilities.len();
        let uniform = 1.0 / labels as f32;
        let presence = reading.presence.clamp(0.0, 1.0);
        let tau = self.settings.time_constant_seconds.max(0.0) as f64;
        let alpha = if tau == 0.0 {
            1.0
        } else {
            (1.0 - (-hop_seconds / tau).exp()) as f32
        };
        if self
            .state
            .as_ref()
            .is_some_and(|s| s.probabilities.len() != labels)
        {
            self.reset();
        }
        if presence >= self.settings.presence_threshold {
            let leader = leading_groups(&reading.probabilities, &self.groups).0;
            if self.recent.len() == RECENT_WINDOWS {
                self.recent.pop_front();
            }
            self.recent.push_back(leader);
        }
        let state = self.state.get_or_insert_with(|| MoodState::relaxed(labels));
        // Without music the head's opinion is noise: pull it towards "no particular mood".
        for (s, p) in state.probabilities.iter_mut().zip(&reading.probabilities) {
            let target = presence * p + (1.0 - presence) * uniform;
            *s += alpha * (target - *s);
        }
        let follow = |smoothed: &mut Option<f32>, value: Option<f32>| {
            *smoothed = value.map(|v| {
                let target = presence * v;
                let s = smoothed.unwrap_or(0.0);
                s + alpha * (target - s)
            });
        };
        follow(&mut state.valence, reading.valence);
        follow(&mut state.arousal, reading.arousal);
        state.presence += alpha * (presence - state.presence);

        state.dominant = None;
        state.uncertain = false;
        state.confidence = 0.0;
        if state.presence < self.settings.presence_threshold {
            self.held = None;
            self.recent.clear();
            return self.state.as_ref().expect("set above");
        }
        let groups = &self.groups;
        let group_of = |label: usize| groups.get(label).copied().unwrap_or(label);
        let group_total = |g: usize| -> f32 {
            (0..labels)
                .filter(|&i| group_of(i) == g)
                .map(|i| state.probabilities[i])
                .sum()
        };
        let (leader, leader_p, runner_up_p) = leading_groups(&state.probabilities, groups);
        let held = match self.held {
            Some(current) if leader_p < group_total(current) + self.settings.hysteresis => current,
            _ => leader,
        };
        self.held = Some(held);
        let held_p = group_total(held);
        let agreeing = self.recent.iter().filter(|&&g| g == held).count();
        let agreement = agreeing as f32 / self.recent.len().max(1) as f32;
        let flipping =
            self.settings.min_agreement > 0.0 && agreement <= self.settings.min_agreement;
        if leader_p - runner_up_p < self.settings.min_lead || flipping {
            state.uncertain = true;
        } else {
            state.dominant = (0..labels)
                .filter(|&i| group_of(i) == held)
                .max_by(|&a, &b| state.probabilities[a].total_cmp(&state.probabilities[b]));
            state.confidence = held_p;
        }
        self.state.as_ref().expect("set above")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reading(probabilities: [f32; 4], presence: f32) -> WindowReading {
        WindowReading {
            index: 0,
            start_seconds: 0.0,
            end_seconds: 0.975,
            probabilities: probabilities.to_vec(),
            valence: None,
            arousal: None,
            presence,
        }
    }

    fn settings(tau: f32, hysteresis: f32, presence_threshold: f32) -> SmoothingSettings {
        SmoothingSettings {
            time_constant_seconds: tau,
            hysteresis,
            presence_threshold,
            min_lead: 0.0,
            min_agreement: 0.0,
        }
    }

    #[test]
    fn planar_and_interleaved_downmix_agree_bit_for_bit() {
        let left = [0.1f32, -0.7, 0.333, 1.0];
        let right = [0.2f32, 0.9, -0.125, f32::MIN_POSITIVE];
        let mut planar = [0.0f32; 4];
        downmix_planar(&[&left, &right], &mut planar);
        let interleaved: Vec<f32> = left
            .iter()
            .zip(&right)
            .flat_map(|(l, r)| [*l, *r])
            .collect();
        let mut mono = Vec::new();
        downmix_interleaved(&interleaved, 2, &mut mono);
        assert_eq!(
            planar.map(f32::to_bits).to_vec(),
            mono.iter().map(|x| x.to_bits()).collect::<Vec<_>>()
        );
        assert_eq!(planar[0], (0.1 + 0.2) * 0.5);
    }

    #[test]
    fn smoothing_follows_with_the_time_constant() {
        let mut s = Smoother::new(settings(1.0, 0.0, 0.0));
        let r = reading([1.0, 0.0, 0.0, 0.0], 1.0);
        // One time constant after a step, an exponential smoother has covered 1 - 1/e of it.
        let state = s.update(&r, 1.0).clone();
        let expected = 0.25 + (1.0 - 0.25) * (1.0 - (-1.0f32).exp());
        assert!(
            (state.probabilities[0] - expected).abs() < 1e-5,
            "{state:?}"
        );
        assert!((state.probabilities.iter().sum::<f32>() - 1.0).abs() < 1e-5);
    }

    #[test]
    fn hysteresis_keeps_the_dominant_mood_until_a_clear_lead() {
        let mut s = Smoother::new(settings(0.0, 0.1, 0.3));
        assert_eq!(
            s.update(&reading([0.5, 0.3, 0.1, 0.1], 1.0), 0.5).dominant,
            Some(0)
        );
        // Sad now leads by 0.05: not enough to take over.
        assert_eq!(
            s.update(&reading([0.35, 0.4, 0.15, 0.1], 1.0), 0.5)
                .dominant,
            Some(0)
        );
        // Sad leads by 0.3: it takes over.
        assert_eq!(
            s.update(&reading([0.2, 0.5, 0.2, 0.1], 1.0), 0.5).dominant,
            Some(1)
        );
    }

    #[test]
    fn silence_relaxes_the_moods_and_clears_the_dominant_one() {
        let mut s = Smoother::new(settings(0.5, 0.1, 0.3));
        for _ in 0..10 {
            s.update(&reading([0.9, 0.05, 0.03, 0.02], 1.0), 0.48);
        }
        let mut state = s
            .update(&reading([0.9, 0.05, 0.03, 0.02], 0.0), 0.48)
            .clone();
        for _ in 0..20 {
            state = s
                .update(&reading([0.9, 0.05, 0.03, 0.02], 0.0), 0.48)
                .clone();
        }
        assert_eq!(state.dominant, None);
        assert!(state.presence < 0.01);
        assert!(
            state.probabilities.iter().all(|p| (p - 0.25).abs() < 0.01),
            "{state:?}"
        );
    }

    #[test]
    fn flat_probabilities_read_uncertain_and_a_clear_lead_names_the_mood() {
        let mut s = Smoother::new(SmoothingSettings {
            time_constant_seconds: 0.0,
            ..SmoothingSettings::default()
        });
        let state = s.update(&reading([0.26, 0.25, 0.25, 0.24], 1.0), 0.48);
        assert!(state.uncertain && state.dominant.is_none(), "{state:?}");
        assert_eq!(state.confidence, 0.0);
        let state = s.update(&reading([0.6, 0.2, 0.1, 0.1], 1.0), 0.48);
        assert!(!state.uncertain && state.dominant == Some(0), "{state:?}");
        // No music is not "uncertain": there is nothing to be unsure about.
        let state = s.update(&reading([0.26, 0.25, 0.25, 0.24], 0.0), 0.48);
        assert!(!state.uncertain && state.dominant.is_none(), "{state:?}");
    }

    #[test]
    fn moods_flipping_window_to_window_read_uncertain() {
        let mut s = Smoother::new(SmoothingSettings::default());
        let happy = reading([0.7, 0.1, 0.1, 0.1], 1.0);
        let sad = reading([0.1, 0.7, 0.1, 0.1], 1.0);
        for _ in 0..10 {
            s.update(&happy, 0.48);
        }
        assert_eq!(s.update(&happy, 0.48).dominant, Some(0));
        // Alternating windows: the smoothed mood still leans one way, but fewer than half of the
        // recent windows agree with it.
        let mut uncertain = 0;
        for i in 0..16 {
            let state = s.update(if i % 2 == 0 { &sad } else { &happy }, 0.48);
            uncertain += usize::from(state.uncertain);
        }
        assert!(
            uncertain >= 8,
            "{uncertain} of 16 flipping windows read uncertain"
        );
        for _ in 0..12 {
            s.update(&sad, 0.48);
        }
        assert_eq!(s.update(&sad, 0.48).dominant, Some(1));
    }

    #[test]
    fn grouped_labels_decide_together() {
        // Angry and Scary (3, 4) share a group: together they lead, so the group's larger wins,
        // though Happy alone is more probable than either.
        let groups = [0, 1, 2, 3, 3];
        let p = [0.3f32, 0.1, 0.1, 0.26, 0.24];
        assert_eq!(dominant_of(&p, &groups), 3);
        assert_eq!(dominant_of(&p, &[0, 1, 2, 3, 4]), 0);
        let mut s = Smoother::new(SmoothingSettings {
            time_constant_seconds: 0.0,
            ..SmoothingSettings::default()
        })
        .with_groups(&groups);
        let r = WindowReading {
            probabilities: p.to_vec(),
            ..reading([0.0; 4], 1.0)
        };
        let state = s.update(&r, 0.48);
        assert_eq!(state.dominant, Some(3));
        assert!((state.confidence - 0.5).abs() < 1e-6, "{state:?}");
    }

    #[test]
    fn valence_and_arousal_are_smoothed_and_relax_without_music() {
        let mut s = Smoother::new(settings(1.0, 0.1, 0.3));
        let mut r = reading([0.7, 0.1, 0.1, 0.1], 1.0);
        r.valence = Some(0.8);
        r.arousal = Some(-0.4);
        let state = s.update(&r, 1.0).clone();
        let covered = 1.0 - (-1.0f32).exp();
        assert!(
            (state.valence.unwrap() - 0.8 * covered).abs() < 1e-5,
            "{state:?}"
        );
        assert!(
            (state.arousal.unwrap() + 0.4 * covered).abs() < 1e-5,
            "{state:?}"
        );
        r.presence = 0.0;
        let mut state = state;
        for _ in 0..20 {
            state = s.update(&r, 1.0).clone();
        }
        assert!(state.valence.unwrap().abs() < 1e-3 && state.arousal.unwrap().abs() < 1e-3);
    }
}
