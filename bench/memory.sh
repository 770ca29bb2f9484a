#!/usr/bin/env bash
# Memory bounded by design (issue 6): orgpatchd runs SMALL and then LARGE
# generated jobs against nginx (a fixed JSON answer over TLS on loopback, no
# limits, as in bench/wire.sh) and prints the peak RSS of each (GNU time %M),
# the ratio large ÷ small and a JSON line. The issue's target: at most 64 MB
# for 1 000 000 jobs, within 1.3 × of the 10 000-job run.
#
#   bench/memory.sh [SMALL=10000] [LARGE=1000000] [CONNECTIONS=32] [ACCOUNTS=200]
#
# Installs nginx-light from Debian when missing. A run's files are deleted once
# measured: a million jobs and their results take about half a gigabyte.
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/common.sh
small=${1:-10000}
large=${2:-1000000}
connections=${3:-32}
accounts=${4:-200}

scripts/setup.sh build >&2
need_commands nginx:nginx-light

work=$(mktemp -d /tmp/orgpatchd-bench-memory.XXXXXX)
nginx_pid=
cleanup() { if [[ -n $nginx_pid ]]; then stop_nginx; fi; }
trap cleanup EXIT

make_token
start_nginx
write_client_config "$url" "$work/cert.pem" "$connections"

# Runs orgpatchd over $1 generated jobs; prints "peak RSS MB, ok jobs, elapsed s".
measure() {
  local jobs=$1 file=$work/jobs-$1.jsonl
  scripts/generate-jobs.sh "$jobs" "$accounts" > "$file"
  /usr/bin/time -f %M -o "$work/time-$jobs" build/orgpatchd run "$file" --config "$work/client.yaml" \
    --token-file "$work/token" --quiet --summary-json "$work/summary-$jobs.json" || true
  rm -f "$file" "$work/jobs-$jobs.results.jsonl" "$work/jobs-$jobs.failed.jsonl"
  local ok elapsed
  ok=$(grep -o '"ok":[0-9]*' "$work/summary-$jobs.json" | head -1 | cut -d: -f2)
  elapsed=$(grep -o '"elapsed_s":[0-9.]*' "$work/summary-$jobs.json" | cut -d: -f2)
  # Not every job ok means the run measured something else than the steady state.
  [[ $ok == "$jobs" ]] || echo "memory.sh: only $ok of $jobs jobs ok" >&2
  printf '%s %s %s\n' "$(awk '{ printf "%.1f", $1 / 1024 }' "$work/time-$jobs")" "$ok" "$elapsed"
}

read -r s_rss s_ok s_elapsed < <(measure "$small")
read -r l_rss l_ok l_elapsed < <(measure "$large")
ratio=$(awk -v a="$l_rss" -v b="$s_rss" 'BEGIN { printf "%.3f", a / b }')

printf '%-10s %12s %10s %10s\n' jobs "peak RSS MB" ok "elapsed s"
printf '%-10s %12s %10s %10s\n' "$small" "$s_rss" "$s_ok" "$s_elapsed" "$large" "$l_rss" "$l_ok" "$l_elapsed"
echo "large ÷ small peak RSS: $ratio ($connections connections, nginx TLS on loopback)"
printf '{"connections":%s,"small":{"jobs":%s,"ok":%s,"rss_mb":%s},"large":{"jobs":%s,"ok":%s,"rss_mb":%s},"rss_ratio":%s}\n' \
  "$connections" "$small" "$s_ok" "$s_rss" "$large" "$l_ok" "$l_rss" "$ratio" | tee "$work/memory-report.json"
echo "report: $work/memory-report.json"
