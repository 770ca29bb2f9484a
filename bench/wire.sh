#!/usr/bin/env bash
# Throughput at the limit of the wire (issue 6): a server answers over TLS on
# loopback; orgpatchd (N jobs), wrk and, when installed, h2load (HTTP/1.1) send
# PATCH requests of the same shape over the same number of keep-alive
# connections, one after the other, in one run. For each it prints requests/s,
# CPU µs per request (user + system of the client process), peak RSS, latency
# p50/p90/p99/max, and the ratios orgpatchd ÷ wrk; it writes a JSON report and
# a PNG (gnuplot): throughput over time and latency by percentile.
#
#   bench/wire.sh [JOBS=200000] [CONNECTIONS=32] [ACCOUNTS=200]
#   SERVER=emulator bench/wire.sh ...   the emulator (2 threads, no limits) instead of nginx
#
# nginx answers a fixed JSON body (bench/common.sh); the emulator validates,
# stores and answers each request as the API would, so it costs more per request.
# Installs nginx-light, wrk, nghttp2-client (h2load) and gnuplot-nox from Debian when missing.
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/common.sh
jobs=${1:-200000}
connections=${2:-32}
accounts=${3:-200}
server=${SERVER:-nginx}
[[ $server == nginx || $server == emulator ]] || { echo "wire.sh: SERVER is nginx or emulator" >&2; exit 2; }

scripts/setup.sh build >&2
need_commands nginx:nginx-light wrk:wrk h2load:nghttp2-client gnuplot:gnuplot-nox

work=$(mktemp -d /tmp/orgpatchd-bench-wire.XXXXXX)
nginx_pid= emulator_pid=
cleanup() {
  if [[ -n $nginx_pid ]]; then stop_nginx; fi
  if [[ -n $emulator_pid ]]; then stop_emulator || true; fi
}
trap cleanup EXIT

# A fixed, public token, not a random one: h2load takes headers only on its
# command line, where any user can read them, so nothing secret may go there.
token=orgpatchd-bench-public-token
(umask 077 && printf '%s' "$token" > "$work/token")
if [[ $server == nginx ]]; then
  start_nginx
  ca_file=$work/cert.pem
else
  # Two threads: the server should not be what limits one client thread.
  start_emulator --threads 2 --no-rate-limit
  ca_file=$work/cert/cert.pem
fi

scripts/generate-jobs.sh "$jobs" "$accounts" > "$work/jobs.jsonl"
write_client_config "$url" "$ca_file" "$connections"

# One request of the same shape for wrk and h2load: the first job's URL, headers
# and body (the emulator wants a UUID id and account, which these are).
first=$(head -1 "$work/jobs.jsonl")
id=$(sed 's/.*"id":"\([^"]*\)".*/\1/' <<< "$first")
account=$(sed 's/.*"integrated_account_id":"\([^"]*\)".*/\1/' <<< "$first")
body=$(sed 's/.*"body":\({.*}\)}$/\1/' <<< "$first")
path="/unified/user-directory/organizations/$id?integrated_account_id=$account"
# One fixed key: against the emulator every request after wrk's or h2load's first
# is an idempotent replay, while orgpatchd's each carry their own (and are applied).
idempotency_key="op1-0123456789abcdef0123456789abcdef-0123456789abcdef0123456789abcdef"
printf '%s' "$body" > "$work/body.json"
# wrk keeps no per-request log: its done() prints the percentiles of its
# latency histogram (µs), 1..99, 99.9, 99.99 and 100 (the maximum).
cat > "$work/patch.lua" <<LUA
wrk.method = "PATCH"
wrk.body = [[$body]]
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Accept"] = "application/json"
wrk.headers["Authorization"] = "Bearer $token"
wrk.headers["Idempotency-Key"] = "$idempotency_key"

done = function(summary, latency, requests)
  local ps = {}
  for p = 1, 99 do ps[#ps + 1] = p end
  ps[#ps + 1] = 99.9
  ps[#ps + 1] = 99.99
  for _, p in ipairs(ps) do
    io.write(string.format("percentile %g %d\n", p, latency:percentile(p)))
  end
  io.write(string.format("percentile 100 %d\n", latency.max))
end
LUA

# user+system seconds, peak RSS (KiB) and wall seconds of a command, from GNU
# time; and the server's user+system seconds over the same span, from /proc.
timed() {
  local before
  before=$(server_cpu_s)
  /usr/bin/time -q -f "%U %S %M %e" -o "$work/time" "$@" || { local rc=$?; server_cpu_since "$before"; return $rc; }
  server_cpu_since "$before"
}
cpu_s() { awk '{ printf "%.3f", $1 + $2 }' "$work/time"; }
rss_mb() { awk '{ printf "%.1f", $3 / 1024 }' "$work/time"; }

# The server's processes: nginx's workers (the master only waits), or the emulator.
server_pids() {
  if [[ -n $nginx_pid ]]; then pgrep -P "$nginx_pid" || true; else echo "$emulator_pid"; fi
}
# User+system CPU seconds the server has used (all its threads), from
# /proc/PID/stat fields 14 and 15 after the command name, in clock ticks.
server_cpu_s() {
  local pid ticks=0 hz
  hz=$(getconf CLK_TCK)
  for pid in $(server_pids); do
    ticks=$((ticks + $(sed 's/.*) //' "/proc/$pid/stat" | awk '{ print $12 + $13 }')))
  done
  awk -v t="$ticks" -v hz="$hz" 'BEGIN { printf "%.2f", t / hz }'
}
server_cpu_since() { awk -v a="$1" -v b="$(server_cpu_s)" 'BEGIN { printf "%.2f", b - a }' > "$work/server_time"; }
# Per client: the server's CPU µs per request, and the share of one core the
# client and the server each used over the client's run (both near 100 %: the
# machine, not either program, set the pace).
server_us() { awk -v s="$(cat "$work/server_time")" -v n="$1" 'BEGIN { printf "%.1f", 1e6 * s / n }'; }
client_share() { awk '{ printf "%.0f", 100 * ($1 + $2) / $4 }' "$work/time"; }
server_share() { awk -v s="$(cat "$work/server_time")" '{ printf "%.0f", 100 * s / $4 }' "$work/time"; }

# Per-request samples are "seconds since the client started, latency ms" rows.

# orgpatchd: the results log, timed from its header's started_at (same UTC day
# format, so the time of day is enough; a run across midnight wraps once).
orgpatchd_samples() {
  awk '
    function secs(ts,   t) { split(substr(ts, 12, 12), t, ":"); return t[1] * 3600 + t[2] * 60 + t[3] }
    NR == 1 { match($0, /"started_at":"[^"]*"/); t0 = secs(substr($0, RSTART + 14, 24)); next }
    match($0, /"latency_ms":[0-9.]+/) {
      latency = substr($0, RSTART + 13, RLENGTH - 13)
      match($0, /"finished_at":"[^"]*"/)
      t = secs(substr($0, RSTART + 15, 24)) - t0
      if (t < -43200) t += 86400
      print t, latency
    }' "$1"
}

# h2load --log-file: start µs since the epoch, status (-1: failed), latency µs;
# the time is the response's end, from the earliest start.
h2load_samples() {
  awk -F '\t' '
    NR == FNR { if (FNR == 1 || $1 < t0) t0 = $1; next }
    $2 > 0 { printf "%.6f %.3f\n", ($1 + $3 - t0) / 1e6, $3 / 1000 }' "$1" "$1"
}

# Samples → "bin start s, requests/s" in 100 ms bins, plotted as steps (the
# last bin repeated at its end so that it has a width).
throughput_bins() {
  awk '{ b = int($1 * 10); n[b]++; if (b > last) last = b }
       END { for (b = 0; b <= last + 1; b++) printf "%.1f %d\n", b / 10, 10 * n[b <= last ? b : last] }' "$1"
}

# Samples → "percentile, latency ms" for 1..99, 99.9, 99.99, 100 (nearest rank),
# the points wrk reports.
latency_percentiles() {
  cut -d' ' -f2 "$1" | sort -g | awk '
    function show(p,   x, i) {
      x = p * NR / 100 - 1e-9; i = int(x); if (i < x) i++; if (i < 1) i = 1
      print p, v[i]
    }
    { v[NR] = $1 }
    END { if (NR == 0) exit; for (p = 1; p <= 99; p++) show(p); show(99.9); show(99.99); show(100) }'
}

# The latency (ms) at percentile $2 of a percentile file $1, or null.
pct() { [[ -s $1 ]] && awk -v p="$2" '$1 == p { print $2 }' "$1" || echo null; }
latency_json() { printf '{"p50":%s,"p90":%s,"p99":%s,"max":%s}' "$(pct "$1" 50)" "$(pct "$1" 90)" "$(pct "$1" 99)" "$(pct "$1" 100)"; }

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
o_srv=$(server_us "$o_requests") o_cshare=$(client_share) o_sshare=$(server_share)
orgpatchd_samples "$work/jobs.results.jsonl" > "$work/orgpatchd.samples"
throughput_bins "$work/orgpatchd.samples" > "$work/orgpatchd.rate"
latency_percentiles "$work/orgpatchd.samples" > "$work/orgpatchd.pct"

# wrk: as long as orgpatchd took (at least 5 s), one thread, the same connections.
duration=$(awk -v e="$o_elapsed" 'BEGIN { d = int(e + 0.999); if (d < 5) d = 5; print d }')
timed wrk -t1 -c"$connections" -d"${duration}s" -s "$work/patch.lua" "$url$path" > "$work/wrk.out"
w_requests=$(awk '/requests in/ { print $1 }' "$work/wrk.out")
w_rps=$(awk '/^Requests\/sec/ { printf "%.0f", $2 }' "$work/wrk.out")
w_cpu=$(awk -v c="$(cpu_s)" -v n="$w_requests" 'BEGIN { printf "%.1f", 1e6 * c / n }')
w_rss=$(rss_mb)
w_srv=$(server_us "$w_requests") w_cshare=$(client_share) w_sshare=$(server_share)
awk '$1 == "percentile" { printf "%s %.3f\n", $2, $3 / 1000 }' "$work/wrk.out" > "$work/wrk.pct"
# A wrong token or URL gives fast 4xx answers: say so rather than report them as throughput.
if grep -q '^  Non-2xx' "$work/wrk.out"; then grep '^  Non-2xx' "$work/wrk.out" | sed 's/^ */wire.sh: wrk: /' >&2; fi
# No per-request times: its mean rate as a flat line over its run.
printf '0 %s\n%s %s\n' "$w_rps" "$duration" "$w_rps" > "$work/wrk.rate"

# h2load over HTTP/1.1: the same number of requests as orgpatchd sent. Its log
# file costs it one formatted line per request, counted in its CPU.
h_rps=null h_cpu=null h_rss=null h_srv=null h_cshare=null h_sshare=null
rm -f "$work/h2load.pct"
if timed h2load --h1 -n "$o_requests" -c "$connections" -t 1 -m 1 -d "$work/body.json" \
     --log-file "$work/h2load.log" \
     -H ':method: PATCH' -H 'Content-Type: application/json' -H 'Accept: application/json' \
     -H "Authorization: Bearer $token" -H "Idempotency-Key: $idempotency_key" \
     "$url$path" > "$work/h2load.out" 2>&1; then
  h_done=$(awk '/^requests:/ { print $8 }' "$work/h2load.out")
  grep -q '^status codes: [0-9]* 2xx, 0 3xx, 0 4xx, 0 5xx' "$work/h2load.out" ||
    grep '^status codes' "$work/h2load.out" | sed 's/^/wire.sh: h2load: /' >&2
  h_rps=$(awk '/^finished in/ { gsub(",", "", $4); printf "%.0f", $4 }' "$work/h2load.out")
  h_cpu=$(awk -v c="$(cpu_s)" -v n="$h_done" 'BEGIN { printf "%.1f", 1e6 * c / n }')
  h_rss=$(rss_mb)
  h_srv=$(server_us "$h_done") h_cshare=$(client_share) h_sshare=$(server_share)
  h2load_samples "$work/h2load.log" > "$work/h2load.samples"
  throughput_bins "$work/h2load.samples" > "$work/h2load.rate"
  latency_percentiles "$work/h2load.samples" > "$work/h2load.pct"
fi

# Two panels: requests/s per 100 ms over each client's own run, and latency by
# percentile on HdrHistogram's axis (1 / (1 - p)), so the tail gets room.
plot_png() {
  local rate=("'$work/orgpatchd.rate' with steps lw 2 title 'orgpatchd'")
  local latency=("'$work/orgpatchd.pct' using (x(\$1)):2 with lines lw 2 title 'orgpatchd'")
  rate+=("'$work/wrk.rate' with lines lw 2 dt 2 title 'wrk (mean)'")
  latency+=("'$work/wrk.pct' using (x(\$1)):2 with lines lw 2 title 'wrk'")
  if [[ -s $work/h2load.pct ]]; then
    rate+=("'$work/h2load.rate' with steps lw 2 title 'h2load'")
    latency+=("'$work/h2load.pct' using (x(\$1)):2 with lines lw 2 title 'h2load'")
  fi
  local IFS=,
  gnuplot <<GNUPLOT
set terminal pngcairo size 1400,560 font ",10"
set output '$work/wire.png'
set multiplot layout 1,2 title "$jobs jobs, $connections connections, $server over TLS on loopback"
set grid
set key bottom right
set title "Throughput (100 ms bins)"
set xlabel "seconds since the client started"
set ylabel "requests/s"
set yrange [0:*]
set offsets 0, 0, graph 0.08, 0
plot ${rate[*]}
unset offsets
set title "Latency by percentile"
set xlabel "percentile"
set ylabel "latency (ms)"
set key top left
set logscale xy
set yrange [*:*]
x(p) = p >= 100 ? 1e5 : 100.0 / (100.0 - p)
set xrange [1:2e5]
set xtics ("0%%" 1, "50%%" 2, "90%%" 10, "99%%" 100, "99.9%%" 1000, "99.99%%" 1e4, "max" 1e5)
plot ${latency[*]}
unset multiplot
GNUPLOT
}
plot_png || echo "wire.sh: gnuplot failed, no plot" >&2

# The last three columns: the server's CPU per request, and the share of a core
# the client and the server each used during the client's run.
row() { printf '%-10s %11s %11s %7s %8s %8s %8s %8s %12s %9s %9s\n' "$@"; }
row client "requests/s" "CPU µs/req" "RSS MB" "p50 ms" "p90 ms" "p99 ms" "max ms" "server µs/req" "client %" "server %"
client_row() {
  local f=$work/$1.pct
  row "${@:1:4}" "$(pct "$f" 50)" "$(pct "$f" 90)" "$(pct "$f" 99)" "$(pct "$f" 100)" "${@:5}"
}
client_row orgpatchd "$o_rps" "$o_cpu" "$o_rss" "$o_srv" "$o_cshare" "$o_sshare"
client_row wrk "$w_rps" "$w_cpu" "$w_rss" "$w_srv" "$w_cshare" "$w_sshare"
client_row h2load "$h_rps" "$h_cpu" "$h_rss" "$h_srv" "$h_cshare" "$h_sshare"
client_json() {
  printf '"rps":%s,"cpu_us_per_request":%s,"rss_mb":%s,"latency_ms":%s,"server_cpu_us_per_request":%s,"client_core_percent":%s,"server_core_percent":%s' \
    "$1" "$2" "$3" "$(latency_json "$work/$4.pct")" "$5" "$6" "$7"
}
rps_ratio=$(awk -v a="$o_rps" -v b="$w_rps" 'BEGIN { printf "%.3f", a / b }')
cpu_ratio=$(awk -v a="$o_cpu" -v b="$w_cpu" 'BEGIN { printf "%.3f", a / b }')
echo "orgpatchd ÷ wrk: requests/s $rps_ratio, CPU per request $cpu_ratio ($jobs jobs, $o_ok ok, $connections connections, $server TLS on loopback)"
# One client thread: 0.95 × wrk's rate leaves it 1 / (0.95 × wrk's rate) of CPU
# per request, whatever it does per job. With wrk and the server each near a
# whole core, no core is left for more threads either.
budget=$(awk -v r="$w_rps" 'BEGIN { printf "%.1f", 1e6 / (0.95 * r) }')
echo "CPU per request that one thread may use to reach 0.95 × wrk: $budget µs (orgpatchd used $o_cpu; wrk's run kept the client at $w_cshare % and the server at $w_sshare % of a core)"
printf '{"server":"%s","jobs":%s,"ok":%s,"connections":%s,"orgpatchd":{%s},"wrk":{%s},"h2load":{%s},"rps_ratio":%s,"cpu_ratio":%s,"cpu_us_per_request_for_095":%s}\n' \
  "$server" "$jobs" "$o_ok" "$connections" \
  "$(client_json "$o_rps" "$o_cpu" "$o_rss" orgpatchd "$o_srv" "$o_cshare" "$o_sshare")" \
  "$(client_json "$w_rps" "$w_cpu" "$w_rss" wrk "$w_srv" "$w_cshare" "$w_sshare")" \
  "$(client_json "$h_rps" "$h_cpu" "$h_rss" h2load "$h_srv" "$h_cshare" "$h_sshare")" \
  "$rps_ratio" "$cpu_ratio" "$budget" > "$work/wire-report.json"
echo "report: $work/wire-report.json"
echo "plot: $work/wire.png"
