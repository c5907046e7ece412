//! `convert_yamnet` on the official `yamnet.tflite`, checked on real music against two references
//! made by `tests/python/convert_yamnet_reference.py` from the same file:
//!
//! - the official TFLite interpreter (ai-edge-litert), fed real music through the graph's own
//!   waveform input; the log-mel patches the graph computed inside are read back and are what the
//!   converted model is fed here, so both see exactly the same patches;
//! - a float64 numpy re-computation of the core network from the file's dequantized weights,
//!   which that script first checks layer by layer against the interpreter's own intermediate
//!   tensors (it exits non-zero if any layer disagrees).
//!
//! Needs: the model mirror (`MOODSCOPE_MODEL_MIRROR`, else `../shared/models`),
//! `hyperrogue-music` (Debian) and `python3 -m pip install -r tests/python/requirements-convert.txt`.

mod common;

use std::path::Path;

use moodscope_convert::{convert_yamnet, ConvertError};
use tract_onnx::prelude::tract_ndarray::{Axis, Ix2};

/// 0-based row of "Music" in `yamnet_class_map.csv`.
const MUSIC: usize = 132;

/// Converted (float32, in tract) against the float64 re-computation. The two compute the same
/// arithmetic and differ only by float32 rounding through 28 layers, so this is tight (measured:
/// 8.3e-7 in a score, 3.7e-6 in an embedding value, whose values reach 2.9); a wrong padding,
/// stride, activation, weight layout or dequantization scale moves values by orders of magnitude
/// more.
const FLOAT_TOLERANCE_SCORES: f32 = 2e-5;
const FLOAT_TOLERANCE_EMBEDDING: f32 = 1e-4;

/// Converted against the official interpreter. Looser, because the interpreter does not compute
/// in float: 25 of YAMNet's 28 weight tensors are stored as int8 (all 13 pointwise convolutions,
/// 11 of the 13 depthwise ones, the dense layer), and TFLite runs such ops with "hybrid" kernels
/// that also quantize each op's *input* to int8 on the fly (per example, asymmetric). That input
/// rounding is absent from the float model and from the converted one (whose weights are
/// dequantized once, exactly), and it accumulates through the 25 hybrid layers. The reference
/// script shows that this is the whole gap: emulating the input quantization reproduces every
/// interpreter layer from its own input. Measured on this music (float64 re-computation vs
/// interpreter, 36 patches): a score differs by at most 0.097 (one Music score near the middle of
/// the sigmoid; the next largest 0.039), 7.7e-5 on average; an embedding value by at most 0.23
/// (values reach 2.9); each patch's embedding keeps a cosine similarity of at least 0.9945.
const INTERPRETER_TOLERANCE_SCORES: f32 = 0.25;
const INTERPRETER_TOLERANCE_MEAN_SCORES: f32 = 1e-3;
const INTERPRETER_TOLERANCE_EMBEDDING: f32 = 0.6;
const INTERPRETER_MIN_EMBEDDING_COSINE: f32 = 0.98;

#[test]
fn converted_yamnet_agrees_with_the_official_model_on_real_music() {
    common::require_python_modules(&["numpy", "resampy", "soundfile", "ai_edge_litert"]);
    let mirror = common::model_mirror();
    let tflite = mirror.join("yamnet.tflite");
    let music = common::music(&["hr3-caves.ogg", "hr-savino-ocean.ogg", "hr3-hell.ogg"]);
    let dir = tempfile::tempdir().unwrap();
    let onnx = dir.path().join("yamnet.onnx");

    let summary = convert_yamnet(&tflite, &onnx).unwrap_or_else(|e| panic!("{e}"));
    eprintln!("{summary:?}");
    assert!(onnx.is_file());
    assert_eq!(summary.onnx, onnx);
    assert_eq!(summary.onnx_bytes, std::fs::metadata(&onnx).unwrap().len());
    assert_eq!(
        summary.source_sha256,
        "2d5e1e0577beb1fd3b6ba4cf89a7b8813340added8dae72f64fe8cd18731dd4a"
    );
    // Int8 in the file (weight-only, per channel): the 13 pointwise (1x1) convolutions, 11 of
    // the 13 depthwise ones (all but the first two) and the dense layer. The mel matrix, also
    // int8, belongs to the in-graph front end, which is not converted.
    assert_eq!(summary.dequantized_tensors, 25);
    // Every weight and bias of the 28 layers from the first CONV_2D to the dense layer.
    assert_eq!(summary.parameters, 3_729_481);
    assert!(!dir.path().join("yamnet.onnx.part").exists());

    let reference = dir.path().join("reference");
    let mut args: Vec<&std::ffi::OsStr> = vec![
        "--tflite".as_ref(),
        tflite.as_os_str(),
        "--out".as_ref(),
        reference.as_os_str(),
        "--offset".as_ref(),
        "20".as_ref(),
        "--seconds".as_ref(),
        "6".as_ref(),
    ];
    for track in &music {
        args.push("--music".as_ref());
        args.push(track.as_os_str());
    }
    common::run_python("convert_yamnet_reference.py", &args);

    let patches = common::read_npy(&reference.join("patches.npy"));
    assert_eq!(&patches.shape()[1..], [96, 64]);
    // 6 s of each track: 11 patches of 0.96 s at a 0.48 s hop.
    assert!(patches.shape()[0] >= 30, "{} patches", patches.shape()[0]);
    let outputs = common::run_in_tract(&onnx, &patches);
    let [scores, embedding] = outputs.as_slice() else {
        panic!("{} outputs, expected scores and embedding", outputs.len());
    };

    let mut report = Vec::new();
    for (what, actual, file, tolerance) in [
        ("scores", scores, "float_scores.npy", FLOAT_TOLERANCE_SCORES),
        (
            "embedding",
            embedding,
            "float_embedding.npy",
            FLOAT_TOLERANCE_EMBEDDING,
        ),
        (
            "scores",
            scores,
            "interpreter_scores.npy",
            INTERPRETER_TOLERANCE_SCORES,
        ),
        (
            "embedding",
            embedding,
            "interpreter_embedding.npy",
            INTERPRETER_TOLERANCE_EMBEDDING,
        ),
    ] {
        let expected = common::read_npy(&reference.join(file));
        let (diff, at) = common::max_abs_diff(actual, &expected);
        let line = format!(
            "{what} vs {file}: max abs diff {diff:.3e} at {at:?} (tolerance {tolerance:e})"
        );
        eprintln!("{line}");
        report.push((diff <= tolerance, line));
    }
    let interpreter = common::read_npy(&reference.join("interpreter_scores.npy"))
        .into_dimensionality::<Ix2>()
        .unwrap();
    let mean_diff = (scores - &interpreter).mapv(f32::abs).mean().unwrap();
    let line = format!(
        "scores vs interpreter_scores.npy: mean abs diff {mean_diff:.3e} (tolerance \
         {INTERPRETER_TOLERANCE_MEAN_SCORES:.0e})"
    );
    eprintln!("{line}");
    report.push((mean_diff <= INTERPRETER_TOLERANCE_MEAN_SCORES, line));
    let interpreter_embedding = common::read_npy(&reference.join("interpreter_embedding.npy"))
        .into_dimensionality::<Ix2>()
        .unwrap();
    let cosine = embedding
        .axis_iter(Axis(0))
        .zip(interpreter_embedding.axis_iter(Axis(0)))
        .map(|(a, b)| a.dot(&b) / (a.dot(&a).sqrt() * b.dot(&b).sqrt()))
        .fold(f32::INFINITY, f32::min);
    let line = format!(
        "embedding vs interpreter_embedding.npy: lowest cosine similarity of a patch {cosine:.4} \
         (at least {INTERPRETER_MIN_EMBEDDING_COSINE})"
    );
    eprintln!("{line}");
    report.push((cosine >= INTERPRETER_MIN_EMBEDDING_COSINE, line));
    let failed: Vec<&str> = report
        .iter()
        .filter(|(ok, _)| !ok)
        .map(|(_, l)| l.as_str())
        .collect();
    assert!(
        failed.is_empty(),
        "out of tolerance:\n{}",
        failed.join("\n")
    );

    // The interpreter and the converted model rank the classes of every patch alike.
    let top = |row: tract_onnx::prelude::tract_ndarray::ArrayView1<f32>| {
        row.iter()
            .enumerate()
            .max_by(|a, b| a.1.total_cmp(b.1))
            .map(|(i, _)| i)
            .unwrap()
    };
    let same_top = scores
        .axis_iter(Axis(0))
        .zip(interpreter.axis_iter(Axis(0)))
        .filter(|(a, b)| top(*a) == top(*b))
        .count();
    assert!(
        same_top * 10 >= scores.nrows() * 9,
        "the top class agrees on only {same_top} of {} patches",
        scores.nrows()
    );

    // It is music: Music is among the top classes of every track, and the top class overall.
    let per_track = scores.nrows() / music.len();
    for (t, track) in music.iter().enumerate() {
        let mean = scores
            .slice(tract_onnx::prelude::tract_ndarray::s![
                t * per_track..(t + 1) * per_track,
                ..
            ])
            .mean_axis(Axis(0))
            .unwrap();
        let mut order: Vec<usize> = (0..mean.len()).collect();
        order.sort_by(|&a, &b| mean[b].total_cmp(&mean[a]));
        eprintln!(
            "{}: top classes {:?}, Music {:.3}",
            track.display(),
            &order[..5],
            mean[MUSIC]
        );
        assert!(
            order[..3].contains(&MUSIC),
            "Music (row {MUSIC}) is not among the top 3 classes of {}: {:?}",
            track.display(),
            &order[..5]
        );
    }
    let mean = scores.mean_axis(Axis(0)).unwrap();
    assert_eq!(
        top(mean.view()),
        MUSIC,
        "Music is not the top class of the music"
    );
}

#[test]
fn unusable_tflite_files_give_clear_errors_and_no_output() {
    let mirror = common::model_mirror();
    let bytes = std::fs::read(mirror.join("yamnet.tflite")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("yamnet.onnx");
    let leaves_nothing = |out: &Path| {
        let names: Vec<_> = std::fs::read_dir(out.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .filter(|n| n.to_string_lossy().starts_with("yamnet.onnx"))
            .collect();
        assert!(names.is_empty(), "left behind: {names:?}");
    };

    // Missing.
    let err = convert_yamnet(&dir.path().join("absent.tflite"), &out).unwrap_err();
    assert!(matches!(err, ConvertError::Read { .. }), "{err}");
    assert!(err.to_string().contains("absent.tflite"), "{err}");
    leaves_nothing(&out);

    // Truncated to half its size.
    let truncated = dir.path().join("truncated.tflite");
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    let err = convert_yamnet(&truncated, &out).unwrap_err();
    let message = err.to_string();
    eprintln!("truncated: {message}");
    assert!(matches!(err, ConvertError::Tflite { .. }), "{message}");
    assert!(message.contains("truncated.tflite") && message.contains("not a TFLite flatbuffer"));
    leaves_nothing(&out);

    // Not a model at all.
    let text = dir.path().join("notes.tflite");
    std::fs::write(&text, "Happy, Sad, Angry, Scary\n".repeat(100)).unwrap();
    let err = convert_yamnet(&text, &out).unwrap_err();
    eprintln!("not a model: {err}");
    assert!(matches!(err, ConvertError::Tflite { .. }), "{err}");
    leaves_nothing(&out);
}
