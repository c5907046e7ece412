//! Cross-validates one head recipe with changed settings, for exploring (the numbers behind the
//! presets `HeadSpec::streaming_lstm` and `HeadSpec::clip_mean_logistic`). Figures from picking
//! the best of several probes on the same folds are optimistic: what ships is chosen and
//! measured by nested cross-validation (`crates/train-cli/examples/table1.rs`).
//!
//! ```text
//! cargo run --release -p moodscope-train-cli --example probe -- RECIPE SEEDS [KEY=VALUE...]
//! cargo run --release -p moodscope-train-cli --example probe -- streaming 3 ens=1 epochs=15
//! ```
//!
//! RECIPE: `logistic`, `lstm1`, `lstm3`, `mean` (clip-mean logistic regression) or `streaming`.
//! Keys: epochs, lr, wd, l2, drop, idrop, mixup, prefix, from, ens, norm (0/1), cos (0/1), hidden,
//! crop, and the flags `last` / `every` (window loss). Data: `$AUDIOSET` or
//! `../shared/data/audioset/audioset_moods_bal_train.tfrecord`.

use std::path::PathBuf;

use moodscope_train::{audioset, cross_validate, HeadKind, HeadSpec, LrSchedule, WindowLoss};

fn main() -> anyhow::Result<()> {
    let file = std::env::var_os("AUDIOSET").map_or_else(
        || PathBuf::from("../shared/data/audioset/audioset_moods_bal_train.tfrecord"),
        PathBuf::from,
    );
    let read = audioset::read_tfrecord(&file)?;
    for e in &read.errors {
        eprintln!("skipped: {e}");
    }
    let dir = file.parent().map(PathBuf::from).unwrap_or_default();
    let classes = audioset::ClassLabels::read(&dir.join("class_labels_indices.csv"))?;
    let data = audioset::mood_task(&read.clips, &classes)?;
    println!("{data}");
    let args: Vec<String> = std::env::args().skip(1).collect();
    let seeds: Vec<u64> = (1..=args.get(1).and_then(|s| s.parse().ok()).unwrap_or(1)).collect();
    let mut spec = match args.first().map(String::as_str).unwrap_or("streaming") {
        "logistic" => HeadSpec::study_logistic(),
        "lstm1" => HeadSpec::study_lstm(1),
        "lstm3" => HeadSpec::study_lstm(3),
        "mean" => HeadSpec::clip_mean_logistic(),
        "streaming" => HeadSpec::streaming_lstm(),
        other => anyhow::bail!("unknown recipe `{other}`"),
    };
    for arg in args.iter().skip(2) {
        let (k, v) = arg.split_once('=').unwrap_or((arg.as_str(), ""));
        match k {
            "epochs" => spec.epochs = v.parse()?,
            "lr" => spec.learning_rate = v.parse()?,
            "wd" => spec.weight_decay = v.parse()?,
            "l2" => spec.l2 = v.parse()?,
            "drop" => spec.dropout = v.parse()?,
            "idrop" => spec.input_dropout = v.parse()?,
            "mixup" => spec.mixup_alpha = v.parse()?,
            "prefix" => spec.stream_prefix = v.parse()?,
            "from" => spec.loss_from_window = v.parse()?,
            "ens" => spec.ensemble = v.parse()?,
            "crop" => spec.crop_windows = v.parse()?,
            "norm" => spec.normalise = v == "1",
            "cos" => {
                spec.lr_schedule = if v == "1" {
                    LrSchedule::Cosine
                } else {
                    LrSchedule::Constant
                }
            }
            "hidden" => {
                if let HeadKind::Lstm { hidden, .. } = &mut spec.kind {
                    *hidden = v.parse()?
                }
            }
            "last" => spec.loss = WindowLoss::LastWindow,
            "every" => spec.loss = WindowLoss::EveryWindow,
            _ => anyhow::bail!("unknown setting `{k}`"),
        }
    }
    let report = cross_validate(&data, &spec, 5, &seeds, &mut |_| {})?;
    print!("{report}");
    let curve: Vec<String> = report
        .mean_curve()
        .iter()
        .enumerate()
        .filter(|(e, _)| (e + 1) % 10 == 0)
        .map(|(e, (m, _))| format!("{}:{m:.3}", e + 1))
        .collect();
    println!("validation accuracy every 10 epochs: {}", curve.join(" "));
    Ok(())
}
