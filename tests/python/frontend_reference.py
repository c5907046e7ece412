#!/usr/bin/env python3
"""Reference log-mel patches for the front-end golden test (tests/frontend_golden.rs).

Runs the reference VGGish front end -- `vggish_input.waveform_to_examples` and
`mel_features.py` from the torchvggish 0.2 source distribution, unmodified -- on real music
(Debian `hyperrogue-music`) and synthetic signals at several sample rates, and writes into
OUT_DIR:

  manifest.json                 the cases: name, rate, input file, reference files
  <case>.input.npy              mono float32 samples at the case's rate (what both sides analyse)
  <case>.resampy16k.npy         float64, `resampy.resample(input, rate, 16000)` (rates != 16 kHz)
  <case>.off<o>.hop<h>.npy      float64 [patches, 96, 64], reference patches for log offset o
                                (0.01 VGGish, 0.001 YAMNet) and patch hop h frames (96, 48)

How the reference is loaded: vggish_input.py does `import torch` at the top (only to return a
tensor when `return_tensor=True`), and the package's __init__ imports the PyTorch model. Neither
is needed for the features, so this script (1) registers the installed `torchvggish` folder as a
bare package, without running its __init__, and (2) puts a stub `torch` module in sys.modules that
raises if anything touches it. `waveform_to_examples(data, rate, return_tensor=False)` then runs
as shipped; the log offset and patch hop are set through `vggish_params` (LOG_OFFSET,
EXAMPLE_HOP_SECONDS), which it reads at call time.

Needs: numpy, resampy, soundfile (tests/python/requirements.txt) and the torchvggish sdist
installed without its dependencies: `pip install --no-deps torchvggish==0.2`.
Fails (exit status 1) with a clear message if any of them is missing.
"""

import argparse
import importlib
import importlib.util
import json
import os
import sys
import types

MUSIC_DIR = "/usr/share/hyperrogue/music"
# (case name, file, start seconds, duration seconds): a track's opening (fade-in, file start)
# and a passage from the middle of another.
MUSIC = [
    ("caves", "hr3-caves.ogg", 0.0, 12.0),
    ("caribbean", "hr-savino-caribbean.ogg", 40.0, 12.0),
]
MUSIC_RATES = [8000, 11025, 16000, 22050, 32000, 44100, 48000, 96000, 192000]
SYNTHETIC_RATES = [8000, 16000, 22050, 44100, 48000, 96000]
SYNTHETIC_SECONDS = 5.0
CONFIGS = [(0.01, 96), (0.01, 48), (0.001, 96), (0.001, 48)]


def fail(message):
    print(f"frontend_reference.py: {message}", file=sys.stderr)
    sys.exit(1)


def load_reference():
    """Returns (vggish_input, vggish_params) from the installed torchvggish sdist."""
    spec = importlib.util.find_spec("torchvggish")
    if spec is None or not spec.submodule_search_locations:
        fail("the reference front end is missing: pip install --no-deps torchvggish==0.2")
    package = types.ModuleType("torchvggish")
    package.__path__ = list(spec.submodule_search_locations)
    sys.modules["torchvggish"] = package

    def no_torch(name):
        raise RuntimeError(f"torch.{name} used: the feature path must not need PyTorch")

    torch_stub = types.ModuleType("torch")
    torch_stub.__getattr__ = no_torch
    sys.modules["torch"] = torch_stub
    vggish_input = importlib.import_module("torchvggish.vggish_input")
    vggish_params = importlib.import_module("torchvggish.vggish_params")
    return vggish_input, vggish_params


def reference_patches(vggish_input, vggish_params, data, rate, log_offset, hop):
    vggish_params.LOG_OFFSET = log_offset
    vggish_params.EXAMPLE_HOP_SECONDS = hop * vggish_params.STFT_HOP_LENGTH_SECONDS
    examples = vggish_input.waveform_to_examples(data, rate, return_tensor=False)
    return np.ascontiguousarray(examples, dtype=np.float64)


def music_cases():
    for name, file, start, seconds in MUSIC:
        path = os.path.join(MUSIC_DIR, file)
        if not os.path.exists(path):
            fail(f"{path} is missing: apt-get install -y hyperrogue-music")
        audio, rate = soundfile.read(path, dtype="float64", always_2d=True)
        # Mono the way waveform_to_examples makes it (mean of the channels).
        audio = audio[int(start * rate) : int((start + seconds) * rate)].mean(axis=1)
        for target in MUSIC_RATES:
            signal = audio if target == rate else resampy.resample(audio, rate, target)
            yield f"{name}_{target}", target, signal.astype(np.float32)


def synthetic_cases():
    rng = np.random.default_rng(20240611)
    for rate in SYNTHETIC_RATES:
        t = np.arange(int(SYNTHETIC_SECONDS * rate)) / rate
        # Logarithmic sweep from 30 Hz to 95% of Nyquist: above 8 kHz it tests the anti-aliasing.
        f0, f1 = 30.0, 0.95 * rate / 2
        k = np.log(f1 / f0) / SYNTHETIC_SECONDS
        sweep = 0.5 * np.sin(2 * np.pi * f0 * (np.exp(k * t) - 1) / k)
        yield f"sweep_{rate}", rate, sweep.astype(np.float32)
        yield f"silence_{rate}", rate, np.zeros(len(t), dtype=np.float32)
        yield f"noise_{rate}", rate, rng.uniform(-1.0, 1.0, len(t)).astype(np.float32)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out_dir")
    args = parser.parse_args()
    vggish_input, vggish_params = load_reference()
    os.makedirs(args.out_dir, exist_ok=True)

    cases = []
    for name, rate, signal in list(music_cases()) + list(synthetic_cases()):
        # Both sides analyse exactly these float32 samples; the reference in float64, as
        # wavfile_to_examples hands it float64 samples.
        data = signal.astype(np.float64)
        case = {"name": name, "rate": rate, "input": f"{name}.input.npy", "references": []}
        np.save(os.path.join(args.out_dir, case["input"]), signal)
        if rate != vggish_params.SAMPLE_RATE:
            case["resampled"] = f"{name}.resampy16k.npy"
            resampled = resampy.resample(data, rate, vggish_params.SAMPLE_RATE)
            np.save(os.path.join(args.out_dir, case["resampled"]), resampled)
        for log_offset, hop in CONFIGS:
            patches = reference_patches(vggish_input, vggish_params, data, rate, log_offset, hop)
            file = f"{name}.off{log_offset}.hop{hop}.npy"
            np.save(os.path.join(args.out_dir, file), patches)
            case["references"].append({"log_offset": log_offset, "hop": hop, "patches": file})
        cases.append(case)

    with open(os.path.join(args.out_dir, "manifest.json"), "w") as f:
        json.dump({"cases": cases}, f, indent=1)
    print(f"wrote {len(cases)} cases to {args.out_dir}")


try:
    import numpy as np
    import resampy
    import soundfile
except ImportError as missing:
    fail(f"{missing.name} is missing: pip install -r tests/python/requirements.txt")

if __name__ == "__main__":
    main()
