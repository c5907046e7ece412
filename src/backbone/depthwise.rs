//! A depthwise-convolution kernel for tract on x86-64 (YAMNet's 13 depthwise 3x3 layers), given
//! to tract through its own kernel registry (`tract_linalg::routines`, collected by `inventory`).
//!
//! In: one zone of a channel-last depthwise convolution, as tract's `DepthWise` op hands it to
//! the "channel-inner" kernel slot (`tract_linalg::routines::DepthwiseCF32`): `len` output
//! positions, each `channels` contiguous values. Out: those output values.
//!
//! tract 0.23.9 writes that kernel for Arm (NEON) and WebAssembly (SIMD128) only; on x86-64 its
//! op falls back to a generic loop compiled for the baseline x86-64 (SSE2, four lanes), which was
//! about a tenth of a YAMNet library scan. This one does the same arithmetic eight lanes at a
//! time with AVX: per output value `bias`, then `+ kernel * input` tap by tap in tract's order,
//! one rounding per multiply and per add (no fused multiply-add), so every value is bit for bit
//! the generic loop's and a machine without AVX computes the same embeddings
//! (`tests::matches_the_generic_loop_bit_for_bit`).

#[cfg(target_arch = "x86_64")]
mod x86 {
    use tract_linalg::isa::{Arch, Isa, IsaReq};
    use tract_linalg::routines::{Func, Routine, RoutineFactory};

    /// The name tract reports for this kernel (`tract_linalg::routines::declared`).
    pub const NAME: &str = "moodscope_avx_depthwise_c_f32";

    inventory::submit! {
        Routine {
            func: Func::DepthwiseC,
            arch: Some(Arch::X86_64),
            isa: IsaReq::ANY.needing(&[Isa::X86_64Avx]),
            boost: 0,
            round_trip: false,
            factory: RoutineFactory::DepthwiseCF32 { name: NAME, run: depthwise_c_f32 },
        }
    }

    /// tract's `DepthwiseCF32` contract: output position `i`, channel `c` is `bias[c]` plus, for
    /// each tap `t` in order, `kernel[tap_indices[t] * k_stride + c] * input[i * in_stride +
    /// offsets[t] + c]`, written at `output[i * out_stride + c]`.
    ///
    /// # Safety
    /// The pointers must cover those reads and writes (tract's `DepthWise` op guarantees it), and
    /// the CPU must have AVX (tract only picks this kernel where `Isa::X86_64Avx` is detected).
    #[target_feature(enable = "avx")]
    #[allow(clippy::too_many_arguments)]
    pub unsafe fn depthwise_c_f32(
        input: *const f32,
        output: *mut f32,
        kernel: *const f32,
        tap_indices: &[usize],
        offsets: &[isize],
        bias: *const f32,
        channels: usize,
        k_stride: usize,
        len: usize,
        in_stride: isize,
        out_stride: isize,
    ) {
        use std::arch::x86_64::*;
        let taps = tap_indices.len().min(offsets.len());
        for i in 0..len as isize {
            // SAFETY (for the whole body): tract's contract above.
            unsafe {
                let iptr = input.offset(i * in_stride);
                let optr = output.offset(i * out_stride);
                let mut c = 0usize;
                while c + 32 <= channels {
                    let mut acc = [
                        _mm256_loadu_ps(bias.add(c)),
                        _mm256_loadu_ps(bias.add(c + 8)),
                        _mm256_loadu_ps(bias.add(c + 16)),
                        _mm256_loadu_ps(bias.add(c + 24)),
                    ];
                    for t in 0..taps {
                        let k = kernel.add(tap_indices[t] * k_stride + c);
                        let x = iptr.offset(offsets[t]).add(c);
                        for (lane, a) in acc.iter_mut().enumerate() {
                            let product = _mm256_mul_ps(
                                _mm256_loadu_ps(k.add(8 * lane)),
                                _mm256_loadu_ps(x.add(8 * lane)),
                            );
                            *a = _mm256_add_ps(*a, product);
                        }
                    }
                    for (lane, a) in acc.iter().enumerate() {
                        _mm256_storeu_ps(optr.add(c + 8 * lane), *a);
                    }
                    c += 32;
                }
                while c + 8 <= channels {
                    let mut acc = _mm256_loadu_ps(bias.add(c));
                    for t in 0..taps {
                        let k = _mm256_loadu_ps(kernel.add(tap_indices[t] * k_stride + c));
                        let x = _mm256_loadu_ps(iptr.offset(offsets[t]).add(c));
                        acc = _mm256_add_ps(acc, _mm256_mul_ps(k, x));
                    }
                    _mm256_storeu_ps(optr.add(c), acc);
                    c += 8;
                }
                while c < channels {
                    let mut sum = *bias.add(c);
                    for t in 0..taps {
                        sum += *kernel.add(tap_indices[t] * k_stride + c)
                            * *iptr.offset(offsets[t]).add(c);
                    }
                    *optr.add(c) = sum;
                    c += 1;
                }
            }
        }
    }
}

/// The name of the channel-last depthwise kernel tract runs on this machine (`None` where it
/// has none and keeps its generic loop). The registration above needs no call: rustc keeps an
/// upstream crate's `#[used]` statics, which is what `inventory::submit!` writes.
pub fn kernel_in_use() -> Option<&'static str> {
    tract_linalg::routines::best_for(
        tract_linalg::routines::Func::DepthwiseC,
        tract_onnx::prelude::DatumType::F32,
        &tract_linalg::isa::native(),
    )
    .map(|routine| routine.name())
}

#[cfg(all(test, target_arch = "x86_64"))]
mod tests {
    use super::x86::{depthwise_c_f32, NAME};

    /// tract 0.23.9's generic channel-inner loop (`eval_c_inner_generic` in
    /// `tract_core::ops::cnn::conv::depth_wise`), the reference this kernel must equal.
    #[allow(clippy::too_many_arguments)]
    fn generic(
        input: &[f32],
        output: &mut [f32],
        kernel: &[f32],
        tap_indices: &[usize],
        offsets: &[isize],
        bias: &[f32],
        channels: usize,
        k_stride: usize,
        len: usize,
        in_stride: isize,
        out_stride: isize,
        input_origin: isize,
    ) {
        for i in 0..len as isize {
            let out = &mut output[(i * out_stride) as usize..][..channels];
            out.copy_from_slice(&bias[..channels]);
            for (&kix, &off) in tap_indices.iter().zip(offsets) {
                let k = &kernel[kix * k_stride..][..channels];
                let x = &input[(input_origin + i * in_stride + off) as usize..][..channels];
                for c in 0..channels {
                    out[c] += k[c] * x[c];
                }
            }
        }
    }

    fn noise(seed: &mut u64, n: usize) -> Vec<f32> {
        (0..n)
            .map(|_| {
                *seed = seed
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                ((*seed >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 4.0
            })
            .collect()
    }

    #[test]
    fn matches_the_generic_loop_bit_for_bit() {
        if !std::arch::is_x86_feature_detected!("avx") {
            eprintln!("no AVX on this machine: nothing to compare");
            return;
        }
        let mut seed = 7;
        // YAMNet's channel counts, and counts that leave 8-lane and scalar remainders.
        for channels in [32, 64, 128, 256, 512, 1024, 8, 13, 47, 3] {
            for (in_stride, taps) in [(1isize, 9usize), (2, 9), (1, 4), (2, 6)] {
                let len = 7;
                let k_stride = channels + 5;
                let row = channels as isize * 3;
                // Taps of a 3x3 window around the centre, channel-last: (dy, dx) steps.
                let offsets: Vec<isize> = (0..taps as isize)
                    .map(|t| (t / 3 - 1) * row * 2 + (t % 3 - 1) * channels as isize)
                    .collect();
                let tap_indices: Vec<usize> = (0..taps).rev().collect();
                let origin = row * 2 + channels as isize;
                let input = noise(
                    &mut seed,
                    (origin * 2 + len as isize * in_stride * channels as isize) as usize
                        + row as usize * 4,
                );
                let kernel = noise(&mut seed, taps * k_stride);
                let bias = noise(&mut seed, channels);
                let out_stride = channels as isize + 3;
                let mut expected = vec![0.0f32; len * out_stride as usize];
                let mut actual = expected.clone();
                generic(
                    &input,
                    &mut expected,
                    &kernel,
                    &tap_indices,
                    &offsets,
                    &bias,
                    channels,
                    k_stride,
                    len,
                    in_stride * channels as isize,
                    out_stride,
                    origin,
                );
                // SAFETY: the buffers cover every read and write of the contract (built above
                // with the same offsets as `generic`, which indexes them with bounds checks).
                unsafe {
                    depthwise_c_f32(
                        input.as_ptr().offset(origin),
                        actual.as_mut_ptr(),
                        kernel.as_ptr(),
                        &tap_indices,
                        &offsets,
                        bias.as_ptr(),
                        channels,
                        k_stride,
                        len,
                        in_stride * channels as isize,
                        out_stride,
                    )
                };
                let same = expected
                    .iter()
                    .zip(&actual)
                    .all(|(a, b)| a.to_bits() == b.to_bits());
                assert!(same, "{channels} channels, stride {in_stride}, {taps} taps");
            }
        }
    }

    #[test]
    fn tract_runs_this_kernel_where_avx_is_present() {
        let expected = std::arch::is_x86_feature_detected!("avx").then_some(NAME);
        assert_eq!(super::kernel_in_use(), expected);
    }
}
