#!/usr/bin/env python3
"""The onnxruntime side of `benches/backbones.rs`: median per-window time of an ONNX backbone.

Usage: onnxruntime_backbones.py MODEL.onnx PATCHES.npy RUNS WARMUP
Runs the model on one [1, 96, 64] patch at a time (cycling through PATCHES), on one thread
(intra- and inter-op), with all graph optimisations on, and prints {"median_ms": ...}.
"""

import json
import sys
import time

import numpy as np
import onnxruntime as ort


def main():
    model, patches, runs, warmup = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    session = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    data = np.load(patches).astype(np.float32)
    times = []
    for i in range(warmup + runs):
        patch = data[i % len(data)][None]
        start = time.perf_counter()
        session.run(None, {name: patch})
        if i >= warmup:
            times.append((time.perf_counter() - start) * 1e3)
    print(json.dumps({"median_ms": float(np.median(times)), "onnxruntime": ort.__version__}))


if __name__ == "__main__":
    main()
