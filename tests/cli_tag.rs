//! `moodscope tag`: the moods go into each format's own tags, read back by a reader Moodscope did
//! not write (Python's mutagen, `tests/python/read_tags.py`), and the audio is untouched: every
//! tagged file decodes (by ffmpeg and by Moodscope) to exactly the samples of the untagged one.
//!
//! Needs the models, `hyperrogue-music`, `ffmpeg`, libopus and `pip install -r
//! tests/python/requirements-tags.txt` (scripts/test.sh installs them).

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

mod common;
#[path = "common/ffmpeg.rs"]
mod media;

use media::{decode_f32, encode, excerpt};

/// The formats whose tags Moodscope writes, and where the dominant mood goes.
const TAGGED: &[(&str, &[&str], &str, &str)] = &[
    // (file, ffmpeg codec, mood key, Moodscope key prefix) as mutagen names them
    (
        "mp3.mp3",
        &["-c:a", "libmp3lame", "-b:a", "192k"],
        "TMOO",
        "TXXX:",
    ),
    ("wav.wav", &["-c:a", "pcm_s16le"], "TMOO", "TXXX:"),
    ("aiff.aiff", &["-c:a", "pcm_s16be"], "TMOO", "TXXX:"),
    ("flac.flac", &["-c:a", "flac"], "MOOD", ""),
    (
        "vorbis.ogg",
        &["-c:a", "libvorbis", "-q:a", "6"],
        "MOOD",
        "",
    ),
    (
        "opus.opus",
        &["-c:a", "libopus", "-b:a", "160k"],
        "MOOD",
        "",
    ),
    (
        "aac.m4a",
        &["-c:a", "aac", "-b:a", "192k"],
        "----:com.apple.iTunes:MOOD",
        "----:com.apple.iTunes:",
    ),
    (
        "alac.m4a",
        &["-c:a", "alac"],
        "----:com.apple.iTunes:MOOD",
        "----:com.apple.iTunes:",
    ),
];

fn moodscope(args: &[&std::ffi::OsStr]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_moodscope"))
        .args(args)
        .output()
        .expect("run moodscope")
}

fn os(s: &str) -> &std::ffi::OsStr {
    std::ffi::OsStr::new(s)
}

/// The tags mutagen reads: key to values.
fn read_tags(path: &Path) -> BTreeMap<String, Vec<String>> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/read_tags.py");
    let out = Command::new("python3")
        .arg(&script)
        .arg(path)
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "read_tags.py {} (pip install -r tests/python/requirements-tags.txt): {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    doc["tags"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| {
            let values = v
                .as_array()
                .unwrap()
                .iter()
                .map(|s| s.as_str().unwrap().to_string())
                .collect();
            (k.clone(), values)
        })
        .collect()
}

/// The samples Moodscope decodes (mono mixdown), bit patterns.
fn moodscope_samples(path: &Path) -> Vec<u32> {
    let (samples, _) = moodscope::decode::read_mono_file(path).unwrap();
    samples.iter().map(|s| s.to_bits()).collect()
}

fn make_files(dir: &Path) -> Vec<PathBuf> {
    let source = excerpt(
        &common::music("hr3-graveyard.ogg"),
        20.0,
        12.0,
        &dir.join("source.wav"),
    );
    let files: Vec<PathBuf> = TAGGED
        .iter()
        .map(|(name, codec, _, _)| encode(&source, dir, name, codec))
        .collect();
    std::fs::remove_file(source).unwrap();
    files
}

#[test]
fn moods_go_into_each_formats_own_tags_and_the_audio_is_untouched() {
    let models = common::installed_models("yamnet.onnx");
    let dir = tempfile::tempdir().unwrap();
    let music = dir.path().join("music");
    std::fs::create_dir(&music).unwrap();
    let files = make_files(&music);
    // A comment of the user's own (written by mutagen), which `--comment` keeps.
    let status = Command::new("python3")
        .args([
            "-c",
            "import sys; from mutagen.id3 import ID3, COMM; t = ID3(sys.argv[1]); \
             t.add(COMM(encoding=3, lang='eng', desc='', text='great intro')); t.save()",
        ])
        .arg(&files[0])
        .status()
        .unwrap();
    assert!(status.success());
    type Decoded = (Vec<f32>, Vec<u32>, BTreeMap<String, Vec<String>>);
    let before: Vec<Decoded> = files
        .iter()
        .map(|f| (decode_f32(f), moodscope_samples(f), read_tags(f)))
        .collect();
    let db = dir.path().join("library.sqlite");

    // --dry-run: says what it would write, writes nothing.
    let out = moodscope(&[
        os("tag"),
        os("--models"),
        models.as_os_str(),
        os("--db"),
        db.as_os_str(),
        os("--dry-run"),
        music.as_os_str(),
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for (file, (_, _, _, prefix)) in files.iter().zip(TAGGED) {
        let line = stdout
            .lines()
            .find(|l| l.starts_with(&format!("{}: would write ", file.display())))
            .unwrap_or_else(|| panic!("no dry-run line for {}:\n{stdout}", file.display()));
        assert!(line.contains(&format!("{prefix}MOODSCOPE_MOOD=")), "{line}");
    }
    for (file, (_, _, tags)) in files.iter().zip(&before) {
        assert_eq!(
            &read_tags(file),
            tags,
            "--dry-run changed {}",
            file.display()
        );
    }

    // The folder, tagged: one line per file with its moods.
    let out = moodscope(&[
        os("tag"),
        os("--models"),
        models.as_os_str(),
        os("--db"),
        db.as_os_str(),
        os("--comment"),
        music.as_os_str(),
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("8 files: 0 analysed, 8 unchanged, 0 failed"),
        "the dry run kept the analyses: {stderr}"
    );
    // What `analyze` names as each file's mood.
    let json = dir.path().join("analysed.json");
    let mut args = vec![
        os("analyze"),
        os("--models"),
        models.as_os_str(),
        os("--format"),
        os("json"),
        os("--out"),
        json.as_os_str(),
    ];
    args.extend(files.iter().map(|f| f.as_os_str()));
    let out = moodscope(&args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let analysed_moods: BTreeMap<String, Option<String>> = doc["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["file"].as_str().unwrap().to_string(),
                f["summary"]["mood"].as_str().map(str::to_string),
            )
        })
        .collect();
    for (i, (file, (_, _, mood_key, prefix))) in files.iter().zip(TAGGED).enumerate() {
        let name = file.display();
        let tags = read_tags(file);
        let mood = &tags
            .get(*mood_key)
            .unwrap_or_else(|| panic!("{name}: no {mood_key} in {tags:?}"))[0];
        assert!(
            ["Happy", "Sad", "Angry", "Scary", "Calm"].contains(&mood.as_str()),
            "{name}: {mood}"
        );
        let get = |key: &str| -> String {
            tags.get(&format!("{prefix}{key}"))
                .unwrap_or_else(|| panic!("{name}: no {prefix}{key} in {tags:?}"))[0]
                .clone()
        };
        assert_eq!(&get("MOODSCOPE_MOOD"), mood);
        assert!(get("MOODSCOPE_MODEL").starts_with("yamnet@"));
        // One share per label of the analysis; they, the uncertain and the no-music shares add
        // up to 1.
        let shares: Vec<(String, f64)> = tags
            .iter()
            .filter_map(|(k, v)| {
                k.strip_prefix(&format!("{prefix}MOODSCOPE_SHARE_"))
                    .map(|l| (l.to_string(), v[0].parse::<f64>().unwrap()))
            })
            .collect();
        assert!(shares.len() >= 4, "{name}: {shares:?}");
        let total: f64 = shares.iter().map(|(_, s)| s).sum::<f64>()
            + get("MOODSCOPE_UNCERTAIN").parse::<f64>().unwrap()
            + get("MOODSCOPE_NO_MUSIC").parse::<f64>().unwrap();
        assert!(
            (total - 1.0).abs() < 0.01,
            "{name}: shares add up to {total}"
        );
        // The mood is the track's mood `analyze` names for the same file (the same analysis).
        assert_eq!(
            Some(mood.as_str()),
            analysed_moods[&file.display().to_string()].as_deref(),
            "{name}: shares {shares:?}"
        );
        // The comment DJ software shows.
        let comment_key = match *mood_key {
            "TMOO" => "COMM::eng",
            "MOOD" => "COMMENT",
            _ => "\u{a9}cmt",
        };
        let comment = &tags
            .get(comment_key)
            .unwrap_or_else(|| panic!("{name}: no {comment_key} in {tags:?}"))[0];
        let expected_start = if i == 0 {
            "great intro | Moodscope: "
        } else {
            "Moodscope: "
        };
        assert!(comment.starts_with(expected_start), "{name}: {comment}");
        assert!(comment.contains(mood.as_str()), "{name}: {comment}");
        // The audio: the same samples, bit for bit, through ffmpeg and through Moodscope.
        let (ffmpeg_before, moodscope_before, _) = &before[i];
        let ffmpeg_after = decode_f32(file);
        assert!(
            ffmpeg_after.len() == ffmpeg_before.len()
                && ffmpeg_after
                    .iter()
                    .zip(ffmpeg_before)
                    .all(|(a, b)| a.to_bits() == b.to_bits()),
            "{name}: ffmpeg decodes other samples after tagging"
        );
        assert_eq!(
            &moodscope_samples(file),
            moodscope_before,
            "{name}: Moodscope decodes other samples after tagging"
        );
    }

    // Tagging again replaces Moodscope's tags (no duplicates) and keeps the user's comment once;
    // the tagged files are known to the library (their new content hash was recorded).
    let out = moodscope(&[
        os("tag"),
        os("--models"),
        models.as_os_str(),
        os("--db"),
        db.as_os_str(),
        os("--comment"),
        music.as_os_str(),
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("8 files: 0 analysed, 8 unchanged, 0 failed"),
        "{stderr}"
    );
    let tags = read_tags(&files[0]);
    assert_eq!(tags["TXXX:MOODSCOPE_MOOD"].len(), 1, "{tags:?}");
    assert_eq!(tags["TMOO"].len(), 1, "{tags:?}");
    let comment = &tags["COMM::eng"][0];
    assert_eq!(comment.matches("great intro").count(), 1, "{comment}");
    assert_eq!(comment.matches("Moodscope:").count(), 1, "{comment}");

    // ffprobe, a second reader, sees the mood too.
    let probe = Command::new("ffprobe")
        .args(["-v", "error", "-show_entries", "format_tags", "-of", "json"])
        .arg(&files[3])
        .output()
        .expect("ffprobe");
    let doc: serde_json::Value = serde_json::from_slice(&probe.stdout).unwrap();
    let tags = doc["format"]["tags"].as_object().unwrap();
    let mood = tags
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("MOOD"))
        .unwrap_or_else(|| panic!("ffprobe: {tags:?}"));
    assert!(mood.1.as_str().is_some_and(|m| !m.is_empty()));
}

#[test]
fn a_read_only_file_is_one_line_and_the_rest_are_tagged() {
    let models = common::installed_models("yamnet.onnx");
    let dir = tempfile::tempdir().unwrap();
    let source = excerpt(
        &common::music("hr3-caves.ogg"),
        5.0,
        4.0,
        &dir.path().join("a.wav"),
    );
    let flac = encode(&source, dir.path(), "b.flac", &["-c:a", "flac"]);
    let locked = encode(&source, dir.path(), "locked.mp3", &["-c:a", "libmp3lame"]);
    let webm = encode(&source, dir.path(), "c.webm", &["-c:a", "libopus"]);
    std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o444)).unwrap();
    let locked_bytes = std::fs::read(&locked).unwrap();
    let out = moodscope(&[
        os("tag"),
        os("--models"),
        models.as_os_str(),
        os("--no-db"),
        locked.as_os_str(),
        webm.as_os_str(),
        flac.as_os_str(),
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let errors: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("moodscope: /"))
        .collect();
    assert_eq!(
        errors,
        vec![
            format!(
                "moodscope: {}: is read-only (its permissions forbid writing); not tagged",
                locked.display()
            ),
            format!(
                "moodscope: {}: cannot be tagged: WebM/Matroska files have no tag writer here (lofty does not write Matroska tags)",
                webm.display()
            ),
        ],
        "{stderr}"
    );
    assert_eq!(
        std::fs::read(&locked).unwrap(),
        locked_bytes,
        "the read-only file is untouched"
    );
    assert!(read_tags(&flac).contains_key("MOOD"), "the rest go on");
    let mode = std::fs::metadata(&flac).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o644, "a tagged file keeps its permissions");
    assert!(
        std::fs::read_dir(dir.path()).unwrap().all(|e| !e
            .unwrap()
            .file_name()
            .to_string_lossy()
            .ends_with(".tmp")),
        "no temporary file left behind"
    );
}
