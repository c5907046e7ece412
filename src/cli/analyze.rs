//! `moodscope analyze FILE...`: audio files in, a mood timeline per file out (CSV or JSON, to
//! stdout or `--out`), a summary per file on stderr, a progress bar on a terminal.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use clap::{Args, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};

use super::report::{self, Summary};
use super::{hop_frames, parse_backbone, report_error, Outcome};
use crate::backbone::BackboneKind;
use crate::decode::{AudioReader, DecodeError};
use crate::engine::{Analyser, AnalyserConfig, EngineError, HeadChoice, MoodState, WindowReading};
use crate::features;
use crate::head::MoodSet;
use crate::models::ModelDir;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Csv,
    Json,
}

#[derive(Debug, Args)]
pub struct AnalyzeArgs {
    /// Audio files (WAV, FLAC, MP3, Ogg Vorbis).
    #[arg(required = true, value_name = "FILE")]
    files: Vec<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Csv)]
    format: Format,
    /// Write the timeline here instead of stdout.
    #[arg(long, value_name = "PATH")]
    out: Option<PathBuf>,
    /// Network that embeds the audio: yamnet or vggish.
    #[arg(long, default_value = "yamnet", value_parser = parse_backbone)]
    backbone: BackboneKind,
    /// Seconds between window starts (default: 0.48 for YAMNet, 0.96 for VGGish).
    #[arg(long, value_name = "SECONDS")]
    hop: Option<f64>,
    /// Moods to name: 5 (Happy, Sad, Calm, Angry, Scary: YAMNet's mood classes calibrated on
    /// listener-labelled music, the default), 4 (the study's Happy, Sad, Angry, Scary) or 6
    /// (AudioSet's Happy, Sad, Calm, Exciting, Angry, Scary).
    #[arg(long, default_value = "5", value_name = "4|5|6")]
    moods: MoodSet,
    /// Read YAMNet's own mood classes as they are, without the calibration.
    #[arg(long)]
    uncalibrated: bool,
    /// A head written by `moodscope train` (its .json file), instead of the mood set's readout.
    #[arg(long, value_name = "HEAD.json", conflicts_with = "uncalibrated")]
    head: Option<PathBuf>,
    /// Threads running the backbone.
    #[arg(long, default_value_t = 2)]
    threads: usize,
}

/// Samples decoded before they are handed to the analyser: enough windows per push for the
/// backbone threads to share.
const BLOCK_SECONDS: u32 = 8;

pub fn run(args: AnalyzeArgs, models: &ModelDir) -> Outcome {
    let hop = match args.hop.map(hop_frames).transpose() {
        Ok(hop) => hop,
        Err(e) => {
            eprintln!("moodscope: {e}");
            return Outcome::Failed;
        }
    };
    let config = |input_rate| AnalyserConfig {
        input_rate,
        backbone: args.backbone,
        head: match (&args.head, args.uncalibrated) {
            (Some(path), _) => HeadChoice::File(path.clone()),
            (None, true) => HeadChoice::Uncalibrated,
            (None, false) => HeadChoice::Default,
        },
        moods: args.moods,
        hop_frames: hop,
    };
    // Load the model once, before any file: a missing model is one message, not one per file.
    // The first analyser also keeps the shared backbone loaded for the whole batch.
    let first = match Analyser::new(config(features::MODEL_RATE), models) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("moodscope: {e}");
            return Outcome::Failed;
        }
    };
    let labels = first.labels().to_vec();
    let groups = first.groups().to_vec();
    let hop_seconds = first.config().hop_seconds();
    let readout = first.readout_name();
    if let Some(note) = first.note() {
        eprintln!("moodscope: note: {note}");
    }
    let mut out: Box<dyn Write> = match &args.out {
        Some(path) => match File::create(path) {
            Ok(f) => Box::new(BufWriter::new(f)),
            Err(e) => {
                report_error(path, format!("cannot write the output: {e}"));
                return Outcome::Failed;
            }
        },
        None => Box::new(BufWriter::new(std::io::stdout().lock())),
    };
    let mut failed = false;
    let mut analysed: Vec<(PathBuf, u32, Vec<WindowReading>, Vec<MoodState>, Summary)> = Vec::new();
    if args.format == Format::Csv {
        if let Err(e) = report::write_csv_header(&mut out, &labels) {
            eprintln!("moodscope: cannot write the output: {e}");
            return Outcome::Failed;
        }
    }
    for path in &args.files {
        let analysis = analyse_file(
            path,
            |rate| Analyser::new(config(rate), models),
            args.threads,
        );
        let FileAnalysis {
            readings,
            sample_rate,
            problem,
        } = match analysis {
            Ok(a) => a,
            Err(e) => {
                report_error(path, e);
                failed = true;
                continue;
            }
        };
        if let Some(problem) = problem {
            report_error(path, problem);
            failed = true;
        }
        let verdicts = report::verdicts(&readings, &groups, hop_seconds);
        let summary = Summary::of(&readings, &verdicts, &labels, &groups);
        eprintln!("{}: {}", path.display(), summary.describe(&labels));
        match args.format {
            Format::Csv => {
                if let Err(e) = report::write_csv_rows(
                    &mut out,
                    &path.to_string_lossy(),
                    &labels,
                    &groups,
                    &readings,
                    &verdicts,
                ) {
                    eprintln!("moodscope: cannot write the output: {e}");
                    return Outcome::Failed;
                }
            }
            Format::Json => analysed.push((path.clone(), sample_rate, readings, verdicts, summary)),
        }
    }
    if args.format == Format::Json {
        let files: Vec<report::JsonFile> = analysed
            .iter()
            .map(
                |(path, sample_rate, readings, verdicts, summary)| report::JsonFile {
                    file: path.to_string_lossy().into_owned(),
                    sample_rate: *sample_rate,
                    windows: report::json_windows(&labels, &groups, readings, verdicts),
                    summary,
                },
            )
            .collect();
        let doc = serde_json::json!({
            "backbone": args.backbone.name(),
            "head": args.head.as_ref().map_or("default".to_string(), |h| h.display().to_string()),
            "readout": readout,
            "hop_seconds": hop_seconds,
            "labels": labels,
            "files": files,
        });
        if let Err(e) = serde_json::to_writer_pretty(&mut out, &doc)
            .map_err(std::io::Error::from)
            .and_then(|_| writeln!(out))
        {
            eprintln!("moodscope: cannot write the output: {e}");
            return Outcome::Failed;
        }
    }
    if let Err(e) = out.flush() {
        eprintln!("moodscope: cannot write the output: {e}");
        return Outcome::Failed;
    }
    if failed {
        Outcome::SomeFailed
    } else {
        Outcome::Done
    }
}

/// One file's timeline, and what was wrong with it if something was (the timeline is kept).
struct FileAnalysis {
    readings: Vec<WindowReading>,
    sample_rate: u32,
    problem: Option<String>,
}

#[derive(Debug, thiserror::Error)]
enum FileError {
    #[error(transparent)]
    Decode(#[from] DecodeError),
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error("contains no audio")]
    Empty,
    #[error("is silent (no sample above -100 dBFS)")]
    Silent,
    #[error("is shorter than one window ({0:.3} s of audio; a window is 0.975 s)")]
    TooShort(f64),
}

/// Peak below which a file counts as silent: −100 dBFS.
const SILENCE_PEAK: f32 = 1e-5;

fn analyse_file(
    path: &Path,
    make_analyser: impl Fn(u32) -> Result<Analyser, EngineError>,
    threads: usize,
) -> Result<FileAnalysis, FileError> {
    let mut reader = AudioReader::open(path)?;
    let rate = reader.sample_rate();
    let mut analyser = make_analyser(rate)?;
    analyser.set_threads(threads);
    let progress = progress_bar(path, reader.frames());
    let block_len = (rate * BLOCK_SECONDS) as usize;
    let mut block = Vec::with_capacity(block_len + 8192);
    let mut readings = Vec::new();
    let mut samples = 0u64;
    let mut peak = 0.0f32;
    let mut problem = None;
    loop {
        let more = match reader.read_mono(&mut block) {
            Ok(more) => more,
            Err(e) => {
                // Keep what was read: analyse it, then report where the file broke.
                problem = Some(format!(
                    "{e} (after {:.1} s; the timeline stops there)",
                    samples as f64 / rate as f64
                ));
                false
            }
        };
        if block.len() >= block_len || !more {
            peak = block
                .iter()
                .filter(|x| x.is_finite())
                .fold(peak, |p, x| p.max(x.abs()));
            samples += block.len() as u64;
            analyser.push(&block, &mut readings)?;
            progress.inc(block.len() as u64);
            block.clear();
        }
        if !more {
            break;
        }
    }
    analyser.finish(&mut readings)?;
    progress.finish_and_clear();
    if samples == 0 {
        return Err(problem.map_or(FileError::Empty, |p| {
            FileError::Decode(DecodeError::Corrupt(p))
        }));
    }
    if peak < SILENCE_PEAK && analyser.non_finite_samples() == 0 {
        return Err(FileError::Silent);
    }
    if readings.is_empty() && problem.is_none() {
        return Err(FileError::TooShort(samples as f64 / rate as f64));
    }
    let non_finite = analyser.non_finite_samples();
    if non_finite > 0 {
        let note =
            format!("{non_finite} samples were NaN or infinite; they were analysed as silence");
        problem = Some(problem.map_or(note.clone(), |p| format!("{p}; {note}")));
    }
    if reader.skipped_packets() > 0 {
        eprintln!(
            "moodscope: {}: warning: {} damaged packets skipped",
            path.display(),
            reader.skipped_packets()
        );
    }
    Ok(FileAnalysis {
        readings,
        sample_rate: rate,
        problem,
    })
}

/// A progress bar on stderr when it is a terminal (hidden otherwise), in frames of audio.
fn progress_bar(path: &Path, frames: Option<u64>) -> ProgressBar {
    let name = path.file_name().map_or_else(
        || path.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    );
    let bar = match frames {
        Some(n) => ProgressBar::new(n),
        None => ProgressBar::new_spinner(),
    };
    let style = ProgressStyle::with_template("{msg:30!} {wide_bar} {percent:>3}% {eta}")
        .unwrap_or_else(|_| ProgressStyle::default_bar());
    bar.set_style(style);
    bar.set_message(name);
    bar
}
