#!/usr/bin/env python3
"""The onnxruntime side of `benches/backbones.rs`: median time of an ONNX backbone per run.

Usage: onnxruntime_backbones.py MODEL.onnx PATCHES.npy RUNS WARMUP [BATCH [PROFILE [THREADS]]]
Runs the model on BATCH (default 1) [96, 64] patches at a time (cycling through PATCHES), on
THREADS (default 1) intra-op threads and one inter-op thread, with all graph optimisations on, and
prints {"median_ms": ...}, the median time of one run. With PROFILE = 1 it also prints, from
onnxruntime's own profiler, the mean time per run spent in each operator type ("op_ms": {type: ms}).
"""

import json
import os
import sys
import tempfile
import time
from collections import defaultdict

import numpy as np
import onnxruntime as ort


def main():
    model, patches, runs, warmup = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    batch = int(sys.argv[5]) if len(sys.argv) > 5 else 1
    profile = len(sys.argv) > 6 and sys.argv[6] == "1"
    threads = int(sys.argv[7]) if len(sys.argv) > 7 else 1
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    profile_dir = tempfile.mkdtemp()
    if profile:
        options.enable_profiling = True
        options.profile_file_prefix = os.path.join(profile_dir, "ort")
    session = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    data = np.load(patches).astype(np.float32)
    times = []
    for i in range(warmup + runs):
        first = (i * batch) % len(data)
        rows = [(first + j) % len(data) for j in range(batch)]
        patch = data[rows]
        start = time.perf_counter()
        session.run(None, {name: patch})
        if i >= warmup:
            times.append((time.perf_counter() - start) * 1e3)
    result = {"median_ms": float(np.median(times)), "onnxruntime": ort.__version__}
    if profile:
        path = session.end_profiling()
        with open(path) as f:
            events = json.load(f)
        op_us = defaultdict(float)
        for e in events:
            if e.get("cat") == "Node" and e.get("name", "").endswith("_kernel_time"):
                op_us[e["args"]["op_name"]] += e["dur"]
        total = warmup + runs
        result["op_ms"] = {k: v / 1e3 / total for k, v in sorted(op_us.items(), key=lambda kv: -kv[1])}
        os.remove(path)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
