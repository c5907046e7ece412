#!/usr/bin/env bash
# The test command (README, `.ci/run`): installs what the tests need on a fresh Debian machine
# (system packages, the Python reference tools, the model files), builds the plugin bundles and
# runs every test of the workspace.
#
# Models come from MOODSCOPE_MODEL_MIRROR when it is set (CI: ../shared/models), else from their
# official homes.
set -euo pipefail
cd "$(dirname "$0")/.."
# A test run gains nothing from incremental compilation, and its caches cost gigabytes of disk.
export CARGO_INCREMENTAL=0

sudo=""
[ "$(id -u)" = 0 ] || sudo="sudo"

echo "== system packages"
$sudo apt-get update -qq
# hyperrogue-music: freely licensed music (Ogg Vorbis) for real-music tests; espeak-ng: real
# speech, which must not be read as a mood; xvfb: a real X
# server for the editor screenshot, libgl1-mesa-dri: the software OpenGL the editor draws with
# there; the X11/GL/ALSA/JACK headers: nice-plug's windowing and standalone; ardour: a real DAW
# that renders a session with the VST3 from the command line (ardour7-lua, ardour7-export;
# crates/clap-test-host/tests/ardour_render.rs; about 20 s to install, 31 packages).
$sudo apt-get install -y -qq --no-install-recommends \
  hyperrogue-music espeak-ng xvfb xauth libgl1-mesa-dri libx11-dev libx11-xcb-dev libxcb1-dev \
  libxcb-dri2-0-dev libxcb-icccm4-dev libxcursor-dev libxkbcommon-dev libgl1-mesa-dev libgl-dev \
  libasound2-dev libjack-jackd2-dev pkg-config python3-pip ardour >/dev/null
# The Ardour test skips when Ardour is missing; here it was just installed, so missing is a failure.
export MOODSCOPE_REQUIRE_ARDOUR=1
# libopus-dev: the Opus decoder (libopus, found through pkg-config); ffmpeg: the format, tag and
# library tests make their files from real music with it, and decode with it as a reference.
$sudo apt-get install -y -qq --no-install-recommends libopus-dev ffmpeg >/dev/null

echo "== python reference tools"
python3 -m pip install -q -r tests/python/requirements-convert.txt -r tests/python/requirements-host.txt
python3 -m pip install -q --no-deps torchvggish==0.2
python3 -m pip install -q -r tests/python/requirements-tags.txt

echo "== models"
cargo xtask install-models

echo "== plugin bundles"
cargo xtask bundle moodscope --release

echo "== allocation-checking plugin build (debug, assert_process_allocs)"
bash crates/clap-test-host/build-alloc-check.sh

echo "== tests"
status=0
cargo test --workspace --features moodscope/cli --no-fail-fast || status=1
# The VST3 bundle in a real host: Spotify's pedalboard.
python3 -m pytest -q tests/python/test_vst3_pedalboard.py || status=1
echo "== disk used by the build: $(du -sh "${CARGO_TARGET_DIR:-target}" | cut -f1)"
exit $status
