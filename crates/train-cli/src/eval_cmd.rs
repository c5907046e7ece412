//! `moodscope-train eval --head HEAD.json DATA`: a trained head and labelled data it may never
//! have seen in; its figures out (accuracy with a 95% interval, macro-F1, the confusion matrix, and
//! per-window accuracy with every clip played back to back as one stream), printed, and the
//! confusion matrix as PNG with `--figures`.
//!
//! `DATA` is a TFRecord file of AudioSet's released embeddings (or a folder of them), measured on
//! the study's four-mood task or the six-mood one (`--moods 4|6`; default: as many moods as the
//! head has), or a folder with one subfolder of audio files per label, embedded with the head's
//! own backbone and hop. The head is run exactly as the plugin runs it: its ONNX
//! graph in tract, one window at a time, the LSTM state fed back.

use std::path::{Path, PathBuf};

use clap::Args;
use moodscope_train::audioset::{self, ClassLabels};
use moodscope_train::{evaluate, plot_confusion, Dataset, EvalReport, MoodSet, StreamingHead};

use moodscope::backbone::BackboneKind;
use moodscope::cli::{hop_frames, Outcome};
use moodscope::models::ModelDir;

use crate::train_cmd::{embed_folders, list_label_folders, load_backbone};

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
    /// TFRecord data: measure on the 4-mood task (Happy, Sad, Angry, Scary) or the 6-mood one
    /// (also Calm and Exciting). Default: as many moods as the head has.
    #[arg(long, value_name = "4|6")]
    moods: Option<usize>,
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
            .map(|entries| {
                entries
                    .filter_map(Result::ok)
                    .any(|e| e.path().is_file() && tfrecord(&e.path()))
            })
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
            args.data.file_name().map_or_else(
                || args.data.display().to_string(),
                |n| n.to_string_lossy().into_owned()
            ),
            report.accuracy,
            report.macro_f1
        );
        let written = std::fs::create_dir_all(dir)
            .map_err(|e| format!("{}: {e}", dir.display()))
            .and_then(|_| {
                plot_confusion(&report.confusion, 1, &title, &path).map_err(|e| e.to_string())
            });
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
pub(super) fn measure(
    args: &EvalArgs,
    models: &ModelDir,
) -> Result<(EvalReport, String, bool), String> {
    let mut head = StreamingHead::load(&args.head).map_err(|e| e.to_string())?;
    let backbone: BackboneKind = head
        .metadata
        .backbone
        .parse()
        .map_err(|e| format!("{}: {e}", args.head.display()))?;
    let (data, some_failed) = if is_tfrecord(&args.data) {
        read_audioset(args, backbone, head.metadata.labels.len())?
    } else {
        read_folders(args, &head, backbone, models)?
    };
    eprintln!("data: {data}");
    let report = evaluate(&mut head, &data).map_err(|e| e.to_string())?;
    Ok((report, head.metadata.name.clone(), some_failed))
}

/// A mood task (four or six moods) from a TFRecord file; bad records are reported and skipped.
fn read_audioset(
    args: &EvalArgs,
    backbone: BackboneKind,
    head_labels: usize,
) -> Result<(Dataset, bool), String> {
    if backbone != BackboneKind::Vggish {
        return Err(format!(
            "{}: the head reads {} embeddings, but AudioSet's released features are VGGish embeddings",
            args.head.display(),
            backbone.name()
        ));
    }
    let moods = args.moods.unwrap_or(head_labels);
    let set = MoodSet::from_count(moods).ok_or_else(|| match args.moods {
        Some(m) => format!("--moods takes 4 or 6, not {m}"),
        None => format!(
            "{}: the head has {head_labels} labels; say which AudioSet mood task to measure it \
             on with --moods 4 or --moods 6",
            args.head.display()
        ),
    })?;
    let read = audioset::read_tfrecord(&args.data).map_err(|e| e.to_string())?;
    for e in &read.errors {
        eprintln!("moodscope: {e}");
    }
    let class_labels = args.class_labels.clone().unwrap_or_else(|| {
        let dir = if args.data.is_dir() {
            args.data.as_path()
        } else {
            args.data.parent().unwrap_or(Path::new("."))
        };
        dir.join("class_labels_indices.csv")
    });
    let classes = ClassLabels::read(&class_labels).map_err(|e| e.to_string())?;
    let data = audioset::mood_set_task(&read.clips, &classes, set).map_err(|e| e.to_string())?;
    eprintln!(
        "{}: {} records, {} unreadable",
        args.data.display(),
        read.records(),
        read.errors.len()
    );
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
    let (data, failed) = embed_folders(&folders, &network, hop, args.threads);
    Ok((data, failed || !folders.warnings.is_empty()))
}

#[cfg(test)]
mod tests {
    //! The shipped AudioSet head as the plugin and `analyze` load it (`head::TrainedHead`) and as
    //! `eval` measures it, on AudioSet's real released embeddings.

    use std::path::Path;

    use clap::Parser;

    use super::*;
    use moodscope::backbone::BackboneOutput;
    use moodscope::engine::VGGISH_HEAD_FOUR as DEFAULT_VGGISH_HEAD;
    use moodscope::head::{MoodHead, TrainedHead, MOODS};

    #[derive(Parser)]
    struct EvalCli {
        #[command(flatten)]
        args: EvalArgs,
    }

    /// The repository's root (models, and `../shared` beside it).
    fn root() -> &'static Path {
        Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
    }

    fn audioset_file() -> std::path::PathBuf {
        root().join("../shared/data/audioset/audioset_moods_bal_train.tfrecord")
    }

    #[test]
    fn the_engine_runs_the_shipped_head_as_it_was_exported() {
        let json = root().join("models").join(DEFAULT_VGGISH_HEAD);
        let mut engine_head = TrainedHead::load(&json).unwrap_or_else(|e| panic!("{e}"));
        engine_head.check_backbone(BackboneKind::Vggish).unwrap();
        assert_eq!(engine_head.labels(), MOODS.map(String::from).as_slice());
        let mut reference = StreamingHead::load(&json).unwrap();
        let read = audioset::read_tfrecord(&audioset_file()).unwrap();
        // Three clips back to back, the state carried across them in both.
        let stream: Vec<Vec<f32>> = read.clips[..3]
            .iter()
            .flat_map(|c| c.embeddings.clone())
            .collect();
        for embedding in &stream {
            let got = engine_head
                .step(
                    &BackboneOutput {
                        embedding: embedding.clone(),
                        scores: None,
                    },
                    &moodscope::cues::WindowCues::default(),
                )
                .unwrap();
            let expected = reference.step(embedding).unwrap();
            for (a, b) in got.probabilities.iter().zip(&expected) {
                assert!(
                    (a - b).abs() < 1e-6,
                    "{:?} vs {expected:?}",
                    got.probabilities
                );
            }
        }
    }

    #[test]
    fn eval_measures_the_shipped_head_and_reports_a_corrupt_record() {
        let json = root().join("models").join(DEFAULT_VGGISH_HEAD);
        let mut bytes = std::fs::read(audioset_file()).unwrap();
        let middle = bytes.len() / 2;
        bytes[middle] ^= 0x10;
        let dir = tempfile::tempdir().unwrap();
        let corrupt = dir.path().join("corrupt.tfrecord");
        std::fs::write(&corrupt, &bytes).unwrap();
        let labels = root().join("../shared/data/audioset/class_labels_indices.csv");
        let cli = EvalCli::parse_from([
            "eval",
            "--head",
            json.to_str().unwrap(),
            corrupt.to_str().unwrap(),
            "--class-labels",
            labels.to_str().unwrap(),
        ]);
        let (report, name, some_failed) = measure(&cli.args, &ModelDir::new(dir.path())).unwrap();
        println!("{report}");
        let stem = Path::new(DEFAULT_VGGISH_HEAD).file_stem().unwrap();
        assert_eq!(name, stem.to_string_lossy());
        assert!(some_failed, "the corrupt record is reported");
        // One record of the 411 is lost; the others are measured (the head has seen these clips
        // in training, so this is no measure of the head, only of the command).
        assert!((232..=233).contains(&report.clips), "{}", report.clips);
        assert!(report.accuracy.value > 0.9, "{report}");
        assert_eq!(
            run(cli.args, &ModelDir::new(dir.path())),
            Outcome::SomeFailed
        );

        // A head of another backbone cannot read AudioSet's VGGish features.
        let text = std::fs::read_to_string(&json)
            .unwrap()
            .replacen("\"vggish\"", "\"yamnet\"", 1);
        let yamnet = dir.path().join("yamnet-head.json");
        std::fs::write(&yamnet, text).unwrap();
        std::fs::copy(json.with_extension("onnx"), yamnet.with_extension("onnx")).unwrap();
        let cli = EvalCli::parse_from([
            "eval",
            "--head",
            yamnet.to_str().unwrap(),
            audioset_file().to_str().unwrap(),
        ]);
        let err = measure(&cli.args, &ModelDir::new(dir.path()))
            .err()
            .unwrap();
        assert!(err.contains("VGGish"), "{err}");
    }

    #[test]
    fn the_six_mood_head_loads_and_is_measured_on_six_moods() {
        let json = root().join("models/heads/audioset-moods6.json");
        let engine_head = TrainedHead::load(&json).unwrap_or_else(|e| panic!("{e}"));
        engine_head.check_backbone(BackboneKind::Vggish).unwrap();
        assert_eq!(
            engine_head.labels(),
            ["Happy", "Sad", "Angry", "Scary", "Calm", "Exciting"].map(String::from)
        );
        let dir = tempfile::tempdir().unwrap();
        let models = ModelDir::new(dir.path());
        let data = audioset_file();
        // The task follows the head: six labels, six moods.
        let cli = EvalCli::parse_from([
            "eval",
            "--head",
            json.to_str().unwrap(),
            data.to_str().unwrap(),
        ]);
        let (report, name, some_failed) = measure(&cli.args, &models).unwrap();
        println!("{report}");
        assert_eq!(
            (name.as_str(), some_failed, report.clips),
            ("audioset-moods6", false, 343)
        );
        assert_eq!(report.confusion.labels.len(), 6);
        assert!(report.to_string().contains("Calm"), "{report}");
        // The four-mood head on the six-mood task: Calm and Exciting clips are left out, named.
        let four = root().join("models/heads/audioset-moods4.json");
        let cli = EvalCli::parse_from([
            "eval",
            "--head",
            four.to_str().unwrap(),
            "--moods",
            "6",
            data.to_str().unwrap(),
        ]);
        let (report, _, _) = measure(&cli.args, &models).unwrap();
        assert_eq!(report.clips, 233);
        assert_eq!(report.warnings.len(), 2, "{:?}", report.warnings);
        assert!(
            report.warnings[0].contains("`Calm`"),
            "{:?}",
            report.warnings
        );
        // A mood count that is no task.
        let cli = EvalCli::parse_from([
            "eval",
            "--head",
            four.to_str().unwrap(),
            "--moods",
            "5",
            data.to_str().unwrap(),
        ]);
        let err = measure(&cli.args, &models).err().unwrap();
        assert!(err.contains("4 or 6"), "{err}");
    }
}
