//! Classification figures: true and predicted labels in; accuracy with a 95% interval, macro-F1
//! and the confusion matrix out, and the text table both reports print.

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
}
