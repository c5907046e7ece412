//! AudioSet's released embeddings: TFRecord files of `tf.train.SequenceExample` in, clips
//! (per-second VGGish embeddings with their AudioSet labels) and the mood tasks out: the study's
//! four moods, or six ([`MoodSet`]).
//!
//! Each record holds, in its context, `video_id` (bytes), `start_time_seconds`,
//! `end_time_seconds` (float) and `labels` (int64 rows of `class_labels_indices.csv`), and in the
//! feature list `audio_embedding` one 128-byte feature per second: the VGGish embedding after
//! `vggish_postprocess.py` (PCA whitening, clipping to [-2, 2], 8-bit quantization).
//! [`dequantize`] maps each byte back to its PCA-space value.
//!
//! Bad records never stop a read: each one is reported in [`TfRecordRead::errors`] with its file,
//! index and byte offset, and every intact record is still returned.

use std::collections::BTreeSet;
use std::fmt;
use std::path::{Path, PathBuf};

use prost::Message;

use crate::dataset::{Dataset, Sequence};
use crate::proto::{feature::Kind, Feature, SequenceExample};
use crate::tfrecord;

/// Name of the feature list that holds the per-second embeddings.
pub const EMBEDDING_FEATURE: &str = "audio_embedding";
/// Bytes per released embedding: 128 dimensions, 8 bits each.
pub const EMBEDDING_BYTES: usize = 128;
/// Seconds of audio per released embedding (one VGGish patch of 96 frames at a 10 ms hop).
pub const WINDOW_SECONDS: f64 = 0.96;

/// The quantization range of `vggish_postprocess.py`: PCA-whitened values are clipped to
/// [`QUANTIZE_MIN`, `QUANTIZE_MAX`] and mapped linearly to 0..=255.
pub const QUANTIZE_MIN: f64 = -2.0;
pub const QUANTIZE_MAX: f64 = 2.0;

/// A released 8-bit embedding value back in its PCA space: the inverse of `vggish_postprocess`'s
/// quantization, `q * (2 - (-2)) / 255 + (-2)` = `q * 4 / 255 - 2` (0 → -2.0, 255 → 2.0).
/// Computed in f64 as the Moodscope VGGish backbone does, so both give bit-identical values.
pub fn dequantize(q: u8) -> f32 {
    (q as f64 * (QUANTIZE_MAX - QUANTIZE_MIN) / 255.0 + QUANTIZE_MIN) as f32
}

/// The mood classes of AudioSet's ontology (display names in `class_labels_indices.csv`).
pub const MOOD_CLASSES: [&str; 7] = [
    "Happy music",
    "Funny music",
    "Sad music",
    "Tender music",
    "Exciting music",
    "Angry music",
    "Scary music",
];

/// The study's four moods, as AudioSet display names, in the heads' output order.
pub const TASK_CLASSES: [&str; 4] = ["Happy music", "Sad music", "Angry music", "Scary music"];

/// One AudioSet clip of a TFRecord file.
#[derive(Clone, Debug, PartialEq)]
pub struct Clip {
    pub video_id: String,
    pub start_seconds: f32,
    pub end_seconds: f32,
    /// Rows of `class_labels_indices.csv`.
    pub labels: Vec<i64>,
    /// One dequantized 128-D embedding per second.
    pub embeddings: Vec<Vec<f32>>,
}

impl Clip {
    /// `VIDEO_ID@START`, the name a clip goes by in reports.
    pub fn id(&self) -> String {
        format!("{}@{}", self.video_id, self.start_seconds)
    }
}

/// A record that could not be read, and why.
#[derive(Clone, Debug, PartialEq)]
pub struct RecordError {
    pub file: PathBuf,
    /// 0-based index of the record in its file.
    pub index: usize,
    /// Byte offset of the record in its file.
    pub offset: u64,
    pub reason: String,
}

impl fmt::Display for RecordError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: record {} at byte {}: {}",
            self.file.display(),
            self.index,
            self.offset,
            self.reason
        )
    }
}

/// What [`read_tfrecord`] found: every intact clip, and an error for every bad record.
#[derive(Clone, Debug, Default)]
pub struct TfRecordRead {
    pub clips: Vec<Clip>,
    pub errors: Vec<RecordError>,
    /// Files read (one, or the `.tfrecord` files of a folder).
    pub files: Vec<PathBuf>,
}

impl TfRecordRead {
    /// Records seen, intact or not.
    pub fn records(&self) -> usize {
        self.clips.len() + self.errors.len()
    }
}

/// Failure to read a file at all (a bad record is a [`RecordError`] instead).
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("cannot read {}: {source}", .path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{} holds no .tfrecord files", .0.display())]
    EmptyFolder(PathBuf),
}

/// Reads a TFRecord file of AudioSet `SequenceExample`s, or every `*.tfrecord` file of a folder
/// (sorted by name; AudioSet's released splits are folders of shards). Corrupt, truncated or
/// malformed records are reported in the result and skipped; only an unreadable file or an empty
/// folder is an error.
pub fn read_tfrecord(path: &Path) -> Result<TfRecordRead, ReadError> {
    let io = |source| ReadError::Io {
        path: path.to_owned(),
        source,
    };
    let files = if path.is_dir() {
        let mut files: Vec<PathBuf> = std::fs::read_dir(path)
            .map_err(io)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_file() && p.extension().is_some_and(|e| e == "tfrecord"))
            .collect();
        files.sort();
        if files.is_empty() {
            return Err(ReadError::EmptyFolder(path.to_owned()));
        }
        files
    } else {
        vec![path.to_owned()]
    };
    let mut read = TfRecordRead::default();
    for file in files {
        let bytes = std::fs::read(&file).map_err(|source| ReadError::Io {
            path: file.clone(),
            source,
        })?;
        let parsed = parse_tfrecord_bytes(&bytes, &file);
        read.clips.extend(parsed.clips);
        read.errors.extend(parsed.errors);
        read.files.push(file);
    }
    Ok(read)
}

/// [`read_tfrecord`] on bytes already in memory; `file` names them in error reports.
pub fn parse_tfrecord_bytes(bytes: &[u8], file: &Path) -> TfRecordRead {
    let mut read = TfRecordRead {
        files: vec![file.to_owned()],
        ..Default::default()
    };
    for record in tfrecord::records(bytes) {
        match record {
            Ok(record) => match parse_clip(record.data) {
                Ok(clip) => read.clips.push(clip),
                Err(reason) => read.errors.push(RecordError {
                    file: file.to_owned(),
                    index: record.index,
                    offset: record.offset,
                    reason,
                }),
            },
            Err(e) => read.errors.push(RecordError {
                file: file.to_owned(),
                index: e.index,
                offset: e.offset,
                reason: e.problem.to_string(),
            }),
        }
    }
    read
}

/// One record's payload in, its clip out (or why it is not a usable AudioSet clip).
pub fn parse_clip(data: &[u8]) -> Result<Clip, String> {
    let example = SequenceExample::decode(data)
        .map_err(|e| format!("not a tf.train.SequenceExample: {e}"))?;
    let context = example.context.unwrap_or_default();
    let bytes_of = |name: &str| match context.feature.get(name).and_then(|f| f.kind.as_ref()) {
        Some(Kind::BytesList(list)) => list.value.first().cloned(),
        _ => None,
    };
    let float_of = |name: &str| match context.feature.get(name).and_then(|f| f.kind.as_ref()) {
        Some(Kind::FloatList(list)) => list.value.first().copied(),
        _ => None,
    };
    let video_id = bytes_of("video_id")
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .ok_or("context has no `video_id`")?;
    let labels = match context.feature.get("labels").and_then(|f| f.kind.as_ref()) {
        Some(Kind::Int64List(list)) => list.value.clone(),
        _ => return Err(format!("clip {video_id}: context has no int64 `labels`")),
    };
    let start_seconds = float_of("start_time_seconds").unwrap_or(f32::NAN);
    let end_seconds = float_of("end_time_seconds").unwrap_or(f32::NAN);
    let seconds = example
        .feature_lists
        .and_then(|mut lists| lists.feature_list.remove(EMBEDDING_FEATURE))
        .ok_or_else(|| format!("clip {video_id}: no `{EMBEDDING_FEATURE}` feature list"))?;
    if seconds.feature.is_empty() {
        return Err(format!(
            "clip {video_id}: `{EMBEDDING_FEATURE}` is empty (no seconds of audio)"
        ));
    }
    let embeddings = seconds
        .feature
        .iter()
        .enumerate()
        .map(|(second, feature)| {
            embedding_of(feature).map_err(|e| format!("clip {video_id}, second {second}: {e}"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Clip {
        video_id,
        start_seconds,
        end_seconds,
        labels,
        embeddings,
    })
}

fn embedding_of(feature: &Feature) -> Result<Vec<f32>, String> {
    match &feature.kind {
        Some(Kind::BytesList(list)) => match list.value.as_slice() {
            [bytes] if bytes.len() == EMBEDDING_BYTES => {
                Ok(bytes.iter().map(|&q| dequantize(q)).collect())
            }
            [bytes] => Err(format!(
                "embedding has {} bytes, expected {EMBEDDING_BYTES}",
                bytes.len()
            )),
            values => Err(format!(
                "{} byte strings where one embedding was expected",
                values.len()
            )),
        },
        _ => Err("embedding is not a bytes feature".into()),
    }
}

/// One row of `class_labels_indices.csv`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClassLabel {
    pub index: i64,
    pub mid: String,
    pub display_name: String,
}

/// AudioSet's class list (`class_labels_indices.csv`: `index,mid,display_name`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClassLabels(pub Vec<ClassLabel>);

/// A class list that cannot be read or lacks what the task needs.
#[derive(Debug, thiserror::Error)]
pub enum LabelsError {
    #[error("cannot read class list {}: {source}", .path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("class list, line {line}: {reason}")]
    Malformed { line: u64, reason: String },
    #[error("class list has no class named `{0}`")]
    MissingClass(String),
}

impl ClassLabels {
    pub fn read(path: &Path) -> Result<Self, LabelsError> {
        let text = std::fs::read_to_string(path).map_err(|source| LabelsError::Io {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(&text)
    }

    /// Parses the CSV text (header line first; display names may be quoted and hold commas).
    pub fn parse(text: &str) -> Result<Self, LabelsError> {
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(true)
            .from_reader(text.as_bytes());
        let mut rows = Vec::new();
        for (i, record) in reader.records().enumerate() {
            let line = i as u64 + 2;
            let record = record.map_err(|e| LabelsError::Malformed {
                line,
                reason: e.to_string(),
            })?;
            let field = |n: usize| record.get(n).map(str::trim).unwrap_or_default().to_owned();
            let index = field(0).parse().map_err(|_| LabelsError::Malformed {
                line,
                reason: format!("index `{}` is not a number", field(0)),
            })?;
            rows.push(ClassLabel {
                index,
                mid: field(1),
                display_name: field(2),
            });
        }
        Ok(Self(rows))
    }

    /// The index of the class called `display_name`.
    pub fn index_of(&self, display_name: &str) -> Result<i64, LabelsError> {
        self.0
            .iter()
            .find(|c| c.display_name == display_name)
            .map(|c| c.index)
            .ok_or_else(|| LabelsError::MissingClass(display_name.to_owned()))
    }
}

/// A set of AudioSet music moods a head tells apart.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MoodSet {
    /// The study's four: Happy, Sad, Angry, Scary.
    Four,
    /// Six of AudioSet's seven: the study's four, then Tender (shown as "Calm") and Exciting.
    /// Funny is left out.
    Six,
}

impl MoodSet {
    /// How many moods.
    pub fn len(self) -> usize {
        self.classes().len()
    }

    /// Never empty (clippy's `len_without_is_empty`).
    pub fn is_empty(self) -> bool {
        false
    }

    /// From the number of moods: 4 or 6.
    pub fn from_count(count: usize) -> Option<Self> {
        match count {
            4 => Some(Self::Four),
            6 => Some(Self::Six),
            _ => None,
        }
    }

    /// The AudioSet classes (display names in `class_labels_indices.csv`), in the heads' output
    /// order. The six-mood set starts with the study's four, so a six-mood head's first four
    /// outputs mean what a four-mood head's do (the plugin sends a head's first four labels on
    /// its four mood CCs).
    pub fn classes(self) -> &'static [&'static str] {
        match self {
            Self::Four => &TASK_CLASSES,
            Self::Six => &SIX_MOOD_CLASSES,
        }
    }

    /// The labels the heads show: the class name without " music", and "Calm" for "Tender
    /// music".
    pub fn labels(self) -> Vec<String> {
        self.classes().iter().map(|c| display_label(c)).collect()
    }
}

impl fmt::Display for MoodSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} moods ({})", self.len(), self.labels().join(", "))
    }
}

/// The six moods of [`MoodSet::Six`], as AudioSet display names, in the heads' output order.
pub const SIX_MOOD_CLASSES: [&str; 6] = [
    "Happy music",
    "Sad music",
    "Angry music",
    "Scary music",
    "Tender music",
    "Exciting music",
];

/// The label a head shows for an AudioSet mood class: `Tender music` → `Calm`, otherwise the
/// name without " music".
pub fn display_label(class: &str) -> String {
    match class {
        "Tender music" => "Calm".to_owned(),
        other => other.trim_end_matches(" music").to_owned(),
    }
}

/// The study's task: the clips that carry exactly one of Happy, Sad, Angry or Scary music and no
/// other mood label (Funny, Tender, Exciting). Labels are named `Happy`, `Sad`, `Angry`, `Scary`
/// (the display name without " music"), in that order; a mood with no clip stays in the list
/// with no items (training reports it). Clips are kept in file order.
pub fn mood_task(clips: &[Clip], classes: &ClassLabels) -> Result<Dataset, LabelsError> {
    mood_set_task(clips, classes, MoodSet::Four)
}

/// The task of a [`MoodSet`]: the clips that carry exactly one of AudioSet's seven music moods,
/// that one being in the set (a clip with a second mood label, Funny included, is left out).
/// Labels as [`MoodSet::labels`]; a mood with no clip stays in the list with no items. Clips are
/// kept in file order.
pub fn mood_set_task(
    clips: &[Clip],
    classes: &ClassLabels,
    set: MoodSet,
) -> Result<Dataset, LabelsError> {
    let moods: BTreeSet<i64> = MOOD_CLASSES
        .iter()
        .map(|n| classes.index_of(n))
        .collect::<Result<_, _>>()?;
    let task: Vec<i64> = set
        .classes()
        .iter()
        .map(|n| classes.index_of(n))
        .collect::<Result<_, _>>()?;
    let items = clips
        .iter()
        .filter_map(|clip| {
            let mut carried: Vec<i64> = clip
                .labels
                .iter()
                .copied()
                .filter(|l| moods.contains(l))
                .collect();
            carried.sort_unstable();
            carried.dedup();
            match carried.as_slice() {
                [only] => task.iter().position(|t| t == only).map(|label| Sequence {
                    id: clip.id(),
                    label,
                    embeddings: clip.embeddings.clone(),
                }),
                _ => None,
            }
        })
        .collect();
    Ok(Dataset {
        labels: set.labels(),
        items,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dequantize_inverts_the_released_quantization() {
        assert_eq!(dequantize(0), -2.0);
        assert_eq!(dequantize(255), 2.0);
        // vggish_postprocess: q = (clip(x, -2, 2) + 2) * 255 / 4, as uint8.
        for q in 0..=255u8 {
            let x = dequantize(q) as f64;
            let back = ((x - QUANTIZE_MIN) * (255.0 / (QUANTIZE_MAX - QUANTIZE_MIN))).round();
            assert_eq!(back as u8, q);
        }
    }

    #[test]
    fn class_list_with_quoted_commas() {
        let csv = "index,mid,display_name\n0,/m/09x0r,\"Speech\"\n1,/m/05zppz,\"Male speech, man speaking\"\n";
        let labels = ClassLabels::parse(csv).unwrap();
        assert_eq!(labels.index_of("Male speech, man speaking").unwrap(), 1);
        assert!(matches!(
            labels.index_of("Happy music"),
            Err(LabelsError::MissingClass(_))
        ));
        assert!(matches!(
            ClassLabels::parse("index,mid,display_name\nx,/m/1,\"A\"\n"),
            Err(LabelsError::Malformed { line: 2, .. })
        ));
    }

    #[test]
    fn garbage_record_is_an_error_not_a_panic() {
        assert!(parse_clip(b"\xff\xff\xff\xff").is_err());
        assert!(parse_clip(b"").is_err());
    }
}
