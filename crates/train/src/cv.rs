//! Stratified k-fold cross-validation, repeated with several seeds: a dataset and a
//! [`HeadSpec`] in; a [`CvReport`] out (validation accuracy per epoch for every fold, accuracy
//! with a 95% interval, macro-F1, the confusion matrix, streamed per-window accuracy, time).
//!
//! Every clip is validated once per repeat by a head that never trained on it. The folds depend
//! only on the repeat's seed, so different heads cross-validated with the same seeds are
//! measured on the very same splits and can be compared clip by clip ([`CvReport::compare`]).

use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::Instant;

use rand::seq::SliceRandom;
use rand::SeedableRng;
use serde::{Deserialize, Serialize};

use crate::dataset::{stratified_folds, Dataset};
use crate::metrics::{mean_sd, wilson, Confusion, Interval};
use crate::spec::HeadSpec;
use crate::train::{
    argmax, clip_probabilities, derive_seed, fit, window_probabilities, Normalisation, Prepared,
    PreparedClip, Progress, TrainError,
};

/// Windows of a clip, counted from 0, before which streamed accuracy is not counted: the state
/// has heard two windows of the new clip by the third.
pub const STREAM_FROM_WINDOW: usize = 2;

/// One repeat of k-fold cross-validation: every clip predicted once, out of fold.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Repeat {
    pub seed: u64,
    /// Predicted label of every clip (dataset order).
    pub predicted: Vec<usize>,
    pub accuracy: f64,
    pub macro_f1: f64,
    pub confusion: Confusion,
    /// The validation clips of each fold played back to back as one stream (an LSTM's state
    /// carried across clip boundaries): correct windows and windows counted (from the third
    /// window of each clip on).
    pub stream_windows: Option<(usize, usize)>,
}

/// Cross-validated figures of one head.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CvReport {
    pub spec: HeadSpec,
    pub labels: Vec<String>,
    pub clips_per_label: Vec<usize>,
    /// True label of every clip (dataset order).
    pub truth: Vec<usize>,
    pub k: usize,
    pub repeats: Vec<Repeat>,
    /// Validation accuracy after each epoch, one curve per (repeat, fold).
    pub curves: Vec<Vec<f64>>,
    /// Mean accuracy over the repeats, with the 95% Wilson interval for that many clips.
    pub accuracy: Interval,
    /// Standard deviation of the accuracy over the repeats (training and split variance).
    pub accuracy_sd: f64,
    pub macro_f1: f64,
    /// Counts summed over the repeats.
    pub confusion: Confusion,
    /// Streamed per-window accuracy from the third window of each clip on.
    pub stream_accuracy: Option<f64>,
    /// Mean seconds to train one fold's head.
    pub seconds_per_fold: f64,
    /// Wall-clock seconds of the whole cross-validation.
    pub seconds: f64,
    /// Labels left out, folds lowered.
    pub warnings: Vec<String>,
}

struct Job {
    repeat: usize,
    fold: usize,
    validation: Vec<usize>,
}

struct JobResult {
    repeat: usize,
    fold: usize,
    validation: Vec<usize>,
    predicted: Vec<usize>,
    curve: Vec<f64>,
    stream_windows: Option<(usize, usize)>,
    seconds: f64,
}

enum Message {
    Epoch {
        run: usize,
        epoch: usize,
        accuracy: Option<f64>,
    },
    Done(Box<Result<JobResult, TrainError>>),
}

/// Cross-validates `spec` on `data`: stratified `k`-fold, repeated once per seed in `seeds`
/// (each seed draws its own folds). Labels with fewer than two clips are left out and `k` is
/// lowered to the smallest label's count, with warnings in the report (see
/// [`Dataset::for_cross_validation`]). Folds are trained in parallel on the available cores;
/// results do not depend on the number of cores.
pub fn cross_validate(
    data: &Dataset,
    spec: &HeadSpec,
    k: usize,
    seeds: &[u64],
    on_progress: &mut dyn FnMut(&Progress),
) -> Result<CvReport, TrainError> {
    spec.check().map_err(TrainError::Spec)?;
    if seeds.is_empty() {
        return Err(TrainError::Spec(
            "cross-validation needs at least one seed".into(),
        ));
    }
    let start = Instant::now();
    let (data, k, warnings) = data.for_cross_validation(k)?;
    let truth: Vec<usize> = data.items.iter().map(|s| s.label).collect();
    let mut jobs = Vec::new();
    for (repeat, &seed) in seeds.iter().enumerate() {
        for (fold, validation) in stratified_folds(&truth, k, seed).into_iter().enumerate() {
            jobs.push(Job {
                repeat,
                fold,
                validation,
            });
        }
    }
    let runs = jobs.len();
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(runs)
        .max(1);
    let next = AtomicUsize::new(0);
    let (sender, receiver) = mpsc::channel::<Message>();
    let mut results: Vec<Option<JobResult>> = (0..runs).map(|_| None).collect();
    let mut failure = None;
    std::thread::scope(|scope| {
        for _ in 0..threads {
            let sender = sender.clone();
            let (jobs, next, data, seeds) = (&jobs, &next, &data, seeds);
            scope.spawn(move || loop {
                let run = next.fetch_add(1, Ordering::Relaxed);
                let Some(job) = jobs.get(run) else { break };
                let result = run_fold(
                    data,
                    spec,
                    seeds[job.repeat],
                    job,
                    &mut |epoch, accuracy| {
                        let _ = sender.send(Message::Epoch {
                            run,
                            epoch,
                            accuracy,
                        });
                    },
                );
                let stop = result.is_err();
                let _ = sender.send(Message::Done(Box::new(result)));
                if stop {
                    next.store(jobs.len(), Ordering::Relaxed);
                }
            });
        }
        drop(sender);
        for message in receiver {
            match message {
                Message::Epoch {
                    run,
                    epoch,
                    accuracy,
                } => on_progress(&Progress {
                    head: &spec.name,
                    run,
                    runs,
                    epoch,
                    epochs: spec.epochs,
                    validation_accuracy: accuracy,
                }),
                Message::Done(result) => match *result {
                    Ok(r) => {
                        let run = r.repeat * k + r.fold;
                        results[run] = Some(r);
                    }
                    Err(e) => failure = Some(e),
                },
            }
        }
    });
    if let Some(e) = failure {
        return Err(e);
    }
    let results: Vec<JobResult> = results.into_iter().flatten().collect();
    Ok(assemble(
        spec,
        &data,
        truth,
        k,
        seeds,
        results,
        start.elapsed().as_secs_f64(),
        warnings,
    ))
}

fn run_fold(
    data: &Dataset,
    spec: &HeadSpec,
    repeat_seed: u64,
    job: &Job,
    on_epoch: &mut dyn FnMut(usize, Option<f64>),
) -> Result<JobResult, TrainError> {
    let start = Instant::now();
    let training: Vec<usize> = (0..data.items.len())
        .filter(|i| job.validation.binary_search(i).is_err())
        .collect();
    let train_data = data.subset(&training);
    let dim = data.check()?;
    let normalisation = if spec.normalise {
        Normalisation::fit(&train_data, dim)
    } else {
        Normalisation::identity(dim)
    };
    let train_prepared = Prepared::new(&train_data, &normalisation);
    let validation_prepared = Prepared::new(&data.subset(&job.validation), &normalisation);
    let run_seed = derive_seed(derive_seed(spec.seed, repeat_seed), job.fold as u64);
    let member_seeds: Vec<u64> = (0..spec.ensemble as u64)
        .map(|m| derive_seed(run_seed, m))
        .collect();
    let fitted = fit(
        &train_prepared,
        spec,
        &member_seeds,
        Some(&validation_prepared),
        on_epoch,
    )?;
    let seconds = start.elapsed().as_secs_f64();
    let probabilities =
        clip_probabilities(&fitted.weights, &validation_prepared, spec.clip_decision())?;
    let predicted = probabilities.iter().map(|p| argmax(p)).collect();
    let mut rng = rand::rngs::ChaCha8Rng::seed_from_u64(derive_seed(run_seed, u64::MAX));
    let stream_windows = Some(stream_accuracy(
        &fitted.weights,
        &validation_prepared,
        &mut rng,
    )?);
    Ok(JobResult {
        repeat: job.repeat,
        fold: job.fold,
        validation: job.validation.clone(),
        predicted,
        curve: fitted.curve,
        stream_windows,
        seconds,
    })
}

/// Plays the clips back to back in a shuffled order as one stream (state carried across clip
/// boundaries) and counts the windows, from each clip's third on, whose most probable label is
/// the clip's: (correct, counted).
pub(crate) fn stream_accuracy(
    weights: &crate::net::HeadWeights,
    clips: &Prepared,
    rng: &mut impl rand::Rng,
) -> Result<(usize, usize), TrainError> {
    let (windows, truth) = stream_windows(weights, clips, rng)?;
    let mut counted = 0;
    let mut correct = 0;
    for (p, &(label, w)) in windows.iter().zip(&truth) {
        if w >= STREAM_FROM_WINDOW {
            counted += 1;
            correct += usize::from(argmax(p) == label);
        }
    }
    Ok((correct, counted))
}

/// The clips back to back in a shuffled order as one stream, state carried across clip
/// boundaries: the probabilities after every window, and each window's (clip label, index of
/// the window in its clip).
#[allow(clippy::type_complexity)]
pub(crate) fn stream_windows(
    weights: &crate::net::HeadWeights,
    clips: &Prepared,
    rng: &mut impl rand::Rng,
) -> Result<(Vec<Vec<f32>>, Vec<(usize, usize)>), TrainError> {
    let mut order: Vec<usize> = (0..clips.clips.len()).collect();
    order.shuffle(rng);
    let mut stream = PreparedClip {
        x: Vec::new(),
        len: 0,
        label: 0,
    };
    let mut truth = Vec::new();
    for &i in &order {
        let clip = &clips.clips[i];
        stream.x.extend_from_slice(&clip.x);
        stream.len += clip.len;
        truth.extend((0..clip.len).map(|w| (clip.label, w)));
    }
    let windows = window_probabilities(weights, &[&stream], clips.dim)?.remove(0);
    Ok((windows, truth))
}

#[allow(clippy::too_many_arguments)]
fn assemble(
    spec: &HeadSpec,
    data: &Dataset,
    truth: Vec<usize>,
    k: usize,
    seeds: &[u64],
    results: Vec<JobResult>,
    seconds: f64,
    warnings: Vec<String>,
) -> CvReport {
    let mut repeats: Vec<Repeat> = seeds
        .iter()
        .map(|&seed| Repeat {
            seed,
            predicted: vec![0; truth.len()],
            accuracy: 0.0,
            macro_f1: 0.0,
            confusion: Confusion::new(&data.labels),
            stream_windows: None,
        })
        .collect();
    let mut curves = Vec::new();
    let mut fold_seconds = Vec::new();
    for r in results {
        let repeat = &mut repeats[r.repeat];
        for (&i, &p) in r.validation.iter().zip(&r.predicted) {
            repeat.predicted[i] = p;
        }
        if let Some((c, n)) = r.stream_windows {
            let (c0, n0) = repeat.stream_windows.unwrap_or((0, 0));
            repeat.stream_windows = Some((c0 + c, n0 + n));
        }
        curves.push(r.curve);
        fold_seconds.push(r.seconds);
    }
    let mut confusion = Confusion::new(&data.labels);
    for repeat in &mut repeats {
        for (&t, &p) in truth.iter().zip(&repeat.predicted) {
            repeat.confusion.add(t, p);
        }
        repeat.accuracy = repeat.confusion.accuracy();
        repeat.macro_f1 = repeat.confusion.macro_f1();
        confusion.merge(&repeat.confusion);
    }
    let (accuracy, accuracy_sd) = mean_sd(&repeats.iter().map(|r| r.accuracy).collect::<Vec<_>>());
    let (macro_f1, _) = mean_sd(&repeats.iter().map(|r| r.macro_f1).collect::<Vec<_>>());
    let stream_accuracy = {
        let (c, n) = repeats
            .iter()
            .filter_map(|r| r.stream_windows)
            .fold((0, 0), |(c, n), (c1, n1)| (c + c1, n + n1));
        (n > 0).then(|| c as f64 / n as f64)
    };
    CvReport {
        spec: spec.clone(),
        labels: data.labels.clone(),
        clips_per_label: data.counts(),
        truth: truth.clone(),
        k,
        accuracy: wilson(accuracy, truth.len()),
        accuracy_sd,
        macro_f1,
        confusion,
        stream_accuracy,
        repeats,
        curves,
        seconds_per_fold: mean_sd(&fold_seconds).0,
        seconds,
        warnings,
    }
}

/// A paired difference in accuracy between two heads measured on the same clips and folds.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Difference {
    pub mean: f64,
    pub low: f64,
    pub high: f64,
}

impl fmt::Display for Difference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:+.3} [{:+.3}, {:+.3}]", self.mean, self.low, self.high)
    }
}

impl CvReport {
    /// The cross-validated figures as JSON, as an exported head's metadata records them
    /// (`training.figures.cross_validation`).
    pub fn figures_json(&self) -> serde_json::Value {
        serde_json::json!({
            "folds": self.k,
            "seeds": self.repeats.iter().map(|r| r.seed).collect::<Vec<_>>(),
            "clips": self.truth.len(),
            "labels": self.labels,
            "clips_per_label": self.clips_per_label,
            "accuracy": self.accuracy.value,
            "accuracy_95_interval": [self.accuracy.low, self.accuracy.high],
            "accuracy_sd_over_seeds": self.accuracy_sd,
            "macro_f1": self.macro_f1,
            "stream_window_accuracy_from_window_3": self.stream_accuracy,
            "confusion_summed_over_seeds": self.confusion.matrix,
            "warnings": self.warnings,
        })
    }

    /// Per-window validation accuracy curve: mean and standard deviation over the (repeat,
    /// fold) runs, per epoch.
    pub fn mean_curve(&self) -> Vec<(f64, f64)> {
        let epochs = self.curves.iter().map(Vec::len).min().unwrap_or(0);
        (0..epochs)
            .map(|e| mean_sd(&self.curves.iter().map(|c| c[e]).collect::<Vec<_>>()))
            .collect()
    }

    /// This head's accuracy minus `other`'s, paired clip by clip: each clip's correctness is
    /// averaged over the repeats, and the 95% interval is the normal one for the mean of the
    /// per-clip differences. `None` when the two were not measured on the same clips and seeds.
    pub fn compare(&self, other: &CvReport) -> Option<Difference> {
        let seeds = |r: &CvReport| r.repeats.iter().map(|r| r.seed).collect::<Vec<_>>();
        if self.truth != other.truth || self.k != other.k || seeds(self) != seeds(other) {
            return None;
        }
        let score = |r: &CvReport, i: usize| {
            r.repeats
                .iter()
                .filter(|rep| rep.predicted[i] == r.truth[i])
                .count() as f64
                / r.repeats.len() as f64
        };
        let d: Vec<f64> = (0..self.truth.len())
            .map(|i| score(self, i) - score(other, i))
            .collect();
        let (mean, sd) = mean_sd(&d);
        let half = 1.959_964 * sd / (d.len() as f64).sqrt();
        Some(Difference {
            mean,
            low: mean - half,
            high: mean + half,
        })
    }
}

impl fmt::Display for CvReport {
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
            "{}: {}-fold cross-validation x {} seed{} on {n} clips ({})",
            self.spec.name,
            self.k,
            self.repeats.len(),
            if self.repeats.len() == 1 { "" } else { "s" },
            per_label.join(", ")
        )?;
        for w in &self.warnings {
            writeln!(f, "  warning: {w}")?;
        }
        writeln!(
            f,
            "  accuracy {} (95% interval for {n} clips; sd over seeds {:.3})   macro-F1 {:.3}",
            self.accuracy, self.accuracy_sd, self.macro_f1
        )?;
        if let Some(s) = self.stream_accuracy {
            writeln!(
                f,
                "  streamed back to back: per-window accuracy from window {} of each clip {s:.3} \
                 (clip-level {:.3}, difference {:+.3})",
                STREAM_FROM_WINDOW + 1,
                self.accuracy.value,
                s - self.accuracy.value
            )?;
        }
        writeln!(
            f,
            "  training time {:.1} s per fold ({} runs, {:.0} s wall clock)",
            self.seconds_per_fold,
            self.curves.len(),
            self.seconds
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
