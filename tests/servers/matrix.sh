#!/usr/bin/env bash
# Matrix (Synapse) on 127.0.0.1:8008, SQLite, no TLS, shared-secret registration.
# Usage: matrix.sh start | stop | status
# Env overrides: E2E_DIR (default <repo>/.e2e), MATRIX_PORT (8008)
# Adapted from ../shared/e2e/matrix.sh (tested with Synapse 1.163.2).
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
E2E_DIR=${E2E_DIR:-$HERE/../../.e2e}
PORT=${MATRIX_PORT:-8008}
VENV=$E2E_DIR/synapse-venv
DATA=$E2E_DIR/synapse-data
SECRET=e2e-shared-secret
URL=http://127.0.0.1:$PORT

install() {
  if [ ! -x "$VENV/bin/synapse_homeserver" ]; then
    mkdir -p "$E2E_DIR"
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q --disable-pip-version-check "matrix-synapse==${SYNAPSE_VERSION:-1.163.2}"
  fi
}

configure() {
  [ -f "$DATA/homeserver.yaml" ] && return 0
  mkdir -p "$DATA"
  # generate signing key + secrets, then overwrite the config with our own
  (cd "$DATA" && "$VENV/bin/python" -m synapse.app.homeserver --server-name localhost \
      --config-path "$DATA/generated.yaml" --generate-config --report-stats=no \
      --data-directory "$DATA" >/dev/null)
  cat > "$DATA/log.config" <<LOG
version: 1
formatters: {precise: {format: '%(asctime)s - %(name)s - %(lineno)d - %(levelname)s - %(request)s - %(message)s'}}
handlers:
  file: {class: logging.FileHandler, formatter: precise, filename: $DATA/homeserver.log}
loggers: {synapse.storage.SQL: {level: WARNING}}
root: {level: WARNING, handlers: [file]}
disable_existing_loggers: false
LOG
  cat > "$DATA/homeserver.yaml" <<YAML
server_name: "localhost"
pid_file: $DATA/homeserver.pid
listeners:
  - port: $PORT
    bind_addresses: ['127.0.0.1']
    type: http
    tls: false
    x_forwarded: false
    resources:
      - names: [client]
        compress: false
database:
  name: sqlite3
  args: {database: $DATA/homeserver.db}
log_config: "$DATA/log.config"
media_store_path: $DATA/media_store
signing_key_path: "$DATA/localhost.signing.key"
registration_shared_secret: "$SECRET"
enable_registration: false
report_stats: false
macaroon_secret_key: "e2e-macaroon-secret"
form_secret: "e2e-form-secret"
trusted_key_servers: []
suppress_key_server_warning: true
use_presence: false
federation_domain_whitelist: []
# tests hammer the API: lift the rate limits
rc_message: {per_second: 1000, burst_count: 1000}
rc_registration: {per_second: 1000, burst_count: 1000}
rc_login:
  address: {per_second: 1000, burst_count: 1000}
  account: {per_second: 1000, burst_count: 1000}
  failed_attempts: {per_second: 1000, burst_count: 1000}
rc_joins:
  local: {per_second: 1000, burst_count: 1000}
  remote: {per_second: 1000, burst_count: 1000}
rc_invites:
  per_room: {per_second: 1000, burst_count: 1000}
  per_user: {per_second: 1000, burst_count: 1000}
YAML
}

register() { # user pass
  "$VENV/bin/register_new_matrix_user" -u "$1" -p "$2" --no-admin -k "$SECRET" "$URL" >/dev/null 2>&1 \
    || echo "note: register $1 failed (probably exists already)" >&2
}

start() {
  install
  configure
  if [ -f "$DATA/homeserver.pid" ] && kill -0 "$(cat "$DATA/homeserver.pid")" 2>/dev/null; then
    echo "already running (pid $(cat "$DATA/homeserver.pid"))"; 
  else
    # --daemonize writes pid_file; synapse forks into the background
    "$VENV/bin/python" -m synapse.app.homeserver -c "$DATA/homeserver.yaml" --daemonize
    for i in $(seq 1 120); do
      curl -fsS "$URL/_matrix/client/versions" >/dev/null 2>&1 && break
      sleep 0.5
    done
    curl -fsS "$URL/_matrix/client/versions" >/dev/null || { echo "synapse did not come up; see $DATA/homeserver.log"; exit 1; }
  fi
  register alice alicepass
  register bob bobpass
  register carol carolpass
  echo "MATRIX_URL=$URL"
  echo "MATRIX_USERS=@alice:localhost/alicepass @bob:localhost/bobpass @carol:localhost/carolpass"
  echo "MATRIX_PID=$(cat "$DATA/homeserver.pid")"
}

stop() {
  if [ -f "$DATA/homeserver.pid" ]; then
    pid=$(cat "$DATA/homeserver.pid")
    kill "$pid" 2>/dev/null || true
    for i in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    kill -0 "$pid" 2>/dev/null && kill -9 "$pid"
    rm -f "$DATA/homeserver.pid"
    echo "stopped synapse pid $pid"
  else
    echo "not running"
  fi
  [ "${1:-}" = "--wipe" ] && rm -rf "$DATA" && echo "wiped $DATA"
  return 0
}

case "${1:-}" in
  install) install ;;
  start) start ;;
  stop) shift; stop "${1:-}" ;;
  status) curl -fsS "$URL/_matrix/client/versions" && echo ;;
  *) echo "usage: $0 install|start|stop [--wipe]|status"; exit 2 ;;
esac
