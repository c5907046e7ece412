//! The plugin's host parameters and persisted settings.
//!
//! In: the host (automation, session restore) and later the editor. Out: `AnalysisSettings`
//! (what to build: backbone, head, hop) and `SmoothingSettings` (how to smooth), read by the
//! worker whenever it looks — parameters are atomics, so any thread may read them.
//!
//! Sensitivity maps onto the smoother's two thresholds, linearly, so that 50 % is the engine's
//! default (`SmoothingSettings::default()`: hysteresis 0.10, presence threshold 0.30):
//! - hysteresis (how far a challenger must lead the dominant mood to replace it) = 0.2 × (1 − s);
//! - presence threshold (below which there is "no music" and no dominant mood) = 0.6 × (1 − s).
//!
//! At 100 % the dominant mood follows every change and is reported whenever there is any sound;
//! at 0 % a mood needs a 0.2 lead to take over and presence must reach 0.6.

use std::path::PathBuf;
use std::sync::{Arc, RwLock};

use nice_plug::prelude::*;

use crate::backbone::BackboneKind;
use crate::engine::{HeadChoice, SmoothingSettings};

/// Which backbone listens.
#[derive(Enum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum BackboneParam {
    #[id = "yamnet"]
    #[name = "YAMNet"]
    Yamnet,
    #[id = "vggish"]
    #[name = "VGGish"]
    Vggish,
}

impl BackboneParam {
    pub fn kind(self) -> BackboneKind {
        match self {
            BackboneParam::Yamnet => BackboneKind::Yamnet,
            BackboneParam::Vggish => BackboneKind::Vggish,
        }
    }
}

/// Time between window starts. Windows are always 0.96 s long; a shorter hop updates more often
/// and costs proportionally more.
#[derive(Enum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum HopParam {
    /// The hop the backbone was trained with: 0.48 s for YAMNet, 0.96 s for VGGish.
    #[id = "auto"]
    #[name = "Backbone's own"]
    BackboneDefault,
    #[id = "0.24"]
    #[name = "0.24 s"]
    Quarter,
    #[id = "0.48"]
    #[name = "0.48 s"]
    Half,
    #[id = "0.96"]
    #[name = "0.96 s"]
    Whole,
}

impl HopParam {
    /// Frames (10 ms each) between window starts, or `None` for the backbone's own.
    pub fn frames(self) -> Option<usize> {
        match self {
            HopParam::BackboneDefault => None,
            HopParam::Quarter => Some(24),
            HopParam::Half => Some(48),
            HopParam::Whole => Some(96),
        }
    }
}

/// Which head reads the embeddings.
#[derive(Enum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeadParam {
    /// YAMNet's own mood classes, or the shipped AudioSet LSTM head for VGGish.
    #[id = "default"]
    #[name = "Default"]
    Default,
    /// The head file saved with the session (`head-file`).
    #[id = "file"]
    #[name = "Head file"]
    File,
}

/// The parameters a user sets; all are persisted with the host session.
#[derive(Params)]
pub struct MoodscopeParams {
    /// Time constant of the exponential smoothing of the moods, seconds.
    #[id = "smoothing"]
    pub smoothing: FloatParam,
    /// How readily the dominant mood changes and how little music it takes to report one, %.
    #[id = "sensitivity"]
    pub sensitivity: FloatParam,
    #[id = "hop"]
    pub hop: EnumParam<HopParam>,
    #[id = "backbone"]
    pub backbone: EnumParam<BackboneParam>,
    #[id = "head"]
    pub head: EnumParam<HeadParam>,
    /// Path of a head file written by `moodscope train` (`NAME.json`), used when `head` is
    /// `File`. Not a parameter (hosts cannot automate paths); saved with the session.
    #[persist = "head-file"]
    pub head_file: Arc<RwLock<Option<PathBuf>>>,
}

/// Longest smoothing time constant, seconds.
pub const MAX_SMOOTHING_SECONDS: f32 = 30.0;

impl Default for MoodscopeParams {
    fn default() -> Self {
        let defaults = SmoothingSettings::default();
        Self {
            smoothing: FloatParam::new(
                "Smoothing",
                defaults.time_constant_seconds,
                FloatRange::Skewed {
                    min: 0.0,
                    max: MAX_SMOOTHING_SECONDS,
                    factor: FloatRange::skew_factor(-2.0),
                },
            )
            .with_unit(" s")
            .with_step_size(0.01)
            .with_value_to_string(formatters::v2s_f32_rounded(2)),
            sensitivity: FloatParam::new(
                "Sensitivity",
                0.5,
                FloatRange::Linear { min: 0.0, max: 1.0 },
            )
            .with_unit(" %")
            .with_value_to_string(formatters::v2s_f32_percentage(0))
            .with_string_to_value(formatters::s2v_f32_percentage()),
            hop: EnumParam::new("Window hop", HopParam::BackboneDefault).non_automatable(),
            backbone: EnumParam::new("Backbone", BackboneParam::Yamnet).non_automatable(),
            head: EnumParam::new("Head", HeadParam::Default).non_automatable(),
            head_file: Arc::new(RwLock::new(None)),
        }
    }
}

/// What the worker builds its analyser from. Changing any of it restarts the analysis.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AnalysisSettings {
    pub backbone: BackboneKind,
    pub head: HeadChoice,
    pub hop_frames: Option<usize>,
}

impl MoodscopeParams {
    /// Current backbone, head and hop. Reads a lock for the head file: not for the audio thread.
    pub fn analysis_settings(&self) -> AnalysisSettings {
        let head = match self.head.value() {
            HeadParam::Default => HeadChoice::Default,
            HeadParam::File => match self
                .head_file
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .clone()
            {
                Some(path) => HeadChoice::File(path),
                // "Head file" chosen but none set yet: the default head until one is.
                None => HeadChoice::Default,
            },
        };
        AnalysisSettings {
            backbone: self.backbone.value().kind(),
            head,
            hop_frames: self.hop.value().frames(),
        }
    }

    /// Smoothing time constant and the thresholds the sensitivity maps to (see the module doc).
    pub fn smoothing_settings(&self) -> SmoothingSettings {
        smoothing_settings(self.smoothing.value(), self.sensitivity.value())
    }
}

/// Smoothing settings for a time constant (s) and a sensitivity (0–1), as documented above.
pub fn smoothing_settings(time_constant_seconds: f32, sensitivity: f32) -> SmoothingSettings {
    let reluctance = 1.0 - sensitivity.clamp(0.0, 1.0);
    SmoothingSettings {
        time_constant_seconds: time_constant_seconds.clamp(0.0, MAX_SMOOTHING_SECONDS),
        hysteresis: 0.2 * reluctance,
        presence_threshold: 0.6 * reluctance,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_sensitivity_is_the_engines_default_smoothing() {
        let params = MoodscopeParams::default();
        let s = params.smoothing_settings();
        let d = SmoothingSettings::default();
        assert_eq!(s.time_constant_seconds, d.time_constant_seconds);
        assert!((s.hysteresis - d.hysteresis).abs() < 1e-6, "{s:?}");
        assert!(
            (s.presence_threshold - d.presence_threshold).abs() < 1e-6,
            "{s:?}"
        );
    }

    #[test]
    fn full_sensitivity_removes_both_thresholds() {
        let s = smoothing_settings(1.0, 1.0);
        assert_eq!((s.hysteresis, s.presence_threshold), (0.0, 0.0));
        let s = smoothing_settings(100.0, -3.0);
        assert_eq!(s.time_constant_seconds, MAX_SMOOTHING_SECONDS);
        assert!((s.hysteresis - 0.2).abs() < 1e-6 && (s.presence_threshold - 0.6).abs() < 1e-6);
    }

    #[test]
    fn a_head_file_is_used_only_when_chosen_and_set() {
        let params = MoodscopeParams::default();
        *params.head_file.write().unwrap() = Some(PathBuf::from("/heads/mine.json"));
        assert_eq!(params.analysis_settings().head, HeadChoice::Default);
        assert_eq!(params.analysis_settings().backbone, BackboneKind::Yamnet);
        assert_eq!(params.analysis_settings().hop_frames, None);
    }
}
