#!/usr/bin/env bash
# The whole test suite: set-up, formatting, lints, every unit/property/session/element test.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
if [ -f "$HOME/.cargo/env" ]; then . "$HOME/.cargo/env"; fi
rustup component add rustfmt clippy >/dev/null 2>&1 || true
echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy (all features, and the library without GStreamer)"
cargo clippy --all-targets --all-features --locked -- -D warnings
cargo clippy --lib --no-default-features --locked -- -D warnings
echo "== cargo test"
# Unit, property, session, element and pipeline tests (no doc tests; examples and benches are
# compiled by clippy above, and the benches have their own commands in docs/BENCHMARKS.md).
# --all-features: the session and pipeline tests use the test tools behind `testing`.
log=$(mktemp)
cargo test --locked --all-features --lib --tests 2>&1 | tee "$log"
totals=$(awk '/^test result:/ { for (i = 1; i < NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i } } END { printf "%d passed, %d failed", p, f }' "$log")
rm -f "$log"
echo "$totals"
