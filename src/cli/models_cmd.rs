//! `moodscope models install` (what `cargo xtask install-models` runs): official model files in
//! (downloaded, or copied from a mirror folder), verified by sha256; ONNX graphs for tract out
//! (converted by `moodscope-convert`), and the project's own small artefacts (trained heads,
//! calibration constants) copied beside them.
//!
//! A file already installed with the right hash is left alone; a wrong or truncated file is
//! refused with its expected and actual size and hash, and never replaces a good one.
//! The converter lives in the release CLI rather than in `xtask`, so that tract is compiled once,
//! in the configuration the CLI and the plugin already use.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};

use super::Outcome;

#[derive(Debug, Subcommand)]
pub enum ModelsCommand {
    /// Installs the model files, verifying their sha256, and converts them to ONNX.
    Install(InstallArgs),
}

#[derive(Debug, Args)]
pub struct InstallArgs {
    /// Copy the official files from this folder instead of downloading them (also
    /// $MOODSCOPE_MODEL_MIRROR).
    #[arg(long, value_name = "DIR", env = "MOODSCOPE_MODEL_MIRROR")]
    mirror: Option<PathBuf>,
    /// Install here (default: the folder `--models` names, else ./models).
    #[arg(long, value_name = "DIR")]
    dest: Option<PathBuf>,
    /// The project's own artefacts to copy beside the models: trained heads, calibration
    /// constants (default: ./models, the repository's committed ones).
    #[arg(long, value_name = "DIR", default_value = "models")]
    artefacts: PathBuf,
}

pub fn run(command: ModelsCommand, models: Option<&Path>) -> Outcome {
    match command {
        ModelsCommand::Install(args) => {
            let dest = args
                .dest
                .or_else(|| models.map(Path::to_owned))
                .unwrap_or_else(|| PathBuf::from("models"));
            match install(&dest, args.mirror.as_deref(), &args.artefacts) {
                Ok(()) => Outcome::Done,
                Err(e) => {
                    eprintln!("moodscope: {e:#}");
                    Outcome::Failed
                }
            }
        }
    }
}

/// One official model file.
struct ModelFile {
    name: &'static str,
    url: &'static str,
    bytes: u64,
    sha256: &'static str,
    /// Without it the install fails; without an optional file, its backbone is unavailable.
    required: bool,
}

const FILES: &[ModelFile] = &[
    ModelFile {
        name: "yamnet.tflite",
        url: "https://storage.googleapis.com/tfhub-lite-models/google/lite-model/yamnet/tflite/1.tflite",
        bytes: 3_963_312,
        sha256: "2d5e1e0577beb1fd3b6ba4cf89a7b8813340added8dae72f64fe8cd18731dd4a",
        required: true,
    },
    ModelFile {
        name: "yamnet_class_map.csv",
        url: "https://raw.githubusercontent.com/tensorflow/models/master/research/audioset/yamnet/yamnet_class_map.csv",
        bytes: 14_096,
        sha256: "cdf24d193e196d9e95912a2667051ae203e92a2ba09449218ccb40ef787c6df2",
        required: true,
    },
    ModelFile {
        name: "vggish_pca_params.npz",
        url: "https://storage.googleapis.com/audioset/vggish_pca_params.npz",
        bytes: 73_020,
        sha256: "4d878af3e306defbfb37095365aa7e5a6cecb86bad13e859e626151c4e6a8b9d",
        required: true,
    },
    ModelFile {
        name: "vggish_model.ckpt",
        url: "https://storage.googleapis.com/audioset/vggish_model.ckpt",
        bytes: moodscope_convert::VGGISH_OFFICIAL_BYTES,
        sha256: moodscope_convert::VGGISH_OFFICIAL_SHA256,
        required: false,
    },
];

/// The project's own artefacts, folders under the repository's `models/`, installed beside the
/// official files.
const ARTEFACT_FOLDERS: &[&str] = &["heads", "calibration"];

/// Installs every model file into `dest`, converts them, and copies the project's artefacts.
pub fn install(dest: &Path, mirror: Option<&Path>, artefacts: &Path) -> Result<()> {
    std::fs::create_dir_all(dest).with_context(|| format!("cannot create {}", dest.display()))?;
    match mirror {
        Some(m) => println!(
            "installing models into {} from the mirror {}",
            dest.display(),
            m.display()
        ),
        None => println!(
            "installing models into {} from their official homes",
            dest.display()
        ),
    }
    let mut unavailable = Vec::new();
    for file in FILES {
        match fetch(file, dest, mirror) {
            Ok(state) => println!("  {:<24} {state}", file.name),
            Err(e) if !file.required => {
                println!("  {:<24} not available: {e:#}", file.name);
                unavailable.push(file.name);
            }
            Err(e) => return Err(e.context(format!("{} could not be installed", file.name))),
        }
    }

    convert(
        dest,
        "yamnet.tflite",
        "yamnet.onnx",
        moodscope_convert::convert_yamnet,
    )?;
    if unavailable.contains(&"vggish_model.ckpt") {
        println!(
            "  VGGish backbone unavailable: put the official vggish_model.ckpt into {} (or the mirror) and \
             run this again. YAMNet works without it.",
            dest.display()
        );
    } else {
        convert(
            dest,
            "vggish_model.ckpt",
            "vggish.onnx",
            moodscope_convert::convert_vggish,
        )?;
    }

    for folder in ARTEFACT_FOLDERS {
        let source = artefacts.join(folder);
        let target = dest.join(folder);
        if !source.is_dir() || same_folder(&source, &target) {
            continue;
        }
        std::fs::create_dir_all(&target)?;
        for entry in std::fs::read_dir(&source)? {
            let path = entry?.path();
            if path.is_file() {
                std::fs::copy(&path, target.join(path.file_name().unwrap_or_default()))?;
            }
        }
        println!("  {folder:<24} copied to {}", target.display());
    }
    Ok(())
}

/// Puts `file` into `dest` with the right hash; says what it did.
fn fetch(file: &ModelFile, dest: &Path, mirror: Option<&Path>) -> Result<&'static str> {
    let target = dest.join(file.name);
    if target.is_file() && check(file, &target).is_ok() {
        return Ok("already installed, sha256 ok");
    }
    let partial = dest.join(format!("{}.part", file.name));
    let source = match mirror {
        Some(mirror) => mirror.join(file.name).display().to_string(),
        None => file.url.to_owned(),
    };
    let result = match mirror {
        Some(_) if !Path::new(&source).is_file() => {
            Err(anyhow::anyhow!("{source} is not in the mirror"))
        }
        Some(_) => copy_writable(Path::new(&source), &partial),
        None => download(file.url, &partial),
    }
    .and_then(|()| check(file, &partial).with_context(|| format!("{source} was refused")));
    if let Err(e) = result {
        let _ = std::fs::remove_file(&partial);
        return Err(e);
    }
    std::fs::rename(&partial, &target)?;
    Ok(if mirror.is_some() {
        "copied from the mirror, sha256 ok"
    } else {
        "downloaded, sha256 ok"
    })
}

/// Copies a mirror file; the copy is writable even where the mirror is read-only.
fn copy_writable(source: &Path, to: &Path) -> Result<()> {
    std::fs::copy(source, to).with_context(|| format!("copying {}", source.display()))?;
    let mut permissions = std::fs::metadata(to)?.permissions();
    #[allow(clippy::permissions_set_readonly_false)]
    permissions.set_readonly(false);
    std::fs::set_permissions(to, permissions)?;
    Ok(())
}

/// Refuses a file whose size or sha256 is not the official one.
fn check(file: &ModelFile, path: &Path) -> Result<()> {
    let bytes = std::fs::metadata(path)?.len();
    let sha256 = moodscope_convert::sha256_file(path)?;
    if sha256 == file.sha256 {
        return Ok(());
    }
    let what = if bytes < file.bytes {
        "truncated"
    } else {
        "not the official file"
    };
    bail!(
        "{} is {what}: {bytes} bytes with sha256 {sha256}, expected {} bytes with sha256 {}",
        file.name,
        file.bytes,
        file.sha256
    )
}

fn download(url: &str, to: &Path) -> Result<()> {
    let response = ureq::get(url)
        .call()
        .with_context(|| format!("downloading {url}"))?;
    let mut reader = response.into_body().into_reader();
    let mut out = std::fs::File::create(to)?;
    let mut buffer = vec![0u8; 1 << 16];
    loop {
        let n = reader
            .read(&mut buffer)
            .with_context(|| format!("downloading {url}"))?;
        if n == 0 {
            break;
        }
        out.write_all(&buffer[..n])?;
    }
    out.sync_all()?;
    Ok(())
}

type Converter =
    fn(
        &Path,
        &Path,
    ) -> Result<moodscope_convert::ConversionSummary, moodscope_convert::ConvertError>;

/// Converts `source` to `onnx`. Always redone (a second or so per model): an ONNX file made by
/// an older converter is never kept.
fn convert(dest: &Path, source: &str, onnx: &str, converter: Converter) -> Result<()> {
    let summary = converter(&dest.join(source), &dest.join(onnx))
        .with_context(|| format!("converting {source}"))?;
    println!(
        "  {onnx:<24} converted: {} nodes, {} parameters, {} int8 tensors dequantized, {} bytes",
        summary.nodes, summary.parameters, summary.dequantized_tensors, summary.onnx_bytes
    );
    Ok(())
}

fn same_folder(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}
