#!/usr/bin/env bash
# The main job (README): on a fresh Debian machine, installs what Moodscope needs, installs the
# model files (verified by sha256, converted to ONNX), builds the plugin and installs it where
# Linux DAWs look (~/.clap, ~/.vst3, models in ~/.local/share/moodscope/models), then analyses a
# piece of freely licensed music and prints its mood timeline.
#
# Models come from MOODSCOPE_MODEL_MIRROR when it is set, else from their official homes.
# Pass audio files to analyse them instead of the demo piece.
set -euo pipefail
cd "$(dirname "$0")/.."

sudo=""
[ "$(id -u)" = 0 ] || sudo="sudo"
step() { echo "== [$(date +%T)] $*" >&2; }

step "1/4 system packages (X11/GL headers for the plugin's editor, libopus, HyperRogue's music)"
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends \
  hyperrogue-music libx11-dev libx11-xcb-dev libxcb1-dev libxcb-dri2-0-dev libxcb-icccm4-dev \
  libxcursor-dev libxkbcommon-dev libgl1-mesa-dev libgl-dev pkg-config >/dev/null
# libopus-dev: Opus decoding (libopus, linked through pkg-config).
$sudo apt-get install -y -qq --no-install-recommends libopus-dev >/dev/null

step "2/4 the command-line tool (one release build that the plugin bundles share), then the model files"
cargo xtask install-models
step "3/4 the plugin bundles (CLAP, VST3) into ~/.clap and ~/.vst3"
cargo xtask install

if [ "$#" -eq 0 ]; then
  set -- /usr/share/hyperrogue/music/hr3-graveyard.ogg
fi
step "4/4 the mood timeline of $*"
cargo moodscope analyze --models models "$@"
