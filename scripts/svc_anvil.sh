#!/usr/bin/env bash
# Start or stop a throwaway anvil node for the test suite.
#
#   scripts/svc_anvil.sh start   # 127.0.0.1 on a free port; writes .run/anvil.pid and
#                                # .run/anvil.env (LEDGERML_TEST_ANVIL_URL=http://127.0.0.1:PORT)
#   scripts/svc_anvil.sh stop    # SIGTERM to the recorded PID (the npm node wrapper, which
#                                # forwards it to the anvil binary) and its child
#
# anvil comes from npm (@foundry-rs/anvil, binary inside the registry tarball) via
# `npm ci` in tools/solc; RUN_DIR overrides .run (tests use their own folder).
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/_svc_lib.sh"

NAME=anvil
ENV_VAR=LEDGERML_TEST_ANVIL_URL
TRIES=200     # x INTERVAL: up to 10 s
INTERVAL=0.05
ANVIL="$ROOT/tools/solc/node_modules/.bin/anvil"

answers() {  # answers URL -> 0 when eth_chainId returns a result
  curl -sf -m 1 -H 'Content-Type: application/json' \
    -d '{"jsonrpc":"2.0","id":1,"method":"eth_chainId","params":[]}' "$1" 2>/dev/null |
    grep -q '"result"'
}

installed() {
  [ -x "$ANVIL" ] && return 0
  echo "anvil not installed: run 'npm ci' in tools/solc (make chain-test-setup)" >&2
  return 1
}

launch() {
  "$ANVIL" --host 127.0.0.1 --port "$1" --silent >"$LOG_FILE" 2>&1 </dev/null &
  pid=$!
}

svc_main "$@"
