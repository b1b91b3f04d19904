"""`ledgerml mlflow verify`: does MLflow's database still say what the ledger recorded?

    report = verify_mlflow("ledgerml+sqlite:////srv/mlflow.db", ledger)
    report = verify_mlflow("ledgerml+postgresql://mlflow@db/mlflow", ledger)  # PGPASSWORD
    for p in report.problems: print(p.run, p.field, p.detail)

The ledger is replayed into the state it implies (per run: params, tags and metric digests;
per registered model: aliases and version tags), MLflow's database is read read-only with
`sqlite3` or psycopg 3 (the same queries; no mlflow import), and every difference is a
problem naming the run (or model version) and the field: a changed, deleted or added metric
point, param or tag, a `latest_metrics` row that no longer matches the points, an alias that
moved.

Scope: runs and model versions the ledger knows; rows of a run the ledger never saw are
reported as `unrecorded` (a run created by writing the database directly).
"""

from __future__ import annotations

import sqlite3
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ledgerml.errors import InputError
from ledgerml.ledger.postgres import redact_url
from ledgerml.ledger.project import AnyLedger
from ledgerml.mlflow_plugin.records import TYPES, PointSum, add_sums, metric_sums, value_digest
from ledgerml.mlflow_plugin.uri import PREFIX, is_postgres, libpq_url, needs_psycopg


@dataclass(frozen=True)
class Problem:
    """One difference between MLflow's database and the ledger."""

    kind: str  # changed | missing | unrecorded
    run: str  # run id, or "model NAME/VERSION"
    field: str  # e.g. "metrics.auprc", "tags.team", "aliases.champion"
    detail: str

    def to_json(self) -> dict[str, str]:
        return {"kind": self.kind, "run": self.run, "field": self.field, "detail": self.detail}


@dataclass(frozen=True)
class MlflowReport:
    """What was compared and what differs."""

    runs: int
    model_versions: int
    entries: int
    problems: tuple[Problem, ...] = field(default_factory=tuple)

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "runs": self.runs,
            "model_versions": self.model_versions,
            "entries": self.entries,
            "problems": [p.to_json() for p in self.problems],
        }


def database_path(uri: str) -> Path:
    """The SQLite file of `ledgerml+sqlite:///…` or `sqlite:///…`; InputError(field="uri")."""
    rest = uri.removeprefix(PREFIX)
    if not rest.startswith("sqlite:///"):
        raise InputError(
            "must be ledgerml+sqlite:///PATH, sqlite:///PATH, ledgerml+postgresql://… or "
            "postgresql://… (the server's --backend-store-uri)",
            field="uri",
        )
    path = Path(rest.removeprefix("sqlite:///").split("?")[0])
    if not path.is_file():
        raise InputError(f"no MLflow database at {path}", field="uri")
    return path


@dataclass
class _Run:
    params: dict[str, str | None] = field(default_factory=dict)
    tags: dict[str, str | None] = field(default_factory=dict)
    metrics: dict[str, PointSum] = field(default_factory=dict)
    status: str | None = None


#: (model name, version) -> the version's tags (value digests; None: deleted)
_Versions = dict[tuple[str, str], dict[str, str | None]]
#: model name -> alias -> version (None: deleted)
_Aliases = dict[str, dict[str, str | None]]


def _replay(ledger: AnyLedger) -> tuple[dict[str, _Run], _Versions, _Aliases, int]:
    """Runs, model versions and aliases as the ledger's mlflow.* entries leave them."""
    runs: dict[str, _Run] = defaultdict(_Run)
    versions: _Versions = {}
    aliases: _Aliases = defaultdict(dict)
    count = 0
    for _, entry in ledger.entries_of_type(*TYPES):
        count += 1
        t, b = entry["type"], entry["body"]
        if t == "mlflow.run_created":
            run = runs[b["run_id"]]
            run.tags.update(b.get("tags", {}))
            run.status = b.get("status")
        elif t == "mlflow.run_updated":
            runs[b["run_id"]].status = b.get("status")
            runs[b["run_id"]].tags.update(b.get("tags", {}))
        elif t == "mlflow.batch_logged":
            run = runs[b["run_id"]]
            run.params.update(b.get("params", {}))
            run.tags.update(b.get("tags", {}))
            for key, (n, s) in b.get("metrics", {}).items():
                run.metrics[key] = add_sums(run.metrics.get(key), PointSum(n, s))
        elif t == "mlflow.tag_deleted":
            runs[b["run_id"]].tags[b["key"]] = None
        elif t == "mlflow.model_version":
            key = (b["name"], str(b["version"]))
            if b.get("deleted"):
                versions.pop(key, None)
            else:
                versions[key] = dict(b.get("tags", {}))
        elif t == "mlflow.model_version_tag":
            versions.setdefault((b["name"], str(b["version"])), {}).update(b.get("tags", {}))
        elif t in ("mlflow.alias", "mlflow.stage") and b.get("tx_hash"):
            tags = versions.setdefault((b["name"], str(b["version"])), {})
            tags["ledgerml.gate_tx"] = value_digest(b["tx_hash"])
        if t == "mlflow.alias":
            aliases[b["name"]][b["alias"]] = b.get("version") if b["action"] == "set" else None
    return runs, versions, aliases, count


def _compare(
    kind_of: str, where: str, expected: dict[str, str | None], found: dict[str, str]
) -> list[Problem]:
    out = []
    for key, digest in sorted(expected.items()):
        if digest is None:
            if key in found:
                out.append(Problem("unrecorded", where, f"{kind_of}.{key}", "deleted per ledger"))
        elif key not in found:
            out.append(Problem("missing", where, f"{kind_of}.{key}", "recorded, not in MLflow"))
        elif value_digest(found[key]) != digest:
            out.append(Problem("changed", where, f"{kind_of}.{key}", "value differs from ledger"))
    for key in sorted(set(found) - set(expected)):
        out.append(Problem("unrecorded", where, f"{kind_of}.{key}", "in MLflow, not in ledger"))
    return out


class _Db:
    """MLflow's database, read-only: SQLite through `sqlite3`, PostgreSQL through psycopg 3.

    The queries are written with `?` placeholders (SQLite's); PostgreSQL gets `%s`.
    """

    def __init__(self, uri: str) -> None:
        self._pg = is_postgres(uri)
        self._conn: Any
        #: what the driver raises for a failed query (e.g. no MLflow tables there)
        self.errors: tuple[type[Exception], ...] = (sqlite3.Error,)
        if not self._pg:
            self._conn = sqlite3.connect(f"file:{database_path(uri)}?mode=ro", uri=True)
            return
        needs_psycopg()
        import psycopg

        try:
            self._conn = psycopg.connect(libpq_url(uri), connect_timeout=10)
        except psycopg.Error as exc:
            # libpq's message names host, user and reason, never the password; the URL is
            # shown redacted
            reason = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
            raise InputError(
                f"cannot read MLflow's database at {redact_url(uri)}: {reason}", field="uri"
            ) from None
        self._conn.read_only = True  # the session's transactions are READ ONLY
        self.errors = (psycopg.Error,)

    def rows(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        if self._pg:
            sql = sql.replace("?", "%s")
        return list(self._conn.execute(sql, tuple(params)).fetchall())

    def close(self) -> None:
        self._conn.close()


def verify_mlflow(uri: str, ledger: AnyLedger) -> MlflowReport:
    """Compare MLflow's database at `uri` with the ledger; problems name run and field."""
    db = _Db(uri)
    problems: list[Problem] = []
    try:
        runs, versions, aliases, count = _replay(ledger)
        try:
            db_runs = {r for (r,) in db.rows("SELECT run_uuid FROM runs")}
        except db.errors as exc:
            raise InputError(
                f"{redact_url(uri)} holds no MLflow tables ({type(exc).__name__})", field="uri"
            ) from None
        for run_id in sorted(db_runs - set(runs)):
            problems.append(Problem("unrecorded", run_id, "run", "run not in the ledger"))
        for run_id in sorted(set(runs)):
            problems += _check_run(db, run_id, runs[run_id], run_id in db_runs)
        problems += _check_versions(db, versions, aliases)
    finally:
        db.close()
    return MlflowReport(len(runs), len(versions), count, tuple(problems))


def _check_run(db: _Db, run_id: str, run: _Run, present: bool) -> list[Problem]:
    if not present:
        return [Problem("missing", run_id, "run", "recorded, not in MLflow's database")]
    q = "SELECT key, value FROM {} WHERE run_uuid = ?"
    params = dict(db.rows(q.format("params"), (run_id,)))
    tags = dict(db.rows(q.format("tags"), (run_id,)))
    out = _compare("params", run_id, run.params, params)
    out += _compare("tags", run_id, run.tags, tags)
    rows = db.rows(
        "SELECT key, step, timestamp, is_nan, value FROM metrics WHERE run_uuid = ?", (run_id,)
    )
    found = metric_sums((k, s, t, bool(n), float(v)) for k, s, t, n, v in rows)
    for key in sorted(set(run.metrics) | set(found)):
        want, got = run.metrics.get(key), found.get(key)
        if want is None:
            out.append(Problem("unrecorded", run_id, f"metrics.{key}", "in MLflow, not in ledger"))
        elif got is None:
            out.append(Problem("missing", run_id, f"metrics.{key}", "recorded, not in MLflow"))
        elif want != got:
            out.append(
                Problem(
                    "changed",
                    run_id,
                    f"metrics.{key}",
                    f"points differ from the ledger ({got.count} in MLflow, {want.count} recorded)",
                )
            )
    out += _check_latest(db, run_id, rows)
    return out


def _check_latest(db: _Db, run_id: str, rows: list[tuple[Any, ...]]) -> list[Problem]:
    """`latest_metrics` (what MLflow's UI shows) must be the newest point of each key."""
    newest: dict[str, tuple] = {}
    for k, s, t, n, v in rows:
        cand = (s, t, 0.0 if n else v, n)
        if k not in newest or cand[:3] > newest[k][:3]:
            newest[k] = cand
    out = []
    for k, s, t, v, n in db.rows(
        "SELECT key, step, timestamp, value, is_nan FROM latest_metrics WHERE run_uuid = ?",
        (run_id,),
    ):
        want = newest.get(k)
        if want is None or (want[0], want[1], want[2], bool(want[3])) != (s, t, v, bool(n)):
            out.append(
                Problem("changed", run_id, f"metrics.{k}", "latest value differs from its points")
            )
    return out


def _check_versions(db: _Db, versions: _Versions, aliases: _Aliases) -> list[Problem]:
    """Each recorded version's tags; the aliases of a model once, after its first version."""
    out: list[Problem] = []
    checked_aliases: set[str] = set()
    for (name, version), expected in sorted(versions.items()):
        where = f"model {name}/{version}"
        tags = dict(
            db.rows(
                "SELECT key, value FROM model_version_tags WHERE name = ? AND version = ?",
                (name, int(version)),
            )
        )
        out += _compare("tags", where, expected, tags)
        if name in checked_aliases or name not in aliases:
            continue
        checked_aliases.add(name)
        found = {
            a: str(v)
            for a, v in db.rows(
                "SELECT alias, version FROM registered_model_aliases WHERE name = ?", (name,)
            )
        }
        for alias, want in sorted(aliases[name].items()):
            got = found.get(alias)
            if got != want:
                out.append(
                    Problem(
                        "changed",
                        f"model {name}",
                        f"aliases.{alias}",
                        f"MLflow says version {got}, the ledger {want}",
                    )
                )
    return out
