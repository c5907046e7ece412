//! `moodscope-train train` and `moodscope-train eval` end to end on real music: a user's folder
//! with one subfolder of audio files per label (excerpts of freely licensed HyperRogue tracks,
//! plus a file that is not audio), embedded by the installed YAMNet, a head trained and
//! cross-validated by the same code as the shipped AudioSet heads, then loaded by `analyze
//! --head` and measured by `eval`; and `eval` of the shipped AudioSet head on a TFRecord file of
//! released embeddings.
//!
//! Needs `cargo xtask install-models`, `apt-get install hyperrogue-music`, and (for the TFRecord
//! part) `../shared/data/audioset` beside the repository.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

#[path = "../../../tests/common/mod.rs"]
mod common;

use common::{music, repository_root as root, write_wav};

fn models() -> PathBuf {
    common::installed_models("yamnet.onnx")
}

/// Runs this package's `moodscope-train`.
fn moodscope_train(args: &[&dyn AsRef<std::ffi::OsStr>]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_moodscope-train"))
        .args(args.iter().map(|a| a.as_ref()))
        .output()
        .expect("run moodscope-train")
}

/// Runs the `moodscope` tool of the same build (the root package's binary, built beside this
/// test by `cargo test --workspace`).
fn moodscope(args: &[&dyn AsRef<std::ffi::OsStr>]) -> Output {
    let test = std::env::current_exe().expect("the test's own path");
    let profile_dir = test
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>/deps");
    let tool = profile_dir.join("moodscope");
    assert!(
        tool.is_file(),
        "{} is missing: build it with `cargo build --features cli --bin moodscope` \
         (`cargo test --workspace --features moodscope/cli` does)",
        tool.display()
    );
    Command::new(tool)
        .args(args.iter().map(|a| a.as_ref()))
        .output()
        .expect("run moodscope")
}

/// Writes `count` excerpts of `seconds` from each track as 44.1 kHz mono float WAVs in `dir`.
fn excerpts(dir: &Path, tracks: &[&str], count: usize, seconds: f64) {
    std::fs::create_dir_all(dir).unwrap();
    for track in tracks {
        let (samples, rate) = moodscope::decode::read_mono_file(&music(track)).unwrap();
        let len = (seconds * rate as f64) as usize;
        let stride = (samples.len() - len) / count;
        for i in 0..count {
            let out = dir.join(format!("{}-{i}.wav", track.trim_end_matches(".ogg")));
            write_wav(&out, rate, 1, &samples[i * stride..i * stride + len]);
        }
    }
}

/// The number after `accuracy ` in a report.
fn accuracy(report: &str) -> f64 {
    let at = report
        .find("accuracy ")
        .unwrap_or_else(|| panic!("no accuracy in:\n{report}"));
    report[at + "accuracy ".len()..]
        .split_whitespace()
        .next()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no number after accuracy in:\n{report}"))
}

#[test]
fn train_on_your_own_music_then_analyze_and_eval_with_the_head() {
    let models = models();
    let work = tempfile::tempdir().unwrap();
    let data = work.path().join("my-moods");
    // Two labels a user might choose: dark, slow cave music and bright, fast sea music.
    excerpts(
        &data.join("dark"),
        &["hr3-caves.ogg", "hr3-graveyard.ogg"],
        4,
        6.0,
    );
    excerpts(
        &data.join("bright"),
        &["hr-savino-caribbean.ogg", "hr-savino-ocean.ogg"],
        4,
        6.0,
    );
    let broken = data.join("dark").join("broken.wav");
    std::fs::write(&broken, b"RIFF, but not really a wave file").unwrap();
    std::fs::create_dir_all(data.join("empty")).unwrap();

    let out_dir = work.path().join("heads");
    let train = moodscope_train(&[
        &"train",
        &"--models",
        &models,
        &"--data",
        &data,
        &"--out",
        &out_dir,
        &"--name",
        &"dark-bright",
        &"--epochs",
        &"40",
    ]);
    let stdout = String::from_utf8_lossy(&train.stdout);
    let stderr = String::from_utf8_lossy(&train.stderr);
    let context = format!("stdout:\n{stdout}\nstderr:\n{stderr}");
    // The unreadable file is named once, the empty label is warned about, training goes on, and
    // the exit status says something was left out.
    assert_eq!(
        stderr
            .lines()
            .filter(|l| l.contains(&*broken.to_string_lossy()))
            .count(),
        1,
        "{context}"
    );
    assert!(stderr.contains("empty"), "{context}");
    assert_eq!(train.status.code(), Some(1), "{context}");
    let head = out_dir.join("dark-bright.json");
    assert!(
        head.is_file() && out_dir.join("dark-bright.onnx").is_file(),
        "{context}"
    );
    let figures = out_dir.join("dark-bright-figures");
    for png in ["validation-accuracy.png", "confusion.png"] {
        let bytes = std::fs::read(figures.join(png)).unwrap_or_else(|e| panic!("{png}: {e}"));
        assert!(bytes.starts_with(b"\x89PNG"), "{png}");
    }
    // 16 clips of two labels, cross-validated: far above chance (0.5).
    let cv = accuracy(&stdout);
    assert!(cv >= 0.8, "cross-validated accuracy {cv}\n{context}");
    let meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&head).unwrap()).unwrap();
    assert_eq!(
        meta["labels"],
        serde_json::json!(["bright", "dark"]),
        "{meta}"
    );

    // `analyze` reads music with the user's head and labels.
    let analyzed = moodscope(&[
        &"analyze",
        &"--models",
        &models,
        &"--head",
        &head,
        &"--format",
        &"json",
        &music("hr3-rlyeh.ogg"),
    ]);
    assert!(
        analyzed.status.success(),
        "{}",
        String::from_utf8_lossy(&analyzed.stderr)
    );
    let doc: serde_json::Value = serde_json::from_slice(&analyzed.stdout).unwrap();
    assert_eq!(doc["labels"], serde_json::json!(["bright", "dark"]));
    let windows = doc["files"][0]["windows"].as_array().unwrap();
    assert!(windows.len() > 20);
    for w in windows {
        let p = w["probabilities"].as_array().unwrap();
        assert_eq!(p.len(), 2);
        let sum: f64 = p.iter().map(|v| v.as_f64().unwrap()).sum();
        assert!((sum - 1.0).abs() < 1e-4, "{w}");
    }

    // `eval` measures the head on labelled folders, reporting the same figures.
    let eval = moodscope_train(&[&"eval", &"--models", &models, &"--head", &head, &data]);
    let report = String::from_utf8_lossy(&eval.stdout);
    assert!(
        report.contains("macro-F1") && report.contains("bright"),
        "{report}"
    );
    assert!(accuracy(&report) >= 0.8, "{report}");
}

#[test]
fn eval_measures_the_shipped_head_on_audioset_records() {
    let data = root().join("../shared/data/audioset/audioset_moods_bal_train.tfrecord");
    assert!(
        data.is_file(),
        "{}: ../shared/data/audioset is missing",
        data.display()
    );
    let head = root().join("models/heads/audioset-moods4.json");
    let figures = tempfile::tempdir().unwrap();
    let eval = moodscope_train(&[
        &"eval",
        &"--head",
        &head,
        &"--figures",
        &figures.path(),
        &data,
    ]);
    let report = String::from_utf8_lossy(&eval.stdout);
    let stderr = String::from_utf8_lossy(&eval.stderr);
    assert!(eval.status.success(), "{report}\n{stderr}");
    for word in ["Happy", "Sad", "Angry", "Scary", "macro-F1"] {
        assert!(report.contains(word), "{word} missing from:\n{report}");
    }
    // The head trained on these very clips: this checks the path, not generalisation.
    assert!(accuracy(&report) > 0.9, "{report}");
    let png = figures.path().join("confusion-audioset-moods4.png");
    assert!(std::fs::read(&png).unwrap().starts_with(b"\x89PNG"));
}
