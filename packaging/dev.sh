#!/usr/bin/env bash
# qvg developer entry point: installs what is missing, builds, runs, tests.
#
#   packaging/dev.sh run [ARGS...]   install what is missing, build, start qvg
#   packaging/dev.sh test            install what is missing, build, run every test
#   packaging/dev.sh deps            only install what is missing (idempotent)
#   packaging/dev.sh build           deps + configure + build
#
# Environment: QVG_BUILD_DIR (default build), QVG_BUILD_TYPE (default RelWithDebInfo),
# QVG_JOBS (default nproc), QVG_WERROR (ON in CI), QVG_BUILD_APP (auto).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

readonly kTorchVersion="2.11.0"
build_dir="${QVG_BUILD_DIR:-build}"
build_type="${QVG_BUILD_TYPE:-RelWithDebInfo}"
jobs="${QVG_JOBS:-$(nproc)}"
venv="$root/.venv"

# Debian/Ubuntu packages the project builds against. Each one is named for a reason:
# Qt 6 (window, settings, dialogs), ImGui (overlays, with its GL3 backend sources),
# FFmpeg + x264 (MP4 recording), GoogleTest, CLI11 (command line), nlohmann-json (reports,
# configs), spdlog/fmt (logging), ccache + ninja (fast rebuilds), Xvfb + xdotool (GUI tests).
readonly kAptPackages=(
    build-essential cmake ninja-build ccache pkg-config git python3 python3-venv
    qt6-base-dev libqt6opengl6-dev libgl-dev
    libimgui-dev
    libavformat-dev libavcodec-dev libavutil-dev libswscale-dev libx264-dev
    libgtest-dev libgmock-dev
    libcli11-dev nlohmann-json3-dev libspdlog-dev libfmt-dev
    xvfb xauth xdotool
)

log() { printf '\033[1;34m[qvg]\033[0m %s\n' "$*" >&2; }

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

install_apt() {
    local missing=()
    for p in "${kAptPackages[@]}"; do
        if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
            missing+=("$p")
        fi
    done
    if [ ${#missing[@]} -eq 0 ]; then
        log "system packages: all ${#kAptPackages[@]} present"
        return
    fi
    log "installing system packages: ${missing[*]}"
    as_root apt-get update -q
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
        "${missing[@]}"
}

python_bin() {
    # Prefer the interpreter on PATH (it may be newer than the distribution's).
    command -v python3
}

install_torch() {
    if [ -x "$venv/bin/python" ] &&
        "$venv/bin/python" -c "import torch,sys; sys.exit(0 if torch.__version__.split('+')[0]=='$kTorchVersion' else 1)" 2>/dev/null; then
        log "LibTorch: torch $kTorchVersion present in .venv"
        return
    fi
    if [ ! -x "$venv/bin/python" ]; then
        log "creating .venv"
        "$(python_bin)" -m venv "$venv"
    fi
    log "installing torch==$kTorchVersion into .venv (LibTorch headers, libraries, CMake config)"
    "$venv/bin/pip" install -q --disable-pip-version-check "torch==$kTorchVersion"
}

deps() {
    install_apt
    install_torch
}

configure() {
    local app="${QVG_BUILD_APP:-}"
    local args=(-S "$root" -B "$build_dir" -G Ninja
        -DCMAKE_BUILD_TYPE="$build_type"
        -DQVG_PYTHON="$venv/bin/python"
        -DQVG_WARNINGS_AS_ERRORS="${QVG_WERROR:-OFF}"
        -DCMAKE_EXPORT_COMPILE_COMMANDS=ON)
    [ -n "$app" ] && args+=(-DQVG_BUILD_APP="$app")
    if [ ! -f "$build_dir/build.ninja" ]; then
        log "configuring $build_dir ($build_type)"
        cmake "${args[@]}"
    fi
}

build() {
    deps
    configure
    log "building with $jobs jobs"
    cmake --build "$build_dir" -j "$jobs"
}

run_main() {
    build
    if [ -x "$build_dir/app/viewer/qvg-world" ]; then
        exec "$build_dir/app/viewer/qvg-world" "$@"
    fi
    log "the viewer is not part of this build; running the qvg codec demo"
    exec "$build_dir/app/cli/qvg" codec "$@"
}

run_tests() {
    build
    local exclude=()
    if ! command -v nvidia-smi >/dev/null 2>&1 || ! nvidia-smi -L >/dev/null 2>&1; then
        log "no CUDA GPU here: leaving out the tests labelled gpu"
        exclude=(-LE gpu)
    fi
    log "running tests"
    ctest --test-dir "$build_dir" --output-on-failure -j "$jobs" "${exclude[@]}" "$@"
}

cmd="${1:-run}"
[ $# -gt 0 ] && shift
case "$cmd" in
    deps) deps ;;
    build) build ;;
    run) run_main "$@" ;;
    test) run_tests "$@" ;;
    *)
        echo "usage: packaging/dev.sh run|test|deps|build" >&2
        exit 2
        ;;
esac
