#!/usr/bin/env bash
# The test command (CI runs exactly this): installs what is missing, then
#  1. the Release build (warnings are errors) and the whole suite under CTest;
#  2. an ASan+UBSan build of the pure cores and parsers (job, query, response,
#     results, limiter, retry, config) with their unit tests: where hostile
#     input lands.
set -euo pipefail
cd "$(dirname "$0")/.."
start=$(date +%s)

ORGPATCH_CMAKE_ARGS="-DORGPATCH_WERROR=ON" scripts/setup.sh build
ctest --test-dir build --output-on-failure -j2 --timeout 300

if [[ ! -f build-asan/build.ninja ]]; then
  cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DORGPATCH_PURE_ONLY=ON \
    -DORGPATCH_WERROR=ON "-DORGPATCH_SANITIZE=address;undefined" >/dev/null
fi
cmake --build build-asan -j2
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  ctest --test-dir build-asan --output-on-failure -j2 --timeout 300

echo "test.sh: done in $(( $(date +%s) - start )) s"
