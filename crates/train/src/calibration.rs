//! Calibration fits: windows of a readout's inputs with their clip's label in; the few constants
//! of a calibrated readout out (logistic-regression axes, per-mood offsets and a temperature), and
//! the figures that say how well they transfer (rank correlation, AUC).
//!
//! Everything here is small and exact: a binary logistic regression with a handful of inputs is
//! fitted by Newton's method (the optimum, not an approximation, and the same numbers on every
//! run), offsets and temperature by gradient steps on their own few parameters (and, to compare,
//! the offsets moved by a grid search for the clips' agreement). Clip labels are
//! shared by the clip's windows; each window is weighted so that every clip counts once (and each
//! class as much as the others, when asked), so long clips do not outvote short ones.

/// One window: its inputs, its clip's target (1 = the positive side; soft targets in 0–1 are
/// allowed) and its weight.
#[derive(Clone, Debug)]
pub struct Sample {
    pub inputs: Vec<f64>,
    pub target: f64,
    pub weight: f64,
}

/// A fitted logistic regression over the raw inputs (standardisation folded in).
#[derive(Clone, Debug, PartialEq)]
pub struct LogisticAxis {
    pub weights: Vec<f64>,
    pub bias: f64,
}

impl LogisticAxis {
    pub fn logit(&self, inputs: &[f64]) -> f64 {
        self.bias
            + self
                .weights
                .iter()
                .zip(inputs)
                .map(|(w, x)| w * x)
                .sum::<f64>()
    }

    pub fn probability(&self, inputs: &[f64]) -> f64 {
        sigmoid(self.logit(inputs))
    }
}

pub fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

/// Fits `target ~ sigmoid(w · x + b)` by weighted maximum likelihood with an L2 penalty of
/// `l2 × Σ w²` on the standardised inputs (inputs with `use_input[i] == false` get weight 0).
/// Class balance is the caller's: give the windows weights that sum to the same for each side.
pub fn fit_logistic(samples: &[Sample], use_input: &[bool], l2: f64) -> LogisticAxis {
    let dims = use_input.len();
    let used: Vec<usize> = (0..dims).filter(|&i| use_input[i]).collect();
    let total_weight: f64 = samples.iter().map(|s| s.weight).sum::<f64>().max(1e-300);
    // Weighted mean and standard deviation of each used input.
    let mut mean = vec![0.0; dims];
    let mut sd = vec![1.0; dims];
    for &i in &used {
        let m = samples.iter().map(|s| s.weight * s.inputs[i]).sum::<f64>() / total_weight;
        let v = samples
            .iter()
            .map(|s| s.weight * (s.inputs[i] - m).powi(2))
            .sum::<f64>()
            / total_weight;
        mean[i] = m;
        sd[i] = v.sqrt().max(1e-9);
    }
    // Newton's method on (bias, weights of the used inputs), standardised; the penalty is on the
    // weights only, scaled by the total weight so that it means the same for any data size.
    let k = used.len() + 1;
    let mut theta = vec![0.0; k];
    let features = |s: &Sample| -> Vec<f64> {
        std::iter::once(1.0)
            .chain(used.iter().map(|&i| (s.inputs[i] - mean[i]) / sd[i]))
            .collect()
    };
    let rows: Vec<(Vec<f64>, f64, f64)> = samples
        .iter()
        .map(|s| (features(s), s.target, s.weight / total_weight))
        .collect();
    for _ in 0..100 {
        let mut gradient = vec![0.0; k];
        let mut hessian = vec![vec![0.0; k]; k];
        for (x, y, w) in &rows {
            let z: f64 = x.iter().zip(&theta).map(|(a, b)| a * b).sum();
            let p = sigmoid(z);
            for a in 0..k {
                gradient[a] += w * (p - y) * x[a];
                for b in 0..k {
                    hessian[a][b] += w * p * (1.0 - p) * x[a] * x[b];
                }
            }
        }
        for a in 1..k {
            gradient[a] += 2.0 * l2 * theta[a];
            hessian[a][a] += 2.0 * l2;
        }
        for (a, row) in hessian.iter_mut().enumerate() {
            row[a] += 1e-12;
        }
        let step = solve(hessian, gradient);
        let mut largest = 0.0f64;
        for (t, s) in theta.iter_mut().zip(&step) {
            *t -= s;
            largest = largest.max(s.abs());
        }
        if largest < 1e-10 {
            break;
        }
    }
    // Back to raw inputs: w_i / sd_i, and the bias absorbs the means.
    let mut weights = vec![0.0; dims];
    let mut bias = theta[0];
    for (j, &i) in used.iter().enumerate() {
        weights[i] = theta[j + 1] / sd[i];
        bias -= weights[i] * mean[i];
    }
    LogisticAxis { weights, bias }
}

/// The shift `d` that best fits `target ~ sigmoid(logit - d)` (weighted maximum likelihood, by
/// Newton's method): where an existing axis should put its decision point for these samples.
pub fn fit_shift(logits: &[f64], targets: &[f64], weights: &[f64]) -> f64 {
    let mut d = 0.0;
    for _ in 0..100 {
        let (mut gradient, mut curvature) = (0.0, 0.0);
        for ((&l, &t), &w) in logits.iter().zip(targets).zip(weights) {
            let p = sigmoid(l - d);
            gradient += w * (t - p);
            curvature += w * p * (1.0 - p);
        }
        let step = gradient / curvature.max(1e-300);
        d -= step;
        if step.abs() < 1e-12 {
            break;
        }
    }
    d
}

/// Solves `a x = b` by Gaussian elimination with partial pivoting (small, dense, well-posed).
fn solve(mut a: Vec<Vec<f64>>, mut b: Vec<f64>) -> Vec<f64> {
    let n = b.len();
    for col in 0..n {
        let pivot = (col..n)
            .max_by(|&i, &j| a[i][col].abs().total_cmp(&a[j][col].abs()))
            .unwrap_or(col);
        a.swap(col, pivot);
        b.swap(col, pivot);
        let d = a[col][col];
        if d.abs() < 1e-300 {
            continue;
        }
        for row in col + 1..n {
            let f = a[row][col] / d;
            if f == 0.0 {
                continue;
            }
            let (pivot_rows, rest) = a.split_at_mut(row);
            for (x, p) in rest[0][col..n].iter_mut().zip(&pivot_rows[col][col..n]) {
                *x -= f * p;
            }
            b[row] -= f * b[col];
        }
    }
    let mut x = vec![0.0; n];
    for row in (0..n).rev() {
        let s: f64 = (row + 1..n).map(|c| a[row][c] * x[c]).sum();
        x[row] = if a[row][row].abs() < 1e-300 {
            0.0
        } else {
            (b[row] - s) / a[row][row]
        };
    }
    x
}

/// A softmax readout with per-class offsets and a temperature: `p ∝ exp(z / T + offset)`.
#[derive(Clone, Debug, PartialEq)]
pub struct Offsets {
    pub offsets: Vec<f64>,
    pub temperature: f64,
}

impl Offsets {
    pub fn probabilities(&self, logits: &[f64]) -> Vec<f64> {
        let scaled: Vec<f64> = logits
            .iter()
            .zip(&self.offsets)
            .map(|(z, o)| z / self.temperature + o)
            .collect();
        let max = scaled.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let e: Vec<f64> = scaled.iter().map(|s| (s - max).exp()).collect();
        let sum: f64 = e.iter().sum();
        e.iter().map(|v| v / sum).collect()
    }
}

/// One window for `fit_offsets`: the readout's logits, which classes count as right (a clip
/// labelled "tense" is right when Angry or Scary wins), and the window's weight.
#[derive(Clone, Debug)]
pub struct OffsetSample {
    pub logits: Vec<f64>,
    pub right: Vec<bool>,
    pub weight: f64,
}

/// Fits per-class offsets (the first fixed at 0) and a temperature by weighted maximum
/// likelihood of "a right class wins" (gradient steps with backtracking; a tiny L2 pull on the
/// offsets keeps a class no clip supports finite).
pub fn fit_offsets(samples: &[OffsetSample]) -> Offsets {
    let classes = samples.first().map_or(0, |s| s.logits.len());
    // Parameters: offsets 1.. and ln T.
    let mut theta = vec![0.0; classes];
    let total: f64 = samples.iter().map(|s| s.weight).sum::<f64>().max(1e-300);
    let unpack = |theta: &[f64]| Offsets {
        offsets: std::iter::once(0.0)
            .chain(theta[..classes - 1].iter().copied())
            .collect(),
        temperature: theta[classes - 1].exp(),
    };
    let loss_and_gradient = |theta: &[f64]| -> (f64, Vec<f64>) {
        let model = unpack(theta);
        let mut loss = 0.0;
        let mut gradient = vec![0.0; classes];
        for s in samples {
            let p = model.probabilities(&s.logits);
            let right: f64 = p
                .iter()
                .zip(&s.right)
                .filter(|(_, r)| **r)
                .map(|(p, _)| p)
                .sum();
            let right = right.max(1e-300);
            let w = s.weight / total;
            loss -= w * right.ln();
            // d(-ln Σ_right p)/d s_k = p_k - [k right] p_k / right, for the scaled logit s_k.
            for k in 0..classes {
                let g = p[k] - if s.right[k] { p[k] / right } else { 0.0 };
                if k > 0 {
                    gradient[k - 1] += w * g;
                }
                // s_k = z_k / T + o_k: d s_k / d ln T = -z_k / T.
                gradient[classes - 1] += w * g * (-s.logits[k] / model.temperature);
            }
        }
        for (t, g) in theta[..classes - 1].iter().zip(&mut gradient) {
            loss += 1e-4 * t * t;
            *g += 2e-4 * t;
        }
        (loss, gradient)
    };
    let mut step = 1.0;
    let (mut loss, mut gradient) = loss_and_gradient(&theta);
    for _ in 0..2000 {
        let norm: f64 = gradient.iter().map(|g| g * g).sum::<f64>().sqrt();
        if norm < 1e-9 {
            break;
        }
        let candidate: Vec<f64> = theta
            .iter()
            .zip(&gradient)
            .map(|(t, g)| t - step * g)
            .collect();
        let (l, g) = loss_and_gradient(&candidate);
        if l < loss {
            theta = candidate;
            loss = l;
            gradient = g;
            step *= 1.5;
        } else {
            step *= 0.3;
            if step < 1e-12 {
                break;
            }
        }
    }
    unpack(&theta)
}

/// One clip for `refine_offsets`: the readout's logits of each window its verdict is read
/// from, which classes count as right, and the clip's weight.
#[derive(Clone, Debug)]
pub struct OffsetClip {
    pub windows: Vec<Vec<f64>>,
    pub right: Vec<bool>,
    pub weight: f64,
}

/// The weighted share of `clips` whose verdict is right under `model`: the verdict is the group
/// (`groups[k]` is class k's) with the largest mean probability over the clip's windows, right
/// when one of its classes is.
pub fn clip_agreement(model: &Offsets, clips: &[OffsetClip], groups: &[usize]) -> f64 {
    let group_count = groups.iter().max().map_or(0, |g| g + 1);
    let (mut right, mut total) = (0.0, 0.0);
    for clip in clips {
        let mut mean = vec![0.0; group_count];
        for logits in &clip.windows {
            for (k, p) in model.probabilities(logits).into_iter().enumerate() {
                mean[groups[k]] += p;
            }
        }
        // The first largest group wins, as `engine::dominant_of` picks it.
        let winner =
            (0..group_count).fold(0, |best, g| if mean[g] > mean[best] { g } else { best });
        let is_right = (0..groups.len()).any(|k| groups[k] == winner && clip.right[k]);
        total += clip.weight;
        if is_right && !clip.windows.is_empty() {
            right += clip.weight;
        }
    }
    right / total.max(1e-300)
}

/// Moves the offsets of a fitted readout (its temperature kept, the first offset fixed at 0) to
/// where more clips read right (`clip_agreement`): what a grid search for accuracy does, started
/// from the likelihood fit. Each offset in turn is tried on a grid of `step` up to `reach` either
/// side of its value; it moves only when the agreement strictly rises, to the middle of the
/// widest run of grid points that reach the best agreement (the run nearest the current value on
/// a tie), which keeps it away from the edge of what the training clips happen to allow. Passes
/// repeat until no offset moves (at most 10).
pub fn refine_offsets(
    start: &Offsets,
    clips: &[OffsetClip],
    groups: &[usize],
    step: f64,
    reach: f64,
) -> Offsets {
    let mut model = start.clone();
    let mut agreement = clip_agreement(&model, clips, groups);
    let points = (reach / step).round() as i64;
    for _ in 0..10 {
        let mut moved = false;
        for k in 1..model.offsets.len() {
            let centre = model.offsets[k];
            let grid: Vec<(f64, f64)> = (-points..=points)
                .map(|j| {
                    let mut trial = model.clone();
                    trial.offsets[k] = centre + j as f64 * step;
                    (trial.offsets[k], clip_agreement(&trial, clips, groups))
                })
                .collect();
            let best = grid.iter().map(|g| g.1).fold(f64::NEG_INFINITY, f64::max);
            if best <= agreement + 1e-12 {
                continue;
            }
            // Runs of consecutive grid points at the best agreement: (first, last) indices.
            let mut runs: Vec<(usize, usize)> = Vec::new();
            for (i, (_, a)) in grid.iter().enumerate() {
                if *a >= best - 1e-12 {
                    match runs.last_mut() {
                        Some(run) if run.1 + 1 == i => run.1 = i,
                        _ => runs.push((i, i)),
                    }
                }
            }
            let centre_index = points as f64;
            let chosen = runs
                .iter()
                .copied()
                .max_by(|a, b| {
                    let width = |r: (usize, usize)| r.1 - r.0;
                    let distance =
                        |r: (usize, usize)| ((r.0 + r.1) as f64 / 2.0 - centre_index).abs();
                    width(*a)
                        .cmp(&width(*b))
                        .then(distance(*b).total_cmp(&distance(*a)))
                })
                .expect("a best grid point");
            model.offsets[k] = (grid[chosen.0].0 + grid[chosen.1].0) / 2.0;
            agreement = clip_agreement(&model, clips, groups);
            moved = true;
        }
        if !moved {
            break;
        }
    }
    model
}

/// Pearson correlation.
pub fn pearson(a: &[f64], b: &[f64]) -> f64 {
    let n = a.len().min(b.len()) as f64;
    let ma = a.iter().sum::<f64>() / n;
    let mb = b.iter().sum::<f64>() / n;
    let cov: f64 = a.iter().zip(b).map(|(x, y)| (x - ma) * (y - mb)).sum();
    let va: f64 = a.iter().map(|x| (x - ma).powi(2)).sum();
    let vb: f64 = b.iter().map(|y| (y - mb).powi(2)).sum();
    cov / (va.sqrt() * vb.sqrt()).max(1e-300)
}

/// Ranks, ties sharing their mean rank.
fn ranks(v: &[f64]) -> Vec<f64> {
    let mut order: Vec<usize> = (0..v.len()).collect();
    order.sort_by(|&i, &j| v[i].total_cmp(&v[j]));
    let mut r = vec![0.0; v.len()];
    let mut i = 0;
    while i < order.len() {
        let mut j = i;
        while j + 1 < order.len() && v[order[j + 1]] == v[order[i]] {
            j += 1;
        }
        let mean = (i + j) as f64 / 2.0 + 1.0;
        for &k in &order[i..=j] {
            r[k] = mean;
        }
        i = j + 1;
    }
    r
}

/// Spearman rank correlation.
pub fn spearman(a: &[f64], b: &[f64]) -> f64 {
    pearson(&ranks(a), &ranks(b))
}

/// Area under the ROC curve of `scores` for `positive` (the Mann–Whitney statistic).
pub fn auc(scores: &[f64], positive: &[bool]) -> f64 {
    let r = ranks(scores);
    let n_pos = positive.iter().filter(|&&p| p).count() as f64;
    let n_neg = positive.len() as f64 - n_pos;
    let rank_sum: f64 = r
        .iter()
        .zip(positive)
        .filter(|(_, &p)| p)
        .map(|(r, _)| r)
        .sum();
    (rank_sum - n_pos * (n_pos + 1.0) / 2.0) / (n_pos * n_neg).max(1e-300)
}

/// Fisher's z interval (95 %) for a correlation `r` over `n` pairs.
pub fn correlation_interval(r: f64, n: usize) -> (f64, f64) {
    let z = r.clamp(-0.999_999, 0.999_999).atanh();
    let half = 1.96 / ((n as f64 - 3.0).max(1.0)).sqrt();
    ((z - half).tanh(), (z + half).tanh())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Deterministic pseudo-random numbers in [0, 1).
    fn uniform(state: &mut u64) -> f64 {
        *state ^= *state << 13;
        *state ^= *state >> 7;
        *state ^= *state << 17;
        (*state >> 11) as f64 / (1u64 << 53) as f64
    }

    #[test]
    fn logistic_regression_recovers_known_weights() {
        // y ~ Bernoulli(sigmoid(2 x0 - 1 x1 + 0.5)), x2 ignored by the mask.
        let mut state = 42;
        let samples: Vec<Sample> = (0..20_000)
            .map(|_| {
                let x: Vec<f64> = (0..3).map(|_| 4.0 * uniform(&mut state) - 2.0).collect();
                let p = sigmoid(2.0 * x[0] - x[1] + 0.5);
                Sample {
                    target: f64::from(uniform(&mut state) < p),
                    inputs: x,
                    weight: 1.0,
                }
            })
            .collect();
        let axis = fit_logistic(&samples, &[true, true, false], 0.0);
        assert!((axis.weights[0] - 2.0).abs() < 0.1, "{axis:?}");
        assert!((axis.weights[1] + 1.0).abs() < 0.1, "{axis:?}");
        assert_eq!(axis.weights[2], 0.0);
        assert!((axis.bias - 0.5).abs() < 0.1, "{axis:?}");
        // A strong penalty shrinks the weights towards 0.
        let shrunk = fit_logistic(&samples, &[true, true, false], 10.0);
        assert!(
            shrunk.weights[0].abs() < 0.3 * axis.weights[0].abs(),
            "{shrunk:?}"
        );
    }

    #[test]
    fn soft_targets_and_weights_count_as_fractions_of_clips() {
        // One input, two points: soft targets 0.2 and 0.8 give the logit line through them.
        let samples = vec![
            Sample {
                inputs: vec![-1.0],
                target: 0.2,
                weight: 1.0,
            },
            Sample {
                inputs: vec![1.0],
                target: 0.8,
                weight: 1.0,
            },
        ];
        let axis = fit_logistic(&samples, &[true], 0.0);
        assert!((axis.probability(&[1.0]) - 0.8).abs() < 1e-6, "{axis:?}");
        assert!((axis.probability(&[-1.0]) - 0.2).abs() < 1e-6, "{axis:?}");
    }

    #[test]
    fn a_shift_moves_the_decision_point_to_where_the_data_put_it() {
        // Logits biased by +1.5: the fitted shift takes it off.
        let mut state = 3;
        let (mut logits, mut targets) = (Vec::new(), Vec::new());
        for _ in 0..20_000 {
            let l = 6.0 * uniform(&mut state) - 3.0;
            targets.push(f64::from(uniform(&mut state) < sigmoid(l)));
            logits.push(l + 1.5);
        }
        let d = fit_shift(&logits, &targets, &vec![1.0; logits.len()]);
        assert!((d - 1.5).abs() < 0.1, "{d}");
    }

    #[test]
    fn offsets_correct_a_readout_biased_towards_one_class() {
        // Three classes; the logits favour class 0 by 2 everywhere, the truth is uniform.
        let mut state = 7;
        let samples: Vec<OffsetSample> = (0..3000)
            .map(|i| {
                let truth = i % 3;
                let logits: Vec<f64> = (0..3)
                    .map(|k| {
                        let signal = if k == truth { 1.5 } else { 0.0 };
                        let bias = if k == 0 { 2.0 } else { 0.0 };
                        signal + bias + uniform(&mut state) - 0.5
                    })
                    .collect();
                OffsetSample {
                    logits,
                    right: (0..3).map(|k| k == truth).collect(),
                    weight: 1.0,
                }
            })
            .collect();
        let fitted = fit_offsets(&samples);
        // The offsets undo the bias: classes 1 and 2 get about +2 / T over class 0.
        let t = fitted.temperature;
        assert!(t > 0.2 && t < 5.0, "{fitted:?}");
        for k in 1..3 {
            assert!((fitted.offsets[k] - 2.0 / t).abs() < 0.35 / t, "{fitted:?}");
        }
    }

    #[test]
    fn refined_offsets_raise_clip_agreement_of_a_biased_start() {
        // Three classes, classes 1 and 2 one group; each clip's windows favour its true class,
        // but class 0 is biased by +2 and clips of class 0 are only 1 in 5 of the clips: the
        // start (offsets 0) reads most clips of classes 1 and 2 as class 0.
        let mut state = 11;
        let clips: Vec<OffsetClip> = (0..300)
            .map(|i| {
                let truth = if i % 5 == 0 { 0 } else { 1 + i % 2 };
                let windows = (0..8)
                    .map(|_| {
                        (0..3)
                            .map(|k| {
                                let signal = if k == truth { 1.0 } else { 0.0 };
                                let bias = if k == 0 { 2.0 } else { 0.0 };
                                signal + bias + 2.0 * uniform(&mut state) - 1.0
                            })
                            .collect()
                    })
                    .collect();
                OffsetClip {
                    windows,
                    right: (0..3).map(|k| k == truth).collect(),
                    weight: 1.0,
                }
            })
            .collect();
        let groups = [0, 1, 1];
        let start = Offsets {
            offsets: vec![0.0, 0.0, 0.0],
            temperature: 1.0,
        };
        let before = clip_agreement(&start, &clips, &groups);
        let refined = refine_offsets(&start, &clips, &groups, 0.05, 3.0);
        let after = clip_agreement(&refined, &clips, &groups);
        assert!(after > before + 0.05, "{before} -> {after}: {refined:?}");
        assert_eq!(refined.offsets[0], 0.0);
        assert_eq!(refined.temperature, 1.0);
        // Already at its best agreement, nothing moves.
        let again = refine_offsets(&refined, &clips, &groups, 0.05, 3.0);
        assert_eq!(again, refined);
        // A clip is right when its winning group holds a right class: class 2 wins a clip
        // labelled class 1 of the same group.
        let one = OffsetClip {
            windows: vec![vec![0.0, 0.0, 5.0]],
            right: vec![false, true, false],
            weight: 1.0,
        };
        assert_eq!(clip_agreement(&start, &[one], &groups), 1.0);
    }

    #[test]
    fn correlation_rank_and_auc_figures() {
        let a = [1.0, 2.0, 3.0, 4.0, 5.0];
        let b = [2.0, 4.0, 5.0, 4.5, 10.0];
        assert!((pearson(&a, &a) - 1.0).abs() < 1e-12);
        assert!((spearman(&a, &b) - 0.9).abs() < 1e-12);
        assert_eq!(
            auc(&[0.1, 0.4, 0.35, 0.8], &[false, false, true, true]),
            0.75
        );
        let (lo, hi) = correlation_interval(0.5, 100);
        assert!(lo < 0.5 && hi > 0.5 && lo > 0.3 && hi < 0.65, "{lo} {hi}");
    }
}
