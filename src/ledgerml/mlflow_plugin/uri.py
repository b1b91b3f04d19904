"""The plugins' URI schemes and the database URLs behind them (no mlflow import).

    ledgerml+sqlite:////srv/mlflow.db              -> sqlite:////srv/mlflow.db
    ledgerml+postgresql://mlflow@db:5432/mlflow    -> postgresql+psycopg://mlflow@db:5432/mlflow

SQLAlchemy's plain `postgresql://` means psycopg2; LedgerML's PostgreSQL driver is psycopg 3
(extra `postgres`), which SQLAlchemy names `postgresql+psycopg`. The rest of the URI (user,
host, database, `?options=…`, `sslmode=…`) passes through unchanged; a password may sit in it
but is better left to libpq (`PGPASSWORD`, `~/.pgpass`), and is never printed (`redact_url`).
"""

from __future__ import annotations

from ledgerml.errors import InputError
from ledgerml.ledger.postgres import redact_url

PREFIX = "ledgerml+"
#: scheme -> the SQLAlchemy URL prefix it stands for
SCHEMES = {"ledgerml+sqlite": "sqlite", "ledgerml+postgresql": "postgresql+psycopg"}


def sql_uri(store_uri: str) -> str:
    """The SQLAlchemy URL MLflow's SqlAlchemyStore opens for a `ledgerml+…` store URI."""
    scheme, sep, rest = store_uri.partition("://")
    target = SCHEMES.get(scheme)
    if not sep or target is None:
        raise InputError(
            f"{redact_url(store_uri)}: the LedgerML MLflow stores take "
            f"{' or '.join(s + '://…' for s in SCHEMES)}",
            field="uri",
        )
    if target.startswith("postgresql"):
        needs_psycopg()
    return f"{target}://{rest}"


def is_postgres(uri: str) -> bool:
    """A PostgreSQL MLflow database: `ledgerml+postgresql://`, `postgresql[+driver]://`."""
    scheme = uri.removeprefix(PREFIX).partition("://")[0]
    return scheme == "postgresql" or scheme.startswith("postgresql+")


def libpq_url(uri: str) -> str:
    """`ledgerml+postgresql://…` or `postgresql+psycopg://…` as the `postgresql://…` URL libpq
    (psycopg.connect) reads; InputError(field="uri") for anything else."""
    _, sep, rest = uri.removeprefix(PREFIX).partition("://")
    if not sep or not is_postgres(uri):
        raise InputError(f"{redact_url(uri)} is not a PostgreSQL URI", field="uri")
    return f"postgresql://{rest}"


def needs_psycopg() -> None:
    """InputError(field="uri") naming the extra when psycopg 3 is not installed."""
    try:
        import psycopg  # noqa: F401
    except ImportError:
        raise InputError(
            "ledgerml+postgresql:// needs psycopg 3: pip install 'ledgerml[mlflow,postgres]'",
            field="uri",
        ) from None
