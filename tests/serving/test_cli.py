"""`ledgerml score` and `ledgerml serve` as a user runs them (fresh processes)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from ledgerml.ledger.project import open_ledger
from ledgerml.serving.scoring import commit_input
from tests.conftest import run_cli
from tests.mlops.conftest import fraud_csv
from tests.serving.conftest import FEATURES, KEYS, Trained, _free_port, copy_project


def test_score_file_then_serve_finds_the_decisions(trained: Trained, tmp_path: Path) -> None:
    paths = copy_project(trained, tmp_path / "proj")
    data = fraud_csv(tmp_path / "later.csv", rows=1500, seed=5)  # extra columns are ignored
    with open_ledger(paths) as ledger:
        before = ledger.size()

    # A NaN cell: exit 2 naming the column and row, nothing appended.
    bad = tmp_path / "bad.csv"
    lines = data.read_text().splitlines()
    cells = lines[3].split(",")
    cells[2] = "nan"
    bad.write_text("\n".join([*lines[:3], ",".join(cells), *lines[4:]]) + "\n")
    proc = run_cli(paths.home, "score", str(bad))
    assert proc.returncode == 2, proc.stderr
    assert "V2" in proc.stderr and "row 2" in proc.stderr
    with open_ledger(paths) as ledger:
        assert ledger.size() == before

    out = tmp_path / "decisions.jsonl"
    proc = run_cli(paths.home, "score", str(data), "-o", str(out), "--json")
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    assert summary["decisions"] == 1500 and summary["first_index"] == before
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 1500 and rows[-1]["ledger_index"] == before + 1499
    with open_ledger(paths) as ledger:
        assert ledger.size() == before + 1500
    first_line = lines[1].split(",")
    header = lines[0].split(",")
    rec = {f: float(first_line[header.index(f)]) for f in FEATURES}
    assert commit_input(rec, bytes.fromhex(rows[0]["salt"]))[1] == rows[0]["input_commitment"]

    # `ledgerml serve` with keys from config.toml finds decisions recorded by `score`.
    with paths.config_toml.open("a") as fh:
        fh.write("\n[serving.api_keys]\n")
        fh.writelines(f'{role} = "{key}"\n' for role, key in KEYS.items())
    port = _free_port()
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    env.pop("LEDGERML_HOME", None)
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "ledgerml.cli.main",
            "--home",
            str(paths.home),
            "serve",
            "--port",
            str(port),
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 90  # start-up reads the gate (web3, py-evm imports)
        while True:
            assert server.poll() is None, server.stdout.read() if server.stdout else ""
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "serve did not start"
            time.sleep(0.1)
        headers = {"X-API-Key": KEYS["auditor"]}
        got = httpx.get(f"{url}/v1/decisions/{rows[7]['decision_id']}", headers=headers)
        assert got.status_code == 200, got.text
        assert got.json()["index"] == rows[7]["ledger_index"]
        assert httpx.post(f"{url}/v1/score", headers=headers, json={}).status_code == 403
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)
