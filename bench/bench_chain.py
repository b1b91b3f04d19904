"""Governance transactions per second and per-transaction latency, embedded EVM vs anvil.

    .venv/bin/python bench/bench_chain.py [--quick]      # prints JSON

Each model goes through register -> submit metrics -> approve x2 -> promote (5 signed
transactions with fixed gas), plus one checkpoint anchor. Latency is the wall time of one
binding call: encode, dry-run (`eth_call`, on by default), sign, send, receipt, decode. The
anvil node is `LEDGERML_TEST_ANVIL_URL` if set, else one started here and stopped after.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ledgerml.chain import AnchorLog, Chain, Governance, Rule, deploy
from ledgerml.chain._cid import raw_cid_for_digest

REPO = Path(__file__).resolve().parents[1]


def _pct(sorted_ms: list[float], p: float) -> float:
    if not sorted_ms:
        return 0.0
    k = min(len(sorted_ms) - 1, max(0, round(p / 100 * (len(sorted_ms) - 1))))
    return round(sorted_ms[k], 2)


@contextmanager
def _anvil(url: str | None) -> Iterator[str]:
    url = url or os.environ.get("LEDGERML_TEST_ANVIL_URL")
    if url:
        yield url
        return
    with tempfile.TemporaryDirectory() as run_dir:
        env = {**os.environ, "RUN_DIR": run_dir}
        svc = str(REPO / "scripts" / "svc_anvil.sh")
        subprocess.run([svc, "start"], check=True, env=env, capture_output=True, timeout=60)
        try:
            yield (Path(run_dir) / "anvil.env").read_text().strip().split("=", 1)[1]
        finally:
            subprocess.run([svc, "stop"], check=True, env=env, capture_output=True, timeout=60)


def _workload(chain: Chain, models: int) -> dict[str, Any]:
    dep = deploy(chain, fresh=True)
    gov = Governance(chain, dep.model_registry)
    log = AnchorLog(chain, dep.audit_anchor)
    gov.set_policy(
        "bench-v1",
        [Rule("auprc", ">=", 0.7), Rule("di_ratio", ">=", 0.8), Rule("psi", "<=", 0.1)],
        ["risk_approver", "compliance_approver"],
        0.25,
    )
    lat: dict[str, list[float]] = {}
    gas: dict[str, int] = {}

    def timed(name: str, fn: Callable[[], Any]) -> None:
        t0 = time.perf_counter()
        res = fn()
        lat.setdefault(name, []).append((time.perf_counter() - t0) * 1000)
        gas[name] = res.gas_used

    metrics = {"auprc": 0.82, "di_ratio": 0.91, "psi": 0.03}
    start = time.perf_counter()
    for i in range(models):
        cid = raw_cid_for_digest(os.urandom(32))
        timed("register", lambda cid=cid, i=i: gov.register_model(cid, "ab" * 32, "bench-v1", i))
        timed("submit_metrics", lambda cid=cid: gov.submit_metrics(cid, metrics))
        timed("approve", lambda cid=cid: gov.approve(cid, "risk_approver"))
        timed("approve", lambda cid=cid: gov.approve(cid, "compliance_approver"))
        timed("promote", lambda cid=cid: gov.promote(cid, "production"))
        timed(
            "anchor",
            lambda i=i: log.anchor_checkpoint("bench/log", i + 1, os.urandom(32), os.urandom(32)),
        )
    elapsed = time.perf_counter() - start
    everything = sorted(x for v in lat.values() for x in v)
    return {
        "transactions": len(everything),
        "seconds": round(elapsed, 3),
        "tx_per_s": round(len(everything) / elapsed, 1),
        "latency_ms": {
            "p50": _pct(everything, 50),
            "p95": _pct(everything, 95),
            "p99": _pct(everything, 99),
            "mean": round(statistics.fmean(everything), 2),
        },
        "median_ms_by_call": {k: round(statistics.median(v), 2) for k, v in sorted(lat.items())},
        "gas_by_call": dict(sorted(gas.items())),
    }


def run(quick: bool = False, anvil_url: str | None = None) -> dict[str, Any]:
    """Run the governance benchmark on both backends; returns a JSON-able dict."""
    models = 4 if quick else 40
    out: dict[str, Any] = {
        "benchmark": "chain",
        "quick": quick,
        "models": models,
        "calls_per_model": 6,
        "results": {},
    }
    variants = [True] if quick else [True, False]
    seed = os.urandom(32)
    with tempfile.TemporaryDirectory() as tmp:
        for preflight in variants:
            with Chain.embedded(Path(tmp) / f"chain-{preflight}", seed, preflight=preflight) as c:
                key = "embedded" + ("" if preflight else " (no dry-run)")
                out["results"][key] = _workload(c, models)
    with _anvil(anvil_url) as url:
        for preflight in variants:
            with Chain.connect(url, seed, preflight=preflight) as c:
                key = "anvil" + ("" if preflight else " (no dry-run)")
                out["results"][key] = _workload(c, models)
    return out


if __name__ == "__main__":
    print(json.dumps(run(quick="--quick" in sys.argv[1:]), indent=2))
