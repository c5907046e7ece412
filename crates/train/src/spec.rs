//! What a head is and how it is trained: [`HeadSpec`], with presets for the study's three heads,
//! the clip-mean logistic-regression baseline and Moodscope's streaming head.

use serde::{Deserialize, Serialize};

/// The head's network.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HeadKind {
    /// Multinomial logistic regression on one embedding: stateless.
    Logistic,
    /// `layers` stacked LSTMs of `hidden` units, then a linear layer and a softmax on the last
    /// layer's output. Its state is carried from window to window.
    Lstm { layers: usize, hidden: usize },
}

/// Which outputs the training loss looks at, which also says how a clip is decided.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WindowLoss {
    /// Logistic only: the loss is on the mean of the window logits — logistic regression on the
    /// clip-mean embedding. A clip is decided by the mean of its windows' log-probabilities
    /// (the same decision, computed from the per-window outputs).
    ClipMean,
    /// Every window is a training example with its clip's label (the loss on each clip sums to
    /// one). Logistic: a clip is decided by the mean of its windows' probabilities (the study's
    /// per-second regression). LSTM: by the output at its last window.
    EveryWindow,
    /// LSTM only: the output at the clip's last window (final state → linear → softmax), as in
    /// the study. A clip is decided by that output.
    LastWindow,
}

/// How a clip's label is decided from the head's per-window outputs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClipDecision {
    /// The probabilities after the last window (LSTM heads: the state has heard the whole clip).
    LastWindow,
    /// The mean of the windows' probabilities.
    MeanProbabilities,
    /// The softmax of the mean of the windows' log-probabilities (for a logistic head, the same
    /// as the regression on the clip-mean embedding).
    MeanLogProbabilities,
}

/// Learning rate over the epochs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LrSchedule {
    Constant,
    /// Half a cosine from the learning rate down to zero at the last epoch.
    Cosine,
}

/// Everything that defines a head and its training. Training is a function of the data and this
/// spec alone: the same spec (seed included) on the same data gives the same head.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HeadSpec {
    /// Short name used in reports, plots and file names (`lstm1`, `streaming`, ...).
    pub name: String,
    pub kind: HeadKind,
    pub loss: WindowLoss,
    pub epochs: usize,
    /// Clips per mini-batch; batches are reshuffled every epoch.
    pub batch_size: usize,
    /// Adam(W) step size.
    pub learning_rate: f64,
    pub lr_schedule: LrSchedule,
    /// Decoupled weight decay (AdamW); 0 = plain Adam.
    pub weight_decay: f64,
    /// L2 penalty in the loss: `l2 / 2` times the sum of the squared weights (not the biases),
    /// added to the batch's mean cross-entropy. For a logistic head this is ridge-regularised
    /// logistic regression (scikit-learn's `C` is `1 / (l2 · clips)`). 0 = off.
    #[serde(default)]
    pub l2: f64,
    /// Standardise each embedding dimension with the training windows' mean and standard
    /// deviation (the exported graph does the same, so the head takes raw embeddings).
    pub normalise: bool,
    /// Dropout on the (normalised) input embeddings while training.
    pub input_dropout: f32,
    /// Dropout on each LSTM layer's output while training.
    pub dropout: f32,
    /// mixup (Zhang et al. 2018): each training clip is blended with another of the batch,
    /// weights λ ~ Beta(α, α), labels blended alike. 0 = off.
    pub mixup_alpha: f32,
    /// Streaming training (LSTM): before each training clip, the state first hears the last
    /// 0..=`stream_prefix` windows (uniformly drawn) of another training clip, whose windows are
    /// not scored, so the head learns to let go of what it heard before. 0 = off.
    pub stream_prefix: usize,
    /// With [`WindowLoss::EveryWindow`] on an LSTM: windows of a clip before this index are not
    /// scored (the state has barely heard the clip).
    pub loss_from_window: usize,
    /// Members trained with different seeds and averaged (their logits); an LSTM ensemble is
    /// exported as one wider LSTM with block-diagonal weights, so it streams like a single head.
    pub ensemble: usize,
    pub seed: u64,
    /// Clips longer than this many windows are cut, for each training step, to a random
    /// contiguous stretch of this many windows (long recordings, e.g. whole songs). 0 = off.
    /// Validation and clip decisions always see whole clips.
    #[serde(default)]
    pub crop_windows: usize,
    /// How a clip is decided, when not the kind's default (see [`HeadSpec::clip_decision`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decision: Option<ClipDecision>,
}

impl HeadSpec {
    fn study(name: &str, kind: HeadKind, loss: WindowLoss) -> Self {
        Self {
            name: name.into(),
            kind,
            loss,
            epochs: 100,
            batch_size: 40,
            learning_rate: 1e-3,
            lr_schedule: LrSchedule::Constant,
            weight_decay: 0.0,
            l2: 0.0,
            normalise: false,
            input_dropout: 0.0,
            dropout: 0.0,
            mixup_alpha: 0.0,
            stream_prefix: 0,
            loss_from_window: 0,
            ensemble: 1,
            seed: 1,
            crop_windows: 0,
            decision: None,
        }
    }

    /// The study's multinomial logistic regression, classifying the sequence: each second is a
    /// training example with its clip's label, and a clip is decided by the mean of its seconds'
    /// probabilities. Adam, mini-batches of 40 clips.
    pub fn study_logistic() -> Self {
        Self::study("logistic", HeadKind::Logistic, WindowLoss::EveryWindow)
    }

    /// The study's LSTM of `layers` layers (64 units): final state → linear → softmax, trained
    /// on the last window's output. Adam, mini-batches of 40 clips.
    pub fn study_lstm(layers: usize) -> Self {
        Self::study(
            &format!("lstm{layers}"),
            HeadKind::Lstm { layers, hidden: 64 },
            WindowLoss::LastWindow,
        )
    }

    /// The baseline the LSTM heads must beat: logistic regression on the clip-mean embedding
    /// (standardised inputs, Adam at 3e-3 for 100 epochs: converged, see the validation curve).
    pub fn clip_mean_logistic() -> Self {
        Self {
            normalise: true,
            learning_rate: 3e-3,
            ..Self::study(
                "clip-mean-logistic",
                HeadKind::Logistic,
                WindowLoss::ClipMean,
            )
        }
    }

    /// Moodscope's streaming head: the study's 1-layer LSTM, plus input normalisation, dropout,
    /// weight decay, mixup, a loss on every window, streaming training, and an ensemble of three
    /// seeds (one LSTM of 192 units when exported: about 1 MB).
    pub fn streaming_lstm() -> Self {
        Self {
            name: "streaming-lstm".into(),
            kind: HeadKind::Lstm {
                layers: 1,
                hidden: 64,
            },
            loss: WindowLoss::EveryWindow,
            epochs: 15,
            batch_size: 40,
            learning_rate: 2e-3,
            lr_schedule: LrSchedule::Cosine,
            weight_decay: 0.1,
            l2: 0.0,
            normalise: true,
            input_dropout: 0.3,
            dropout: 0.4,
            mixup_alpha: 0.4,
            stream_prefix: 10,
            loss_from_window: 1,
            ensemble: 3,
            seed: 1,
            crop_windows: 0,
            decision: None,
        }
    }

    /// How a clip is decided from this head's per-window outputs: [`HeadSpec::decision`] when
    /// set; else an LSTM by its last window, a logistic head by the mean of its windows.
    pub fn clip_decision(&self) -> ClipDecision {
        if let Some(decision) = self.decision {
            return decision;
        }
        match (self.kind, self.loss) {
            (HeadKind::Lstm { .. }, _) => ClipDecision::LastWindow,
            (HeadKind::Logistic, WindowLoss::ClipMean) => ClipDecision::MeanLogProbabilities,
            (HeadKind::Logistic, _) => ClipDecision::MeanProbabilities,
        }
    }

    /// Checks the spec for combinations that make no sense.
    pub fn check(&self) -> Result<(), String> {
        let name = &self.name;
        match (self.kind, self.loss) {
            (HeadKind::Logistic, WindowLoss::LastWindow) => {
                return Err(format!("head `{name}`: a logistic head has no state, so it cannot be trained on the last window alone"))
            }
            (HeadKind::Lstm { .. }, WindowLoss::ClipMean) => {
                return Err(format!("head `{name}`: the clip-mean loss is for logistic heads"))
            }
            (HeadKind::Lstm { layers, hidden }, _) if layers == 0 || hidden == 0 => {
                return Err(format!("head `{name}`: an LSTM needs at least one layer and one unit"))
            }
            _ => {}
        }
        if self.epochs == 0 || self.batch_size == 0 || self.ensemble == 0 {
            return Err(format!(
                "head `{name}`: epochs, batch size and ensemble size must be at least 1"
            ));
        }
        let positive_rate = self.learning_rate > 0.0 && self.learning_rate.is_finite();
        let penalties = self.weight_decay >= 0.0 && self.l2 >= 0.0 && self.l2.is_finite();
        if !(positive_rate && penalties) {
            return Err(format!(
                "head `{name}`: learning rate must be positive, weight decay and L2 not negative"
            ));
        }
        if !(0.0..1.0).contains(&self.input_dropout) || !(0.0..1.0).contains(&self.dropout) {
            return Err(format!("head `{name}`: dropout must be in [0, 1)"));
        }
        if self.mixup_alpha < 0.0 || !self.mixup_alpha.is_finite() {
            return Err(format!(
                "head `{name}`: mixup alpha must be 0 (off) or positive"
            ));
        }
        Ok(())
    }
}
