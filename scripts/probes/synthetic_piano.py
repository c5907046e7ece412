#!/usr/bin/env python3
"""Synthetic solo piano in Russell's four quadrants, and what Moodscope reads in it.

A probe, not a benchmark: no listener labelled these pieces. Each one is built from the cues that
music psychology ties to each quadrant (Juslin & Laukka 2003; Gabrielsson & Lindstrom 2010):

  happy  major, fast (132-150 bpm), forte, staccato, middle-high register
  tense  diminished and clustered harmony, fast (150-172 bpm), fortissimo, low register
  sad    minor, slow (54-66 bpm), piano (soft), legato
  calm   major, slow (58-72 bpm), piano (soft), legato, middle-high register

six pieces of 30 s each (seeded: rerunning gives the same MIDI), rendered by FluidSynth with the
FluidR3 General MIDI piano, then analysed by `moodscope analyze` with the default readout and with
YAMNet's own four classes. It prints, per quadrant, what each piece reads as and its mean valence
and arousal. The calibration card (`models/calibration/README.md`, "Piano") says what it showed.

Needs: Debian's `fluidsynth` and `fluid-soundfont-gm`, Python's `mido`, and a release build of the
CLI (`cargo moodscope` builds it):

    sudo apt-get install fluidsynth fluid-soundfont-gm && pip install mido==1.3.3
    python3 scripts/probes/synthetic_piano.py [--moodscope target/release/moodscope] [--models models] [--keep DIR]
"""

import argparse
import csv
import os
import random
import subprocess
import sys
import tempfile

try:
    import mido
except ImportError:
    sys.exit("synthetic_piano.py needs mido: pip install mido==1.3.3")

SOUNDFONT = "/usr/share/sounds/sf2/FluidR3_GM.sf2"
MAJOR = [0, 2, 4, 5, 7, 9, 11]
MINOR = [0, 2, 3, 5, 7, 8, 10]
QUADRANTS = {
    "happy": dict(scale=MAJOR, bpm=(132, 150), velocity=(80, 96), legato=0.45, register=(60, 84)),
    "tense": dict(scale=None, bpm=(150, 172), velocity=(100, 120), legato=0.7, register=(36, 64)),
    "sad": dict(scale=MINOR, bpm=(54, 66), velocity=(35, 52), legato=1.0, register=(48, 72)),
    "calm": dict(scale=MAJOR, bpm=(58, 72), velocity=(38, 55), legato=1.0, register=(60, 84)),
}
PIECES = 6
SECONDS = 30


def piece(quadrant: str, seed: int) -> "mido.MidiFile":
    """One piece: a chord every two beats (fast) or four (slow) under a random-walk melody."""
    q = QUADRANTS[quadrant]
    rng = random.Random(seed)
    bpm = rng.uniform(*q["bpm"])
    tonic = rng.randrange(12)
    beat = 480
    total = int(SECONDS * bpm / 60) * beat
    events = []
    # Left hand: a diatonic progression (I-IV-V-I-vi-IV-V-V in major, i-vi-iv-v-i-vi-VII-v in
    # minor), or for tense music diminished chords with a semitone cluster on changing roots.
    step = beat * 2 if bpm > 100 else beat * 4
    degrees = [0, 3, 4, 0, 5, 3, 4, 4] if q["scale"] is MAJOR else [0, 5, 3, 4, 0, 5, 6, 4]
    t, i = 0, 0
    while t < total:
        if q["scale"] is None:
            root = tonic + 36 + rng.choice([0, 1, 6, 7])
            notes = [root, root + 1, root + 3, root + 6]
        else:
            d = degrees[i % 8]
            sc = q["scale"]
            bass = tonic + 36 + sc[d % 7]
            notes = [tonic + 48 + sc[(d + k) % 7] + 12 * ((d + k) // 7) for k in (0, 2, 4)] + [bass]
        velocity = rng.randint(*q["velocity"]) - 8
        for n in notes:
            events.append((t, 1, n, velocity))
            events.append((t + int(step * q["legato"]) - 1, 0, n, 0))
        t += step
        i += 1
    # Right hand: eighth notes (fast) or quarters (slow), in the scale (chromatic when tense,
    # with semitone seconds added now and then).
    t = 0
    note_length = beat // 2 if bpm > 100 else beat
    low, high = q["register"]
    current = (low + high) // 2
    while t < total:
        if q["scale"] is None:
            candidates = list(range(low, high))
        else:
            candidates = [n for n in range(low, high) if (n - tonic) % 12 in q["scale"]]
        aim = current + rng.choice([-4, -2, -1, 1, 2, 3, 5])
        current = min(candidates, key=lambda n: abs(n - aim))
        length = note_length * rng.choice([1, 1, 2] if bpm > 100 else [1, 1, 1, 2])
        velocity = rng.randint(*q["velocity"])
        notes = [current] + ([current + 1] if q["scale"] is None and rng.random() < 0.4 else [])
        for n in notes:
            events.append((t, 1, n, velocity))
            events.append((t + max(30, int(length * q["legato"])) - 1, 0, n, 0))
        t += length
    events.sort(key=lambda e: (e[0], e[1]))
    midi = mido.MidiFile(ticks_per_beat=beat)
    track = mido.MidiTrack()
    midi.tracks.append(track)
    track.append(mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(bpm)))
    track.append(mido.Message("program_change", program=0))
    last = 0
    for when, on, note, velocity in events:
        kind = "note_on" if on else "note_off"
        track.append(mido.Message(kind, note=note, velocity=velocity, time=when - last))
        last = when
    return midi


def render(folder: str) -> list:
    if not os.path.exists(SOUNDFONT):
        sys.exit(f"no {SOUNDFONT}: sudo apt-get install fluidsynth fluid-soundfont-gm")
    wavs = []
    for qi, quadrant in enumerate(QUADRANTS):
        for k in range(PIECES):
            stem = os.path.join(folder, f"{quadrant}-{k}")
            piece(quadrant, 1000 * qi + k).save(stem + ".mid")
            subprocess.run(
                ["fluidsynth", "-ni", "-q", "-g", "0.6", "-r", "44100", "-F", stem + ".wav",
                 SOUNDFONT, stem + ".mid"],
                check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            wavs.append(stem + ".wav")
    return wavs


def analyse(moodscope: str, models: str, wavs: list, summary: str, extra: list) -> list:
    subprocess.run(
        [moodscope, "analyze", "--models", models, "--no-db", "--out", os.devnull,
         "--summary", summary, *extra, *wavs],
        check=True, stderr=subprocess.DEVNULL)
    with open(summary, newline="") as f:
        return list(csv.DictReader(f))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--moodscope", default="target/release/moodscope")
    parser.add_argument("--models", default="models")
    parser.add_argument("--keep", metavar="DIR", help="render into DIR and keep the MIDI and WAV files")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        folder = args.keep or scratch
        os.makedirs(folder, exist_ok=True)
        wavs = render(folder)
        readouts = [("default readout (calibrated, five moods)", []),
                    ("YAMNet's own four classes (--moods 4 --uncalibrated)",
                     ["--moods", "4", "--uncalibrated"])]
        for name, extra in readouts:
            rows = analyse(args.moodscope, args.models, wavs,
                           os.path.join(scratch, "summary.csv"), extra)
            print(f"== {name}")
            for quadrant in QUADRANTS:
                mine = [r for r in rows if os.path.basename(r["path"]).startswith(quadrant + "-")]
                moods = ", ".join(r["mood"] for r in mine)
                valence = sum(float(r["valence"]) for r in mine) / len(mine)
                arousal = sum(float(r["arousal"]) for r in mine) / len(mine)
                print(f"  {quadrant:5s} read as {moods}; valence {valence:+.2f}, arousal {arousal:+.2f}")


if __name__ == "__main__":
    main()
