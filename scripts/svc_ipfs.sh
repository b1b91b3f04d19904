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
. "$(dirname "${BASH_SOURCE[0]}")/_svc_lib.sh"

NAME=ipfs
ENV_VAR=LEDGERML_TEST_IPFS_API
TRIES=300     # x INTERVAL: up to 30 s (a cold start takes about 3 s)
INTERVAL=0.1
TOOLS="$ROOT/tools/ipfs"
CLI="$TOOLS/node_modules/ipfs/src/cli.js"
REPO="$RUN_DIR/ipfs-repo"
export NODE_OPTIONS="--require $TOOLS/polyfill.cjs"

answers() {  # answers URL -> 0 when /api/v0/id returns the node's identity
  curl -sf -m 2 -X POST "$1/api/v0/id" 2>/dev/null | grep -q '"ID"'
}

installed() {
  [ -f "$CLI" ] && return 0
  echo "ipfs not installed: run 'npm ci' in tools/ipfs (make ipfs-test-setup)" >&2
  return 1
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

launch() {  # a fresh repo each attempt, then the daemon
  rm -rf "$REPO"
  IPFS_PATH="$REPO" node "$CLI" init --profile test >"$LOG_FILE" 2>&1 </dev/null
  configure "$1"
  IPFS_PATH="$REPO" node "$CLI" daemon --offline --no-enable-preload \
    >>"$LOG_FILE" 2>&1 </dev/null &
  pid=$!
}

cleanup() { rm -rf "$REPO"; }

svc_main "$@"
