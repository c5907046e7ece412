//! Backbones: one 96x64 log-mel patch in, one embedding (and, for YAMNet, 521 AudioSet class
//! scores) out, run by tract from the ONNX files `cargo xtask install-models` writes.
//!
//! Two implementations behind one trait: YAMNet (1024-D embedding + scores) and VGGish (128-D
//! embedding, then PCA whitening and 8-bit quantization exactly as `vggish_postprocess.py`, so
//! that it lives in the same space as AudioSet's released embeddings). A loaded, optimised model
//! is shared (`Arc`) by every analyser in the process.

use std::sync::Arc;

use crate::features;
use crate::models::{ModelDir, ModelError};

/// Which network turns patches into embeddings.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BackboneKind {
    Yamnet,
    Vggish,
}

impl BackboneKind {
    pub fn name(self) -> &'static str {
        match self {
            BackboneKind::Yamnet => "yamnet",
            BackboneKind::Vggish => "vggish",
        }
    }

    /// The front end's log offset for this network.
    pub fn log_offset(self) -> f32 {
        match self {
            BackboneKind::Yamnet => features::YAMNET_LOG_OFFSET,
            BackboneKind::Vggish => features::VGGISH_LOG_OFFSET,
        }
    }

    /// Patch hop the network was trained with: 48 frames (0.48 s) for YAMNet, 96 (0.96 s) for VGGish.
    pub fn default_hop_frames(self) -> usize {
        match self {
            BackboneKind::Yamnet => 48,
            BackboneKind::Vggish => 96,
        }
    }

    pub fn embedding_dim(self) -> usize {
        match self {
            BackboneKind::Yamnet => 1024,
            BackboneKind::Vggish => 128,
        }
    }
}

impl std::str::FromStr for BackboneKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "yamnet" => Ok(BackboneKind::Yamnet),
            "vggish" => Ok(BackboneKind::Vggish),
            other => Err(format!("unknown backbone `{other}` (expected yamnet or vggish)")),
        }
    }
}

/// What a backbone makes of one patch.
#[derive(Clone, Debug, PartialEq)]
pub struct BackboneOutput {
    /// YAMNet: the 1024-D embedding. VGGish: the postprocessed embedding, dequantized
    /// (`q * 4 / 255 - 2` for the 8-bit value `q`), the space AudioSet's released features live in.
    pub embedding: Vec<f32>,
    /// YAMNet only: the 521 AudioSet class scores (sigmoid outputs), class-map order.
    pub scores: Option<Vec<f32>>,
}

#[derive(Debug, thiserror::Error)]
pub enum BackboneError {
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error("inference failed: {0}")]
    Inference(String),
}

/// A network that embeds patches. Implementations are immutable and shared between threads.
pub trait Backbone: Send + Sync {
    fn kind(&self) -> BackboneKind;
    /// Embeds one patch of `features::PATCH_LEN` values (frame-major).
    fn embed(&self, patch: &[f32]) -> Result<BackboneOutput, BackboneError>;
}

/// Loads (once per process and folder) and returns the backbone of `kind` from `dir`.
pub fn load(_kind: BackboneKind, _dir: &ModelDir) -> Result<Arc<dyn Backbone>, BackboneError> {
    todo!("backbone loading")
}
