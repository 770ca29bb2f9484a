# Shared by the bench scripts (sourced, not run): the emulator and a token in $work.

# A random API token in $work/token, readable by its owner only.
make_token() {
  (umask 077 && head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$work/token")
}

# Starts the emulator over TLS (its certificate in $work/cert) with the extra
# arguments given; sets emulator_pid and url ("https://127.0.0.1:PORT").
start_emulator() {
  build/orgpatch-emulator --listen 127.0.0.1:0 --write-cert "$work/cert" --token-file "$work/token" "$@" \
    > "$work/emulator.out" 2> "$work/emulator.log" &
  emulator_pid=$!
  for _ in $(seq 100); do
    grep -q '^listening on ' "$work/emulator.out" 2>/dev/null && break
    sleep 0.1
  done
  url=$(sed -n 's/^listening on //p' "$work/emulator.out" | head -1)
  [[ -n $url ]] || { cat "$work/emulator.log" >&2; exit 1; }
}

stop_emulator() { kill "$emulator_pid"; wait "$emulator_pid" 2>/dev/null || true; emulator_pid=; }
