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

# Installs, from Debian, the package of each COMMAND:PACKAGE whose command is
# missing. The load generators are not in scripts/setup.sh: only these scripts use them.
need_commands() {
  local pair missing=()
  for pair in "$@"; do
    command -v "${pair%%:*}" >/dev/null || missing+=("${pair#*:}")
  done
  ((${#missing[@]})) || return 0
  echo "bench: installing ${missing[*]}" >&2
  apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# The 200 body nginx answers with: a unified organization as Truto returns it.
nginx_body='{"id":"2818e386-8dec-2562-9ede-5b8a0fbbdc71","name":"Acme","updated_at":"2026-11-26T20:41:07.123Z","licenses":[],"remote_data":{}}'

# Starts nginx (one worker, no access log) answering every request with
# $nginx_body over TLS on 127.0.0.1, with a certificate for 127.0.0.1 in
# $work/cert.pem (the client's CA file); sets nginx_pid and url.
start_nginx() {
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 -subj /CN=localhost \
    -addext "subjectAltName=IP:127.0.0.1,DNS:localhost" -keyout "$work/key.pem" -out "$work/cert.pem" 2>/dev/null
  local port=$((20000 + RANDOM % 20000))
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
      return 200 '$nginx_body';
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
  # A port already taken makes nginx exit at once: say so rather than measure nothing.
  kill -0 "$nginx_pid" 2>/dev/null || { cat "$work/nginx/logs/error.log" >&2; exit 1; }
  url="https://127.0.0.1:$port"
}

stop_nginx() { kill "$nginx_pid" 2>/dev/null; wait "$nginx_pid" 2>/dev/null || true; nginx_pid=; }

# orgpatchd's config for a throughput run in $work/client.yaml: base URL $1, CA
# file $2, $3 connections, no rate limits (the server has none).
write_client_config() {
  cat > "$work/client.yaml" <<YAML
api: {base_url: "$1"}
tls: {ca_file: "$2"}
http: {connections: $3}
rate_limit: {requests_per_second: 0, per_account_requests_per_second: 0}
output: {fsync: interval}
YAML
}
