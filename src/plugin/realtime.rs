//! THE ONLY REAL-TIME CODE IN MOODSCOPE: what `process()` does on the host's audio thread.
//!
//! In: the host's planar channel buffers (1 or 2 channels, any block size), the latest published
//! mood and the MIDI settings (parameter atomics). Out: nothing changed in the buffers (the audio
//! passes through bit for bit: this code only reads it), their mono downmix queued on the ring for
//! the worker (`Feed`), and the MIDI CCs whose values changed (`MidiOut`).
//!
//! Rules for everything in this file: no allocation, no lock, no syscall (no thread wake-up, no
//! I/O, no logging), no unbounded loop, no waiting. One exception, and only when the host is not
//! playing live: once the worker has measured the host delivering audio faster than real time
//! for over a second (an export that the host did not announce as offline, see `crate::ring`),
//! a full ring makes `Feed::push` spin on the ring's atomics until the worker has read enough,
//! so that such a render loses no window. Playing live, nothing here ever waits.
//!
//! `process()` runs with nice-plug's `assert_process_allocs` in the host tests, which aborts on
//! any allocation here. Reading what the worker published is `shared::Published::read`, which is
//! wait-free.
//!
//! Denormals: `process()` holds a `FlushDenormals` guard for its whole call, which sets the CPU's
//! flush-to-zero and denormals-are-zero modes (x86-64 MXCSR FTZ and DAZ; AArch64 FPCR FZ) and puts
//! back exactly what the host had when it returns. Denormal input is then read as zero by the
//! downmix (and by an offline render's analysis, which runs inside `process()`), so it costs
//! what silence costs. The worker thread sets the same modes once for its whole life
//! (`flush_denormals_on_this_thread`).

use crate::engine::downmix_planar;
use crate::ring::RingWriter;

use super::params::{MidiSettings, MOOD_CCS};
use super::shared::MoodSnapshot;

/// Most channels downmixed (the plugin's layouts are mono and stereo; more are never offered).
pub const MAX_CHANNELS: usize = 8;
/// Samples downmixed per step, on the stack.
const STEP: usize = 256;

/// x86-64 MXCSR: flush-to-zero (denormal results become 0) and denormals-are-zero (denormal
/// operands read as 0).
#[cfg(target_arch = "x86_64")]
const MXCSR_FTZ_DAZ: u32 = (1 << 15) | (1 << 6);
/// AArch64 FPCR: flush-to-zero (both inputs and results, for single and double precision).
#[cfg(target_arch = "aarch64")]
const FPCR_FZ: u64 = 1 << 24;

/// The calling thread's floating-point control word (MXCSR on x86-64, FPCR on AArch64; 0
/// elsewhere).
#[inline]
pub fn fp_control() -> u64 {
    #[cfg(target_arch = "x86_64")]
    {
        let mut mxcsr: u32 = 0;
        // SAFETY: stores the MXCSR register into a local; no other effect.
        unsafe { std::arch::asm!("stmxcsr [{}]", in(reg) &mut mxcsr, options(nostack)) };
        mxcsr as u64
    }
    #[cfg(target_arch = "aarch64")]
    {
        let fpcr: u64;
        // SAFETY: reads the FPCR register; no other effect.
        unsafe { std::arch::asm!("mrs {}, fpcr", out(reg) fpcr, options(nomem, nostack)) };
        fpcr
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    {
        0
    }
}

#[inline]
fn set_fp_control(value: u64) {
    #[cfg(target_arch = "x86_64")]
    {
        let mxcsr = value as u32;
        // SAFETY: loads MXCSR from a local; only this thread's floating-point modes change.
        unsafe { std::arch::asm!("ldmxcsr [{}]", in(reg) &mxcsr, options(nostack)) };
    }
    #[cfg(target_arch = "aarch64")]
    {
        // SAFETY: writes FPCR; only this thread's floating-point modes change.
        unsafe { std::arch::asm!("msr fpcr, {}", in(reg) value, options(nomem, nostack)) };
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    let _ = value;
}

/// `fp_control` with denormals flushed.
#[inline]
fn with_denormals_flushed(control: u64) -> u64 {
    #[cfg(target_arch = "x86_64")]
    {
        control | MXCSR_FTZ_DAZ as u64
    }
    #[cfg(target_arch = "aarch64")]
    {
        control | FPCR_FZ
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    {
        control
    }
}

/// Whether the calling thread flushes denormals (inputs and results) to zero. Always `false` on
/// targets other than x86-64 and AArch64.
#[inline]
pub fn denormals_flushed() -> bool {
    let control = fp_control();
    cfg!(any(target_arch = "x86_64", target_arch = "aarch64"))
        && with_denormals_flushed(control) == control
}

/// Flush-to-zero and denormals-are-zero for as long as the guard lives, on this thread only; the
/// previous control word (whatever the host had set) is restored when it is dropped. Two register
/// accesses each way, no syscall: for `process()`.
pub struct FlushDenormals {
    saved: u64,
    /// The modes belong to the thread that set them: the guard must not move to another.
    _not_send: std::marker::PhantomData<*const ()>,
}

impl FlushDenormals {
    #[inline]
    pub fn new() -> Self {
        let saved = fp_control();
        let flushed = with_denormals_flushed(saved);
        if flushed != saved {
            set_fp_control(flushed);
        }
        Self {
            saved,
            _not_send: std::marker::PhantomData,
        }
    }
}

impl Default for FlushDenormals {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for FlushDenormals {
    #[inline]
    fn drop(&mut self) {
        if fp_control() != self.saved {
            set_fp_control(self.saved);
        }
    }
}

/// Flush-to-zero and denormals-are-zero for the rest of this thread's life: for threads Moodscope
/// owns (the worker), never for a host's thread.
pub fn flush_denormals_on_this_thread() {
    set_fp_control(with_denormals_flushed(fp_control()));
}

/// The audio thread's end of the analysis: downmix and queue.
pub struct Feed {
    writer: RingWriter,
}

impl Feed {
    pub fn new(writer: RingWriter) -> Self {
        Self { writer }
    }

    /// Downmixes one block of planar channels and queues it. Live, never waits: if the ring is
    /// full the samples that do not fit are counted. In a render faster than real time that the
    /// worker has found out, and in a stream's first moments before it has looked (a live
    /// stream cannot fill the ring by then), it waits for room instead (see `ring`).
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

/// What each CC output carries: the moods (label order), then the dominant mood, presence,
/// valence and arousal.
pub const CC_SLOTS: usize = MOOD_CCS + 4;
/// Slots of the dominant mood, the music presence, the valence and the arousal.
pub const DOMINANT_SLOT: usize = MOOD_CCS;
pub const PRESENCE_SLOT: usize = MOOD_CCS + 1;
pub const VALENCE_SLOT: usize = MOOD_CCS + 2;
pub const AROUSAL_SLOT: usize = MOOD_CCS + 3;

/// Where one CC output goes, after checking the settings (`cc_plan`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CcRoute {
    /// Sent on this CC (and on CC + 32 for the LSB in 14-bit mode).
    Cc(u8),
    /// Not sent: 14-bit needs a CC in 0–31 (the LSB goes on CC + 32).
    NotAnMsb(u8),
    /// Not sent: its CC (or its LSB's) is already used by an earlier slot.
    Clash { cc: u8, with: usize },
}

/// Routes every slot: an earlier slot keeps a CC that two share, so one bad number silences one
/// output, never the others. Allocation-free (the audio thread calls it every block); the worker
/// calls it too, to explain what is not sent.
pub fn cc_plan(settings: &MidiSettings) -> [CcRoute; CC_SLOTS] {
    let mut used: [Option<usize>; 128] = [None; 128];
    let mut ccs = [0u8; CC_SLOTS];
    ccs[..MOOD_CCS].copy_from_slice(&settings.mood_ccs);
    ccs[DOMINANT_SLOT] = settings.dominant_cc;
    ccs[PRESENCE_SLOT] = settings.presence_cc;
    ccs[VALENCE_SLOT] = settings.valence_cc;
    ccs[AROUSAL_SLOT] = settings.arousal_cc;
    let mut plan = [CcRoute::Cc(0); CC_SLOTS];
    for (slot, &cc) in ccs.iter().enumerate() {
        let cc = cc.min(127);
        let lsb = settings.fourteen_bit.then_some(cc + 32);
        plan[slot] = if settings.fourteen_bit && cc >= 32 {
            CcRoute::NotAnMsb(cc)
        } else if let Some(with) = used[cc as usize].or(lsb.and_then(|l| used[l as usize])) {
            CcRoute::Clash { cc, with }
        } else {
            used[cc as usize] = Some(slot);
            if let Some(l) = lsb {
                used[l as usize] = Some(slot);
            }
            CcRoute::Cc(cc)
        };
    }
    plan
}

/// One MIDI control change to send.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CcMessage {
    /// Sample offset in the current block.
    pub timing: u32,
    /// 0–15.
    pub channel: u8,
    pub cc: u8,
    /// 0–127.
    pub value: u8,
}

/// The value a slot sends: 0–127, or 0–16383 in 14-bit mode; `None` when the head has no such
/// mood or does not read valence and arousal. Valence and arousal (−1..1) map to the full range,
/// neutral in the middle (64 of 127).
#[inline]
pub fn cc_value(snapshot: &MoodSnapshot, slot: usize, fourteen_bit: bool) -> Option<u16> {
    let full = if fourteen_bit { 16383.0 } else { 127.0 };
    let scale = |v: f32| {
        if v.is_finite() {
            (v.clamp(0.0, 1.0) * full).round() as u16
        } else {
            0
        }
    };
    match slot {
        DOMINANT_SLOT => {
            // 0: no music, or uncertain; n: the n-th label. In 14-bit mode on the MSB, LSB 0.
            let n = snapshot.dominant.map_or(0, |d| (d + 1).min(127)) as u16;
            Some(if fourteen_bit { n << 7 } else { n })
        }
        PRESENCE_SLOT => Some(scale(snapshot.presence)),
        VALENCE_SLOT => snapshot.valence.map(|v| scale(0.5 * (v + 1.0))),
        AROUSAL_SLOT => snapshot.arousal.map(|a| scale(0.5 * (a + 1.0))),
        mood => snapshot.probabilities().get(mood).map(|&p| scale(p)),
    }
}

/// The audio thread's MIDI CC output: each block, the CCs whose values changed since they were
/// last sent, stamped with where in the block the mood they carry was complete.
pub struct MidiOut {
    sample_rate: f64,
    /// Samples of the host stream since the last reset, up to the current block's start.
    position: u64,
    /// The settings `last` was sent with; any change sends everything afresh.
    settings: Option<MidiSettings>,
    /// Where each slot goes under `settings` (worked out when they change, not every block).
    plan: [CcRoute; CC_SLOTS],
    /// Value last sent per slot.
    last: [Option<u16>; CC_SLOTS],
    /// Sequence of the last snapshot looked at.
    sequence: u64,
}

impl MidiOut {
    pub fn new(sample_rate: f32) -> Self {
        Self {
            sample_rate: sample_rate as f64,
            position: 0,
            settings: None,
            plan: [CcRoute::Cc(0); CC_SLOTS],
            last: [None; CC_SLOTS],
            sequence: 0,
        }
    }

    /// The host reset the plugin: the stream's clock starts again (the values sent stand).
    #[inline]
    pub fn reset(&mut self) {
        self.position = 0;
    }

    /// One block of `block_len` samples has been fed; `snapshot` is the latest mood. Calls
    /// `send` for each CC to send (at most two per slot), in slot order, MSB before LSB; `send`
    /// returns whether the host took it (a value the host refused is sent again next block).
    ///
    /// Timing: a mood published for a window that ends inside this block (an offline render
    /// analyses as it is fed) is stamped at that window's end; a mood that was completed earlier
    /// (the worker publishes after the audio went by) at the block's first sample.
    #[inline]
    pub fn block(
        &mut self,
        settings: &MidiSettings,
        snapshot: &MoodSnapshot,
        block_len: usize,
        mut send: impl FnMut(CcMessage) -> bool,
    ) {
        let start = self.position;
        self.position += block_len as u64;
        if !settings.enabled {
            self.settings = None;
            return;
        }
        if self.settings != Some(*settings) {
            self.settings = Some(*settings);
            self.plan = cc_plan(settings);
            self.last = [None; CC_SLOTS];
        }
        if snapshot.sequence == 0 || block_len == 0 {
            // Nothing published yet (or a block with no sample to stamp).
            return;
        }
        let timing = if snapshot.sequence != self.sequence {
            let end = (snapshot.audio_end_seconds * self.sample_rate).round();
            let offset = end - start as f64;
            offset.clamp(0.0, (block_len - 1) as f64) as u32
        } else {
            0
        };
        self.sequence = snapshot.sequence;
        for (slot, route) in self.plan.iter().enumerate() {
            let CcRoute::Cc(cc) = *route else { continue };
            let Some(value) = cc_value(snapshot, slot, settings.fourteen_bit) else {
                continue;
            };
            if self.last[slot] == Some(value) {
                continue;
            }
            let channel = settings.channel.min(15);
            let sent = if settings.fourteen_bit {
                // Both halves, even if the first is refused: a receiver pairs them itself.
                let msb = send(CcMessage {
                    timing,
                    channel,
                    cc,
                    value: (value >> 7) as u8,
                });
                let lsb = send(CcMessage {
                    timing,
                    channel,
                    cc: cc + 32,
                    value: (value & 0x7f) as u8,
                });
                msb && lsb
            } else {
                send(CcMessage {
                    timing,
                    channel,
                    cc,
                    value: value.min(127) as u8,
                })
            };
            self.last[slot] = if sent { Some(value) } else { None };
        }
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

    fn settings(fourteen_bit: bool) -> MidiSettings {
        MidiSettings {
            enabled: true,
            channel: 4,
            fourteen_bit,
            mood_ccs: [20, 21, 22, 23, 26, 27],
            dominant_cc: 24,
            presence_cc: 25,
            valence_cc: 28,
            arousal_cc: 29,
        }
    }

    fn snapshot(sequence: u64, p: [f32; 4], dominant: Option<usize>, end: f64) -> MoodSnapshot {
        let mut s = MoodSnapshot {
            sequence,
            labels: 4,
            dominant,
            presence: 0.5,
            audio_end_seconds: end,
            ..MoodSnapshot::default()
        };
        s.probabilities[..4].copy_from_slice(&p);
        s
    }

    fn run(out: &mut MidiOut, s: &MidiSettings, snap: &MoodSnapshot, len: usize) -> Vec<CcMessage> {
        let mut sent = Vec::new();
        out.block(s, snap, len, |m| {
            sent.push(m);
            true
        });
        sent
    }

    #[test]
    fn changed_values_are_sent_once_at_the_windows_end() {
        let mut out = MidiOut::new(1000.0);
        let s = settings(false);
        let first = snapshot(1, [0.1, 0.6, 0.2, 0.1], Some(1), 0.25);
        assert!(run(&mut out, &s, &MoodSnapshot::default(), 100).is_empty());
        let sent = run(&mut out, &s, &first, 200);
        // Block 100..300; the window ended at sample 250.
        assert_eq!(
            sent.iter().map(|m| (m.cc, m.value)).collect::<Vec<_>>(),
            [(20, 13), (21, 76), (22, 25), (23, 13), (24, 2), (25, 64)]
        );
        assert!(sent.iter().all(|m| m.timing == 150 && m.channel == 4));
        // Same snapshot again: nothing; a new one with one mood changed: that mood only, at the
        // block's start since its window ended before it.
        assert!(run(&mut out, &s, &first, 50).is_empty());
        let second = snapshot(2, [0.1, 0.6, 0.3, 0.1], Some(1), 0.3);
        let sent = run(&mut out, &s, &second, 50);
        assert_eq!(
            sent,
            [CcMessage {
                timing: 0,
                channel: 4,
                cc: 22,
                value: 38
            }]
        );
        // Settings change: everything again.
        let s2 = MidiSettings { channel: 0, ..s };
        assert_eq!(run(&mut out, &s2, &second, 10).len(), 6);
        // Off: nothing, and on again: everything.
        let off = MidiSettings {
            enabled: false,
            ..s2
        };
        assert!(run(&mut out, &off, &second, 10).is_empty());
        assert_eq!(run(&mut out, &s2, &second, 10).len(), 6);
    }

    #[test]
    fn five_moods_valence_arousal_and_an_uncertain_verdict_go_out() {
        let mut out = MidiOut::new(1000.0);
        let s = settings(false);
        let mut snap = MoodSnapshot {
            sequence: 1,
            labels: 5,
            dominant: None,
            uncertain: true,
            presence: 1.0,
            valence: Some(-1.0),
            arousal: Some(0.5),
            ..MoodSnapshot::default()
        };
        snap.probabilities[..5].copy_from_slice(&[0.1, 0.2, 0.3, 0.25, 0.15]);
        let sent = run(&mut out, &s, &snap, 10);
        assert_eq!(
            sent.iter().map(|m| (m.cc, m.value)).collect::<Vec<_>>(),
            // Moods 1–5 (the fifth on CC 26), dominant 0 (uncertain), presence, valence −1 → 0,
            // arousal 0.5 → 95.
            [
                (20, 13),
                (21, 25),
                (22, 38),
                (23, 32),
                (26, 19),
                (24, 0),
                (25, 127),
                (28, 0),
                (29, 95)
            ]
        );
    }

    #[test]
    fn fourteen_bit_values_are_msb_lsb_pairs() {
        let mut out = MidiOut::new(1000.0);
        let s = settings(true);
        let snap = snapshot(1, [1.0, 0.0, 0.3, 0.7], None, 0.0);
        let sent = run(&mut out, &s, &snap, 64);
        assert_eq!(sent.len(), 12);
        let v = |i: usize| ((sent[2 * i].value as u16) << 7) | sent[2 * i + 1].value as u16;
        for (i, cc) in [20u8, 21, 22, 23, 24, 25].into_iter().enumerate() {
            assert_eq!((sent[2 * i].cc, sent[2 * i + 1].cc), (cc, cc + 32));
        }
        assert_eq!(
            (0..6).map(v).collect::<Vec<_>>(),
            [16383, 0, 4915, 11468, 0, 8192]
        );
    }

    #[test]
    fn overlapping_or_impossible_ccs_silence_only_themselves() {
        let mut s = settings(false);
        s.mood_ccs = [20, 20, 22, 23, 26, 27];
        let plan = cc_plan(&s);
        assert_eq!(plan[1], CcRoute::Clash { cc: 20, with: 0 });
        assert_eq!(plan[0], CcRoute::Cc(20));
        let mut out = MidiOut::new(1000.0);
        let snap = snapshot(1, [0.1, 0.6, 0.2, 0.1], Some(1), 0.0);
        let sent = run(&mut out, &s, &snap, 10);
        assert_eq!(
            sent.iter().map(|m| m.cc).collect::<Vec<_>>(),
            [20, 22, 23, 24, 25]
        );
        // 14-bit: the LSB of CC 2 is CC 34; a CC of 40 cannot carry an MSB.
        let mut s = settings(true);
        s.mood_ccs = [2, 34, 40, 23, 26, 27];
        let plan = cc_plan(&s);
        assert_eq!(plan[1], CcRoute::NotAnMsb(34));
        assert_eq!(plan[2], CcRoute::NotAnMsb(40));
        s.mood_ccs = [2, 3, 4, 23, 26, 27];
        s.presence_cc = 2;
        assert_eq!(
            cc_plan(&s)[PRESENCE_SLOT],
            CcRoute::Clash { cc: 2, with: 0 }
        );
    }
}
