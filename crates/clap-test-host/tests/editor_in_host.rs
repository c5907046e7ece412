//! The plugin's editor in a real X11 window, opened by the in-repo CLAP host while real music
//! plays, and its screenshot (kept in `target/test-artefacts/`).
//!
//! Needs an X server: the one in `DISPLAY`, else an Xvfb this test starts on a free display and
//! stops at the end (`apt-get install xvfb`; `scripts/test.sh` does). Needs the release bundle
//! (`cargo xtask bundle moodscope --release`), the models and `hyperrogue-music`.

mod common;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use clap_test_host::gui::{EditorReport, Image};
use common::{models, music, release_clap, run_child, tail, target_dir, Finished, MUSIC};

/// The editor's colours of the default five moods (Okabe-Ito), as
/// `moodscope::editor::MOOD_COLOURS`.
const MOOD_COLOURS: [(&str, [u8; 3]); 5] = [
    ("Happy", [0xF0, 0xE4, 0x42]),
    ("Sad", [0x56, 0xB4, 0xE9]),
    ("Calm", [0x00, 0x9E, 0x73]),
    ("Angry", [0xD5, 0x5E, 0x00]),
    ("Scary", [0xCC, 0x79, 0xA7]),
];
/// The colour of a problem in the status line.
const PROBLEM_COLOUR: [u8; 3] = [0xFF, 0x70, 0x40];
/// The editor's background.
const BACKGROUND: [u8; 3] = [0x12, 0x12, 0x16];

/// One editor at a time: they share the X server and the machine's two cores.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// An X display: `DISPLAY` if set, else an Xvfb started here (stopped on drop).
struct Display {
    name: String,
    xvfb: Option<Child>,
}

impl Display {
    fn get() -> Self {
        if let Some(name) = std::env::var("DISPLAY").ok().filter(|d| !d.is_empty()) {
            return Self { name, xvfb: None };
        }
        for number in 90..140 {
            let socket = PathBuf::from(format!("/tmp/.X11-unix/X{number}"));
            let lock = PathBuf::from(format!("/tmp/.X{number}-lock"));
            if socket.exists() || lock.exists() {
                continue;
            }
            let name = format!(":{number}");
            let child = Command::new("Xvfb")
                .args([&name, "-screen", "0", "1920x1200x24", "-nolisten", "tcp"])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn();
            let mut child = match child {
                Ok(child) => child,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => panic!(
                    "Xvfb is missing and DISPLAY is not set: install it with `apt-get install xvfb` \
                     (scripts/test.sh does)"
                ),
                Err(e) => panic!("starting Xvfb: {e}"),
            };
            let started = Instant::now();
            while started.elapsed() < Duration::from_secs(10) {
                if let Some(status) = child.try_wait().expect("waiting for Xvfb") {
                    let mut err = String::new();
                    if let Some(mut stderr) = child.stderr.take() {
                        let _ = stderr.read_to_string(&mut err);
                    }
                    eprintln!("Xvfb {name} exited ({status}): {err}; trying another display");
                    break;
                }
                if socket.exists() {
                    return Self {
                        name,
                        xvfb: Some(child),
                    };
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!("could not start Xvfb on any display from :90 to :139");
    }
}

impl Drop for Display {
    /// Stops the Xvfb started here (SIGTERM, so that it removes its socket and lock file).
    fn drop(&mut self) {
        if let Some(child) = &mut self.xvfb {
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            let asked = Instant::now();
            while asked.elapsed() < Duration::from_secs(5) {
                if let Ok(Some(_)) = child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn artefact(name: &str) -> PathBuf {
    let dir = target_dir().join("test-artefacts");
    std::fs::create_dir_all(&dir).expect("creating target/test-artefacts");
    dir.join(name)
}

/// Runs `clap-test-host editor` on `display` with `models`; returns its report.
fn open_editor(
    display: &Display,
    models: &Path,
    screenshot: &Path,
    extra: &[&str],
) -> EditorReport {
    let _ = std::fs::remove_file(screenshot);
    let mut command = Command::new(env!("CARGO_BIN_EXE_clap-test-host"));
    command
        .arg("editor")
        .arg("--plugin")
        .arg(release_clap())
        .arg("--input")
        .arg(music(MUSIC))
        .arg("--screenshot")
        .arg(screenshot)
        .args(extra)
        .env("DISPLAY", &display.name)
        .env("MOODSCOPE_MODELS", models)
        .env_remove("MOODSCOPE_WINDOW_LOG");
    let Finished {
        status,
        stdout,
        stderr,
        ..
    } = run_child(&mut command, Duration::from_secs(180));
    match status {
        Some(status) if status.success() => serde_json::from_str(&stdout)
            .unwrap_or_else(|e| panic!("unreadable report ({e}):\n{stdout}")),
        Some(status) => panic!(
            "clap-test-host editor failed ({status}):\n--- stderr ---\n{}\n--- stdout ---\n{stdout}",
            tail(&stderr, 6000)
        ),
        None => panic!(
            "clap-test-host editor did not finish within 180 s:\n--- stderr ---\n{}",
            tail(&stderr, 6000)
        ),
    }
}

/// The screenshot is a real frame of the editor: many colours, not mostly background or black.
fn assert_not_blank(image: &Image, what: &str) {
    let pixels = (image.width * image.height) as usize;
    assert!(pixels > 0, "{what}: empty screenshot");
    let colours = image.distinct_colours();
    assert!(
        colours >= 64,
        "{what}: only {colours} distinct colours: a blank frame, not the editor"
    );
    for (name, colour) in [("black", [0, 0, 0]), ("background", BACKGROUND)] {
        let share = image.count_near(colour, 2) as f64 / pixels as f64;
        assert!(
            share < 0.9,
            "{what}: {:.0} % of the screenshot is {name}: the editor did not draw",
            share * 100.0
        );
    }
}

#[test]
fn the_editor_shows_the_five_moods_while_music_plays() {
    let _serial = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let display = Display::get();
    let screenshot = artefact("editor.png");
    let report = open_editor(&display, &models(), &screenshot, &["--seconds", "8"]);
    eprintln!("{report:#?}");
    assert!(!report.closed_by_plugin);
    assert!(report.can_resize, "the editor must be resizable");
    assert!(
        report.size.0 >= 520 && report.size.1 >= 420,
        "editor size {:?}",
        report.size
    );
    assert!(report.blocks > 0);
    assert_eq!(report.restored_size, Some(report.size));
    let image = Image::load_png(&screenshot).expect("reading the screenshot back");
    assert_eq!((image.width, image.height), report.screenshot_size);
    assert_not_blank(&image, "editor with music");
    // Each mood's colour shows (its name and meter, its line in the timeline), and together
    // the meters hold about the whole bar length: the moods sum to 1.
    let mut total = 0;
    for (name, colour) in MOOD_COLOURS {
        let count = image.count_near(colour, 3);
        eprintln!("{name}: {count} pixels of its colour");
        assert!(
            count >= 100,
            "{name}'s colour {colour:02X?} covers only {count} pixels: its meter is not shown ({})",
            screenshot.display()
        );
        total += count;
    }
    assert!(
        // The meters' bars together span one bar's length (the moods sum to 1): about 500 x 13
        // pixels at the default size; names, the map and the timeline lines add about 1500.
        total >= 5000,
        "the five mood colours cover only {total} pixels: the meters show no values ({})",
        screenshot.display()
    );
    assert_eq!(
        image.count_near(PROBLEM_COLOUR, 3),
        0,
        "the editor shows a problem although the models are installed ({})",
        screenshot.display()
    );
}

#[test]
fn the_editor_opens_and_says_what_is_wrong_without_the_models() {
    let _serial = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let display = Display::get();
    let empty = tempfile::tempdir().expect("temporary folder");
    let screenshot = artefact("editor-models-missing.png");
    let report = open_editor(
        &display,
        empty.path(),
        &screenshot,
        &["--seconds", "4", "--resize", "760x560"],
    );
    eprintln!("{report:#?}");
    assert!(!report.closed_by_plugin);
    assert_eq!(report.resized_to, Some((760, 560)));
    let image = Image::load_png(&screenshot).expect("reading the screenshot back");
    assert_eq!(
        (image.width, image.height),
        (760, 560),
        "the host resized the editor"
    );
    assert_eq!(
        report.restored_size,
        Some((760, 560)),
        "the editor's size is saved with the session and restored from it"
    );
    assert_not_blank(&image, "editor without models");
    let problem = image.count_near(PROBLEM_COLOUR, 3);
    assert!(
        problem >= 50,
        "no problem shown in the status line ({problem} pixels of its colour; {})",
        screenshot.display()
    );
    for (name, colour) in MOOD_COLOURS {
        assert!(
            image.count_near(colour, 3) >= 20,
            "{name}'s meter is not shown without the models ({})",
            screenshot.display()
        );
    }
}
