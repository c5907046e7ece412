//! Backbone speed, analysis throughput and memory, measured side by side in one run:
//!
//! 1. Per-window inference time (median over many runs, one thread) of YAMNet and VGGish in
//!    tract, and of the very same ONNX files in onnxruntime (PyPI, `intra_op_num_threads=1`) on
//!    the same patches, as a ratio; then, with `--features cli,intra-op-threads`, one window on
//!    two threads inside one run (tract's `multithread-mm` executor, onnxruntime's
//!    `intra_op_num_threads=2`), each beside its one-thread time measured again there. VGGish
//!    runs with seeded random weights of the official shapes
//!    (`moodscope_convert::write_vggish_with_seeded_weights`): the official checkpoint cannot be
//!    fetched here, and the cost does not depend on the weights' values.
//!    Then the first convolution's kernel: each backbone's plans (one window, an offline batch)
//!    built with tract's own kernel choice and with Moodscope's (`backbone::kernels`), timed
//!    alternately, run by run.
//! 2. Where the time goes: the one-window plan timed node by node in tract (summed per operator of
//!    the optimised plan) and onnxruntime's own profile of the same file (per ONNX operator type),
//!    mean ms per window.
//! 3. Batched throughput, one thread (so per core), batches of 1, 2, 4, 8, 16 and 32 windows:
//!    tract's plan for that many windows per run (what `Backbone::embed_batch` runs with
//!    `BackboneKind::batch_windows`) and onnxruntime, windows per second.
//! 4. `moodscope analyze` throughput on a 3-minute piece (two HyperRogue tracks back to back, as a
//!    44.1 kHz mono float WAV), YAMNet, `--threads 2`, as a multiple of real time (wall clock of the
//!    whole command: decoding, resampling, features, backbone, head, CSV; median of 5 runs).
//! 5. Peak memory of that command with each backbone: the child's `VmHWM` (its own address
//!    space's high-water mark, which starts afresh at `exec`), sampled every 2 ms while it runs.
//!    Not `wait4`'s `ru_maxrss`: that also counts the pages the child shared with this (large)
//!    bench process between `fork` and `exec`, and reported this process's size (911 MiB) for
//!    both backbones.
//!
//! Run: `cargo bench --features cli --bench backbones` (needs `cargo xtask install-models`,
//! `apt-get install hyperrogue-music`, and `pip install -r benches/requirements.txt`).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{median, music, proc_status_kib, vggish_model_dir};
use moodscope::backbone::{self, Backbone, BackboneKind};
use moodscope::features::{log_mel_patches, resample_to_model_rate, PATCH_LEN};
use moodscope::models::ModelDir;

/// Timed runs per backbone and runtime.
const RUNS: usize = 200;
const WARMUP: usize = 10;
/// Runs of `moodscope analyze` per backbone (the median wall time is reported).
const ANALYZE_RUNS: usize = 5;
/// Batch sizes of the throughput figures.
const BATCHES: [usize; 6] = [1, 2, 4, 8, 16, 32];
/// Windows timed per batch size (at least `MIN_BATCH_RUNS` runs).
const BATCH_WINDOWS: usize = 256;
const MIN_BATCH_RUNS: usize = 7;
/// Runs of the node-by-node profile.
const PROFILE_RUNS: usize = 30;

fn main() {
    // `cargo bench` passes `--bench`; nothing to parse.
    let models = common::installed_models();
    let work = tempfile::tempdir().expect("temporary folder");
    let vggish_models = vggish_model_dir(models.path(), work.path());

    // Real-music patches, both log offsets.
    let (samples, rate) = music("hr3-caves.ogg");
    let resampled: Vec<f32> = resample_to_model_rate(&samples[..rate as usize * 30], rate)
        .expect("rate")
        .into_iter()
        .map(|s| s as f32)
        .collect();

    println!(
        "tract's channel-last depthwise kernel here: {}",
        backbone::depthwise_kernel_in_use().unwrap_or("none (its generic loop)")
    );
    let rows: Vec<BackboneRow> = [
        (BackboneKind::Yamnet, ModelDir::new(models.path())),
        (BackboneKind::Vggish, vggish_models.clone()),
    ]
    .into_iter()
    .map(|(kind, dir)| {
        let patches: Vec<Vec<f32>> = log_mel_patches(&resampled, kind.log_offset(), 96)
            .expect("patches")
            .into_iter()
            .map(|p| p.data)
            .collect();
        let net = backbone::load(kind, &dir).expect("backbone");
        let onnx = dir.path().join(match kind {
            BackboneKind::Yamnet => "yamnet.onnx",
            BackboneKind::Vggish => "vggish.onnx",
        });
        let npy = work.path().join(format!("{}-patches.npy", kind.name()));
        let flat: Vec<f32> = patches.iter().flatten().copied().collect();
        let array = tract_onnx::prelude::tract_ndarray::Array3::from_shape_vec(
            (patches.len(), 96, 64),
            flat,
        )
        .unwrap();
        ndarray_npy::write_npy(&npy, &array).expect("write patches");
        assert_eq!(array.len(), patches.len() * PATCH_LEN);
        BackboneRow {
            kind,
            dir,
            net,
            patches,
            onnx,
            npy,
        }
    })
    .collect();

    println!("== per-window inference, one thread, median of {RUNS} runs");
    for row in &rows {
        let tract_ms = median_window_ms(&*row.net, &row.patches);
        let ort_ms = onnxruntime_ms(&row.onnx, &row.npy, RUNS, WARMUP, 1, false, 1).0;
        println!(
            "{:<7} tract {tract_ms:8.2} ms   onnxruntime {ort_ms:8.2} ms   tract/onnxruntime {:.2}x",
            row.kind.name(),
            tract_ms / ort_ms
        );
    }

    intra_op_threads(&rows);
    first_convolution_kernel(&rows);

    println!("== where the time goes, one window, one thread: mean ms per window over {PROFILE_RUNS} runs");
    for BackboneRow {
        kind,
        patches,
        onnx,
        npy,
        ..
    } in &rows
    {
        let tract_ops = tract_profile(onnx, patches);
        let ort_ops = onnxruntime_ms(onnx, npy, PROFILE_RUNS, 3, 1, true, 1).1;
        println!("{} in tract (optimised plan, by operator):", kind.name());
        let total: f64 = tract_ops.iter().map(|o| o.1).sum();
        for (op, ms, count) in &tract_ops {
            println!(
                "    {op:<28} {ms:8.3} ms  {:5.1}%  ({count} nodes)",
                100.0 * ms / total
            );
        }
        println!(
            "{} in onnxruntime (its profiler, by ONNX operator):",
            kind.name()
        );
        let total: f64 = ort_ops.iter().map(|o| o.1).sum();
        for (op, ms) in &ort_ops {
            println!("    {op:<28} {ms:8.3} ms  {:5.1}%", 100.0 * ms / total);
        }
    }

    println!(
        "== batched throughput, one thread (per core): windows/s (median time per run; \
         {BATCH_WINDOWS} windows or {MIN_BATCH_RUNS} runs per batch size)"
    );
    for BackboneRow {
        kind,
        patches,
        onnx,
        npy,
        ..
    } in &rows
    {
        for batch in BATCHES {
            use tract_onnx::prelude::{tvec, Tensor};
            let plan = backbone::optimised_plan(onnx, batch).expect("plan");
            let runs = (BATCH_WINDOWS / batch).max(MIN_BATCH_RUNS);
            let mut times = Vec::with_capacity(runs);
            for i in 0..runs + 2 {
                let flat: Vec<f32> = (0..batch)
                    .flat_map(|j| patches[(i * batch + j) % patches.len()].iter().copied())
                    .collect();
                let input = Tensor::from_shape(&[batch, 96, 64], &flat).expect("input");
                let start = Instant::now();
                std::hint::black_box(plan.run(tvec![input.into()]).expect("run"));
                if i >= 2 {
                    times.push(start.elapsed().as_secs_f64());
                }
            }
            let tract = batch as f64 / median(times);
            let ort = batch as f64 / (onnxruntime_ms(onnx, npy, runs, 2, batch, false, 1).0 / 1e3);
            println!(
                "{:<7} batch {batch:>2}{}: tract {tract:7.1} windows/s   onnxruntime {ort:7.1} windows/s   \
                 tract/onnxruntime time {:.2}x",
                kind.name(),
                if batch == kind.batch_windows() { " (offline's)" } else { "" },
                ort / tract
            );
        }
    }

    println!("== moodscope analyze, 3-minute piece");
    let piece = three_minute_piece(work.path());
    for BackboneRow { kind, dir, .. } in &rows {
        let kind = *kind;
        let runs: Vec<(Duration, u64)> = (0..ANALYZE_RUNS)
            .map(|_| run_analyze(&piece.0, kind, dir.path()))
            .collect();
        let wall = median(runs.iter().map(|r| r.0.as_secs_f64()).collect());
        let peak_kib = runs.iter().map(|r| r.1).max().unwrap_or(0);
        println!(
            "{:<7} {:.1} s of audio in {:.2} s (median of {ANALYZE_RUNS} runs): {:.0}x real time, \
             peak memory {:.0} MiB",
            kind.name(),
            piece.1,
            wall,
            piece.1 / wall,
            peak_kib as f64 / 1024.0
        );
    }
}

/// The first convolution's kernel (`backbone::kernels`): plans built with tract's own kernel
/// choice and with Moodscope's correction, one window and an offline batch per run, timed
/// alternately, run by run, on the same patches (median ms per window, one thread).
fn first_convolution_kernel(rows: &[BackboneRow]) {
    use tract_onnx::prelude::{tvec, Tensor};
    println!(
        "== the first convolution's kernel, tract's own choice against Moodscope's \
         (backbone::kernels), one thread, the two plans alternating run by run"
    );
    for BackboneRow {
        kind,
        patches,
        onnx,
        ..
    } in rows
    {
        let (m, n) = match kind {
            BackboneKind::Yamnet => (32, 1536),
            BackboneKind::Vggish => (64, 6144),
        };
        backbone::kernels::set_correction(false);
        let tracts = backbone::kernels::kernel_for(m, 9, n).unwrap_or_default();
        let own: Vec<_> = [1, kind.batch_windows()]
            .map(|w| backbone::optimised_plan(onnx, w).expect("plan"))
            .into();
        backbone::kernels::set_correction(true);
        let ours = backbone::kernels::kernel_for(m, 9, n).unwrap_or_default();
        let corrected: Vec<_> = [1, kind.batch_windows()]
            .map(|w| backbone::optimised_plan(onnx, w).expect("plan"))
            .into();
        let runs = match kind {
            BackboneKind::Yamnet => 400,
            BackboneKind::Vggish => 40,
        };
        for (i, windows) in [1, kind.batch_windows()].into_iter().enumerate() {
            // Run by run, alternating: both plans see the same machine, moment by moment.
            let (mut a, mut b) = (Vec::new(), Vec::new());
            for r in 0..runs + 2 {
                let flat: Vec<f32> = (0..windows)
                    .flat_map(|j| patches[(r + j) % patches.len()].iter().copied())
                    .collect();
                let input = Tensor::from_shape(&[windows, 96, 64], &flat).expect("input");
                for (plan, times) in [(&own[i], &mut a), (&corrected[i], &mut b)] {
                    let input = input.clone();
                    let start = Instant::now();
                    std::hint::black_box(plan.run(tvec![input.into()]).expect("run"));
                    if r >= 2 {
                        times.push(start.elapsed().as_secs_f64() * 1e3 / windows as f64);
                    }
                }
            }
            let (a, b) = (median(a), median(b));
            println!(
                "{:<7} {windows} window(s) per run: tract's {tracts} {a:7.3} ms/window, \
                 Moodscope's {ours} {b:7.3} ms/window ({:.2}x)",
                kind.name(),
                a / b
            );
        }
    }
}

/// A backbone as the bench measures it.
struct BackboneRow {
    kind: BackboneKind,
    /// Its models folder (for `moodscope analyze`).
    dir: ModelDir,
    /// The backbone, loaded once.
    net: Arc<dyn Backbone>,
    /// Real-music patches.
    patches: Vec<Vec<f32>>,
    /// Its ONNX file, and the patches as `.npy`, for onnxruntime.
    onnx: PathBuf,
    npy: PathBuf,
}

/// Intra-op threads: tract's `multithread-mm` executor (a rayon pool that splits one matrix
/// product's panels) for the calling thread, against the same plan on one thread, and
/// onnxruntime's `intra_op_num_threads`, all side by side here.
#[cfg(feature = "intra-op-threads")]
fn intra_op_threads(rows: &[BackboneRow]) {
    use tract_linalg::multithread::{multithread_tract_scope, Executor};
    println!("== one window on two threads inside one run, median of {RUNS} runs");
    let two_threads = Executor::multithread(2);
    for BackboneRow {
        kind,
        net,
        patches,
        onnx,
        npy,
        ..
    } in rows
    {
        let one = median_window_ms(&**net, patches);
        let two =
            multithread_tract_scope(two_threads.clone(), || median_window_ms(&**net, patches));
        let ort_one = onnxruntime_ms(onnx, npy, RUNS, WARMUP, 1, false, 1).0;
        let ort_two = onnxruntime_ms(onnx, npy, RUNS, WARMUP, 1, false, 2).0;
        println!(
            "{:<7} tract {one:8.2} -> {two:8.2} ms ({:.2}x faster)   onnxruntime {ort_one:8.2} -> \
             {ort_two:8.2} ms ({:.2}x faster)   tract/onnxruntime on two threads {:.2}x",
            kind.name(),
            one / two,
            ort_one / ort_two,
            two / ort_two
        );
    }
}

#[cfg(not(feature = "intra-op-threads"))]
fn intra_op_threads(_: &[BackboneRow]) {
    println!(
        "== one window on two threads inside one run: \
         `cargo bench --features cli,intra-op-threads --bench backbones`"
    );
}

/// The median time of `net.embed` on one window (after `WARMUP` runs), ms, cycling through
/// `patches`, on the calling thread with tract's executor for it.
fn median_window_ms(net: &dyn Backbone, patches: &[Vec<f32>]) -> f64 {
    let mut times = Vec::with_capacity(RUNS);
    for i in 0..WARMUP + RUNS {
        let patch = &patches[i % patches.len()];
        let start = Instant::now();
        std::hint::black_box(net.embed(patch).expect("embed"));
        if i >= WARMUP {
            times.push(start.elapsed().as_secs_f64() * 1e3);
        }
    }
    median(times)
}

/// `benches/onnxruntime_backbones.py`: the median time of one run of `onnx` on `batch` patches
/// in onnxruntime on `threads` intra-op threads, and with `profile` its mean time per run in each
/// operator type, largest first.
fn onnxruntime_ms(
    onnx: &Path,
    patches: &Path,
    runs: usize,
    warmup: usize,
    batch: usize,
    profile: bool,
    threads: usize,
) -> (f64, Vec<(String, f64)>) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/onnxruntime_backbones.py");
    let out = Command::new("python3")
        .arg(&script)
        .arg(onnx)
        .arg(patches)
        .args([
            runs.to_string(),
            warmup.to_string(),
            batch.to_string(),
            u8::from(profile).to_string(),
            threads.to_string(),
        ])
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "{}: {}",
        script.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let json: serde_json::Value = serde_json::from_str(text.trim()).expect("one JSON line");
    let mut ops: Vec<(String, f64)> = json["op_ms"]
        .as_object()
        .map(|o| {
            o.iter()
                .map(|(k, v)| (k.clone(), v.as_f64().unwrap_or(0.0)))
                .collect()
        })
        .unwrap_or_default();
    // serde_json's map is in key order: largest first again.
    ops.sort_by(|a, b| b.1.total_cmp(&a.1));
    (json["median_ms"].as_f64().expect("median_ms"), ops)
}

/// Tract's one-window plan of `model` (as Moodscope optimises it) timed node by node: mean ms per
/// run in each operator (by name), with its node count, largest first.
fn tract_profile(model: &Path, patches: &[Vec<f32>]) -> Vec<(String, f64, usize)> {
    use std::collections::HashMap;
    use tract_onnx::prelude::*;
    use tract_onnx::tract_core::plan::{eval, SimpleState};
    let plan = backbone::optimised_plan(model, 1).expect("plan");
    let mut state = SimpleState::new(&plan).expect("state");
    let mut per_op: HashMap<String, (f64, std::collections::HashSet<usize>)> = HashMap::new();
    for run in 0..PROFILE_RUNS + 3 {
        let input = Tensor::from_shape(&[1, 96, 64], &patches[run % patches.len()]).unwrap();
        state
            .run_plan_with_eval(tvec![input.into()], |session, op_state, node, inputs| {
                let start = Instant::now();
                let out = eval(session, op_state, node, inputs);
                if run >= 3 {
                    let entry = per_op.entry(node.op().name().to_string()).or_default();
                    entry.0 += start.elapsed().as_secs_f64() * 1e3;
                    entry.1.insert(node.id);
                }
                out
            })
            .expect("profiled run");
    }
    let mut ops: Vec<(String, f64, usize)> = per_op
        .into_iter()
        .map(|(op, (ms, nodes))| (op, ms / PROFILE_RUNS as f64, nodes.len()))
        .collect();
    ops.sort_by(|a, b| b.1.total_cmp(&a.1));
    ops
}

/// Two tracks back to back (136 s + 48 s) as a 44.1 kHz mono float WAV; and its length in s.
fn three_minute_piece(work: &Path) -> (PathBuf, f64) {
    let mut samples = Vec::new();
    for name in ["hr3-hell.ogg", "hr3-crossroads.ogg"] {
        let (mono, rate) = music(name);
        assert_eq!(rate, 44_100);
        samples.extend(mono);
    }
    let path = work.join("three-minutes.wav");
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: 44_100,
        bits_per_sample: 32,
        sample_format: hound::SampleFormat::Float,
    };
    let mut writer = hound::WavWriter::create(&path, spec).unwrap();
    for s in &samples {
        writer.write_sample(*s).unwrap();
    }
    writer.finalize().unwrap();
    (path, samples.len() as f64 / 44_100.0)
}

/// Runs `moodscope analyze` on `piece`; its wall time and peak memory (`VmHWM`) in KiB.
fn run_analyze(piece: &Path, kind: BackboneKind, models: &Path) -> (Duration, u64) {
    let start = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_moodscope"))
        .args([
            "analyze",
            "--threads",
            "2",
            "--backbone",
            kind.name(),
            "--out",
            "/dev/null",
            // Every run analyses: no library database, whose cache would skip the file.
            "--no-db",
            "--models",
        ])
        .arg(models)
        .arg(piece)
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("moodscope");
    let status_file = format!("/proc/{}/status", child.id());
    let mut peak_kib = 0;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        // Before `exec` the child still runs this bench's image: only count the real command.
        if let Ok(text) = std::fs::read_to_string(&status_file) {
            if text.contains("Name:\tmoodscope") {
                if let Some(line) = text.lines().find(|l| l.starts_with("VmHWM:")) {
                    peak_kib = peak_kib.max(proc_status_kib(line, "VmHWM:"));
                }
            }
        }
        std::thread::sleep(Duration::from_millis(2));
    };
    let wall = start.elapsed();
    assert!(status.success(), "analyze failed ({status})");
    assert!(
        peak_kib > 0,
        "the command ended before its memory could be read"
    );
    (wall, peak_kib)
}
