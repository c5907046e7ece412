//! Front-end throughput: 10 s of mono audio at 16, 44.1 and 48 kHz pushed through `FrontEnd`
//! (resampling, log-mel, patches) in 1024-sample blocks, as the plugin's worker does, and through
//! the resampler alone.
//!
//! The throughput is counted in seconds of audio, so criterion's "elem/s" figure is directly the
//! multiple of real time. Run: `cargo bench -p moodscope --bench frontend`.

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use moodscope::features::{FrontEnd, FrontEndConfig, Resampler, VGGISH_LOG_OFFSET};

const SECONDS: usize = 10;
const BLOCK: usize = 1024;

/// Tones, a chirp and noise: the front end's cost does not depend on the content, but a
/// realistic signal keeps the numbers honest (no denormals, no all-zero shortcuts).
fn signal(rate: u32) -> Vec<f32> {
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    (0..SECONDS * rate as usize)
        .map(|n| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let noise = (state >> 40) as f32 / (1u64 << 24) as f32 - 0.5;
            let t = n as f64 / f64::from(rate);
            let tones = 0.3 * (2.0 * std::f64::consts::PI * 220.0 * t).sin()
                + 0.1 * (2.0 * std::f64::consts::PI * (500.0 + 300.0 * t) * t).sin();
            tones as f32 + 0.1 * noise
        })
        .collect()
}

fn front_end(c: &mut Criterion) {
    let mut group = c.benchmark_group("front_end_10s");
    group
        .throughput(Throughput::Elements(SECONDS as u64))
        .sample_size(20)
        .measurement_time(Duration::from_secs(10));
    for rate in [16_000, 44_100, 48_000] {
        let audio = signal(rate);
        let config = FrontEndConfig {
            input_rate: rate,
            log_offset: VGGISH_LOG_OFFSET,
            patch_hop_frames: 96,
        };
        let mut front_end = FrontEnd::new(config).expect("supported rate");
        let mut patches = Vec::new();
        group.bench_function(format!("{rate}Hz"), |b| {
            b.iter(|| {
                patches.clear();
                for block in audio.chunks(BLOCK) {
                    front_end.push(black_box(block), &mut patches);
                }
                front_end.finish(&mut patches);
                black_box(patches.len())
            })
        });
    }
    group.finish();

    let mut group = c.benchmark_group("resampler_10s");
    group
        .throughput(Throughput::Elements(SECONDS as u64))
        .sample_size(20)
        .measurement_time(Duration::from_secs(10));
    for rate in [44_100, 48_000] {
        let audio = signal(rate);
        let mut resampler = Resampler::new(rate).expect("supported rate");
        let mut out = Vec::with_capacity(SECONDS * 16_000 + 16_000);
        group.bench_function(format!("{rate}Hz"), |b| {
            b.iter(|| {
                out.clear();
                for block in audio.chunks(BLOCK) {
                    resampler.push(black_box(block), &mut out);
                }
                resampler.finish(&mut out);
                black_box(out.len())
            })
        });
    }
    group.finish();
}

criterion_group!(benches, front_end);
criterion_main!(benches);
