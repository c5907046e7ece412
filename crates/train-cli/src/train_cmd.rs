//! `moodscope-train train`: labelled audio in (one subfolder of audio files per label), a trained
//! head (`NAME.onnx` + `NAME.json`, loadable by `analyze --head` and the plugin), its
//! cross-validated figures (printed, and as PNG) out. `moodscope-train train --audioset FILE
//! [--moods 4|6]` instead reruns the study's Table 1 (four moods) and the six-mood set (with
//! Calm) on AudioSet's released embeddings by nested cross-validation and exports the AudioSet
//! heads that ship.
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
use moodscope_train::experiment::{self, Event, ExperimentOptions, Role};
use moodscope_train::{
    cross_validate, export_head, plot_curves, plot_cv_confusion, train, ClipDecision, CvReport,
    Dataset, EmbeddingSource, HeadKind, HeadSpec, MoodSet, Progress, Sequence,
};

use moodscope::backbone::{self, Backbone, BackboneKind};
use moodscope::cli::{hop_frames, parse_backbone, report_error, Outcome};
use moodscope::decode::{read_mono_file, AUDIO_EXTENSIONS};
use moodscope::engine::SAMPLE_LIMIT;
use moodscope::features::{self, FrontEnd, FrontEndConfig};
use moodscope::models::ModelDir;

/// Which head to train.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Recipe {
    /// Moodscope's streaming LSTM head (input normalisation, dropout, weight decay, mixup,
    /// streaming training, an ensemble of 3): what the shipped AudioSet head is.
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
    /// Folder with one subfolder of audio files per label (any format `analyze` reads); each
    /// subfolder's name is a label. At least two labels.
    #[arg(
        long,
        value_name = "DIR",
        required_unless_present = "audioset",
        conflicts_with = "audioset"
    )]
    data: Option<PathBuf>,
    /// Instead of --data: rerun the study's Table 1 and the six-mood set on AudioSet's released
    /// embeddings (a TFRecord file of SequenceExamples, or a folder of them) by nested
    /// cross-validation, and export the AudioSet heads that ship.
    #[arg(long, value_name = "FILE.tfrecord")]
    audioset: Option<PathBuf>,
    /// With --audioset: the mood sets, 4 (Happy, Sad, Angry, Scary), 6 (also Calm and
    /// Exciting) or both (default: 4,6).
    #[arg(long, value_name = "4|6", value_delimiter = ',', requires = "audioset")]
    moods: Vec<usize>,
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
    /// Training epochs (default: the recipe's; `--audioset`: every candidate's, for quick runs).
    #[arg(long)]
    epochs: Option<usize>,
    /// Ensemble members (default: the recipe's; `--audioset`: every candidate's).
    #[arg(long)]
    ensemble: Option<usize>,
    /// Seconds of each file seen per training step: longer files are cut to a random stretch of
    /// this length, drawn anew every epoch (0: whole files). Cross-validation measures whole
    /// files, each decided by the mean of its windows' probabilities.
    #[arg(long, default_value_t = 10.0, value_name = "SECONDS")]
    crop: f64,
    /// Folds of the stratified cross-validation (`--audioset`: outer and inner folds).
    #[arg(long, default_value_t = 5)]
    folds: usize,
    /// Cross-validation repeats, with seeds 1..=N (default: 1; `--audioset`: 3).
    #[arg(long)]
    seeds: Option<u64>,
    /// Folder the head is written to (default: the current folder; `--audioset`: models/heads).
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// Name of the head's files (default: the data folder's name and the backbone).
    #[arg(long)]
    name: Option<String>,
    /// Folder for the figures (default: OUT/NAME-figures; `--audioset`: OUT/figures).
    #[arg(long, value_name = "DIR")]
    figures: Option<PathBuf>,
    /// `--audioset`: only the head families whose names contain one of these (comma-separated;
    /// the clip-mean logistic-regression baseline is always kept).
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
            eprintln!(
                "moodscope: give --data DIR (one subfolder of audio per label) or --audioset FILE"
            );
            Outcome::Failed
        }
    }
}

/// Progress lines on stderr: one per finished training run.
fn progress_line(p: &Progress) {
    if p.epoch == p.epochs {
        match p.validation_accuracy {
            Some(a) => eprintln!(
                "  {} run {}/{}: validation accuracy {a:.3}",
                p.head,
                p.run + 1,
                p.runs
            ),
            None => eprintln!("  {}: trained ({} epochs)", p.head, p.epochs),
        }
    }
}

fn run_audioset(args: &TrainArgs, data: &Path) -> Outcome {
    let class_labels = args.class_labels.clone().unwrap_or_else(|| {
        data.parent()
            .unwrap_or(Path::new("."))
            .join("class_labels_indices.csv")
    });
    let moods = if args.moods.is_empty() {
        vec![4, 6]
    } else {
        args.moods.clone()
    };
    let mut tasks = Vec::new();
    for m in moods {
        let Some(set) = MoodSet::from_count(m) else {
            eprintln!("moodscope: --moods takes 4 or 6, not {m}");
            return Outcome::Failed;
        };
        let mut task = experiment::task(set);
        if !args.only.is_empty() {
            task.families.retain(|f| {
                f.role == Role::Baseline
                    || args.only.iter().any(|o| f.family.name.contains(o.as_str()))
            });
        }
        for family in &mut task.families {
            for spec in &mut family.family.candidates {
                if let Some(epochs) = args.epochs {
                    spec.epochs = epochs;
                }
                if let Some(ensemble) = args.ensemble {
                    spec.ensemble = ensemble;
                }
            }
        }
        tasks.push(task);
    }
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| PathBuf::from("models/heads"));
    // The binary's own name: `moodscope train` only says where training went.
    let command = experiment::command_line("moodscope-train");
    let options = ExperimentOptions {
        data: data.to_owned(),
        class_labels,
        outer_folds: args.folds,
        inner_folds: args.folds,
        seeds: (1..=args.seeds.unwrap_or(3).max(1)).collect(),
        tasks,
        figures: args.figures.clone().unwrap_or_else(|| out.join("figures")),
        results: out.join("RESULTS.md"),
        export: Some(out),
        command,
    };
    let start = Instant::now();
    match experiment::run(&options, &mut |event| match event {
        Event::Note(text) => eprintln!("{text}"),
        Event::Progress(p) => {
            if p.done == p.jobs || p.done % 50 == 0 {
                eprintln!("  {}/{} trainings", p.done, p.jobs);
            }
        }
    }) {
        Ok(result) => {
            println!("{result}");
            eprintln!(
                "done in {:.0} s; figures in {}",
                start.elapsed().as_secs_f64(),
                options.figures.display()
            );
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
    let mut folders = LabelFolders {
        labels: Vec::new(),
        files: Vec::new(),
        warnings: Vec::new(),
    };
    let mut loose = 0;
    for path in entries(dir)? {
        if path.is_dir() {
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            if name.starts_with('.') {
                continue;
            }
            let mut files = Vec::new();
            for file in entries(&path)? {
                let audio = file.is_file()
                    && file.extension().and_then(|e| e.to_str()).is_some_and(|e| {
                        AUDIO_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str())
                    });
                if audio {
                    files.push(file);
                } else if !file
                    .file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with('.'))
                {
                    folders.warnings.push(format!(
                        "{}: not an audio file (.{}): passed over",
                        file.display(),
                        AUDIO_EXTENSIONS.join(", .")
                    ));
                }
            }
            if files.is_empty() {
                folders.warnings.push(format!(
                    "label `{name}` ({}) holds no audio files",
                    path.display()
                ));
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
    backbone: &Arc<dyn Backbone>,
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
    // The analyser's own spreading over threads (its embedding pool), whole batches of the
    // backbone's batched plan at a time (the same bits as one window at a time,
    // `Backbone::embed_batch`).
    let batch = backbone.kind().batch_windows();
    moodscope::engine::embed_all(backbone, patches, threads, batch)
        .into_iter()
        .map(|o| o.map(|o| o.embedding).map_err(|e| e.to_string()))
        .collect()
}

/// Embeds every file of every label folder. Files that cannot be embedded are reported on stderr
/// and left out; returns the dataset and whether any file failed.
pub(super) fn embed_folders(
    folders: &LabelFolders,
    backbone: &Arc<dyn Backbone>,
    hop_frames: usize,
    threads: usize,
) -> (Dataset, bool) {
    let mut data = Dataset {
        labels: folders.labels.clone(),
        items: Vec::new(),
    };
    let mut failed = false;
    let total: usize = folders.files.iter().map(Vec::len).sum();
    let mut done = 0;
    for (label, files) in folders.files.iter().enumerate() {
        for file in files {
            done += 1;
            match embed_file(file, backbone, hop_frames, threads) {
                Ok(embeddings) => {
                    eprintln!(
                        "  [{done}/{total}] {}: {} windows",
                        file.display(),
                        embeddings.len()
                    );
                    data.items.push(Sequence {
                        id: file.display().to_string(),
                        label,
                        embeddings,
                    });
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
pub(super) fn load_backbone(
    kind: BackboneKind,
    models: &ModelDir,
) -> Result<Arc<dyn Backbone>, String> {
    backbone::load_for(kind, models, backbone::Batch::Windows)
        .map_err(|e| format!("cannot load the {} backbone: {e}", kind.name()))
}

fn default_name(data: &Path, backbone: BackboneKind) -> String {
    let stem: String = data
        .canonicalize()
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_else(|| "head".into())
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_".contains(c) {
                c
            } else {
                '-'
            }
        })
        .collect();
    format!(
        "{}-{}",
        if stem.is_empty() { "head" } else { &stem },
        backbone.name()
    )
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
    spec.crop_windows = if args.crop > 0.0 {
        (args.crop / hop_seconds).round().max(1.0) as usize
    } else {
        0
    };
    // A file is a whole recording, not a 10 s clip: an LSTM head decides it by the mean of its
    // windows, not by its last few seconds (logistic heads already decide by the mean).
    if matches!(spec.kind, HeadKind::Lstm { .. }) {
        spec.decision = Some(ClipDecision::MeanProbabilities);
    }
    if let Err(e) = spec.check() {
        eprintln!("moodscope: {e}");
        return Outcome::Failed;
    }
    let name = args
        .name
        .clone()
        .unwrap_or_else(|| default_name(dir, args.backbone));
    spec.name = name.clone();
    let out = args.out.clone().unwrap_or_else(|| PathBuf::from("."));
    let figures = args
        .figures
        .clone()
        .unwrap_or_else(|| out.join(format!("{name}-figures")));

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
    eprintln!(
        "embedding {} files with {} (hop {hop_seconds} s)",
        folders.files.iter().map(Vec::len).sum::<usize>(),
        args.backbone.name()
    );
    let (data, some_failed) = embed_folders(&folders, &backbone, hop, args.threads);
    let incomplete = some_failed || !folders.warnings.is_empty();
    eprintln!("data: {data}");

    let seeds: Vec<u64> = (1..=args.seeds.unwrap_or(1).max(1)).collect();
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
    let source = EmbeddingSource {
        backbone: args.backbone.name().into(),
        window_seconds: (features::PATCH_FRAMES * features::STFT_HOP) as f64
            / features::MODEL_RATE as f64,
        hop_seconds,
    };
    let figures = serde_json::json!({ "cross_validation": report.figures_json() });
    match export_head(&head, &out, &name, &source, figures) {
        Ok(json) => {
            println!(
                "wrote {} (trained in {seconds:.1} s on {} clips); use it with:",
                json.display(),
                head.summary.clips
            );
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
    std::fs::create_dir_all(dir)
        .map_err(|e| format!("{}: cannot create the folder: {e}", dir.display()))?;
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

#[cfg(test)]
mod tests {
    //! End to end on real music (Debian's `hyperrogue-music`) with the installed YAMNet: excerpts
    //! of four tracks in two label folders (plus an empty label, an unreadable file and a stray
    //! text file) → `moodscope-train train` → a head that the engine loads and `moodscope-train
    //! eval` measures on later excerpts of the same tracks. A missing model or music file fails the
    //! test; it never skips.

    use std::path::{Path, PathBuf};

    use clap::Parser;

    use super::*;
    use crate::eval_cmd::{self, EvalArgs};
    use moodscope::engine::{Analyser, AnalyserConfig, HeadChoice};

    const MUSIC: &str = "/usr/share/hyperrogue/music";

    #[derive(Parser)]
    struct TrainCli {
        #[command(flatten)]
        args: TrainArgs,
    }

    #[derive(Parser)]
    struct EvalCli {
        #[command(flatten)]
        args: EvalArgs,
    }

    fn models() -> ModelDir {
        let models = ModelDir::new(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models"));
        if let Err(e) = models.file(moodscope::models::YAMNET_ONNX) {
            panic!("{e}");
        }
        models
    }

    fn track(name: &str) -> (Vec<f32>, u32) {
        let path = Path::new(MUSIC).join(name);
        read_mono_file(&path).unwrap_or_else(|e| {
            panic!("{}: {e} (apt-get install hyperrogue-music)", path.display())
        })
    }

    /// Writes `samples` as a 16-bit PCM mono WAV file.
    fn write_wav(path: &Path, samples: &[f32], rate: u32) {
        let data: Vec<u8> = samples
            .iter()
            .flat_map(|s| ((s.clamp(-1.0, 1.0) * 32767.0).round() as i16).to_le_bytes())
            .collect();
        let mut bytes = Vec::with_capacity(44 + data.len());
        bytes.extend_from_slice(b"RIFF");
        bytes.extend_from_slice(&(36 + data.len() as u32).to_le_bytes());
        bytes.extend_from_slice(b"WAVEfmt ");
        bytes.extend_from_slice(&16u32.to_le_bytes());
        bytes.extend_from_slice(&1u16.to_le_bytes()); // PCM
        bytes.extend_from_slice(&1u16.to_le_bytes()); // mono
        bytes.extend_from_slice(&rate.to_le_bytes());
        bytes.extend_from_slice(&(rate * 2).to_le_bytes());
        bytes.extend_from_slice(&2u16.to_le_bytes());
        bytes.extend_from_slice(&16u16.to_le_bytes());
        bytes.extend_from_slice(b"data");
        bytes.extend_from_slice(&(data.len() as u32).to_le_bytes());
        bytes.extend_from_slice(&data);
        std::fs::write(path, bytes).unwrap();
    }

    /// Excerpts of `seconds` starting at `starts` (seconds) of each track into `dir/label/`.
    fn excerpts(
        dir: &Path,
        label: &str,
        tracks: &[(&str, &(Vec<f32>, u32))],
        starts: &[f64],
        seconds: f64,
    ) -> Vec<PathBuf> {
        let folder = dir.join(label);
        std::fs::create_dir_all(&folder).unwrap();
        let mut written = Vec::new();
        for (name, (samples, rate)) in tracks {
            for &start in starts {
                let from = (start * *rate as f64) as usize;
                let to = from + (seconds * *rate as f64) as usize;
                assert!(
                    to <= samples.len(),
                    "{name} is shorter than {start} + {seconds} s"
                );
                let path = folder.join(format!("{}-{start:03}.wav", name.trim_end_matches(".ogg")));
                write_wav(&path, &samples[from..to], *rate);
                written.push(path);
            }
        }
        written
    }

    #[test]
    fn trains_on_labelled_folders_of_real_music_and_the_head_loads_and_measures() {
        let models = models();
        let songs: Vec<(&str, (Vec<f32>, u32))> = [
            "hr3-rlyeh.ogg",
            "hr3-graveyard.ogg",
            "hr-savino-caribbean.ogg",
            "hr3-jungle.ogg",
        ]
        .into_iter()
        .map(|name| (name, track(name)))
        .collect();
        let dark = [(songs[0].0, &songs[0].1), (songs[1].0, &songs[1].1)];
        let bright = [(songs[2].0, &songs[2].1), (songs[3].0, &songs[3].1)];
        let work = tempfile::tempdir().unwrap();
        let data = work.path().join("data");
        excerpts(&data, "dark", &dark, &[4.0, 14.0, 24.0, 34.0], 8.0);
        excerpts(&data, "bright", &bright, &[4.0, 14.0, 24.0, 34.0], 8.0);
        // Bad input: an empty label, an unreadable "audio" file, a stray text file, a loose file.
        std::fs::create_dir_all(data.join("empty")).unwrap();
        std::fs::write(
            data.join("dark/broken.wav"),
            b"RIFF\x10\0\0\0WAVEnot really",
        )
        .unwrap();
        std::fs::write(data.join("bright/notes.txt"), b"not audio").unwrap();
        std::fs::write(data.join("README"), b"loose").unwrap();

        let out = work.path().join("heads");
        let cli = TrainCli::parse_from([
            "train",
            "--data",
            data.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--name",
            "mine",
            "--epochs",
            "20",
            "--ensemble",
            "2",
        ]);
        assert_eq!(
            run(cli.args, &models),
            Outcome::SomeFailed,
            "a file was unreadable: exit status 1"
        );
        let json = out.join("mine.json");
        let meta: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
        // Labels in folder order, the empty one left out.
        assert_eq!(meta["labels"], serde_json::json!(["bright", "dark"]));
        assert_eq!(meta["backbone"], "yamnet");
        assert_eq!(meta["embedding_dim"], 1024);
        assert_eq!(meta["hop_seconds"], 0.48);
        assert_eq!(meta["clip_decision"], "mean_probabilities");
        let cv = &meta["training"]["figures"]["cross_validation"];
        assert_eq!(cv["clips"], 16, "{cv}");
        assert!(cv["accuracy"].as_f64().unwrap() >= 0.8, "{cv}");
        assert!(
            cv["warnings"].to_string().contains("`empty` has no clips"),
            "{cv}"
        );
        assert!(out.join("mine-figures/validation-accuracy.png").is_file());
        assert!(out.join("mine-figures/confusion.png").is_file());

        // `analyze --head` runs it through the engine, with the trained labels.
        let held_out = work.path().join("held-out");
        let bright_files = excerpts(&held_out, "bright", &bright, &[44.0, 52.0], 8.0);
        excerpts(&held_out, "dark", &dark, &[44.0, 52.0], 8.0);
        let (samples, rate) = read_mono_file(&bright_files[0]).unwrap();
        let config = AnalyserConfig {
            input_rate: rate,
            backbone: BackboneKind::Yamnet,
            head: HeadChoice::File(json.clone()),
            hop_frames: None,
            moods: Default::default(),
        };
        let mut analyser = Analyser::new(config, &models).unwrap();
        assert_eq!(
            analyser.labels().to_vec(),
            vec!["bright".to_string(), "dark".to_string()]
        );
        let mut readings = Vec::new();
        analyser.push(&samples, &mut readings).unwrap();
        analyser.finish(&mut readings).unwrap();
        assert!(readings.len() >= 10, "{} windows", readings.len());
        for r in &readings {
            assert_eq!(r.probabilities.len(), 2);
            assert!((r.probabilities.iter().sum::<f32>() - 1.0).abs() < 1e-4);
        }

        // `eval` measures it on the later excerpts, which it never trained on.
        let eval = EvalCli::parse_from([
            "eval",
            "--head",
            json.to_str().unwrap(),
            held_out.to_str().unwrap(),
            "--figures",
            work.path().join("eval").to_str().unwrap(),
        ]);
        let (report, name, some_failed) = eval_cmd::measure(&eval.args, &models).unwrap();
        println!("{report}");
        assert_eq!(
            (name.as_str(), some_failed, report.clips),
            ("mine", false, 8)
        );
        assert!(report.accuracy.value >= 0.75, "{report}");
        assert_eq!(eval_cmd::run(eval.args, &models), Outcome::Done);
        assert!(work.path().join("eval/confusion-mine.png").is_file());
    }

    #[test]
    fn label_folders_take_every_format_analyze_reads() {
        let work = tempfile::tempdir().unwrap();
        let names = ["a.m4a", "b.OPUS", "c.aiff", "d.webm", "e.wav"];
        for label in ["calm", "happy"] {
            std::fs::create_dir_all(work.path().join(label)).unwrap();
            for name in names.iter().chain(&["notes.txt"]) {
                std::fs::write(work.path().join(label).join(name), b"").unwrap();
            }
        }
        let folders = list_label_folders(work.path()).unwrap();
        assert_eq!(folders.labels, ["calm", "happy"]);
        for files in &folders.files {
            let found: Vec<_> = files
                .iter()
                .map(|f| f.file_name().unwrap().to_str().unwrap())
                .collect();
            assert_eq!(found, names);
        }
        assert_eq!(folders.warnings.len(), 2, "{:?}", folders.warnings);
        assert!(folders.warnings[0].contains("notes.txt"));
    }

    #[test]
    fn unusable_training_folders_are_clear_errors() {
        let work = tempfile::tempdir().unwrap();
        let err = list_label_folders(&work.path().join("missing"))
            .err()
            .unwrap();
        assert!(
            err.contains("missing") && err.contains("cannot read"),
            "{err}"
        );
        std::fs::create_dir_all(work.path().join("only")).unwrap();
        let err = list_label_folders(work.path()).err().unwrap();
        assert!(
            err.contains("at least two") && err.contains("found 1"),
            "{err}"
        );
        // Two labels, but one of them has nothing readable: training cannot go on.
        std::fs::create_dir_all(work.path().join("other")).unwrap();
        std::fs::write(work.path().join("only/a.wav"), b"garbage").unwrap();
        std::fs::write(work.path().join("other/b.flac"), b"garbage").unwrap();
        let cli = TrainCli::parse_from([
            "train",
            "--data",
            work.path().to_str().unwrap(),
            "--out",
            work.path().to_str().unwrap(),
        ]);
        assert_eq!(run(cli.args, &models()), Outcome::Failed);
        assert!(!work
            .path()
            .join(format!(
                "{}.json",
                default_name(work.path(), BackboneKind::Yamnet)
            ))
            .exists());
    }
}
