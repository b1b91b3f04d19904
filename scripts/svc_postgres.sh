#!/usr/bin/env bash
# Start or stop a throwaway PostgreSQL cluster for the test suite.
#
#   scripts/svc_postgres.sh start   # initdb in a temporary folder, postgres on 127.0.0.1 and a
#                                   # free port; writes .run/postgres.pid and .run/postgres.env
#                                   # (LEDGERML_TEST_PG_URL=postgresql://ledgerml:…@127.0.0.1:PORT/postgres, 0600)
#   scripts/svc_postgres.sh stop    # SIGTERM to the recorded postmaster PID, then the folder goes
#   scripts/svc_postgres.sh pause   # fast shutdown (SIGINT) of the postmaster; folder and port kept
#   scripts/svc_postgres.sh resume  # the same cluster again, on the same port (an outage, in tests)
#
# Debian's `postgresql` package (mk/postgres.mk installs it). initdb and postgres refuse to
# run as root: as root they run as the package's `postgres` user (setpriv execs, so the
# recorded PID is the postmaster's own). The password is random per start and only ever
# printed masked. RUN_DIR overrides .run (tests use their own folder).
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/_svc_lib.sh"

NAME=postgres
ENV_VAR=LEDGERML_TEST_PG_URL
TRIES=300     # x INTERVAL: up to 30 s (initdb is separate)
INTERVAL=0.1
PG_BIN="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)"
DIR_FILE="$RUN_DIR/postgres.dir"
PASSWORD="$(head -c 18 /dev/urandom | base64 | tr '+/' 'xy')"

as_owner() {  # run a PostgreSQL binary as the cluster's owner (never root)
  if [ "$(id -u)" = 0 ]; then
    setpriv --reuid=postgres --regid=postgres --init-groups --inh-caps=-all -- "$@"
  else
    "$@"
  fi
}

service_url() { echo "postgresql://ledgerml:$PASSWORD@127.0.0.1:$1/postgres"; }
shown_url() { echo "$1" | sed -E 's#(://[^:/@]+:)[^@]*@#\1***@#'; }

answers() {  # answers URL -> 0 once the server accepts connections
  local port
  port="$(echo "$1" | sed -E 's#.*@127\.0\.0\.1:([0-9]+)/.*#\1#')"
  "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$port" -t 1 2>/dev/null
}

installed() {
  [ -n "$PG_BIN" ] && [ -x "$PG_BIN/initdb" ] && return 0
  echo "PostgreSQL not installed: apt-get install -y postgresql (make postgres-test-setup)" >&2
  return 1
}

launch() {  # a fresh cluster per attempt, in a temporary folder the owner may write
  local dir
  dir="$(mktemp -d "${TMPDIR:-/tmp}/ledgerml-pg.XXXXXX")"
  echo "$dir" >"$DIR_FILE"
  chmod 0700 "$dir"
  [ "$(id -u)" = 0 ] && chown postgres:postgres "$dir"
  (umask 077 && printf '%s\n' "$PASSWORD" >"$dir/pwfile")
  [ "$(id -u)" = 0 ] && chown postgres:postgres "$dir/pwfile"
  as_owner "$PG_BIN/initdb" -D "$dir/data" -U ledgerml --pwfile="$dir/pwfile" \
    --auth-host=scram-sha-256 --auth-local=peer -E UTF8 --no-instructions >"$LOG_FILE" 2>&1
  rm -f "$dir/pwfile"
  postmaster "$dir" "$1"
}

postmaster() {  # postmaster DIR PORT: run the cluster in DIR in the background, set `pid`
  local args=("$PG_BIN/postgres" -D "$1/data" -h 127.0.0.1 -p "$2" -k "$1"
    -c max_connections=200 -c logging_collector=off)
  if [ "$(id -u)" = 0 ]; then  # no shell function here: $! must be the postmaster itself
    setpriv --reuid=postgres --regid=postgres --init-groups --inh-caps=-all -- "${args[@]}" \
      >>"$LOG_FILE" 2>&1 </dev/null &
  else
    "${args[@]}" >>"$LOG_FILE" 2>&1 </dev/null &
  fi
  pid=$!
}

pg_pause() {  # fast shutdown: clients are disconnected, committed data stays in the folder
  [ -f "$PID_FILE" ] || { echo "postgres is not running (no $PID_FILE)" >&2; return 1; }
  local p
  p="$(cat "$PID_FILE")"
  kill -INT "$p" 2>/dev/null || true
  for _ in $(seq 1 300); do
    kill -0 "$p" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$p" 2>/dev/null; then
    echo "postgres pid $p did not shut down" >&2
    return 1
  fi
  rm -f "$PID_FILE"
  echo "postgres paused (pid $p gone; the cluster's folder is kept)"
}

pg_resume() {  # the paused cluster again, same folder and port (the env file still holds them)
  [ -f "$DIR_FILE" ] && [ -f "$ENV_FILE" ] || { echo "no paused cluster in $RUN_DIR" >&2; return 1; }
  local url port
  url="$(sed -n "s/^$ENV_VAR=//p" "$ENV_FILE")"
  port="$(echo "$url" | sed -E 's#.*@127\.0\.0\.1:([0-9]+)/.*#\1#')"
  postmaster "$(cat "$DIR_FILE")" "$port"
  for _ in $(seq 1 "$TRIES"); do
    if answers "$url"; then
      echo "$pid" >"$PID_FILE"
      echo "postgres resumed on port $port (pid $pid)"
      return 0
    fi
    kill -0 "$pid" 2>/dev/null || break
    sleep "$INTERVAL"
  done
  echo "postgres did not come back; see $LOG_FILE" >&2
  return 1
}

cleanup() {  # the cluster's folder, once its postmaster is gone
  if [ -f "$DIR_FILE" ]; then
    local dir
    dir="$(cat "$DIR_FILE")"
    case "$dir" in
      */ledgerml-pg.*) rm -rf "$dir" ;;
    esac
    rm -f "$DIR_FILE"
  fi
}

case "${1:-}" in
  pause) svc_files; pg_pause ;;
  resume) svc_files; pg_resume ;;
  *) svc_main "$@" ;;
esac
