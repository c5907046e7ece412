//! Every audio format Moodscope decodes, made with ffmpeg from the same 20 s of real music
//! (HyperRogue's "Crossroads", Debian `hyperrogue-music`), analysed by the built binary with the
//! installed YAMNet: the lossless formats give the WAV's moods exactly, the lossy ones within a
//! stated tolerance. And files that are truncated, damaged, empty or in a format Moodscope does
//! not decode, with their exact messages and exit status.
//!
//! Needs the models (`cargo xtask install-models`), `hyperrogue-music`, `ffmpeg` and libopus
//! (scripts/test.sh installs them).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

mod common;
#[path = "common/ffmpeg.rs"]
mod media;

use media::{encode, excerpt, ffmpeg, FORMATS};

fn moodscope(args: &[&std::ffi::OsStr]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_moodscope"))
        .args(args)
        .output()
        .expect("run moodscope")
}

fn os(s: &str) -> &std::ffi::OsStr {
    std::ffi::OsStr::new(s)
}

/// The 20 s reference excerpt and every format made from it, made once per test binary.
fn media() -> &'static (tempfile::TempDir, Vec<(PathBuf, bool)>) {
    static MEDIA: OnceLock<(tempfile::TempDir, Vec<(PathBuf, bool)>)> = OnceLock::new();
    MEDIA.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let source = excerpt(
            &common::music("hr3-crossroads.ogg"),
            10.0,
            20.0,
            &dir.path().join("source.wav"),
        );
        let files = FORMATS
            .iter()
            .map(|(name, codec, lossless)| (encode(&source, dir.path(), name, codec), *lossless))
            .collect();
        (dir, files)
    })
}

/// Runs `analyze --format json` (no library database) and returns the document and stderr.
fn analyze_json(files: &[&Path], extra: &[&str]) -> (Output, serde_json::Value) {
    let models = common::installed_models("yamnet.onnx");
    let mut args = vec![os("analyze"), os("--no-db"), os("--format"), os("json")];
    args.push(os("--models"));
    args.push(models.as_os_str());
    args.extend(extra.iter().map(|a| os(a)));
    args.extend(files.iter().map(|f| f.as_os_str()));
    let out = moodscope(&args);
    let doc = serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null);
    (out, doc)
}

fn probabilities(file: &serde_json::Value) -> Vec<Vec<f64>> {
    file["windows"]
        .as_array()
        .expect("windows")
        .iter()
        .map(|w| {
            w["probabilities"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| p.as_f64().unwrap())
                .collect()
        })
        .collect()
}

/// Lossy codecs change the waveform (by design: they drop what they judge inaudible), so the
/// log-mel patches and then the moods move a little; the lossless ones do not change a sample.
/// Measured on 20 s of this piece (MP3 192k, AAC 192k, Vorbis q6, Opus 160k): a mood's mean
/// probability over the track moves by at most 0.021 and the typical (median) window's largest
/// difference is at most 0.06, but a window where two moods are nearly tied can swing by up to
/// 0.5, so single windows are not compared. The bounds are about twice the measured values: far
/// below a change of mood, and any misdecoding (a shifted, resampled-wrong, dropped or doubled
/// stretch, a wrong channel layout) breaks them. The dominant mood of the track must not change.
const LOSSY_MAX_MEAN_DIFFERENCE: f64 = 0.05;
const LOSSY_MAX_MEDIAN_WINDOW_DIFFERENCE: f64 = 0.12;

/// The label with the largest mean probability.
fn dominant(moods: &[Vec<f64>]) -> usize {
    let labels = moods[0].len();
    (0..labels)
        .max_by(|&a, &b| {
            let mean = |i: usize| moods.iter().map(|w| w[i]).sum::<f64>();
            mean(a).total_cmp(&mean(b))
        })
        .unwrap()
}

#[test]
fn every_format_gives_the_same_moods() {
    let (_dir, files) = media();
    let paths: Vec<&Path> = files.iter().map(|(p, _)| p.as_path()).collect();
    let (out, doc) = analyze_json(&paths, &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(!stderr.contains("warning"), "{stderr}");
    let decoded = doc["files"].as_array().expect("files");
    assert_eq!(decoded.len(), files.len(), "{stderr}");
    let reference = probabilities(&decoded[0]);
    // 20 s at a 0.48 s hop: 1 + (2000 - 96) / 48 = 40 windows.
    assert_eq!(reference.len(), 40);
    for (file, (path, lossless)) in decoded.iter().zip(files) {
        let name = path.file_name().unwrap().to_string_lossy();
        let moods = probabilities(file);
        assert_eq!(moods.len(), reference.len(), "{name}: window count");
        if *lossless {
            assert_eq!(
                moods, reference,
                "{name} is lossless: the WAV's moods exactly"
            );
            continue;
        }
        let mut window_differences: Vec<f64> = moods
            .iter()
            .zip(&reference)
            .map(|(a, b)| {
                a.iter()
                    .zip(b)
                    .map(|(x, y)| (x - y).abs())
                    .fold(0.0, f64::max)
            })
            .collect();
        window_differences.sort_by(f64::total_cmp);
        let median = window_differences[window_differences.len() / 2];
        let labels = reference[0].len();
        let mean = |m: &[Vec<f64>], i: usize| m.iter().map(|w| w[i]).sum::<f64>() / m.len() as f64;
        let worst_mean = (0..labels)
            .map(|i| (mean(&moods, i) - mean(&reference, i)).abs())
            .fold(0.0, f64::max);
        eprintln!(
            "{name}: median window difference {median:.4}, largest mean difference {worst_mean:.4}"
        );
        assert!(
            median < LOSSY_MAX_MEDIAN_WINDOW_DIFFERENCE,
            "{name}: the median window's mood is off by {median}"
        );
        assert!(
            worst_mean < LOSSY_MAX_MEAN_DIFFERENCE,
            "{name}: a mean mood is off by {worst_mean}"
        );
        // The same dominant mood, wherever the reference's lead is larger than what the codec
        // may move a mean by (two near-tied moods may swap: the test above bounds how far).
        let mut means: Vec<f64> = (0..labels).map(|i| mean(&reference, i)).collect();
        means.sort_by(|a, b| b.total_cmp(a));
        if means[0] - means[1] > 2.0 * LOSSY_MAX_MEAN_DIFFERENCE {
            assert_eq!(
                dominant(&moods),
                dominant(&reference),
                "{name}: the track's dominant mood"
            );
        }
    }
}

/// The lines `analyze` printed on stderr for `path` that start with `moodscope: PATH: `.
fn lines_for(stderr: &str, path: &Path) -> Vec<String> {
    let prefix = format!("moodscope: {}: ", path.display());
    stderr
        .lines()
        .filter_map(|l| l.strip_prefix(&prefix).map(str::to_string))
        .collect()
}

/// Seconds in "decoded 7.4 s of 20.0 s: ..." (the number after "decoded").
fn decoded_seconds(line: &str) -> f64 {
    let after = line
        .split("decoded ")
        .nth(1)
        .expect("'decoded' in the line");
    after.split(' ').next().unwrap().parse().unwrap()
}

#[test]
fn a_file_that_ends_early_is_analysed_as_far_as_it_decodes_and_counts_as_failed() {
    let (_dir, files) = media();
    let dir = tempfile::tempdir().unwrap();
    // Each format cut to its first 40 % (an interrupted download or copy).
    let expected_reason: &[(&str, &str)] = &[
        ("wav.wav", "the file is truncated or damaged: it ends before the length its header declares (a WAV file)"),
        ("aiff.aiff", "the file is truncated or damaged: it ends before the length its header declares (an AIFF file)"),
        ("flac.flac", "the file is truncated or damaged: it ends before the length its header declares (a FLAC file)"),
        ("mp3.mp3", "the file is truncated or damaged: it ends before the length its header declares (an MP3 file)"),
        ("vorbis.ogg", "the file is truncated: its Ogg stream has no end-of-stream page (an Ogg Vorbis file)"),
        ("opus.opus", "the file is truncated: its Ogg stream has no end-of-stream page (an Ogg Opus file)"),
    ];
    let mut cut = Vec::new();
    for (name, reason) in expected_reason {
        let (source, _) = files
            .iter()
            .find(|(p, _)| p.file_name().unwrap() == *name)
            .unwrap();
        let bytes = std::fs::read(source).unwrap();
        let path = dir.path().join(format!("cut-{name}"));
        std::fs::write(&path, &bytes[..bytes.len() * 2 / 5]).unwrap();
        cut.push((path, *reason));
    }
    let paths: Vec<&Path> = cut.iter().map(|(p, _)| p.as_path()).collect();
    let (out, doc) = analyze_json(&paths, &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(1),
        "partial files count as failed\n{stderr}"
    );
    let analysed = doc["files"].as_array().expect("files");
    assert_eq!(
        analysed.len(),
        cut.len(),
        "every file analysed as far as it decodes"
    );
    for ((path, reason), file) in cut.iter().zip(analysed) {
        let lines = lines_for(&stderr, path);
        assert_eq!(lines.len(), 1, "one line for {}:\n{stderr}", path.display());
        let line = &lines[0];
        let seconds = decoded_seconds(line);
        assert_eq!(
            line,
            &format!(
                "warning: partial file, analysed as far as it decodes: decoded {seconds:.1} s{}: {reason} (counted as failed; --accept-partial accepts it)",
                if reason.contains("Ogg") { String::new() } else { " of 20.0 s".to_string() }
            ),
            "{}",
            path.display()
        );
        // About 40 % of the 20 s (lossy bit rates vary along the piece).
        assert!((5.0..11.0).contains(&seconds), "{line}");
        let last_end = file["windows"].as_array().unwrap().last().unwrap()["end"]
            .as_f64()
            .unwrap();
        assert!(
            (seconds - 1.0..=seconds + 0.05).contains(&last_end),
            "{}: windows end at {last_end}, {seconds} s decoded",
            path.display()
        );
    }
    // Accepted: the same warnings, exit status 0.
    let (out, _) = analyze_json(&paths, &["--accept-partial"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    for (path, _) in &cut {
        let lines = lines_for(&stderr, path);
        assert_eq!(lines.len(), 1, "{stderr}");
        assert!(
            lines[0].starts_with("warning: partial file")
                && !lines[0].contains("counted as failed")
        );
    }
}

#[test]
fn a_damaged_stretch_is_skipped_and_reported() {
    let (_dir, files) = media();
    let dir = tempfile::tempdir().unwrap();
    // 4 kB of noise in the middle of formats that can tell (Ogg pages and AAC packets carry
    // checks or lengths; MP3 frames do not: a damaged MP3 frame decodes as noise, unreported).
    let mut damaged = Vec::new();
    for name in ["vorbis.ogg", "aac.m4a", "flac.flac"] {
        let (source, _) = files.iter().find(|(p, _)| p.ends_with(name)).unwrap();
        let mut bytes = std::fs::read(source).unwrap();
        let mid = bytes.len() / 2;
        let mut x = 12345u32;
        for b in &mut bytes[mid..mid + 4000] {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
            *b = (x >> 16) as u8;
        }
        let path = dir.path().join(format!("damaged-{name}"));
        std::fs::write(&path, &bytes).unwrap();
        damaged.push(path);
    }
    let paths: Vec<&Path> = damaged.iter().map(|p| p.as_path()).collect();
    let (out, doc) = analyze_json(&paths, &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    for (path, file) in damaged.iter().zip(doc["files"].as_array().expect("files")) {
        let lines = lines_for(&stderr, path);
        assert_eq!(lines.len(), 1, "{stderr}");
        assert!(
            lines[0].starts_with("warning: partial file, analysed as far as it decodes: decoded ")
                && lines[0].contains(" of 20.0 s: "),
            "{}",
            lines[0]
        );
        // The audio after the damage is analysed too.
        let windows = file["windows"].as_array().expect("windows");
        assert!(
            windows.len() >= 36,
            "{}: {} windows",
            path.display(),
            windows.len()
        );
    }
}

#[test]
fn empty_unsupported_and_headless_files_get_one_exact_line() {
    let (_dir, files) = media();
    let dir = tempfile::tempdir().unwrap();
    let source = &files[0].0;
    let empty = dir.path().join("empty.ogg");
    std::fs::write(&empty, b"").unwrap();
    let wavpack = dir.path().join("song.wv");
    ffmpeg(&[
        "-i",
        source.to_str().unwrap(),
        "-c:a",
        "wavpack",
        wavpack.to_str().unwrap(),
    ]);
    let ac3 = dir.path().join("ac3.m4a");
    ffmpeg(&[
        "-i",
        source.to_str().unwrap(),
        "-c:a",
        "ac3",
        ac3.to_str().unwrap(),
    ]);
    let surround = dir.path().join("surround.opus");
    ffmpeg(&[
        "-i",
        source.to_str().unwrap(),
        "-ac",
        "6",
        "-c:a",
        "libopus",
        "-mapping_family",
        "1",
        surround.to_str().unwrap(),
    ]);
    let headless = dir.path().join("headless.m4a");
    // ffmpeg writes an M4A's headers (moov) after the audio: the first half has none.
    let m4a = std::fs::read(
        files
            .iter()
            .find(|(p, _)| p.ends_with("aac.m4a"))
            .unwrap()
            .0
            .as_path(),
    )
    .unwrap();
    std::fs::write(&headless, &m4a[..m4a.len() / 2]).unwrap();
    // symphonia 0.5.5's Matroska reader cannot open a truncated file (it panics; Moodscope
    // catches that and says so).
    let webm = std::fs::read(
        files
            .iter()
            .find(|(p, _)| p.ends_with("opus.webm"))
            .unwrap()
            .0
            .as_path(),
    )
    .unwrap();
    let cut_webm = dir.path().join("cut.webm");
    std::fs::write(&cut_webm, &webm[..webm.len() / 2]).unwrap();
    let pdf = dir.path().join("notes.mp3");
    std::fs::write(&pdf, b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj\n").unwrap();
    let folder_file = dir.path().join("folder.flac");
    std::fs::create_dir(&folder_file).unwrap();

    let supported = "Moodscope decodes WAV, AIFF, FLAC, MP3, Ogg Vorbis/Opus/FLAC, MP4/M4A with AAC or ALAC, WebM/Matroska with Opus/Vorbis/AAC/FLAC";
    let expected: Vec<(&Path, String)> = vec![
        (&empty, "the file is empty (0 bytes)".into()),
        (&wavpack, format!("not a supported audio file: a WavPack file ({supported})")),
        (&ac3, format!("unsupported codec: an MP4 audio file (M4A) whose audio codec Moodscope does not know ({supported})")),
        (&surround, format!("unsupported codec: Opus (libopus) in an Ogg Opus file: surround (multistream) Opus; mono and stereo Opus are decoded ({supported})")),
        (&headless, format!("is truncated: an MP4 audio file (M4A) whose headers are missing or cut short ({} bytes)", m4a.len() / 2)),
        (&cut_webm, "unreadable audio data: a WebM file: the decoder failed on this file (EBML header must be read before calling this function)".into()),
        (&pdf, format!("not a supported audio file: a PDF document ({supported})")),
    ];
    let paths: Vec<&Path> = expected.iter().map(|(p, _)| *p).collect();
    let (out, _) = analyze_json(&paths, &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    for (path, message) in &expected {
        assert_eq!(lines_for(&stderr, path), vec![message.clone()], "{stderr}");
    }
    // A folder where a file is expected is scanned: this one holds no audio.
    let (out, _) = analyze_json(&[&folder_file], &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.starts_with("moodscope: no audio files found"),
        "{stderr}"
    );
}
