//! The plugin built with nice-plug's `assert_process_allocs` (a debug build:
//! `bash crates/clap-test-host/build-alloc-check.sh` writes `target/alloc-check/Moodscope.clap`)
//! in the CLAP test host: any allocation or deallocation inside `process()` (or a `reset()` or
//! parameter change the host sends there) aborts the host process, which fails the test with
//! nice-assert-no-alloc's backtrace on stderr.
//!
//! The runs cover what the audio thread can meet: rates 22.05–192 kHz, blocks of 1, 512, 8192
//! and variable sizes, mono and stereo, repeated activation, resets, host automation, NaN/Inf/
//! denormal/noise input, missing models, an offline render, and a worker that panics (debug
//! builds inject it with `MOODSCOPE_DEBUG_WORKER_PANICS`) and must restart; MIDI CC out on (7-bit,
//! 14-bit, overlapping CC numbers), so that `process()` sends CCs under the check; the bypass
//! automated with "Analyse while bypassed" off, so that pausing and restarting the analysis from
//! `process()` runs under it too.

mod common;

use common::*;

fn tempdir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("moodscope-alloc-")
        .tempdir()
        .expect("temporary folder")
}

#[test]
fn real_time_processing_never_allocates() {
    let plugin = alloc_check_clap();
    let dir = tempdir();
    let (stereo, _) = excerpt(dir.path(), MUSIC, 30.0, 6.0, None, 2);
    let (mono, _) = excerpt(dir.path(), OTHER_MUSIC, 5.0, 6.0, None, 1);
    let runs: [(&std::path::Path, &[&str]); 4] = [
        (
            &stereo,
            &[
                "--block",
                "1",
                "--rate",
                "44100",
                "--seconds",
                "3",
                "--automate",
                "--reset-at",
                "1.5",
                "--set",
                "MIDI out=On",
                "--set",
                "MIDI resolution=14-bit",
            ],
        ),
        (
            &stereo,
            &[
                "--block",
                "512",
                "--rate",
                "48000",
                "--rate",
                "96000",
                "--flaps",
                "4",
                "--automate",
                "--reset-at",
                "2",
                "--faults-at",
                "1",
                "--set",
                "MIDI out=On",
                "--set",
                "Analyse while bypassed=Off",
            ],
        ),
        (
            &stereo,
            &[
                "--block",
                "8192",
                "--rate",
                "192000",
                "--rate",
                "22050",
                "--speed",
                "4",
                "--linger",
                "0.3",
                "--set",
                "MIDI out=On",
                "--set",
                "CC mood 2=20",
            ],
        ),
        (
            &mono,
            &[
                "--channels",
                "1",
                "--block",
                "variable:8192",
                "--rate",
                "44100",
                "--automate",
                "--faults-at",
                "0.5",
                "--flaps",
                "3",
            ],
        ),
    ];
    for (input, args) in runs {
        let log = dir.path().join("windows.csv");
        let report = HostRun::new(&plugin, input)
            .args(args.iter().copied())
            .window_log(&log)
            .run()
            .report();
        assert_clean_passes(&report, &format!("assert_process_allocs, {args:?}"));
    }
}

#[test]
fn offline_rendering_and_missing_models_never_allocate_where_they_must_not() {
    let plugin = alloc_check_clap();
    let dir = tempdir();
    let (stereo, _) = excerpt(dir.path(), MUSIC, 30.0, 4.0, None, 2);
    let log = dir.path().join("offline.csv");
    let report = HostRun::new(&plugin, &stereo)
        .args([
            "--offline",
            "--block",
            "variable:4096",
            "--automate",
            "--reset-at",
            "1",
            "--set",
            "MIDI out=On",
            "--set",
            "MIDI resolution=14-bit",
        ])
        .window_log(&log)
        .run()
        .report();
    assert_clean_passes(&report, "assert_process_allocs, offline");
    let ccs: usize = report.passes.iter().map(|p| p.midi.len()).sum();
    assert!(ccs >= 12, "the render sent {ccs} MIDI messages");
    let windows = read_log(&log);
    assert_sane_moods(&windows, "assert_process_allocs, offline");
    assert!(
        windows.rows.len() >= 3,
        "{} windows after the reset at 1 s of 4 s",
        windows.rows.len()
    );

    let empty = dir.path().join("no-models");
    std::fs::create_dir(&empty).unwrap();
    let report = HostRun::new(&plugin, &stereo)
        .models(&empty)
        .args([
            "--block",
            "256",
            "--rate",
            "48000",
            "--flaps",
            "2",
            "--automate",
        ])
        .run()
        .report();
    assert_clean_passes(&report, "assert_process_allocs, no models");
}

#[test]
fn a_panicking_worker_is_caught_and_restarted() {
    let plugin = alloc_check_clap();
    let dir = tempdir();
    let (stereo, _) = excerpt(dir.path(), MUSIC, 30.0, 6.0, None, 2);
    let log = dir.path().join("windows.csv");
    // The first analysis push panics; the worker reports it, waits 0.5 s and rebuilds. Paced
    // in real time, so that this debug build's worker keeps up even beside other tests.
    let outcome = HostRun::new(&plugin, &stereo)
        .env("MOODSCOPE_DEBUG_WORKER_PANICS", "1")
        .args([
            "--rate", "48000", "--block", "512", "--speed", "1", "--linger", "1.5",
        ])
        .window_log(&log)
        .run();
    let report = outcome.report();
    assert_clean_passes(&report, "a panicking worker");
    assert!(
        outcome
            .stderr
            .contains("injected by MOODSCOPE_DEBUG_WORKER_PANICS"),
        "the panic should be reported in the status; stderr:\n{}",
        outcome.stderr
    );
    let windows = read_log(&log);
    assert_sane_moods(&windows, "after a worker panic");
    assert!(
        windows.rows.len() >= 4,
        "the analysis restarted: {} windows",
        windows.rows.len()
    );
    // The audio that passed while the analysis was down still counts in the published
    // timestamps (host-stream time): the last window ends within a hop of the stream's end.
    let last = windows.rows.last().unwrap();
    assert!(
        last.audio_end_seconds > 6.0 - 0.48 - 0.15 && last.audio_end_seconds <= 6.0 + 1e-6,
        "the last window is stamped {} s into a 6 s stream (window {} of the restarted analysis, \
         {} s into it)",
        last.audio_end_seconds,
        last.window,
        last.end_seconds
    );
}
