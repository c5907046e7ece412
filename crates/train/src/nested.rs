//! Nested cross-validation: a dataset and [`Family`]s of candidate heads in; for each family the
//! accuracy of its whole selection procedure, measured only on clips that took no part in any
//! choice, out ([`NestedReport`]), with intervals over clips and the spread over seeds, paired
//! comparisons between families ([`Paired`]), streamed figures, and what was chosen where.
//!
//! For each seed the clips are dealt into `outer_folds` stratified folds. For each outer fold,
//! the clips of the other folds (the outer-training clips) are dealt again into `inner_folds`;
//! every candidate of a family is trained on inner-training clips and scored on inner-validation
//! clips, and [`choose`] picks the candidate with the best pooled inner accuracy (ties: the lower
//! inner log-loss, then the earlier candidate: families list their simplest candidates first).
//! Only then is the chosen candidate trained on all outer-training clips and measured on the
//! outer fold, whose clips no choice has seen. A family with one candidate has nothing to choose:
//! its nested figures are plain cross-validation. [`select`] on the whole dataset — the same
//! procedure, one inner split — chooses the head that is finally trained and shipped, so the
//! nested figures measure the very procedure that made it.
//!
//! Training goes through a [`Learner`] ([`CandleLearner`] for real heads), which is told the
//! [`Purpose`] of every call, so tests can check where every clip went.

use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Mutex};
use std::time::Instant;

use rand::SeedableRng;
use serde::{Deserialize, Serialize};

use crate::cv::{stream_windows, STREAM_FROM_WINDOW};
use crate::dataset::{stratified_folds, Dataset};
use crate::metrics::{bootstrap_mean, mcnemar_exact, mean_sd, plugin_dominant, wilson};
use crate::metrics::{Confusion, Interval};
use crate::spec::HeadSpec;
use crate::train::{
    argmax, clip_probabilities, derive_seed, fit, Normalisation, Prepared, TrainError,
};

/// Resamples of the paired and per-head bootstrap intervals.
pub const BOOTSTRAP_RESAMPLES: usize = 10_000;

/// Heads of one kind and the candidates the nested procedure chooses among.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Family {
    /// Short name (reports, figures, `--only`).
    pub name: String,
    pub description: String,
    /// Simplest first: on a tie the earlier candidate is chosen. Names must differ.
    pub candidates: Vec<HeadSpec>,
}

/// How the nested cross-validation is run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NestedOptions {
    pub outer_folds: usize,
    pub inner_folds: usize,
    /// One repeat per seed: each seed deals its own outer and inner folds.
    pub seeds: Vec<u64>,
    /// Also run [`select`] on the whole dataset (for the head that is finally trained).
    pub final_selection: bool,
}

/// Why a learner is called: which clips may be in play.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Purpose {
    /// Scoring a candidate, to choose. `outer: Some(f)`: inside outer fold `f` of repeat `seed`
    /// (only that fold's outer-training clips may be used); `None`: the final selection on the
    /// whole dataset.
    Select {
        seed: u64,
        outer: Option<usize>,
        inner: usize,
    },
    /// Measuring the chosen candidate on outer fold `outer` of repeat `seed`.
    Measure { seed: u64, outer: usize },
}

/// Windows of a stream, from the third of each clip on: how many the head's own per-window
/// output gets right, and how many the plugin's smoothed display gets right.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamCounts {
    pub windows: usize,
    pub raw_correct: usize,
    pub smoothed_correct: usize,
}

impl StreamCounts {
    fn add(&mut self, other: StreamCounts) {
        self.windows += other.windows;
        self.raw_correct += other.raw_correct;
        self.smoothed_correct += other.smoothed_correct;
    }
}

/// What a learner returns for the clips it is asked to predict.
#[derive(Clone, Debug, PartialEq)]
pub struct Predictions {
    /// Clip-level probabilities, one row per test clip.
    pub probabilities: Vec<Vec<f32>>,
    /// For [`Purpose::Measure`]: the test clips played back to back as one stream.
    pub stream: Option<StreamCounts>,
}

/// Trains a head and predicts clips: the only way the nested procedure touches data.
pub trait Learner: Sync {
    /// Trains `spec` on `train` (every random draw seeded from `seed`) and predicts every clip
    /// of `test`.
    fn fit_predict(
        &self,
        purpose: Purpose,
        spec: &HeadSpec,
        train: &Dataset,
        test: &Dataset,
        seed: u64,
    ) -> Result<Predictions, TrainError>;
}

/// Real heads: trained in candle exactly as [`crate::train()`] trains them (the normalisation
/// fitted on the training clips only), measured with their clip decision; for
/// [`Purpose::Measure`] the test clips are also played back to back in a seeded random order,
/// state carried over, and read raw and through the plugin's smoothing.
pub struct CandleLearner {
    /// Seconds between windows (for the plugin's smoothing).
    pub hop_seconds: f64,
}

impl Learner for CandleLearner {
    fn fit_predict(
        &self,
        purpose: Purpose,
        spec: &HeadSpec,
        train: &Dataset,
        test: &Dataset,
        seed: u64,
    ) -> Result<Predictions, TrainError> {
        let dim = train.check()?;
        let normalisation = if spec.normalise {
            Normalisation::fit(train, dim)
        } else {
            Normalisation::identity(dim)
        };
        let train_prepared = Prepared::new(train, &normalisation);
        let test_prepared = Prepared::new(test, &normalisation);
        let members: Vec<u64> = (0..spec.ensemble as u64)
            .map(|m| derive_seed(seed, m))
            .collect();
        let fitted = fit(&train_prepared, spec, &members, None, &mut |_, _| {})?;
        let probabilities =
            clip_probabilities(&fitted.weights, &test_prepared, spec.clip_decision())?;
        let stream = match purpose {
            Purpose::Select { .. } => None,
            Purpose::Measure { .. } => {
                let mut rng = rand::rngs::ChaCha8Rng::seed_from_u64(derive_seed(seed, u64::MAX));
                let (windows, truth) = stream_windows(&fitted.weights, &test_prepared, &mut rng)?;
                let shown = plugin_dominant(&windows, self.hop_seconds);
                let mut counts = StreamCounts::default();
                for ((p, &(label, w)), &d) in windows.iter().zip(&truth).zip(&shown) {
                    if w >= STREAM_FROM_WINDOW {
                        counts.windows += 1;
                        counts.raw_correct += usize::from(argmax(p) == label);
                        counts.smoothed_correct += usize::from(d == label);
                    }
                }
                Some(counts)
            }
        };
        Ok(Predictions {
            probabilities,
            stream,
        })
    }
}

/// A candidate's pooled score over the inner folds.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CandidateScore {
    pub name: String,
    pub accuracy: f64,
    /// Mean negative log-probability of the true label.
    pub log_loss: f64,
}

/// One choice among a family's candidates.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Selection {
    /// Index of the chosen candidate.
    pub chosen: usize,
    /// Every candidate's inner score, in candidate order.
    pub scores: Vec<CandidateScore>,
}

/// The best inner accuracy; ties: the lower log-loss, then the earlier candidate.
pub fn choose(scores: &[CandidateScore]) -> usize {
    let mut best = 0;
    for (i, s) in scores.iter().enumerate().skip(1) {
        let b = &scores[best];
        if s.accuracy > b.accuracy || (s.accuracy == b.accuracy && s.log_loss < b.log_loss) {
            best = i;
        }
    }
    best
}

/// The choice inside one outer fold of one repeat.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FoldChoice {
    pub outer: usize,
    /// The outer fold's clips (dataset indices): measured, never used to choose.
    pub test: Vec<usize>,
    /// `None` when the family has a single candidate.
    pub selection: Option<Selection>,
    pub chosen: usize,
}

/// One repeat (seed) of the nested cross-validation of a family.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NestedRepeat {
    pub seed: u64,
    /// Predicted label of every clip (dataset order), each by a head that neither trained on
    /// it nor was chosen with it.
    pub predicted: Vec<usize>,
    pub accuracy: f64,
    pub macro_f1: f64,
    pub confusion: Confusion,
    pub stream: StreamCounts,
    pub folds: Vec<FoldChoice>,
}

/// The nested figures of one family.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FamilyReport {
    pub family: Family,
    pub labels: Vec<String>,
    pub clips_per_label: Vec<usize>,
    pub truth: Vec<usize>,
    pub outer_folds: usize,
    pub inner_folds: usize,
    pub repeats: Vec<NestedRepeat>,
    /// Mean accuracy over the repeats with the 95% Wilson interval for that many clips.
    pub accuracy: Interval,
    /// The same mean with a 95% bootstrap interval over clips (each clip's correctness averaged
    /// over the repeats).
    pub accuracy_bootstrap: Interval,
    /// Spread over the repeats: standard deviation, lowest and highest.
    pub accuracy_sd: f64,
    pub accuracy_range: (f64, f64),
    pub macro_f1: f64,
    /// Counts summed over the repeats.
    pub confusion: Confusion,
    /// Pooled over the repeats: per-window accuracy of the outer clips back to back.
    pub stream: StreamCounts,
    /// How often each candidate was chosen over all (repeat, outer fold).
    pub chosen_counts: Vec<usize>,
    /// Mean over (repeat, outer fold) of the chosen candidate's inner accuracy: the figure a
    /// selection on the same folds would report, to set beside the outer one.
    pub mean_inner_accuracy_of_chosen: Option<f64>,
    /// [`select`] on the whole dataset (what the shipped head is trained with).
    pub final_selection: Option<Selection>,
    /// Seconds of training of this family's runs, summed over runs (each timed by the wall
    /// clock, so a busy machine counts in).
    pub run_seconds: f64,
}

/// The nested figures of every family on one dataset.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NestedReport {
    pub options: NestedOptions,
    pub families: Vec<FamilyReport>,
    /// Wall-clock seconds.
    pub seconds: f64,
}

/// Progress: jobs (trainings) done of how many.
#[derive(Clone, Copy, Debug)]
pub struct NestedProgress<'a> {
    pub family: &'a str,
    pub done: usize,
    pub jobs: usize,
}

/// Seed of the inner split of outer fold `outer` of repeat `seed` (`None`: the whole dataset).
pub fn inner_split_seed(seed: u64, outer: Option<usize>) -> u64 {
    derive_seed(seed, outer.map_or(u64::MAX, |o| o as u64))
}

/// Seed a learner is given for a training run: from the spec's own seed and where the run is.
fn fit_seed(spec: &HeadSpec, purpose: Purpose) -> u64 {
    let (seed, outer, inner) = match purpose {
        Purpose::Select { seed, outer, inner } => (seed, outer, Some(inner)),
        Purpose::Measure { seed, outer } => (seed, Some(outer), None),
    };
    let s = derive_seed(
        derive_seed(spec.seed, seed),
        outer.map_or(u64::MAX, |o| o as u64),
    );
    derive_seed(s, inner.map_or(u64::MAX, |i| i as u64))
}

/// One training run of the nested procedure.
#[derive(Clone, Debug)]
struct Job {
    family: usize,
    candidate: usize,
    purpose: Purpose,
    train: Vec<usize>,
    test: Vec<usize>,
}

fn complement(n: usize, of: &[usize]) -> Vec<usize> {
    (0..n).filter(|i| of.binary_search(i).is_err()).collect()
}

/// Inner folds over `pool` (dataset indices, sorted): (training, validation) index lists.
fn inner_splits(
    truth: &[usize],
    pool: &[usize],
    k: usize,
    seed: u64,
) -> Vec<(Vec<usize>, Vec<usize>)> {
    let labels: Vec<usize> = pool.iter().map(|&i| truth[i]).collect();
    stratified_folds(&labels, k, seed)
        .into_iter()
        .map(|fold| {
            let validation: Vec<usize> = fold.iter().map(|&j| pool[j]).collect();
            let training: Vec<usize> = pool
                .iter()
                .copied()
                .filter(|i| validation.binary_search(i).is_err())
                .collect();
            (training, validation)
        })
        .collect()
}

/// Runs `jobs` on the available cores; results in job order.
fn run_jobs(
    data: &Dataset,
    families: &[Family],
    learner: &dyn Learner,
    jobs: &[Job],
    on_done: &mut dyn FnMut(&Job),
) -> Result<Vec<(Predictions, f64)>, TrainError> {
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(jobs.len())
        .max(1);
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<(Predictions, f64)>>> =
        Mutex::new((0..jobs.len()).map(|_| None).collect());
    let (sender, receiver) = mpsc::channel::<(usize, Result<(), TrainError>)>();
    let mut failure = None;
    std::thread::scope(|scope| {
        for _ in 0..threads {
            let sender = sender.clone();
            let (next, results) = (&next, &results);
            scope.spawn(move || loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(job) = jobs.get(i) else { break };
                let spec = &families[job.family].candidates[job.candidate];
                let start = Instant::now();
                let outcome = learner.fit_predict(
                    job.purpose,
                    spec,
                    &data.subset(&job.train),
                    &data.subset(&job.test),
                    fit_seed(spec, job.purpose),
                );
                let seconds = start.elapsed().as_secs_f64();
                let sent = match outcome {
                    Ok(p) => {
                        if let Ok(mut r) = results.lock() {
                            r[i] = Some((p, seconds));
                        }
                        Ok(())
                    }
                    Err(e) => {
                        next.store(jobs.len(), Ordering::Relaxed);
                        Err(e)
                    }
                };
                let _ = sender.send((i, sent));
            });
        }
        drop(sender);
        for (i, outcome) in receiver {
            match outcome {
                Ok(()) => on_done(&jobs[i]),
                Err(e) => failure = Some(e),
            }
        }
    });
    if let Some(e) = failure {
        return Err(e);
    }
    let results = results.into_inner().unwrap_or_default();
    results
        .into_iter()
        .map(|r| r.ok_or_else(|| TrainError::Spec("a training run did not finish".into())))
        .collect()
}

/// Key of a choice: (family, repeat index, outer fold or `None` for the whole dataset).
type ChoiceKey = (usize, usize, Option<usize>);

/// Pools inner-fold predictions into each candidate's score and chooses.
fn selections(
    families: &[Family],
    truth: &[usize],
    jobs: &[Job],
    results: &[(Predictions, f64)],
    seeds: &[u64],
) -> std::collections::BTreeMap<ChoiceKey, Selection> {
    // (key, candidate) -> (correct, log-loss sum, clips)
    let mut pooled: std::collections::BTreeMap<(ChoiceKey, usize), (usize, f64, usize)> =
        Default::default();
    for (job, (predictions, _)) in jobs.iter().zip(results) {
        let Purpose::Select { seed, outer, .. } = job.purpose else {
            continue;
        };
        let repeat = seeds.iter().position(|&s| s == seed).unwrap_or(0);
        let entry = pooled
            .entry(((job.family, repeat, outer), job.candidate))
            .or_default();
        for (&i, p) in job.test.iter().zip(&predictions.probabilities) {
            entry.0 += usize::from(argmax(p) == truth[i]);
            entry.1 -= f64::from(p[truth[i]].max(1e-12)).ln();
            entry.2 += 1;
        }
    }
    let mut out = std::collections::BTreeMap::new();
    let keys: std::collections::BTreeSet<ChoiceKey> = pooled.keys().map(|(k, _)| *k).collect();
    for key in keys {
        let family = &families[key.0];
        let scores: Vec<CandidateScore> = family
            .candidates
            .iter()
            .enumerate()
            .map(|(c, spec)| {
                let (correct, loss, n) = pooled.get(&(key, c)).copied().unwrap_or((0, 0.0, 0));
                CandidateScore {
                    name: spec.name.clone(),
                    accuracy: correct as f64 / n.max(1) as f64,
                    log_loss: loss / n.max(1) as f64,
                }
            })
            .collect();
        out.insert(
            key,
            Selection {
                chosen: choose(&scores),
                scores,
            },
        );
    }
    out
}

/// The selection procedure alone, on `data` (all of it: no clip is held out): each candidate
/// of `family` scored over one stratified `inner_folds` split dealt with `split_seed`, and the
/// choice. Used for the head that is finally trained; [`nested_cross_validate`] runs the same
/// procedure inside every outer fold.
pub fn select(
    data: &Dataset,
    family: &Family,
    inner_folds: usize,
    seed: u64,
    learner: &dyn Learner,
) -> Result<Selection, TrainError> {
    let options = NestedOptions {
        outer_folds: 2,
        inner_folds,
        seeds: vec![seed],
        final_selection: true,
    };
    let truth: Vec<usize> = data.items.iter().map(|s| s.label).collect();
    let families = std::slice::from_ref(family);
    let jobs = selection_jobs(&truth, families, &options, false);
    let results = run_jobs(data, families, learner, &jobs, &mut |_| {})?;
    selections(families, &truth, &jobs, &results, &options.seeds)
        .remove(&(0, 0, None))
        .ok_or_else(|| TrainError::Spec(format!("family `{}` has no candidates", family.name)))
}

/// The outer folds of repeat `seed` (validation indices, each sorted).
pub fn outer_folds(truth: &[usize], k: usize, seed: u64) -> Vec<Vec<usize>> {
    stratified_folds(truth, k, seed)
}

/// Inner (choice) jobs of every family with more than one candidate: per repeat and outer fold
/// when `nested`, and on the whole dataset when `options.final_selection`.
fn selection_jobs(
    truth: &[usize],
    families: &[Family],
    options: &NestedOptions,
    nested: bool,
) -> Vec<Job> {
    let n = truth.len();
    let mut jobs = Vec::new();
    for (f, family) in families.iter().enumerate() {
        if family.candidates.len() < 2 {
            continue;
        }
        let mut pools: Vec<(u64, Option<usize>, Vec<usize>)> = Vec::new();
        if nested {
            for &seed in &options.seeds {
                for (o, test) in outer_folds(truth, options.outer_folds, seed)
                    .iter()
                    .enumerate()
                {
                    pools.push((seed, Some(o), complement(n, test)));
                }
            }
        }
        if options.final_selection {
            pools.push((options.seeds[0], None, (0..n).collect()));
        }
        for (seed, outer, pool) in pools {
            let splits = inner_splits(
                truth,
                &pool,
                options.inner_folds,
                inner_split_seed(seed, outer),
            );
            for (inner, (train, test)) in splits.into_iter().enumerate() {
                for candidate in 0..family.candidates.len() {
                    jobs.push(Job {
                        family: f,
                        candidate,
                        purpose: Purpose::Select { seed, outer, inner },
                        train: train.clone(),
                        test: test.clone(),
                    });
                }
            }
        }
    }
    jobs
}

/// Nested cross-validation of every family on `data` (see the module documentation). Labels
/// must all have at least `outer_folds` clips (use [`Dataset::for_cross_validation`] first).
pub fn nested_cross_validate(
    data: &Dataset,
    families: &[Family],
    options: &NestedOptions,
    learner: &dyn Learner,
    on_progress: &mut dyn FnMut(&NestedProgress),
) -> Result<NestedReport, TrainError> {
    let start = Instant::now();
    data.check()?;
    if options.seeds.is_empty() || options.outer_folds < 2 || options.inner_folds < 2 {
        return Err(TrainError::Spec(
            "nested cross-validation needs a seed and at least 2 outer and 2 inner folds".into(),
        ));
    }
    for family in families {
        if family.candidates.is_empty() {
            return Err(TrainError::Spec(format!(
                "family `{}` has no candidates",
                family.name
            )));
        }
        for spec in &family.candidates {
            spec.check().map_err(TrainError::Spec)?;
        }
    }
    let smallest = data.counts().into_iter().min().unwrap_or(0);
    if smallest < options.outer_folds {
        return Err(TrainError::Spec(format!(
            "{}-fold nested cross-validation needs {} clips per label; the smallest label has {smallest}",
            options.outer_folds, options.outer_folds
        )));
    }
    let truth: Vec<usize> = data.items.iter().map(|s| s.label).collect();
    let n = truth.len();
    let total_jobs = selection_jobs(&truth, families, options, true).len()
        + families.len() * options.seeds.len() * options.outer_folds;
    let mut done = 0;
    let mut progress = |job: &Job| {
        done += 1;
        on_progress(&NestedProgress {
            family: &families[job.family].name,
            done,
            jobs: total_jobs,
        });
    };

    // Phase 1: every choice, from outer-training clips only.
    let select_jobs = selection_jobs(&truth, families, options, true);
    let select_results = run_jobs(data, families, learner, &select_jobs, &mut progress)?;
    let chosen = selections(
        families,
        &truth,
        &select_jobs,
        &select_results,
        &options.seeds,
    );
    let mut run_seconds = vec![0.0; families.len()];
    for (job, (_, seconds)) in select_jobs.iter().zip(&select_results) {
        run_seconds[job.family] += seconds;
    }

    // Phase 2: each choice trained on its outer-training clips, measured on its outer fold.
    let mut measure_jobs = Vec::new();
    for (f, family) in families.iter().enumerate() {
        for (r, &seed) in options.seeds.iter().enumerate() {
            for (o, test) in outer_folds(&truth, options.outer_folds, seed)
                .into_iter()
                .enumerate()
            {
                let candidate = if family.candidates.len() < 2 {
                    0
                } else {
                    chosen.get(&(f, r, Some(o))).map_or(0, |s| s.chosen)
                };
                measure_jobs.push(Job {
                    family: f,
                    candidate,
                    purpose: Purpose::Measure { seed, outer: o },
                    train: complement(n, &test),
                    test,
                });
            }
        }
    }
    let measured = run_jobs(data, families, learner, &measure_jobs, &mut progress)?;
    for (job, (_, seconds)) in measure_jobs.iter().zip(&measured) {
        run_seconds[job.family] += seconds;
    }

    let mut reports = Vec::new();
    for (f, family) in families.iter().enumerate() {
        let mut repeats = Vec::new();
        for (r, &seed) in options.seeds.iter().enumerate() {
            let mut predicted = vec![0; n];
            let mut stream = StreamCounts::default();
            let mut folds = Vec::new();
            for (job, (p, _)) in measure_jobs.iter().zip(&measured) {
                let Purpose::Measure { seed: s, outer } = job.purpose else {
                    continue;
                };
                if job.family != f || s != seed {
                    continue;
                }
                for (&i, probabilities) in job.test.iter().zip(&p.probabilities) {
                    predicted[i] = argmax(probabilities);
                }
                if let Some(c) = p.stream {
                    stream.add(c);
                }
                folds.push(FoldChoice {
                    outer,
                    test: job.test.clone(),
                    selection: chosen.get(&(f, r, Some(outer))).cloned(),
                    chosen: job.candidate,
                });
            }
            let mut confusion = Confusion::new(&data.labels);
            for (&t, &p) in truth.iter().zip(&predicted) {
                confusion.add(t, p);
            }
            repeats.push(NestedRepeat {
                seed,
                predicted,
                accuracy: confusion.accuracy(),
                macro_f1: confusion.macro_f1(),
                confusion,
                stream,
                folds,
            });
        }
        reports.push(assemble(
            family,
            data,
            &truth,
            options,
            repeats,
            chosen.get(&(f, 0, None)).cloned(),
            run_seconds[f],
        ));
    }
    Ok(NestedReport {
        options: options.clone(),
        families: reports,
        seconds: start.elapsed().as_secs_f64(),
    })
}

fn assemble(
    family: &Family,
    data: &Dataset,
    truth: &[usize],
    options: &NestedOptions,
    repeats: Vec<NestedRepeat>,
    final_selection: Option<Selection>,
    run_seconds: f64,
) -> FamilyReport {
    let accuracies: Vec<f64> = repeats.iter().map(|r| r.accuracy).collect();
    let (accuracy, accuracy_sd) = mean_sd(&accuracies);
    let low = accuracies.iter().copied().fold(f64::INFINITY, f64::min);
    let high = accuracies.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let (macro_f1, _) = mean_sd(&repeats.iter().map(|r| r.macro_f1).collect::<Vec<_>>());
    let mut confusion = Confusion::new(&data.labels);
    let mut stream = StreamCounts::default();
    let mut chosen_counts = vec![0; family.candidates.len()];
    let mut inner_of_chosen = Vec::new();
    for r in &repeats {
        confusion.merge(&r.confusion);
        stream.add(r.stream);
        for fold in &r.folds {
            chosen_counts[fold.chosen] += 1;
            if let Some(s) = &fold.selection {
                inner_of_chosen.push(s.scores[s.chosen].accuracy);
            }
        }
    }
    let per_clip = per_clip_correct(truth, &repeats);
    FamilyReport {
        family: family.clone(),
        labels: data.labels.clone(),
        clips_per_label: data.counts(),
        truth: truth.to_vec(),
        outer_folds: options.outer_folds,
        inner_folds: options.inner_folds,
        accuracy: wilson(accuracy, truth.len()),
        accuracy_bootstrap: bootstrap_mean(&per_clip, BOOTSTRAP_RESAMPLES, 1),
        accuracy_sd,
        accuracy_range: (low, high),
        macro_f1,
        confusion,
        stream,
        chosen_counts,
        mean_inner_accuracy_of_chosen: (!inner_of_chosen.is_empty())
            .then(|| mean_sd(&inner_of_chosen).0),
        final_selection,
        repeats,
        run_seconds,
    }
}

/// Each clip's correctness averaged over the repeats.
fn per_clip_correct(truth: &[usize], repeats: &[NestedRepeat]) -> Vec<f64> {
    (0..truth.len())
        .map(|i| {
            repeats
                .iter()
                .filter(|r| r.predicted[i] == truth[i])
                .count() as f64
                / repeats.len().max(1) as f64
        })
        .collect()
}

/// One head's nested accuracy minus another's, clip by clip on the same outer folds.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Paired {
    /// Mean over clips of the difference in correctness (averaged over the repeats), with the
    /// 95% paired bootstrap interval over clips.
    pub difference: Interval,
    /// Per repeat: clips only the first head gets right, only the second, and the exact
    /// McNemar p-value.
    pub mcnemar: Vec<(usize, usize, f64)>,
}

impl Paired {
    /// The first head is better, and the 95% interval of its lead excludes 0.
    pub fn significantly_better(&self) -> bool {
        self.difference.low > 0.0
    }
}

impl fmt::Display for Paired {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let p: Vec<String> = self
            .mcnemar
            .iter()
            .map(|(_, _, p)| format!("{p:.2}"))
            .collect();
        write!(
            f,
            "{:+.3} [{:+.3}, {:+.3}], McNemar p {}",
            self.difference.value,
            self.difference.low,
            self.difference.high,
            p.join("/")
        )
    }
}

impl FamilyReport {
    /// Streamed per-window accuracy of the head's own output (from window 3 of each clip).
    pub fn stream_raw(&self) -> Option<f64> {
        (self.stream.windows > 0)
            .then(|| self.stream.raw_correct as f64 / self.stream.windows as f64)
    }

    /// The same, as the plugin shows it (smoothed, with hysteresis).
    pub fn stream_smoothed(&self) -> Option<f64> {
        (self.stream.windows > 0)
            .then(|| self.stream.smoothed_correct as f64 / self.stream.windows as f64)
    }

    /// This family's nested accuracy minus `other`'s, paired clip by clip. `None` unless both
    /// were measured on the same clips with the same seeds (hence the same outer folds).
    pub fn paired(&self, other: &FamilyReport) -> Option<Paired> {
        let seeds = |r: &FamilyReport| r.repeats.iter().map(|r| r.seed).collect::<Vec<_>>();
        if self.truth != other.truth
            || self.outer_folds != other.outer_folds
            || seeds(self) != seeds(other)
        {
            return None;
        }
        let a = per_clip_correct(&self.truth, &self.repeats);
        let b = per_clip_correct(&other.truth, &other.repeats);
        let d: Vec<f64> = a.iter().zip(&b).map(|(x, y)| x - y).collect();
        let mcnemar = self
            .repeats
            .iter()
            .zip(&other.repeats)
            .map(|(x, y)| {
                let (mut only_x, mut only_y) = (0, 0);
                for (i, &t) in self.truth.iter().enumerate() {
                    match (x.predicted[i] == t, y.predicted[i] == t) {
                        (true, false) => only_x += 1,
                        (false, true) => only_y += 1,
                        _ => {}
                    }
                }
                (only_x, only_y, mcnemar_exact(only_x, only_y))
            })
            .collect();
        Some(Paired {
            difference: bootstrap_mean(&d, BOOTSTRAP_RESAMPLES, 2),
            mcnemar,
        })
    }

    /// The nested figures as JSON, as an exported head's metadata records them.
    pub fn figures_json(&self) -> serde_json::Value {
        let choices: Vec<serde_json::Value> = self
            .repeats
            .iter()
            .map(|r| {
                serde_json::json!({
                    "seed": r.seed,
                    "accuracy": r.accuracy,
                    "macro_f1": r.macro_f1,
                    "chosen_per_outer_fold": r.folds.iter()
                        .map(|f| self.family.candidates[f.chosen].name.clone())
                        .collect::<Vec<_>>(),
                })
            })
            .collect();
        serde_json::json!({
            "method": format!(
                "nested cross-validation: {} stratified outer folds x {} seeds; every choice \
                 made on {} inner folds of the outer-training clips",
                self.outer_folds, self.repeats.len(), self.inner_folds
            ),
            "outer_folds": self.outer_folds,
            "inner_folds": self.inner_folds,
            "seeds": self.repeats.iter().map(|r| r.seed).collect::<Vec<_>>(),
            "clips": self.truth.len(),
            "labels": self.labels,
            "clips_per_label": self.clips_per_label,
            "accuracy": self.accuracy.value,
            "accuracy_95_wilson": [self.accuracy.low, self.accuracy.high],
            "accuracy_95_bootstrap_over_clips": [self.accuracy_bootstrap.low, self.accuracy_bootstrap.high],
            "accuracy_sd_over_seeds": self.accuracy_sd,
            "accuracy_range_over_seeds": [self.accuracy_range.0, self.accuracy_range.1],
            "macro_f1": self.macro_f1,
            "confusion_summed_over_seeds": self.confusion.matrix,
            "stream_window_accuracy_from_window_3": self.stream_raw(),
            "stream_window_accuracy_from_window_3_plugin_smoothed": self.stream_smoothed(),
            "candidates": self.family.candidates.iter().map(|c| c.name.clone()).collect::<Vec<_>>(),
            "times_chosen": self.chosen_counts,
            "mean_inner_accuracy_of_chosen": self.mean_inner_accuracy_of_chosen,
            "repeats": choices,
        })
    }
}

impl fmt::Display for FamilyReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.truth.len();
        let per_label: Vec<String> = self
            .labels
            .iter()
            .zip(&self.clips_per_label)
            .map(|(l, c)| format!("{l} {c}"))
            .collect();
        writeln!(
            f,
            "{}: nested {}-fold (inner {}-fold) x {} seed{} on {n} clips ({})",
            self.family.name,
            self.outer_folds,
            self.inner_folds,
            self.repeats.len(),
            if self.repeats.len() == 1 { "" } else { "s" },
            per_label.join(", ")
        )?;
        writeln!(
            f,
            "  accuracy {} (95% Wilson for {n} clips), bootstrap over clips [{:.3}, {:.3}], \
             sd over seeds {:.3} ({:.3}-{:.3})   macro-F1 {:.3}",
            self.accuracy,
            self.accuracy_bootstrap.low,
            self.accuracy_bootstrap.high,
            self.accuracy_sd,
            self.accuracy_range.0,
            self.accuracy_range.1,
            self.macro_f1
        )?;
        if let (Some(raw), Some(smoothed)) = (self.stream_raw(), self.stream_smoothed()) {
            writeln!(
                f,
                "  streamed back to back, per window from window {} of each clip: {raw:.3} \
                 (head output), {smoothed:.3} (as the plugin shows it, smoothed)",
                STREAM_FROM_WINDOW + 1
            )?;
        }
        if self.family.candidates.len() > 1 {
            let chosen: Vec<String> = self
                .family
                .candidates
                .iter()
                .zip(&self.chosen_counts)
                .map(|(c, k)| format!("{} {k}", c.name))
                .collect();
            writeln!(
                f,
                "  chosen in the {} outer folds: {}",
                self.repeats.len() * self.outer_folds,
                chosen.join(", ")
            )?;
            if let Some(inner) = self.mean_inner_accuracy_of_chosen {
                writeln!(
                    f,
                    "  the chosen candidates' own inner-CV accuracy: {inner:.3} (outer: {:.3})",
                    self.accuracy.value
                )?;
            }
        }
        if let Some(s) = &self.final_selection {
            let scores: Vec<String> = s
                .scores
                .iter()
                .map(|c| format!("{} {:.3}", c.name, c.accuracy))
                .collect();
            writeln!(
                f,
                "  selection on all clips: {} (CV accuracy: {})",
                s.scores[s.chosen].name,
                scores.join(", ")
            )?;
        }
        writeln!(
            f,
            "  training: {:.0} s summed over its runs (wall clock of each run)",
            self.run_seconds
        )?;
        let per = self.repeats.len();
        writeln!(
            f,
            "  confusion (rows true, columns predicted{}):",
            if per > 1 { ", mean count per seed" } else { "" }
        )?;
        for line in self.confusion.table(per).lines() {
            writeln!(f, "    {line}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn score(name: &str, accuracy: f64, log_loss: f64) -> CandidateScore {
        CandidateScore {
            name: name.into(),
            accuracy,
            log_loss,
        }
    }

    #[test]
    fn choice_prefers_accuracy_then_log_loss_then_the_earlier() {
        assert_eq!(
            choose(&[
                score("a", 0.8, 0.5),
                score("b", 0.9, 0.9),
                score("c", 0.85, 0.1)
            ]),
            1
        );
        assert_eq!(
            choose(&[
                score("a", 0.8, 0.5),
                score("b", 0.8, 0.4),
                score("c", 0.8, 0.4)
            ]),
            1
        );
        assert_eq!(choose(&[score("a", 0.8, 0.5), score("b", 0.8, 0.5)]), 0);
    }

    #[test]
    fn inner_splits_stay_inside_the_pool() {
        let truth: Vec<usize> = (0..40).map(|i| i % 4).collect();
        let pool: Vec<usize> = (0..40).filter(|i| i % 5 != 0).collect();
        let splits = inner_splits(&truth, &pool, 4, 9);
        let mut seen = Vec::new();
        for (train, validation) in &splits {
            assert!(train.iter().chain(validation).all(|i| pool.contains(i)));
            assert!(validation.iter().all(|i| !train.contains(i)));
            assert_eq!(train.len() + validation.len(), pool.len());
            seen.extend(validation.iter().copied());
        }
        seen.sort_unstable();
        assert_eq!(seen, pool);
    }
}
