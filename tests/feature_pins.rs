//! The `moodscope` build (the tool and the plugin bundles: `--features cli`) and the training
//! build (`moodscope-train`, `crates/train-cli`) must see every crate they share with the same
//! features: otherwise building one makes cargo compile those crates, and all above them (tract,
//! egui, Moodscope itself), again for the other, and `cargo moodscope-train` after a first run
//! would take minutes instead of compiling only candle and the trainer. The workspace-hack crate
//! (`crates/workspace-hack`) pins them; this test asks `cargo tree` whether the pins still hold
//! (after a dependency update, say) and names the crates to pin when they do not.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;

/// Each package (name and version) of one build with the feature sets it is built with; `edges`
/// says which dependencies count (`normal,build` for binaries, `normal,build,dev` for examples
/// and tests, which also build the package's dev-dependencies).
fn feature_sets(edges: &str, args: &[&str]) -> BTreeMap<String, BTreeSet<String>> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let output = Command::new(cargo)
        .current_dir(Path::new(env!("CARGO_MANIFEST_DIR")))
        .args(["tree", "--locked", "-e", edges, "--prefix", "none"])
        .args(["--format", "{p}|{f}"])
        .args(args)
        .output()
        .expect("running cargo tree");
    assert!(
        output.status.success(),
        "cargo tree {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let mut sets: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for line in String::from_utf8_lossy(&output.stdout).lines() {
        let line = line.trim_end_matches(" (*)");
        let Some((package, features)) = line.split_once('|') else {
            continue;
        };
        // "name vX.Y.Z (path)" or "name vX.Y.Z (proc-macro)": name and version identify it.
        let id: String = package
            .split_whitespace()
            .take(2)
            .collect::<Vec<_>>()
            .join(" ");
        let features = features.trim_end_matches(" (*)").to_owned();
        sets.entry(id).or_default().insert(features);
    }
    assert!(
        sets.len() > 100,
        "cargo tree {args:?} listed only {} packages",
        sets.len()
    );
    sets
}

/// The crates both builds contain whose feature sets differ, one line each.
fn differing(
    tool: &BTreeMap<String, BTreeSet<String>>,
    training: &BTreeMap<String, BTreeSet<String>>,
) -> Vec<String> {
    tool.iter()
        .filter_map(|(id, features)| {
            let other = training.get(id)?;
            (other != features).then(|| {
                format!("{id}: the tool builds it with {features:?}, training with {other:?}")
            })
        })
        .collect()
}

#[test]
fn the_tool_and_the_training_build_share_every_common_crate_as_built() {
    let tool = feature_sets(
        "normal,build",
        &["--package", "moodscope", "--features", "cli"],
    );
    let training = feature_sets("normal,build", &["--package", "moodscope-train-cli"]);
    // The training examples (`--example table1`, `emotify`) and tests add its dev-dependencies.
    let training_examples = feature_sets("normal,build,dev", &["--package", "moodscope-train-cli"]);
    for (build, sets) in [("binary", &training), ("examples", &training_examples)] {
        let differing = differing(&tool, sets);
        assert!(
            differing.is_empty(),
            "pin these crates' features in crates/workspace-hack/Cargo.toml (the training \
             {build} build's set):\n{}",
            differing.join("\n")
        );
    }
    // Training adds its own crates: candle is in its build, not in the tool's.
    let has_candle = |sets: &BTreeMap<String, BTreeSet<String>>| {
        sets.keys().any(|id| id.starts_with("candle-core "))
    };
    assert!(has_candle(&training), "no candle in the training build");
    assert!(!has_candle(&tool), "candle is in the tool's build");
}
