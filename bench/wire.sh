#!/usr/bin/env bash
# Throughput at the limit of the wire (issue 6): nginx serves a fixed JSON answer
# over TLS on loopback; orgpatchd (N jobs), wrk and, when installed, h2load
# (HTTP/1.1) send PATCH requests of the same shape over the same number of
# keep-alive connections, one after the other, in one run. For each it prints
# requests/s, CPU µs per request (user + system of the client process), peak
# RSS and the ratios orgpatchd ÷ wrk; it writes a JSON report.
#
#   bench/wire.sh [JOBS=200000] [CONNECTIONS=32] [ACCOUNTS=200]
#
# Installs nginx-light, wrk and nghttp2-client (h2load) from Debian when missing.
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/common.sh
jobs=${1:-200000}
connections=${2:-32}
accounts=${3:-200}

scripts/setup.sh build >&2
missing=()
command -v nginx >/dev/null || missing+=(nginx-light)
command -v wrk >/dev/null || missing+=(wrk)
command -v h2load >/dev/null || missing+=(nghttp2-client)
if ((${#missing[@]})); then
  apt-get update -qq >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
fi

work=$(mktemp -d /tmp/orgpatchd-bench-wire.XXXXXX)
nginx_pid=
cleanup() { [[ -n $nginx_pid ]] && kill "$nginx_pid" 2>/dev/null && wait "$nginx_pid" 2>/dev/null; true; }
trap cleanup EXIT

# A certificate for 127.0.0.1, and nginx answering every request with one JSON body.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 -subj /CN=localhost \
  -addext "subjectAltName=IP:127.0.0.1,DNS:localhost" -keyout "$work/key.pem" -out "$work/cert.pem" 2>/dev/null
port=$((20000 + RANDOM % 20000))
mkdir -p "$work/nginx/logs"
cat > "$work/nginx.conf" <<CONF
worker_processes 1;
error_log $work/nginx/logs/error.log warn;
pid $work/nginx/nginx.pid;
events { worker_connections 1024; }
http {
  access_log off;
  keepalive_requests 100000000;
  keepalive_timeout 120s;
  ssl_session_cache shared:SSL:1m;
  server {
    listen 127.0.0.1:$port ssl;
    ssl_certificate $work/cert.pem;
    ssl_certificate_key $work/key.pem;
    default_type application/json;
    location / {
      return 200 '{"id":"2818e386-8dec-2562-9ede-5b8a0fbbdc71","name":"Acme","updated_at":"2026-11-26T20:41:07.123Z","licenses":[],"remote_data":{}}';
    }
  }
}
CONF
nginx -p "$work/nginx" -c "$work/nginx.conf" -g 'daemon off;' &
nginx_pid=$!
for _ in $(seq 50); do
  (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
  sleep 0.1
done

scripts/generate-jobs.sh "$jobs" "$accounts" > "$work/jobs.jsonl"
make_token
cat > "$work/client.yaml" <<YAML
api: {base_url: "https://127.0.0.1:$port"}
tls: {ca_file: "$work/cert.pem"}
http: {connections: $connections}
rate_limit: {requests_per_second: 0, per_account_requests_per_second: 0}
output: {fsync: interval}
YAML

# One request of the same shape for wrk and h2load: the first job's URL, headers and body.
first=$(head -1 "$work/jobs.jsonl")
id=$(sed 's/.*"id":"\([^"]*\)".*/\1/' <<< "$first")
account=$(sed 's/.*"integrated_account_id":"\([^"]*\)".*/\1/' <<< "$first")
body=$(sed 's/.*"body":\({.*}\)}$/\1/' <<< "$first")
path="/unified/user-directory/organizations/$id?integrated_account_id=$account"
printf '%s' "$body" > "$work/body.json"
cat > "$work/patch.lua" <<LUA
wrk.method = "PATCH"
wrk.body = [[$body]]
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Accept"] = "application/json"
wrk.headers["Authorization"] = "Bearer benchmark-token"
wrk.headers["Idempotency-Key"] = "op1-0123456789abcdef0123456789abcdef-0123456789abcdef0123456789abcdef"
LUA

# user+system seconds and peak RSS (KiB) of a command, from GNU time.
timed() { /usr/bin/time -f "%U %S %M" -o "$work/time" "$@"; }
cpu_s() { awk '{ printf "%.3f", $1 + $2 }' "$work/time"; }
rss_mb() { awk '{ printf "%.1f", $3 / 1024 }' "$work/time"; }

# orgpatchd: the whole job file.
rm -f "$work/jobs.results.jsonl" "$work/jobs.failed.jsonl"
timed build/orgpatchd run "$work/jobs.jsonl" --config "$work/client.yaml" --token-file "$work/token" \
  --quiet --summary-json "$work/summary.json" || true
o_elapsed=$(grep -o '"elapsed_s":[0-9.]*' "$work/summary.json" | cut -d: -f2)
o_requests=$(grep -o '"requests":[0-9]*' "$work/summary.json" | head -1 | cut -d: -f2)
o_ok=$(grep -o '"ok":[0-9]*' "$work/summary.json" | head -1 | cut -d: -f2)
o_rps=$(awk -v n="$o_requests" -v e="$o_elapsed" 'BEGIN { printf "%.0f", n / e }')
o_cpu=$(awk -v c="$(cpu_s)" -v n="$o_requests" 'BEGIN { printf "%.1f", 1e6 * c / n }')
o_rss=$(rss_mb)

# wrk: as long as orgpatchd took (at least 5 s), one thread, the same connections.
duration=$(awk -v e="$o_elapsed" 'BEGIN { d = int(e + 0.999); if (d < 5) d = 5; print d }')
timed wrk -t1 -c"$connections" -d"${duration}s" -s "$work/patch.lua" "https://127.0.0.1:$port$path" > "$work/wrk.out"
w_requests=$(awk '/requests in/ { print $1 }' "$work/wrk.out")
w_rps=$(awk '/^Requests\/sec/ { printf "%.0f", $2 }' "$work/wrk.out")
w_cpu=$(awk -v c="$(cpu_s)" -v n="$w_requests" 'BEGIN { printf "%.1f", 1e6 * c / n }')
w_rss=$(rss_mb)

# h2load over HTTP/1.1: the same number of requests as orgpatchd sent.
h_rps=null h_cpu=null h_rss=null
if timed h2load --h1 -n "$o_requests" -c "$connections" -t 1 -m 1 -d "$work/body.json" \
     -H ':method: PATCH' -H 'Content-Type: application/json' -H 'Accept: application/json' \
     -H 'Authorization: Bearer benchmark-token' "https://127.0.0.1:$port$path" > "$work/h2load.out" 2>&1; then
  h_done=$(awk '/^requests:/ { print $8 }' "$work/h2load.out")
  h_rps=$(awk '/^finished in/ { gsub(",", "", $4); printf "%.0f", $4 }' "$work/h2load.out")
  h_cpu=$(awk -v c="$(cpu_s)" -v n="$h_done" 'BEGIN { printf "%.1f", 1e6 * c / n }')
  h_rss=$(rss_mb)
fi

printf '%-10s %12s %14s %10s\n' client "requests/s" "CPU µs/req" "RSS MB"
printf '%-10s %12s %14s %10s\n' orgpatchd "$o_rps" "$o_cpu" "$o_rss" wrk "$w_rps" "$w_cpu" "$w_rss" h2load "$h_rps" "$h_cpu" "$h_rss"
rps_ratio=$(awk -v a="$o_rps" -v b="$w_rps" 'BEGIN { printf "%.3f", a / b }')
cpu_ratio=$(awk -v a="$o_cpu" -v b="$w_cpu" 'BEGIN { printf "%.3f", a / b }')
echo "orgpatchd ÷ wrk: requests/s $rps_ratio, CPU per request $cpu_ratio ($jobs jobs, $o_ok ok, $connections connections, nginx TLS on loopback)"
printf '{"jobs":%s,"ok":%s,"connections":%s,"orgpatchd":{"rps":%s,"cpu_us_per_request":%s,"rss_mb":%s},"wrk":{"rps":%s,"cpu_us_per_request":%s,"rss_mb":%s},"h2load":{"rps":%s,"cpu_us_per_request":%s,"rss_mb":%s},"rps_ratio":%s,"cpu_ratio":%s}\n' \
  "$jobs" "$o_ok" "$connections" "$o_rps" "$o_cpu" "$o_rss" "$w_rps" "$w_cpu" "$w_rss" "$h_rps" "$h_cpu" "$h_rss" \
  "$rps_ratio" "$cpu_ratio" > "$work/wire-report.json"
echo "report: $work/wire-report.json"
