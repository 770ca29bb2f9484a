#!/usr/bin/env bash
# The demo: 20 000 organization updates over 200 integrated accounts, sent by
# `orgpatchd run` over verified TLS to the bundled emulator, which gets a
# self-signed certificate made on the spot. Installs and builds what is missing.
#
#   scripts/demo.sh [JOBS] [ACCOUNTS]
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=${1:-20000}
accounts=${2:-200}

scripts/setup.sh build >&2

demo=$(mktemp -d /tmp/orgpatchd-demo.XXXXXX)
emulator_pid=
cleanup() { [[ -n $emulator_pid ]] && kill "$emulator_pid" 2>/dev/null && wait "$emulator_pid" 2>/dev/null; true; }
trap cleanup EXIT

scripts/generate-jobs.sh "$jobs" "$accounts" > "$demo/updates.jsonl"
# The token lives in a file only the owner reads; never on a command line.
umask 077
head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$demo/token"
umask 022

# Start the emulator on a free port with a fresh certificate, and read its port.
build/orgpatch-emulator --listen 127.0.0.1:0 --write-cert "$demo/cert" --token-file "$demo/token" --no-rate-limit \
  > "$demo/emulator.out" 2> "$demo/emulator.log" &
emulator_pid=$!
for _ in $(seq 100); do
  grep -q '^listening on ' "$demo/emulator.out" 2>/dev/null && break
  kill -0 "$emulator_pid" 2>/dev/null || { cat "$demo/emulator.log" >&2; exit 1; }
  sleep 0.1
done
url=$(sed -n 's/^listening on //p' "$demo/emulator.out" | head -1)
[[ -n $url ]] || { echo "demo: the emulator did not start" >&2; cat "$demo/emulator.log" >&2; exit 1; }

echo "demo: $jobs jobs over $accounts accounts → $url (certificate verified against $demo/cert/cert.pem)"
status=0
build/orgpatchd run "$demo/updates.jsonl" --base-url "$url" --ca-file "$demo/cert/cert.pem" \
  --token-file "$demo/token" --rate 0 --account-rate 0 --connections 32 \
  --summary-json "$demo/summary.json" || status=$?
echo "demo: results in $demo/updates.results.jsonl; summary JSON in $demo/summary.json"
exit $status
