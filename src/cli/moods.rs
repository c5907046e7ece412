//! A track's moods in a few numbers: a timeline's `Summary` in, `TrackMoods` out (the dominant
//! mood, each mood's share of the track, valence and arousal when the analysis gives them).
//! Tags (`tag`), the library database (`library`) and the summary tables read `TrackMoods`, so
//! `TrackMoods::from_summary` is the one place that knows what a `Summary` holds.

use super::report::Summary;

#[derive(Clone, Debug, PartialEq)]
pub struct TrackMoods {
    /// The analysis's labels, in its order.
    pub labels: Vec<String>,
    /// The track's mood (`Summary::mood`: the dominant label of its music's mean probabilities);
    /// `None` when no window holds music.
    pub dominant: Option<String>,
    /// Share of the track's windows per label (the verdict there), in label order.
    pub shares: Vec<(String, f32)>,
    /// Share of windows read uncertain, and without music.
    pub uncertain_share: f32,
    pub no_music_share: f32,
    /// Mean valence and arousal (−1..1), when the analysis gives them.
    pub valence: Option<f32>,
    pub arousal: Option<f32>,
    /// Mean probability of the dominant label over the track (0 when there is none).
    pub confidence: f32,
    /// Seconds of audio analysed.
    pub seconds: f64,
}

impl TrackMoods {
    /// The only function that reads a `Summary`.
    pub fn from_summary(summary: &Summary, labels: &[String]) -> Self {
        let shares: Vec<(String, f32)> = labels
            .iter()
            .cloned()
            .zip(summary.dominant_share.iter().copied())
            .collect();
        let dominant = summary
            .mood
            .as_ref()
            .and_then(|m| labels.iter().position(|l| l == m));
        Self {
            labels: labels.to_vec(),
            dominant: dominant.map(|d| labels[d].clone()),
            confidence: dominant
                .and_then(|d| summary.mean_probabilities.get(d).copied())
                .unwrap_or(0.0),
            shares,
            uncertain_share: summary.uncertain_share,
            no_music_share: summary.no_music_share,
            valence: summary.valence,
            arousal: summary.arousal,
            seconds: summary.seconds,
        }
    }

    /// One short line: "Calm 62%, Sad 20%, Happy 10%" — the track's mood first, then the
    /// others with a share of at least 5%, largest first (shares of the track's time; the rest
    /// read uncertain or without music).
    pub fn short_text(&self) -> String {
        let Some(dominant) = &self.dominant else {
            return "no music".to_string();
        };
        let mut others: Vec<&(String, f32)> = self
            .shares
            .iter()
            .filter(|(l, s)| l != dominant && *s >= 0.05)
            .collect();
        others.sort_by(|a, b| b.1.total_cmp(&a.1));
        let share = self
            .shares
            .iter()
            .find(|(l, _)| l == dominant)
            .map_or(0.0, |(_, s)| *s);
        let mut text = format!("{dominant} {:.0}%", share * 100.0);
        for (label, share) in others {
            text.push_str(&format!(", {label} {:.0}%", share * 100.0));
        }
        if let (Some(v), Some(a)) = (self.valence, self.arousal) {
            text.push_str(&format!(" (valence {v:+.2}, arousal {a:+.2})"));
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A summary whose mood is the largest share (as it is for a steady track).
    fn summary(shares: Vec<f32>, no_music: f32) -> Summary {
        let labels = ["Happy", "Sad", "Calm", "Angry", "Scary"];
        let top = (0..shares.len())
            .filter(|&i| shares[i] > 0.0)
            .max_by(|&a, &b| shares[a].total_cmp(&shares[b]));
        Summary {
            windows: 10,
            seconds: 5.3,
            mood: top.map(|i| labels[i].to_string()),
            mood_lead: 0.2,
            mean_probabilities: vec![0.2; shares.len()],
            uncertain_share: 1.0 - no_music - shares.iter().sum::<f32>(),
            dominant_share: shares,
            no_music_share: no_music,
            valence: top.map(|_| 0.25),
            arousal: top.map(|_| -0.5),
            mean_presence: 0.8,
        }
    }

    #[test]
    fn the_dominant_mood_is_the_largest_share_of_any_number_of_labels() {
        let labels: Vec<String> = ["Happy", "Sad", "Calm", "Angry", "Scary"]
            .map(String::from)
            .to_vec();
        let moods = TrackMoods::from_summary(&summary(vec![0.1, 0.2, 0.6, 0.0, 0.1], 0.0), &labels);
        assert_eq!(moods.dominant.as_deref(), Some("Calm"));
        assert_eq!(moods.shares.len(), 5);
        assert_eq!(
            moods.short_text(),
            "Calm 60%, Sad 20%, Happy 10%, Scary 10% (valence +0.25, arousal -0.50)"
        );
        let silent = TrackMoods::from_summary(&summary(vec![0.0; 5], 1.0), &labels);
        assert_eq!(silent.dominant, None);
        assert_eq!(silent.short_text(), "no music");
    }
}
