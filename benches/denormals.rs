//! Denormal input against normal input, through the same code, side by side in one run.
//!
//! In: real music (HyperRogue, decoded at its 44.1 kHz and played as a stereo stream) and a
//! stream of the same length made only of denormals (magnitudes 1e-45 to 1e-38, both signs).
//! Out: medians and the denormal / normal ratio for
//! 1. the audio thread: what `process()` runs in real time (`realtime::Feed`: downmix and push to
//!    the ring) on 512-frame blocks, with the `FlushDenormals` guard `process()` holds and, for
//!    comparison, without it;
//! 2. the analysis (`engine::Analyser::push`, 4096-sample chunks, YAMNet, one thread: what the
//!    worker runs, and what `process()` runs in an offline render) on 10 s of each, with the
//!    worker's floating-point mode (denormals flushed) and without it.
//!
//! The four variants of each are interleaved round by round, so that a noisy machine slows them
//! alike. The bench exits with an error when, in the modes Moodscope runs in, denormal input
//! costs more than music (by more than `NOISE`). Run: `cargo bench --features cli --bench denormals` (needs the models:
//! `cargo xtask install-models`, and `apt-get install hyperrogue-music`); `-- --quick` runs fewer
//! rounds.

mod common;

use std::time::Instant;

use common::{median, music};
use moodscope::backbone::BackboneKind;
use moodscope::engine::{Analyser, AnalyserConfig, WindowReading};
use moodscope::plugin::realtime::{denormals_flushed, Feed, FlushDenormals};
use moodscope::ring::sample_ring;

const BLOCK: usize = 512;
const CHUNK: usize = 4096;

/// Stereo music at the file's own rate, `frames` long.
fn stereo_music(frames: usize) -> ([Vec<f32>; 2], u32) {
    let (mut left, rate) = music("hr3-caves.ogg");
    left.drain(..(30 * rate as usize).min(left.len()));
    assert!(left.len() >= frames, "not enough music");
    left.truncate(frames);
    let right = left
        .iter()
        .enumerate()
        .map(|(i, s)| s * if i % 2 == 0 { 0.9 } else { 0.8 })
        .collect();
    ([left, right], rate)
}

/// `frames` denormals, magnitudes spread over 1e-45..1e-38, both signs (a fixed LCG, so every
/// run feeds the same values).
fn denormals(frames: usize, seed: u32) -> Vec<f32> {
    let mut state = seed;
    (0..frames)
        .map(|_| {
            state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            // Exponent bits 0 (denormal), mantissa nonzero, random sign.
            let bits = (state & 0x807f_ffff) | 1;
            let v = f32::from_bits(bits);
            debug_assert!(v.is_subnormal());
            v
        })
        .collect()
}

/// Median nanoseconds per sample of `Feed::push` over `audio`, block by block, for each of the
/// variants; the ring is drained (untimed) between blocks so that it never fills.
fn audio_thread(variants: &[(&str, [&[f32]; 2], bool)], rounds: usize) -> Vec<f64> {
    let mut rings: Vec<_> = variants
        .iter()
        .map(|_| {
            let (writer, reader) = sample_ring(8 * BLOCK);
            (Feed::new(writer), reader)
        })
        .collect();
    let mut drained = vec![0.0f32; 8 * BLOCK];
    let mut times: Vec<Vec<f64>> = vec![Vec::new(); variants.len()];
    for _ in 0..rounds {
        let frames = variants[0].1[0].len();
        for start in (0..frames - BLOCK).step_by(BLOCK) {
            for (v, (_, audio, flush)) in variants.iter().enumerate() {
                let block = [
                    &audio[0][start..start + BLOCK],
                    &audio[1][start..start + BLOCK],
                ];
                let (feed, reader) = &mut rings[v];
                let t = Instant::now();
                {
                    let _guard = flush.then(FlushDenormals::new);
                    feed.push(std::hint::black_box(&block));
                }
                times[v].push(t.elapsed().as_nanos() as f64 / BLOCK as f64);
                reader.read(&mut drained, usize::MAX);
            }
        }
    }
    times.into_iter().map(median).collect()
}

/// Seconds for one `Analyser` to analyse `mono` in chunks, in the thread's current mode.
fn analyse(analyser: &mut Analyser, mono: &[f32], out: &mut Vec<WindowReading>) -> f64 {
    analyser.reset();
    out.clear();
    let t = Instant::now();
    for chunk in mono.chunks(CHUNK) {
        analyser
            .push(std::hint::black_box(chunk), out)
            .expect("analysing");
    }
    t.elapsed().as_secs_f64()
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let models = common::installed_models();

    // 1. The audio thread.
    let seconds = if quick { 5.0 } else { 20.0 };
    let (music_stereo, rate) = stereo_music((seconds * 44_100.0) as usize);
    let frames = music_stereo[0].len();
    let tiny = [denormals(frames, 1), denormals(frames, 2)];
    let music_ref = [&music_stereo[0][..], &music_stereo[1][..]];
    let tiny_ref = [&tiny[0][..], &tiny[1][..]];
    let variants = [
        ("music, FTZ/DAZ (as process() runs)", music_ref, true),
        ("denormals, FTZ/DAZ (as process() runs)", tiny_ref, true),
        ("music, host's mode (no guard)", music_ref, false),
        ("denormals, host's mode (no guard)", tiny_ref, false),
    ];
    let rounds = if quick { 3 } else { 10 };
    let ns = audio_thread(&variants, rounds);
    println!(
        "== audio thread: Feed::push (downmix + ring), {BLOCK}-frame stereo blocks, {seconds} s x {rounds} rounds, median ns/sample"
    );
    for ((name, _, _), v) in variants.iter().zip(&ns) {
        println!("{name:<42} {v:7.3} ns/sample");
    }
    println!(
        "denormal / normal: {:.2}x with FTZ/DAZ (process() as shipped), {:.2}x without",
        ns[1] / ns[0],
        ns[3] / ns[2]
    );

    // 2. The analysis, as the worker (or an offline render) runs it.
    let seconds = 10.0;
    let mono_frames = (seconds * rate as f64) as usize;
    let mono_music: Vec<f32> = music_stereo[0][..mono_frames.min(frames)].to_vec();
    let mono_tiny = denormals(mono_music.len(), 3);
    let config = AnalyserConfig::new(rate, BackboneKind::Yamnet);
    let mut analyser = Analyser::new(config, &models).expect("loading YAMNet");
    let mut out = Vec::new();
    let rounds = if quick { 3 } else { 9 };
    let mut times: [Vec<f64>; 4] = Default::default();
    for _ in 0..rounds {
        for (v, (mono, flush)) in [
            (&mono_music, true),
            (&mono_tiny, true),
            (&mono_music, false),
            (&mono_tiny, false),
        ]
        .into_iter()
        .enumerate()
        {
            let guard = flush.then(FlushDenormals::new);
            if cfg!(any(target_arch = "x86_64", target_arch = "aarch64")) {
                assert_eq!(denormals_flushed(), flush);
            }
            times[v].push(analyse(&mut analyser, mono, &mut out));
            drop(guard);
        }
    }
    let medians: Vec<f64> = times.iter().map(|t| median(t.clone())).collect();
    println!(
        "== analysis: Analyser::push, YAMNet, one thread, {seconds} s at {rate} Hz in {CHUNK}-sample chunks, median of {rounds}"
    );
    for (name, m) in [
        "music, FTZ/DAZ (the worker's mode)",
        "denormals, FTZ/DAZ (the worker's mode)",
        "music, default mode",
        "denormals, default mode",
    ]
    .iter()
    .zip(&medians)
    {
        println!(
            "{name:<42} {:7.1} ms ({:.0}x real time)",
            m * 1e3,
            seconds / m
        );
    }
    println!(
        "denormal / normal: {:.2}x with FTZ/DAZ (as shipped), {:.2}x without",
        medians[1] / medians[0],
        medians[3] / medians[2]
    );

    // The verdict, for the modes Moodscope runs in: denormal input may not cost more than music
    // (beyond `NOISE`, what two medians of the same work differ by on a busy machine).
    let worst = (ns[1] / ns[0]).max(medians[1] / medians[0]);
    if worst > 1.0 + NOISE {
        println!("FAIL: denormal input costs {worst:.2}x what music costs with FTZ/DAZ");
        std::process::exit(1);
    }
    println!("ok: with FTZ/DAZ, denormal input costs no more than music (worst {worst:.2}x)");
}

/// Allowed excess of a denormal median over the music median before the bench fails.
const NOISE: f64 = 0.10;
