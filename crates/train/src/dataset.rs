//! Labelled sequences of embeddings: what every head is trained and measured on, whatever the
//! source (AudioSet's released VGGish embeddings, or a user's own audio through YAMNet), the
//! labels (any names, two or more) and the embedding size.
//!
//! Also here: the checks a dataset must pass before training ([`Dataset::check`]), what is done
//! with labels too small for k-fold cross-validation ([`Dataset::for_cross_validation`]), and
//! the stratified folds themselves ([`stratified_folds`]).

use std::fmt;

use rand::seq::SliceRandom;
use rand::SeedableRng;
use sha2::{Digest, Sha256};

/// One labelled clip: an embedding per window, in time order.
#[derive(Clone, Debug, PartialEq)]
pub struct Sequence {
    /// Where the clip comes from (AudioSet `VIDEO_ID@START`, or a file path).
    pub id: String,
    /// Index into [`Dataset::labels`].
    pub label: usize,
    pub embeddings: Vec<Vec<f32>>,
}

/// Labelled sequences of embeddings.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Dataset {
    pub labels: Vec<String>,
    pub items: Vec<Sequence>,
}

/// Why a dataset cannot be trained or measured on.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DatasetError {
    #[error("the dataset has no clips")]
    Empty,
    #[error("clip {id} has label index {label}, but there are only {labels} labels")]
    BadLabel {
        id: String,
        label: usize,
        labels: usize,
    },
    #[error("clip {id} has no embeddings")]
    EmptySequence { id: String },
    #[error(
        "clip {id}, window {window}: embedding has {got} values where the others have {expected}"
    )]
    DimensionMismatch {
        id: String,
        window: usize,
        got: usize,
        expected: usize,
    },
    #[error("clip {id}, window {window}: embedding holds a non-finite value")]
    NotFinite { id: String, window: usize },
    #[error("{0}")]
    TooFewLabels(String),
}

impl Dataset {
    /// Size of every embedding (of the first one; [`check`](Self::check) makes sure all agree).
    pub fn embedding_dim(&self) -> Option<usize> {
        self.items
            .first()
            .and_then(|s| s.embeddings.first())
            .map(Vec::len)
    }

    /// Number of clips per label, in label order.
    pub fn counts(&self) -> Vec<usize> {
        let mut counts = vec![0; self.labels.len()];
        for item in &self.items {
            if let Some(c) = counts.get_mut(item.label) {
                *c += 1;
            }
        }
        counts
    }

    /// Checks that every clip has a valid label and at least one embedding, and that all
    /// embeddings have the same size and finite values.
    pub fn check(&self) -> Result<usize, DatasetError> {
        let dim = self.embedding_dim().ok_or(DatasetError::Empty)?;
        for item in &self.items {
            if item.label >= self.labels.len() {
                return Err(DatasetError::BadLabel {
                    id: item.id.clone(),
                    label: item.label,
                    labels: self.labels.len(),
                });
            }
            if item.embeddings.is_empty() {
                return Err(DatasetError::EmptySequence {
                    id: item.id.clone(),
                });
            }
            for (window, e) in item.embeddings.iter().enumerate() {
                if e.len() != dim {
                    return Err(DatasetError::DimensionMismatch {
                        id: item.id.clone(),
                        window,
                        got: e.len(),
                        expected: dim,
                    });
                }
                if e.iter().any(|v| !v.is_finite()) {
                    return Err(DatasetError::NotFinite {
                        id: item.id.clone(),
                        window,
                    });
                }
            }
        }
        Ok(dim)
    }

    /// The clips at `indices`, same labels.
    pub fn subset(&self, indices: &[usize]) -> Dataset {
        Dataset {
            labels: self.labels.clone(),
            items: indices.iter().map(|&i| self.items[i].clone()).collect(),
        }
    }

    /// The dataset without the labels that have fewer than `min_count` clips (remaining labels
    /// keep their order and are renumbered), with one warning per label dropped. Fails when fewer
    /// than two labels remain.
    pub fn without_small_labels(
        &self,
        min_count: usize,
    ) -> Result<(Dataset, Vec<String>), DatasetError> {
        let counts = self.counts();
        let mut warnings = Vec::new();
        let mut renumber = vec![None; self.labels.len()];
        let mut labels = Vec::new();
        for (i, (name, &count)) in self.labels.iter().zip(&counts).enumerate() {
            if count >= min_count {
                renumber[i] = Some(labels.len());
                labels.push(name.clone());
            } else if count == 0 {
                warnings.push(format!("label `{name}` has no clips: left out"));
            } else {
                warnings.push(format!(
                    "label `{name}` has {count} clip{} (at least {min_count} needed): left out",
                    if count == 1 { "" } else { "s" }
                ));
            }
        }
        if labels.len() < 2 {
            let have = self
                .labels
                .iter()
                .zip(&counts)
                .map(|(n, c)| format!("{n}: {c}"))
                .collect::<Vec<_>>();
            return Err(DatasetError::TooFewLabels(format!(
                "need at least two labels with {min_count} or more clips each; have {}",
                have.join(", ")
            )));
        }
        let items = self
            .items
            .iter()
            .filter_map(|s| {
                renumber
                    .get(s.label)
                    .copied()
                    .flatten()
                    .map(|label| Sequence { label, ..s.clone() })
            })
            .collect();
        Ok((Dataset { labels, items }, warnings))
    }

    /// Prepares for stratified `k`-fold cross-validation. Labels with fewer than two clips cannot
    /// be both trained on and validated: they are left out, with a warning. When the smallest
    /// remaining label has fewer than `k` clips, `k` is lowered to that count, with a warning.
    /// Returns the dataset, the `k` to use and the warnings.
    pub fn for_cross_validation(
        &self,
        k: usize,
    ) -> Result<(Dataset, usize, Vec<String>), DatasetError> {
        self.check()?;
        let (data, mut warnings) = self.without_small_labels(2)?;
        let smallest = data.counts().into_iter().min().unwrap_or(0);
        let k_used = k.max(2).min(smallest);
        if k_used != k {
            let (name, _) = data
                .labels
                .iter()
                .zip(data.counts())
                .min_by_key(|(_, c)| *c)
                .unwrap_or((&data.labels[0], 0));
            warnings.push(format!(
                "{k}-fold cross-validation needs {k} clips per label, `{name}` has {smallest}: using {k_used} folds"
            ));
        }
        Ok((data, k_used, warnings))
    }

    /// SHA-256 over labels, ids and embeddings: names the exact data a head was trained on.
    pub fn sha256(&self) -> String {
        let mut hash = Sha256::new();
        for label in &self.labels {
            hash.update(label.as_bytes());
            hash.update([0]);
        }
        for item in &self.items {
            hash.update(item.id.as_bytes());
            hash.update([0]);
            hash.update((item.label as u64).to_le_bytes());
            for e in &item.embeddings {
                for v in e {
                    hash.update(v.to_le_bytes());
                }
            }
        }
        hex(&hash.finalize())
    }
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl fmt::Display for Dataset {
    /// `233 clips, 128-D: Happy 55, Sad 58, Angry 60, Scary 60`
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let counts = self.counts();
        let per_label: Vec<String> = self
            .labels
            .iter()
            .zip(&counts)
            .map(|(l, c)| format!("{l} {c}"))
            .collect();
        write!(
            f,
            "{} clips, {}-D: {}",
            self.items.len(),
            self.embedding_dim().unwrap_or(0),
            per_label.join(", ")
        )
    }
}

/// Stratified `k`-fold split: the validation indices of each fold. Each label's clips are
/// shuffled (seeded) and dealt round-robin across the folds, continuing where the previous label
/// stopped, so every fold holds each label in proportion and fold sizes differ by at most one.
pub fn stratified_folds(labels: &[usize], k: usize, seed: u64) -> Vec<Vec<usize>> {
    let k = k.max(1);
    let mut rng = rand::rngs::ChaCha8Rng::seed_from_u64(seed);
    let n_labels = labels.iter().copied().max().map_or(0, |m| m + 1);
    let mut folds = vec![Vec::new(); k];
    let mut next = 0;
    for label in 0..n_labels {
        let mut members: Vec<usize> = (0..labels.len()).filter(|&i| labels[i] == label).collect();
        members.shuffle(&mut rng);
        for i in members {
            folds[next % k].push(i);
            next += 1;
        }
    }
    for fold in &mut folds {
        fold.sort_unstable();
    }
    folds
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(counts: &[usize]) -> Dataset {
        let labels = (0..counts.len()).map(|i| format!("L{i}")).collect();
        let items = counts
            .iter()
            .enumerate()
            .flat_map(|(label, &n)| {
                (0..n).map(move |j| Sequence {
                    id: format!("{label}-{j}"),
                    label,
                    embeddings: vec![vec![0.5; 3]; 2],
                })
            })
            .collect();
        Dataset { labels, items }
    }

    #[test]
    fn folds_are_stratified_disjoint_and_complete() {
        let d = data(&[55, 58, 60, 60]);
        let labels: Vec<usize> = d.items.iter().map(|s| s.label).collect();
        let folds = stratified_folds(&labels, 5, 7);
        let mut all: Vec<usize> = folds.concat();
        all.sort_unstable();
        assert_eq!(all, (0..labels.len()).collect::<Vec<_>>());
        for fold in &folds {
            assert!((46..=47).contains(&fold.len()), "{}", fold.len());
            for label in 0..4 {
                let n = fold.iter().filter(|&&i| labels[i] == label).count();
                let total = d.counts()[label];
                assert!(
                    n == total / 5 || n == total.div_ceil(5),
                    "label {label}: {n} of {total}"
                );
            }
        }
        assert_eq!(folds, stratified_folds(&labels, 5, 7));
        assert_ne!(folds, stratified_folds(&labels, 5, 8));
    }

    #[test]
    fn small_labels_lower_k_and_empty_ones_are_left_out() {
        let (d, k, warnings) = data(&[10, 3, 0, 1]).for_cross_validation(5).unwrap();
        assert_eq!(d.labels, vec!["L0", "L1"]);
        assert_eq!(d.counts(), vec![10, 3]);
        assert_eq!(k, 3);
        assert_eq!(warnings.len(), 3, "{warnings:?}");
        assert!(warnings[0].contains("`L2` has no clips"));
        assert!(warnings[1].contains("`L3` has 1 clip "));
        assert!(warnings[2].contains("using 3 folds"));
        assert!(matches!(
            data(&[10, 1]).for_cross_validation(5),
            Err(DatasetError::TooFewLabels(_))
        ));
    }

    #[test]
    fn check_finds_bad_clips() {
        let mut d = data(&[2, 2]);
        assert_eq!(d.check(), Ok(3));
        d.items[1].embeddings[1].push(0.0);
        assert!(matches!(
            d.check(),
            Err(DatasetError::DimensionMismatch {
                window: 1,
                got: 4,
                ..
            })
        ));
        let mut d = data(&[2, 2]);
        d.items[2].embeddings.clear();
        assert!(matches!(d.check(), Err(DatasetError::EmptySequence { .. })));
        let mut d = data(&[2, 2]);
        d.items[0].embeddings[0][0] = f32::NAN;
        assert!(matches!(d.check(), Err(DatasetError::NotFinite { .. })));
        assert_eq!(Dataset::default().check(), Err(DatasetError::Empty));
    }
}
