# ledger/ PostgreSQL driver: a throwaway cluster from Debian's `postgresql` package for the
# tests (scripts/svc_postgres.sh). `make demo` never needs it: the embedded default is SQLite.
# Installed once; skipped when any version's initdb is already there.

.PHONY: postgres-test-setup

postgres-test-setup:
	@if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then \
	  apt-get update && apt-get install -y postgresql; \
	fi

TEST_SETUP += postgres-test-setup
SERVICES   += postgres
