//! Opus packets in (from symphonia's Ogg and Matroska/WebM demuxers), 48 kHz float audio out,
//! decoded by libopus (the `opus` crate, linked to the system's libopus).
//!
//! The Opus identification header (`OpusHead`, the codec's extra data) gives the channel count,
//! the pre-skip (cut here from the start of the stream) and the output gain; the end trim comes
//! with the packets (Ogg, gapless decoding). Mono and stereo streams
//! are decoded (channel mapping families 0 and 1); surround (multistream) Opus is refused with
//! a message saying so.

use std::sync::Mutex;

use symphonia::core::audio::{
    AsAudioBufferRef, AudioBuffer, AudioBufferRef, Channels, Signal, SignalSpec,
};
use symphonia::core::codecs::{
    CodecDescriptor, CodecParameters, Decoder, DecoderOptions, FinalizeResult, CODEC_TYPE_OPUS,
};
use symphonia::core::errors::{Error, Result};
use symphonia::core::formats::Packet;
use symphonia::core::support_codec;

/// Opus always decodes at 48 kHz here (the rate its packets are timed in).
const RATE: u32 = 48_000;
/// The longest Opus packet: 120 ms.
const MAX_FRAMES: usize = 5_760;

/// What the identification header says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct OpusHead {
    channels: usize,
    pre_skip: usize,
    /// Q7.8 dB, to apply to the output.
    gain: i16,
}

fn parse_head(extra: &[u8]) -> Result<OpusHead> {
    if extra.len() < 19 || &extra[..8] != b"OpusHead" {
        return Err(Error::DecodeError(
            "opus: missing or short identification header",
        ));
    }
    let channels = extra[9] as usize;
    let pre_skip = u16::from_le_bytes([extra[10], extra[11]]) as usize;
    let gain = i16::from_le_bytes([extra[16], extra[17]]);
    let family = extra[18];
    let plain = match family {
        0 => (1..=2).contains(&channels),
        // Family 1 with one or two channels in a single (coupled) stream, in order.
        1 if channels <= 2 && extra.len() >= 21 + channels => {
            let (streams, coupled) = (extra[19] as usize, extra[20] as usize);
            streams == 1
                && coupled == channels - 1
                && extra[21..21 + channels]
                    .iter()
                    .enumerate()
                    .all(|(i, &m)| m as usize == i)
        }
        _ => false,
    };
    if !plain {
        return Err(Error::Unsupported(
            "surround (multistream) Opus; mono and stereo Opus are decoded",
        ));
    }
    Ok(OpusHead {
        channels,
        pre_skip,
        gain,
    })
}

pub struct OpusDecoder {
    params: CodecParameters,
    /// libopus's decoder is `Send` but not `Sync`; symphonia asks for both.
    decoder: Mutex<opus::Decoder>,
    head: OpusHead,
    /// Pre-skip still to cut (Matroska only: Ogg trims through the packets).
    skip: usize,
    interleaved: Vec<f32>,
    buffer: AudioBuffer<f32>,
}

fn opus_error(e: opus::Error) -> Error {
    Error::DecodeError(e.description())
}

impl Decoder for OpusDecoder {
    fn try_new(params: &CodecParameters, _options: &DecoderOptions) -> Result<Self> {
        let extra = params
            .extra_data
            .as_deref()
            .ok_or(Error::DecodeError("opus: no identification header"))?;
        let head = parse_head(extra)?;
        let channels = if head.channels == 1 {
            opus::Channels::Mono
        } else {
            opus::Channels::Stereo
        };
        let mut decoder = opus::Decoder::new(RATE, channels).map_err(opus_error)?;
        if head.gain != 0 {
            decoder.set_gain(head.gain as i32).map_err(opus_error)?;
        }
        let layout = if head.channels == 1 {
            Channels::FRONT_LEFT
        } else {
            Channels::FRONT_LEFT | Channels::FRONT_RIGHT
        };
        Ok(Self {
            params: params.clone(),
            decoder: Mutex::new(decoder),
            head,
            // symphonia 0.5.5 does not cut the pre-skip (Ogg's mapping declares it but the
            // packets' trims do not include it; Matroska does not say it): cut it here.
            skip: head.pre_skip,
            interleaved: vec![0.0; MAX_FRAMES * head.channels],
            buffer: AudioBuffer::new(MAX_FRAMES as u64, SignalSpec::new(RATE, layout)),
        })
    }

    fn supported_codecs() -> &'static [CodecDescriptor] {
        &[support_codec!(CODEC_TYPE_OPUS, "opus", "Opus (libopus)")]
    }

    fn reset(&mut self) {
        if let Ok(mut decoder) = self.decoder.lock() {
            let _ = decoder.reset_state();
        }
    }

    fn codec_params(&self) -> &CodecParameters {
        &self.params
    }

    fn decode(&mut self, packet: &Packet) -> Result<AudioBufferRef<'_>> {
        let frames = {
            let mut decoder = self
                .decoder
                .lock()
                .map_err(|_| Error::DecodeError("opus: decoder poisoned"))?;
            decoder
                .decode_float(&packet.data, &mut self.interleaved, false)
                .map_err(opus_error)?
        };
        let channels = self.head.channels;
        self.buffer.clear();
        self.buffer.render_reserved(Some(frames));
        for c in 0..channels {
            let out = self.buffer.chan_mut(c);
            for (i, o) in out.iter_mut().enumerate() {
                *o = self.interleaved[i * channels + c];
            }
        }
        let skip = self.skip.min(frames);
        self.skip -= skip;
        self.buffer
            .trim(packet.trim_start as usize + skip, packet.trim_end as usize);
        Ok(self.buffer.as_audio_buffer_ref())
    }

    fn finalize(&mut self) -> FinalizeResult {
        FinalizeResult::default()
    }

    fn last_decoded(&self) -> AudioBufferRef<'_> {
        self.buffer.as_audio_buffer_ref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(channels: u8, family: u8, table: &[u8]) -> Vec<u8> {
        let mut h = b"OpusHead".to_vec();
        h.extend([1, channels]);
        h.extend(312u16.to_le_bytes());
        h.extend(48_000u32.to_le_bytes());
        h.extend((-256i16).to_le_bytes());
        h.push(family);
        h.extend(table);
        h
    }

    #[test]
    fn the_identification_header_is_read_and_surround_is_refused() {
        assert_eq!(
            parse_head(&head(2, 0, &[])).unwrap(),
            OpusHead {
                channels: 2,
                pre_skip: 312,
                gain: -256
            }
        );
        assert_eq!(parse_head(&head(1, 1, &[1, 0, 0])).unwrap().channels, 1);
        let surround = parse_head(&head(6, 1, &[4, 2, 0, 4, 1, 2, 3, 5]));
        assert!(matches!(surround, Err(Error::Unsupported(m)) if m.contains("surround")));
        assert!(parse_head(b"OpusTags").is_err());
    }
}
