#!/usr/bin/env bash
# Start or stop a throwaway anvil node for the test suite.
#
#   scripts/svc_anvil.sh start   # 127.0.0.1 on a free port; writes .run/anvil.pid and
#                                # .run/anvil.env (LEDGERML_TEST_ANVIL_URL=http://127.0.0.1:PORT)
#   scripts/svc_anvil.sh stop    # SIGTERM to the recorded PID (the npm node wrapper, which
#                                # forwards it to the anvil binary); checks nothing is left
#
# anvil comes from npm (@foundry-rs/anvil, binary inside the registry tarball) via
# `npm ci` in tools/solc; RUN_DIR overrides .run (tests use their own folder).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
RUN_DIR="${RUN_DIR:-$ROOT/.run}"
ANVIL="$ROOT/tools/solc/node_modules/.bin/anvil"
PID_FILE="$RUN_DIR/anvil.pid"
ENV_FILE="$RUN_DIR/anvil.env"
LOG_FILE="$RUN_DIR/anvil.log"
PY="${PYTHON:-python3}"

free_port() {
  "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

answers() {  # answers URL -> 0 when eth_chainId returns a result
  curl -sf -m 1 -H 'Content-Type: application/json' \
    -d '{"jsonrpc":"2.0","id":1,"method":"eth_chainId","params":[]}' "$1" 2>/dev/null |
    grep -q '"result"'
}

# The binary the wrapper spawned (its child), if any.
children_of() { pgrep -P "$1" 2>/dev/null || true; }

start() {
  mkdir -p "$RUN_DIR"
  if [ -f "$PID_FILE" ] && kill -0 "$(cat "$PID_FILE")" 2>/dev/null; then
    echo "anvil already running (pid $(cat "$PID_FILE"))"
    return 0
  fi
  if [ ! -x "$ANVIL" ]; then
    echo "anvil not installed: run 'npm ci' in tools/solc (make chain-test-setup)" >&2
    return 1
  fi
  local port url pid
  for _attempt in 1 2 3; do
    port="$(free_port)"
    url="http://127.0.0.1:$port"
    "$ANVIL" --host 127.0.0.1 --port "$port" --silent >"$LOG_FILE" 2>&1 </dev/null &
    pid=$!
    for _ in $(seq 1 200); do  # up to 10 s
      if answers "$url"; then
        echo "$pid" >"$PID_FILE"
        echo "LEDGERML_TEST_ANVIL_URL=$url" >"$ENV_FILE"
        echo "anvil listening on $url (pid $pid)"
        return 0
      fi
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.05
    done
    kill -TERM "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  echo "anvil did not start; see $LOG_FILE" >&2
  return 1
}

stop() {
  if [ ! -f "$PID_FILE" ]; then
    rm -f "$ENV_FILE"
    return 0
  fi
  local pid kids
  pid="$(cat "$PID_FILE")"
  kids="$(children_of "$pid")"
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 100); do  # up to 5 s
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.05
    done
  fi
  for p in $pid $kids; do  # whatever survived SIGTERM (should be nothing)
    if kill -0 "$p" 2>/dev/null; then
      echo "anvil pid $p survived SIGTERM; sending SIGKILL" >&2
      kill -KILL "$p" 2>/dev/null || true
    fi
  done
  rm -f "$PID_FILE" "$ENV_FILE"
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  *)
    echo "usage: $0 start|stop" >&2
    exit 2
    ;;
esac
