"""Witness cost: add-checkpoint latency at one witness, and the time from a decision's
commit to a checkpoint cosigned by a 3-of-5 quorum, at 1,000 decisions/s.

    ledgerml bench witness [--quick]          # writes bench/results/witness.json
    .venv/bin/python bench/bench_witness.py [--quick]

Baselines measured in the same run: signing a checkpoint (Ed25519 signed note) and an HTTP
no-op round trip to the same witness process (GET /metrics, keep-alive), so the figures
can be read as ratios on a noisy shared machine. Witnesses are real `ledgerml witness
serve` processes on free ports, started and stopped here by PID; the log is a real
project ledger (SQLite, group commit) and the publisher is the one the service runs.
"""

from __future__ import annotations

import json
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx

from ledgerml.crypto.note import NoteSigner, sign_note
from ledgerml.crypto.signers import Ed25519Signer
from ledgerml.ledger import init_project
from ledgerml.ledger.project import log_verifiers, open_ledger
from ledgerml.witness.client import WitnessClient
from ledgerml.witness.consortium import WitnessServer
from ledgerml.witness.core import Witness, init_witness
from ledgerml.witness.policy import Policy
from ledgerml.witness.publisher import CosignedStore, Publisher

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results"


def _pct(values: list[float], p: float) -> float:
    s = sorted(values)
    if not s:
        return float("nan")
    return s[min(len(s) - 1, max(0, round(p / 100 * (len(s) - 1))))]


def _ms(values: list[float]) -> dict[str, float]:
    return {
        "n": len(values),
        "p50_ms": round(_pct(values, 50) * 1000, 3),
        "p99_ms": round(_pct(values, 99) * 1000, 3),
        "max_ms": round(max(values) * 1000, 3) if values else float("nan"),
    }


class _Witness:
    """One witness folder and its `ledgerml witness serve` process (stopped by its PID)."""

    def __init__(self, base: Path, label: str) -> None:
        self.dir = base / label
        self.keys = init_witness(self.dir, name=f"{label}.bench/witness")
        self.server = WitnessServer(label, self.dir).start()
        self.url = self.server.url

    def wait(self) -> None:
        self.server.wait_ready(time.monotonic() + 60)

    def add_log(self, vkey: str) -> None:
        w = Witness.open(self.dir)
        try:
            w.add_log(vkey)
        finally:
            w.close()

    def stop(self) -> None:
        self.server.stop()


def run(quick: bool = False, progress: Any = print) -> dict[str, Any]:
    n_add = 200 if quick else 2000
    seconds = 5.0 if quick else 20.0
    rate = 1000  # decisions per second
    results: dict[str, Any] = {"quick": quick}
    with tempfile.TemporaryDirectory(prefix="ledgerml-bench-witness-") as tmp:
        base = Path(tmp)
        progress("starting five witness processes")
        witnesses = [_Witness(base, f"bank-{c}") for c in "bcdef"]
        try:
            for w in witnesses:
                w.wait()
            paths = init_project(base / "proj", origin="bench.example/log")
            vkey = log_verifiers(paths)[0].vkey()
            for w in witnesses:
                w.add_log(vkey)
            results["baseline"] = _baselines(witnesses[0], n_add)
            results["add_checkpoint_one_witness"] = _add_checkpoint(paths, witnesses[0], n_add)
            progress(f"{rate:,} decisions/s for {seconds:.0f} s, publishing to 5 (3-of-5)")
            results["commit_to_cosigned_5_witnesses"] = _commit_to_cosigned(
                paths, witnesses, vkey, rate, seconds
            )
        finally:
            for w in witnesses:
                w.stop()
    one = results["add_checkpoint_one_witness"]
    results["ratios"] = {
        "add_checkpoint_p50_over_http_noop_p50": round(
            one["p50_ms"] / results["baseline"]["http_noop"]["p50_ms"], 2
        ),
        "add_checkpoint_p50_over_checkpoint_sign_p50": round(
            one["p50_ms"] / results["baseline"]["checkpoint_sign"]["p50_ms"], 1
        ),
    }
    return results


def _baselines(w: _Witness, n: int) -> dict[str, Any]:
    signer = NoteSigner.ed25519("bench.example/log", Ed25519Signer.generate())
    body = "bench.example/log\n12345\n" + "A" * 43 + "=\n"
    signs = []
    for _ in range(n):
        t = time.perf_counter()
        sign_note(body, [signer])
        signs.append(time.perf_counter() - t)
    noops = []
    with httpx.Client() as client:
        for _ in range(n):
            t = time.perf_counter()
            client.get(w.url + "/metrics")
            noops.append(time.perf_counter() - t)
    return {"checkpoint_sign": _ms(signs), "http_noop": _ms(noops)}


def _add_checkpoint(paths: Any, w: _Witness, n: int) -> dict[str, Any]:
    """One witness, one client, keep-alive: append 10 entries, sign, send with its proof."""
    client = WitnessClient(w.url)
    times = []
    old = 0
    with open_ledger(paths) as ledger:
        for i in range(n):
            ledger.append_many([("x.bench", {"i": i, "k": k}) for k in range(10)])
            note = ledger.checkpoint()
            size = ledger.size()
            proof = ledger.consistency_proof(old, size).hashes if old else ()
            t = time.perf_counter()
            client.add_checkpoint(old=old, proof=proof, note=note)
            times.append(time.perf_counter() - t)
            old = size
    client.close()
    return _ms(times) | {"entries_per_checkpoint": 10}


def _commit_to_cosigned(
    paths: Any, ws: list[_Witness], vkey: str, rate: int, seconds: float
) -> dict[str, Any]:
    """A writer commits `rate` decisions/s in 10 ms batches; the publisher runs rounds back
    to back; each decision's latency is commit -> the first quorum-cosigned checkpoint
    that covers it."""
    text = f"log {vkey}\n" + "".join(
        f"witness w{i} {w.keys.verifiers()[0].vkey()} {w.url}\n" for i, w in enumerate(ws)
    )
    policy = Policy.parse(text + "group q 3 w0 w1 w2 w3 w4\nquorum q\n")
    commits: list[tuple[int, float]] = []  # (size after the batch, commit time)
    published: list[tuple[int, float]] = []
    stop = threading.Event()
    per_batch = max(1, rate // 100)
    with open_ledger(paths) as ledger:
        start_size = ledger.size()
        store = CosignedStore(Path(paths.home) / "bench-cosigned.db")
        pub = Publisher(ledger, policy, store, log_verifiers=log_verifiers(paths))

        def writer() -> None:
            i, t0 = 0, time.perf_counter()
            while not stop.is_set():
                ledger.append_many([("x.decision", {"i": i + k}) for k in range(per_batch)])
                i += per_batch
                commits.append((ledger.size(), time.perf_counter()))
                sleep = t0 + i / rate - time.perf_counter()
                if sleep > 0:
                    time.sleep(sleep)

        thread = threading.Thread(target=writer)
        thread.start()
        deadline = time.perf_counter() + seconds
        rounds = 0
        while time.perf_counter() < deadline:
            report = pub.publish()
            rounds += 1
            if report.published:
                published.append((report.size, time.perf_counter()))
        stop.set()
        thread.join()
        pub.close()
        store.close()
        appended = ledger.size() - start_size
    latencies = []
    j = 0
    for size, t_commit in commits:
        while j < len(published) and published[j][0] < size:
            j += 1
        if j < len(published):
            latencies.append(published[j][1] - t_commit)
    return _ms(latencies) | {
        "decisions": appended,
        "decisions_per_s": round(appended / seconds),
        "publisher_rounds": rounds,
        "cosigned_checkpoints": len(published),
        "batches_measured": len(latencies),
        "quorum": "3 of 5",
    }


if __name__ == "__main__":
    quick = "--quick" in sys.argv
    out = run(quick=quick)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"witness{'-quick' if quick else ''}.json").write_text(json.dumps(out, indent=2))
    print(json.dumps(out, indent=2))
