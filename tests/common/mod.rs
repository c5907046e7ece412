//! What the root integration tests share: where the installed models and the real music are, and
//! a float WAV writer. A missing piece fails the test with what to install.
#![allow(dead_code)] // each test binary uses its own part

use std::path::{Path, PathBuf};

/// Debian's `hyperrogue-music`: freely licensed Ogg Vorbis tracks.
pub const MUSIC_DIR: &str = "/usr/share/hyperrogue/music";

/// A track of `MUSIC_DIR`.
pub fn music(name: &str) -> PathBuf {
    let path = Path::new(MUSIC_DIR).join(name);
    assert!(
        path.is_file(),
        "{} is missing: apt-get install hyperrogue-music",
        path.display()
    );
    path
}

/// The repository's root: the test's package folder or the nearest one above it with the
/// workspace's `Cargo.lock` (this module also serves `crates/train-cli`'s tests).
pub fn repository_root() -> &'static Path {
    let package = Path::new(env!("CARGO_MANIFEST_DIR"));
    package
        .ancestors()
        .find(|dir| dir.join("Cargo.lock").is_file())
        .unwrap_or(package)
}

/// The installed models (`MOODSCOPE_MODELS`, else `models/`), which must hold `file`.
pub fn installed_models(file: &str) -> PathBuf {
    let dir = std::env::var_os("MOODSCOPE_MODELS")
        .map(PathBuf::from)
        .unwrap_or_else(|| repository_root().join("models"));
    assert!(
        dir.join(file).is_file(),
        "no {file} in {}: run `cargo xtask install-models`",
        dir.display()
    );
    dir
}

/// Writes interleaved `samples` as a 32-bit float WAV.
pub fn write_wav(path: &Path, rate: u32, channels: u16, samples: &[f32]) {
    let spec = hound::WavSpec {
        channels,
        sample_rate: rate,
        bits_per_sample: 32,
        sample_format: hound::SampleFormat::Float,
    };
    let mut writer = hound::WavWriter::create(path, spec).expect("create wav");
    for &s in samples {
        writer.write_sample(s).expect("write sample");
    }
    writer.finalize().expect("finish wav");
}
