//! The plugin's real-time figures, measured side by side in one run on the plugin's own engine:
//! `plugin::realtime::Feed` (what `process()` runs), one `plugin::worker::Worker` thread per
//! instance, `plugin::shared::Published`. Real music (HyperRogue tracks decoded at 44.1 kHz and
//! played as a 48 kHz stereo stream: 9 % fast, which changes no cost), 512-frame blocks delivered
//! at real-time pace by one audio thread, as a sound card paces a DAW.
//!
//! 1. Audio-thread cost per sample of what `process()` does (downmix, push to the ring, read the
//!    published mood) against a plain copy of the same block (what passing audio through costs),
//!    timed block by block in the same run while the worker analyses; medians.
//! 2. Publish latency: from the moment the block holding a window's last sample has been pushed
//!    to the moment the worker published that window (`MoodSnapshot::published_at`, same clock),
//!    with YAMNet and with VGGish (seeded weights of the official shapes). The worker thread is
//!    one thread: "on one core".
//! 3. Instances: N instances (a ring and a worker each, models shared as in one host process)
//!    fed by one audio thread for 20 s of music; samples dropped by each, and the resident memory
//!    each instance adds (VmRSS with N running against 1 running).
//!
//! Run: `cargo bench --features cli --bench realtime` (needs `cargo xtask install-models` and
//! `apt-get install hyperrogue-music`). `-- --quick` runs shorter streams and fewer instances.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{median, music, resident_bytes, vggish_model_dir};
use moodscope::models::ModelDir;
use moodscope::plugin::params::{BackboneParam, MoodscopeParams};
use moodscope::plugin::realtime::{Feed, FlushDenormals};
use moodscope::plugin::shared::{clock, Health, MoodSnapshot, Published};
use moodscope::plugin::worker::{ring_capacity, Worker};
use moodscope::ring::sample_ring;
use nice_plug::params::InternalParamMut;

const RATE: u32 = 48_000;
const BLOCK: usize = 512;

/// One plugin instance's engine: what `Moodscope` holds between `activate()` and `deactivate()`.
struct Instance {
    feed: Feed,
    published: Arc<Published>,
    latest: MoodSnapshot,
    _worker: Worker,
}

impl Instance {
    fn start(backbone: BackboneParam, models: &ModelDir) -> Self {
        let params = Arc::new(MoodscopeParams::default());
        // What a host restoring a session does to a non-automatable parameter.
        // SAFETY: no other thread reads the parameters yet.
        unsafe { params.backbone._internal_set_plain_value(backbone) };
        let published = Arc::new(Published::default());
        let worker = Worker::spawn(params, published.clone(), models.clone()).expect("worker");
        let (writer, reader) = sample_ring(ring_capacity(RATE));
        worker.start(reader, RATE);
        Self {
            feed: Feed::new(writer),
            published,
            latest: MoodSnapshot::default(),
            _worker: worker,
        }
    }

    #[inline]
    fn process(&mut self, channels: &[&[f32]; 2]) {
        process_block(&mut self.feed, &self.published, &mut self.latest, channels);
    }

    /// Waits (off the audio thread) until the models are loaded and the analysis runs.
    fn wait_until_running(&self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while self.published.health() == Health::Starting {
            assert!(
                Instant::now() < deadline,
                "{}",
                self.published.status().message
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        assert_ne!(
            self.published.health(),
            Health::Failed,
            "{}",
            self.published.status().message
        );
    }
}

/// What `Moodscope::process()` does with one block in real-time mode.
#[inline]
fn process_block(
    feed: &mut Feed,
    published: &Published,
    latest: &mut MoodSnapshot,
    channels: &[&[f32]; 2],
) {
    let _denormals = FlushDenormals::new();
    feed.push(channels);
    if let Some(snapshot) = published.read() {
        *latest = snapshot;
    }
}

/// A stereo stream of `seconds` of music at `RATE`.
fn stereo_music(seconds: f64) -> [Vec<f32>; 2] {
    let mut left = Vec::new();
    for name in ["hr3-hell.ogg", "hr3-crossroads.ogg", "hr3-caves.ogg"] {
        left.extend(music(name).0);
    }
    let frames = (seconds * RATE as f64) as usize;
    assert!(left.len() >= frames, "not enough music for {seconds} s");
    left.truncate(frames);
    // A right channel that differs from the left, so the downmix does real work.
    let right = left
        .iter()
        .enumerate()
        .map(|(i, s)| s * if i % 2 == 0 { 0.9 } else { 0.8 })
        .collect();
    [left, right]
}

/// Plays `audio` through `instances` at real-time pace; per block, times every instance's
/// `process` and a plain copy of the block. Returns (process ns per block, copy ns per block) and
/// the clock time at which each block had been pushed.
fn play(audio: &[Vec<f32>; 2], instances: &mut [Instance]) -> (Vec<f64>, Vec<f64>, Vec<Duration>) {
    let frames = audio[0].len();
    let blocks = frames / BLOCK;
    let mut process_ns = Vec::with_capacity(blocks * instances.len());
    let mut copy_ns = Vec::with_capacity(blocks);
    let mut pushed_at = Vec::with_capacity(blocks);
    let mut out = [vec![0.0f32; BLOCK], vec![0.0f32; BLOCK]];
    let start = Instant::now();
    for b in 0..blocks {
        let due = Duration::from_secs_f64((b * BLOCK) as f64 / RATE as f64);
        if let Some(wait) = due.checked_sub(start.elapsed()) {
            std::thread::sleep(wait);
        }
        let range = b * BLOCK..(b + 1) * BLOCK;
        let block = [&audio[0][range.clone()], &audio[1][range]];
        // Whichever touches the block first pays for bringing it into the cache: alternate.
        let copy_first = b % 2 == 0;
        if copy_first {
            copy_ns.push(time_copy(&block, &mut out));
        }
        for instance in instances.iter_mut() {
            let t = Instant::now();
            instance.process(std::hint::black_box(&block));
            process_ns.push(t.elapsed().as_nanos() as f64);
        }
        pushed_at.push(clock());
        if !copy_first {
            copy_ns.push(time_copy(&block, &mut out));
        }
    }
    (process_ns, copy_ns, pushed_at)
}

/// Nanoseconds to copy a stereo block to the output buffers: what passing audio through costs.
fn time_copy(block: &[&[f32]; 2], out: &mut [Vec<f32>; 2]) -> f64 {
    let t = Instant::now();
    for (o, i) in out.iter_mut().zip(block) {
        o.copy_from_slice(i);
    }
    std::hint::black_box(out);
    t.elapsed().as_nanos() as f64
}

/// The same, with the block in the cache: `process` and the copy on one block, many times over.
/// `process` pushes into a ring of its own that is drained between batches (untimed), so that it
/// takes the path of a worker that keeps up, and reads `published`.
fn hot_costs(published: &Published, audio: &[Vec<f32>; 2]) -> (f64, f64) {
    const REPEATS: usize = 100;
    let block = [&audio[0][..BLOCK], &audio[1][..BLOCK]];
    let mut out = [vec![0.0f32; BLOCK], vec![0.0f32; BLOCK]];
    let (writer, mut reader) = sample_ring(ring_capacity(RATE));
    let mut feed = Feed::new(writer);
    let mut latest = MoodSnapshot::default();
    let mut drained = vec![0.0f32; ring_capacity(RATE)];
    let (mut process_ns, mut copy_ns) = (Vec::new(), Vec::new());
    for _ in 0..2000 {
        let t = Instant::now();
        for _ in 0..REPEATS {
            process_block(
                &mut feed,
                published,
                &mut latest,
                std::hint::black_box(&block),
            );
        }
        process_ns.push(t.elapsed().as_nanos() as f64 / REPEATS as f64);
        let t = Instant::now();
        for _ in 0..REPEATS {
            for (o, i) in out.iter_mut().zip(block) {
                o.copy_from_slice(std::hint::black_box(i));
            }
            std::hint::black_box(&mut out);
        }
        copy_ns.push(t.elapsed().as_nanos() as f64 / REPEATS as f64);
        let read = reader.read(&mut drained, usize::MAX);
        assert_eq!(read.len, REPEATS * BLOCK, "the ring overran");
    }
    std::hint::black_box(latest);
    (median(process_ns), median(copy_ns))
}

/// Every snapshot the worker publishes, collected by polling (off the audio thread).
fn collect_snapshots(
    published: Arc<Published>,
    stop: Arc<std::sync::atomic::AtomicBool>,
) -> Vec<MoodSnapshot> {
    let mut seen = Vec::new();
    let mut last = 0;
    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
        if let Some(s) = published.read() {
            if s.sequence != last {
                last = s.sequence;
                seen.push(s);
            }
        }
        std::thread::sleep(Duration::from_micros(200));
    }
    seen
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let models = common::installed_models();
    let work = tempfile::tempdir().expect("temporary folder");
    let vggish_models = vggish_model_dir(models.path(), work.path());
    let seconds = if quick { 20.0 } else { 60.0 };
    let audio = stereo_music(seconds);

    println!("== one instance, {seconds} s of music at 48 kHz stereo in {BLOCK}-frame blocks, real-time pace");
    for (backbone, dir) in [
        (BackboneParam::Yamnet, &models),
        (BackboneParam::Vggish, &vggish_models),
    ] {
        let mut instance = Instance::start(backbone, dir);
        instance.wait_until_running();
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let collector = {
            let (published, stop) = (instance.published.clone(), stop.clone());
            std::thread::spawn(move || collect_snapshots(published, stop))
        };
        let (process_ns, copy_ns, pushed_at) = play(&audio, std::slice::from_mut(&mut instance));
        std::thread::sleep(Duration::from_millis(500));
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let snapshots = collector.join().unwrap();

        let per_sample = |ns: Vec<f64>| median(ns) / BLOCK as f64;
        let (process, copy) = (per_sample(process_ns), per_sample(copy_ns));
        let (hot_process, hot_copy) = hot_costs(&instance.published, &audio);
        let (hot_process, hot_copy) = (hot_process / BLOCK as f64, hot_copy / BLOCK as f64);
        // Latency: the window's last sample is frame round(audio_end × rate) − 1.
        let latencies: Vec<f64> = snapshots
            .iter()
            .filter_map(|s| {
                let last_frame = (s.audio_end_seconds * RATE as f64).round() as usize;
                let block = last_frame.checked_sub(1)? / BLOCK;
                let pushed = *pushed_at.get(block)?;
                Some((s.published_at.checked_sub(pushed)?).as_secs_f64() * 1e3)
            })
            .collect();
        let mut sorted = latencies.clone();
        sorted.sort_by(f64::total_cmp);
        let name = format!("{backbone:?}").to_lowercase();
        println!(
            "{name:<7} process() {process:6.2} ns/sample   copy {copy:5.2} ns/sample   ratio {:5.1}x   (block as it arrives, real-time pace)",
            process / copy
        );
        println!(
            "{name:<7} process() {hot_process:6.2} ns/sample   copy {hot_copy:5.2} ns/sample   ratio {:5.1}x   (block in the cache, back to back)",
            hot_process / hot_copy
        );
        println!(
            "{name:<7} publish latency over {} windows: median {:.1} ms, 95th percentile {:.1} ms, max {:.1} ms; dropped {} samples",
            sorted.len(),
            median(latencies),
            sorted[sorted.len() * 95 / 100],
            sorted[sorted.len() - 1],
            instance.published.dropped_samples()
        );
    }

    let counts: &[usize] = if quick {
        &[1, 4, 16]
    } else {
        &[1, 2, 4, 8, 12, 16, 20, 24]
    };
    let seconds = if quick { 10.0 } else { 20.0 };
    let audio = stereo_music(seconds);
    println!("== instances with YAMNet, one audio thread, {seconds} s of music each");
    let mut base_rss = None;
    for &n in counts {
        let mut instances: Vec<Instance> = (0..n)
            .map(|_| Instance::start(BackboneParam::Yamnet, &models))
            .collect();
        instances.iter().for_each(Instance::wait_until_running);
        let (process_ns, _, _) = play(&audio, &mut instances);
        std::thread::sleep(Duration::from_millis(300));
        let rss = resident_bytes();
        let dropped: u64 = instances
            .iter()
            .map(|i| i.published.dropped_samples())
            .sum();
        let windows: Vec<u64> = instances.iter().map(|i| i.latest.window).collect();
        let per_instance = match base_rss {
            None => {
                base_rss = Some(rss);
                String::from("(the reference)")
            }
            Some(base) => format!(
                "{:.1} MB per instance beyond the first",
                (rss as f64 - base as f64) / (n - 1) as f64 / 1e6
            ),
        };
        println!(
            "{n:>3} instances: dropped {dropped} samples, last window {}..{}, process() median {:.2} ns/sample, resident {:.0} MB, {per_instance}",
            windows.iter().min().unwrap(),
            windows.iter().max().unwrap(),
            median(process_ns) / BLOCK as f64,
            rss as f64 / 1e6
        );
        drop(instances);
    }
}
