#!/usr/bin/env bash
# The test command: installs what is missing, builds (warnings are errors) and
# runs the whole test suite with CTest.
set -euo pipefail
cd "$(dirname "$0")/.."
start=$(date +%s)
ORGPATCH_CMAKE_ARGS="-DORGPATCH_WERROR=ON" scripts/setup.sh build
ctest --test-dir build --output-on-failure -j2 --timeout 300
echo "test.sh: done in $(( $(date +%s) - start )) s"
