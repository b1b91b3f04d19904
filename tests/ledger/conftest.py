"""Fixtures for the ledger tests: a fresh PostgreSQL database per test, and `ledger_url`
parametrised over both drivers for the tests where the driver matters (storage, append,
proofs, verify, tamper).

PostgreSQL comes from `LEDGERML_TEST_PG_URL` (set by `make test` via
scripts/svc_postgres.sh); without it those tests skip, saying so.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

PG_URL = os.environ.get("LEDGERML_TEST_PG_URL", "")
NO_PG = (
    "LEDGERML_TEST_PG_URL is not set: the PostgreSQL driver tests need a server "
    "(`make test` starts one with scripts/svc_postgres.sh)"
)


def schema_url(schema: str) -> str:
    """The test server's URL with `schema` first on the search path."""
    sep = "&" if "?" in PG_URL else "?"
    return f"{PG_URL}{sep}options=-csearch_path%3D{schema}"


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A fresh, empty schema on the test server (cheaper than a database: no checkpoint
    to drop it); dropped afterwards."""
    if not PG_URL:
        pytest.skip(NO_PG)
    import psycopg

    name = "t_" + secrets.token_hex(6)
    with psycopg.connect(PG_URL, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {name}")
    yield schema_url(name)
    with psycopg.connect(PG_URL, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA IF EXISTS {name} CASCADE")


@pytest.fixture(params=["sqlite", "postgres"])
def ledger_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Where a ledger lives, once per driver: a SQLite file, or a PostgreSQL database."""
    if request.param == "sqlite":
        return str(tmp_path / "ledger.db")
    return request.getfixturevalue("pg_url")
