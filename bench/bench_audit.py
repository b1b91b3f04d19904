"""Audit benchmark: `audit trace` on a 1,000,000-entry log, every proof verified.

Run with `ledgerml bench audit` (or `--quick` for 100,000 entries); results go to
`bench/results/audit.json`. The log holds one model's full lineage (data set, run,
model, evaluation, compliance, two approvals, promotion), then the decisions, then an
anchor. We time the index's first catch-up (a full scan, once), a top-up with nothing
new, and `trace_decision` for random decision IDs: index lookups, entry reads, an
inclusion proof per hop against the newest signed checkpoint, each verified.
"""

from __future__ import annotations

import json
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from ledgerml.audit import AuditView, trace_decision, trace_model
from ledgerml.ledger.project import init_project, open_ledger

DATA = "bafybeiehfxkhg5x3djzfr3j6zx4spsdu4awmssrvufam7yfedvjobejc64"
MODEL = "bafkreibedhifttr3vylp2562y5nkv4f4wj7hzm4zak5apvpgr7oyjq27li"
TX = "0x" + "ab" * 32
RUN = "run-bench"
CHUNK = 10_000


def _lineage() -> list[tuple[str, dict[str, Any]]]:
    rule = {"rule_id": "FM-PERF-AUPRC", "regulation": "SR 26-2", "metric": "auprc"}
    return [
        ("dataset.registered", {"name": "cards", "cid": DATA, "rows": 1, "columns": ["a"],
                                "schema_hash": "00" * 32}),
        ("run.started", {"run_id": RUN, "dataset_cids": [DATA], "model_type": "xgboost"}),
        ("run.finished", {"run_id": RUN, "status": "succeeded", "model_cid": MODEL}),
        ("model.registered", {"name": "m", "cid": MODEL, "run_id": RUN, "framework": "xgboost",
                              "dataset_cids": [DATA]}),
        ("evaluation.recorded", {"model_cid": MODEL, "metrics": {"auprc": 0.8}}),
        ("compliance.checked", {"model_cid": MODEL, "policy": "p", "passed": True, "tx_hash": TX,
                                "results": [rule | {"value": 0.8, "threshold": 0.7,
                                                    "passed": True}]}),
        ("approval.granted", {"model_cid": MODEL, "role": "risk_approver", "approver": "0x1"}),
        ("approval.granted", {"model_cid": MODEL, "role": "compliance_approver",
                              "approver": "0x2"}),
        ("model.promoted", {"model_cid": MODEL, "alias": "champion", "tx_hash": TX}),
    ]  # fmt: skip


def _decisions(start: int, n: int) -> list[tuple[str, dict[str, Any]]]:
    return [
        (
            "decision.recorded",
            {
                "decision_id": f"dec-{i:09d}",
                "model_cid": MODEL,
                "input_commitment": f"{i * 2654435761 % 2**64:064x}",
                "score": round((i * 7919 % 10007) / 10007, 6),
                "threshold": 0.5,
                "outcome": "review" if i % 50 == 0 else "approve",
                "reasons": ["V14 low", "V4 high"] if i % 50 == 0 else [],
            },
        )
        for i in range(start, start + n)
    ]


def _ms(values: list[float]) -> dict[str, float]:
    values = sorted(values)
    return {
        "p50": round(statistics.median(values) * 1e3, 3),
        "p99": round(values[int(len(values) * 0.99)] * 1e3, 3),
        "max": round(values[-1] * 1e3, 3),
    }


def _http_traces(paths: Any, n: int, count: int) -> dict[str, float]:
    """Trace latency as an auditor sees it: real uvicorn, keep-alive client, auditor key."""
    import socket
    import threading

    import httpx
    import uvicorn

    from ledgerml.serving.app import create_app

    key = "bench-auditor-key-0123456789"
    app = create_app(paths, api_keys={"auditor": key})
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        assert thread.is_alive(), "server thread died"
        time.sleep(0.05)
    rng = random.Random(11)
    timings = []
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", headers={"X-API-Key": key}) as c:
            c.get("/audit/api/trace", params={"decision": "dec-000000001"}).raise_for_status()
            for _ in range(count):
                did = f"dec-{rng.randrange(n):09d}"
                t0 = time.perf_counter()
                r = c.get("/audit/api/trace", params={"decision": did})
                timings.append(time.perf_counter() - t0)
                assert r.status_code == 200 and r.json()["ok"], did
    finally:
        server.should_exit = True
        thread.join(timeout=60)
    return _ms(timings)


def run(quick: bool = False, progress: Any = print) -> dict[str, Any]:
    n = 100_000 if quick else 1_000_000
    queries = 200 if quick else 500
    results: dict[str, Any] = {"quick": quick, "decisions": n}
    with tempfile.TemporaryDirectory(prefix="ledgerml-bench-audit-") as tmp:
        paths = init_project(Path(tmp) / "proj", origin="ledgerml.bench/audit")
        progress(f"building a log of {n:,} decisions after one model's lineage")
        started = time.perf_counter()
        with open_ledger(paths) as ledger:
            ledger.append_many(_lineage())
            for k in range(0, n, CHUNK):
                ledger.append_many(_decisions(k, min(CHUNK, n - k)))
            size = ledger.size()
            ledger.append(
                "checkpoint.anchored",
                {"tree_size": size, "root": ledger.root(size).hex(), "note_sha256": "00" * 32,
                 "chain_id": 1, "contract": "0x" + "00" * 20, "tx_hash": TX},
            )  # fmt: skip
            size = ledger.size()
        results["build_seconds"] = round(time.perf_counter() - started, 1)
        results["tree_size"] = size

        progress("first index catch-up (full scan)")
        t0 = time.perf_counter()
        view = AuditView.open(paths)
        results["index_catch_up_s"] = round(time.perf_counter() - t0, 2)
        results["index_catch_up_entries_per_s"] = round(size / (time.perf_counter() - t0))
        results["index_db_bytes_per_entry"] = round(
            (paths.home / "index.db").stat().st_size / size, 1
        )
        try:
            t0 = time.perf_counter()
            view.refresh()
            results["index_top_up_idle_ms"] = round((time.perf_counter() - t0) * 1e3, 3)

            progress(f"{queries} traces of random decisions")
            rng = random.Random(7)
            trace_decision(view, "dec-000000000")  # warm connections
            timings, steps = [], 0
            for _ in range(queries):
                did = f"dec-{rng.randrange(n):09d}"
                t0 = time.perf_counter()
                trace = trace_decision(view, did)
                timings.append(time.perf_counter() - t0)
                assert trace.ok, f"a proof in the trace of {did} does not verify"
                steps = len(trace.steps)
            results["trace_ms"] = _ms(timings)
            results["trace_steps"] = steps
            results["trace_proofs_verified"] = queries * steps
            timings = []
            for _ in range(50):
                t0 = time.perf_counter()
                assert trace_model(view, MODEL).ok  # by CID: no chain here, so no alias
                timings.append(time.perf_counter() - t0)
            results["trace_model_ms"] = _ms(timings)
        finally:
            view.close()
        progress("the CLI end to end (a fresh process: interpreter start and imports included)")
        walls, inner = [], []
        for k in range(3):
            t0 = time.perf_counter()
            out = subprocess.run(
                [sys.executable, "-m", "ledgerml.cli.main", "--home", str(paths.home),
                 "audit", "trace", f"dec-{k * (n // 3):09d}", "--json"],
                capture_output=True, check=True, text=True,
            )  # fmt: skip
            walls.append(time.perf_counter() - t0)
            doc = json.loads(out.stdout)
            assert doc["ok"]
            inner.append(doc["seconds"])
        results["cli_trace_wall_ms"] = _ms(walls)
        results["cli_trace_reported_ms"] = _ms(inner)
        progress("over HTTP: GET /audit/api/trace from `ledgerml serve`'s app (uvicorn)")
        results["http_trace_ms"] = _http_traces(paths, n, 100)
    results["goals"] = {"trace p99 <= 100 ms at 1M entries": results["trace_ms"]["p99"] <= 100}
    return results


if __name__ == "__main__":
    print(json.dumps(run(quick="--quick" in sys.argv), indent=2))
