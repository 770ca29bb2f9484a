#!/usr/bin/env bash
# Installs what the build, the tests and the demo use (Debian 12 packages only),
# then configures and builds. Does nothing it does not need to: no apt-get when
# every package is there, and an incremental build.
#
#   scripts/setup.sh [BUILD_DIR]      (default: build)
#   scripts/setup.sh --packages       (only install what is missing; no build)
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(
  build-essential cmake ninja-build pkg-config ca-certificates openssl
  libboost1.81-dev libboost-url1.81-dev libboost-json1.81-dev
  libssl-dev libsimdjson-dev libspdlog-dev libfmt-dev libyaml-cpp-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  libhiredis-dev redis-server libsystemd-dev systemd
  prometheus
  # The fuzz build (scripts/fuzz.sh): clang, libFuzzer and the sanitizer runtimes
  # (only recommended by clang, so named here), llvm-symbolizer for stack traces.
  clang libclang-rt-14-dev llvm-14
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}" >&2
  if [[ $(id -u) -ne 0 ]]; then SUDO=sudo; else SUDO=; fi
  export DEBIAN_FRONTEND=noninteractive
  # Installing must not start services (prometheus, redis-server): without
  # systemd, their postinst runs the init script through invoke-rc.d, which
  # starts a daemon in the background or, when the script cannot run, fails the
  # whole install. A policy-rc.d that says no (exit 101) for the install's
  # duration, unless the machine has one already (Docker images do).
  policy=/usr/sbin/policy-rc.d added_policy=
  if [[ ! -e $policy ]]; then
    printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$policy" >/dev/null
    $SUDO chmod 755 "$policy"
    added_policy=1
    trap '$SUDO rm -f "$policy"' EXIT
  fi
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  if [[ -n $added_policy ]]; then
    $SUDO rm -f "$policy"
    trap - EXIT
  fi
fi

[[ ${1:-} == --packages ]] && exit 0

build_dir=${1:-build}
if [[ ! -f "$build_dir/build.ninja" ]]; then
  cmake -S . -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE=Release ${ORGPATCH_CMAKE_ARGS:-} >/dev/null
fi
cmake --build "$build_dir" -j2
