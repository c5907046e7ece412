#!/usr/bin/env python3
"""A VGGish checkpoint in the official format, and TensorFlow's embeddings, for the converter's test.

The official `vggish_model.ckpt` cannot be fetched here, so this script makes a checkpoint of the
same network in the same format: it builds VGGish with `tf.compat.v1` exactly as `vggish_slim.py`
(tensorflow/models, research/audioset/vggish) defines it - 3x3 convolutions with stride 1, SAME
padding and ReLU; 2x2 max pools with stride 2 and SAME padding; conv1 64, pool1, conv2 128, pool2,
conv3/conv3_{1,2} 256, pool3, conv4/conv4_{1,2} 512, pool4, flatten (NHWC order), fc1/fc1_{1,2}
4096 with ReLU, fc2 128 without activation - under the official variable names
(`vggish/conv1/weights`, `vggish/conv1/biases`, ...), fills it with seeded random weights scaled
so that activations stay in a sane range (He initialisation), and saves it with
`tf.compat.v1.train.Saver(write_version=SaverDef.V1)`: one file of SavedTensorSlices, the format
of the official checkpoint.

In: an output folder, audio files for realistic patches, a seed. Out, in that folder:
- `vggish_v1.ckpt`: the V1 checkpoint; `vggish_v2.ckpt.index` + `.data-00000-of-00001`: the same
  weights as a V2 checkpoint.
- `missing_fc1.ckpt` (V1): every variable but `vggish/fc1/fc1_1/weights` and
  `vggish/fc1/fc1_2/weights`.
- `wrong_shape.ckpt` (V1): every variable, but `vggish/conv2/weights` is [3, 3, 64, 32].
- `patches.npy` f32 [N, 96, 64]: log-mel patches (log(mel + 0.01), 64 HTK mel bands 125-7500 Hz
  of 25 ms periodic-Hann frames every 10 ms at 16 kHz, 96 frames each) of the music, then a few
  uniformly random patches.
- `embeddings.npy` f32 [N, 128]: TensorFlow's fc2 output for those patches (float32, oneDNN off).

Prints one JSON line of figures to stdout.
"""

import argparse
import json
import os

os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import resampy  # noqa: E402
import soundfile as sf  # noqa: E402
import tensorflow as tf  # noqa: E402

SAMPLE_RATE = 16000
FRAMES, BANDS = 96, 64
CONVS = [("conv1", 1, 64), "pool", ("conv2", 64, 128), "pool",
         ("conv3/conv3_1", 128, 256), ("conv3/conv3_2", 256, 256), "pool",
         ("conv4/conv4_1", 256, 512), ("conv4/conv4_2", 512, 512), "pool"]
DENSES = [("fc1/fc1_1", 6 * 4 * 512, 4096, True), ("fc1/fc1_2", 4096, 4096, True),
          ("fc2", 4096, 128, False)]


def hertz_to_mel(hz):
    return 1127.0 * np.log(1.0 + hz / 700.0)


def mel_matrix(fft_bins, lower=125.0, upper=7500.0):
    """HTK-mel triangles over the spectrogram bins, [fft_bins, BANDS]."""
    bin_mels = hertz_to_mel(np.linspace(0.0, SAMPLE_RATE / 2, fft_bins))
    edges = np.linspace(hertz_to_mel(lower), hertz_to_mel(upper), BANDS + 2)
    weights = np.empty((fft_bins, BANDS))
    for i in range(BANDS):
        low, centre, high = edges[i : i + 3]
        rising = (bin_mels - low) / (centre - low)
        falling = (high - bin_mels) / (high - centre)
        weights[:, i] = np.maximum(0.0, np.minimum(rising, falling))
    weights[0, :] = 0.0
    return weights


def log_mel_patches(path, offset_s, seconds):
    audio, rate = sf.read(path, dtype="float32", always_2d=True)
    audio = audio.mean(axis=1)[int(offset_s * rate) : int((offset_s + seconds + 1) * rate)]
    audio = resampy.resample(audio, rate, SAMPLE_RATE)[: int(seconds * SAMPLE_RATE)]
    window, hop, fft = 400, 160, 512
    frames = 1 + (len(audio) - window) // hop
    index = np.arange(window)[None, :] + hop * np.arange(frames)[:, None]
    hann = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(window) / window)
    spectrum = np.abs(np.fft.rfft(audio[index] * hann, fft))
    log_mel = np.log(spectrum @ mel_matrix(spectrum.shape[1]) + 0.01)
    patches = len(log_mel) // FRAMES
    return log_mel[: patches * FRAMES].reshape(patches, FRAMES, BANDS)


def make_weights(seed):
    """name -> value, He-initialised, for every VGGish variable."""
    rng = np.random.default_rng(seed)
    values = {}
    for layer in CONVS:
        if layer == "pool":
            continue
        scope, inputs, outputs = layer
        std = np.sqrt(2.0 / (9 * inputs))
        values[f"vggish/{scope}/weights"] = rng.normal(0, std, (3, 3, inputs, outputs))
        values[f"vggish/{scope}/biases"] = rng.normal(0, 0.05, outputs)
    for scope, inputs, outputs, relu in DENSES:
        std = np.sqrt((2.0 if relu else 1.0) / inputs)
        values[f"vggish/{scope}/weights"] = rng.normal(0, std, (inputs, outputs))
        values[f"vggish/{scope}/biases"] = rng.normal(0, 0.05, outputs)
    return {k: v.astype(np.float32) for k, v in values.items()}


def define_vggish(features, values):
    """The network of vggish_slim.define_vggish_slim, in tf.compat.v1 ops."""
    variables = {}

    def variable(scope, kind):
        name = f"vggish/{scope}/{kind}"
        var = tf.compat.v1.get_variable(kind, initializer=values[name])
        variables[name] = var
        return var

    with tf.compat.v1.variable_scope("vggish"):
        net = tf.reshape(features, [-1, FRAMES, BANDS, 1])
        for layer in CONVS:
            if layer == "pool":
                net = tf.nn.max_pool2d(net, ksize=2, strides=2, padding="SAME")
                continue
            scope = layer[0]
            with tf.compat.v1.variable_scope(scope):
                net = tf.nn.conv2d(net, variable(scope, "weights"), strides=1, padding="SAME")
                net = tf.nn.relu(tf.nn.bias_add(net, variable(scope, "biases")))
        # slim.flatten: [N, 6, 4, 512] -> [N, 12288] in NHWC order.
        net = tf.reshape(net, [-1, 6 * 4 * 512])
        for scope, _, _, relu in DENSES:
            with tf.compat.v1.variable_scope(scope):
                net = tf.matmul(net, variable(scope, "weights")) + variable(scope, "biases")
                if relu:
                    net = tf.nn.relu(net)
    return tf.identity(net, name="embedding"), variables


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", required=True)
    parser.add_argument("--music", action="append", default=[], help="audio file (repeatable)")
    parser.add_argument("--offset", type=float, default=20.0)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--random-patches", type=int, default=3)
    parser.add_argument("--seed", type=int, default=2017)
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)

    patches = [log_mel_patches(path, args.offset, args.seconds) for path in args.music]
    rng = np.random.default_rng(args.seed + 1)
    patches.append(rng.uniform(-6.0, 3.0, (args.random_patches, FRAMES, BANDS)))
    patches = np.concatenate(patches).astype(np.float32)

    values = make_weights(args.seed)
    tf.compat.v1.disable_eager_execution()
    graph = tf.Graph()
    with graph.as_default():
        features = tf.compat.v1.placeholder(tf.float32, (None, FRAMES, BANDS), name="input_features")
        embedding, variables = define_vggish(features, values)
        wrong = tf.compat.v1.get_variable("wrong_conv2", initializer=np.zeros((3, 3, 64, 32), np.float32))
        v1 = tf.compat.v1.train.SaverDef.V1
        with tf.compat.v1.Session() as session:
            session.run(tf.compat.v1.global_variables_initializer())
            embeddings = session.run(embedding, {features: patches})
            tf.compat.v1.train.Saver(variables, write_version=v1).save(
                session, os.path.join(args.out, "vggish_v1.ckpt"), write_meta_graph=False)
            tf.compat.v1.train.Saver(variables, write_version=tf.compat.v1.train.SaverDef.V2).save(
                session, os.path.join(args.out, "vggish_v2.ckpt"), write_meta_graph=False)
            missing = {k: v for k, v in variables.items() if not k.startswith("vggish/fc1/") or k.endswith("biases")}
            tf.compat.v1.train.Saver(missing, write_version=v1).save(
                session, os.path.join(args.out, "missing_fc1.ckpt"), write_meta_graph=False)
            wrong_shape = dict(variables, **{"vggish/conv2/weights": wrong})
            tf.compat.v1.train.Saver(wrong_shape, write_version=v1).save(
                session, os.path.join(args.out, "wrong_shape.ckpt"), write_meta_graph=False)

    np.save(os.path.join(args.out, "patches.npy"), patches)
    np.save(os.path.join(args.out, "embeddings.npy"), embeddings.astype(np.float32))
    print(json.dumps({
        "patches": int(len(patches)),
        "music_patches": int(len(patches) - args.random_patches),
        "embedding_abs_max": float(np.abs(embeddings).max()),
        "embedding_rms": float(np.sqrt((embeddings ** 2).mean())),
        "v1_checkpoint_bytes": os.path.getsize(os.path.join(args.out, "vggish_v1.ckpt")),
        "tensorflow": tf.__version__,
    }))


if __name__ == "__main__":
    main()
