"""`ledgerml+postgresql://`: the same store plugins on a PostgreSQL MLflow database (issue 16).

Real parts only: `mlflow server --backend-store-uri ledgerml+postgresql://…` (a fresh schema
on the test cluster, scripts/svc_mlflow.sh, stopped by PID), the real MLflow client over HTTP,
`ledgerml mlflow verify` reading PostgreSQL with psycopg, and a direct UPDATE in the database.
"""

from __future__ import annotations

import pytest

from ledgerml.errors import InputError
from ledgerml.mlflow_plugin.records import TYPES
from ledgerml.mlflow_plugin.uri import libpq_url, sql_uri
from tests.mlflow.conftest import PgServer, ok


def test_postgres_store_records_each_change_and_verify_finds_edits(pg_server: PgServer) -> None:
    import psycopg

    server = pg_server
    out = server.client("track", "pg-fraud", "pg-fraud-xgb")
    run = out["run_id"]
    kinds = [e["type"] for _, e in server.entries(*TYPES)]
    # one entry per change: the experiment, the run, log_params (one batch), log_metrics (one
    # batch), three log_metric calls, set_tag, the run's end, the registered model, the version
    assert kinds == [
        "mlflow.experiment",
        "mlflow.run_created",
        *["mlflow.batch_logged"] * 6,
        "mlflow.run_updated",
        "mlflow.registered_model",
        "mlflow.model_version",
    ], kinds
    batches = [e["body"] for _, e in server.entries("mlflow.batch_logged")]
    assert all(b["run_id"] == run for b in batches)
    assert {k for b in batches for k in b.get("params", {})} == {"max_depth", "eta"}
    points = {}
    for b in batches:
        for key, (n, _) in b.get("metrics", {}).items():
            points[key] = points.get(key, 0) + n
    assert points == {"auprc": 1, "auc": 1, "loss": 3}
    ((_, version),) = server.entries("mlflow.model_version")
    assert version["body"]["name"] == "pg-fraud-xgb" and version["body"]["run_id"] == run

    ok(server.ledgerml("verify"))
    clean = ok(server.ledgerml("mlflow", "verify", "--uri", server.uri))
    assert "OK: 1 run(s), 1 model version(s), 11 mlflow entries" in clean.stdout, clean.stdout

    # MLflow's own tables in the schema, edited behind the server's back
    with psycopg.connect(server.sql_url, autocommit=True) as db:
        edited = db.execute(
            "UPDATE metrics SET value = 0.999 WHERE run_uuid = %s AND key = 'auprc'", (run,)
        ).rowcount
        assert edited == 1
        db.execute("UPDATE tags SET value = 'risk-ok' WHERE run_uuid = %s AND key = 'team'", (run,))
    done = server.ledgerml("mlflow", "verify", "--uri", server.uri)
    assert done.returncode == 1, done.stdout + done.stderr
    assert f"changed: {run} metrics.auprc: points differ" in done.stderr, done.stderr
    assert f"changed: {run} tags.team: value differs" in done.stderr, done.stderr
    assert server.password not in done.stdout + done.stderr

    # a URI with a (wrong) password: exit 2 naming the field, the password shown as ***
    wrong = server.uri.replace("ledgerml@", "ledgerml:not-the-pw-4711@", 1)
    bad = server.ledgerml("mlflow", "verify", "--uri", wrong)
    assert bad.returncode == 2 and "uri" in bad.stderr, bad.stdout + bad.stderr
    assert "not-the-pw-4711" not in bad.stdout + bad.stderr and "***@" in bad.stderr


def test_store_uris_map_to_sqlalchemy_and_libpq_urls() -> None:
    """No server: the scheme -> URL mapping, and errors that name the field, not the password."""
    pg = "ledgerml+postgresql://u@db.example:5433/mlflow?options=-csearch_path%3Ds"
    assert sql_uri(pg) == "postgresql+psycopg://u@db.example:5433/mlflow?options=-csearch_path%3Ds"
    assert sql_uri("ledgerml+sqlite:////srv/m.db") == "sqlite:////srv/m.db"
    assert libpq_url(pg) == "postgresql://u@db.example:5433/mlflow?options=-csearch_path%3Ds"
    assert libpq_url("postgresql+psycopg://u@h/d") == "postgresql://u@h/d"
    for uri in ("ledgerml+mysql://u:s3cret@h/d", "postgresql://u:s3cret@h/d"):
        with pytest.raises(InputError) as err:
            sql_uri(uri)
        assert err.value.field == "uri" and "s3cret" not in str(err.value), str(err.value)
    with pytest.raises(InputError) as err:
        libpq_url("sqlite:////x:s3cret@y")
    assert err.value.field == "uri"
