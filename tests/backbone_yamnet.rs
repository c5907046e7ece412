//! The YAMNet backbone as Moodscope runs it (`backbone::load`: tract, convolutions rewritten
//! channels-last for speed) computes what the converted ONNX file computes when tract runs it as
//! written (the plan `crates/convert/tests/yamnet_conversion.rs` checks against the official
//! TFLite model), on real music.
//!
//! Needs `cargo xtask install-models` and `apt-get install hyperrogue-music`.

mod common;

use moodscope::backbone::{self, BackboneKind};
use moodscope::features::{log_mel_patches, resample_to_model_rate, YAMNET_LOG_OFFSET};
use moodscope::models::ModelDir;
use tract_onnx::prelude::*;

/// Largest difference allowed, scores and embedding alike: well inside the conversion test's
/// 2e-5 against the float reference (measured here: 0, the same sums in the same order).
const TOLERANCE: f32 = 1e-6;

#[test]
fn the_channels_last_plan_computes_what_the_onnx_file_says() {
    let models = common::installed_models("yamnet.onnx");
    let (samples, rate) =
        moodscope::decode::read_mono_file(&common::music("hr3-caves.ogg")).unwrap();
    let resampled: Vec<f32> = resample_to_model_rate(&samples[..rate as usize * 10], rate)
        .unwrap()
        .into_iter()
        .map(|s| s as f32)
        .collect();
    let patches = log_mel_patches(&resampled, YAMNET_LOG_OFFSET, 48).unwrap();
    assert!(patches.len() >= 15, "{} patches", patches.len());

    let as_written = tract_onnx::onnx()
        .model_for_path(models.join("yamnet.onnx"))
        .unwrap()
        .with_input_fact(0, f32::fact([1, 96, 64]).into())
        .unwrap()
        .into_optimized()
        .unwrap()
        .into_runnable()
        .unwrap();
    let yamnet = backbone::load(BackboneKind::Yamnet, &ModelDir::new(&models)).unwrap();

    let mut worst = 0.0f32;
    for (i, patch) in patches.iter().enumerate() {
        let input = Tensor::from_shape(&[1, 96, 64], &patch.data).unwrap();
        let outputs = as_written.run(tvec![input.into()]).unwrap();
        let flat = |n: usize| -> Vec<f32> {
            let out = outputs
                .iter()
                .find(|o| o.len() == n)
                .unwrap_or_else(|| panic!("no output of {n} values"));
            out.to_plain_array_view::<f32>()
                .unwrap()
                .iter()
                .copied()
                .collect()
        };
        let ours = yamnet.embed(&patch.data).unwrap();
        let scores = ours.scores.expect("YAMNet gives scores");
        for (what, ours, expected) in [
            ("scores", scores, flat(521)),
            ("embedding", ours.embedding, flat(1024)),
        ] {
            assert_eq!(ours.len(), expected.len(), "{what}");
            let diff = ours
                .iter()
                .zip(&expected)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0f32, f32::max);
            assert!(
                diff <= TOLERANCE,
                "window {i}, {what}: max abs diff {diff:e} (tolerance {TOLERANCE:e})"
            );
            worst = worst.max(diff);
        }
    }
    println!("{} windows, max abs diff {worst:e}", patches.len());
}
