//! Timelines out: window readings in, CSV rows / JSON documents and per-file summaries out.
//!
//! Each window row carries the head's raw reading (probabilities, valence, arousal, presence),
//! the window's own dominant mood, and the verdict the plugin would show at the window's end:
//! the same `engine::Smoother` with the plugin's default settings (so a timeline here and the
//! plugin's published values agree). A file's `Summary` gives the track's mood, the share of time
//! per verdict, and the mean valence and arousal of its music.

use std::io::Write;

use serde::Serialize;

use crate::engine::{self, MoodState, Smoother, SmoothingSettings, WindowReading};

/// Below this presence a window's dominant mood is reported as `none` (no music), the same
/// threshold the plugin uses by default.
pub fn presence_threshold() -> f32 {
    SmoothingSettings::default().presence_threshold
}

/// The dominant label of a window on its own (group first), or `None` when it holds no music.
pub fn dominant(reading: &WindowReading, groups: &[usize]) -> Option<usize> {
    (reading.presence >= presence_threshold()).then(|| reading.dominant(groups))
}

/// The smoothed state after each window, as the plugin computes it with its default settings.
pub fn verdicts(readings: &[WindowReading], groups: &[usize], hop_seconds: f64) -> Vec<MoodState> {
    let mut smoother = Smoother::new(SmoothingSettings::default()).with_groups(groups);
    readings
        .iter()
        .map(|r| smoother.update(r, hop_seconds).clone())
        .collect()
}

/// A verdict in words: the label (lower-cased), `uncertain`, or `none` (no music).
pub fn verdict_word(state: &MoodState, labels: &[String]) -> String {
    match (state.dominant, state.uncertain) {
        (Some(d), _) => labels[d].to_lowercase(),
        (None, true) => "uncertain".into(),
        (None, false) => "none".into(),
    }
}

/// What a file's timeline adds up to.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Summary {
    pub windows: usize,
    /// Seconds of audio analysed (end of the last window).
    pub seconds: f64,
    /// The track's mood: the dominant label (group first) of the mean probabilities over the
    /// windows with music; `None` when no window holds music.
    pub mood: Option<String>,
    /// How far the track's mood leads the next one in those mean probabilities (its group's
    /// mean probability minus the next group's), 0–1.
    pub mood_lead: f32,
    /// Share of windows per verdict: each label (in label order), then uncertain, then no music.
    pub dominant_share: Vec<f32>,
    pub uncertain_share: f32,
    pub no_music_share: f32,
    /// Mean probability per label over the windows with music (over all windows if none has).
    pub mean_probabilities: Vec<f32>,
    /// Mean valence and arousal over the windows with music, when the head reads them.
    pub valence: Option<f32>,
    pub arousal: Option<f32>,
    pub mean_presence: f32,
}

impl Summary {
    pub fn of(
        readings: &[WindowReading],
        verdicts: &[MoodState],
        labels: &[String],
        groups: &[usize],
    ) -> Self {
        let n = readings.len().max(1) as f32;
        let mut dominant_share = vec![0.0; labels.len()];
        let (mut uncertain, mut no_music) = (0.0, 0.0);
        for state in verdicts {
            match (state.dominant, state.uncertain) {
                (Some(d), _) => dominant_share[d] += 1.0 / n,
                (None, true) => uncertain += 1.0 / n,
                (None, false) => no_music += 1.0 / n,
            }
        }
        let music: Vec<&WindowReading> = readings
            .iter()
            .filter(|r| r.presence >= presence_threshold())
            .collect();
        let basis: Vec<&WindowReading> = if music.is_empty() {
            readings.iter().collect()
        } else {
            music.clone()
        };
        let m = basis.len().max(1) as f32;
        let mut mean = vec![0.0f32; labels.len()];
        for r in &basis {
            for (acc, p) in mean.iter_mut().zip(&r.probabilities) {
                *acc += p / m;
            }
        }
        let mean_of = |value: fn(&WindowReading) -> Option<f32>| -> Option<f32> {
            let values: Option<Vec<f32>> = music.iter().map(|r| value(r)).collect();
            values
                .filter(|v| !v.is_empty())
                .map(|v| v.iter().sum::<f32>() / v.len() as f32)
        };
        let (mood, mood_lead) = if music.is_empty() {
            (None, 0.0)
        } else {
            let d = engine::dominant_of(&mean, groups);
            let group_of = |i: usize| groups.get(i).copied().unwrap_or(i);
            let total = |g: usize| -> f32 {
                (0..mean.len())
                    .filter(|&i| group_of(i) == g)
                    .map(|i| mean[i])
                    .sum()
            };
            let next = (0..mean.len())
                .map(group_of)
                .filter(|&g| g != group_of(d))
                .map(total)
                .fold(0.0, f32::max);
            (Some(labels[d].clone()), total(group_of(d)) - next)
        };
        Self {
            windows: readings.len(),
            seconds: readings.last().map_or(0.0, |r| r.end_seconds),
            mood,
            mood_lead,
            dominant_share,
            uncertain_share: uncertain,
            no_music_share: no_music,
            mean_probabilities: mean,
            valence: mean_of(|r| r.valence),
            arousal: mean_of(|r| r.arousal),
            mean_presence: readings.iter().map(|r| r.presence).sum::<f32>() / n,
        }
    }

    /// Three human-readable lines.
    pub fn describe(&self, labels: &[String]) -> String {
        let minutes = (self.seconds / 60.0).floor();
        let mut shares: Vec<String> = labels
            .iter()
            .zip(&self.dominant_share)
            .map(|(l, s)| format!("{l} {:.0}%", s * 100.0))
            .collect();
        shares.push(format!("uncertain {:.0}%", self.uncertain_share * 100.0));
        shares.push(format!("no music {:.0}%", self.no_music_share * 100.0));
        let means: Vec<String> = labels
            .iter()
            .zip(&self.mean_probabilities)
            .map(|(l, m)| format!("{l} {m:.2}"))
            .collect();
        let axes = match (self.valence, self.arousal) {
            (Some(v), Some(a)) => format!("  valence {v:+.2}  arousal {a:+.2}"),
            _ => String::new(),
        };
        format!(
            "{} windows, {}:{:04.1}, mood: {} (lead {:.2}){axes}\n  time      {}\n  mean      {}  presence {:.2}",
            self.windows,
            minutes,
            self.seconds - minutes * 60.0,
            self.mood.as_deref().unwrap_or("no music"),
            self.mood_lead,
            shares.join("  "),
            means.join("  "),
            self.mean_presence
        )
    }
}

/// CSV header: `file,start,end,<labels…>,valence,arousal,presence,dominant,mood,confidence`
/// (labels lower-cased).
pub fn write_csv_header(out: &mut dyn Write, labels: &[String]) -> std::io::Result<()> {
    let labels: Vec<String> = labels
        .iter()
        .map(|l| csv_field(&l.to_lowercase()))
        .collect();
    writeln!(
        out,
        "file,start,end,{},valence,arousal,presence,dominant,mood,confidence",
        labels.join(",")
    )
}

/// One CSV row per window. Numbers are written with full precision (shortest exact form);
/// valence and arousal are empty when the head does not read them.
pub fn write_csv_rows(
    out: &mut dyn Write,
    file: &str,
    labels: &[String],
    groups: &[usize],
    readings: &[WindowReading],
    verdicts: &[MoodState],
) -> std::io::Result<()> {
    let file = csv_field(file);
    let optional = |v: Option<f32>| v.map_or(String::new(), |v| v.to_string());
    for (r, state) in readings.iter().zip(verdicts) {
        write!(out, "{file},{:.3},{:.3}", r.start_seconds, r.end_seconds)?;
        for p in &r.probabilities {
            write!(out, ",{p}")?;
        }
        let dominant = dominant(r, groups).map_or("none".to_string(), |d| labels[d].to_lowercase());
        writeln!(
            out,
            ",{},{},{},{},{},{}",
            optional(r.valence),
            optional(r.arousal),
            r.presence,
            csv_field(&dominant),
            csv_field(&verdict_word(state, labels)),
            state.confidence
        )?;
    }
    Ok(())
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// A window as it appears in JSON.
#[derive(Serialize)]
pub struct JsonWindow<'a> {
    pub start: f64,
    pub end: f64,
    pub probabilities: &'a [f32],
    pub valence: Option<f32>,
    pub arousal: Option<f32>,
    pub presence: f32,
    /// The window's own dominant mood (`None`: no music).
    pub dominant: Option<&'a str>,
    /// The plugin's verdict at the window's end: a label, `uncertain` or `none`.
    pub mood: String,
    pub confidence: f32,
}

/// One analysed file as it appears in JSON.
#[derive(Serialize)]
pub struct JsonFile<'a> {
    pub file: String,
    pub sample_rate: u32,
    pub windows: Vec<JsonWindow<'a>>,
    pub summary: &'a Summary,
}

pub fn json_windows<'a>(
    labels: &'a [String],
    groups: &[usize],
    readings: &'a [WindowReading],
    verdicts: &[MoodState],
) -> Vec<JsonWindow<'a>> {
    readings
        .iter()
        .zip(verdicts)
        .map(|(r, state)| JsonWindow {
            start: r.start_seconds,
            end: r.end_seconds,
            probabilities: &r.probabilities,
            valence: r.valence,
            arousal: r.arousal,
            presence: r.presence,
            dominant: dominant(r, groups).map(|d| labels[d].as_str()),
            mood: verdict_word(state, labels),
            confidence: state.confidence,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn window(p: [f32; 4], presence: f32, end: f64) -> WindowReading {
        WindowReading {
            index: 0,
            start_seconds: end - 0.975,
            end_seconds: end,
            probabilities: p.to_vec(),
            valence: Some(p[0] - p[1]),
            arousal: Some(p[2] + p[3] - p[1]),
            presence,
        }
    }

    fn labels() -> Vec<String> {
        ["Happy", "Sad", "Angry", "Scary"]
            .map(String::from)
            .to_vec()
    }

    const GROUPS: [usize; 4] = [0, 1, 2, 3];

    #[test]
    fn summary_counts_verdicts_and_silence_and_names_the_tracks_mood() {
        let readings = [
            window([0.7, 0.1, 0.1, 0.1], 0.9, 1.0),
            window([0.6, 0.2, 0.1, 0.1], 0.8, 1.5),
            window([0.1, 0.1, 0.1, 0.7], 0.9, 2.0),
            window([0.1, 0.7, 0.1, 0.1], 0.0, 2.5),
        ];
        let states = verdicts(&readings, &GROUPS, 0.5);
        let s = Summary::of(&readings, &states, &labels(), &GROUPS);
        assert_eq!(s.windows, 4);
        let counted: f32 =
            s.dominant_share.iter().sum::<f32>() + s.uncertain_share + s.no_music_share;
        assert!((counted - 1.0).abs() < 1e-6, "{s:?}");
        // The silent window does not count towards the track's mood or its means.
        assert!((s.mean_probabilities[0] - 1.4 / 3.0).abs() < 1e-6, "{s:?}");
        assert_eq!(s.mood.as_deref(), Some("Happy"));
        assert!((s.mood_lead - (1.4 - 0.9) / 3.0).abs() < 1e-6, "{s:?}");
        assert!((s.valence.unwrap() - (0.6 + 0.4 + 0.0) / 3.0).abs() < 1e-6);
        assert_eq!(s.seconds, 2.5);
        let silent = [window([0.7, 0.1, 0.1, 0.1], 0.0, 1.0)];
        let s = Summary::of(
            &silent,
            &verdicts(&silent, &GROUPS, 0.5),
            &labels(),
            &GROUPS,
        );
        assert_eq!((s.mood, s.valence, s.no_music_share), (None, None, 1.0));
    }

    #[test]
    fn csv_quotes_awkward_file_names_and_keeps_full_precision() {
        let readings = [window([0.1, 0.2, 0.3, 0.4], 1.0, 0.975)];
        let mut out = Vec::new();
        let states = verdicts(&readings, &GROUPS, 0.48);
        write_csv_rows(&mut out, "a,b.wav", &labels(), &GROUPS, &readings, &states).unwrap();
        let line = String::from_utf8(out).unwrap();
        // Valence and arousal as the fixture computes them in f32 (0.3 + 0.4 - 0.2).
        let arousal = (0.3f32 + 0.4 - 0.2).to_string();
        assert!(
            line.starts_with(&format!(
                "\"a,b.wav\",0.000,0.975,0.1,0.2,0.3,0.4,-0.1,{arousal},1,scary,"
            )),
            "{line}"
        );
    }
}
