//! Timelines out: window readings in, CSV rows / JSON documents and per-file summaries out.

use std::io::Write;

use serde::Serialize;

use crate::engine::{SmoothingSettings, WindowReading};

/// Below this presence a window's dominant mood is reported as `none` (no music), the same
/// threshold the plugin uses by default.
pub fn presence_threshold() -> f32 {
    SmoothingSettings::default().presence_threshold
}

/// The dominant label of a window, or `None` when it holds no music.
pub fn dominant(reading: &WindowReading) -> Option<usize> {
    (reading.presence >= presence_threshold()).then(|| reading.dominant())
}

/// What a file's timeline adds up to.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Summary {
    pub windows: usize,
    /// Seconds of audio analysed (end of the last window).
    pub seconds: f64,
    /// Share of windows per dominant label, in label order.
    pub dominant_share: Vec<f32>,
    /// Share of windows without music.
    pub no_music_share: f32,
    /// Mean probability per label over all windows.
    pub mean_probabilities: Vec<f32>,
    pub mean_presence: f32,
}

impl Summary {
    pub fn of(readings: &[WindowReading], labels: usize) -> Self {
        let n = readings.len().max(1) as f32;
        let mut dominant_share = vec![0.0; labels];
        let mut no_music = 0.0;
        let mut mean = vec![0.0; labels];
        let mut presence = 0.0;
        for r in readings {
            match dominant(r) {
                Some(d) => dominant_share[d] += 1.0 / n,
                None => no_music += 1.0 / n,
            }
            for (m, p) in mean.iter_mut().zip(&r.probabilities) {
                *m += p / n;
            }
            presence += r.presence / n;
        }
        Self {
            windows: readings.len(),
            seconds: readings.last().map_or(0.0, |r| r.end_seconds),
            dominant_share,
            no_music_share: no_music,
            mean_probabilities: mean,
            mean_presence: presence,
        }
    }

    /// Two human-readable lines.
    pub fn describe(&self, labels: &[String]) -> String {
        let minutes = (self.seconds / 60.0).floor();
        let mut shares: Vec<String> = labels
            .iter()
            .zip(&self.dominant_share)
            .map(|(l, s)| format!("{l} {:.0}%", s * 100.0))
            .collect();
        shares.push(format!("no music {:.0}%", self.no_music_share * 100.0));
        let means: Vec<String> = labels
            .iter()
            .zip(&self.mean_probabilities)
            .map(|(l, m)| format!("{l} {m:.2}"))
            .collect();
        format!(
            "{} windows, {}:{:04.1}\n  dominant  {}\n  mean      {}  presence {:.2}",
            self.windows,
            minutes,
            self.seconds - minutes * 60.0,
            shares.join("  "),
            means.join("  "),
            self.mean_presence
        )
    }
}

/// CSV header: `file,start,end,<labels…>,dominant,presence` (labels lower-cased).
pub fn write_csv_header(out: &mut dyn Write, labels: &[String]) -> std::io::Result<()> {
    let labels: Vec<String> = labels
        .iter()
        .map(|l| csv_field(&l.to_lowercase()))
        .collect();
    writeln!(out, "file,start,end,{},dominant,presence", labels.join(","))
}

/// One CSV row per window. Probabilities are written with full precision (shortest exact form).
pub fn write_csv_rows(
    out: &mut dyn Write,
    file: &str,
    labels: &[String],
    readings: &[WindowReading],
) -> std::io::Result<()> {
    let file = csv_field(file);
    for r in readings {
        write!(out, "{file},{:.3},{:.3}", r.start_seconds, r.end_seconds)?;
        for p in &r.probabilities {
            write!(out, ",{p}")?;
        }
        let dominant = dominant(r).map_or("none".to_string(), |d| labels[d].to_lowercase());
        writeln!(out, ",{},{}", csv_field(&dominant), r.presence)?;
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
    pub dominant: Option<&'a str>,
    pub presence: f32,
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
    readings: &'a [WindowReading],
) -> Vec<JsonWindow<'a>> {
    readings
        .iter()
        .map(|r| JsonWindow {
            start: r.start_seconds,
            end: r.end_seconds,
            probabilities: &r.probabilities,
            dominant: dominant(r).map(|d| labels[d].as_str()),
            presence: r.presence,
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
            presence,
        }
    }

    #[test]
    fn summary_counts_dominant_moods_and_silence() {
        let readings = [
            window([0.7, 0.1, 0.1, 0.1], 0.9, 1.0),
            window([0.6, 0.2, 0.1, 0.1], 0.8, 1.5),
            window([0.1, 0.1, 0.1, 0.7], 0.9, 2.0),
            window([0.1, 0.7, 0.1, 0.1], 0.0, 2.5),
        ];
        let s = Summary::of(&readings, 4);
        assert_eq!(s.windows, 4);
        assert_eq!(s.dominant_share, vec![0.5, 0.0, 0.0, 0.25]);
        assert_eq!(s.no_music_share, 0.25);
        assert!((s.mean_probabilities[0] - 0.375).abs() < 1e-6);
        assert_eq!(s.seconds, 2.5);
    }

    #[test]
    fn csv_quotes_awkward_file_names_and_keeps_full_precision() {
        let labels: Vec<String> = ["Happy", "Sad", "Angry", "Scary"]
            .map(String::from)
            .to_vec();
        let mut out = Vec::new();
        write_csv_rows(
            &mut out,
            "a,b.wav",
            &labels,
            &[window([0.1, 0.2, 0.3, 0.4], 1.0, 0.975)],
        )
        .unwrap();
        let line = String::from_utf8(out).unwrap();
        assert!(
            line.starts_with("\"a,b.wav\",0.000,0.975,0.1,0.2,0.3,0.4,scary,1"),
            "{line}"
        );
    }
}
