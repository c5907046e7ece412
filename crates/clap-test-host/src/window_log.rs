//! The plugin's window log (`MOODSCOPE_WINDOW_LOG`): one CSV line per analysed window, raw
//! reading then published (smoothed) values, floats in shortest round-trip form.

use std::path::Path;

use anyhow::{anyhow, bail, Context, Result};
use serde::{Deserialize, Serialize};

/// One window as the plugin analysed and published it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WindowRow {
    pub window: u64,
    pub start_seconds: f64,
    pub end_seconds: f64,
    pub raw_presence: f32,
    pub raw: Vec<f32>,
    pub sequence: u64,
    pub audio_end_seconds: f64,
    pub presence: f32,
    pub dominant: Option<usize>,
    pub confidence: f32,
    /// Whether the thread that analysed the window flushed denormals to zero (`None` in logs
    /// written before the plugin logged it).
    #[serde(default)]
    pub denormals_flushed: Option<bool>,
    pub probabilities: Vec<f32>,
    /// The head's valence and arousal of the window, and the published (smoothed) ones.
    pub raw_valence: Option<f32>,
    pub raw_arousal: Option<f32>,
    pub valence: Option<f32>,
    pub arousal: Option<f32>,
    /// The published verdict was "uncertain".
    pub uncertain: bool,
}

/// A whole log: label names and rows.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WindowLog {
    pub labels: Vec<String>,
    pub rows: Vec<WindowRow>,
}

pub fn read(path: &Path) -> Result<WindowLog> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading window log {}", path.display()))?;
    parse(&text).with_context(|| format!("window log {}", path.display()))
}

pub fn parse(text: &str) -> Result<WindowLog> {
    let mut lines = text.lines();
    let header: Vec<&str> = lines
        .next()
        .ok_or_else(|| anyhow!("empty"))?
        .split(',')
        .collect();
    let labels: Vec<String> = header
        .iter()
        .filter_map(|h| h.strip_prefix("raw_"))
        .filter(|h| !["presence", "valence", "arousal"].contains(h))
        .map(str::to_owned)
        .collect();
    let k = labels.len();
    let flushed_column = header.contains(&"denormals_flushed");
    let expected = 4 + k + 5 + usize::from(flushed_column) + k + 5;
    if header.len() != expected
        || header[..4] != ["window", "start_seconds", "end_seconds", "raw_presence"]
    {
        bail!("unexpected header {header:?}");
    }
    let mut rows = Vec::new();
    for (n, line) in lines.enumerate() {
        let f: Vec<&str> = line.split(',').collect();
        if f.len() != expected {
            bail!("line {} has {} fields, not {expected}", n + 2, f.len());
        }
        let num = |i: usize| -> Result<f64> {
            f[i].parse::<f64>()
                .map_err(|e| anyhow!("line {} field {i}: {e}", n + 2))
        };
        let f32s = |from: usize| -> Result<Vec<f32>> {
            f[from..from + k]
                .iter()
                .map(|v| v.parse::<f32>().map_err(|e| anyhow!("line {}: {e}", n + 2)))
                .collect()
        };
        let axis = |i: usize| -> Result<Option<f32>> {
            Ok(if f[i].is_empty() {
                None
            } else {
                Some(f[i].parse()?)
            })
        };
        let at = 4 + k;
        let denormals_flushed = if flushed_column {
            match f[at + 5] {
                "1" => Some(true),
                "0" => Some(false),
                other => bail!("line {}: denormals_flushed is {other:?}", n + 2),
            }
        } else {
            None
        };
        let probabilities_at = at + 5 + usize::from(flushed_column);
        let tail = probabilities_at + k;
        rows.push(WindowRow {
            window: f[0].parse()?,
            start_seconds: num(1)?,
            end_seconds: num(2)?,
            raw_presence: f[3].parse()?,
            raw: f32s(4)?,
            sequence: f[at].parse()?,
            audio_end_seconds: num(at + 1)?,
            presence: f[at + 2].parse()?,
            dominant: if f[at + 3].is_empty() {
                None
            } else {
                Some(f[at + 3].parse()?)
            },
            confidence: f[at + 4].parse()?,
            denormals_flushed,
            probabilities: f32s(probabilities_at)?,
            raw_valence: axis(tail)?,
            raw_arousal: axis(tail + 1)?,
            valence: axis(tail + 2)?,
            arousal: axis(tail + 3)?,
            uncertain: f[tail + 4] == "1",
        });
    }
    Ok(WindowLog { labels, rows })
}

#[cfg(test)]
mod tests {
    #[test]
    fn parses_what_the_plugin_writes() {
        let text = "window,start_seconds,end_seconds,raw_presence,raw_Happy,raw_Sad,sequence,audio_end_seconds,presence,dominant,confidence,Happy,Sad,raw_valence,raw_arousal,valence,arousal,uncertain\n\
                    0,0,0.975,0.9,0.7,0.3,1,0.975,0.2,,0,0.6,0.4,0.5,-0.25,0.1,-0.05,1\n\
                    1,0.48,1.455,0.95,0.1,0.9,2,1.455,0.5,1,0.55,0.45,0.55,,,,,0\n";
        let log = super::parse(text).unwrap();
        assert_eq!(log.labels, ["Happy", "Sad"]);
        assert_eq!(log.rows.len(), 2);
        assert_eq!(log.rows[0].dominant, None);
        assert_eq!(log.rows[1].dominant, Some(1));
        assert_eq!(log.rows[1].raw, [0.1, 0.9]);
        assert_eq!(log.rows[1].probabilities, [0.45, 0.55]);
        assert_eq!(
            (
                log.rows[0].raw_valence,
                log.rows[0].arousal,
                log.rows[0].uncertain
            ),
            (Some(0.5), Some(-0.05), true)
        );
        assert_eq!((log.rows[1].valence, log.rows[1].uncertain), (None, false));
        assert_eq!(log.rows[1].denormals_flushed, None);
        let text = "window,start_seconds,end_seconds,raw_presence,raw_Happy,raw_Sad,sequence,audio_end_seconds,presence,dominant,confidence,denormals_flushed,Happy,Sad,raw_valence,raw_arousal,valence,arousal,uncertain\n\
                    0,0,0.975,0.9,0.7,0.3,1,0.975,0.2,,0,1,0.6,0.4,,,,,0\n";
        let log = super::parse(text).unwrap();
        assert_eq!(log.rows[0].denormals_flushed, Some(true));
        assert_eq!(log.rows[0].probabilities, [0.6, 0.4]);
    }
}
