//! Backbone speed, analysis throughput and memory, measured side by side in one run:
//!
//! 1. Per-window inference time (median over many runs, one thread) of YAMNet and VGGish in
//!    tract, and of the very same ONNX files in onnxruntime (PyPI, `intra_op_num_threads=1`) on
//!    the same patches, as a ratio. VGGish runs with seeded random weights of the official shapes
//!    (`moodscope_convert::write_vggish_with_seeded_weights`): the official checkpoint cannot be
//!    fetched here, and the cost does not depend on the weights' values.
//! 2. `moodscope analyze` throughput on a 3-minute piece (two HyperRogue tracks back to back, as a
//!    44.1 kHz mono float WAV), YAMNet, `--threads 2`, as a multiple of real time (wall clock of the
//!    whole command: decoding, resampling, features, backbone, head, CSV).
//! 3. Peak memory (max RSS, from `wait4`) of that command with each backbone.
//!
//! Run: `cargo bench --features cli --bench backbones` (needs `cargo xtask install-models`,
//! `apt-get install hyperrogue-music`, and `pip install -r benches/requirements.txt`).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use moodscope::backbone::{self, BackboneKind};
use moodscope::features::{log_mel_patches, resample_to_model_rate, PATCH_LEN};
use moodscope::models::ModelDir;

const MUSIC: &str = "/usr/share/hyperrogue/music";
/// Timed runs per backbone and runtime.
const RUNS: usize = 200;
const WARMUP: usize = 10;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    // `cargo bench` passes `--bench`; nothing to parse.
    let models = ModelDir::locate();
    assert!(
        models.path().join("yamnet.onnx").is_file(),
        "no yamnet.onnx in {}: run `cargo xtask install-models`",
        models.path().display()
    );
    let work = tempfile::tempdir().expect("temporary folder");
    let vggish_models = vggish_model_dir(models.path(), work.path());

    // Real-music patches, both log offsets.
    let (samples, rate) =
        moodscope::decode::read_mono_file(&Path::new(MUSIC).join("hr3-caves.ogg"))
            .expect("apt-get install hyperrogue-music");
    let resampled: Vec<f32> = resample_to_model_rate(&samples[..rate as usize * 30], rate)
        .expect("rate")
        .into_iter()
        .map(|s| s as f32)
        .collect();

    println!("== per-window inference, one thread, median of {RUNS} runs");
    let mut rows = Vec::new();
    for (kind, dir) in [
        (BackboneKind::Yamnet, ModelDir::new(models.path())),
        (BackboneKind::Vggish, vggish_models.clone()),
    ] {
        let patches: Vec<Vec<f32>> = log_mel_patches(&resampled, kind.log_offset(), 96)
            .expect("patches")
            .into_iter()
            .map(|p| p.data)
            .collect();
        let net = backbone::load(kind, &dir).expect("backbone");
        let mut times = Vec::with_capacity(RUNS);
        for i in 0..WARMUP + RUNS {
            let patch = &patches[i % patches.len()];
            let start = Instant::now();
            std::hint::black_box(net.embed(patch).expect("embed"));
            if i >= WARMUP {
                times.push(start.elapsed().as_secs_f64() * 1e3);
            }
        }
        let tract_ms = median(times);
        let onnx = dir.path().join(match kind {
            BackboneKind::Yamnet => "yamnet.onnx",
            BackboneKind::Vggish => "vggish.onnx",
        });
        let npy = work.path().join(format!("{}-patches.npy", kind.name()));
        let flat: Vec<f32> = patches.iter().flatten().copied().collect();
        let array = tract_onnx::prelude::tract_ndarray::Array3::from_shape_vec(
            (patches.len(), 96, 64),
            flat,
        )
        .unwrap();
        ndarray_npy::write_npy(&npy, &array).expect("write patches");
        assert_eq!(array.len(), patches.len() * PATCH_LEN);
        let ort_ms = onnxruntime_median_ms(&onnx, &npy);
        println!(
            "{:<7} tract {tract_ms:8.2} ms   onnxruntime {ort_ms:8.2} ms   tract/onnxruntime {:.2}x",
            kind.name(),
            tract_ms / ort_ms
        );
        rows.push((kind, tract_ms, ort_ms));
    }

    println!("== moodscope analyze, 3-minute piece");
    let piece = three_minute_piece(work.path());
    for (kind, dir) in [
        (BackboneKind::Yamnet, ModelDir::new(models.path())),
        (BackboneKind::Vggish, vggish_models),
    ] {
        let (wall, max_rss_kib) = run_analyze(&piece.0, kind, dir.path());
        println!(
            "{:<7} {:.1} s of audio in {:.2} s: {:.0}x real time, peak memory {:.0} MiB",
            kind.name(),
            piece.1,
            wall.as_secs_f64(),
            piece.1 / wall.as_secs_f64(),
            max_rss_kib as f64 / 1024.0
        );
    }
}

/// A models folder with YAMNet's files, the PCA parameters, the shipped heads and a VGGish
/// network with seeded random weights.
fn vggish_model_dir(models: &Path, work: &Path) -> ModelDir {
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

/// `benches/onnxruntime_backbones.py`: the median per-window time of `onnx` in onnxruntime.
fn onnxruntime_median_ms(onnx: &Path, patches: &Path) -> f64 {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/onnxruntime_backbones.py");
    let out = Command::new("python3")
        .arg(&script)
        .arg(onnx)
        .arg(patches)
        .arg(RUNS.to_string())
        .arg(WARMUP.to_string())
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "{}: {}",
        script.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let json: serde_json::Value = serde_json::from_str(text.trim()).expect("one JSON line");
    json["median_ms"].as_f64().expect("median_ms")
}

/// Two tracks back to back (136 s + 48 s) as a 44.1 kHz mono float WAV; and its length in s.
fn three_minute_piece(work: &Path) -> (PathBuf, f64) {
    let mut samples = Vec::new();
    for name in ["hr3-hell.ogg", "hr3-crossroads.ogg"] {
        let (mono, rate) =
            moodscope::decode::read_mono_file(&Path::new(MUSIC).join(name)).expect("decode");
        assert_eq!(rate, 44_100);
        samples.extend(mono);
    }
    let path = work.join("three-minutes.wav");
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: 44_100,
        bits_per_sample: 32,
        sample_format: hound::SampleFormat::Float,
    };
    let mut writer = hound::WavWriter::create(&path, spec).unwrap();
    for s in &samples {
        writer.write_sample(*s).unwrap();
    }
    writer.finalize().unwrap();
    (path, samples.len() as f64 / 44_100.0)
}

/// Runs `moodscope analyze` on `piece`; its wall time and max RSS in KiB (from `wait4`).
fn run_analyze(piece: &Path, kind: BackboneKind, models: &Path) -> (Duration, i64) {
    let start = Instant::now();
    let child = Command::new(env!("CARGO_BIN_EXE_moodscope"))
        .args([
            "analyze",
            "--threads",
            "2",
            "--backbone",
            kind.name(),
            "--out",
            "/dev/null",
            "--models",
        ])
        .arg(models)
        .arg(piece)
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("moodscope");
    let mut status = 0;
    // SAFETY: plain FFI call on our own child's pid with valid out-pointers.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let pid = unsafe { libc::wait4(child.id() as libc::pid_t, &mut status, 0, &mut usage) };
    let wall = start.elapsed();
    assert_eq!(pid, child.id() as libc::pid_t, "wait4");
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "analyze failed ({status})"
    );
    (wall, usage.ru_maxrss)
}
