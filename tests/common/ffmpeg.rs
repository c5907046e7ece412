//! Test media made with ffmpeg (`apt-get install ffmpeg`; scripts/test.sh installs it) from real
//! music, and decoding with ffmpeg as an independent reference. A missing ffmpeg fails the test
//! with what to install.
#![allow(dead_code)] // each test binary uses its own part

use std::path::{Path, PathBuf};
use std::process::Command;

/// Runs ffmpeg quietly with `args`; panics with its stderr if it fails.
pub fn ffmpeg(args: &[&str]) {
    let out = Command::new("ffmpeg")
        .args(["-nostdin", "-v", "error", "-y"])
        .args(args)
        .output()
        .expect("ffmpeg is missing: apt-get install ffmpeg");
    assert!(
        out.status.success(),
        "ffmpeg {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `seconds` of `source` from `start` as 16-bit stereo 44.1 kHz WAV: the lossless reference the
/// other formats are made from.
pub fn excerpt(source: &Path, start: f64, seconds: f64, out: &Path) -> PathBuf {
    ffmpeg(&[
        "-ss",
        &start.to_string(),
        "-t",
        &seconds.to_string(),
        "-i",
        &source.to_string_lossy(),
        "-ar",
        "44100",
        "-ac",
        "2",
        "-c:a",
        "pcm_s16le",
        &out.to_string_lossy(),
    ]);
    out.to_path_buf()
}

/// Every format Moodscope decodes: (file name, ffmpeg codec options, lossless?).
pub const FORMATS: &[(&str, &[&str], bool)] = &[
    ("wav.wav", &["-c:a", "pcm_s16le"], true),
    ("aiff.aiff", &["-c:a", "pcm_s16be"], true),
    ("flac.flac", &["-c:a", "flac"], true),
    ("alac.m4a", &["-c:a", "alac"], true),
    ("mp3.mp3", &["-c:a", "libmp3lame", "-b:a", "192k"], false),
    ("vorbis.ogg", &["-c:a", "libvorbis", "-q:a", "6"], false),
    ("opus.opus", &["-c:a", "libopus", "-b:a", "160k"], false),
    ("opus.webm", &["-c:a", "libopus", "-b:a", "160k"], false),
    ("aac.m4a", &["-c:a", "aac", "-b:a", "192k"], false),
];

/// Encodes `source` as `name` in `dir` with `codec` options.
pub fn encode(source: &Path, dir: &Path, name: &str, codec: &[&str]) -> PathBuf {
    let out = dir.join(name);
    let mut args = vec!["-i", source.to_str().unwrap()];
    args.extend_from_slice(codec);
    args.push(out.to_str().unwrap());
    ffmpeg(&args);
    out
}

/// The file's first audio stream decoded by ffmpeg to raw interleaved f32 samples.
pub fn decode_f32(path: &Path) -> Vec<f32> {
    let out = Command::new("ffmpeg")
        .args(["-nostdin", "-v", "error", "-i"])
        .arg(path)
        .args(["-map", "0:a:0", "-f", "f32le", "-"])
        .output()
        .expect("ffmpeg is missing: apt-get install ffmpeg");
    assert!(
        out.status.success(),
        "ffmpeg cannot decode {}: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect()
}
