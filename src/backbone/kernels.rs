//! Which of tract's matrix kernels runs the backbones' first convolution: a correction to
//! tract's x86-64 kernel choice, given to tract through its own dispatch ladder
//! (`tract_linalg::mmm_tiers`, collected by `inventory`, asked before tract's own tiers).
//!
//! In: one matrix product as tract's kernel selection sees it (datum type, m, k, n and the
//! kernels that can run it). Out: the kernel to run, or no opinion (tract's tiers decide).
//!
//! Both backbones open with a 3x3 convolution over the one-channel log-mel patch: a product with
//! only k = 9 terms per output (YAMNet: m = 32 channels by n = 1536 positions; VGGish: 64 by 6144).
//! With so few terms each tile's fixed costs (bias, activation, store) outweigh its
//! multiply-adds, so the kernel with the fewest, fullest tiles wins. tract 0.23.9's cost model for
//! Intel AVX-512 machines predicts the opposite (its fitted per-tile cost of `fma_mmm_f32_40x2` is
//! 4 ns) and runs that 40x2 kernel, whose 40 rows exceed YAMNet's 32 (every tile a border tile)
//! and split VGGish's 64 into a full and a partial tile. Measured on a 2-core Intel Xeon with
//! AVX-512 (tract's plan timed node by node), YAMNet's first convolution took 0.23 ms with it and
//! 0.07 ms with `avx512_mmm_f32_16x12`, a tenth of a YAMNet window; VGGish's 2.2 against 0.6 ms.
//! tract's model for AMD machines already picks 16x12 there, so this changes nothing on them.
//!
//! Every candidate here accumulates with fused multiply-adds in the order of k, as tract's pick
//! does, so the outputs are the same bits (`tests::the_correction_changes_no_bit`); the backbones'
//! embeddings and `analyze`'s timelines are unchanged.

use std::sync::atomic::{AtomicBool, Ordering};

/// Products with fewer terms than this per output are "few-tap" (the first convolutions' 9).
pub const FEW_TAPS: usize = 16;

/// Whether the correction answers (on by default). The backbones bench turns it off to build
/// tract's own plan beside Moodscope's in one run; a plan keeps the kernels it was built with.
static CORRECTION: AtomicBool = AtomicBool::new(true);

/// Turns the correction on or off for plans built from now on (benchmarks).
pub fn set_correction(enabled: bool) {
    CORRECTION.store(enabled, Ordering::Relaxed);
}

/// The kernels preferred for few-tap products, best first: wide AVX-512 tiles, else the widest
/// 256-bit FMA tile (machines without AVX-512).
pub const FEW_TAP_KERNELS: [&str; 2] = ["avx512_mmm_f32_16x12", "fma_mmm_f32_16x6"];

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::sync::atomic::Ordering;

    use tract_linalg::isa::{Arch, IsaSet};
    use tract_linalg::mmm::{suitable_named, Query, Suitable};
    use tract_linalg::mmm_tiers::MmmTier;
    use tract_onnx::prelude::DatumType;

    use super::{CORRECTION, FEW_TAPS, FEW_TAP_KERNELS};

    /// The name tract reports for this rung of its ladder.
    pub const TIER: &str = "moodscope-few-taps";

    inventory::submit! {
        MmmTier {
            arch: Some(Arch::X86_64),
            // Above every x86-64 tier of tract 0.23.9 (the highest, AMX bf16, is 8).
            precedence: 16,
            name: TIER,
            applies: |_| true,
            preferred: few_taps,
        }
    }

    /// An f32 product with fewer than `FEW_TAPS` terms and more than one column: the first
    /// preferred kernel that can run it; anything else: no opinion.
    pub fn few_taps(
        _isa: &IsaSet,
        accumulator: DatumType,
        query: &Query,
        suitable: &[Suitable],
    ) -> Option<&'static str> {
        if !CORRECTION.load(Ordering::Relaxed) || accumulator != DatumType::F32 {
            return None;
        }
        if query.k? >= FEW_TAPS || query.n? < 2 || query.m? < 2 {
            return None;
        }
        FEW_TAP_KERNELS
            .into_iter()
            .find(|name| suitable_named(suitable, name).is_some())
    }
}

/// The kernel tract runs on this machine for an f32 product of `m` x `k` by `k` x `n`.
pub fn kernel_for(m: usize, k: usize, n: usize) -> Option<String> {
    tract_linalg::MmmDispatch::native()
        .preferred_kernel(
            tract_onnx::prelude::DatumType::F32,
            Some(m),
            Some(k),
            Some(n),
        )
        .map(|kernel| kernel.name().to_string())
}

#[cfg(all(test, target_arch = "x86_64"))]
mod tests {
    use tract_linalg::mmm::{AsInputValue, FusedSpec, MatMatMul, Query};
    use tract_linalg::MmmDispatch;
    use tract_onnx::prelude::*;

    use super::*;

    /// The backbones' first convolutions, one window and a batch of 8 windows.
    const FIRST_CONVOLUTIONS: [(usize, usize, usize); 3] =
        [(32, 9, 1536), (64, 9, 6144), (32, 9, 12288)];

    /// What tract's own tiers (all but this one) would run.
    fn tracts_own_choice(m: usize, k: usize, n: usize) -> Option<Box<dyn MatMatMul>> {
        let dispatch = MmmDispatch::native();
        let query = Query::plain(DatumType::F32, Some(m), Some(k), Some(n));
        let suitable = dispatch.suitable(&query);
        let tiers: Vec<_> = dispatch
            .tiers()
            .iter()
            .copied()
            .filter(|t| t.name != x86::TIER)
            .collect();
        let isa = tract_linalg::isa::native();
        let ix =
            tract_linalg::mmm_tiers::preferred(&isa, &tiers, DatumType::F32, &query, &suitable)?;
        Some(suitable[ix].0.clone())
    }

    /// The kernel called `name`, where this machine can run it.
    fn runnable(name: &str) -> Option<Box<dyn MatMatMul>> {
        MmmDispatch::native()
            .runnable()
            .iter()
            .find(|k| k.name() == name)
            .cloned()
    }

    /// `a` (m x k) times `b` (k x n) by `kernel`, as bits.
    fn product(kernel: &dyn MatMatMul, a: &Tensor, b: &Tensor) -> Vec<u32> {
        let (m, n) = (a.shape()[0], b.shape()[1]);
        let (pack_a, pack_b) = &kernel.packings()[0];
        let pa = pack_a.prepare_one(a, 1, 0).unwrap();
        let pb = pack_b.prepare_one(b, 0, 1).unwrap();
        let mut c = Tensor::zero::<f32>(&[m, n]).unwrap();
        // SAFETY: `c` is m x n and outlives the run; the operands were packed for this kernel.
        unsafe {
            let store = kernel.c_view(Some(0), Some(1)).wrap(&c.view_mut());
            let ops = [
                FusedSpec::AddMatMul {
                    a: AsInputValue::Borrowed(&*pa),
                    b: AsInputValue::Borrowed(&*pb),
                    packing: 0,
                },
                FusedSpec::Store(store),
            ];
            kernel.run(m, n, &ops).unwrap();
        }
        let values = c.to_plain_array_view::<f32>().unwrap();
        values.iter().map(|v| v.to_bits()).collect()
    }

    fn noise(seed: &mut u64, len: usize) -> Vec<f32> {
        (0..len)
            .map(|_| {
                *seed ^= *seed << 13;
                *seed ^= *seed >> 7;
                *seed ^= *seed << 17;
                (*seed >> 40) as f32 / (1u64 << 23) as f32 - 1.0
            })
            .collect()
    }

    #[test]
    fn the_first_convolutions_run_a_preferred_kernel_and_nothing_else_moves() {
        for (m, k, n) in FIRST_CONVOLUTIONS {
            let chosen = kernel_for(m, k, n).unwrap();
            let expected = FEW_TAP_KERNELS
                .into_iter()
                .find(|name| runnable(name).is_some());
            if let Some(expected) = expected {
                assert_eq!(chosen, expected, "({m}, {k}, {n})");
            }
        }
        // Products with more terms keep tract's choice.
        for (m, k, n) in [
            (512, 512, 24),
            (1536, 32, 64),
            (1024, 16, 6),
            (521, 1024, 1),
            (4, 9, 1),
        ] {
            let own = tracts_own_choice(m, k, n).map(|k| k.name().to_string());
            assert_eq!(kernel_for(m, k, n), own, "({m}, {k}, {n})");
        }
    }

    #[test]
    fn the_correction_changes_no_bit() {
        let mut seed = 0x2545_f491_4f6c_dd1d;
        for (m, k, n) in FIRST_CONVOLUTIONS {
            let a = Tensor::from_shape(&[m, k], &noise(&mut seed, m * k)).unwrap();
            let b = Tensor::from_shape(&[k, n], &noise(&mut seed, k * n)).unwrap();
            let own = tracts_own_choice(m, k, n).expect("tract has a choice");
            let reference = product(&*own, &a, &b);
            for (name, kernel) in FEW_TAP_KERNELS
                .into_iter()
                .filter_map(|name| Some((name, runnable(name)?)))
            {
                let got = product(&*kernel, &a, &b);
                let differing = got.iter().zip(&reference).filter(|(x, y)| x != y).count();
                assert_eq!(
                    differing,
                    0,
                    "{name} against {} on ({m}, {k}, {n})",
                    own.name()
                );
            }
        }
    }
}
