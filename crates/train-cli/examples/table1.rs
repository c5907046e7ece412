//! Reruns the study's Table 1 and the six-mood set by nested cross-validation, decides which
//! heads ship, and exports them: AudioSet's released embeddings in; `RESULTS.md`, figures and
//! the heads out.
//!
//! ```text
//! cargo run --release -p moodscope-train-cli --example table1
//! cargo run --release -p moodscope-train-cli --example table1 -- --moods 4 --seeds 1 --no-export
//! ```
//!
//! Writes `confusion-moods*-*.png` and `nested-reports.json` into `--figures`, and into
//! `--export` the heads trained on the whole file: `audioset-moods4` and `audioset-moods6` (the
//! heads that ship), `audioset-study-{logistic,lstm1,lstm3}` (the study's heads), each
//! `NAME.onnx` + `NAME.json`, and `RESULTS.md` (into `--figures` with `--no-export`).
//! `cargo moodscope-train --audioset FILE` runs the same experiment.

use std::path::PathBuf;
use std::time::Instant;

use clap::Parser;
use moodscope_train::experiment::{self, Event, ExperimentOptions};
use moodscope_train::MoodSet;

#[derive(Parser)]
struct Args {
    /// AudioSet TFRecord file of SequenceExamples (or a folder of them).
    #[arg(
        long,
        default_value = "../shared/data/audioset/audioset_moods_bal_train.tfrecord"
    )]
    data: PathBuf,
    /// AudioSet's class_labels_indices.csv (default: beside the data).
    #[arg(long)]
    class_labels: Option<PathBuf>,
    /// Mood sets: 4 (the study's), 6 (with Calm and Exciting), or both (comma-separated).
    #[arg(long, value_delimiter = ',', default_values_t = [4, 6])]
    moods: Vec<usize>,
    /// Outer folds (measure only).
    #[arg(long, default_value_t = 5)]
    folds: usize,
    /// Inner folds (every choice).
    #[arg(long, default_value_t = 5)]
    inner_folds: usize,
    /// Number of nested repeats (seeds 1..=N).
    #[arg(long, default_value_t = 3)]
    seeds: u64,
    /// Where figures and reports go.
    #[arg(long, default_value = "models/heads/figures")]
    figures: PathBuf,
    /// Where the final heads go.
    #[arg(long, default_value = "models/heads")]
    export: PathBuf,
    /// Measure only; train and export no final head.
    #[arg(long)]
    no_export: bool,
    /// Only the families whose names contain one of these (comma-separated; the baseline
    /// `clip-mean-logistic` is always kept, as the ship rule needs it).
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let class_labels = args.class_labels.clone().unwrap_or_else(|| {
        args.data
            .parent()
            .map(|p| p.join("class_labels_indices.csv"))
            .unwrap_or_else(|| "class_labels_indices.csv".into())
    });
    let mut tasks = Vec::new();
    for &m in &args.moods {
        let moods = MoodSet::from_count(m)
            .ok_or_else(|| anyhow::anyhow!("--moods takes 4 or 6, not {m}"))?;
        let mut task = experiment::task(moods);
        if !args.only.is_empty() {
            task.families.retain(|f| {
                f.role == experiment::Role::Baseline
                    || args.only.iter().any(|o| f.family.name.contains(o.as_str()))
            });
        }
        tasks.push(task);
    }
    let export = (!args.no_export).then(|| args.export.clone());
    let command =
        experiment::command_line("cargo run --release -p moodscope-train-cli --example table1");
    let options = ExperimentOptions {
        data: args.data.clone(),
        class_labels,
        outer_folds: args.folds,
        inner_folds: args.inner_folds,
        seeds: (1..=args.seeds).collect(),
        tasks,
        figures: args.figures.clone(),
        results: export.as_ref().unwrap_or(&args.figures).join("RESULTS.md"),
        export,
        command,
    };
    let start = Instant::now();
    let mut last_shown = 0;
    let result = experiment::run(&options, &mut |event| match event {
        Event::Note(text) => eprintln!("{text}"),
        Event::Progress(p) => {
            // About every 5% of the trainings.
            let step = (p.jobs / 20).max(1);
            if p.done == p.jobs || p.done >= last_shown + step || p.done < last_shown {
                last_shown = p.done;
                eprintln!(
                    "  {}/{} trainings ({:.0} s)",
                    p.done,
                    p.jobs,
                    start.elapsed().as_secs_f64()
                );
            }
        }
    })?;
    println!("{result}");
    eprintln!(
        "done in {:.0} s; figures in {}",
        start.elapsed().as_secs_f64(),
        args.figures.display()
    );
    Ok(())
}
