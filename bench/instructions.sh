#!/usr/bin/env bash
# Instructions per job (issue 6): the user-space instructions orgpatchd runs per
# job under valgrind's callgrind, against nginx as in bench/wire.sh (TLS on
# loopback, a fixed JSON answer, no limits). CPU time on this shared 2-core
# machine moves by ±6 % from run to run; this count moves by well under 1 %, so
# it shows what a change saves. Give several binaries (say, a build of main and
# one of a branch) to compare them on the same jobs and the same server.
#
#   bench/instructions.sh [JOBS=20000] [BINARY...]     default: build/orgpatchd
#
# For each binary: instructions per job, and the functions with the most
# instructions of their own per job. Valgrind offers no AVX-512 or SHA
# instructions, so OpenSSL's share is larger than on the bare CPU; the 32 TLS
# handshakes and the input's SHA-256 are spread over the jobs. Installs
# valgrind and nginx-light from Debian when missing.
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/common.sh
jobs=${1:-20000}
shift || true
binaries=("$@")
((${#binaries[@]})) || binaries=(build/orgpatchd)

scripts/setup.sh build >&2
need_commands nginx:nginx-light valgrind:valgrind

work=$(mktemp -d /tmp/orgpatchd-bench-instructions.XXXXXX)
nginx_pid=
cleanup() { if [[ -n $nginx_pid ]]; then stop_nginx; fi; }
trap cleanup EXIT

make_token
start_nginx
scripts/generate-jobs.sh "$jobs" 200 > "$work/jobs.jsonl"
write_client_config "$url" "$work/cert.pem" 32

n=0
for binary in "${binaries[@]}"; do
  n=$((n + 1))
  out=$work/callgrind-$n.out
  rm -f "$work/jobs.results.jsonl" "$work/jobs.failed.jsonl"
  valgrind --tool=callgrind --callgrind-out-file="$out" "$binary" run "$work/jobs.jsonl" \
    --config "$work/client.yaml" --token-file "$work/token" --quiet --summary-json "$work/summary-$n.json" \
    2> "$work/valgrind-$n.log" || true
  total=$(sed -n 's/.*Collected : \([0-9]*\).*/\1/p' "$work/valgrind-$n.log")
  ok=$(grep -o '"ok":[0-9]*' "$work/summary-$n.json" | head -1 | cut -d: -f2 || true)
  if [[ -z $total || $ok != "$jobs" ]]; then
    echo "instructions.sh: $binary: no complete run (ok ${ok:-0} of $jobs); see $work/valgrind-$n.log" >&2
    exit 1
  fi
  echo "$binary: $(awk -v t="$total" -v n="$jobs" 'BEGIN { printf "%.0f", t / n }') instructions per job ($jobs jobs, all ok)"
  # The top functions by their own instructions, per job.
  callgrind_annotate --inclusive=no "$out" 2>/dev/null |
    awk -v n="$jobs" '/^ *[0-9,]+ \(/ && !/PROGRAM TOTALS/ {
        v = $1; gsub(",", "", v); sub(/^ *[0-9,]+ +\( *[0-9.]+%\) +/, "")
        if (++shown <= 12) printf "  %7.0f  %s\n", v / n, substr($0, 1, 110)
      }'
  echo "  callgrind file: $out"
done
