//! THE ONLY REAL-TIME CODE IN MOODSCOPE: what `process()` does on the host's audio thread.
//!
//! In: the host's planar channel buffers (1 or 2 channels, any block size). Out: nothing changed in
//! them (the audio passes through bit for bit: this code only reads it) and their mono downmix
//! queued on the ring for the worker.
//!
//! Rules for everything in this file: no allocation, no lock, no syscall (no thread wake-up, no
//! I/O, no logging), no unbounded loop, no waiting. `process()` runs with nice-plug's
//! `assert_process_allocs` in the host tests, which aborts on any allocation here. Reading what the
//! worker published is `shared::Published::read`, which is wait-free.

use crate::engine::downmix_planar;
use crate::ring::RingWriter;

/// Most channels downmixed (the plugin's layouts are mono and stereo; more are never offered).
pub const MAX_CHANNELS: usize = 8;
/// Samples downmixed per step, on the stack.
const STEP: usize = 256;

/// The audio thread's end of the analysis: downmix and queue.
pub struct Feed {
    writer: RingWriter,
}

impl Feed {
    pub fn new(writer: RingWriter) -> Self {
        Self { writer }
    }

    /// Downmixes one block of planar channels and queues it. Never waits: if the ring is full
    /// the samples that do not fit are counted (see `ring`).
    #[inline]
    pub fn push<C: AsRef<[f32]>>(&mut self, channels: &[C]) {
        let channels = &channels[..channels.len().min(MAX_CHANNELS)];
        let frames = channels.iter().map(|c| c.as_ref().len()).min().unwrap_or(0);
        let mut mono = [0.0f32; STEP];
        let mut start = 0;
        while start < frames {
            let len = STEP.min(frames - start);
            let mut parts: [&[f32]; MAX_CHANNELS] = [&[]; MAX_CHANNELS];
            for (part, channel) in parts.iter_mut().zip(channels) {
                *part = &channel.as_ref()[start..start + len];
            }
            downmix_planar(&parts[..channels.len()], &mut mono[..len]);
            self.writer.push(&mono[..len]);
            start += len;
        }
    }

    /// The host reset the plugin: the worker starts its analysis afresh from here.
    #[inline]
    pub fn reset(&mut self) {
        self.writer.mark_reset();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ring::sample_ring;

    #[test]
    fn blocks_of_any_size_are_downmixed_in_order() {
        let (writer, mut reader) = sample_ring(20_000);
        let mut feed = Feed::new(writer);
        let left: Vec<f32> = (0..9000).map(|i| i as f32).collect();
        let right: Vec<f32> = (0..9000).map(|i| -(i as f32) * 0.5).collect();
        let mut at = 0;
        for block in [1usize, 8192, 7, 0, 800] {
            feed.push(&[&left[at..at + block], &right[at..at + block]]);
            at += block;
        }
        let mut out = vec![0.0; 20_000];
        let read = reader.read(&mut out, usize::MAX);
        assert_eq!(read.len, 9000);
        let mut expected = Vec::new();
        crate::engine::downmix_interleaved(
            &left
                .iter()
                .zip(&right)
                .flat_map(|(&l, &r)| [l, r])
                .collect::<Vec<_>>(),
            2,
            &mut expected,
        );
        assert!(out[..9000]
            .iter()
            .zip(&expected)
            .all(|(a, b)| a.to_bits() == b.to_bits()));
    }

    #[test]
    fn mono_passes_as_is() {
        let (writer, mut reader) = sample_ring(16);
        let mut feed = Feed::new(writer);
        feed.push(&[[0.25f32, -1.0, f32::NAN]]);
        let mut out = [0.0; 16];
        assert_eq!(reader.read(&mut out, 16).len, 3);
        assert_eq!(&out[..2], &[0.25, -1.0]);
        assert!(
            out[2].is_nan(),
            "sanitizing is the analyser's job, after the ring"
        );
    }
}
