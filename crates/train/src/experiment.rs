//! The study's experiment, rerunnable: AudioSet's released embeddings in; Table 1 by
//! cross-validation (the study's three heads, the clip-mean logistic-regression baseline,
//! Moodscope's streaming head and its ablations), figures (PNG), and the final heads trained on
//! the whole file and exported for the plugin, out.
//!
//! `cargo run -p moodscope-train --release --example table1` runs it; `moodscope train
//! --audioset FILE` calls [`run`].

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::audioset::{self, ClassLabels, RecordError};
use crate::cv::{cross_validate, CvReport, Difference};
use crate::dataset::hex;
use crate::export::{export_head, EmbeddingSource};
use crate::plot::{plot_curves, plot_cv_confusion};
use crate::spec::HeadSpec;
use crate::train::{train, Progress};

/// One head of the experiment.
#[derive(Clone, Debug)]
pub struct ExperimentHead {
    pub spec: HeadSpec,
    /// What it stands for in the table.
    pub description: String,
    /// The study's held-out accuracy for this head, if it is one of the study's.
    pub study_accuracy: Option<f64>,
    /// File name (without extension) to export the head trained on the whole file under.
    pub export_as: Option<String>,
}

/// The study's three heads (0.798, 0.839, 0.776 held out), the clip-mean baseline, Moodscope's
/// streaming head (exported as `audioset-lstm1`, the default VGGish head) and ablations: one
/// model of it instead of the ensemble, and that one model without one of its improvements at a
/// time.
pub fn table1_heads() -> Vec<ExperimentHead> {
    let head = |spec: HeadSpec, description: &str, study: Option<f64>, export: Option<&str>| {
        ExperimentHead {
            spec,
            description: description.into(),
            study_accuracy: study,
            export_as: export.map(str::to_owned),
        }
    };
    let streaming = HeadSpec::streaming_lstm();
    let ablation = |name: &str, change: &dyn Fn(&mut HeadSpec)| {
        let mut spec = streaming.clone();
        spec.name = name.into();
        change(&mut spec);
        spec
    };
    vec![
        head(
            HeadSpec::study_logistic(),
            "study: multinomial logistic regression per second, clip = mean probability",
            Some(0.798),
            Some("audioset-study-logistic"),
        ),
        head(
            HeadSpec::study_lstm(1),
            "study: 1-layer LSTM, last window",
            Some(0.839),
            Some("audioset-study-lstm1"),
        ),
        head(
            HeadSpec::study_lstm(3),
            "study: 3-layer LSTM, last window",
            Some(0.776),
            Some("audioset-study-lstm3"),
        ),
        head(
            HeadSpec::clip_mean_logistic(),
            "baseline: logistic regression on the clip-mean embedding",
            None,
            None,
        ),
        head(
            ablation("streaming-single", &|s| s.ensemble = 1),
            "streaming head, one model (no ensemble)",
            None,
            None,
        ),
        head(
            ablation("streaming-single-no-mixup", &|s| {
                s.ensemble = 1;
                s.mixup_alpha = 0.0
            }),
            "streaming head, one model, without mixup",
            None,
            None,
        ),
        head(
            ablation("streaming-single-no-regularisation", &|s| {
                s.ensemble = 1;
                s.normalise = false;
                s.input_dropout = 0.0;
                s.dropout = 0.0;
                s.weight_decay = 0.0
            }),
            "streaming head, one model, without input normalisation, dropout and weight decay",
            None,
            None,
        ),
        head(
            ablation("streaming-single-no-stream-training", &|s| {
                s.ensemble = 1;
                s.stream_prefix = 0
            }),
            "streaming head, one model, without streaming training",
            None,
            None,
        ),
        head(
            streaming,
            "Moodscope streaming head (shipped)",
            None,
            Some("audioset-lstm1"),
        ),
    ]
}

/// Where the experiment reads and writes.
#[derive(Clone, Debug)]
pub struct ExperimentOptions {
    /// AudioSet TFRecord file (or folder of them).
    pub data: PathBuf,
    /// `class_labels_indices.csv`.
    pub class_labels: PathBuf,
    pub folds: usize,
    /// One cross-validation repeat per seed.
    pub seeds: Vec<u64>,
    pub heads: Vec<ExperimentHead>,
    /// Folder for the figures (PNG) and every cross-validation report (`cv-reports.json`).
    pub figures: PathBuf,
    /// Folder to export the final heads to (`None`: no final training).
    pub export: Option<PathBuf>,
    /// Where the results are written as Markdown (the table, the figures, the command).
    pub results: PathBuf,
    /// The command line that ran the experiment, quoted in the results.
    pub command: String,
}

/// What the experiment tells as it goes.
pub enum Event<'a> {
    Note(&'a str),
    Training(&'a Progress<'a>),
}

/// A head's row of the table.
#[derive(Clone, Debug, Serialize)]
pub struct Row {
    pub description: String,
    pub study_accuracy: Option<f64>,
    pub report: CvReport,
    /// Paired difference in accuracy to the clip-mean baseline.
    pub versus_baseline: Option<Difference>,
    /// The exported head's JSON file and the seconds its final training took.
    pub exported: Option<(PathBuf, f64)>,
}

/// The experiment's results.
#[derive(Clone, Debug, Serialize)]
pub struct Experiment {
    pub data: PathBuf,
    pub data_sha256: String,
    /// `233 clips, 128-D: Happy 55, ...`
    pub task: String,
    pub records: usize,
    pub record_errors: Vec<String>,
    pub folds: usize,
    pub seeds: Vec<u64>,
    pub rows: Vec<Row>,
    pub figures: Vec<PathBuf>,
    /// The command line, as given in [`ExperimentOptions::command`].
    pub command: String,
    /// Wall-clock seconds of the whole experiment (reading, cross-validation, final training).
    pub seconds: f64,
    /// The figures as Markdown links relative to the results file.
    #[serde(skip)]
    pub figure_links: Vec<String>,
}

/// Failure of the experiment as a whole (a bad record is only reported).
#[derive(Debug, thiserror::Error)]
pub enum ExperimentError {
    #[error(transparent)]
    Read(#[from] audioset::ReadError),
    #[error(transparent)]
    Labels(#[from] audioset::LabelsError),
    #[error(transparent)]
    Train(#[from] crate::train::TrainError),
    #[error(transparent)]
    Plot(#[from] crate::plot::PlotError),
    #[error(transparent)]
    Export(#[from] crate::export::ExportError),
    #[error("cannot write {}: {source}", .path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

fn file_sha256(path: &Path) -> Result<String, ExperimentError> {
    if path.is_dir() {
        return Ok(String::new());
    }
    let bytes = std::fs::read(path).map_err(|source| ExperimentError::Io {
        path: path.to_owned(),
        source,
    })?;
    Ok(hex(&Sha256::digest(&bytes)))
}

/// Runs the experiment: cross-validates every head, draws the figures, writes the reports and,
/// when asked, trains the exported heads on the whole file and writes them.
pub fn run(
    options: &ExperimentOptions,
    on_event: &mut dyn FnMut(Event),
) -> Result<Experiment, ExperimentError> {
    let start = Instant::now();
    let read = audioset::read_tfrecord(&options.data)?;
    for e in &read.errors {
        on_event(Event::Note(&format!("skipped: {e}")));
    }
    let classes = ClassLabels::read(&options.class_labels)?;
    let data = audioset::mood_task(&read.clips, &classes)?;
    let task = data.to_string();
    on_event(Event::Note(&format!(
        "{} records read; the task: {task}",
        read.records()
    )));
    let data_sha256 = file_sha256(&options.data)?;
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| ExperimentError::Io { path, source }
    };
    std::fs::create_dir_all(&options.figures).map_err(io(&options.figures))?;

    let mut reports = Vec::new();
    for head in &options.heads {
        on_event(Event::Note(&format!(
            "cross-validating {}: {}",
            head.spec.name, head.description
        )));
        let report = cross_validate(&data, &head.spec, options.folds, &options.seeds, &mut |p| {
            on_event(Event::Training(p))
        })?;
        on_event(Event::Note(&report.to_string()));
        reports.push(report);
    }
    let baseline = options
        .heads
        .iter()
        .position(|h| h.spec.name == HeadSpec::clip_mean_logistic().name)
        .map(|i| reports[i].clone());
    let mut figures = Vec::new();
    let curves = options.figures.join("validation-accuracy.png");
    let title = format!(
        "Validation accuracy per epoch, {}-fold cross-validation x {} seeds, AudioSet moods ({} clips)",
        options.folds,
        options.seeds.len(),
        data.items.len()
    );
    plot_curves(&reports, &title, &curves)?;
    figures.push(curves);
    for report in &reports {
        let path = options
            .figures
            .join(format!("confusion-{}.png", report.spec.name));
        plot_cv_confusion(report, &path)?;
        figures.push(path);
    }

    let mut rows = Vec::new();
    for (head, report) in options.heads.iter().zip(reports) {
        let versus_baseline = baseline
            .as_ref()
            .filter(|b| b.spec.name != report.spec.name)
            .and_then(|b| report.compare(b));
        let exported = match (&options.export, &head.export_as) {
            (Some(dir), Some(name)) => {
                on_event(Event::Note(&format!(
                    "training {name} ({}) on all {} clips",
                    head.spec.name,
                    data.items.len()
                )));
                let start = Instant::now();
                let trained = train(&data, &head.spec, &mut |p| on_event(Event::Training(p)))?;
                let seconds = start.elapsed().as_secs_f64();
                let figures = serde_json::json!({
                    "source_file_sha256": data_sha256,
                    "cross_validation": report.figures_json(),
                    "versus_clip_mean_logistic": versus_baseline,
                    "study_accuracy_held_out": head.study_accuracy,
                });
                let path = export_head(
                    &trained,
                    dir,
                    name,
                    &EmbeddingSource::audioset_vggish(),
                    figures,
                )?;
                on_event(Event::Note(&format!(
                    "wrote {} ({seconds:.1} s)",
                    path.display()
                )));
                Some((path, seconds))
            }
            _ => None,
        };
        rows.push(Row {
            description: head.description.clone(),
            study_accuracy: head.study_accuracy,
            report,
            versus_baseline,
            exported,
        });
    }
    let results_dir = options.results.parent().unwrap_or(Path::new(""));
    let figure_links = figures
        .iter()
        .map(|f| {
            f.strip_prefix(results_dir)
                .unwrap_or(f)
                .display()
                .to_string()
        })
        .collect();
    let experiment = Experiment {
        data: options.data.clone(),
        data_sha256,
        task,
        records: read.records(),
        record_errors: read.errors.iter().map(RecordError::to_string).collect(),
        folds: options.folds,
        seeds: options.seeds.clone(),
        rows,
        figures,
        command: options.command.clone(),
        seconds: start.elapsed().as_secs_f64(),
        figure_links,
    };
    if !results_dir.as_os_str().is_empty() {
        std::fs::create_dir_all(results_dir).map_err(io(results_dir))?;
    }
    std::fs::write(&options.results, experiment.to_string()).map_err(io(&options.results))?;
    let json = options.figures.join("cv-reports.json");
    let text = serde_json::to_string(&experiment).map_err(|e| ExperimentError::Io {
        path: json.clone(),
        source: std::io::Error::other(e),
    })?;
    std::fs::write(&json, text).map_err(io(&json))?;
    Ok(experiment)
}

impl fmt::Display for Experiment {
    /// The results, as Markdown: how they were made, the table, the figures, every report.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "# Table 1, rerun: AudioSet music moods, {}", self.task)?;
        writeln!(f)?;
        writeln!(
            f,
            "Produced by (from the repository's root, {:.0} s wall clock in all):",
            self.seconds
        )?;
        writeln!(f)?;
        writeln!(f, "```sh\n{}\n```", self.command)?;
        writeln!(f)?;
        writeln!(
            f,
            "Data: `{}` (sha256 {}), {} records{}. AudioSet's eval split is not used: every figure \
             here is stratified {}-fold cross-validation on this file, repeated with seeds {:?} (each \
             seed draws its own folds; every clip is predicted by heads that never trained on it). \
             Accuracy: mean over seeds, with the 95% Wilson interval for {} clips; sd: over seeds. \
             Streamed: the validation clips played back to back as one stream, state carried over; \
             per-window accuracy from the third window of each clip. vs baseline: paired difference \
             to the clip-mean logistic regression on the same folds, clip by clip (95% interval). \
             Times: seconds to train one fold's head (folds run in parallel, one per core), and to \
             train the exported head on the whole file.",
            self.data.display(),
            if self.data_sha256.is_empty() { "-" } else { &self.data_sha256 },
            self.records,
            if self.record_errors.is_empty() {
                String::new()
            } else {
                format!(" ({} unreadable, skipped)", self.record_errors.len())
            },
            self.folds,
            self.seeds,
            self.rows.first().map_or(0, |r| r.report.truth.len()),
        )?;
        writeln!(f)?;
        writeln!(
            f,
            "| head | study (held out) | CV accuracy [95% CI] | sd | macro-F1 | streamed | vs baseline | train s/fold | final train s |"
        )?;
        writeln!(f, "|---|---|---|---|---|---|---|---|---|")?;
        for row in &self.rows {
            let r = &row.report;
            writeln!(
                f,
                "| `{}`: {} | {} | {} | {:.3} | {:.3} | {} | {} | {:.1} | {} |",
                r.spec.name,
                row.description,
                row.study_accuracy.map_or("-".into(), |a| format!("{a:.3}")),
                r.accuracy,
                r.accuracy_sd,
                r.macro_f1,
                r.stream_accuracy.map_or("-".into(), |a| format!("{a:.3}")),
                row.versus_baseline.map_or("-".into(), |d| d.to_string()),
                r.seconds_per_fold,
                row.exported
                    .as_ref()
                    .map_or("-".into(), |(_, s)| format!("{s:.1}")),
            )?;
        }
        writeln!(f)?;
        for row in &self.rows {
            if let Some((path, _)) = &row.exported {
                writeln!(
                    f,
                    "- `{}` exported as `{}`",
                    row.report.spec.name,
                    path.display()
                )?;
            }
        }
        writeln!(f)?;
        for link in &self.figure_links {
            let name = Path::new(link)
                .file_stem()
                .map_or_else(|| link.clone(), |s| s.to_string_lossy().into_owned());
            writeln!(f, "![{name}]({link})")?;
        }
        writeln!(f)?;
        writeln!(f, "## Every head's report")?;
        writeln!(f)?;
        for row in &self.rows {
            writeln!(f, "```text\n{}```", row.report)?;
        }
        Ok(())
    }
}
