#!/usr/bin/env python3
"""Reference outputs of the official YAMNet .tflite on real music, for the converter's test.

In: the official `yamnet.tflite`, one or more audio files (decoded with soundfile, mixed to
mono, resampled to 16 kHz with resampy) and an output folder. Out, in that folder (float32 .npy):

- `patches.npy` [N, 96, 64]: the log-mel patches the TFLite graph itself computed and fed to
  its first CONV_2D (read back with `experimental_preserve_all_tensors=True`).
- `interpreter_scores.npy` [N, 521], `interpreter_embedding.npy` [N, 1024]: what the official
  interpreter (ai-edge-litert, builtin kernels) outputs for those patches.
- `float_scores.npy`, `float_embedding.npy`: the same network computed in float64 numpy from
  the file's dequantized weights (w = scale[c] * (q - zero_point[c])), options read from the
  flatbuffer with the official schema bindings. This is the arithmetic the ONNX graph is meant
  to reproduce.

Why two references: the interpreter runs the int8-weight layers with its "hybrid" kernels, which
also quantize each layer's *input* to int8 on the fly (per example, asymmetric, as the ops'
`asymmetric_quantize_inputs` flag says). That is not float maths, so the interpreter differs from
any float implementation by a few percent in the embedding. To show that this - and nothing else
(padding, strides, activations, weight layouts, dequantization) - is the difference, the script
checks every layer of the numpy network against the interpreter's own preserved input and output
of that layer: float-weight layers must match to 1e-4 at every output; int8-weight layers, with
the input quantization emulated, must match to 1e-5 at 90% of their outputs (the rest differ by
one quantization step of an input where float32 and float64 rounding disagree). It exits
non-zero if not.

Prints one JSON line of figures to stdout.
"""

import argparse
import json
import os
import sys

import numpy as np
import resampy
import soundfile as sf
from ai_edge_litert import schema_py_generated as schema
from ai_edge_litert.interpreter import Interpreter, OpResolverType

SAMPLE_RATE = 16000
OP_NAMES = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
RELU = schema.ActivationFunctionType.RELU
NONE = schema.ActivationFunctionType.NONE
SAME = schema.Padding.SAME


def load_music(path, offset_s, seconds):
    audio, rate = sf.read(path, dtype="float32", always_2d=True)
    audio = audio.mean(axis=1)
    start = int(offset_s * rate)
    audio = audio[start : start + int((seconds + 1) * rate)]
    audio = resampy.resample(audio, rate, SAMPLE_RATE)
    return audio[: int(seconds * SAMPLE_RATE)].astype(np.float32)


class TfliteModel:
    """The flatbuffer read with the official schema bindings (independent of the Rust reader)."""

    def __init__(self, path):
        with open(path, "rb") as f:
            self.model = schema.ModelT.InitFromPackedBuf(f.read(), 0)
        self.graph = self.model.subgraphs[0]

    def op_name(self, op):
        code = self.model.operatorCodes[op.opcodeIndex]
        return OP_NAMES[max(code.builtinCode, code.deprecatedBuiltinCode)]

    def core_ops(self):
        """The ops from the first CONV_2D on a [_, 96, 64, 1] tensor to the end."""
        for i, op in enumerate(self.graph.operators):
            if self.op_name(op) == "CONV_2D":
                shape = list(self.graph.tensors[op.inputs[0]].shape)
                if shape[1:] == [96, 64, 1]:
                    return self.graph.operators[i:]
        raise SystemExit("no CONV_2D reads a [_, 96, 64, 1] patch")

    def weights(self, index):
        tensor = self.graph.tensors[index]
        data = bytes(self.model.buffers[tensor.buffer].data)
        if tensor.type == schema.TensorType.FLOAT32:
            return np.frombuffer(data, np.float32).reshape(tensor.shape).astype(np.float64)
        if tensor.type == schema.TensorType.INT8:
            q = tensor.quantization
            values = np.frombuffer(data, np.int8).reshape(tensor.shape).astype(np.float64)
            shape = [1] * values.ndim
            shape[q.quantizedDimension] = -1
            scale = np.asarray(q.scale, np.float64)
            zero = np.asarray(q.zeroPoint if q.zeroPoint is not None else [0], np.float64)
            if len(scale) > 1:
                scale, zero = scale.reshape(shape), zero.reshape(shape)
            return (values - zero) * scale
        if tensor.type == schema.TensorType.INT32:
            return np.frombuffer(data, np.int32).reshape(tensor.shape)
        raise SystemExit(f"unexpected tensor type {tensor.type}")

    def is_int8(self, index):
        return self.graph.tensors[index].type == schema.TensorType.INT8


def same_pad(x, kernel, stride):
    _, height, width, _ = x.shape
    out_h, out_w = -(-height // stride[0]), -(-width // stride[1])
    pad_h = max((out_h - 1) * stride[0] + kernel[0] - height, 0)
    pad_w = max((out_w - 1) * stride[1] + kernel[1] - width, 0)
    padded = np.pad(x, ((0, 0), (pad_h // 2, pad_h - pad_h // 2), (pad_w // 2, pad_w - pad_w // 2), (0, 0)))
    return padded, out_h, out_w


def conv(x, weights, bias, stride, depthwise):
    """NHWC convolution with SAME padding; weights OHWI (conv) or 1HWC (depthwise)."""
    kernel = weights.shape[1:3]
    padded, out_h, out_w = same_pad(x, kernel, stride)
    channels = weights.shape[3] if depthwise else weights.shape[0]
    out = np.zeros((x.shape[0], out_h, out_w, channels))
    for dy in range(kernel[0]):
        for dx in range(kernel[1]):
            window = padded[:, dy : dy + stride[0] * out_h : stride[0], dx : dx + stride[1] * out_w : stride[1], :]
            if depthwise:
                out += window * weights[0, dy, dx, :]
            else:
                out += np.einsum("nhwc,oc->nhwo", window, weights[:, dy, dx, :])
    return out + bias


def quantize_inputs(x):
    """TFLite's hybrid-kernel input quantization: per example, asymmetric int8."""
    out = np.empty_like(x)
    for n in range(x.shape[0]):
        v = x[n]
        low, high = min(v.min(), 0.0), max(v.max(), 0.0)
        if high == low:
            out[n] = v
            continue
        scale = (high - low) / 255.0
        zero = np.round(-128 - low / scale)
        out[n] = (np.clip(np.round(v / scale + zero), -128, 127) - zero) * scale
    return out


def run_layer(model, op, x, emulate_hybrid):
    """One op of the core network in float64 (NHWC); None for ops that are not layers."""
    name = model.op_name(op)
    options = op.builtinOptions
    if emulate_hybrid and len(op.inputs) > 1 and model.is_int8(op.inputs[1]):
        x = quantize_inputs(x)
    if name in ("CONV_2D", "DEPTHWISE_CONV_2D"):
        if options.padding != SAME or options.dilationHFactor != 1 or options.dilationWFactor != 1:
            raise SystemExit(f"{name}: unexpected padding/dilation")
        x = conv(x, model.weights(op.inputs[1]), model.weights(op.inputs[2]),
                 (options.strideH, options.strideW), name == "DEPTHWISE_CONV_2D")
    elif name == "MEAN":
        return x.mean(axis=tuple(int(a) for a in model.weights(op.inputs[1])))
    elif name == "FULLY_CONNECTED":
        x = x @ model.weights(op.inputs[1]).T + model.weights(op.inputs[2])
    elif name == "LOGISTIC":
        return 1.0 / (1.0 + np.exp(-x))
    else:
        raise SystemExit(f"unexpected op {name} in the core network")
    activation = options.fusedActivationFunction
    if activation == RELU:
        return np.maximum(x, 0.0)
    if activation != NONE:
        raise SystemExit(f"{name}: unexpected fused activation {activation}")
    return x


def run_core(model, patches):
    """The core network in float64 from the file's dequantized weights."""
    x = patches.astype(np.float64)[..., None]
    embedding = None
    for op in model.core_ops():
        x = run_layer(model, op, x, emulate_hybrid=False)
        if model.op_name(op) == "MEAN":
            embedding = x
    return x, embedding


def check_layers(model, interpreter):
    """Every layer recomputed from the interpreter's own input to it, against its output."""
    report, failures = [], []
    for op in model.core_ops():
        name = model.op_name(op)
        x = interpreter.get_tensor(op.inputs[0]).astype(np.float64)
        expected = interpreter.get_tensor(op.outputs[0]).astype(np.float64)
        int8 = len(op.inputs) > 1 and model.is_int8(op.inputs[1])
        error = np.abs(run_layer(model, op, x, emulate_hybrid=int8) - expected)
        row = {"op": name, "int8_weights": bool(int8), "max_abs": float(error.max()),
               "p90_abs": float(np.quantile(error, 0.9))}
        if int8:
            plain = np.abs(run_layer(model, op, x, emulate_hybrid=False) - expected)
            row["p90_abs_without_input_quantization"] = float(np.quantile(plain, 0.9))
            ok = row["p90_abs"] <= 1e-5
        else:
            ok = row["max_abs"] <= 1e-4
        report.append(row)
        if not ok:
            failures.append(row)
    return report, failures


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tflite", required=True)
    parser.add_argument("--music", required=True, action="append", help="audio file (repeatable)")
    parser.add_argument("--offset", type=float, default=20.0, help="seconds skipped in each file")
    parser.add_argument("--seconds", type=float, default=6.0, help="seconds used from each file")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()

    model = TfliteModel(args.tflite)
    core = model.core_ops()
    patch_tensor = core[0].inputs[0]
    mean_op = next(op for op in core if model.op_name(op) == "MEAN")
    logistic_op = next(op for op in core if model.op_name(op) == "LOGISTIC")

    patches, scores, embeddings, layers, failures = [], [], [], [], []
    for path in args.music:
        waveform = load_music(path, args.offset, args.seconds)
        interpreter = Interpreter(
            model_path=args.tflite,
            experimental_preserve_all_tensors=True,
            experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES,
        )
        interpreter.resize_tensor_input(0, [len(waveform)])
        interpreter.allocate_tensors()
        interpreter.set_tensor(interpreter.get_input_details()[0]["index"], waveform)
        interpreter.invoke()
        patches.append(interpreter.get_tensor(patch_tensor)[..., 0])
        embeddings.append(interpreter.get_tensor(mean_op.outputs[0]))
        scores.append(interpreter.get_tensor(logistic_op.outputs[0]))
        report, bad = check_layers(model, interpreter)
        layers.append(report)
        failures.extend(bad)
    patches = np.concatenate(patches).astype(np.float32)
    scores = np.concatenate(scores).astype(np.float32)
    embeddings = np.concatenate(embeddings).astype(np.float32)

    float_scores, float_embedding = run_core(model, patches)
    interpreter_vs_float = {
        "scores": float(np.abs(float_scores - scores).max()),
        "embedding": float(np.abs(float_embedding - embeddings).max()),
    }
    os.makedirs(args.out, exist_ok=True)
    for name, array in [
        ("patches", patches),
        ("interpreter_scores", scores),
        ("interpreter_embedding", embeddings),
        ("float_scores", float_scores),
        ("float_embedding", float_embedding),
    ]:
        np.save(os.path.join(args.out, f"{name}.npy"), np.asarray(array, np.float32))
    worst_int8 = max((r for r in layers[0] if r["int8_weights"]), key=lambda r: r["p90_abs"])
    worst_float = max((r for r in layers[0] if not r["int8_weights"]), key=lambda r: r["max_abs"])
    print(json.dumps({
        "patches": int(patches.shape[0]),
        "float_vs_interpreter_max_abs": interpreter_vs_float,
        "layer_check_worst_int8_layer": worst_int8,
        "layer_check_worst_float_layer": worst_float,
        "float_top5_mean_scores": [int(i) for i in np.argsort(-float_scores.mean(axis=0))[:5]],
    }))
    if failures:
        sys.exit(
            "the numpy network does not reproduce the interpreter layer by layer; the float "
            f"reference cannot be trusted: {failures}"
        )


if __name__ == "__main__":
    main()
