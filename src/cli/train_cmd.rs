//! `moodscope train`: labelled audio in (one subfolder of audio files per label), a trained head
//! (`NAME.onnx` + `NAME.json`, loadable by `analyze --head` and the plugin), its cross-validated
//! figures (printed, and as PNG) out. `moodscope train --audioset FILE` instead reruns the study's
//! Table 1 on AudioSet's released embeddings and exports the AudioSet heads.
//!
//! The audio is embedded by the same front end and backbone as `analyze` (YAMNet by default),
//! one embedding per window; the head is trained by `moodscope-train`, the same code that trained
//! the shipped AudioSet heads. A file that cannot be read is reported (one line naming it and the
//! reason) and left out; an empty label is left out with a warning; labels too small for k-fold
//! cross-validation lower k or are left out of the measurement, with warnings. The head is still
//! written whenever two labels remain; the exit status is then 1 if anything was left out.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use clap::{Args, ValueEnum};
use moodscope_train::experiment::{self, Event, ExperimentOptions};
use moodscope_train::{
    cross_validate, export_head, plot_curves, plot_cv_confusion, train, CvReport, Dataset, EmbeddingSource, HeadSpec,
    Progress, Sequence,
};

use super::{hop_frames, parse_backbone, report_error, Outcome};
use crate::backbone::{self, Backbone, BackboneKind};
use crate::decode::read_mono_file;
use crate::engine::SAMPLE_LIMIT;
use crate::features::{self, FrontEnd, FrontEndConfig};
use crate::models::ModelDir;

/// Which head to train.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Recipe {
    /// Moodscope's streaming LSTM head (normalisation, dropout, weight decay, mixup, streaming
    /// training, an ensemble of 5): what the shipped AudioSet head is.
    Streaming,
    /// The study's 1-layer LSTM (64 units, last window).
    Lstm1,
    /// The study's 3-layer LSTM.
    Lstm3,
    /// The study's per-window multinomial logistic regression.
    Logistic,
    /// Logistic regression on the clip-mean embedding.
    ClipMean,
}

impl Recipe {
    fn spec(self) -> HeadSpec {
        match self {
            Recipe::Streaming => HeadSpec::streaming_lstm(),
            Recipe::Lstm1 => HeadSpec::study_lstm(1),
            Recipe::Lstm3 => HeadSpec::study_lstm(3),
            Recipe::Logistic => HeadSpec::study_logistic(),
            Recipe::ClipMean => HeadSpec::clip_mean_logistic(),
        }
    }
}

#[derive(Debug, Args)]
pub struct TrainArgs {
    /// Folder with one subfolder of audio files per label (WAV, FLAC, MP3, Ogg Vorbis); each
    /// subfolder's name is a label. At least two labels.
    #[arg(long, value_name = "DIR", required_unless_present = "audioset", conflicts_with = "audioset")]
    data: Option<PathBuf>,
    /// Instead of --data: rerun the study's Table 1 on AudioSet's released embeddings (a
    /// TFRecord file of SequenceExamples, or a folder of them) and export the AudioSet heads.
    #[arg(long, value_name = "FILE.tfrecord")]
    audioset: Option<PathBuf>,
    /// AudioSet's class_labels_indices.csv, for --audioset (default: beside the data).
    #[arg(long, value_name = "CSV")]
    class_labels: Option<PathBuf>,
    /// Network that embeds the audio: yamnet or vggish.
    #[arg(long, default_value = "yamnet", value_parser = parse_backbone)]
    backbone: BackboneKind,
    /// Seconds between window starts (default: 0.48 for YAMNet, 0.96 for VGGish). Analyse with
    /// the same hop the head was trained with.
    #[arg(long, value_name = "SECONDS")]
    hop: Option<f64>,
    /// The head to train.
    #[arg(long, value_enum, default_value_t = Recipe::Streaming)]
    recipe: Recipe,
    /// Training epochs (default: the recipe's).
    #[arg(long)]
    epochs: Option<usize>,
    /// Ensemble members (default: the recipe's).
    #[arg(long)]
    ensemble: Option<usize>,
    /// Windows of a clip seen per training step: long files are cut to a random stretch of this
    /// many seconds each epoch (0: whole files).
    #[arg(long, default_value_t = 10.0, value_name = "SECONDS")]
    crop: f64,
    /// Folds of the stratified cross-validation.
    #[arg(long, default_value_t = 5)]
    folds: usize,
    /// Cross-validation repeats, with seeds 1..=N.
    #[arg(long, default_value_t = 1)]
    seeds: u64,
    /// Folder the head is written to (`--audioset`: default models/heads).
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// Name of the head's files (default: the data folder's name and the backbone).
    #[arg(long)]
    name: Option<String>,
    /// Folder for the figures (default: OUT/NAME-figures; `--audioset`: OUT/figures).
    #[arg(long, value_name = "DIR")]
    figures: Option<PathBuf>,
    /// `--audioset`: only the heads whose names contain one of these (comma-separated).
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
    /// Threads running the backbone.
    #[arg(long, default_value_t = 2)]
    threads: usize,
}

pub fn run(args: TrainArgs, models: &ModelDir) -> Outcome {
    match (&args.data, &args.audioset) {
        (_, Some(audioset)) => run_audioset(&args, audioset),
        (Some(data), None) => run_folders(&args, data, models),
        (None, None) => {
            eprintln!("moodscope: give --data DIR (one subfolder of audio per label) or --audioset FILE");
            Outcome::Failed
        }
    }
}

/// Progress lines on stderr: one per finished training run.
fn progress_line(p: &Progress) {
    if p.epoch == p.epochs {
        match p.validation_accuracy {
            Some(a) => eprintln!("  {} run {}/{}: validation accuracy {a:.3}", p.head, p.run + 1, p.runs),
            None => eprintln!("  {}: trained ({} epochs)", p.head, p.epochs),
        }
    }
}

fn run_audioset(args: &TrainArgs, data: &Path) -> Outcome {
    let class_labels = args.class_labels.clone().unwrap_or_else(|| {
        data.parent().unwrap_or(Path::new(".")).join("class_labels_indices.csv")
    });
    let mut heads = experiment::table1_heads();
    if !args.only.is_empty() {
        heads.retain(|h| args.only.iter().any(|o| h.spec.name.contains(o.as_str())));
        if heads.is_empty() {
            eprintln!("moodscope: --only {} matches none of the experiment's heads", args.only.join(","));
            return Outcome::Failed;
        }
    }
    for head in &mut heads {
        if let Some(epochs) = args.epochs {
            head.spec.epochs = epochs;
        }
        if let Some(ensemble) = args.ensemble {
            head.spec.ensemble = ensemble;
        }
    }
    let out = args.out.clone().unwrap_or_else(|| PathBuf::from("models/heads"));
    let options = ExperimentOptions {
        data: data.to_owned(),
        class_labels,
        folds: args.folds,
        seeds: (1..=args.seeds.max(1)).collect(),
        heads,
        figures: args.figures.clone().unwrap_or_else(|| out.join("figures")),
        export: Some(out),
    };
    let start = Instant::now();
    match experiment::run(&options, &mut |event| match event {
        Event::Note(text) => eprintln!("{text}"),
        Event::Training(p) => progress_line(p),
    }) {
        Ok(result) => {
            println!("{result}");
            eprintln!("done in {:.0} s; figures in {}", start.elapsed().as_secs_f64(), options.figures.display());
            if result.record_errors.is_empty() {
                Outcome::Done
            } else {
                Outcome::SomeFailed
            }
        }
        Err(e) => {
            eprintln!("moodscope: {e}");
            Outcome::Failed
        }
    }
}

/// Audio file extensions the decoder reads.
const AUDIO_EXTENSIONS: [&str; 5] = ["wav", "flac", "mp3", "ogg", "oga"];

/// The labels (subfolders, sorted) and the audio files of each (sorted), with the warnings about
/// what was passed over.
pub(super) struct LabelFolders {
    pub labels: Vec<String>,
    pub files: Vec<Vec<PathBuf>>,
    pub warnings: Vec<String>,
}

/// Lists `dir`: one subfolder per label. Files directly in `dir` and non-audio files are passed
/// over with a warning.
pub(super) fn list_label_folders(dir: &Path) -> Result<LabelFolders, String> {
    let entries = |d: &Path| -> Result<Vec<PathBuf>, String> {
        let mut paths: Vec<PathBuf> = std::fs::read_dir(d)
            .map_err(|e| format!("{}: cannot read the folder: {e}", d.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .collect();
        paths.sort();
        Ok(paths)
    };
    let mut folders = LabelFolders { labels: Vec::new(), files: Vec::new(), warnings: Vec::new() };
    let mut loose = 0;
    for path in entries(dir)? {
        if path.is_dir() {
            let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            if name.starts_with('.') {
                continue;
            }
            let mut files = Vec::new();
            for file in entries(&path)? {
                let audio = file.is_file()
                    && file
                        .extension()
                        .and_then(|e| e.to_str())
                        .is_some_and(|e| AUDIO_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()));
                if audio {
                    files.push(file);
                } else if !file.file_name().is_some_and(|n| n.to_string_lossy().starts_with('.')) {
                    folders.warnings.push(format!("{}: not an audio file (.wav, .flac, .mp3, .ogg): passed over", file.display()));
                }
            }
            if files.is_empty() {
                folders.warnings.push(format!("label `{name}` ({}) holds no audio files", path.display()));
            }
            folders.labels.push(name);
            folders.files.push(files);
        } else {
            loose += 1;
        }
    }
    if loose > 0 {
        folders.warnings.push(format!(
            "{loose} file{} directly in {} passed over: put each file in the subfolder of its label",
            if loose == 1 { "" } else { "s" },
            dir.display()
        ));
    }
    if folders.labels.len() < 2 {
        return Err(format!(
            "{}: needs one subfolder of audio files per label, at least two (found {})",
            dir.display(),
            folders.labels.len()
        ));
    }
    Ok(folders)
}

/// Peak below which a file counts as silent: −100 dBFS (as `analyze`).
const SILENCE_PEAK: f32 = 1e-5;

/// One audio file's embeddings, one per window, from the same front end and backbone `analyze`
/// uses.
pub(super) fn embed_file(
    path: &Path,
    backbone: &dyn Backbone,
    hop_frames: usize,
    threads: usize,
) -> Result<Vec<Vec<f32>>, String> {
    let (mut samples, rate) = read_mono_file(path).map_err(|e| e.to_string())?;
    if samples.is_empty() {
        return Err("contains no audio".into());
    }
    features::sanitize(&mut samples, SAMPLE_LIMIT);
    if samples.iter().fold(0.0f32, |p, x| p.max(x.abs())) < SILENCE_PEAK {
        return Err("is silent (no sample above -100 dBFS)".into());
    }
    let mut front_end = FrontEnd::new(FrontEndConfig {
        input_rate: rate,
        log_offset: backbone.kind().log_offset(),
        patch_hop_frames: hop_frames,
    })
    .map_err(|e| e.to_string())?;
    let mut patches = Vec::new();
    front_end.push(&samples, &mut patches);
    front_end.finish(&mut patches);
    if patches.is_empty() {
        return Err(format!(
            "is shorter than one window ({:.3} s of audio; a window is 0.975 s)",
            samples.len() as f64 / rate as f64
        ));
    }
    let per_thread = patches.len().div_ceil(threads.max(1));
    let embedded: Vec<Result<Vec<f32>, String>> = std::thread::scope(|scope| {
        let workers: Vec<_> = patches
            .chunks(per_thread)
            .map(|chunk| {
                scope.spawn(move || {
                    chunk
                        .iter()
                        .map(|p| backbone.embed(&p.data).map(|o| o.embedding).map_err(|e| e.to_string()))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        workers.into_iter().flat_map(|w| w.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic))).collect()
    });
    embedded.into_iter().collect()
}

/// Embeds every file of every label folder. Files that cannot be embedded are reported on stderr
/// and left out; returns the dataset and whether any file failed.
pub(super) fn embed_folders(
    folders: &LabelFolders,
    backbone: &dyn Backbone,
    hop_frames: usize,
    threads: usize,
) -> (Dataset, bool) {
    let mut data = Dataset { labels: folders.labels.clone(), items: Vec::new() };
    let mut failed = false;
    let total: usize = folders.files.iter().map(Vec::len).sum();
    let mut done = 0;
    for (label, files) in folders.files.iter().enumerate() {
        for file in files {
            done += 1;
            match embed_file(file, backbone, hop_frames, threads) {
                Ok(embeddings) => {
                    eprintln!("  [{done}/{total}] {}: {} windows", file.display(), embeddings.len());
                    data.items.push(Sequence { id: file.display().to_string(), label, embeddings });
                }
                Err(reason) => {
                    report_error(file, format!("{reason}; left out"));
                    failed = true;
                }
            }
        }
    }
    (data, failed)
}

/// Loads the backbone, or explains why it cannot.
pub(super) fn load_backbone(kind: BackboneKind, models: &ModelDir) -> Result<Arc<dyn Backbone>, String> {
    backbone::load(kind, models).map_err(|e| format!("cannot load the {} backbone: {e}", kind.name()))
}

fn default_name(data: &Path, backbone: BackboneKind) -> String {
    let stem: String = data
        .canonicalize()
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_else(|| "head".into())
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || "-_".contains(c) { c } else { '-' })
        .collect();
    format!("{}-{}", if stem.is_empty() { "head" } else { &stem }, backbone.name())
}

fn run_folders(args: &TrainArgs, dir: &Path, models: &ModelDir) -> Outcome {
    let hop = match args.hop.map(hop_frames).transpose() {
        Ok(hop) => hop.unwrap_or_else(|| args.backbone.default_hop_frames()),
        Err(e) => {
            eprintln!("moodscope: {e}");
            return Outcome::Failed;
        }
    };
    let hop_seconds = (hop * features::STFT_HOP) as f64 / features::MODEL_RATE as f64;
    let mut spec = args.recipe.spec();
    if let Some(epochs) = args.epochs {
        spec.epochs = epochs;
    }
    if let Some(ensemble) = args.ensemble {
        spec.ensemble = ensemble;
    }
    spec.crop_windows = if args.crop > 0.0 { (args.crop / hop_seconds).round().max(1.0) as usize } else { 0 };
    if let Err(e) = spec.check() {
        eprintln!("moodscope: {e}");
        return Outcome::Failed;
    }
    let name = args.name.clone().unwrap_or_else(|| default_name(dir, args.backbone));
    spec.name = name.clone();
    let out = args.out.clone().unwrap_or_else(|| PathBuf::from("."));
    let figures = args.figures.clone().unwrap_or_else(|| out.join(format!("{name}-figures")));

    let folders = match list_label_folders(dir) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("moodscope: {e}");
            return Outcome::Failed;
        }
    };
    for w in &folders.warnings {
        eprintln!("moodscope: warning: {w}");
    }
    let backbone = match load_backbone(args.backbone, models) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("moodscope: {e}");
            return Outcome::Failed;
        }
    };
    eprintln!("embedding {} files with {} (hop {hop_seconds} s)", folders.files.iter().map(Vec::len).sum::<usize>(), args.backbone.name());
    let (data, some_failed) = embed_folders(&folders, backbone.as_ref(), hop, args.threads);
    let incomplete = some_failed || !folders.warnings.is_empty();
    eprintln!("data: {data}");

    let seeds: Vec<u64> = (1..=args.seeds.max(1)).collect();
    let report = match cross_validate(&data, &spec, args.folds, &seeds, &mut progress_line) {
        Ok(report) => report,
        Err(e) => {
            eprintln!("moodscope: cannot cross-validate: {e}");
            return Outcome::Failed;
        }
    };
    println!("{report}");
    if let Err(e) = write_figures(&report, &figures) {
        eprintln!("moodscope: {e}");
    }

    let start = Instant::now();
    let head = match train(&data, &spec, &mut progress_line) {
        Ok(head) => head,
        Err(e) => {
            eprintln!("moodscope: cannot train: {e}");
            return Outcome::Failed;
        }
    };
    let seconds = start.elapsed().as_secs_f64();
    for w in &head.summary.warnings {
        eprintln!("moodscope: warning: {w}");
    }
    let source = EmbeddingSource { backbone: args.backbone.name().into(), window_seconds: hop_seconds };
    match export_head(&head, &out, &name, &source, report.figures_json()) {
        Ok(json) => {
            println!("wrote {} (trained in {seconds:.1} s on {} clips); use it with:", json.display(), head.summary.clips);
            println!(
                "  moodscope analyze --backbone {} --hop {hop_seconds} --head {} FILE...",
                args.backbone.name(),
                json.display()
            );
        }
        Err(e) => {
            eprintln!("moodscope: {e}");
            return Outcome::Failed;
        }
    }
    if incomplete {
        Outcome::SomeFailed
    } else {
        Outcome::Done
    }
}

/// The validation-accuracy curve and the confusion matrix of a cross-validated head, as PNG.
pub(super) fn write_figures(report: &CvReport, dir: &Path) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: cannot create the folder: {e}", dir.display()))?;
    let title = format!(
        "Validation accuracy per epoch, {}-fold cross-validation x {} seed(s), {} clips",
        report.k,
        report.repeats.len(),
        report.truth.len()
    );
    let curves = dir.join("validation-accuracy.png");
    plot_curves(std::slice::from_ref(report), &title, &curves).map_err(|e| e.to_string())?;
    let confusion = dir.join("confusion.png");
    plot_cv_confusion(report, &confusion).map_err(|e| e.to_string())?;
    eprintln!("figures: {} and {}", curves.display(), confusion.display());
    Ok(())
}
