#!/usr/bin/env bash
# Start or stop a throwaway IPFS node (HTTP RPC API, kubo-compatible) for the test suite.
#
#   scripts/svc_ipfs.sh start   # offline js-ipfs daemon on 127.0.0.1, free port; writes
#                               # .run/ipfs.pid and .run/ipfs.env
#                               # (LEDGERML_TEST_IPFS_API=http://127.0.0.1:PORT)
#   scripts/svc_ipfs.sh stop    # SIGTERM to the recorded PID and its children, then its repo
#
# The daemon is npm `ipfs` (js-ipfs), installed by `npm ci` in tools/ipfs: kubo's npm
# package downloads its binary at install time, which is not possible here. It runs
# --offline with no bootstrap peers, no MDNS, no preload and no routing: it talks to nobody.
# RUN_DIR overrides .run (tests use their own folder).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
RUN_DIR="${RUN_DIR:-$ROOT/.run}"
TOOLS="$ROOT/tools/ipfs"
CLI="$TOOLS/node_modules/ipfs/src/cli.js"
PID_FILE="$RUN_DIR/ipfs.pid"
ENV_FILE="$RUN_DIR/ipfs.env"
LOG_FILE="$RUN_DIR/ipfs.log"
REPO="$RUN_DIR/ipfs-repo"
PY="${PYTHON:-python3}"
export NODE_OPTIONS="--require $TOOLS/polyfill.cjs"

free_port() {
  "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

answers() {  # answers URL -> 0 when /api/v0/id returns the node's identity
  curl -sf -m 2 -X POST "$1/api/v0/id" 2>/dev/null | grep -q '"ID"'
}

configure() {  # configure PORT: loopback only, nothing that reaches out
  "$PY" - "$REPO/config" "$1" <<'PYEOF'
import json, sys
path, port = sys.argv[1], sys.argv[2]
cfg = json.load(open(path))
addrs = cfg.setdefault("Addresses", {})
addrs["API"] = f"/ip4/127.0.0.1/tcp/{port}"
addrs["Gateway"] = "/ip4/127.0.0.1/tcp/0"
addrs["RPC"] = "/ip4/127.0.0.1/tcp/0"
addrs["Swarm"] = ["/ip4/127.0.0.1/tcp/0"]
addrs["Delegates"] = []
cfg["Bootstrap"] = []
cfg.setdefault("Discovery", {}).setdefault("MDNS", {})["Enabled"] = False
cfg.setdefault("Discovery", {}).setdefault("webRTCStar", {})["Enabled"] = False
cfg.setdefault("Routing", {})["Type"] = "none"
json.dump(cfg, open(path, "w"), indent=2)
PYEOF
}

start() {
  mkdir -p "$RUN_DIR"
  if [ -f "$PID_FILE" ] && kill -0 "$(cat "$PID_FILE")" 2>/dev/null; then
    echo "ipfs already running (pid $(cat "$PID_FILE"))"
    return 0
  fi
  if [ ! -f "$CLI" ]; then
    echo "ipfs not installed: run 'npm ci' in tools/ipfs (make ipfs-test-setup)" >&2
    return 1
  fi
  local port url pid
  for _attempt in 1 2 3; do
    rm -rf "$REPO"
    IPFS_PATH="$REPO" node "$CLI" init --profile test >"$LOG_FILE" 2>&1 </dev/null
    port="$(free_port)"
    url="http://127.0.0.1:$port"
    configure "$port"
    IPFS_PATH="$REPO" node "$CLI" daemon --offline --no-enable-preload \
      >>"$LOG_FILE" 2>&1 </dev/null &
    pid=$!
    for _ in $(seq 1 300); do  # up to 30 s (a cold start takes about 3 s)
      if answers "$url"; then
        echo "$pid" >"$PID_FILE"
        echo "LEDGERML_TEST_IPFS_API=$url" >"$ENV_FILE"
        echo "ipfs listening on $url (pid $pid)"
        return 0
      fi
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    kill -TERM "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  echo "ipfs did not start; see $LOG_FILE" >&2
  return 1
}

stop() {
  if [ ! -f "$PID_FILE" ]; then
    rm -f "$ENV_FILE"
    return 0
  fi
  local pid kids
  pid="$(cat "$PID_FILE")"
  kids="$(pgrep -P "$pid" 2>/dev/null || true)"
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" $kids 2>/dev/null || true
    for _ in $(seq 1 100); do  # up to 10 s: js-ipfs closes its repo on SIGTERM
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
      kill -KILL "$pid" $kids 2>/dev/null || true
    fi
  fi
  for k in $kids; do kill -KILL "$k" 2>/dev/null || true; done
  rm -f "$PID_FILE" "$ENV_FILE"
  rm -rf "$REPO"
  echo "ipfs stopped"
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
