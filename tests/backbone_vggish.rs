//! The VGGish backbone end to end, without the official weights (which cannot be fetched here):
//! VGGish's network with seeded weights of the official shapes (`moodscope-convert`), the real
//! `vggish_pca_params.npz`, real music.
//!
//! - Postprocessing: our PCA whitening, clipping and 8-bit quantization give the very bytes that
//!   `vggish_postprocess.py`'s arithmetic gives in numpy (float64, `astype(np.uint8)`), from the same
//!   raw embeddings and the same `.npz`; and `Backbone::embed` returns exactly their dequantized
//!   values, the space AudioSet's released embeddings live in.
//! - `moodscope analyze --backbone vggish` runs the whole path (front end with log offset 0.01,
//!   0.96 s windows, VGGish, postprocessing, the shipped AudioSet LSTM head) on real music.
//!
//! Needs `cargo xtask install-models` (for the PCA file), python3 with numpy, hyperrogue-music.

use std::path::{Path, PathBuf};
use std::process::Command;

use moodscope::backbone::{self, dequantize, BackboneKind, VggishPostprocess};
use moodscope::features::{log_mel_patches, resample_to_model_rate, VGGISH_LOG_OFFSET};
use moodscope::models::ModelDir;
use tract_onnx::prelude::*;

mod common;

fn installed_models() -> PathBuf {
    common::installed_models("vggish_pca_params.npz")
}

/// A models folder holding VGGish with seeded weights, the real PCA file and the shipped heads.
fn vggish_models(work: &Path) -> ModelDir {
    let installed = installed_models();
    let dir = work.join("models");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(
        installed.join("vggish_pca_params.npz"),
        dir.join("vggish_pca_params.npz"),
    )
    .unwrap();
    std::os::unix::fs::symlink(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("models/heads"),
        dir.join("heads"),
    )
    .unwrap();
    moodscope_convert::write_vggish_with_seeded_weights(11, &dir.join("vggish.onnx"))
        .expect("VGGish ONNX");
    ModelDir::new(dir)
}

fn music_patches(seconds: usize) -> Vec<Vec<f32>> {
    let (samples, rate) =
        moodscope::decode::read_mono_file(&common::music("hr3-jungle.ogg")).unwrap();
    let resampled: Vec<f32> = resample_to_model_rate(&samples[..rate as usize * seconds], rate)
        .unwrap()
        .into_iter()
        .map(|s| s as f32)
        .collect();
    log_mel_patches(&resampled, VGGISH_LOG_OFFSET, 96)
        .unwrap()
        .into_iter()
        .map(|p| p.data)
        .collect()
}

#[test]
fn postprocessing_gives_the_bytes_of_vggish_postprocess_py() {
    let work = tempfile::tempdir().unwrap();
    let models = vggish_models(work.path());
    let patches = music_patches(8);
    assert!(patches.len() >= 7);

    // Raw network outputs, straight from the ONNX file in tract.
    let plan = tract_onnx::onnx()
        .model_for_path(models.path().join("vggish.onnx"))
        .unwrap()
        .with_input_fact(0, f32::fact([1, 96, 64]).into())
        .unwrap()
        .into_optimized()
        .unwrap()
        .into_runnable()
        .unwrap();
    let raw: Vec<Vec<f32>> = patches
        .iter()
        .map(|p| {
            let input = Tensor::from_shape(&[1, 96, 64], p).unwrap();
            let out = plan.run(tvec![input.into()]).unwrap();
            out[0]
                .to_plain_array_view::<f32>()
                .unwrap()
                .iter()
                .copied()
                .collect()
        })
        .collect();
    let network_windows = raw.len();
    // Seeded weights do not put the raw embeddings where the official network puts them, so after
    // PCA most of their values clip. To test the quantizer's interior too, add embeddings built
    // from the PCA file itself: x = μ + Eᵀ(E·Eᵀ)⁻¹z with z spread over [-2.5, 2.5], so that the
    // whitened values E(x - μ) = z cover the whole range and both clipping sides.
    let raw: Vec<Vec<f32>> = raw
        .into_iter()
        .chain(embeddings_spread_over_the_quantizer(
            &models.path().join("vggish_pca_params.npz"),
            32,
        ))
        .collect();
    let post = VggishPostprocess::load(&models.path().join("vggish_pca_params.npz")).unwrap();
    let ours: Vec<[u8; 128]> = raw.iter().map(|e| post.quantize(e)).collect();
    let interior = ours.iter().flatten().filter(|&&q| q > 0 && q < 255).count();
    assert!(
        interior > ours.len() * 128 / 2,
        "only {interior} of {} values inside the quantizer's range",
        ours.len() * 128
    );
    assert!(ours.iter().flatten().any(|&q| q == 0) && ours.iter().flatten().any(|&q| q == 255));

    // The reference arithmetic of vggish_postprocess.py, in numpy.
    let raw_npy = work.path().join("raw.npy");
    let flat: Vec<f32> = raw.iter().flatten().copied().collect();
    ndarray_npy::write_npy(
        &raw_npy,
        &tract_ndarray::Array2::from_shape_vec((raw.len(), 128), flat).unwrap(),
    )
    .unwrap();
    let out_npy = work.path().join("quantized.npy");
    let script = r#"
import sys, numpy as np
params = np.load(sys.argv[1])
pca_matrix, pca_means = params["pca_eigen_vectors"], params["pca_means"].reshape(-1, 1)
embeddings = np.load(sys.argv[2]).astype(np.float64)
# vggish_postprocess.Postprocessor.postprocess, verbatim arithmetic:
pca_applied = np.dot(pca_matrix, (embeddings.T - pca_means)).T
clipped = np.clip(pca_applied, -2.0, 2.0)
quantized = ((clipped - -2.0) * (255.0 / (2.0 - -2.0)))
np.save(sys.argv[3], quantized.astype(np.uint8))
"#;
    let status = Command::new("python3")
        .args(["-c", script])
        .arg(models.path().join("vggish_pca_params.npz"))
        .arg(&raw_npy)
        .arg(&out_npy)
        .status()
        .expect("python3 with numpy (pip install -r tests/python/requirements.txt)");
    assert!(status.success());
    let reference: tract_ndarray::Array2<u8> = ndarray_npy::read_npy(&out_npy).unwrap();
    for (i, q) in ours.iter().enumerate() {
        assert_eq!(
            q.as_slice(),
            reference.row(i).to_vec().as_slice(),
            "window {i}"
        );
    }

    // The backbone hands out exactly the dequantized bytes.
    let vggish = backbone::load(BackboneKind::Vggish, &models).unwrap();
    for (patch, q) in patches.iter().zip(&ours[..network_windows]) {
        let out = vggish.embed(patch).unwrap();
        assert!(out.scores.is_none());
        let expected: Vec<f32> = q.iter().map(|&b| dequantize(b)).collect();
        assert_eq!(out.embedding, expected);
    }
}

/// `count` raw embeddings `μ + Eᵀ(E·Eᵀ)⁻¹z`, `z` uniform in [-2.5, 2.5] from a fixed-seed generator.
fn embeddings_spread_over_the_quantizer(pca_file: &Path, count: usize) -> Vec<Vec<f32>> {
    use tract_ndarray::{Array1, Array2, ArrayD};
    let mut npz = ndarray_npy::NpzReader::new(std::fs::File::open(pca_file).unwrap()).unwrap();
    let eigen: Array2<f64> = npz.by_name("pca_eigen_vectors").unwrap();
    let means: ArrayD<f64> = npz.by_name("pca_means").unwrap();
    let means: Array1<f64> = means.iter().copied().collect();
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut uniform = move || {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (state >> 11) as f64 / (1u64 << 53) as f64
    };
    (0..count)
        .map(|_| {
            // The rows of E are orthogonal but not unit length (E·Eᵀ is diagonal): scale z by
            // the squared row norms so that E(x - μ) = z.
            let z: Array1<f64> = (0..128)
                .map(|i| (uniform() * 5.0 - 2.5) / eigen.row(i).dot(&eigen.row(i)))
                .collect();
            let x = &means + &eigen.t().dot(&z);
            x.iter().map(|&v| v as f32).collect()
        })
        .collect()
}

#[test]
fn analyze_runs_the_whole_vggish_path_on_real_music() {
    let work = tempfile::tempdir().unwrap();
    let models = vggish_models(work.path());
    let out = Command::new(env!("CARGO_BIN_EXE_moodscope"))
        .args([
            "analyze",
            "--backbone",
            "vggish",
            "--format",
            "json",
            "--models",
        ])
        .arg(models.path())
        .arg(common::music("hr3-crossroads.ogg"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["backbone"], "vggish");
    // VGGish has no calibrated five-mood readout: the default mood set reads the six-mood
    // AudioSet head (with a note on stderr).
    assert_eq!(
        doc["labels"],
        serde_json::json!(["Happy", "Sad", "Angry", "Scary", "Calm", "Exciting"])
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("note"));
    let windows = doc["files"][0]["windows"].as_array().unwrap();
    // 48 s of music in 0.96 s windows, no overlap.
    assert!(
        (48..=50).contains(&windows.len()),
        "{} windows",
        windows.len()
    );
    for w in windows {
        let p: Vec<f64> = w["probabilities"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect();
        assert_eq!(p.len(), 6);
        assert!((p.iter().sum::<f64>() - 1.0).abs() < 1e-4, "{w}");
    }
}
