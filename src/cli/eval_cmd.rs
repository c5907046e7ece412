//! `moodscope eval --head HEAD.json DATA`: a trained head and labelled data it may never have
//! seen in; its figures out (accuracy with a 95% interval, macro-F1, the confusion matrix, and
//! per-window accuracy with every clip played back to back as one stream), printed, and the
//! confusion matrix as PNG with `--figures`.
//!
//! `DATA` is a TFRecord file of AudioSet's released embeddings (or a folder of them), measured on
//! the study's four-mood task, or a folder with one subfolder of audio files per label, embedded
//! with the head's own backbone and hop. The head is run exactly as the plugin runs it: its ONNX
//! graph in tract, one window at a time, the LSTM state fed back.

use std::path::{Path, PathBuf};

use clap::Args;
use moodscope_train::audioset::{self, ClassLabels};
use moodscope_train::{evaluate, plot_confusion, Dataset, EvalReport, StreamingHead};

use super::train_cmd::{embed_folders, list_label_folders, load_backbone};
use super::{hop_frames, Outcome};
use crate::backbone::BackboneKind;
use crate::models::ModelDir;

#[derive(Debug, Args)]
pub struct EvalArgs {
    /// The head to measure (its .json file, beside its .onnx).
    #[arg(long, value_name = "HEAD.json")]
    head: PathBuf,
    /// A TFRecord file of AudioSet embeddings (or a folder of .tfrecord files), or a folder with
    /// one subfolder of audio files per label.
    #[arg(value_name = "DATA")]
    data: PathBuf,
    /// AudioSet's class_labels_indices.csv, for TFRecord data (default: beside the data).
    #[arg(long, value_name = "CSV")]
    class_labels: Option<PathBuf>,
    /// Audio folders: seconds between window starts (default: the hop the head was trained at).
    #[arg(long, value_name = "SECONDS")]
    hop: Option<f64>,
    /// Write the confusion matrix here as `confusion-NAME.png`.
    #[arg(long, value_name = "DIR")]
    figures: Option<PathBuf>,
    /// Threads running the backbone (audio folders).
    #[arg(long, default_value_t = 2)]
    threads: usize,
}

/// Whether `path` holds AudioSet TFRecords (a `.tfrecord` file, or a folder with some).
fn is_tfrecord(path: &Path) -> bool {
    let tfrecord = |p: &Path| p.extension().is_some_and(|e| e == "tfrecord");
    if path.is_dir() {
        std::fs::read_dir(path)
            .map(|entries| entries.filter_map(Result::ok).any(|e| e.path().is_file() && tfrecord(&e.path())))
            .unwrap_or(false)
    } else {
        true
    }
}

pub fn run(args: EvalArgs, models: &ModelDir) -> Outcome {
    let (report, name, some_failed) = match measure(&args, models) {
        Ok(measured) => measured,
        Err(e) => {
            eprintln!("moodscope: {e}");
            return Outcome::Failed;
        }
    };
    print!("{report}");
    if let Some(dir) = &args.figures {
        let path = dir.join(format!("confusion-{name}.png"));
        let title = format!(
            "{name} on {}: accuracy {}, macro-F1 {:.3}",
            args.data.file_name().map_or_else(|| args.data.display().to_string(), |n| n.to_string_lossy().into_owned()),
            report.accuracy,
            report.macro_f1
        );
        let written = std::fs::create_dir_all(dir)
            .map_err(|e| format!("{}: {e}", dir.display()))
            .and_then(|_| plot_confusion(&report.confusion, 1, &title, &path).map_err(|e| e.to_string()));
        match written {
            Ok(()) => eprintln!("figure: {}", path.display()),
            Err(e) => {
                eprintln!("moodscope: {e}");
                return Outcome::SomeFailed;
            }
        }
    }
    if some_failed {
        Outcome::SomeFailed
    } else {
        Outcome::Done
    }
}

/// Loads the head and the data and measures the head: its report, its name, and whether some
/// of the data could not be read (reported on stderr as it was met).
pub(super) fn measure(args: &EvalArgs, models: &ModelDir) -> Result<(EvalReport, String, bool), String> {
    let mut head = StreamingHead::load(&args.head).map_err(|e| e.to_string())?;
    let backbone: BackboneKind =
        head.metadata.backbone.parse().map_err(|e| format!("{}: {e}", args.head.display()))?;
    let (data, some_failed) =
        if is_tfrecord(&args.data) { read_audioset(args, backbone)? } else { read_folders(args, &head, backbone, models)? };
    eprintln!("data: {data}");
    let report = evaluate(&mut head, &data).map_err(|e| e.to_string())?;
    Ok((report, head.metadata.name.clone(), some_failed))
}

/// The study's four-mood task from a TFRecord file; bad records are reported and skipped.
fn read_audioset(args: &EvalArgs, backbone: BackboneKind) -> Result<(Dataset, bool), String> {
    if backbone != BackboneKind::Vggish {
        return Err(format!(
            "{}: the head reads {} embeddings, but AudioSet's released features are VGGish embeddings",
            args.head.display(),
            backbone.name()
        ));
    }
    let read = audioset::read_tfrecord(&args.data).map_err(|e| e.to_string())?;
    for e in &read.errors {
        eprintln!("moodscope: {e}");
    }
    let class_labels = args.class_labels.clone().unwrap_or_else(|| {
        let dir = if args.data.is_dir() { args.data.as_path() } else { args.data.parent().unwrap_or(Path::new(".")) };
        dir.join("class_labels_indices.csv")
    });
    let classes = ClassLabels::read(&class_labels).map_err(|e| e.to_string())?;
    let data = audioset::mood_task(&read.clips, &classes).map_err(|e| e.to_string())?;
    eprintln!("{}: {} records, {} unreadable", args.data.display(), read.records(), read.errors.len());
    Ok((data, !read.errors.is_empty()))
}

/// Labelled audio folders, embedded with the head's backbone at the head's hop.
fn read_folders(
    args: &EvalArgs,
    head: &StreamingHead,
    backbone: BackboneKind,
    models: &ModelDir,
) -> Result<(Dataset, bool), String> {
    let hop = match args.hop {
        Some(seconds) => hop_frames(seconds)?,
        None => match head.metadata.hop_seconds {
            Some(seconds) => hop_frames(seconds)?,
            None => backbone.default_hop_frames(),
        },
    };
    let folders = list_label_folders(&args.data)?;
    for w in &folders.warnings {
        eprintln!("moodscope: warning: {w}");
    }
    let network = load_backbone(backbone, models)?;
    let (data, failed) = embed_folders(&folders, network.as_ref(), hop, args.threads);
    Ok((data, failed || !folders.warnings.is_empty()))
}
