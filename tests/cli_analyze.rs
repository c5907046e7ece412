//! `moodscope analyze` and `moodscope features` end to end: the built binary, the installed YAMNet
//! model (`cargo xtask install-models`), real music (Debian `hyperrogue-music`) and files that are
//! broken in every way a user's folder can hold.
//!
//! Needs the models in `models/` (or `MOODSCOPE_MODELS`) and `apt-get install hyperrogue-music`;
//! a missing piece fails the test with what to install.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

mod common;

use common::{music, write_wav};

fn models() -> PathBuf {
    common::installed_models("yamnet.onnx")
}

fn moodscope(args: &[&std::ffi::OsStr]) -> Output {
    // A library database of its own for each run (under a fresh XDG_DATA_HOME): every run
    // analyses, none reads what another kept (tests/cli_library.rs tests the database).
    let data = tempfile::tempdir().unwrap();
    Command::new(env!("CARGO_BIN_EXE_moodscope"))
        .args(args)
        .env("XDG_DATA_HOME", data.path())
        .output()
        .expect("run moodscope")
}

fn os(s: &str) -> &std::ffi::OsStr {
    std::ffi::OsStr::new(s)
}

/// 6 s of a C major chord at 44.1 kHz as a float WAV: quick to analyse (real music, Ogg Vorbis,
/// is in `real_music_gives_a_timeline_of_moods`).
fn music_excerpt(dir: &Path) -> PathBuf {
    let path = dir.join("chord.wav");
    let rate = 44_100;
    let samples: Vec<f32> = (0..rate * 6)
        .map(|n| {
            let t = n as f32 / rate as f32;
            0.2 * ((2.0 * std::f32::consts::PI * 261.6 * t).sin()
                + (2.0 * std::f32::consts::PI * 329.6 * t).sin()
                + (2.0 * std::f32::consts::PI * 392.0 * t).sin())
        })
        .collect();
    write_wav(&path, rate, 1, &samples);
    path
}

#[derive(Debug)]
struct Row {
    file: String,
    start: f64,
    end: f64,
    moods: Vec<f64>,
    valence: Option<f64>,
    arousal: Option<f64>,
    presence: f64,
    dominant: String,
    /// The plugin's verdict at the window's end: a label, "uncertain" or "none".
    mood: String,
    confidence: f64,
}

/// The CSV's mood labels (between `end` and `valence` in the header) and its rows.
fn parse_csv_with_labels(stdout: &[u8]) -> (Vec<String>, Vec<Row>) {
    let text = String::from_utf8(stdout.to_vec()).expect("utf-8 CSV");
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().expect("a header").split(',').collect();
    // file, start, end, <labels>, then six columns.
    let k = header.len() - 9;
    assert_eq!(header[..3], ["file", "start", "end"]);
    assert_eq!(
        header[3 + k..],
        [
            "valence",
            "arousal",
            "presence",
            "dominant",
            "mood",
            "confidence"
        ]
    );
    let labels: Vec<String> = header[3..3 + k].iter().map(|s| s.to_string()).collect();
    let rows = lines
        .map(|line| {
            let f: Vec<&str> = line
                .rsplitn(k + 9 + 1, ',')
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect();
            let num = |s: &str| {
                s.parse::<f64>()
                    .unwrap_or_else(|e| panic!("{s}: {e} in {line}"))
            };
            let optional = |s: &str| (!s.is_empty()).then(|| num(s));
            Row {
                file: f[0].to_string(),
                start: num(f[1]),
                end: num(f[2]),
                moods: f[3..3 + k].iter().map(|s| num(s)).collect(),
                valence: optional(f[3 + k]),
                arousal: optional(f[4 + k]),
                presence: num(f[5 + k]),
                dominant: f[6 + k].to_string(),
                mood: f[7 + k].to_string(),
                confidence: num(f[8 + k]),
            }
        })
        .collect();
    (labels, rows)
}

fn parse_csv(stdout: &[u8]) -> Vec<Row> {
    parse_csv_with_labels(stdout).1
}

#[test]
fn real_music_gives_a_timeline_of_moods() {
    let models = models();
    let piece = music("hr3-crossroads.ogg");
    let out = moodscope(&[
        os("analyze"),
        os("--models"),
        models.as_os_str(),
        piece.as_os_str(),
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "analyze failed: {stderr}");
    let (labels, rows) = parse_csv_with_labels(&out.stdout);
    // The default readout: five moods.
    assert_eq!(labels, ["happy", "sad", "calm", "angry", "scary"]);
    // The piece is 48 s long; YAMNet windows are 0.975 s every 0.48 s.
    assert!(rows.len() > 95, "{} windows", rows.len());
    for (i, row) in rows.iter().enumerate() {
        assert_eq!(row.file, piece.to_string_lossy());
        assert!(
            (row.start - i as f64 * 0.48).abs() < 1e-3,
            "row {i} starts at {}",
            row.start
        );
        assert!((row.end - row.start - 0.975).abs() < 1e-3);
        let sum: f64 = row.moods.iter().sum();
        assert!(
            (sum - 1.0).abs() < 1e-4,
            "row {i}: probabilities sum to {sum}"
        );
        assert!(row.moods.iter().all(|p| (0.0..=1.0).contains(p)));
        // Below the presence threshold (0.3) a window has no dominant mood: "none". Otherwise
        // the mood first (Happy + Calm, the pleasant mood, together; Angry + Scary, the tense
        // quadrant, together), then the larger of the pair.
        let groups = [
            row.moods[0] + row.moods[2],
            row.moods[1],
            row.moods[3] + row.moods[4],
        ];
        let argmax = |v: &[f64]| (0..v.len()).max_by(|&a, &b| v[a].total_cmp(&v[b])).unwrap();
        let expected = match argmax(&groups) {
            _ if row.presence < 0.3 => "none",
            0 if row.moods[2] > row.moods[0] => "calm",
            0 => "happy",
            1 => "sad",
            _ if row.moods[4] > row.moods[3] => "scary",
            _ => "angry",
        };
        assert_eq!(row.dominant, expected, "row {i}: {row:?}");
        // Arousal is the calibrated arousal axis, which splits the pleasant mood into Happy
        // (energetic) and Calm: Happy's share of Happy + Calm is the arousal probability.
        // Valence is the valence axis, a probability mapped to -1..1.
        let (valence, arousal) = (row.valence.unwrap(), row.arousal.unwrap());
        let m = &row.moods;
        let pleasant = m[0] + m[2];
        assert!(pleasant > 1e-6, "row {i}: {row:?}");
        assert!(
            ((1.0 + arousal) / 2.0 - m[0] / pleasant).abs() < 1e-4,
            "row {i}: {row:?}"
        );
        assert!((-1.0..=1.0).contains(&valence), "row {i}: {row:?}");
        assert!(
            [
                "happy",
                "sad",
                "calm",
                "angry",
                "scary",
                "uncertain",
                "none"
            ]
            .contains(&row.mood.as_str()),
            "row {i}: {row:?}"
        );
        assert!((0.0..=1.0).contains(&row.confidence));
    }
    // Two threads pipeline the analysis (the front end cuts the next block's windows while the
    // backbone embeds this one's); one thread does not: the same numbers, byte for byte.
    let one_thread = moodscope(&[
        os("analyze"),
        os("--threads"),
        os("1"),
        os("--models"),
        models.as_os_str(),
        piece.as_os_str(),
    ]);
    assert!(one_thread.status.success());
    assert!(
        one_thread.stdout == out.stdout,
        "--threads 1 and --threads 2 disagree"
    );
    let presence = rows.iter().map(|r| r.presence).sum::<f64>() / rows.len() as f64;
    assert!(
        presence > 0.5,
        "music presence on music averages {presence}"
    );
    assert!(
        stderr.contains("mood: ") && stderr.contains("mean") && stderr.contains("valence"),
        "no summary: {stderr}"
    );
}

#[test]
fn json_output_to_a_file_with_a_summary() {
    let models = models();
    let dir = tempfile::tempdir().unwrap();
    // Real music (a held synthetic chord is not music to YAMNet: no mood to summarise).
    let wav = music("hr3-crossroads.ogg");
    let json = dir.path().join("moods.json");
    let out = moodscope(&[
        os("analyze"),
        os("--models"),
        models.as_os_str(),
        os("--format"),
        os("json"),
        os("--hop"),
        os("0.96"),
        os("--out"),
        json.as_os_str(),
        wav.as_os_str(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.stdout.is_empty(), "--out writes the file, not stdout");
    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(doc["backbone"], "yamnet");
    assert_eq!(
        doc["labels"],
        serde_json::json!(["Happy", "Sad", "Calm", "Angry", "Scary"])
    );
    assert_eq!(doc["readout"], "yamnet-emotify-v2");
    let file = &doc["files"][0];
    let windows = file["windows"].as_array().expect("windows");
    // Windows 0.96 s apart, as asked, each 0.975 s long (96 frames of 10 ms, 25 ms wide).
    assert!(windows.len() > 20, "{file}");
    for (i, w) in windows.iter().enumerate() {
        let start = w["start"].as_f64().unwrap();
        assert!((start - i as f64 * 0.96).abs() < 1e-6, "{w}");
        assert!(
            (w["end"].as_f64().unwrap() - start - 0.975).abs() < 1e-6,
            "{w}"
        );
    }
    assert!(file["sample_rate"].as_u64().unwrap() > 0);
    for w in windows {
        assert!(
            w["valence"].as_f64().is_some() && w["arousal"].as_f64().is_some(),
            "{w}"
        );
        assert!(w["mood"].is_string(), "{w}");
    }
    let summary = &file["summary"];
    assert!(summary["mood"].is_string(), "{summary}");
    assert!(summary["valence"].as_f64().is_some(), "{summary}");
    assert!(summary["arousal"].as_f64().is_some(), "{summary}");
    assert_eq!(summary["dominant_share"].as_array().unwrap().len(), 5);
}

#[test]
fn every_mood_set_and_the_uncalibrated_readout_follow_their_labels() {
    let models = models();
    let dir = tempfile::tempdir().unwrap();
    let wav = music_excerpt(dir.path());
    for (args, labels) in [
        (vec!["--moods", "4"], vec!["happy", "sad", "angry", "scary"]),
        (
            vec!["--moods", "6"],
            vec!["happy", "sad", "calm", "exciting", "angry", "scary"],
        ),
        (
            vec!["--uncalibrated"],
            vec!["happy", "sad", "calm", "angry", "scary"],
        ),
    ] {
        let mut all = vec![os("analyze"), os("--models"), models.as_os_str()];
        all.extend(args.iter().map(|a| os(a)));
        all.push(wav.as_os_str());
        let out = moodscope(&all);
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let (header, rows) = parse_csv_with_labels(&out.stdout);
        assert_eq!(header, labels, "{args:?}");
        for row in &rows {
            assert!(
                (row.moods.iter().sum::<f64>() - 1.0).abs() < 1e-4,
                "{row:?}"
            );
            // The raw readouts place their moods on the circumplex for valence and arousal.
            assert!(row.valence.is_some() && row.arousal.is_some(), "{row:?}");
            let dominant = row.dominant.as_str();
            assert!(dominant == "none" || labels.contains(&dominant), "{row:?}");
        }
    }
}

#[test]
fn a_missing_calibration_is_one_clear_line() {
    let dir = tempfile::tempdir().unwrap();
    let wav = music_excerpt(dir.path());
    let partial = dir.path().join("models");
    std::fs::create_dir(&partial).unwrap();
    std::fs::copy(models().join("yamnet.onnx"), partial.join("yamnet.onnx")).unwrap();
    let out = moodscope(&[
        os("analyze"),
        os("--models"),
        partial.as_os_str(),
        wav.as_os_str(),
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("calibration/yamnet-emotify.json")
            && stderr.contains("cargo xtask install-models"),
        "{stderr}"
    );
    // Without the calibration, the uncalibrated readout still works.
    let out = moodscope(&[
        os("analyze"),
        os("--uncalibrated"),
        os("--models"),
        partial.as_os_str(),
        wav.as_os_str(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_batch_reports_each_bad_file_and_goes_on() {
    let models = models();
    let dir = tempfile::tempdir().unwrap();
    let good = music_excerpt(dir.path());
    let missing = dir.path().join("missing.wav");
    let text = dir.path().join("notes.mp3");
    std::fs::write(&text, "these are not the sounds you are looking for\n").unwrap();
    let empty = dir.path().join("empty.flac");
    std::fs::write(&empty, b"").unwrap();
    let truncated = dir.path().join("truncated.ogg");
    let ogg = std::fs::read(music("hr3-crossroads.ogg")).unwrap();
    std::fs::write(&truncated, &ogg[..3000]).unwrap();
    let silent = dir.path().join("silent.wav");
    write_wav(&silent, 48_000, 2, &vec![0.0; 48_000 * 2 * 3]);
    let nan = dir.path().join("nan.wav");
    let mut samples: Vec<f32> = (0..48_000 * 3)
        .map(|n| 0.3 * (n as f32 * 0.05).sin())
        .collect();
    for s in samples.iter_mut().skip(1000).step_by(7) {
        *s = f32::NAN;
    }
    write_wav(&nan, 48_000, 1, &samples);
    let short = dir.path().join("short.wav");
    write_wav(&short, 16_000, 1, &vec![0.1; 8_000]);

    let files = [
        &missing, &text, &empty, &truncated, &silent, &nan, &short, &good,
    ];
    let mut args = vec![os("analyze"), os("--models"), models.as_os_str()];
    args.extend(files.iter().map(|f| f.as_os_str()));
    let out = moodscope(&args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(1),
        "some files failed: exit 1\n{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    let line_for = |path: &Path| {
        let lines: Vec<&str> = stderr
            .lines()
            .filter(|l| l.starts_with(&format!("moodscope: {}:", path.display())))
            .collect();
        assert_eq!(
            lines.len(),
            1,
            "one error line for {}:\n{stderr}",
            path.display()
        );
        lines[0].to_lowercase()
    };
    assert!(line_for(&missing).contains("cannot open"));
    assert!(line_for(&text).contains("not a supported audio file"));
    assert_eq!(
        line_for(&empty),
        format!(
            "moodscope: {}: the file is empty (0 bytes)",
            empty.display()
        )
        .to_lowercase()
    );
    assert!(line_for(&truncated).contains("truncated"));
    assert!(line_for(&silent).contains("silent"));
    assert!(line_for(&nan).contains("nan or infinite"));
    assert!(line_for(&short).contains("shorter than one window"));

    // The good file (and the NaN one, whose timeline is kept) were analysed all the same.
    let rows = parse_csv(&out.stdout);
    let good_rows = rows
        .iter()
        .filter(|r| r.file == good.to_string_lossy())
        .count();
    assert_eq!(good_rows, 1 + (599 - 96) / 48, "windows of the good file");
    let nan_rows: Vec<&Row> = rows
        .iter()
        .filter(|r| r.file == nan.to_string_lossy())
        .collect();
    assert!(!nan_rows.is_empty());
    assert!(nan_rows
        .iter()
        .all(|r| r.moods.iter().all(|p| p.is_finite()) && r.presence.is_finite()));
}

#[test]
fn missing_or_corrupt_models_are_one_clear_line() {
    let dir = tempfile::tempdir().unwrap();
    let wav = music_excerpt(dir.path());
    let empty_models = dir.path().join("no-models");
    std::fs::create_dir(&empty_models).unwrap();
    let out = moodscope(&[
        os("analyze"),
        os("--models"),
        empty_models.as_os_str(),
        wav.as_os_str(),
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("not installed") && stderr.contains("cargo xtask install-models"),
        "{stderr}"
    );

    let corrupt_models = dir.path().join("corrupt-models");
    std::fs::create_dir(&corrupt_models).unwrap();
    let real = std::fs::read(models().join("yamnet.onnx")).unwrap();
    std::fs::write(corrupt_models.join("yamnet.onnx"), &real[..real.len() / 3]).unwrap();
    // Everything else in place: only the network is broken.
    std::fs::create_dir(corrupt_models.join("calibration")).unwrap();
    std::fs::copy(
        models().join("calibration/yamnet-emotify.json"),
        corrupt_models.join("calibration/yamnet-emotify.json"),
    )
    .unwrap();
    let out = moodscope(&[
        os("analyze"),
        os("--models"),
        corrupt_models.as_os_str(),
        wav.as_os_str(),
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("corrupt") && stderr.contains("yamnet.onnx"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn features_writes_the_log_mel_patches_as_npy() {
    let dir = tempfile::tempdir().unwrap();
    let wav = music_excerpt(dir.path());
    let npy = dir.path().join("patches.npy");
    let out = moodscope(&[
        os("features"),
        wav.as_os_str(),
        os("--out"),
        npy.as_os_str(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let patches: tract_onnx::prelude::tract_ndarray::Array3<f32> =
        ndarray_npy::read_npy(&npy).expect("a float32 [N, 96, 64] .npy");
    assert_eq!(patches.shape()[1..], [96, 64]);
    assert!(patches.shape()[0] >= 6);
    assert!(patches.iter().all(|v| v.is_finite()));
}
