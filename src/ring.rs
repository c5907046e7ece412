//! The sample ring between the audio thread and the worker.
//!
//! In: mono samples pushed by `process()` (real-time side: no allocation, lock or syscall).
//! Out: the same samples, in order, popped by the worker, plus a count of samples dropped when the
//! worker fell behind (the oldest audio is dropped; the audio thread waits only when the worker
//! says so, below).
//!
//! The ring is a `ringbuf` SPSC ring sized in seconds of host audio. Two things can lose audio,
//! and both are counted:
//! - lag: the worker found more unread audio than it may fall behind by (`max_backlog`): it
//!   drops the oldest part, keeping the newest, so the analysis stays current;
//! - overrun: the worker was not scheduled for the ring's whole length and the ring filled up:
//!   the audio thread cannot touch the read side, so it keeps what is already queued and counts
//!   the samples it could not queue. With a ring a few times longer than the allowed backlog
//!   this only happens when the worker thread is starved for seconds.
//!
//! Resets travel beside the samples: the audio thread records the stream position at which it
//! was reset, and the reader hands out only the audio after the latest reset, flagged, so the
//! worker restarts its analysis exactly where the host reset the plugin.
//!
//! A host rendering faster than real time while it calls the plugin real-time (Ardour's export
//! does: it announces offline processing only per block, which nice-plug does not pass on) is
//! not a live stream: nothing needs dropping, and the host can wait. The reader (the worker, which
//! measures the pace, see `plugin::worker`) then sets `set_writer_waits`: the writer waits for room
//! instead of counting an overrun, and the worker reads with no lag limit. The plugin also makes
//! a new ring waiting until the worker has seen the stream's pace (a live stream cannot fill the
//! ring in that time; a render that starts at activation would). The wait is a spin on
//! the ring's own atomics (no lock, no syscall), and it ends as soon as the reader is gone or clears
//! the flag.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use ringbuf::traits::{Consumer, Observer, Producer, Split};
use ringbuf::{HeapCons, HeapProd, HeapRb};

/// What both ends share besides the samples.
#[derive(Debug, Default)]
struct Shared {
    /// Stream position (samples queued before it) of the latest reset.
    reset_at: AtomicU64,
    /// Bumped after `reset_at` is written; the reader compares it with the last one it saw.
    reset_epoch: AtomicU64,
    /// Samples the audio thread could not queue because the ring was full.
    overrun: AtomicU64,
    /// Set by the reader while the host renders faster than real time: the writer waits for room.
    writer_waits: AtomicBool,
}

/// Creates a ring holding `capacity` samples: the writer goes to the audio thread, the reader to
/// the worker. Allocates: call it off the audio thread (in `activate()`).
pub fn sample_ring(capacity: usize) -> (RingWriter, RingReader) {
    let (producer, consumer) = HeapRb::<f32>::new(capacity.max(1)).split();
    let shared = Arc::new(Shared::default());
    (
        RingWriter {
            producer,
            shared: shared.clone(),
            queued: 0,
        },
        RingReader {
            consumer,
            shared,
            epoch: 0,
            popped: 0,
            overrun_seen: 0,
        },
    )
}

/// The audio thread's end. Every method is real-time safe: no allocation, lock or syscall.
pub struct RingWriter {
    producer: HeapProd<f32>,
    shared: Arc<Shared>,
    /// Samples queued so far (the stream position of the next one).
    queued: u64,
}

impl RingWriter {
    /// Queues `samples`; what does not fit is counted as overrun, never waited for, unless the
    /// reader said the host renders faster than real time (see the module doc).
    #[inline]
    pub fn push(&mut self, samples: &[f32]) {
        let mut pushed = self.producer.push_slice(samples);
        while pushed < samples.len()
            && self.shared.writer_waits.load(Ordering::Acquire)
            && Arc::strong_count(&self.shared) > 1
        {
            std::hint::spin_loop();
            pushed += self.producer.push_slice(&samples[pushed..]);
        }
        self.queued += pushed as u64;
        if pushed < samples.len() {
            self.shared
                .overrun
                .fetch_add((samples.len() - pushed) as u64, Ordering::Relaxed);
        }
    }

    /// Marks a reset: the reader drops everything queued before this point and reports the reset.
    #[inline]
    pub fn mark_reset(&mut self) {
        self.shared.reset_at.store(self.queued, Ordering::Relaxed);
        self.shared.reset_epoch.fetch_add(1, Ordering::Release);
    }

    /// Samples that did not fit so far.
    pub fn overrun(&self) -> u64 {
        self.shared.overrun.load(Ordering::Relaxed)
    }

    pub fn capacity(&self) -> usize {
        self.producer.capacity().get()
    }
}

/// What one `RingReader::read` produced.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Read {
    /// Samples written to the front of the caller's buffer.
    pub len: usize,
    /// The host reset the stream before these samples: start the analysis afresh.
    pub reset: bool,
    /// Samples lost to lag or overrun since the previous read (after any reset).
    pub dropped: u64,
}

/// The worker's end.
pub struct RingReader {
    consumer: HeapCons<f32>,
    shared: Arc<Shared>,
    epoch: u64,
    /// Stream position of the next sample to pop.
    popped: u64,
    /// The writer's overrun count as of the previous read.
    overrun_seen: u64,
}

impl RingReader {
    /// Pops up to `out.len()` samples into `out`. When more than `max_backlog` samples wait, the
    /// oldest are dropped first so that at most `max_backlog` remain.
    pub fn read(&mut self, out: &mut [f32], max_backlog: usize) -> Read {
        let mut read = Read::default();
        let waiting = self.consumer.occupied_len();
        if waiting > max_backlog {
            let skipped = self.consumer.skip(waiting - max_backlog);
            self.popped += skipped as u64;
            read.dropped += skipped as u64;
        }
        let start = self.popped;
        let mut len = self.consumer.pop_slice(out);
        self.popped += len as u64;
        // Any reset placed before the samples just popped is visible now (it was stored before
        // they were queued); one placed after them covers samples still in the ring.
        let epoch = self.shared.reset_epoch.load(Ordering::Acquire);
        if epoch != self.epoch {
            self.epoch = epoch;
            let reset_at = self.shared.reset_at.load(Ordering::Relaxed);
            read.reset = true;
            read.dropped = 0;
            if reset_at >= self.popped {
                // Everything popped predates the reset, and so does what is queued up to it.
                let skipped = self.consumer.skip((reset_at - self.popped) as usize);
                self.popped += skipped as u64;
                len = 0;
            } else {
                let stale = reset_at.saturating_sub(start) as usize;
                out.copy_within(stale..len, 0);
                len -= stale;
            }
        }
        let overrun = self.shared.overrun.load(Ordering::Relaxed);
        read.dropped += overrun - self.overrun_seen;
        self.overrun_seen = overrun;
        read.len = len;
        read
    }

    /// Samples waiting to be read.
    pub fn waiting(&self) -> usize {
        self.consumer.occupied_len()
    }

    /// Samples that have arrived since the ring was made (read, dropped, waiting, or offered
    /// while the ring was full): the stream's clock as the host has advanced it.
    pub fn arrived(&self) -> u64 {
        self.popped
            + self.consumer.occupied_len() as u64
            + self.shared.overrun.load(Ordering::Relaxed)
    }

    /// While `true`, the writer waits for room instead of dropping (the host renders faster than
    /// real time and is not a live stream).
    pub fn set_writer_waits(&self, wait: bool) {
        self.shared.writer_waits.store(wait, Ordering::Release);
    }

    pub fn capacity(&self) -> usize {
        self.consumer.capacity().get()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ramp(from: usize, len: usize) -> Vec<f32> {
        (from..from + len).map(|i| i as f32).collect()
    }

    #[test]
    fn samples_come_out_in_order() {
        let (mut w, mut r) = sample_ring(64);
        w.push(&ramp(0, 10));
        w.push(&ramp(10, 20));
        let mut out = [0.0; 64];
        let read = r.read(&mut out, 64);
        assert_eq!(
            read,
            Read {
                len: 30,
                reset: false,
                dropped: 0
            }
        );
        assert_eq!(&out[..30], &ramp(0, 30)[..]);
    }

    #[test]
    fn a_lagging_reader_drops_the_oldest_audio_and_counts_it() {
        let (mut w, mut r) = sample_ring(100);
        w.push(&ramp(0, 80));
        let mut out = [0.0; 100];
        let read = r.read(&mut out, 30);
        assert_eq!(
            read,
            Read {
                len: 30,
                reset: false,
                dropped: 50
            }
        );
        assert_eq!(&out[..30], &ramp(50, 30)[..], "the newest audio is kept");
    }

    #[test]
    fn arrived_counts_what_the_writer_could_not_queue() {
        // The worker's pace meter reads `arrived`: a ring that filled up must not hide how fast
        // the host delivers.
        let (mut w, mut r) = sample_ring(16);
        w.push(&ramp(0, 40));
        assert_eq!((w.overrun(), r.arrived()), (24, 40));
        let mut out = [0.0; 16];
        r.read(&mut out, 16);
        w.push(&ramp(40, 4));
        assert_eq!(r.arrived(), 44);
    }

    #[test]
    fn a_full_ring_never_blocks_the_writer_and_counts_the_overrun() {
        let (mut w, mut r) = sample_ring(16);
        w.push(&ramp(0, 10));
        w.push(&ramp(10, 10));
        assert_eq!(w.overrun(), 4);
        let mut out = [0.0; 16];
        let read = r.read(&mut out, 16);
        assert_eq!(
            read,
            Read {
                len: 16,
                reset: false,
                dropped: 4
            }
        );
        assert_eq!(
            r.read(&mut out, 16),
            Read::default(),
            "overrun is reported once"
        );
    }

    #[test]
    fn a_writer_told_to_wait_loses_nothing_and_stops_waiting_when_the_reader_goes() {
        let (mut w, mut r) = sample_ring(64);
        r.set_writer_waits(true);
        let total = 50_000usize;
        let reader = std::thread::spawn(move || {
            let mut out = [0.0; 37];
            let mut expected = 0usize;
            while expected < total {
                let read = r.read(&mut out, usize::MAX);
                assert_eq!(read.dropped, 0);
                for &s in &out[..read.len] {
                    assert_eq!(s, expected as f32);
                    expected += 1;
                }
            }
            assert_eq!(r.arrived(), total as u64);
            // Dropped here, with the writer possibly waiting for room.
        });
        let mut next = 0;
        while next < total {
            let n = 100.min(total - next);
            w.push(&ramp(next, n));
            next += n;
        }
        reader.join().unwrap();
        assert_eq!(w.overrun(), 0, "nothing was dropped");
        // The reader is gone: a full ring no longer holds the writer.
        w.push(&ramp(0, 200));
        assert!(w.overrun() > 0);
    }

    #[test]
    fn audio_queued_before_a_reset_is_discarded() {
        let (mut w, mut r) = sample_ring(64);
        w.push(&ramp(0, 10));
        w.mark_reset();
        w.push(&ramp(100, 5));
        let mut out = [0.0; 64];
        let read = r.read(&mut out, 64);
        assert_eq!(
            read,
            Read {
                len: 5,
                reset: true,
                dropped: 0
            }
        );
        assert_eq!(&out[..5], &ramp(100, 5)[..]);
    }

    #[test]
    fn a_reset_after_everything_read_is_still_reported() {
        let (mut w, mut r) = sample_ring(64);
        w.push(&ramp(0, 10));
        let mut out = [0.0; 64];
        assert_eq!(r.read(&mut out, 64).len, 10);
        w.push(&ramp(10, 3));
        w.mark_reset();
        let read = r.read(&mut out, 64);
        assert_eq!(
            read,
            Read {
                len: 0,
                reset: true,
                dropped: 0
            }
        );
        w.push(&ramp(200, 4));
        let read = r.read(&mut out, 64);
        assert_eq!(
            read,
            Read {
                len: 4,
                reset: false,
                dropped: 0
            }
        );
        assert_eq!(&out[..4], &ramp(200, 4)[..]);
    }

    #[test]
    fn concurrent_writer_and_reader_keep_every_sample_in_order() {
        let (mut w, mut r) = sample_ring(4096);
        let total = 200_000usize;
        let writer = std::thread::spawn(move || {
            let mut next = 0;
            while next < total {
                let n = 97.min(total - next);
                // Wait for room so that nothing is dropped: this test checks ordering.
                while w.producer.vacant_len() < n {
                    std::hint::spin_loop();
                }
                w.push(&ramp(next, n));
                next += n;
            }
        });
        let mut out = vec![0.0; 1000];
        let mut expected = 0usize;
        while expected < total {
            let read = r.read(&mut out, usize::MAX);
            assert!(!read.reset);
            assert_eq!(read.dropped, 0);
            for &s in &out[..read.len] {
                assert_eq!(s, expected as f32);
                expected += 1;
            }
        }
        writer.join().unwrap();
    }
}
