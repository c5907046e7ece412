//! The release plugin (`target/bundled/Moodscope.clap`, built by `cargo xtask bundle moodscope
//! --release`) in a real CLAP host (clack-host, `clap-test-host`), with real music (Debian's
//! `hyperrogue-music`) and the installed models (`cargo xtask install-models`).
//!
//! Each test plays a scenario in its own `clap-test-host` process (own models folder and window
//! log) and checks:
//! - passthrough: every output sample has the input's bits, at 22.05–192 kHz, blocks of 1, 512,
//!   8192 and variable sizes, mono and stereo, through rate changes, resets, repeated
//!   activation and host automation; the reported latency is 0;
//! - parameters: names, ranges, defaults, units; state saved and restored into a fresh instance
//!   gives the same parameters and the same state, and the restored settings are the ones used;
//! - published moods (the plugin's window log): probabilities sum to 1, music presence is high
//!   on music and falls on silence, the dominant mood clears on silence;
//! - offline render (CLAP render extension → nice-plug `ProcessMode::Offline`): every window's
//!   values are bit for bit those of `moodscope analyze` on the same audio;
//! - NaN, ±Inf, denormals, full-scale noise and absurd values in the input pass untouched and
//!   do not poison the analysis;
//! - with the model files missing or corrupt the plugin loads and passes audio.

mod common;

use std::path::Path;

use clap_test_host::window_log::{WindowLog, WindowRow};
use common::*;
use moodscope::backbone::BackboneKind;
use moodscope::decode::AudioReader;
use moodscope::engine::{Analyser, AnalyserConfig, Smoother, WindowReading};
use moodscope::models::ModelDir;

fn tempdir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("moodscope-host-")
        .tempdir()
        .expect("temporary folder")
}

#[test]
fn a_missing_bundle_is_reported_with_the_command_that_builds_it() {
    let dir = tempdir();
    let missing = dir.path().join("Nothing.clap");
    let wav = dir.path().join("x.wav");
    clap_test_host::audio::write_wav_f32(
        &wav,
        &clap_test_host::audio::Audio::silence(44_100, 2, 0.1),
    )
    .unwrap();
    let outcome = HostRun::new(&missing, &wav).run();
    assert!(!outcome.status.success());
    assert!(
        outcome
            .stderr
            .contains("cargo xtask bundle moodscope --release"),
        "stderr: {}",
        outcome.stderr
    );
}

// ---------------------------------------------------------------------------------------------
// Passthrough at host rates and block sizes

#[test]
fn stereo_music_in_single_sample_blocks_passes_bit_exact() {
    let dir = tempdir();
    let (wav, _) = excerpt(dir.path(), MUSIC, 30.0, 6.0, None, 2);
    for rate in ["44100", "22050"] {
        let report = HostRun::new(&release_clap(), &wav)
            .args(["--rate", rate, "--block", "1"])
            .run()
            .report();
        assert_clean_passes(&report, &format!("block 1 at {rate} Hz"));
        let pass = &report.passes[0];
        assert_eq!(pass.blocks, pass.frames, "one process() call per sample");
        assert_eq!(report.ports, (2, 2));
    }
}

#[test]
fn rate_changes_and_repeated_activation_pass_bit_exact() {
    let dir = tempdir();
    let (wav, _) = excerpt(dir.path(), MUSIC, 10.0, 8.0, None, 2);
    let log_path = dir.path().join("windows.csv");
    // One instance, re-activated at each rate in turn (the audio is resampled to it), after
    // eight quick activate/deactivate cycles, half of them with a burst of audio. Each pass
    // starts 1.5 s after its activation (the worker loads the model meanwhile) and is paced at
    // 6x real time, so that the worker keeps up.
    let report = HostRun::new(&release_clap(), &wav)
        .args([
            "--rate", "48000", "--rate", "22050", "--rate", "96000", "--rate", "192000", "--rate",
            "44100",
        ])
        .args([
            "--block",
            "512",
            "--flaps",
            "8",
            "--speed",
            "6",
            "--preroll",
            "1.5",
            "--linger",
            "0.5",
        ])
        .window_log(&log_path)
        .run()
        .report();
    assert_clean_passes(&report, "rate changes");
    assert_eq!(report.flaps.len(), 8);
    let rates: Vec<u32> = report.passes.iter().map(|p| p.rate).collect();
    assert_eq!(rates, [48_000, 22_050, 96_000, 192_000, 44_100]);
    for pass in &report.passes {
        let expected = 8.0 * pass.rate as f64;
        assert!(
            (pass.frames as f64 - expected).abs() < 0.01 * expected,
            "{} frames at {} Hz",
            pass.frames,
            pass.rate
        );
    }
    // After all those re-initialisations the analysis of the last activation (44.1 kHz, the
    // file's own rate) starts cleanly from the stream's start: its windows are those of
    // `moodscope analyze` on the same audio, bit for bit (the real-time path analyses the
    // same samples, only in other chunks), except the last ones, cut off by the deactivation.
    let log = read_log(&log_path);
    assert_sane_moods(&log, "after rate changes");
    let (_, readings, _) = analyze_like_the_cli(&wav);
    assert!(
        log.rows.len() + 2 >= readings.len(),
        "{} of {} windows analysed in real time",
        log.rows.len(),
        readings.len()
    );
    for (row, reading) in log.rows.iter().zip(&readings) {
        assert_window_is_analyzes(row, reading, "after rate changes, real time");
        assert_eq!(
            row.audio_end_seconds, row.end_seconds,
            "no audio dropped at 6x real time"
        );
    }
}

#[test]
fn mono_music_in_8192_sample_blocks_passes_bit_exact() {
    let dir = tempdir();
    let (wav, _) = excerpt(dir.path(), OTHER_MUSIC, 5.0, 10.0, None, 1);
    let report = HostRun::new(&release_clap(), &wav)
        .args([
            "--channels",
            "1",
            "--block",
            "8192",
            "--rate",
            "22050",
            "--rate",
            "96000",
        ])
        .run()
        .report();
    assert_clean_passes(&report, "mono, 8192-sample blocks");
    assert_eq!(report.ports, (1, 1), "a mono host gets the mono layout");
}

#[test]
fn variable_blocks_with_automation_and_a_reset_pass_bit_exact() {
    let dir = tempdir();
    let (wav, _) = excerpt(dir.path(), MUSIC, 40.0, 10.0, None, 2);
    for channels in ["2", "1"] {
        let report = HostRun::new(&release_clap(), &wav)
            .args([
                "--channels",
                channels,
                "--block",
                "variable:8192",
                "--rate",
                "48000",
                "--rate",
                "44100",
            ])
            .args(["--automate", "--reset-at", "4.0"])
            .run()
            .report();
        assert_clean_passes(&report, &format!("{channels} channel(s), variable blocks"));
        for pass in &report.passes {
            assert!(
                pass.blocks > pass.frames / 8192,
                "variable sizes, not all maximal"
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Parameters and state

#[test]
fn parameters_have_sensible_ranges_units_and_defaults() {
    let dir = tempdir();
    let (wav, _) = excerpt(dir.path(), MUSIC, 0.0, 0.5, None, 2);
    let report = HostRun::new(&release_clap(), &wav).run().report();
    assert_eq!(report.plugin_id, "org.moodscope.moodscope");
    assert_eq!(report.plugin_name, "Moodscope");
    let by_name = |name: &str| {
        report
            .params
            .iter()
            .find(|p| p.name == name)
            .unwrap_or_else(|| panic!("no parameter {name}: {:?}", report.params))
    };
    let names: Vec<&str> = report.params.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "Smoothing",
            "Sensitivity",
            "Window hop",
            "Backbone",
            "Mood set",
            "Head",
            "Bypass",
            "Analyse while bypassed",
            "MIDI out",
            "MIDI channel",
            "MIDI resolution",
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
            "OSC out",
            "OSC port",
            "Mood 1",
            "Mood 2",
            "Mood 3",
            "Mood 4",
            "Mood 5",
            "Mood 6",
            "Valence",
            "Arousal",
            "Music presence",
        ]
    );
    // The host's bypass is automatable (hosts automate it); the bypass setting, the outputs'
    // settings and the mood read-outs are not.
    assert!(by_name("Bypass").automatable && by_name("Bypass").bypass);
    for p in &report.params[7..] {
        assert!(!p.automatable, "{} is not automatable", p.name);
    }
    assert_eq!(by_name("MIDI out").text, "Off");
    assert_eq!(by_name("OSC out").text, "Off");
    assert_eq!(by_name("MIDI channel").text, "1");
    assert_eq!(by_name("OSC port").text, "9000");

    // nice-plug shows continuous parameters to CLAP hosts normalized (0–1, skewed for the
    // smoothing); the plugin's texts say what the values mean.
    let smoothing = by_name("Smoothing");
    assert_eq!((smoothing.min, smoothing.max), (0.0, 1.0));
    assert_eq!(
        (
            smoothing.min_text.as_str(),
            smoothing.text.as_str(),
            smoothing.max_text.as_str()
        ),
        ("0.00 s", "2.00 s", "30.00 s")
    );
    assert_eq!(smoothing.default, smoothing.value);
    assert!(smoothing.automatable && !smoothing.stepped);

    let sensitivity = by_name("Sensitivity");
    assert_eq!(
        (sensitivity.min, sensitivity.max, sensitivity.default),
        (0.0, 1.0, 0.5)
    );
    assert_eq!(
        (
            sensitivity.min_text.as_str(),
            sensitivity.text.as_str(),
            sensitivity.max_text.as_str()
        ),
        ("0 %", "50 %", "100 %")
    );
    assert!(sensitivity.automatable);

    for (name, steps, text) in [
        ("Window hop", 3.0, "Backbone's own"),
        ("Backbone", 1.0, "YAMNet"),
        ("Mood set", 2.0, "Five (with Calm)"),
        ("Head", 2.0, "Recommended"),
    ] {
        let p = by_name(name);
        assert!(p.stepped, "{name} is a choice");
        assert!(
            !p.automatable,
            "{name} rebuilds the analysis: not automatable"
        );
        assert_eq!((p.min, p.max, p.default), (0.0, steps, 0.0), "{name}");
        assert_eq!(p.text, text, "{name}");
    }
    assert_eq!(by_name("Window hop").max_text, "0.96 s");
    assert_eq!(by_name("Backbone").max_text, "VGGish");
    assert_eq!(by_name("Mood set").max_text, "Six (AudioSet)");
    assert_eq!(by_name("Head").max_text, "Head file");
}

#[test]
fn state_round_trips_and_the_restored_settings_are_used() {
    let dir = tempdir();
    let (wav, _) = excerpt(dir.path(), MUSIC, 20.0, 6.0, None, 2);
    let log = dir.path().join("windows.csv");
    // Set, save, load into a fresh instance (which must report the same parameters and save the
    // same state), then play through the fresh one.
    let report = HostRun::new(&release_clap(), &wav)
        .args([
            "--set",
            "Smoothing=7.5 s",
            "--set",
            "Sensitivity=80 %",
            "--set",
            "Window hop=0.96 s",
        ])
        .args(["--state-roundtrip", "--speed", "8", "--linger", "0.5"])
        .window_log(&log)
        .run()
        .report();
    let state = report.state.as_ref().expect("state report");
    assert!(state.bytes > 0);
    assert!(
        state.params_restored,
        "the fresh instance's parameters differ from the saved ones"
    );
    assert!(
        state.resaved_identical,
        "the fresh instance saves a different state than it loaded"
    );
    let value = |name: &str| {
        report
            .params
            .iter()
            .find(|p| p.name == name)
            .unwrap()
            .clone()
    };
    assert_eq!(value("Smoothing").text, "7.50 s");
    assert!((value("Sensitivity").value - 0.8).abs() < 1e-6);
    assert_eq!(value("Sensitivity").text, "80 %");
    assert_eq!(value("Window hop").text, "0.96 s");
    assert_eq!(value("Window hop").value, 3.0);
    assert_clean_passes(&report, "restored instance");

    // The restored hop (0.96 s) is what the analysis uses.
    let log = read_log(&log);
    assert!(log.rows.len() >= 4, "{} windows", log.rows.len());
    for pair in log.rows.windows(2) {
        let hop = pair[1].start_seconds - pair[0].start_seconds;
        assert!(
            (hop - 0.96).abs() < 1e-9,
            "hop {hop} s, want the restored 0.96 s"
        );
    }
    // And the restored smoothing: 7.5 s with sensitivity 0.8 (presence threshold 0.12).
    check_smoothing(&log, 7.5, 0.8, 0.96);
}

/// The published values are the raw readings smoothed with these settings (replayed with the
/// engine's own smoother: equal bit for bit).
fn check_smoothing(log: &WindowLog, time_constant: f32, sensitivity: f32, hop_seconds: f64) {
    // The default readout's decision groups (Happy with Calm, Angry with Scary).
    let analyser = Analyser::new(
        AnalyserConfig::new(44_100, BackboneKind::Yamnet),
        &ModelDir::new(models()),
    )
    .expect("loading YAMNet");
    let mut smoother = Smoother::new(moodscope::plugin::params::smoothing_settings(
        time_constant,
        sensitivity,
    ))
    .with_groups(analyser.groups());
    for row in &log.rows {
        let state = smoother.update(&reading_of(row), hop_seconds);
        assert!(
            same_bits(&state.probabilities, &row.probabilities) && state.presence.to_bits() == row.presence.to_bits(),
            "window {}: published {:?} presence {}, smoothing {time_constant} s gives {:?} presence {}",
            row.window,
            row.probabilities,
            row.presence,
            state.probabilities,
            state.presence
        );
        assert_eq!(
            (
                state.dominant,
                state.uncertain,
                state.valence,
                state.arousal
            ),
            (row.dominant, row.uncertain, row.valence, row.arousal),
            "window {}",
            row.window
        );
    }
}

fn reading_of(row: &WindowRow) -> WindowReading {
    WindowReading {
        index: row.window,
        start_seconds: row.start_seconds,
        end_seconds: row.end_seconds,
        probabilities: row.raw.clone(),
        valence: row.raw_valence,
        arousal: row.raw_arousal,
        presence: row.raw_presence,
    }
}

// ---------------------------------------------------------------------------------------------
// Published moods

#[test]
fn published_moods_are_sane_and_presence_falls_on_silence() {
    let dir = tempdir();
    let (wav, _) = excerpt(dir.path(), MUSIC, 30.0, 12.0, None, 2);
    let log_path = dir.path().join("windows.csv");
    // Real time, paced at 3x (so the worker never falls behind) after a 1.5 s pre-roll (the
    // model loads), then 8 s of digital silence.
    let report = HostRun::new(&release_clap(), &wav)
        .args([
            "--rate",
            "48000",
            "--block",
            "512",
            "--then-silence",
            "8",
            "--speed",
            "3",
        ])
        .args(["--preroll", "1.5", "--linger", "1.0"])
        .window_log(&log_path)
        .run()
        .report();
    assert_clean_passes(&report, "music then silence");
    let log = read_log(&log_path);
    assert_sane_moods(&log, "music then silence");
    // 20 s of audio, a window every 0.48 s: all but the last (cut off by the deactivation).
    assert!(
        log.rows.len() >= 38,
        "{} windows for 20 s of audio",
        log.rows.len()
    );
    for row in &log.rows {
        assert!(
            (row.audio_end_seconds - row.end_seconds).abs() < 1e-9,
            "window {}: audio was dropped at 3x real time ({} s vs {} s)",
            row.window,
            row.audio_end_seconds,
            row.end_seconds
        );
    }
    let music: Vec<&WindowRow> = log.rows.iter().filter(|r| r.end_seconds <= 12.0).collect();
    let silence: Vec<&WindowRow> = log
        .rows
        .iter()
        .filter(|r| r.start_seconds >= 12.1)
        .collect();
    assert!(
        music.len() >= 20 && silence.len() >= 10,
        "{} music, {} silence windows",
        music.len(),
        silence.len()
    );
    let mean_presence = music.iter().map(|r| r.raw_presence).sum::<f32>() / music.len() as f32;
    assert!(
        mean_presence > 0.6,
        "mean music presence {mean_presence} on music"
    );
    let last_music = music.last().unwrap();
    assert!(
        last_music.presence > 0.5,
        "smoothed presence {} after 12 s of music",
        last_music.presence
    );
    // Music: a mood, or "uncertain" (music whose mood is not clear enough to name; this excerpt
    // is uncertain throughout at the default sensitivity), never "no music".
    assert!(
        last_music.dominant.is_some() || last_music.uncertain,
        "after 12 s of music the verdict is \"no music\""
    );

    for row in &silence {
        assert!(
            row.raw_presence < 0.05,
            "window {} of silence: presence {}",
            row.window,
            row.raw_presence
        );
    }
    // Smoothed presence falls through the silence and the mood relaxes to "no music".
    for pair in silence.windows(2) {
        assert!(
            pair[1].presence < pair[0].presence,
            "presence must fall on silence"
        );
    }
    let last = log.rows.last().unwrap();
    assert!(
        last.presence < 0.1,
        "smoothed presence {} after 7 s of silence",
        last.presence
    );
    assert_eq!(last.dominant, None, "no dominant mood on silence");
    assert!(
        last.probabilities.iter().all(|p| (p - 0.25).abs() < 0.1),
        "moods relax: {:?}",
        last.probabilities
    );
    // What the window log says is what was published: default smoothing (2 s, 50 %).
    check_smoothing(&log, 2.0, 0.5, 0.48);
    let published = report.published.expect("published");
    assert_eq!(published.windows, log.rows.len());
}

// ---------------------------------------------------------------------------------------------
// Offline render = `moodscope analyze`

/// `moodscope analyze`'s reading of a file, computed as the CLI does (its decoder and downmix,
/// 8-second blocks, two backbone threads, YAMNet and its default head).
fn analyze_like_the_cli(path: &Path) -> (Vec<String>, Vec<WindowReading>, u32) {
    let mut reader = AudioReader::open(path).expect("opening the excerpt");
    let rate = reader.sample_rate();
    let config = AnalyserConfig::new(rate, BackboneKind::Yamnet);
    let mut analyser = Analyser::new(config, &ModelDir::new(models())).expect("loading YAMNet");
    analyser.set_threads(2);
    let block_len = rate as usize * 8;
    let mut block = Vec::new();
    let mut readings = Vec::new();
    loop {
        let more = reader.read_mono(&mut block).expect("decoding");
        if block.len() >= block_len || !more {
            analyser.push(&block, &mut readings).expect("analysing");
            block.clear();
        }
        if !more {
            break;
        }
    }
    analyser.finish(&mut readings).expect("analysing");
    (analyser.labels().to_vec(), readings, rate)
}

/// The `moodscope` binary's CSV for `path`, when a build of it newer than the sources exists
/// (`cargo test --workspace --features moodscope/cli` builds one); `None` otherwise.
/// One CSV row of `moodscope analyze`: start, end, probabilities, presence.
type CliRow = (f64, f64, Vec<f32>, f32);

fn run_the_cli(path: &Path) -> Option<Vec<CliRow>> {
    let root = workspace_root();
    let newest_source =
        newest_mtime(&root.join("src"))?.max(newest_mtime(&root.join("Cargo.lock"))?);
    let binary = ["debug", "release"]
        .iter()
        .map(|p| target_dir().join(p).join("moodscope"))
        .filter(|b| b.is_file() && newest_mtime(b).is_some_and(|t| t >= newest_source))
        .max_by_key(|b| newest_mtime(b))?;
    let output = std::process::Command::new(&binary)
        .args(["analyze", "--format", "csv", "--models"])
        .arg(models())
        .arg(path)
        .output()
        .expect("running moodscope analyze");
    assert!(
        output.status.success(),
        "{} analyze failed: {}",
        binary.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    let text = String::from_utf8(output.stdout).unwrap();
    // file,start,end,<labels>,valence,arousal,presence,dominant,mood,confidence: the labels are
    // the columns between `end` and `valence` (none of the names here has a comma).
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().expect("a CSV header").split(',').collect();
    let column = |name: &str| {
        header
            .iter()
            .position(|h| *h == name)
            .unwrap_or_else(|| panic!("no column {name} in {header:?}"))
    };
    let (first_label, presence) = (column("end") + 1, column("presence"));
    let labels = first_label..column("valence");
    assert!(!labels.is_empty(), "no mood columns in {header:?}");
    let mut rows = Vec::new();
    for line in lines {
        let f: Vec<&str> = line.split(',').collect();
        assert_eq!(f.len(), header.len(), "unexpected CSV line {line}");
        let probabilities = f[labels.clone()]
            .iter()
            .map(|v| v.parse::<f32>().unwrap())
            .collect();
        rows.push((
            f[1].parse().unwrap(),
            f[2].parse().unwrap(),
            probabilities,
            f[presence].parse().unwrap(),
        ));
    }
    eprintln!("compared with {} as well", binary.display());
    Some(rows)
}

fn newest_mtime(path: &Path) -> Option<std::time::SystemTime> {
    let meta = std::fs::metadata(path).ok()?;
    if meta.is_dir() {
        std::fs::read_dir(path)
            .ok()?
            .flatten()
            .filter_map(|e| newest_mtime(&e.path()))
            .max()
    } else {
        meta.modified().ok()
    }
}

fn assert_offline_equals_analyze(wav: &Path, log: &WindowLog, what: &str) {
    let (labels, readings, _) = analyze_like_the_cli(wav);
    assert_eq!(log.labels, labels, "{what}: labels");
    assert_eq!(
        log.rows.len(),
        readings.len(),
        "{what}: the render must analyse every window analyze does"
    );
    for (row, reading) in log.rows.iter().zip(&readings) {
        assert_window_is_analyzes(row, reading, what);
        assert_eq!(
            row.audio_end_seconds, row.end_seconds,
            "{what}: an offline render drops nothing"
        );
    }
    if let Some(cli) = run_the_cli(wav) {
        assert_eq!(
            cli.len(),
            log.rows.len(),
            "{what}: the moodscope binary's window count"
        );
        for (row, (start, end, probabilities, presence)) in log.rows.iter().zip(&cli) {
            assert!(
                (row.start_seconds - start).abs() < 6e-4 && (row.end_seconds - end).abs() < 6e-4,
                "{what}"
            );
            assert!(
                same_bits(&row.raw, probabilities)
                    && row.raw_presence.to_bits() == presence.to_bits(),
                "{what}: window {} differs from the moodscope binary's",
                row.window
            );
        }
    }
}

#[test]
fn offline_render_equals_moodscope_analyze_bit_for_bit() {
    let dir = tempdir();
    // The file's own rate (44.1 kHz stereo), variable blocks with automation: every window.
    let (wav, _) = excerpt(dir.path(), MUSIC, 40.0, 15.0, None, 2);
    let log_path = dir.path().join("offline.csv");
    let report = HostRun::new(&release_clap(), &wav)
        .args(["--offline", "--block", "variable:8192", "--automate"])
        .window_log(&log_path)
        .run()
        .report();
    assert!(report.offline);
    assert_clean_passes(&report, "offline render");
    let log = read_log(&log_path);
    assert_sane_moods(&log, "offline render");
    assert_offline_equals_analyze(&wav, &log, "44.1 kHz stereo, variable blocks");

    // Another rate, mono, single-sample blocks.
    let (wav, _) = excerpt(dir.path(), OTHER_MUSIC, 10.0, 4.0, Some(48_000), 1);
    let log_path = dir.path().join("offline-48k.csv");
    let report = HostRun::new(&release_clap(), &wav)
        .args([
            "--offline",
            "--channels",
            "1",
            "--rate",
            "48000",
            "--block",
            "1",
        ])
        .window_log(&log_path)
        .run()
        .report();
    assert_clean_passes(&report, "offline render, 48 kHz mono");
    let log = read_log(&log_path);
    assert_offline_equals_analyze(&wav, &log, "48 kHz mono, 1-sample blocks");
    // Smoothing: the published values are the default smoother's (no automation here).
    check_smoothing(&log, 2.0, 0.5, 0.48);
}

/// A host that renders faster than real time while it calls the plugin in real-time mode (as
/// Ardour's export does), from the first block after activation: the models are still loading
/// when the audio starts to pour in, and the worker has not yet looked at the pace. The audio
/// thread waits for room until the pace is known (`plugin::worker::SETTLE_SECONDS`), and the
/// worker keeps measuring it while the models load (`plugin::worker::SessionLoad`), so the host
/// is made to wait instead of the first seconds being dropped (before, at 100x real time, the
/// first 3 to 4 s of the stream were lost, at 50x on a loaded machine as well, and unpaced up to
/// 54 of 60 s). Every window is then `analyze`'s, bit for bit, up to the last complete one before
/// the stream stops (a live stream has no end to flush).
#[test]
fn a_render_faster_than_real_time_from_the_first_block_loses_nothing() {
    let dir = tempdir();
    let (wav, _) = excerpt(dir.path(), MUSIC, 10.0, 30.0, None, 2);
    let (labels, readings, _) = analyze_like_the_cli(&wav);
    for speed in [None, Some("100"), Some("30")] {
        let log_path = dir
            .path()
            .join(format!("fast-{}.csv", speed.unwrap_or("unpaced")));
        let pace = speed.map(|s| vec!["--speed", s]).unwrap_or_default();
        let report = HostRun::new(&release_clap(), &wav)
            .args(pace)
            .args(["--linger", "1.0"])
            .window_log(&log_path)
            .run()
            .report();
        let what = match speed {
            Some(speed) => format!("real-time mode at {speed}x real time, no preroll"),
            None => "real-time mode as fast as the host goes, no preroll".to_owned(),
        };
        assert!(!report.offline);
        assert_clean_passes(&report, &what);
        let log = read_log(&log_path);
        assert_eq!(log.labels, labels, "{what}: labels");
        let dropped: Vec<_> = log
            .rows
            .iter()
            .filter(|r| r.audio_end_seconds != r.end_seconds)
            .map(|r| (r.window, r.end_seconds, r.audio_end_seconds))
            .collect();
        assert!(
            dropped.is_empty(),
            "{what}: audio was dropped before {} windows; the first (window, its end on the \
             stream, its end in the audio): {:?}",
            dropped.len(),
            dropped.first()
        );
        // All but the windows the stream's end leaves in the resampler and the front end.
        assert!(
            log.rows.len() + 4 >= readings.len(),
            "{what}: {} windows analysed, `analyze` has {}",
            log.rows.len(),
            readings.len()
        );
        for (row, reading) in log.rows.iter().zip(&readings) {
            assert_window_is_analyzes(row, reading, &what);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Bad input

#[test]
fn nan_inf_denormals_and_noise_pass_untouched_and_do_not_poison_the_analysis() {
    let dir = tempdir();
    // 64 s: the faults, then six time constants of the key tracker, then windows to compare
    // (HyperRogue's "Hell" is long enough; "Caves" is 58 s).
    let (wav, _) = excerpt(dir.path(), "hr3-hell.ogg", 30.0, 64.0, None, 2);
    // Offline (deterministic, every window): the same music with and without five seconds of
    // faults from 3 s on (1 s each of NaN, ±Inf, denormals, full-scale noise, ±1e30).
    let clean_log = dir.path().join("clean.csv");
    HostRun::new(&release_clap(), &wav)
        .args(["--offline"])
        .window_log(&clean_log)
        .run()
        .report();
    let faulty_log = dir.path().join("faulty.csv");
    let report = HostRun::new(&release_clap(), &wav)
        .args(["--offline", "--faults-at", "3"])
        .window_log(&faulty_log)
        .run()
        .report();
    assert_eq!(report.faults.len(), 5, "{:?}", report.faults);
    assert_clean_passes(&report, "faulty input, offline");
    let clean = read_log(&clean_log);
    let faulty = read_log(&faulty_log);
    assert_sane_moods(&faulty, "faulty input");
    assert_eq!(clean.rows.len(), faulty.rows.len());
    // Windows ending before the faults (with 0.1 s for the resampler's look-ahead) are untouched;
    // windows starting six time constants of the readout's key tracker (8 s: its running
    // pitch-class profile is the longest memory in the analysis; the resampler's and STFT's are
    // far shorter) after them read the music as before: the faults left no lasting trace.
    let faults_end = 8.0 + 6.0 * 8.0;
    let mut compared = 0;
    for (c, f) in clean.rows.iter().zip(&faulty.rows) {
        if c.end_seconds < 3.0 - 0.1 {
            assert!(
                same_bits(&c.raw, &f.raw),
                "window {} before the faults changed",
                c.window
            );
        } else if c.start_seconds >= faults_end {
            compared += 1;
            let diff = c
                .raw
                .iter()
                .zip(&f.raw)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0f32, f32::max);
            assert!(
                diff < 1e-3,
                "window {} after the faults: moods {:?} vs clean {:?}",
                c.window,
                f.raw,
                c.raw
            );
            assert!(
                (c.raw_presence - f.raw_presence).abs() < 1e-3,
                "window {} presence",
                c.window
            );
        }
    }
    assert!(compared >= 10, "{compared} windows after the faults");

    // Real time too, at other rates and block sizes: the audio passes untouched.
    let report = HostRun::new(&release_clap(), &wav)
        .args([
            "--faults-at",
            "2",
            "--rate",
            "96000",
            "--rate",
            "22050",
            "--block",
            "variable:8192",
            "--seconds",
            "16",
        ])
        .run()
        .report();
    assert_clean_passes(&report, "faulty input, real time");
    let report = HostRun::new(&release_clap(), &wav)
        .args([
            "--faults-at",
            "2",
            "--channels",
            "1",
            "--block",
            "1",
            "--seconds",
            "8",
        ])
        .run()
        .report();
    assert_clean_passes(&report, "faulty input, mono, 1-sample blocks");
}

// ---------------------------------------------------------------------------------------------
// Missing or corrupt models

#[test]
fn without_usable_models_the_plugin_loads_and_passes_audio() {
    let dir = tempdir();
    let (wav, _) = excerpt(dir.path(), MUSIC, 30.0, 4.0, None, 2);
    let empty = dir.path().join("no-models");
    std::fs::create_dir(&empty).unwrap();
    let corrupt = dir.path().join("corrupt-models");
    std::fs::create_dir(&corrupt).unwrap();
    std::fs::write(corrupt.join("yamnet.onnx"), b"not an onnx model").unwrap();
    std::fs::copy(
        models().join("yamnet_class_map.csv"),
        corrupt.join("yamnet_class_map.csv"),
    )
    .unwrap();
    for (what, models) in [
        ("no model files", &empty),
        ("a corrupt model file", &corrupt),
    ] {
        for offline in [false, true] {
            let log = dir.path().join(format!("log-{offline}.csv"));
            let mut run = HostRun::new(&release_clap(), &wav)
                .models(models)
                .window_log(&log)
                .args([
                    "--rate", "44100", "--rate", "48000", "--flaps", "2", "--linger", "0.3",
                ]);
            if offline {
                run = run.arg("--offline");
            }
            let outcome = run.run();
            let report = outcome.report();
            assert_clean_passes(&report, &format!("{what} (offline: {offline})"));
            assert!(!log.exists(), "{what}: no analysis, no window log");
            // The problem is reported (nice-plug's log, stderr) with what to do about it.
            assert!(
                outcome.stderr.contains("cargo xtask install-models"),
                "{what}: the status should say how to install the models; stderr:\n{}",
                outcome.stderr
            );
        }
    }
}
