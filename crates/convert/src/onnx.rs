//! ONNX graph writing for the converters (prost types of `tract_onnx::pb`).
//!
//! In: layers (convolutions, pools, dense layers, activations) with float32 weights in ONNX
//! layouts, added in order from the `patch` input [N, frames, bands]. Out: an ONNX `ModelProto`
//! (opset 13, symbolic batch dimension `N`), written atomically to a file, and a check that tract
//! loads, optimises and runs the written file.
//!
//! Feature maps are NCHW with the patch's frames as H and its mel bands as W, so a `[N, 96, 64]`
//! patch is viewed as `[N, 1, 96, 64]`, the same memory as TensorFlow's NHWC `[N, 96, 64, 1]`.
//! Spatial sizes are static and tracked here, so TensorFlow's `SAME` padding is written as
//! explicit pads (extra padding at the end, as TensorFlow does).

use std::path::Path;
use std::time::{Duration, Instant};

use prost::Message;
use tract_onnx::pb::{
    attribute_proto::AttributeType, tensor_proto, tensor_proto::DataType, tensor_shape_proto,
    type_proto, AttributeProto, GraphProto, ModelProto, NodeProto, OperatorSetIdProto,
    StringStringEntryProto, TensorProto, TensorShapeProto, TypeProto, ValueInfoProto,
};
use tract_onnx::prelude::tract_ndarray::{ArrayD, Axis};
use tract_onnx::prelude::*;

/// The ONNX operator set the graphs are written for.
const OPSET: i64 = 13;
/// IR version matching opset 13.
const IR_VERSION: i64 = 7;
/// Name of the symbolic batch dimension.
const BATCH: &str = "N";
/// The largest weight block of a dense layer (see `GraphBuilder::dense`). Not smaller: glibc
/// maps allocations over 32 MiB on their own and unmaps them when freed, while smaller ones land
/// in its heap, which it keeps; with 24 MiB blocks VGGish's load settled at 552 MiB instead of
/// 311 MiB (tract's unpacked weights are freed once packed).
const DENSE_BLOCK_BYTES: usize = 64 << 20;
/// Weights larger than this are written to the model's external data file (see `write_model`).
const EXTERNAL_DATA_BYTES: usize = 1 << 20;

/// An activation fused into a layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Activation {
    None,
    Relu,
    Relu6,
}

/// How a convolution or pool pads its input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Padding {
    /// TensorFlow's `SAME`: output size `ceil(input / stride)`, the odd padding at the end.
    Same,
    /// No padding.
    Valid,
}

/// A feature map in the graph: its value name and per-example shape (channels, height, width).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FeatureMap {
    pub name: String,
    pub channels: usize,
    pub height: usize,
    pub width: usize,
}

/// A batch of vectors in the graph: its value name and per-example length.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Vector {
    pub name: String,
    pub len: usize,
}

/// A convolution's geometry.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ConvGeometry {
    pub stride: [usize; 2],
    pub dilation: [usize; 2],
    pub padding: Padding,
    /// 1 for a full convolution, the input channel count for a depthwise one.
    pub group: usize,
}

/// Builds one ONNX graph, layer by layer.
pub(crate) struct GraphBuilder {
    nodes: Vec<NodeProto>,
    initializers: Vec<TensorProto>,
    input: ValueInfoProto,
    outputs: Vec<ValueInfoProto>,
    parameters: usize,
}

impl GraphBuilder {
    /// A graph whose input `input` is a batch of patches [N, frames, bands]; returns it with the
    /// patch viewed as a one-channel feature map.
    pub fn new(input: &str, frames: usize, bands: usize) -> (Self, FeatureMap) {
        let mut builder = Self {
            nodes: Vec::new(),
            initializers: Vec::new(),
            input: value_info(input, &[Dim::Batch, Dim::Fixed(frames), Dim::Fixed(bands)]),
            outputs: Vec::new(),
            parameters: 0,
        };
        let axes = builder.constant_i64("patch_channel_axis", &[1], &[1]);
        let name = "patch_nchw".to_string();
        builder.node("Unsqueeze", &name, &[input, &axes], &name, Vec::new());
        (
            builder,
            FeatureMap {
                name,
                channels: 1,
                height: frames,
                width: bands,
            },
        )
    }

    /// Number of nodes so far.
    pub fn node_count(&self) -> usize {
        self.nodes.len()
    }

    /// Number of weights and biases so far.
    pub fn parameter_count(&self) -> usize {
        self.parameters
    }

    /// A 2-D convolution. `weights` are `[out_channels, in_channels / group, kh, kw]`.
    pub fn conv2d(
        &mut self,
        name: &str,
        x: &FeatureMap,
        weights: ArrayD<f32>,
        bias: Vec<f32>,
        geometry: ConvGeometry,
        activation: Activation,
    ) -> Result<FeatureMap, String> {
        let &[out_channels, in_per_group, kh, kw] = weights.shape() else {
            return Err(format!(
                "{name}: weights of shape {:?}, expected 4 dimensions",
                weights.shape()
            ));
        };
        let group = geometry.group;
        if group == 0 || in_per_group * group != x.channels || out_channels % group != 0 {
            return Err(format!(
                "{name}: weights of shape {:?} (group {group}) do not fit an input of {} channels",
                weights.shape(),
                x.channels
            ));
        }
        if bias.len() != out_channels {
            return Err(format!(
                "{name}: {} biases for {out_channels} output channels",
                bias.len()
            ));
        }
        let [sh, sw] = geometry.stride;
        let [dh, dw] = geometry.dilation;
        let (top, bottom, height) = padding(x.height, kh, sh, dh, geometry.padding)
            .ok_or_else(|| format!("{name}: a {kh}x{kw} kernel does not fit the input"))?;
        let (left, right, width) = padding(x.width, kw, sw, dw, geometry.padding)
            .ok_or_else(|| format!("{name}: a {kh}x{kw} kernel does not fit the input"))?;
        let w = self.constant_f32(&format!("{name}/weights"), weights);
        let b = self.constant_f32(
            &format!("{name}/bias"),
            ArrayD::from_shape_vec(vec![out_channels], bias).map_err(|e| e.to_string())?,
        );
        let attributes = vec![
            attr_ints("kernel_shape", &[kh, kw]),
            attr_ints("strides", &[sh, sw]),
            attr_ints("dilations", &[dh, dw]),
            attr_ints("pads", &[top, left, bottom, right]),
            attr_int("group", group as i64),
        ];
        let out = format!("{name}/conv");
        self.node("Conv", &out, &[&x.name, &w, &b], &out, attributes);
        let out = self.activation(name, out, activation);
        Ok(FeatureMap {
            name: out,
            channels: out_channels,
            height,
            width,
        })
    }

    /// A max pool of `kernel` with `stride`.
    pub fn max_pool(
        &mut self,
        name: &str,
        x: &FeatureMap,
        kernel: [usize; 2],
        stride: [usize; 2],
        padding_kind: Padding,
    ) -> Result<FeatureMap, String> {
        let (top, bottom, height) = padding(x.height, kernel[0], stride[0], 1, padding_kind)
            .ok_or_else(|| format!("{name}: the pool does not fit the input"))?;
        let (left, right, width) = padding(x.width, kernel[1], stride[1], 1, padding_kind)
            .ok_or_else(|| format!("{name}: the pool does not fit the input"))?;
        if top + bottom + left + right > 0 {
            // Padded pools are never needed by the networks converted here, so that path is
            // refused rather than written untested.
            return Err(format!("{name}: padded max pools are not supported"));
        }
        let out = format!("{name}/max_pool");
        let attributes = vec![
            attr_ints("kernel_shape", &kernel),
            attr_ints("strides", &stride),
        ];
        self.node("MaxPool", &out, &[&x.name], &out, attributes);
        Ok(FeatureMap {
            name: out,
            channels: x.channels,
            height,
            width,
        })
    }

    /// The mean over height and width: [N, C, H, W] -> [N, C].
    pub fn mean_over_space(&mut self, name: &str, x: &FeatureMap) -> Vector {
        let out = format!("{name}/mean");
        let attributes = vec![attr_ints("axes", &[2, 3]), attr_int("keepdims", 0)];
        self.node("ReduceMean", &out, &[&x.name], &out, attributes);
        Vector {
            name: out,
            len: x.channels,
        }
    }

    /// Flattens [N, C, H, W] to [N, C*H*W] in C, H, W order.
    pub fn flatten(&mut self, name: &str, x: &FeatureMap) -> Vector {
        let out = format!("{name}/flatten");
        self.node("Flatten", &out, &[&x.name], &out, vec![attr_int("axis", 1)]);
        Vector {
            name: out,
            len: x.channels * x.height * x.width,
        }
    }

    /// A dense layer `x · weights + bias`; `weights` are `[inputs, outputs]`.
    pub fn dense(
        &mut self,
        name: &str,
        x: &Vector,
        weights: ArrayD<f32>,
        bias: Vec<f32>,
        activation: Activation,
    ) -> Result<Vector, String> {
        let &[inputs, outputs] = weights.shape() else {
            return Err(format!(
                "{name}: weights of shape {:?}, expected 2 dimensions",
                weights.shape()
            ));
        };
        if inputs != x.len || bias.len() != outputs {
            return Err(format!(
                "{name}: weights {:?} and {} biases do not fit an input of {}",
                weights.shape(),
                bias.len(),
                x.len
            ));
        }
        // A large layer is written as column blocks of at most `DENSE_BLOCK_BYTES` (their Gemms
        // concatenated): tract loads and packs each block's weights on its own, so loading never
        // holds a second copy of the whole matrix (VGGish's fc1_1, 192 MiB, becomes four blocks
        // of 48 MiB). Each output is still one dot product over all inputs.
        let column_bytes = inputs * std::mem::size_of::<f32>();
        let fit = (DENSE_BLOCK_BYTES / column_bytes).max(1);
        // Whole powers of two of columns, which tract's kernels tile without ragged edges.
        let block = if fit >= outputs {
            outputs
        } else {
            1 << fit.ilog2()
        };
        let mut blocks = Vec::new();
        for (k, start) in (0..outputs).step_by(block).enumerate() {
            let end = (start + block).min(outputs);
            let part = if block == outputs {
                String::new()
            } else {
                format!("/block{k}")
            };
            let w = self.constant_f32(
                &format!("{name}/weights{part}"),
                weights.slice_axis(Axis(1), (start..end).into()).to_owned(),
            );
            let b = self.constant_f32(
                &format!("{name}/bias{part}"),
                ArrayD::from_shape_vec(vec![end - start], bias[start..end].to_vec())
                    .map_err(|e| e.to_string())?,
            );
            let out = format!("{name}/gemm{part}");
            self.node("Gemm", &out, &[&x.name, &w, &b], &out, Vec::new());
            blocks.push(out);
        }
        let out = if let [one] = blocks.as_slice() {
            one.clone()
        } else {
            let out = format!("{name}/concat");
            let inputs: Vec<&str> = blocks.iter().map(String::as_str).collect();
            self.node("Concat", &out, &inputs, &out, vec![attr_int("axis", 1)]);
            out
        };
        let out = self.activation(name, out, activation);
        Ok(Vector {
            name: out,
            len: outputs,
        })
    }

    /// The logistic function.
    pub fn sigmoid(&mut self, name: &str, x: &Vector) -> Vector {
        let out = format!("{name}/sigmoid");
        self.node("Sigmoid", &out, &[&x.name], &out, Vec::new());
        Vector {
            name: out,
            len: x.len,
        }
    }

    /// Makes `x` a graph output called `name`, shaped [N, len].
    pub fn output(&mut self, name: &str, x: &Vector) {
        self.node("Identity", name, &[&x.name], name, Vec::new());
        self.outputs
            .push(value_info(name, &[Dim::Batch, Dim::Fixed(x.len)]));
    }

    /// The finished model; `metadata` goes into its `metadata_props`.
    pub fn finish(self, graph_name: &str, doc: &str, metadata: &[(&str, String)]) -> ModelProto {
        ModelProto {
            ir_version: IR_VERSION,
            opset_import: vec![OperatorSetIdProto {
                domain: String::new(),
                version: OPSET,
            }],
            producer_name: "moodscope-convert".into(),
            producer_version: env!("CARGO_PKG_VERSION").into(),
            doc_string: doc.into(),
            graph: Some(GraphProto {
                node: self.nodes,
                name: graph_name.into(),
                initializer: self.initializers,
                input: vec![self.input],
                output: self.outputs,
                ..Default::default()
            }),
            metadata_props: metadata
                .iter()
                .map(|(key, value)| StringStringEntryProto {
                    key: (*key).into(),
                    value: value.clone(),
                })
                .collect(),
            ..Default::default()
        }
    }

    fn activation(&mut self, name: &str, x: String, activation: Activation) -> String {
        match activation {
            Activation::None => x,
            Activation::Relu => {
                let out = format!("{name}/relu");
                self.node("Relu", &out, &[&x], &out, Vec::new());
                out
            }
            Activation::Relu6 => {
                let low = self.constant_scalar(&format!("{name}/relu6_min"), 0.0);
                let high = self.constant_scalar(&format!("{name}/relu6_max"), 6.0);
                let out = format!("{name}/relu6");
                self.node("Clip", &out, &[&x, &low, &high], &out, Vec::new());
                out
            }
        }
    }

    fn node(
        &mut self,
        op_type: &str,
        name: &str,
        inputs: &[&str],
        output: &str,
        attribute: Vec<AttributeProto>,
    ) {
        self.nodes.push(NodeProto {
            input: inputs.iter().map(|s| s.to_string()).collect(),
            output: vec![output.to_string()],
            name: name.to_string(),
            op_type: op_type.to_string(),
            attribute,
            ..Default::default()
        });
    }

    fn constant_f32(&mut self, name: &str, values: ArrayD<f32>) -> String {
        self.parameters += values.len();
        let dims = values.shape().iter().map(|&d| d as i64).collect();
        let raw_data = values
            .as_standard_layout()
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        self.initializers.push(TensorProto {
            dims,
            data_type: DataType::Float as i32,
            name: name.to_string(),
            raw_data,
            ..Default::default()
        });
        name.to_string()
    }

    fn constant_scalar(&mut self, name: &str, value: f32) -> String {
        self.initializers.push(TensorProto {
            data_type: DataType::Float as i32,
            name: name.to_string(),
            raw_data: value.to_le_bytes().to_vec(),
            ..Default::default()
        });
        name.to_string()
    }

    fn constant_i64(&mut self, name: &str, dims: &[i64], values: &[i64]) -> String {
        self.initializers.push(TensorProto {
            dims: dims.to_vec(),
            data_type: DataType::Int64 as i32,
            name: name.to_string(),
            raw_data: values.iter().flat_map(|v| v.to_le_bytes()).collect(),
            ..Default::default()
        });
        name.to_string()
    }
}

/// Padding before, padding after and output size along one dimension, or `None` when the
/// kernel does not fit.
fn padding(
    input: usize,
    kernel: usize,
    stride: usize,
    dilation: usize,
    kind: Padding,
) -> Option<(usize, usize, usize)> {
    if stride == 0 || dilation == 0 || kernel == 0 {
        return None;
    }
    let extent = (kernel - 1) * dilation + 1;
    match kind {
        Padding::Valid => {
            let output = input.checked_sub(extent)? / stride + 1;
            Some((0, 0, output))
        }
        Padding::Same => {
            let output = input.div_ceil(stride);
            let total = ((output - 1) * stride + extent).saturating_sub(input);
            Some((total / 2, total - total / 2, output))
        }
    }
}

enum Dim {
    Batch,
    Fixed(usize),
}

fn value_info(name: &str, dims: &[Dim]) -> ValueInfoProto {
    let dim = dims
        .iter()
        .map(|d| tensor_shape_proto::Dimension {
            value: Some(match d {
                Dim::Batch => tensor_shape_proto::dimension::Value::DimParam(BATCH.into()),
                Dim::Fixed(n) => tensor_shape_proto::dimension::Value::DimValue(*n as i64),
            }),
            ..Default::default()
        })
        .collect();
    ValueInfoProto {
        name: name.into(),
        r#type: Some(TypeProto {
            value: Some(type_proto::Value::TensorType(type_proto::Tensor {
                elem_type: DataType::Float as i32,
                shape: Some(TensorShapeProto { dim }),
            })),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn attr_ints(name: &str, values: &[usize]) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        r#type: AttributeType::Ints as i32,
        ints: values.iter().map(|&v| v as i64).collect(),
        ..Default::default()
    }
}

fn attr_int(name: &str, value: i64) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        r#type: AttributeType::Int as i32,
        i: value,
        ..Default::default()
    }
}

/// Where a written model keeps its large weights.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WeightsFile {
    /// In the `.onnx` file (small models: one file to copy and hash).
    Inline,
    /// In the external data file beside it (large models: see `write_model`).
    Beside,
}

/// The external data file of the model at `path`: `path` with `.data` appended.
pub fn external_data_path(path: &Path) -> std::path::PathBuf {
    let mut data = path.as_os_str().to_owned();
    data.push(".data");
    data.into()
}

/// Writes `model` to `path` through temporary files beside it, so that `path` never holds a
/// partial model. Weights over `EXTERNAL_DATA_BYTES` go to ONNX external data, the file
/// `external_data_path(path)`, which the `.onnx` file names relative to itself: tract then reads
/// each tensor from there as it builds it, instead of decoding the whole file into memory first
/// and copying every tensor out of it (two copies of the weights at once). A model without large
/// weights is one file, and a stale data file beside it is removed. Returns the bytes written.
pub(crate) fn write_model(
    mut model: ModelProto,
    path: &Path,
    weights: WeightsFile,
) -> std::io::Result<u64> {
    let data_path = external_data_path(path);
    let location = data_path
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| std::io::Error::other(format!("{} has no file name", path.display())))?
        .to_owned();
    let mut data: Vec<u8> = Vec::new();
    for tensor in model
        .graph
        .iter_mut()
        .flat_map(|g| g.initializer.iter_mut())
        .filter(|t| weights == WeightsFile::Beside && t.raw_data.len() > EXTERNAL_DATA_BYTES)
    {
        // Each tensor starts on a 4 KiB boundary, as onnx's own writer aligns them.
        data.resize(data.len().next_multiple_of(4096), 0);
        let offset = data.len();
        data.extend_from_slice(&tensor.raw_data);
        let entry = |key: &str, value: String| StringStringEntryProto {
            key: key.into(),
            value,
        };
        tensor.external_data = vec![
            entry("location", location.clone()),
            entry("offset", offset.to_string()),
            entry("length", tensor.raw_data.len().to_string()),
        ];
        tensor.data_location = Some(tensor_proto::DataLocation::External as i32);
        tensor.raw_data = Vec::new();
    }
    let bytes = model.encode_to_vec();
    if data.is_empty() {
        write_atomically(path, &bytes)?;
        match std::fs::remove_file(&data_path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
    } else {
        // The data first: a `.onnx` file is only ever beside the data it names.
        write_atomically(&data_path, &data)?;
        write_atomically(path, &bytes)?;
    }
    Ok((bytes.len() + data.len()) as u64)
}

fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut partial = path.as_os_str().to_owned();
    partial.push(".part");
    let partial = std::path::PathBuf::from(partial);
    std::fs::write(&partial, bytes)
        .and_then(|()| std::fs::rename(&partial, path))
        .inspect_err(|_| {
            let _ = std::fs::remove_file(&partial);
        })
}

/// Loads the ONNX file at `path` in tract, optimises it and runs a batch of two zero patches,
/// checking that every output is finite and shaped `[2, len]`. Returns the load + optimise time.
pub(crate) fn check_in_tract(
    path: &Path,
    frames: usize,
    bands: usize,
    outputs: &[(&str, usize)],
) -> Result<Duration, String> {
    let start = Instant::now();
    let model = tract_onnx::onnx()
        .model_for_path(path)
        .map_err(|e| format!("tract cannot load it: {e:#}"))?;
    // The graph's output names, as written (optimisation may fold the nodes that carried them).
    let names: Vec<String> = model
        .output_outlets()
        .map_err(|e| e.to_string())?
        .iter()
        .map(|&o| {
            model
                .outlet_label(o)
                .map_or_else(|| model.node(o.node).name.clone(), str::to_string)
        })
        .collect();
    let model = model
        .into_optimized()
        .and_then(|m| m.into_runnable())
        .map_err(|e| format!("tract cannot optimise it: {e:#}"))?;
    let load = start.elapsed();
    let batch = Tensor::zero::<f32>(&[2, frames, bands]).map_err(|e| e.to_string())?;
    let results = model
        .run(tvec!(batch.into()))
        .map_err(|e| format!("tract cannot run it: {e:#}"))?;
    if results.len() != outputs.len() {
        return Err(format!(
            "{} outputs ({names:?}), expected {}",
            results.len(),
            outputs.len()
        ));
    }
    for ((name, len), (actual_name, value)) in outputs.iter().zip(names.iter().zip(&results)) {
        if name != actual_name {
            return Err(format!(
                "output `{actual_name}` where `{name}` was expected"
            ));
        }
        if value.shape() != [2, *len] {
            return Err(format!(
                "output `{name}` has shape {:?}, expected [2, {len}]",
                value.shape()
            ));
        }
        let view = value
            .to_plain_array_view::<f32>()
            .map_err(|e| e.to_string())?;
        if view.iter().any(|v| !v.is_finite()) {
            return Err(format!("output `{name}` is not finite for a silent patch"));
        }
    }
    Ok(load)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_padding_matches_tensorflow() {
        // TensorFlow: out = ceil(in / stride), pad_total = max((out - 1) * stride + k - in, 0),
        // pad_before = pad_total / 2.
        assert_eq!(padding(96, 3, 2, 1, Padding::Same), Some((0, 1, 48)));
        assert_eq!(padding(64, 3, 2, 1, Padding::Same), Some((0, 1, 32)));
        assert_eq!(padding(48, 3, 1, 1, Padding::Same), Some((1, 1, 48)));
        assert_eq!(padding(3, 3, 2, 1, Padding::Same), Some((1, 1, 2)));
        assert_eq!(padding(96, 2, 2, 1, Padding::Same), Some((0, 0, 48)));
        assert_eq!(padding(5, 2, 2, 1, Padding::Same), Some((0, 1, 3)));
        assert_eq!(padding(96, 3, 1, 1, Padding::Valid), Some((0, 0, 94)));
        assert_eq!(padding(2, 3, 1, 1, Padding::Valid), None);
    }
}
