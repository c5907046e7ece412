//! Model files: where they live and what is wrong when they are not usable.
//!
//! In: nothing but the environment (`MOODSCOPE_MODELS`, `XDG_DATA_HOME`/`HOME`) or an explicit
//! folder. Out: paths of the installed files, or an error a user can act on
//! ("model files not installed: run …"). Installation itself is `cargo xtask install-models`.

use std::path::{Path, PathBuf};

/// YAMNet core network converted to ONNX: `patch` [N,96,64] in; `scores` [N,521], `embedding` [N,1024] out.
pub const YAMNET_ONNX: &str = "yamnet.onnx";
/// YAMNet's 521 class names, index order.
pub const YAMNET_CLASS_MAP: &str = "yamnet_class_map.csv";
/// VGGish network converted to ONNX: `patch` [N,96,64] in; `embedding` [N,128] out (before PCA).
pub const VGGISH_ONNX: &str = "vggish.onnx";
/// VGGish PCA whitening parameters (`pca_means`, `pca_eigen_vectors`).
pub const VGGISH_PCA: &str = "vggish_pca_params.npz";

/// The calibration of the default (YAMNet, five-mood) readout: fitted on listener-labelled
/// music, installed from the repository's `models/calibration/`.
pub const CALIBRATION: &str = "calibration/yamnet-emotify.json";

/// The command that installs the model files, quoted in error messages.
pub const INSTALL_HINT: &str = "cargo xtask install-models";

#[derive(Clone, Debug, thiserror::Error)]
pub enum ModelError {
    #[error("model file {} is not installed: run `{INSTALL_HINT}`", .0.display())]
    Missing(PathBuf),
    #[error("model file {} is unreadable or corrupt ({reason}): reinstall it with `{INSTALL_HINT}`", .path.display())]
    Corrupt { path: PathBuf, reason: String },
}

/// The folder model files are read from.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ModelDir(PathBuf);

impl ModelDir {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self(path.into())
    }

    /// `MOODSCOPE_MODELS` if set; else `./models` when it holds installed models; else the
    /// per-user data folder (`$XDG_DATA_HOME/moodscope/models`, `~/.local/share/moodscope/models`),
    /// which is where the plugin looks.
    pub fn locate() -> Self {
        if let Some(dir) = std::env::var_os("MOODSCOPE_MODELS") {
            return Self::new(dir);
        }
        let local = PathBuf::from("models");
        if local.join(YAMNET_ONNX).is_file() || local.join(VGGISH_ONNX).is_file() {
            return Self::new(local);
        }
        Self::new(user_models_dir())
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    /// Path of `name` in the folder, or `ModelError::Missing` when there is no such file.
    pub fn file(&self, name: &str) -> Result<PathBuf, ModelError> {
        let path = self.0.join(name);
        if path.is_file() {
            Ok(path)
        } else {
            Err(ModelError::Missing(path))
        }
    }
}

/// `$XDG_DATA_HOME/moodscope/models`, or `~/.local/share/moodscope/models`.
pub fn user_models_dir() -> PathBuf {
    let data = std::env::var_os("XDG_DATA_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/share")))
        .unwrap_or_else(|| PathBuf::from("."));
    data.join("moodscope").join("models")
}
