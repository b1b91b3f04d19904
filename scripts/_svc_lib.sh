# Shared by scripts/svc_<name>.sh: start a throwaway service on a free loopback port,
# record its PID and connection URL in RUN_DIR, and stop it by PID.
#
# A service script sets NAME, ENV_VAR (the variable tests read), TRIES and INTERVAL (how
# long to wait), and defines `answers URL` (0 once the service is up), `installed`
# (0 when its npm package is present), `launch PORT` (start it in the background, set
# `pid`) and optionally `cleanup` (after stop). Then it calls `svc_main "$@"`.

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
RUN_DIR="${RUN_DIR:-$ROOT/.run}"
PY="${PYTHON:-python3}"

svc_files() {
  PID_FILE="$RUN_DIR/$NAME.pid"
  ENV_FILE="$RUN_DIR/$NAME.env"
  LOG_FILE="$RUN_DIR/$NAME.log"
}

free_port() {
  "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

cleanup() { :; }
service_url() { echo "http://127.0.0.1:$1"; }
shown_url() { echo "$1"; }

svc_start() {
  mkdir -p "$RUN_DIR"
  if [ -f "$PID_FILE" ] && kill -0 "$(cat "$PID_FILE")" 2>/dev/null; then
    echo "$NAME already running (pid $(cat "$PID_FILE"))"
    return 0
  fi
  installed || return 1
  local port url
  for _attempt in 1 2 3; do
    port="$(free_port)"
    url="$(service_url "$port")"
    launch "$port"
    for _ in $(seq 1 "$TRIES"); do
      if answers "$url"; then
        echo "$pid" >"$PID_FILE"
        (umask 077 && echo "$ENV_VAR=$url" >"$ENV_FILE")
        echo "$NAME listening on $(shown_url "$url") (pid $pid)"
        return 0
      fi
      kill -0 "$pid" 2>/dev/null || break
      sleep "$INTERVAL"
    done
    kill -TERM "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  echo "$NAME did not start; see $LOG_FILE" >&2
  return 1
}

svc_stop() {  # SIGTERM to the recorded PID and its children, SIGKILL to survivors
  if [ ! -f "$PID_FILE" ]; then
    rm -f "$ENV_FILE"
    return 0
  fi
  local pid kids
  pid="$(cat "$PID_FILE")"
  kids="$(pgrep -P "$pid" 2>/dev/null || true)"
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" $kids 2>/dev/null || true
    for _ in $(seq 1 100); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
  fi
  for p in $pid $kids; do
    if kill -0 "$p" 2>/dev/null; then
      echo "$NAME pid $p survived SIGTERM; sending SIGKILL" >&2
      kill -KILL "$p" 2>/dev/null || true
    fi
  done
  rm -f "$PID_FILE" "$ENV_FILE"
  cleanup
  echo "$NAME stopped"
}

svc_main() {
  svc_files
  case "${1:-}" in
    start) svc_start ;;
    stop) svc_stop ;;
    *)
      echo "usage: $0 start|stop" >&2
      exit 2
      ;;
  esac
}
