//! Emotify: how the default readout agrees with listeners on real music, before and after its
//! calibration; and the calibration itself (`models/calibration/yamnet-emotify.json`).
//!
//! ```sh
//! cargo run --release -p moodscope-train-cli --example emotify -- --data ../shared/data/emotify
//! cargo run --release -p moodscope-train-cli --example emotify -- --write   # refit and write the file
//! ```
//!
//! In: Emotify's 400 one-minute excerpts (classical, rock, electronic, pop) and its listeners'
//! GEMS votes (A. Aljanaki, F. Wiering, R. C. Veltkamp, "Studying emotion induced by music through
//! a crowdsourcing game", Information Processing & Management, 2015; Magnatune audio, CC BY-NC-SA:
//! measured and fitted here, never shipped). Out: a report on stdout (agreement three-way and
//! four-way, per genre, leave-one-genre-out and stratified, with 95 % intervals; each readout's
//! share of windows per mood and of uncertain windows; valence and arousal against the votes),
//! and with `--write` the calibration file with its provenance and figures.
//!
//! Every excerpt goes through the product's own code: the decoder, the front end, YAMNet, the
//! signal cues, `Calibration::read`, the smoother's verdicts and the track summary of `moodscope
//! analyze`. At the end the written calibration is loaded by a real `Analyser` on some excerpts
//! and must give the very same window probabilities (the self-check).
//!
//! Labels (stated, as the data's README asks): each emotion's vote share is standardised over the
//! 400 excerpts; Happy = joyful activation, Tense = tension, Sad = sadness, Calm = the mean of
//! calmness and tenderness; the largest wins (106 Happy, 89 Tense, 91 Sad, 114 Calm). A reading
//! agrees when its track mood is in the label's quadrant: Happy (or Exciting) for Happy, Angry or
//! Scary for Tense, Sad for Sad, Calm for Calm. "Three-way" scores the Happy, Tense and Sad
//! excerpts (a Calm reading of one of them is wrong); "four-way" all of them.
//! Valence and arousal from the votes (shares, 0–1 each): arousal = power + joyful activation +
//! tension − calmness − tenderness; valence = joyful activation + amazement + calmness +
//! tenderness − sadness − tension.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use moodscope::backbone::{self, BackboneKind};
use moodscope::cli::report::{self, Summary};
use moodscope::decode::read_mono_file;
use moodscope::engine::{
    self, Analyser, AnalyserConfig, HeadChoice, WindowReading, DEFAULT_CALIBRATION,
};
use moodscope::features::{FrontEnd, FrontEndConfig, YAMNET_LOG_OFFSET};
use moodscope::head::{
    circumplex, Axis, Calibration, MoodSet, YamnetReadout, CALIBRATED_GROUPS, CALIBRATION_FORMAT,
    YAMNET_MUSIC_ROW,
};
use moodscope::models::{self, ModelDir};
use moodscope_train::calibration::{
    auc, correlation_interval, fit_logistic, fit_offsets, fit_shift, pearson, refine_offsets,
    spearman, LogisticAxis, OffsetClip, OffsetSample, Offsets, Sample,
};
use moodscope_train::metrics::wilson;

const GENRES: [&str; 4] = ["classical", "rock", "electronic", "pop"];
const EMOTIONS: [&str; 9] = [
    "amazement",
    "solemnity",
    "tenderness",
    "nostalgia",
    "calmness",
    "power",
    "joyful_activation",
    "tension",
    "sadness",
];
const QUADRANTS: [&str; 4] = ["Happy", "Tense", "Sad", "Calm"];
const HAPPY: usize = 0;
const TENSE: usize = 1;
const SAD: usize = 2;
const CALM: usize = 3;
/// YAMNet's hop, seconds.
const HOP_SECONDS: f64 = 0.48;
/// Penalties tried for each calibrated axis (L2 on standardised weights, per excerpt); the inner
/// leave-one-genre-out folds choose one per axis, by held-out log-loss.
const PENALTIES: [f64; 4] = [1e-4, 1e-3, 1e-2, 1e-1];
/// Bumped whenever the cached windows would change (front end, cues).
const CACHE_VERSION: &str = "emotify-windows/2";

/// One excerpt and what its listeners felt.
struct Excerpt {
    genre: usize,
    number: usize,
    path: PathBuf,
    voters: usize,
    /// Share of listeners who ticked each of `EMOTIONS`.
    shares: [f64; 9],
    quadrant: usize,
    /// How far the winning quadrant's standardised score leads the runner-up's: the listeners'
    /// consensus on this excerpt's quadrant.
    clarity: f64,
    valence_votes: f64,
    arousal_votes: f64,
}

/// One window of an excerpt: the calibrated readout's ten inputs and YAMNet's Music score.
#[derive(Clone, Copy)]
struct Window {
    inputs: [f32; 10],
    presence: f32,
}

struct Args {
    data: PathBuf,
    models: PathBuf,
    write: Option<PathBuf>,
}

fn parse_args() -> Result<Args> {
    let mut args = Args {
        data: PathBuf::from("../shared/data/emotify"),
        models: PathBuf::from("models"),
        write: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--data" => args.data = it.next().context("--data needs a folder")?.into(),
            "--models" => args.models = it.next().context("--models needs a folder")?.into(),
            "--write" => args.write = Some(PathBuf::from("models").join(DEFAULT_CALIBRATION)),
            "--write-to" => args.write = Some(it.next().context("--write-to needs a path")?.into()),
            "-h" | "--help" => {
                println!(
                    "emotify [--data DIR] [--models DIR] [--write | --write-to PATH]\n\
                     Reports the default readout's agreement with Emotify's listeners before and\n\
                     after calibration; --write refits the calibration and writes it."
                );
                std::process::exit(0);
            }
            other => bail!("unknown argument {other}"),
        }
    }
    Ok(args)
}

fn main() -> Result<()> {
    let args = parse_args()?;
    let started = std::time::Instant::now();
    let excerpts = read_annotations(&args.data)?;
    let windows = analyse_all(&excerpts, &args)?;
    println!(
        "Emotify: {} excerpts ({}), {} windows of YAMNet at {HOP_SECONDS} s\n",
        excerpts.len(),
        label_counts(&excerpts),
        windows.iter().map(Vec::len).sum::<usize>()
    );

    let readouts = readouts();
    let mut reports = Vec::new();
    for readout in &readouts {
        let report = evaluate(readout, &excerpts, &windows);
        println!("{}", report.text);
        reports.push(report);
    }
    println!("{}", summary_table(&reports));
    println!("{}", paired_comparisons(&reports, &excerpts, SHIPPED_NAME));
    println!(
        "{}",
        nested_selection(
            &readouts,
            &excerpts,
            &windows,
            &[Criterion::BalancedFourWay, Criterion::ThreeWayWithCalm]
        )
    );

    // The shipped calibration: fitted on all 400 excerpts, the penalty chosen by
    // leave-one-genre-out over all four genres.
    let all: Vec<usize> = (0..excerpts.len()).collect();
    let (shipped, penalty) = fit_calibration(&excerpts, &windows, &all);
    println!(
        "Shipped calibration (all 400 excerpts, penalties (arousal, valence) {penalty:?} chosen by leave-one-genre-out):\n  mood offsets (Happy, Sad, Angry, Scary) {:?}, temperature {:.3}\n  arousal: {}\n  valence: {}\n  angry/scary offsets: {:+.3} / {:+.3}",
        shipped.mood_offsets,
        shipped.temperature,
        describe_axis(&shipped.arousal),
        describe_axis(&shipped.valence),
        shipped.angry_offset,
        shipped.scary_offset,
    );
    examples_of_shipped(&shipped, &excerpts, &windows);
    operating_points(&excerpts, &windows);
    if let Some(path) = &args.write {
        let shipped_report = reports
            .iter()
            .find(|r| r.name == SHIPPED_NAME)
            .expect("the shipped readout is evaluated");
        write_calibration(path, shipped, penalty, shipped_report, &args.data)?;
        println!("\nwrote {}", path.display());
        self_check(path, &args, &excerpts, &windows)?;
    }
    println!("\n({:.0} s)", started.elapsed().as_secs_f64());
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Data

fn read_annotations(data: &Path) -> Result<Vec<Excerpt>> {
    let path = data.join("annotations.csv");
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let mut lines = text.lines();
    let header: Vec<String> = lines
        .next()
        .context("annotations.csv is empty")?
        .split(',')
        .map(|h| h.trim().to_owned())
        .collect();
    let column = |name: &str| {
        header
            .iter()
            .position(|h| h == name)
            .with_context(|| format!("annotations.csv has no column `{name}`"))
    };
    let id_at = column("track id")?;
    let emotion_at: Vec<usize> = EMOTIONS.iter().map(|e| column(e)).collect::<Result<_>>()?;
    let mut votes: HashMap<usize, (usize, [f64; 9])> = HashMap::new();
    for line in lines.filter(|l| !l.trim().is_empty()) {
        let f: Vec<&str> = line.split(',').map(str::trim).collect();
        let id: usize = f[id_at].parse()?;
        let entry = votes.entry(id).or_insert((0, [0.0; 9]));
        entry.0 += 1;
        for (k, &at) in emotion_at.iter().enumerate() {
            entry.1[k] += f[at].parse::<f64>()?;
        }
    }
    let mut excerpts: Vec<Excerpt> = (1..=400)
        .map(|id| {
            let (voters, counts) = votes.get(&id).copied().unwrap_or((0, [0.0; 9]));
            let genre = (id - 1) / 100;
            let number = id - 100 * genre;
            Excerpt {
                genre,
                number,
                path: data.join(format!("audio/{}/{number}.ogg", GENRES[genre])),
                voters,
                shares: counts.map(|c| c / voters.max(1) as f64),
                quadrant: 0,
                clarity: 0.0,
                valence_votes: 0.0,
                arousal_votes: 0.0,
            }
        })
        .collect();
    if excerpts.iter().any(|e| e.voters == 0) {
        bail!("annotations.csv does not cover the 400 excerpts");
    }
    // Standardised shares; the largest of Happy, Tense, Sad, Calm wins.
    let z = |k: usize| -> Vec<f64> {
        let v: Vec<f64> = excerpts.iter().map(|e| e.shares[k]).collect();
        let m = v.iter().sum::<f64>() / v.len() as f64;
        let sd = (v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (v.len() - 1) as f64).sqrt();
        v.iter().map(|x| (x - m) / sd).collect()
    };
    let e = |name: &str| {
        EMOTIONS
            .iter()
            .position(|x| *x == name)
            .expect("known emotion")
    };
    let (joy, tension, sadness) = (z(e("joyful_activation")), z(e("tension")), z(e("sadness")));
    let (calmness, tenderness) = (z(e("calmness")), z(e("tenderness")));
    for (i, ex) in excerpts.iter_mut().enumerate() {
        let scores = [
            joy[i],
            tension[i],
            sadness[i],
            (calmness[i] + tenderness[i]) / 2.0,
        ];
        ex.quadrant = argmax(&scores);
        let mut sorted = scores;
        sorted.sort_by(|a, b| b.total_cmp(a));
        ex.clarity = sorted[0] - sorted[1];
        let s = |name: &str| ex.shares[e(name)];
        ex.arousal_votes =
            s("power") + s("joyful_activation") + s("tension") - s("calmness") - s("tenderness");
        ex.valence_votes =
            s("joyful_activation") + s("amazement") + s("calmness") + s("tenderness")
                - s("sadness")
                - s("tension");
    }
    Ok(excerpts)
}

fn argmax(v: &[f64]) -> usize {
    v.iter()
        .enumerate()
        .max_by(|a, b| a.1.total_cmp(b.1))
        .map_or(0, |(i, _)| i)
}

fn label_counts(excerpts: &[Excerpt]) -> String {
    QUADRANTS
        .iter()
        .enumerate()
        .map(|(q, name)| {
            let n = excerpts.iter().filter(|e| e.quadrant == q).count();
            format!("{n} {name}")
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Every excerpt's windows, computed through the product's front end, YAMNet and cues; cached
/// in `target/` (keyed by the model's and the audio's hashes) so that a rerun takes seconds.
fn analyse_all(excerpts: &[Excerpt], args: &Args) -> Result<Vec<Vec<Window>>> {
    let model_dir = ModelDir::new(&args.models);
    let model_path = model_dir.file(models::YAMNET_ONNX)?;
    let key = format!(
        "{CACHE_VERSION} {} {}",
        moodscope_convert_sha(&model_path)?,
        moodscope_convert_sha(&args.data.join("annotations.csv"))?
    );
    let cache = PathBuf::from("target/emotify-windows.bin");
    if let Some(cached) = read_cache(&cache, &key, excerpts.len()) {
        eprintln!("windows read from {}", cache.display());
        return Ok(cached);
    }
    let yamnet = backbone::load(BackboneKind::Yamnet, &model_dir)?;
    let next = AtomicUsize::new(0);
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let results: Vec<(usize, Result<Vec<Window>>)> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(|| {
                    let mut done = Vec::new();
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(excerpt) = excerpts.get(i) else {
                            return done;
                        };
                        done.push((i, windows_of(&excerpt.path, yamnet.as_ref())));
                    }
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().expect("an analysis thread panicked"))
            .collect()
    });
    let mut windows = vec![Vec::new(); excerpts.len()];
    for (i, result) in results {
        windows[i] = result.with_context(|| excerpts[i].path.display().to_string())?;
    }
    write_cache(&cache, &key, &windows)?;
    Ok(windows)
}

fn moodscope_convert_sha(path: &Path) -> Result<String> {
    Ok(moodscope_convert::sha256_file(path)?)
}

/// One excerpt through the product's pipeline, as `Analyser` runs it.
fn windows_of(path: &Path, yamnet: &dyn backbone::Backbone) -> Result<Vec<Window>> {
    let (samples, rate) = read_mono_file(path)?;
    let mut front_end = FrontEnd::new(FrontEndConfig {
        input_rate: rate,
        log_offset: YAMNET_LOG_OFFSET,
        patch_hop_frames: BackboneKind::Yamnet.default_hop_frames(),
    })?;
    let mut patches = Vec::new();
    front_end.push(&samples, &mut patches);
    front_end.finish(&mut patches);
    patches
        .iter()
        .map(|patch| {
            let out = yamnet.embed(&patch.data)?;
            let scores = out.scores.as_deref().context("YAMNet gave no scores")?;
            let cues = engine::window_cues(patch, YAMNET_LOG_OFFSET);
            Ok(Window {
                inputs: Calibration::inputs_of(scores, &cues)?,
                presence: scores[YAMNET_MUSIC_ROW],
            })
        })
        .collect()
}

fn read_cache(path: &Path, key: &str, excerpts: usize) -> Option<Vec<Vec<Window>>> {
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .ok()?
        .read_to_end(&mut bytes)
        .ok()?;
    let (head, mut rest) = bytes.split_at(bytes.iter().position(|&b| b == b'\n')? + 1);
    if std::str::from_utf8(head).ok()?.trim_end() != key {
        return None;
    }
    let take_u32 = |rest: &mut &[u8]| -> Option<u32> {
        let (v, r) = rest.split_first_chunk::<4>()?;
        *rest = r;
        Some(u32::from_le_bytes(*v))
    };
    let mut all = Vec::with_capacity(excerpts);
    for _ in 0..excerpts {
        let n = take_u32(&mut rest)? as usize;
        let mut windows = Vec::with_capacity(n);
        for _ in 0..n {
            let mut values = [0f32; 11];
            for v in &mut values {
                *v = f32::from_bits(take_u32(&mut rest)?);
            }
            let mut inputs = [0f32; 10];
            inputs.copy_from_slice(&values[..10]);
            windows.push(Window {
                inputs,
                presence: values[10],
            });
        }
        all.push(windows);
    }
    rest.is_empty().then_some(all)
}

fn write_cache(path: &Path, key: &str, windows: &[Vec<Window>]) -> Result<()> {
    let mut out = std::io::BufWriter::new(std::fs::File::create(path)?);
    writeln!(out, "{key}")?;
    for excerpt in windows {
        out.write_all(&(excerpt.len() as u32).to_le_bytes())?;
        for w in excerpt {
            for v in w.inputs.iter().chain([&w.presence]) {
                out.write_all(&v.to_bits().to_le_bytes())?;
            }
        }
    }
    out.flush()?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Readouts

/// One window's mood probabilities, and its valence and arousal when the readout gives them.
type WindowRead = Box<dyn Fn(&Window) -> (Vec<f32>, Option<(f32, f32)>) + Sync>;
/// Fits a readout on the excerpts at the given indices.
type Fit = fn(&[Excerpt], &[Vec<Window>], &[usize]) -> Fitted;

/// A readout fitted on some excerpts: labels, decision groups and the reading of one window.
struct Fitted {
    labels: Vec<String>,
    groups: Vec<usize>,
    read: WindowRead,
    note: String,
}

/// A readout: a name, what it is, and how to fit it on a set of excerpts (the fit sees only
/// those; the outer folds measure on the others).
struct Readout {
    name: &'static str,
    about: &'static str,
    fit: Fit,
    /// The readout can say Calm.
    calm: bool,
}

const SHIPPED_NAME: &str = "mood by offsets, Calm by arousal (shipped)";
const TWO_AXES_NAME: &str = "two axes, a decision point per half (shipped until 2026-12-07)";
/// The shipped axes' inputs: arousal from YAMNet's six mood logits, flux and brightness;
/// valence from the six logits and the two key cues. The shipped rule reads no valence decision
/// point, so none is fitted.
const SHIPPED_INPUTS: AxisInputs = AxisInputs {
    arousal: [true, true, true, true, true, true, true, true, false, false],
    valence: [true, true, true, true, true, true, false, false, true, true],
    half_offsets: false,
};
/// The two-axis rule's inputs: the shipped ones, and a valence decision point per half.
const TWO_AXES_INPUTS: AxisInputs = AxisInputs {
    half_offsets: true,
    ..SHIPPED_INPUTS
};
const LOGITS_ONLY: AxisInputs = AxisInputs {
    arousal: [
        true, true, true, true, true, true, false, false, false, false,
    ],
    valence: [
        true, true, true, true, true, true, false, false, false, false,
    ],
    half_offsets: true,
};

#[derive(Clone, Copy)]
struct AxisInputs {
    arousal: [bool; 10],
    valence: [bool; 10],
    /// Each half of the circumplex gets its own decision point on the valence axis.
    half_offsets: bool,
}

fn readouts() -> Vec<Readout> {
    vec![
        Readout {
            name: "uncalibrated, four moods",
            about: "YAMNet's Happy, Sad, Angry and Scary music, softmax (the earlier default)",
            fit: |_, _, _| raw(MoodSet::Four),
            calm: false,
        },
        Readout {
            name: "uncalibrated, five moods",
            about: "the same with Tender music as Calm",
            fit: |_, _, _| raw(MoodSet::Five),
            calm: true,
        },
        Readout {
            name: "offsets, four moods",
            about: "per-mood offsets and a temperature on the four logits, fitted (no Calm)",
            fit: |e, w, train| offsets(MoodSet::Four, e, w, train),
            calm: false,
        },
        Readout {
            name: "offsets, five moods",
            about: "per-mood offsets and a temperature on the five logits, fitted",
            fit: |e, w, train| offsets(MoodSet::Five, e, w, train),
            calm: true,
        },
        Readout {
            name: "calibrated axes, logits only",
            about: "two axes (arousal and valence regressions on YAMNet's six mood logits), the \
                    moods their product",
            fit: |e, w, train| axes_readout(e, w, train, &LOGITS_ONLY),
            calm: true,
        },
        Readout {
            name: "calibrated axes and cues, one valence decision point",
            about: "two axes with cues, one decision point on the valence axis for both halves",
            fit: |e, w, train| axes_readout(e, w, train, &SHIPPED_INPUTS),
            calm: true,
        },
        Readout {
            name: "two axes, fitted on the clearer half",
            about: "two axes with cues, fitted only on the training excerpts whose listeners \
                    agreed most",
            fit: |e, w, train| axes_readout(e, w, &clearer_half(e, train), &TWO_AXES_INPUTS),
            calm: true,
        },
        Readout {
            name: "offsets, four moods, fitted on the clearer half",
            about:
                "offsets and temperature, fitted only on the clearer half of the training excerpts",
            fit: |e, w, train| offsets(MoodSet::Four, e, w, &clearer_half(e, train)),
            calm: false,
        },
        Readout {
            name: TWO_AXES_NAME,
            about: "arousal on the six logits, flux and brightness; valence on the six logits \
                    and the key cues; the moods the axes' product, each half of the circumplex \
                    its own valence decision point",
            fit: |e, w, train| axes_readout(e, w, train, &TWO_AXES_INPUTS),
            calm: true,
        },
        Readout {
            name: "mood by offsets fitted for agreement, Calm by arousal",
            about: "the shipped rule, its Sad, Angry and Scary offsets then moved (temperature \
                    kept) to where more training excerpts read right: the grid search for \
                    accuracy the issue tried, started from the likelihood fit",
            fit: agreement_readout,
            calm: true,
        },
        Readout {
            name: SHIPPED_NAME,
            about: "the mood decided by the four-mood offsets (Happy, Sad, tense), the pleasant \
                    mood split into Happy and Calm by the arousal axis (six logits, flux, \
                    brightness); valence from the valence axis (six logits, key cues)",
            fit: shipped_readout,
            calm: true,
        },
    ]
}

/// The median `clarity` of some excerpts.
fn median_clarity<'a>(excerpts: impl Iterator<Item = &'a Excerpt>) -> f64 {
    let mut c: Vec<f64> = excerpts.map(|e| e.clarity).collect();
    c.sort_by(f64::total_cmp);
    c[c.len() / 2]
}

/// The training excerpts whose listeners agreed at least as much as their median.
fn clearer_half(excerpts: &[Excerpt], train: &[usize]) -> Vec<usize> {
    let median = median_clarity(train.iter().map(|&i| &excerpts[i]));
    train
        .iter()
        .copied()
        .filter(|&i| excerpts[i].clarity >= median)
        .collect()
}

fn labels_of(set: MoodSet) -> Vec<String> {
    set.labels().iter().map(|s| s.to_string()).collect()
}

fn raw(set: MoodSet) -> Fitted {
    let readout = YamnetReadout::new(set);
    let rows = set.yamnet_rows();
    Fitted {
        labels: labels_of(set),
        groups: (0..rows.len()).collect(),
        read: Box::new(move |w: &Window| {
            let scores = scores_from_inputs(w);
            let r = readout.read(&scores).expect("scores cover the mood rows");
            (r.probabilities, r.valence_arousal)
        }),
        note: String::new(),
    }
}

/// A 521-score vector holding the window's six mood scores and Music score (what the raw
/// readout reads), rebuilt from the cached logits.
fn scores_from_inputs(w: &Window) -> Vec<f32> {
    let mut scores = vec![0.0f32; 521];
    for (k, (_, row)) in moodscope::head::YAMNET_MOODS.iter().enumerate() {
        scores[*row] = 1.0 / (1.0 + (-w.inputs[k]).exp());
    }
    scores[YAMNET_MUSIC_ROW] = w.presence;
    scores
}

/// The quadrant a label reads as.
fn quadrant_of(label: &str) -> usize {
    match label {
        "Happy" | "Exciting" => HAPPY,
        "Angry" | "Scary" => TENSE,
        "Sad" => SAD,
        "Calm" => CALM,
        other => panic!("no quadrant for {other}"),
    }
}

/// Each excerpt's windows weighted so that every excerpt counts once and each side of the
/// split (given by `side`) as much as the other.
fn balanced_weights(
    excerpts: &[Excerpt],
    windows: &[Vec<Window>],
    train: &[usize],
    side: impl Fn(&Excerpt) -> Option<bool>,
) -> Vec<(usize, bool, f64)> {
    let count = |s: bool| {
        train
            .iter()
            .filter(|&&i| side(&excerpts[i]) == Some(s))
            .count()
            .max(1) as f64
    };
    let (positives, negatives) = (count(true), count(false));
    train
        .iter()
        .filter_map(|&i| {
            let s = side(&excerpts[i])?;
            let per_side = if s { positives } else { negatives };
            Some((i, s, 1.0 / (per_side * windows[i].len().max(1) as f64)))
        })
        .collect()
}

/// The columns of a mood set's labels among a window's inputs (YAMNet's mood logits).
fn mood_columns(set: MoodSet) -> Vec<usize> {
    labels_of(set)
        .iter()
        .map(|l| {
            moodscope::head::YAMNET_MOODS
                .iter()
                .position(|(name, _)| name == l)
                .expect("a YAMNet mood")
        })
        .collect()
}

/// How many of `pool`'s excerpts the listeners put in quadrant `q`.
fn count_in_quadrant(excerpts: &[Excerpt], pool: &[usize], q: usize) -> usize {
    pool.iter().filter(|&&i| excerpts[i].quadrant == q).count()
}

/// Per-mood offsets and a temperature on the logits of `set`'s moods, fitted by likelihood on
/// the training excerpts whose quadrant the set can name (each quadrant weighing the same);
/// returns the logits' input columns and the fit.
fn fit_mood_offsets(
    set: MoodSet,
    excerpts: &[Excerpt],
    windows: &[Vec<Window>],
    train: &[usize],
) -> (Vec<usize>, Offsets) {
    let labels = labels_of(set);
    let columns = mood_columns(set);
    // Excerpts whose quadrant the set can name; each quadrant weighs the same.
    let nameable: Vec<usize> = train
        .iter()
        .copied()
        .filter(|&i| {
            labels
                .iter()
                .any(|l| quadrant_of(l) == excerpts[i].quadrant)
        })
        .collect();
    let per_quadrant = |q: usize| count_in_quadrant(excerpts, &nameable, q);
    let samples: Vec<OffsetSample> = nameable
        .iter()
        .flat_map(|&i| {
            let q = excerpts[i].quadrant;
            let weight =
                1.0 / (per_quadrant(q).max(1) * windows[i].len().div_ceil(4).max(1)) as f64;
            let right: Vec<bool> = labels.iter().map(|l| quadrant_of(l) == q).collect();
            let columns = &columns;
            // Every fourth window: plenty for five constants, and four times faster.
            windows[i].iter().step_by(4).map(move |w| OffsetSample {
                logits: columns.iter().map(|&c| f64::from(w.inputs[c])).collect(),
                right: right.clone(),
                weight,
            })
        })
        .collect();
    (columns, fit_offsets(&samples))
}

fn describe_offsets(fitted: &Offsets) -> String {
    format!(
        "offsets {:?}, temperature {:.2}",
        fitted
            .offsets
            .iter()
            .map(|o| (o * 100.0).round() / 100.0)
            .collect::<Vec<_>>(),
        fitted.temperature
    )
}

fn offsets(set: MoodSet, excerpts: &[Excerpt], windows: &[Vec<Window>], train: &[usize]) -> Fitted {
    let labels = labels_of(set);
    let (columns, fitted) = fit_mood_offsets(set, excerpts, windows, train);
    let note = describe_offsets(&fitted);
    let labels_for_va = labels.clone();
    Fitted {
        groups: (0..labels.len()).collect(),
        labels,
        read: Box::new(move |w: &Window| {
            let logits: Vec<f64> = columns.iter().map(|&c| f64::from(w.inputs[c])).collect();
            let p: Vec<f32> = fitted
                .probabilities(&logits)
                .into_iter()
                .map(|p| p as f32)
                .collect();
            let va = circumplex(&labels_for_va, &p);
            (p, va)
        }),
        note,
    }
}

/// Which side of an axis an excerpt's listeners put it on.
fn arousal_side(e: &Excerpt) -> bool {
    matches!(e.quadrant, HAPPY | TENSE)
}

fn valence_side(e: &Excerpt) -> bool {
    matches!(e.quadrant, HAPPY | CALM)
}

/// The windows of `train` as samples of one axis, balanced (each excerpt once, each side half).
fn axis_samples(
    excerpts: &[Excerpt],
    windows: &[Vec<Window>],
    train: &[usize],
    side: fn(&Excerpt) -> bool,
) -> Vec<Sample> {
    balanced_weights(excerpts, windows, train, |e| Some(side(e)))
        .into_iter()
        .flat_map(|(i, s, weight)| {
            windows[i].iter().map(move |w| Sample {
                inputs: w.inputs.iter().map(|&x| f64::from(x)).collect(),
                target: f64::from(u8::from(s)),
                weight,
            })
        })
        .collect()
}

/// Fits one axis on `train`, its penalty chosen by leave-one-genre-out inside `train` (the
/// inner loop of the nested cross-validation: the genres outside `train` are never seen);
/// returns the axis and its penalty.
fn fit_axis(
    excerpts: &[Excerpt],
    windows: &[Vec<Window>],
    train: &[usize],
    mask: &[bool; 10],
    side: fn(&Excerpt) -> bool,
) -> (LogisticAxis, f64) {
    let penalty = {
        let genres: Vec<usize> = {
            let mut g: Vec<usize> = train.iter().map(|&i| excerpts[i].genre).collect();
            g.sort_unstable();
            g.dedup();
            g
        };
        let mut best = (f64::INFINITY, PENALTIES[0]);
        for &penalty in &PENALTIES {
            let mut loss = 0.0;
            for &held_out in &genres {
                let (inner, outer): (Vec<usize>, Vec<usize>) =
                    train.iter().partition(|&&i| excerpts[i].genre != held_out);
                let axis = fit_logistic(
                    &axis_samples(excerpts, windows, &inner, side),
                    mask,
                    penalty,
                );
                // Balanced log-loss of the held-out genre's windows.
                for s in axis_samples(excerpts, windows, &outer, side) {
                    let p = axis.probability(&s.inputs).clamp(1e-12, 1.0 - 1e-12);
                    let right = if s.target > 0.5 { p } else { 1.0 - p };
                    loss -= s.weight * right.ln();
                }
            }
            if loss < best.0 - 1e-12 {
                best = (loss, penalty);
            }
        }
        best.1
    };
    let samples = axis_samples(excerpts, windows, train, side);
    (fit_logistic(&samples, mask, penalty), penalty)
}

/// The two-axis rule, the default readout until 2026-12-07 (a comparison row now): arousal `a`
/// and the valence axis' log-odds less each half's offset (`v` in the energetic half, `v′` in the
/// calm half) give Happy `a·v`, the tense quadrant `a·(1 − v)` (Angry and Scary by their centred
/// logits), Calm `(1 − a)·v′` and Sad `(1 − a)·(1 − v′)`.
#[derive(Clone)]
struct AxesRule {
    arousal: Axis,
    valence: Axis,
    angry_offset: f32,
    scary_offset: f32,
    energetic_offset: f32,
    calm_offset: f32,
}

impl AxesRule {
    fn read(&self, x: &[f32; 10]) -> ([f32; 5], f32, f32) {
        let sigmoid = |v: f32| 1.0 / (1.0 + (-v).exp());
        let arousal = sigmoid(self.arousal.logit(x));
        let valence_logit = self.valence.logit(x);
        let valence = sigmoid(valence_logit - self.energetic_offset);
        let calm_valence = sigmoid(valence_logit - self.calm_offset);
        let angry_share = sigmoid((x[4] + self.angry_offset) - (x[5] + self.scary_offset));
        let tense = arousal * (1.0 - valence);
        let probabilities = [
            arousal * valence,
            (1.0 - arousal) * (1.0 - calm_valence),
            (1.0 - arousal) * calm_valence,
            tense * angry_share,
            tense * (1.0 - angry_share),
        ];
        let pleasant = arousal * valence + (1.0 - arousal) * calm_valence;
        (probabilities, 2.0 * pleasant - 1.0, 2.0 * arousal - 1.0)
    }
}

/// Fits the two axes on `train` and the Angry/Scary split; returns the two-axis rule and the
/// axes' penalties.
fn fit_axes(
    excerpts: &[Excerpt],
    windows: &[Vec<Window>],
    train: &[usize],
    inputs: &AxisInputs,
) -> (AxesRule, (f64, f64)) {
    let (arousal, arousal_penalty) =
        fit_axis(excerpts, windows, train, &inputs.arousal, arousal_side);
    let (valence, valence_penalty) =
        fit_axis(excerpts, windows, train, &inputs.valence, valence_side);
    // Angry against Scary: no listener label tells them apart here, so their logits are centred
    // on the training music (label-free): on average music they split the tense quadrant evenly.
    let mean = |k: usize| {
        let (sum, n) = train
            .iter()
            .flat_map(|&i| &windows[i])
            .fold((0.0f64, 0usize), |(s, n), w| {
                (s + f64::from(w.inputs[k]), n + 1)
            });
        sum / n.max(1) as f64
    };
    let to_axis = |a: &LogisticAxis| Axis {
        weights: a.weights.iter().map(|&w| w as f32).collect(),
        bias: a.bias as f32,
    };
    let rule = AxesRule {
        arousal: to_axis(&arousal),
        valence: to_axis(&valence),
        angry_offset: -mean(4) as f32,
        scary_offset: -mean(5) as f32,
        energetic_offset: 0.0,
        calm_offset: 0.0,
    };
    // Each half of the circumplex gets its own decision point on the valence axis, fitted on the
    // excerpts its listeners put in that half (balanced), so that neither Happy nor Tense, and
    // neither Calm nor Sad, is favoured by the axis' overall bias.
    let shift = |half: &[usize], pleasant: usize| -> f32 {
        let (mut logits, mut targets, mut weights) = (Vec::new(), Vec::new(), Vec::new());
        let weighted = balanced_weights(excerpts, windows, half, |e| Some(e.quadrant == pleasant));
        for (i, side, weight) in weighted {
            for w in &windows[i] {
                let x: Vec<f64> = w.inputs.iter().map(|&v| f64::from(v)).collect();
                logits.push(valence.logit(&x));
                targets.push(f64::from(u8::from(side)));
                weights.push(weight);
            }
        }
        fit_shift(&logits, &targets, &weights) as f32
    };
    let energetic: Vec<usize> = train
        .iter()
        .copied()
        .filter(|&i| arousal_side(&excerpts[i]))
        .collect();
    let calm: Vec<usize> = train
        .iter()
        .copied()
        .filter(|&i| !arousal_side(&excerpts[i]))
        .collect();
    let rule = AxesRule {
        energetic_offset: if inputs.half_offsets {
            shift(&energetic, HAPPY)
        } else {
            0.0
        },
        calm_offset: if inputs.half_offsets {
            shift(&calm, CALM)
        } else {
            0.0
        },
        ..rule
    };
    (rule, (arousal_penalty, valence_penalty))
}

fn axes_readout(
    excerpts: &[Excerpt],
    windows: &[Vec<Window>],
    train: &[usize],
    inputs: &AxisInputs,
) -> Fitted {
    let (rule, (pa, pv)) = fit_axes(excerpts, windows, train, inputs);
    let note = format!(
        "penalties {pa} / {pv}; arousal {}; valence {}",
        describe_axis(&rule.arousal),
        describe_axis(&rule.valence)
    );
    Fitted {
        labels: Calibration::LABELS.iter().map(|s| s.to_string()).collect(),
        groups: vec![0, 1, 2, 3, 3],
        read: Box::new(move |w: &Window| {
            let (p, valence, arousal) = rule.read(&w.inputs);
            (p.to_vec(), Some((valence, arousal)))
        }),
        note,
    }
}

/// Fits the shipped calibration on `train`: the mood offsets and temperature on YAMNet's
/// Happy, Sad, Angry and Scary music logits (`fit_mood_offsets`), and the arousal and valence
/// axes with the shipped inputs and the centred Angry/Scary split (`fit_axes`); returns it and
/// the axes' penalties.
fn fit_calibration(
    excerpts: &[Excerpt],
    windows: &[Vec<Window>],
    train: &[usize],
) -> (Calibration, (f64, f64)) {
    let (rule, penalties) = fit_axes(excerpts, windows, train, &SHIPPED_INPUTS);
    let (_, fitted) = fit_mood_offsets(MoodSet::Four, excerpts, windows, train);
    // `Offsets` reads softmax(z / T + o); so does `Calibration::read`.
    let offset = |k: usize| fitted.offsets[k] as f32;
    let calibration = Calibration {
        format: CALIBRATION_FORMAT.into(),
        name: "yamnet-emotify-v2".into(),
        backbone: BackboneKind::Yamnet,
        labels: Calibration::LABELS.iter().map(|s| s.to_string()).collect(),
        inputs: Calibration::input_names(),
        arousal: rule.arousal,
        valence: rule.valence,
        mood_offsets: [offset(0), offset(1), offset(2), offset(3)],
        temperature: fitted.temperature as f32,
        angry_offset: rule.angry_offset,
        scary_offset: rule.scary_offset,
        extra: Default::default(),
    };
    (calibration, penalties)
}

fn calibrated(calibration: Calibration) -> Fitted {
    let note = format!(
        "mood offsets {:?}, temperature {:.2}; arousal {}; valence {}",
        calibration
            .mood_offsets
            .map(|o| (o * 100.0).round() / 100.0),
        calibration.temperature,
        describe_axis(&calibration.arousal),
        describe_axis(&calibration.valence)
    );
    Fitted {
        labels: calibration.labels.clone(),
        groups: CALIBRATED_GROUPS.to_vec(),
        read: Box::new(move |w: &Window| {
            let (p, valence, arousal) = calibration.read(&w.inputs);
            (p.to_vec(), Some((valence, arousal)))
        }),
        note,
    }
}

fn shipped_readout(excerpts: &[Excerpt], windows: &[Vec<Window>], train: &[usize]) -> Fitted {
    let (calibration, (pa, pv)) = fit_calibration(excerpts, windows, train);
    let mut fitted = calibrated(calibration);
    fitted.note = format!("penalties {pa} / {pv}; {}", fitted.note);
    fitted
}

/// The shipped readout with its mood offsets refined for the agreement of the training excerpts'
/// track moods (happy, tense and sad excerpts, each quadrant weighing the same, as in the
/// likelihood fit): `refine_offsets` over the windows `Summary` reads the track mood from.
fn agreement_readout(excerpts: &[Excerpt], windows: &[Vec<Window>], train: &[usize]) -> Fitted {
    let (mut calibration, _) = fit_calibration(excerpts, windows, train);
    let columns = mood_columns(MoodSet::Four);
    let labels = labels_of(MoodSet::Four);
    let scored: Vec<usize> = train
        .iter()
        .copied()
        .filter(|&i| excerpts[i].quadrant != CALM)
        .collect();
    let per_quadrant = |q: usize| count_in_quadrant(excerpts, &scored, q).max(1);
    let clips: Vec<OffsetClip> = scored
        .iter()
        .map(|&i| {
            let music: Vec<&Window> = windows[i]
                .iter()
                .filter(|w| w.presence >= report::presence_threshold())
                .collect();
            let basis: Vec<&Window> = if music.is_empty() {
                windows[i].iter().collect()
            } else {
                music
            };
            OffsetClip {
                windows: basis
                    .iter()
                    .map(|w| columns.iter().map(|&c| f64::from(w.inputs[c])).collect())
                    .collect(),
                right: labels
                    .iter()
                    .map(|l| quadrant_of(l) == excerpts[i].quadrant)
                    .collect(),
                weight: 1.0 / per_quadrant(excerpts[i].quadrant) as f64,
            }
        })
        .collect();
    let start = Offsets {
        offsets: calibration
            .mood_offsets
            .iter()
            .map(|&o| f64::from(o))
            .collect(),
        temperature: f64::from(calibration.temperature),
    };
    // Happy; Sad; Angry and Scary one group, as the track mood reads them.
    let refined = refine_offsets(&start, &clips, &[0, 1, 2, 2], 0.05, 3.0);
    for (o, r) in calibration.mood_offsets.iter_mut().zip(&refined.offsets) {
        *o = *r as f32;
    }
    calibrated(calibration)
}

fn describe_axis(axis: &Axis) -> String {
    let names = Calibration::input_names();
    let mut parts: Vec<String> = axis
        .weights
        .iter()
        .zip(&names)
        .filter(|(w, _)| **w != 0.0)
        .map(|(w, n)| format!("{} {w:+.3}", n.rsplit(':').next().unwrap_or(n)))
        .collect();
    parts.push(format!("bias {:+.3}", axis.bias));
    parts.join(" ")
}

/// The windows as `WindowReading`s, and the track summary `moodscope analyze` prints.
fn track(fitted: &Fitted, windows: &[Window]) -> (Option<String>, Summary) {
    let (mood, summary, _) = track_states(fitted, windows);
    (mood, summary)
}

/// `track`, with the smoother's state after each window.
fn track_states(
    fitted: &Fitted,
    windows: &[Window],
) -> (Option<String>, Summary, Vec<engine::MoodState>) {
    let readings: Vec<WindowReading> = windows
        .iter()
        .enumerate()
        .map(|(k, w)| {
            let (probabilities, va) = (fitted.read)(w);
            let (valence, arousal) = va.unzip();
            WindowReading {
                index: k as u64,
                start_seconds: k as f64 * HOP_SECONDS,
                end_seconds: k as f64 * HOP_SECONDS + 0.975,
                probabilities,
                valence,
                arousal,
                presence: w.presence,
            }
        })
        .collect();
    let verdicts = report::verdicts(&readings, &fitted.groups, HOP_SECONDS);
    let summary = Summary::of(&readings, &verdicts, &fitted.labels, &fitted.groups);
    (summary.mood.clone(), summary, verdicts)
}

// ---------------------------------------------------------------------------------------------
// Evaluation

struct Report {
    name: &'static str,
    text: String,
    three_way: f64,
    four_way: f64,
    three_way_strat: f64,
    four_way_strat: f64,
    calm_read_calm: f64,
    calm_read_happy: f64,
    sad_read_calm: f64,
    per_genre_three: [f64; 4],
    figures: serde_json::Value,
    /// Each excerpt's track quadrant from the leave-one-genre-out fit that did not see it.
    logo: Vec<Option<usize>>,
}

/// Predictions (track quadrant, summary) for every excerpt, each from a fit that never saw it.
struct HeldOut {
    quadrant: Vec<Option<usize>>,
    summaries: Vec<Summary>,
    notes: Vec<String>,
    labels: Vec<String>,
}

/// `folds` split `pool` (all excerpts, or the training genres of an outer fold); each fold is
/// predicted by a fit on the rest of `pool`. Excerpts outside `pool` keep `None`.
fn predict_held_out(
    readout: &Readout,
    excerpts: &[Excerpt],
    windows: &[Vec<Window>],
    pool: &[usize],
    folds: &[Vec<usize>],
) -> HeldOut {
    let mut quadrant = vec![None; excerpts.len()];
    let mut summaries: Vec<Option<Summary>> = vec![None; excerpts.len()];
    let mut notes = Vec::new();
    let mut labels = Vec::new();
    for test in folds {
        let train: Vec<usize> = pool.iter().copied().filter(|i| !test.contains(i)).collect();
        let fitted = (readout.fit)(excerpts, windows, &train);
        notes.push(fitted.note.clone());
        labels.clone_from(&fitted.labels);
        for &i in test {
            let (mood, summary) = track(&fitted, &windows[i]);
            quadrant[i] = mood.map(|m| quadrant_of(&m));
            summaries[i] = Some(summary);
        }
    }
    HeldOut {
        quadrant,
        summaries: summaries.into_iter().flatten().collect(),
        notes,
        labels,
    }
}

fn all_excerpts(excerpts: &[Excerpt]) -> Vec<usize> {
    (0..excerpts.len()).collect()
}

fn leave_one_genre_out(excerpts: &[Excerpt]) -> Vec<Vec<usize>> {
    leave_one_genre_out_of(excerpts, &all_excerpts(excerpts))
}

/// One fold per genre present in `pool`.
fn leave_one_genre_out_of(excerpts: &[Excerpt], pool: &[usize]) -> Vec<Vec<usize>> {
    (0..GENRES.len())
        .map(|g| {
            pool.iter()
                .copied()
                .filter(|&i| excerpts[i].genre == g)
                .collect::<Vec<usize>>()
        })
        .filter(|fold| !fold.is_empty())
        .collect()
}

/// Five folds stratified by genre and label, shuffled by `seed`.
fn stratified_folds(excerpts: &[Excerpt], seed: u64) -> Vec<Vec<usize>> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut folds = vec![Vec::new(); 5];
    let mut turn = 0;
    for g in 0..GENRES.len() {
        for q in 0..4 {
            let mut members: Vec<usize> = (0..excerpts.len())
                .filter(|&i| excerpts[i].genre == g && excerpts[i].quadrant == q)
                .collect();
            for k in (1..members.len()).rev() {
                members.swap(k, (next() % (k as u64 + 1)) as usize);
            }
            for i in members {
                folds[turn % 5].push(i);
                turn += 1;
            }
        }
    }
    folds
}

fn accuracy(
    predicted: &[Option<usize>],
    excerpts: &[Excerpt],
    keep: impl Fn(&Excerpt) -> bool,
) -> (f64, usize) {
    let (mut right, mut n) = (0, 0);
    for (p, e) in predicted.iter().zip(excerpts) {
        if keep(e) {
            n += 1;
            right += usize::from(*p == Some(e.quadrant));
        }
    }
    (right as f64 / n.max(1) as f64, n)
}

/// An agreement with its 95 % Wilson interval, as the report prints it.
fn with_interval(p: f64, n: usize) -> String {
    let i = wilson(p, n);
    format!("{:.3} [{:.3}, {:.3}]", i.value, i.low, i.high)
}

fn rate(predicted: &[Option<usize>], excerpts: &[Excerpt], truth: usize, read: usize) -> f64 {
    let of_truth: Vec<_> = predicted
        .iter()
        .zip(excerpts)
        .filter(|(_, e)| e.quadrant == truth)
        .collect();
    of_truth.iter().filter(|(p, _)| **p == Some(read)).count() as f64 / of_truth.len().max(1) as f64
}

fn evaluate(readout: &Readout, excerpts: &[Excerpt], windows: &[Vec<Window>]) -> Report {
    let mut text = format!("== {} — {}\n", readout.name, readout.about);
    let HeldOut {
        quadrant: logo,
        summaries,
        notes,
        labels,
    } = predict_held_out(
        readout,
        excerpts,
        windows,
        &all_excerpts(excerpts),
        &leave_one_genre_out(excerpts),
    );
    let three = |e: &Excerpt| e.quadrant != CALM;
    let (three_way, n3) = accuracy(&logo, excerpts, three);
    let (four_way, n4) = accuracy(&logo, excerpts, |_| true);
    text += &format!(
        "  leave one genre out: three-way {} (n={n3}), four-way {} (n={n4})\n",
        with_interval(three_way, n3),
        with_interval(four_way, n4)
    );
    // The excerpts whose listeners agreed most (the clearer half by `clarity`): closer to the
    // clear-cut clips of quadrant-labelled sets than Emotify's many split votes.
    let median = median_clarity(excerpts.iter());
    let clear = |e: &Excerpt| e.clarity >= median;
    let (clear_three, c3) = accuracy(&logo, excerpts, |e| clear(e) && three(e));
    let (clear_four, c4) = accuracy(&logo, excerpts, clear);
    text += &format!(
        "    the clearer half (listeners' lead over the runner-up at least the median): three-way {} (n={c3}), four-way {} (n={c4})\n",
        with_interval(clear_three, c3),
        with_interval(clear_four, c4)
    );
    let mut per_genre_three = [0.0; 4];
    let mut genre_lines = Vec::new();
    for (g, genre) in GENRES.iter().enumerate() {
        let (a3, m3) = accuracy(&logo, excerpts, |e| e.genre == g && three(e));
        let (a4, m4) = accuracy(&logo, excerpts, |e| e.genre == g);
        per_genre_three[g] = a3;
        genre_lines.push(format!("{genre} {a3:.2} (n={m3}) / {a4:.2} (n={m4})"));
    }
    text += &format!(
        "    per genre (three-way / four-way): {}\n",
        genre_lines.join(", ")
    );
    // Stratified 5-fold, three seeds.
    let (mut s3, mut s4) = (Vec::new(), Vec::new());
    for seed in 1..=3 {
        let p = predict_held_out(
            readout,
            excerpts,
            windows,
            &all_excerpts(excerpts),
            &stratified_folds(excerpts, seed),
        )
        .quadrant;
        s3.push(accuracy(&p, excerpts, three).0);
        s4.push(accuracy(&p, excerpts, |_| true).0);
    }
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    let (three_way_strat, four_way_strat) = (mean(&s3), mean(&s4));
    text += &format!(
        "  stratified 5-fold x 3 seeds: three-way {} , four-way {} (intervals for one run's n)\n",
        with_interval(three_way_strat, n3),
        with_interval(four_way_strat, n4)
    );
    // Confusion (leave one genre out).
    text += "  confusion, leave one genre out (rows: listeners; columns: read as Happy, Tense, Sad, Calm, no music):\n";
    for (q, name) in QUADRANTS.iter().enumerate() {
        let mut row = [0usize; 5];
        for (p, e) in logo.iter().zip(excerpts) {
            if e.quadrant == q {
                row[p.unwrap_or(4)] += 1;
            }
        }
        text += &format!(
            "    {name:<6} {}\n",
            row.iter().map(|c| format!("{c:>5}")).collect::<String>()
        );
    }
    // What calm and sad excerpts read, genre by genre (leave one genre out).
    for (truth, name) in [(CALM, "calm"), (SAD, "sad")] {
        let per_genre: Vec<String> = GENRES
            .iter()
            .enumerate()
            .map(|(g, genre)| {
                let mut reads = [0usize; 5];
                for (p, e) in logo.iter().zip(excerpts) {
                    if e.genre == g && e.quadrant == truth {
                        reads[p.unwrap_or(4)] += 1;
                    }
                }
                format!(
                    "{genre} {}/{}/{}/{}",
                    reads[CALM], reads[SAD], reads[HAPPY], reads[TENSE]
                )
            })
            .collect();
        text += &format!(
            "  {name} excerpts read Calm/Sad/Happy/Tense, per genre: {}\n",
            per_genre.join(", ")
        );
    }
    let calm_read_calm = rate(&logo, excerpts, CALM, CALM);
    let calm_read_happy = rate(&logo, excerpts, CALM, HAPPY);
    let sad_read_calm = rate(&logo, excerpts, SAD, CALM);
    // Share of windows per verdict, over all excerpts (held-out fits).
    let windows_total: f64 = summaries.iter().map(|s| s.windows as f64).sum();
    let mut shares: Vec<String> = labels
        .iter()
        .enumerate()
        .map(|(k, l)| {
            let share: f64 = summaries
                .iter()
                .map(|s| f64::from(s.dominant_share[k]) * s.windows as f64)
                .sum::<f64>()
                / windows_total;
            format!("{l} {:.0}%", share * 100.0)
        })
        .collect();
    let share_of = |f: fn(&Summary) -> f32| {
        summaries
            .iter()
            .map(|s| f64::from(f(s)) * s.windows as f64)
            .sum::<f64>()
            / windows_total
    };
    let uncertain_windows = share_of(|s| s.uncertain_share);
    shares.push(format!("uncertain {:.0}%", uncertain_windows * 100.0));
    shares.push(format!(
        "no music {:.0}%",
        share_of(|s| s.no_music_share) * 100.0
    ));
    let mostly_uncertain = summaries.iter().filter(|s| s.uncertain_share > 0.5).count();
    text += &format!(
        "  windows read as (the plugin's verdicts): {}\n  excerpts that read uncertain most of the time: {mostly_uncertain} of {}\n",
        shares.join(", "),
        excerpts.len()
    );
    // Valence and arousal against the votes.
    let mut va_figures = serde_json::Map::new();
    let pairs: Vec<(f64, f64, f64, f64, usize)> = summaries
        .iter()
        .zip(excerpts)
        .filter_map(|(s, e)| {
            Some((
                f64::from(s.valence?),
                f64::from(s.arousal?),
                e.valence_votes,
                e.arousal_votes,
                e.genre,
            ))
        })
        .collect();
    if pairs.len() == excerpts.len() {
        let col = |k: usize, g: Option<usize>| -> Vec<f64> {
            pairs
                .iter()
                .filter(|p| g.is_none_or(|g| p.4 == g))
                .map(|p| [p.0, p.1, p.2, p.3][k])
                .collect()
        };
        for (axis, (ours, votes)) in [("valence", (0, 2)), ("arousal", (1, 3))] {
            let r = pearson(&col(ours, None), &col(votes, None));
            let rho = spearman(&col(ours, None), &col(votes, None));
            let (lo, hi) = correlation_interval(r, pairs.len());
            let per: Vec<String> = (0..4)
                .map(|g| {
                    format!(
                        "{} {:.2}",
                        GENRES[g],
                        pearson(&col(ours, Some(g)), &col(votes, Some(g)))
                    )
                })
                .collect();
            text += &format!(
                "  {axis} against the votes: Pearson r {r:.3} [{lo:.3}, {hi:.3}], Spearman {rho:.3}; per genre {}\n",
                per.join(", ")
            );
            va_figures.insert(
                axis.into(),
                serde_json::json!({"pearson": r, "interval": [lo, hi], "spearman": rho}),
            );
        }
        let arousal_high: Vec<bool> = excerpts
            .iter()
            .map(|e| matches!(e.quadrant, HAPPY | TENSE))
            .collect();
        let a = auc(&col(1, None), &arousal_high);
        text += &format!("  arousal AUC (Happy or Tense against Sad or Calm): {a:.3}\n");
    }
    if !notes[0].is_empty() {
        text += &format!("  fitted (fold 1 of 4): {}\n", notes[0]);
    }
    let figures = serde_json::json!({
        "leave_one_genre_out": {
            "three_way": three_way, "three_way_n": n3,
            "three_way_interval": [wilson(three_way, n3).low, wilson(three_way, n3).high],
            "four_way": four_way, "four_way_n": n4,
            "four_way_interval": [wilson(four_way, n4).low, wilson(four_way, n4).high],
            "three_way_per_genre": GENRES.iter().zip(per_genre_three).map(|(g, a)| (g.to_string(), a)).collect::<HashMap<_, _>>(),
            "calm_read_calm": calm_read_calm, "calm_read_happy": calm_read_happy, "sad_read_calm": sad_read_calm,
        },
        "stratified_5_fold_3_seeds": { "three_way": three_way_strat, "four_way": four_way_strat },
        "uncertain_window_share": uncertain_windows,
        "valence_arousal": va_figures,
    });
    Report {
        name: readout.name,
        text,
        three_way,
        four_way,
        three_way_strat,
        four_way_strat,
        calm_read_calm,
        calm_read_happy,
        sad_read_calm,
        per_genre_three,
        figures,
        logo,
    }
}

/// Each readout against `reference` on the same held-out (leave one genre out) predictions,
/// excerpt by excerpt: the difference in agreement with its 95 % interval (paired: the variance
/// of the per-excerpt differences) and McNemar's exact two-sided test on the excerpts where the
/// two disagree in being right. Differences read from overlapping intervals of two separate
/// accuracies are far less sensitive than this.
fn paired_comparisons(reports: &[Report], excerpts: &[Excerpt], reference: &str) -> String {
    let Some(base) = reports.iter().find(|r| r.name == reference) else {
        return String::new();
    };
    let mut out = format!(
        "Each readout against \"{reference}\", excerpt by excerpt (leave one genre out): difference in agreement [95 % interval], McNemar exact p\n"
    );
    let median = median_clarity(excerpts.iter());
    let subsets: [(&str, ExcerptFilter); 3] = [
        ("three-way", Box::new(|e: &Excerpt| e.quadrant != CALM)),
        ("four-way", Box::new(|_: &Excerpt| true)),
        (
            "clearer half three-way",
            Box::new(move |e: &Excerpt| e.quadrant != CALM && e.clarity >= median),
        ),
    ];
    for r in reports.iter().filter(|r| r.name != reference) {
        let mut parts = Vec::new();
        for (what, keep) in &subsets {
            let p = paired(&r.logo, &base.logo, excerpts, keep.as_ref());
            parts.push(format!(
                "{what} {:+.3} [{:+.3}, {:+.3}], p {:.3}",
                p.difference, p.low, p.high, p.p_value
            ));
        }
        out += &format!("  {:<58} {}\n", r.name, parts.join("; "));
    }
    out
}

/// Which excerpts a figure counts.
type ExcerptFilter = Box<dyn Fn(&Excerpt) -> bool>;

struct Paired {
    difference: f64,
    low: f64,
    high: f64,
    p_value: f64,
}

/// Paired difference in agreement of predictions `a` and `b` on the excerpts `keep` selects.
fn paired(
    a: &[Option<usize>],
    b: &[Option<usize>],
    excerpts: &[Excerpt],
    keep: impl Fn(&Excerpt) -> bool,
) -> Paired {
    let (mut only_a, mut only_b, mut n) = (0usize, 0usize, 0usize);
    for ((pa, pb), e) in a.iter().zip(b).zip(excerpts) {
        if !keep(e) {
            continue;
        }
        n += 1;
        let (ra, rb) = (*pa == Some(e.quadrant), *pb == Some(e.quadrant));
        only_a += usize::from(ra && !rb);
        only_b += usize::from(rb && !ra);
    }
    let n_f = n.max(1) as f64;
    let difference = (only_a as f64 - only_b as f64) / n_f;
    // Per-excerpt differences are +1, -1 or 0: their variance, over n for the mean's.
    let discordant = (only_a + only_b) as f64;
    let variance = (discordant / n_f - difference * difference).max(0.0) / n_f;
    let half = 1.96 * variance.sqrt();
    Paired {
        difference,
        low: difference - half,
        high: difference + half,
        p_value: mcnemar_exact(only_a, only_b),
    }
}

/// Two-sided exact McNemar test: the smaller discordant count under Binomial(b + c, 1/2).
fn mcnemar_exact(b: usize, c: usize) -> f64 {
    let n = b + c;
    if n == 0 {
        return 1.0;
    }
    let k = b.min(c);
    // ln C(n, i) - n ln 2, summed in linear space from i = 0 to k.
    let mut log_choose = 0.0f64;
    let mut tail = 0.0f64;
    for i in 0..=k {
        if i > 0 {
            log_choose += ((n - i + 1) as f64).ln() - (i as f64).ln();
        }
        tail += (log_choose - n as f64 * std::f64::consts::LN_2).exp();
    }
    (2.0 * tail).min(1.0)
}

/// Mean recall over the four quadrants of the excerpts in `pool`: each mood counts as much as
/// the others, whatever its number of excerpts.
fn balanced_accuracy(predicted: &[Option<usize>], excerpts: &[Excerpt], pool: &[usize]) -> f64 {
    let recalls: Vec<f64> = (0..QUADRANTS.len())
        .filter_map(|q| {
            let of_q: Vec<usize> = pool
                .iter()
                .copied()
                .filter(|&i| excerpts[i].quadrant == q)
                .collect();
            (!of_q.is_empty()).then(|| {
                of_q.iter().filter(|&&i| predicted[i] == Some(q)).count() as f64 / of_q.len() as f64
            })
        })
        .collect();
    recalls.iter().sum::<f64>() / recalls.len().max(1) as f64
}

/// What the nested selection maximises on the inner folds.
#[derive(Clone, Copy)]
enum Criterion {
    /// Balanced four-way agreement, every mood counting alike (declared 2026-12-03, before the
    /// first nested run).
    BalancedFourWay,
    /// Three-way agreement (happy / tense / sad) among the readouts that can say Calm: the
    /// issue's own aim ("past 0.75 on happy / tense / sad with calm music read as Calm"), declared
    /// 2026-12-07, after a quick prototype of the offsets-then-arousal rule had been scored.
    ThreeWayWithCalm,
}

impl Criterion {
    fn describe(self) -> &'static str {
        match self {
            Criterion::BalancedFourWay => "balanced four-way agreement",
            Criterion::ThreeWayWithCalm => {
                "three-way agreement among the readouts that can say Calm (the issue's aim)"
            }
        }
    }

    fn score(
        self,
        readout: &Readout,
        predicted: &[Option<usize>],
        excerpts: &[Excerpt],
        pool: &[usize],
    ) -> f64 {
        match self {
            Criterion::BalancedFourWay => balanced_accuracy(predicted, excerpts, pool),
            Criterion::ThreeWayWithCalm if !readout.calm => f64::NEG_INFINITY,
            Criterion::ThreeWayWithCalm => {
                let three: Vec<usize> = pool
                    .iter()
                    .copied()
                    .filter(|&i| excerpts[i].quadrant != CALM)
                    .collect();
                three
                    .iter()
                    .filter(|&&i| predicted[i] == Some(excerpts[i].quadrant))
                    .count() as f64
                    / three.len().max(1) as f64
            }
        }
    }
}

/// Nested selection of the readout. The choice among `readouts` is itself a fit: here it is made
/// inside each outer fold, by leave-one-genre-out over the three training genres (for each
/// criterion; ties go to the earlier, simpler readout), the chosen readout is refitted on the
/// three genres, and the fourth genre only measures it. The figure this prints is what the
/// selection procedure itself reaches on a genre it never saw, without the optimism of reading
/// the best of the rows above. Run on all four genres, the same procedure names the readout it
/// would ship.
fn nested_selection(
    readouts: &[Readout],
    excerpts: &[Excerpt],
    windows: &[Vec<Window>],
    criteria: &[Criterion],
) -> String {
    // Every readout's inner held-out reading of a pool, once for all criteria.
    let inner_predictions = |pool: &[usize]| -> Vec<Vec<Option<usize>>> {
        let inner = leave_one_genre_out_of(excerpts, pool);
        readouts
            .iter()
            .map(|r| predict_held_out(r, excerpts, windows, pool, &inner).quadrant)
            .collect()
    };
    let choose = |criterion: Criterion, pool: &[usize], predictions: &[Vec<Option<usize>>]| {
        let scores: Vec<f64> = readouts
            .iter()
            .zip(predictions)
            .map(|(r, p)| criterion.score(r, p, excerpts, pool))
            .collect();
        let mut best = 0;
        for (k, &s) in scores.iter().enumerate() {
            if s > scores[best] {
                best = k;
            }
        }
        (best, scores)
    };
    // Each outer fold: its held-out genre, its training genres, and every readout's inner
    // held-out reading of the training genres.
    struct Fold {
        test: Vec<usize>,
        train: Vec<usize>,
        predictions: Vec<Vec<Option<usize>>>,
    }
    let folds: Vec<Fold> = leave_one_genre_out(excerpts)
        .into_iter()
        .map(|test| {
            let train: Vec<usize> = (0..excerpts.len()).filter(|i| !test.contains(i)).collect();
            let predictions = inner_predictions(&train);
            Fold {
                test,
                train,
                predictions,
            }
        })
        .collect();
    let all = all_excerpts(excerpts);
    let all_predictions = inner_predictions(&all);
    let mut out = String::new();
    for &criterion in criteria {
        out += &format!(
            "Nested selection (outer: leave one genre out; inner: leave one genre out over the other three; criterion: {}):\n",
            criterion.describe()
        );
        let mut predicted = vec![None; excerpts.len()];
        for Fold {
            test,
            train,
            predictions,
        } in &folds
        {
            let (best, scores) = choose(criterion, train, predictions);
            let fitted = (readouts[best].fit)(excerpts, windows, train);
            for &i in test {
                predicted[i] = track(&fitted, &windows[i]).0.map(|m| quadrant_of(&m));
            }
            out += &format!(
                "  held-out {}: chose \"{}\" (inner {:.3}; runner-up {:.3})\n",
                GENRES[excerpts[test[0]].genre],
                readouts[best].name,
                scores[best],
                scores
                    .iter()
                    .enumerate()
                    .filter(|&(k, _)| k != best)
                    .map(|(_, &s)| s)
                    .fold(f64::MIN, f64::max)
            );
        }
        let (three, n3) = accuracy(&predicted, excerpts, |e| e.quadrant != CALM);
        let (four, n4) = accuracy(&predicted, excerpts, |_| true);
        out += &format!(
            "  the procedure on genres it never saw: three-way {} (n={n3}), four-way {} (n={n4}), balanced four-way {:.3}; calm read Calm {:.2}, calm read Happy {:.2}, sad read Calm {:.2}\n",
            with_interval(three, n3),
            with_interval(four, n4),
            balanced_accuracy(&predicted, excerpts, &all),
            rate(&predicted, excerpts, CALM, CALM),
            rate(&predicted, excerpts, CALM, HAPPY),
            rate(&predicted, excerpts, SAD, CALM),
        );
        let (best, scores) = choose(criterion, &all, &all_predictions);
        out += &format!(
            "  on all four genres it chooses \"{}\"; the criterion, leave one genre out, of each: {}\n",
            readouts[best].name,
            readouts
                .iter()
                .zip(&scores)
                .filter(|(_, s)| s.is_finite())
                .map(|(r, s)| format!("{} {s:.3}", r.name))
                .collect::<Vec<_>>()
                .join("; ")
        );
    }
    out
}

fn summary_table(reports: &[Report]) -> String {
    let mut out = String::from(
        "| readout | three-way, LOGO | four-way, LOGO | three-way, stratified | four-way, stratified | calm read Calm | calm read Happy | sad read Calm | three-way per genre (cla/roc/ele/pop) |\n|---|---|---|---|---|---|---|---|---|\n",
    );
    for r in reports {
        out += &format!(
            "| {} | {:.3} | {:.3} | {:.3} | {:.3} | {:.2} | {:.2} | {:.2} | {} |\n",
            r.name,
            r.three_way,
            r.four_way,
            r.three_way_strat,
            r.four_way_strat,
            r.calm_read_calm,
            r.calm_read_happy,
            r.sad_read_calm,
            r.per_genre_three
                .iter()
                .map(|a| format!("{a:.2}"))
                .collect::<Vec<_>>()
                .join(" / ")
        );
    }
    out
}

/// How the calm offset trades Calm for Sad, and how a window's lead relates to its accuracy:
/// leave-one-genre-out fits of the shipped readout, each offset applied to the held-out genre.
fn operating_points(excerpts: &[Excerpt], windows: &[Vec<Window>]) {
    let folds = leave_one_genre_out(excerpts);
    let fits: Vec<Calibration> = folds
        .iter()
        .map(|test| {
            let train: Vec<usize> = (0..excerpts.len()).filter(|i| !test.contains(i)).collect();
            fit_calibration(excerpts, windows, &train).0
        })
        .collect();
    println!("\nSad offset, moved from the fitted one in log-odds (leave one genre out): three-way, four-way, and what calm and sad excerpts read (Calm / Sad / Happy / Tense)");
    for offset in [-1.0f32, -0.5, -0.25, 0.0, 0.25, 0.5] {
        let mut predicted = vec![None; excerpts.len()];
        for (test, fit) in folds.iter().zip(&fits) {
            let mut c = fit.clone();
            c.mood_offsets[1] += offset;
            let fitted = calibrated(c);
            for &i in test {
                predicted[i] = track(&fitted, &windows[i]).0.map(|m| quadrant_of(&m));
            }
        }
        let reads = |truth: usize| {
            [CALM, SAD, HAPPY, TENSE]
                .map(|q| format!("{:.2}", rate(&predicted, excerpts, truth, q)))
                .join(" / ")
        };
        println!(
            "  {offset:.2}: three-way {:.3}, four-way {:.3}; calm reads {}; sad reads {}",
            accuracy(&predicted, excerpts, |e| e.quadrant != CALM).0,
            accuracy(&predicted, excerpts, |_| true).0,
            reads(CALM),
            reads(SAD)
        );
    }
    // Agreement of the windows' smoothed leading mood with the excerpt's label, by the lead of
    // its decision group (what the uncertain rule reads: Happy and Calm together, Angry and
    // Scary together) over the runner-up group.
    let bins = [0.0f32, 0.02, 0.05, 0.1, 0.2, 1.01];
    let mut counts = vec![(0usize, 0usize); bins.len() - 1];
    for (test, fit) in folds.iter().zip(&fits) {
        let fitted = calibrated(fit.clone());
        for &i in test {
            let (_, _, states) = track_states(&fitted, &windows[i]);
            for state in states
                .iter()
                .filter(|s| s.presence >= report::presence_threshold())
            {
                let mut groups = vec![0.0f32; CALIBRATED_GROUPS.len()];
                for (k, p) in state.probabilities.iter().enumerate() {
                    groups[CALIBRATED_GROUPS[k]] += p;
                }
                groups.sort_by(|a, b| b.total_cmp(a));
                let lead = groups[0] - groups[1];
                let leading = engine::dominant_of(&state.probabilities, &CALIBRATED_GROUPS);
                let bin = bins
                    .windows(2)
                    .position(|b| lead >= b[0] && lead < b[1])
                    .unwrap_or(0);
                counts[bin].1 += 1;
                counts[bin].0 +=
                    usize::from(quadrant_of(&fitted.labels[leading]) == excerpts[i].quadrant);
            }
        }
    }
    println!("Windows' leading mood against the excerpt's label, by its decision group's lead over the runner-up (smoothed, leave one genre out):");
    let total: usize = counts.iter().map(|c| c.1).sum();
    for (b, (right, n)) in bins.windows(2).zip(&counts) {
        println!(
            "  lead {:.2}–{:.2}: {:>5} windows ({:.0}%), {:.3} agree",
            b[0],
            b[1].min(1.0),
            n,
            100.0 * *n as f64 / total.max(1) as f64,
            *right as f64 / (*n).max(1) as f64
        );
    }
}

/// What a few excerpts read with the shipped calibration (fitted on all, so in-sample): the
/// tense rock excerpt, the sad one and the calm one with the clearest votes.
fn examples_of_shipped(shipped: &Calibration, excerpts: &[Excerpt], windows: &[Vec<Window>]) {
    let fitted = calibrated(shipped.clone());
    println!("\nExamples (in-sample, the shipped constants):");
    for (genre, quadrant, emotion) in [
        (1, TENSE, "tension"),
        (1, SAD, "sadness"),
        (0, CALM, "calmness"),
        (3, SAD, "sadness"),
        (3, CALM, "calmness"),
    ] {
        let k = EMOTIONS.iter().position(|e| *e == emotion).expect("known");
        let best = (0..excerpts.len())
            .filter(|&i| excerpts[i].genre == genre && excerpts[i].quadrant == quadrant)
            .max_by(|&a, &b| excerpts[a].shares[k].total_cmp(&excerpts[b].shares[k]));
        if let Some(i) = best {
            let (mood, s) = track(&fitted, &windows[i]);
            println!(
                "  {}/{}.ogg ({} of {} listeners felt {emotion}): reads {} (valence {:+.2}, arousal {:+.2})",
                GENRES[genre],
                excerpts[i].number,
                (excerpts[i].shares[k] * excerpts[i].voters as f64).round(),
                excerpts[i].voters,
                mood.as_deref().unwrap_or("no music"),
                s.valence.unwrap_or(0.0),
                s.arousal.unwrap_or(0.0)
            );
        }
    }
}

fn write_calibration(
    path: &Path,
    mut calibration: Calibration,
    penalty: (f64, f64),
    report: &Report,
    data: &Path,
) -> Result<()> {
    let extra = &mut calibration.extra;
    extra.insert(
        "about".into(),
        "The default readout's constants. The mood: softmax of YAMNet's Happy, Sad, Angry and Scary music logits (rows 271, 272, 275, 276) divided by `temperature` plus `mood_offsets`, giving the pleasant mood, Sad and the tense quadrant; `arousal` splits the pleasant mood into Happy (energetic) and Calm; Angry and Scary split the tense quadrant by their own logits, centred on Emotify's audio (`angry_offset`, `scary_offset`). Two logistic regressions over the six music-mood logits (rows 271-276) and four signal cues: `arousal` (energetic: Happy or Tense listeners' quadrant, against calm: Sad or Calm) and `valence` (pleasant: Happy or Calm, against unpleasant: Tense or Sad), also read out as arousal and valence. Axis weights apply to the raw inputs (standardisation folded in).".into(),
    );
    extra.insert(
        "fitted_on".into(),
        serde_json::json!({
            "data": "Emotify: 400 one-minute Magnatune excerpts (classical, rock, electronic, pop) with listeners' GEMS votes",
            "annotations_sha256": moodscope_convert_sha(&data.join("annotations.csv"))?,
            "labels": "each emotion's vote share standardised over the 400 excerpts; Happy = joyful activation, Tense = tension, Sad = sadness, Calm = mean of calmness and tenderness; the largest wins (106 Happy, 89 Tense, 91 Sad, 114 Calm)",
            "windows": "every 0.48 s window of an excerpt carries its excerpt's label, weighted so that each excerpt counts once and each side of an axis as much as the other",
            "mood_offsets": "fitted by weighted likelihood that a right mood wins (Happy for Happy excerpts, Angry or Scary for Tense, Sad for Sad; Calm excerpts left out; each quadrant weighing the same), Happy's offset fixed at 0",
            "penalty": {"arousal": penalty.0, "valence": penalty.1},
            "penalty_chosen_by": "per axis, the least balanced log-loss over leave-one-genre-out folds of the four genres, from 1e-4, 1e-3, 1e-2, 1e-1 (L2 on standardised weights)",
            "command": "cargo run --release -p moodscope-train-cli --example emotify -- --write",
        }),
    );
    extra.insert("figures".into(), report.figures.clone());
    extra.insert(
        "citation".into(),
        "A. Aljanaki, F. Wiering, R. C. Veltkamp. Studying emotion induced by music through a crowdsourcing game. Information Processing & Management, 2015.".into(),
    );
    extra.insert(
        "terms".into(),
        "Derived from Emotify, whose audio is Magnatune's, released for non-commercial use under Creative Commons BY-NC-SA: these constants are for non-commercial use, with this citation. No Emotify audio ships with Moodscope.".into(),
    );
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let text = serde_json::to_string_pretty(&calibration)? + "\n";
    // What is written is what loads.
    Calibration::parse(&text, path)?;
    std::fs::write(path, text)?;
    Ok(())
}

/// Loads the written calibration through a real `Analyser` (the plugin's and `analyze`'s code)
/// and checks that a few excerpts give the very same window probabilities as this tool's.
fn self_check(
    path: &Path,
    args: &Args,
    excerpts: &[Excerpt],
    windows: &[Vec<Window>],
) -> Result<()> {
    let dir = tempfile_dir()?;
    let models_dir = dir.join("models");
    std::fs::create_dir_all(models_dir.join("calibration"))?;
    std::fs::copy(
        args.models.join(models::YAMNET_ONNX),
        models_dir.join(models::YAMNET_ONNX),
    )?;
    std::fs::copy(path, models_dir.join(DEFAULT_CALIBRATION))?;
    let calibration = Arc::new(Calibration::load(path)?);
    let fitted = calibrated((*calibration).clone());
    for &i in &[0usize, 150, 250, 399] {
        let (samples, rate) = read_mono_file(&excerpts[i].path)?;
        let mut analyser = Analyser::new(
            AnalyserConfig {
                head: HeadChoice::Default,
                ..AnalyserConfig::new(rate, BackboneKind::Yamnet)
            },
            &ModelDir::new(&models_dir),
        )?;
        let mut readings = Vec::new();
        for block in samples.chunks(rate as usize * 8) {
            analyser.push(block, &mut readings)?;
        }
        analyser.finish(&mut readings)?;
        if readings.len() != windows[i].len() {
            bail!(
                "self-check: {} windows, the tool has {}",
                readings.len(),
                windows[i].len()
            );
        }
        for (r, w) in readings.iter().zip(&windows[i]) {
            let (p, _) = (fitted.read)(w);
            if r.probabilities != p {
                bail!(
                    "self-check failed on {}: the Analyser reads {:?}, the tool {:?}",
                    excerpts[i].path.display(),
                    r.probabilities,
                    p
                );
            }
        }
    }
    std::fs::remove_dir_all(&dir).ok();
    println!("self-check: the Analyser with the written calibration gives the same window probabilities, bit for bit");
    Ok(())
}

fn tempfile_dir() -> Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("moodscope-emotify-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}
