//! Signal cues: what the music's sound itself says about its energy and its mode, beside what the
//! backbone hears.
//!
//! In: a window's 96x64 log-mel patch, and the 16 kHz stream it was cut from. Out: `WindowCues`,
//! four numbers per window that the calibrated mood readout (`head::CalibratedReadout`) reads
//! beside YAMNet's mood logits:
//!
//! - `flux`: spectral flux, the mean rise of the log-mel bands from one 10 ms frame to the next
//!   (onsets, attacks, busy playing); arousal. The bands are read in the patch's own decibels:
//!   the mel magnitudes (recovered exactly from the front end's `ln(mel + offset)`) are floored
//!   `FLUX_RANGE_DB` below the patch's loudest band before their logs are taken, so the
//!   front end's fixed log offset (which compresses quiet bands) plays no part.
//! - `hf_ratio`: the share of the mel magnitude above band 40 (about 2.5 kHz): brightness, which
//!   grows with playing force and distortion; arousal.
//! - `key_major`, `key_minor`: how well the pitch-class profile of the last ~8 s of music fits
//!   the best major key and the best minor key (Pearson correlation with the Krumhansl–Kessler key
//!   profiles, −1..1); mode is the classic cue that tells calm from sad and happy from tense.
//!
//! Every cue is a ratio or a difference of logs over a floor relative to the patch itself, so a
//! track's gain does not change it (`tests::cues_do_not_depend_on_gain`: the same music at 0 and
//! −30 dB): a quiet master and a loud one read the same. The key tracker is streaming state, like the LSTM heads'
//! state: it is fed the whole stream, and a window's key cues describe the audio up to the
//! window's end, so they never depend on how the stream was cut into pushes.

use std::sync::Arc;

use realfft::num_complex::Complex;
use realfft::{RealFftPlanner, RealToComplex};

use crate::features::{MEL_BANDS, MODEL_RATE, PATCH_FRAMES};

/// The cues of one window.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct WindowCues {
    pub flux: f32,
    pub hf_ratio: f32,
    pub key_major: f32,
    pub key_minor: f32,
}

/// Names of the cues, in the order `WindowCues::values` gives them (calibration files use them).
pub const CUE_NAMES: [&str; 4] = ["flux", "hf_ratio", "key_major", "key_minor"];

impl WindowCues {
    pub fn values(&self) -> [f32; 4] {
        [self.flux, self.hf_ratio, self.key_major, self.key_minor]
    }
}

/// First mel band counted as "high" by `hf_ratio` (band 40 starts near 2.5 kHz).
const HIGH_BANDS_FROM: usize = 40;

/// How far below the patch's loudest mel band `flux` stops looking, dB (magnitude).
pub const FLUX_RANGE_DB: f64 = 50.0;

/// Flux and brightness of one patch (`PATCH_FRAMES` x `MEL_BANDS` values of `ln(mel + offset)`).
pub fn mel_cues(patch: &[f32], log_offset: f32) -> (f32, f32) {
    debug_assert_eq!(patch.len(), PATCH_FRAMES * MEL_BANDS);
    // The mel magnitudes themselves: exp undoes the log, and the offset comes off exactly.
    let magnitudes: Vec<f64> = patch
        .iter()
        .map(|&l| (f64::from(l).exp() - f64::from(log_offset)).max(0.0))
        .collect();
    let frames: Vec<&[f64]> = magnitudes.chunks_exact(MEL_BANDS).collect();
    let loudest = magnitudes.iter().copied().fold(0.0, f64::max);
    let floor = (loudest * 10f64.powf(-FLUX_RANGE_DB / 20.0)).max(f64::MIN_POSITIVE);
    let log_bands: Vec<f64> = magnitudes.iter().map(|&m| m.max(floor).ln()).collect();
    let log_frames: Vec<&[f64]> = log_bands.chunks_exact(MEL_BANDS).collect();
    let mut flux = 0.0f64;
    for pair in log_frames.windows(2) {
        let rise: f64 = pair[1]
            .iter()
            .zip(pair[0])
            .map(|(&now, &before)| (now - before).max(0.0))
            .sum();
        flux += rise / MEL_BANDS as f64;
    }
    flux /= (log_frames.len() - 1) as f64;
    let mut hf_ratio = 0.0f64;
    for frame in &frames {
        let total: f64 = frame.iter().sum::<f64>() + 1e-12;
        let high: f64 = frame[HIGH_BANDS_FROM..].iter().sum();
        hf_ratio += high / total;
    }
    hf_ratio /= frames.len() as f64;
    (flux as f32, hf_ratio as f32)
}

/// Key cues of the audio heard so far.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct KeyCues {
    pub major: f32,
    pub minor: f32,
}

/// Chroma FFT length at 16 kHz (256 ms: 3.9 Hz bins, enough to tell semitones apart from C2 up).
const CHROMA_FFT: usize = 4096;
/// Chroma hop (100 ms).
const CHROMA_HOP: usize = 1600;
/// Frequencies mapped to pitch classes.
const CHROMA_LOW_HZ: f64 = 65.0;
const CHROMA_HIGH_HZ: f64 = 2100.0;
/// Time constant of the running pitch-class profile, seconds: long enough to hear a key, short
/// enough to follow a modulation.
const KEY_MEMORY_SECONDS: f64 = 8.0;

/// Krumhansl & Kessler (1982) probe-tone ratings of the 12 pitch classes in C major and C minor.
const PROFILE_MAJOR: [f64; 12] = [
    6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88,
];
const PROFILE_MINOR: [f64; 12] = [
    6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17,
];

/// Streaming pitch-class profile of the 16 kHz stream, and how well it fits a major and a minor
/// key.
pub struct KeyTracker {
    fft: Arc<dyn RealToComplex<f64>>,
    window: Vec<f64>,
    /// Pitch class of each FFT bin that counts (`None` outside 65–2100 Hz).
    pitch_class: Vec<Option<usize>>,
    /// 16 kHz samples from stream position `buffer_start` on.
    buffer: Vec<f64>,
    buffer_start: u64,
    /// Stream position where the next chroma frame starts.
    next_frame: u64,
    /// Running (exponentially weighted) pitch-class profile; `None` before the first frame.
    profile: Option<[f64; 12]>,
    /// Scratch.
    fft_input: Vec<f64>,
    spectrum: Vec<Complex<f64>>,
    scratch: Vec<Complex<f64>>,
}

impl Default for KeyTracker {
    fn default() -> Self {
        Self::new()
    }
}

impl KeyTracker {
    pub fn new() -> Self {
        let fft = RealFftPlanner::<f64>::new().plan_fft_forward(CHROMA_FFT);
        let bins = CHROMA_FFT / 2 + 1;
        let pitch_class = (0..bins)
            .map(|bin| {
                let hz = bin as f64 * MODEL_RATE as f64 / CHROMA_FFT as f64;
                (CHROMA_LOW_HZ..=CHROMA_HIGH_HZ).contains(&hz).then(|| {
                    // MIDI pitch 69 is A 440 Hz; pitch class 0 is C.
                    let pitch = (12.0 * (hz / 440.0).log2() + 69.0).round() as i64;
                    pitch.rem_euclid(12) as usize
                })
            })
            .collect();
        Self {
            window: crate::features::periodic_hann(CHROMA_FFT),
            pitch_class,
            buffer: Vec::new(),
            buffer_start: 0,
            next_frame: 0,
            profile: None,
            fft_input: fft.make_input_vec(),
            spectrum: fft.make_output_vec(),
            scratch: fft.make_scratch_vec(),
            fft,
        }
    }

    pub fn reset(&mut self) {
        self.buffer.clear();
        self.buffer_start = 0;
        self.next_frame = 0;
        self.profile = None;
    }

    /// Appends 16 kHz samples to the stream.
    pub fn push(&mut self, samples: &[f64]) {
        self.buffer.extend_from_slice(samples);
    }

    /// Takes in every chroma frame that ends at or before stream position `end` (and has been
    /// pushed), then returns the key cues of the audio so far.
    pub fn cues_at(&mut self, end: u64) -> KeyCues {
        let available = self.buffer_start + self.buffer.len() as u64;
        while self.next_frame + CHROMA_FFT as u64 <= end.min(available) {
            let from = (self.next_frame - self.buffer_start) as usize;
            self.take_frame(from);
            self.next_frame += CHROMA_HOP as u64;
        }
        // Drop what no future frame needs.
        let spent = (self.next_frame - self.buffer_start) as usize;
        if spent >= 4 * CHROMA_FFT {
            self.buffer.drain(..spent);
            self.buffer_start = self.next_frame;
        }
        self.cues()
    }

    fn take_frame(&mut self, from: usize) {
        let frame = &self.buffer[from..from + CHROMA_FFT];
        for ((x, &s), &w) in self.fft_input.iter_mut().zip(frame).zip(&self.window) {
            *x = s * w;
        }
        self.fft
            .process_with_scratch(&mut self.fft_input, &mut self.spectrum, &mut self.scratch)
            .expect("FFT buffers come from the plan");
        let mut chroma = [0.0f64; 12];
        for (c, class) in self.spectrum.iter().zip(&self.pitch_class) {
            if let Some(class) = class {
                chroma[*class] += c.norm_sqr();
            }
        }
        let total: f64 = chroma.iter().sum::<f64>() + 1e-12;
        chroma.iter_mut().for_each(|c| *c /= total);
        let alpha = 1.0 - (-(CHROMA_HOP as f64) / MODEL_RATE as f64 / KEY_MEMORY_SECONDS).exp();
        self.profile = Some(match self.profile {
            None => chroma,
            Some(mut profile) => {
                for (p, c) in profile.iter_mut().zip(chroma) {
                    *p += alpha * (c - *p);
                }
                profile
            }
        });
    }

    /// Best correlation of the running profile with a major and with a minor key profile.
    pub fn cues(&self) -> KeyCues {
        let Some(profile) = self.profile else {
            return KeyCues::default();
        };
        KeyCues {
            major: best_key_fit(&profile, &PROFILE_MAJOR) as f32,
            minor: best_key_fit(&profile, &PROFILE_MINOR) as f32,
        }
    }
}

/// Largest Pearson correlation between `profile` and `key` transposed to each of the 12 tonics.
fn best_key_fit(profile: &[f64; 12], key: &[f64; 12]) -> f64 {
    let standardise = |v: &[f64; 12]| {
        let mean = v.iter().sum::<f64>() / 12.0;
        let sd = (v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / 12.0).sqrt();
        v.map(|x| (x - mean) / (sd + 1e-12))
    };
    let p = standardise(profile);
    let k = standardise(key);
    (0..12)
        .map(|tonic| (0..12).map(|i| p[(i + tonic) % 12] * k[i]).sum::<f64>() / 12.0)
        .fold(f64::NEG_INFINITY, f64::max)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::features::{FrontEnd, FrontEndConfig, Patch, YAMNET_LOG_OFFSET};

    /// A chord progression's worth of sine partials, `notes` as MIDI pitches, at 16 kHz.
    fn chord(notes: &[i32], seconds: f64, gain: f32) -> Vec<f32> {
        let len = (seconds * MODEL_RATE as f64) as usize;
        (0..len)
            .map(|n| {
                let t = n as f64 / MODEL_RATE as f64;
                let v: f64 = notes
                    .iter()
                    .map(|&p| {
                        let hz = 440.0 * 2f64.powf((p - 69) as f64 / 12.0);
                        // A little attack every half second, so the music has onsets.
                        let env = (-(t % 0.5) * 4.0).exp();
                        env * (2.0 * std::f64::consts::PI * hz * t).sin()
                    })
                    .sum();
                gain * (0.2 * v) as f32
            })
            .collect()
    }

    fn patches(signal: &[f32], pushes: usize) -> Vec<Patch> {
        let mut front_end = FrontEnd::new(FrontEndConfig {
            input_rate: MODEL_RATE,
            log_offset: YAMNET_LOG_OFFSET,
            patch_hop_frames: 48,
        })
        .unwrap();
        let mut out = Vec::new();
        for block in signal.chunks(signal.len().div_ceil(pushes)) {
            front_end.push(block, &mut out);
        }
        front_end.finish(&mut out);
        out
    }

    #[test]
    fn a_major_triad_fits_a_major_key_and_a_minor_triad_a_minor_key() {
        // C major (C4 E4 G4 + C3) against C minor (C4 E♭4 G4 + C3).
        let major = patches(&chord(&[48, 60, 64, 67], 10.0, 1.0), 1);
        let minor = patches(&chord(&[48, 60, 63, 67], 10.0, 1.0), 1);
        let (maj, min) = (major.last().unwrap().key, minor.last().unwrap().key);
        assert!(maj.major > maj.minor + 0.05, "{maj:?}");
        assert!(min.minor > min.major + 0.05, "{min:?}");
        assert!(maj.major > 0.7 && min.minor > 0.7, "{maj:?} {min:?}");
    }

    #[test]
    fn key_cues_do_not_depend_on_how_the_stream_is_cut() {
        let signal = chord(&[45, 57, 60, 64], 6.0, 1.0);
        let whole = patches(&signal, 1);
        let cut = patches(&signal, 37);
        assert_eq!(whole.len(), cut.len());
        for (a, b) in whole.iter().zip(&cut) {
            assert_eq!(a.key, b.key);
        }
    }

    #[test]
    fn cues_do_not_depend_on_gain() {
        // 0 dB against −30 dB: the same music, mastered quieter.
        let loud = patches(&chord(&[50, 62, 66, 69], 5.0, 1.0), 1);
        let quiet = patches(&chord(&[50, 62, 66, 69], 5.0, 10f32.powf(-30.0 / 20.0)), 1);
        for (a, b) in loud.iter().zip(&quiet) {
            let (fa, ha) = mel_cues(&a.data, YAMNET_LOG_OFFSET);
            let (fb, hb) = mel_cues(&b.data, YAMNET_LOG_OFFSET);
            assert!((fa - fb).abs() < 0.02 * fa.max(0.05), "flux {fa} vs {fb}");
            assert!((ha - hb).abs() < 0.01, "hf ratio {ha} vs {hb}");
            assert!((a.key.major - b.key.major).abs() < 1e-3);
            assert!((a.key.minor - b.key.minor).abs() < 1e-3);
        }
    }

    #[test]
    fn busy_bright_music_has_more_flux_and_brightness_than_a_held_tone() {
        let held: Vec<f32> = (0..32_000)
            .map(|n| 0.3 * (2.0 * std::f32::consts::PI * 220.0 * n as f32 / 16_000.0).sin())
            .collect();
        // Clicks every 60 ms: many onsets, energy up to the top band.
        let clicks: Vec<f32> = (0..32_000)
            .map(|n| if n % 960 == 0 { 0.8 } else { 0.0 })
            .collect();
        let (held_flux, held_hf) = mel_cues(&patches(&held, 1)[0].data, YAMNET_LOG_OFFSET);
        let (click_flux, click_hf) = mel_cues(&patches(&clicks, 1)[0].data, YAMNET_LOG_OFFSET);
        assert!(click_flux > 5.0 * held_flux, "{click_flux} vs {held_flux}");
        assert!(click_hf > held_hf + 0.2, "{click_hf} vs {held_hf}");
    }
}
