//! The plugin's editor (nice-plug-egui): what a producer at the desk or a DJ in a dark booth sees.
//!
//! In: `plugin::shared::Published` (the smoothed moods, dominant mood, confidence, presence, the
//! status line, label names, dropped audio), read wait-free or with short locks at each frame,
//! and the parameters. Out: parameter changes (through nice-plug's `ParamSetter`) and the window
//! size, persisted with the session (`MoodscopeParams::editor_size`, `editor-state`).
//!
//! The window shows, top to bottom: the dominant mood and its confidence in large type (or
//! "Uncertain", with the two moods it hesitates between), with the music presence; the status
//! (the model in use, any problem in plain words, dropped audio, bad output settings); one meter
//! per mood beside the mood map (valence across, arousal up: Russell's circumplex, with the last
//! 30 s as a fading trail); a scrolling timeline of the last minute; the settings (analysis, or
//! MIDI CC and OSC out). Each mood keeps one colour-blind-safe colour (Okabe-Ito palette)
//! everywhere. The editor never waits on the worker:
//! the moods are a seqlock snapshot, the status and label names a brief lock on a string.

use std::collections::VecDeque;
use std::error::Error;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use egui::{Align2, Color32, FontId, Pos2, Rect, RichText, Sense, Stroke, StrokeKind, Ui, Vec2};
use nice_plug::context::gui::GuiContext;
use nice_plug::editor::dpi::{LogicalSize, NativeSize};
use nice_plug::editor::{HostMethods, SpawnedEditor};
use nice_plug::prelude::*;
use nice_plug_egui::resizable_window::ResizableWindow;
use nice_plug_egui::widgets::ParamSlider;
use nice_plug_egui::{
    create_egui_editor, EguiEditor, EguiEditorHandle, EguiEditorState, EguiNiceSettings, Frame,
    NiceEguiApp, RepaintNotifier,
};
use serde::{Deserialize, Serialize};

use crate::engine::dominant_of;
use crate::plugin::params::{BackboneParam, HeadParam, MoodscopeParams};
use crate::plugin::shared::{clock, Health, MoodSnapshot, Published, MAX_LABELS};

/// Okabe-Ito colours of the moods, by name.
pub const MOOD_COLOURS: [(&str, Color32); 6] = [
    ("Happy", Color32::from_rgb(0xF0, 0xE4, 0x42)), // yellow
    ("Sad", Color32::from_rgb(0x56, 0xB4, 0xE9)),   // sky blue
    ("Calm", Color32::from_rgb(0x00, 0x9E, 0x73)),  // bluish green
    ("Exciting", Color32::from_rgb(0xE6, 0x9F, 0x00)), // orange
    ("Angry", Color32::from_rgb(0xD5, 0x5E, 0x00)), // vermillion
    ("Scary", Color32::from_rgb(0xCC, 0x79, 0xA7)), // reddish purple
];

/// The rest of the palette, for the labels of user-trained heads (and warnings, in orange).
const OTHER_COLOURS: [Color32; 3] = [
    Color32::from_rgb(0xE6, 0x9F, 0x00), // orange
    Color32::from_rgb(0x00, 0x72, 0xB2), // blue
    Color32::from_rgb(0xE0, 0xE0, 0xE0), // light grey
];

/// Seconds of valence and arousal the mood map's trail shows.
pub const TRAIL_SECONDS: f64 = 30.0;

const BACKGROUND: Color32 = Color32::from_rgb(0x12, 0x12, 0x16);
const PANEL: Color32 = Color32::from_rgb(0x24, 0x24, 0x2C);
const DIM_TEXT: Color32 = Color32::from_rgb(0xB0, 0xB0, 0xB8);

/// Seconds of mood the timeline shows.
pub const TIMELINE_SECONDS: f64 = 60.0;
/// How often the editor repaints on its own (moods change without any input).
const REPAINT_EVERY: Duration = Duration::from_millis(40);

/// The editor's size in logical pixels, saved with the session.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EditorSize {
    pub width: u32,
    pub height: u32,
}

impl Default for EditorSize {
    fn default() -> Self {
        Self {
            width: 900,
            height: 640,
        }
    }
}

const MIN_SIZE: EditorSize = EditorSize {
    width: 520,
    height: 420,
};

/// The colour of label `index` named `name`: the mood's own for the moods Moodscope names
/// ("Tender" is Calm's), else the rest of the palette in turn.
pub fn label_colour(index: usize, name: &str) -> Color32 {
    let name = if name.eq_ignore_ascii_case("tender") {
        "Calm"
    } else {
        name
    };
    match MOOD_COLOURS
        .iter()
        .find(|(m, _)| m.eq_ignore_ascii_case(name))
    {
        Some((_, colour)) => *colour,
        None => OTHER_COLOURS[index % OTHER_COLOURS.len()],
    }
}

/// One publication as the editor keeps it.
#[derive(Clone, Copy, Debug)]
struct Point {
    /// Time on `shared::clock()`, seconds.
    at: f64,
    probabilities: [f32; MAX_LABELS],
    labels: usize,
    valence: Option<f32>,
    arousal: Option<f32>,
}

/// The minute of moods the timeline and the mood map's trail draw, fed from published snapshots.
#[derive(Default)]
pub struct History {
    /// One per publication, oldest first.
    points: VecDeque<Point>,
    last_sequence: u64,
}

impl History {
    /// Records a snapshot unless it was already seen; forgets what is older than the timeline.
    pub fn record(&mut self, snapshot: &MoodSnapshot, now: f64) {
        if snapshot.sequence != 0 && snapshot.sequence != self.last_sequence {
            self.last_sequence = snapshot.sequence;
            self.points.push_back(Point {
                at: snapshot.published_at.as_secs_f64(),
                probabilities: snapshot.probabilities,
                labels: snapshot.labels,
                valence: snapshot.valence,
                arousal: snapshot.arousal,
            });
        }
        while self
            .points
            .front()
            .is_some_and(|p| p.at < now - TIMELINE_SECONDS - 1.0)
        {
            self.points.pop_front();
        }
    }

    pub fn len(&self) -> usize {
        self.points.len()
    }

    pub fn is_empty(&self) -> bool {
        self.points.is_empty()
    }
}

/// The egui app: reads `Published` at each frame and draws.
struct App {
    params: Arc<MoodscopeParams>,
    published: Arc<Published>,
    gui: Option<GuiContext>,
    snapshot: MoodSnapshot,
    history: History,
    /// Which settings show at the bottom.
    tab: SettingsTab,
    /// Height of the settings' rows when last drawn.
    settings_content: f32,
    /// The OSC host and prefix being typed (applied when the field loses focus or on Enter).
    osc_host: String,
    osc_prefix: String,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum SettingsTab {
    Analysis,
    Outputs,
}

impl NiceEguiApp for App {
    fn build(
        &mut self,
        egui_ctx: egui::Context,
        nice_gui_ctx: GuiContext,
        frame: &mut Frame,
    ) -> Result<(), nice_plug_egui::baseview::HandlerError> {
        egui_ctx.set_visuals(egui::Visuals::dark());
        egui_ctx.all_styles_mut(|style| {
            style.visuals.panel_fill = BACKGROUND;
            for (text_style, font) in style.text_styles.iter_mut() {
                if matches!(text_style, egui::TextStyle::Body | egui::TextStyle::Button) {
                    font.size = 16.0;
                }
            }
        });
        frame.set_clear_color(BACKGROUND.into());
        self.gui = Some(nice_gui_ctx);
        Ok(())
    }

    fn ui(&mut self, ui: &mut Ui, _frame: &mut Frame) {
        if let Some(snapshot) = self.published.read() {
            self.snapshot = snapshot;
        }
        let now = clock().as_secs_f64();
        self.history.record(&self.snapshot, now);
        ui.ctx().request_repaint_after(REPAINT_EVERY);

        let (names, groups) = label_set(&self.published, &self.params);
        let min = Vec2::new(MIN_SIZE.width as f32, MIN_SIZE.height as f32);
        ResizableWindow::new("moodscope-editor")
            .min_size(min)
            .show(ui, |ui| {
                egui::Frame::NONE
                    .inner_margin(egui::Margin::symmetric(14, 8))
                    .show(ui, |ui| self.contents(ui, &names, &groups, now));
            });
    }

    fn resized(&mut self, new_size: nice_plug_egui::baseview::WindowSize) {
        let size = EditorSize {
            width: new_size.logical.width.round() as u32,
            height: new_size.logical.height.round() as u32,
        };
        *self
            .params
            .editor_size
            .write()
            .unwrap_or_else(|e| e.into_inner()) = size;
    }

    fn editor_closed(&mut self) {
        self.gui = None;
    }
}

impl App {
    /// Everything, top to bottom; the timeline takes the height the rest leaves.
    fn contents(&mut self, ui: &mut Ui, names: &[String], groups: &[usize], now: f64) {
        ui.spacing_mut().item_spacing = Vec2::new(8.0, 6.0);
        // The mood and the meters grow with the window (1: the default size), to be read from
        // further away on a bigger screen.
        let scale = (ui.available_height() / 620.0)
            .min(ui.available_width() / 870.0)
            .clamp(0.7, 2.5);
        header(
            ui,
            &self.snapshot,
            self.published.health(),
            names,
            groups,
            scale,
        );
        status(ui, &self.published, &self.params);
        ui.add_space(4.0);
        ui.horizontal_top(|ui| {
            let map_side = (140.0 * scale).max(110.0);
            let meters_width = (ui.available_width() - map_side - 12.0).max(200.0);
            ui.allocate_ui(Vec2::new(meters_width, map_side), |ui| {
                meters(ui, &self.snapshot, names, scale)
            });
            mood_map(ui, &self.history, &self.snapshot, names, now, map_side);
        });
        ui.add_space(4.0);
        // The settings take what their rows need (as last drawn: that depends on the tab, the
        // width and the font), up to about 60% of what is left (all of the analysis settings at
        // the default size); they scroll beyond.
        let available = ui.available_height();
        let tabs = 34.0;
        let room = (tabs + self.settings_content).min((available * 0.6).max(tabs + 60.0));
        let height = (available - room - 8.0).max(80.0);
        timeline(ui, &self.history, names, now, height);
        if let Some(gui) = self.gui.clone() {
            self.settings(ui, &gui, room - tabs);
        }
    }

    /// The settings: a tab for the analysis, one for the outputs.
    fn settings(&mut self, ui: &mut Ui, gui: &GuiContext, max_height: f32) {
        ui.add_space(4.0);
        ui.horizontal(|ui| {
            ui.selectable_value(&mut self.tab, SettingsTab::Analysis, "Analysis settings");
            ui.selectable_value(&mut self.tab, SettingsTab::Outputs, "MIDI and OSC out");
        });
        let scrolled = egui::ScrollArea::vertical()
            .id_salt("moodscope-settings-scroll")
            .max_height(max_height)
            .auto_shrink([false, true])
            .show(ui, |ui| match self.tab {
                SettingsTab::Analysis => analysis_settings(ui, &self.params, gui),
                SettingsTab::Outputs => {
                    output_settings(ui, &self.params, gui);
                    osc_text_settings(ui, &self.params, &mut self.osc_host, &mut self.osc_prefix);
                }
            });
        let content = scrolled.content_size.y;
        if (content - self.settings_content).abs() > 0.5 {
            self.settings_content = content;
            ui.ctx().request_repaint();
        }
    }
}

/// The label names and decision groups published by the head, or the chosen mood set's names
/// (each its own group) before any head is loaded, so that the meters show even when the models
/// are missing.
fn label_set(published: &Published, params: &MoodscopeParams) -> (Vec<String>, Arc<[usize]>) {
    let labels = published.label_set();
    if labels.names.is_empty() {
        let set = params.moods.value().set();
        let names = set.labels().iter().map(|m| m.to_string()).collect();
        (names, Arc::from(Vec::new()))
    } else {
        (labels.names.to_vec(), labels.groups)
    }
}

/// The two groups of moods an uncertain verdict hesitates between, each named by its most
/// probable mood ("Happy or Sad?"): the groups are what the verdict decides between (Happy and
/// Calm together, Angry and Scary together, for the calibrated readout; `groups` empty: each
/// mood its own). Both are picked by the verdict's own rule, `engine::dominant_of`: the leading
/// group, then the leading group of the rest.
fn hesitation(snapshot: &MoodSnapshot, names: &[String], groups: &[usize]) -> Option<String> {
    let labels = snapshot.labels.min(names.len());
    let probabilities = &snapshot.probabilities[..labels];
    let group_of = |i: usize| groups.get(i).copied().unwrap_or(i);
    let first = dominant_of(probabilities, groups);
    let rest: Vec<f32> = (0..labels)
        .map(|i| {
            if group_of(i) == group_of(first) {
                f32::NEG_INFINITY
            } else {
                probabilities[i]
            }
        })
        .collect();
    let second = dominant_of(&rest, groups);
    (group_of(second) != group_of(first)).then(|| format!("{} or {}?", names[first], names[second]))
}

/// The dominant mood and its confidence, large; music presence on the right.
fn header(
    ui: &mut Ui,
    snapshot: &MoodSnapshot,
    health: Health,
    names: &[String],
    groups: &[usize],
    scale: f32,
) {
    let size = Vec2::new(ui.available_width(), 96.0 * scale);
    let (rect, _) = ui.allocate_exact_size(size, Sense::hover());
    let painter = ui.painter_at(rect);
    let left = rect.left_center() + Vec2::new(8.0, 0.0);
    match snapshot.dominant {
        Some(d) if d < names.len() => {
            let colour = label_colour(d, &names[d]);
            let mood = painter.text(
                left,
                Align2::LEFT_CENTER,
                names[d].to_uppercase(),
                FontId::proportional(72.0 * scale),
                colour,
            );
            painter.text(
                Pos2::new(mood.right() + 20.0 * scale, rect.center().y + 8.0 * scale),
                Align2::LEFT_CENTER,
                format!("{:.0} %", snapshot.confidence * 100.0),
                FontId::proportional(48.0 * scale),
                Color32::WHITE,
            );
        }
        _ if snapshot.uncertain && health != Health::Failed => {
            let word = painter.text(
                left,
                Align2::LEFT_CENTER,
                "Uncertain",
                FontId::proportional(56.0 * scale),
                DIM_TEXT,
            );
            if let Some(hint) = hesitation(snapshot, names, groups) {
                painter.text(
                    Pos2::new(word.right() + 18.0 * scale, rect.center().y + 8.0 * scale),
                    Align2::LEFT_CENTER,
                    hint,
                    FontId::proportional(28.0 * scale),
                    DIM_TEXT,
                );
            }
        }
        _ => {
            let text = match (health, snapshot.sequence) {
                (Health::Failed, _) => "Not analysing",
                (_, 0) => "Listening…",
                _ => "No music",
            };
            painter.text(
                left,
                Align2::LEFT_CENTER,
                text,
                FontId::proportional(56.0 * scale),
                DIM_TEXT,
            );
        }
    }
    presence(ui, &painter, rect, snapshot.presence, scale);
}

/// "Music" and a bar of the presence, at the right end of the header.
fn presence(ui: &Ui, painter: &egui::Painter, header: Rect, presence: f32, scale: f32) {
    let width = (header.width() * 0.25).clamp(120.0, 240.0 * scale);
    let area = Rect::from_min_max(
        Pos2::new(header.right() - width - 8.0, header.top() + 14.0 * scale),
        Pos2::new(header.right() - 8.0, header.bottom() - 14.0 * scale),
    );
    painter.text(
        area.left_top(),
        Align2::LEFT_TOP,
        format!("Music {:.0} %", presence.clamp(0.0, 1.0) * 100.0),
        FontId::proportional(24.0 * scale.min(1.5)),
        ui.visuals().strong_text_color(),
    );
    let bar = Rect::from_min_max(
        Pos2::new(area.left(), area.bottom() - 18.0 * scale),
        area.right_bottom(),
    );
    bar_meter(painter, bar, presence, Color32::from_rgb(0xE0, 0xE0, 0xE0));
}

/// A horizontal bar filled to `value` (0–1).
fn bar_meter(painter: &egui::Painter, rect: Rect, value: f32, colour: Color32) {
    painter.rect_filled(rect, 4.0, PANEL);
    let value = if value.is_finite() {
        value.clamp(0.0, 1.0)
    } else {
        0.0
    };
    let filled = Rect::from_min_size(rect.min, Vec2::new(rect.width() * value, rect.height()));
    painter.rect_filled(filled, 4.0, colour);
}

/// The status line (plain words, coloured by health), the model in use, dropped audio.
fn status(ui: &mut Ui, published: &Published, params: &MoodscopeParams) {
    let status = published.status();
    let colour = match status.health {
        Health::Starting => DIM_TEXT,
        Health::Running => Color32::from_rgb(0x00, 0xC0, 0x8C),
        Health::Degraded => OTHER_COLOURS[0],
        Health::Failed => Color32::from_rgb(0xFF, 0x70, 0x40),
    };
    let prefix = match status.health {
        Health::Failed => "Problem: ",
        Health::Degraded => "Warning: ",
        _ => "",
    };
    ui.label(
        RichText::new(format!("{prefix}{}", status.message))
            .size(18.0)
            .color(colour),
    );
    let mut details = format!("Model: {}", model_in_use(params));
    let dropped = published.dropped_samples();
    if dropped > 0 {
        details.push_str(&format!(
            " · {dropped} samples of audio dropped (the analysis fell behind)"
        ));
    }
    let restarts = published.restarts();
    if restarts > 0 {
        details.push_str(&format!(" · analysis restarted {restarts}×"));
    }
    ui.label(RichText::new(details).size(15.0).color(DIM_TEXT));
    let outputs = published.outputs_status();
    for line in outputs.lines().filter(|l| !l.trim().is_empty()) {
        ui.label(
            RichText::new(format!("Output problem: {line}"))
                .size(16.0)
                .color(OTHER_COLOURS[0]),
        );
    }
}

/// "YAMNet, 5 moods, recommended readout" or "VGGish, head mine.json".
fn model_in_use(params: &MoodscopeParams) -> String {
    let backbone = match params.backbone.value() {
        BackboneParam::Yamnet => "YAMNet",
        BackboneParam::Vggish => "VGGish",
    };
    let moods = params.moods.value().set().labels().len();
    let head = match params.head.value() {
        HeadParam::Default => format!("{moods} moods, recommended readout"),
        HeadParam::Uncalibrated => format!("{moods} moods, uncalibrated"),
        HeadParam::File => match params.head_file.try_read().ok().and_then(|f| (*f).clone()) {
            Some(path) => format!(
                "head {}",
                path.file_name().unwrap_or_default().to_string_lossy()
            ),
            None => "head file not chosen (default head in use)".to_owned(),
        },
    };
    format!("{backbone}, {head}")
}

/// One meter per label: name, bar, percentage.
fn meters(ui: &mut Ui, snapshot: &MoodSnapshot, names: &[String], scale: f32) {
    let rows = names.len().min(MAX_LABELS);
    let row_height = if rows <= 4 { 40.0 } else { 24.0 } * scale;
    let (rect, _) = ui.allocate_exact_size(
        Vec2::new(ui.available_width(), row_height * rows as f32),
        Sense::hover(),
    );
    let painter = ui.painter_at(rect);
    let name_width = 130.0 * scale;
    let value_width = 90.0 * scale;
    let font = FontId::proportional(row_height * 0.65);
    for (i, name) in names.iter().take(rows).enumerate() {
        let top = rect.top() + i as f32 * row_height;
        let row = Rect::from_min_size(
            Pos2::new(rect.left(), top),
            Vec2::new(rect.width(), row_height),
        );
        let colour = label_colour(i, name);
        let value = if i < snapshot.labels {
            snapshot.probabilities[i]
        } else {
            0.0
        };
        painter.text(
            row.left_center() + Vec2::new(8.0, 0.0),
            Align2::LEFT_CENTER,
            name,
            font.clone(),
            colour,
        );
        let bar = Rect::from_min_max(
            Pos2::new(row.left() + name_width, row.top() + 5.0),
            Pos2::new(row.right() - value_width, row.bottom() - 5.0),
        );
        bar_meter(&painter, bar, value, colour);
        painter.text(
            row.right_center() - Vec2::new(8.0, 0.0),
            Align2::RIGHT_CENTER,
            format!("{:.0} %", value.clamp(0.0, 1.0) * 100.0),
            font.clone(),
            Color32::WHITE,
        );
    }
}

/// Where a mood's name sits on the map (the circumplex angle of `head::circumplex_angle`).
fn map_position(centre: Pos2, radius: f32, valence: f32, arousal: f32) -> Pos2 {
    let clamp = |v: f32| {
        if v.is_finite() {
            v.clamp(-1.0, 1.0)
        } else {
            0.0
        }
    };
    Pos2::new(
        centre.x + radius * clamp(valence),
        centre.y - radius * clamp(arousal),
    )
}

/// The mood map: valence across (unpleasant left, pleasant right), arousal up (calm below,
/// energetic above), the quadrants' moods at their places on Russell's circumplex, the last
/// `TRAIL_SECONDS` as a fading trail and the current point as a dot in the dominant mood's
/// colour (white when there is none).
fn mood_map(
    ui: &mut Ui,
    history: &History,
    snapshot: &MoodSnapshot,
    names: &[String],
    now: f64,
    side: f32,
) {
    let (rect, _) = ui.allocate_exact_size(Vec2::splat(side), Sense::hover());
    let painter = ui.painter_at(rect);
    painter.rect_filled(rect, 4.0, PANEL);
    let centre = rect.center();
    let radius = side * 0.5 - 6.0;
    let axis = Stroke::new(1.0, Color32::from_gray(80));
    painter.hline(rect.x_range(), centre.y, axis);
    painter.vline(centre.x, rect.y_range(), axis);
    painter.circle_stroke(centre, radius, Stroke::new(1.0, Color32::from_gray(60)));
    let small = FontId::proportional((side / 11.0).clamp(10.0, 16.0));
    // The moods of the head in use, each at its place on the circumplex (Angry and Scary are
    // 17 degrees apart: their names are moved apart so that both stay legible).
    let placed: Vec<(std::sync::Arc<egui::Galley>, Color32, Pos2)> = names
        .iter()
        .enumerate()
        .filter_map(|(i, name)| {
            let angle = crate::head::circumplex_angle(name)?.to_radians();
            let at = map_position(centre, radius * 0.78, angle.cos(), angle.sin());
            let colour = label_colour(i, name);
            Some((
                painter.layout_no_wrap(name.clone(), small.clone(), colour),
                colour,
                at,
            ))
        })
        .collect();
    let wanted: Vec<Rect> = placed
        .iter()
        .map(|(galley, _, at)| Rect::from_center_size(*at, galley.size()))
        .collect();
    for ((galley, colour, _), place) in placed.iter().zip(map_label_places(&wanted, rect)) {
        painter.galley(place.min, galley.clone(), *colour);
    }
    let trail: Vec<(f64, Pos2)> = history
        .points
        .iter()
        .filter(|p| p.at >= now - TRAIL_SECONDS)
        .filter_map(|p| Some((p.at, map_position(centre, radius, p.valence?, p.arousal?))))
        .collect();
    for pair in trail.windows(2) {
        let age = ((now - pair[1].0) / TRAIL_SECONDS).clamp(0.0, 1.0) as f32;
        let alpha = (255.0 * (1.0 - age)) as u8;
        painter.line_segment(
            [pair[0].1, pair[1].1],
            Stroke::new(2.0, Color32::from_white_alpha(alpha)),
        );
    }
    match (snapshot.valence, snapshot.arousal) {
        (Some(v), Some(a)) => {
            let colour = snapshot
                .dominant
                .filter(|&d| d < names.len())
                .map_or(Color32::WHITE, |d| label_colour(d, &names[d]));
            let dot = map_position(centre, radius, v, a);
            painter.circle_filled(dot, side / 28.0 + 3.0, colour);
            painter.circle_stroke(dot, side / 28.0 + 3.0, Stroke::new(1.5, Color32::BLACK));
        }
        _ => {
            painter.text(
                centre,
                Align2::CENTER_CENTER,
                "no valence/arousal",
                small,
                DIM_TEXT,
            );
        }
    }
    painter.rect_stroke(
        rect,
        4.0,
        Stroke::new(1.0, Color32::from_gray(60)),
        StrokeKind::Inside,
    );
}

/// Where the mood map's names go: each where it wants to be (`wanted`, in the head's label
/// order), moved up or down, away from the names placed before it, until it overlaps none of
/// them, and kept inside `bounds` as far as its size allows.
fn map_label_places(wanted: &[Rect], bounds: Rect) -> Vec<Rect> {
    let inside = |r: Rect| {
        let dx = (bounds.left() - r.left()).max(0.0) - (r.right() - bounds.right()).max(0.0);
        let dy = (bounds.top() - r.top()).max(0.0) - (r.bottom() - bounds.bottom()).max(0.0);
        r.translate(Vec2::new(dx, dy))
    };
    let mut placed: Vec<Rect> = Vec::with_capacity(wanted.len());
    for &want in wanted {
        let mut rect = inside(want);
        // Each step clears one overlap; a handful of names needs a handful of steps.
        for _ in 0..=wanted.len() * 2 {
            let Some(other) = placed.iter().find(|p| p.intersects(rect)) else {
                break;
            };
            let down = rect.center().y >= other.center().y;
            let dy = if down {
                other.bottom() - rect.top() + 1.0
            } else {
                other.top() - rect.bottom() - 1.0
            };
            let moved = rect.translate(Vec2::new(0.0, dy));
            // At an edge of the map, go the other way round the name in the way.
            rect = if inside(moved) == moved {
                moved
            } else if down {
                rect.translate(Vec2::new(0.0, other.top() - rect.bottom() - 1.0))
            } else {
                rect.translate(Vec2::new(0.0, other.bottom() - rect.top() + 1.0))
            };
        }
        placed.push(rect);
    }
    placed
}

/// The last minute of every mood, now at the right edge.
fn timeline(ui: &mut Ui, history: &History, names: &[String], now: f64, height: f32) {
    let (rect, _) = ui.allocate_exact_size(Vec2::new(ui.available_width(), height), Sense::hover());
    let painter = ui.painter_at(rect);
    painter.rect_filled(rect, 4.0, PANEL);
    let plot = rect.shrink2(Vec2::new(8.0, 18.0));
    let grid = Stroke::new(1.0, Color32::from_gray(70));
    for level in [0.0, 0.5, 1.0] {
        let y = plot.bottom() - plot.height() * level;
        painter.hline(plot.x_range(), y, grid);
        if level > 0.0 {
            painter.text(
                Pos2::new(plot.left() + 2.0, y - 1.0),
                Align2::LEFT_BOTTOM,
                format!("{:.0} %", level * 100.0),
                FontId::proportional(12.0),
                DIM_TEXT,
            );
        }
    }
    for seconds in [15.0, 30.0, 45.0] {
        let x = plot.right() - plot.width() * (seconds / TIMELINE_SECONDS) as f32;
        painter.vline(x, plot.y_range(), grid);
        painter.text(
            Pos2::new(x, rect.bottom() - 2.0),
            Align2::CENTER_BOTTOM,
            format!("−{seconds:.0} s"),
            FontId::proportional(12.0),
            DIM_TEXT,
        );
    }
    painter.text(
        rect.center_top() + Vec2::new(0.0, 2.0),
        Align2::CENTER_TOP,
        "Last minute",
        FontId::proportional(13.0),
        DIM_TEXT,
    );
    let to_x = |t: f64| plot.right() - plot.width() * ((now - t) / TIMELINE_SECONDS) as f32;
    for (label, name) in names.iter().enumerate().take(MAX_LABELS) {
        let points: Vec<Pos2> = history
            .points
            .iter()
            .filter(|point| label < point.labels)
            .map(|point| {
                let p = point.probabilities[label];
                let value = if p.is_finite() {
                    p.clamp(0.0, 1.0)
                } else {
                    0.0
                };
                Pos2::new(
                    to_x(point.at).max(plot.left()),
                    plot.bottom() - plot.height() * value,
                )
            })
            .collect();
        if points.len() >= 2 {
            painter.line(points, Stroke::new(2.5, label_colour(label, name)));
        }
    }
    painter.rect_stroke(
        rect,
        4.0,
        Stroke::new(1.0, Color32::from_gray(60)),
        StrokeKind::Inside,
    );
}

/// The analysis settings: one slider per parameter.
fn analysis_settings(ui: &mut Ui, params: &MoodscopeParams, gui: &GuiContext) {
    let setter = gui.param_setter();
    let s = &setter;
    let cells = vec![
        cell("Smoothing", &params.smoothing, s),
        cell("Sensitivity", &params.sensitivity, s),
        cell("Window hop", &params.hop, s),
        cell("Mood set", &params.moods, s),
        cell("Backbone", &params.backbone, s),
        cell("Head", &params.head, s),
        cell("Analyse while bypassed", &params.analyse_while_bypassed, s),
    ];
    param_grid(ui, "moodscope-settings", cells);
}

/// The MIDI CC and OSC parameters.
fn output_settings(ui: &mut Ui, params: &MoodscopeParams, gui: &GuiContext) {
    let setter = gui.param_setter();
    let s = &setter;
    let cells = vec![
        cell("MIDI out", &params.midi_out, s),
        cell("Channel", &params.midi_channel, s),
        cell("Resolution", &params.midi_resolution, s),
        cell("CC mood 1", &params.cc_mood_1, s),
        cell("CC mood 2", &params.cc_mood_2, s),
        cell("CC mood 3", &params.cc_mood_3, s),
        cell("CC mood 4", &params.cc_mood_4, s),
        cell("CC mood 5", &params.cc_mood_5, s),
        cell("CC mood 6", &params.cc_mood_6, s),
        cell("CC dominant", &params.cc_dominant, s),
        cell("CC presence", &params.cc_presence, s),
        cell("CC valence", &params.cc_valence, s),
        cell("CC arousal", &params.cc_arousal, s),
        cell("OSC out", &params.osc_out, s),
        cell("OSC port", &params.osc_port, s),
    ];
    param_grid(ui, "moodscope-outputs", cells);
}

/// A labelled parameter slider.
type Cell<'a> = (&'a str, Box<dyn Fn(&mut Ui) + 'a>);

fn cell<'a, P: Param>(label: &'a str, param: &'a P, setter: &'a ParamSetter<'a>) -> Cell<'a> {
    let widget = move |ui: &mut Ui| {
        ui.add(ParamSlider::for_param(param, setter).with_width(100.0));
    };
    (label, Box::new(widget))
}

/// Labelled sliders in as many columns (up to three) as the width holds.
fn param_grid(ui: &mut Ui, id: &str, cells: Vec<Cell<'_>>) {
    let columns = ((ui.available_width() / 300.0).floor() as usize).clamp(1, 3);
    egui::Grid::new(id)
        .num_columns(columns * 2)
        .spacing(Vec2::new(10.0, 6.0))
        .show(ui, |ui| {
            for (i, (label, widget)) in cells.iter().enumerate() {
                ui.label(*label);
                widget(ui);
                if (i + 1) % columns == 0 {
                    ui.end_row();
                }
            }
        });
}

/// The OSC host and prefix: text fields, applied when the field loses focus.
fn osc_text_settings(
    ui: &mut Ui,
    params: &MoodscopeParams,
    host: &mut String,
    prefix: &mut String,
) {
    ui.horizontal(|ui| {
        for (label, field, buffer) in [
            ("OSC host", &params.osc_host, host),
            ("OSC prefix", &params.osc_prefix, prefix),
        ] {
            ui.label(label);
            let edit = ui.add(egui::TextEdit::singleline(buffer).desired_width(180.0));
            if edit.lost_focus() {
                let mut saved = field.write().unwrap_or_else(|e| e.into_inner());
                if *saved != *buffer {
                    saved.clone_from(buffer);
                }
            } else if !edit.has_focus() {
                if let Ok(saved) = field.try_read() {
                    if *saved != *buffer {
                        buffer.clone_from(&saved);
                    }
                }
            }
            ui.add_space(12.0);
        }
    });
}

/// The plugin's `Editor`: an egui editor whose size follows the session's saved size.
///
/// nice-plug-egui's `EguiEditorState` keeps its size privately, and the session is loaded after
/// the editor is created; so the egui editor is (re)built from `MoodscopeParams::editor_size`
/// whenever that differs from the size it was built with and no window is open.
pub struct MoodscopeEditor {
    params: Arc<MoodscopeParams>,
    published: Arc<Published>,
    repaint: RepaintNotifier,
    built: Mutex<Built>,
}

struct Built {
    size: EditorSize,
    state: Arc<EguiEditorState>,
    editor: EguiEditor<App>,
}

impl MoodscopeEditor {
    pub fn new(params: Arc<MoodscopeParams>, published: Arc<Published>) -> Self {
        let repaint = RepaintNotifier::new();
        let size = saved_size(&params);
        let built = build(&params, &published, &repaint, size);
        Self {
            params,
            published,
            repaint,
            built: Mutex::new(built),
        }
    }

    /// The egui editor for the saved size, rebuilt if the session changed it while closed.
    fn current<R>(&self, f: impl FnOnce(&EguiEditor<App>) -> R) -> R {
        let mut built = self.built.lock().unwrap_or_else(|e| e.into_inner());
        let size = saved_size(&self.params);
        if size != built.size && !built.state.is_open() {
            *built = build(&self.params, &self.published, &self.repaint, size);
        }
        f(&built.editor)
    }
}

fn saved_size(params: &MoodscopeParams) -> EditorSize {
    let size = *params.editor_size.read().unwrap_or_else(|e| e.into_inner());
    EditorSize {
        width: size.width.max(MIN_SIZE.width),
        height: size.height.max(MIN_SIZE.height),
    }
}

fn build(
    params: &Arc<MoodscopeParams>,
    published: &Arc<Published>,
    repaint: &RepaintNotifier,
    size: EditorSize,
) -> Built {
    let state =
        EguiEditorState::from_size(LogicalSize::new(size.width as f32, size.height as f32), 1.0);
    let settings = EguiNiceSettings::new()
        .with_tile("Moodscope")
        .with_resize_hint(
            ResizeHint::resizable().with_min_logical_size(LogicalSize::new(
                MIN_SIZE.width as f32,
                MIN_SIZE.height as f32,
            )),
        )
        .with_repaint_poll_interval(REPAINT_EVERY);
    let app = App {
        params: params.clone(),
        published: published.clone(),
        gui: None,
        snapshot: MoodSnapshot::default(),
        history: History::default(),
        tab: SettingsTab::Analysis,
        settings_content: 64.0,
        osc_host: String::new(),
        osc_prefix: String::new(),
    };
    let editor = create_egui_editor(state.clone(), repaint.clone(), settings, app)
        .expect("nice-plug-egui always creates an editor");
    Built {
        size,
        state,
        editor,
    }
}

impl Editor for MoodscopeEditor {
    type Handle = EguiEditorHandle;

    fn spawn(
        &self,
        parent: Option<ParentWindowHandle>,
        wait_for_parent: bool,
        fallback_scale_factor: Option<f64>,
        gui_context: GuiContext,
        host: Option<HostMethods>,
    ) -> Result<SpawnedEditor<Self::Handle>, Box<dyn Error>> {
        self.current(|editor| {
            editor.spawn(
                parent,
                wait_for_parent,
                fallback_scale_factor,
                gui_context,
                host,
            )
        })
    }

    fn size(&self) -> NativeSize<u32> {
        self.current(|editor| editor.size())
    }

    fn resize_hint(&self) -> ResizeHint {
        self.current(|editor| editor.resize_hint())
    }

    fn track_info_updated(&self, info: TrackInfo) {
        self.current(|editor| editor.track_info_updated(info))
    }

    unsafe fn assume_standalone_in_process(&self) {
        // SAFETY: the caller upholds `Editor::assume_standalone_in_process`'s contract.
        self.current(|editor| unsafe { editor.assume_standalone_in_process() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_four_moods_have_four_distinct_colours_whatever_the_case() {
        let colours: Vec<Color32> = ["happy", "SAD", "Angry", "scary"]
            .iter()
            .enumerate()
            .map(|(i, n)| label_colour(i, n))
            .collect();
        let by_name = |n: &str| MOOD_COLOURS.iter().find(|c| c.0 == n).unwrap().1;
        assert_eq!(colours, ["Happy", "Sad", "Angry", "Scary"].map(by_name));
        assert_eq!(label_colour(7, "tender"), by_name("Calm"));
        assert_ne!(label_colour(4, "Calm"), label_colour(5, "Tense"));
    }

    /// The names of every mood set on the smallest and the default mood map: each near its
    /// place on the circumplex, none over another, all inside the map.
    #[test]
    fn the_mood_map_names_never_overlap() {
        let sets: [&[&str]; 3] = [
            &["Happy", "Sad", "Angry", "Scary"],
            &["Happy", "Sad", "Calm", "Angry", "Scary"],
            &["Happy", "Sad", "Calm", "Exciting", "Angry", "Scary"],
        ];
        for side in [110.0f32, 140.0, 350.0] {
            let bounds = Rect::from_min_size(Pos2::new(700.0, 160.0), Vec2::splat(side));
            let (centre, radius) = (bounds.center(), side * 0.5 - 6.0);
            let font = (side / 11.0).clamp(10.0, 16.0);
            for set in sets {
                // About the size egui's proportional font gives these names.
                let wanted: Vec<Rect> = set
                    .iter()
                    .map(|name| {
                        let angle = crate::head::circumplex_angle(name).unwrap().to_radians();
                        let at = map_position(centre, radius * 0.78, angle.cos(), angle.sin());
                        let size = Vec2::new(0.62 * font * name.len() as f32, 1.25 * font);
                        Rect::from_center_size(at, size)
                    })
                    .collect();
                let places = map_label_places(&wanted, bounds);
                for (i, a) in places.iter().enumerate() {
                    assert!(
                        bounds.contains_rect(*a),
                        "{} outside the map at {side}",
                        set[i]
                    );
                    assert!(
                        (a.center() - wanted[i].center()).length() < 2.0 * font,
                        "{} moved far from its place at {side}",
                        set[i]
                    );
                    for (j, b) in places.iter().enumerate().skip(i + 1) {
                        assert!(!a.intersects(*b), "{} over {} at {side}", set[i], set[j]);
                    }
                }
                // Angry and Scary collide where they want to be: the test would pass unmoved.
                if side == 140.0 {
                    let (angry, scary) = (set.len() - 2, set.len() - 1);
                    assert!(wanted[angry].intersects(wanted[scary]));
                }
            }
        }
    }

    #[test]
    fn an_uncertain_verdict_names_the_two_groups_it_hesitates_between() {
        let names: Vec<String> = ["Happy", "Sad", "Calm", "Angry", "Scary"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let mut snapshot = MoodSnapshot {
            labels: 5,
            uncertain: true,
            ..MoodSnapshot::default()
        };
        snapshot.probabilities[..5].copy_from_slice(&[0.25, 0.4, 0.2, 0.1, 0.05]);
        // Happy and Calm decide together (0.45 against Sad's 0.4): the pleasant group, named by
        // Happy, against Sad.
        let calibrated = crate::head::CALIBRATED_GROUPS;
        assert_eq!(
            hesitation(&snapshot, &names, &calibrated).as_deref(),
            Some("Happy or Sad?")
        );
        // Each mood its own group: the two largest moods.
        assert_eq!(
            hesitation(&snapshot, &names, &[]).as_deref(),
            Some("Sad or Happy?")
        );
        snapshot.probabilities[..5].copy_from_slice(&[0.3, 0.1, 0.28, 0.12, 0.2]);
        assert_eq!(
            hesitation(&snapshot, &names, &calibrated).as_deref(),
            Some("Happy or Scary?")
        );
        assert_eq!(
            hesitation(&snapshot, &names, &[]).as_deref(),
            Some("Happy or Calm?")
        );
    }

    #[test]
    fn the_history_keeps_each_publication_once_and_only_the_last_minute() {
        let mut history = History::default();
        let mut snapshot = MoodSnapshot {
            labels: 4,
            ..MoodSnapshot::default()
        };
        history.record(&snapshot, 0.0);
        assert!(history.is_empty(), "nothing published yet");
        for i in 1..=100u64 {
            snapshot.sequence = i;
            snapshot.published_at = Duration::from_secs(i);
            history.record(&snapshot, i as f64);
            history.record(&snapshot, i as f64);
        }
        assert_eq!(
            history.len(),
            62,
            "61 s of points at 1 per second, plus the margin"
        );
    }
}
