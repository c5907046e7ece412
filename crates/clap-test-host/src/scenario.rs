//! A run: load the plugin, set parameters, round-trip its state, activate and deactivate it a few
//! times ("flaps"), then activate, play the audio through and deactivate, once per rate asked
//! for; report everything as JSON.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

use crate::audio::{self, Audio, BlockPlan};
use crate::host::{
    compare_passthrough, Automation, Host, MidiOut, ParamDesc, Passthrough, Playback,
};
use crate::window_log::{self, WindowRow};

/// Where the test audio comes from.
#[derive(Clone, Debug)]
pub enum Source {
    File(PathBuf),
    Silence { rate: u32, seconds: f64 },
}

#[derive(Clone, Debug)]
pub struct Scenario {
    pub plugin: PathBuf,
    pub plugin_id: Option<String>,
    pub source: Source,
    /// Keep only the first seconds of the source.
    pub seconds: Option<f64>,
    /// Seconds of silence appended after the source.
    pub then_silence: f64,
    /// One activation per rate, in order (the audio is resampled to each).
    pub rates: Vec<u32>,
    pub channels: usize,
    pub blocks: BlockPlan,
    pub offline: bool,
    pub speed: Option<f64>,
    /// Overwrite stretches with NaN/Inf/denormals/noise starting at this second.
    pub faults_at: Option<f64>,
    /// Reset the plugin at this second of each pass (a transport jump).
    pub reset_at: Option<f64>,
    /// Parameters to set before activation: (name, text as the plugin writes it, e.g. "7.5 s").
    pub set: Vec<(String, String)>,
    /// Parameters to change during each pass: (second, name, text), sent with the block that holds
    /// that second.
    pub set_at: Vec<(f64, String, String)>,
    /// Save the state, load it into a fresh instance, and use that one.
    pub state_roundtrip: bool,
    /// The plugin's window log to read back (the caller sets `MOODSCOPE_WINDOW_LOG` to it).
    pub window_log: Option<PathBuf>,
    /// Activate/deactivate cycles before the passes, cycling through the rates, alternately
    /// with no processing at all and with a short burst of the audio.
    pub flaps: usize,
    /// Automate every automatable parameter during the passes (value events in `process()`).
    pub automate: bool,
    /// Seconds to stay started after each pass's last block, before stopping and deactivating.
    pub linger: f64,
    /// Seconds to wait between activating and starting to process, as a DAW does between
    /// loading a session and the user pressing play (the plugin's worker loads its models then).
    pub preroll: f64,
}

impl Scenario {
    /// A plain run of `source` through `plugin`: stereo, 44.1 kHz, 512-sample blocks.
    pub fn new(plugin: PathBuf, source: Source) -> Self {
        Self {
            plugin,
            plugin_id: None,
            source,
            seconds: None,
            then_silence: 0.0,
            rates: vec![44_100],
            channels: 2,
            blocks: BlockPlan::Fixed(512),
            offline: false,
            speed: None,
            faults_at: None,
            reset_at: None,
            set: Vec::new(),
            set_at: Vec::new(),
            state_roundtrip: false,
            window_log: None,
            flaps: 0,
            automate: false,
            linger: 0.0,
            preroll: 0.0,
        }
    }
}

#[derive(Debug, Serialize, Deserialize)]
pub struct Pass {
    pub rate: u32,
    pub frames: usize,
    pub blocks: usize,
    pub latency: Option<u32>,
    pub passthrough: Passthrough,
    pub max_process_micros: u128,
    /// The MIDI messages the plugin sent during the pass.
    #[serde(default)]
    pub midi: Vec<MidiOut>,
    /// `process()` calls that returned with the audio thread's floating-point modes changed.
    #[serde(default)]
    pub fp_control_changed: usize,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct StateReport {
    pub bytes: usize,
    /// Every parameter of the fresh instance equals the saved one after loading.
    pub params_restored: bool,
    /// The state the fresh instance saves is the one it loaded.
    pub resaved_identical: bool,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct Published {
    pub labels: Vec<String>,
    pub windows: usize,
    pub last: Option<WindowRow>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct Report {
    pub plugin_id: String,
    pub plugin_name: String,
    pub ports: (u32, u32),
    pub channels: usize,
    pub blocks: String,
    pub offline: bool,
    pub faults: Vec<(String, (usize, usize))>,
    pub params: Vec<ParamDesc>,
    pub state: Option<StateReport>,
    /// The short activations before the passes.
    pub flaps: Vec<Pass>,
    pub passes: Vec<Pass>,
    pub published: Option<Published>,
    /// The parameters after the passes (the mood read-outs mirror the last published mood).
    #[serde(default)]
    pub params_after: Vec<ParamDesc>,
}

pub fn run(s: &Scenario) -> Result<Report> {
    if s.rates.is_empty() {
        bail!("no rate to run at");
    }
    let mut host = Host::load(&s.plugin, s.plugin_id.as_deref())?;
    if !s.set.is_empty() {
        let mut values = Vec::new();
        for (name, text) in &s.set {
            let id = host.param_id(name)?;
            values.push((id, host.value_from_text(id, text)?));
        }
        host.set_params(&values)?;
    }
    // (second, parameter id, CLAP value) of the changes made during each pass.
    let mut changes_at = Vec::new();
    for (second, name, text) in &s.set_at {
        let id = host.param_id(name)?;
        changes_at.push((*second, id, host.value_from_text(id, text)?));
    }
    let mut state = None;
    if s.state_roundtrip {
        let saved = host.save_state()?;
        let before = host.params()?;
        let mut fresh = Host::load(&s.plugin, s.plugin_id.as_deref())?;
        fresh.load_state(&saved)?;
        let after = fresh.params()?;
        let resaved = fresh.save_state()?;
        state = Some(StateReport {
            bytes: saved.len(),
            params_restored: before == after,
            resaved_identical: resaved == saved,
        });
        drop(host);
        host = fresh;
    }
    if s.offline {
        host.set_offline(true)?;
    }
    host.select_layout(s.channels as u32)?;
    let params = host.params()?;
    let ports = host.main_port_channels()?;

    let mut source = match &s.source {
        Source::File(path) => audio::decode_prefix(path, s.seconds)?,
        Source::Silence { rate, seconds } => Audio::silence(*rate, s.channels, *seconds),
    };
    if let Some(seconds) = s.seconds {
        source.truncate_seconds(seconds);
    }
    let source = source.with_channels(s.channels);
    let mut faults = Vec::new();
    let mut flaps = Vec::new();
    for flap in 0..s.flaps {
        let rate = s.rates[flap % s.rates.len()];
        let processor = host.activate(rate, s.blocks.max_block())?;
        let latency = host.latency();
        if flap % 2 == 0 {
            host.deactivate(processor);
            host.idle();
            let nothing = Audio::silence(rate, s.channels, 0.0);
            flaps.push(Pass {
                rate,
                frames: 0,
                blocks: 0,
                latency,
                passthrough: compare_passthrough(&nothing, &nothing.channels),
                max_process_micros: 0,
                midi: Vec::new(),
                fp_control_changed: 0,
            });
            continue;
        }
        let mut burst = source.clone();
        burst.truncate_seconds(0.25);
        let burst = burst.resampled(rate)?;
        let (processor, processed) = host.process(processor, &burst, Playback::new(s.blocks))?;
        host.deactivate(processor);
        host.idle();
        flaps.push(Pass {
            rate,
            frames: burst.frames(),
            blocks: processed.blocks,
            latency,
            passthrough: compare_passthrough(&burst, &processed.output),
            max_process_micros: processed.max_process.as_micros(),
            midi: processed.midi,
            fp_control_changed: processed.fp_control_changed,
        });
    }
    let automation = if s.automate {
        Some(Automation::all_automatable(&params, 4))
    } else {
        None
    };
    let mut passes = Vec::new();
    for &rate in &s.rates {
        let mut input = source
            .clone()
            .resampled(rate)
            .with_context(|| format!("resampling to {rate} Hz"))?;
        if s.then_silence > 0.0 {
            input.append(&Audio::silence(rate, s.channels, s.then_silence))?;
        }
        if let Some(at) = s.faults_at {
            faults = audio::inject_faults(&mut input, at)
                .into_iter()
                .map(|(n, r)| (n, (r.start, r.end)))
                .collect();
        }
        let processor = host.activate(rate, s.blocks.max_block())?;
        let latency = host.latency();
        if s.preroll > 0.0 {
            std::thread::sleep(Duration::from_secs_f64(s.preroll));
            host.idle();
        }
        let playback = Playback {
            blocks: s.blocks,
            speed: s.speed,
            reset_at: s.reset_at.map(|t| (t * rate as f64) as usize),
            automation: automation.clone(),
            linger: Duration::from_secs_f64(s.linger),
            changes: changes_at
                .iter()
                .map(|&(second, id, value)| ((second * rate as f64) as usize, id, value))
                .collect(),
        };
        let (processor, processed) = host.process(processor, &input, playback)?;
        host.deactivate(processor);
        host.idle();
        passes.push(Pass {
            rate,
            frames: input.frames(),
            blocks: processed.blocks,
            latency,
            passthrough: compare_passthrough(&input, &processed.output),
            max_process_micros: processed.max_process.as_micros(),
            midi: processed.midi,
            fp_control_changed: processed.fp_control_changed,
        });
    }
    // The worker mirrors each published mood into the read-out parameters (it looks every few
    // milliseconds while idle).
    std::thread::sleep(Duration::from_millis(100));
    let params_after = host.params()?;
    let plugin_id = host.id.clone();
    let plugin_name = host.name.clone();
    // Destroying the instance stops its worker, which completes the window log.
    drop(host);
    let published = match &s.window_log {
        // No log: the analysis never ran (e.g. models missing); the test reading it decides.
        Some(path) if path.exists() => {
            let log = window_log::read(path)?;
            Some(Published {
                labels: log.labels,
                windows: log.rows.len(),
                last: log.rows.last().cloned(),
            })
        }
        _ => None,
    };
    Ok(Report {
        plugin_id,
        plugin_name,
        ports,
        channels: s.channels,
        blocks: s.blocks.to_string(),
        offline: s.offline,
        faults,
        params,
        state,
        flaps,
        passes,
        published,
        params_after,
    })
}
