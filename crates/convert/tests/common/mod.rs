//! What the conversion tests share: where the model mirror, the music and the Python reference
//! scripts are, running those scripts, reading their `.npy` output, and running a converted
//! ONNX file in tract.
//!
//! Every missing tool is a test failure that says what to install, never a skip.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use tract_onnx::prelude::tract_ndarray::{ArrayD, Ix2, Ix3};
use tract_onnx::prelude::*;

/// The pip requirements of the reference scripts, relative to the workspace root.
pub const REQUIREMENTS: &str = "tests/python/requirements-convert.txt";

/// The workspace root (two levels above this crate).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("the workspace root exists")
}

/// The folder of official model files: `MOODSCOPE_MODEL_MIRROR`, else `../shared/models`
/// beside the workspace (as in CI).
pub fn model_mirror() -> PathBuf {
    let mirror = std::env::var_os("MOODSCOPE_MODEL_MIRROR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("../shared/models"));
    assert!(
        mirror.join("yamnet.tflite").is_file(),
        "{} has no yamnet.tflite: set MOODSCOPE_MODEL_MIRROR to a folder holding the official \
         model files (yamnet.tflite from TF-Hub google/lite-model/yamnet/tflite/1), or put them \
         in ../shared/models beside the workspace",
        mirror.display()
    );
    mirror
}

/// Real music: tracks of the HyperRogue soundtrack (Debian's `hyperrogue-music`).
pub fn music(names: &[&str]) -> Vec<PathBuf> {
    let folder = Path::new("/usr/share/hyperrogue/music");
    names
        .iter()
        .map(|name| {
            let path = folder.join(name);
            assert!(
                path.is_file(),
                "{} is missing: these tests analyse real music; install it with \
                 `sudo apt-get install hyperrogue-music`",
                path.display()
            );
            path
        })
        .collect()
}

/// The Python interpreter: `MOODSCOPE_PYTHON`, else `python3`.
fn python() -> String {
    std::env::var("MOODSCOPE_PYTHON").unwrap_or_else(|_| "python3".into())
}

/// Fails unless every module in `modules` can be imported by the Python interpreter.
pub fn require_python_modules(modules: &[&str]) {
    let probe = format!(
        "import importlib.util, sys\n\
         missing = [m for m in {modules:?} if importlib.util.find_spec(m) is None]\n\
         print(' '.join(missing))"
    );
    let output = Command::new(python())
        .args(["-c", &probe])
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run `{}` ({e}): these tests compare with Python references; install \
                 Python 3 (`sudo apt-get install python3 python3-pip`), then \
                 `python3 -m pip install -r {REQUIREMENTS}`",
                python()
            )
        });
    assert!(
        output.status.success(),
        "`{}` failed: {}",
        python(),
        String::from_utf8_lossy(&output.stderr)
    );
    let missing = String::from_utf8_lossy(&output.stdout).trim().to_string();
    assert!(
        missing.is_empty(),
        "the Python modules {missing} are missing; install the reference tools with \
         `python3 -m pip install -r {REQUIREMENTS}` (from the workspace root)"
    );
}

/// Runs `tests/python/<script>` with `args`; returns its last stdout line (a JSON summary).
pub fn run_python(script: &str, args: &[&std::ffi::OsStr]) -> serde_json::Value {
    let path = workspace_root().join("tests/python").join(script);
    let start = Instant::now();
    let output = Command::new(python())
        .arg(&path)
        .args(args)
        .env("TF_CPP_MIN_LOG_LEVEL", "2")
        .output()
        .unwrap_or_else(|e| panic!("cannot run `{} {}`: {e}", python(), path.display()));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "{script} failed ({}):\n{stdout}\n{stderr}\n(the reference tools are installed with \
         `python3 -m pip install -r {REQUIREMENTS}`)",
        output.status
    );
    let last = stdout.lines().last().unwrap_or_default();
    let summary: serde_json::Value = serde_json::from_str(last)
        .unwrap_or_else(|e| panic!("{script} printed no JSON summary ({e}):\n{stdout}"));
    eprintln!(
        "{script} ({:.1} s): {summary}",
        start.elapsed().as_secs_f64()
    );
    summary
}

/// A float32 `.npy` file.
pub fn read_npy(path: &Path) -> ArrayD<f32> {
    ndarray_npy::read_npy(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

/// Runs the ONNX model at `onnx` in tract on `patches` [N, 96, 64]; returns its outputs, each
/// [N, len], in the model's output order.
pub fn run_in_tract(onnx: &Path, patches: &ArrayD<f32>) -> Vec<tract_ndarray::Array2<f32>> {
    let start = Instant::now();
    let model = tract_onnx::onnx()
        .model_for_path(onnx)
        .and_then(|m| m.into_optimized())
        .and_then(|m| m.into_runnable())
        .unwrap_or_else(|e| panic!("tract cannot load {}: {e:#}", onnx.display()));
    let loaded = start.elapsed();
    let input = patches
        .clone()
        .into_dimensionality::<Ix3>()
        .expect("patches are [N, 96, 64]");
    let outputs = model
        .run(tvec!(Tensor::from(input).into()))
        .unwrap_or_else(|e| panic!("tract cannot run {}: {e:#}", onnx.display()));
    eprintln!(
        "tract: {} loaded and optimised in {:.1} s, {} patches run in {:.2} s",
        onnx.display(),
        loaded.as_secs_f64(),
        patches.shape()[0],
        (start.elapsed() - loaded).as_secs_f64()
    );
    outputs
        .iter()
        .map(|t| {
            t.to_plain_array_view::<f32>()
                .expect("float32 outputs")
                .to_owned()
                .into_dimensionality::<Ix2>()
                .expect("outputs are [N, len]")
        })
        .collect()
}

/// How far `actual` is from `expected`: the largest absolute difference, and where.
pub fn max_abs_diff(
    actual: &tract_ndarray::Array2<f32>,
    expected: &ArrayD<f32>,
) -> (f32, [usize; 2]) {
    let expected = expected
        .view()
        .into_dimensionality::<Ix2>()
        .expect("a [N, len] reference");
    assert_eq!(
        actual.shape(),
        expected.shape(),
        "the converted model's output and the reference differ in shape"
    );
    let mut worst = (0f32, [0, 0]);
    for ((index, a), e) in actual.indexed_iter().zip(expected.iter()) {
        let d = (a - e).abs();
        assert!(d.is_finite(), "a non-finite value at {index:?}: {a} vs {e}");
        if d > worst.0 {
            worst = (d, [index.0, index.1]);
        }
    }
    worst
}
