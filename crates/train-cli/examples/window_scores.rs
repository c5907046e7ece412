//! Every window of some audio files as the default readout sees it, for exploring calibrations
//! outside the Rust code (`scripts/probes/arousal_offsets.py` reads it).
//!
//! ```sh
//! cargo run --release -p moodscope-train-cli --example window_scores -- FILE... > windows.csv
//! ```
//!
//! In: audio files, and YAMNet from `$MOODSCOPE_MODELS` or `models/`. Out: CSV on stdout, one row
//! per window (0.96 s, hop 0.48 s), no header: the file's path, the calibrated readout's ten
//! inputs (`Calibration::input_names`: YAMNet's six mood logits, then flux, brightness and the
//! two key cues), YAMNet's Music score, then all 521 of YAMNet's scores in class-map order. The
//! windows come from the product's own decoder, front end, YAMNet and cues.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use moodscope::backbone::{self, BackboneKind};
use moodscope::decode::read_mono_file;
use moodscope::engine;
use moodscope::features::{FrontEnd, FrontEndConfig, YAMNET_LOG_OFFSET};
use moodscope::head::{Calibration, YAMNET_MUSIC_ROW};
use moodscope::models::ModelDir;

fn main() -> Result<()> {
    let models =
        std::env::var_os("MOODSCOPE_MODELS").map_or_else(|| "models".into(), PathBuf::from);
    let yamnet = backbone::load(BackboneKind::Yamnet, &ModelDir::new(&models))?;
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    for file in std::env::args().skip(1) {
        let (samples, rate) =
            read_mono_file(Path::new(&file)).with_context(|| format!("reading {file}"))?;
        let mut front_end = FrontEnd::new(FrontEndConfig {
            input_rate: rate,
            log_offset: YAMNET_LOG_OFFSET,
            patch_hop_frames: BackboneKind::Yamnet.default_hop_frames(),
        })?;
        let mut patches = Vec::new();
        front_end.push(&samples, &mut patches);
        front_end.finish(&mut patches);
        for patch in &patches {
            let window = yamnet.embed(&patch.data)?;
            let scores = window.scores.as_deref().context("YAMNet gave no scores")?;
            let inputs =
                Calibration::inputs_of(scores, &engine::window_cues(patch, YAMNET_LOG_OFFSET))?;
            let row: Vec<String> = inputs
                .iter()
                .chain([&scores[YAMNET_MUSIC_ROW]])
                .chain(scores)
                .map(f32::to_string)
                .collect();
            std::io::Write::write_fmt(&mut out, format_args!("{file},{}\n", row.join(",")))?;
        }
    }
    Ok(())
}
