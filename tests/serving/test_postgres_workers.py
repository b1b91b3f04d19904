"""`ledgerml serve --workers 2` on one PostgreSQL ledger (issue 12): real uvicorn worker
processes, real HTTP, a real server. Decisions from both workers get distinct consecutive
indices and each is found by ID through either worker; when the service's database role
cannot log in (the database is unreachable for it), requests get 503 with Retry-After — no
500, no hang — and it recovers by itself once the role can log in again."""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import threading
import time
from pathlib import Path

import httpx
import pytest

from ledgerml.crypto.api_keys import read_api_keys
from tests.conftest import run_cli
from tests.ledger.conftest import PG_URL, pg_url  # noqa: F401 (a fixture)
from tests.serving.conftest import Trained, copy_project, serve_workers
from tests.serving.test_service import record


@pytest.fixture
def service_role(pg_url: str) -> tuple[str, str]:  # noqa: F811
    """A login role of its own for the service, with rights on the test's schema only."""
    import psycopg

    role, password = "svc_" + secrets.token_hex(4), secrets.token_hex(12)
    with psycopg.connect(PG_URL, autocommit=True) as conn:
        conn.execute(f"CREATE ROLE {role} LOGIN PASSWORD '{password}'")
    user_part = PG_URL.split("://", 1)[1].split("@", 1)[0]
    url = pg_url.replace(f"://{user_part}@", f"://{role}:{password}@", 1)
    yield role, url
    with psycopg.connect(PG_URL, autocommit=True) as conn:
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = %s", (role,)
        )
        conn.execute(f"DROP OWNED BY {role} CASCADE")
        conn.execute(f"DROP ROLE {role}")


def _grant(role: str, schema: str) -> None:
    import psycopg

    with psycopg.connect(PG_URL, autocommit=True) as conn:
        conn.execute(f"GRANT USAGE ON SCHEMA {schema} TO {role}")
        conn.execute(f"GRANT SELECT, INSERT, UPDATE ON ALL TABLES IN SCHEMA {schema} TO {role}")


def _login(role: str, allowed: bool) -> None:
    import psycopg

    with psycopg.connect(PG_URL, autocommit=True) as conn:
        conn.execute(f"ALTER ROLE {role} {'LOGIN' if allowed else 'NOLOGIN'}")
        if not allowed:  # and the connections it holds are gone, as in an outage
            conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = %s",
                (role,),
            )


def test_two_workers_share_one_postgres_ledger_and_answer_503_when_it_is_down(
    trained: Trained,
    tmp_path: Path,
    pg_url: str,  # noqa: F811
    service_role: tuple[str, str],
) -> None:
    paths = copy_project(trained, tmp_path / "proj")
    r = run_cli(paths.home, "ledger", "migrate", "--to", pg_url)
    assert r.returncode == 0, r.stderr
    role, url = service_role
    _grant(role, pg_url.rsplit("%3D", 1)[1])
    config = paths.config_toml.read_text()
    paths.config_toml.write_text(config + f'\n[ledger]\nurl = "{url}"\n')
    keys = read_api_keys(paths.keys)
    key = keys["scorer"]
    headers = {"Authorization": f"Bearer {key}"}
    with serve_workers(paths.home, tmp_path / "serve.log") as base:
        before = json.loads(run_cli(paths.home, "verify", "--json").stdout)["tree_size"]

        made: list[dict] = []
        statuses: list[int] = []
        lock = threading.Lock()

        def client(k: int, n: int, until: float | None = None) -> None:
            with httpx.Client(base_url=base, headers=headers, timeout=30) as c:
                i = 0
                while i < n or (until is not None and time.monotonic() < until):
                    resp = c.post("/v1/score", json={"features": record(k * 1000 + i)})
                    with lock:
                        statuses.append(resp.status_code)
                        if resp.status_code == 200:
                            made.append(resp.json())
                        elif resp.status_code == 503:
                            assert resp.headers.get("retry-after"), resp.headers
                    i += 1

        threads = [threading.Thread(target=client, args=(k, 25)) for k in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert statuses == [200] * 200
        indices = sorted(d["ledger_index"] for d in made)
        assert indices == list(range(before, before + 200))  # distinct, consecutive

        # each decision found by ID through whichever worker answers
        auditor = {"Authorization": f"Bearer {keys['auditor']}"}
        with httpx.Client(base_url=base, headers=auditor, timeout=30) as c:
            for d in made[::20]:
                got = c.get(f"/v1/decisions/{d['decision_id']}")
                assert got.status_code == 200 and got.json()["index"] == d["ledger_index"]

            # tlog-tiles through the PostgreSQL driver: leaf hashes of the entries bundle
            size = c.get("/healthz").json()["tree_size"]
            w = min(size, 256)
            suffix = "" if w == 256 else f".p/{w}"
            tile = c.get(f"/tile/0/000{suffix}")
            bundle = c.get(f"/tile/entries/000{suffix}")
            assert tile.status_code == bundle.status_code == 200, (tile.text, bundle.text)
            data, leaves = bundle.content, []
            while data:
                n = int.from_bytes(data[:2], "big")
                leaves.append(hashlib.sha256(b"\x00" + data[2 : 2 + n]).digest())
                data = data[2 + n :]
            assert b"".join(leaves) == tile.content and len(leaves) == w

        # the database is unreachable for the service: 503 + Retry-After, then recovery
        statuses.clear()
        _login(role, allowed=False)
        outage = [threading.Thread(target=client, args=(100 + k, 5)) for k in range(4)]
        started = time.monotonic()
        for t in outage:
            t.start()
        for t in outage:
            t.join()
        assert time.monotonic() - started < 60, "requests hung while the database was down"
        assert set(statuses) == {503}, statuses
        _login(role, allowed=True)
        statuses.clear()
        acked_before = len(made)
        client(200, 10)
        assert statuses == [200] * 10  # recovered by itself: no restart

    # nothing acknowledged is missing: every 200's entry is at its index
    r = run_cli(paths.home, "verify", "--json")
    assert r.returncode == 0, r.stdout
    exported = {
        json.loads(line)["index"]: json.loads(line)["entry"]
        for line in run_cli(paths.home, "log", "export", "--jsonl").stdout.splitlines()
    }
    for d in made:
        entry = json.loads(base64.b64decode(exported[d["ledger_index"]]))
        assert entry["body"]["decision_id"] == d["decision_id"]
    assert len(made) == acked_before + 10
    # audit trace and bundles read the same shared log
    r = run_cli(paths.home, "audit", "trace", made[0]["decision_id"], "--json")
    assert r.returncode == 0, r.stderr
    bundle = tmp_path / "bundle.zip"
    lo = min(d["ledger_index"] for d in made)
    r = run_cli(paths.home, "audit", "export", "--decisions", f"{lo}..{lo + 20}", "-o", str(bundle))
    assert r.returncode == 0, r.stderr
    assert run_cli(paths.home, "audit", "verify-bundle", str(bundle)).returncode == 0
