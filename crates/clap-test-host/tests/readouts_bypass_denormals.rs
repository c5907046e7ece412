//! The release CLAP bundle in the test host: what a host reads from the mood read-outs, the
//! bypass, and the floating-point modes `process()` runs in. Real music (Debian's
//! `hyperrogue-music`) and the installed models.
//!
//! - read-outs: `Mood 1` … `Mood 6`, `Valence`, `Arousal`, `Music presence`, not automatable;
//!   after a render, a host asking for their values (`get_value`) gets the last published mood
//!   bit for bit (the window log), and the slots the head has no mood for read 0;
//! - bypass: the host sees `Bypass` as its bypass (`CLAP_PARAM_IS_BYPASS`); bypassed, the audio
//!   passes bit for bit; with "Analyse while bypassed" on (the default) the analysis is exactly
//!   the one without bypass; with it off, nothing is analysed while bypassed, and switching back
//!   on starts the analysis afresh: its windows are `moodscope analyze`'s on the audio from there
//!   on, bit for bit (offline), or all of them with nothing dropped (real time);
//! - denormals: every window an offline render analyses (inside `process()`) and every window
//!   the worker analyses was analysed with denormals flushed (the window log's
//!   `denormals_flushed`), and every `process()` call gave the host its floating-point control
//!   word (MXCSR) back as it was. Nothing here is timed: the cost is `benches/denormals.rs`'s.

mod common;

use std::path::Path;

use clap_test_host::scenario::Report;
use clap_test_host::window_log::WindowLog;
use common::*;
use moodscope::backbone::BackboneKind;
use moodscope::decode::AudioReader;
use moodscope::engine::{Analyser, AnalyserConfig, WindowReading};
use moodscope::models::ModelDir;

fn tempdir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("moodscope-readouts-")
        .tempdir()
        .expect("temporary folder")
}

/// `moodscope analyze`'s windows for `frames[from..]` of a WAV file (its downmix, YAMNet).
fn analyse_from(path: &Path, from: usize) -> Vec<WindowReading> {
    let mut reader = AudioReader::open(path).expect("opening the excerpt");
    let mut mono = Vec::new();
    while reader.read_mono(&mut mono).expect("decoding") {}
    let config = AnalyserConfig::new(reader.sample_rate(), BackboneKind::Yamnet);
    let mut analyser = Analyser::new(config, &ModelDir::new(models())).expect("loading YAMNet");
    let mut readings = Vec::new();
    analyser
        .push(&mono[from..], &mut readings)
        .expect("analysing");
    analyser.finish(&mut readings).expect("analysing");
    readings
}

fn assert_windows_are(log: &WindowLog, readings: &[WindowReading], what: &str) {
    assert_eq!(
        log.rows.len(),
        readings.len(),
        "{what}: {} windows logged, {} analysed by `analyze`",
        log.rows.len(),
        readings.len()
    );
    for (row, reading) in log.rows.iter().zip(readings) {
        assert_window_is_analyzes(row, reading, what);
    }
}

fn param<'a>(report: &'a Report, name: &str) -> &'a clap_test_host::host::ParamDesc {
    report
        .params
        .iter()
        .find(|p| p.name == name)
        .unwrap_or_else(|| panic!("no parameter {name}"))
}

fn param_after<'a>(report: &'a Report, name: &str) -> &'a clap_test_host::host::ParamDesc {
    report
        .params_after
        .iter()
        .find(|p| p.name == name)
        .unwrap_or_else(|| panic!("no parameter {name} after the passes"))
}

#[test]
fn read_outs_give_a_host_that_asks_the_published_mood() {
    let dir = tempdir();
    let (wav, _) = excerpt(dir.path(), MUSIC, 30.0, 10.0, None, 2);
    let log_path = dir.path().join("windows.csv");
    let report = HostRun::new(&release_clap(), &wav)
        .args(["--offline", "--block", "variable:4096"])
        .window_log(&log_path)
        .run()
        .report();
    assert_clean_passes(&report, "read-outs");
    let names = [
        "Mood 1",
        "Mood 2",
        "Mood 3",
        "Mood 4",
        "Mood 5",
        "Mood 6",
        "Valence",
        "Arousal",
        "Music presence",
    ];
    let listed: Vec<&str> = report.params.iter().map(|p| p.name.as_str()).collect();
    assert!(
        listed.ends_with(&names),
        "the read-outs are the last parameters, in this order: {listed:?}"
    );
    for name in names {
        let p = param(&report, name);
        assert!(!p.automatable && !p.bypass, "{name}: a read-out");
        // Before any analysis every read-out is at its neutral value.
        assert_eq!(p.value, p.default, "{name}");
    }
    assert_eq!(param(&report, "Valence").text, "+0.00");
    assert_eq!(param(&report, "Mood 1").text, "0 %");

    // After the render: the last published mood, bit for bit (CLAP values are the normalized
    // f32 values as f64).
    let log = read_log(&log_path);
    let last = log.rows.last().expect("windows");
    assert_eq!(
        log.labels,
        ["Happy", "Sad", "Calm", "Angry", "Scary"],
        "the default readout's five moods"
    );
    for (i, &p) in last.probabilities.iter().enumerate() {
        let readout = param_after(&report, names[i]);
        assert_eq!(
            readout.value as f32, p,
            "{}: a host asking gets {} (text {}), the last mood published is {p}",
            names[i], readout.value, readout.text
        );
        assert_eq!(readout.text, format!("{:.0} %", p * 100.0));
    }
    assert!(
        last.probabilities.iter().any(|&p| p > 0.2),
        "music has a mood: {:?}",
        last.probabilities
    );
    let presence = param_after(&report, "Music presence");
    assert_eq!(presence.value as f32, last.presence);
    assert!(last.presence > 0.5, "music presence {}", last.presence);
    assert_eq!(
        param_after(&report, "Mood 6").value,
        0.0,
        "Mood 6: not in this head"
    );
    // Valence and arousal, −1..1: CLAP hosts see them normalized, the text has the sign.
    for (name, value) in [("Valence", last.valence), ("Arousal", last.arousal)] {
        let value = value.unwrap_or_else(|| panic!("{name}: the default readout gives it"));
        let p = param_after(&report, name);
        assert_eq!(p.value as f32, (value + 1.0) / 2.0, "{name}");
        assert_eq!(p.text, format!("{value:+.2}"), "{name}");
    }
}

#[test]
fn bypass_passes_the_audio_and_analyses_as_set() {
    let dir = tempdir();
    let (wav, audio) = excerpt(dir.path(), MUSIC, 30.0, 14.0, None, 2);
    let block = 512;
    // Bypassed from 4 s to 8 s; the change takes effect with the block that holds the second.
    let resume = (8 * audio.rate as usize) / block * block;
    let bypass_args = ["--set-at", "4:Bypass=On", "--set-at", "8:Bypass=Off"];

    // Offline, analysing while bypassed (the default): exactly the analysis without bypass.
    let log_path = dir.path().join("analysing.csv");
    let report = HostRun::new(&release_clap(), &wav)
        .args(["--offline", "--block", "512"])
        .args(bypass_args)
        .window_log(&log_path)
        .run()
        .report();
    assert_clean_passes(&report, "bypassed, analysing");
    let bypass = param(&report, "Bypass");
    assert!(
        bypass.bypass && bypass.automatable && bypass.stepped,
        "Bypass is the host's bypass (CLAP_PARAM_IS_BYPASS): {bypass:?}"
    );
    assert_eq!(bypass.text, "Off");
    let others: Vec<&str> = report
        .params
        .iter()
        .filter(|p| p.bypass)
        .map(|p| p.name.as_str())
        .collect();
    assert_eq!(others, ["Bypass"], "one bypass parameter");
    let setting = param(&report, "Analyse while bypassed");
    assert!(!setting.automatable && !setting.bypass);
    assert_eq!(
        setting.text, "On",
        "analysing while bypassed is the default"
    );
    let whole = analyse_from(&wav, 0);
    assert_windows_are(
        &read_log(&log_path),
        &whole,
        "bypassed with the analysis on",
    );

    // Offline, not analysing while bypassed: after the bypass the analysis starts afresh.
    let log_path = dir.path().join("paused.csv");
    let outcome = HostRun::new(&release_clap(), &wav)
        .args(["--offline", "--block", "512"])
        .args(["--set", "Analyse while bypassed=Off"])
        .args(bypass_args)
        .window_log(&log_path)
        .run();
    let report = outcome.report();
    assert_clean_passes(&report, "bypassed, paused");
    let log = read_log(&log_path);
    let after = analyse_from(&wav, resume);
    assert_windows_are(&log, &after, "after a bypass that paused the analysis");
    assert!(
        outcome.stderr.contains("Bypassed: the analysis waits"),
        "the status says why nothing is analysed:\n{}",
        tail(&outcome.stderr, 3000)
    );

    // Real time, paced, not analysing while bypassed: the same, with nothing dropped.
    let log_path = dir.path().join("paused-realtime.csv");
    let report = HostRun::new(&release_clap(), &wav)
        .args([
            "--block",
            "512",
            "--speed",
            "4",
            "--preroll",
            "1.5",
            "--linger",
            "1",
        ])
        .args(["--set", "Analyse while bypassed=Off"])
        .args(bypass_args)
        .window_log(&log_path)
        .run()
        .report();
    assert_clean_passes(&report, "bypassed, paused, real time");
    let log = read_log(&log_path);
    assert_sane_moods(&log, "after a bypass, real time");
    // All but the windows the deactivation cut off, every one `analyze`'s.
    assert!(
        log.rows.len() + 2 >= after.len(),
        "{} of {} windows",
        log.rows.len(),
        after.len()
    );
    for (row, reading) in log.rows.iter().zip(&after) {
        assert!(
            same_bits(&row.raw, &reading.probabilities),
            "real time, window {} after the bypass",
            row.window
        );
        assert_eq!(row.audio_end_seconds, row.end_seconds, "nothing dropped");
    }
}

#[test]
fn process_flushes_denormals_and_gives_the_host_its_modes_back() {
    let dir = tempdir();
    let (wav, _) = excerpt(dir.path(), OTHER_MUSIC, 10.0, 6.0, None, 2);
    for (what, args) in [
        ("offline (analysed inside process())", vec!["--offline"]),
        (
            "real time (analysed by the worker)",
            vec!["--speed", "4", "--preroll", "1.5", "--linger", "0.5"],
        ),
    ] {
        let log_path = dir.path().join("windows.csv");
        let report = HostRun::new(&release_clap(), &wav)
            .args(args)
            .args(["--block", "variable:4096", "--faults-at", "1"])
            .window_log(&log_path)
            .run()
            .report();
        assert_clean_passes(&report, what);
        for pass in &report.passes {
            assert_eq!(
                pass.fp_control_changed, 0,
                "{what}: {} of {} process() calls returned with the host's floating-point modes \
                 changed",
                pass.fp_control_changed, pass.blocks
            );
        }
        let log = read_log(&log_path);
        assert!(log.rows.len() >= 8, "{what}: {} windows", log.rows.len());
        for row in &log.rows {
            assert_eq!(
                row.denormals_flushed,
                Some(true),
                "{what}: window {} was analysed with denormals not flushed",
                row.window
            );
        }
    }
}
