"""Sync mode survives SIGKILL under load; async mode pushes back instead of growing memory."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from ledgerml.ledger.log import PreparedEntry
from ledgerml.ledger.project import log_verifiers, open_ledger
from ledgerml.serving.decisions import Backpressure, DecisionLogger
from tests.serving.conftest import KEYS, Trained, _free_port, copy_project


def test_sigkill_under_load_loses_no_acknowledged_decision(
    trained: Trained, tmp_path: Path, run_server: Any
) -> None:
    paths = copy_project(trained, tmp_path / "proj")
    port = _free_port()
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    env.pop("LEDGERML_HOME", None)
    with paths.config_toml.open("a") as fh:
        fh.write(f'\n[serving.api_keys]\nscorer = "{KEYS["scorer"]}"\n')
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "ledgerml.cli.main",
            "--home",
            str(paths.home),
            "serve",
            "--port",
            str(port),
            "--mode",
            "sync",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        assert proc.poll() is None, "serve exited"
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                break
        except httpx.TransportError:
            pass
        assert time.monotonic() < deadline
        time.sleep(0.1)

    acked: list[str] = []
    stop = threading.Event()
    rec = {"V1": -1.5, "V2": 0.3, "V3": 1.7, "V4": 0.0, "V5": 0.1, "V6": -0.2, "Amount": 12.0}
    # One request before the load: the kill must land mid-load, not during warm-up
    # (the first score loads the model), however slow this machine is today.
    scorer = {"X-API-Key": KEYS["scorer"]}
    warm = httpx.post(f"{url}/v1/score", json={"records": [rec]}, headers=scorer, timeout=60)
    assert warm.status_code == 200, warm.text
    acked.extend(d["decision_id"] for d in warm.json()["decisions"])

    def load() -> None:
        with httpx.Client(base_url=url, headers={"X-API-Key": KEYS["scorer"]}, timeout=5) as c:
            while not stop.is_set():
                try:
                    r = c.post("/v1/score", json={"records": [rec, rec]})
                except httpx.TransportError:
                    return
                if r.status_code == 200:
                    acked.extend(d["decision_id"] for d in r.json()["decisions"])

    threads = [threading.Thread(target=load) for _ in range(4)]
    for t in threads:
        t.start()
    time.sleep(1.5)
    proc.send_signal(signal.SIGKILL)  # mid-load: no shutdown hooks, no flush
    proc.wait(timeout=10)
    stop.set()
    for t in threads:
        t.join(timeout=10)
    assert len(acked) > 20, "too little load to mean anything"

    with open_ledger(paths) as ledger:
        report = ledger.verify(log_verifiers(paths))
        assert report.ok, report.to_json()
        logged = {
            orjson.loads(e)["body"]["decision_id"]
            for _, e in ledger.entries()
            if b'"decision.recorded"' in e
        }
    assert set(acked) <= logged

    # After a restart the service finds an acknowledged decision again.
    srv = run_server(paths, mode="sync")
    with srv.client("auditor") as c:
        assert c.get(f"/v1/decisions/{acked[-1]}").status_code == 200


class _SlowLedger:
    """Stands in for the ledger: commits block until released."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.size = 0

    def commit(self, entries: list[PreparedEntry]) -> int:
        self.release.wait(10)
        first, self.size = self.size, self.size + len(entries)
        return first


class _Index:
    def __init__(self) -> None:
        self.map: dict[str, int] = {}

    def add(self, pairs: list[tuple[str, int]], scanned: int | None = None) -> None:
        self.map.update(pairs)


def test_async_queue_is_bounded() -> None:
    ledger, index = _SlowLedger(), _Index()
    logger = DecisionLogger(ledger, index, "async", max_pending=3)  # type: ignore[arg-type]
    entry: PreparedEntry = (b"{}", b"\x00" * 32)
    logger.submit([entry], ["d0"])  # taken by the drain thread, blocked in commit
    time.sleep(0.2)
    for i in range(1, 4):
        logger.submit([entry], [f"d{i}"])
    with pytest.raises(Backpressure):
        logger.submit([entry], ["d4"])
    assert logger.depth == 4
    ledger.release.set()
    logger.close()
    assert index.map == {"d0": 0, "d1": 1, "d2": 2, "d3": 3}
