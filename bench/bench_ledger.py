"""Ledger benchmark: append throughput against raw SQLite, concurrency, proofs, verify.

Run with `ledgerml bench ledger` (or `--quick`). Every figure that depends on
the machine is compared with a baseline measured in the same run, because
these machines are noisy: the append rate is reported next to a raw SQLite
batched insert of the very same entry bytes, with the same pragmas.
"""

from __future__ import annotations

import os
import random
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from ledgerml.crypto.note import NoteSigner
from ledgerml.crypto.signers import Ed25519Signer
from ledgerml.ledger.log import Ledger

ORIGIN = "ledgerml.bench/ledger"
CID = "bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy"
BATCH = 1000


def _decision(i: int) -> dict[str, Any]:
    return {
        "decision_id": f"dec-{i:09d}",
        "model_cid": CID,
        "input_commitment": f"{i * 2654435761 % 2**64:064x}",
        "score": round((i * 7919 % 10007) / 10007, 6),
        "threshold": 0.5,
        "outcome": "decline" if i % 10 == 0 else "approve",
        "reasons": ["amount far above the customer's 90-day median", "new merchant"],
    }


def _items(start: int, n: int) -> list[tuple[str, dict[str, Any]]]:
    return [("decision.recorded", _decision(i)) for i in range(start, start + n)]


def _raw_sqlite_rate(path: Path, entries: list[bytes]) -> float:
    """Batched INSERTs of the same bytes, same pragmas: the ceiling for one writer."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("CREATE TABLE entries (idx INTEGER PRIMARY KEY, entry BLOB NOT NULL)")
    started = time.perf_counter()
    for k in range(0, len(entries), BATCH):
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany(
            "INSERT INTO entries VALUES (?, ?)",
            ((k + j, e) for j, e in enumerate(entries[k : k + BATCH])),
        )
        conn.execute("COMMIT")
    elapsed = time.perf_counter() - started
    conn.close()
    return len(entries) / elapsed


_PRODUCER = """
import sys, time
from pathlib import Path
sys.path.insert(0, {bench!r})
from bench_ledger import _items, ORIGIN, BATCH
from ledgerml.crypto.note import NoteSigner
from ledgerml.crypto.signers import load_private_pem
from ledgerml.ledger.log import Ledger
# one log, one key: a ledger refuses a writer whose key is not the one it records
signer = NoteSigner.ed25519(ORIGIN, load_private_pem(Path(sys.argv[5]).read_bytes()))
ledger = Ledger(Path(sys.argv[1]), origin=ORIGIN, signers=[signer], checkpoint_every_batch=False)
k, n, batch = int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
items = _items(k * n, n)
sys.stdout.write("ready\\n"); sys.stdout.flush(); sys.stdin.readline()
for s in range(0, n, batch):
    ledger.append_many(items[s:s + batch])
ledger.close()
"""


def _processes_rate(path: Path, producers: int, per_producer: int, batch: int) -> float:
    code = _PRODUCER.format(bench=str(Path(__file__).parent))
    Ledger(path, origin=ORIGIN).close()
    key = path.with_suffix(".pem")
    key.write_bytes(Ed25519Signer.generate().private_pem())
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-c",
                code,
                str(path),
                str(k),
                str(per_producer),
                str(batch),
                str(key),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for k in range(producers)
    ]
    for p in procs:
        assert p.stdout is not None and p.stdout.readline().strip() == "ready"
    started = time.perf_counter()
    for p in procs:
        assert p.stdin is not None
        p.stdin.write("go\n")
        p.stdin.flush()
    for p in procs:
        p.wait()
        if p.returncode != 0:
            raise RuntimeError("a producer process failed")
    return producers * per_producer / (time.perf_counter() - started)


def _threads_rate(ledger: Ledger, producers: int, per_producer: int) -> float:
    """Single-entry appends from several threads: group commit shares transactions."""

    def produce(k: int) -> None:
        for body_type, body in _items(10_000_000 + k * per_producer, per_producer):
            ledger.append(body_type, body)

    threads = [threading.Thread(target=produce, args=(k,)) for k in range(producers)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return producers * per_producer / (time.perf_counter() - started)


def run(quick: bool = False, progress: Any = print) -> dict[str, Any]:
    n_append = 50_000 if quick else 200_000
    n_big = 100_000 if quick else 1_000_000
    results: dict[str, Any] = {"quick": quick, "batch": BATCH}
    signer = NoteSigner.ed25519(ORIGIN, Ed25519Signer.generate())
    with tempfile.TemporaryDirectory(prefix="ledgerml-bench-") as tmp:
        tmpdir = Path(tmp)

        # 1. Batched append vs raw SQLite insert of the same bytes.
        progress(f"append_many: {n_append:,} entries in batches of {BATCH}")
        items = _items(0, n_append)
        with Ledger(tmpdir / "append.db", origin=ORIGIN, signers=[signer]) as ledger:
            started = time.perf_counter()
            for k in range(0, n_append, BATCH):
                ledger.append_many(items[k : k + BATCH])
            append_rate = n_append / (time.perf_counter() - started)
            entries = [e for _, e in ledger.entries()]
        progress("raw SQLite batched insert of the same bytes")
        raw_rate = _raw_sqlite_rate(tmpdir / "raw.db", entries)
        results["append_many_entries_per_s"] = round(append_rate)
        results["raw_sqlite_rows_per_s"] = round(raw_rate)
        results["append_vs_raw_ratio"] = round(append_rate / raw_rate, 3)
        results["mean_entry_bytes"] = round(sum(map(len, entries)) / len(entries), 1)

        # 2. Concurrency.
        per = 2_000 if quick else 5_000
        progress(f"4 threads x {per:,} single appends (group commit)")
        with Ledger(tmpdir / "threads.db", origin=ORIGIN, signers=[signer]) as ledger:
            results["threads4_single_append_per_s"] = round(_threads_rate(ledger, 4, per))
            results["threads4_commit_batches"] = ledger.commits
        per = 10_000 if quick else 50_000
        progress(f"4 processes x {per:,} entries (append_many of 100)")
        results["processes4_append_many100_per_s"] = round(
            _processes_rate(tmpdir / "procs.db", 4, per, 100)
        )

        # 3. Proofs and verification at scale.
        progress(f"building a {n_big:,}-entry ledger")
        big = Ledger(tmpdir / "big.db", origin=ORIGIN, signers=[signer])
        chunk = 10_000
        started = time.perf_counter()
        for k in range(0, n_big, chunk):
            big.append_many(_items(k, chunk))
        results["build_entries_per_s"] = round(n_big / (time.perf_counter() - started))
        results["big_tree_size"] = big.size()
        rng = random.Random(7)
        big.inclusion_proof(0)  # warm the reader connection
        timings = []
        for _ in range(2_000):
            index = rng.randrange(n_big)
            t0 = time.perf_counter()
            proof = big.inclusion_proof(index)
            timings.append(time.perf_counter() - t0)
            assert proof.tree_size == n_big
        assert proof.verify()
        timings.sort()
        results["inclusion_proof_ms"] = {
            "p50": round(statistics.median(timings) * 1e3, 4),
            "p99": round(timings[int(len(timings) * 0.99)] * 1e3, 4),
            "max": round(timings[-1] * 1e3, 4),
        }
        timings = []
        for _ in range(500):
            old = rng.randrange(1, n_big)
            t0 = time.perf_counter()
            big.consistency_proof(old)
            timings.append(time.perf_counter() - t0)
        results["consistency_proof_ms_p50"] = round(statistics.median(timings) * 1e3, 4)
        progress(f"full verify of {n_big:,} entries")
        report = big.verify([signer.verifier])
        assert report.ok, report.problems
        results["verify_entries_per_s"] = round(n_big / report.seconds)
        results["verify_checkpoints"] = report.checkpoints_checked
        big.close()
        results["db_bytes_per_entry"] = round(os.path.getsize(tmpdir / "big.db") / n_big, 1)
    results["goals"] = {
        "append >= 100k/s or >= 50% of raw": results["append_many_entries_per_s"] >= 100_000
        or results["append_vs_raw_ratio"] >= 0.5,
        "inclusion proof <= 1 ms at 1M (p99)": results["inclusion_proof_ms"]["p99"] <= 1.0,
        "verify >= 300k entries/s": results["verify_entries_per_s"] >= 300_000,
    }
    return results


if __name__ == "__main__":
    import json

    print(json.dumps(run(quick="--quick" in sys.argv), indent=2))
