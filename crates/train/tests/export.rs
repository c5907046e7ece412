//! The exported streaming heads (ONNX run by tract, one window at a time, state fed back) give
//! the same probabilities as the trained candle model, to 1e-5, and their metadata follows the
//! `moodscope-head/1` format.

mod common;

use moodscope_train::export::ExportError;
use moodscope_train::{export_head, train, EmbeddingSource, HeadKind, HeadSpec, StreamingHead};

fn quick(mut spec: HeadSpec, epochs: usize) -> HeadSpec {
    spec.epochs = epochs;
    spec
}

#[test]
fn exported_graphs_give_the_trained_models_probabilities() {
    let data = common::mood_task();
    let dir = tempfile::tempdir().unwrap();
    let mut lstm3 = HeadSpec::study_lstm(3);
    lstm3.kind = HeadKind::Lstm {
        layers: 3,
        hidden: 24,
    };
    let mut ensemble = HeadSpec::streaming_lstm();
    ensemble.ensemble = 3;
    let specs = [
        quick(HeadSpec::study_logistic(), 3),
        quick(HeadSpec::clip_mean_logistic(), 3),
        quick(HeadSpec::study_lstm(1), 3),
        quick(lstm3, 2),
        quick(ensemble, 2),
    ];
    // Three clips of different moods, back to back: the state is carried across them.
    let stream: Vec<Vec<f32>> = [0, 80, 200]
        .iter()
        .flat_map(|&i| data.items[i].embeddings.clone())
        .collect();
    for spec in specs {
        let head = train(&data, &spec, &mut |_| {}).unwrap();
        let json = export_head(
            &head,
            dir.path(),
            &spec.name,
            &EmbeddingSource::audioset_vggish(),
            serde_json::json!({}),
        )
        .unwrap();
        let mut streaming = StreamingHead::load(&json).unwrap();
        let expected = head.window_probabilities(&stream).unwrap();
        let got = streaming.run(&stream).unwrap();
        assert_eq!(got.len(), stream.len());
        let mut worst = 0.0f32;
        for (g, e) in got.iter().zip(&expected) {
            assert_eq!(g.len(), 4);
            assert!((g.iter().sum::<f32>() - 1.0).abs() < 1e-5);
            for (a, b) in g.iter().zip(e) {
                worst = worst.max((a - b).abs());
            }
        }
        assert!(worst < 1e-5, "{}: largest difference {worst}", spec.name);
        // Whole clips from a fresh state, decided as the metadata says, agree with the model too.
        let clip_level = head
            .clip_probabilities(&data.subset(&[0, 80, 200]))
            .unwrap();
        for (i, &item) in [0, 80, 200].iter().enumerate() {
            let p = streaming.clip(&data.items[item].embeddings).unwrap();
            for (a, b) in p.iter().zip(&clip_level[i]) {
                assert!(
                    (a - b).abs() < 1e-5,
                    "{}: clip {item}: {p:?} vs {:?}",
                    spec.name,
                    clip_level[i]
                );
            }
        }
        // Stateless heads give a window the same answer whatever came before; LSTM heads do not.
        streaming.reset();
        let fresh = streaming.step(&stream[12]).unwrap();
        let stateful = matches!(spec.kind, HeadKind::Lstm { .. });
        assert_eq!(fresh != got[12], stateful, "{}", spec.name);
    }
}

#[test]
fn metadata_follows_the_head_format() {
    let data = common::mood_task();
    let dir = tempfile::tempdir().unwrap();
    let mut spec = quick(HeadSpec::streaming_lstm(), 1);
    spec.ensemble = 2;
    let head = train(&data, &spec, &mut |_| {}).unwrap();
    let figures = serde_json::json!({"cross_validation": {"accuracy": 0.5}});
    let json = export_head(
        &head,
        dir.path(),
        "audioset-test",
        &EmbeddingSource::audioset_vggish(),
        figures,
    )
    .unwrap();
    assert_eq!(json, dir.path().join("audioset-test.json"));
    assert!(dir.path().join("audioset-test.onnx").is_file());
    let meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(meta["format"], "moodscope-head/1");
    assert_eq!(meta["name"], "audioset-test");
    assert_eq!(meta["kind"], "lstm");
    assert_eq!(
        meta["labels"],
        serde_json::json!(["Happy", "Sad", "Angry", "Scary"])
    );
    assert_eq!(meta["backbone"], "vggish");
    assert_eq!(meta["embedding_dim"], 128);
    assert_eq!(meta["window_seconds"], 0.96);
    assert_eq!(meta["hop_seconds"], 0.96);
    // Two members of 64 units stream as one LSTM of 128.
    assert_eq!(
        meta["lstm"],
        serde_json::json!({"layers": 1, "hidden": 128})
    );
    assert_eq!(meta["normalisation"]["mean"].as_array().unwrap().len(), 128);
    assert_eq!(meta["normalisation"]["std"].as_array().unwrap().len(), 128);
    assert_eq!(meta["clip_decision"], "last_window");
    assert_eq!(meta["training"]["data_sha256"], data.sha256());
    assert_eq!(
        meta["training"]["figures"]["cross_validation"]["accuracy"],
        0.5
    );
    assert_eq!(meta["training"]["spec"]["ensemble"], 2);

    let logistic = train(&data, &quick(HeadSpec::study_logistic(), 1), &mut |_| {}).unwrap();
    let json = export_head(
        &logistic,
        dir.path(),
        "lr",
        &EmbeddingSource::audioset_vggish(),
        serde_json::Value::Null,
    )
    .unwrap();
    let meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(meta["kind"], "logistic");
    assert!(meta.get("lstm").is_none());
    assert_eq!(meta["clip_decision"], "mean_probabilities");

    // Same training, same bytes.
    let again = train(&data, &spec, &mut |_| {}).unwrap();
    let json2 = export_head(
        &again,
        dir.path(),
        "audioset-test-2",
        &EmbeddingSource::audioset_vggish(),
        serde_json::json!({"cross_validation": {"accuracy": 0.5}}),
    )
    .unwrap();
    let onnx = |j: &std::path::Path| std::fs::read(j.with_extension("onnx")).unwrap();
    assert!(onnx(&json2) != Vec::<u8>::new());
    let strip_name = |j: &std::path::Path| {
        std::fs::read_to_string(j)
            .unwrap()
            .replace("audioset-test-2", "audioset-test")
    };
    assert_eq!(
        strip_name(&json2),
        strip_name(&dir.path().join("audioset-test.json"))
    );

    assert!(matches!(
        export_head(
            &logistic,
            dir.path(),
            "../escape",
            &EmbeddingSource::audioset_vggish(),
            serde_json::Value::Null
        ),
        Err(ExportError::BadName(_))
    ));
}

#[test]
fn broken_head_files_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("broken.json");
    let missing = StreamingHead::load(&json).err().unwrap().to_string();
    assert!(missing.contains("broken.json"), "{missing}");
    std::fs::write(&json, r#"{"format": "something-else/9"}"#).unwrap();
    let err = StreamingHead::load(&json).err().unwrap().to_string();
    assert!(err.contains("broken.json"), "{err}");

    let data = common::mood_task();
    let head = train(&data, &quick(HeadSpec::study_lstm(1), 1), &mut |_| {}).unwrap();
    let json = export_head(
        &head,
        dir.path(),
        "h",
        &EmbeddingSource::audioset_vggish(),
        serde_json::Value::Null,
    )
    .unwrap();
    std::fs::write(json.with_extension("onnx"), b"not an onnx graph").unwrap();
    let err = StreamingHead::load(&json).err().unwrap().to_string();
    assert!(err.contains("h.onnx"), "{err}");
    let head_json = export_head(
        &head,
        dir.path(),
        "ok",
        &EmbeddingSource::audioset_vggish(),
        serde_json::Value::Null,
    )
    .unwrap();
    let mut ok = StreamingHead::load(&head_json).unwrap();
    let err = ok.step(&[0.0; 12]).unwrap_err().to_string();
    assert!(err.contains("12 values") && err.contains("128"), "{err}");
}

#[test]
fn the_clip_mean_regression_runs_per_window_and_decides_clips_exactly() {
    let data = common::mood_task();
    let spec = HeadSpec {
        l2: 0.3,
        ..quick(HeadSpec::clip_mean_logistic(), 20)
    };
    let head = train(&data, &spec, &mut |_| {}).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let json = export_head(
        &head,
        dir.path(),
        "mean",
        &EmbeddingSource::audioset_vggish(),
        serde_json::Value::Null,
    )
    .unwrap();
    let mut streaming = StreamingHead::load(&json).unwrap();
    assert_eq!(streaming.metadata.kind, "logistic");
    let (dim, k) = (head.embedding_dim, head.labels.len());
    let regression = |x: &[f32]| -> Vec<f32> {
        let logits: Vec<f32> = (0..k)
            .map(|c| {
                head.weights.out_b[c]
                    + (0..dim)
                        .map(|j| {
                            head.weights.out_w[c * dim + j] * (x[j] - head.normalisation.mean[j])
                                / head.normalisation.std[j]
                        })
                        .sum::<f32>()
            })
            .collect();
        let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let e: Vec<f32> = logits.iter().map(|l| (l - max).exp()).collect();
        let sum: f32 = e.iter().sum();
        e.iter().map(|v| v / sum).collect()
    };
    for item in [0, 77, 150, 232] {
        let windows = &data.items[item].embeddings;
        // A clip: the regression on its mean embedding, from the per-window graph.
        let mut mean = vec![0.0f32; dim];
        for w in windows {
            for (m, v) in mean.iter_mut().zip(w) {
                *m += v / windows.len() as f32;
            }
        }
        let clip = streaming.clip(windows).unwrap();
        for (a, b) in clip.iter().zip(regression(&mean)) {
            assert!((a - b).abs() < 1e-5, "clip {item}: {clip:?}");
        }
        // A window, as the plugin reads it: the regression on that window alone, whatever came
        // before (stateless).
        for w in windows {
            let got = streaming.step(w).unwrap();
            for (a, b) in got.iter().zip(regression(w)) {
                assert!((a - b).abs() < 1e-5);
            }
        }
    }
}

#[test]
fn a_six_mood_head_shows_calm() {
    let data = common::mood_set_task(moodscope_train::MoodSet::Six);
    let head = train(
        &data,
        &quick(HeadSpec::clip_mean_logistic(), 3),
        &mut |_| {},
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let json = export_head(
        &head,
        dir.path(),
        "six",
        &EmbeddingSource::audioset_vggish(),
        serde_json::Value::Null,
    )
    .unwrap();
    let meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(
        meta["labels"],
        serde_json::json!(["Happy", "Sad", "Angry", "Scary", "Calm", "Exciting"])
    );
    let mut streaming = StreamingHead::load(&json).unwrap();
    let p = streaming.step(&data.items[0].embeddings[0]).unwrap();
    assert_eq!(p.len(), 6);
    let report = moodscope_train::evaluate(&mut streaming, &data).unwrap();
    assert_eq!(report.clips, 343);
    assert!(report.accuracy.value > 0.4, "{report}");
    assert!((0.0..=1.0).contains(&report.smoothed_stream_accuracy));
}
