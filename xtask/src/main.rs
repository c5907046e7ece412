//! The project's tasks, run as `cargo xtask …` (`cargo xtask` or `cargo xtask --help` lists them).
//!
//! xtask itself stays small: model conversion lives in the release CLI (`moodscope models
//! install`), so that tract, egui and the rest compile once, in the one release configuration the
//! CLI and the plugin bundles share.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

const USAGE: &str = "\
cargo xtask <command>

Commands:
  install-models [--mirror DIR] [--dest DIR]
      Installs the model files into DIR (default: ./models): downloads them from their official
      homes (or copies them from --mirror DIR / $MOODSCOPE_MODEL_MIRROR), verifies each sha256,
      converts YAMNet and VGGish to ONNX, and copies the trained heads and calibration constants.
  install [--mirror DIR] [--dest DIR]
      Builds the plugin (release) and installs Moodscope.clap into ~/.clap, Moodscope.vst3 into
      ~/.vst3, and the models where the plugin looks (default: ~/.local/share/moodscope/models).
  bundle moodscope --release
      Builds the CLAP and VST3 bundles into target/bundled (nice-plug-xtask).
  help, --help, -h
      This list.
";

fn main() -> std::process::ExitCode {
    forget_xtask_package_env();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        None | Some("help" | "--help" | "-h") => {
            print!("{USAGE}");
            Ok(())
        }
        Some("install-models") => install_models(&args[1..]),
        Some("install") => install(&args[1..]),
        Some("bundle" | "bundle-universal") => bundle(&args),
        Some(other) => Err(anyhow::anyhow!("unknown command `{other}`\n\n{USAGE}")),
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

fn parse_model_options(command: &str, args: &[String]) -> Result<ModelOptions> {
    let mut options = ModelOptions {
        mirror: None,
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
                print!("{USAGE}");
                std::process::exit(0);
            }
            other => bail!("{command}: unknown option `{other}`\n\n{USAGE}"),
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

/// Cargo runs this program with the xtask package's own variables (`CARGO_MANIFEST_DIR=…/xtask`,
/// `CARGO_PKG_NAME=xtask`, …), which every cargo started from here (ours, and nice-plug-xtask's
/// bundler) would inherit. Some build scripts track them (ring's watches `CARGO_MANIFEST_DIR`), so
/// the release build made through `cargo xtask` and the one made by `cargo moodscope` would
/// each look stale to the other, and the first run would compile the CLI twice. Called first
/// thing in `main`, before any thread exists.
fn forget_xtask_package_env() {
    let package_vars: Vec<std::ffi::OsString> = std::env::vars_os()
        .map(|(name, _)| name)
        .filter(|name| {
            name.to_str().is_some_and(|n| {
                n.starts_with("CARGO_PKG_")
                    || matches!(
                        n,
                        "CARGO_MANIFEST_DIR"
                            | "CARGO_MANIFEST_PATH"
                            | "CARGO_MANIFEST_LINKS"
                            | "CARGO_CRATE_NAME"
                            | "CARGO_BIN_NAME"
                            | "CARGO_PRIMARY_PACKAGE"
                    )
            })
        })
        .collect();
    for name in package_vars {
        std::env::remove_var(name);
    }
}

fn cargo() -> Command {
    Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
}

/// Runs `command`, failing with its name when it fails.
fn run(mut command: Command, what: &str) -> Result<()> {
    let status = command
        .status()
        .with_context(|| format!("cannot start {what}"))?;
    if !status.success() {
        bail!("{what} failed ({status})");
    }
    Ok(())
}

/// `moodscope models install` from the release CLI (the build it shares with the plugin).
fn install_models_into(dest: &Path, mirror: Option<&Path>) -> Result<()> {
    let root = workspace_root()?;
    println!("building the release CLI (it converts the models) ...");
    let mut command = cargo();
    command.current_dir(&root).args([
        "run",
        "--quiet",
        "--release",
        "--features",
        "cli",
        "--bin",
        "moodscope",
        "--",
        "models",
        "install",
        "--artefacts",
    ]);
    command.arg(root.join("models")).arg("--dest").arg(dest);
    if let Some(mirror) = mirror {
        command.arg("--mirror").arg(mirror);
    }
    run(command, "moodscope models install")
}

fn install_models(args: &[String]) -> Result<()> {
    let options = parse_model_options("install-models", args)?;
    let root = workspace_root()?;
    let dest = options.dest.unwrap_or_else(|| root.join("models"));
    install_models_into(&dest, options.mirror.as_deref())
}

/// `cargo xtask bundle …`: nice-plug-xtask, built with the CLI's feature set so that its
/// dependencies are the ones the CLI build already compiled.
fn bundle(args: &[String]) -> Result<()> {
    let root = workspace_root()?;
    std::env::set_current_dir(&root)?;
    let mut args = args.to_vec();
    if !args
        .iter()
        .any(|a| a == "--features" || a.starts_with("--features="))
    {
        args.extend(["--features".into(), "cli".into()]);
    }
    nice_plug_xtask::main_with_args("xtask", args).map_err(|e| anyhow::anyhow!("{e}"))
}

/// Bundles the plugin and installs it, with its models, where Linux DAWs look.
fn install(args: &[String]) -> Result<()> {
    let options = parse_model_options("install", args)?;
    let root = workspace_root()?;
    println!("building the plugin bundles (release) ...");
    bundle(&["bundle".into(), "moodscope".into(), "--release".into()])?;
    let home = PathBuf::from(std::env::var_os("HOME").context("HOME is not set")?);
    let bundled = root.join("target/bundled");
    copy_into(&bundled.join("Moodscope.clap"), &home.join(".clap"))?;
    copy_into(&bundled.join("Moodscope.vst3"), &home.join(".vst3"))?;
    let dest = options.dest.unwrap_or_else(user_models_dir);
    install_models_into(&dest, options.mirror.as_deref())?;
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
