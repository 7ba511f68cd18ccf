#!/usr/bin/env bash
# Cross-builds comet-embedded for 64- and 32-bit ARM Linux and runs its
# tests under qemu-user (.cargo/config.toml names the linkers and runners).
# Installs what is missing: the rustup targets, the cross gcc/libc and qemu.
# Called from .ci/run; runs on its own too.
set -euo pipefail
cd "$(dirname "$0")/.."

targets=(aarch64-unknown-linux-gnu armv7-unknown-linux-gnueabihf)
packages=(qemu-user gcc-aarch64-linux-gnu gcc-arm-linux-gnueabihf libc6-dev-arm64-cross libc6-dev-armhf-cross)

missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
    sudo=""
    [[ $(id -u) -ne 0 ]] && sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

rustup target add "${targets[@]}"

# Tests that re-run their own binary as a child process (a real SIGKILL
# mid-write) go through the same emulator.
declare -A runner=(
    [aarch64-unknown-linux-gnu]="qemu-aarch64 -L /usr/aarch64-linux-gnu"
    [armv7-unknown-linux-gnueabihf]="qemu-arm -L /usr/arm-linux-gnueabihf"
)
for t in "${targets[@]}"; do
    echo "=== comet-embedded tests on $t (qemu-user)"
    COMET_TEST_RUNNER="${runner[$t]}" cargo test -p comet-embedded --target "$t"
done
