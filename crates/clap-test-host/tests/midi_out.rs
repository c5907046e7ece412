//! MIDI CC out (issue 5, part 2): the release CLAP bundle in the test host, with real music; the
//! CCs the plugin sends on its note output port are checked against the moods it published (its
//! window log, full-precision).
//!
//! - Offline render (analysis inside `process()`, deterministic): every CC message is the
//!   published mood of a window (five moods, dominant, presence, valence and arousal), in 7-bit and in 14-bit (MSB/LSB pairs on CC n and n + 32), on the
//!   configured channel and CC numbers, sent only when its value changed, with the block whose
//!   audio completed the window (the resampler's delay, a few ms, may put that in the block
//!   after the window's end), stamped at the sample where the window's audio ended, or at the
//!   block's start when that was in an earlier block.
//! - Real time (the worker publishes; `process()` picks the mood up): every block's CCs bring the
//!   receiver's state to a published mood, in publication order, ending at the last one.
//!
//! Needs `cargo xtask bundle moodscope --release`, the models and Debian's `hyperrogue-music`.

mod common;

use clap_test_host::host::MidiOut;
use clap_test_host::window_log::{WindowLog, WindowRow};
use common::*;

fn tempdir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("moodscope-midi-")
        .tempdir()
        .expect("temporary folder")
}

/// CC outputs, in the plugin's slot order: moods 1–6 (the head's labels, in order), the dominant
/// mood, the music presence, the valence and the arousal.
const SLOTS: usize = 10;
const SLOT_NAMES: [&str; SLOTS] = [
    "CC mood 1",
    "CC mood 2",
    "CC mood 3",
    "CC mood 4",
    "CC mood 5",
    "CC mood 6",
    "CC dominant mood",
    "CC music presence",
    "CC valence",
    "CC arousal",
];
/// The default CCs: moods 1–4 on 20–23, dominant and presence on 24 and 25, moods 5 and 6 on 26
/// and 27, valence and arousal on 28 and 29.
const DEFAULT_CCS: [u8; SLOTS] = [20, 21, 22, 23, 26, 27, 24, 25, 28, 29];

/// What a receiver holds per slot (`None`: never received).
type Held = [Option<u16>; SLOTS];

/// How the plugin is set up for one run, and what it should send.
struct Setup {
    channel: u8,
    fourteen_bit: bool,
    /// CC per slot (`SLOT_NAMES`).
    ccs: [u8; SLOTS],
}

impl Setup {
    fn args(&self) -> Vec<String> {
        let mut args = vec![
            "--set".to_owned(),
            "MIDI out=On".to_owned(),
            "--set".to_owned(),
            format!("MIDI channel={}", self.channel + 1),
            "--set".to_owned(),
            format!(
                "MIDI resolution={}",
                if self.fourteen_bit { "14-bit" } else { "7-bit" }
            ),
        ];
        for (name, cc) in SLOT_NAMES.iter().zip(self.ccs) {
            args.push("--set".to_owned());
            args.push(format!("{name}={cc}"));
        }
        args
    }

    /// The values a window's published mood gives each slot: 0–127 or 0–16383; `None` for the
    /// slots it sends nothing on (a mood the head does not have; valence and arousal of a head
    /// that gives none). The dominant mood is 0 with no music or an uncertain verdict.
    fn values(&self, row: &WindowRow) -> Held {
        let full = if self.fourteen_bit { 16383.0 } else { 127.0 };
        let scale = |v: f32| (v.clamp(0.0, 1.0) * full).round() as u16;
        let dominant = row.dominant.map_or(0, |d| d as u16 + 1);
        let mut values = [None; SLOTS];
        for (value, &p) in values.iter_mut().zip(&row.probabilities) {
            *value = Some(scale(p));
        }
        values[6] = Some(if self.fourteen_bit {
            dominant << 7
        } else {
            dominant
        });
        values[7] = Some(scale(row.presence));
        values[8] = row.valence.map(|v| scale(0.5 * (v + 1.0)));
        values[9] = row.arousal.map(|a| scale(0.5 * (a + 1.0)));
        values
    }

    /// What a receiver holds after `events`.
    /// Checks every message is a CC on the configured channel and CC numbers, and that 14-bit
    /// values come as MSB then LSB.
    fn apply(&self, state: &mut Held, events: &[&MidiOut]) {
        let mut i = 0;
        while i < events.len() {
            let e = events[i];
            assert_eq!(
                e.data[0],
                0xB0 | self.channel,
                "a CC on channel {}: {e:?}",
                self.channel + 1
            );
            assert!(e.data[1] < 128 && e.data[2] < 128, "{e:?}");
            let slot = self
                .ccs
                .iter()
                .position(|&cc| cc == e.data[1])
                .unwrap_or_else(|| panic!("CC {} is none of {:?}: {e:?}", e.data[1], self.ccs));
            if self.fourteen_bit {
                let lsb = events
                    .get(i + 1)
                    .unwrap_or_else(|| panic!("an MSB without its LSB: {e:?}"));
                assert_eq!(
                    (lsb.data[0], lsb.data[1], lsb.block, lsb.time),
                    (e.data[0], e.data[1] + 32, e.block, e.time),
                    "the LSB follows its MSB on CC n + 32"
                );
                state[slot] = Some(((e.data[2] as u16) << 7) | lsb.data[2] as u16);
                i += 2;
            } else {
                state[slot] = Some(e.data[2] as u16);
                i += 1;
            }
        }
    }
}

/// The blocks' CC messages, grouped by block, in order.
fn by_block(midi: &[MidiOut]) -> Vec<Vec<&MidiOut>> {
    let mut groups: Vec<Vec<&MidiOut>> = Vec::new();
    for e in midi {
        assert!(
            (e.time as usize) < e.block_len,
            "event time {} outside its block of {}: {e:?}",
            e.time,
            e.block_len
        );
        assert_eq!(e.port, 0, "{e:?}");
        match groups.last_mut() {
            Some(group) if group[0].block == e.block => group.push(e),
            _ => groups.push(vec![e]),
        }
    }
    groups
}

/// Offline: each block that completes a window whose mood changes a CC value sends exactly those
/// values, at the window's end.
fn check_offline(setup: &Setup, midi: &[MidiOut], log: &WindowLog, rate: f64, what: &str) {
    assert_sane_moods(log, what);
    let groups = by_block(midi);
    let mut state: Held = [None; SLOTS];
    let mut group = groups.iter();
    let mut checked = 0;
    for row in &log.rows {
        let values = setup.values(row);
        let changed: Vec<usize> = (0..SLOTS).filter(|&s| state[s] != values[s]).collect();
        if changed.is_empty() {
            continue;
        }
        let Some(events) = group.next() else {
            // Windows published after the last block (the render's end, in `deactivate()`)
            // are never sent: there is no `process()` after them.
            let last_block_end = midi.last().map_or(0, |e| e.block_start + e.block_len);
            assert!(
                (row.audio_end_seconds * rate).round() as usize >= last_block_end,
                "{what}: window {} (ending at {} s) changed {changed:?} but no CC came",
                row.window,
                row.audio_end_seconds
            );
            continue;
        };
        let mut next = state;
        setup.apply(&mut next, events);
        assert_eq!(
            next, values,
            "{what}: block {} should bring window {}'s mood {values:?}, sent {events:?}",
            events[0].block, row.window
        );
        // Exactly the changed values (with the values check: no unchanged value is resent).
        let per_slot = if setup.fourteen_bit { 2 } else { 1 };
        assert_eq!(events.len(), changed.len() * per_slot, "{what}: {events:?}");
        // The render analyses as it is fed: the CCs come with the block that completed the
        // window (its end plus the resampler's delay), stamped where the window ended.
        let end = (row.audio_end_seconds * rate).round() as i64;
        let e = events[0];
        let (start, len) = (e.block_start as i64, e.block_len as i64);
        let max_delay = (0.05 * rate) as i64;
        assert!(
            end <= start + len && start < end + max_delay,
            "{what}: window {} ends at sample {end}, sent with block {start}..{}",
            row.window,
            start + len
        );
        assert_eq!(
            e.time as i64,
            (end - start).clamp(0, len - 1),
            "{what}: window {} stamped in its block",
            row.window
        );
        assert!(events.iter().all(|x| x.time == e.time));
        state = next;
        checked += 1;
    }
    assert!(
        group.next().is_none(),
        "{what}: more CC blocks than published changes"
    );
    assert!(
        checked >= 15,
        "{what}: only {checked} windows sent CCs ({} published)",
        log.rows.len()
    );
}

#[test]
fn offline_render_sends_each_windows_mood_as_7_bit_ccs() {
    let dir = tempdir();
    let (wav, _) = excerpt(dir.path(), MUSIC, 30.0, 12.0, None, 2);
    let log = dir.path().join("windows.csv");
    let setup = Setup {
        channel: 4,
        fourteen_bit: false,
        ccs: DEFAULT_CCS,
    };
    let report = HostRun::new(&release_clap(), &wav)
        .args(["--offline", "--block", "512"])
        .args(setup.args())
        .window_log(&log)
        .run()
        .report();
    assert_clean_passes(&report, "MIDI out, offline");
    let pass = &report.passes[0];
    let log = read_log(&log);
    check_offline(&setup, &pass.midi, &log, 44_100.0, "7-bit");

    // Part 4: the read-out parameters hold the last published mood (CLAP `get_value`).
    let last = log.rows.last().unwrap();
    let value = |name: &str| {
        report
            .params_after
            .iter()
            .find(|p| p.name == name)
            .unwrap_or_else(|| panic!("no parameter {name}"))
            .value
    };
    assert_eq!(log.labels.len(), 5, "the default readout's five moods");
    for (i, name) in ["Mood 1", "Mood 2", "Mood 3", "Mood 4", "Mood 5"]
        .into_iter()
        .enumerate()
    {
        assert_eq!(value(name), last.probabilities[i] as f64, "{name}");
    }
    assert_eq!(value("Mood 6"), 0.0, "no sixth mood");
    assert_eq!(value("Music presence"), last.presence as f64);
    // −1..1, normalized for the host.
    let valence = last.valence.expect("the default readout gives valence");
    assert_eq!(value("Valence"), (0.5 * (valence + 1.0)) as f64);
}

#[test]
fn offline_render_sends_14_bit_msb_lsb_pairs_on_the_chosen_ccs() {
    let dir = tempdir();
    let (wav, _) = excerpt(dir.path(), OTHER_MUSIC, 10.0, 12.0, None, 2);
    let log = dir.path().join("windows.csv");
    let setup = Setup {
        channel: 15,
        fourteen_bit: true,
        ccs: [1, 7, 11, 3, 12, 13, 31, 0, 2, 4],
    };
    let report = HostRun::new(&release_clap(), &wav)
        .args(["--offline", "--block", "variable:2048", "--rate", "48000"])
        .args(setup.args())
        .window_log(&log)
        .run()
        .report();
    assert_clean_passes(&report, "MIDI out 14-bit, offline");
    let pass = &report.passes[0];
    check_offline(&setup, &pass.midi, &read_log(&log), 48_000.0, "14-bit");
}

#[test]
fn real_time_ccs_follow_the_published_moods() {
    let dir = tempdir();
    let (wav, _) = excerpt(dir.path(), MUSIC, 20.0, 10.0, None, 2);
    let log = dir.path().join("windows.csv");
    let setup = Setup {
        channel: 0,
        fourteen_bit: false,
        ccs: DEFAULT_CCS,
    };
    // Paced at twice real time after a preroll (models load), as a DAW plays; the worker
    // publishes, `process()` sends.
    let report = HostRun::new(&release_clap(), &wav)
        .args([
            "--block",
            "256",
            "--rate",
            "48000",
            "--speed",
            "2",
            "--preroll",
            "3",
        ])
        .args(setup.args())
        .window_log(&log)
        .run()
        .report();
    assert_clean_passes(&report, "MIDI out, real time");
    let log = read_log(&log);
    assert_sane_moods(&log, "real time");
    let pass = &report.passes[0];
    let groups = by_block(&pass.midi);
    assert!(groups.len() >= 5, "{} CC blocks", groups.len());
    let mut state: Held = [None; SLOTS];
    let mut row = 0;
    for events in &groups {
        setup.apply(&mut state, events);
        // The state now is the mood of a window published at or after the previous match.
        let now = state;
        let found = log.rows[row..]
            .iter()
            .position(|r| setup.values(r) == now)
            .unwrap_or_else(|| {
                panic!(
                    "block {}: the CCs {now:?} are no published mood from window {} on",
                    events[0].block, log.rows[row].window
                )
            });
        row += found;
    }
    assert!(
        row >= log.rows.len().saturating_sub(3),
        "the CCs ended at window {row} of {}",
        log.rows.len()
    );
}
