//! The host: loads a `.clap`, instantiates a plugin, and drives it the way a DAW does.
//!
//! In: a bundle path, audio, a block plan, parameter changes. Out: the processed audio, the
//! plugin's parameters (id, name, range, value, text, flags), its saved state, its reported
//! latency, and whether `process()` left the audio thread's floating-point modes (x86-64 MXCSR,
//! AArch64 FPCR) as the host had them. Processing runs on a separate audio thread, as in a real
//! host; everything else on the thread that owns the `Host` (the "main thread").

use std::ffi::CString;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use clack_extensions::audio_ports::{AudioPortInfoBuffer, PluginAudioPorts};
use clack_extensions::audio_ports_config::{AudioPortsConfigBuffer, PluginAudioPortsConfig};
use clack_extensions::gui::HostGui;
use clack_extensions::latency::PluginLatency;
use clack_extensions::params::{ParamInfoBuffer, PluginParams};
use clack_extensions::render::{PluginRender, RenderMode};
use clack_extensions::state::PluginState;
use clack_host::events::event_types::{MidiEvent, ParamValueEvent};
use clack_host::prelude::*;
use serde::{Deserialize, Serialize};

use crate::audio::{Audio, BlockPlan};

/// What the host asks of the plugin's threads.
#[derive(Default)]
pub struct Shared {
    callback_requested: AtomicBool,
    restart_requested: AtomicBool,
    /// What the plugin's editor asked of the host window (`gui`).
    pub(crate) gui: crate::gui::GuiRequests,
}

impl SharedHandler<'_> for Shared {
    fn request_restart(&self) {
        self.restart_requested.store(true, Ordering::SeqCst);
    }
    fn request_process(&self) {}
    fn request_callback(&self) {
        self.callback_requested.store(true, Ordering::SeqCst);
    }
}

pub struct MainThread;
impl MainThreadHandler<'_> for MainThread {}

/// The host's handler types. The only host-side extension is `gui` (nice-plug needs it to open
/// an editor); for everything else the plugin must cope without.
pub struct TestHost;
impl HostHandlers for TestHost {
    type Shared<'a> = Shared;
    type MainThread<'a> = MainThread;
    type AudioProcessor<'a> = ();

    fn declare_extensions(builder: &mut HostExtensions<Self>, _shared: &Self::Shared<'_>) {
        builder.register::<HostGui>();
    }
}

/// One parameter as the host sees it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ParamDesc {
    pub id: u32,
    pub name: String,
    pub min: f64,
    pub max: f64,
    pub default: f64,
    pub value: f64,
    /// The plugin's own text for the current value (with its unit).
    pub text: String,
    /// The plugin's text for the minimum and the maximum (CLAP values may be normalized, as
    /// nice-plug does for continuous parameters: the text says what they mean).
    pub min_text: String,
    pub max_text: String,
    pub stepped: bool,
    pub automatable: bool,
    /// `CLAP_PARAM_IS_BYPASS`: the host's bypass.
    #[serde(default)]
    pub bypass: bool,
    /// `CLAP_PARAM_IS_READONLY`.
    #[serde(default)]
    pub readonly: bool,
    /// `CLAP_PARAM_IS_HIDDEN`.
    #[serde(default)]
    pub hidden: bool,
}

/// How one stream is played through the plugin.
#[derive(Clone, Debug)]
pub struct Playback {
    pub blocks: BlockPlan,
    /// `Some(x)`: deliver blocks at x times real time (the audio thread sleeps between them, as
    /// a sound card paces a DAW); `None`: as fast as the plugin goes.
    pub speed: Option<f64>,
    /// Call the plugin's `reset()` at this frame (a transport jump).
    pub reset_at: Option<usize>,
    /// Host automation sent with the audio (parameter value events inside `process()`).
    pub automation: Option<Automation>,
    /// Keep the plugin started (processing, not yet stopped) this long after the last block,
    /// as a host does while the transport winds down; lets a worker catch up.
    pub linger: Duration,
    /// Parameter changes (frame, parameter id, CLAP value), sent with the block that holds the
    /// frame, at its first sample (as a host without sample-accurate automation does).
    pub changes: Vec<(usize, u32, f64)>,
}

impl Playback {
    pub fn new(blocks: BlockPlan) -> Self {
        Self {
            blocks,
            speed: None,
            reset_at: None,
            automation: None,
            linger: Duration::ZERO,
            changes: Vec::new(),
        }
    }
}

/// Parameter automation: every `every_blocks` blocks, one value event per parameter at the
/// block's first sample, sweeping each parameter between its minimum and maximum.
#[derive(Clone, Debug)]
pub struct Automation {
    /// (parameter id, minimum, maximum), plain values.
    pub params: Vec<(u32, f64, f64)>,
    pub every_blocks: usize,
}

impl Automation {
    /// Automates every automatable parameter of `params`.
    pub fn all_automatable(params: &[ParamDesc], every_blocks: usize) -> Self {
        let params = params
            .iter()
            .filter(|p| p.automatable)
            .map(|p| (p.id, p.min, p.max))
            .collect();
        Self {
            params,
            every_blocks: every_blocks.max(1),
        }
    }

    /// The value of parameter `(min, max)` at automation step `step`: a triangle sweep.
    fn value(step: usize, min: f64, max: f64) -> f64 {
        let phase = (step % 16) as f64 / 8.0;
        let t = if phase <= 1.0 { phase } else { 2.0 - phase };
        min + (max - min) * t
    }
}

/// What a plugin did with one stream.
#[derive(Debug)]
pub struct Processed {
    pub output: Vec<Vec<f32>>,
    pub blocks: usize,
    /// Longest single `process()` call.
    pub max_process: Duration,
    /// The MIDI messages the plugin sent (CLAP output events), in order.
    pub midi: Vec<MidiOut>,
    /// `process()` calls after which the audio thread's floating-point control word (MXCSR /
    /// FPCR) was not what the host had set before the call.
    pub fp_control_changed: usize,
}

/// The calling thread's floating-point control word: MXCSR on x86-64, FPCR on AArch64, 0
/// elsewhere.
pub fn fp_control() -> u64 {
    #[cfg(target_arch = "x86_64")]
    {
        let mut mxcsr: u32 = 0;
        // SAFETY: stores MXCSR into a local.
        unsafe { std::arch::asm!("stmxcsr [{}]", in(reg) &mut mxcsr, options(nostack)) };
        mxcsr as u64
    }
    #[cfg(target_arch = "aarch64")]
    {
        let fpcr: u64;
        // SAFETY: reads FPCR.
        unsafe { std::arch::asm!("mrs {}, fpcr", out(reg) fpcr, options(nomem, nostack)) };
        fpcr
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    {
        0
    }
}

/// One MIDI message from the plugin's output events.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MidiOut {
    /// Index of the block it came with.
    pub block: usize,
    /// Frame of the stream where that block starts (since the pass began).
    pub block_start: usize,
    pub block_len: usize,
    /// Sample offset inside the block (the event's `time`).
    pub time: u32,
    pub port: u16,
    /// Status, data 1, data 2 (for a CC: 0xB0 | channel, CC number, value).
    pub data: [u8; 3],
}

/// A loaded plugin instance.
pub struct Host {
    // Field order matters: the instance must go before the entry (library) it came from.
    instance: PluginInstance<TestHost>,
    entry: PluginEntry,
    pub id: String,
    pub name: String,
    params: Option<PluginParams>,
    state: Option<PluginState>,
    render: Option<PluginRender>,
    audio_ports: Option<PluginAudioPorts>,
    audio_ports_config: Option<PluginAudioPortsConfig>,
    latency: Option<PluginLatency>,
}

impl Host {
    /// Loads the bundle and instantiates its first plugin (or the one with `plugin_id`).
    pub fn load(bundle: &Path, plugin_id: Option<&str>) -> Result<Self> {
        if !bundle.exists() {
            bail!(
                "no plugin bundle at {} (build it with `cargo xtask bundle moodscope --release`)",
                bundle.display()
            );
        }
        // SAFETY: loading a plugin runs its code; this is what a host is for. The bundle is ours.
        let entry = unsafe { PluginEntry::load(bundle) }
            .with_context(|| format!("loading {}", bundle.display()))?;
        let factory = entry
            .get_plugin_factory()
            .ok_or_else(|| anyhow!("{} has no plugin factory", bundle.display()))?;
        let (id, name) = factory
            .plugin_descriptors()
            .filter_map(|d| {
                let id = d.id()?.to_str().ok()?.to_owned();
                let name = d
                    .name()
                    .and_then(|n| n.to_str().ok())
                    .unwrap_or("")
                    .to_owned();
                Some((id, name))
            })
            .find(|(id, _)| plugin_id.is_none_or(|want| want == id))
            .ok_or_else(|| {
                anyhow!(
                    "{} has no plugin {}",
                    bundle.display(),
                    plugin_id.unwrap_or("at all")
                )
            })?;
        let host_info = HostInfo::new(
            "clap-test-host",
            "Moodscope",
            "https://example.invalid",
            "0.1.0",
        )
        .map_err(|e| anyhow!("host info: {e:?}"))?;
        let c_id = CString::new(id.clone())?;
        let instance = PluginInstance::<TestHost>::new(
            |_| Shared::default(),
            |_| MainThread,
            &entry,
            &c_id,
            &host_info,
        )
        .map_err(|e| anyhow!("instantiating {id}: {e}"))?;
        let handle = instance.plugin_shared_handle();
        let params = handle.get_extension();
        let state = handle.get_extension();
        let render = handle.get_extension();
        let audio_ports = handle.get_extension();
        let audio_ports_config = handle.get_extension();
        let latency = handle.get_extension();
        Ok(Self {
            instance,
            entry,
            id,
            name,
            params,
            state,
            render,
            audio_ports,
            audio_ports_config,
            latency,
        })
    }

    pub fn entry(&self) -> &PluginEntry {
        &self.entry
    }

    /// The plugin instance, for what this module does not wrap (the editor: `gui.rs`).
    pub fn instance(&mut self) -> &mut PluginInstance<TestHost> {
        &mut self.instance
    }

    /// Runs main-thread callbacks the plugin asked for.
    pub fn idle(&mut self) {
        let requested = self
            .instance
            .access_shared_handler(|s| s.callback_requested.swap(false, Ordering::SeqCst));
        if requested {
            self.instance.call_on_main_thread_callback();
        }
    }

    /// Whether the plugin asked to be restarted (deactivated and activated again).
    pub fn take_restart_request(&mut self) -> bool {
        self.instance
            .access_shared_handler(|s| s.restart_requested.swap(false, Ordering::SeqCst))
    }

    /// The plugin's parameters, with current values and their text.
    pub fn params(&mut self) -> Result<Vec<ParamDesc>> {
        let ext = self
            .params
            .ok_or_else(|| anyhow!("the plugin has no params extension"))?;
        let handle = self.instance.plugin_handle();
        let mut out = Vec::new();
        for index in 0..ext.count(&handle) {
            let mut buffer = ParamInfoBuffer::new();
            let info = ext
                .get_info(&handle, index, &mut buffer)
                .ok_or_else(|| anyhow!("no info for parameter {index}"))?;
            let id = info.id;
            let name = String::from_utf8_lossy(info.name).into_owned();
            let flags = info.flags;
            use clack_extensions::params::ParamInfoFlags;
            let (min, max, default) = (info.min_value, info.max_value, info.default_value);
            let value = ext
                .get_value(&handle, id)
                .ok_or_else(|| anyhow!("no value for parameter {name}"))?;
            let text_of = |v: f64| {
                let mut buffer = [0u8; 256];
                ext.value_to_text(&handle, id, v, &mut buffer)
                    .map(|t| String::from_utf8_lossy(t).into_owned())
                    .unwrap_or_default()
            };
            let text = text_of(value);
            let min_text = text_of(min);
            let max_text = text_of(max);
            out.push(ParamDesc {
                id: id.get(),
                name,
                min,
                max,
                default,
                value,
                text,
                min_text,
                max_text,
                stepped: flags.contains(ParamInfoFlags::IS_STEPPED),
                automatable: flags.contains(ParamInfoFlags::IS_AUTOMATABLE),
                bypass: flags.contains(ParamInfoFlags::IS_BYPASS),
                readonly: flags.contains(ParamInfoFlags::IS_READONLY),
                hidden: flags.contains(ParamInfoFlags::IS_HIDDEN),
            });
        }
        Ok(out)
    }

    /// Sets parameters (plain values) while the plugin is inactive, through `flush`.
    pub fn set_params(&mut self, values: &[(u32, f64)]) -> Result<()> {
        let ext = self
            .params
            .ok_or_else(|| anyhow!("the plugin has no params extension"))?;
        let mut events = EventBuffer::new();
        for &(id, value) in values {
            events.push(&ParamValueEvent::new(
                0,
                ClapId::new(id),
                Pckn::match_all(),
                value,
            ));
        }
        let mut output = EventBuffer::new();
        let mut handle = self
            .instance
            .inactive_plugin_handle()
            .ok_or_else(|| anyhow!("parameters are set here only while the plugin is inactive"))?;
        ext.flush(&mut handle, &events.as_input(), &mut output.as_output());
        Ok(())
    }

    /// The CLAP value the plugin gives a text (`"7.5 s"`, `"80 %"`, `"0.96 s"`) for a parameter.
    pub fn value_from_text(&mut self, id: u32, text: &str) -> Result<f64> {
        let ext = self
            .params
            .ok_or_else(|| anyhow!("the plugin has no params extension"))?;
        let c_text = CString::new(text)?;
        ext.text_to_value(&self.instance.plugin_handle(), ClapId::new(id), &c_text)
            .ok_or_else(|| anyhow!("the plugin does not understand `{text}` for parameter {id}"))
    }

    /// The plugin's id for a parameter name.
    pub fn param_id(&mut self, name: &str) -> Result<u32> {
        self.params()?
            .into_iter()
            .find(|p| p.name == name)
            .map(|p| p.id)
            .ok_or_else(|| anyhow!("no parameter named {name}"))
    }

    pub fn save_state(&mut self) -> Result<Vec<u8>> {
        let ext = self
            .state
            .ok_or_else(|| anyhow!("the plugin has no state extension"))?;
        let mut bytes = Vec::new();
        ext.save(&self.instance.plugin_handle(), &mut bytes)
            .map_err(|e| anyhow!("{e}"))?;
        Ok(bytes)
    }

    pub fn load_state(&mut self, bytes: &[u8]) -> Result<()> {
        let ext = self
            .state
            .ok_or_else(|| anyhow!("the plugin has no state extension"))?;
        ext.load(&self.instance.plugin_handle(), &mut &bytes[..])
            .map_err(|e| anyhow!("{e}"))
    }

    /// Switches between real-time and offline rendering (before activation, as hosts do).
    pub fn set_offline(&mut self, offline: bool) -> Result<()> {
        let ext = self
            .render
            .ok_or_else(|| anyhow!("the plugin has no render extension"))?;
        let mode = if offline {
            RenderMode::Offline
        } else {
            RenderMode::Realtime
        };
        ext.set(&self.instance.plugin_handle(), mode)
            .map_err(|e| anyhow!("{e}"))
    }

    /// Selects the plugin's port configuration with `channels` channels on its main input and
    /// output (audio-ports-config), as a host does for a mono or a stereo track. Inactive only.
    pub fn select_layout(&mut self, channels: u32) -> Result<()> {
        if self.main_port_channels()? == (channels, channels) {
            return Ok(());
        }
        let ext = self
            .audio_ports_config
            .ok_or_else(|| anyhow!("the plugin has no audio-ports-config extension"))?;
        let handle = self.instance.plugin_handle();
        let mut found = None;
        for index in 0..ext.count(&handle) {
            let mut buffer = AudioPortsConfigBuffer::new();
            if let Some(config) = ext.get(&handle, index, &mut buffer) {
                let input = config.main_input.as_ref().map(|p| p.channel_count);
                let output = config.main_output.as_ref().map(|p| p.channel_count);
                if input == Some(channels) && output == Some(channels) {
                    found = Some(config.id);
                    break;
                }
            }
        }
        let id = found
            .ok_or_else(|| anyhow!("the plugin offers no {channels}-channel port configuration"))?;
        ext.select(&handle, id)
            .map_err(|e| anyhow!("selecting the {channels}-channel configuration: {e:?}"))?;
        let now = self.main_port_channels()?;
        if now != (channels, channels) {
            bail!("after selecting the {channels}-channel configuration the ports have {now:?} channels");
        }
        Ok(())
    }

    /// Channel counts of the plugin's main input and output ports.
    pub fn main_port_channels(&mut self) -> Result<(u32, u32)> {
        let ext = self
            .audio_ports
            .ok_or_else(|| anyhow!("the plugin has no audio-ports extension"))?;
        let handle = self.instance.plugin_handle();
        let mut channels = [0u32; 2];
        for (slot, is_input) in channels.iter_mut().zip([true, false]) {
            let mut buffer = AudioPortInfoBuffer::new();
            if ext.count(&handle, is_input) > 0 {
                if let Some(info) = ext.get(&handle, 0, is_input, &mut buffer) {
                    *slot = info.channel_count;
                }
            }
        }
        Ok((channels[0], channels[1]))
    }

    /// The latency the plugin reports, in samples (valid once activated).
    pub fn latency(&mut self) -> Option<u32> {
        let ext = self.latency?;
        Some(ext.get(&self.instance.plugin_handle()))
    }

    /// Activates at `rate` for blocks up to `max_block`; returns the audio processor.
    pub fn activate(
        &mut self,
        rate: u32,
        max_block: usize,
    ) -> Result<StoppedPluginAudioProcessor<TestHost>> {
        let config = PluginAudioConfiguration {
            sample_rate: rate as f64,
            min_frames_count: 1,
            max_frames_count: u32::try_from(max_block)?,
        };
        self.instance
            .activate(|_, _| (), config)
            .map_err(|e| anyhow!("activating at {rate} Hz: {e}"))
    }

    pub fn deactivate(&mut self, processor: StoppedPluginAudioProcessor<TestHost>) {
        self.instance.deactivate(processor);
    }

    /// Plays `input` through an activated plugin on a separate audio thread; returns the output.
    pub fn process(
        &mut self,
        processor: StoppedPluginAudioProcessor<TestHost>,
        input: &Audio,
        playback: Playback,
    ) -> Result<(StoppedPluginAudioProcessor<TestHost>, Processed)> {
        let channels = input.channels.len();
        let frames = input.frames();
        let sizes = playback.blocks.sizes(frames);
        let max_block = playback.blocks.max_block();
        let playback = &playback;
        let rate = input.rate as f64;
        let (processor, result) = std::thread::scope(|scope| {
            scope
                .spawn(
                    move || -> (StoppedPluginAudioProcessor<TestHost>, Result<Processed>) {
                        let mut started = match processor.start_processing() {
                            Ok(started) => started,
                            Err(e) => {
                                let message = format!("{e}");
                                return (
                                    e.into_stopped_processor(),
                                    Err(anyhow!("start_processing: {message}")),
                                );
                            }
                        };
                        let mut output = vec![vec![0.0f32; frames]; channels];
                        let mut in_block = vec![vec![0.0f32; max_block]; channels];
                        let mut out_block = vec![vec![0.0f32; max_block]; channels];
                        let mut input_ports = AudioPorts::with_capacity(channels, 1);
                        let mut output_ports = AudioPorts::with_capacity(channels, 1);
                        let mut events = EventBuffer::with_capacity(64);
                        let mut out_events = EventBuffer::with_capacity(64);
                        let start = Instant::now();
                        let mut max_process = Duration::ZERO;
                        let mut at = 0usize;
                        let mut steady = 0u64;
                        let mut midi = Vec::new();
                        let mut fp_control_changed = 0;
                        for (index, &n) in sizes.iter().enumerate() {
                            events.clear();
                            for &(frame, id, value) in &playback.changes {
                                if frame >= at && frame < at + n {
                                    events.push(&ParamValueEvent::new(
                                        0,
                                        ClapId::new(id),
                                        Pckn::match_all(),
                                        value,
                                    ));
                                }
                            }
                            if let Some(automation) = &playback.automation {
                                if index % automation.every_blocks == 0 {
                                    let step = index / automation.every_blocks;
                                    for &(id, min, max) in &automation.params {
                                        let value = Automation::value(step, min, max);
                                        events.push(&ParamValueEvent::new(
                                            0,
                                            ClapId::new(id),
                                            Pckn::match_all(),
                                            value,
                                        ));
                                    }
                                }
                            }
                            if let Some(speed) = playback.speed {
                                let due = Duration::from_secs_f64(at as f64 / rate / speed);
                                if let Some(wait) = due.checked_sub(start.elapsed()) {
                                    std::thread::sleep(wait);
                                }
                            }
                            if playback.reset_at.is_some_and(|r| r >= at && r < at + n) {
                                started.reset();
                            }
                            for (b, c) in in_block.iter_mut().zip(&input.channels) {
                                b[..n].copy_from_slice(&c[at..at + n]);
                            }
                            let audio_in = input_ports.with_input_buffers([AudioPortBuffer {
                                latency: 0,
                                channels: AudioPortBufferType::f32_input_only(
                                    in_block
                                        .iter_mut()
                                        .map(|b| InputChannel::variable(&mut b[..n])),
                                ),
                            }]);
                            let mut audio_out =
                                output_ports.with_output_buffers([AudioPortBuffer {
                                    latency: 0,
                                    channels: AudioPortBufferType::f32_output_only(
                                        out_block.iter_mut().map(|b| &mut b[..n]),
                                    ),
                                }]);
                            out_events.clear();
                            let fp_before = fp_control();
                            let t = Instant::now();
                            let status = started.process(
                                &audio_in,
                                &mut audio_out,
                                &events.as_input(),
                                &mut out_events.as_output(),
                                Some(steady),
                                None,
                            );
                            max_process = max_process.max(t.elapsed());
                            if fp_control() != fp_before {
                                fp_control_changed += 1;
                            }
                            for event in out_events.iter() {
                                if let Some(m) = event.as_event::<MidiEvent>() {
                                    midi.push(MidiOut {
                                        block: index,
                                        block_start: at,
                                        block_len: n,
                                        time: m.header().time(),
                                        port: m.port_index(),
                                        data: m.data(),
                                    });
                                }
                            }
                            if let Err(e) = status {
                                let message = format!("process() at frame {at}: {e}");
                                return (started.stop_processing(), Err(anyhow!(message)));
                            }
                            for (o, b) in output.iter_mut().zip(&out_block) {
                                o[at..at + n].copy_from_slice(&b[..n]);
                            }
                            at += n;
                            steady += n as u64;
                        }
                        std::thread::sleep(playback.linger);
                        (
                            started.stop_processing(),
                            Ok(Processed {
                                output,
                                blocks: sizes.len(),
                                midi,
                                max_process,
                                fp_control_changed,
                            }),
                        )
                    },
                )
                .join()
                .map_err(|_| anyhow!("the audio thread panicked"))
        })?;
        Ok((processor, result?))
    }
}

/// Compares output with input sample by sample, bit for bit (NaN payloads included).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Passthrough {
    pub bit_exact: bool,
    /// Samples whose bits differ.
    pub mismatches: usize,
    /// First differing (channel, frame).
    pub first_mismatch: Option<(usize, usize)>,
}

pub fn compare_passthrough(input: &Audio, output: &[Vec<f32>]) -> Passthrough {
    let mut mismatches = 0;
    let mut first_mismatch = None;
    for (c, (i, o)) in input.channels.iter().zip(output).enumerate() {
        for (f, (a, b)) in i.iter().zip(o).enumerate() {
            if a.to_bits() != b.to_bits() {
                mismatches += 1;
                first_mismatch.get_or_insert((c, f));
            }
        }
        mismatches += i.len().abs_diff(o.len());
    }
    Passthrough {
        bit_exact: mismatches == 0 && input.channels.len() == output.len(),
        mismatches,
        first_mismatch,
    }
}
