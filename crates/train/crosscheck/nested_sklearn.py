"""Cross-check of the clip-mean logistic regression's nested figures with scikit-learn (not the
product's training, which is the Rust crate): AudioSet's released embeddings in; plain CV per L2
penalty and the nested estimate (L2 chosen on 5 inner folds, 5 outer folds x 3 seeds, folds of
its own) out, for the four- and six-mood sets. The L2 penalty maps to scikit-learn's C as
C = 1 / (l2 * training clips); inputs are standardised with the training windows' statistics, as
the Rust heads do. Needs numpy and scikit-learn; reads the TFRecord with a minimal parser.

    python3 crates/train/crosscheck/nested_sklearn.py [FILE.tfrecord]
"""
import struct
import sys

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold


def varint(b, i):
    r = s = 0
    while True:
        c = b[i]
        i += 1
        r |= (c & 0x7F) << s
        s += 7
        if c < 0x80:
            return r, i


def fields(b):
    """(field number, wire type, value) of a protobuf message."""
    i, out = 0, []
    while i < len(b):
        key, i = varint(b, i)
        f, t = key >> 3, key & 7
        if t == 0:
            v, i = varint(b, i)
        elif t == 2:
            n, i = varint(b, i)
            v, i = b[i:i + n], i + n
        elif t == 5:
            v, i = b[i:i + 4], i + 4
        elif t == 1:
            v, i = b[i:i + 8], i + 8
        else:
            raise ValueError(f"wire type {t}")
        out.append((f, t, v))
    return out


def entries(b):
    """A protobuf map<string, bytes> (Features / FeatureLists)."""
    d = {}
    for f, _, v in fields(b):
        if f == 1:
            kv = {ff: x for ff, _, x in fields(v)}
            d[kv[1].decode()] = kv.get(2, b"")
    return d


def int64s(feature):
    out = []
    for f, _, v in fields(feature):
        if f == 3:
            for _, t, x in fields(v):
                if t == 2:
                    j = 0
                    while j < len(x):
                        q, j = varint(x, j)
                        out.append(q)
                else:
                    out.append(x)
    return out


def load(path):
    data, i, clips = open(path, "rb").read(), 0, []
    while i < len(data):
        n = struct.unpack("<Q", data[i:i + 8])[0]
        record, i = data[i + 12:i + 12 + n], i + 16 + n
        labels, emb = [], None
        for f, _, v in fields(record):
            if f == 1:
                labels = int64s(entries(v)["labels"])
            if f == 2:
                seconds = entries(v)["audio_embedding"]
                emb = [
                    list(next(x for ff, _, x in fields(bl) if ff == 1))
                    for _, _, feat in fields(seconds)
                    for ff2, _, bl in fields(feat) if ff2 == 1
                ]
        clips.append((labels, np.array(emb, dtype=np.float64) * 4.0 / 255.0 - 2.0))
    return clips


MOODS = [276, 277, 278, 279, 280, 281, 282]  # Happy Funny Sad Tender Exciting Angry Scary
SETS = {4: [276, 278, 281, 282], 6: [276, 278, 281, 282, 279, 280]}
GRID = [0.01, 0.03, 0.1, 0.3, 1, 3]


def main():
    path = sys.argv[1] if len(sys.argv) > 1 else \
        "../shared/data/audioset/audioset_moods_bal_train.tfrecord"
    clips = load(path)
    for moods, classes in SETS.items():
        X, y = [], []
        for labels, emb in clips:
            carried = sorted({l for l in labels if l in MOODS})
            if len(carried) == 1 and carried[0] in classes:
                X.append(emb)
                y.append(classes.index(carried[0]))
        W, y = np.stack(X), np.array(y)

        def fit_predict(train, test, l2):
            windows = W[train].reshape(-1, W.shape[2])
            mean_embedding = ((W - windows.mean(0)) / windows.std(0)).mean(1)
            model = LogisticRegression(C=1.0 / (l2 * len(train)), max_iter=10000)
            return model.fit(mean_embedding[train], y[train]).predict(mean_embedding[test])

        print(f"{moods} moods, {len(y)} clips, per label {np.bincount(y).tolist()}")
        for l2 in GRID:
            accuracy = []
            for seed in (1, 2, 3):
                predicted = np.zeros(len(y), int)
                for train, test in StratifiedKFold(5, shuffle=True, random_state=seed).split(W, y):
                    predicted[test] = fit_predict(train, test, l2)
                accuracy.append((predicted == y).mean())
            print(f"  plain 5-fold CV, l2 {l2}: {np.mean(accuracy):.3f}")
        accuracy, per_clip = [], np.zeros(len(y))
        for seed in (1, 2, 3):
            predicted = np.zeros(len(y), int)
            for train, test in StratifiedKFold(5, shuffle=True, random_state=seed).split(W, y):
                inner = StratifiedKFold(5, shuffle=True, random_state=100 * seed)
                scores = [
                    sum((fit_predict(train[a], train[b], l2) == y[train[b]]).sum()
                        for a, b in inner.split(train, y[train]))
                    for l2 in GRID
                ]
                predicted[test] = fit_predict(train, test, GRID[int(np.argmax(scores))])
            accuracy.append((predicted == y).mean())
            per_clip += (predicted == y) / 3
        rng = np.random.default_rng(0)
        boot = [per_clip[rng.integers(0, len(y), len(y))].mean() for _ in range(10000)]
        low, high = np.percentile(boot, [2.5, 97.5])
        print(f"  nested: {np.mean(accuracy):.3f} [{low:.3f}, {high:.3f}] "
              f"(seeds {', '.join(f'{a:.3f}' for a in accuracy)})")


if __name__ == "__main__":
    main()
