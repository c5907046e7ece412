//! The plugin's editor in a real X11 window, and its screenshot.
//!
//! In: a loaded `Host`, an X display (`DISPLAY`, e.g. an Xvfb), music. Out: the editor opened
//! the way a Linux DAW opens it (CLAP `gui`: floating if the plugin offers it, else embedded in a
//! parent window this host creates), shown while the music plays through `process()` on an audio
//! thread and the main thread runs the plugin's callbacks; then a screenshot of the window (RGB,
//! saved as PNG) and what the host saw (size, resize requests).

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use clack_extensions::gui::{
    GuiApiType, GuiConfiguration, GuiSize, HostGuiImpl, PluginGui, Window,
};
use clack_host::prelude::*;
use serde::{Deserialize, Serialize};
use x11rb::connection::Connection;
use x11rb::protocol::xproto::{
    ConfigureWindowAux, ConnectionExt as _, CreateWindowAux, EventMask, ImageFormat, WindowClass,
};
use x11rb::protocol::Event;
use x11rb::rust_connection::RustConnection;

use crate::audio::Audio;
use crate::host::{Host, Shared, TestHost};

/// What the plugin's editor asked of the host (from any thread).
#[derive(Default)]
pub struct GuiRequests {
    /// Latest requested size, packed (`GuiSize::pack_to_u64`); 0: none pending.
    resize: AtomicU64,
    resize_requests: AtomicU64,
    closed: AtomicBool,
}

impl HostGuiImpl for Shared {
    fn resize_hints_changed(&self) {}

    fn request_resize(&self, new_size: GuiSize) -> Result<(), HostError> {
        self.gui
            .resize
            .store(new_size.pack_to_u64(), Ordering::SeqCst);
        self.gui.resize_requests.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }

    fn request_show(&self) -> Result<(), HostError> {
        Ok(())
    }

    fn request_hide(&self) -> Result<(), HostError> {
        Ok(())
    }

    fn closed(&self, _was_destroyed: bool) {
        self.gui.closed.store(true, Ordering::SeqCst);
    }
}

/// What one editor session showed the host.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct EditorReport {
    /// Whether the plugin's window floated (else it was embedded in the host's window).
    pub floating: bool,
    /// The editor's size as the plugin reported it when opened, physical pixels.
    pub size: (u32, u32),
    /// Whether the plugin says it can be resized.
    pub can_resize: bool,
    /// The size after the host resized the editor (`set_size`), if it tried.
    pub resized_to: Option<(u32, u32)>,
    pub resize_requests: u64,
    /// Whether the plugin closed its window on its own (it must not).
    pub closed_by_plugin: bool,
    /// Audio blocks played while the editor was open.
    pub blocks: usize,
    /// Where the screenshot was saved.
    pub screenshot: String,
    pub screenshot_size: (u32, u32),
    pub distinct_colours: usize,
    /// The editor size a fresh instance reports after loading the state saved after the session
    /// (the size is saved with the session).
    pub restored_size: Option<(u32, u32)>,
}

/// How to run the editor session.
#[derive(Clone, Debug)]
pub struct EditorSession {
    /// Seconds to keep the editor open, music playing, before the screenshot.
    pub seconds: f64,
    /// Resize the editor to this size (physical pixels) before showing it, if it is resizable.
    pub resize_to: Option<(u32, u32)>,
    pub block: usize,
}

/// An RGB image (8 bits per channel, rows top to bottom).
#[derive(Clone, Debug, PartialEq)]
pub struct Image {
    pub width: u32,
    pub height: u32,
    pub rgb: Vec<u8>,
}

impl Image {
    pub fn pixels(&self) -> impl Iterator<Item = [u8; 3]> + '_ {
        self.rgb.chunks_exact(3).map(|p| [p[0], p[1], p[2]])
    }

    /// Number of distinct colours.
    pub fn distinct_colours(&self) -> usize {
        let mut seen: Vec<u32> = self
            .pixels()
            .map(|[r, g, b]| (r as u32) << 16 | (g as u32) << 8 | b as u32)
            .collect();
        seen.sort_unstable();
        seen.dedup();
        seen.len()
    }

    /// Pixels within `tolerance` (per channel) of `colour`.
    pub fn count_near(&self, colour: [u8; 3], tolerance: u8) -> usize {
        self.pixels()
            .filter(|p| {
                p.iter()
                    .zip(colour)
                    .all(|(&a, b)| a.abs_diff(b) <= tolerance)
            })
            .count()
    }

    pub fn save_png(&self, path: &Path) -> Result<()> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let file = std::io::BufWriter::new(
            std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?,
        );
        let mut encoder = png::Encoder::new(file, self.width, self.height);
        encoder.set_color(png::ColorType::Rgb);
        encoder.set_depth(png::BitDepth::Eight);
        let mut writer = encoder.write_header()?;
        writer.write_image_data(&self.rgb)?;
        writer.finish()?;
        Ok(())
    }

    pub fn load_png(path: &Path) -> Result<Self> {
        let file =
            std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
        let mut decoder = png::Decoder::new(std::io::BufReader::new(file));
        decoder.set_transformations(png::Transformations::EXPAND | png::Transformations::STRIP_16);
        let mut reader = decoder.read_info()?;
        let mut buffer = vec![0; reader.output_buffer_size()];
        let info = reader.next_frame(&mut buffer)?;
        buffer.truncate(info.buffer_size());
        let rgb = match info.color_type {
            png::ColorType::Rgb => buffer,
            png::ColorType::Rgba => buffer
                .chunks_exact(4)
                .flat_map(|p| [p[0], p[1], p[2]])
                .collect(),
            other => bail!("{}: unexpected PNG colour type {other:?}", path.display()),
        };
        Ok(Self {
            width: info.width,
            height: info.height,
            rgb,
        })
    }
}

/// The host's top-level X11 window, parent of the plugin's editor.
struct ParentWindow {
    conn: RustConnection,
    root: u32,
    window: u32,
}

impl ParentWindow {
    fn open(width: u32, height: u32) -> Result<Self> {
        let (conn, screen) = x11rb::connect(None).map_err(|e| {
            anyhow!(
                "cannot connect to the X display (DISPLAY={:?}): {e}",
                std::env::var("DISPLAY")
            )
        })?;
        let screen = &conn.setup().roots[screen];
        let (root, depth, visual) = (screen.root, screen.root_depth, screen.root_visual);
        let black = screen.black_pixel;
        let window = conn.generate_id()?;
        conn.create_window(
            depth,
            window,
            root,
            0,
            0,
            width.max(1) as u16,
            height.max(1) as u16,
            0,
            WindowClass::INPUT_OUTPUT,
            visual,
            &CreateWindowAux::new()
                .background_pixel(black)
                .event_mask(EventMask::STRUCTURE_NOTIFY | EventMask::EXPOSURE),
        )?;
        conn.map_window(window)?;
        conn.flush()?;
        // The plugin reparents its window into this one over its own connection, and the X
        // server orders requests only within a connection: wait until the server has mapped
        // this window (a reparent into a window it has not yet created fails with BadWindow,
        // seen under Xvfb on a loaded machine).
        let asked = Instant::now();
        loop {
            match conn.poll_for_event()? {
                Some(Event::MapNotify(e)) if e.window == window => break,
                Some(_) => {}
                None if asked.elapsed() > Duration::from_secs(10) => {
                    bail!("the X server did not map the host's window within 10 s")
                }
                None => std::thread::sleep(Duration::from_millis(2)),
            }
        }
        // A round trip: everything sent so far has been processed.
        conn.get_input_focus()?.reply()?;
        Ok(Self { conn, root, window })
    }

    fn resize(&self, width: u32, height: u32) -> Result<()> {
        self.conn.configure_window(
            self.window,
            &ConfigureWindowAux::new().width(width).height(height),
        )?;
        self.conn.flush()?;
        Ok(())
    }

    /// Drains the window's events (this host reacts to none; the plugin's window has its own).
    fn pump(&self) -> Result<()> {
        while self.conn.poll_for_event()?.is_some() {}
        Ok(())
    }

    /// What the screen shows where the window is: the editor as a user would see it.
    fn capture(&self) -> Result<Image> {
        let geometry = self.conn.get_geometry(self.window)?.reply()?;
        let at = self
            .conn
            .translate_coordinates(self.window, self.root, 0, 0)?
            .reply()?;
        let (width, height) = (geometry.width, geometry.height);
        let image = self
            .conn
            .get_image(
                ImageFormat::Z_PIXMAP,
                self.root,
                at.dst_x,
                at.dst_y,
                width,
                height,
                !0,
            )?
            .reply()
            .context("GetImage of the editor window")?;
        let pixels = width as usize * height as usize;
        if image.data.len() != pixels * 4 {
            bail!(
                "GetImage gave {} bytes for {width}×{height} at depth {}: expected 32 bits per pixel",
                image.data.len(),
                image.depth
            );
        }
        // Depth 24 in 32-bit little-endian pixels: B, G, R, unused.
        let rgb = image
            .data
            .chunks_exact(4)
            .flat_map(|p| [p[2], p[1], p[0]])
            .collect();
        Ok(Image {
            width: width as u32,
            height: height as u32,
            rgb,
        })
    }
}

impl Drop for ParentWindow {
    fn drop(&mut self) {
        let _ = self.conn.destroy_window(self.window);
        let _ = self.conn.flush();
    }
}

/// Opens the plugin's editor, plays `music` (looping) through the activated plugin in real time
/// while the editor is open, takes a screenshot after `session.seconds` and saves it to
/// `screenshot`; closes everything cleanly.
pub fn editor_session(
    host: &mut Host,
    music: &Audio,
    session: &EditorSession,
    screenshot: &Path,
) -> Result<EditorReport> {
    let gui: PluginGui = host
        .instance()
        .plugin_shared_handle()
        .get_extension()
        .ok_or_else(|| anyhow!("the plugin has no gui extension (no editor)"))?;
    let floating = gui.is_api_supported(
        &host.instance().plugin_handle(),
        GuiConfiguration {
            api_type: GuiApiType::X11,
            is_floating: true,
        },
    );
    let embedded = gui.is_api_supported(
        &host.instance().plugin_handle(),
        GuiConfiguration {
            api_type: GuiApiType::X11,
            is_floating: false,
        },
    );
    if !floating && !embedded {
        bail!("the plugin's editor supports neither a floating nor an embedded X11 window");
    }
    let processor = host.activate(music.rate, session.block)?;
    with_processor(host, &gui, processor, floating, music, session, screenshot)
}

fn with_processor(
    host: &mut Host,
    gui: &PluginGui,
    processor: StoppedPluginAudioProcessor<TestHost>,
    floating: bool,
    music: &Audio,
    session: &EditorSession,
    screenshot: &Path,
) -> Result<EditorReport> {
    let stop = AtomicBool::new(false);
    let (processor, outcome) = std::thread::scope(|scope| {
        let audio = scope.spawn(|| play_until(processor, music, session.block, &stop));
        let outcome = show_and_capture(host, gui, floating, session, screenshot);
        stop.store(true, Ordering::SeqCst);
        // Keep running the plugin's main-thread callbacks until the audio thread is done.
        while !audio.is_finished() {
            host.idle();
            std::thread::sleep(Duration::from_millis(5));
        }
        match audio.join() {
            Ok((processor, blocks)) => (Some(processor), outcome.map(|r| (r, blocks))),
            Err(_) => (None, Err(anyhow!("the audio thread panicked"))),
        }
    });
    if let Some(processor) = processor {
        host.deactivate(processor);
    }
    let (mut report, blocks) = outcome?;
    let blocks = blocks?;
    report.blocks = blocks;
    if blocks == 0 {
        bail!("no audio was played while the editor was open");
    }
    Ok(report)
}

/// The editor's size as the plugin reports it (`gui.get_size`, no window needed).
pub fn editor_size(host: &mut Host) -> Result<(u32, u32)> {
    let gui: PluginGui = host
        .instance()
        .plugin_shared_handle()
        .get_extension()
        .ok_or_else(|| anyhow!("the plugin has no gui extension (no editor)"))?;
    let size = gui
        .get_size(&host.instance().plugin_handle())
        .ok_or_else(|| anyhow!("the editor reports no size"))?;
    Ok((size.width, size.height))
}

/// The audio thread: plays `music` in real time, from the top again at its end, until `stop`.
fn play_until(
    processor: StoppedPluginAudioProcessor<TestHost>,
    music: &Audio,
    block: usize,
    stop: &AtomicBool,
) -> (StoppedPluginAudioProcessor<TestHost>, Result<usize>) {
    let mut started = match processor.start_processing() {
        Ok(started) => started,
        Err(e) => {
            let message = format!("start_processing: {e}");
            return (e.into_stopped_processor(), Err(anyhow!(message)));
        }
    };
    let channels = music.channels.len();
    let frames = music.frames();
    let mut in_block = vec![vec![0.0f32; block]; channels];
    let mut out_block = vec![vec![0.0f32; block]; channels];
    let mut input_ports = AudioPorts::with_capacity(channels, 1);
    let mut output_ports = AudioPorts::with_capacity(channels, 1);
    let events = EventBuffer::new();
    let mut out_events = EventBuffer::new();
    let start = Instant::now();
    let (mut at, mut steady, mut blocks) = (0usize, 0u64, 0usize);
    while !stop.load(Ordering::SeqCst) {
        let due = Duration::from_secs_f64(steady as f64 / music.rate as f64);
        if let Some(wait) = due.checked_sub(start.elapsed()) {
            std::thread::sleep(wait);
        }
        for (b, c) in in_block.iter_mut().zip(&music.channels) {
            for (i, s) in b.iter_mut().enumerate() {
                *s = c[(at + i) % frames.max(1)];
            }
        }
        let audio_in = input_ports.with_input_buffers([AudioPortBuffer {
            latency: 0,
            channels: AudioPortBufferType::f32_input_only(
                in_block
                    .iter_mut()
                    .map(|b| InputChannel::variable(&mut b[..])),
            ),
        }]);
        let mut audio_out = output_ports.with_output_buffers([AudioPortBuffer {
            latency: 0,
            channels: AudioPortBufferType::f32_output_only(
                out_block.iter_mut().map(|b| &mut b[..]),
            ),
        }]);
        out_events.clear();
        if let Err(e) = started.process(
            &audio_in,
            &mut audio_out,
            &events.as_input(),
            &mut out_events.as_output(),
            Some(steady),
            None,
        ) {
            let message = format!("process() at frame {steady}: {e}");
            return (started.stop_processing(), Err(anyhow!(message)));
        }
        at = (at + block) % frames.max(1);
        steady += block as u64;
        blocks += 1;
    }
    (started.stop_processing(), Ok(blocks))
}

/// The main thread: creates and shows the editor, runs the plugin's callbacks for
/// `session.seconds`, captures the window, destroys the editor, then the host's window.
fn show_and_capture(
    host: &mut Host,
    gui: &PluginGui,
    floating: bool,
    session: &EditorSession,
    screenshot: &Path,
) -> Result<EditorReport> {
    let configuration = GuiConfiguration {
        api_type: GuiApiType::X11,
        is_floating: floating,
    };
    gui.create(&host.instance().plugin_handle(), configuration)
        .map_err(|e| anyhow!("gui.create (X11, floating: {floating}): {e:?}"))?;
    let _ = gui.set_scale(&host.instance().plugin_handle(), 1.0);
    let outcome = match gui.get_size(&host.instance().plugin_handle()) {
        Some(size) => ParentWindow::open(size.width, size.height).map(|parent| {
            let outcome = shown(host, gui, &parent, size, floating, session, screenshot);
            (parent, outcome)
        }),
        None => Err(anyhow!("the editor reports no size")),
    };
    gui.destroy(&host.instance().plugin_handle());
    // Let the plugin's window thread wind down and run what it asked of the main thread; the
    // host's window goes last (`parent` drops here).
    for _ in 0..20 {
        host.idle();
        std::thread::sleep(Duration::from_millis(5));
    }
    let (_parent, outcome) = outcome?;
    outcome
}

fn shown(
    host: &mut Host,
    gui: &PluginGui,
    parent: &ParentWindow,
    size: GuiSize,
    floating: bool,
    session: &EditorSession,
    screenshot: &Path,
) -> Result<EditorReport> {
    let can_resize = gui.can_resize(&host.instance().plugin_handle());
    let window = Window::from_x11_handle(parent.window as _);
    let mut resized_to = None;
    if floating {
        // SAFETY: the parent window outlives the editor (destroyed after `gui.destroy`).
        unsafe { gui.set_transient(&host.instance().plugin_handle(), window) }
            .map_err(|e| anyhow!("gui.set_transient: {e:?}"))?;
    } else {
        // SAFETY: as above.
        unsafe { gui.set_parent(&host.instance().plugin_handle(), window) }
            .map_err(|e| anyhow!("gui.set_parent: {e:?}"))?;
        if let (Some((width, height)), true) = (session.resize_to, can_resize) {
            let handle = host.instance().plugin_handle();
            let asked = GuiSize { width, height };
            let want = gui.adjust_size(&handle, asked).unwrap_or(asked);
            parent.resize(want.width, want.height)?;
            gui.set_size(&handle, want)
                .map_err(|e| anyhow!("gui.set_size {want:?}: {e:?}"))?;
            resized_to = Some((want.width, want.height));
        }
    }
    gui.show(&host.instance().plugin_handle())
        .map_err(|e| anyhow!("gui.show: {e:?}"))?;

    let requests = |host: &mut Host, f: &dyn Fn(&GuiRequests) -> u64| {
        host.instance().access_shared_handler(|s| f(&s.gui))
    };
    let opened = Instant::now();
    while opened.elapsed() < Duration::from_secs_f64(session.seconds) {
        host.idle();
        parent.pump()?;
        let pending = requests(host, &|g| g.resize.swap(0, Ordering::SeqCst));
        if pending != 0 && !floating {
            let want = GuiSize::unpack_from_u64(pending);
            parent.resize(want.width, want.height)?;
        }
        if requests(host, &|g| g.closed.load(Ordering::SeqCst) as u64) != 0 {
            bail!("the plugin closed its editor on its own");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let image = parent.capture()?;
    image.save_png(screenshot)?;
    let _ = gui.hide(&host.instance().plugin_handle());
    Ok(EditorReport {
        floating,
        size: (size.width, size.height),
        can_resize,
        resized_to,
        resize_requests: requests(host, &|g| g.resize_requests.load(Ordering::SeqCst)),
        closed_by_plugin: requests(host, &|g| g.closed.load(Ordering::SeqCst) as u64) != 0,
        blocks: 0,
        screenshot: screenshot.display().to_string(),
        screenshot_size: (image.width, image.height),
        distinct_colours: image.distinct_colours(),
        restored_size: None,
    })
}
