//! Front end: mono audio at the input rate in, 96x64 log-mel patches out.
//!
//! resample (any rate 8–192 kHz → 16 kHz, rubato) → log-mel frames (25 ms periodic Hann, 10 ms hop,
//! 512-point FFT magnitude, 64 HTK-mel bands 125–7500 Hz, log(mel + offset), realfft) → patches
//! of 96 frames taken every `patch_hop_frames` frames. The maths is the reference VGGish/YAMNet
//! front end (`mel_features.py`, `vggish_input.py`); it streams, so the plugin's worker and the
//! command-line tool feed it blocks of any size and get the same patches.

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

/// The streaming front end: samples at the input rate in, patches out.
pub struct FrontEnd {
    config: FrontEndConfig,
}

impl FrontEnd {
    pub fn new(config: FrontEndConfig) -> Result<Self, FrontEndError> {
        if !(MIN_INPUT_RATE..=MAX_INPUT_RATE).contains(&config.input_rate) {
            return Err(FrontEndError::UnsupportedRate(config.input_rate));
        }
        if config.patch_hop_frames == 0 || config.patch_hop_frames > PATCH_FRAMES {
            return Err(FrontEndError::BadHop(config.patch_hop_frames));
        }
        Ok(Self { config })
    }

    pub fn config(&self) -> FrontEndConfig {
        self.config
    }

    /// Feeds mono samples at the input rate; appends every patch completed by them to `out`.
    pub fn push(&mut self, _samples: &[f32], _out: &mut Vec<Patch>) {
        todo!("front end")
    }

    /// End of stream: flushes what the resampler still holds and appends the patches it completes
    /// (no zero padding beyond that: like the reference, only whole patches are produced).
    pub fn finish(&mut self, _out: &mut Vec<Patch>) {
        todo!("front end")
    }

    /// Forgets all buffered audio; the next patch has index 0 and starts at frame 0.
    pub fn reset(&mut self) {
        todo!("front end")
    }
}
