//! Backbones: one 96x64 log-mel patch in, one embedding (and, for YAMNet, 521 AudioSet class
//! scores) out, run by tract from the ONNX files `cargo xtask install-models` writes.
//!
//! Two implementations behind one trait: YAMNet (1024-D embedding + scores) and VGGish (128-D
//! embedding, then PCA whitening and 8-bit quantization exactly as `vggish_postprocess.py`, so
//! that it lives in the same space as AudioSet's released embeddings). A loaded, optimised model
//! is shared (`Arc`) by every analyser in the process. Each has up to two tract plans: one
//! window per run (the plugin's low-latency path) and `BackboneKind::batch_windows` windows per
//! run (offline work); both give a window the same bits.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use tract_onnx::prelude::*;

mod depthwise;
pub use depthwise::kernel_in_use as depthwise_kernel_in_use;
pub mod kernels;

use crate::features;
use crate::models::{self, ModelDir, ModelError};

/// Which network turns patches into embeddings.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BackboneKind {
    Yamnet,
    Vggish,
}

impl BackboneKind {
    pub fn name(self) -> &'static str {
        match self {
            BackboneKind::Yamnet => "yamnet",
            BackboneKind::Vggish => "vggish",
        }
    }

    /// The front end's log offset for this network.
    pub fn log_offset(self) -> f32 {
        match self {
            BackboneKind::Yamnet => features::YAMNET_LOG_OFFSET,
            BackboneKind::Vggish => features::VGGISH_LOG_OFFSET,
        }
    }

    /// Patch hop the network was trained with: 48 frames (0.48 s) for YAMNet, 96 (0.96 s) for VGGish.
    pub fn default_hop_frames(self) -> usize {
        match self {
            BackboneKind::Yamnet => 48,
            BackboneKind::Vggish => 96,
        }
    }

    /// Windows in one run of the batched plan (`Backbone::embed_batch`, offline work), declared
    /// once per network: the best throughput per core of 1, 2, 4, 8, 16 and 32 in
    /// `benches/backbones.rs` (VGGish reads its 12288x4096 fully connected weights once per run,
    /// so a batch pays most there).
    pub fn batch_windows(self) -> usize {
        match self {
            BackboneKind::Yamnet => 8,
            BackboneKind::Vggish => 8,
        }
    }

    pub fn embedding_dim(self) -> usize {
        match self {
            BackboneKind::Yamnet => 1024,
            BackboneKind::Vggish => 128,
        }
    }
}

impl std::str::FromStr for BackboneKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "yamnet" => Ok(BackboneKind::Yamnet),
            "vggish" => Ok(BackboneKind::Vggish),
            other => Err(format!(
                "unknown backbone `{other}` (expected yamnet or vggish)"
            )),
        }
    }
}

/// What a backbone makes of one patch.
#[derive(Clone, Debug, PartialEq)]
pub struct BackboneOutput {
    /// YAMNet: the 1024-D embedding. VGGish: the postprocessed embedding, dequantized
    /// (`q * 4 / 255 - 2` for the 8-bit value `q`), the space AudioSet's released features live in.
    pub embedding: Vec<f32>,
    /// YAMNet only: the 521 AudioSet class scores (sigmoid outputs), class-map order.
    pub scores: Option<Vec<f32>>,
}

#[derive(Debug, thiserror::Error)]
pub enum BackboneError {
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error("inference failed: {0}")]
    Inference(String),
}

/// A network that embeds patches. Implementations are immutable and shared between threads.
pub trait Backbone: Send + Sync {
    fn kind(&self) -> BackboneKind;
    /// Embeds one patch of `features::PATCH_LEN` values (frame-major), with the one-window plan
    /// (the plugin's low-latency path).
    fn embed(&self, patch: &[f32]) -> Result<BackboneOutput, BackboneError>;
    /// Embeds any number of patches, in order, through the batched plan (offline work:
    /// `analyze`, `train`, `eval`): `BackboneKind::batch_windows` windows per run, the last run
    /// padded with copies of its last patch. Each patch's output is bit for bit what `embed` (the
    /// one-window plan) gives it, whatever the other patches in its run (`tests/backbone_batch.rs`),
    /// so offline readings equal the plugin's. The batched plan is built on first use (or by
    /// `load_for`): a plugin that never calls this does not hold it.
    fn embed_batch(&self, patches: &[&[f32]]) -> Result<Vec<BackboneOutput>, BackboneError>;
    /// Builds the plan for `batch` now if it is not built yet (`load_for`).
    fn prepare(&self, batch: Batch) -> Result<(), BackboneError>;
}

/// Loads (once per process and folder) and returns the backbone of `kind` from `dir`, with its
/// one-window plan built (the plugin's low-latency path, `Backbone::embed`).
///
/// The first caller pays for loading and optimising the graph; later callers, on any thread,
/// share it. The process keeps it: re-activating a plugin or restarting its worker after a panic
/// does not load the weights again.
pub fn load(kind: BackboneKind, dir: &ModelDir) -> Result<Arc<dyn Backbone>, BackboneError> {
    load_for(kind, dir, Batch::One)
}

/// As `load`, with the plan that `batch` calls for built: `Batch::Windows` for offline work
/// (`Backbone::embed_batch`). A process that only batches never builds the one-window plan (and
/// so holds one copy of the weights, not two).
pub fn load_for(
    kind: BackboneKind,
    dir: &ModelDir,
    batch: Batch,
) -> Result<Arc<dyn Backbone>, BackboneError> {
    type Cache = Mutex<HashMap<(BackboneKind, PathBuf), Arc<dyn Backbone>>>;
    static CACHE: OnceLock<Cache> = OnceLock::new();
    let key = (kind, dir.path().to_owned());
    // Loading under the lock is deliberate: instances created at once load the model once.
    let mut cache = CACHE
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    if let Some(backbone) = cache.get(&key).cloned() {
        backbone.prepare(batch)?;
        return Ok(backbone);
    }
    let backbone: Arc<dyn Backbone> = match kind {
        BackboneKind::Yamnet => Arc::new(Yamnet::load_for(dir, batch)?),
        BackboneKind::Vggish => Arc::new(Vggish::load_for(dir, batch)?),
    };
    cache.insert(key, backbone.clone());
    Ok(backbone)
}

type Plan = TypedSimplePlan;
type Lazy = OnceLock<Result<Arc<Plan>, ModelError>>;

/// An ONNX backbone graph with a `patch` [N,96,64] input, as up to two optimised plans: N = 1
/// (for `embed`) and N = `windows` (for `embed_batch`). Each is built from the file when first
/// needed; `Graph::load` builds the one asked for, so that a bad file shows at once.
struct Graph {
    path: PathBuf,
    /// Windows per run of the batched plan (`BackboneKind::batch_windows`).
    windows: usize,
    one: Lazy,
    batched: Lazy,
    /// Positions of the named outputs among the graph's outputs.
    at: Vec<usize>,
}

impl Graph {
    fn load(
        path: &Path,
        outputs: &[&str],
        windows: usize,
        first: Batch,
    ) -> Result<Self, ModelError> {
        let graph = Self {
            path: path.to_owned(),
            windows,
            one: OnceLock::new(),
            batched: OnceLock::new(),
            at: Vec::new(),
        };
        let (plan, at) = load_plan(path, outputs, graph.batch_size(first))?;
        let _ = graph.lazy(first).set(Ok(plan));
        Ok(Self { at, ..graph })
    }

    fn batch_size(&self, batch: Batch) -> usize {
        match batch {
            Batch::One => 1,
            Batch::Windows => self.windows,
        }
    }

    fn lazy(&self, batch: Batch) -> &Lazy {
        match batch {
            Batch::One => &self.one,
            Batch::Windows => &self.batched,
        }
    }

    fn plan(&self, batch: Batch) -> Result<&Arc<Plan>, ModelError> {
        self.lazy(batch)
            .get_or_init(|| {
                load_plan(&self.path, &[], self.batch_size(batch)).map(|(plan, _)| plan)
            })
            .as_ref()
            .map_err(Clone::clone)
    }

    /// Runs the one-window plan on one patch.
    fn run_one(&self, patch: &[f32]) -> Result<TVec<TValue>, BackboneError> {
        check_len(patch)?;
        let input = Tensor::from_shape(&[1, features::PATCH_FRAMES, features::MEL_BANDS], patch)
            .map_err(inference)?;
        let out = self.plan(Batch::One)?.run(tvec![input.into()]);
        clear_upper_vector_state();
        out.map_err(inference)
    }

    /// Runs the batched plan over `patches`, `windows` at a time (the last run padded with
    /// copies of its last patch, whose outputs are dropped). Returns, for each named output (of
    /// `widths[k]` values per window), one row per patch.
    fn run_batch(
        &self,
        patches: &[&[f32]],
        widths: &[usize],
    ) -> Result<Vec<Vec<Vec<f32>>>, BackboneError> {
        let plan = self.plan(Batch::Windows)?;
        let n = self.windows;
        let mut rows: Vec<Vec<Vec<f32>>> = widths
            .iter()
            .map(|_| Vec::with_capacity(patches.len()))
            .collect();
        let mut flat = Vec::with_capacity(n * features::PATCH_LEN);
        for run in patches.chunks(n) {
            flat.clear();
            for patch in run {
                check_len(patch)?;
                flat.extend_from_slice(patch);
            }
            let last = run[run.len() - 1];
            for _ in run.len()..n {
                flat.extend_from_slice(last);
            }
            let input =
                Tensor::from_shape(&[n, features::PATCH_FRAMES, features::MEL_BANDS], &flat)
                    .map_err(inference)?;
            let out = plan.run(tvec![input.into()]);
            clear_upper_vector_state();
            let out = out.map_err(inference)?;
            for ((&at, &width), rows) in self.at.iter().zip(widths).zip(&mut rows) {
                let values = out[at].to_plain_array_view::<f32>().map_err(inference)?;
                if values.len() != n * width {
                    return Err(BackboneError::Inference(format!(
                        "output {at} has {} values for {n} windows, not {}",
                        values.len(),
                        n * width
                    )));
                }
                let values: Vec<f32> = values.iter().copied().collect();
                rows.extend(
                    values
                        .chunks_exact(width)
                        .take(run.len())
                        .map(<[f32]>::to_vec),
                );
            }
        }
        Ok(rows)
    }
}

/// Which of a backbone's plans to build.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Batch {
    /// One window per run (`Backbone::embed`, the plugin's real-time path).
    One,
    /// `BackboneKind::batch_windows` windows per run (`Backbone::embed_batch`, offline work).
    Windows,
}

/// The optimised plan Moodscope runs for the backbone file `path` with `windows` windows per run
/// (`benches/backbones.rs` times it node by node, and per batch size).
pub fn optimised_plan(path: &Path, windows: usize) -> Result<Arc<TypedSimplePlan>, ModelError> {
    load_plan(path, &[], windows).map(|(plan, _)| plan)
}

/// Loads an ONNX backbone graph with a `patch` [N,96,64] input, fixes N to `windows`, optimises
/// it, and returns the plan with the positions of the named outputs.
fn load_plan(
    path: &Path,
    outputs: &[&str],
    windows: usize,
) -> Result<(Arc<Plan>, Vec<usize>), ModelError> {
    let corrupt = |reason: String| ModelError::Corrupt {
        path: path.to_owned(),
        reason,
    };
    let fail = |e: TractError| corrupt(format!("{e:#}"));
    let model = tract_onnx::onnx().model_for_path(path).map_err(fail)?;
    let names: Vec<String> = model
        .output_outlets()
        .map_err(fail)?
        .iter()
        .map(|o| {
            model
                .outlet_label(*o)
                .map(str::to_owned)
                .unwrap_or_else(|| model.node(o.node).name.clone())
        })
        .collect();
    let positions = outputs
        .iter()
        .map(|want| {
            names
                .iter()
                .position(|n| n == want)
                .ok_or_else(|| corrupt(format!("no output `{want}` (outputs: {names:?})")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    // A concrete batch size, not a symbol: tract then picks the same shape-specialised kernels
    // as for one window (a symbolic N ran about 8x slower per YAMNet window in tract 0.23.9,
    // and its values differed from the one-window plan's by a few ULP).
    let n: TDim = windows.into();
    let plan = model
        .with_input_fact(
            0,
            f32::fact([n, features::PATCH_FRAMES.into(), features::MEL_BANDS.into()]).into(),
        )
        .and_then(|m| m.into_typed())
        .and_then(|m| m.into_decluttered())
        .and_then(channels_last)
        .and_then(|m| m.into_optimized())
        .and_then(|m| m.into_runnable())
        .map_err(fail)?;
    return_freed_memory();
    Ok((plan, positions))
}

/// Hands the memory that loading freed back to the system. Loading VGGish decodes and optimises
/// 288 MB of weights through transient copies; glibc keeps what they freed in the loading
/// thread's heap, where the threads that run the plan (with their own heaps) cannot reuse it,
/// so it would count on top of their working memory for as long as the process lives.
fn return_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: `malloc_trim` only releases free pages of glibc's heaps; it is thread-safe.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Runs every convolution channels-last (tract's `conv_nhwc` transform; the ONNX graphs are
/// NCHW): tract's depthwise convolution has a vectorised kernel only for that layout, which makes
/// YAMNet's 13 depthwise layers about twice as fast (`benches/backbones.rs` measures the whole
/// network). The values do not change (`tests/backbone_yamnet.rs`, `tests/backbone_vggish.rs`).
/// Between two convolutions the layout moves cancel out when the graph is decluttered again.
fn channels_last(mut model: TypedModel) -> TractResult<TypedModel> {
    let transform = tract_onnx::tract_core::transform::get_transform("conv_nhwc")?
        .ok_or_else(|| anyhow::anyhow!("tract has no conv_nhwc transform"))?;
    transform.transform(&mut model)?;
    model.into_decluttered()
}

/// Clears the upper halves of the vector registers (`vzeroupper`) after a tract run.
///
/// tract 0.23.9's x86 matrix kernels (hand-written AVX-512 and FMA assembly) return with those
/// halves dirty. Until something clears them, every legacy-SSE instruction this thread runs pays
/// for it: glibc's `exp` and `log` (the window cues, `cues::mel_cues`) ran about 30 times slower
/// after a YAMNet run than before one (0.59 s against 0.02 s for a 3-minute piece), a third of
/// `moodscope analyze`'s time. The upstream fix is a `vzeroupper` at the end of each kernel.
#[inline]
fn clear_upper_vector_state() {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx") {
        // SAFETY: the CPU has AVX (checked just above).
        unsafe { zero_upper() }
    }
}

/// `vzeroupper`: between two calls no live value sits in the registers' upper halves (the ABI
/// makes them caller-saved), so clearing them changes no value.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx")]
unsafe fn zero_upper() {
    std::arch::x86_64::_mm256_zeroupper();
}

fn inference(e: TractError) -> BackboneError {
    BackboneError::Inference(format!("{e:#}"))
}

fn check_len(patch: &[f32]) -> Result<(), BackboneError> {
    if patch.len() != features::PATCH_LEN {
        return Err(BackboneError::Inference(format!(
            "a patch has {} values, not {}",
            patch.len(),
            features::PATCH_LEN
        )));
    }
    Ok(())
}

fn values(output: &TValue, expected: usize, what: &str) -> Result<Vec<f32>, BackboneError> {
    let v = output
        .to_plain_array_view::<f32>()
        .map_err(|e| BackboneError::Inference(format!("{e:#}")))?;
    if v.len() != expected {
        return Err(BackboneError::Inference(format!(
            "{what} has {} values, not {expected}",
            v.len()
        )));
    }
    Ok(v.iter().copied().collect())
}

/// YAMNet (MobileNet v1 trained on AudioSet): 1024-D embedding and 521 class scores.
pub struct Yamnet {
    graph: Graph,
}

/// Number of AudioSet classes YAMNet scores.
pub const YAMNET_CLASSES: usize = 521;
const YAMNET_DIM: usize = 1024;

impl Yamnet {
    pub fn load(dir: &ModelDir) -> Result<Self, ModelError> {
        Self::load_for(dir, Batch::One)
    }

    pub fn load_for(dir: &ModelDir, first: Batch) -> Result<Self, ModelError> {
        let path = dir.file(models::YAMNET_ONNX)?;
        let graph = Graph::load(
            &path,
            &["scores", "embedding"],
            BackboneKind::Yamnet.batch_windows(),
            first,
        )?;
        Ok(Self { graph })
    }
}

impl Backbone for Yamnet {
    fn kind(&self) -> BackboneKind {
        BackboneKind::Yamnet
    }

    fn embed(&self, patch: &[f32]) -> Result<BackboneOutput, BackboneError> {
        let out = self.graph.run_one(patch)?;
        let (scores_at, embedding_at) = (self.graph.at[0], self.graph.at[1]);
        Ok(BackboneOutput {
            embedding: values(&out[embedding_at], YAMNET_DIM, "YAMNet's embedding")?,
            scores: Some(values(&out[scores_at], YAMNET_CLASSES, "YAMNet's scores")?),
        })
    }

    fn embed_batch(&self, patches: &[&[f32]]) -> Result<Vec<BackboneOutput>, BackboneError> {
        if patches.is_empty() {
            return Ok(Vec::new());
        }
        let mut out = self
            .graph
            .run_batch(patches, &[YAMNET_CLASSES, YAMNET_DIM])?;
        let (embeddings, scores) = (out.pop().unwrap_or_default(), out.pop().unwrap_or_default());
        Ok(embeddings
            .into_iter()
            .zip(scores)
            .map(|(embedding, scores)| BackboneOutput {
                embedding,
                scores: Some(scores),
            })
            .collect())
    }

    fn prepare(&self, batch: Batch) -> Result<(), BackboneError> {
        self.graph.plan(batch).map(drop).map_err(Into::into)
    }
}

/// VGGish (a VGG-like network trained on YouTube-8M audio) with AudioSet's postprocessing.
pub struct Vggish {
    graph: Graph,
    postprocess: VggishPostprocess,
}

impl Vggish {
    pub fn load(dir: &ModelDir) -> Result<Self, ModelError> {
        Self::load_for(dir, Batch::One)
    }

    pub fn load_for(dir: &ModelDir, first: Batch) -> Result<Self, ModelError> {
        // Read the small PCA file first: a missing one is reported before the slow graph load.
        let postprocess = VggishPostprocess::load(&dir.file(models::VGGISH_PCA)?)?;
        let graph = Graph::load(
            &dir.file(models::VGGISH_ONNX)?,
            &["embedding"],
            BackboneKind::Vggish.batch_windows(),
            first,
        )?;
        Ok(Self { graph, postprocess })
    }

    /// The network's raw 128-D output for one patch (the one-window plan), before postprocessing.
    pub fn raw_embedding(&self, patch: &[f32]) -> Result<Vec<f32>, BackboneError> {
        let out = self.graph.run_one(patch)?;
        values(&out[self.graph.at[0]], VGGISH_DIM, "VGGish's embedding")
    }

    /// The network's raw outputs for several patches, through the batched plan.
    pub fn raw_embeddings(&self, patches: &[&[f32]]) -> Result<Vec<Vec<f32>>, BackboneError> {
        if patches.is_empty() {
            return Ok(Vec::new());
        }
        let mut out = self.graph.run_batch(patches, &[VGGISH_DIM])?;
        Ok(out.pop().unwrap_or_default())
    }

    fn postprocessed(&self, raw: &[f32]) -> BackboneOutput {
        let quantized = self.postprocess.quantize(raw);
        BackboneOutput {
            embedding: quantized.iter().map(|&q| dequantize(q)).collect(),
            scores: None,
        }
    }
}

impl Backbone for Vggish {
    fn kind(&self) -> BackboneKind {
        BackboneKind::Vggish
    }

    fn embed(&self, patch: &[f32]) -> Result<BackboneOutput, BackboneError> {
        Ok(self.postprocessed(&self.raw_embedding(patch)?))
    }

    fn embed_batch(&self, patches: &[&[f32]]) -> Result<Vec<BackboneOutput>, BackboneError> {
        let raw = self.raw_embeddings(patches)?;
        Ok(raw.iter().map(|r| self.postprocessed(r)).collect())
    }

    fn prepare(&self, batch: Batch) -> Result<(), BackboneError> {
        self.graph.plan(batch).map(drop).map_err(Into::into)
    }
}

/// VGGish's embedding size.
pub const VGGISH_DIM: usize = 128;
/// The released AudioSet embeddings are PCA-whitened values clipped to ±2 and mapped to 0..255.
const QUANTIZE_MIN: f64 = -2.0;
const QUANTIZE_MAX: f64 = 2.0;

/// The 8-bit value `q` of a released (or postprocessed) VGGish embedding, back in its PCA space:
/// the inverse of the quantization step, `q * 4 / 255 - 2`.
pub fn dequantize(q: u8) -> f32 {
    (q as f64 * (QUANTIZE_MAX - QUANTIZE_MIN) / 255.0 + QUANTIZE_MIN) as f32
}

/// `vggish_postprocess.py`: PCA whitening, clipping and 8-bit quantization, in float64 as numpy.
pub struct VggishPostprocess {
    /// 128x128, row-major: row `i` is the `i`-th eigenvector.
    eigen_vectors: Vec<f64>,
    means: Vec<f64>,
}

impl VggishPostprocess {
    /// Reads `pca_eigen_vectors` (128x128) and `pca_means` (128x1) from `vggish_pca_params.npz`.
    pub fn load(path: &Path) -> Result<Self, ModelError> {
        use tract_onnx::prelude::tract_ndarray::{Array2, ArrayD};
        let corrupt = |reason: String| ModelError::Corrupt {
            path: path.to_owned(),
            reason,
        };
        let file = std::fs::File::open(path).map_err(|e| corrupt(e.to_string()))?;
        let mut npz = ndarray_npy::NpzReader::new(file).map_err(|e| corrupt(e.to_string()))?;
        let eigen: Array2<f64> = npz
            .by_name("pca_eigen_vectors")
            .map_err(|e| corrupt(format!("pca_eigen_vectors: {e}")))?;
        // The official file stores the means as a 1-D array of 128 (the model README says 128x1):
        // take either.
        let means: ArrayD<f64> = npz
            .by_name("pca_means")
            .map_err(|e| corrupt(format!("pca_means: {e}")))?;
        if eigen.dim() != (VGGISH_DIM, VGGISH_DIM) || means.len() != VGGISH_DIM {
            return Err(corrupt(format!(
                "expected 128x128 eigenvectors and 128 means, found {:?} and {:?}",
                eigen.dim(),
                means.dim()
            )));
        }
        Ok(Self {
            eigen_vectors: eigen.iter().copied().collect(),
            means: means.iter().copied().collect(),
        })
    }

    /// `quantize(clip(E · (x - μ), -2, 2))` to 0..255, truncating like numpy's `astype(uint8)`.
    pub fn quantize(&self, embedding: &[f32]) -> [u8; VGGISH_DIM] {
        let centred: Vec<f64> = embedding
            .iter()
            .zip(&self.means)
            .map(|(&x, m)| x as f64 - m)
            .collect();
        let mut out = [0u8; VGGISH_DIM];
        for (i, q) in out.iter_mut().enumerate() {
            let row = &self.eigen_vectors[i * VGGISH_DIM..(i + 1) * VGGISH_DIM];
            let whitened: f64 = row.iter().zip(&centred).map(|(e, c)| e * c).sum();
            let clipped = whitened.clamp(QUANTIZE_MIN, QUANTIZE_MAX);
            *q = ((clipped - QUANTIZE_MIN) * (255.0 / (QUANTIZE_MAX - QUANTIZE_MIN))) as u8;
        }
        out
    }
}
