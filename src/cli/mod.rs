//! The command line: `moodscope analyze|tag|library|features|models`. Training and measuring
//! heads is the `moodscope-train` binary's (`crates/train-cli`), built on this same library;
//! `moodscope train|eval` say so.
//!
//! In: arguments and audio files. Out: mood timelines (CSV/JSON), log-mel patches (`.npy`),
//! mood tags, the library database and its tables, installed models. Every subcommand runs
//! the same core as the plugin (`engine`, `features`, `backbone`, `head`).
//! Errors are one clear line on stderr naming the file and the reason; a batch carries on past a
//! bad file and the exit code says something failed (1), or that nothing could run (2).

mod analyze;
mod features_cmd;
mod library;
mod models_cmd;
mod moods;
pub mod report;
mod scan;
mod tag;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::backbone::BackboneKind;
use crate::models::ModelDir;

#[derive(Debug, Parser)]
#[command(
    name = "moodscope",
    version,
    about = "How does this music feel? Happy, Sad, Calm, Angry or Scary, window by window."
)]
struct Cli {
    #[command(flatten)]
    models: ModelsArg,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Analyse audio files: one row per window with the four mood probabilities, the dominant
    /// mood and music presence, and a summary per file.
    Analyze(analyze::AnalyzeArgs),
    /// Write a file's 96x64 log-mel patches as a float32 .npy array [patches, 96, 64].
    Features(features_cmd::FeaturesArgs),
    /// Train a mood head: `cargo moodscope-train` (the `moodscope-train` binary).
    Train(ElsewhereArgs),
    /// Measure a trained head: `cargo moodscope-eval` (the `moodscope-train` binary).
    Eval(ElsewhereArgs),
    /// Install the model files (`cargo xtask install-models` runs `moodscope models install`).
    #[command(subcommand)]
    Models(models_cmd::ModelsCommand),
    /// Write each file's moods into its own tags (ID3v2 TMOO/TXXX, Vorbis comments MOOD=,
    /// MP4 freeform MOOD), analysing it first unless the library already has it.
    Tag(tag::TagArgs),
    /// Read the library database of analysed files: export a summary table, or query moods.
    #[command(subcommand)]
    Library(library::LibraryCommand),
}

/// `--models DIR`, for `moodscope` and `moodscope-train` alike.
#[derive(Debug, clap::Args)]
pub struct ModelsArg {
    /// Folder with the installed model files (default: $MOODSCOPE_MODELS, ./models, or
    /// ~/.local/share/moodscope/models).
    #[arg(long, global = true, value_name = "DIR")]
    pub models: Option<PathBuf>,
}

impl ModelsArg {
    /// The folder given, else the first of the default places (`ModelDir::locate`).
    pub fn dir(self) -> ModelDir {
        self.models.map_or_else(ModelDir::locate, ModelDir::new)
    }
}

/// The arguments of `train` or `eval`, taken as they come: those commands are the
/// `moodscope-train` binary's.
#[derive(Debug, clap::Args)]
#[command(disable_help_flag = true)]
struct ElsewhereArgs {
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, hide = true)]
    args: Vec<std::ffi::OsString>,
}

/// Says where `train` and `eval` are: the `moodscope-train` binary, kept apart so that a first
/// run does not compile training's numeric library (candle).
fn in_the_training_binary(command: &str) -> Outcome {
    eprintln!(
        "moodscope: `{command}` is the `moodscope-train` binary's (training is built apart, so \
         that installing Moodscope does not compile candle). Run `cargo moodscope-{command} \
         ARGS...` with the same arguments; its first run compiles the trainer, about 2 minutes \
         on 2 cores, on top of this build."
    );
    Outcome::Failed
}

/// Exit status of a run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Everything asked for was done.
    Done,
    /// Some files failed (each reported on stderr); the rest were done.
    SomeFailed,
    /// Nothing could run (bad arguments, missing models, unwritable output).
    Failed,
}

impl From<Outcome> for ExitCode {
    fn from(o: Outcome) -> Self {
        match o {
            Outcome::Done => ExitCode::SUCCESS,
            Outcome::SomeFailed => ExitCode::from(1),
            Outcome::Failed => ExitCode::from(2),
        }
    }
}

/// Entry point of the `moodscope` binary.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let command = match cli.command {
        Command::Models(command) => {
            return models_cmd::run(command, cli.models.models.as_deref()).into()
        }
        Command::Library(command) => return library::run(command).into(),
        command => command,
    };
    let models = cli.models.dir();
    let outcome = match command {
        Command::Analyze(args) => analyze::run(args, &models),
        Command::Features(args) => features_cmd::run(args),
        Command::Train(_) => in_the_training_binary("train"),
        Command::Eval(_) => in_the_training_binary("eval"),
        Command::Tag(args) => tag::run(args, &models),
        Command::Models(_) | Command::Library(_) => unreachable!("handled above"),
    };
    outcome.into()
}

/// Prints one error line for `subject` (a file, usually) on stderr.
pub fn report_error(subject: &std::path::Path, reason: impl std::fmt::Display) {
    eprintln!("moodscope: {}: {reason}", subject.display());
}

/// Parses a window hop given in seconds (0.01 s steps, at most 0.96 s) into STFT frames.
pub fn hop_frames(seconds: f64) -> Result<usize, String> {
    let frames = (seconds * 100.0).round();
    if !(1.0..=crate::features::PATCH_FRAMES as f64).contains(&frames)
        || (frames / 100.0 - seconds).abs() > 1e-6
    {
        return Err(format!(
            "--hop {seconds}: give seconds in 0.01 s steps from 0.01 to 0.96 (e.g. 0.48 or 0.96)"
        ));
    }
    Ok(frames as usize)
}

pub fn parse_backbone(s: &str) -> Result<BackboneKind, String> {
    s.parse()
}
