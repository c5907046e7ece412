#!/usr/bin/env bash
# Builds the plugin with nice-plug's `assert_process_allocs` for the host tests
# (crates/clap-test-host/tests/alloc_check.rs): any allocation or deallocation inside `process()`
# then aborts the host. The check only exists in builds with debug assertions, so this is a debug
# (dev-profile) build; it is written to target/alloc-check/Moodscope.clap (on Linux a CLAP bundle
# is the shared library itself) so that it does not replace the release bundle in target/bundled.
set -euo pipefail
cd "$(dirname "$0")/../.."
target="${CARGO_TARGET_DIR:-target}"
# The workspace's libraries with the features the test run uses (`moodscope/cli`), so that their
# dependencies are built once for both; only nice-plug and its dependents are built twice.
cargo build --workspace --lib --features moodscope/cli,moodscope/assert_process_allocs
mkdir -p "$target/alloc-check"
cp "$target/debug/libmoodscope.so" "$target/alloc-check/Moodscope.clap.tmp"
mv "$target/alloc-check/Moodscope.clap.tmp" "$target/alloc-check/Moodscope.clap"
# nice-assert-no-alloc's abort message is only compiled in with the check on.
grep -q "bytes failed from:" "$target/alloc-check/Moodscope.clap" \
  || { echo "the build has no allocation check (was libmoodscope.so rebuilt meanwhile?)" >&2; exit 1; }
echo "built $target/alloc-check/Moodscope.clap"
