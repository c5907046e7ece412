//! `convert_vggish` end to end on checkpoints TensorFlow itself wrote.
//!
//! The official `vggish_model.ckpt` cannot be fetched from these machines, so
//! `tests/python/convert_vggish_reference.py` builds VGGish in `tf.compat.v1` as
//! `vggish_slim.py` defines it, under the official variable names, with seeded weights, and saves
//! it with TensorFlow's own `Saver` as a V1 checkpoint (the official file's format) and as a V2
//! one, plus two checkpoints with the wrong variables; it also writes TensorFlow's embeddings of
//! real-music log-mel patches. Here the converted ONNX must compute those embeddings in tract,
//! and every broken checkpoint must be refused with a message that says what is wrong, leaving no
//! output file.
//!
//! Needs: `hyperrogue-music` (Debian) and
//! `python3 -m pip install -r tests/python/requirements-convert.txt` (TensorFlow among them).
//! About 1 GB of temporary files.

mod common;

use std::path::{Path, PathBuf};
use std::time::Instant;

use moodscope_convert::{convert_vggish, ConvertError};

/// Converted (tract, float32) against TensorFlow (float32, oneDNN off), relative to the largest
/// embedding value. Both compute the same float32 arithmetic but sum in different orders: fc1_1
/// alone sums 12,288 products per output, and the whole network about 850 M multiply-adds per
/// patch, so agreement is to float32 rounding, not bit for bit. Measured: 8.4e-5 at worst with
/// values up to 28, i.e. 3.0e-6 of the largest value. A wrong weight layout (HWIO, the NHWC
/// flatten order of fc1_1), padding or pool changes the embedding by the order of the values
/// themselves (leaving fc1_1's rows in NHWC order: a difference of 30).
const RELATIVE_TOLERANCE: f32 = 3e-5;

#[test]
fn converted_vggish_computes_what_tensorflow_computes_and_bad_checkpoints_are_refused() {
    common::require_python_modules(&["numpy", "resampy", "soundfile", "tensorflow"]);
    let music = common::music(&["hr3-caves.ogg", "hr3-hell.ogg"]);
    let dir = tempfile::tempdir().unwrap();
    let ckpts = dir.path().join("checkpoints");
    let mut args: Vec<&std::ffi::OsStr> = vec![
        "--out".as_ref(),
        ckpts.as_os_str(),
        "--offset".as_ref(),
        "30".as_ref(),
        "--seconds".as_ref(),
        "4".as_ref(),
    ];
    for track in &music {
        args.push("--music".as_ref());
        args.push(track.as_os_str());
    }
    let reference = common::run_python("convert_vggish_reference.py", &args);
    let patches = common::read_npy(&ckpts.join("patches.npy"));
    let expected = common::read_npy(&ckpts.join("embeddings.npy"));
    assert_eq!(patches.shape()[0], expected.shape()[0]);
    assert_eq!(expected.shape()[1], 128);
    // 4 s of each track (4 patches of 0.96 s each) and 3 random patches.
    assert_eq!(reference["music_patches"], 8);
    let scale = expected.iter().fold(0f32, |m, v| m.max(v.abs()));
    assert!(
        scale > 1.0,
        "TensorFlow's embeddings are degenerate (max |value| {scale})"
    );

    // V1, the official format, and V2, by prefix and by index file: the same network.
    let out = dir.path().join("onnx");
    std::fs::create_dir(&out).unwrap();
    let mut embeddings = Vec::new();
    for (name, source) in [
        ("v1", ckpts.join("vggish_v1.ckpt")),
        ("v2-prefix", ckpts.join("vggish_v2.ckpt")),
        ("v2-index", ckpts.join("vggish_v2.ckpt.index")),
    ] {
        let onnx = out.join(format!("{name}.onnx"));
        let start = Instant::now();
        let summary = convert_vggish(&source, &onnx)
            .unwrap_or_else(|e| panic!("converting {}: {e}", source.display()));
        eprintln!(
            "{name}: converted in {:.1} s: {summary:?}",
            start.elapsed().as_secs_f64()
        );
        assert_eq!(summary.parameters, 72_141_184);
        assert_eq!(summary.dequantized_tensors, 0);
        let hashed = if name == "v1" {
            source.clone()
        } else {
            ckpts.join("vggish_v2.ckpt.index")
        };
        assert_eq!(
            summary.source_sha256,
            moodscope_convert::sha256_file(&hashed).unwrap()
        );
        let outputs = common::run_in_tract(&onnx, &patches);
        assert_eq!(outputs.len(), 1, "VGGish has one output");
        let (diff, at) = common::max_abs_diff(&outputs[0], &expected);
        eprintln!(
            "{name}: max abs diff to TensorFlow {diff:.3e} at {at:?}, {:.2e} of the largest \
             value {scale:.2} (tolerance {RELATIVE_TOLERANCE:.0e})",
            diff / scale
        );
        assert!(
            diff <= RELATIVE_TOLERANCE * scale,
            "{name}: the converted model differs from TensorFlow by {diff} at {at:?} (largest \
             value {scale}; tolerance {RELATIVE_TOLERANCE} of it)"
        );
        embeddings.push(outputs.into_iter().next().unwrap());
        // The weights live beside the graph (ONNX external data), so that loading holds one
        // copy of them: the `.onnx` file is the graph and the weights under 1 MiB.
        let weights = moodscope_convert::external_data_path(&onnx);
        let (graph_bytes, weight_bytes) = (
            std::fs::metadata(&onnx).unwrap().len(),
            std::fs::metadata(&weights).unwrap().len(),
        );
        assert!(
            graph_bytes < 1 << 20 && graph_bytes + weight_bytes >= 4 * 72_141_184,
            "{name}: graph {graph_bytes} bytes, weights {weight_bytes} bytes"
        );
        assert_eq!(summary.onnx_bytes, graph_bytes + weight_bytes);
        std::fs::remove_file(&onnx).unwrap();
        std::fs::remove_file(&weights).unwrap();
    }
    assert_eq!(
        embeddings[0], embeddings[1],
        "V1 and V2 of the same weights convert alike"
    );
    assert_eq!(embeddings[1], embeddings[2]);

    refuses_broken_checkpoints(&ckpts, &out);
}

/// Every broken checkpoint gives an error naming the problem and leaves nothing in `out`.
fn refuses_broken_checkpoints(ckpts: &Path, out: &Path) {
    let onnx = out.join("vggish.onnx");
    let refuse = |source: &Path| -> ConvertError {
        let err = match convert_vggish(source, &onnx) {
            Ok(summary) => panic!("{} was converted: {summary:?}", source.display()),
            Err(e) => e,
        };
        eprintln!("{}: {err}", source.file_name().unwrap().to_string_lossy());
        let left: Vec<PathBuf> = std::fs::read_dir(out)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        assert!(left.is_empty(), "a failed conversion left {left:?}");
        err
    };

    // Missing variables: both are named.
    let err = refuse(&ckpts.join("missing_fc1.ckpt"));
    let message = err.to_string();
    let ConvertError::UnexpectedModel { problems, .. } = &err else {
        panic!("not an UnexpectedModel error: {message}");
    };
    assert_eq!(problems.len(), 2, "{message}");
    assert!(
        message.contains("missing_fc1.ckpt") && message.contains("VGGish"),
        "{message}"
    );
    for name in ["vggish/fc1/fc1_1/weights", "vggish/fc1/fc1_2/weights"] {
        assert!(
            message.contains(&format!("`{name}` [")) && message.contains("is missing"),
            "{message}"
        );
    }

    // A wrong shape: the variable, its shape and the expected one.
    let err = refuse(&ckpts.join("wrong_shape.ckpt"));
    let message = err.to_string();
    let ConvertError::UnexpectedModel { problems, .. } = &err else {
        panic!("not an UnexpectedModel error: {message}");
    };
    assert_eq!(
        problems,
        &["variable `vggish/conv2/weights` has shape [3, 3, 64, 32], expected [3, 3, 64, 128]"]
    );

    // Truncated: the official checkpoint cut short (a partial download).
    let v1 = std::fs::read(ckpts.join("vggish_v1.ckpt")).unwrap();
    let truncated = ckpts.join("truncated.ckpt");
    std::fs::write(&truncated, &v1[..v1.len() * 3 / 5]).unwrap();
    let message = refuse(&truncated).to_string();
    assert!(message.contains("truncated.ckpt"), "{message}");
    assert!(message.contains("truncated"), "{message}");
    assert!(
        message.contains(&format!("this file is {} bytes", v1.len() * 3 / 5)),
        "{message}"
    );
    assert!(message.contains("291108469"), "{message}");
    std::fs::remove_file(&truncated).unwrap();

    // Corrupt: one flipped byte in the middle of the values.
    let mut corrupt = v1;
    let middle = corrupt.len() / 2;
    corrupt[middle] ^= 0x01;
    let corrupted = ckpts.join("corrupted.ckpt");
    std::fs::write(&corrupted, &corrupt).unwrap();
    drop(corrupt);
    let message = refuse(&corrupted).to_string();
    assert!(
        message.contains("corrupted.ckpt") && message.contains("checksum mismatch"),
        "{message}"
    );
    std::fs::remove_file(&corrupted).unwrap();

    // A V2 checkpoint whose data shard is cut short.
    let v2 = ckpts.join("cut_v2.ckpt");
    std::fs::copy(
        ckpts.join("vggish_v2.ckpt.index"),
        ckpts.join("cut_v2.ckpt.index"),
    )
    .unwrap();
    let data = std::fs::read(ckpts.join("vggish_v2.ckpt.data-00000-of-00001")).unwrap();
    std::fs::write(
        ckpts.join("cut_v2.ckpt.data-00000-of-00001"),
        &data[..data.len() / 2],
    )
    .unwrap();
    drop(data);
    let message = refuse(&v2).to_string();
    assert!(
        message.contains("cut_v2.ckpt.data-00000-of-00001"),
        "{message}"
    );
    assert!(message.contains("truncated"), "{message}");

    // A V2 checkpoint whose data shard is missing.
    std::fs::remove_file(ckpts.join("cut_v2.ckpt.data-00000-of-00001")).unwrap();
    let message = refuse(&v2).to_string();
    assert!(
        message.contains("cannot read") && message.contains("cut_v2.ckpt.data-00000-of-00001"),
        "{message}"
    );

    // Not a checkpoint: a NumPy file, a text file, and no file at all.
    let message = refuse(&ckpts.join("patches.npy")).to_string();
    assert!(
        message.contains("patches.npy") && message.contains("not a TensorFlow table"),
        "{message}"
    );
    let text = ckpts.join("README.ckpt");
    std::fs::write(&text, "vggish/conv1/weights\n".repeat(10)).unwrap();
    let message = refuse(&text).to_string();
    assert!(
        message.contains("README.ckpt") && message.contains("not a TensorFlow table"),
        "{message}"
    );
    let message = refuse(&ckpts.join("absent.ckpt")).to_string();
    assert!(
        message.contains("cannot read") && message.contains("absent.ckpt"),
        "{message}"
    );
}
