#!/usr/bin/env bash
# Rate-limit benchmark (issue: "as fast as the limits allow, never over them"):
# the emulator enforces Truto's two limits scaled down (TOKEN requests per second
# per token, ACCOUNT per integrated account, sliding 1 s windows); orgpatchd runs
# a uniform and a Zipf-skewed job file against it. For each it prints the wall
# time against the theoretical minimum
#     max(jobs / TOKEN, busiest account's jobs / ACCOUNT)
# and the share of 429 answers, and writes a JSON report.
#
#   bench/limits.sh [JOBS=4000] [ACCOUNTS=40] [TOKEN=200] [ACCOUNT=20]
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/common.sh
jobs=${1:-4000}
accounts=${2:-40}
token_limit=${3:-200}
account_limit=${4:-20}

scripts/setup.sh build >&2
work=$(mktemp -d /tmp/orgpatchd-bench-limits.XXXXXX)
emulator_pid=
cleanup() { [[ -n $emulator_pid ]] && kill "$emulator_pid" 2>/dev/null && wait "$emulator_pid" 2>/dev/null; true; }
trap cleanup EXIT

# Job files: uniform (round robin over accounts) and Zipf (exponent 1.1).
gen() {  # gen MODE FILE
  awk -v n="$jobs" -v m="$accounts" -v mode="$1" '
  function hex(k,   s, i) { s = ""; for (i = 0; i < k; i++) s = s substr("0123456789abcdef", int(rand() * 16) + 1, 1); return s }
  function uuid() { return hex(8) "-" hex(4) "-4" hex(3) "-a" hex(3) "-" hex(12) }
  BEGIN {
    srand(11)
    for (a = 0; a < m; a++) { account[a] = uuid(); w = 1 / ((a + 1) ^ 1.1); total += w; cum[a] = total }
    for (i = 1; i <= n; i++) {
      if (mode == "uniform") a = (i - 1) % m
      else { r = rand() * total; for (a = 0; a < m - 1 && cum[a] < r; a++); }
      printf "{\"id\":\"%s\",\"integrated_account_id\":\"%s\",\"body\":{\"name\":\"Org %d\"}}\n", uuid(), account[a], i
    }
  }' > "$2"
}
gen uniform "$work/uniform.jsonl"
gen zipf "$work/zipf.jsonl"

make_token

cat > "$work/emulator.yaml" <<YAML
rate_limit:
  enabled: true
  token: {requests: $token_limit, window_ms: 1000}
  account: {requests: $account_limit, window_ms: 1000}
  retry_after_s: 1
YAML

# The client's buckets: b + r·W may not pass the limit N in any window W ≤ 1 s,
# with a little slack for jitter on the way: token r = 0.98 N - 2, b = 2;
# account b = 1, r = 0.975 N (a bucket of burst 1 sends at most floor(r·W) + 1).
client_token_rate=$(awk -v n="$token_limit" 'BEGIN { printf "%.2f", 0.98 * n - 2 }')
client_account_rate=$(awk -v n="$account_limit" 'BEGIN { printf "%.3f", 0.975 * n }')

json_number() {  # json_number FILE KEY → the first "KEY":number
  grep -o "\"$2\":[0-9.]*" "$1" | head -1 | cut -d: -f2
}

report="$work/limits-report.json"
echo "[" > "$report"
first=1
printf '%-8s %6s %9s %9s %7s %9s %7s\n' scenario jobs "wall s" "min s" ratio requests "429 %"
for scenario in uniform zipf; do
  start_emulator --config "$work/emulator.yaml"
  cat > "$work/client.yaml" <<YAML
api: {base_url: "$url"}
tls: {ca_file: "$work/cert/cert.pem"}
http: {connections: 32}
rate_limit: {requests_per_second: $client_token_rate, burst: 2,
             per_account_requests_per_second: $client_account_rate, per_account_burst: 1}
output: {fsync: none}
YAML
  rm -f "$work/$scenario.results.jsonl" "$work/$scenario.failed.jsonl"
  status=0
  build/orgpatchd run "$work/$scenario.jsonl" --config "$work/client.yaml" --token-file "$work/token" \
    --quiet --summary-json "$work/$scenario.summary.json" || status=$?
  stop_emulator
  busiest=$(grep -o '"integrated_account_id":"[^"]*"' "$work/$scenario.jsonl" | sort | uniq -c | sort -rn | head -1 | awk '{print $1}')
  elapsed=$(json_number "$work/$scenario.summary.json" elapsed_s)
  requests=$(json_number "$work/$scenario.summary.json" requests)
  limited=$(json_number "$work/$scenario.summary.json" rate_limited)
  ok=$(grep -o '"ok":[0-9]*' "$work/$scenario.summary.json" | head -1 | cut -d: -f2)
  read -r minimum ratio share < <(awk -v n="$jobs" -v b="$busiest" -v t="$token_limit" -v a="$account_limit" \
    -v e="$elapsed" -v r="$requests" -v l="$limited" 'BEGIN {
      m = n / t; if (b / a > m) m = b / a; printf "%.3f %.3f %.3f\n", m, e / m, 100 * l / r }')
  printf '%-8s %6s %9s %9s %7s %9s %7s\n' "$scenario" "$jobs" "$elapsed" "$minimum" "$ratio" "$requests" "$share"
  [[ $first -eq 1 ]] || echo "," >> "$report"
  first=0
  printf '{"scenario":"%s","jobs":%s,"ok":%s,"exit":%s,"busiest_account_jobs":%s,"elapsed_s":%s,"minimum_s":%s,"ratio":%s,"requests":%s,"rate_limited":%s,"rate_limited_percent":%s}' \
    "$scenario" "$jobs" "$ok" "$status" "$busiest" "$elapsed" "$minimum" "$ratio" "$requests" "$limited" "$share" >> "$report"
done
echo "]" >> "$report"
echo "limits: token $token_limit/s, account $account_limit/s (1 s windows); client $client_token_rate/s burst 2, $client_account_rate/s burst 1 per account"
echo "report: $report"
