//! Mood heads: sequences of embeddings with labels in; trained heads, their cross-validated
//! figures and their streaming ONNX export out.
//!
//! - [`audioset`]: AudioSet's released VGGish embeddings (TFRecord of `SequenceExample`) → clips
//!   → the study's four-mood task, or six moods with Calm ([`MoodSet`]) ([`tfrecord`] does the
//!   framing and checksums, [`proto`] holds the message types).
//! - [`dataset`]: labelled sequences of embeddings, from any source; stratified folds.
//! - [`spec`]: what a head is and how it is trained ([`HeadSpec`], with the study's presets).
//! - [`train`]: training in candle → [`TrainedHead`]; [`net`] is the network itself.
//! - [`cv`]: repeated stratified k-fold cross-validation → [`CvReport`]; [`metrics`] the figures;
//!   [`plot`] draws them (PNG).
//! - [`nested`]: nested cross-validation of families of candidate heads (every choice made on
//!   inner folds, the outer folds only measure) → [`nested::FamilyReport`], paired comparisons.
//! - [`export`]: a trained head → `NAME.onnx` + `NAME.json`, the streaming head the plugin runs;
//!   [`stream`] loads such a file into tract and measures it on any dataset ([`evaluate`]).
//! - [`calibration`]: the few constants of a calibrated readout (logistic axes, offsets), fitted
//!   on windows with their clip's label, and the figures of agreement (rank correlation, AUC).
//! - [`experiment`]: the study's Table 1 and the six-mood set rerun by nested cross-validation,
//!   the ship decision, figures, and the exported AudioSet heads (`crates/train-cli/examples/table1.rs`).

pub mod audioset;
pub mod calibration;
pub mod cv;
pub mod dataset;
pub mod experiment;
pub mod export;
pub mod metrics;
pub mod nested;
pub mod net;
pub mod plot;
pub mod proto;
pub mod spec;
pub mod stream;
pub mod tfrecord;
pub mod train;

pub use audioset::MoodSet;
pub use cv::{cross_validate, CvReport};
pub use dataset::{Dataset, Sequence};
pub use export::{export_head, EmbeddingSource, HeadMetadata};
pub use nested::{nested_cross_validate, Family, NestedOptions};
pub use plot::{plot_confusion, plot_curves, plot_cv_confusion};
pub use spec::{ClipDecision, HeadKind, HeadSpec, LrSchedule, WindowLoss};
pub use stream::{evaluate, EvalReport, StreamingHead};
pub use train::{train, Progress, TrainError, TrainedHead};
