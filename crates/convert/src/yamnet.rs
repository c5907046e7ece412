//! YAMNet: the official `yamnet.tflite` in, the core network as ONNX out.
//!
//! In: the TF-Hub `google/lite-model/yamnet/tflite/1` flatbuffer, which takes a 16 kHz waveform
//! and computes its own log-mel front end (framing, RFFT2D, COMPLEX_ABS, a mel matrix, LOG) before
//! reshaping the frames into [N, 96, 64, 1] patches. Out: the network after that point, as ONNX:
//! `patch` f32 [N, 96, 64] (frames, then 64 mel bands) in; `scores` f32 [N, 521] (after the
//! LOGISTIC) and `embedding` f32 [N, 1024] (the MEAN over time and frequency, before the dense
//! layer) out.
//!
//! The core is found by structure, not by tensor index: it starts at the first CONV_2D that reads
//! a float [_, 96, 64, 1] tensor and is a chain of CONV_2D / DEPTHWISE_CONV_2D (fused activation
//! and padding read from each op), one MEAN, one FULLY_CONNECTED and one LOGISTIC; the MEAN's and
//! the LOGISTIC's outputs must be outputs of the TFLite model itself. Int8 weights (weight-only,
//! per output channel) are dequantized to float32, so the ONNX graph computes in float the
//! network whose weights the file stores. Every layer's output shape is checked against the shape
//! the file records.

use std::path::Path;

use tract_onnx::prelude::tract_ndarray::Ix2;
use tract_tflite::tflite::{self as fb, BuiltinOperator};

use crate::onnx::{ConvGeometry, FeatureMap, GraphBuilder, Vector, WeightsFile};
use crate::tflite::{self, Op, TfliteGraph};
use crate::{sha256_bytes, write_and_check, ConversionSummary, ConvertError};
use crate::{PATCH_BANDS, PATCH_FRAMES};

/// AudioSet classes YAMNet scores.
pub const YAMNET_CLASSES: usize = 521;
/// Length of YAMNet's embedding.
pub const YAMNET_EMBEDDING: usize = 1024;

/// Converts YAMNet's core network from the `.tflite` file at `tflite_path` to ONNX at
/// `onnx_out` (see the module documentation for the contract), then checks the written file in
/// tract.
pub fn convert_yamnet(
    tflite_path: &Path,
    onnx_out: &Path,
) -> Result<ConversionSummary, ConvertError> {
    let bytes = std::fs::read(tflite_path).map_err(|source| ConvertError::Read {
        path: tflite_path.to_path_buf(),
        source,
    })?;
    let graph = TfliteGraph::parse(&bytes).map_err(|reason| ConvertError::Tflite {
        path: tflite_path.to_path_buf(),
        reason,
    })?;
    let not_yamnet = |problem: String| ConvertError::UnexpectedModel {
        path: tflite_path.to_path_buf(),
        network: "YAMNet",
        problems: vec![problem],
    };
    let core = build_core(&graph).map_err(not_yamnet)?;

    let source_sha256 = sha256_bytes(&bytes);
    let nodes = core.builder.node_count();
    let parameters = core.builder.parameter_count();
    let model = core.builder.finish(
        "yamnet",
        "YAMNet core network (MobileNet v1 on 96x64 log-mel patches), converted from the \
         official TFLite model by moodscope-convert. Input `patch`: log(mel + 0.001), 96 frames of \
         64 mel bands (125-7500 Hz, 16 kHz audio, 25 ms window, 10 ms hop). Outputs: `scores`, \
         521 AudioSet class probabilities; `embedding`, 1024 mean-pooled features.",
        &[
            (
                "source",
                "yamnet.tflite (TF-Hub google/lite-model/yamnet/tflite/1)".into(),
            ),
            ("source_sha256", source_sha256.clone()),
            (
                "source_ops",
                format!(
                    "operators #{}..#{} of the TFLite graph",
                    core.first_op, core.last_op
                ),
            ),
        ],
    );
    let (onnx_bytes, tract_load) = write_and_check(
        model,
        onnx_out,
        WeightsFile::Inline,
        &[("scores", YAMNET_CLASSES), ("embedding", YAMNET_EMBEDDING)],
    )?;
    Ok(ConversionSummary {
        onnx: onnx_out.to_path_buf(),
        onnx_bytes,
        source_sha256,
        nodes,
        parameters,
        dequantized_tensors: core.dequantized,
        tract_load,
    })
}

struct Core {
    builder: GraphBuilder,
    first_op: usize,
    last_op: usize,
    dequantized: usize,
}

/// What flows between two ops of the chain.
enum Value {
    Map(FeatureMap),
    Vector(Vector),
}

fn build_core(graph: &TfliteGraph<'_>) -> Result<Core, String> {
    let ops = graph.ops()?;
    let start = ops
        .iter()
        .position(|op| {
            op.code == BuiltinOperator::CONV_2D
                && op.input(0).is_ok_and(|t| {
                    graph.is_float(t).unwrap_or(false)
                        && graph.shape(t).is_ok_and(|s| {
                            s.len() == 4 && s[1..] == [PATCH_FRAMES as i32, PATCH_BANDS as i32, 1]
                        })
                })
        })
        .ok_or_else(|| {
            format!("no CONV_2D reads a float [N, {PATCH_FRAMES}, {PATCH_BANDS}, 1] log-mel patch")
        })?;

    let (mut builder, patch) = GraphBuilder::new("patch", PATCH_FRAMES, PATCH_BANDS);
    let mut current_tensor = ops[start].input(0)?;
    let mut value = Value::Map(patch);
    let mut layer = 0usize;
    let mut dequantized = 0usize;
    let mut embedding: Option<(Vector, i32)> = None;
    let mut scores: Option<(Vector, i32)> = None;
    let mut last_op = start;

    for op in &ops[start..] {
        let context = |e: String| format!("{} #{}: {e}", op.name(), op.index);
        if op.input(0).map_err(&context)? != current_tensor {
            return Err(context(format!(
                "does not read the previous op's output {}; the core network is expected to \
                 be a single chain",
                graph.tensor_name(current_tensor)
            )));
        }
        if scores.is_some() {
            return Err(context("an op after the final LOGISTIC".into()));
        }
        let output = op.output().map_err(&context)?;
        let expected_shape = graph.shape(output).map_err(&context)?;
        value = match (op.code, value) {
            (BuiltinOperator::CONV_2D, Value::Map(x)) => {
                layer += 1;
                let (y, was_quantized) =
                    conv(graph, op, &mut builder, &x, &format!("layer{layer}"), false)
                        .map_err(&context)?;
                dequantized += usize::from(was_quantized);
                Value::Map(y)
            }
            (BuiltinOperator::DEPTHWISE_CONV_2D, Value::Map(x)) => {
                layer += 1;
                let (y, was_quantized) =
                    conv(graph, op, &mut builder, &x, &format!("layer{layer}"), true)
                        .map_err(&context)?;
                dequantized += usize::from(was_quantized);
                Value::Map(y)
            }
            (BuiltinOperator::MEAN, Value::Map(x)) => {
                let y = mean(graph, op, &mut builder, &x).map_err(&context)?;
                if embedding.is_some() {
                    return Err(context("a second MEAN".into()));
                }
                embedding = Some((y.clone(), output));
                Value::Vector(y)
            }
            (BuiltinOperator::FULLY_CONNECTED, Value::Vector(x)) => {
                let (y, was_quantized) = dense(graph, op, &mut builder, &x).map_err(&context)?;
                dequantized += usize::from(was_quantized);
                Value::Vector(y)
            }
            (BuiltinOperator::LOGISTIC, Value::Vector(x)) => {
                let y = builder.sigmoid("classifier", &x);
                scores = Some((y.clone(), output));
                Value::Vector(y)
            }
            (_, Value::Map(x)) => {
                return Err(context(format!(
                    "unexpected op on a [{}, {}, {}] feature map",
                    x.height, x.width, x.channels
                )))
            }
            (_, Value::Vector(x)) => {
                return Err(context(format!("unexpected op on a {}-vector", x.len)))
            }
        };
        check_shape(&value, &expected_shape).map_err(&context)?;
        current_tensor = output;
        last_op = op.index;
    }

    let outputs = graph.outputs();
    let (embedding, embedding_tensor) =
        embedding.ok_or("the core network has no MEAN (the embedding)")?;
    let (scores, scores_tensor) = scores.ok_or("the core network does not end in a LOGISTIC")?;
    for (what, tensor) in [("embedding", embedding_tensor), ("scores", scores_tensor)] {
        if !outputs.contains(&tensor) {
            return Err(format!(
                "the {what} ({}) is not an output of the TFLite model",
                graph.tensor_name(tensor)
            ));
        }
    }
    if embedding.len != YAMNET_EMBEDDING || scores.len != YAMNET_CLASSES {
        return Err(format!(
            "an embedding of {} and {} scores, expected {YAMNET_EMBEDDING} and {YAMNET_CLASSES}",
            embedding.len, scores.len
        ));
    }
    builder.output("scores", &scores);
    builder.output("embedding", &embedding);
    Ok(Core {
        builder,
        first_op: start,
        last_op,
        dequantized,
    })
}

/// A CONV_2D (weights [O, KH, KW, I]) or DEPTHWISE_CONV_2D (weights [1, KH, KW, C*M]).
fn conv(
    graph: &TfliteGraph<'_>,
    op: &Op<'_>,
    builder: &mut GraphBuilder,
    x: &FeatureMap,
    name: &str,
    depthwise: bool,
) -> Result<(FeatureMap, bool), String> {
    let weights = graph.weights(op.input(1)?)?;
    let rank = weights.values.ndim();
    if rank != 4 {
        return Err(format!("weights of rank {rank}, expected 4"));
    }
    let (stride, dilation, pad, act) = if depthwise {
        let o = op
            .raw
            .builtin_options_as_depthwise_conv_2_doptions()
            .ok_or("no DepthwiseConv2DOptions")?;
        (
            [o.stride_h(), o.stride_w()],
            [o.dilation_h_factor(), o.dilation_w_factor()],
            o.padding(),
            o.fused_activation_function(),
        )
    } else {
        let o = op
            .raw
            .builtin_options_as_conv_2_doptions()
            .ok_or("no Conv2DOptions")?;
        (
            [o.stride_h(), o.stride_w()],
            [o.dilation_h_factor(), o.dilation_w_factor()],
            o.padding(),
            o.fused_activation_function(),
        )
    };
    let positive = |v: [i32; 2], what: &str| -> Result<[usize; 2], String> {
        let [a, b] = v;
        match (usize::try_from(a), usize::try_from(b)) {
            (Ok(a), Ok(b)) if a > 0 && b > 0 => Ok([a, b]),
            _ => Err(format!("bad {what} {v:?}")),
        }
    };
    let (onnx_weights, group) = if depthwise {
        if weights.values.shape()[0] != 1 {
            return Err(format!(
                "depthwise weights of shape {:?}, expected [1, KH, KW, C*M]",
                weights.values.shape()
            ));
        }
        // [1, KH, KW, C*M] -> [C*M, 1, KH, KW]; output channel c*M + m reads input channel c,
        // which is ONNX's grouped convolution with one group per input channel.
        (weights.values.permuted_axes(vec![3, 0, 1, 2]), x.channels)
    } else {
        // [O, KH, KW, I] -> [O, I, KH, KW].
        (weights.values.permuted_axes(vec![0, 3, 1, 2]), 1)
    };
    let out_channels = onnx_weights.shape()[0];
    let bias = bias(graph, op, out_channels)?;
    let geometry = ConvGeometry {
        stride: positive(stride, "stride")?,
        dilation: positive(dilation, "dilation")?,
        padding: tflite::padding(pad)?,
        group,
    };
    let y = builder.conv2d(
        name,
        x,
        onnx_weights.as_standard_layout().into_owned(),
        bias,
        geometry,
        tflite::activation(act)?,
    )?;
    Ok((y, weights.dequantized))
}

/// A MEAN over the NHWC height and width axes, without kept dimensions.
fn mean(
    graph: &TfliteGraph<'_>,
    op: &Op<'_>,
    builder: &mut GraphBuilder,
    x: &FeatureMap,
) -> Result<Vector, String> {
    let mut axes = graph.int32_values(op.input(1)?)?;
    axes.iter_mut().for_each(|a| {
        if *a < 0 {
            *a += 4
        }
    });
    axes.sort_unstable();
    if axes != [1, 2] {
        return Err(format!(
            "a mean over axes {axes:?}, expected the time and frequency axes [1, 2]"
        ));
    }
    let keep_dims = op
        .raw
        .builtin_options_as_reducer_options()
        .is_some_and(|o| o.keep_dims());
    if keep_dims {
        return Err("a mean that keeps its dimensions".into());
    }
    Ok(builder.mean_over_space("embedding_pool", x))
}

/// A FULLY_CONNECTED with weights [out, in].
fn dense(
    graph: &TfliteGraph<'_>,
    op: &Op<'_>,
    builder: &mut GraphBuilder,
    x: &Vector,
) -> Result<(Vector, bool), String> {
    let options = op
        .raw
        .builtin_options_as_fully_connected_options()
        .ok_or("no FullyConnectedOptions")?;
    if options.weights_format() != fb::FullyConnectedOptionsWeightsFormat::DEFAULT {
        return Err("shuffled FULLY_CONNECTED weights are not supported".into());
    }
    let weights = graph.weights(op.input(1)?)?;
    let outputs = weights.values.shape().first().copied().unwrap_or(0);
    let transposed = weights
        .values
        .into_dimensionality::<Ix2>()
        .map_err(|_| "dense weights are not a matrix".to_string())?
        .reversed_axes()
        .as_standard_layout()
        .into_owned()
        .into_dyn();
    let bias = bias(graph, op, outputs)?;
    let activation = tflite::activation(options.fused_activation_function())?;
    let y = builder.dense("classifier", x, transposed, bias, activation)?;
    Ok((y, weights.dequantized))
}

/// Input 2 of a CONV_2D, DEPTHWISE_CONV_2D or FULLY_CONNECTED: float biases, or zeros when the
/// op has none.
fn bias(graph: &TfliteGraph<'_>, op: &Op<'_>, channels: usize) -> Result<Vec<f32>, String> {
    match op.inputs.get(2).copied().filter(|&t| t >= 0) {
        None => Ok(vec![0.0; channels]),
        Some(t) => {
            if !graph.is_float(t)? {
                return Err(format!(
                    "{} is not float32 (fully quantized models are not supported)",
                    graph.tensor_name(t)
                ));
            }
            let b = graph.weights(t)?.values;
            if b.len() != channels {
                return Err(format!("{} biases for {channels} channels", b.len()));
            }
            Ok(b.into_raw_vec_and_offset().0)
        }
    }
}

/// Compares a value's per-example shape with the shape the TFLite file records for it.
fn check_shape(value: &Value, recorded: &[i32]) -> Result<(), String> {
    let ours: Vec<i32> = match value {
        Value::Map(m) => vec![m.height as i32, m.width as i32, m.channels as i32],
        Value::Vector(v) => vec![v.len as i32],
    };
    if recorded.len() != ours.len() + 1 || recorded[1..] != ours[..] {
        return Err(format!(
            "the converted layer gives [N, {}], the TFLite file records {recorded:?}",
            ours.iter()
                .map(i32::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    Ok(())
}
