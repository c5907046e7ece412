//! Test audio: decoded music files, resampled to the rate under test, cut into host blocks.
//!
//! In: an audio file (OGG/Vorbis, WAV, FLAC) or a request for silence. Out: planar `f32`
//! channels at the wanted rate and channel count, the block sizes a host would use, and the
//! faults a broken upstream plugin might send (NaN, Inf, denormals, full-scale noise).

use std::fs::File;
use std::path::Path;

use anyhow::{anyhow, bail, Context, Result};
use audioadapter_buffers::direct::SequentialSliceOfVecs;
use rubato::{Fft, FixedSync, Resampler};
use symphonia::core::audio::SampleBuffer;
use symphonia::core::codecs::DecoderOptions;
use symphonia::core::errors::Error as SymphoniaError;
use symphonia::core::formats::FormatOptions;
use symphonia::core::io::MediaSourceStream;
use symphonia::core::meta::MetadataOptions;
use symphonia::core::probe::Hint;

/// Planar audio: one `Vec` per channel, all the same length.
#[derive(Clone, Debug, PartialEq)]
pub struct Audio {
    pub rate: u32,
    pub channels: Vec<Vec<f32>>,
}

impl Audio {
    pub fn frames(&self) -> usize {
        self.channels.first().map_or(0, Vec::len)
    }

    /// `seconds` of digital silence.
    pub fn silence(rate: u32, channels: usize, seconds: f64) -> Self {
        let frames = (rate as f64 * seconds).round() as usize;
        Self {
            rate,
            channels: vec![vec![0.0; frames]; channels],
        }
    }

    /// Keeps at most the first `seconds`.
    pub fn truncate_seconds(&mut self, seconds: f64) {
        let frames = (self.rate as f64 * seconds).round() as usize;
        for c in &mut self.channels {
            c.truncate(frames);
        }
    }

    /// Appends `other` (same rate and channel count).
    pub fn append(&mut self, other: &Audio) -> Result<()> {
        if other.rate != self.rate || other.channels.len() != self.channels.len() {
            bail!(
                "cannot append {} Hz x{} to {} Hz x{}",
                other.rate,
                other.channels.len(),
                self.rate,
                self.channels.len()
            );
        }
        for (c, o) in self.channels.iter_mut().zip(&other.channels) {
            c.extend_from_slice(o);
        }
        Ok(())
    }

    /// The same audio with `channels` channels: mono is duplicated, stereo is averaged to mono
    /// (or the first `channels` are kept).
    pub fn with_channels(self, channels: usize) -> Self {
        let have = self.channels.len();
        let out = match (have, channels) {
            (h, c) if h == c => self.channels,
            (1, c) => vec![self.channels[0].clone(); c],
            (_, 1) => {
                let n = have as f32;
                let frames = self.frames();
                vec![(0..frames)
                    .map(|i| self.channels.iter().map(|ch| ch[i]).sum::<f32>() / n)
                    .collect()]
            }
            (_, c) => self.channels.into_iter().take(c).collect(),
        };
        Self {
            rate: self.rate,
            channels: out,
        }
    }

    /// The same audio at `rate` (rubato's synchronous FFT resampler); unchanged if already there.
    pub fn resampled(self, rate: u32) -> Result<Self> {
        if rate == self.rate {
            return Ok(self);
        }
        let channels = self.channels.len();
        let frames = self.frames();
        let mut resampler = Fft::<f32>::new(
            self.rate as usize,
            rate as usize,
            1024,
            channels,
            FixedSync::Both,
        )
        .map_err(|e| anyhow!("resampler {} -> {rate} Hz: {e}", self.rate))?;
        let input = SequentialSliceOfVecs::new(&self.channels, channels, frames)
            .map_err(|e| anyhow!("resampler input: {e}"))?;
        let output = resampler
            .process_all(&input, frames, None)
            .map_err(|e| anyhow!("resampling: {e}"))?;
        let interleaved = output.take_data();
        let out_frames = interleaved.len() / channels;
        let mut planar = vec![Vec::with_capacity(out_frames); channels];
        for frame in interleaved.chunks_exact(channels) {
            for (c, &s) in planar.iter_mut().zip(frame) {
                c.push(s);
            }
        }
        Ok(Self {
            rate,
            channels: planar,
        })
    }
}

/// Decodes a whole file to planar `f32` at its own rate (symphonia).
pub fn decode(path: &Path) -> Result<Audio> {
    decode_prefix(path, None)
}

/// Decodes the first `max_seconds` of a file (all of it with `None`) to planar `f32` at its own
/// rate; stops reading once it has them, so a short excerpt of a long song is cheap.
pub fn decode_prefix(path: &Path, max_seconds: Option<f64>) -> Result<Audio> {
    let file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let stream = MediaSourceStream::new(Box::new(file), Default::default());
    let mut hint = Hint::new();
    if let Some(ext) = path.extension().and_then(|e| e.to_str()) {
        hint.with_extension(ext);
    }
    let probed = symphonia::default::get_probe()
        .format(
            &hint,
            stream,
            &FormatOptions::default(),
            &MetadataOptions::default(),
        )
        .with_context(|| format!("{} is not a supported audio file", path.display()))?;
    let mut format = probed.format;
    let track = format
        .default_track()
        .ok_or_else(|| anyhow!("{} has no audio track", path.display()))?;
    let track_id = track.id;
    let mut decoder = symphonia::default::get_codecs()
        .make(&track.codec_params, &DecoderOptions::default())
        .with_context(|| format!("no decoder for {}", path.display()))?;
    let mut rate = track.codec_params.sample_rate;
    let mut channels: Vec<Vec<f32>> = Vec::new();
    loop {
        let packet = match format.next_packet() {
            Ok(packet) => packet,
            Err(SymphoniaError::IoError(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                break
            }
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        };
        if packet.track_id() != track_id {
            continue;
        }
        let decoded = decoder
            .decode(&packet)
            .with_context(|| format!("decoding {}", path.display()))?;
        let spec = *decoded.spec();
        rate = Some(spec.rate);
        let enough = max_seconds.map(|s| (s * spec.rate as f64).round() as usize);
        let count = spec.channels.count();
        if channels.is_empty() {
            channels = vec![Vec::new(); count];
        }
        let mut samples = SampleBuffer::<f32>::new(decoded.capacity() as u64, spec);
        samples.copy_interleaved_ref(decoded);
        for frame in samples.samples().chunks_exact(count) {
            for (c, &s) in channels.iter_mut().zip(frame) {
                c.push(s);
            }
        }
        if enough.is_some_and(|n| channels[0].len() >= n) {
            break;
        }
    }
    let rate = rate.ok_or_else(|| anyhow!("{} has no sample rate", path.display()))?;
    if channels.is_empty() {
        bail!("{} holds no audio", path.display());
    }
    let mut audio = Audio { rate, channels };
    if let Some(seconds) = max_seconds {
        audio.truncate_seconds(seconds);
    }
    Ok(audio)
}

/// Writes planar audio as a 32-bit float WAV file (format 3, IEEE float), which symphonia (and so
/// both this host and `moodscope analyze`) reads back bit for bit.
pub fn write_wav_f32(path: &Path, audio: &Audio) -> Result<()> {
    let channels = audio.channels.len();
    if channels == 0 || channels > u16::MAX as usize {
        bail!("cannot write {channels} channels");
    }
    let frames = audio.frames();
    let data_bytes = u32::try_from(frames * channels * 4).context("too long for a WAV file")?;
    let mut out = Vec::with_capacity(44 + data_bytes as usize);
    out.extend_from_slice(b"RIFF");
    out.extend_from_slice(&(36 + data_bytes).to_le_bytes());
    out.extend_from_slice(b"WAVEfmt ");
    out.extend_from_slice(&16u32.to_le_bytes());
    out.extend_from_slice(&3u16.to_le_bytes()); // IEEE float
    out.extend_from_slice(&(channels as u16).to_le_bytes());
    out.extend_from_slice(&audio.rate.to_le_bytes());
    out.extend_from_slice(&(audio.rate * channels as u32 * 4).to_le_bytes());
    out.extend_from_slice(&(channels as u16 * 4).to_le_bytes());
    out.extend_from_slice(&32u16.to_le_bytes());
    out.extend_from_slice(b"data");
    out.extend_from_slice(&data_bytes.to_le_bytes());
    for i in 0..frames {
        for c in &audio.channels {
            out.extend_from_slice(&c[i].to_le_bytes());
        }
    }
    std::fs::write(path, out).with_context(|| format!("writing {}", path.display()))
}

/// How a host cuts the stream into blocks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BlockPlan {
    /// Every block this size (the last one may be shorter).
    Fixed(usize),
    /// Sizes drawn between 1 and `max` from a fixed-seed generator, as hosts that split blocks
    /// at automation points do.
    Variable { max: usize, seed: u64 },
}

impl BlockPlan {
    /// Largest block the plan produces.
    pub fn max_block(self) -> usize {
        match self {
            BlockPlan::Fixed(n) => n,
            BlockPlan::Variable { max, .. } => max,
        }
    }

    /// Block sizes covering `frames`.
    pub fn sizes(self, frames: usize) -> Vec<usize> {
        let mut sizes = Vec::new();
        let mut left = frames;
        let mut state = match self {
            BlockPlan::Variable { seed, .. } => seed | 1,
            BlockPlan::Fixed(_) => 0,
        };
        while left > 0 {
            let n = match self {
                BlockPlan::Fixed(n) => n,
                BlockPlan::Variable { max, .. } => {
                    // xorshift64*: deterministic, no dependency.
                    state ^= state >> 12;
                    state ^= state << 25;
                    state ^= state >> 27;
                    let r = state.wrapping_mul(0x2545_F491_4F6C_DD1D);
                    // Mostly ordinary sizes, sometimes tiny ones.
                    if r % 5 == 0 {
                        1 + (r >> 32) as usize % 8
                    } else {
                        1 + (r >> 32) as usize % max
                    }
                }
            }
            .clamp(1, left);
            sizes.push(n);
            left -= n;
        }
        sizes
    }
}

impl std::str::FromStr for BlockPlan {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if s == "variable" {
            return Ok(BlockPlan::Variable {
                max: 4096,
                seed: 0x5eed,
            });
        }
        if let Some(max) = s.strip_prefix("variable:") {
            let max = max
                .parse()
                .map_err(|_| format!("bad maximum block `{max}`"))?;
            return Ok(BlockPlan::Variable { max, seed: 0x5eed });
        }
        match s.parse::<usize>() {
            Ok(n) if (1..=1 << 16).contains(&n) => Ok(BlockPlan::Fixed(n)),
            _ => Err(format!(
                "block must be a size 1..65536, `variable` or `variable:MAX`, not `{s}`"
            )),
        }
    }
}

impl std::fmt::Display for BlockPlan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BlockPlan::Fixed(n) => write!(f, "{n}"),
            BlockPlan::Variable { max, .. } => write!(f, "variable:{max}"),
        }
    }
}

/// Overwrites stretches of the stream with what a broken upstream plugin might send, one second
/// each starting at `from_seconds`: NaN, +Inf/−Inf, denormals, full-scale white noise, and
/// samples far beyond full scale. Returns the frame ranges touched.
pub fn inject_faults(
    audio: &mut Audio,
    from_seconds: f64,
) -> Vec<(String, std::ops::Range<usize>)> {
    let rate = audio.rate as usize;
    let start = (from_seconds * audio.rate as f64) as usize;
    let mut noise_state = 0x1234_5678_9abc_def1u64;
    let mut noise = move || {
        noise_state ^= noise_state << 13;
        noise_state ^= noise_state >> 7;
        noise_state ^= noise_state << 17;
        (noise_state >> 40) as f32 / (1u64 << 23) as f32 * 2.0 - 1.0
    };
    let kinds: [(&str, &mut dyn FnMut(usize) -> f32); 5] = [
        ("nan", &mut |_| f32::NAN),
        ("inf", &mut |i| {
            if i % 2 == 0 {
                f32::INFINITY
            } else {
                f32::NEG_INFINITY
            }
        }),
        ("denormal", &mut |i| {
            if i % 2 == 0 {
                1.0e-40
            } else {
                -1.0e-42
            }
        }),
        ("full-scale-noise", &mut |_| noise()),
        ("beyond-full-scale", &mut |i| {
            if i % 2 == 0 {
                1.0e30
            } else {
                -1.0e30
            }
        }),
    ];
    let mut touched = Vec::new();
    let frames = audio.frames();
    for (k, (name, value)) in kinds.into_iter().enumerate() {
        let range = (start + k * rate).min(frames)..(start + (k + 1) * rate).min(frames);
        for i in range.clone() {
            let v = value(i);
            for c in &mut audio.channels {
                c[i] = v;
            }
        }
        touched.push((name.to_owned(), range));
    }
    touched
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn block_plans_cover_the_stream_exactly() {
        for plan in [
            BlockPlan::Fixed(1),
            BlockPlan::Fixed(512),
            BlockPlan::Fixed(8192),
            BlockPlan::Variable { max: 4096, seed: 7 },
        ] {
            let sizes = plan.sizes(100_003);
            assert_eq!(sizes.iter().sum::<usize>(), 100_003, "{plan}");
            assert!(
                sizes.iter().all(|&n| (1..=plan.max_block()).contains(&n)),
                "{plan}"
            );
        }
        let sizes = BlockPlan::Variable { max: 4096, seed: 7 }.sizes(1_000_000);
        assert!(
            sizes.iter().any(|&n| n < 8) && sizes.iter().any(|&n| n > 2048),
            "variable sizes vary"
        );
    }

    #[test]
    fn float_wav_reads_back_bit_for_bit() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.wav");
        let left: Vec<f32> = (0..5000).map(|i| (i as f32 * 0.013).sin() * 0.7).collect();
        let right: Vec<f32> = (0..5000)
            .map(|i| {
                if i == 7 {
                    f32::MIN_POSITIVE / 8.0
                } else {
                    -(i as f32) * 1e-4
                }
            })
            .collect();
        let audio = Audio {
            rate: 22_050,
            channels: vec![left, right],
        };
        write_wav_f32(&path, &audio).unwrap();
        let back = decode(&path).unwrap();
        assert_eq!(back.rate, 22_050);
        assert_eq!(back.channels.len(), 2);
        for (a, b) in audio.channels.iter().zip(&back.channels) {
            assert!(a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits()) && a.len() == b.len());
        }
        let prefix = decode_prefix(&path, Some(0.1)).unwrap();
        assert_eq!(prefix.frames(), 2205);
    }

    #[test]
    fn resampling_keeps_the_duration() {
        let audio = Audio {
            rate: 44_100,
            channels: vec![(0..44_100).map(|i| (i as f32 * 0.01).sin()).collect(); 2],
        };
        let out = audio.resampled(96_000).unwrap();
        assert_eq!(out.channels.len(), 2);
        assert!(
            (out.frames() as i64 - 96_000).abs() <= 2,
            "{}",
            out.frames()
        );
    }
}
