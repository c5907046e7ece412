//! TFLite model reading (the flatbuffers types re-exported by `tract_tflite::tflite`).
//!
//! In: the bytes of a `.tflite` file. Out: its main subgraph's operators in execution order
//! (builtin code, input and output tensor indices, options), tensor shapes, and constant tensors
//! as float32 weights (int8 weight-only quantization undone: `w = scale[c] * (q - zero_point[c])`
//! along the tensor's quantized dimension) or int32 values.

use tract_onnx::prelude::tract_ndarray::{ArrayD, IxDyn};
use tract_tflite::tflite;

use crate::onnx::{Activation, Padding};

/// The main subgraph of a verified TFLite flatbuffer.
pub(crate) struct TfliteGraph<'a> {
    model: tflite::Model<'a>,
    subgraph: tflite::SubGraph<'a>,
}

/// One operator of the graph.
pub(crate) struct Op<'a> {
    /// Position in the subgraph's execution order.
    pub index: usize,
    pub code: tflite::BuiltinOperator,
    pub inputs: Vec<i32>,
    pub outputs: Vec<i32>,
    pub raw: tflite::Operator<'a>,
}

impl Op<'_> {
    /// The operator's name, e.g. `CONV_2D`.
    pub fn name(&self) -> String {
        op_name(self.code)
    }

    /// Input `i`'s tensor index.
    pub fn input(&self, i: usize) -> Result<i32, String> {
        self.inputs
            .get(i)
            .copied()
            .filter(|&t| t >= 0)
            .ok_or_else(|| format!("{} #{} has no input {i}", self.name(), self.index))
    }

    /// The single output's tensor index.
    pub fn output(&self) -> Result<i32, String> {
        match self.outputs.as_slice() {
            [t] => Ok(*t),
            _ => Err(format!(
                "{} #{} has {} outputs, expected 1",
                self.name(),
                self.index,
                self.outputs.len()
            )),
        }
    }
}

/// A constant tensor as float32 weights.
pub(crate) struct Weights {
    pub values: ArrayD<f32>,
    /// Whether the stored values were int8 and have been dequantized.
    pub dequantized: bool,
}

impl<'a> TfliteGraph<'a> {
    /// Verifies the flatbuffer and opens its first subgraph.
    pub fn parse(bytes: &'a [u8]) -> Result<Self, String> {
        let model = tflite::root_as_model(bytes).map_err(|e| {
            // The verifier's message spans several lines; one line reads better.
            let detail = e
                .to_string()
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ");
            format!("not a TFLite flatbuffer ({detail})")
        })?;
        let subgraph = model
            .subgraphs()
            .filter(|s| !s.is_empty())
            .map(|s| s.get(0))
            .ok_or("the model has no subgraph")?;
        Ok(Self { model, subgraph })
    }

    /// Every operator, in execution order.
    pub fn ops(&self) -> Result<Vec<Op<'a>>, String> {
        let codes = self.model.operator_codes().ok_or("no operator codes")?;
        let operators = self.subgraph.operators().ok_or("no operators")?;
        operators
            .iter()
            .enumerate()
            .map(|(index, raw)| {
                let opcode = raw.opcode_index() as usize;
                if opcode >= codes.len() {
                    return Err(format!("operator #{index} has a bad opcode index {opcode}"));
                }
                let code = codes.get(opcode);
                // Since schema v3a, `builtin_code` holds codes above 127 and the deprecated
                // field the ones below; readers take the larger of the two.
                let code = tflite::BuiltinOperator(
                    code.builtin_code()
                        .0
                        .max(i32::from(code.deprecated_builtin_code())),
                );
                Ok(Op {
                    index,
                    code,
                    inputs: raw.inputs().map(|v| v.iter().collect()).unwrap_or_default(),
                    outputs: raw
                        .outputs()
                        .map(|v| v.iter().collect())
                        .unwrap_or_default(),
                    raw,
                })
            })
            .collect()
    }

    /// The subgraph's output tensor indices.
    pub fn outputs(&self) -> Vec<i32> {
        self.subgraph
            .outputs()
            .map(|v| v.iter().collect())
            .unwrap_or_default()
    }

    fn tensor(&self, index: i32) -> Result<tflite::Tensor<'a>, String> {
        let tensors = self.subgraph.tensors().ok_or("no tensors")?;
        usize::try_from(index)
            .ok()
            .filter(|&i| i < tensors.len())
            .map(|i| tensors.get(i))
            .ok_or_else(|| format!("bad tensor index {index}"))
    }

    /// A tensor's name, for messages.
    pub fn tensor_name(&self, index: i32) -> String {
        self.tensor(index)
            .ok()
            .and_then(|t| t.name())
            .map_or_else(|| format!("tensor {index}"), |n| format!("`{n}`"))
    }

    /// A tensor's shape as stored (batch dimensions as saved, usually 1).
    pub fn shape(&self, index: i32) -> Result<Vec<i32>, String> {
        let tensor = self.tensor(index)?;
        Ok(tensor
            .shape()
            .map(|s| s.iter().collect())
            .unwrap_or_default())
    }

    /// Whether a tensor holds float32 values.
    pub fn is_float(&self, index: i32) -> Result<bool, String> {
        Ok(self.tensor(index)?.type_() == tflite::TensorType::FLOAT32)
    }

    fn data(&self, tensor: &tflite::Tensor<'a>, index: i32) -> Result<&'a [u8], String> {
        let buffers = self.model.buffers().ok_or("no buffers")?;
        let buffer = tensor.buffer() as usize;
        if buffer == 0 || buffer >= buffers.len() {
            return Err(format!("{} is not a constant", self.tensor_name(index)));
        }
        buffers
            .get(buffer)
            .data()
            .map(|d| d.bytes())
            .filter(|d| !d.is_empty())
            .ok_or_else(|| format!("{} has no data", self.tensor_name(index)))
    }

    /// A constant float32 or int8 (weight-only quantized) tensor as float32 weights.
    pub fn weights(&self, index: i32) -> Result<Weights, String> {
        let tensor = self.tensor(index)?;
        let name = self.tensor_name(index);
        let shape: Vec<usize> = self
            .shape(index)?
            .iter()
            .map(|&d| usize::try_from(d).map_err(|_| format!("{name} has a dimension of {d}")))
            .collect::<Result<_, _>>()?;
        let count: usize = shape.iter().product();
        let data = self.data(&tensor, index)?;
        let (values, dequantized) = match tensor.type_() {
            tflite::TensorType::FLOAT32 => {
                if data.len() != count * 4 {
                    return Err(format!(
                        "{name}: {} bytes for {count} float32 values",
                        data.len()
                    ));
                }
                let values = data
                    .chunks_exact(4)
                    .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                    .collect();
                (values, false)
            }
            tflite::TensorType::INT8 => {
                if data.len() != count {
                    return Err(format!(
                        "{name}: {} bytes for {count} int8 values",
                        data.len()
                    ));
                }
                (dequantize(&tensor, &name, &shape, data)?, true)
            }
            other => {
                return Err(format!(
                    "{name} holds {} values; only float32 and int8 weights are supported",
                    other.variant_name().unwrap_or("unknown")
                ))
            }
        };
        let values = ArrayD::from_shape_vec(IxDyn(&shape), values).map_err(|e| e.to_string())?;
        Ok(Weights {
            values,
            dequantized,
        })
    }

    /// A constant int32 tensor's values.
    pub fn int32_values(&self, index: i32) -> Result<Vec<i32>, String> {
        let tensor = self.tensor(index)?;
        if tensor.type_() != tflite::TensorType::INT32 {
            return Err(format!("{} is not int32", self.tensor_name(index)));
        }
        let data = self.data(&tensor, index)?;
        if data.len() % 4 != 0 {
            return Err(format!("{}: truncated int32 data", self.tensor_name(index)));
        }
        Ok(data
            .chunks_exact(4)
            .map(|b| i32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect())
    }
}

/// `scale[c] * (q - zero_point[c])` with `c` the index along the quantized dimension.
fn dequantize(
    tensor: &tflite::Tensor<'_>,
    name: &str,
    shape: &[usize],
    data: &[u8],
) -> Result<Vec<f32>, String> {
    let q = tensor
        .quantization()
        .ok_or_else(|| format!("{name} is int8 without quantization parameters"))?;
    if q.details_type() != tflite::QuantizationDetails::NONE {
        return Err(format!("{name} uses custom quantization"));
    }
    let scales: Vec<f32> = q.scale().map(|s| s.iter().collect()).unwrap_or_default();
    let zero_points: Vec<i64> = q
        .zero_point()
        .map(|z| z.iter().collect())
        .unwrap_or_default();
    let axis = usize::try_from(q.quantized_dimension())
        .ok()
        .filter(|&a| a < shape.len().max(1))
        .ok_or_else(|| {
            format!(
                "{name}: bad quantized dimension {}",
                q.quantized_dimension()
            )
        })?;
    let channels = if scales.len() == 1 {
        1
    } else {
        shape.get(axis).copied().unwrap_or(1)
    };
    if scales.is_empty() || scales.len() != channels {
        return Err(format!(
            "{name}: {} scales for {channels} channels along dimension {axis}",
            scales.len()
        ));
    }
    if !(zero_points.is_empty() || zero_points.len() == scales.len()) {
        return Err(format!(
            "{name}: {} zero points for {} scales",
            zero_points.len(),
            scales.len()
        ));
    }
    if let Some(bad) = scales.iter().find(|s| !s.is_finite()) {
        return Err(format!("{name}: scale {bad} is not finite"));
    }
    // Elements between two steps of the quantized dimension.
    let inner: usize = if channels == 1 {
        1
    } else {
        shape[axis + 1..].iter().product()
    };
    Ok(data
        .iter()
        .enumerate()
        .map(|(i, &byte)| {
            let c = if channels == 1 {
                0
            } else {
                (i / inner) % channels
            };
            let zero = zero_points.get(c).copied().unwrap_or(0);
            scales[c] * (i64::from(byte as i8) - zero) as f32
        })
        .collect())
}

/// A fused activation as an ONNX activation.
pub(crate) fn activation(f: tflite::ActivationFunctionType) -> Result<Activation, String> {
    match f {
        tflite::ActivationFunctionType::NONE => Ok(Activation::None),
        tflite::ActivationFunctionType::RELU => Ok(Activation::Relu),
        tflite::ActivationFunctionType::RELU6 => Ok(Activation::Relu6),
        other => Err(format!(
            "fused activation {} is not supported",
            other.variant_name().unwrap_or("unknown")
        )),
    }
}

/// A TFLite padding as an ONNX padding.
pub(crate) fn padding(p: tflite::Padding) -> Result<Padding, String> {
    match p {
        tflite::Padding::SAME => Ok(Padding::Same),
        tflite::Padding::VALID => Ok(Padding::Valid),
        other => Err(format!("padding {} is not supported", other.0)),
    }
}

/// An operator code's name, e.g. `CONV_2D`.
pub(crate) fn op_name(code: tflite::BuiltinOperator) -> String {
    code.variant_name()
        .map_or_else(|| format!("operator {}", code.0), str::to_string)
}
