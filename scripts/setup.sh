#!/usr/bin/env bash
# Installs what punktfunk needs to build, test and run its demo on Debian 12 / Ubuntu 24.04:
# GStreamer 1.22+ development files, every GStreamer plugin the demo, the tests and the
# benchmarks use, a C toolchain, pkg-config, meson, and a Rust toolchain new enough for
# edition 2024 (via rustup when the system has none or an old one). Then, before anything is
# built, it checks each GStreamer element it needs with `gst-inspect-1.0 --exists` and names the
# package of any that is missing. Safe to run again: it only installs what is missing.
#
# Packages are installed with --no-install-recommends (a minimal image stays minimal), so every
# plugin package is named here explicitly, not left to a recommendation: timeoverlay, for one,
# is in gstreamer1.0-x, which nothing else pulls in.
set -euo pipefail

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    SUDO="sudo"
fi

PACKAGES=(
    build-essential pkg-config curl ca-certificates
    libgstreamer1.0-dev libgstreamer-plugins-base1.0-dev
    gstreamer1.0-tools
    gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-bad
    gstreamer1.0-plugins-ugly gstreamer1.0-libav gstreamer1.0-x
    meson ninja-build
)

# Every element the demo, the tests and the benchmarks use, with the Debian/Ubuntu package that
# has it.
ELEMENTS=(
    # core
    fakesink:libgstreamer1.0-0 identity:libgstreamer1.0-0 tee:libgstreamer1.0-0
    queue:libgstreamer1.0-0
    # the test pattern, conversions, app elements, playbin / decodebin
    videotestsrc:gstreamer1.0-plugins-base videoconvert:gstreamer1.0-plugins-base
    appsrc:gstreamer1.0-plugins-base appsink:gstreamer1.0-plugins-base
    # audio: the test tone and Opus
    audiotestsrc:gstreamer1.0-plugins-base opusenc:gstreamer1.0-plugins-base
    opusdec:gstreamer1.0-plugins-base
    playbin:gstreamer1.0-plugins-base decodebin:gstreamer1.0-plugins-base
    # the demo's clock on the picture (pango: packaged with the X elements)
    timeoverlay:gstreamer1.0-x
    # encoders, parsers, decoders
    x264enc:gstreamer1.0-plugins-ugly x265enc:gstreamer1.0-plugins-bad
    h264parse:gstreamer1.0-plugins-bad h265parse:gstreamer1.0-plugins-bad
    avdec_h264:gstreamer1.0-libav avdec_h265:gstreamer1.0-libav
    # the demo's --window
    autovideosink:gstreamer1.0-plugins-good
    # the baselines of the latency benchmarks: RTP without repair, SRT
    rtph264pay:gstreamer1.0-plugins-good rtph264depay:gstreamer1.0-plugins-good
    rtpjitterbuffer:gstreamer1.0-plugins-good udpsink:gstreamer1.0-plugins-good
    udpsrc:gstreamer1.0-plugins-good
    srtsink:gstreamer1.0-plugins-bad srtsrc:gstreamer1.0-plugins-bad
)

have_apt() {
    command -v apt-get >/dev/null 2>&1 && command -v dpkg-query >/dev/null 2>&1
}

apt_install() {
    echo "setup: installing $*"
    $SUDO apt-get update -q
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "$@"
}

# 1. Packages.
if have_apt; then
    missing=()
    for p in "${PACKAGES[@]}"; do
        if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
            missing+=("$p")
        fi
    done
    if [ "${#missing[@]}" -gt 0 ]; then
        apt_install "${missing[@]}"
    fi
else
    echo "setup: no apt-get here; install the equivalents of: ${PACKAGES[*]}" >&2
fi

# 2. Elements: a package can be installed and still lack a plugin (a partial upgrade, a
# distribution that splits differently), so check what GStreamer itself sees.
missing_elements() {
    if ! command -v gst-inspect-1.0 >/dev/null 2>&1; then
        echo "gst-inspect-1.0:gstreamer1.0-tools"
        return
    fi
    local entry
    for entry in "${ELEMENTS[@]}"; do
        gst-inspect-1.0 --exists "${entry%%:*}" || echo "$entry"
    done
}

describe() {
    local entry
    for entry in "$@"; do
        echo "  ${entry%%:*} (package ${entry#*:})"
    done
}

mapfile -t absent < <(missing_elements)
if [ "${#absent[@]}" -gt 0 ] && have_apt; then
    echo "setup: GStreamer elements missing:"
    describe "${absent[@]}"
    mapfile -t pkgs < <(printf '%s\n' "${absent[@]}" | cut -d: -f2 | sort -u)
    # A package that is installed but lacks its element must be installed again.
    apt_install --reinstall "${pkgs[@]}"
    mapfile -t absent < <(missing_elements)
fi
if [ "${#absent[@]}" -gt 0 ]; then
    echo "setup: these GStreamer elements are still missing; install their packages:" >&2
    describe "${absent[@]}" >&2
    exit 1
fi
echo "setup: all ${#ELEMENTS[@]} GStreamer elements present"

# 3. Rust: edition 2024 needs cargo >= 1.85; the crate asks for 1.92.
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
