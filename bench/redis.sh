#!/usr/bin/env bash
# Throughput from a Redis stream against throughput from a file (issue: "from
# Redis ≥ 0.9 × from a file, unlimited, same emulator"). Against the emulator
# over TLS with no limits, the same N jobs are run by `orgpatchd run FILE` and
# by one `orgpatchd serve` reading them from a Redis stream (added beforehand
# with `orgpatchd submit`), ROUNDS times each, alternating, with a fresh
# emulator per run. The rate of each run is taken from its results file, from
# the first finished job to the last (the same measure for both; start-up
# excluded); the CPU each process used is read from /proc. Prints requests/s
# per run, the best of each and their ratio, and writes a JSON report.
#
#   bench/redis.sh [JOBS=100000] [ACCOUNTS=200] [CONNECTIONS=32] [ROUNDS=2]
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/common.sh
jobs=${1:-100000}
accounts=${2:-200}
connections=${3:-32}
rounds=${4:-2}

scripts/setup.sh build >&2
work=$(mktemp -d /tmp/orgpatchd-bench-redis.XXXXXX)
emulator_pid= redis_pid= serve_pid=
cleanup() {
  for pid in $serve_pid $emulator_pid $redis_pid; do kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null; done
  true
}
trap cleanup EXIT

scripts/generate-jobs.sh "$jobs" "$accounts" > "$work/jobs.jsonl"
make_token

# A redis-server of our own, on a free port, without persistence.
for _ in $(seq 20); do
  redis_port=$((20000 + RANDOM % 20000))
  redis-server --port "$redis_port" --bind 127.0.0.1 --save "" --appendonly no --dir "$work" \
    > "$work/redis.log" 2>&1 &
  redis_pid=$!
  for _ in $(seq 50); do
    redis-cli -p "$redis_port" ping >/dev/null 2>&1 && break 2
    sleep 0.1
  done
  kill "$redis_pid" 2>/dev/null || true; wait "$redis_pid" 2>/dev/null || true; redis_pid=
done
[[ -n $redis_pid ]] || { echo "redis-server did not start" >&2; cat "$work/redis.log" >&2; exit 1; }


write_config() {
  cat > "$work/client.yaml" <<YAML
api: {base_url: "$url"}
tls: {ca_file: "$work/cert/cert.pem"}
http: {connections: $connections}
rate_limit: {requests_per_second: 0, per_account_requests_per_second: 0}
output: {fsync: interval}
log: {level: warn}
serve: {spool_dir: "$work/spool", redis: {url: "redis://127.0.0.1:$redis_port", stream: "bench:jobs"}}
YAML
}

now() { date +%s.%N; }
# Jobs per second between the first and the last finished_at of a results file.
span_rate() {
  grep -o '"finished_at":"[^"]*"' "$1" | cut -d'"' -f4 | sort | sed -n '1p;$p' | tr '\n' ' ' |
    awk -v n="$(($(wc -l < "$1") - 1))" '
      function s(t) { return substr(t, 12, 2) * 3600 + substr(t, 15, 2) * 60 + substr(t, 18, 6) }
      { d = s($2) - s($1); if (d < 0) d += 86400; printf "%.0f", (n - 1) / d }'
}
# CPU seconds (user + system) a live process has used so far.
cpu_of() { awk -v hz="$(getconf CLK_TCK)" '{ printf "%.3f", ($14 + $15) / hz }' "/proc/$1/stat"; }

run_file() {
  rm -f "$work/jobs.results.jsonl" "$work/jobs.failed.jsonl"
  local t0 t1 e0 r0 cpu
  e0=$(cpu_of "$emulator_pid"); r0=$(cpu_of "$redis_pid")
  t0=$(now)
  cpu=$( { /usr/bin/time -f "%U %S" build/orgpatchd run "$work/jobs.jsonl" --config "$work/client.yaml" \
           --token-file "$work/token" --quiet; } 2>&1 | tail -1 | awk '{ printf "%.3f", $1 + $2 }')
  t1=$(now)
  awk -v rate="$(span_rate "$work/jobs.results.jsonl")" -v n="$jobs" -v c="$cpu" -v e="$(cpu_of "$emulator_pid")" \
      -v e0="$e0" -v r="$(cpu_of "$redis_pid")" -v r0="$r0" \
    'BEGIN { printf "%s %.1f %.1f %.1f\n", rate, 1e6 * c / n, 1e6 * (e - e0) / n, 1e6 * (r - r0) / n }'
}

run_redis() {
  redis-cli -p "$redis_port" del bench:jobs >/dev/null
  rm -rf "$work/spool" "$work/stream.results.jsonl" "$work/stream.failed.jsonl"
  build/orgpatchd submit "$work/jobs.jsonl" --config "$work/client.yaml" >/dev/null
  local t0 t1 lines e0 r0 cpu
  e0=$(cpu_of "$emulator_pid"); r0=$(cpu_of "$redis_pid")
  t0=$(now)
  build/orgpatchd serve --config "$work/client.yaml" --token-file "$work/token" 2> "$work/serve.log" &
  serve_pid=$!
  # Done when the group has read every entry and none is pending (a question to
  # Redis, not a read of the growing results file). Asked twice a second only:
  # each check forks redis-cli, awk and tr (about 8 ms of CPU), which at 20 a
  # second took some 15 % of a core from orgpatchd and the emulator on a 2-core
  # machine and preempted them (the file run has no such loop). The rate comes
  # from the results file, so a later check does not change it.
  while :; do
    sleep 0.5
    kill -0 "$serve_pid" 2>/dev/null || { cat "$work/serve.log" >&2; exit 1; }
    lines=$(redis-cli -p "$redis_port" xinfo groups bench:jobs | awk 'p { print; p = 0 } /^(pending|lag)$/ { p = 1 }' | tr '\n' ' ')
    [[ $lines == "0 0 " ]] && break
  done
  t1=$(now)
  cpu=$(cpu_of "$serve_pid")
  local e1 r1
  e1=$(cpu_of "$emulator_pid"); r1=$(cpu_of "$redis_pid")
  kill -TERM "$serve_pid"; wait "$serve_pid" || true; serve_pid=
  local pending
  pending=$(redis-cli -p "$redis_port" xpending bench:jobs orgpatchd | head -1)
  [[ $pending == 0 ]] || echo "warning: $pending entries still pending" >&2
  awk -v rate="$(span_rate "$work/stream.results.jsonl")" -v n="$jobs" -v c="$cpu" -v e="$e1" -v e0="$e0" \
      -v r="$r1" -v r0="$r0" \
    'BEGIN { printf "%s %.1f %.1f %.1f\n", rate, 1e6 * c / n, 1e6 * (e - e0) / n, 1e6 * (r - r0) / n }'
}

best_file=0 best_redis=0
file_runs=() redis_runs=()
for round in $(seq "$rounds"); do
  start_emulator --no-rate-limit; write_config
  read -r r c e rc < <(run_file); file_runs+=("$r"); ((r > best_file)) && best_file=$r
  echo "round $round: file  $r requests/s; CPU µs per job: orgpatchd $c, emulator $e, redis-server $rc" >&2
  stop_emulator
  start_emulator --no-rate-limit; write_config
  read -r r c e rc < <(run_redis); redis_runs+=("$r"); ((r > best_redis)) && best_redis=$r
  echo "round $round: redis $r requests/s; CPU µs per job: orgpatchd $c, emulator $e, redis-server $rc" >&2
  stop_emulator
done
ratio=$(awk -v r="$best_redis" -v f="$best_file" 'BEGIN { printf "%.3f", r / f }')
# The machine's noise is large: the mean of the per-round ratios too.
mean_ratio=$(paste -d' ' <(printf '%s\n' "${redis_runs[@]}") <(printf '%s\n' "${file_runs[@]}") |
  awk '{ t += $1 / $2; n++ } END { printf "%.3f", t / n }')
printf '%-6s %8s %12s\n' source jobs "requests/s"
printf '%-6s %8s %12s\n' file "$jobs" "$best_file" redis "$jobs" "$best_redis"
echo "redis ÷ file: $ratio (best of $rounds; mean of the per-round ratios $mean_ratio; $connections connections, $accounts accounts, emulator unlimited over TLS)"
printf '{"jobs":%s,"accounts":%s,"connections":%s,"file_rps":[%s],"redis_rps":[%s],"best_file_rps":%s,"best_redis_rps":%s,"ratio":%s,"mean_round_ratio":%s}\n' \
  "$jobs" "$accounts" "$connections" "$(IFS=,; echo "${file_runs[*]}")" "$(IFS=,; echo "${redis_runs[*]}")" \
  "$best_file" "$best_redis" "$ratio" "$mean_ratio" > "$work/redis-report.json"
echo "report: $work/redis-report.json"
