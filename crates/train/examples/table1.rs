//! Reruns the study's Table 1 by cross-validation, plus Moodscope's streaming head, and exports
//! the AudioSet heads.
//!
//! ```text
//! cargo run -p moodscope-train --release --example table1 -- \
//!     --data ../shared/data/audioset/audioset_moods_bal_train.tfrecord
//! ```
//!
//! Prints the results; writes `validation-accuracy.png`, `confusion-*.png` and `cv-reports.json`
//! into `--figures`, the heads trained on the whole file (`NAME.onnx` + `NAME.json`) and
//! `RESULTS.md` into `--export` (`RESULTS.md` into `--figures` with `--no-export`).
//! `moodscope train --audioset FILE` runs the same experiment.

use std::path::PathBuf;
use std::time::Instant;

use clap::Parser;
use moodscope_train::experiment::{self, Event, ExperimentOptions};

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
    #[arg(long, default_value_t = 5)]
    folds: usize,
    /// Number of cross-validation repeats (seeds 1..=N).
    #[arg(long, default_value_t = 3)]
    seeds: u64,
    /// Where figures and reports go.
    #[arg(long, default_value = "models/heads/figures")]
    figures: PathBuf,
    /// Where the final heads go.
    #[arg(long, default_value = "models/heads")]
    export: PathBuf,
    /// Cross-validate only; train and export no final head.
    #[arg(long)]
    no_export: bool,
    /// Only the heads whose names contain one of these (comma-separated).
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
    let mut heads = experiment::table1_heads();
    if !args.only.is_empty() {
        heads.retain(|h| args.only.iter().any(|o| h.spec.name.contains(o.as_str())));
    }
    let export = (!args.no_export).then(|| args.export.clone());
    let command =
        std::iter::once("cargo run -p moodscope-train --release --example table1".to_owned())
            .chain(
                std::env::args()
                    .skip(1)
                    .map(|a| if a.contains(' ') { format!("'{a}'") } else { a }),
            )
            .collect::<Vec<_>>()
            .join(" ");
    let options = ExperimentOptions {
        data: args.data.clone(),
        class_labels,
        folds: args.folds,
        seeds: (1..=args.seeds).collect(),
        heads,
        figures: args.figures.clone(),
        results: export.as_ref().unwrap_or(&args.figures).join("RESULTS.md"),
        export,
        command,
    };
    let start = Instant::now();
    let result = experiment::run(&options, &mut |event| match event {
        Event::Note(text) => eprintln!("{text}"),
        Event::Training(p) => {
            if p.epoch == p.epochs {
                match p.validation_accuracy {
                    Some(a) => eprintln!(
                        "  {} run {}/{}: validation accuracy {a:.3}",
                        p.head,
                        p.run + 1,
                        p.runs
                    ),
                    None => eprintln!("  {} trained ({} epochs)", p.head, p.epochs),
                }
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
