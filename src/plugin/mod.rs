//! The Moodscope plugin (nice-plug; exported as CLAP and VST3 from `lib.rs`).
//!
//! In: the host's audio (mono or stereo, any rate the front end takes, any block size), its
//! parameters and session state. Out: the same audio, bit for bit, with zero latency; the mood
//! of the music, published in `shared::Published` for the editor and the outputs; MIDI CCs
//! (`realtime::MidiOut`, when enabled) on the plugin's note output; OSC from the worker
//! (`crate::outputs`, when enabled).
//!
//! Threads:
//! - audio thread: `process()` → `realtime::Feed` (downmix, push to the ring), a wait-free read
//!   of the published mood and `realtime::MidiOut`, with denormals flushed to zero for the call
//!   (`realtime::FlushDenormals`). Nothing else, ever (see `realtime.rs`).
//! - worker thread (one per instance, `worker::Worker`): ring → analysis → smoothing → publish.
//! - main thread: `activate()`/`deactivate()` create the ring for the host's rate and hand its
//!   reading end to the worker.
//!
//! An offline render (`ProcessMode::Offline`) analyses inside `process()` instead, so that no
//! window is dropped and the values are exactly those of `moodscope analyze` on the same audio.
//! A host that renders faster than real time without saying so (Ardour's export) is found out by
//! the worker, which then analyses every window too (see `worker.rs`).
//!
//! Bypass (`params::MoodscopeParams::bypass`, the host's bypass): the audio passes untouched as
//! always; with "Analyse while bypassed" off, `process()` stops feeding the analysis, and
//! switching back on restarts it as a host reset does (the windows start again from there).
//!
//! The host's transport starting to play (after blocks processed while stopped) restarts the
//! analysis too: the moods then describe the music from where play was pressed, and a render
//! (which a host starts after processing silence with the transport stopped, as Ardour's export
//! does) is analysed from its first sample, as `moodscope analyze` analyses the rendered file.

pub mod params;
pub mod realtime;
pub mod shared;
pub mod worker;

use std::num::NonZeroU32;
use std::sync::Arc;

use nice_plug::prelude::*;

use crate::models::ModelDir;
use crate::ring::sample_ring;

use self::params::MoodscopeParams;
use self::realtime::{Feed, FlushDenormals, MidiOut};
use self::shared::{Health, MoodSnapshot, Published};
use self::worker::{OfflineRender, Worker};

/// One plugin instance.
pub struct Moodscope {
    params: Arc<MoodscopeParams>,
    published: Arc<Published>,
    models: ModelDir,
    /// Started on first activation (scanning a plugin must stay cheap).
    worker: Option<Worker>,
    /// Real-time or buffered processing: the audio thread's end of the ring.
    feed: Option<Feed>,
    /// Offline rendering: the analysis itself.
    offline: Option<OfflineRender>,
    /// The latest published mood, as read on the audio thread (for outputs sent from `process()`).
    latest: MoodSnapshot,
    /// MIDI CC output state (created on activation, for the host's rate).
    midi: MidiOut,
    /// The analysis is not fed (bypassed, with "Analyse while bypassed" off).
    paused: bool,
    /// Whether the host's transport played in the previous block (`None`: no block yet since
    /// activation).
    was_playing: Option<bool>,
}

impl Default for Moodscope {
    fn default() -> Self {
        Self {
            params: Arc::new(MoodscopeParams::default()),
            published: Arc::new(Published::default()),
            models: ModelDir::locate(),
            worker: None,
            feed: None,
            offline: None,
            latest: MoodSnapshot::default(),
            midi: MidiOut::new(44_100.0),
            paused: false,
            was_playing: None,
        }
    }
}

impl Moodscope {
    /// What this instance publishes (moods, status, label names); shared with the editor.
    pub fn published(&self) -> &Arc<Published> {
        &self.published
    }

    /// The latest mood seen by the audio thread.
    pub fn latest(&self) -> &MoodSnapshot {
        &self.latest
    }

    fn worker(&mut self) -> Option<&Worker> {
        if self.worker.is_none() {
            match Worker::spawn(self.params.clone(), self.published.clone(), self.models.clone()) {
                Ok(worker) => self.worker = Some(worker),
                Err(e) => self.published.set_status(
                    Health::Failed,
                    format!("Could not start the analysis thread ({e}). Audio passes through unchanged."),
                ),
            }
        }
        self.worker.as_ref()
    }
}

impl Plugin for Moodscope {
    const NAME: &'static str = "Moodscope";
    const VENDOR: &'static str = "Moodscope";
    const URL: &'static str = "";
    const EMAIL: &'static str = "";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");

    const AUDIO_IO_LAYOUTS: &'static [AudioIOLayout] = &[
        AudioIOLayout {
            main_input_channels: NonZeroU32::new(2),
            main_output_channels: NonZeroU32::new(2),
            ..AudioIOLayout::const_default()
        },
        AudioIOLayout {
            main_input_channels: NonZeroU32::new(1),
            main_output_channels: NonZeroU32::new(1),
            ..AudioIOLayout::const_default()
        },
    ];

    const SAMPLE_ACCURATE_AUTOMATION: bool = false;
    /// The moods go out as MIDI CCs (a note output port; nothing is sent unless enabled).
    const MIDI_OUTPUT: MidiConfig = MidiConfig::MidiCCs;

    type Editor = crate::editor::MoodscopeEditor;
    type SysExMessage = ();
    type BackgroundTask = ();

    fn params(&self) -> Arc<dyn Params> {
        self.params.clone()
    }

    fn editor(&mut self, _async_executor: AsyncExecutor<Self>) -> Option<Self::Editor> {
        Some(crate::editor::MoodscopeEditor::new(
            self.params.clone(),
            self.published.clone(),
        ))
    }

    fn activate(
        &mut self,
        _audio_io_layout: &AudioIOLayout,
        buffer_config: &BufferConfig,
        context: &mut impl ActivateContext<Self>,
    ) -> bool {
        context.set_latency_samples(0);
        let sample_rate = buffer_config.sample_rate.round() as u32;
        self.feed = None;
        self.offline = None;
        self.midi = MidiOut::new(buffer_config.sample_rate);
        self.paused = false;
        self.was_playing = None;
        self.published.set_paused(false);
        if buffer_config.process_mode == ProcessMode::Offline {
            if let Some(worker) = self.worker() {
                worker.stop();
            }
            self.offline = Some(OfflineRender::new(
                self.params.clone(),
                sample_rate,
                buffer_config.max_buffer_size as usize,
                &self.models,
                &self.published,
            ));
        } else {
            let (writer, reader) = sample_ring(worker::ring_capacity(sample_rate));
            // Until the worker has looked at the pace, the audio thread waits for room rather
            // than drop (`worker::SETTLE_SECONDS`: a live stream never fills the ring that soon).
            reader.set_writer_waits(true);
            if let Some(worker) = self.worker() {
                worker.start(reader, sample_rate);
                self.feed = Some(Feed::new(writer));
            }
        }
        // Always activate: without analysis the plugin still passes audio through.
        true
    }

    fn reset(&mut self) {
        if let Some(feed) = &mut self.feed {
            feed.reset();
        }
        self.midi.reset();
        if let Some(offline) = &mut self.offline {
            util::permit_alloc(|| offline.reset(&self.models, &self.published));
        }
    }

    fn process(
        &mut self,
        buffer: &mut Buffer,
        _aux: &mut AuxiliaryBuffers,
        context: &mut impl ProcessContext<Self>,
    ) -> ProcessStatus {
        // Denormal input costs what silence costs, and the host's modes are back on return.
        let _denormals = FlushDenormals::new();
        let block_len = buffer.samples();
        let channels = buffer.as_slice_immutable();
        let analysing = self.params.analysing();
        let playing = context.transport().playing;
        let play_pressed = playing && self.was_playing == Some(false);
        self.was_playing = Some(playing);
        if analysing && (self.paused || play_pressed) {
            // Back from a bypass that paused the analysis, or the transport starts playing: the
            // analysis starts afresh, as after a reset.
            if let Some(feed) = &mut self.feed {
                feed.reset();
            }
            if let Some(offline) = &mut self.offline {
                util::permit_alloc(|| offline.reset(&self.models, &self.published));
            }
            self.midi.reset();
        }
        let paused = !analysing;
        if self.paused != paused {
            self.paused = paused;
            self.published.set_paused(self.paused);
            if let Some(offline) = &self.offline {
                // Offline the worker is idle: the render says why nothing is analysed.
                util::permit_alloc(|| offline.show_paused(self.paused, &self.published));
            }
        }
        if !analysing {
            // Bypassed with "Analyse while bypassed" off: the audio passes, nothing is analysed.
        } else if let Some(feed) = &mut self.feed {
            feed.push(channels);
        } else if let Some(offline) = &mut self.offline {
            // Offline: the host waits for us; allocating and analysing here is the point.
            util::permit_alloc(|| offline.process(channels, &self.published));
        }
        if let Some(snapshot) = self.published.read() {
            self.latest = snapshot;
        }
        let midi = self.params.midi_settings();
        self.midi.block(&midi, &self.latest, block_len, |cc| {
            context
                .try_send_event(NoteEvent::MidiCC {
                    timing: cc.timing,
                    channel: cc.channel,
                    cc: cc.cc,
                    value: cc.value as f32 / 127.0,
                })
                .is_ok()
        });
        // An analyser must hear silence too (moods relax): keep being processed.
        ProcessStatus::KeepAlive
    }

    fn deactivate(&mut self) {
        if let Some(mut offline) = self.offline.take() {
            offline.finish(&self.published);
        }
        if self.feed.take().is_some() {
            if let Some(worker) = &self.worker {
                worker.stop();
            }
        }
    }
}

impl ClapPlugin for Moodscope {
    const CLAP_ID: &'static str = "org.moodscope.moodscope";
    const CLAP_DESCRIPTION: Option<&'static str> = Some(
        "Listens to the music and says, continuously, how it feels: Happy, Sad, Calm, Angry or Scary",
    );
    const CLAP_MANUAL_URL: Option<&'static str> = None;
    const CLAP_SUPPORT_URL: Option<&'static str> = None;
    const CLAP_FEATURES: &'static [ClapFeature] = &[
        ClapFeature::AudioEffect,
        ClapFeature::Analyzer,
        ClapFeature::Utility,
        ClapFeature::Stereo,
        ClapFeature::Mono,
    ];
}

impl Vst3Plugin for Moodscope {
    const VST3_CLASS_ID: [u8; 16] = *b"MoodscopeAnalyse";
    const VST3_SUBCATEGORIES: &'static [Vst3SubCategory] =
        &[Vst3SubCategory::Fx, Vst3SubCategory::Analyzer];
}
