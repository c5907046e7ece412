//! `moodscope-train`: trains mood heads and measures them (`cargo moodscope-train ...`,
//! `cargo moodscope-eval ...`).
//!
//! In: labelled audio (one subfolder of audio files per label) or AudioSet's released embeddings
//! (TFRecord). Out: trained heads (`NAME.onnx` + `NAME.json`, loaded by `moodscope analyze --head`
//! and the plugin), their cross-validated or held-out figures, printed and as PNG. The audio is
//! embedded by the same `moodscope` core as `analyze` and the plugin; the heads are trained by the
//! `moodscope-train` library (candle). It is kept out of the `moodscope` binary so that a first
//! run does not compile candle. Errors follow `moodscope`'s rules: one line per bad file, the
//! batch goes on, exit status 1 when something failed and 2 when nothing could run.

mod eval_cmd;
mod train_cmd;

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use moodscope::cli::ModelsArg;

#[derive(Debug, Parser)]
#[command(
    name = "moodscope-train",
    version,
    about = "Train Moodscope's mood heads on your labelled music or AudioSet's, and measure them."
)]
struct Cli {
    #[command(flatten)]
    models: ModelsArg,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Train a mood head on your own labelled audio (one subfolder per label), report its
    /// cross-validated figures and write it for `moodscope analyze --head` and the plugin; or,
    /// with --audioset, rerun the study's Table 1 on AudioSet's released embeddings.
    Train(train_cmd::TrainArgs),
    /// Measure a trained head on labelled data: an AudioSet TFRecord file or audio folders.
    Eval(eval_cmd::EvalArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let models = cli.models.dir();
    match cli.command {
        Command::Train(args) => train_cmd::run(args, &models),
        Command::Eval(args) => eval_cmd::run(args, &models),
    }
    .into()
}
