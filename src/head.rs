//! Heads: one backbone output per window in, mood probabilities out.
//!
//! Two kinds behind one trait:
//! - `YamnetReadout`: YAMNet's own AudioSet mood classes (Happy, Sad, Angry, Scary music: rows
//!   271, 272, 275, 276 of the class map), a softmax over their logits, and music presence from
//!   row 132 (Music). Needs no training.
//! - `TrainedHead`: a head trained by `moodscope train` (or the AudioSet heads committed under
//!   `models/heads/`), an ONNX graph run by tract. An LSTM head carries its state (`h`, `c`) from
//!   window to window, so it reads a stream rather than isolated windows.
//!
//! Trained-head files: `NAME.onnx` beside `NAME.json` (see `HeadMetadata`). ONNX inputs:
//! `embedding` f32 [1, D] and, for LSTM heads, `h_in`/`c_in` f32 [layers, 1, hidden]; outputs:
//! `probabilities` f32 [1, K] and, for LSTM heads, `h_out`/`c_out` of the input state's shape.
//! Input normalisation is inside the graph.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock, Weak};

use tract_onnx::prelude::*;

use crate::backbone::{BackboneKind, BackboneOutput};

/// The four moods of the study, in the order the AudioSet heads output them.
pub const MOODS: [&str; 4] = ["Happy", "Sad", "Angry", "Scary"];

/// YAMNet class-map rows of the four moods (Happy, Sad, Angry, Scary music), in `MOODS` order.
pub const YAMNET_MOOD_ROWS: [usize; 4] = [271, 272, 275, 276];
/// YAMNet class-map row of "Music".
pub const YAMNET_MUSIC_ROW: usize = 132;

/// Format tag of trained-head metadata files.
pub const HEAD_FORMAT: &str = "moodscope-head/1";

/// What a head makes of one window.
#[derive(Clone, Debug, PartialEq)]
pub struct HeadReading {
    /// One probability per label, summing to 1.
    pub probabilities: Vec<f32>,
    /// How sure the head is that the window is music at all, 0–1, when it can tell.
    pub presence: Option<f32>,
}

#[derive(Debug, thiserror::Error)]
pub enum HeadError {
    #[error("head file {}: {reason}", .path.display())]
    Invalid { path: PathBuf, reason: String },
    #[error("head {name} was trained on {expected} embeddings but the backbone is {actual}")]
    WrongBackbone {
        name: String,
        expected: String,
        actual: String,
    },
    #[error(
        "the YAMNet mood readout needs YAMNet's class scores, which this backbone does not give"
    )]
    NoScores,
    #[error("head inference failed: {0}")]
    Inference(String),
}

/// Turns backbone outputs into mood probabilities, one window at a time.
pub trait MoodHead: Send {
    /// Label names, in the order of `HeadReading::probabilities`.
    fn labels(&self) -> &[String];
    /// Forgets everything heard so far (LSTM state back to zero).
    fn reset(&mut self);
    /// Reads one window.
    fn step(&mut self, window: &BackboneOutput) -> Result<HeadReading, HeadError>;
}

/// Softmax, computed stably, in place.
pub fn softmax(values: &mut [f32]) {
    let max = values.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut sum = 0.0;
    for v in values.iter_mut() {
        *v = (*v - max).exp();
        sum += *v;
    }
    for v in values.iter_mut() {
        *v /= sum;
    }
}

/// The four moods from YAMNet's own AudioSet classes, and presence from its Music class.
pub struct YamnetReadout {
    labels: Vec<String>,
}

impl Default for YamnetReadout {
    fn default() -> Self {
        Self {
            labels: MOODS.iter().map(|s| s.to_string()).collect(),
        }
    }
}

impl YamnetReadout {
    /// The readout computed from YAMNet's 521 class scores.
    pub fn read(scores: &[f32]) -> Result<HeadReading, HeadError> {
        if scores.len() <= YAMNET_MOOD_ROWS[3] {
            return Err(HeadError::NoScores);
        }
        // The scores are sigmoids of independent logits; recover the logits and compare the
        // four moods with a softmax, so they sum to one and keep their relative evidence.
        let mut logits = YAMNET_MOOD_ROWS.map(|row| {
            let p = scores[row].clamp(1e-7, 1.0 - 1e-7);
            (p / (1.0 - p)).ln()
        });
        softmax(&mut logits);
        Ok(HeadReading {
            probabilities: logits.to_vec(),
            presence: Some(scores[YAMNET_MUSIC_ROW]),
        })
    }
}

impl MoodHead for YamnetReadout {
    fn labels(&self) -> &[String] {
        &self.labels
    }

    fn reset(&mut self) {}

    fn step(&mut self, window: &BackboneOutput) -> Result<HeadReading, HeadError> {
        Self::read(window.scores.as_deref().ok_or(HeadError::NoScores)?)
    }
}

/// The metadata file that sits beside a trained head's ONNX graph.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct HeadMetadata {
    pub format: String,
    pub name: String,
    /// `lstm` (stateful) or `logistic` (stateless).
    pub kind: String,
    pub labels: Vec<String>,
    pub backbone: BackboneKind,
    pub embedding_dim: usize,
    /// Seconds of audio per window the head was trained on.
    #[serde(default)]
    pub window_seconds: Option<f64>,
    #[serde(default)]
    pub lstm: Option<LstmShape>,
    /// Anything else the trainer recorded (normalisation, figures, seeds).
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LstmShape {
    pub layers: usize,
    pub hidden: usize,
}

type Plan = TypedSimplePlan;

/// A loaded head graph, shared by every analyser that uses it.
struct HeadGraph {
    metadata: HeadMetadata,
    plan: Arc<Plan>,
    /// Output positions of `probabilities`, `h_out`, `c_out` in the plan's outputs.
    probabilities_at: usize,
    state_at: Option<(usize, usize)>,
}

/// A trained head (ONNX, run by tract) and, for an LSTM, its state carried between windows.
pub struct TrainedHead {
    graph: Arc<HeadGraph>,
    h: Option<Tensor>,
    c: Option<Tensor>,
}

fn invalid(path: &Path, reason: impl std::fmt::Display) -> HeadError {
    HeadError::Invalid {
        path: path.to_owned(),
        reason: reason.to_string(),
    }
}

impl TrainedHead {
    /// Loads the head described by `json` (its graph is `json` with the extension `.onnx`).
    /// Graphs are loaded once per process and shared.
    pub fn load(json: &Path) -> Result<Self, HeadError> {
        static CACHE: OnceLock<Mutex<HashMap<PathBuf, Weak<HeadGraph>>>> = OnceLock::new();
        let key = json.canonicalize().map_err(|e| invalid(json, e))?;
        let mut cache = CACHE
            .get_or_init(Default::default)
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let graph = match cache.get(&key).and_then(Weak::upgrade) {
            Some(graph) => graph,
            None => {
                let text = std::fs::read_to_string(json).map_err(|e| invalid(json, e))?;
                let metadata: HeadMetadata =
                    serde_json::from_str(&text).map_err(|e| invalid(json, e))?;
                let onnx_path = json.with_extension("onnx");
                let bytes = std::fs::read(&onnx_path).map_err(|e| invalid(&onnx_path, e))?;
                let graph = Arc::new(HeadGraph::new(metadata, &bytes, json)?);
                cache.insert(key, Arc::downgrade(&graph));
                graph
            }
        };
        drop(cache);
        let mut head = Self {
            graph,
            h: None,
            c: None,
        };
        head.reset();
        Ok(head)
    }

    /// Loads a head from its metadata and ONNX bytes (the built-in heads are compiled in).
    pub fn from_bytes(metadata_json: &str, onnx: &[u8], origin: &Path) -> Result<Self, HeadError> {
        let metadata: HeadMetadata =
            serde_json::from_str(metadata_json).map_err(|e| invalid(origin, e))?;
        let mut head = Self {
            graph: Arc::new(HeadGraph::new(metadata, onnx, origin)?),
            h: None,
            c: None,
        };
        head.reset();
        Ok(head)
    }

    pub fn metadata(&self) -> &HeadMetadata {
        &self.graph.metadata
    }

    /// Checks that the head reads embeddings of `backbone`.
    pub fn check_backbone(&self, backbone: BackboneKind) -> Result<(), HeadError> {
        let m = &self.graph.metadata;
        if m.backbone != backbone {
            return Err(HeadError::WrongBackbone {
                name: m.name.clone(),
                expected: m.backbone.name().into(),
                actual: backbone.name().into(),
            });
        }
        Ok(())
    }
}

impl HeadGraph {
    fn new(metadata: HeadMetadata, onnx: &[u8], origin: &Path) -> Result<Self, HeadError> {
        if metadata.format != HEAD_FORMAT {
            return Err(invalid(
                origin,
                format!("format `{}`, expected `{HEAD_FORMAT}`", metadata.format),
            ));
        }
        if metadata.labels.len() < 2 {
            return Err(invalid(origin, "a head needs at least two labels"));
        }
        if metadata.embedding_dim != metadata.backbone.embedding_dim() {
            return Err(invalid(
                origin,
                format!(
                    "embedding_dim {} does not match the {} backbone ({})",
                    metadata.embedding_dim,
                    metadata.backbone.name(),
                    metadata.backbone.embedding_dim()
                ),
            ));
        }
        let stateful = match (metadata.kind.as_str(), metadata.lstm) {
            ("lstm", Some(_)) => true,
            ("logistic", None) => false,
            (kind, lstm) => {
                return Err(invalid(
                    origin,
                    format!("kind `{kind}` with lstm shape {lstm:?}"),
                ))
            }
        };
        let fail = |e: TractError| invalid(origin, format!("{e:#}"));
        let mut model = tract_onnx::onnx()
            .model_for_read(&mut &onnx[..])
            .map_err(fail)?;
        let input_names: Vec<String> = model
            .input_outlets()
            .map_err(fail)?
            .iter()
            .map(|o| model.node(o.node).name.clone())
            .collect();
        let expected_inputs: &[&str] = if stateful {
            &["embedding", "h_in", "c_in"]
        } else {
            &["embedding"]
        };
        if input_names != expected_inputs {
            return Err(invalid(
                origin,
                format!("graph inputs {input_names:?}, expected {expected_inputs:?}"),
            ));
        }
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
        let output_names: Vec<String> = model
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
            output_names.iter().position(|n| n == name).ok_or_else(|| {
                invalid(
                    origin,
                    format!("graph has no output `{name}` (outputs: {output_names:?})"),
                )
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
        Ok(Self {
            metadata,
            plan,
            probabilities_at,
            state_at,
        })
    }
}

impl MoodHead for TrainedHead {
    fn labels(&self) -> &[String] {
        &self.graph.metadata.labels
    }

    fn reset(&mut self) {
        if let Some(shape) = self.graph.metadata.lstm {
            let zeros = || Tensor::zero::<f32>(&[shape.layers, 1, shape.hidden]).ok();
            self.h = zeros();
            self.c = zeros();
        }
    }

    fn step(&mut self, window: &BackboneOutput) -> Result<HeadReading, HeadError> {
        let m = &self.graph.metadata;
        let fail = |e: TractError| HeadError::Inference(format!("{e:#}"));
        if window.embedding.len() != m.embedding_dim {
            return Err(HeadError::Inference(format!(
                "embedding has {} values, head {} expects {}",
                window.embedding.len(),
                m.name,
                m.embedding_dim
            )));
        }
        let embedding =
            Tensor::from_shape(&[1, m.embedding_dim], &window.embedding).map_err(fail)?;
        let mut inputs: TVec<TValue> = tvec![embedding.into()];
        if let (Some(h), Some(c)) = (&self.h, &self.c) {
            inputs.push(h.clone().into());
            inputs.push(c.clone().into());
        }
        let outputs = self.graph.plan.run(inputs).map_err(fail)?;
        let probabilities = outputs[self.graph.probabilities_at]
            .to_plain_array_view::<f32>()
            .map_err(fail)?
            .iter()
            .copied()
            .collect::<Vec<f32>>();
        if probabilities.len() != m.labels.len() || probabilities.iter().any(|p| !p.is_finite()) {
            return Err(HeadError::Inference(format!(
                "head {} produced {probabilities:?}",
                m.name
            )));
        }
        if let Some((h_at, c_at)) = self.graph.state_at {
            self.h = Some(outputs[h_at].clone().into_tensor());
            self.c = Some(outputs[c_at].clone().into_tensor());
        }
        Ok(HeadReading {
            probabilities,
            presence: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn softmax_sums_to_one_and_keeps_order() {
        let mut v = [1.0f32, 3.0, -2.0, 0.5];
        softmax(&mut v);
        assert!((v.iter().sum::<f32>() - 1.0).abs() < 1e-6);
        assert!(v[1] > v[0] && v[0] > v[3] && v[3] > v[2]);
    }

    #[test]
    fn readout_picks_the_strongest_mood_and_reports_music() {
        let mut scores = vec![0.01f32; 521];
        scores[YAMNET_MOOD_ROWS[2]] = 0.6; // Angry music
        scores[YAMNET_MOOD_ROWS[0]] = 0.1;
        scores[YAMNET_MUSIC_ROW] = 0.9;
        let r = YamnetReadout::read(&scores).unwrap();
        let best = r
            .probabilities
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.total_cmp(b.1))
            .unwrap()
            .0;
        assert_eq!(MOODS[best], "Angry");
        assert_eq!(r.presence, Some(0.9));
        assert!((r.probabilities.iter().sum::<f32>() - 1.0).abs() < 1e-6);
    }

    #[test]
    fn readout_refuses_a_backbone_without_scores() {
        let mut head = YamnetReadout::default();
        let window = BackboneOutput {
            embedding: vec![0.0; 128],
            scores: None,
        };
        assert!(matches!(head.step(&window), Err(HeadError::NoScores)));
    }
}
