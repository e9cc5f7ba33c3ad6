#!/usr/bin/env bash
# The demo: set-up, build, then a live test-pattern stream through x264 → punktfunksink →
# 5 % loss → punktfunksrc → avdec_h264, with live stats and a summary. Extra arguments go to
# the demo (e.g. --window, --seconds 30, --loss 0.1, --burst 3, --hevc).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
if [ -f "$HOME/.cargo/env" ]; then . "$HOME/.cargo/env"; fi
# The demo runs the stream through the impairment relay, a test tool behind the `testing`
# feature (the plugin itself is built without it).
cargo run --release --locked --features testing --example demo -- "$@"
