#!/usr/bin/env bash
# The whole test suite: set-up, formatting, lints, every unit/property/session/element test.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
if [ -f "$HOME/.cargo/env" ]; then . "$HOME/.cargo/env"; fi
rustup component add rustfmt clippy >/dev/null 2>&1 || true
echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --all-targets --locked -- -D warnings
echo "== cargo test"
# Unit, property, session, element and pipeline tests (doc tests: none; benches have their own
# commands in docs/BENCHMARKS.md).
cargo test --locked --lib --bins --tests --examples
