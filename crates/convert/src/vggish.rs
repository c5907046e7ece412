//! VGGish: a TensorFlow 1 checkpoint of the official VGGish network in, ONNX out.
//!
//! In: a checkpoint in the format of the official `vggish_model.ckpt` (V1, one file; V2 prefixes
//! are read too) holding the variables of `vggish_slim.py` (tensorflow/models,
//! research/audioset/vggish). Out: `patch` f32 [N, 96, 64] in; `embedding` f32 [N, 128] out, the
//! raw output of the `fc2` layer, before PCA whitening and 8-bit quantization (which
//! `vggish_postprocess.py` applies, and the app applies from `vggish_pca_params.npz`).
//!
//! The network, as `define_vggish_slim`: 3x3 convolutions (stride 1, SAME padding, ReLU) and 2x2
//! max pools (stride 2, SAME padding): conv1 64, pool1, conv2 128, pool2, conv3/conv3_{1,2} 256,
//! pool3, conv4/conv4_{1,2} 512, pool4 (-> [N, 6, 4, 512] in TensorFlow's NHWC), flatten in NHWC
//! order, fc1/fc1_{1,2} 4096 with ReLU, fc2 128 without an activation (`activation_fn=None`).
//! Variables are `vggish/<layer>/weights` (convolutions HWIO, dense layers [in, out]) and
//! `vggish/<layer>/biases`; every one is checked (present, float32, exact shape) before anything
//! is converted, and all problems are reported together.
//!
//! The ONNX graph computes in NCHW, so fc1_1's weight rows are permuted once here from NHWC
//! flatten order to NCHW flatten order; the graph is otherwise the same arithmetic.

use std::collections::BTreeMap;
use std::path::Path;

use tract_onnx::prelude::tract_ndarray::{ArrayD, IxDyn};

use crate::onnx::{
    Activation, ConvGeometry, FeatureMap, GraphBuilder, Padding, Vector, WeightsFile,
};
use crate::tf_checkpoint::{Checkpoint, CheckpointError, CheckpointFormat};
use crate::{sha256_file, write_and_check, ConversionSummary, ConvertError};
use crate::{PATCH_BANDS, PATCH_FRAMES};

/// Size in bytes of the official `vggish_model.ckpt`.
pub const VGGISH_OFFICIAL_BYTES: u64 = 291_108_469;
/// SHA-256 of the official `vggish_model.ckpt`.
pub const VGGISH_OFFICIAL_SHA256: &str =
    "0962b1914e3e053922d957c45bc84a78c985765641dc6bceeeb3a7d8dfecfdf6";
/// Length of VGGish's embedding.
pub const VGGISH_EMBEDDING: usize = 128;

/// One layer of `define_vggish_slim`.
enum Layer {
    /// 3x3 convolution, stride 1, SAME, ReLU.
    Conv {
        scope: &'static str,
        inputs: usize,
        outputs: usize,
    },
    /// 2x2 max pool, stride 2, SAME.
    Pool,
    Flatten,
    Dense {
        scope: &'static str,
        inputs: usize,
        outputs: usize,
        relu: bool,
    },
}

const LAYERS: &[Layer] = &[
    Layer::Conv {
        scope: "vggish/conv1",
        inputs: 1,
        outputs: 64,
    },
    Layer::Pool,
    Layer::Conv {
        scope: "vggish/conv2",
        inputs: 64,
        outputs: 128,
    },
    Layer::Pool,
    Layer::Conv {
        scope: "vggish/conv3/conv3_1",
        inputs: 128,
        outputs: 256,
    },
    Layer::Conv {
        scope: "vggish/conv3/conv3_2",
        inputs: 256,
        outputs: 256,
    },
    Layer::Pool,
    Layer::Conv {
        scope: "vggish/conv4/conv4_1",
        inputs: 256,
        outputs: 512,
    },
    Layer::Conv {
        scope: "vggish/conv4/conv4_2",
        inputs: 512,
        outputs: 512,
    },
    Layer::Pool,
    Layer::Flatten,
    Layer::Dense {
        scope: "vggish/fc1/fc1_1",
        inputs: 6 * 4 * 512,
        outputs: 4096,
        relu: true,
    },
    Layer::Dense {
        scope: "vggish/fc1/fc1_2",
        inputs: 4096,
        outputs: 4096,
        relu: true,
    },
    Layer::Dense {
        scope: "vggish/fc2",
        inputs: 4096,
        outputs: VGGISH_EMBEDDING,
        relu: false,
    },
];

/// The variables VGGish needs, with their shapes, in layer order.
fn expected_variables() -> Vec<(String, Vec<usize>)> {
    let mut variables = Vec::new();
    for layer in LAYERS {
        let (scope, weights, outputs) = match *layer {
            Layer::Conv {
                scope,
                inputs,
                outputs,
            } => (scope, vec![3, 3, inputs, outputs], outputs),
            Layer::Dense {
                scope,
                inputs,
                outputs,
                ..
            } => (scope, vec![inputs, outputs], outputs),
            Layer::Pool | Layer::Flatten => continue,
        };
        variables.push((format!("{scope}/weights"), weights));
        variables.push((format!("{scope}/biases"), vec![outputs]));
    }
    variables
}

/// Converts the VGGish checkpoint at `checkpoint` to ONNX at `onnx_out` (see the module
/// documentation for the contract), then checks the written file in tract.
pub fn convert_vggish(
    checkpoint: &Path,
    onnx_out: &Path,
) -> Result<ConversionSummary, ConvertError> {
    let reading = |source: CheckpointError| ConvertError::Checkpoint {
        hint: size_hint(checkpoint, &source),
        source,
    };
    let ckpt = Checkpoint::open(checkpoint).map_err(reading)?;

    let problems = check_variables(&ckpt);
    if !problems.is_empty() {
        return Err(ConvertError::UnexpectedModel {
            path: checkpoint.to_path_buf(),
            network: "VGGish",
            problems,
        });
    }
    let mut values = BTreeMap::new();
    for (name, _) in expected_variables() {
        let array = ckpt.read_f32(&name).map_err(reading)?;
        if let Some(bad) = array.iter().find(|v| !v.is_finite()) {
            return Err(ConvertError::UnexpectedModel {
                path: checkpoint.to_path_buf(),
                network: "VGGish",
                problems: vec![format!("`{name}` holds a non-finite value ({bad})")],
            });
        }
        values.insert(name, array);
    }
    let source_path = match ckpt.format() {
        CheckpointFormat::V1 => checkpoint.to_path_buf(),
        CheckpointFormat::V2 => {
            let s = checkpoint.as_os_str().to_string_lossy();
            if s.ends_with(".index") {
                checkpoint.to_path_buf()
            } else {
                format!("{s}.index").into()
            }
        }
    };
    // The checkpoint's bytes are no longer needed.
    drop(ckpt);
    let source_sha256 = sha256_file(&source_path).map_err(|source| ConvertError::Read {
        path: source_path.clone(),
        source,
    })?;

    let builder = build(values).map_err(|problem| ConvertError::UnexpectedModel {
        path: checkpoint.to_path_buf(),
        network: "VGGish",
        problems: vec![problem],
    })?;
    let official = if source_sha256 == VGGISH_OFFICIAL_SHA256 {
        "the official vggish_model.ckpt"
    } else {
        "a checkpoint with VGGish's variables (not the official vggish_model.ckpt)"
    };
    write_vggish(
        builder,
        "VGGish (tensorflow/models research/audioset/vggish), converted from a TensorFlow 1 \
         checkpoint by moodscope-convert. Input `patch`: log(mel + 0.01), 96 frames of 64 mel \
         bands (125-7500 Hz, 16 kHz audio, 25 ms window, 10 ms hop). Output `embedding`: the 128-D \
         fc2 output before PCA whitening and quantization (vggish_postprocess.py).",
        &[
            ("source", official.into()),
            ("source_sha256", source_sha256.clone()),
        ],
        onnx_out,
        source_sha256,
    )
}

/// Writes VGGish as ONNX with seeded random weights of the official shapes (He-scaled, so that
/// activations stay in a realistic range): the same graph `convert_vggish` writes, for
/// benchmarks and for tests of the VGGish path on machines that cannot fetch the official
/// checkpoint. Its embeddings mean nothing; its cost and its shapes are VGGish's.
pub fn write_vggish_with_seeded_weights(
    seed: u64,
    onnx_out: &Path,
) -> Result<ConversionSummary, ConvertError> {
    // xorshift64*: deterministic, dependency-free; uniform in [-1, 1) scaled to He's variance.
    let mut state = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut uniform = move || {
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        let x = state.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 40;
        x as f32 / (1u64 << 23) as f32 - 1.0
    };
    let mut values = BTreeMap::new();
    for (name, shape) in expected_variables() {
        let fan_in: usize = if name.ends_with("/weights") {
            shape[..shape.len() - 1].iter().product()
        } else {
            1
        };
        // Uniform on [-a, a] has variance a²/3; He wants 2 / fan_in.
        let scale = if name.ends_with("/biases") {
            0.01
        } else {
            (6.0 / fan_in as f32).sqrt()
        };
        let len = shape.iter().product();
        let data: Vec<f32> = (0..len).map(|_| uniform() * scale).collect();
        let array = ArrayD::from_shape_vec(IxDyn(&shape), data).expect("shape matches its length");
        values.insert(name, array);
    }
    let builder = build(values).map_err(|problem| ConvertError::UnexpectedModel {
        path: onnx_out.to_path_buf(),
        network: "VGGish",
        problems: vec![problem],
    })?;
    write_vggish(
        builder,
        "VGGish's network with seeded random weights (not the trained model), written by \
         moodscope-convert for benchmarks and tests. Input `patch` [N, 96, 64]; output `embedding` \
         [N, 128].",
        &[("source", format!("seeded random weights, seed {seed}"))],
        onnx_out,
        String::new(),
    )
}

/// Finishes a built VGGish graph (`doc` and `metadata` into the model), writes it with its
/// weights beside it (ONNX external data: see `onnx::write_model`) and checks it in tract.
fn write_vggish(
    builder: GraphBuilder,
    doc: &str,
    metadata: &[(&str, String)],
    onnx_out: &Path,
    source_sha256: String,
) -> Result<ConversionSummary, ConvertError> {
    let nodes = builder.node_count();
    let parameters = builder.parameter_count();
    let model = builder.finish("vggish", doc, metadata);
    let (onnx_bytes, tract_load) = write_and_check(
        model,
        onnx_out,
        WeightsFile::Beside,
        &[("embedding", VGGISH_EMBEDDING)],
    )?;
    Ok(ConversionSummary {
        onnx: onnx_out.to_path_buf(),
        onnx_bytes,
        source_sha256,
        nodes,
        parameters,
        dequantized_tensors: 0,
        tract_load,
    })
}

/// Every way the checkpoint's variables differ from VGGish's.
fn check_variables(ckpt: &Checkpoint) -> Vec<String> {
    let mut problems = Vec::new();
    for (name, shape) in expected_variables() {
        match ckpt.variable(&name) {
            None => problems.push(format!("variable `{name}` {shape:?} is missing")),
            Some(v) if v.dtype.0 != 1 => {
                problems.push(format!("variable `{name}` is {}, not float32", v.dtype))
            }
            Some(v) if v.shape != shape => problems.push(format!(
                "variable `{name}` has shape {:?}, expected {shape:?}",
                v.shape
            )),
            Some(_) => {}
        }
    }
    if !problems.is_empty() {
        let vggish: Vec<&str> = ckpt
            .variables()
            .map(|v| v.name.as_str())
            .filter(|n| n.starts_with("vggish/"))
            .collect();
        if vggish.is_empty() {
            let some: Vec<&str> = ckpt.variables().map(|v| v.name.as_str()).take(5).collect();
            problems.push(format!(
                "the checkpoint has no `vggish/` variables at all (it has e.g. {some:?})"
            ));
        }
    }
    problems
}

fn build(mut values: BTreeMap<String, ArrayD<f32>>) -> Result<GraphBuilder, String> {
    let mut take = |name: String| {
        values
            .remove(&name)
            .ok_or_else(|| format!("`{name}` was not read"))
    };
    let (mut builder, patch) = GraphBuilder::new("patch", PATCH_FRAMES, PATCH_BANDS);
    let mut map: FeatureMap = patch;
    let mut vector: Option<Vector> = None;
    // The feature map's shape when it was flattened (for fc1_1's row order).
    let mut flattened: Option<FeatureMap> = None;
    let mut pools = 0;
    for layer in LAYERS {
        match *layer {
            Layer::Conv { scope, .. } => {
                // HWIO -> OIHW.
                let weights = take(format!("{scope}/weights"))?
                    .permuted_axes(vec![3, 2, 0, 1])
                    .as_standard_layout()
                    .into_owned();
                let bias = take(format!("{scope}/biases"))?.into_raw_vec_and_offset().0;
                let geometry = ConvGeometry {
                    stride: [1, 1],
                    dilation: [1, 1],
                    padding: Padding::Same,
                    group: 1,
                };
                map = builder.conv2d(scope, &map, weights, bias, geometry, Activation::Relu)?;
            }
            Layer::Pool => {
                pools += 1;
                let name = format!("vggish/pool{pools}");
                map = builder.max_pool(&name, &map, [2, 2], [2, 2], Padding::Same)?;
            }
            Layer::Flatten => {
                vector = Some(builder.flatten("vggish/flatten", &map));
                flattened = Some(map.clone());
            }
            Layer::Dense { scope, relu, .. } => {
                let x = vector.as_ref().ok_or("a dense layer before the flatten")?;
                let mut weights = take(format!("{scope}/weights"))?;
                if let Some(shape) = flattened.take() {
                    weights = nhwc_rows_to_nchw(weights, &shape)?;
                }
                let bias = take(format!("{scope}/biases"))?.into_raw_vec_and_offset().0;
                let activation = if relu {
                    Activation::Relu
                } else {
                    Activation::None
                };
                vector = Some(builder.dense(scope, x, weights, bias, activation)?);
            }
        }
    }
    let embedding = vector.ok_or("no dense layer")?;
    builder.output("embedding", &embedding);
    Ok(builder)
}

/// Reorders the rows of a dense layer's weights [H*W*C, out], which TensorFlow indexes in NHWC
/// flatten order, into NCHW flatten order [C*H*W, out].
fn nhwc_rows_to_nchw(weights: ArrayD<f32>, map: &FeatureMap) -> Result<ArrayD<f32>, String> {
    let outputs = weights.shape()[1];
    let (c, h, w) = (map.channels, map.height, map.width);
    weights
        .into_shape_with_order(IxDyn(&[h, w, c, outputs]))
        .map_err(|e| e.to_string())?
        .permuted_axes(vec![2, 0, 1, 3])
        .as_standard_layout()
        .into_owned()
        .into_shape_with_order(IxDyn(&[c * h * w, outputs]))
        .map_err(|e| e.to_string())
}

/// When a checkpoint cannot be read, says how its size compares with the official file's.
fn size_hint(path: &Path, error: &CheckpointError) -> String {
    if !matches!(
        error,
        CheckpointError::Table { .. } | CheckpointError::Corrupt { .. }
    ) {
        return String::new();
    }
    match std::fs::metadata(path) {
        Ok(m) if m.is_file() && m.len() != VGGISH_OFFICIAL_BYTES => format!(
            " (this file is {} bytes; the official vggish_model.ckpt is {VGGISH_OFFICIAL_BYTES})",
            m.len()
        ),
        _ => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_layer_table_matches_vggish_slim() {
        let variables = expected_variables();
        assert_eq!(variables.len(), 18);
        assert_eq!(
            variables[0],
            ("vggish/conv1/weights".into(), vec![3, 3, 1, 64])
        );
        assert_eq!(
            variables[12],
            ("vggish/fc1/fc1_1/weights".into(), vec![12288, 4096])
        );
        assert_eq!(variables[17], ("vggish/fc2/biases".into(), vec![128]));
        let parameters: usize = variables
            .iter()
            .map(|(_, s)| s.iter().product::<usize>())
            .sum();
        // VGGish has 72.1 M parameters.
        assert_eq!(parameters, 72_141_184);
    }

    #[test]
    fn flatten_rows_follow_the_feature_map_layout() {
        // Row (h, w, c) in NHWC order must land at row (c, h, w) in NCHW order.
        let map = FeatureMap {
            name: String::new(),
            channels: 3,
            height: 2,
            width: 2,
        };
        let rows: Vec<f32> = (0..12).map(|r| r as f32).collect();
        let weights = ArrayD::from_shape_vec(IxDyn(&[12, 1]), rows).unwrap();
        let permuted = nhwc_rows_to_nchw(weights, &map).unwrap();
        for c in 0..3 {
            for h in 0..2 {
                for w in 0..2 {
                    let nhwc = (h * 2 + w) * 3 + c;
                    let nchw = c * 4 + h * 2 + w;
                    assert_eq!(permuted[[nchw, 0]], nhwc as f32);
                }
            }
        }
    }
}
