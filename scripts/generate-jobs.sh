#!/usr/bin/env bash
# Writes N organization updates over M integrated accounts as JSON Lines.
#   scripts/generate-jobs.sh N M [SEED] > jobs.jsonl
set -euo pipefail
n=${1:?jobs}
m=${2:?accounts}
seed=${3:-42}
awk -v n="$n" -v m="$m" -v seed="$seed" '
function hex(k,   s, i) { s = ""; for (i = 0; i < k; i++) s = s substr("0123456789abcdef", int(rand() * 16) + 1, 1); return s }
function uuid() { return hex(8) "-" hex(4) "-4" hex(3) "-a" hex(3) "-" hex(12) }
BEGIN {
  srand(seed)
  for (a = 0; a < m; a++) account[a] = uuid()
  for (i = 1; i <= n; i++) {
    printf "{\"id\":\"%s\",\"integrated_account_id\":\"%s\",\"body\":{\"name\":\"Org %d\",\"remote_data\":{\"session_expiry\":%d}}}\n",
      uuid(), account[(i - 1) % m], i, 60 + (i % 1380)
  }
}'
