"""Reliability in figures: kill points, faults, fuzzed parsers, and a soak against `serve`.

    ledgerml bench reliability                     # quick: bench/results/reliability.json
    ledgerml bench reliability --soak-minutes 30   # + 30 min of decisions against `ledgerml serve`
    .venv/bin/python bench/bench_reliability.py [--soak-minutes N]

Every row is `fault -> expected -> observed` with numbers. The runs use the real CLI in
subprocesses (`LEDGERML_CRASH_AT=<point>` makes it SIGKILL itself at a named point, see
`ledgerml.faults`), real SQLite, the embedded EVM, and a real `ledgerml serve` process for
the soak. The same scenarios are the assertions of `tests/reliability/`; the helpers live
in `tests/reliability/harness.py` so test and bench measure the same thing.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
for _p in (REPO, REPO / "bench"):
    if str(_p) not in sys.path:
        sys.path.insert(0, str(_p))

from tests.reliability import harness  # noqa: E402  (the shared scenario code)

from bench_latency import _pct  # noqa: E402  (bench/ is on sys.path when benches run)

SOAK_RATE_PER_S = 25.0  # decisions per second, steady (one record per request)
SOAK_ANCHOR_EVERY_S = 60


# ----------------------------------------------------------------------------- soak


def _proc_sample(pid: int) -> tuple[int, int]:
    """(RSS in KiB, open file descriptors) of a live process, from /proc."""
    rss = 0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            rss = int(line.split()[1])
    return rss, len(os.listdir(f"/proc/{pid}/fd"))


def _soak_project(root: Path, progress: Callable[[str], None]) -> tuple[Path, str, list[str]]:
    """A project whose champion went through the real gate (check, two approvals, promote
    on the embedded chain): `ledgerml demo --synthetic`, as a user would run it."""
    r = harness.run_cli(
        root / "unused", "demo", "--dir", str(root / "demo"), "--synthetic", "--json"
    )
    if r.returncode != 0:
        raise RuntimeError(f"demo failed: {r.stderr[-2000:]}")
    out = json.loads(r.stdout)
    home = Path(out["home"])
    from ledgerml.config import ProjectPaths
    from ledgerml.mlops.training import load_model

    features = list(load_model(ProjectPaths(home), out["model_cid"]).features)
    key = harness.ensure_api_key(home, "scorer")
    progress(f"soak project {home}: champion {out['model_cid'][:20]}…, {len(features)} features")
    return home, key, features


def soak(minutes: float, progress: Callable[[str], None]) -> dict[str, Any]:
    """Steady decisions against a real `ledgerml serve` with background anchoring on."""
    import httpx

    root = Path(tempfile.mkdtemp(prefix="ledgerml-soak-"))
    home, key, features = _soak_project(root, progress)
    before = harness.count_type(home, "decision.recorded")
    port = harness.free_port()
    log_path = root / "serve.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            harness.cli_argv(
                home,
                "serve",
                "--port",
                str(port),
                "--mode",
                "sync",
                "--anchor-every",
                str(SOAK_ANCHOR_EVERY_S),
            ),
            env=harness.cli_env(),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    samples: list[dict[str, Any]] = []
    acked = errors = 0
    try:
        harness.wait_healthy(url, proc)
        import random

        rng = random.Random(17)
        interval = 1.0 / SOAK_RATE_PER_S
        end = time.monotonic() + minutes * 60
        minute_lat: list[float] = []
        next_sample = time.monotonic() + 60
        next_send = time.monotonic()
        minute = 0
        with httpx.Client(base_url=url, headers={"X-API-Key": key}, timeout=30) as client:
            while time.monotonic() < end:
                now = time.monotonic()
                if now < next_send:
                    time.sleep(next_send - now)
                next_send += interval
                rec = {f: round(rng.gauss(0, 1), 4) for f in features}
                if "Amount" in rec:
                    rec["Amount"] = round(abs(rec["Amount"]) * 80, 2)
                t0 = time.perf_counter()
                try:
                    resp = client.post("/v1/score", json={"features": rec})
                    ok = resp.status_code == 200
                except httpx.TransportError:
                    ok = False
                minute_lat.append((time.perf_counter() - t0) * 1000)
                acked += ok
                errors += not ok
                if time.monotonic() >= next_sample:
                    minute += 1
                    rss, fds = _proc_sample(proc.pid)
                    health = client.get("/healthz").json()
                    anchor = health.get("background", {}).get("anchor", {})
                    samples.append(
                        {
                            "minute": minute,
                            "rss_mib": round(rss / 1024, 1),
                            "open_fds": fds,
                            "requests": len(minute_lat),
                            "p50_ms": _pct(minute_lat, 50),
                            "p99_ms": _pct(minute_lat, 99),
                            "tree_size": health.get("tree_size"),
                            "anchor_runs": anchor.get("runs"),
                            "anchor_failures": anchor.get("failures"),
                        }
                    )
                    progress(f"soak minute {minute}: {samples[-1]}")
                    minute_lat = []
                    next_sample += 60
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    verify = harness.run_cli(home, "verify", "--json", timeout=1800)
    report = json.loads(verify.stdout) if verify.stdout.strip() else {}
    decisions = harness.count_type(home, "decision.recorded")
    anchors = harness.count_type(home, "checkpoint.anchored")
    steady = samples[1:] if len(samples) > 2 else samples  # minute 1 includes warm-up
    first, last = (steady[0], steady[-1]) if steady else ({}, {})
    return {
        "minutes": minutes,
        "rate_per_s": SOAK_RATE_PER_S,
        "anchor_every_s": SOAK_ANCHOR_EVERY_S,
        "acknowledged": acked,
        "errors": errors,
        "decisions_in_log": decisions - before,
        "acknowledged_missing": max(0, acked - (decisions - before)),
        "anchors_in_log": anchors,
        "verify_exit": verify.returncode,
        "verify_ok": bool(report.get("ok")),
        "rss_growth_mib": round(last.get("rss_mib", 0) - first.get("rss_mib", 0), 1),
        "fd_growth": last.get("open_fds", 0) - first.get("open_fds", 0),
        "p99_ms_first_last": [first.get("p99_ms"), last.get("p99_ms")],
        "p99_ms_max": max((s["p99_ms"] for s in samples), default=0.0),
        "samples": samples,
        "project": str(home),
        "serve_exit": proc.returncode,
    }


# ----------------------------------------------------------------------------- quick rows


def run(
    quick: bool = False,
    progress: Callable[[str], None] = print,
    soak_minutes: float = 0.0,
) -> dict[str, Any]:
    """The table rows (fault -> expected -> observed), and the soak when asked for."""
    rows: list[dict[str, Any]] = []
    rows += harness.kill_point_rows(rounds=2 if quick else 5, progress=progress)
    rows += harness.fault_rows(progress=progress)
    rows += harness.fuzz_rows(examples=200 if quick else 1000, progress=progress)
    out: dict[str, Any] = {"rows": rows}
    if soak_minutes > 0:
        out["soak"] = soak(soak_minutes, progress)
    return out


if __name__ == "__main__":
    import argparse

    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--soak-minutes", type=float, default=0.0)
    ap.add_argument("--soak-only", action="store_true", help="skip the quick rows")
    args = ap.parse_args()

    def _say(m: str) -> None:
        print(m, file=sys.stderr, flush=True)

    if args.soak_only:
        result: dict[str, Any] = {"soak": soak(args.soak_minutes, _say)}
    else:
        result = run(args.quick, _say, args.soak_minutes)
    (REPO / "bench" / "results").mkdir(parents=True, exist_ok=True)
    name = "reliability-soak" if args.soak_only else "reliability"
    (REPO / "bench" / "results" / f"{name}.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
