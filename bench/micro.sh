#!/usr/bin/env bash
# Micro-benchmarks of the per-job work (Google Benchmark, bench/micro/): job
# parsing, query serialisation, request building, response parsing, the rate
# limiter and result lines. Prints the table and writes a JSON report.
#
#   bench/micro.sh [EXTRA GOOGLE BENCHMARK FLAGS...]
#   e.g. bench/micro.sh --benchmark_filter=parse_job --benchmark_repetitions=5
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh build >&2
# Debian builds libbenchmark without NDEBUG, hence its "Library was built as
# DEBUG" warning: it concerns the harness, not the code measured.
binary=build/bench/micro/orgpatch_bench
[[ -x $binary ]] || { echo "micro.sh: $binary was not built (ORGPATCH_BENCH=OFF?)" >&2; exit 1; }

work=$(mktemp -d /tmp/orgpatchd-bench-micro.XXXXXX)
"$binary" --benchmark_out="$work/micro.json" --benchmark_out_format=json "$@"
echo "report: $work/micro.json"
