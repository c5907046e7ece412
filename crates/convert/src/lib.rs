//! Model conversion: the official YAMNet `.tflite` and VGGish TensorFlow 1 checkpoint in,
//! ONNX graphs for tract out (written with `tract_onnx::pb`).
//!
//! - [`convert_yamnet`]: `yamnet.tflite` -> `yamnet.onnx`, the core network after YAMNet's
//!   in-graph log-mel front end: `patch` f32 [N, 96, 64] in; `scores` f32 [N, 521] (sigmoid) and
//!   `embedding` f32 [N, 1024] (mean-pooled features) out.
//! - [`convert_vggish`]: `vggish_model.ckpt` -> `vggish.onnx`: `patch` f32 [N, 96, 64] in;
//!   `embedding` f32 [N, 128] out (the raw network output, before PCA and quantization).
//!
//! Both check the written file by loading, optimising and running it in tract before they
//! return. Modules: [`tf_checkpoint`] (reading TensorFlow checkpoints), `tflite` (reading
//! TFLite flatbuffers), `onnx` (writing ONNX graphs), `yamnet` and `vggish` (the two networks).

mod onnx;
pub mod tf_checkpoint;
mod tflite;
mod vggish;
mod yamnet;

use std::path::{Path, PathBuf};
use std::time::Duration;

pub use onnx::external_data_path;
pub use vggish::{
    convert_vggish, write_vggish_with_seeded_weights, VGGISH_OFFICIAL_BYTES, VGGISH_OFFICIAL_SHA256,
};
pub use yamnet::convert_yamnet;

/// Frames per patch (0.96 s at a 10 ms hop).
pub const PATCH_FRAMES: usize = 96;
/// Mel bands per frame.
pub const PATCH_BANDS: usize = 64;

/// What a conversion produced.
#[derive(Debug, Clone, PartialEq)]
pub struct ConversionSummary {
    /// The ONNX file written.
    pub onnx: PathBuf,
    /// Its size in bytes, with its external data file when it has one (`external_data_path`).
    pub onnx_bytes: u64,
    /// SHA-256 of the source file (for V2 checkpoints: of the `.index` file), lowercase hex.
    pub source_sha256: String,
    /// Nodes in the ONNX graph.
    pub nodes: usize,
    /// Weights and biases in the ONNX graph.
    pub parameters: usize,
    /// Source weight tensors that were int8 and have been dequantized to float32.
    pub dequantized_tensors: usize,
    /// Time tract took to load and optimise the written file (informative).
    pub tract_load: Duration,
}

/// Why a conversion failed. Nothing is left at the output path when it does.
#[derive(Debug, thiserror::Error)]
pub enum ConvertError {
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write {}: {source}", path.display())]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{} is not a usable TFLite model: {reason}", path.display())]
    Tflite { path: PathBuf, reason: String },
    #[error("{source}{hint}")]
    Checkpoint {
        source: tf_checkpoint::CheckpointError,
        /// Extra context, e.g. the official file's size when the file looks truncated.
        hint: String,
    },
    #[error("{} does not hold the {network} network:\n  - {}", path.display(), problems.join("\n  - "))]
    UnexpectedModel {
        path: PathBuf,
        network: &'static str,
        problems: Vec<String>,
    },
    #[error("the converted model {} failed its check in tract: {reason}", path.display())]
    Check { path: PathBuf, reason: String },
}

/// SHA-256 of a file, lowercase hex.
pub fn sha256_file(path: &Path) -> std::io::Result<String> {
    use sha2::Digest;
    let mut file = std::fs::File::open(path)?;
    let mut hasher = sha2::Sha256::new();
    std::io::copy(&mut file, &mut hasher)?;
    Ok(hex(&hasher.finalize()))
}

/// SHA-256 of bytes in memory, lowercase hex.
fn sha256_bytes(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex(&sha2::Sha256::digest(bytes))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Writes `model` to `out` and checks it in tract; removes it again if the check fails.
fn write_and_check(
    model: tract_onnx::pb::ModelProto,
    out: &Path,
    weights: onnx::WeightsFile,
    outputs: &[(&str, usize)],
) -> Result<(u64, Duration), ConvertError> {
    let bytes = onnx::write_model(model, out, weights).map_err(|source| ConvertError::Write {
        path: out.to_path_buf(),
        source,
    })?;
    match onnx::check_in_tract(out, PATCH_FRAMES, PATCH_BANDS, outputs) {
        Ok(load) => Ok((bytes, load)),
        Err(reason) => {
            let _ = std::fs::remove_file(out);
            let _ = std::fs::remove_file(onnx::external_data_path(out));
            Err(ConvertError::Check {
                path: out.to_path_buf(),
                reason,
            })
        }
    }
}
