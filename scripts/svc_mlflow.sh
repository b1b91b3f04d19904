#!/usr/bin/env bash
# Start or stop a throwaway `mlflow server` backed by LedgerML's plugins, for the test suite.
#
#   scripts/svc_mlflow.sh start   # 127.0.0.1 on a free port; a fresh LedgerML project with its
#                                 # embedded chain deployed; writes .run/mlflow.pid and .run/mlflow.env
#                                 # (LEDGERML_TEST_MLFLOW_URL, _HOME, _DB, _BACKEND, _ARTIFACTS, _PYTHON)
#   scripts/svc_mlflow.sh stop    # SIGTERM to the recorded PID (the server) and its workers
#
# The server runs in .venv-mlflow (mk/mlflow.mk; docs/mlflow.md says why it is its own
# environment): --backend-store-uri ledgerml+sqlite:///… --artifacts-destination ledgerml+file://…
# RUN_DIR overrides .run (tests use their own folder). MLFLOW_BACKEND overrides the backend
# store, e.g. ledgerml+postgresql://USER@127.0.0.1:PORT/DB?options=-csearch_path%3DSCHEMA with
# the password in PGPASSWORD (libpq reads it; the URI, its command line and the log hold none).
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/_svc_lib.sh"

NAME=mlflow
ENV_VAR=LEDGERML_TEST_MLFLOW_URL
TRIES=600     # x INTERVAL: up to 60 s (a cold start takes about 10 s on 2 busy cores)
INTERVAL=0.1
MLFLOW_PY="$ROOT/.venv-mlflow/bin/python"
DATA="$RUN_DIR/mlflow"
BACKEND="${MLFLOW_BACKEND:-ledgerml+sqlite:///$DATA/mlflow.db}"

answers() {  # answers URL -> 0 when the tracking API lists experiments
  curl -sf -m 2 "$1/api/2.0/mlflow/experiments/search?max_results=1" 2>/dev/null |
    grep -q '"experiments"'
}

installed() {
  [ -x "$ROOT/.venv-mlflow/bin/mlflow" ] && return 0
  echo "mlflow not installed: run 'make mlflow-venv' (.venv-mlflow)" >&2
  return 1
}

launch() {  # a fresh project, chain and database each attempt, then the server
  rm -rf "$DATA"
  mkdir -p "$DATA/artifacts"
  export LEDGERML_HOME="$DATA/project"
  "$MLFLOW_PY" -m ledgerml.cli.main init >"$LOG_FILE" 2>&1 </dev/null
  "$MLFLOW_PY" -m ledgerml.cli.main chain deploy >>"$LOG_FILE" 2>&1 </dev/null
  MLFLOW_TRACKING_URI= "$ROOT/.venv-mlflow/bin/mlflow" server \
    --backend-store-uri "$BACKEND" \
    --artifacts-destination "ledgerml+file://$DATA/artifacts" \
    --host 127.0.0.1 --port "$1" --workers 1 >>"$LOG_FILE" 2>&1 </dev/null &
  pid=$!
}

svc_main "$@"
if [ "${1:-}" = start ] && [ -f "$ENV_FILE" ] && ! grep -q _HOME= "$ENV_FILE"; then
  {
    echo "LEDGERML_TEST_MLFLOW_HOME=$DATA/project"
    echo "LEDGERML_TEST_MLFLOW_DB=$DATA/mlflow.db"
    echo "LEDGERML_TEST_MLFLOW_BACKEND='$BACKEND'"  # quoted: a URI may hold & and ?
    echo "LEDGERML_TEST_MLFLOW_ARTIFACTS=$DATA/artifacts"
    echo "LEDGERML_TEST_MLFLOW_PYTHON=$MLFLOW_PY"
  } >>"$ENV_FILE"
fi
