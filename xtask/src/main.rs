//! The project's tasks, run as `cargo xtask …`:
//!
//! - `install-models [--mirror DIR] [--dest DIR]`: fetches the official model files (or copies
//!   them from a mirror folder), verifies each one's sha256, and converts YAMNet (and VGGish,
//!   when its checkpoint is at hand) to ONNX for tract. See `models.rs`.
//! - `install [--mirror DIR]`: bundles the plugin (release), copies the CLAP and VST3 bundles to
//!   `~/.clap` and `~/.vst3`, and installs the models where the plugin looks for them.
//! - anything else, e.g. `bundle moodscope --release`: nice-plug-xtask.

mod models;

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("install-models") => install_models(&args[1..]),
        Some("install") => install(&args[1..]),
        _ => nice_plug_xtask::main().map_err(|e| anyhow::anyhow!("{e}")),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Options shared by `install-models` and `install`.
struct ModelOptions {
    mirror: Option<PathBuf>,
    dest: Option<PathBuf>,
}

fn parse_model_options(args: &[String]) -> Result<ModelOptions> {
    let mut options = ModelOptions {
        mirror: std::env::var_os("MOODSCOPE_MODEL_MIRROR").map(PathBuf::from),
        dest: None,
    };
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        let mut value = |name: &str| {
            args.next()
                .map(PathBuf::from)
                .with_context(|| format!("{name} needs a folder"))
        };
        match arg.as_str() {
            "--mirror" => options.mirror = Some(value("--mirror")?),
            "--dest" => options.dest = Some(value("--dest")?),
            "-h" | "--help" => {
                println!(
                    "cargo xtask install-models [--mirror DIR] [--dest DIR]\n\n\
                     Installs YAMNet and VGGish model files into DIR (default: ./models), verifying their\n\
                     sha256, and converts them to ONNX. --mirror (or MOODSCOPE_MODEL_MIRROR) copies the\n\
                     files from a local folder instead of downloading them from their official homes."
                );
                std::process::exit(0);
            }
            other => bail!("unknown option `{other}` (see --help)"),
        }
    }
    Ok(options)
}

fn workspace_root() -> Result<PathBuf> {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    Ok(manifest
        .parent()
        .context("xtask has no parent folder")?
        .to_path_buf())
}

fn install_models(args: &[String]) -> Result<()> {
    let options = parse_model_options(args)?;
    let root = workspace_root()?;
    let dest = options.dest.unwrap_or_else(|| root.join("models"));
    models::install(&dest, options.mirror.as_deref(), &root.join("models/heads"))
}

/// Bundles the plugin and installs it, with its models, where Linux DAWs look.
fn install(args: &[String]) -> Result<()> {
    let options = parse_model_options(args)?;
    let root = workspace_root()?;
    std::env::set_current_dir(&root)?;
    nice_plug_xtask::main_with_args(
        "xtask",
        ["bundle".into(), "moodscope".into(), "--release".into()],
    )
    .map_err(|e| anyhow::anyhow!("bundling failed: {e}"))?;
    let home = PathBuf::from(std::env::var_os("HOME").context("HOME is not set")?);
    let bundled = root.join("target/bundled");
    copy_into(&bundled.join("Moodscope.clap"), &home.join(".clap"))?;
    copy_into(&bundled.join("Moodscope.vst3"), &home.join(".vst3"))?;
    let dest = options.dest.unwrap_or_else(user_models_dir);
    models::install(&dest, options.mirror.as_deref(), &root.join("models/heads"))?;
    println!(
        "installed: {}, {}, models in {}",
        home.join(".clap/Moodscope.clap").display(),
        home.join(".vst3/Moodscope.vst3").display(),
        dest.display()
    );
    Ok(())
}

/// Where the plugin reads its models (the same rule as `moodscope::models::user_models_dir`).
fn user_models_dir() -> PathBuf {
    let data = std::env::var_os("XDG_DATA_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/share")))
        .unwrap_or_else(|| PathBuf::from("."));
    data.join("moodscope").join("models")
}

/// Copies a file or a bundle folder into `folder`, replacing what was there.
fn copy_into(source: &Path, folder: &Path) -> Result<()> {
    if !source.exists() {
        bail!("{} was not built", source.display());
    }
    std::fs::create_dir_all(folder)?;
    let target = folder.join(source.file_name().context("no file name")?);
    if target.is_dir() {
        std::fs::remove_dir_all(&target)?;
    }
    copy_tree(source, &target)
}

fn copy_tree(source: &Path, target: &Path) -> Result<()> {
    if source.is_dir() {
        std::fs::create_dir_all(target)?;
        for entry in std::fs::read_dir(source)? {
            let entry = entry?;
            copy_tree(&entry.path(), &target.join(entry.file_name()))?;
        }
    } else {
        std::fs::copy(source, target).with_context(|| format!("copying {}", source.display()))?;
    }
    Ok(())
}
