//! `clap-test-host run --plugin target/bundled/Moodscope.clap --input music.ogg --rate 44100
//! --block 512|variable ...`: plays audio through a CLAP plugin and prints a JSON report.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use clap_test_host::audio::BlockPlan;
use clap_test_host::scenario::{self, Scenario, Source};

#[derive(Parser)]
#[command(
    version,
    about = "A small CLAP host that tests a plugin with real audio"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Play audio through the plugin and report passthrough, parameters, state and moods as JSON.
    Run(Box<RunArgs>),
    /// Open the plugin's editor in an X11 window while music plays, save a screenshot (PNG) and
    /// report what the host saw as JSON.
    Editor(EditorArgs),
}

#[derive(clap::Args)]
struct EditorArgs {
    /// The `.clap` bundle.
    #[arg(long)]
    plugin: PathBuf,
    /// Audio file to play while the editor is open (looped).
    #[arg(long)]
    input: PathBuf,
    /// Seconds to keep the editor open before the screenshot.
    #[arg(long, default_value_t = 6.0)]
    seconds: f64,
    /// Where to save the screenshot.
    #[arg(long)]
    screenshot: PathBuf,
    /// Resize the editor to WIDTHxHEIGHT (physical pixels) before showing it.
    #[arg(long, value_parser = parse_size)]
    resize: Option<(u32, u32)>,
    #[arg(long, default_value_t = 512)]
    block: usize,
}

fn parse_size(s: &str) -> Result<(u32, u32), String> {
    let (w, h) = s
        .split_once('x')
        .ok_or_else(|| format!("`{s}` is not WIDTHxHEIGHT"))?;
    Ok((
        w.parse().map_err(|e| format!("{e}"))?,
        h.parse().map_err(|e| format!("{e}"))?,
    ))
}

fn editor(args: EditorArgs) -> ExitCode {
    let run = || -> anyhow::Result<clap_test_host::gui::EditorReport> {
        let music = clap_test_host::audio::decode_prefix(&args.input, Some(30.0))?.with_channels(2);
        let mut host = clap_test_host::host::Host::load(&args.plugin, None)?;
        let session = clap_test_host::gui::EditorSession {
            seconds: args.seconds,
            resize_to: args.resize,
            block: args.block,
        };
        let mut report =
            clap_test_host::gui::editor_session(&mut host, &music, &session, &args.screenshot)?;
        let state = host.save_state()?;
        drop(host);
        let mut fresh = clap_test_host::host::Host::load(&args.plugin, None)?;
        fresh.load_state(&state)?;
        report.restored_size = Some(clap_test_host::gui::editor_size(&mut fresh)?);
        Ok(report)
    };
    match run().and_then(|report| Ok(serde_json::to_string_pretty(&report)?)) {
        Ok(json) => {
            println!("{json}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

#[derive(clap::Args)]
struct RunArgs {
    /// The `.clap` bundle.
    #[arg(long)]
    plugin: PathBuf,
    /// Plugin id inside the bundle (default: the first).
    #[arg(long)]
    plugin_id: Option<String>,
    /// Audio file to play (OGG, WAV, FLAC).
    #[arg(long, conflicts_with = "silence")]
    input: Option<PathBuf>,
    /// Play this many seconds of silence instead of a file.
    #[arg(long)]
    silence: Option<f64>,
    /// Play only the first seconds of the input.
    #[arg(long)]
    seconds: Option<f64>,
    /// Seconds of silence appended after the input.
    #[arg(long, default_value_t = 0.0)]
    then_silence: f64,
    /// Host sample rate; repeat for one activation per rate (the audio is resampled to each).
    #[arg(long = "rate", default_value = "44100")]
    rates: Vec<u32>,
    /// Channels: 1 (mono) or 2 (stereo).
    #[arg(long, default_value_t = 2)]
    channels: usize,
    /// Block size: a number, `variable` or `variable:MAX`.
    #[arg(long, default_value = "512")]
    block: BlockPlan,
    /// Render offline (CLAP render extension) instead of in real time.
    #[arg(long)]
    offline: bool,
    /// Deliver blocks at this many times real time (default: as fast as possible).
    #[arg(long)]
    speed: Option<f64>,
    /// Overwrite stretches with NaN, Inf, denormals and noise from this second on.
    #[arg(long)]
    faults_at: Option<f64>,
    /// Reset the plugin at this second of each pass.
    #[arg(long)]
    reset_at: Option<f64>,
    /// Set a parameter before activation: `NAME=TEXT`, the text as the plugin shows values
    /// (`Smoothing=7.5 s`, `Sensitivity=80 %`, `Window hop=0.96 s`); repeatable.
    #[arg(long = "set", value_parser = parse_assignment)]
    set: Vec<(String, String)>,
    /// Change a parameter during each pass: `SECONDS:NAME=TEXT` (`4:Bypass=On`); repeatable.
    #[arg(long = "set-at", value_parser = parse_timed_assignment)]
    set_at: Vec<(f64, String, String)>,
    /// Save the state, load it into a fresh instance and run that one.
    #[arg(long)]
    state_roundtrip: bool,
    /// Ask the plugin to log every window here (sets MOODSCOPE_WINDOW_LOG) and report them.
    #[arg(long)]
    window_log: Option<PathBuf>,
    /// Activate and deactivate this many times before the passes (half of them with a short
    /// burst of audio), cycling through the rates.
    #[arg(long, default_value_t = 0)]
    flaps: usize,
    /// Automate every automatable parameter during the passes.
    #[arg(long)]
    automate: bool,
    /// Seconds to stay started after each pass's last block (lets the worker catch up).
    #[arg(long, default_value_t = 0.0)]
    linger: f64,
    /// Seconds to wait between each activation and the first block (the worker loads models).
    #[arg(long, default_value_t = 0.0)]
    preroll: f64,
}

fn parse_assignment(s: &str) -> Result<(String, String), String> {
    let (name, value) = s
        .split_once('=')
        .ok_or_else(|| format!("`{s}` is not NAME=TEXT"))?;
    Ok((name.to_owned(), value.to_owned()))
}

fn parse_timed_assignment(s: &str) -> Result<(f64, String, String), String> {
    let (seconds, assignment) = s
        .split_once(':')
        .ok_or_else(|| format!("`{s}` is not SECONDS:NAME=TEXT"))?;
    let seconds = seconds
        .parse()
        .map_err(|e| format!("`{seconds}` is not a number of seconds: {e}"))?;
    let (name, value) = parse_assignment(assignment)?;
    Ok((seconds, name, value))
}

fn main() -> ExitCode {
    let args = match Cli::parse().command {
        Command::Run(args) => *args,
        Command::Editor(args) => return editor(args),
    };
    if let Some(path) = &args.window_log {
        // Before the plugin is loaded and before any thread exists.
        std::env::set_var("MOODSCOPE_WINDOW_LOG", path);
    }
    let source = match (&args.input, args.silence) {
        (Some(path), _) => Source::File(path.clone()),
        (None, Some(seconds)) => Source::Silence {
            rate: args.rates[0],
            seconds,
        },
        (None, None) => {
            eprintln!("error: give --input FILE or --silence SECONDS");
            return ExitCode::from(2);
        }
    };
    let scenario = Scenario {
        plugin: args.plugin,
        plugin_id: args.plugin_id,
        source,
        seconds: args.seconds,
        then_silence: args.then_silence,
        rates: args.rates,
        channels: args.channels,
        blocks: args.block,
        offline: args.offline,
        speed: args.speed,
        faults_at: args.faults_at,
        reset_at: args.reset_at,
        set: args.set,
        set_at: args.set_at,
        state_roundtrip: args.state_roundtrip,
        window_log: args.window_log,
        flaps: args.flaps,
        automate: args.automate,
        linger: args.linger,
        preroll: args.preroll,
    };
    match scenario::run(&scenario) {
        Ok(report) => match serde_json::to_string_pretty(&report) {
            Ok(json) => {
                println!("{json}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::FAILURE
            }
        },
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
