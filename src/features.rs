//! Front end: mono audio at the input rate in, 96x64 log-mel patches out.
//!
//! resample (any rate 8–192 kHz → 16 kHz, rubato) → log-mel frames (25 ms periodic Hann, 10 ms hop,
//! 512-point FFT magnitude, 64 HTK-mel bands 125–7500 Hz, log(mel + offset), realfft) → patches
//! of 96 frames taken every `patch_hop_frames` frames. The maths is the reference VGGish/YAMNet
//! front end (`mel_features.py`, `vggish_input.py`); it streams, so the plugin's worker and the
//! command-line tool feed it blocks of any size and get the same patches.
//!
//! The stages, each usable alone: [`Resampler`] (input rate → 16 kHz, delay compensated),
//! `Framer` (16 kHz stream → 400-sample frames every 160), [`LogMel`] (frame → 64 log-mel
//! values), `Patcher` (frames → 96-frame patches every hop). [`log_mel_patches`] and
//! [`resample_to_model_rate`] run them on a whole signal.

use std::sync::Arc;

use realfft::num_complex::Complex;
use realfft::{RealFftPlanner, RealToComplex};

/// The rate every backbone listens at.
pub const MODEL_RATE: u32 = 16_000;
/// STFT window: 25 ms at 16 kHz.
pub const STFT_WINDOW: usize = 400;
/// STFT hop: 10 ms at 16 kHz.
pub const STFT_HOP: usize = 160;
/// FFT size (the window is zero-padded to it).
pub const FFT_SIZE: usize = 512;
/// Mel bands per frame.
pub const MEL_BANDS: usize = 64;
/// Frames per patch (0.96 s).
pub const PATCH_FRAMES: usize = 96;
/// Values in one patch, frame-major: `patch[frame * MEL_BANDS + band]`.
pub const PATCH_LEN: usize = PATCH_FRAMES * MEL_BANDS;
/// Lowest and highest input rates the resampler accepts.
pub const MIN_INPUT_RATE: u32 = 8_000;
pub const MAX_INPUT_RATE: u32 = 192_000;

/// Log offset of VGGish's front end: `log(mel + 0.01)`.
pub const VGGISH_LOG_OFFSET: f32 = 0.01;
/// Log offset of YAMNet's front end: `log(mel + 0.001)`.
pub const YAMNET_LOG_OFFSET: f32 = 0.001;

/// How the front end is set up for one stream.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FrontEndConfig {
    /// Sample rate of the audio pushed in, Hz.
    pub input_rate: u32,
    /// Offset added to the mel energies before the log (see the `*_LOG_OFFSET` constants).
    pub log_offset: f32,
    /// Frames between the starts of consecutive patches: 96 (0.96 s, VGGish) or 48 (0.48 s, YAMNet).
    pub patch_hop_frames: usize,
}

/// One 96x64 log-mel patch and where it sits in the stream.
#[derive(Clone, Debug, PartialEq)]
pub struct Patch {
    /// 0 for the first patch after a reset, then 1, 2, …
    pub index: u64,
    /// Index of the patch's first STFT frame in the 16 kHz stream (frame `f` starts at
    /// `f * STFT_HOP` samples, i.e. `f * 0.01` s of input time).
    pub start_frame: u64,
    /// `PATCH_LEN` values, frame-major.
    pub data: Vec<f32>,
    /// The key cues of the stream up to the patch's end (`cues::KeyTracker`).
    pub key: crate::cues::KeyCues,
}

impl Patch {
    /// Input time at which the patch's audio starts, seconds.
    pub fn start_seconds(&self) -> f64 {
        self.start_frame as f64 * STFT_HOP as f64 / MODEL_RATE as f64
    }

    /// Input time at which the patch's audio ends, seconds (0.975 s after its start).
    pub fn end_seconds(&self) -> f64 {
        self.start_seconds()
            + ((PATCH_FRAMES - 1) * STFT_HOP + STFT_WINDOW) as f64 / MODEL_RATE as f64
    }
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum FrontEndError {
    #[error("sample rate {0} Hz is outside the supported 8–192 kHz")]
    UnsupportedRate(u32),
    #[error("patch hop of {0} frames must be between 1 and {PATCH_FRAMES}")]
    BadHop(usize),
}

/// Replaces NaN and ±Inf with 0 and clamps to ±`limit` so nothing non-finite reaches the model.
/// Returns how many samples were replaced.
pub fn sanitize(samples: &mut [f32], limit: f32) -> usize {
    let mut replaced = 0;
    for s in samples.iter_mut() {
        if !s.is_finite() {
            *s = 0.0;
            replaced += 1;
        } else {
            *s = s.clamp(-limit, limit);
        }
    }
    replaced
}

/// Number of whole STFT frames in `samples_16k` samples of 16 kHz audio, as the reference counts
/// them: `1 + (len - 400) // 160`, and none when there is less than one window of audio.
pub fn frame_count(samples_16k: u64) -> u64 {
    if samples_16k < STFT_WINDOW as u64 {
        0
    } else {
        1 + (samples_16k - STFT_WINDOW as u64) / STFT_HOP as u64
    }
}

/// Number of whole patches in `frames` log-mel frames taken every `patch_hop_frames` frames:
/// `1 + (frames - 96) // hop`, and none when there are fewer than 96 frames.
pub fn patch_count(frames: u64, patch_hop_frames: usize) -> u64 {
    if frames < PATCH_FRAMES as u64 || patch_hop_frames == 0 {
        0
    } else {
        1 + (frames - PATCH_FRAMES as u64) / patch_hop_frames as u64
    }
}

/// Number of 16 kHz samples the resampler makes from `input_samples` samples at `input_rate`:
/// `floor(input_samples * 16000 / input_rate)`, the length `resampy.resample` gives.
pub fn resampled_len(input_samples: u64, input_rate: u32) -> u64 {
    (u128::from(input_samples) * u128::from(MODEL_RATE) / u128::from(input_rate.max(1))) as u64
}

/// Whole-signal resampling to `MODEL_RATE`, through the same streaming [`Resampler`] the front
/// end uses: `resampled_len(samples.len())` samples, lined up with the input (sample `n` is
/// input time `n / 16000` s). Returned in `f64`, the front end's working precision.
pub fn resample_to_model_rate(samples: &[f32], input_rate: u32) -> Result<Vec<f64>, FrontEndError> {
    let mut resampler = Resampler::new(input_rate)?;
    let mut out = Vec::with_capacity(resampled_len(samples.len() as u64, input_rate) as usize);
    resampler.push(samples, &mut out);
    resampler.finish(&mut out);
    Ok(out)
}

/// Whole-signal front end for audio already at 16 kHz: every whole patch of `samples_16k`,
/// exactly what a [`FrontEnd`] at 16 kHz gives for the same samples pushed in any blocks.
pub fn log_mel_patches(
    samples_16k: &[f32],
    log_offset: f32,
    patch_hop_frames: usize,
) -> Result<Vec<Patch>, FrontEndError> {
    let mut front_end = FrontEnd::new(FrontEndConfig {
        input_rate: MODEL_RATE,
        log_offset,
        patch_hop_frames,
    })?;
    let mut patches = Vec::new();
    front_end.push(samples_16k, &mut patches);
    front_end.finish(&mut patches);
    Ok(patches)
}

/// The streaming front end: samples at the input rate in, patches out.
///
/// Resampler → framer → log-mel → patcher. Every stage works on whole units of its own (FFT
/// blocks of the resampler, 400-sample frames, 96-frame patches) held in internal buffers, so the
/// patches depend only on the stream's samples, never on how the stream was cut into pushes.
pub struct FrontEnd {
    config: FrontEndConfig,
    resampler: Resampler,
    framer: Framer,
    log_mel: LogMel,
    patcher: Patcher,
    /// Pitch-class profile of the stream, for each patch's key cues.
    key_tracker: crate::cues::KeyTracker,
    /// 16 kHz samples made by the resampler during one push (scratch, reused).
    resampled: Vec<f64>,
    /// One log-mel frame (scratch, reused).
    frame: [f32; MEL_BANDS],
}

impl FrontEnd {
    /// Sets up the front end for one stream. Errors: an input rate outside 8–192 kHz, a patch hop
    /// outside 1..=96 frames.
    pub fn new(config: FrontEndConfig) -> Result<Self, FrontEndError> {
        if !(MIN_INPUT_RATE..=MAX_INPUT_RATE).contains(&config.input_rate) {
            return Err(FrontEndError::UnsupportedRate(config.input_rate));
        }
        if config.patch_hop_frames == 0 || config.patch_hop_frames > PATCH_FRAMES {
            return Err(FrontEndError::BadHop(config.patch_hop_frames));
        }
        Ok(Self {
            config,
            resampler: Resampler::new(config.input_rate)?,
            framer: Framer::new(),
            log_mel: LogMel::new(config.log_offset),
            patcher: Patcher::new(config.patch_hop_frames)?,
            key_tracker: crate::cues::KeyTracker::new(),
            resampled: Vec::new(),
            frame: [0.0; MEL_BANDS],
        })
    }

    pub fn config(&self) -> FrontEndConfig {
        self.config
    }

    /// Feeds mono samples at the input rate; appends every patch completed by them to `out`.
    /// Blocks may have any length (even 0 or 1); NaN and ±Inf samples are taken as silence.
    pub fn push(&mut self, samples: &[f32], out: &mut Vec<Patch>) {
        self.resampled.clear();
        self.resampler.push(samples, &mut self.resampled);
        self.analyse_resampled(out);
    }

    /// End of stream: flushes what the resampler still holds and appends the patches it completes
    /// (no zero padding beyond that: like the reference, only whole patches are produced).
    /// The front end is then reset, ready for a new stream.
    pub fn finish(&mut self, out: &mut Vec<Patch>) {
        self.resampled.clear();
        self.resampler.finish(&mut self.resampled);
        self.analyse_resampled(out);
        self.reset();
    }

    /// Forgets all buffered audio; the next patch has index 0 and starts at frame 0.
    pub fn reset(&mut self) {
        self.resampler.reset();
        self.framer.reset();
        self.patcher.reset();
        self.key_tracker.reset();
        self.resampled.clear();
    }

    fn analyse_resampled(&mut self, out: &mut Vec<Patch>) {
        self.framer.push(&self.resampled);
        self.key_tracker.push(&self.resampled);
        while let Some(samples) = self.framer.next_frame() {
            self.log_mel.frame(samples, &mut self.frame);
            let before = out.len();
            self.patcher.push_frame(&self.frame, out);
            if let Some(patch) = out.get_mut(before) {
                // The key cues of the audio up to the patch's last sample, whatever the pushes.
                let end = patch.start_frame * STFT_HOP as u64
                    + ((PATCH_FRAMES - 1) * STFT_HOP + STFT_WINDOW) as u64;
                patch.key = self.key_tracker.cues_at(end);
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Resampling
// ---------------------------------------------------------------------------------------------

/// Length of the resampler's FFT block on the lower-rate side, in samples (rounded up to what the
/// rate pair allows). With rubato's default Blackman-Harris² window this gives a filter whose
/// response matches the reference's `resampy` `kaiser_best` filter to about 1 dB down to −10 dB
/// (both cut off at ~0.916 × the lower Nyquist: −2 dB at 7.2 kHz, −9/−10 dB at 7.4 kHz when
/// downsampling to 16 kHz), so the top mel bands see what the networks saw in training.
/// A longer block would be sharper and further from the reference.
const RESAMPLER_BLOCK_TARGET: usize = 160;

/// Streaming sample-rate converter to `MODEL_RATE`: mono samples at the input rate in, 16 kHz
/// samples out, lined up with the input (output sample `n` is input time `n / 16000` s, as in the
/// reference's `resampy.resample`, which has no delay).
///
/// A synchronous FFT resampler (rubato `Fft`, exact rational ratio, `f64`) fed whole blocks from
/// an internal buffer, so its output never depends on how the input was cut into pushes. Its delay
/// is compensated exactly: a few zeros are fed before the stream so that the delay is a whole
/// number of output samples, which are then dropped. At 16 kHz the samples pass through untouched.
pub struct Resampler {
    input_rate: u32,
    /// `None` at 16 kHz: pass-through.
    stage: Option<FftStage>,
    /// Input samples pushed since the last reset.
    samples_in: u64,
    /// 16 kHz samples handed out since the last reset.
    samples_out: u64,
}

/// The FFT resampler and the buffers that feed it whole blocks.
struct FftStage {
    fft: rubato::Fft<f64>,
    /// Input samples per block.
    block_in: usize,
    /// Output samples per block.
    block_out: usize,
    /// Zeros fed before the stream so that the filter delay is a whole number of output samples.
    lead_in: usize,
    /// Output samples to drop at the start of a stream (the filter delay, lead-in included).
    delay_out: usize,
    /// Output samples still to drop.
    to_drop: usize,
    /// Input not yet making a whole block (`len < block_in`).
    pending: Vec<f64>,
    /// One block of output (scratch, reused).
    block_output: Vec<f64>,
}

impl Resampler {
    /// A resampler from `input_rate` to 16 kHz. Errors: a rate outside 8–192 kHz.
    pub fn new(input_rate: u32) -> Result<Self, FrontEndError> {
        if !(MIN_INPUT_RATE..=MAX_INPUT_RATE).contains(&input_rate) {
            return Err(FrontEndError::UnsupportedRate(input_rate));
        }
        let stage = (input_rate != MODEL_RATE).then(|| FftStage::new(input_rate as usize));
        Ok(Self {
            input_rate,
            stage,
            samples_in: 0,
            samples_out: 0,
        })
    }

    pub fn input_rate(&self) -> u32 {
        self.input_rate
    }

    /// Total delay of the conversion before compensation, in 16 kHz samples (0 at 16 kHz): how
    /// far behind the input the output runs while streaming.
    pub fn delay_samples(&self) -> usize {
        self.stage.as_ref().map_or(0, |stage| stage.delay_out)
    }

    /// Feeds mono samples at the input rate; appends the 16 kHz samples now complete to `out`.
    /// NaN and ±Inf samples are taken as silence.
    pub fn push(&mut self, samples: &[f32], out: &mut Vec<f64>) {
        self.samples_in += samples.len() as u64;
        let start = out.len();
        match &mut self.stage {
            None => out.extend(samples.iter().map(|&s| finite_or_zero(s))),
            Some(stage) => stage.push(samples, out),
        }
        self.samples_out += (out.len() - start) as u64;
    }

    /// End of stream: pushes silence through the filter until every output sample of the stream
    /// is out (`resampled_len` of them in all), appends them, and resets.
    pub fn finish(&mut self, out: &mut Vec<f64>) {
        let total = resampled_len(self.samples_in, self.input_rate);
        if let Some(stage) = &mut self.stage {
            let start = out.len();
            let missing = total.saturating_sub(self.samples_out) as usize;
            while out.len() - start < missing {
                stage.flush_block(out);
            }
            out.truncate(start + missing);
        }
        self.reset();
    }

    /// Forgets all buffered audio: the next sample pushed is input time 0.
    pub fn reset(&mut self) {
        if let Some(stage) = &mut self.stage {
            stage.reset();
        }
        self.samples_in = 0;
        self.samples_out = 0;
    }
}

impl FftStage {
    fn new(input_rate: usize) -> Self {
        let output_rate = MODEL_RATE as usize;
        let common = gcd(input_rate, output_rate);
        // Smallest blocks the rate pair allows: `min_in` input samples make `min_out` outputs.
        let (min_in, min_out) = (input_rate / common, output_rate / common);
        let blocks = RESAMPLER_BLOCK_TARGET.div_ceil(min_in.min(min_out));
        let (block_in, block_out) = (blocks * min_in, blocks * min_out);
        // With `FixedSync::Both` and a chunk of exactly one block, each call turns `block_in`
        // inputs into `block_out` outputs.
        let fft = rubato::Fft::<f64>::new_custom(
            input_rate,
            output_rate,
            block_in,
            1,
            1,
            rubato::WindowFunction::BlackmanHarris2,
            rubato::FixedSync::Both,
        )
        .expect("rates are non-zero and the block is a whole number of minimal blocks");
        debug_assert_eq!(rubato::Resampler::input_frames_next(&fft), block_in);
        debug_assert_eq!(rubato::Resampler::output_frames_next(&fft), block_out);
        // rubato centres its sinc filter on input sample `block_in / 2`: an output sample appears
        // that many input samples late. Only input positions that are multiples of `min_in`
        // fall on output samples, so feed `lead_in` zeros first to round the delay up to one.
        let centre = block_in / 2;
        let lead_in = (min_in - centre % min_in) % min_in;
        let delay_out = (centre + lead_in) / min_in * min_out;
        let mut stage = Self {
            fft,
            block_in,
            block_out,
            lead_in,
            delay_out,
            to_drop: delay_out,
            pending: Vec::with_capacity(block_in),
            block_output: vec![0.0; block_out],
        };
        stage.reset();
        stage
    }

    fn reset(&mut self) {
        rubato::Resampler::reset(&mut self.fft);
        self.pending.clear();
        self.pending.resize(self.lead_in, 0.0);
        self.to_drop = self.delay_out;
    }

    fn push(&mut self, mut samples: &[f32], out: &mut Vec<f64>) {
        while !samples.is_empty() {
            let take = (self.block_in - self.pending.len()).min(samples.len());
            let (now, rest) = samples.split_at(take);
            self.pending.extend(now.iter().map(|&s| finite_or_zero(s)));
            samples = rest;
            if self.pending.len() == self.block_in {
                self.process_block(out);
            }
        }
    }

    /// Completes the pending block with silence and processes it.
    fn flush_block(&mut self, out: &mut Vec<f64>) {
        self.pending.resize(self.block_in, 0.0);
        self.process_block(out);
    }

    /// Resamples the (full) pending block, appending its output, minus the delay, to `out`.
    fn process_block(&mut self, out: &mut Vec<f64>) {
        use rubato::audioadapter_buffers::direct::InterleavedSlice;
        debug_assert_eq!(self.pending.len(), self.block_in);
        let input = InterleavedSlice::new(&self.pending[..], 1, self.block_in)
            .expect("the pending buffer holds one block");
        let mut output = InterleavedSlice::new_mut(&mut self.block_output[..], 1, self.block_out)
            .expect("the output buffer holds one block");
        let (_, written) =
            rubato::Resampler::process_into_buffer(&mut self.fft, &input, &mut output, None)
                .expect("buffers are sized for one block, mono");
        let dropped = self.to_drop.min(written);
        self.to_drop -= dropped;
        out.extend_from_slice(&self.block_output[dropped..written]);
        self.pending.clear();
    }
}

fn gcd(mut a: usize, mut b: usize) -> usize {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

fn finite_or_zero(sample: f32) -> f64 {
    if sample.is_finite() {
        f64::from(sample)
    } else {
        0.0
    }
}

// ---------------------------------------------------------------------------------------------
// Framing
// ---------------------------------------------------------------------------------------------

/// Cuts the 16 kHz stream into 400-sample STFT frames every 160 samples (the reference's
/// `frame`, streaming): only whole frames, frame `f` starting at sample `f * 160`.
struct Framer {
    /// The stream's samples not yet spent (plus up to `COMPACT_AFTER` spent ones).
    buffer: Vec<f64>,
    /// Where the next frame starts in `buffer`.
    start: usize,
}

impl Framer {
    /// Samples of spent audio kept before they are dropped from the front of the buffer.
    const COMPACT_AFTER: usize = 8 * STFT_WINDOW;

    fn new() -> Self {
        Self {
            buffer: Vec::new(),
            start: 0,
        }
    }

    fn reset(&mut self) {
        self.buffer.clear();
        self.start = 0;
    }

    fn push(&mut self, samples: &[f64]) {
        if self.start >= Self::COMPACT_AFTER {
            self.buffer.drain(..self.start);
            self.start = 0;
        }
        self.buffer.extend_from_slice(samples);
    }

    /// The next whole frame, once the stream has reached its end.
    fn next_frame(&mut self) -> Option<&[f64]> {
        let end = self.start + STFT_WINDOW;
        if end > self.buffer.len() {
            return None;
        }
        let frame = &self.buffer[self.start..end];
        self.start += STFT_HOP;
        Some(frame)
    }
}

// ---------------------------------------------------------------------------------------------
// Log-mel
// ---------------------------------------------------------------------------------------------

/// The reference's periodic Hann window: `0.5 - 0.5 cos(2π n / len)`, `n` in `0..len`.
pub fn periodic_hann(len: usize) -> Vec<f64> {
    let step = 2.0 * std::f64::consts::PI / len as f64;
    (0..len)
        .map(|n| 0.5 - 0.5 * (step * n as f64).cos())
        .collect()
}

/// HTK mel scale: `1127 ln(1 + hz / 700)`.
pub fn hertz_to_mel(hz: f64) -> f64 {
    1127.0 * (1.0 + hz / 700.0).ln()
}

/// `numpy.linspace(start, stop, count)`, value for value: `start + i * step`, the last exactly
/// `stop`.
fn linspace(start: f64, stop: f64, count: usize) -> impl Iterator<Item = f64> {
    let step = (stop - start) / (count - 1) as f64;
    (0..count).map(move |i| {
        if i + 1 == count {
            stop
        } else {
            i as f64 * step + start
        }
    })
}

/// The 64 triangular HTK-mel bands (125–7500 Hz) over the 257 bins of a 512-point FFT at 16 kHz:
/// `mel_features.spectrogram_to_mel_matrix`, weight for weight, stored band by band without
/// the zeros.
pub struct MelFilterbank {
    bands: Vec<MelBand>,
}

/// One band: its non-zero weights, on consecutive FFT bins from `first_bin`.
struct MelBand {
    first_bin: usize,
    weights: Vec<f64>,
}

/// Lowest and highest edges of the mel bands, Hz.
pub const MEL_LOW_HZ: f64 = 125.0;
pub const MEL_HIGH_HZ: f64 = 7500.0;
/// FFT bins from DC to Nyquist.
pub const SPECTRUM_BINS: usize = FFT_SIZE / 2 + 1;

impl MelFilterbank {
    pub fn new() -> Self {
        let nyquist = f64::from(MODEL_RATE) / 2.0;
        let bin_mels: Vec<f64> = linspace(0.0, nyquist, SPECTRUM_BINS)
            .map(hertz_to_mel)
            .collect();
        let edges: Vec<f64> = linspace(
            hertz_to_mel(MEL_LOW_HZ),
            hertz_to_mel(MEL_HIGH_HZ),
            MEL_BANDS + 2,
        )
        .collect();
        let bands = edges
            .windows(3)
            .map(|edge| {
                let (lower, centre, upper) = (edge[0], edge[1], edge[2]);
                let weight = |mel: f64| {
                    let rising = (mel - lower) / (centre - lower);
                    let falling = (upper - mel) / (upper - centre);
                    rising.min(falling).max(0.0)
                };
                // HTK leaves out the DC bin.
                let first_bin = (1..SPECTRUM_BINS)
                    .find(|&bin| weight(bin_mels[bin]) > 0.0)
                    .unwrap_or(SPECTRUM_BINS);
                let end_bin = (first_bin..SPECTRUM_BINS)
                    .find(|&bin| weight(bin_mels[bin]) <= 0.0)
                    .unwrap_or(SPECTRUM_BINS);
                MelBand {
                    first_bin,
                    weights: bin_mels[first_bin..end_bin]
                        .iter()
                        .map(|&m| weight(m))
                        .collect(),
                }
            })
            .collect();
        Self { bands }
    }

    /// Weight of FFT bin `bin` in mel band `band` (the reference matrix's `[bin, band]`).
    pub fn weight(&self, bin: usize, band: usize) -> f64 {
        let band = &self.bands[band];
        bin.checked_sub(band.first_bin)
            .and_then(|i| band.weights.get(i))
            .copied()
            .unwrap_or(0.0)
    }

    /// Mel energies (`magnitudes` · matrix) of one frame's `SPECTRUM_BINS` magnitudes.
    pub fn apply(&self, magnitudes: &[f64], mel: &mut [f64; MEL_BANDS]) {
        for (band, energy) in self.bands.iter().zip(mel.iter_mut()) {
            let bins = &magnitudes[band.first_bin..band.first_bin + band.weights.len()];
            *energy = bins.iter().zip(&band.weights).map(|(m, w)| m * w).sum();
        }
    }
}

impl Default for MelFilterbank {
    fn default() -> Self {
        Self::new()
    }
}

/// Log-mel analysis of one STFT frame, the reference's `log_mel_spectrogram` one row at a time:
/// 400 samples at 16 kHz in → periodic Hann → 512-point FFT magnitude → 64 mel bands →
/// `ln(mel + log_offset)` out. Computed in `f64` like the reference; the result is rounded to
/// `f32`. Window, FFT plan and filterbank are made once.
pub struct LogMel {
    window: Vec<f64>,
    filterbank: MelFilterbank,
    fft: Arc<dyn RealToComplex<f64>>,
    fft_input: Vec<f64>,
    spectrum: Vec<Complex<f64>>,
    scratch: Vec<Complex<f64>>,
    magnitudes: Vec<f64>,
    mel: [f64; MEL_BANDS],
    log_offset: f64,
}

impl LogMel {
    pub fn new(log_offset: f32) -> Self {
        let fft = RealFftPlanner::<f64>::new().plan_fft_forward(FFT_SIZE);
        Self {
            window: periodic_hann(STFT_WINDOW),
            filterbank: MelFilterbank::new(),
            fft_input: fft.make_input_vec(),
            spectrum: fft.make_output_vec(),
            scratch: fft.make_scratch_vec(),
            fft,
            magnitudes: vec![0.0; SPECTRUM_BINS],
            mel: [0.0; MEL_BANDS],
            log_offset: f64::from(log_offset),
        }
    }

    /// Log-mel energies of one frame of `STFT_WINDOW` samples into `out` (`MEL_BANDS` values).
    pub fn frame(&mut self, samples: &[f64], out: &mut [f32; MEL_BANDS]) {
        assert_eq!(
            samples.len(),
            STFT_WINDOW,
            "a frame is {STFT_WINDOW} samples"
        );
        // realfft uses its input as scratch: rewrite the whole zero-padded frame every time.
        let (windowed, padding) = self.fft_input.split_at_mut(STFT_WINDOW);
        for ((x, &s), &w) in windowed.iter_mut().zip(samples).zip(&self.window) {
            *x = s * w;
        }
        padding.fill(0.0);
        self.fft
            .process_with_scratch(&mut self.fft_input, &mut self.spectrum, &mut self.scratch)
            .expect("FFT buffers come from the plan");
        // `sqrt(re² + im²)` rather than `Complex::norm` (libm's `hypot`, which guards against
        // overflow no FFT of audio samples reaches): a twentieth of a library scan's time.
        for (m, c) in self.magnitudes.iter_mut().zip(&self.spectrum) {
            *m = c.norm_sqr().sqrt();
        }
        self.filterbank.apply(&self.magnitudes, &mut self.mel);
        for (o, &m) in out.iter_mut().zip(&self.mel) {
            *o = (m + self.log_offset).ln() as f32;
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Patches
// ---------------------------------------------------------------------------------------------

/// Groups log-mel frames into patches of 96 frames, one every `hop` frames (the reference's
/// `frame` over the log-mel rows): only whole patches, patch `i` starting at frame `i * hop`.
struct Patcher {
    hop: usize,
    /// Frames from `first_frame` on, `MEL_BANDS` values each.
    frames: Vec<f32>,
    /// Stream index of the first frame in `frames`.
    first_frame: u64,
    /// Index of the next patch.
    next_patch: u64,
}

impl Patcher {
    fn new(hop: usize) -> Result<Self, FrontEndError> {
        if hop == 0 || hop > PATCH_FRAMES {
            return Err(FrontEndError::BadHop(hop));
        }
        Ok(Self {
            hop,
            frames: Vec::with_capacity(PATCH_LEN + hop * MEL_BANDS),
            first_frame: 0,
            next_patch: 0,
        })
    }

    fn reset(&mut self) {
        self.frames.clear();
        self.first_frame = 0;
        self.next_patch = 0;
    }

    fn push_frame(&mut self, frame: &[f32; MEL_BANDS], out: &mut Vec<Patch>) {
        self.frames.extend_from_slice(frame);
        if self.frames.len() < PATCH_LEN {
            return;
        }
        // `frames` always starts at the next patch's first frame, so it is now whole.
        out.push(Patch {
            index: self.next_patch,
            start_frame: self.first_frame,
            data: self.frames[..PATCH_LEN].to_vec(),
            key: Default::default(),
        });
        self.next_patch += 1;
        self.frames.drain(..self.hop * MEL_BANDS);
        self.first_frame += self.hop as u64;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Deterministic test noise in [-1, 1) (xorshift64*), no extra dependency.
    struct Noise(u64);

    impl Noise {
        fn next_u64(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }

        fn sample(&mut self) -> f32 {
            (self.next_u64() >> 40) as f32 / (1u64 << 23) as f32 - 1.0
        }
    }

    /// Music-like test signal: two tones, a chirp and some noise, at `rate`.
    fn test_signal(rate: u32, seconds: f64) -> Vec<f32> {
        let mut noise = Noise(0x9e37_79b9_7f4a_7c15);
        let len = (seconds * f64::from(rate)) as usize;
        (0..len)
            .map(|n| {
                let t = n as f64 / f64::from(rate);
                let tones = 0.3 * (2.0 * std::f64::consts::PI * 220.0 * t).sin()
                    + 0.2 * (2.0 * std::f64::consts::PI * 3150.0 * t).sin()
                    + 0.1 * (2.0 * std::f64::consts::PI * (500.0 + 900.0 * t) * t).sin();
                tones as f32 + 0.05 * noise.sample()
            })
            .collect()
    }

    fn config(input_rate: u32, patch_hop_frames: usize) -> FrontEndConfig {
        FrontEndConfig {
            input_rate,
            log_offset: VGGISH_LOG_OFFSET,
            patch_hop_frames,
        }
    }

    fn run_in_blocks(
        config: FrontEndConfig,
        signal: &[f32],
        sizes: &mut dyn FnMut() -> usize,
    ) -> Vec<Patch> {
        let mut front_end = FrontEnd::new(config).unwrap();
        let mut patches = Vec::new();
        let mut rest = signal;
        while !rest.is_empty() {
            let (block, tail) = rest.split_at(sizes().min(rest.len()));
            front_end.push(block, &mut patches);
            rest = tail;
        }
        front_end.finish(&mut patches);
        patches
    }

    #[test]
    fn mel_matrix_matches_the_reference() {
        // Values printed by mel_features.spectrogram_to_mel_matrix(64, 257, 16000, 125, 7500).
        let bank = MelFilterbank::new();
        let total: f64 = (0..SPECTRUM_BINS)
            .flat_map(|bin| (0..MEL_BANDS).map(move |band| (bin, band)))
            .map(|(bin, band)| bank.weight(bin, band))
            .sum();
        assert!((total - 230.9135991608477).abs() < 1e-11, "{total}");
        // (band, first non-zero bin, last non-zero bin, weight of the first, sum of the band)
        let expected = [
            (0, 5, 5, 0.9476904648443717, 0.9476904648443717),
            (1, 5, 6, 0.05230953515562834, 0.9854158806239115),
            (31, 57, 62, 0.16635959771081976, 2.8890277959865522),
            (62, 214, 230, 0.04663954224170371, 8.64865170196937),
            (63, 223, 239, 0.10419218473360978, 8.944183294481256),
        ];
        for (band, first, last, first_weight, sum) in expected {
            let weights: Vec<f64> = (0..SPECTRUM_BINS)
                .map(|bin| bank.weight(bin, band))
                .collect();
            let nonzero: Vec<usize> = (0..SPECTRUM_BINS).filter(|&b| weights[b] > 0.0).collect();
            assert_eq!(
                (nonzero[0], *nonzero.last().unwrap()),
                (first, last),
                "band {band}"
            );
            assert!((weights[first] - first_weight).abs() < 1e-13, "band {band}");
            assert!(
                (weights.iter().sum::<f64>() - sum).abs() < 1e-12,
                "band {band}"
            );
        }
        assert!((bank.weight(230, 63) - 0.9002553598425141).abs() < 1e-13);
        assert_eq!(bank.weight(100, 40), 0.0);
        // HTK: DC never counts.
        assert!((0..MEL_BANDS).all(|band| bank.weight(0, band) == 0.0));
    }

    #[test]
    fn window_is_the_periodic_hann() {
        let window = periodic_hann(STFT_WINDOW);
        assert_eq!(window.len(), 400);
        assert_eq!(window[0], 0.0);
        assert!((window[1] - 6.168375916970614e-05).abs() < 1e-18);
        assert!((window[100] - 0.5).abs() < 1e-15);
        assert!((window[200] - 1.0).abs() < 1e-15);
        // Periodic: symmetric about 200, and the last point is not zero.
        for n in 1..400 {
            assert!((window[n] - window[400 - n]).abs() < 1e-15, "{n}");
        }
        assert!((window[399] - 6.168375916970614e-05).abs() < 1e-15);
    }

    #[test]
    fn log_mel_of_a_sine_matches_the_reference() {
        // mel_features.log_mel_spectrogram(0.5 sin(0.3 n), n < 2000, 16 kHz, offset 0.01)[2].
        let signal: Vec<f64> = (0..2000).map(|n| 0.5 * (n as f64 * 0.3).sin()).collect();
        let mut log_mel = LogMel::new(0.01);
        let mut row = [0.0f32; MEL_BANDS];
        log_mel.frame(&signal[2 * STFT_HOP..2 * STFT_HOP + STFT_WINDOW], &mut row);
        let expected = [
            (0, -4.384829292924385),
            (10, -2.6237560525658283),
            (20, -2.44811505125159),
            (40, -4.572562251373915),
            (63, -4.6036399317810215),
        ];
        for (band, value) in expected {
            assert!(
                (f64::from(row[band]) - value).abs() < 1e-5,
                "band {band}: {}",
                row[band]
            );
        }
    }

    #[test]
    fn frame_and_patch_counts_follow_the_reference() {
        assert_eq!(frame_count(0), 0);
        assert_eq!(frame_count(399), 0);
        assert_eq!(frame_count(400), 1);
        assert_eq!(frame_count(559), 1);
        assert_eq!(frame_count(560), 2);
        assert_eq!(patch_count(95, 96), 0);
        assert_eq!(patch_count(96, 96), 1);
        assert_eq!(patch_count(191, 96), 1);
        assert_eq!(patch_count(192, 96), 2);
        assert_eq!(patch_count(144, 48), 2);
        assert_eq!(resampled_len(44_100, 44_100), 16_000);
        assert_eq!(resampled_len(44_099, 44_100), 15_999);
        assert_eq!(resampled_len(3, 48_000), 1);

        // The front end yields exactly those counts, at 16 kHz and through the resampler.
        for (rate, hop) in [
            (16_000, 96),
            (16_000, 48),
            (44_100, 96),
            (48_000, 48),
            (8_000, 7),
        ] {
            for seconds in [0.0, 0.02, 0.975, 0.98, 1.9, 2.941] {
                let signal = test_signal(rate, seconds);
                let patches = run_in_blocks(config(rate, hop), &signal, &mut || 4096);
                let frames = frame_count(resampled_len(signal.len() as u64, rate));
                assert_eq!(
                    patches.len() as u64,
                    patch_count(frames, hop),
                    "{rate} Hz, {seconds} s, hop {hop}"
                );
                for (i, patch) in patches.iter().enumerate() {
                    assert_eq!(patch.index, i as u64);
                    assert_eq!(patch.start_frame, i as u64 * hop as u64);
                    assert_eq!(patch.data.len(), PATCH_LEN);
                }
            }
        }
    }

    #[test]
    fn patches_do_not_depend_on_block_sizes() {
        for (rate, hop) in [
            (16_000, 96),
            (44_100, 48),
            (48_000, 96),
            (22_050, 48),
            (8_000, 96),
        ] {
            let signal = test_signal(rate, 3.3);
            let whole = run_in_blocks(config(rate, hop), &signal, &mut || usize::MAX);
            assert!(whole.len() >= 2, "{rate} Hz");
            for size in [1, 7, 441, 512, 8192] {
                let blocks = run_in_blocks(config(rate, hop), &signal, &mut || size);
                assert!(blocks == whole, "{rate} Hz, blocks of {size}");
            }
            let mut noise = Noise(u64::from(rate));
            let random = run_in_blocks(config(rate, hop), &signal, &mut || {
                (noise.next_u64() % 9000) as usize
            });
            assert!(random == whole, "{rate} Hz, random blocks");
        }
    }

    #[test]
    fn finish_leaves_the_front_end_ready_for_a_new_stream() {
        let signal = test_signal(44_100, 2.5);
        let mut front_end = FrontEnd::new(config(44_100, 48)).unwrap();
        let mut first = Vec::new();
        front_end.push(&signal, &mut first);
        front_end.finish(&mut first);
        let mut second = Vec::new();
        front_end.push(&signal[..1000], &mut second);
        front_end.reset();
        front_end.push(&signal, &mut second);
        front_end.finish(&mut second);
        assert!(first == second);
    }

    #[test]
    fn resampled_sines_line_up_with_the_input() {
        // A 1 kHz sine resampled to 16 kHz must be the 16 kHz sine of the same phase: any delay
        // left by the resampler shows as a phase error (0.1 sample = 0.04 rad = 0.04 error).
        for rate in [
            8_000, 11_025, 22_050, 32_000, 44_100, 48_000, 88_200, 96_000, 192_000, 44_101,
        ] {
            let signal: Vec<f32> = (0..rate as usize)
                .map(|n| {
                    (2.0 * std::f64::consts::PI * 1000.0 * n as f64 / f64::from(rate)).sin() as f32
                })
                .collect();
            let resampled = resample_to_model_rate(&signal, rate).unwrap();
            assert_eq!(resampled.len(), 16_000, "{rate} Hz");
            // Away from the edges, where the reference too sees the cut.
            let worst = (2000..14_000)
                .map(|n| {
                    let expected =
                        (2.0 * std::f64::consts::PI * 1000.0 * n as f64 / 16_000.0).sin();
                    (resampled[n] - expected).abs()
                })
                .fold(0.0, f64::max);
            assert!(worst < 1e-4, "{rate} Hz: error {worst}");
        }
    }

    #[test]
    fn sixteen_khz_passes_through_untouched() {
        let signal = test_signal(16_000, 0.5);
        let resampled = resample_to_model_rate(&signal, 16_000).unwrap();
        assert!(resampled
            .iter()
            .zip(&signal)
            .all(|(&r, &s)| r == f64::from(s)));
        assert_eq!(resampled.len(), signal.len());
    }

    #[test]
    fn non_finite_samples_count_as_silence() {
        let mut signal = test_signal(48_000, 2.0);
        let mut cleaned = signal.clone();
        for n in (100..signal.len()).step_by(997) {
            signal[n] = if n % 2 == 0 {
                f32::NAN
            } else {
                f32::NEG_INFINITY
            };
            cleaned[n] = 0.0;
        }
        let dirty = run_in_blocks(config(48_000, 96), &signal, &mut || 1024);
        let clean = run_in_blocks(config(48_000, 96), &cleaned, &mut || 1024);
        assert!(dirty == clean);
        assert!(dirty.iter().all(|p| p.data.iter().all(|v| v.is_finite())));
    }

    #[test]
    fn silence_gives_the_log_of_the_offset() {
        // 24 000 samples: 148 frames, so two patches 48 frames apart.
        let patches = log_mel_patches(&vec![0.0; 24_000], YAMNET_LOG_OFFSET, 48).unwrap();
        assert_eq!(patches.len(), 2);
        let floor = f64::from(YAMNET_LOG_OFFSET).ln() as f32;
        assert!(patches.iter().all(|p| p.data.iter().all(|&v| v == floor)));
    }

    #[test]
    fn bad_rates_and_hops_are_errors() {
        for rate in [0, 7_999, 192_001, 384_000] {
            assert_eq!(
                FrontEnd::new(config(rate, 96)).err(),
                Some(FrontEndError::UnsupportedRate(rate))
            );
            assert_eq!(
                Resampler::new(rate).err(),
                Some(FrontEndError::UnsupportedRate(rate))
            );
        }
        for hop in [0, 97, 1000] {
            assert_eq!(
                FrontEnd::new(config(44_100, hop)).err(),
                Some(FrontEndError::BadHop(hop))
            );
        }
        for rate in [8_000, 11_025, 16_000, 44_100, 191_999, 192_000] {
            assert!(FrontEnd::new(config(rate, 1)).is_ok(), "{rate} Hz");
        }
    }
}
