//! Library scans: files and folders in; each audio file's analysis out, in the order given.
//!
//! Folders are walked recursively (audio files by extension; hidden files and folders, and
//! other files, skipped silently). Files are analysed in parallel (`--jobs`, default all cores;
//! each file's backbone work on one thread when several files run at once), or taken from the
//! library database when their content was already analysed by the same model version. One
//! progress bar on stderr shows the whole job: files done, hours of audio, the rate as a
//! multiple of real time, and the time left (hidden when stderr is not a terminal).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};

use super::analyze::{analyse_file, FileAnalysis};
use super::library::{self, Library, Stored};
use super::moods::TrackMoods;
use super::report::{self, Summary};
use super::{hop_frames, parse_backbone};
use crate::backbone::BackboneKind;
use crate::decode::AUDIO_EXTENSIONS;
use crate::engine::{Analyser, AnalyserConfig, EngineError, HeadChoice, MoodState, WindowReading};
use crate::features;
use crate::head::MoodSet;
use crate::models::{self, ModelDir};

/// How files are analysed: the same options for `analyze` and `tag`.
#[derive(Debug, Args)]
pub struct AnalysisArgs {
    /// Network that embeds the audio: yamnet or vggish.
    #[arg(long, default_value = "yamnet", value_parser = parse_backbone)]
    pub backbone: BackboneKind,
    /// Seconds between window starts (default: 0.48 for YAMNet, 0.96 for VGGish).
    #[arg(long, value_name = "SECONDS")]
    pub hop: Option<f64>,
    /// Moods to name: 5 (Happy, Sad, Calm, Angry, Scary: YAMNet's mood classes calibrated on
    /// listener-labelled music, the default), 4 (the study's Happy, Sad, Angry, Scary) or 6
    /// (AudioSet's Happy, Sad, Calm, Exciting, Angry, Scary).
    #[arg(long, default_value = "5", value_name = "4|5|6")]
    pub moods: MoodSet,
    /// Read YAMNet's own mood classes as they are, without the calibration.
    #[arg(long)]
    pub uncalibrated: bool,
    /// A head written by `cargo moodscope-train` (its .json file), instead of the mood set's readout.
    #[arg(long, value_name = "HEAD.json", conflicts_with = "uncalibrated")]
    pub head: Option<PathBuf>,
    /// Threads running the backbone for one file (when one file is analysed at a time).
    #[arg(long, default_value_t = 2)]
    pub threads: usize,
    /// Files analysed at once (default: all cores).
    #[arg(long, value_name = "N")]
    pub jobs: Option<usize>,
    /// A file that ends early or has damaged stretches is analysed as far as it decodes, with a
    /// warning; this makes it count as done rather than failed in the exit status.
    #[arg(long)]
    pub accept_partial: bool,
    /// The library database that keeps analyses (default: $XDG_DATA_HOME/moodscope/
    /// library.sqlite or ~/.local/share/moodscope/library.sqlite).
    #[arg(long, value_name = "PATH", conflicts_with = "no_db")]
    pub db: Option<PathBuf>,
    /// Do not use the library database: analyse every file, keep nothing.
    #[arg(long)]
    pub no_db: bool,
}

/// The analysis set up once for a whole scan.
pub struct Setup<'a> {
    pub args: &'a AnalysisArgs,
    pub models: &'a ModelDir,
    hop: Option<usize>,
    pub labels: Vec<String>,
    /// The labels' decision groups (`Analyser::groups`) and the window hop, for the verdicts.
    pub groups: Vec<usize>,
    pub hop_seconds: f64,
    /// The readout's name (`yamnet-emotify-v2`, ...), recorded with results.
    pub readout: String,
    pub model_version: String,
    pub db: Option<PathBuf>,
    /// Keeps the shared backbone loaded for the whole scan (a mutex: the workers share `Setup`).
    _first: Mutex<Analyser>,
}

impl<'a> Setup<'a> {
    /// Loads the model once (a missing model is one message, not one per file) and works out
    /// the model version.
    pub fn new(args: &'a AnalysisArgs, models: &'a ModelDir) -> Result<Self, String> {
        let hop = args.hop.map(hop_frames).transpose()?;
        let mut setup_config = config(args, hop, features::MODEL_RATE);
        setup_config.input_rate = features::MODEL_RATE;
        let first =
            Analyser::new_offline(setup_config.clone(), models).map_err(|e| e.to_string())?;
        let labels = first.labels().to_vec();
        let groups = first.groups().to_vec();
        let hop_seconds = first.config().hop_seconds();
        let readout = first.readout_name();
        if let Some(note) = first.note() {
            eprintln!("moodscope: note: {note}");
        }
        let model_version = model_version(&setup_config, models, &labels, &readout)?;
        let db = (!args.no_db).then(|| args.db.clone().unwrap_or_else(library::default_path));
        Ok(Self {
            args,
            models,
            hop,
            labels,
            groups,
            hop_seconds,
            readout,
            model_version,
            db,
            _first: Mutex::new(first),
        })
    }

    fn analyser(&self, rate: u32) -> Result<Analyser, EngineError> {
        Analyser::new_offline(config(self.args, self.hop, rate), self.models)
    }

    /// A timeline's verdicts (the plugin's smoother at its defaults) and its summary.
    pub fn summarise(&self, readings: &[WindowReading]) -> (Vec<MoodState>, Summary) {
        let verdicts = report::verdicts(readings, &self.groups, self.hop_seconds);
        let summary = Summary::of(readings, &verdicts, &self.labels, &self.groups);
        (verdicts, summary)
    }
}

fn config(args: &AnalysisArgs, hop: Option<usize>, input_rate: u32) -> AnalyserConfig {
    AnalyserConfig {
        input_rate,
        backbone: args.backbone,
        head: match (&args.head, args.uncalibrated) {
            (Some(path), _) => HeadChoice::File(path.clone()),
            (None, true) => HeadChoice::Uncalibrated,
            (None, false) => HeadChoice::Default,
        },
        moods: args.moods,
        hop_frames: hop,
    }
}

/// What the stored analyses depend on: the backbone and its ONNX file (sha256), the head (its
/// name and files, or the built-in readout, its calibration file and its labels) and the window
/// hop.
pub fn model_version(
    config: &AnalyserConfig,
    models: &ModelDir,
    labels: &[String],
    readout: &str,
) -> Result<String, String> {
    let sha = |path: &Path| {
        library::hash_file(path)
            .map(|h| h[..16].to_string())
            .map_err(|e| format!("{}: {e}", path.display()))
    };
    let onnx = match config.backbone {
        BackboneKind::Yamnet => models::YAMNET_ONNX,
        BackboneKind::Vggish => models::VGGISH_ONNX,
    };
    let onnx = models.file(onnx).map_err(|e| e.to_string())?;
    let mut backbone = format!("{}@{}", config.backbone.name(), sha(&onnx)?);
    // VGGish keeps its weights beside the graph (ONNX external data).
    let weights = moodscope_convert::external_data_path(&onnx);
    if weights.is_file() {
        backbone = format!("{backbone}+{}", sha(&weights)?);
    }
    let head = match (&config.head, config.backbone) {
        (HeadChoice::File(json), _) => head_version(json, sha)?,
        (HeadChoice::Default, BackboneKind::Yamnet) if config.moods == MoodSet::Five => {
            let calibration = models.path().join(crate::engine::DEFAULT_CALIBRATION);
            format!("{readout}@{}", sha(&calibration)?)
        }
        (_, BackboneKind::Yamnet) => readout.to_string(),
        (_, BackboneKind::Vggish) => {
            let json = models.path().join(match labels.len() {
                4 => crate::engine::VGGISH_HEAD_FOUR,
                _ => crate::engine::VGGISH_HEAD_SIX,
            });
            head_version(&json, sha)?
        }
    };
    Ok(format!(
        "{backbone}/{head}[{}]/hop{}",
        labels.join(","),
        config.hop_frames()
    ))
}

fn head_version(
    json: &Path,
    sha: impl Fn(&Path) -> Result<String, String>,
) -> Result<String, String> {
    let name = json
        .file_stem()
        .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
    Ok(format!(
        "{name}@{}+{}",
        sha(json)?,
        sha(&json.with_extension("onnx"))?
    ))
}

/// Files and folders to the audio files to analyse: a file named is kept whatever its name; a
/// folder gives its audio files (by extension), recursively, in name order, skipping hidden
/// files and folders. A path that does not exist is kept (and reported when it is opened).
pub fn expand(inputs: &[PathBuf]) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for input in inputs {
        if input.is_dir() {
            walk(input, &mut files);
        } else {
            files.push(input.clone());
        }
    }
    files
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        // An unreadable folder is reported like an unreadable file.
        out.push(dir.to_path_buf());
        return;
    };
    let mut entries: Vec<_> = entries.filter_map(Result::ok).collect();
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let name = entry.file_name();
        if name.to_string_lossy().starts_with('.') {
            continue;
        }
        let path = entry.path();
        // Follow links to files, not to folders (no loops).
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        if kind.is_dir() {
            walk(&path, out);
        } else if path.is_file() && is_audio(&path) {
            out.push(path);
        }
    }
}

fn is_audio(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| AUDIO_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
}

/// One file's analysis, fresh or from the library.
pub struct Track {
    pub sample_rate: u32,
    pub readings: Vec<WindowReading>,
    /// What kept the file from decoding whole (analysed as far as it decoded).
    pub damage: Option<String>,
    /// Anything else wrong (reported; the file counts as failed).
    pub problem: Option<String>,
    /// The file's content hash, when a library is in use.
    pub hash: Option<String>,
    /// Taken from the library, not analysed now.
    pub reused: bool,
}

/// Counts for the closing line.
#[derive(Clone, Copy, Debug, Default)]
pub struct Counts {
    pub analysed: usize,
    pub unchanged: usize,
    pub failed: usize,
}

impl Counts {
    pub fn line(&self, total: usize) -> String {
        format!(
            "moodscope: {total} file{}: {} analysed, {} unchanged, {} failed",
            if total == 1 { "" } else { "s" },
            self.analysed,
            self.unchanged,
            self.failed
        )
    }
}

/// Analyses `files` (in parallel), calling `done` in the order of `files` with each file's
/// track or the reason it failed. `done` runs on this thread; it may print through `bar`.
pub fn run(
    setup: &Setup,
    files: &[PathBuf],
    mut done: impl FnMut(&Path, Result<Track, String>, &ProgressBar),
) -> Counts {
    let jobs = setup
        .args
        .jobs
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
        .clamp(1, files.len().max(1));
    let threads = if jobs > 1 { 1 } else { setup.args.threads };
    let sizes: Vec<u64> = files
        .iter()
        .map(|f| std::fs::metadata(f).map_or(0, |m| m.len()))
        .collect();
    let progress = Progress::new(files.len(), sizes.iter().sum());
    let next = AtomicUsize::new(0);
    let (sender, receiver) = crossbeam_channel::unbounded::<(usize, Result<Track, String>)>();
    let mut counts = Counts::default();
    let db_error: Mutex<Option<String>> = Mutex::new(None);
    std::thread::scope(|scope| {
        for _ in 0..jobs {
            let sender = sender.clone();
            let (next, progress, sizes, db_error) = (&next, &progress, &sizes, &db_error);
            scope.spawn(move || {
                let library = match &setup.db {
                    Some(path) => match Library::open(path) {
                        Ok(l) => Some(l),
                        Err(e) => {
                            let mut slot = db_error.lock().unwrap_or_else(|p| p.into_inner());
                            slot.get_or_insert(e);
                            None
                        }
                    },
                    None => None,
                };
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(path) = files.get(i) else { break };
                    let result =
                        one_file(setup, library.as_ref(), path, sizes[i], threads, progress);
                    if sender.send((i, result)).is_err() {
                        break;
                    }
                }
            });
        }
        drop(sender);
        // Hand results on in the order given.
        let mut waiting = BTreeMap::new();
        let mut next_out = 0;
        for (i, result) in receiver {
            waiting.insert(i, result);
            while let Some(result) = waiting.remove(&next_out) {
                match &result {
                    Ok(t) if t.reused => counts.unchanged += 1,
                    Ok(_) => counts.analysed += 1,
                    Err(_) => counts.failed += 1,
                }
                progress.file_done();
                done(&files[next_out], result, &progress.bar);
                next_out += 1;
            }
        }
    });
    progress.bar.finish_and_clear();
    if let Some(e) = db_error.into_inner().unwrap_or_else(|p| p.into_inner()) {
        eprintln!("moodscope: {e}; nothing was kept");
    }
    counts
}

fn one_file(
    setup: &Setup,
    library: Option<&Library>,
    path: &Path,
    size: u64,
    threads: usize,
    progress: &Progress,
) -> Result<Track, String> {
    // The content hash, from the path cache when the file's size and time are unchanged.
    let mut hash = None;
    if let Some(library) = library {
        let stamp = library::file_stamp(path).map_err(|e| format!("cannot open: {e}"))?;
        if std::fs::metadata(path).is_ok_and(|m| m.is_dir()) {
            return Err(crate::decode::DecodeError::Folder.to_string());
        }
        let h = match library.cached_hash(path, stamp.0, stamp.1) {
            Some(h) => h,
            None => library::hash_file(path).map_err(|e| format!("cannot open: {e}"))?,
        };
        let _ = library.remember_path(path, stamp.0, stamp.1, &h);
        match library.lookup(&h, &setup.model_version) {
            Ok(Some(stored)) if stored.labels == setup.labels => {
                progress.audio_done(stored.readings.last().map_or(0.0, |r| r.end_seconds), false);
                progress.bar.inc(size);
                return Ok(Track {
                    sample_rate: stored.sample_rate,
                    readings: stored.readings,
                    damage: stored.damage,
                    problem: stored.problem,
                    hash: Some(h),
                    reused: true,
                });
            }
            Ok(_) => {}
            Err(e) => {
                progress
                    .bar
                    .suspend(|| eprintln!("moodscope: library database: {e}; analysing again"));
            }
        }
        hash = Some(h);
    }
    let mut credited = 0u64;
    let analysis = analyse_file(
        path,
        |rate| setup.analyser(rate),
        threads,
        |seconds, fraction| {
            progress.audio_done(seconds, true);
            let now = (fraction.clamp(0.0, 1.0) * size as f64) as u64;
            progress.bar.inc(now.saturating_sub(credited));
            credited = credited.max(now);
        },
    );
    progress.bar.inc(size.saturating_sub(credited));
    let FileAnalysis {
        readings,
        sample_rate,
        damage,
        problem,
    } = analysis.map_err(|e| e.to_string())?;
    let track = Track {
        sample_rate,
        readings,
        damage: damage.map(|d| d.to_string()),
        problem,
        hash,
        reused: false,
    };
    if let (Some(library), Some(hash)) = (library, &track.hash) {
        let stored = Stored {
            sample_rate,
            labels: setup.labels.clone(),
            readings: track.readings.clone(),
            damage: track.damage.clone(),
            problem: track.problem.clone(),
        };
        let moods = TrackMoods::from_summary(&setup.summarise(&stored.readings).1, &setup.labels);
        if let Err(e) = library.store(hash, &setup.model_version, path, &stored, &moods) {
            progress.bar.suspend(|| {
                eprintln!(
                    "moodscope: {}: not kept in the library database: {e}",
                    path.display()
                )
            });
        }
    }
    Ok(track)
}

/// The one progress bar of a scan, in bytes of the files (a fair measure of the work left);
/// its message counts files and audio.
struct Progress {
    bar: ProgressBar,
    files: usize,
    files_done: AtomicUsize,
    /// Milliseconds of audio: all done, and analysed now (for the rate).
    audio_ms: AtomicU64,
    analysed_ms: AtomicU64,
    start: Instant,
}

impl Progress {
    fn new(files: usize, bytes: u64) -> Self {
        let bar = ProgressBar::new(bytes.max(1));
        let style = ProgressStyle::with_template("{msg} {wide_bar} {percent:>3}% ETA {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar());
        bar.set_style(style);
        let progress = Self {
            bar,
            files,
            files_done: AtomicUsize::new(0),
            audio_ms: AtomicU64::new(0),
            analysed_ms: AtomicU64::new(0),
            start: Instant::now(),
        };
        progress.refresh();
        progress
    }

    fn audio_done(&self, seconds: f64, analysed: bool) {
        let ms = (seconds.max(0.0) * 1000.0) as u64;
        self.audio_ms.fetch_add(ms, Ordering::Relaxed);
        if analysed {
            self.analysed_ms.fetch_add(ms, Ordering::Relaxed);
        }
        self.refresh();
    }

    fn file_done(&self) {
        self.files_done.fetch_add(1, Ordering::Relaxed);
        self.refresh();
    }

    fn refresh(&self) {
        let hours = self.audio_ms.load(Ordering::Relaxed) as f64 / 3.6e6;
        let analysed = self.analysed_ms.load(Ordering::Relaxed) as f64 / 1000.0;
        let elapsed = self.start.elapsed().as_secs_f64().max(1e-3);
        self.bar.set_message(format!(
            "{}/{} files, {hours:.2} h of audio, {:.0}x real time",
            self.files_done.load(Ordering::Relaxed),
            self.files,
            analysed / elapsed
        ));
    }
}
