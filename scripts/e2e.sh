#!/usr/bin/env bash
# One end-to-end run with the binaries of BUILD_DIR (the sanitizer build in CI):
# the emulator over TLS with faults (429, 500, 502, 504, resets before and in
# the middle of answers, chunked bodies, invalid JSON in a 200, connections
# closed every 50 requests), `orgpatchd run` of JOBS jobs at debug level with
# its progress line (under script(1), when there), then the same command
# again, which must send nothing. Checks: every job has exactly one line and is
# ok, no organization was applied twice, the token is in no output.
#
#   scripts/e2e.sh BUILD_DIR [JOBS]
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:?usage: scripts/e2e.sh BUILD_DIR [JOBS]}
jobs=${2:-3000}
work=$(mktemp -d /tmp/orgpatchd-e2e.XXXXXX)
emulator_pid=
cleanup() {
  [[ -n $emulator_pid ]] && kill "$emulator_pid" 2>/dev/null && wait "$emulator_pid" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT
fail() { echo "e2e.sh: $*" >&2; exit 1; }

scripts/generate-jobs.sh "$jobs" 40 > "$work/updates.jsonl"
umask 077
head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$work/token"
umask 022
cat > "$work/emulator.yaml" <<'EOF'
faults:
  seed: 7
  status_429: {probability: 0.01, retry_after_s: 0}
  status_500: 0.01
  status_502: 0.01
  status_504: 0.01
  reset_before: 0.01
  reset_mid_body: 0.01
  chunked: 0.2
  invalid_json: 0.01
  close_after: 50
EOF
cat > "$work/orgpatchd.yaml" <<'EOF'
log: {level: debug}
retry: {max_attempts: 20, base_delay_ms: 1, max_delay_ms: 20, budget_percent: 100}
EOF

"$build/orgpatch-emulator" --listen 127.0.0.1:0 --write-cert "$work/cert" --token-file "$work/token" \
  --no-rate-limit --config "$work/emulator.yaml" > "$work/emulator.out" 2> "$work/emulator.log" &
emulator_pid=$!
for _ in $(seq 300); do
  grep -q '^listening on ' "$work/emulator.out" 2>/dev/null && break
  kill -0 "$emulator_pid" 2>/dev/null || { cat "$work/emulator.log" >&2; fail "the emulator did not start"; }
  sleep 0.1
done
url=$(sed -n 's/^listening on //p' "$work/emulator.out" | head -1)
[[ -n $url ]] || fail "the emulator did not start"

run=("$build/orgpatchd" run "$work/updates.jsonl" --config "$work/orgpatchd.yaml" --base-url "$url"
     --ca-file "$work/cert/cert.pem" --token-file "$work/token" --rate 0 --account-rate 0 --connections 16
     --summary-json "$work/summary.json")
status=0
if command -v script >/dev/null; then
  # On a pseudo-terminal, so that the progress line is drawn too.
  script -qec "$(printf '%q ' "${run[@]}")" /dev/null > "$work/run.out" 2>&1 || status=$?
else
  "${run[@]}" > "$work/run.out" 2>&1 || status=$?
fi
[[ $status == 0 ]] || { tail -20 "$work/run.out" >&2; fail "orgpatchd run exited $status"; }

lines=$(($(wc -l < "$work/updates.results.jsonl") - 1))
ok=$(grep -c '"outcome":"ok"' "$work/updates.results.jsonl" || true)
[[ $lines == "$jobs" && $ok == "$jobs" ]] || fail "$lines result lines, $ok ok, for $jobs jobs"
# The emulator's count of updates applied per organization (openssl is installed by setup).
hostport=${url#https://}
stats=$(printf 'GET /_emulator/stats HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n' "$hostport" |
        openssl s_client -quiet -connect "$hostport" -CAfile "$work/cert/cert.pem" 2>/dev/null || true)
max_applies=$(grep -o '"max_applies_per_org":[0-9]*' <<< "$stats" | cut -d: -f2 || true)
[[ -n $max_applies ]] || fail "no stats from the emulator"
[[ $max_applies == 1 ]] || fail "an organization was applied $max_applies times"

cp "$work/summary.json" "$work/first-summary.json"

# The same command again: everything is finished, nothing is sent.
"${run[@]}" > "$work/again.out" 2>&1 || { tail -20 "$work/again.out" >&2; fail "the second run failed"; }
grep -q '"requests":0' "$work/summary.json" || fail "the second run sent requests: $(cat "$work/summary.json")"

# The token as a pattern file: never on a command line, not even grep's.
if grep -rqF -f "$work/token" -- "$work/run.out" "$work/again.out" "$work"/updates.*.jsonl "$work/summary.json"; then
  fail "the token appears in an output"
fi
retries=$(grep -o '"retries":[0-9]*' "$work/first-summary.json" | cut -d: -f2 || true)
[[ ${retries:-0} -gt 0 ]] || fail "no retries: the faults did not happen"
echo "e2e.sh: $jobs jobs ok through faults ($retries retries), one apply per organization; the second run sent" \
  "nothing; $(grep -c 'attempt [0-9]*:' "$work/run.out") debug lines, $(grep -o 'req/s' "$work/run.out" | wc -l) progress redraws"
