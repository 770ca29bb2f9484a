#!/usr/bin/env bash
# Fuzzes the parsers and encoders where hostile bytes land (tests/fuzz,
# DESIGN.md §11) with libFuzzer under ASan+UBSan, each target for a given time.
#
#   scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]   (default 60 s; all targets)
#   targets: job query path response http_reader
#
# Builds a clang build of its own (ORGPATCH_FUZZ_BUILD, default build-fuzz),
# installing clang and libFuzzer first when missing. Each target starts from
# its seeds in tests/fuzz/corpus/<target>/ (never written) plus a working corpus
# kept in the build directory, which collects what the fuzzer finds (with
# tests/fuzz/<target>.dict as its dictionary when there is one). A crash,
# leak or broken invariant leaves its input in <build>/fuzz/artifacts/<target>/,
# shows the end of the log, and makes the exit status non-zero; replay it with
# <build>/tests/fuzz/<target>_fuzz FILE.
set -euo pipefail
cd "$(dirname "$0")/.."

all=(job query path response http_reader)
seconds=${1:-60}
[[ $seconds =~ ^[0-9]+$ && $seconds -gt 0 ]] || { echo "fuzz.sh: seconds must be a positive number, not '$seconds'" >&2; exit 2; }
shift $(($# > 0 ? 1 : 0))
targets=("$@")
((${#targets[@]})) || targets=("${all[@]}")
for t in "${targets[@]}"; do
  [[ " ${all[*]} " == *" $t "* ]] || { echo "fuzz.sh: unknown target '$t' (${all[*]})" >&2; exit 2; }
done

scripts/setup.sh --packages
build_dir=${ORGPATCH_FUZZ_BUILD:-build-fuzz}
log=$build_dir/fuzz-build.log
mkdir -p "$build_dir"
if [[ ! -f $build_dir/build.ninja ]]; then
  CC=clang CXX=clang++ cmake -S . -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DORGPATCH_FUZZ=ON -DORGPATCH_WERROR=ON >"$log" 2>&1 || { cat "$log" >&2; exit 1; }
fi
if ! cmake --build "$build_dir" -j2 --target "${targets[@]/%/_fuzz}" >"$log" 2>&1; then
  tail -n 50 "$log" >&2
  echo "fuzz.sh: build failed (log: $log)" >&2
  exit 1
fi

symbolizer=$(command -v llvm-symbolizer || command -v /usr/lib/llvm-14/bin/llvm-symbolizer || true)
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
[[ -n $symbolizer ]] && export ASAN_SYMBOLIZER_PATH=$symbolizer

failed=()
for t in "${targets[@]}"; do
  work=$build_dir/fuzz/corpus/$t
  artifacts=$build_dir/fuzz/artifacts/$t
  out=$build_dir/fuzz/$t.log
  mkdir -p "$work" "$artifacts"
  dict=()
  [[ -f tests/fuzz/$t.dict ]] && dict=("-dict=tests/fuzz/$t.dict")
  # New inputs go to the first directory only: the checked-in seeds stay as they are.
  status=0
  "$build_dir/tests/fuzz/${t}_fuzz" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
    -print_final_stats=1 -artifact_prefix="$artifacts/" "${dict[@]}" \
    "$work" "tests/fuzz/corpus/$t" >"$out" 2>&1 || status=$?
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$out" | tail -n 1)
  added=$(sed -n 's/^stat::new_units_added: *//p' "$out" | tail -n 1)
  cov=$(grep -o 'cov: [0-9]*' "$out" | tail -n 1 || true)
  if ((status == 0)); then
    printf 'fuzz: %-12s %4s s  %10s runs  %s  %s new inputs  ok\n' "$t" "$seconds" "${runs:-?}" "${cov:-cov: ?}" "${added:-0}"
  else
    failed+=("$t")
    printf 'fuzz: %-12s FAILED (exit %d) after %s runs; log %s, input in %s/\n' "$t" "$status" "${runs:-?}" "$out" "$artifacts" >&2
    grep -v -E '^#[0-9]+' "$out" | tail -n 40 >&2
  fi
done
if ((${#failed[@]})); then
  echo "fuzz.sh: failures in ${failed[*]}" >&2
  exit 1
fi
