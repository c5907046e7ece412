//! Batched inference (`Backbone::embed_batch`: the plan with `BackboneKind::batch_windows`
//! windows per run that offline work uses, the last run padded) gives every window the bits the
//! one-window plan (`Backbone::embed`, the plugin's real-time path) gives it, whatever the
//! number of windows asked for and the other windows in the run. Real music, YAMNet as installed,
//! VGGish with seeded weights of the official shapes (the official checkpoint cannot be fetched
//! here; the arithmetic does not depend on the weights' values).
//!
//! Needs `cargo xtask install-models` and `apt-get install hyperrogue-music`.

mod common;

use moodscope::backbone::{self, Backbone, BackboneKind, BackboneOutput};
use moodscope::features::{log_mel_patches, resample_to_model_rate};
use moodscope::models::ModelDir;

/// Windows asked for at once: one (a run of copies), sizes that leave a padded remainder, a
/// whole run, and several runs.
const BATCHES: [usize; 5] = [1, 3, 8, 13, 32];

fn patches(kind: BackboneKind, track: &str, seconds: usize) -> Vec<Vec<f32>> {
    let (samples, rate) = moodscope::decode::read_mono_file(&common::music(track)).unwrap();
    let resampled: Vec<f32> = resample_to_model_rate(&samples[..rate as usize * seconds], rate)
        .unwrap()
        .into_iter()
        .map(|s| s as f32)
        .collect();
    log_mel_patches(&resampled, kind.log_offset(), 24)
        .unwrap()
        .into_iter()
        .map(|p| p.data)
        .collect()
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

fn flat(o: &BackboneOutput) -> Vec<f32> {
    let mut v = o.embedding.clone();
    v.extend(o.scores.iter().flatten());
    v
}

/// Every batch size's outputs, bit for bit the one-window plan's.
fn assert_batches_match(net: &dyn Backbone, patches: &[Vec<f32>]) {
    let one: Vec<BackboneOutput> = patches.iter().map(|p| net.embed(p).unwrap()).collect();
    for batch in BATCHES {
        let mut batched = Vec::new();
        for chunk in patches.chunks(batch) {
            let refs: Vec<&[f32]> = chunk.iter().map(Vec::as_slice).collect();
            let out = net.embed_batch(&refs).unwrap();
            assert_eq!(out.len(), chunk.len(), "batch of {batch}");
            batched.extend(out);
        }
        assert_eq!(batched.len(), one.len());
        for (i, (o, b)) in one.iter().zip(&batched).enumerate() {
            assert_eq!(
                bits(&flat(o)),
                bits(&flat(b)),
                "{:?}, window {i}, {batch} at once: differs from the one-window plan",
                net.kind()
            );
        }
    }
    assert!(net.embed_batch(&[]).unwrap().is_empty());
    assert!(net.embed_batch(&[&patches[0][1..]]).is_err());
}

#[test]
fn yamnet_batches_give_the_one_window_bits() {
    let models = common::installed_models("yamnet.onnx");
    let net = backbone::load(BackboneKind::Yamnet, &ModelDir::new(&models)).unwrap();
    let patches = patches(BackboneKind::Yamnet, "hr3-caves.ogg", 20);
    assert!(patches.len() >= 70, "{} patches", patches.len());
    assert_batches_match(net.as_ref(), &patches);
}

#[test]
fn vggish_batches_give_the_one_window_bits() {
    let installed = common::installed_models("vggish_pca_params.npz");
    let work = tempfile::tempdir().unwrap();
    let dir = work.path().join("models");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(
        installed.join("vggish_pca_params.npz"),
        dir.join("vggish_pca_params.npz"),
    )
    .unwrap();
    moodscope_convert::write_vggish_with_seeded_weights(5, &dir.join("vggish.onnx")).unwrap();
    let net = backbone::Vggish::load(&ModelDir::new(&dir)).unwrap();
    let patches = patches(BackboneKind::Vggish, "hr3-jungle.ogg", 12);
    assert!(patches.len() >= 40, "{} patches", patches.len());
    // The postprocessed bytes could hide a small difference: compare the raw network outputs too.
    let raw_one: Vec<Vec<f32>> = patches
        .iter()
        .map(|p| net.raw_embedding(p).unwrap())
        .collect();
    for batch in BATCHES {
        let raw: Vec<Vec<f32>> = patches
            .chunks(batch)
            .flat_map(|chunk| {
                let refs: Vec<&[f32]> = chunk.iter().map(Vec::as_slice).collect();
                net.raw_embeddings(&refs).unwrap()
            })
            .collect();
        for (i, (a, b)) in raw_one.iter().zip(&raw).enumerate() {
            assert_eq!(bits(a), bits(b), "VGGish raw, window {i}, batch of {batch}");
        }
    }
    assert_batches_match(&net, &patches);
}

/// The offline analyser (`moodscope analyze`: batches, 8 s blocks, several threads, pipelined
/// through `EmbedPool`)
/// reads every window of real music with the bits the plugin's analyser (one window per run, one
/// thread, the host's 512-sample blocks) reads.
#[test]
fn the_offline_analyser_reads_the_plugins_bits_whatever_its_threads_and_blocks() {
    use moodscope::engine::{Analyser, AnalyserConfig};
    let models = ModelDir::new(common::installed_models("yamnet.onnx"));
    let (samples, rate) =
        moodscope::decode::read_mono_file(&common::music("hr3-caves.ogg")).unwrap();
    let samples = &samples[..rate as usize * 40];
    let read = |mut analyser: Analyser, threads: usize, block: usize| {
        analyser.set_threads(threads);
        let mut out = Vec::new();
        for chunk in samples.chunks(block) {
            analyser.push(chunk, &mut out).unwrap();
        }
        analyser.finish(&mut out).unwrap();
        out
    };
    let config = AnalyserConfig::new(rate, BackboneKind::Yamnet);
    let render = read(Analyser::new(config.clone(), &models).unwrap(), 1, 512);
    assert!(render.len() >= 75, "{} windows", render.len());
    for (threads, block) in [
        (1, 512),
        (1, rate as usize * 8),
        (2, rate as usize * 8),
        (3, 4321),
    ] {
        let offline = Analyser::new_offline(config.clone(), &models).unwrap();
        let analyzed = read(offline, threads, block);
        assert_reads_the_same(
            &render,
            &analyzed,
            &format!("{threads} threads, blocks of {block}"),
        );
    }
    // A reset halfway through a stream, with runs still being embedded by the helpers, starts a
    // new stream: what comes after reads as if nothing came before.
    let mut offline = Analyser::new_offline(config.clone(), &models).unwrap();
    offline.set_threads(2);
    let (mut dropped, mut again) = (Vec::new(), Vec::new());
    for chunk in samples[..samples.len() / 2].chunks(rate as usize * 3) {
        offline.push(chunk, &mut dropped).unwrap();
    }
    offline.reset();
    for chunk in samples.chunks(rate as usize * 8) {
        offline.push(chunk, &mut again).unwrap();
    }
    offline.finish(&mut again).unwrap();
    assert_reads_the_same(&render, &again, "after a reset");
}

/// The same windows, with the same bits of probabilities and music presence.
fn assert_reads_the_same(
    expected: &[moodscope::engine::WindowReading],
    actual: &[moodscope::engine::WindowReading],
    context: &str,
) {
    assert_eq!(actual.len(), expected.len(), "{context}");
    for (a, b) in expected.iter().zip(actual) {
        assert_eq!(a.index, b.index, "{context}");
        assert_eq!(
            bits(&a.probabilities),
            bits(&b.probabilities),
            "window {}, {context}",
            a.index
        );
        assert_eq!(
            a.presence.to_bits(),
            b.presence.to_bits(),
            "window {}, {context}",
            a.index
        );
    }
}
