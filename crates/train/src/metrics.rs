//! Classification figures: true and predicted labels in; accuracy with a 95% interval, macro-F1
//! and the confusion matrix out, and the text table both reports print. Also: a percentile
//! bootstrap interval of a mean over clips, the exact McNemar test of two heads' paired
//! predictions, and the plugin's smoothing of per-window probabilities (what a user watches).

use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

/// Counts of (true label, predicted label): `matrix[true][predicted]`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Confusion {
    pub labels: Vec<String>,
    pub matrix: Vec<Vec<usize>>,
}

impl Confusion {
    pub fn new(labels: &[String]) -> Self {
        Self {
            labels: labels.to_vec(),
            matrix: vec![vec![0; labels.len()]; labels.len()],
        }
    }

    pub fn add(&mut self, truth: usize, predicted: usize) {
        self.matrix[truth][predicted] += 1;
    }

    /// Element-wise sum (e.g. over cross-validation repeats).
    pub fn merge(&mut self, other: &Confusion) {
        for (row, other_row) in self.matrix.iter_mut().zip(&other.matrix) {
            for (v, o) in row.iter_mut().zip(other_row) {
                *v += o;
            }
        }
    }

    pub fn total(&self) -> usize {
        self.matrix.iter().flatten().sum()
    }

    pub fn correct(&self) -> usize {
        (0..self.matrix.len()).map(|i| self.matrix[i][i]).sum()
    }

    pub fn accuracy(&self) -> f64 {
        self.correct() as f64 / self.total().max(1) as f64
    }

    /// F1 of each label (0 for a label never predicted nor present).
    pub fn f1(&self) -> Vec<f64> {
        let k = self.matrix.len();
        (0..k)
            .map(|i| {
                let tp = self.matrix[i][i] as f64;
                let predicted: usize = (0..k).map(|t| self.matrix[t][i]).sum();
                let actual: usize = self.matrix[i].iter().sum();
                let denominator = (predicted + actual) as f64;
                if denominator == 0.0 {
                    0.0
                } else {
                    2.0 * tp / denominator
                }
            })
            .collect()
    }

    /// Unweighted mean of the labels' F1.
    pub fn macro_f1(&self) -> f64 {
        let f1 = self.f1();
        f1.iter().sum::<f64>() / f1.len().max(1) as f64
    }

    /// The matrix as text: rows true labels, columns predicted, counts divided by `per` (the
    /// number of repeats pooled; shown with one decimal when above 1), plus each row's recall.
    pub fn table(&self, per: usize) -> String {
        let width = self
            .labels
            .iter()
            .map(String::len)
            .max()
            .unwrap_or(0)
            .max(16);
        let mut s = String::new();
        let _ = write!(s, "{:<width$}", "true \\ predicted");
        for l in &self.labels {
            let _ = write!(s, " {l:>7}");
        }
        let _ = writeln!(s, "  recall");
        for (i, row) in self.matrix.iter().enumerate() {
            let _ = write!(s, "{:<width$}", self.labels[i]);
            for &v in row {
                if per > 1 {
                    let _ = write!(s, " {:>7.1}", v as f64 / per as f64);
                } else {
                    let _ = write!(s, " {v:>7}");
                }
            }
            let n: usize = row.iter().sum();
            let _ = writeln!(s, "  {:.3}", row[i] as f64 / n.max(1) as f64);
        }
        s
    }
}

/// A proportion with its 95% Wilson score interval.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Interval {
    pub value: f64,
    pub low: f64,
    pub high: f64,
}

impl std::fmt::Display for Interval {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:.3} [{:.3}, {:.3}]", self.value, self.low, self.high)
    }
}

/// 95% Wilson score interval of a proportion `p` observed on `n` trials: the uncertainty that
/// comes from measuring on only `n` clips.
pub fn wilson(p: f64, n: usize) -> Interval {
    const Z: f64 = 1.959_963_984_540_054;
    if n == 0 {
        return Interval {
            value: p,
            low: 0.0,
            high: 1.0,
        };
    }
    let n = n as f64;
    let z2 = Z * Z;
    let centre = (p + z2 / (2.0 * n)) / (1.0 + z2 / n);
    let half = Z / (1.0 + z2 / n) * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt();
    Interval {
        value: p,
        low: (centre - half).max(0.0),
        high: (centre + half).min(1.0),
    }
}

/// Mean and (sample) standard deviation.
pub fn mean_sd(values: &[f64]) -> (f64, f64) {
    let n = values.len();
    if n == 0 {
        return (f64::NAN, f64::NAN);
    }
    let mean = values.iter().sum::<f64>() / n as f64;
    if n == 1 {
        return (mean, 0.0);
    }
    let var = values.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / (n - 1) as f64;
    (mean, var.sqrt())
}

/// 95% percentile-bootstrap interval of the mean of `values` (e.g. per-clip correctness, or
/// per-clip differences between two heads): `resamples` resamples of the values with replacement,
/// drawn from a ChaCha8 generator seeded with `seed`, so the interval is reproducible.
pub fn bootstrap_mean(values: &[f64], resamples: usize, seed: u64) -> Interval {
    use rand::{RngExt, SeedableRng};
    let n = values.len();
    let mean = values.iter().sum::<f64>() / n.max(1) as f64;
    if n == 0 || resamples == 0 {
        return Interval {
            value: mean,
            low: mean,
            high: mean,
        };
    }
    let mut rng = rand::rngs::ChaCha8Rng::seed_from_u64(seed);
    let mut means: Vec<f64> = (0..resamples)
        .map(|_| (0..n).map(|_| values[rng.random_range(0..n)]).sum::<f64>() / n as f64)
        .collect();
    means.sort_by(f64::total_cmp);
    let at = |q: f64| means[((q * (resamples - 1) as f64).round() as usize).min(resamples - 1)];
    Interval {
        value: mean,
        low: at(0.025),
        high: at(0.975),
    }
}

/// Two-sided exact McNemar test: `b` clips only the first head gets right, `c` only the second.
/// Returns the p-value of "both heads are equally accurate" (binomial, n = b + c, p = 1/2).
pub fn mcnemar_exact(b: usize, c: usize) -> f64 {
    let n = b + c;
    if n == 0 {
        return 1.0;
    }
    let k = b.min(c);
    // ln C(n, i) by running sums of logs.
    let ln_fact = |m: usize| (1..=m).map(|v| (v as f64).ln()).sum::<f64>();
    let ln_n = ln_fact(n);
    let tail: f64 = (0..=k)
        .map(|i| (ln_n - ln_fact(i) - ln_fact(n - i) - n as f64 * std::f64::consts::LN_2).exp())
        .sum();
    (2.0 * tail).min(1.0)
}

/// The plugin's default smoothing (`SmoothingSettings::default()` in the root crate's
/// `src/engine.rs`): an exponential time constant of 2 s and a hysteresis of 0.1.
pub const PLUGIN_TIME_CONSTANT_SECONDS: f64 = 2.0;
/// See [`PLUGIN_TIME_CONSTANT_SECONDS`].
pub const PLUGIN_HYSTERESIS: f32 = 0.1;

/// The dominant label the plugin shows after each window of a stream: the per-window
/// probabilities exponentially smoothed (time constant [`PLUGIN_TIME_CONSTANT_SECONDS`], windows
/// `hop_seconds` apart, starting from uniform), and the dominant label kept until a challenger
/// leads it by [`PLUGIN_HYSTERESIS`]. The same arithmetic as the engine's `Smoother` with music
/// presence 1.
pub fn plugin_dominant(windows: &[Vec<f32>], hop_seconds: f64) -> Vec<usize> {
    let Some(k) = windows.first().map(Vec::len) else {
        return Vec::new();
    };
    let alpha = (1.0 - (-hop_seconds / PLUGIN_TIME_CONSTANT_SECONDS).exp()) as f32;
    let mut state = vec![1.0 / k as f32; k];
    let mut dominant: Option<usize> = None;
    windows
        .iter()
        .map(|p| {
            for (s, t) in state.iter_mut().zip(p) {
                *s += alpha * (t - *s);
            }
            let mut leader = 0;
            for (i, v) in state.iter().enumerate() {
                if *v > state[leader] {
                    leader = i;
                }
            }
            let keep = dominant.filter(|&d| state[leader] < state[d] + PLUGIN_HYSTERESIS);
            let d = keep.unwrap_or(leader);
            dominant = Some(d);
            d
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wilson_matches_the_textbook() {
        // 8 of 10: Wilson 95% interval 0.490–0.943.
        let i = wilson(0.8, 10);
        assert!(
            (i.low - 0.4902).abs() < 1e-3 && (i.high - 0.9433).abs() < 1e-3,
            "{i}"
        );
        let i = wilson(1.0, 50);
        assert!(i.high == 1.0 && i.low > 0.9);
    }

    #[test]
    fn f1_and_accuracy() {
        let labels: Vec<String> = ["a", "b"].iter().map(|s| s.to_string()).collect();
        let mut c = Confusion::new(&labels);
        for (t, p) in [(0, 0), (0, 0), (0, 1), (1, 1)] {
            c.add(t, p);
        }
        assert_eq!(c.accuracy(), 0.75);
        // a: tp 2, predicted 2, actual 3 -> 0.8; b: tp 1, predicted 2, actual 1 -> 2/3.
        let f1 = c.f1();
        assert!((f1[0] - 0.8).abs() < 1e-12 && (f1[1] - 2.0 / 3.0).abs() < 1e-12);
        assert!(c.table(1).contains("recall"));
    }

    #[test]
    fn bootstrap_interval_covers_the_mean_and_narrows_with_more_clips() {
        let few: Vec<f64> = (0..20).map(|i| f64::from(i % 4 != 0)).collect();
        let many: Vec<f64> = (0..2000).map(|i| f64::from(i % 4 != 0)).collect();
        let a = bootstrap_mean(&few, 2000, 1);
        let b = bootstrap_mean(&many, 2000, 1);
        assert_eq!(a.value, 0.75);
        assert!(a.low < 0.75 && 0.75 < a.high, "{a}");
        assert!(b.high - b.low < (a.high - a.low) / 5.0, "{a} {b}");
        assert_eq!(a, bootstrap_mean(&few, 2000, 1));
        // Constant values: no spread.
        let c = bootstrap_mean(&[1.0; 30], 500, 3);
        assert_eq!((c.low, c.high), (1.0, 1.0));
    }

    #[test]
    fn mcnemar_matches_the_binomial_by_hand() {
        // b = 0, c = 5: p = 2 * 0.5^5.
        assert!((mcnemar_exact(0, 5) - 0.0625).abs() < 1e-12);
        // b = 2, c = 8: 2 * (1 + 10 + 45) / 1024.
        assert!((mcnemar_exact(2, 8) - 112.0 / 1024.0).abs() < 1e-12);
        assert_eq!(mcnemar_exact(4, 4), 1.0);
        assert_eq!(mcnemar_exact(0, 0), 1.0);
        assert!(mcnemar_exact(30, 60) < 0.01);
    }

    #[test]
    fn plugin_smoothing_follows_slowly_and_holds_with_hysteresis() {
        let a = vec![0.9, 0.1];
        let b = vec![0.1, 0.9];
        let stream: Vec<Vec<f32>> = [vec![a.clone(); 5], vec![b.clone(); 5]].concat();
        let shown = plugin_dominant(&stream, 0.96);
        assert_eq!(&shown[..5], &[0; 5]);
        // The smoothed state needs a few windows of the new label before it takes over.
        assert_eq!(shown[5], 0);
        assert_eq!(shown[9], 1);
        // A small lead is not enough to take over from the label shown.
        let close = vec![
            vec![0.6, 0.4],
            vec![0.47, 0.53],
            vec![0.47, 0.53],
            vec![0.47, 0.53],
        ];
        assert!(plugin_dominant(&close, 0.96).iter().all(|&d| d == 0));
    }
}
