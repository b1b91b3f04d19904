"""The database stopped under load (issue 12): `ledgerml serve --workers 2` on a PostgreSQL
cluster of the test's own, which is shut down (fast shutdown: every connection dropped)
while clients keep sending decisions, and started again on the same folder and port.

Every answer is 200 or 503 with Retry-After (no 500, no request hangs), the service
recovers by itself once the database is back, and every acknowledged decision is in the
log at its index afterwards (`verify` passes). Real PostgreSQL (Debian's binaries, via
scripts/svc_postgres.sh pause/resume), real uvicorn worker processes, real HTTP.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from ledgerml.crypto.api_keys import read_api_keys
from tests.conftest import run_cli
from tests.ledger.conftest import NO_PG, PG_URL
from tests.serving.conftest import Trained, copy_project, serve_workers
from tests.serving.test_service import record

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "svc_postgres.sh"
OUTAGE_S = 4.0


@pytest.fixture
def own_cluster(tmp_path: Path) -> Iterator[tuple[dict[str, str], str]]:
    """A PostgreSQL cluster for this test alone (stopping the suite's would disturb others)."""
    if not PG_URL:
        pytest.skip(NO_PG)
    env = {**os.environ, "RUN_DIR": str(tmp_path / "pg")}
    started = subprocess.run([str(SCRIPT), "start"], env=env, capture_output=True, text=True)
    assert started.returncode == 0, started.stdout + started.stderr
    url = (tmp_path / "pg" / "postgres.env").read_text().strip().split("=", 1)[1]
    try:
        yield env, url
    finally:
        subprocess.run([str(SCRIPT), "stop"], env=env, capture_output=True)


def test_database_stopped_under_load_503_then_recovery_and_nothing_acknowledged_lost(
    trained: Trained, tmp_path: Path, own_cluster: tuple[dict[str, str], str]
) -> None:
    env_pg, url = own_cluster
    paths = copy_project(trained, tmp_path / "proj")
    r = run_cli(paths.home, "ledger", "migrate", "--to", url)
    assert r.returncode == 0, r.stderr
    paths.config_toml.write_text(paths.config_toml.read_text() + f'\n[ledger]\nurl = "{url}"\n')
    key = read_api_keys(paths.keys)["scorer"]
    log_path = tmp_path / "serve.log"
    answers: list[tuple[float, int, float]] = []  # (sent at, status, seconds)
    made: list[dict] = []
    failures: list[BaseException] = []
    lock = threading.Lock()
    stop = threading.Event()

    def client(k: int) -> None:
        try:
            with httpx.Client(
                base_url=base, headers={"Authorization": f"Bearer {key}"}, timeout=30
            ) as c:
                i = 0
                while not stop.is_set():
                    t0 = time.monotonic()
                    resp = c.post("/v1/score", json={"features": record(k * 10_000 + i)})
                    took = time.monotonic() - t0
                    with lock:
                        answers.append((t0, resp.status_code, took))
                        if resp.status_code == 200:
                            made.append(resp.json())
                        elif resp.status_code == 503:
                            assert resp.headers.get("retry-after"), resp.headers
                    if resp.status_code == 503:
                        time.sleep(0.05)  # a client honouring Retry-After would wait longer
                    i += 1
        except BaseException as exc:  # a hang (timeout) or a bad answer fails the test
            failures.append(exc)

    with serve_workers(paths.home, log_path) as base:
        try:
            threads = [threading.Thread(target=client, args=(k,)) for k in range(6)]
            for t in threads:
                t.start()
            time.sleep(2.0)
            down = subprocess.run(
                [str(SCRIPT), "pause"], env=env_pg, capture_output=True, text=True
            )
            assert down.returncode == 0, down.stdout + down.stderr
            down_at = time.monotonic()
            time.sleep(OUTAGE_S)
            resume_at = time.monotonic()  # the database may answer before `resume` returns
            up = subprocess.run([str(SCRIPT), "resume"], env=env_pg, capture_output=True, text=True)
            assert up.returncode == 0, up.stdout + up.stderr
            up_at = time.monotonic()
            time.sleep(6.0)
            stop.set()
            for t in threads:
                t.join(timeout=60)
        finally:
            stop.set()

    assert not failures, failures
    statuses = {s for _, s, _ in answers}
    assert statuses <= {200, 503}, sorted(statuses)  # never a 500
    assert max(took for _, _, took in answers) < 30  # no request hung
    during = [s for t, s, _ in answers if down_at + 0.5 < t < resume_at]
    assert during and set(during) == {503}, during[:20]
    last = [s for t, s, _ in answers if t > up_at + 3.0]
    assert last and set(last) == {200}, last[:20]  # recovered by itself: no restart
    assert any(t < down_at and s == 200 for t, s, _ in answers)

    # nothing acknowledged is missing: every 200's entry is at its index, and verify passes
    r = run_cli(paths.home, "verify", "--json")
    assert r.returncode == 0, r.stdout + r.stderr
    exported = {
        json.loads(line)["index"]: json.loads(line)["entry"]
        for line in run_cli(paths.home, "log", "export", "--jsonl").stdout.splitlines()
    }
    for d in made:
        entry = json.loads(base64.b64decode(exported[d["ledger_index"]]))
        assert entry["body"]["decision_id"] == d["decision_id"]
    assert len({d["ledger_index"] for d in made}) == len(made)
