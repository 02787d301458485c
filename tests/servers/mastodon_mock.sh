#!/usr/bin/env bash
# NOT a real Mastodon server: 'mastodon-mock' (PyPI) is a stateful FastAPI+SQLite re-implementation of the
# Mastodon REST API meant for client tests. No real Mastodon-API server was found in Debian bookworm, PyPI or npm.
# Usage: mastodon_mock.sh start | stop [--wipe]      Endpoint http://127.0.0.1:3000, tokens alice_token / bob_token
# replydeck copy of ../shared/e2e/mastodon_mock.sh (port from MASTO_PORT, E2E_DIR defaults to
# <repo>/.e2e, `start` reuses a mock of ours that is already running).
set -euo pipefail
E2E_DIR=${E2E_DIR:-$(cd "$(dirname "$(readlink -f "$0")")/../.." && pwd)/.e2e}
M=$E2E_DIR/masto
VENV=$E2E_DIR/masto-venv
PORT=${MASTO_PORT:-3000}

start() {
  if [ ! -x "$VENV/bin/mastodon_mock" ]; then
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q --disable-pip-version-check 'mastodon-mock==0.6.1'
  fi
  mkdir -p "$M"
  cat > "$M/mastodon_mock.toml" <<TOML
[server]
host = "127.0.0.1"
port = $PORT
[database]
path = ":memory:"      # state is lost on stop; use a file path to keep it
[[seed.accounts]]
username = "alice"
access_token = "alice_token"
[[seed.accounts]]
username = "bob"
access_token = "bob_token"
TOML
  if [ -f "$M/serve.pid" ] && kill -0 "$(cat "$M/serve.pid")" 2>/dev/null; then
    echo "MASTO_URL=http://127.0.0.1:$PORT  tokens: alice_token bob_token  (pid $(cat "$M/serve.pid"), already running)"
    return 0
  fi
  if curl -fs -m 2 "http://127.0.0.1:$PORT/" -o /dev/null 2>/dev/null || (exec 3<>/dev/tcp/127.0.0.1/$PORT) 2>/dev/null; then
    echo "port $PORT is already in use by something else"; exit 1
  fi
  nohup "$VENV/bin/mastodon_mock" serve --config "$M/mastodon_mock.toml" --log-level warning \
      </dev/null >"$M/serve.log" 2>&1 &
  echo $! > "$M/serve.pid"
  for i in $(seq 1 100); do
    kill -0 "$(cat "$M/serve.pid")" 2>/dev/null || { echo "mastodon_mock died:"; cat "$M/serve.log"; exit 1; }
    curl -fs "http://127.0.0.1:$PORT/api/v1/instance" >/dev/null && break; sleep 0.2
  done
  curl -fs "http://127.0.0.1:$PORT/api/v1/instance" >/dev/null || { echo "not answering"; cat "$M/serve.log"; exit 1; }
  echo "MASTO_URL=http://127.0.0.1:$PORT  tokens: alice_token bob_token  (pid $(cat "$M/serve.pid"))"
}

stop() {
  if [ -f "$M/serve.pid" ]; then
    pid=$(cat "$M/serve.pid"); kill "$pid" 2>/dev/null || true
    # wait until it is really gone: a dying uvicorn still answers for a moment and would fool the next start
    for i in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && kill -9 "$pid"
    rm -f "$M/serve.pid"; echo "stopped mastodon_mock pid $pid"
  fi
  if [ "${1:-}" = "--wipe" ]; then rm -rf "$M"; fi
  return 0
}

case "${1:-}" in
  start) start ;;
  stop) shift; stop "${1:-}" ;;
  *) echo "usage: $0 start|stop [--wipe]"; exit 2 ;;
esac
