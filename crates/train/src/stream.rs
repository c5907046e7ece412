//! Exported heads, run as the plugin runs them: a head file (`NAME.json` beside `NAME.onnx`) and
//! a dataset in; the head's figures on that data out ([`evaluate`] → [`EvalReport`]).
//!
//! [`StreamingHead`] runs the ONNX graph in tract one window at a time, feeding `h_out`/`c_out`
//! back as the next window's `h_in`/`c_in`: exactly what the plugin does, so the figures are
//! those of the shipped file, not of the model that was trained.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tract_onnx::prelude::*;

use crate::cv::STREAM_FROM_WINDOW;
use crate::dataset::Dataset;
use crate::export::{HeadMetadata, HEAD_FORMAT};
use crate::metrics::{plugin_dominant, wilson, Confusion, Interval};
use crate::train::{argmax, decide};

/// A head file that cannot be loaded or run.
#[derive(Debug, thiserror::Error)]
pub enum HeadFileError {
    #[error("head {}: {reason}", .path.display())]
    Invalid { path: PathBuf, reason: String },
    #[error("head inference failed: {0}")]
    Inference(String),
    #[error("{0}")]
    Mismatch(String),
}

/// A head file loaded into tract, with its LSTM state.
pub struct StreamingHead {
    pub metadata: HeadMetadata,
    plan: Arc<TypedSimplePlan>,
    probabilities_at: usize,
    state_at: Option<(usize, usize)>,
    state: Option<(Tensor, Tensor)>,
}

impl StreamingHead {
    /// Loads the head described by `json` (its graph is `json` with the extension `.onnx`).
    pub fn load(json: &Path) -> Result<Self, HeadFileError> {
        let invalid = |reason: String| HeadFileError::Invalid {
            path: json.to_owned(),
            reason,
        };
        let text = std::fs::read_to_string(json).map_err(|e| invalid(e.to_string()))?;
        let metadata: HeadMetadata =
            serde_json::from_str(&text).map_err(|e| invalid(e.to_string()))?;
        if metadata.format != HEAD_FORMAT {
            return Err(invalid(format!(
                "format `{}`, expected `{HEAD_FORMAT}`",
                metadata.format
            )));
        }
        let stateful = match (metadata.kind.as_str(), metadata.lstm) {
            ("lstm", Some(_)) => true,
            ("logistic", None) => false,
            (kind, lstm) => {
                return Err(invalid(format!(
                    "kind `{kind}` does not fit lstm shape {lstm:?}"
                )))
            }
        };
        let onnx_path = json.with_extension("onnx");
        let fail = |e: TractError| HeadFileError::Invalid {
            path: onnx_path.clone(),
            reason: format!("{e:#}"),
        };
        let mut model = tract_onnx::onnx()
            .model_for_path(&onnx_path)
            .map_err(fail)?;
        model = model
            .with_input_fact(0, f32::fact([1, metadata.embedding_dim]).into())
            .map_err(fail)?;
        if let Some(shape) = metadata.lstm {
            let state = f32::fact([shape.layers, 1, shape.hidden]);
            model = model
                .with_input_fact(1, state.clone().into())
                .map_err(fail)?;
            model = model.with_input_fact(2, state.into()).map_err(fail)?;
        }
        let names: Vec<String> = model
            .output_outlets()
            .map_err(fail)?
            .iter()
            .map(|o| {
                model
                    .outlet_label(*o)
                    .map(str::to_owned)
                    .unwrap_or_else(|| model.node(o.node).name.clone())
            })
            .collect();
        let position = |name: &str| {
            names
                .iter()
                .position(|n| n == name)
                .ok_or_else(|| HeadFileError::Invalid {
                    path: onnx_path.clone(),
                    reason: format!("graph has no output `{name}` (outputs: {names:?})"),
                })
        };
        let probabilities_at = position("probabilities")?;
        let state_at = if stateful {
            Some((position("h_out")?, position("c_out")?))
        } else {
            None
        };
        let plan = model
            .into_optimized()
            .and_then(|m| m.into_runnable())
            .map_err(fail)?;
        let mut head = Self {
            metadata,
            plan,
            probabilities_at,
            state_at,
            state: None,
        };
        head.reset();
        Ok(head)
    }

    /// Forgets everything heard so far (LSTM state back to zero).
    pub fn reset(&mut self) {
        self.state = self.metadata.lstm.and_then(|s| {
            let zeros = || Tensor::zero::<f32>(&[s.layers, 1, s.hidden]).ok();
            Some((zeros()?, zeros()?))
        });
    }

    /// Reads one window's embedding; returns the probabilities (in `metadata.labels` order).
    pub fn step(&mut self, embedding: &[f32]) -> Result<Vec<f32>, HeadFileError> {
        let dim = self.metadata.embedding_dim;
        if embedding.len() != dim {
            return Err(HeadFileError::Mismatch(format!(
                "embedding has {} values, head {} expects {dim}",
                embedding.len(),
                self.metadata.name
            )));
        }
        let fail = |e: TractError| HeadFileError::Inference(format!("{e:#}"));
        let x = Tensor::from_shape(&[1, dim], embedding).map_err(fail)?;
        let mut inputs: TVec<TValue> = tvec![x.into()];
        if let Some((h, c)) = &self.state {
            inputs.push(h.clone().into());
            inputs.push(c.clone().into());
        }
        let outputs = self.plan.run(inputs).map_err(fail)?;
        let probabilities = outputs[self.probabilities_at]
            .try_as_plain_ram()
            .and_then(|v| v.as_slice::<f32>().map(<[f32]>::to_vec))
            .map_err(fail)?;
        if let Some((h_at, c_at)) = self.state_at {
            self.state = Some((
                outputs[h_at].clone().into_tensor(),
                outputs[c_at].clone().into_tensor(),
            ));
        }
        Ok(probabilities)
    }

    /// Reads `windows` in order, carrying the state on from wherever it is.
    pub fn run(&mut self, windows: &[Vec<f32>]) -> Result<Vec<Vec<f32>>, HeadFileError> {
        windows.iter().map(|w| self.step(w)).collect()
    }

    /// A whole clip from a fresh state, decided as the head's metadata says.
    pub fn clip(&mut self, windows: &[Vec<f32>]) -> Result<Vec<f32>, HeadFileError> {
        self.reset();
        let probabilities = self.run(windows)?;
        Ok(decide(&probabilities, self.metadata.clip_decision))
    }
}

/// A head's figures on a dataset it is run on.
#[derive(Clone, Debug, PartialEq)]
pub struct EvalReport {
    pub head: String,
    pub clips: usize,
    pub accuracy: Interval,
    pub macro_f1: f64,
    pub confusion: Confusion,
    /// Every clip played back to back as one stream (state carried across clip boundaries):
    /// accuracy of the windows from the third of each clip on, and how many were counted.
    pub stream_accuracy: f64,
    /// The same windows as the plugin shows them: smoothed with its default settings
    /// ([`plugin_dominant`]).
    pub smoothed_stream_accuracy: f64,
    pub stream_windows: usize,
    /// Dataset labels the head does not know (their clips are left out).
    pub warnings: Vec<String>,
}

/// Runs `head` on every clip of `data` (each clip from a fresh state; then all clips back to
/// back as one stream) and measures it. Labels are matched by name: clips of a label the head
/// does not know are left out with a warning; labels of the head the data lacks just have no
/// clips.
pub fn evaluate(head: &mut StreamingHead, data: &Dataset) -> Result<EvalReport, HeadFileError> {
    let labels = head.metadata.labels.clone();
    let mut warnings = Vec::new();
    let to_head: Vec<Option<usize>> = data
        .labels
        .iter()
        .map(|l| {
            let found = labels.iter().position(|h| h == l);
            if found.is_none()
                && data
                    .items
                    .iter()
                    .any(|s| data.labels.get(s.label) == Some(l))
            {
                warnings.push(format!(
                    "head {} has no label `{l}`: its clips are left out",
                    head.metadata.name
                ));
            }
            found
        })
        .collect();
    let clips: Vec<(usize, &[Vec<f32>])> = data
        .items
        .iter()
        .filter_map(|s| {
            to_head
                .get(s.label)
                .copied()
                .flatten()
                .map(|t| (t, s.embeddings.as_slice()))
        })
        .collect();
    if clips.is_empty() {
        return Err(HeadFileError::Mismatch(format!(
            "no clip of the data has one of the head's labels ({})",
            labels.join(", ")
        )));
    }
    let mut confusion = Confusion::new(&labels);
    for &(truth, windows) in &clips {
        let p = head.clip(windows)?;
        confusion.add(truth, argmax(&p));
    }
    head.reset();
    let mut stream = Vec::new();
    let mut truth_of = Vec::new();
    for &(truth, windows) in &clips {
        stream.extend(head.run(windows)?);
        truth_of.extend((0..windows.len()).map(|w| (truth, w)));
    }
    let hop = head
        .metadata
        .hop_seconds
        .unwrap_or(head.metadata.window_seconds);
    let shown = plugin_dominant(&stream, hop);
    let (mut correct, mut smoothed, mut counted) = (0, 0, 0);
    for ((p, &(truth, w)), &d) in stream.iter().zip(&truth_of).zip(&shown) {
        if w >= STREAM_FROM_WINDOW {
            counted += 1;
            correct += usize::from(argmax(p) == truth);
            smoothed += usize::from(d == truth);
        }
    }
    Ok(EvalReport {
        head: head.metadata.name.clone(),
        clips: clips.len(),
        accuracy: wilson(confusion.accuracy(), clips.len()),
        macro_f1: confusion.macro_f1(),
        confusion,
        stream_accuracy: correct as f64 / counted.max(1) as f64,
        smoothed_stream_accuracy: smoothed as f64 / counted.max(1) as f64,
        stream_windows: counted,
        warnings,
    })
}

impl fmt::Display for EvalReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let counts: Vec<String> = self
            .confusion
            .labels
            .iter()
            .zip(&self.confusion.matrix)
            .map(|(l, row)| format!("{l} {}", row.iter().sum::<usize>()))
            .collect();
        writeln!(
            f,
            "{}: evaluated on {} clips ({})",
            self.head,
            self.clips,
            counts.join(", ")
        )?;
        for w in &self.warnings {
            writeln!(f, "  warning: {w}")?;
        }
        writeln!(
            f,
            "  accuracy {} (95% interval for {} clips)   macro-F1 {:.3}",
            self.accuracy, self.clips, self.macro_f1
        )?;
        writeln!(
            f,
            "  streamed back to back: per-window accuracy from window {} of each clip {:.3} \
             ({} windows; clip-level {:.3}, difference {:+.3}); as the plugin shows it \
             (smoothed) {:.3}",
            STREAM_FROM_WINDOW + 1,
            self.stream_accuracy,
            self.stream_windows,
            self.accuracy.value,
            self.stream_accuracy - self.accuracy.value,
            self.smoothed_stream_accuracy
        )?;
        writeln!(f, "  confusion (rows true, columns predicted):")?;
        for line in self.confusion.table(1).lines() {
            writeln!(f, "    {line}")?;
        }
        Ok(())
    }
}
