//! Heads: one backbone output (and the window's signal cues) per window in, mood probabilities,
//! valence and arousal out.
//!
//! Three kinds behind one trait:
//! - `CalibratedReadout` (the default): YAMNet's six mood logits and the window's signal cues
//!   (`cues`), read with constants fitted to listeners' votes on real music (Emotify). The mood
//!   is decided first, by per-mood offsets and a temperature on YAMNet's Happy, Sad, Angry and
//!   Scary music logits: pleasant, Sad, or tense (Angry or Scary, split by their own logits).
//!   Then an arousal axis (energetic against calm, a logistic regression) splits the pleasant
//!   mood into Happy and Calm, so that every quadrant of Russell's circumplex has a home and sad
//!   music stays Sad. Arousal and a valence axis (pleasant against unpleasant) are also read out.
//!   The constants are a small file with their provenance (`models/calibration/`, see
//!   `Calibration`).
//! - `YamnetReadout`: YAMNet's own AudioSet mood classes (rows 271–276 of the class map), a
//!   softmax over their logits: the uncalibrated readout (`analyze --uncalibrated`).
//! - `TrainedHead`: a head trained by `moodscope-train train` (or the AudioSet heads committed under
//!   `models/heads/`), an ONNX graph run by tract. An LSTM head carries its state (`h`, `c`) from
//!   window to window, so it reads a stream rather than isolated windows.
//!
//! Music presence comes from YAMNet's Music class (row 132) whenever YAMNet is the backbone.
//! Valence and arousal (−1..1) come from the calibrated axes, or else from the mood probabilities
//! placed on Russell's circumplex (`circumplex`).
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
use crate::cues::{WindowCues, CUE_NAMES};

/// The four moods of the study, in the order the AudioSet four-mood heads output them.
pub const MOODS: [&str; 4] = ["Happy", "Sad", "Angry", "Scary"];

/// YAMNet class-map row of "Music".
pub const YAMNET_MUSIC_ROW: usize = 132;

/// YAMNet's six music-mood classes (rows 271–276 of the class map), with the names Moodscope
/// shows (Tender music is shown as Calm).
pub const YAMNET_MOODS: [(&str, usize); 6] = [
    ("Happy", 271),
    ("Sad", 272),
    ("Calm", 273),
    ("Exciting", 274),
    ("Angry", 275),
    ("Scary", 276),
];

/// Format tag of trained-head metadata files.
pub const HEAD_FORMAT: &str = "moodscope-head/1";
/// Format tag of calibration files.
pub const CALIBRATION_FORMAT: &str = "moodscope-calibration/2";

/// Which moods a readout names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum MoodSet {
    /// The study's four: Happy, Sad, Angry, Scary.
    Four,
    /// Every quadrant of the circumplex: Happy, Sad, Calm, Angry, Scary (the default).
    #[default]
    Five,
    /// AudioSet's six music moods: Happy, Sad, Calm (Tender), Exciting, Angry, Scary.
    Six,
}

impl MoodSet {
    pub fn labels(self) -> &'static [&'static str] {
        match self {
            MoodSet::Four => &["Happy", "Sad", "Angry", "Scary"],
            MoodSet::Five => &["Happy", "Sad", "Calm", "Angry", "Scary"],
            MoodSet::Six => &["Happy", "Sad", "Calm", "Exciting", "Angry", "Scary"],
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            MoodSet::Four => "4",
            MoodSet::Five => "5",
            MoodSet::Six => "6",
        }
    }

    /// YAMNet class-map rows of the set's moods, in label order.
    pub fn yamnet_rows(self) -> Vec<usize> {
        self.labels()
            .iter()
            .map(|label| {
                YAMNET_MOODS
                    .iter()
                    .find(|(name, _)| name == label)
                    .map(|(_, row)| *row)
                    .expect("every mood of a set is one of YAMNet's")
            })
            .collect()
    }
}

impl std::str::FromStr for MoodSet {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "4" | "four" => Ok(MoodSet::Four),
            "5" | "five" => Ok(MoodSet::Five),
            "6" | "six" => Ok(MoodSet::Six),
            other => Err(format!("unknown mood set `{other}` (expected 4, 5 or 6)")),
        }
    }
}

/// What a head makes of one window.
#[derive(Clone, Debug, PartialEq)]
pub struct HeadReading {
    /// One probability per label, summing to 1.
    pub probabilities: Vec<f32>,
    /// How sure the head is that the window is music at all, 0–1, when it can tell.
    pub presence: Option<f32>,
    /// Valence and arousal, −1..1, when the head reads them itself (else `circumplex` places the
    /// probabilities).
    pub valence_arousal: Option<(f32, f32)>,
}

#[derive(Debug, thiserror::Error)]
pub enum HeadError {
    #[error("head file {}: {reason}", .path.display())]
    Invalid { path: PathBuf, reason: String },
    #[error("calibration file {}: {reason} (reinstall it with `{}`)", .path.display(), crate::models::INSTALL_HINT)]
    Calibration { path: PathBuf, reason: String },
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
    /// The decision group of each label, in label order: the dominant mood is chosen group first
    /// (the group with the most probability), then the most probable label in it. Every label
    /// is its own group, except where two labels share a quadrant of the circumplex and the
    /// head cannot tell them apart better than by splitting it (the calibrated readout's Angry
    /// and Scary).
    fn groups(&self) -> Vec<usize> {
        (0..self.labels().len()).collect()
    }
    /// Forgets everything heard so far (LSTM state back to zero).
    fn reset(&mut self);
    /// Reads one window.
    fn step(
        &mut self,
        window: &BackboneOutput,
        cues: &WindowCues,
    ) -> Result<HeadReading, HeadError>;
    /// A short name for the readout, shown to users and recorded with results
    /// (`yamnet-emotify-v2`, `yamnet-raw-5`, a head's name).
    fn name(&self) -> String;
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

fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

/// The logit of one of YAMNet's scores (its scores are sigmoids of independent logits).
pub fn yamnet_logit(scores: &[f32], row: usize) -> f32 {
    let p = scores[row].clamp(1e-7, 1.0 - 1e-7);
    (p / (1.0 - p)).ln()
}

/// Where a mood sits on Russell's circumplex: its angle, degrees, counter-clockwise from
/// "pleasant" (valence = cos, arousal = sin). From Russell (1980), "A circumplex model of
/// affect", the multidimensional-scaling placement of 28 affect words: happy 7.8°, excited
/// 48.6°, angry 99.0°, afraid 116.0°, sad 207.5°, calm 316.2°; "tender" is placed with calm,
/// "funny" with glad/happy.
pub fn circumplex_angle(label: &str) -> Option<f32> {
    match label.to_ascii_lowercase().as_str() {
        "happy" | "funny" => Some(7.8),
        "exciting" | "excited" => Some(48.6),
        "angry" | "tense" => Some(99.0),
        "scary" | "afraid" => Some(116.0),
        "sad" => Some(207.5),
        "calm" | "tender" => Some(316.2),
        _ => None,
    }
}

/// Valence and arousal (−1..1) of mood probabilities placed on the circumplex: the
/// probability-weighted mean of the moods' unit vectors. `None` when a label has no place on it
/// (a user-trained head with labels of its own).
pub fn circumplex(labels: &[String], probabilities: &[f32]) -> Option<(f32, f32)> {
    let mut valence = 0.0;
    let mut arousal = 0.0;
    for (label, p) in labels.iter().zip(probabilities) {
        let angle = circumplex_angle(label)?.to_radians();
        valence += p * angle.cos();
        arousal += p * angle.sin();
    }
    Some((valence, arousal))
}

/// YAMNet's own AudioSet mood classes, uncalibrated: a softmax over their logits.
pub struct YamnetReadout {
    set: MoodSet,
    rows: Vec<usize>,
    labels: Vec<String>,
}

impl YamnetReadout {
    pub fn new(set: MoodSet) -> Self {
        Self {
            set,
            rows: set.yamnet_rows(),
            labels: set.labels().iter().map(|s| s.to_string()).collect(),
        }
    }

    /// The readout computed from YAMNet's 521 class scores.
    pub fn read(&self, scores: &[f32]) -> Result<HeadReading, HeadError> {
        if scores.len() <= YAMNET_MOODS[5].1 {
            return Err(HeadError::NoScores);
        }
        // Recover the logits and compare the moods with a softmax, so they sum to one and keep
        // their relative evidence.
        let mut logits: Vec<f32> = self.rows.iter().map(|&r| yamnet_logit(scores, r)).collect();
        softmax(&mut logits);
        Ok(HeadReading {
            presence: Some(scores[YAMNET_MUSIC_ROW]),
            valence_arousal: circumplex(&self.labels, &logits),
            probabilities: logits,
        })
    }
}

impl Default for YamnetReadout {
    /// The study's four moods.
    fn default() -> Self {
        Self::new(MoodSet::Four)
    }
}

impl MoodHead for YamnetReadout {
    fn labels(&self) -> &[String] {
        &self.labels
    }

    fn reset(&mut self) {}

    fn step(
        &mut self,
        window: &BackboneOutput,
        _cues: &WindowCues,
    ) -> Result<HeadReading, HeadError> {
        self.read(window.scores.as_deref().ok_or(HeadError::NoScores)?)
    }

    fn name(&self) -> String {
        format!("yamnet-raw-{}", self.set.name())
    }
}

/// One calibrated axis: a logistic regression over the readout's inputs.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Axis {
    /// One weight per input, in `Calibration::inputs` order (standardisation folded in).
    pub weights: Vec<f32>,
    pub bias: f32,
}

impl Axis {
    /// The axis' log-odds for `inputs`.
    pub fn logit(&self, inputs: &[f32]) -> f32 {
        self.bias
            + self
                .weights
                .iter()
                .zip(inputs)
                .map(|(w, x)| w * x)
                .sum::<f32>()
    }
}

/// The calibration file (`models/calibration/NAME.json`): the constants of the calibrated
/// readout and where they come from.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Calibration {
    pub format: String,
    pub name: String,
    pub backbone: BackboneKind,
    /// `Calibration::LABELS`.
    pub labels: Vec<String>,
    /// `Calibration::INPUTS`: YAMNet's six mood logits, then the signal cues.
    pub inputs: Vec<String>,
    /// Energetic (1) against calm (0): the arousal read-out, and what splits the pleasant
    /// mood into Happy and Calm.
    pub arousal: Axis,
    /// Pleasant (1) against unpleasant (0): the valence read-out.
    pub valence: Axis,
    /// The mood decision: offsets added to YAMNet's Happy, Sad, Angry and Scary music logits
    /// (inputs 0, 1, 4, 5) once divided by `temperature`; their softmax gives the pleasant mood
    /// (Happy's row: YAMNet's Happy music is heard on calm pleasant music too), Sad, and the
    /// tense quadrant (Angry + Scary). Happy's offset is 0.
    pub mood_offsets: [f32; 4],
    pub temperature: f32,
    /// Offsets added to YAMNet's Angry and Scary music logits before they split the tense
    /// quadrant between them (centred on the calibration music: no label tells them apart).
    pub angry_offset: f32,
    pub scary_offset: f32,
    /// Provenance, figures, citation and terms: kept and shown, never read by the readout.
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

impl Calibration {
    pub const LABELS: [&'static str; 5] = ["Happy", "Sad", "Calm", "Angry", "Scary"];
    /// The readout's inputs, in order.
    pub fn input_names() -> Vec<String> {
        YAMNET_MOODS
            .iter()
            .map(|(name, row)| format!("yamnet_logit:{row}:{}", name.to_ascii_lowercase()))
            .chain(CUE_NAMES.iter().map(|c| format!("cue:{c}")))
            .collect()
    }

    /// Reads and checks a calibration file.
    pub fn load(path: &Path) -> Result<Self, HeadError> {
        let text = std::fs::read_to_string(path).map_err(|e| bad_calibration(path, e))?;
        Self::parse(&text, path)
    }

    pub fn parse(text: &str, origin: &Path) -> Result<Self, HeadError> {
        let c: Calibration = serde_json::from_str(text).map_err(|e| bad_calibration(origin, e))?;
        let problem = if c.format != CALIBRATION_FORMAT {
            Some(format!(
                "format `{}`, expected `{CALIBRATION_FORMAT}`",
                c.format
            ))
        } else if c.backbone != BackboneKind::Yamnet {
            Some("the calibrated readout reads YAMNet's scores".into())
        } else if c.labels != Self::LABELS {
            Some(format!(
                "labels {:?}, expected {:?}",
                c.labels,
                Self::LABELS
            ))
        } else if c.inputs != Self::input_names() {
            Some(format!(
                "inputs {:?}, expected {:?}",
                c.inputs,
                Self::input_names()
            ))
        } else if c.arousal.weights.len() != c.inputs.len()
            || c.valence.weights.len() != c.inputs.len()
        {
            Some("each axis needs one weight per input".into())
        } else if c
            .arousal
            .weights
            .iter()
            .chain(&c.valence.weights)
            .chain([
                &c.arousal.bias,
                &c.valence.bias,
                &c.angry_offset,
                &c.scary_offset,
                &c.temperature,
            ])
            .chain(&c.mood_offsets)
            .any(|v| !v.is_finite())
        {
            Some("a constant is not a finite number".into())
        } else if c.temperature <= 0.0 {
            Some(format!("temperature {}, expected above 0", c.temperature))
        } else {
            None
        };
        match problem {
            Some(reason) => Err(bad_calibration(origin, reason)),
            None => Ok(c),
        }
    }

    /// The readout's inputs for one window: YAMNet's six mood logits, then the cues.
    pub fn inputs_of(scores: &[f32], cues: &WindowCues) -> Result<[f32; 10], HeadError> {
        if scores.len() <= YAMNET_MOODS[5].1 {
            return Err(HeadError::NoScores);
        }
        let mut x = [0.0f32; 10];
        for (slot, (_, row)) in x.iter_mut().zip(YAMNET_MOODS) {
            *slot = yamnet_logit(scores, row);
        }
        x[6..].copy_from_slice(&cues.values());
        Ok(x)
    }

    /// The five mood probabilities, valence and arousal of one window's inputs.
    ///
    /// The mood first: the softmax of YAMNet's Happy, Sad, Angry and Scary music logits, each
    /// divided by the temperature and offset, gives the pleasant mood `h`, Sad `s` and the
    /// tense quadrant `t` (Angry + Scary). Then arousal `a` (the arousal axis' probability)
    /// splits the pleasant mood into Happy `h·a` and Calm `h·(1 − a)`; Angry and Scary split `t`
    /// by their own centred logits. Happy and Calm form one decision group
    /// (`CalibratedReadout::groups`), so the dominant mood is the offsets' decision, and a
    /// pleasant one is Calm when the music is calm. Sad music stays Sad: Calm never takes from
    /// Sad. Valence is the valence axis' probability and arousal `a`, each mapped to −1..1.
    pub fn read(&self, x: &[f32; 10]) -> ([f32; 5], f32, f32) {
        let arousal = sigmoid(self.arousal.logit(x));
        let valence = sigmoid(self.valence.logit(x));
        // Inputs 0, 1, 4 and 5 are the Happy, Sad, Angry and Scary music logits.
        let mut mood = [x[0], x[1], x[4], x[5]];
        for (m, offset) in mood.iter_mut().zip(self.mood_offsets) {
            *m = *m / self.temperature + offset;
        }
        softmax(&mut mood);
        let [pleasant, sad, angry, scary] = mood;
        let tense = angry + scary;
        let angry_share = sigmoid((x[4] + self.angry_offset) - (x[5] + self.scary_offset));
        let probabilities = [
            pleasant * arousal,
            sad,
            pleasant * (1.0 - arousal),
            tense * angry_share,
            tense * (1.0 - angry_share),
        ];
        (probabilities, 2.0 * valence - 1.0, 2.0 * arousal - 1.0)
    }
}

/// Decision groups of `Calibration::LABELS`: Happy and Calm, Sad, Angry and Scary.
pub const CALIBRATED_GROUPS: [usize; 5] = [0, 1, 0, 2, 2];

/// YAMNet's mood logits and the signal cues, read by the calibrated mood rule and axes.
pub struct CalibratedReadout {
    calibration: Arc<Calibration>,
    labels: Vec<String>,
}

impl CalibratedReadout {
    pub fn new(calibration: Arc<Calibration>) -> Self {
        Self {
            labels: calibration.labels.clone(),
            calibration,
        }
    }

    pub fn calibration(&self) -> &Calibration {
        &self.calibration
    }
}

impl MoodHead for CalibratedReadout {
    fn labels(&self) -> &[String] {
        &self.labels
    }

    /// Happy and Calm share the pleasant mood (arousal splits it), Angry and Scary the tense
    /// quadrant.
    fn groups(&self) -> Vec<usize> {
        CALIBRATED_GROUPS.to_vec()
    }

    fn reset(&mut self) {}

    fn step(
        &mut self,
        window: &BackboneOutput,
        cues: &WindowCues,
    ) -> Result<HeadReading, HeadError> {
        let scores = window.scores.as_deref().ok_or(HeadError::NoScores)?;
        let x = Calibration::inputs_of(scores, cues)?;
        let (probabilities, valence, arousal) = self.calibration.read(&x);
        Ok(HeadReading {
            probabilities: probabilities.to_vec(),
            presence: Some(scores[YAMNET_MUSIC_ROW]),
            valence_arousal: Some((valence, arousal)),
        })
    }

    fn name(&self) -> String {
        self.calibration.name.clone()
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

fn bad_calibration(path: &Path, reason: impl std::fmt::Display) -> HeadError {
    HeadError::Calibration {
        path: path.to_owned(),
        reason: reason.to_string(),
    }
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

    fn name(&self) -> String {
        self.graph.metadata.name.clone()
    }

    fn step(
        &mut self,
        window: &BackboneOutput,
        _cues: &WindowCues,
    ) -> Result<HeadReading, HeadError> {
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
            valence_arousal: circumplex(&m.labels, &probabilities),
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
        scores[275] = 0.6; // Angry music
        scores[271] = 0.1;
        scores[YAMNET_MUSIC_ROW] = 0.9;
        for set in [MoodSet::Four, MoodSet::Five, MoodSet::Six] {
            let r = YamnetReadout::new(set).read(&scores).unwrap();
            let best = r
                .probabilities
                .iter()
                .enumerate()
                .max_by(|a, b| a.1.total_cmp(b.1))
                .unwrap()
                .0;
            assert_eq!(set.labels()[best], "Angry");
            assert_eq!(r.presence, Some(0.9));
            assert_eq!(r.probabilities.len(), set.labels().len());
            assert!((r.probabilities.iter().sum::<f32>() - 1.0).abs() < 1e-6);
            let (valence, arousal) = r.valence_arousal.unwrap();
            assert!(valence < 0.0 && arousal > 0.5, "{valence} {arousal}");
        }
    }

    #[test]
    fn readout_refuses_a_backbone_without_scores() {
        let mut head = YamnetReadout::default();
        let window = BackboneOutput {
            embedding: vec![0.0; 128],
            scores: None,
        };
        assert!(matches!(
            head.step(&window, &WindowCues::default()),
            Err(HeadError::NoScores)
        ));
    }

    #[test]
    fn the_circumplex_places_each_mood_in_its_quadrant() {
        let labels: Vec<String> = MoodSet::Six
            .labels()
            .iter()
            .map(|s| s.to_string())
            .collect();
        let quadrant = |mood: &str| {
            let p: Vec<f32> = labels.iter().map(|l| f32::from(l == mood)).collect();
            let (v, a) = circumplex(&labels, &p).unwrap();
            (v > 0.0, a > 0.0)
        };
        assert_eq!(quadrant("Happy"), (true, true));
        assert_eq!(quadrant("Exciting"), (true, true));
        assert_eq!(quadrant("Angry"), (false, true));
        assert_eq!(quadrant("Scary"), (false, true));
        assert_eq!(quadrant("Sad"), (false, false));
        assert_eq!(quadrant("Calm"), (true, false));
        assert_eq!(circumplex(&["Jazzy".to_string()], &[1.0]), None);
    }

    fn calibration(arousal_bias: f32, valence_bias: f32) -> Calibration {
        Calibration {
            format: CALIBRATION_FORMAT.into(),
            name: "test".into(),
            backbone: BackboneKind::Yamnet,
            labels: Calibration::LABELS.iter().map(|s| s.to_string()).collect(),
            inputs: Calibration::input_names(),
            arousal: Axis {
                weights: vec![0.0; 10],
                bias: arousal_bias,
            },
            valence: Axis {
                weights: vec![0.0; 10],
                bias: valence_bias,
            },
            mood_offsets: [0.0; 4],
            temperature: 1.0,
            angry_offset: 0.0,
            scary_offset: 0.0,
            extra: Default::default(),
        }
    }

    /// Inputs with the given Happy, Sad, Angry and Scary music logits (the rest 0).
    fn logits(happy: f32, sad: f32, angry: f32, scary: f32) -> [f32; 10] {
        [happy, sad, 0.0, 0.0, angry, scary, 0.0, 0.0, 0.0, 0.0]
    }

    #[test]
    fn the_calibrated_readout_decides_the_mood_then_splits_the_pleasant_one_by_arousal() {
        let dominant = |p: &[f32; 5]| crate::engine::dominant_of(p, &CALIBRATED_GROUPS);
        // Happy music that is energetic reads Happy; the same music, calm, reads Calm.
        let x = logits(3.0, 0.0, 0.0, 0.0);
        let (p, valence, arousal) = calibration(2.0, 1.0).read(&x);
        assert!((p.iter().sum::<f32>() - 1.0).abs() < 1e-6);
        assert_eq!(dominant(&p), 0, "{p:?}");
        assert!(valence > 0.4 && arousal > 0.7);
        let (p, _, arousal) = calibration(-2.0, 1.0).read(&x);
        assert_eq!(dominant(&p), 2, "{p:?}");
        assert!(arousal < -0.7);
        // Happy and Calm decide as one: a pleasant window that arousal splits nearly evenly
        // still beats a Sad share larger than either half.
        let x = logits(0.4, 0.0, -9.0, -9.0);
        let (p, ..) = calibration(0.1, 0.0).read(&x);
        assert!(p[1] > p[0] && p[1] > p[2], "{p:?}");
        assert_eq!(dominant(&p), 0, "{p:?}");
        // Sad music stays Sad however calm it is; Calm never takes from Sad.
        let x = logits(0.0, 3.0, 0.0, 0.0);
        for arousal_bias in [-4.0, 0.0, 4.0] {
            let (p, ..) = calibration(arousal_bias, 4.0).read(&x);
            assert_eq!(dominant(&p), 1, "{p:?}");
            let (q, ..) = calibration(arousal_bias, -4.0).read(&x);
            assert_eq!(p[1], q[1], "valence never moves a mood");
        }
        // Tense music: the tense quadrant, Angry and Scary by their own logits.
        let (p, ..) = calibration(0.0, 0.0).read(&logits(0.0, 0.0, 3.0, 3.0));
        assert!((p[3] - p[4]).abs() < 1e-6 && p[3] + p[4] > 0.7, "{p:?}");
        let (p, ..) = calibration(0.0, 0.0).read(&logits(0.0, 0.0, 3.0, 1.0));
        assert_eq!(dominant(&p), 3, "{p:?}");
        // The offsets move the decision; the temperature flattens it.
        let mut c = calibration(1.0, 0.0);
        let x = logits(1.0, 0.5, -9.0, -9.0);
        assert_eq!(dominant(&c.read(&x).0), 0);
        c.mood_offsets[1] = 1.0;
        assert_eq!(dominant(&c.read(&x).0), 1);
        c.temperature = 100.0;
        let (p, ..) = c.read(&x);
        assert!(p[1] < 0.5 && p[1] > p[0] + p[2], "{p:?}");
    }

    #[test]
    fn a_calibration_file_is_checked_before_use() {
        let good = serde_json::to_string(&calibration(0.0, 0.0)).unwrap();
        let origin = Path::new("cal.json");
        assert!(Calibration::parse(&good, origin).is_ok());
        let mut wrong = calibration(0.0, 0.0);
        wrong.valence.weights.pop();
        let err = Calibration::parse(&serde_json::to_string(&wrong).unwrap(), origin).unwrap_err();
        assert!(err.to_string().contains("one weight per input"), "{err}");
        let err = Calibration::parse("{\"format\": 3}", origin).unwrap_err();
        assert!(
            err.to_string().starts_with("calibration file cal.json"),
            "{err}"
        );
        let nan = good.replacen("\"bias\":0.0", "\"bias\":1e99", 1);
        assert!(Calibration::parse(&nan, origin).is_err());
        let mut cold = calibration(0.0, 0.0);
        cold.temperature = 0.0;
        let err = Calibration::parse(&serde_json::to_string(&cold).unwrap(), origin).unwrap_err();
        assert!(err.to_string().contains("temperature 0"), "{err}");
    }
}
