//! `moodscope analyze FILE|FOLDER...`: audio files in, a mood timeline per file out (CSV or JSON,
//! to stdout or `--out`), a summary per file on stderr, one progress bar on a terminal; with
//! `--summary` a table of one row per track, with `--write-tags` the moods in each file's tags.
//! Folders, parallel files and the library database: `scan`.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use clap::{Args, ValueEnum};

use super::library::{self, Library, TableFormat, TrackRow};
use super::moods::TrackMoods;
use super::report::{self, Summary};
use super::scan::{self, AnalysisArgs, Setup};
use super::{report_error, tag, Outcome};
use crate::decode::{AudioReader, Damage, DecodeError, AUDIO_EXTENSIONS};
use crate::engine::{Analyser, EngineError, MoodState, WindowReading};
use crate::models::ModelDir;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Csv,
    Json,
}

#[derive(Debug, Args)]
pub struct AnalyzeArgs {
    /// Audio files (WAV, AIFF, FLAC, MP3, Ogg Vorbis/Opus, MP4/M4A AAC/ALAC, WebM/Matroska), or
    /// folders: their audio files are analysed, recursively.
    #[arg(required = true, value_name = "FILE|FOLDER")]
    files: Vec<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Csv)]
    format: Format,
    /// Write the timeline here instead of stdout.
    #[arg(long, value_name = "PATH")]
    out: Option<PathBuf>,
    #[command(flatten)]
    analysis: AnalysisArgs,
    /// Also write a summary table, one row per track: path, dominant mood, share of time per
    /// mood, valence/arousal when given, seconds (CSV, or JSON for a .json path).
    #[arg(long, value_name = "PATH")]
    summary: Option<PathBuf>,
    /// Write each file's moods into its own tags, as `moodscope tag` does.
    #[arg(long)]
    write_tags: bool,
    /// With --write-tags: also put a short mood text in the comment field (DJ software shows it).
    #[arg(long, requires = "write_tags")]
    comment: bool,
}

/// Samples decoded before they are handed to the analyser: enough windows per push for the
/// backbone threads to share.
const BLOCK_SECONDS: u32 = 8;

/// One file's timeline, verdicts and summary, kept for the JSON document.
type AnalysedFile = (PathBuf, u32, Vec<WindowReading>, Vec<MoodState>, Summary);

pub fn run(args: AnalyzeArgs, models: &ModelDir) -> Outcome {
    let setup = match Setup::new(&args.analysis, models) {
        Ok(setup) => setup,
        Err(e) => {
            eprintln!("moodscope: {e}");
            return Outcome::Failed;
        }
    };
    let labels = setup.labels.clone();
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
    let files = scan::expand(&args.files);
    if files.is_empty() {
        eprintln!(
            "moodscope: no audio files found (looked for {})",
            AUDIO_EXTENSIONS.join(", ")
        );
        return Outcome::Failed;
    }
    let library = match &setup.db {
        Some(path) if args.write_tags => Library::open(path)
            .map_err(|e| eprintln!("moodscope: {e}"))
            .ok(),
        _ => None,
    };
    let mut failed = false;
    let mut write_error = None;
    let groups = setup.groups.clone();
    let mut analysed: Vec<AnalysedFile> = Vec::new();
    let mut table: Vec<TrackRow> = Vec::new();
    if args.format == Format::Csv {
        if let Err(e) = report::write_csv_header(&mut out, &labels) {
            eprintln!("moodscope: cannot write the output: {e}");
            return Outcome::Failed;
        }
    }
    let counts = scan::run(&setup, &files, |path, result, bar| {
        let track = match result {
            Ok(track) => track,
            Err(e) => {
                bar.suspend(|| report_error(path, e));
                failed = true;
                return;
            }
        };
        if let Some(damage) = &track.damage {
            bar.suspend(|| report_partial(path, damage, args.analysis.accept_partial));
            failed |= !args.analysis.accept_partial;
        }
        if let Some(problem) = &track.problem {
            bar.suspend(|| report_error(path, problem));
            failed = true;
        }
        let (verdicts, summary) = setup.summarise(&track.readings);
        bar.suspend(|| eprintln!("{}: {}", path.display(), summary.describe(&labels)));
        let moods = TrackMoods::from_summary(&summary, &labels);
        if args.write_tags {
            let written = tag::tag_file(
                path,
                &moods,
                &setup.model_version,
                args.comment,
                library.as_ref().zip(track.hash.as_deref()),
            );
            if let Err(e) = written {
                bar.suspend(|| report_error(path, e));
                failed = true;
            }
        }
        table.push(TrackRow {
            path: path.to_string_lossy().into_owned(),
            model_version: setup.model_version.clone(),
            moods,
            partial: track.damage.is_some(),
        });
        if write_error.is_some() {
            return;
        }
        match args.format {
            Format::Csv => {
                if let Err(e) = report::write_csv_rows(
                    &mut out,
                    &path.to_string_lossy(),
                    &labels,
                    &groups,
                    &track.readings,
                    &verdicts,
                ) {
                    write_error = Some(e);
                }
            }
            Format::Json => analysed.push((
                path.to_path_buf(),
                track.sample_rate,
                track.readings,
                verdicts,
                summary,
            )),
        }
    });
    if files.len() > 1 || counts.unchanged > 0 {
        eprintln!("{}", counts.line(files.len()));
    }
    if let Some(e) = write_error {
        eprintln!("moodscope: cannot write the output: {e}");
        return Outcome::Failed;
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
            "backbone": args.analysis.backbone.name(),
            "head": args.analysis.head.as_ref().map_or("default".to_string(), |h| h.display().to_string()),
            "readout": setup.readout,
            "hop_seconds": setup.hop_seconds,
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
    if let Some(path) = &args.summary {
        let format = match path.extension().and_then(|e| e.to_str()) {
            Some(e) if e.eq_ignore_ascii_case("json") => TableFormat::Json,
            _ => TableFormat::Csv,
        };
        let written = File::create(path).and_then(|f| {
            let mut w = BufWriter::new(f);
            library::write_tracks(&mut w, format, &table)?;
            w.flush()
        });
        if let Err(e) = written {
            report_error(path, format!("cannot write the summary: {e}"));
            return Outcome::Failed;
        }
    }
    if failed {
        Outcome::SomeFailed
    } else {
        Outcome::Done
    }
}

/// One line for a file analysed only as far as it decoded.
pub(crate) fn report_partial(path: &Path, damage: &str, accepted: bool) {
    let note = if accepted {
        ""
    } else {
        " (counted as failed; --accept-partial accepts it)"
    };
    eprintln!(
        "moodscope: {}: warning: partial file, analysed as far as it decodes: {damage}{note}",
        path.display()
    );
}

/// One file's timeline, and what was wrong with it if something was (the timeline is kept).
pub(crate) struct FileAnalysis {
    pub readings: Vec<WindowReading>,
    pub sample_rate: u32,
    /// The file ends early or has damaged stretches: analysed as far as it decoded.
    pub damage: Option<Damage>,
    /// Anything else wrong (NaN samples analysed as silence).
    pub problem: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum FileError {
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

/// Decodes and analyses one file. `progress` hears, after each block, the seconds of audio it
/// held and the share of the file decoded so far (0 when the file does not say its length).
pub(crate) fn analyse_file(
    path: &Path,
    make_analyser: impl Fn(u32) -> Result<Analyser, EngineError>,
    threads: usize,
    mut progress: impl FnMut(f64, f64),
) -> Result<FileAnalysis, FileError> {
    let mut reader = AudioReader::open(path)?;
    let rate = reader.sample_rate();
    let mut analyser = make_analyser(rate)?;
    analyser.set_threads(threads);
    // A block completes enough windows for a batch on every thread (VGGish: 8 windows of 0.96 s
    // on 2 threads, about 16 s).
    let batch_seconds =
        (threads * analyser.run_windows()) as f64 * analyser.config().hop_seconds() + 1.0;
    let block_len = (rate as f64 * batch_seconds.max(BLOCK_SECONDS as f64)) as usize;
    let frames = reader.frames();
    let mut readings = Vec::new();
    let mut samples = 0u64;
    let mut peak = 0.0f32;
    // The file decodes on its own thread, a block ahead of the analysis, so that decoding
    // overlaps the front end and the backbone: blocks come through a channel of one, and the
    // reader comes back at the end for its verdict on the stream.
    let (blocks, decoded) = crossbeam_channel::bounded::<Vec<f32>>(1);
    let reader = std::thread::scope(|scope| -> Result<AudioReader, FileError> {
        let decoding = scope.spawn(move || {
            let mut block = Vec::with_capacity(block_len + 8192);
            loop {
                // A decoding error ends the stream; `damage` below says where and why.
                let more = reader.read_mono(&mut block).unwrap_or(false);
                if block.len() >= block_len || !more {
                    let full = std::mem::replace(&mut block, Vec::with_capacity(block_len + 8192));
                    if blocks.send(full).is_err() {
                        break; // the analysis stopped on an error
                    }
                }
                if !more {
                    break;
                }
            }
            reader
        });
        let analysed = (|| -> Result<(), FileError> {
            for block in &decoded {
                peak = block
                    .iter()
                    .filter(|x| x.is_finite())
                    .fold(peak, |p, x| p.max(x.abs()));
                samples += block.len() as u64;
                analyser.push(&block, &mut readings)?;
                let fraction = frames.map_or(0.0, |n| samples as f64 / n.max(1) as f64);
                progress(block.len() as f64 / rate as f64, fraction);
            }
            Ok(())
        })();
        drop(decoded);
        let reader = decoding
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        analysed.map(|()| reader)
    })?;
    analyser.finish(&mut readings)?;
    let damage = reader.damage();
    if samples == 0 {
        return Err(match damage {
            Some(d) => FileError::Decode(DecodeError::Truncated(format!(
                "{} with no audio that decodes: {}",
                reader.description(),
                d.reason
            ))),
            None => FileError::Empty,
        });
    }
    if peak < SILENCE_PEAK && analyser.non_finite_samples() == 0 {
        return Err(FileError::Silent);
    }
    if readings.is_empty() && damage.is_none() {
        return Err(FileError::TooShort(samples as f64 / rate as f64));
    }
    let non_finite = analyser.non_finite_samples();
    let problem = (non_finite > 0).then(|| {
        format!("{non_finite} samples were NaN or infinite; they were analysed as silence")
    });
    Ok(FileAnalysis {
        readings,
        sample_rate: rate,
        damage,
        problem,
    })
}
