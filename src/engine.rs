//! The analysis engine: mono samples at the input rate in, one mood reading per window out.
//!
//! `Analyser` chains the front end, a shared backbone and a head; the plugin's worker and the
//! command-line tool both drive it, so both give the same numbers for the same audio.
//! `Smoother` turns raw readings into what users watch: exponentially smoothed probabilities
//! with a user-set time constant, moods that relax when there is no music, and a dominant mood
//! with hysteresis so it does not flicker.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use crate::backbone::{self, Backbone, BackboneError, BackboneKind};
use crate::features::{self, FrontEnd, FrontEndConfig, FrontEndError, Patch};
use crate::head::{self, HeadError, MoodHead, TrainedHead, YamnetReadout};
use crate::models::ModelDir;

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
    /// The backbone's default: YAMNet's own mood classes for YAMNet, the shipped AudioSet LSTM
    /// head for VGGish.
    Default,
    /// A head file written by `moodscope train` (`NAME.json` beside `NAME.onnx`).
    File(PathBuf),
}

/// How an analyser is set up.
#[derive(Clone, Debug, PartialEq)]
pub struct AnalyserConfig {
    /// Sample rate of the audio pushed in, Hz.
    pub input_rate: u32,
    pub backbone: BackboneKind,
    pub head: HeadChoice,
    /// Frames between window starts; `None` for the backbone's own (48 YAMNet, 96 VGGish).
    pub hop_frames: Option<usize>,
}

impl AnalyserConfig {
    pub fn new(input_rate: u32, backbone: BackboneKind) -> Self {
        Self {
            input_rate,
            backbone,
            head: HeadChoice::Default,
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
    /// How sure the analyser is that the window holds music, 0–1.
    pub presence: f32,
}

impl WindowReading {
    /// Index of the most probable label.
    pub fn dominant(&self) -> usize {
        argmax(&self.probabilities)
    }
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
    /// Sanitized copy of the samples being pushed.
    clean: Vec<f32>,
    patches: Vec<Patch>,
    /// With more than one thread: patches cut by the last push, embedded during the next one
    /// while the front end cuts that push's patches (so that no core waits for the other).
    pending: Vec<Patch>,
    non_finite_samples: u64,
    /// Threads embedding the patches of one push (1 in the plugin's worker).
    threads: usize,
}

impl Analyser {
    /// Sets up an analyser; the backbone is loaded once per process and shared.
    pub fn new(config: AnalyserConfig, models: &ModelDir) -> Result<Self, EngineError> {
        let front_end = FrontEnd::new(FrontEndConfig {
            input_rate: config.input_rate,
            log_offset: config.backbone.log_offset(),
            patch_hop_frames: config.hop_frames(),
        })?;
        let head = load_head(&config, models)?;
        let backbone = backbone::load(config.backbone, models)?;
        let labels = head.labels().to_vec().into();
        Ok(Self {
            config,
            front_end,
            backbone,
            head,
            labels,
            clean: Vec::new(),
            patches: Vec::new(),
            pending: Vec::new(),
            non_finite_samples: 0,
            threads: 1,
        })
    }

    pub fn config(&self) -> &AnalyserConfig {
        &self.config
    }

    /// Label names, in the order of `WindowReading::probabilities`.
    pub fn labels(&self) -> &Arc<[String]> {
        &self.labels
    }

    /// Lets `threads` threads embed the patches completed by one push (each patch is embedded
    /// on its own, so the readings do not depend on the thread count). With more than one, the
    /// analysis is pipelined: the readings of a push's windows come with the next push (or
    /// `finish`), while that push's audio goes through the front end.
    pub fn set_threads(&mut self, threads: usize) {
        self.threads = threads.max(1);
    }

    /// NaN or infinite input samples replaced by silence since the last reset.
    pub fn non_finite_samples(&self) -> u64 {
        self.non_finite_samples
    }

    /// Feeds mono samples at the input rate; appends a reading for every window they complete
    /// (with more than one thread, for every window the previous push completed).
    pub fn push(
        &mut self,
        samples: &[f32],
        out: &mut Vec<WindowReading>,
    ) -> Result<(), EngineError> {
        self.clean.clear();
        self.clean.extend_from_slice(samples);
        self.non_finite_samples += features::sanitize(&mut self.clean, SAMPLE_LIMIT) as u64;
        self.patches.clear();
        if self.threads <= 1 {
            self.front_end.push(&self.clean, &mut self.patches);
            let embedded = embed_all(self.backbone.as_ref(), &self.patches, 1, || ());
            return self.read(embedded, out);
        }
        // The last push's patches are embedded while the front end cuts this push's.
        std::mem::swap(&mut self.patches, &mut self.pending);
        let (front_end, clean, cut) = (&mut self.front_end, &self.clean, &mut self.pending);
        let embedded = embed_all(self.backbone.as_ref(), &self.patches, self.threads, || {
            front_end.push(clean, cut)
        });
        self.read(embedded, out)
    }

    /// End of stream: reads the windows completed by what the front end still holds.
    pub fn finish(&mut self, out: &mut Vec<WindowReading>) -> Result<(), EngineError> {
        self.patches.clear();
        self.patches.append(&mut self.pending);
        self.front_end.finish(&mut self.patches);
        let embedded = embed_all(self.backbone.as_ref(), &self.patches, self.threads, || ());
        self.read(embedded, out)
    }

    /// Back to the start of a stream: no buffered audio, head state cleared.
    pub fn reset(&mut self) {
        self.front_end.reset();
        self.head.reset();
        self.pending.clear();
        self.non_finite_samples = 0;
    }

    /// Steps the head through `self.patches` and their embeddings, in order.
    fn read(
        &mut self,
        embedded: Vec<Result<backbone::BackboneOutput, BackboneError>>,
        out: &mut Vec<WindowReading>,
    ) -> Result<(), EngineError> {
        for (patch, embedded) in self.patches.iter().zip(embedded) {
            let embedded = embedded?;
            let reading = self.head.step(&embedded)?;
            let presence = match (reading.presence, &embedded.scores) {
                (Some(p), _) => p,
                (None, Some(scores)) => scores[head::YAMNET_MUSIC_ROW],
                (None, None) => level_presence(patch, self.config.backbone.log_offset()),
            };
            out.push(WindowReading {
                index: patch.index,
                start_seconds: patch.start_seconds(),
                end_seconds: patch.end_seconds(),
                probabilities: reading.probabilities,
                presence,
            });
        }
        Ok(())
    }
}

/// Embeds patches on `threads` threads, this one included, keeping their order. This thread
/// first runs `meanwhile` (the front end, in a pipelined push), then joins in; the threads take
/// the patches one at a time, so none waits while another still has several to do.
fn embed_all(
    backbone: &dyn Backbone,
    patches: &[Patch],
    threads: usize,
    meanwhile: impl FnOnce(),
) -> Vec<Result<backbone::BackboneOutput, BackboneError>> {
    type Embedded = Vec<(usize, Result<backbone::BackboneOutput, BackboneError>)>;
    let next = AtomicUsize::new(0);
    let take_and_embed = || -> Embedded {
        let mut done = Vec::new();
        loop {
            let i = next.fetch_add(1, Ordering::Relaxed);
            let Some(patch) = patches.get(i) else {
                return done;
            };
            done.push((i, backbone.embed(&patch.data)));
        }
    };
    let helpers = threads.max(1).min(patches.len().max(1)) - 1;
    if helpers == 0 {
        // One thread (the plugin's worker, window by window): no scope, no reordering.
        meanwhile();
        return patches.iter().map(|p| backbone.embed(&p.data)).collect();
    }
    let mut embedded: Embedded = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..helpers).map(|_| scope.spawn(take_and_embed)).collect();
        meanwhile();
        let mut embedded = take_and_embed();
        for worker in workers {
            embedded.extend(
                worker
                    .join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic)),
            );
        }
        embedded
    });
    embedded.sort_unstable_by_key(|(i, _)| *i);
    embedded.into_iter().map(|(_, e)| e).collect()
}

fn load_head(config: &AnalyserConfig, models: &ModelDir) -> Result<Box<dyn MoodHead>, EngineError> {
    match (&config.head, config.backbone) {
        (HeadChoice::Default, BackboneKind::Yamnet) => Ok(Box::new(YamnetReadout::default())),
        (HeadChoice::Default, BackboneKind::Vggish) => {
            let head = TrainedHead::load(&models.path().join(DEFAULT_VGGISH_HEAD))?;
            Ok(Box::new(head))
        }
        (HeadChoice::File(path), backbone) => {
            let head = TrainedHead::load(path)?;
            head.check_backbone(backbone)?;
            Ok(Box::new(head))
        }
    }
}

/// The shipped VGGish head, relative to the models folder.
pub const DEFAULT_VGGISH_HEAD: &str = "heads/audioset-lstm1.json";

/// How raw readings become what users watch.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SmoothingSettings {
    /// Time constant of the exponential smoothing, seconds (0 = none).
    pub time_constant_seconds: f32,
    /// How far (in probability) a challenger must lead the current dominant mood to replace it.
    pub hysteresis: f32,
    /// Below this (smoothed) presence there is no dominant mood: "no music".
    pub presence_threshold: f32,
}

impl Default for SmoothingSettings {
    fn default() -> Self {
        Self {
            time_constant_seconds: 2.0,
            hysteresis: 0.1,
            presence_threshold: 0.3,
        }
    }
}

/// The smoothed mood at one moment.
#[derive(Clone, Debug, PartialEq)]
pub struct MoodState {
    /// Smoothed probability per label; relaxes towards uniform when there is no music.
    pub probabilities: Vec<f32>,
    /// The dominant label, or `None` when there is no music.
    pub dominant: Option<usize>,
    /// Smoothed probability of the dominant label (0 when there is none).
    pub confidence: f32,
    /// Smoothed music presence, 0–1.
    pub presence: f32,
}

/// Exponential smoothing with presence-weighted relaxation and a hysteretic dominant mood.
pub struct Smoother {
    settings: SmoothingSettings,
    state: Option<MoodState>,
}

impl Smoother {
    pub fn new(settings: SmoothingSettings) -> Self {
        Self {
            settings,
            state: None,
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
    }

    /// Folds in one window reading, `hop_seconds` after the previous one.
    pub fn update(&mut self, reading: &WindowReading, hop_seconds: f64) -> &MoodState {
        let labels = reading.probabilities.len();
        let uniform = 1.0 / labels as f32;
        let presence = reading.presence.clamp(0.0, 1.0);
        // Without music the head's opinion is noise: pull it towards "no particular mood".
        let target: Vec<f32> = reading
            .probabilities
            .iter()
            .map(|&p| presence * p + (1.0 - presence) * uniform)
            .collect();
        let tau = self.settings.time_constant_seconds.max(0.0) as f64;
        let alpha = if tau == 0.0 {
            1.0
        } else {
            (1.0 - (-hop_seconds / tau).exp()) as f32
        };
        let state = self.state.get_or_insert_with(|| MoodState {
            probabilities: vec![uniform; labels],
            dominant: None,
            confidence: 0.0,
            presence: 0.0,
        });
        if state.probabilities.len() != labels {
            *state = MoodState {
                probabilities: vec![uniform; labels],
                dominant: None,
                confidence: 0.0,
                presence: 0.0,
            };
        }
        for (s, t) in state.probabilities.iter_mut().zip(&target) {
            *s += alpha * (t - *s);
        }
        state.presence += alpha * (presence - state.presence);
        let leader = argmax(&state.probabilities);
        state.dominant = if state.presence < self.settings.presence_threshold {
            None
        } else {
            match state.dominant {
                Some(current)
                    if current < labels
                        && state.probabilities[leader]
                            < state.probabilities[current] + self.settings.hysteresis =>
                {
                    Some(current)
                }
                _ => Some(leader),
            }
        };
        state.confidence = state.dominant.map_or(0.0, |d| state.probabilities[d]);
        state
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
            presence,
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
        let mut s = Smoother::new(SmoothingSettings {
            time_constant_seconds: 1.0,
            hysteresis: 0.0,
            presence_threshold: 0.0,
        });
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
        let mut s = Smoother::new(SmoothingSettings {
            time_constant_seconds: 0.0,
            hysteresis: 0.1,
            presence_threshold: 0.3,
        });
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
        let mut s = Smoother::new(SmoothingSettings {
            time_constant_seconds: 0.5,
            hysteresis: 0.1,
            presence_threshold: 0.3,
        });
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
}
