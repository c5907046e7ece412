//! Audio files in, mono f32 blocks at the file's own rate out (symphonia: WAV, FLAC, MP3, Ogg Vorbis).
//!
//! Decoding streams packet by packet, so a long file never sits in memory whole; channels are
//! mixed down with `engine::downmix_interleaved`, the same arithmetic as the plugin's.

use std::fs::File;
use std::path::Path;

use symphonia::core::audio::{SampleBuffer, SignalSpec};
use symphonia::core::codecs::{Decoder, DecoderOptions, CODEC_TYPE_NULL};
use symphonia::core::errors::Error as SymphoniaError;
use symphonia::core::formats::{FormatOptions, FormatReader};
use symphonia::core::io::MediaSourceStream;
use symphonia::core::meta::MetadataOptions;
use symphonia::core::probe::Hint;

use crate::engine;

#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("cannot open: {0}")]
    Open(std::io::Error),
    #[error("not a supported audio file (WAV, FLAC, MP3 or Ogg Vorbis): {0}")]
    UnknownFormat(String),
    #[error("holds no audio track")]
    NoTrack,
    #[error("unsupported codec: {0}")]
    UnsupportedCodec(String),
    #[error("does not say its sample rate")]
    NoSampleRate,
    #[error("unreadable audio data: {0}")]
    Corrupt(String),
}

/// An open audio file, decoded on demand.
pub struct AudioReader {
    format: Box<dyn FormatReader>,
    decoder: Box<dyn Decoder>,
    track_id: u32,
    sample_rate: u32,
    channels: usize,
    frames: Option<u64>,
    buffer: Option<(SignalSpec, SampleBuffer<f32>)>,
    /// Packets that failed to decode and were skipped (damaged spots in an otherwise good file).
    skipped_packets: u64,
}

impl AudioReader {
    /// Opens and probes `path`; fails with a reason a user can act on.
    pub fn open(path: &Path) -> Result<Self, DecodeError> {
        let file = File::open(path).map_err(DecodeError::Open)?;
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
            .map_err(|e| match e {
                SymphoniaError::IoError(io) if io.kind() == std::io::ErrorKind::UnexpectedEof => {
                    DecodeError::UnknownFormat("the file is empty or truncated".into())
                }
                other => DecodeError::UnknownFormat(other.to_string()),
            })?;
        let format = probed.format;
        let track = format
            .tracks()
            .iter()
            .find(|t| t.codec_params.codec != CODEC_TYPE_NULL)
            .ok_or(DecodeError::NoTrack)?;
        let params = track.codec_params.clone();
        let decoder = symphonia::default::get_codecs()
            .make(&params, &DecoderOptions::default())
            .map_err(|e| DecodeError::UnsupportedCodec(e.to_string()))?;
        let sample_rate = params
            .sample_rate
            .filter(|&r| r > 0)
            .ok_or(DecodeError::NoSampleRate)?;
        Ok(Self {
            track_id: track.id,
            format,
            decoder,
            sample_rate,
            channels: params.channels.map_or(0, |c| c.count()),
            frames: params.n_frames,
            buffer: None,
            skipped_packets: 0,
        })
    }

    pub fn sample_rate(&self) -> u32 {
        self.sample_rate
    }

    /// Channel count, when the container says it up front.
    pub fn channels(&self) -> Option<usize> {
        (self.channels > 0).then_some(self.channels)
    }

    /// Length in frames, when the container says it up front.
    pub fn frames(&self) -> Option<u64> {
        self.frames
    }

    /// Damaged packets skipped so far.
    pub fn skipped_packets(&self) -> u64 {
        self.skipped_packets
    }

    /// Decodes the next packet and appends its mono mixdown to `mono`. Returns `false` at the
    /// end of the stream.
    pub fn read_mono(&mut self, mono: &mut Vec<f32>) -> Result<bool, DecodeError> {
        loop {
            let packet = match self.format.next_packet() {
                Ok(packet) => packet,
                Err(SymphoniaError::IoError(e))
                    if e.kind() == std::io::ErrorKind::UnexpectedEof =>
                {
                    return Ok(false)
                }
                Err(SymphoniaError::ResetRequired) => return Ok(false),
                Err(e) => return Err(DecodeError::Corrupt(e.to_string())),
            };
            if packet.track_id() != self.track_id {
                continue;
            }
            let decoded = match self.decoder.decode(&packet) {
                Ok(decoded) => decoded,
                // A damaged packet: skip it and carry on, as players do, but count it.
                Err(SymphoniaError::DecodeError(_)) => {
                    self.skipped_packets += 1;
                    continue;
                }
                Err(SymphoniaError::IoError(e))
                    if e.kind() == std::io::ErrorKind::UnexpectedEof =>
                {
                    return Ok(false)
                }
                Err(e) => return Err(DecodeError::Corrupt(e.to_string())),
            };
            let spec = *decoded.spec();
            let needed = decoded.capacity() as u64;
            let buffer = match &mut self.buffer {
                Some((s, b))
                    if *s == spec
                        && b.capacity() as u64 >= needed * spec.channels.count() as u64 =>
                {
                    b
                }
                slot => &mut slot.insert((spec, SampleBuffer::new(needed, spec))).1,
            };
            buffer.copy_interleaved_ref(decoded);
            self.channels = spec.channels.count();
            engine::downmix_interleaved(buffer.samples(), self.channels, mono);
            return Ok(true);
        }
    }
}

/// Decodes a whole file to mono; returns the samples and their rate.
pub fn read_mono_file(path: &Path) -> Result<(Vec<f32>, u32), DecodeError> {
    let mut reader = AudioReader::open(path)?;
    let mut mono = Vec::with_capacity(reader.frames().unwrap_or(0).min(1 << 28) as usize);
    while reader.read_mono(&mut mono)? {}
    Ok((mono, reader.sample_rate()))
}
