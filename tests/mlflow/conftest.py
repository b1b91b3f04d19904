"""A real `mlflow server` on LedgerML's plugins, started by `make test` (scripts/svc_mlflow.sh).

The server and the MLflow client steps run in .venv-mlflow (mlflow moves pyarrow, so it has
its own environment: docs/mlflow.md); these tests run in the main venv and drive the client
as subprocesses, then check the ledger with the main venv's `ledgerml` and by hand (RFC 9162).
Skipped, saying why, only when the server's variables are absent.

`pg_server` is a second server of its own on `ledgerml+postgresql://` (a fresh schema from the
ledger tests' `pg_url`), started and stopped by PID with the same script; skipped only when
LEDGERML_TEST_PG_URL is unset.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest

from ledgerml.config import ProjectPaths
from ledgerml.ledger.project import open_ledger
from tests.ledger.conftest import pg_url  # noqa: F401 - a fixture, a fresh schema per test

REPO = Path(__file__).resolve().parents[2]
CLIENT = Path(__file__).with_name("_client.py")
VARS = ("URL", "HOME", "DB", "ARTIFACTS", "PYTHON")


@dataclass(frozen=True)
class Server:
    """Where the throwaway server is and what it writes to."""

    url: str
    home: Path
    db: Path
    artifacts: Path
    python: str

    @property
    def uri(self) -> str:
        return f"ledgerml+sqlite:///{self.db}"

    def client_env(self) -> dict[str, str]:
        env = dict(os.environ, MLFLOW_TRACKING_URI=self.url, PYTHONUNBUFFERED="1")
        # a refusal is an answer, not a reason to retry for minutes
        env["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] = "0"
        env.pop("LEDGERML_HOME", None)
        return env

    def client(self, *args: str, timeout: float = 120) -> dict[str, Any]:
        """One step of the real MLflow client (tests/mlflow/_client.py) in .venv-mlflow."""
        (out,) = self.client_steps(list(args), timeout=timeout)
        return out

    def client_steps(self, *steps: list[str], timeout: float = 180) -> list[dict[str, Any]]:
        """Several client steps in one .venv-mlflow process, in order."""
        args = [a for s in steps for a in (*s, "--")][:-1]
        done = subprocess.run(
            [self.python, str(CLIENT), *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=self.client_env(),
            check=False,
        )
        assert done.returncode == 0, done.stderr[-3000:]
        return json.loads(done.stdout.strip().splitlines()[-1])

    def ledgerml(self, *args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
        """The main venv's `ledgerml --home <the server's project> ARGS`."""
        env = dict(os.environ, COLUMNS="200")
        env.pop("LEDGERML_HOME", None)
        return subprocess.run(
            [sys.executable, "-m", "ledgerml.cli.main", "--home", str(self.home), *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=env,
            check=False,
        )

    def entries(self, *types: str) -> list[tuple[int, dict[str, Any]]]:
        with open_ledger(ProjectPaths(self.home), read_only=True) as ledger:
            return list(ledger.entries_of_type(*types))

    def size(self) -> int:
        with open_ledger(ProjectPaths(self.home), read_only=True) as ledger:
            return ledger.size()


@pytest.fixture(scope="session")
def server() -> Server:
    missing = [
        f"LEDGERML_TEST_MLFLOW_{v}" for v in VARS if not os.environ.get(f"LEDGERML_TEST_MLFLOW_{v}")
    ]
    if missing:
        pytest.skip(
            f"{missing[0]} is not set: these tests need the plugin-backed mlflow server that "
            "`make test` starts (scripts/svc_mlflow.sh, in .venv-mlflow)"
        )
    e = os.environ
    return Server(
        e["LEDGERML_TEST_MLFLOW_URL"],
        Path(e["LEDGERML_TEST_MLFLOW_HOME"]),
        Path(e["LEDGERML_TEST_MLFLOW_DB"]),
        Path(e["LEDGERML_TEST_MLFLOW_ARTIFACTS"]),
        e["LEDGERML_TEST_MLFLOW_PYTHON"],
    )


@dataclass(frozen=True)
class Trained:
    """What the unmodified example script left behind."""

    run_id: str
    model_name: str
    version: str
    model_id: str
    cid: str
    data_cid: str
    first_index: int


@pytest.fixture(scope="session")
def trained(server: Server) -> Trained:
    """examples/mlflow_train.py, unchanged, against the server (once per session)."""
    tag = uuid.uuid4().hex[:8]
    first = server.size()
    done = subprocess.run(
        [
            server.python,
            str(REPO / "examples" / "mlflow_train.py"),
            "--experiment",
            f"card-fraud-{tag}",
            "--model-name",
            f"fraud-xgb-{tag}",
            # a seed of its own: the same data and seed give the same model bytes, one CID
            "--seed",
            str(int(tag, 16) % 100_000),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env=server.client_env(),
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    versions = [
        b
        for _, e in server.entries("mlflow.model_version")
        if (b := e["body"])["name"] == f"fraud-xgb-{tag}"
    ]
    assert len(versions) == 1, versions
    data = [
        e["body"]["cid"]
        for _, e in server.entries("mlflow.artifact_stored")
        if e["body"]["path"]
        == f"{_experiment_of(server, out['run_id'])}/{out['run_id']}/artifacts/data/train.csv"
    ]
    assert data, "the training data artifact is not recorded"
    return Trained(
        out["run_id"],
        f"fraud-xgb-{tag}",
        str(out["registered_version"]),
        out["model_id"],
        versions[0]["cid"],
        data[0],
        first,
    )


@dataclass(frozen=True)
class PgServer(Server):
    """A server whose backend store is `ledgerml+postgresql://…` (no password in the URI:
    libpq reads PGPASSWORD, set for this test)."""

    backend: str = ""
    sql_url: str = ""  # the schema's postgresql:// URL with its password, for direct edits
    password: str = ""

    @property
    def uri(self) -> str:
        return self.backend


@pytest.fixture
def pg_server(
    pg_url: str,  # noqa: F811 - the fixture imported above
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[PgServer]:
    """`mlflow server --backend-store-uri ledgerml+postgresql://…` on a fresh schema, its own
    LedgerML project and artifacts (scripts/svc_mlflow.sh with RUN_DIR and MLFLOW_BACKEND)."""
    parts = urlsplit(pg_url)
    password = parts.password or ""
    netloc = parts.netloc.rpartition("@")[2]
    if parts.username:
        netloc = f"{parts.username}@{netloc}"
    backend = "ledgerml+" + urlunsplit(parts._replace(netloc=netloc))
    monkeypatch.setenv("PGPASSWORD", password)  # the server, the CLI: libpq reads it
    run_dir = tmp_path / "run"
    env = dict(os.environ, RUN_DIR=str(run_dir), MLFLOW_BACKEND=backend)
    script = str(REPO / "scripts" / "svc_mlflow.sh")
    started = subprocess.run(
        [script, "start"], capture_output=True, text=True, timeout=120, env=env, check=False
    )
    try:
        log = run_dir / "mlflow.log"
        assert started.returncode == 0, started.stderr + (
            log.read_text()[-3000:] if log.exists() else ""
        )
        found = dict(
            line.split("=", 1)
            for line in (run_dir / "mlflow.env").read_text().splitlines()
            if "=" in line
        )
        yield PgServer(
            found["LEDGERML_TEST_MLFLOW_URL"],
            Path(found["LEDGERML_TEST_MLFLOW_HOME"]),
            Path(found["LEDGERML_TEST_MLFLOW_DB"]),
            Path(found["LEDGERML_TEST_MLFLOW_ARTIFACTS"]),
            found["LEDGERML_TEST_MLFLOW_PYTHON"],
            backend=backend,
            sql_url=pg_url,
            password=password,
        )
    finally:  # by the PID the script recorded, before pg_url drops the schema
        subprocess.run([script, "stop"], capture_output=True, timeout=60, env=env, check=False)


def _experiment_of(server: Server, run_id: str) -> str:
    for _, e in server.entries("mlflow.run_created"):
        if e["body"]["run_id"] == run_id:
            return str(e["body"]["experiment_id"])
    raise AssertionError(f"run {run_id} has no mlflow.run_created entry")


def ok(done: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    return done


Check = Callable[[subprocess.CompletedProcess[str]], subprocess.CompletedProcess[str]]
