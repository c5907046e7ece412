//! Streaming export: a [`TrainedHead`] in; `NAME.onnx` + `NAME.json` out, the head file format
//! Moodscope's plugin and CLI load (`moodscope-head/1`).
//!
//! The graph reads one window at a time. Inputs: `embedding` f32 [1, D] and, for LSTM heads,
//! `h_in`, `c_in` f32 [layers, 1, hidden]; outputs: `probabilities` f32 [1, K] (softmax applied)
//! and, for LSTM heads, `h_out`, `c_out` (the state after this window, to feed back with the
//! next). Input normalisation is part of the graph (`(embedding - mean) / std`), so the head takes
//! the backbone's embeddings as they are. Each LSTM layer is an ONNX `LSTM` node (opset 13,
//! forward, one step) whose `initial_h`/`initial_c` are that layer's slice of the state and whose
//! `Y_h`/`Y_c` are concatenated into `h_out`/`c_out`.

use std::path::{Path, PathBuf};

use prost::Message;
use serde::{Deserialize, Serialize};
use tract_onnx::pb;

use crate::net::HeadWeights;
use crate::spec::{ClipDecision, HeadKind};
use crate::train::{Normalisation, TrainedHead};

/// Format tag of head metadata files.
pub const HEAD_FORMAT: &str = "moodscope-head/1";
/// ONNX opset the graphs are written for.
pub const OPSET: i64 = 13;

/// Shape of an LSTM head's state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LstmShape {
    pub layers: usize,
    pub hidden: usize,
}

/// The metadata file beside a head's ONNX graph.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HeadMetadata {
    /// [`HEAD_FORMAT`].
    pub format: String,
    pub name: String,
    /// `lstm` (stateful) or `logistic` (stateless).
    pub kind: String,
    /// Output order of `probabilities`.
    pub labels: Vec<String>,
    /// The network whose embeddings the head reads: `vggish` or `yamnet`.
    pub backbone: String,
    pub embedding_dim: usize,
    /// Seconds of audio per window.
    pub window_seconds: f64,
    /// Seconds between the starts of consecutive windows the head was trained on (an LSTM head
    /// should be run at the same hop).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hop_seconds: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lstm: Option<LstmShape>,
    /// The normalisation inside the graph (for reference: the graph already applies it).
    pub normalisation: Normalisation,
    /// How a whole clip is decided from the per-window probabilities.
    pub clip_decision: ClipDecision,
    /// Provenance and figures: data hash, spec (seeds, epochs...), cross-validated figures.
    #[serde(default)]
    pub training: serde_json::Value,
}

/// The embeddings a head reads.
#[derive(Clone, Debug, PartialEq)]
pub struct EmbeddingSource {
    /// `vggish` or `yamnet`.
    pub backbone: String,
    /// Seconds of audio per window.
    pub window_seconds: f64,
    /// Seconds between window starts.
    pub hop_seconds: f64,
}

impl EmbeddingSource {
    /// AudioSet's released embeddings: VGGish, one per 0.96 s, PCA-whitened and quantized.
    pub fn audioset_vggish() -> Self {
        let seconds = crate::audioset::WINDOW_SECONDS;
        Self {
            backbone: "vggish".into(),
            window_seconds: seconds,
            hop_seconds: seconds,
        }
    }
}

/// Failure to write a head.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("head name `{0}` must be a plain file name (letters, digits, '-', '_', '.')")]
    BadName(String),
    #[error("cannot write {}: {source}", .path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot encode metadata: {0}")]
    Json(#[from] serde_json::Error),
}

/// Writes `DIR/NAME.onnx` and `DIR/NAME.json` (creating `dir` if needed); `figures` (anything
/// JSON, e.g. cross-validated accuracy with its interval) is stored under `training.figures`.
/// Returns the path of the JSON file, which is what loaders take. Nothing in either file depends
/// on the date or the machine, so the same training gives the same bytes.
pub fn export_head(
    head: &TrainedHead,
    dir: &Path,
    name: &str,
    source: &EmbeddingSource,
    figures: serde_json::Value,
) -> Result<PathBuf, ExportError> {
    let valid = !name.is_empty()
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
    if !valid {
        return Err(ExportError::BadName(name.to_owned()));
    }
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| ExportError::Io { path, source }
    };
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let onnx_path = dir.join(format!("{name}.onnx"));
    let json_path = dir.join(format!("{name}.json"));
    std::fs::write(&onnx_path, onnx_bytes(head, name)).map_err(io(&onnx_path))?;
    let metadata = metadata(head, name, source, figures);
    let mut text = serde_json::to_string_pretty(&metadata)?;
    text.push('\n');
    std::fs::write(&json_path, text).map_err(io(&json_path))?;
    Ok(json_path)
}

/// The metadata written beside the graph.
pub fn metadata(
    head: &TrainedHead,
    name: &str,
    source: &EmbeddingSource,
    figures: serde_json::Value,
) -> HeadMetadata {
    let s = &head.summary;
    let training = serde_json::json!({
        "data_sha256": s.data_sha256,
        "clips": s.clips,
        "clips_per_label": s.clips_per_label,
        "member_seeds": s.member_seeds,
        "training_accuracy": s.training_accuracy,
        "warnings": s.warnings,
        "spec": head.spec,
        "figures": figures,
    });
    HeadMetadata {
        format: HEAD_FORMAT.into(),
        name: name.into(),
        kind: match head.spec.kind {
            HeadKind::Logistic => "logistic".into(),
            HeadKind::Lstm { .. } => "lstm".into(),
        },
        labels: head.labels.clone(),
        backbone: source.backbone.clone(),
        embedding_dim: head.embedding_dim,
        window_seconds: source.window_seconds,
        hop_seconds: Some(source.hop_seconds),
        lstm: lstm_shape(&head.weights),
        normalisation: head.normalisation.clone(),
        clip_decision: head.spec.clip_decision(),
        training,
    }
}

fn lstm_shape(weights: &HeadWeights) -> Option<LstmShape> {
    weights.lstm.first().map(|l| LstmShape {
        layers: weights.lstm.len(),
        hidden: l.hidden,
    })
}

fn tensor_f32(name: &str, dims: &[usize], data: &[f32]) -> pb::TensorProto {
    pb::TensorProto {
        name: name.into(),
        dims: dims.iter().map(|&d| d as i64).collect(),
        data_type: pb::tensor_proto::DataType::Float as i32,
        raw_data: data.iter().flat_map(|v| v.to_le_bytes()).collect(),
        ..Default::default()
    }
}

fn tensor_i64(name: &str, data: &[i64]) -> pb::TensorProto {
    pb::TensorProto {
        name: name.into(),
        dims: vec![data.len() as i64],
        data_type: pb::tensor_proto::DataType::Int64 as i32,
        raw_data: data.iter().flat_map(|v| v.to_le_bytes()).collect(),
        ..Default::default()
    }
}

fn attr_int(name: &str, value: i64) -> pb::AttributeProto {
    pb::AttributeProto {
        name: name.into(),
        r#type: pb::attribute_proto::AttributeType::Int as i32,
        i: value,
        ..Default::default()
    }
}

fn node(
    op: &str,
    name: &str,
    inputs: &[&str],
    outputs: &[&str],
    attribute: Vec<pb::AttributeProto>,
) -> pb::NodeProto {
    pb::NodeProto {
        op_type: op.into(),
        name: name.into(),
        input: inputs.iter().map(|s| s.to_string()).collect(),
        output: outputs.iter().map(|s| s.to_string()).collect(),
        attribute,
        ..Default::default()
    }
}

fn value_info(name: &str, dims: &[usize]) -> pb::ValueInfoProto {
    use pb::tensor_shape_proto::{dimension::Value, Dimension};
    pb::ValueInfoProto {
        name: name.into(),
        r#type: Some(pb::TypeProto {
            value: Some(pb::type_proto::Value::TensorType(pb::type_proto::Tensor {
                elem_type: pb::tensor_proto::DataType::Float as i32,
                shape: Some(pb::TensorShapeProto {
                    dim: dims
                        .iter()
                        .map(|&d| Dimension {
                            value: Some(Value::DimValue(d as i64)),
                            ..Default::default()
                        })
                        .collect(),
                }),
            })),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The head's streaming graph, encoded as an ONNX model.
pub fn onnx_bytes(head: &TrainedHead, name: &str) -> Vec<u8> {
    let w = &head.weights;
    let (d, k) = (head.embedding_dim, w.out_labels);
    let mut nodes = Vec::new();
    let mut init = vec![
        tensor_f32("norm_mean", &[d], &head.normalisation.mean),
        tensor_f32("norm_std", &[d], &head.normalisation.std),
    ];
    nodes.push(node(
        "Sub",
        "centre",
        &["embedding", "norm_mean"],
        &["centred"],
        vec![],
    ));
    nodes.push(node(
        "Div",
        "scale",
        &["centred", "norm_std"],
        &["normalised"],
        vec![],
    ));
    let mut inputs = vec![value_info("embedding", &[1, d])];
    let mut outputs = vec![value_info("probabilities", &[1, k])];
    let features = match lstm_shape(w) {
        None => "normalised".to_owned(),
        Some(shape) => {
            let (layers, hidden) = (shape.layers, shape.hidden);
            inputs.push(value_info("h_in", &[layers, 1, hidden]));
            inputs.push(value_info("c_in", &[layers, 1, hidden]));
            init.push(tensor_i64("sequence_shape", &[1, 1, d as i64]));
            nodes.push(node(
                "Reshape",
                "as_sequence",
                &["normalised", "sequence_shape"],
                &["x_0"],
                vec![],
            ));
            let mut h_outs = Vec::new();
            let mut c_outs = Vec::new();
            for (l, layer) in w.lstm.iter().enumerate() {
                let hl = layer.hidden;
                let mut bias = layer.b.clone();
                bias.extend(std::iter::repeat_n(0.0, 4 * hl));
                init.push(tensor_f32(
                    &format!("W_{l}"),
                    &[1, 4 * hl, layer.input],
                    &layer.w,
                ));
                init.push(tensor_f32(&format!("R_{l}"), &[1, 4 * hl, hl], &layer.r));
                init.push(tensor_f32(&format!("B_{l}"), &[1, 8 * hl], &bias));
                init.push(tensor_i64(&format!("layer_{l}"), &[l as i64]));
                let (h0, c0) = (format!("h0_{l}"), format!("c0_{l}"));
                let (yh, yc) = (format!("yh_{l}"), format!("yc_{l}"));
                let index = format!("layer_{l}");
                nodes.push(node(
                    "Gather",
                    &format!("h_in_{l}"),
                    &["h_in", &index],
                    &[&h0],
                    vec![attr_int("axis", 0)],
                ));
                nodes.push(node(
                    "Gather",
                    &format!("c_in_{l}"),
                    &["c_in", &index],
                    &[&c0],
                    vec![attr_int("axis", 0)],
                ));
                let x = format!("x_{l}");
                // Y_h of a one-step forward LSTM is [1, 1, H]: the next layer's X as it is.
                let next_x = format!("x_{}", l + 1);
                nodes.push(node(
                    "LSTM",
                    &format!("lstm_{l}"),
                    &[
                        &x,
                        &format!("W_{l}"),
                        &format!("R_{l}"),
                        &format!("B_{l}"),
                        "",
                        &h0,
                        &c0,
                    ],
                    &["", &yh, &yc],
                    vec![attr_int("hidden_size", hl as i64)],
                ));
                nodes.push(node(
                    "Identity",
                    &format!("to_layer_{}", l + 1),
                    &[&yh],
                    &[&next_x],
                    vec![],
                ));
                h_outs.push(yh);
                c_outs.push(yc);
            }
            let h_refs: Vec<&str> = h_outs.iter().map(String::as_str).collect();
            let c_refs: Vec<&str> = c_outs.iter().map(String::as_str).collect();
            nodes.push(node(
                "Concat",
                "state_h",
                &h_refs,
                &["h_out"],
                vec![attr_int("axis", 0)],
            ));
            nodes.push(node(
                "Concat",
                "state_c",
                &c_refs,
                &["c_out"],
                vec![attr_int("axis", 0)],
            ));
            outputs.push(value_info("h_out", &[layers, 1, hidden]));
            outputs.push(value_info("c_out", &[layers, 1, hidden]));
            init.push(tensor_i64("flat_shape", &[1, hidden as i64]));
            let last = format!("x_{layers}");
            nodes.push(node(
                "Reshape",
                "last_state",
                &[&last, "flat_shape"],
                &["features"],
                vec![],
            ));
            "features".to_owned()
        }
    };
    let m = w.out_input;
    // out_w is [K, m]; MatMul wants [m, K].
    let transposed: Vec<f32> = (0..m)
        .flat_map(|i| (0..k).map(move |j| (i, j)))
        .map(|(i, j)| w.out_w[j * m + i])
        .collect();
    init.push(tensor_f32("out_w", &[m, k], &transposed));
    init.push(tensor_f32("out_b", &[k], &w.out_b));
    nodes.push(node(
        "MatMul",
        "classify",
        &[&features, "out_w"],
        &["logits_raw"],
        vec![],
    ));
    nodes.push(node(
        "Add",
        "classify_bias",
        &["logits_raw", "out_b"],
        &["logits"],
        vec![],
    ));
    nodes.push(node(
        "Softmax",
        "softmax",
        &["logits"],
        &["probabilities"],
        vec![attr_int("axis", 1)],
    ));
    let graph = pb::GraphProto {
        name: name.into(),
        node: nodes,
        initializer: init,
        input: inputs,
        output: outputs,
        ..Default::default()
    };
    let model = pb::ModelProto {
        ir_version: 7,
        opset_import: vec![pb::OperatorSetIdProto { domain: String::new(), version: OPSET }],
        producer_name: "moodscope-train".into(),
        producer_version: env!("CARGO_PKG_VERSION").into(),
        doc_string: format!(
            "Moodscope mood head `{name}` ({:?}): one embedding per window in, mood probabilities out",
            head.spec.kind
        ),
        graph: Some(graph),
        ..Default::default()
    };
    model.encode_to_vec()
}
