#!/usr/bin/env python3
"""Why energetic piano and classical music read calm, and what was tried against it.

An exploration behind the calibration card's "Piano and classical music" section, at the level of
whole excerpts (each excerpt's mean inputs over its music windows, one logistic regression for
arousal), a proxy for the shipped window-level fit in `crates/train-cli/examples/emotify.rs`: it
ranks variants, it does not replace the report's figures.

It prints, on Emotify (labels as in the report: Happy or Tense = energetic, Sad or Calm = calm):
  1. arousal agreement per genre, leave one genre out, with the arousal inputs as shipped: the
     within-genre ranking (AUC) and how often each side is read right;
  2. the same after centring each genre's scores on its own mean (an oracle: it needs the genre);
  3. variants that try to get there without the genre (YAMNet texture classes as inputs, a
     label-free texture baseline), leave one genre out and stratified 5-fold over 5 seeds, each
     paired excerpt by excerpt against the shipped inputs (exact McNemar), and on Emotify's
     piano excerpts (YAMNet's Piano score at least 0.1 on average);
  4. with --piano-windows, the synthetic piano of `synthetic_piano.py` read by each variant fitted
     on all 400 excerpts.

Windows come from `cargo run --release -p moodscope-train-cli --example window_scores`:

    ls ../shared/data/emotify/audio/{classical,rock,electronic,pop}/*.ogg | sort -V > files.txt
    cargo run --release -p moodscope-train-cli --example window_scores -- $(cat files.txt) > emotify.csv
    python3 scripts/probes/synthetic_piano.py --keep /tmp/piano
    cargo run --release -p moodscope-train-cli --example window_scores -- /tmp/piano/*.wav > piano.csv
    pip install numpy==2.4.6 scipy==1.14.1 scikit-learn==1.5.2
    python3 scripts/probes/arousal_offsets.py --emotify ../shared/data/emotify \\
        --emotify-windows emotify.csv --piano-windows piano.csv
"""

import argparse
import collections
import csv
import os

import numpy as np
from scipy.stats import binomtest
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.preprocessing import StandardScaler

GENRES = ["classical", "rock", "electronic", "pop"]
EMOTIONS = ["amazement", "solemnity", "tenderness", "nostalgia", "calmness", "power",
            "joyful_activation", "tension", "sadness"]
# Columns of a window_scores row after the path: 10 readout inputs, Music, 521 scores.
MUSIC = 10
SCORES = 11
PIANO, HARPSICHORD, ORCHESTRA, CLASSICAL = 148, 155, 179, 232
TEXTURE = {"Piano": 148, "Keyboard": 147, "Orchestra": 179, "Classical music": 232,
           "Guitar": 135, "Electric guitar": 136, "Acoustic guitar": 138, "Drum kit": 157,
           "Electronic music": 234, "Rock music": 214, "Pop music": 211, "Synthesizer": 153,
           "String section": 185, "Violin": 186, "Singing": 24, "Heavy metal": 215,
           "Techno": 236, "Ambient music": 241, "New-age music": 248, "Harpsichord": 155,
           "Percussion": 156, "Bass guitar": 137}
C = 0.1  # the inverse L2 penalty of every fit here (the report chooses its own, nested)


def read_windows(path):
    """{file: array [windows, 532]} in file order."""
    rows = collections.OrderedDict()
    with open(path) as f:
        for line in f:
            name, rest = line.rstrip("\n").split(",", 1)
            rows.setdefault(name, []).append(np.array(rest.split(","), dtype=np.float64))
    return {k: np.array(v) for k, v in rows.items()}


def logit(p):
    p = np.clip(p, 1e-7, 1 - 1e-7)
    return np.log(p / (1 - p))


def excerpt_features(windows, texture_rows=()):
    """Mean over an excerpt's music windows of the shipped arousal inputs (six mood logits,
    flux, brightness), then of the logits of the given YAMNet classes."""
    out = []
    for w in windows:
        music = w[:, MUSIC] > 0.5
        w = w[music] if music.any() else w
        extra = [logit(w[:, SCORES + r]) for r in texture_rows]
        out.append(np.column_stack([w[:, :8], *extra]).mean(0) if extra else w[:, :8].mean(0))
    return np.array(out)


def labels(emotify):
    votes = collections.defaultdict(lambda: [0, np.zeros(9)])
    with open(os.path.join(emotify, "annotations.csv"), newline="") as f:
        reader = csv.reader(f)
        header = [h.strip() for h in next(reader)]
        track = header.index("track id")
        columns = [header.index(e) for e in EMOTIONS]
        for row in reader:
            if row and row[0].strip():
                v = votes[int(row[track])]
                v[0] += 1
                v[1] += np.array([float(row[c]) for c in columns])
    shares = np.array([votes[i][1] / votes[i][0] for i in range(1, 401)])
    z = (shares - shares.mean(0)) / shares.std(0, ddof=1)
    e = EMOTIONS.index
    quadrant = np.stack([z[:, e("joyful_activation")], z[:, e("tension")], z[:, e("sadness")],
                         (z[:, e("calmness")] + z[:, e("tenderness")]) / 2], 1).argmax(1)
    return (quadrant < 2).astype(int), np.arange(400) // 100


def fit(features, energetic, train):
    """Balanced logistic regression on the training excerpts; returns a scoring function."""
    y = energetic[train]
    weight = np.where(y == 1, 0.5 / y.sum(), 0.5 / (1 - y).sum()) * train.sum()
    scale = StandardScaler().fit(features[train])
    model = LogisticRegression(C=C, max_iter=5000).fit(scale.transform(features[train]), y,
                                                       sample_weight=weight)
    return lambda f: model.decision_function(scale.transform(f))


def leave_one_genre_out(features, energetic, genre, adjust=None):
    score = np.zeros(len(energetic))
    for held_out in range(4):
        train = genre != held_out
        predict = fit(features, energetic, train)
        score[~train] = predict(features[~train])
        if adjust:
            score[~train] = adjust(predict, train, score[~train])
    return score


def stratified(features, energetic, genre, seed):
    rng = np.random.default_rng(seed)
    fold = np.zeros(len(energetic), int)
    for key in sorted(set(zip(genre, energetic))):
        members = np.where((genre == key[0]) & (energetic == key[1]))[0]
        rng.shuffle(members)
        fold[members] = np.arange(len(members)) % 5
    score = np.zeros(len(energetic))
    for k in range(5):
        train = fold != k
        score[~train] = fit(features, energetic, train)(features[~train])
    return score


def sides(score, energetic, mask):
    right_energetic = ((score > 0) & (energetic == 1) & mask).sum() / ((energetic == 1) & mask).sum()
    right_calm = ((score <= 0) & (energetic == 0) & mask).sum() / ((energetic == 0) & mask).sum()
    return right_energetic, right_calm


def auc(score, energetic):
    pos, neg = score[energetic == 1], score[energetic == 0]
    return ((pos[:, None] > neg[None, :]).mean() + 0.5 * (pos[:, None] == neg[None, :]).mean())


def mcnemar(base_right, variant_right):
    gained = int((variant_right & ~base_right).sum())
    lost = int((base_right & ~variant_right).sum())
    p = binomtest(gained, gained + lost).pvalue if gained + lost else 1.0
    return gained, lost, p


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--emotify", default="../shared/data/emotify")
    parser.add_argument("--emotify-windows", required=True)
    parser.add_argument("--piano-windows")
    args = parser.parse_args()

    energetic, genre = labels(args.emotify)
    by_file = read_windows(args.emotify_windows)
    order = [os.path.join(args.emotify, "audio", GENRES[i // 100], f"{i % 100 + 1}.ogg")
             for i in range(400)]
    found = {os.path.normpath(k): v for k, v in by_file.items()}
    windows = [found[os.path.normpath(p)] for p in order]
    piano_score = np.array([w[w[:, MUSIC] > 0.5][:, SCORES + PIANO].mean()
                            if (w[:, MUSIC] > 0.5).any() else 0.0 for w in windows])
    piano = piano_score >= 0.1

    shipped = excerpt_features(windows)
    print(f"Emotify: {energetic.sum()} energetic, {400 - energetic.sum()} calm excerpts; "
          f"{piano.sum()} piano excerpts ({(piano & (energetic == 1)).sum()} energetic), "
          f"{(piano & (genre == 0)).sum()} of them classical")

    print("\n1. Arousal, shipped inputs, leave one genre out:")
    score = leave_one_genre_out(shipped, energetic, genre)
    print(f"   all: agreement {((score > 0) == energetic).mean():.3f}, AUC {auc(score, energetic):.3f}")
    for g, name in enumerate(GENRES):
        m = genre == g
        e_ok, c_ok = sides(score, energetic, m)
        print(f"   {name:10s} agreement {((score > 0) == energetic)[m].mean():.2f}, within-genre AUC "
              f"{auc(score[m], energetic[m]):.2f}, energetic read energetic {e_ok:.2f}, calm read "
              f"calm {c_ok:.2f}, mean score {score[m].mean():+.2f}")
    e_ok, c_ok = sides(score, energetic, piano)
    print(f"   piano excerpts: energetic read energetic {e_ok:.2f}, calm read calm {c_ok:.2f}")

    print("\n2. Oracle: each genre's scores centred on their own mean (needs the genre):")
    for strength in (0.25, 0.5, 0.75, 1.0):
        centred = score.copy()
        for g in range(4):
            centred[genre == g] -= strength * score[genre == g].mean()
        right = (centred > 0) == energetic
        print(f"   strength {strength:.2f}: agreement {right.mean():.3f} "
              f"({', '.join(f'{GENRES[g]} {right[genre == g].mean():.2f}' for g in range(4))})")

    texture = excerpt_features(windows, list(TEXTURE.values()))[:, 8:]

    def texture_baseline(strength, alpha=100.0):
        # Label-free: how much of the arousal score the instruments and genres YAMNet hears
        # predict on the training excerpts, taken off the held-out ones.
        def adjust(predict, train, held_out_score):
            scale = StandardScaler().fit(texture[train])
            ridge = Ridge(alpha=alpha).fit(scale.transform(texture[train]), predict(shipped[train]))
            baseline_train = ridge.predict(scale.transform(texture[train])).mean()
            return held_out_score - strength * (
                ridge.predict(scale.transform(texture[~train])) - baseline_train)
        return adjust

    variants = [
        ("+ Piano logit", [PIANO], None),
        ("+ Piano, Harpsichord, Orchestra, Classical music", [PIANO, HARPSICHORD, ORCHESTRA, CLASSICAL], None),
        ("+ 22 texture logits", list(TEXTURE.values()), None),
        ("texture baseline taken off, strength 0.5", [], texture_baseline(0.5)),
        ("texture baseline taken off, strength 1", [], texture_baseline(1.0)),
    ]
    print("\n3. Without the genre (agreement; paired against the shipped inputs: gained / lost, p):")
    base_logo = (score > 0) == energetic
    base_scores = [stratified(shipped, energetic, genre, s) for s in range(5)]
    base_strat = [(b > 0) == energetic for b in base_scores]
    base_piano = [sides(b, energetic, piano) for b in base_scores]
    print(f"   shipped inputs: leave one genre out {base_logo.mean():.3f}, stratified "
          f"{np.mean([b.mean() for b in base_strat]):.3f}; piano excerpts energetic read "
          f"energetic {np.mean([p[0] for p in base_piano]):.2f}, calm read calm "
          f"{np.mean([p[1] for p in base_piano]):.2f}")
    fitted_on_all = {"shipped inputs": ([], None)}
    for name, rows, adjust in variants:
        features = excerpt_features(windows, rows) if rows else shipped
        logo = (leave_one_genre_out(features, energetic, genre, adjust) > 0) == energetic
        g, l, p = mcnemar(base_logo, logo)
        line = f"   {name}: leave one genre out {logo.mean():.3f} ({g}/{l}, p {p:.2f})"
        if adjust is None:
            strat, pairs, piano_sides = [], [], []
            for s in range(5):
                this = stratified(features, energetic, genre, s)
                strat.append(((this > 0) == energetic).mean())
                pairs.append(mcnemar(base_strat[s], (this > 0) == energetic))
                piano_sides.append(sides(this, energetic, piano))
            line += (f"; stratified {np.mean(strat):.3f} (p per seed "
                     f"{', '.join(f'{p:.2f}' for _, _, p in pairs)}); piano excerpts energetic "
                     f"read energetic {np.mean([s[0] for s in piano_sides]):.2f}, calm read calm "
                     f"{np.mean([s[1] for s in piano_sides]):.2f}")
            fitted_on_all[name] = (rows, None)
        print(line)

    if args.piano_windows:
        pieces = read_windows(args.piano_windows)
        names = [os.path.basename(k).rsplit(".", 1)[0] for k in pieces]
        truth = np.array([n.startswith(("happy", "tense")) for n in names]).astype(int)
        print("\n4. Synthetic piano, fitted on all 400 excerpts (energetic side read right, per quadrant):")
        everyone = np.ones(400, bool)
        for name, (rows, _) in fitted_on_all.items():
            features = excerpt_features(windows, rows) if rows else shipped
            score = fit(features, energetic, everyone)(excerpt_features(list(pieces.values()), rows))
            right = (score > 0) == truth
            per = ", ".join(
                f"{q} {right[[n.startswith(q) for n in names]].mean():.2f}"
                for q in ("happy", "tense", "sad", "calm"))
            print(f"   {name}: {per}")


if __name__ == "__main__":
    main()
