//! `moodscope features FILE --out F.npy`: an audio file in, its log-mel patches out as a float32
//! array [patches, 96, 64], so the front end can be compared with any other implementation.

use std::path::PathBuf;

use clap::Args;
use tract_onnx::prelude::tract_ndarray::Array3;

use super::{hop_frames, parse_backbone, report_error, Outcome};
use crate::backbone::BackboneKind;
use crate::decode;
use crate::features::{FrontEnd, FrontEndConfig, MEL_BANDS, PATCH_FRAMES};

#[derive(Debug, Args)]
pub struct FeaturesArgs {
    /// Audio file (WAV, AIFF, FLAC, MP3, Ogg Vorbis/Opus, MP4/M4A AAC/ALAC, WebM/Matroska).
    #[arg(value_name = "FILE")]
    file: PathBuf,
    /// Where to write the .npy array.
    #[arg(long, value_name = "F.npy")]
    out: PathBuf,
    /// Whose front end: yamnet (log offset 0.001) or vggish (0.01).
    #[arg(long, default_value = "yamnet", value_parser = parse_backbone)]
    backbone: BackboneKind,
    /// Seconds between patch starts (default: 0.48 for YAMNet, 0.96 for VGGish).
    #[arg(long, value_name = "SECONDS")]
    hop: Option<f64>,
}

pub fn run(args: FeaturesArgs) -> Outcome {
    let hop = match args.hop.map(hop_frames).transpose() {
        Ok(hop) => hop.unwrap_or_else(|| args.backbone.default_hop_frames()),
        Err(e) => {
            eprintln!("moodscope: {e}");
            return Outcome::Failed;
        }
    };
    let (samples, rate) = match decode::read_mono_file(&args.file) {
        Ok(decoded) => decoded,
        Err(e) => {
            report_error(&args.file, e);
            return Outcome::Failed;
        }
    };
    let config = FrontEndConfig {
        input_rate: rate,
        log_offset: args.backbone.log_offset(),
        patch_hop_frames: hop,
    };
    let mut front_end = match FrontEnd::new(config) {
        Ok(f) => f,
        Err(e) => {
            report_error(&args.file, e);
            return Outcome::Failed;
        }
    };
    let mut patches = Vec::new();
    front_end.push(&samples, &mut patches);
    front_end.finish(&mut patches);
    if patches.is_empty() {
        report_error(&args.file, "is shorter than one patch (0.975 s)");
        return Outcome::Failed;
    }
    let data: Vec<f32> = patches
        .iter()
        .flat_map(|p| p.data.iter().copied())
        .collect();
    let array = match Array3::from_shape_vec((patches.len(), PATCH_FRAMES, MEL_BANDS), data) {
        Ok(a) => a,
        Err(e) => {
            report_error(&args.file, e);
            return Outcome::Failed;
        }
    };
    if let Err(e) = ndarray_npy::write_npy(&args.out, &array) {
        report_error(&args.out, format!("cannot write: {e}"));
        return Outcome::Failed;
    }
    eprintln!(
        "{}: {} patches of {PATCH_FRAMES}x{MEL_BANDS} -> {}",
        args.file.display(),
        patches.len(),
        args.out.display()
    );
    Outcome::Done
}
