"""A trained model promoted through the real gate (embedded EVM, ModelRegistry) in a real
project, and a real uvicorn server on a free port."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from ledgerml.chain import ContractRevert, Rule, deploy
from ledgerml.config import ProjectPaths
from ledgerml.errors import InputError
from ledgerml.ledger import init_project
from ledgerml.ledger.project import open_ledger
from ledgerml.mlops import project_chain
from ledgerml.mlops.datasets import register_dataset
from ledgerml.mlops.governance import THRESHOLD_METRIC, GovernanceService, Mirrored
from ledgerml.mlops.training import train_model
from ledgerml.serving.app import create_app
from tests.conftest import free_port, uvicorn_thread
from tests.mlops.conftest import fraud_csv

KEYS = {
    "scorer": "scorer-key-0123456789",
    "auditor": "auditor-key-0123456789",
    "admin": "admin-key-0123456789ab",
}
FEATURES = ["V1", "V2", "V3", "V4", "V5", "V6", "Amount"]
THRESHOLD = 0.02  # low, so that alerts (with reason codes) are common; submitted on chain
POLICY = "serving-test-v1"


@dataclass(frozen=True)
class Trained:
    home: Path
    model_cid: str


@pytest.fixture(scope="session")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Trained:
    """Train a tiny XGBoost model and promote it as `champion` through the gate."""
    root = tmp_path_factory.mktemp("serving")
    paths = init_project(root / "proj")
    rec = register_dataset(paths, fraud_csv(root / "fraud.csv", rows=3000), "cards", label="Class")
    result = train_model(
        paths, rec.cid, "Class", params={"num_boost_round": 20, "early_stopping_rounds": 0}
    )
    promote_through_gate(paths, result.model_cid)
    return Trained(paths.home, result.model_cid)


def promote_through_gate(
    paths: ProjectPaths,
    cid: str,
    *,
    threshold: float | None = THRESHOLD,
    alias: str = "champion",
    auprc: float = 0.9,
) -> Mirrored | None:
    """The real path: contracts deployed (idempotent), a policy, the model enrolled, metrics
    submitted by the validator (the threshold among them, as `ledgerml check` does), a risk
    approval, then `promote`. Returns None when the contract refuses (auprc below 0.5)."""
    with project_chain(paths) as chain:
        deploy(chain, chain_dir=paths.chain)
    with GovernanceService.open(paths) as gov:
        try:
            gov.gov.policy(POLICY)
        except InputError:
            gov.set_policy(POLICY, [Rule("auprc", ">=", 0.5)], ["risk_approver"], 0.25)
        gov.register(cid, POLICY)
        metrics = {"auprc": auprc} | ({THRESHOLD_METRIC: threshold} if threshold else {})
        gov.submit_metrics(cid, metrics)
        gov.approve(cid, "risk_approver")
        try:
            return gov.promote(cid, alias)
        except ContractRevert:
            return None


def copy_project(trained: Trained, dest: Path) -> ProjectPaths:
    shutil.copytree(trained.home, dest)
    return ProjectPaths(dest)


@dataclass
class Server:
    url: str
    paths: ProjectPaths

    def client(self, role: str | None = "admin", header: str = "bearer") -> httpx.Client:
        headers = {}
        if role is not None:
            key = KEYS.get(role, role)
            headers = (
                {"Authorization": f"Bearer {key}"} if header == "bearer" else {"X-API-Key": key}
            )
        return httpx.Client(base_url=self.url, headers=headers, timeout=30)

    def size(self) -> int:
        with open_ledger(self.paths) as ledger:
            return ledger.size()


_free_port = free_port  # the name the serving tests import


@contextmanager
def serve_workers(home: Path, log_path: Path, workers: int = 2) -> Iterator[str]:
    """`ledgerml serve --workers N` as its own process on a free port, waited for until
    /healthz answers (up to 120 s; its log in `log_path`); yields its base URL and
    terminates it on exit."""
    port = free_port()
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("LEDGERML_HOME", None)
    with log_path.open("w") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "ledgerml.cli.main", "--home", str(home), "serve",
             "--workers", str(workers), "--port", str(port)],
            stdout=log, stderr=subprocess.STDOUT, env=env,
        )  # fmt: skip
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                try:
                    if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                assert proc.poll() is None, log_path.read_text()[-3000:]
                time.sleep(0.5)
            yield base
        finally:
            proc.terminate()
            proc.wait(timeout=60)


@pytest.fixture
def run_server() -> Iterator[Any]:
    """Start uvicorn in a thread (real sockets, real HTTP); stop it cleanly afterwards."""
    with ExitStack() as stack:

        def start(paths: ProjectPaths, **kwargs: Any) -> Server:
            app = create_app(paths, api_keys=KEYS, **kwargs)
            return Server(stack.enter_context(uvicorn_thread(app, timeout=30)), paths)

        yield start
