//! The plugin's host parameters and persisted settings.
//!
//! In: the host (automation, session restore) and later the editor. Out: `AnalysisSettings`
//! (what to build: backbone, head, hop) and `SmoothingSettings` (how to smooth), read by the
//! worker whenever it looks — parameters are atomics, so any thread may read them.
//!
//! Sensitivity maps onto the smoother's thresholds, linearly, so that 50 % is the engine's
//! default (`SmoothingSettings::default()`):
//! - hysteresis (how far a challenger must lead the dominant mood to replace it) = 0.2 × (1 − s);
//! - presence threshold (below which there is "no music" and no dominant mood) = 0.6 × (1 − s);
//! - least lead of the dominant mood over the next (below it: "uncertain") = 0.04 × (1 − s);
//! - least share of the recent windows agreeing with it (below it: "uncertain") = 1 − s.
//!
//! At 100 % the dominant mood follows every change, is never "uncertain" and is reported
//! whenever there is any sound; at 0 % a mood needs a 0.2 lead to take over, a 0.04 lead and every
//! recent window behind it to be named, and presence must reach 0.6.
//!
//! Outputs (`realtime::MidiOut`, `crate::outputs`): MIDI CC settings are parameters (atomics, read
//! by `process()` on the audio thread); the OSC host and address prefix are text, so they are
//! persisted fields (saved with the session, set from the editor), read by the worker.
//!
//! Bypass (`Bypass`, the host's bypass: CLAP `CLAP_PARAM_IS_BYPASS`, VST3 `kIsBypass`): the audio
//! passes untouched either way (Moodscope never changes it); `Analyse while bypassed` (on by
//! default) says whether the analysis and its outputs go on meanwhile. Read by `process()`.
//!
//! Mood read-outs (`Mood 1` … `Mood 6`, `Valence`, `Arousal`, `Music presence`): parameters that
//! mirror each published mood, for hosts that show a plugin's parameters. `Mood n` is the
//! readout's n-th label (the default one: Happy, Sad, Calm, Angry, Scary); slots it has no label
//! for, and valence and arousal for heads that give none, stay at 0. Their names are generic, because a
//! plugin's parameter names are fixed when the host loads it while the head (and so its labels)
//! may change; their texts are plain numbers (`62 %`, `+0.25`), so that hosts that read values
//! from the text (pedalboard) see numbers. nice-plug has no read-only or output
//! parameter (its only read-only flag also hides the parameter; it writes no VST3 output
//! parameter changes; CLAP `param_value` output events and VST3 `performEdit` are reachable only
//! through its editor context, and as user gestures), so the analysis writes their values directly
//! (`MoodscopeParams::mirror`, when each mood is published): a host that asks for a value (CLAP
//! `get_value`, VST3 `getParamNormalized`) gets the current mood, but the host is not notified of
//! the change, so a host that caches values shows them only when it asks again (see the README),
//! and a user moving one sees it overwritten at the next window. They are not automatable.

use std::path::PathBuf;
use std::sync::{Arc, RwLock};

use super::shared::MoodSnapshot;

use nice_plug::prelude::*;

use crate::backbone::BackboneKind;
use crate::engine::{HeadChoice, SmoothingSettings};
use crate::head::MoodSet;

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

/// Which moods the analysis names.
#[derive(Enum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum MoodSetParam {
    /// Happy, Sad, Calm, Angry, Scary: every quadrant of the circumplex (YAMNet, calibrated).
    #[id = "five"]
    #[name = "Five (with Calm)"]
    Five,
    /// The study's Happy, Sad, Angry, Scary.
    #[id = "four"]
    #[name = "Four (the study's)"]
    Four,
    /// AudioSet's Happy, Sad, Calm, Exciting, Angry, Scary.
    #[id = "six"]
    #[name = "Six (AudioSet)"]
    Six,
}

impl MoodSetParam {
    pub fn set(self) -> MoodSet {
        match self {
            MoodSetParam::Four => MoodSet::Four,
            MoodSetParam::Five => MoodSet::Five,
            MoodSetParam::Six => MoodSet::Six,
        }
    }
}

/// Which head reads the embeddings.
#[derive(Enum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeadParam {
    /// The mood set's recommended readout: calibrated on listener-labelled music for five moods
    /// with YAMNet, YAMNet's own classes for four or six, the shipped AudioSet heads for VGGish.
    #[id = "default"]
    #[name = "Recommended"]
    Default,
    /// YAMNet's own mood classes, without the calibration.
    #[id = "uncalibrated"]
    #[name = "Uncalibrated"]
    Uncalibrated,
    /// The head file saved with the session (`head-file`).
    #[id = "file"]
    #[name = "Head file"]
    File,
}

/// MIDI CC resolution.
#[derive(Enum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum MidiResolution {
    /// One CC per value, 0–127.
    #[id = "7bit"]
    #[name = "7-bit"]
    SevenBit,
    /// An MSB/LSB pair per value (CC n and CC n + 32, n in 0–31), 0–16383.
    #[id = "14bit"]
    #[name = "14-bit"]
    FourteenBit,
}

/// Moods with a CC of their own (the shipped readouts have four to six; a trained head with more
/// labels sends its first six).
pub const MOOD_CCS: usize = 6;
/// Highest CC number a mood may use (120–127 are channel mode messages).
pub const MAX_CC: i32 = 119;
/// Mood read-out parameters (`Mood 1` … `Mood 6`): a head's first labels, in its order.
pub const MOOD_READOUTS: usize = 6;

/// The MIDI CC settings, read from the parameters' atomics: safe on the audio thread.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MidiSettings {
    pub enabled: bool,
    /// 0–15 (shown as 1–16).
    pub channel: u8,
    pub fourteen_bit: bool,
    /// CC per mood, in label order.
    pub mood_ccs: [u8; MOOD_CCS],
    pub dominant_cc: u8,
    pub presence_cc: u8,
    pub valence_cc: u8,
    pub arousal_cc: u8,
}

/// The OSC settings (reads the text fields' locks: not for the audio thread).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OscSettings {
    pub enabled: bool,
    pub host: String,
    pub port: u16,
    pub prefix: String,
}

/// The default OSC destination and address prefix.
pub const DEFAULT_OSC_HOST: &str = "127.0.0.1";
pub const DEFAULT_OSC_PORT: i32 = 9000;
pub const DEFAULT_OSC_PREFIX: &str = "/moodscope";

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
    #[id = "moods"]
    pub moods: EnumParam<MoodSetParam>,
    #[id = "head"]
    pub head: EnumParam<HeadParam>,
    /// Path of a head file written by `cargo moodscope-train` (`NAME.json`), used when `head` is
    /// `File`. Not a parameter (hosts cannot automate paths); saved with the session.
    #[persist = "head-file"]
    pub head_file: Arc<RwLock<Option<PathBuf>>>,
    /// The editor's window size (logical pixels), saved with the session.
    #[persist = "editor-state"]
    pub editor_size: Arc<RwLock<crate::editor::EditorSize>>,

    /// The host's bypass. The audio passes untouched either way.
    #[id = "bypass"]
    pub bypass: BoolParam,
    /// Whether the analysis (and so MIDI, OSC and the read-outs) goes on while bypassed.
    #[id = "analyse-bypassed"]
    pub analyse_while_bypassed: BoolParam,

    /// Send the moods as MIDI CCs from `process()`.
    #[id = "midi-out"]
    pub midi_out: BoolParam,
    /// MIDI channel, 1–16.
    #[id = "midi-channel"]
    pub midi_channel: IntParam,
    #[id = "midi-resolution"]
    pub midi_resolution: EnumParam<MidiResolution>,
    /// CC of each mood, in the head's label order (Happy, Sad, Calm, Angry, Scary for the
    /// default five): the smoothed probability, 0–1 → 0–127 (or 0–16383). Moods 1–4 keep CCs
    /// 20–23 and moods 5–6 come after the dominant mood and presence (26, 27), so that setups
    /// made for four moods keep working.
    #[id = "cc-mood-1"]
    pub cc_mood_1: IntParam,
    #[id = "cc-mood-2"]
    pub cc_mood_2: IntParam,
    #[id = "cc-mood-3"]
    pub cc_mood_3: IntParam,
    #[id = "cc-mood-4"]
    pub cc_mood_4: IntParam,
    #[id = "cc-mood-5"]
    pub cc_mood_5: IntParam,
    #[id = "cc-mood-6"]
    pub cc_mood_6: IntParam,
    /// CC of the dominant mood: 0 with no music or an uncertain verdict, else the mood's number
    /// (1 = first label); in 14-bit mode on the MSB, with LSB 0.
    #[id = "cc-dominant"]
    pub cc_dominant: IntParam,
    /// CC of the music presence, 0–1 → 0–127 (or 0–16383).
    #[id = "cc-presence"]
    pub cc_presence: IntParam,
    /// CC of the valence and of the arousal, −1..1 → 0–127 (or 0–16383; the middle is neutral).
    #[id = "cc-valence"]
    pub cc_valence: IntParam,
    #[id = "cc-arousal"]
    pub cc_arousal: IntParam,

    /// Send the moods over OSC (UDP) from the worker after each update.
    #[id = "osc-out"]
    pub osc_out: BoolParam,
    #[id = "osc-port"]
    pub osc_port: IntParam,
    /// Host name or address to send OSC to.
    #[persist = "osc-host"]
    pub osc_host: Arc<RwLock<String>>,
    /// OSC address prefix: messages go to `PREFIX/happy` … `PREFIX/dominant`, `PREFIX/presence`.
    #[persist = "osc-prefix"]
    pub osc_prefix: Arc<RwLock<String>>,

    /// Read-outs of the published moods (see the module doc): written by the analysis only.
    #[id = "out-mood-1"]
    pub out_mood_1: FloatParam,
    #[id = "out-mood-2"]
    pub out_mood_2: FloatParam,
    #[id = "out-mood-3"]
    pub out_mood_3: FloatParam,
    #[id = "out-mood-4"]
    pub out_mood_4: FloatParam,
    #[id = "out-mood-5"]
    pub out_mood_5: FloatParam,
    #[id = "out-mood-6"]
    pub out_mood_6: FloatParam,
    /// −1 (negative) to 1 (positive), 0 when the head gives none.
    #[id = "out-valence"]
    pub out_valence: FloatParam,
    /// −1 (calm) to 1 (excited), 0 when the head gives none.
    #[id = "out-arousal"]
    pub out_arousal: FloatParam,
    #[id = "out-presence"]
    pub out_presence: FloatParam,
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
            moods: EnumParam::new("Mood set", MoodSetParam::Five).non_automatable(),
            head: EnumParam::new("Head", HeadParam::Default).non_automatable(),
            head_file: Arc::new(RwLock::new(None)),
            editor_size: Arc::new(RwLock::new(crate::editor::EditorSize::default())),

            bypass: BoolParam::new("Bypass", false).make_bypass(),
            analyse_while_bypassed: BoolParam::new("Analyse while bypassed", true)
                .non_automatable(),

            midi_out: BoolParam::new("MIDI out", false).non_automatable(),
            midi_channel: IntParam::new("MIDI channel", 1, IntRange::Linear { min: 1, max: 16 })
                .non_automatable(),
            midi_resolution: EnumParam::new("MIDI resolution", MidiResolution::SevenBit)
                .non_automatable(),
            cc_mood_1: cc_param("CC mood 1", 20),
            cc_mood_2: cc_param("CC mood 2", 21),
            cc_mood_3: cc_param("CC mood 3", 22),
            cc_mood_4: cc_param("CC mood 4", 23),
            cc_mood_5: cc_param("CC mood 5", 26),
            cc_mood_6: cc_param("CC mood 6", 27),
            cc_dominant: cc_param("CC dominant mood", 24),
            cc_presence: cc_param("CC music presence", 25),
            cc_valence: cc_param("CC valence", 28),
            cc_arousal: cc_param("CC arousal", 29),

            osc_out: BoolParam::new("OSC out", false).non_automatable(),
            osc_port: IntParam::new(
                "OSC port",
                DEFAULT_OSC_PORT,
                IntRange::Linear { min: 1, max: 65535 },
            )
            .non_automatable(),
            osc_host: Arc::new(RwLock::new(DEFAULT_OSC_HOST.to_owned())),
            osc_prefix: Arc::new(RwLock::new(DEFAULT_OSC_PREFIX.to_owned())),

            out_mood_1: read_out("Mood 1"),
            out_mood_2: read_out("Mood 2"),
            out_mood_3: read_out("Mood 3"),
            out_mood_4: read_out("Mood 4"),
            out_mood_5: read_out("Mood 5"),
            out_mood_6: read_out("Mood 6"),
            out_valence: signed_read_out("Valence"),
            out_arousal: signed_read_out("Arousal"),
            out_presence: read_out("Music presence"),
        }
    }
}

fn cc_param(name: &str, default: i32) -> IntParam {
    IntParam::new(
        name,
        default,
        IntRange::Linear {
            min: 0,
            max: MAX_CC,
        },
    )
    .non_automatable()
}

fn read_out(name: &str) -> FloatParam {
    FloatParam::new(name, 0.0, FloatRange::Linear { min: 0.0, max: 1.0 })
        .with_unit(" %")
        .with_value_to_string(formatters::v2s_f32_percentage(0))
        .with_string_to_value(formatters::s2v_f32_percentage())
        .non_automatable()
}

/// `Valence`, `Arousal`: −1 to 1, shown with a sign (`+0.25`).
fn signed_read_out(name: &str) -> FloatParam {
    FloatParam::new(
        name,
        0.0,
        FloatRange::Linear {
            min: -1.0,
            max: 1.0,
        },
    )
    .with_value_to_string(Arc::new(|value| format!("{value:+.2}")))
    .with_string_to_value(Arc::new(|text| text.trim().parse().ok()))
    .non_automatable()
}

/// What the worker builds its analyser from. Changing any of it restarts the analysis.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AnalysisSettings {
    pub backbone: BackboneKind,
    pub head: HeadChoice,
    pub moods: MoodSet,
    pub hop_frames: Option<usize>,
}

impl MoodscopeParams {
    /// Current backbone, head and hop. Reads a lock for the head file: not for the audio thread.
    pub fn analysis_settings(&self) -> AnalysisSettings {
        let head = match self.head.value() {
            HeadParam::Default => HeadChoice::Default,
            HeadParam::Uncalibrated => HeadChoice::Uncalibrated,
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
            moods: self.moods.value().set(),
            hop_frames: self.hop.value().frames(),
        }
    }

    /// Smoothing time constant and the thresholds the sensitivity maps to (see the module doc).
    pub fn smoothing_settings(&self) -> SmoothingSettings {
        smoothing_settings(self.smoothing.value(), self.sensitivity.value())
    }

    /// The MIDI CC settings: atomic loads only, for `process()`.
    #[inline]
    pub fn midi_settings(&self) -> MidiSettings {
        let cc = |p: &IntParam| p.value().clamp(0, MAX_CC) as u8;
        MidiSettings {
            enabled: self.midi_out.value(),
            channel: (self.midi_channel.value().clamp(1, 16) - 1) as u8,
            fourteen_bit: self.midi_resolution.value() == MidiResolution::FourteenBit,
            mood_ccs: [
                cc(&self.cc_mood_1),
                cc(&self.cc_mood_2),
                cc(&self.cc_mood_3),
                cc(&self.cc_mood_4),
                cc(&self.cc_mood_5),
                cc(&self.cc_mood_6),
            ],
            dominant_cc: cc(&self.cc_dominant),
            presence_cc: cc(&self.cc_presence),
            valence_cc: cc(&self.cc_valence),
            arousal_cc: cc(&self.cc_arousal),
        }
    }

    /// The OSC settings. Locks the text fields: not for the audio thread.
    pub fn osc_settings(&self) -> OscSettings {
        let text = |field: &RwLock<String>| field.read().unwrap_or_else(|e| e.into_inner()).clone();
        OscSettings {
            enabled: self.osc_out.value(),
            host: text(&self.osc_host),
            port: self.osc_port.value().clamp(1, 65535) as u16,
            prefix: text(&self.osc_prefix),
        }
    }

    /// The mood read-outs, in the order hosts list them: `Mood 1` … `Mood 6`, `Valence`,
    /// `Arousal`, `Music presence`.
    pub fn read_outs(&self) -> [&FloatParam; MOOD_READOUTS + 3] {
        [
            &self.out_mood_1,
            &self.out_mood_2,
            &self.out_mood_3,
            &self.out_mood_4,
            &self.out_mood_5,
            &self.out_mood_6,
            &self.out_valence,
            &self.out_arousal,
            &self.out_presence,
        ]
    }

    /// Writes a published mood into the read-out parameters (see the module doc): called by the
    /// analysis as it publishes (the worker, or `process()` in an offline render). `process()`
    /// never reads these parameters.
    pub fn mirror(&self, snapshot: &MoodSnapshot) {
        use nice_plug::params::InternalParamMut;
        let mut values = [0.0f32; MOOD_READOUTS + 3];
        for (value, &p) in values.iter_mut().zip(snapshot.probabilities()) {
            *value = finite_in(p, 0.0, 1.0);
        }
        values[MOOD_READOUTS] = snapshot.valence.map_or(0.0, |v| finite_in(v, -1.0, 1.0));
        values[MOOD_READOUTS + 1] = snapshot.arousal.map_or(0.0, |v| finite_in(v, -1.0, 1.0));
        values[MOOD_READOUTS + 2] = finite_in(snapshot.presence, 0.0, 1.0);
        for (param, value) in self.read_outs().into_iter().zip(values) {
            // SAFETY: nice-plug reserves its setters for its wrappers, so that a value never
            // changes under `process()`; nothing reads these parameters there (they are
            // read-outs), and the value is an atomic, so no thread sees a torn value.
            unsafe { param._internal_set_plain_value(value) };
        }
    }

    /// Whether `process()` feeds the analysis: not bypassed, or bypassed with "Analyse while
    /// bypassed" on. Atomic loads only.
    #[inline]
    pub fn analysing(&self) -> bool {
        !self.bypass.value() || self.analyse_while_bypassed.value()
    }
}

fn finite_in(v: f32, min: f32, max: f32) -> f32 {
    if v.is_finite() {
        v.clamp(min, max)
    } else {
        0.0
    }
}

/// Smoothing settings for a time constant (s) and a sensitivity (0–1), as documented above.
pub fn smoothing_settings(time_constant_seconds: f32, sensitivity: f32) -> SmoothingSettings {
    let reluctance = 1.0 - sensitivity.clamp(0.0, 1.0);
    SmoothingSettings {
        time_constant_seconds: time_constant_seconds.clamp(0.0, MAX_SMOOTHING_SECONDS),
        hysteresis: 0.2 * reluctance,
        presence_threshold: 0.6 * reluctance,
        min_lead: 0.04 * reluctance,
        min_agreement: reluctance,
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
        assert!((s.min_lead - d.min_lead).abs() < 1e-6, "{s:?}");
        assert!((s.min_agreement - d.min_agreement).abs() < 1e-6, "{s:?}");
    }

    #[test]
    fn full_sensitivity_removes_both_thresholds() {
        let s = smoothing_settings(1.0, 1.0);
        assert_eq!(
            (
                s.hysteresis,
                s.presence_threshold,
                s.min_lead,
                s.min_agreement
            ),
            (0.0, 0.0, 0.0, 0.0)
        );
        let s = smoothing_settings(100.0, -3.0);
        assert_eq!(s.time_constant_seconds, MAX_SMOOTHING_SECONDS);
        assert!((s.hysteresis - 0.2).abs() < 1e-6 && (s.presence_threshold - 0.6).abs() < 1e-6);
    }

    #[test]
    fn read_outs_follow_the_heads_labels_and_unused_ones_stay_at_zero() {
        let params = MoodscopeParams::default();
        let text = |p: &FloatParam| p.to_string();
        let mut snapshot = MoodSnapshot {
            sequence: 1,
            labels: 3,
            presence: 0.8,
            arousal: Some(-0.5),
            ..MoodSnapshot::default()
        };
        snapshot.probabilities[..3].copy_from_slice(&[0.5, 0.3, 0.2]);
        params.mirror(&snapshot);
        let values: Vec<f32> = params.read_outs().iter().map(|p| p.value()).collect();
        assert_eq!(values, [0.5, 0.3, 0.2, 0.0, 0.0, 0.0, 0.0, -0.5, 0.8]);
        assert_eq!(text(&params.out_mood_1), "50 %");
        assert_eq!(text(&params.out_mood_4), "0 %");
        assert_eq!(text(&params.out_arousal), "-0.50");
        assert_eq!(text(&params.out_presence), "80 %");
        // A head with six labels fills every slot; a smaller one clears what it no longer has.
        snapshot.labels = 6;
        snapshot.probabilities[..6].copy_from_slice(&[0.1, 0.1, 0.1, 0.1, 0.1, 0.5]);
        snapshot.valence = Some(7.0);
        params.mirror(&snapshot);
        assert_eq!(params.out_mood_6.value(), 0.5);
        assert_eq!(params.out_valence.value(), 1.0, "clamped to the range");
        snapshot.labels = 2;
        params.mirror(&snapshot);
        assert_eq!(params.out_mood_3.value(), 0.0);
        assert_eq!(params.out_mood_6.value(), 0.0);
        // Texts parse back.
        assert_eq!(
            params.out_mood_1.string_to_normalized_value("62 %"),
            Some(0.62)
        );
        assert_eq!(
            params.out_valence.string_to_normalized_value("+0.50"),
            Some(0.75)
        );
    }

    #[test]
    fn analysis_pauses_only_when_bypassed_with_analysis_off() {
        use nice_plug::params::InternalParamMut;
        let params = MoodscopeParams::default();
        assert!(params.analysing());
        unsafe { params.bypass._internal_set_plain_value(true) };
        assert!(
            params.analysing(),
            "Analyse while bypassed is on by default"
        );
        unsafe {
            params
                .analyse_while_bypassed
                ._internal_set_plain_value(false)
        };
        assert!(!params.analysing());
        unsafe { params.bypass._internal_set_plain_value(false) };
        assert!(params.analysing());
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
