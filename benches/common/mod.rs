//! What the benches share: medians, real music, and a models folder with VGGish.

#![allow(dead_code)] // each bench uses a part

use std::path::Path;

use moodscope::models::ModelDir;

/// Freely licensed music (Debian's `hyperrogue-music`).
pub const MUSIC: &str = "/usr/share/hyperrogue/music";

pub fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// The installed models (`cargo xtask install-models`), or a clear stop.
pub fn installed_models() -> ModelDir {
    let models = ModelDir::locate();
    assert!(
        models.path().join("yamnet.onnx").is_file(),
        "no yamnet.onnx in {}: run `cargo xtask install-models`",
        models.path().display()
    );
    models
}

/// A models folder in `work` with YAMNet's files, the PCA parameters, the shipped heads and a
/// VGGish network with seeded random weights of the official shapes: the official checkpoint
/// cannot be fetched here, and the cost does not depend on the weights' values.
pub fn vggish_model_dir(models: &Path, work: &Path) -> ModelDir {
    let dir = work.join("models");
    std::fs::create_dir_all(&dir).unwrap();
    for name in [
        "yamnet.onnx",
        "yamnet_class_map.csv",
        "vggish_pca_params.npz",
    ] {
        std::fs::copy(models.join(name), dir.join(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
    }
    let heads = Path::new(env!("CARGO_MANIFEST_DIR")).join("models/heads");
    std::os::unix::fs::symlink(&heads, dir.join("heads")).unwrap();
    moodscope_convert::write_vggish_with_seeded_weights(7, &dir.join("vggish.onnx"))
        .expect("VGGish ONNX");
    ModelDir::new(dir)
}

/// Mono samples of a HyperRogue track and its rate.
pub fn music(name: &str) -> (Vec<f32>, u32) {
    moodscope::decode::read_mono_file(&Path::new(MUSIC).join(name))
        .unwrap_or_else(|e| panic!("{name} (apt-get install hyperrogue-music): {e}"))
}

/// This process's resident memory now (VmRSS), in bytes.
pub fn resident_bytes() -> u64 {
    proc_status_kib(
        &std::fs::read_to_string("/proc/self/status").unwrap(),
        "VmRSS:",
    ) * 1024
}

/// A `kB` field of a `/proc/PID/status` text.
pub fn proc_status_kib(status: &str, field: &str) -> u64 {
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no {field} in /proc status"))
}
