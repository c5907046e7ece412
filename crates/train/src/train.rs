//! Training: a dataset and a [`HeadSpec`] in, a [`TrainedHead`] (normalisation + weights) out.
//!
//! Mini-batches of `batch_size` clips, reshuffled every epoch; Adam(W) with the spec's learning
//! rate schedule; every random draw (initial weights, shuffles, dropout masks, mixup partners and
//! weights, streaming prefixes) comes from a ChaCha8 generator seeded from the spec, so a run is
//! reproducible bit for bit on a given machine.

use std::time::Instant;

use candle_core::{Device, Tensor};
use candle_nn::optim::{AdamW, Optimizer, ParamsAdamW};
use rand::seq::SliceRandom;
use rand::{Rng, RngExt, SeedableRng};
use rand_distr::{Beta, Distribution};
use serde::{Deserialize, Serialize};

use crate::dataset::{Dataset, DatasetError};
use crate::net::{Dropout, HeadWeights, Net, NetVars};
use crate::spec::{ClipDecision, HeadKind, HeadSpec, LrSchedule, WindowLoss};

type ChaCha = rand::rngs::ChaCha8Rng;

/// Why training could not run.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error(transparent)]
    Data(#[from] DatasetError),
    #[error("{0}")]
    Spec(String),
    #[error("training failed: {0}")]
    Compute(#[from] candle_core::Error),
}

/// Per-dimension standardisation of embeddings: `(x - mean) / std`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Normalisation {
    pub mean: Vec<f32>,
    pub std: Vec<f32>,
}

impl Normalisation {
    /// Leaves embeddings as they are.
    pub fn identity(dim: usize) -> Self {
        Self {
            mean: vec![0.0; dim],
            std: vec![1.0; dim],
        }
    }

    /// Mean and standard deviation of every window of `data` (a dimension that never varies
    /// gets a deviation of 1, so it is only centred).
    pub fn fit(data: &Dataset, dim: usize) -> Self {
        let mut sum = vec![0.0f64; dim];
        let mut sum_sq = vec![0.0f64; dim];
        let mut n = 0usize;
        for e in data.items.iter().flat_map(|s| &s.embeddings) {
            for (j, &v) in e.iter().enumerate() {
                sum[j] += v as f64;
                sum_sq[j] += (v as f64) * (v as f64);
            }
            n += 1;
        }
        let n = n.max(1) as f64;
        let mean: Vec<f64> = sum.iter().map(|s| s / n).collect();
        let std = sum_sq
            .iter()
            .zip(&mean)
            .map(|(sq, m)| {
                let var = (sq / n - m * m).max(0.0);
                if var.sqrt() < 1e-6 {
                    1.0
                } else {
                    var.sqrt() as f32
                }
            })
            .collect();
        Self {
            mean: mean.into_iter().map(|m| m as f32).collect(),
            std,
        }
    }

    /// Appends the normalised `embedding` to `out` (the same f32 arithmetic as the exported graph:
    /// subtract, then divide).
    pub fn apply_into(&self, embedding: &[f32], out: &mut Vec<f32>) {
        out.extend(
            embedding
                .iter()
                .zip(&self.mean)
                .zip(&self.std)
                .map(|((x, m), s)| (x - m) / s),
        );
    }
}

/// What happened while training a head.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainingSummary {
    pub clips: usize,
    pub clips_per_label: Vec<usize>,
    /// [`Dataset::sha256`] of the training data.
    pub data_sha256: String,
    /// Seeds of the ensemble members, derived from the spec's seed.
    pub member_seeds: Vec<u64>,
    pub seconds: f64,
    /// Accuracy on the training clips themselves (not a measure of the head: see cross-validation).
    pub training_accuracy: f64,
    /// Labels left out of training, and why.
    pub warnings: Vec<String>,
}

/// A trained head: the spec it was trained with, its labels, input normalisation and weights
/// (an ensemble is already merged into one network).
#[derive(Clone, Debug, PartialEq)]
pub struct TrainedHead {
    pub spec: HeadSpec,
    pub labels: Vec<String>,
    pub embedding_dim: usize,
    pub normalisation: Normalisation,
    pub weights: HeadWeights,
    pub summary: TrainingSummary,
}

/// One step of training, for progress bars.
#[derive(Clone, Debug)]
pub struct Progress<'a> {
    pub head: &'a str,
    /// Which training run (cross-validation: repeat × fold; 0 for a final head) of how many.
    pub run: usize,
    pub runs: usize,
    /// Epochs completed in this run.
    pub epoch: usize,
    pub epochs: usize,
    /// Validation accuracy after this epoch, when there is a validation set.
    pub validation_accuracy: Option<f64>,
}

/// A seed for sub-task `index` of a run seeded with `seed` (SplitMix64 finaliser of both).
pub fn derive_seed(seed: u64, index: u64) -> u64 {
    let mut z = seed ^ index.wrapping_add(1).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Trains `spec` on all of `data`. Labels without clips are left out (with a warning in the
/// summary); fewer than two usable labels is an error.
pub fn train(
    data: &Dataset,
    spec: &HeadSpec,
    on_progress: &mut dyn FnMut(&Progress),
) -> Result<TrainedHead, TrainError> {
    spec.check().map_err(TrainError::Spec)?;
    data.check()?;
    let (data, warnings) = data.without_small_labels(1)?;
    let dim = data.check()?;
    let start = Instant::now();
    let normalisation = if spec.normalise {
        Normalisation::fit(&data, dim)
    } else {
        Normalisation::identity(dim)
    };
    let prepared = Prepared::new(&data, &normalisation);
    let member_seeds: Vec<u64> = (0..spec.ensemble as u64)
        .map(|m| derive_seed(spec.seed, m))
        .collect();
    let fit = fit(&prepared, spec, &member_seeds, None, &mut |epoch, _| {
        on_progress(&Progress {
            head: &spec.name,
            run: 0,
            runs: 1,
            epoch,
            epochs: spec.epochs,
            validation_accuracy: None,
        })
    })?;
    let seconds = start.elapsed().as_secs_f64();
    let probabilities = clip_probabilities(&fit.weights, &prepared, spec.clip_decision())?;
    let correct = probabilities
        .iter()
        .zip(&prepared.clips)
        .filter(|(p, c)| argmax(p) == c.label)
        .count();
    Ok(TrainedHead {
        spec: spec.clone(),
        labels: data.labels.clone(),
        embedding_dim: dim,
        normalisation,
        weights: fit.weights,
        summary: TrainingSummary {
            clips: data.items.len(),
            clips_per_label: data.counts(),
            data_sha256: data.sha256(),
            member_seeds,
            seconds,
            training_accuracy: correct as f64 / prepared.clips.len().max(1) as f64,
            warnings,
        },
    })
}

impl TrainedHead {
    /// Per-window probabilities for one stream of embeddings, the state starting at zero and
    /// carried across every window (computed with candle: the reference the exported graph is
    /// tested against). A logistic head treats each window on its own.
    pub fn window_probabilities(
        &self,
        embeddings: &[Vec<f32>],
    ) -> Result<Vec<Vec<f32>>, TrainError> {
        let mut x = Vec::with_capacity(embeddings.len() * self.embedding_dim);
        for e in embeddings {
            if e.len() != self.embedding_dim {
                return Err(TrainError::Spec(format!(
                    "embedding has {} values, the head expects {}",
                    e.len(),
                    self.embedding_dim
                )));
            }
            self.normalisation.apply_into(e, &mut x);
        }
        let clip = PreparedClip {
            x,
            len: embeddings.len(),
            label: 0,
        };
        Ok(window_probabilities(&self.weights, &[&clip], self.embedding_dim)?.remove(0))
    }

    /// Clip-level probabilities of every clip of `data` (each from a zero state), decided as the
    /// head's spec says.
    pub fn clip_probabilities(&self, data: &Dataset) -> Result<Vec<Vec<f32>>, TrainError> {
        if let Some(dim) = data.embedding_dim() {
            if dim != self.embedding_dim {
                return Err(TrainError::Spec(format!(
                    "embeddings have {dim} values, the head expects {}",
                    self.embedding_dim
                )));
            }
        }
        let prepared = Prepared::new(data, &self.normalisation);
        clip_probabilities(&self.weights, &prepared, self.spec.clip_decision())
    }
}

/// Index of the largest value (the first, on ties).
pub fn argmax(values: &[f32]) -> usize {
    let mut best = 0;
    for (i, v) in values.iter().enumerate() {
        if *v > values[best] {
            best = i;
        }
    }
    best
}

/// Clips with their normalised windows, flattened, ready to batch.
pub(crate) struct Prepared {
    pub dim: usize,
    pub labels: usize,
    pub clips: Vec<PreparedClip>,
}

pub(crate) struct PreparedClip {
    /// [len, dim], normalised.
    pub x: Vec<f32>,
    pub len: usize,
    pub label: usize,
}

impl Prepared {
    pub fn new(data: &Dataset, normalisation: &Normalisation) -> Self {
        let dim = normalisation.mean.len();
        let clips = data
            .items
            .iter()
            .map(|s| {
                let mut x = Vec::with_capacity(s.embeddings.len() * dim);
                for e in &s.embeddings {
                    normalisation.apply_into(e, &mut x);
                }
                PreparedClip {
                    x,
                    len: s.embeddings.len(),
                    label: s.label,
                }
            })
            .collect();
        Self {
            dim,
            labels: data.labels.len(),
            clips,
        }
    }
}

pub(crate) struct Fit {
    pub weights: HeadWeights,
    /// Validation accuracy after each epoch (empty without a validation set).
    pub curve: Vec<f64>,
}

/// Trains one member per seed in lockstep (so the merged ensemble can be validated after every
/// epoch) and merges them.
pub(crate) fn fit(
    train: &Prepared,
    spec: &HeadSpec,
    member_seeds: &[u64],
    validation: Option<&Prepared>,
    on_epoch: &mut dyn FnMut(usize, Option<f64>),
) -> Result<Fit, TrainError> {
    let device = Device::Cpu;
    let (layers, hidden) = match spec.kind {
        HeadKind::Logistic => (0, 0),
        HeadKind::Lstm { layers, hidden } => (layers, hidden),
    };
    let mut members = Vec::new();
    for &seed in member_seeds {
        let mut rng = ChaCha::seed_from_u64(seed);
        let weights = HeadWeights::init(&mut rng, train.dim, train.labels, layers, hidden);
        let vars = NetVars::new(&weights, &device)?;
        let params = ParamsAdamW {
            lr: spec.learning_rate,
            weight_decay: spec.weight_decay,
            ..Default::default()
        };
        let optimizer = AdamW::new(vars.vars.clone(), params)?;
        members.push((rng, vars, optimizer));
    }
    let beta = if spec.mixup_alpha > 0.0 {
        Some(
            Beta::new(spec.mixup_alpha, spec.mixup_alpha)
                .map_err(|e| TrainError::Spec(format!("mixup: {e}")))?,
        )
    } else {
        None
    };
    let mut curve = Vec::new();
    let mut order: Vec<usize> = (0..train.clips.len()).collect();
    for epoch in 0..spec.epochs {
        let lr = match spec.lr_schedule {
            LrSchedule::Constant => spec.learning_rate,
            LrSchedule::Cosine => {
                spec.learning_rate
                    * 0.5
                    * (1.0 + (std::f64::consts::PI * epoch as f64 / spec.epochs as f64).cos())
            }
        };
        for (rng, vars, optimizer) in &mut members {
            optimizer.set_learning_rate(lr);
            order.shuffle(rng);
            for chunk in order.chunks(spec.batch_size) {
                let batch = Batch::new(train, chunk, spec, beta.as_ref(), rng, &device)?;
                let net = vars.net()?;
                let mut dropout = Dropout {
                    rng,
                    input: spec.input_dropout,
                    hidden: spec.dropout,
                };
                let logits = net.forward(&batch.x, Some(&mut dropout))?;
                let mut loss = batch.loss(&logits, spec.loss)?;
                if spec.l2 > 0.0 {
                    for w in vars.weight_vars() {
                        loss =
                            (loss + w.as_tensor().sqr()?.sum_all()?.affine(spec.l2 / 2.0, 0.0)?)?;
                    }
                }
                optimizer.backward_step(&loss)?;
            }
        }
        let accuracy = match validation {
            Some(validation) => {
                let weights = merged(&members)?;
                let probabilities = clip_probabilities(&weights, validation, spec.clip_decision())?;
                Some(accuracy(&probabilities, validation))
            }
            None => None,
        };
        curve.extend(accuracy);
        on_epoch(epoch + 1, accuracy);
    }
    Ok(Fit {
        weights: merged(&members)?,
        curve,
    })
}

fn merged(members: &[(ChaCha, NetVars, AdamW)]) -> Result<HeadWeights, TrainError> {
    let weights = members
        .iter()
        .map(|(_, vars, _)| vars.to_weights())
        .collect::<Result<Vec<_>, _>>()?;
    Ok(HeadWeights::merge(&weights))
}

pub(crate) fn accuracy(probabilities: &[Vec<f32>], data: &Prepared) -> f64 {
    let correct = probabilities
        .iter()
        .zip(&data.clips)
        .filter(|(p, c)| argmax(p) == c.label)
        .count();
    correct as f64 / data.clips.len().max(1) as f64
}

/// Softmax of each row of `logits` [T, K].
fn softmax_rows(logits: Vec<Vec<f32>>) -> Vec<Vec<f32>> {
    logits
        .into_iter()
        .map(|mut row| {
            let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            let mut sum = 0.0;
            for v in &mut row {
                *v = (*v - max).exp();
                sum += *v;
            }
            row.iter_mut().for_each(|v| *v /= sum);
            row
        })
        .collect()
}

/// Per-window probabilities of each clip, each from a zero state, in batches.
pub(crate) fn window_probabilities(
    weights: &HeadWeights,
    clips: &[&PreparedClip],
    dim: usize,
) -> Result<Vec<Vec<Vec<f32>>>, TrainError> {
    let device = Device::Cpu;
    let net = Net::new(weights, &device)?;
    let mut out = Vec::with_capacity(clips.len());
    for chunk in clips.chunks(256) {
        let steps = chunk.iter().map(|c| c.len).max().unwrap_or(0);
        let mut x = vec![0.0f32; chunk.len() * steps * dim];
        for (b, clip) in chunk.iter().enumerate() {
            x[b * steps * dim..b * steps * dim + clip.len * dim].copy_from_slice(&clip.x);
        }
        let x = Tensor::from_vec(x, (chunk.len(), steps, dim), &device)?;
        let logits = net.forward::<ChaCha>(&x, None)?.to_vec3::<f32>()?;
        for (clip, mut rows) in chunk.iter().zip(logits) {
            rows.truncate(clip.len);
            out.push(softmax_rows(rows));
        }
    }
    Ok(out)
}

/// A clip's probabilities from its windows' probabilities.
pub fn decide(windows: &[Vec<f32>], decision: ClipDecision) -> Vec<f32> {
    let k = windows.first().map_or(0, Vec::len);
    let n = windows.len().max(1) as f32;
    match decision {
        ClipDecision::LastWindow => windows.last().cloned().unwrap_or_default(),
        ClipDecision::MeanProbabilities => (0..k)
            .map(|j| windows.iter().map(|w| w[j]).sum::<f32>() / n)
            .collect(),
        ClipDecision::MeanLogProbabilities => {
            let mean_log: Vec<Vec<f32>> = vec![(0..k)
                .map(|j| windows.iter().map(|w| w[j].max(1e-30).ln()).sum::<f32>() / n)
                .collect()];
            softmax_rows(mean_log).remove(0)
        }
    }
}

pub(crate) fn clip_probabilities(
    weights: &HeadWeights,
    data: &Prepared,
    decision: ClipDecision,
) -> Result<Vec<Vec<f32>>, TrainError> {
    let clips: Vec<&PreparedClip> = data.clips.iter().collect();
    Ok(window_probabilities(weights, &clips, data.dim)?
        .iter()
        .map(|w| decide(w, decision))
        .collect())
}

/// A clip's windows, or a random contiguous stretch of `crop` of them when it is longer (and
/// `crop` is not 0). Draws from `rng` only when it cuts.
fn crop<'a>(clip: &'a PreparedClip, crop: usize, dim: usize, rng: &mut impl Rng) -> &'a [f32] {
    if crop == 0 || clip.len <= crop {
        return &clip.x;
    }
    let start = rng.random_range(0..=clip.len - crop);
    &clip.x[start * dim..(start + crop) * dim]
}

/// One mini-batch: inputs, soft targets and loss weights.
struct Batch {
    /// [B, T, D]
    x: Tensor,
    /// [B, T, K]: each clip's (possibly mixed) label at every window.
    targets: Tensor,
    /// [B, T]: how much each window's output counts (sums to 1 per clip).
    weights: Tensor,
    /// [B, K]
    clip_targets: Tensor,
    batch: usize,
}

impl Batch {
    fn new(
        data: &Prepared,
        members: &[usize],
        spec: &HeadSpec,
        beta: Option<&Beta<f32>>,
        rng: &mut impl Rng,
        device: &Device,
    ) -> Result<Self, TrainError> {
        let (dim, k) = (data.dim, data.labels);
        let stateful = matches!(spec.kind, HeadKind::Lstm { .. });
        let mut partners: Vec<usize> = members.to_vec();
        if beta.is_some() {
            partners.shuffle(rng);
        }
        // Each clip's stream: prefix windows (not scored), then the clip's (mixed) windows.
        let mut streams: Vec<(Vec<f32>, usize, Vec<f32>)> = Vec::with_capacity(members.len());
        for (b, &i) in members.iter().enumerate() {
            let clip = &data.clips[i];
            let x = crop(clip, spec.crop_windows, dim, rng);
            let mut target = vec![0.0f32; k];
            let windows = match beta {
                Some(beta) => {
                    let other = &data.clips[partners[b]];
                    let other_x = crop(other, spec.crop_windows, dim, rng);
                    let lambda = beta.sample(rng);
                    let len = x.len().min(other_x.len());
                    target[clip.label] += lambda;
                    target[other.label] += 1.0 - lambda;
                    x[..len]
                        .iter()
                        .zip(&other_x[..len])
                        .map(|(a, o)| lambda * a + (1.0 - lambda) * o)
                        .collect()
                }
                None => {
                    target[clip.label] = 1.0;
                    x.to_vec()
                }
            };
            let mut stream = Vec::new();
            if stateful && spec.stream_prefix > 0 {
                let p = rng.random_range(0..=spec.stream_prefix);
                let source = &data.clips[rng.random_range(0..data.clips.len())];
                let p = p.min(source.len);
                stream.extend_from_slice(&source.x[(source.len - p) * dim..]);
            }
            let prefix = stream.len() / dim;
            stream.extend_from_slice(&windows);
            streams.push((stream, prefix, target));
        }
        let steps = streams
            .iter()
            .map(|(s, _, _)| s.len() / dim)
            .max()
            .unwrap_or(1);
        let batch = members.len();
        let mut x = vec![0.0f32; batch * steps * dim];
        let mut targets = vec![0.0f32; batch * steps * k];
        let mut weights = vec![0.0f32; batch * steps];
        let mut clip_targets = vec![0.0f32; batch * k];
        for (b, (stream, prefix, target)) in streams.iter().enumerate() {
            let total = stream.len() / dim;
            x[b * steps * dim..b * steps * dim + stream.len()].copy_from_slice(stream);
            for t in 0..steps {
                targets[(b * steps + t) * k..(b * steps + t + 1) * k].copy_from_slice(target);
            }
            clip_targets[b * k..(b + 1) * k].copy_from_slice(target);
            let len = total - prefix;
            let scored: Vec<usize> = match spec.loss {
                WindowLoss::LastWindow => vec![total - 1],
                WindowLoss::ClipMean => (*prefix..total).collect(),
                WindowLoss::EveryWindow => {
                    let from = if stateful {
                        spec.loss_from_window.min(len - 1)
                    } else {
                        0
                    };
                    (prefix + from..total).collect()
                }
            };
            let w = 1.0 / scored.len() as f32;
            for t in scored {
                weights[b * steps + t] = w;
            }
        }
        Ok(Self {
            x: Tensor::from_vec(x, (batch, steps, dim), device)?,
            targets: Tensor::from_vec(targets, (batch, steps, k), device)?,
            weights: Tensor::from_vec(weights, (batch, steps), device)?,
            clip_targets: Tensor::from_vec(clip_targets, (batch, k), device)?,
            batch,
        })
    }

    /// Mean cross-entropy over the batch's clips.
    fn loss(&self, logits: &Tensor, loss: WindowLoss) -> candle_core::Result<Tensor> {
        let total = match loss {
            WindowLoss::ClipMean => {
                let pooled = logits.broadcast_mul(&self.weights.unsqueeze(2)?)?.sum(1)?;
                let log_p = candle_nn::ops::log_softmax(&pooled, 1)?;
                (log_p * &self.clip_targets)?.sum_all()?
            }
            WindowLoss::EveryWindow | WindowLoss::LastWindow => {
                let log_p = candle_nn::ops::log_softmax(logits, 2)?;
                let per_window = (log_p * &self.targets)?.sum(2)?;
                (per_window * &self.weights)?.sum_all()?
            }
        };
        total.affine(-1.0 / self.batch as f64, 0.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crop_cuts_long_clips_to_random_stretches_and_leaves_short_ones() {
        let dim = 2;
        let clip = PreparedClip {
            x: (0..20).map(|v| v as f32).collect(),
            len: 10,
            label: 0,
        };
        let mut rng = ChaCha::seed_from_u64(5);
        assert_eq!(crop(&clip, 0, dim, &mut rng), &clip.x[..]);
        assert_eq!(crop(&clip, 10, dim, &mut rng), &clip.x[..]);
        assert_eq!(crop(&clip, 12, dim, &mut rng), &clip.x[..]);
        let mut starts = std::collections::BTreeSet::new();
        for _ in 0..200 {
            let cut = crop(&clip, 4, dim, &mut rng);
            assert_eq!(cut.len(), 4 * dim);
            // Whole windows, contiguous, in order.
            let start = cut[0] as usize;
            assert_eq!(start % dim, 0);
            assert_eq!(cut, &clip.x[start..start + 4 * dim]);
            starts.insert(start / dim);
        }
        assert_eq!(
            starts.into_iter().collect::<Vec<_>>(),
            vec![0, 1, 2, 3, 4, 5, 6]
        );
    }
}
