#!/usr/bin/env bash
# Installs what punktfunk needs to build and test on Debian/Ubuntu: GStreamer 1.22+ development
# files and plugins (x264/x265 encoders, libav decoders), a C toolchain, pkg-config, meson, and a
# Rust toolchain new enough for edition 2024 (via rustup when the system has none or an old one).
# Safe to run again: it only installs what is missing.
set -euo pipefail

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    SUDO="sudo"
fi

PACKAGES=(
    build-essential pkg-config curl ca-certificates
    libgstreamer1.0-dev libgstreamer-plugins-base1.0-dev
    gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-bad
    gstreamer1.0-plugins-ugly gstreamer1.0-libav gstreamer1.0-tools
    meson ninja-build
)

missing=()
for p in "${PACKAGES[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$p")
    fi
done
if [ "${#missing[@]}" -gt 0 ]; then
    echo "setup: installing ${missing[*]}"
    $SUDO apt-get update -q
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# Rust: edition 2024 needs cargo >= 1.85; the crate asks for 1.92.
need_rust=1
if command -v cargo >/dev/null 2>&1; then
    v=$(cargo --version | awk '{print $2}')
    major=${v%%.*}; rest=${v#*.}; minor=${rest%%.*}
    if [ "$major" -gt 1 ] || [ "$minor" -ge 92 ]; then
        need_rust=0
    fi
fi
if [ "$need_rust" -eq 1 ]; then
    if [ -x "$HOME/.cargo/bin/rustup" ]; then
        "$HOME/.cargo/bin/rustup" toolchain install stable --profile minimal
    else
        echo "setup: installing Rust with rustup"
        curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal
    fi
fi
if [ -f "$HOME/.cargo/env" ]; then
    # shellcheck disable=SC1091
    . "$HOME/.cargo/env"
fi
cargo --version
