"""The ledger on a real PostgreSQL server (issue 12): the same bytes as SQLite, tampering
caught naming the index on both drivers, many writer processes on one log, and SIGKILL of
a writer or of the integrator losing no acknowledged entry. Real CLI processes, real
psycopg connections; nothing of ours is mocked."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ledgerml.crypto.files import write_private
from ledgerml.crypto.note import NoteSigner
from ledgerml.crypto.signers import Ed25519Signer
from ledgerml.ledger import merkle
from ledgerml.ledger.log import Checkpoint, Ledger, _Edge
from ledgerml.ledger.postgres import PostgresLedger, redact_url
from tests.conftest import run_cli

ORIGIN = "ledgerml.test/pg"


@pytest.fixture
def signer() -> NoteSigner:
    return NoteSigner.ed25519(ORIGIN, Ed25519Signer.generate())


def _items(n: int, start: int = 0) -> list[tuple[str, dict[str, Any]]]:
    return [
        ("x.decision", {"id": f"d-{i}", "score": i / 7, "tags": ["a", "é"]})
        for i in range(start, start + n)
    ]


# --- the same bytes on both drivers ----------------------------------------------------


def test_same_entries_give_identical_bytes_roots_and_proofs(
    tmp_path: Path, pg_url: str, signer: NoteSigner
) -> None:
    lite = Ledger(tmp_path / "ledger.db", origin=ORIGIN, signers=[signer])
    pg = PostgresLedger(pg_url, origin=ORIGIN, signers=[signer])
    try:
        # identical prepared entries (fixed time), committed in different batch shapes
        prepared = [lite.prepare(t, b, time_="2026-12-06T00:00:00.000000Z") for t, b in _items(300)]
        lite.commit(prepared[:1])
        lite.commit(prepared[1:300])
        for k in range(0, 300, 37):
            pg.commit(prepared[k : k + 37])
        assert list(lite.entries()) == list(pg.entries())
        assert lite.size() == pg.size() == 300
        for n in (1, 15, 16, 17, 255, 256, 257, 300):
            assert lite.root(n) == pg.root(n)
            for i in (0, n // 2, n - 1):
                assert lite.inclusion_proof(i, n) == pg.inclusion_proof(i, n)
            assert lite.consistency_proof(n // 3, n) == pg.consistency_proof(n // 3, n)
        # the same checkpoint body, and the same stored tiles (the tlog-tiles layout)
        a, b = Checkpoint.from_note(lite.checkpoint()), Checkpoint.from_note(pg.checkpoint())
        assert a == b
        with sqlite3.connect(tmp_path / "ledger.db") as db:
            lite_tiles = dict(
                ((lv, ix), bytes(h))
                for lv, ix, h in db.execute("SELECT level, idx, hashes FROM tiles")
            )
        import psycopg

        with psycopg.connect(pg_url) as conn:
            pg_tiles = {
                (lv, ix): bytes(h)
                for lv, ix, h in conn.execute("SELECT level, idx, hashes FROM tiles")
            }
        assert lite_tiles == pg_tiles
        assert pg.verify([signer.verifier]).ok
    finally:
        lite.close()
        pg.close()


def _rfc9162_root(leaves: list[bytes]) -> bytes:
    """RFC 9162 §2.1 MTH, written from the RFC with hashlib only (not ledgerml.merkle)."""
    if not leaves:
        return hashlib.sha256(b"").digest()
    if len(leaves) == 1:
        return leaves[0]
    k = 1 << ((len(leaves) - 1).bit_length() - 1)
    return hashlib.sha256(b"\x01" + _rfc9162_root(leaves[:k]) + _rfc9162_root(leaves[k:])).digest()


@pytest.fixture
def pg_project(tmp_path: Path, pg_url: str) -> Path:
    home = tmp_path / "proj"
    r = run_cli(home, "init", "--ledger-url", pg_url)
    assert r.returncode == 0, r.stderr
    password = pg_url.split("://", 1)[1].split("@", 1)[0].partition(":")[2]
    assert not password or password not in r.stdout + r.stderr
    lines = "".join(json.dumps({"type": t, "body": b}) + "\n" for t, b in _items(40))
    for _ in range(2):
        r = run_cli(home, "log", "append", "--jsonl", "-", input_=lines)
        assert r.returncode == 0, r.stderr
    return home


def test_an_independent_rfc9162_verifier_agrees_on_an_exported_pg_log(pg_project: Path) -> None:
    exported = [
        json.loads(line)
        for line in run_cli(pg_project, "log", "export", "--jsonl").stdout.splitlines()
    ]
    assert [e["index"] for e in exported] == list(range(80))
    leaves = [hashlib.sha256(b"\x00" + base64.b64decode(e["entry"])).digest() for e in exported]
    assert [leaf.hex() for leaf in leaves] == [e["leaf_hash"] for e in exported]
    note = run_cli(pg_project, "log", "checkpoint").stdout
    size, root = note.splitlines()[1:3]
    assert int(size) == 80
    assert _rfc9162_root(leaves) == base64.b64decode(root)
    r = run_cli(pg_project, "verify", "--json")
    assert r.returncode == 0 and json.loads(r.stdout)["ok"], r.stdout


def test_redacted_urls_never_show_the_password() -> None:
    assert redact_url("postgresql://u:s3cr%40t@h:5/db") == "postgresql://u:***@h:5/db"
    assert "hunter2" not in redact_url("postgresql://h/db?user=u&password=hunter2")
    assert redact_url("postgresql://u@h/db") == "postgresql://u@h/db"


def test_a_bad_ledger_url_is_refused_naming_the_field(tmp_path: Path) -> None:
    r = run_cli(tmp_path / "p", "init", "--ledger-url", "mysql://u:pw@h/db")
    assert r.returncode == 2
    assert "ledger.url" in r.stderr and "pw@" not in r.stderr
    assert not (tmp_path / "p" / "config.toml").exists()


# --- tampering, on both drivers ---------------------------------------------------------


class _Sql:
    """Raw SQL on either driver's database, as someone with database access would."""

    def __init__(self, home: Path, url: str | None) -> None:
        if url is None:
            self.conn: Any = sqlite3.connect(home / "ledger.db", isolation_level=None)
            self.mark = "?"
        else:
            import psycopg

            self.conn = psycopg.connect(url, autocommit=True)
            self.mark = "%s"

    def __call__(self, sql: str, *args: Any) -> list[tuple[Any, ...]]:
        cur = self.conn.execute(sql.replace("?", self.mark), args)
        return (
            [
                tuple(bytes(v) if isinstance(v, memoryview) else v for v in row)
                for row in cur.fetchall()
            ]
            if cur.description
            else []
        )

    def close(self) -> None:
        self.conn.close()


@pytest.fixture(params=["sqlite", "postgres"])
def tamper_project(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Path, _Sql]]:
    url = request.getfixturevalue("pg_url") if request.param == "postgres" else None
    home = tmp_path / "proj"
    r = run_cli(home, "init", *(["--ledger-url", url] if url else []))
    assert r.returncode == 0, r.stderr
    lines = "".join(json.dumps({"type": t, "body": b}) + "\n" for t, b in _items(40))
    assert run_cli(home, "log", "append", "--jsonl", "-", input_=lines).returncode == 0
    sql = _Sql(home, url)  # (an untouched log verifies: test_an_independent_rfc9162_…)
    yield home, sql
    sql.close()


def _failed_at(home: Path) -> tuple[set[str], set[int]]:
    r = run_cli(home, "verify", "--json")
    assert r.returncode == 1, (r.stdout, r.stderr)
    problems = json.loads(r.stdout)["problems"]
    return {p["kind"] for p in problems}, {p["index"] for p in problems if "index" in p}


def test_a_changed_byte_is_caught_naming_the_index(tamper_project: tuple[Path, _Sql]) -> None:
    home, sql = tamper_project
    (entry,) = sql("SELECT entry FROM entries WHERE idx=?", 17)[0]
    sql("UPDATE entries SET entry=? WHERE idx=?", entry.replace(b"d-17", b"d-71"), 17)
    kinds, indices = _failed_at(home)
    assert "modified" in kinds and 17 in indices


def test_a_deleted_row_is_caught_naming_the_index(tamper_project: tuple[Path, _Sql]) -> None:
    home, sql = tamper_project
    sql("DELETE FROM entries WHERE idx=?", 23)
    kinds, indices = _failed_at(home)
    assert "missing" in kinds and 23 in indices


def test_swapped_rows_are_caught_naming_the_index(tamper_project: tuple[Path, _Sql]) -> None:
    home, sql = tamper_project
    (a,) = sql("SELECT entry FROM entries WHERE idx=?", 5)[0]
    (b,) = sql("SELECT entry FROM entries WHERE idx=?", 9)[0]
    sql("UPDATE entries SET entry=? WHERE idx=?", b, 5)
    sql("UPDATE entries SET entry=? WHERE idx=?", a, 9)
    kinds, indices = _failed_at(home)
    assert "reordered" in kinds and {5, 9} <= indices


def test_a_rewritten_tile_is_caught_naming_the_index(tamper_project: tuple[Path, _Sql]) -> None:
    home, sql = tamper_project
    (hashes,) = sql("SELECT hashes FROM tiles WHERE level=0 AND idx=0")[0]
    forged = hashes[: 3 * 32] + hashlib.sha256(b"\x00forged").digest() + hashes[4 * 32 :]
    sql("UPDATE tiles SET hashes=? WHERE level=0 AND idx=0", forged)
    kinds, indices = _failed_at(home)
    assert "modified" in kinds and 3 in indices


def test_a_rebuilt_tree_still_fails_on_its_signed_checkpoints(
    tamper_project: tuple[Path, _Sql],
) -> None:
    """Changed entry and every tile rebuilt to match: the signed checkpoints catch it."""
    home, sql = tamper_project
    (entry,) = sql("SELECT entry FROM entries WHERE idx=?", 30)[0]
    sql("UPDATE entries SET entry=? WHERE idx=?", entry.replace(b"d-30", b"d-03"), 30)
    leaves = [merkle.leaf_hash(e) for (e,) in sql("SELECT entry FROM entries ORDER BY idx")]
    sql("DELETE FROM tiles")
    for (level, idx), h in _Edge(0, {}).append(leaves).items():
        sql("INSERT INTO tiles(level, idx, hashes) VALUES (?, ?, ?)", level, idx, h)
    kinds, _ = _failed_at(home)
    assert "inconsistent" in kinds


# --- many writer processes, kills ------------------------------------------------------

_WRITER = """
import sys, threading
from ledgerml.crypto.note import NoteSigner
from ledgerml.crypto.signers import load_private_pem
from ledgerml.ledger.postgres import PostgresLedger
url, pem, origin, tag = sys.argv[1:5]
count, threads = int(sys.argv[5]), int(sys.argv[6])
signer = NoteSigner.ed25519(origin, load_private_pem(open(pem, "rb").read()))
ledger = PostgresLedger(url, origin=origin, signers=[signer], create=False)
out = sys.stdout
lock = threading.Lock()
def produce(t):
    i = t
    while count < 0 or i < count:
        index = ledger.append("x.load", {"w": tag, "i": i})
        with lock:  # printed only once the append is acknowledged (durable)
            out.write(f"{index} {i}\\n"); out.flush()
        i += threads
workers = [threading.Thread(target=produce, args=(t,)) for t in range(threads)]
for w in workers: w.start()
for w in workers: w.join()
ledger.close()
"""


@pytest.fixture
def shared_log(tmp_path: Path, pg_url: str, signer: NoteSigner) -> tuple[str, Path]:
    pem = tmp_path / "signer.pem"
    write_private(pem, signer.signer.private_pem())
    with PostgresLedger(pg_url, origin=ORIGIN, signers=[signer]) as ledger:
        ledger.checkpoint()
    return pg_url, pem


def _writer(
    url: str, pem: Path, tag: str, count: int, threads: int, **env: str
) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", _WRITER, url, str(pem), ORIGIN, tag, str(count), str(threads)],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, **env},
    )


def _acked(out: str) -> list[tuple[int, int]]:
    return [(int(a), int(b)) for a, b in (line.split() for line in out.splitlines() if line)]


def test_four_processes_append_twenty_thousand_distinct_consecutive_entries(
    shared_log: tuple[str, Path], signer: NoteSigner
) -> None:
    url, pem = shared_log
    procs = [_writer(url, pem, f"w{k}", 5000, 16) for k in range(4)]
    acked: dict[int, tuple[str, int]] = {}
    for k, proc in enumerate(procs):
        out, _ = proc.communicate(timeout=300)
        assert proc.returncode == 0
        for index, i in _acked(out):
            assert index not in acked, f"index {index} given twice"
            acked[index] = (f"w{k}", i)
    assert sorted(acked) == list(range(20_000))
    with PostgresLedger(url, origin=ORIGIN, signers=[signer], create=False) as ledger:
        for index, data in ledger.entries():
            body = json.loads(data)["body"]
            assert (body["w"], body["i"]) == acked[index]
        report = ledger.verify([signer.verifier])
        assert report.ok, report.problems
        assert report.tree_size == 20_000


def test_sigkill_of_a_writer_or_the_integrator_loses_no_acknowledged_entry(
    shared_log: tuple[str, Path], signer: NoteSigner
) -> None:
    """20 rounds: two writer processes on one log; one is SIGKILLed at a random moment or
    at a kill point inside sequencing or integration (`LEDGERML_CRASH_AT`)."""
    url, pem = shared_log
    rng = random.Random(12)
    points = [
        None,
        "ledger.pg.sequence.before_commit",
        "ledger.pg.sequence.after_commit",
        "ledger.pg.integrate.before_commit",
    ]
    acked: dict[int, tuple[str, int]] = {}
    kills = 0
    for round_ in range(20):
        point = points[round_ % len(points)]
        env = {"LEDGERML_CRASH_AT": f"{point}@{rng.randint(2, 12)}"} if point else {}
        victim = _writer(url, pem, f"v{round_}", 240, 4, **env)
        other = _writer(url, pem, f"o{round_}", 60, 2)
        if point is None:
            time.sleep(rng.uniform(0.3, 1.2))
            victim.send_signal(signal.SIGKILL)
        out_v, _ = victim.communicate(timeout=120)
        out_o, _ = other.communicate(timeout=120)
        assert other.returncode == 0
        assert victim.returncode in (-signal.SIGKILL, 0), victim.returncode
        kills += victim.returncode == -signal.SIGKILL
        for tag, out in ((f"v{round_}", out_v), (f"o{round_}", out_o)):
            for index, i in _acked(out):
                assert index not in acked
                acked[index] = (tag, i)
    assert kills >= 12, f"only {kills} of 20 writers were killed mid-run: the test tests little"
    with PostgresLedger(url, origin=ORIGIN, signers=[signer], create=False) as ledger:
        report = ledger.verify([signer.verifier])
        assert report.ok, report.problems
        stored = {index: data for index, data in ledger.entries()}
    for index, (tag, i) in acked.items():  # every acknowledged entry, at its index
        body = json.loads(stored[index])["body"]
        assert (body["w"], body["i"]) == (tag, i)
    assert len(stored) == report.tree_size >= len(acked)


# --- migration ---------------------------------------------------------------------------


def _rows(sql: _Sql) -> dict[str, list[tuple[Any, ...]]]:
    return {
        "entries": sql("SELECT idx, entry FROM entries ORDER BY idx"),
        "tiles": sql("SELECT level, idx, hashes FROM tiles ORDER BY level, idx"),
        "checkpoints": sql("SELECT size, root, note, created FROM checkpoints ORDER BY size"),
        "meta": sql("SELECT key, value FROM meta ORDER BY key"),
    }


def test_migrate_sqlite_to_postgres_and_back_byte_for_byte(tmp_path: Path, pg_url: str) -> None:
    home = tmp_path / "proj"
    assert run_cli(home, "init").returncode == 0
    lines = "".join(json.dumps({"type": t, "body": b}) + "\n" for t, b in _items(300))
    for _ in range(2):  # several checkpoints
        assert run_cli(home, "log", "append", "--jsonl", "-", input_=lines).returncode == 0
    lite = _Sql(home, None)
    before = _rows(lite)
    lite.close()

    r = run_cli(home, "ledger", "migrate", "--to", pg_url, "--json")
    assert r.returncode == 0, r.stderr
    moved = json.loads(r.stdout)
    assert moved["entries"] == 600 and moved["verify"]["ok"]
    assert "***" in moved["target"] or ":" not in pg_url.split("@")[0].split("//")[1]
    pg = _Sql(home, pg_url)
    assert _rows(pg) == before  # byte for byte
    pg.close()
    again = run_cli(home, "ledger", "migrate", "--to", pg_url)
    assert again.returncode == 2 and "already holds a ledger" in again.stderr

    # the project now on PostgreSQL: append, then back into a fresh SQLite file
    config = (home / "config.toml").read_text()
    (home / "config.toml").write_text(config + f'\n[ledger]\nurl = "{pg_url}"\n')
    assert run_cli(home, "log", "append", "--type", "x.after", "--body", "{}").returncode == 0
    assert run_cli(home, "verify").returncode == 0
    pg = _Sql(home, pg_url)
    on_pg = _rows(pg)
    pg.close()
    (home / "ledger.db").rename(tmp_path / "old.db")
    r = run_cli(home, "ledger", "migrate", "--to", "sqlite:", "--json")
    assert r.returncode == 0, r.stderr
    lite = _Sql(home, None)
    assert _rows(lite) == on_pg
    lite.close()
    config = (home / "config.toml").read_text()
    (home / "config.toml").write_text(config.replace(f'url = "{pg_url}"', 'url = "sqlite:"'))
    r = run_cli(home, "verify", "--json")
    assert r.returncode == 0 and json.loads(r.stdout)["tree_size"] == 601, r.stdout


def test_dropped_connections_fail_clearly_and_appends_resume(
    pg_url: str, signer: NoteSigner
) -> None:
    """The server ends every ledger connection (as a restart or a network cut would) while
    threads append: those appends fail with LedgerUnavailable naming no password, the ones
    acknowledged are all there, and later appends succeed on new connections by themselves."""
    import threading

    import psycopg

    from ledgerml.ledger.postgres import LedgerUnavailable

    acked: list[int] = []
    failures: list[str] = []
    others: list[str] = []
    stop = threading.Event()
    name = f"ledgerml-test-{os.getpid()}"  # only this test's connections are dropped
    with PostgresLedger(pg_url, origin=ORIGIN, signers=[signer], application_name=name) as ledger:

        def produce(t: int) -> None:
            i = 0
            while not stop.is_set():
                try:
                    acked.append(ledger.append("x.load", {"t": t, "i": i}))
                except LedgerUnavailable as exc:
                    failures.append(str(exc))
                except Exception as exc:  # anything else is a bug: a raw driver error
                    others.append(repr(exc))
                i += 1

        threads = [threading.Thread(target=produce, args=(t,)) for t in range(4)]
        for t in threads:
            t.start()
        # Cut often, until some append has seen a cut (on a quiet machine a cut can land
        # between two appends and go unnoticed), then a few more times; 10 s at most.
        with psycopg.connect(pg_url, autocommit=True) as admin:
            rounds_after = 0
            deadline = time.monotonic() + 10
            while rounds_after < 5 and time.monotonic() < deadline:
                time.sleep(0.05)
                admin.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                    " WHERE application_name = %s",
                    (name,),
                )
                rounds_after += bool(failures)
        time.sleep(0.5)
        stop.set()
        for t in threads:
            t.join()
        after = ledger.append("x.after", {})  # a new connection, without a restart
        report = ledger.verify([signer.verifier])
    assert failures, "no append saw the dropped connections: the test tests nothing"
    assert not others, others[:3]
    password = pg_url.split("://", 1)[1].split("@", 1)[0].partition(":")[2]
    assert all("unavailable" in f and (not password or password not in f) for f in failures)
    assert report.ok, report.problems
    assert len(set(acked)) == len(acked) and after == report.tree_size - 1
    assert set(acked) <= set(range(report.tree_size))


def test_connections_dropped_while_idle_are_replaced_without_an_error(
    pg_url: str, signer: NoteSigner
) -> None:
    """A database restart while the ledger sits idle: the next read and the next append
    open new connections instead of failing once on the dead ones (a 503 in the service)."""
    import psycopg

    name = f"ledgerml-idle-{os.getpid()}"
    with PostgresLedger(pg_url, origin=ORIGIN, signers=[signer], application_name=name) as ledger:
        ledger.append("x.before", {})
        assert ledger.size() == 1  # the reader and the writer each hold a connection now
        with psycopg.connect(pg_url, autocommit=True) as admin:
            (cut,) = admin.execute(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                " WHERE application_name = %s",
                (name,),
            ).fetchone()
        assert cut >= 2, "the ledger held no idle connection: the test tests nothing"
        time.sleep(0.2)  # the backends' exit reaches the client sockets
        assert ledger.size() == 1
        assert ledger.append("x.after", {}) == 1
        assert ledger.verify([signer.verifier]).ok


def test_the_audit_index_reads_the_same_through_a_file_or_a_driver(
    ledger_url: str, tmp_path: Path, signer: NoteSigner
) -> None:
    from ledgerml.ledger.index import LedgerIndex
    from ledgerml.ledger.postgres import open_url

    cid = "bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy"
    bodies = [
        ("decision.recorded", {
            "decision_id": f"d-{i}", "model_cid": cid, "input_commitment": f"{i:064x}",
            "score": 0.1, "threshold": 0.5, "outcome": "approve", "reasons": [],
        })
        for i in range(30)
    ]  # fmt: skip
    with open_url(ledger_url, origin=ORIGIN, signers=[signer]) as ledger:
        ledger.append_many([*_items(10), *bodies])
        ledger.checkpoint()
        sources: list[Any] = [ledger]
        if not ledger_url.startswith("postgresql"):
            sources.append(ledger_url)  # the ledger.db path, as AuditView opens it on SQLite
        seen = []
        for k, source in enumerate(sources):
            with LedgerIndex.open(tmp_path / f"index{k}.db", source) as index:
                stats = index.refresh()
                assert stats.watermark == 40
                seen.append(
                    (
                        index.find("d-7"),
                        index.by_type("decision.recorded")[:3],
                        index.latest_checkpoint(),
                        index.entry(12),
                    )
                )
        assert seen[0][0] == [17] and seen[0][1] == [10, 11, 12]
        assert seen[0][2] == (40, ledger.newest_checkpoint())
        assert seen[0][3] == ledger.entry(12)
        assert all(s == seen[0] for s in seen)
