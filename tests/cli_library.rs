//! Library scans: `analyze FOLDER` with the library database. A second run skips unchanged files
//! (and prints the same timelines), a changed file is analysed again, a run killed midway
//! (`kill -9`) resumes where it stopped with nothing lost, and `library export|query` and
//! `analyze --summary` answer from what was kept.
//!
//! Needs the models, `hyperrogue-music` and `ffmpeg` (scripts/test.sh installs them).

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

mod common;
#[path = "common/ffmpeg.rs"]
mod media;

fn moodscope(args: &[&std::ffi::OsStr]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_moodscope"))
        .args(args)
        .output()
        .expect("run moodscope")
}

fn os(s: &str) -> &std::ffi::OsStr {
    std::ffi::OsStr::new(s)
}

const TRACKS: &[&str] = &[
    "hr3-crossroads.ogg",
    "hr3-graveyard.ogg",
    "hr3-caves.ogg",
    "hr3-desert.ogg",
];

/// `count` excerpts of `seconds` from the HyperRogue tracks, as FLAC, MP3 and Ogg, in nested
/// folders, plus files a scan skips (a hidden one, a text file).
fn library(root: &Path, count: usize, seconds: f64) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for i in 0..count {
        let track = common::music(TRACKS[i % TRACKS.len()]);
        let (ext, codec): (&str, &[&str]) = match i % 3 {
            0 => ("flac", &["-c:a", "flac"]),
            1 => ("mp3", &["-c:a", "libmp3lame", "-b:a", "128k"]),
            _ => ("ogg", &["-c:a", "libvorbis"]),
        };
        let dir = root.join(format!("album-{}", i % 2));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(format!("{i:02}.{ext}"));
        let start = (5 + 3 * i) as f64;
        let mut args = vec![
            "-ss".to_string(),
            start.to_string(),
            "-t".to_string(),
            seconds.to_string(),
            "-i".to_string(),
            track.to_string_lossy().into_owned(),
        ];
        args.extend(codec.iter().map(|s| s.to_string()));
        args.push(path.to_string_lossy().into_owned());
        media::ffmpeg(&args.iter().map(String::as_str).collect::<Vec<_>>());
        files.push(path);
    }
    std::fs::write(root.join("album-0/cover.txt"), "not audio").unwrap();
    std::fs::copy(&files[0], root.join("album-0/.hidden.flac")).unwrap();
    files.sort();
    files
}

fn scan(db: &Path, inputs: &[&Path], extra: &[&str]) -> Output {
    let models = common::installed_models("yamnet.onnx");
    let mut args = vec![
        os("analyze"),
        os("--models"),
        models.as_os_str(),
        os("--db"),
        db.as_os_str(),
    ];
    args.extend(extra.iter().map(|a| os(a)));
    args.extend(inputs.iter().map(|p| p.as_os_str()));
    moodscope(&args)
}

fn closing_line(out: &Output) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    stderr
        .lines()
        .rfind(|l| l.contains(" analysed, "))
        .unwrap_or_else(|| panic!("no count line: {stderr}"))
        .to_string()
}

fn rows_kept(db: &Path) -> usize {
    let conn = rusqlite::Connection::open(db).unwrap();
    conn.query_row("SELECT COUNT(*) FROM analyses", [], |r| r.get::<_, i64>(0))
        .unwrap_or(0) as usize
}

#[test]
fn a_second_scan_skips_unchanged_files_and_a_changed_one_is_analysed_again() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("music");
    let files = library(&root, 6, 6.0);
    let db = dir.path().join("lib.sqlite");
    let summary = dir.path().join("summary.csv");
    let first = scan(&db, &[&root], &["--summary", summary.to_str().unwrap()]);
    assert_eq!(
        closing_line(&first),
        "moodscope: 6 files: 6 analysed, 0 unchanged, 0 failed"
    );
    // Only the audio files, in name order; the hidden file and the text file are skipped.
    let csv = String::from_utf8_lossy(&first.stdout);
    let mut seen: Vec<&str> = csv
        .lines()
        .skip(1)
        .map(|l| l.split(',').next().unwrap())
        .collect();
    seen.dedup();
    let expected: Vec<String> = files
        .iter()
        .map(|f| f.to_string_lossy().into_owned())
        .collect();
    assert_eq!(seen, expected);

    let second = scan(&db, &[&root], &[]);
    assert_eq!(
        closing_line(&second),
        "moodscope: 6 files: 0 analysed, 6 unchanged, 0 failed"
    );
    assert!(
        second.stdout == first.stdout,
        "the kept timelines print exactly as analysed"
    );

    // A changed file (other music under the same name) is analysed again; a copy of a known file
    // under a new name is not (the key is the content).
    media::ffmpeg(&[
        "-ss",
        "40",
        "-t",
        "6",
        "-i",
        common::music("hr3-jungle.ogg").to_str().unwrap(),
        "-c:a",
        "flac",
        files[0].to_str().unwrap(),
    ]);
    std::fs::copy(&files[1], root.join("album-1/zz-copy.mp3")).unwrap();
    let third = scan(&db, &[&root], &[]);
    assert_eq!(
        closing_line(&third),
        "moodscope: 7 files: 1 analysed, 6 unchanged, 0 failed"
    );

    // The summary table: one row per track, with a share column per label.
    let table = std::fs::read_to_string(&summary).unwrap();
    let mut lines = table.lines();
    let header = lines.next().unwrap();
    assert!(
        header.starts_with("path,mood,share_happy,share_sad,")
            && header.ends_with(",seconds,partial,model_version"),
        "{header}"
    );
    let rows: Vec<&str> = lines.collect();
    assert_eq!(rows.len(), 6);
    assert!(
        rows.iter().all(|r| r.contains(",5.") || r.contains(",6.0")),
        "{table}"
    );

    // `library export` answers from the database: every path it knows, the latest analysis.
    let export = moodscope(&[os("library"), os("export"), os("--db"), db.as_os_str()]);
    assert!(export.status.success());
    let export = String::from_utf8_lossy(&export.stdout).into_owned();
    let exported: Vec<Vec<String>> = export
        .lines()
        .skip(1)
        .map(|l| l.split(',').map(str::to_string).collect())
        .collect();
    assert_eq!(exported.len(), 7, "{export}");
    let header: Vec<&str> = export.lines().next().unwrap().split(',').collect();
    let col = |name: &str| header.iter().position(|h| *h == name).unwrap();
    // `library query --mood` lists exactly the tracks whose dominant mood it is.
    let mood = exported[0][col("mood")].clone();
    let query = moodscope(&[
        os("library"),
        os("query"),
        os("--db"),
        db.as_os_str(),
        os("--mood"),
        os(&mood.to_lowercase()),
    ]);
    assert!(query.status.success());
    let listed: Vec<String> = String::from_utf8_lossy(&query.stdout)
        .lines()
        .map(str::to_string)
        .collect();
    let expected: Vec<String> = exported
        .iter()
        .filter(|r| r[col("mood")] == mood)
        .map(|r| r[col("path")].clone())
        .collect();
    assert_eq!(listed, expected);
    assert!(!listed.is_empty());
    // Valence: the tracks above 0.3 when the analysis gives valence, none (and a note) when not.
    let query = moodscope(&[
        os("library"),
        os("query"),
        os("--db"),
        db.as_os_str(),
        os("--valence-above"),
        os("0.3"),
    ]);
    assert!(query.status.success());
    let listed: Vec<String> = String::from_utf8_lossy(&query.stdout)
        .lines()
        .map(str::to_string)
        .collect();
    let expected: Vec<String> = exported
        .iter()
        .filter(|r| r[col("valence")].parse::<f64>().is_ok_and(|v| v > 0.3))
        .map(|r| r[col("path")].clone())
        .collect();
    assert_eq!(listed, expected);
    if exported.iter().all(|r| r[col("valence")].is_empty()) {
        assert!(String::from_utf8_lossy(&query.stderr)
            .contains("no track in the library has a valence"));
    }
    let json = moodscope(&[
        os("library"),
        os("export"),
        os("--db"),
        db.as_os_str(),
        os("--format"),
        os("json"),
    ]);
    let doc: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(doc.as_array().unwrap().len(), 7);
    assert!(doc[0]["shares"].as_object().unwrap().len() >= 4);
}

#[test]
fn a_killed_scan_resumes_where_it_stopped() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("music");
    let files = library(&root, 12, 15.0);
    let db = dir.path().join("lib.sqlite");
    let models = common::installed_models("yamnet.onnx");
    let mut child = Command::new(env!("CARGO_BIN_EXE_moodscope"))
        .args([
            os("analyze"),
            os("--models"),
            models.as_os_str(),
            os("--db"),
            db.as_os_str(),
        ])
        .args(["--jobs", "1", "--threads", "1"])
        .arg(&root)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Kill it (SIGKILL: no chance to tidy up) once three files are kept.
    let deadline = Instant::now() + Duration::from_secs(300);
    while (if db.exists() { rows_kept(&db) } else { 0 }) < 3 {
        assert!(
            child.try_wait().unwrap().is_none(),
            "the scan ended before it was killed"
        );
        assert!(Instant::now() < deadline, "no file kept after 300 s");
        std::thread::sleep(Duration::from_millis(10));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let kept = rows_kept(&db);
    assert!(
        (3..files.len()).contains(&kept),
        "{kept} files kept when killed"
    );
    let conn = rusqlite::Connection::open(&db).unwrap();
    let check: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(check, "ok");
    drop(conn);

    let resumed = scan(&db, &[&root], &[]);
    assert_eq!(
        closing_line(&resumed),
        format!(
            "moodscope: 12 files: {} analysed, {kept} unchanged, 0 failed",
            files.len() - kept
        )
    );
    let again = moodscope(&[
        os("analyze"),
        os("--models"),
        models.as_os_str(),
        os("--no-db"),
        root.as_os_str(),
    ]);
    assert_eq!(
        closing_line(&again),
        "moodscope: 12 files: 12 analysed, 0 unchanged, 0 failed",
        "--no-db analyses everything"
    );
    assert!(
        again.stdout == resumed.stdout,
        "resumed and fresh timelines agree"
    );
}
