use moodscope_train::{audioset, cross_validate, HeadSpec};
use std::path::Path;

fn main() -> anyhow::Result<()> {
    let dir = Path::new("/work/shared/data/audioset");
    let read = audioset::read_tfrecord(&dir.join("audioset_moods_bal_train.tfrecord"))?;
    println!("{} records, {} errors", read.records(), read.errors.len());
    let classes = audioset::ClassLabels::read(&dir.join("class_labels_indices.csv"))?;
    let data = audioset::mood_task(&read.clips, &classes)?;
    println!("{data}");
    let lens: std::collections::BTreeMap<usize, usize> = data.items.iter().fold(Default::default(), |mut m, s| { *m.entry(s.embeddings.len()).or_default() += 1; m });
    println!("lengths {lens:?}");
    let args: Vec<String> = std::env::args().skip(1).collect();
    let seeds: Vec<u64> = (1..=args.get(1).and_then(|s| s.parse().ok()).unwrap_or(1)).collect();
    let mut spec = match args.first().map(String::as_str).unwrap_or("lstm1") {
        "logistic" => HeadSpec::study_logistic(),
        "lstm1" => HeadSpec::study_lstm(1),
        "lstm3" => HeadSpec::study_lstm(3),
        "mean" => HeadSpec::clip_mean_logistic(),
        _ => HeadSpec::streaming_lstm(),
    };
    for kv in args.iter().skip(2) {
        let (k, v) = kv.split_once('=').unwrap();
        match k {
            "epochs" => spec.epochs = v.parse()?,
            "lr" => spec.learning_rate = v.parse()?,
            "wd" => spec.weight_decay = v.parse()?,
            "drop" => spec.dropout = v.parse()?,
            "idrop" => spec.input_dropout = v.parse()?,
            "mixup" => spec.mixup_alpha = v.parse()?,
            "prefix" => spec.stream_prefix = v.parse()?,
            "from" => spec.loss_from_window = v.parse()?,
            "ens" => spec.ensemble = v.parse()?,
            "norm" => spec.normalise = v == "1",
            "cos" => spec.lr_schedule = if v == "1" { moodscope_train::LrSchedule::Cosine } else { moodscope_train::LrSchedule::Constant },
            "hidden" => if let moodscope_train::HeadKind::Lstm { hidden, .. } = &mut spec.kind { *hidden = v.parse()? },
            "last" => spec.loss = moodscope_train::WindowLoss::LastWindow,
            "every" => spec.loss = moodscope_train::WindowLoss::EveryWindow,
            _ => anyhow::bail!("unknown {k}"),
        }
    }
    let report = cross_validate(&data, &spec, 5, &seeds, &mut |_| {})?;
    print!("{report}");
    let curve = report.mean_curve();
    let pts: Vec<String> = curve.iter().enumerate().filter(|(e, _)| (e + 1) % 10 == 0).map(|(e, (m, _))| format!("{}:{:.3}", e + 1, m)).collect();
    println!("curve {}", pts.join(" "));
    Ok(())
}
