"""Decision latency with and without the ledger, and with a blockchain in the loop.

    ledgerml bench latency [--quick]          # writes bench/results/latency.json + latency.png
    ledgerml bench latency --model-type lightgbm --model-type onnx   # per model type, vs XGBoost
    .venv/bin/python bench/bench_latency.py [--quick]

One small XGBoost model (trained here, promoted through the gate: the ModelRegistry
contract), one fixed list of requests, the same for every scenario; each scenario gets a
fresh copy of the project:

  (a) scoring alone: validate, predict, TreeSHAP reasons for alerts, salted commitment,
      decision ID; no `ledger.prepare`, no commit;
  (b) + ledger, `sync` (respond after the durable SQLite commit);
  (c) + ledger, `async` (respond once queued; group commit behind);
  (d) (b) + one AuditAnchor.anchor transaction per decision on the embedded EVM;
  (e) (b) + one anchor transaction per decision on anvil, instant mining;
  (f) anvil mining every 1 s and every 12 s: time from the request to the receipt of the
      decision's anchor transaction (decisions arrive at random times, sent concurrently).

(a)-(e) run in-process (DecisionService.score, one caller) and over HTTP (uvicorn in a thread
of this process; the load comes from a separate process with asyncio keep-alive clients):
once with one client (latency) and, for (a)-(c), with several concurrent clients
(throughput under load). anvil is started and stopped here, by PID.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results"
ANVIL = REPO / "tools" / "solc" / "node_modules" / ".bin" / "anvil"
KEY = "bench-admin-key-0123456789"
API_KEYS = {"admin": KEY}
FEATURES = ["V1", "V2", "V3", "V4", "V5", "V6", "Amount"]
PAPER_MS = {"paper hybrid 85 ms": 85.0, "paper PoS 50 ms": 50.0, "paper PoW 450 ms": 450.0}


# ----------------------------------------------------------------------------- helpers


def _pct(values: list[float], p: float) -> float:
    s = sorted(values)
    if not s:
        return 0.0
    k = min(len(s) - 1, max(0, round(p / 100 * (len(s) - 1))))
    return round(s[k], 3)


def _summary(lat_ms: list[float], seconds: float) -> dict[str, Any]:
    return {
        "n": len(lat_ms),
        "p50_ms": _pct(lat_ms, 50),
        "p95_ms": _pct(lat_ms, 95),
        "p99_ms": _pct(lat_ms, 99),
        "max_ms": round(max(lat_ms), 3) if lat_ms else 0.0,
        "mean_ms": round(sum(lat_ms) / len(lat_ms), 3) if lat_ms else 0.0,
        "throughput_per_s": round(len(lat_ms) / seconds, 1) if seconds > 0 else 0.0,
    }


def _fdatasync_floor(folder: Path, n: int) -> dict[str, Any]:
    """Append 300 bytes and fdatasync, n times, in the projects' folder: the cost of
    durability alone, which no ledger design avoids in `sync` mode."""
    path = folder / "fdatasync.probe"
    lat: list[float] = []
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        for _ in range(n):
            os.write(fd, b"x" * 300)
            t0 = time.perf_counter()
            os.fdatasync(fd)
            lat.append((time.perf_counter() - t0) * 1000)
    finally:
        os.close(fd)
        path.unlink()
    return _summary(lat, sum(lat) / 1000)


def _sqlite_floor(folder: Path, n: int) -> dict[str, Any]:
    """One 450-byte row per durable transaction (WAL, synchronous=FULL), n times, with
    0.5 ms of busy CPU between commits as in (b): what SQLite alone costs per decision."""
    import sqlite3

    path = folder / "floor.db"
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("CREATE TABLE e (i INTEGER PRIMARY KEY, b BLOB NOT NULL)")
    row, lat = b"x" * 450, []
    try:
        for _ in range(n):
            t0 = time.perf_counter()
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("INSERT INTO e (b) VALUES (?)", (row,))
            conn.execute("COMMIT")
            lat.append((time.perf_counter() - t0) * 1000)
            while time.perf_counter() - t0 < 0.0005:
                pass
    finally:
        conn.close()
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
    return _summary(lat, sum(lat) / 1000)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _trained_project(root: Path) -> tuple[Path, float]:
    """A promoted model and its operating threshold (80% recall on the held-out window,
    recorded by the real evaluation), so the alert rate is the model's own, not chosen."""
    from ledgerml.chain import deploy
    from ledgerml.datasets.synthetic import fraud_csv
    from ledgerml.ledger import init_project
    from ledgerml.mlops import project_chain
    from ledgerml.mlops.datasets import register_dataset
    from ledgerml.mlops.evaluation import evaluate_model
    from ledgerml.mlops.training import train_model

    paths = init_project(root / "proj")
    rec = register_dataset(paths, fraud_csv(root / "fraud.csv", rows=5000), "cards", label="Class")
    result = train_model(
        paths, rec.cid, "Class", params={"num_boost_round": 50, "early_stopping_rounds": 0}
    )
    metrics = evaluate_model(paths, result.model_cid).metrics
    with project_chain(paths) as chain:
        deploy(chain, chain_dir=paths.chain)
    return paths.home, _promote(paths, result.model_cid, metrics)


def _promote(paths: Any, cid: str, metrics: dict[str, Any]) -> float:
    """Promote `cid` as `champion` through the gate (the service only serves what the
    ModelRegistry allows); the threshold goes on chain with the metrics (as `ledgerml
    check` submits it) and is returned."""
    from ledgerml.chain import Rule
    from ledgerml.mlops.governance import THRESHOLD_METRIC, GovernanceService

    with GovernanceService.open(paths) as gov:
        gov.set_policy("bench-v1", [Rule("auprc", ">=", 0.0)], ["risk_approver"], 1.0)
        gov.register(cid, "bench-v1")
        gov.submit_metrics(
            cid, {"auprc": metrics["auprc"], THRESHOLD_METRIC: metrics[THRESHOLD_METRIC]}
        )
        gov.approve(cid, "risk_approver")
        gov.promote(cid, "champion")
        threshold = gov.gov.metric(cid, THRESHOLD_METRIC)
    assert threshold is not None
    return threshold


def _gate_reads(home: Path, n: int = 20) -> dict[str, Any]:
    """What the service's refresh costs when it reads the gate (ModelRegistry, read-only):
    open the embedded chain, check the deployment, modelForAlias/getModel/metricOf. Off the
    request path; `ledgerml promote` elsewhere waits at most this long for the chain lock."""
    from ledgerml.config import ProjectPaths
    from ledgerml.serving.decisions import DecisionService

    with DecisionService.open(ProjectPaths(home)) as svc:
        lat = []
        for _ in range(n):
            t0 = time.perf_counter()
            svc.read_gate()
            lat.append((time.perf_counter() - t0) * 1000)
        assert svc.gate.served["champion"]["threshold_source"].startswith("on chain")
    return {
        "reads": n,
        "p50_ms": _pct(lat, 50),
        "p99_ms": _pct(lat, 99),
        "max_ms": round(max(lat), 3),
    }


def _requests(n: int, seed: int = 7) -> list[bytes]:
    """n single-record request bodies, fixed for the whole run."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        rec = {f: round(rng.gauss(0, 1), 5) for f in FEATURES[:-1]}
        rec["Amount"] = round(rng.lognormvariate(3.2, 1.0), 2)
        out.append(json.dumps({"features": rec}).encode())
    return out


# ------------------------------------------------------------- scenario wiring (hooks)


class _NoLedger:
    """Stands in for the ledger during scoring only: no entry is prepared or committed."""

    def __init__(self, real: Any) -> None:
        self._real = real

    def prepare(self, *_: Any) -> None:
        return None

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)


class _NullLogger:
    depth = 0
    in_flight = 0
    last_commit_s = 0.0

    def submit(self, entries: list[Any], ids: list[str]) -> None:
        return None

    async def record(self, entries: list[Any], ids: list[str]) -> None:
        return None

    def close(self) -> None:
        return None


def _configure(svc: Any, scenario: str, anchor: Any | None) -> None:
    """Turn a freshly opened DecisionService into scenario (a), (b)/(c) or (d)/(e)."""
    if scenario == "a":
        svc.ledger = _NoLedger(svc.ledger)
        svc.logger = _NullLogger()
        return
    if anchor is None:
        return
    lock = threading.Lock()
    submit = svc.logger.submit

    def submit_and_anchor(entries: list[Any], ids: list[str]) -> int | None:
        first = submit(entries, ids)
        size = (first or 0) + len(entries)
        digest = hashlib.sha256(ids[-1].encode()).digest()
        with lock:  # one account, one nonce sequence: the chain client is not thread-safe
            anchor.anchor_checkpoint(f"bench/{scenario}", size, digest, digest)
        return first

    record = svc.logger.record

    async def record_and_anchor(entries: list[Any], ids: list[str]) -> int | None:
        first = await record(entries, ids)
        size = (first or 0) + len(entries)
        digest = hashlib.sha256(ids[-1].encode()).digest()
        with lock:  # blocks the loop for the transaction: one decision at a time, as in (d)/(e)
            anchor.anchor_checkpoint(f"bench/{scenario}", size, digest, digest)
        return first

    svc.logger.submit = submit_and_anchor
    svc.logger.record = record_and_anchor


@contextmanager
def _service(home: Path, mode: str, scenario: str, anchor: Any | None) -> Iterator[Any]:
    from ledgerml.config import ProjectPaths
    from ledgerml.serving.decisions import DecisionService

    svc = DecisionService.open(ProjectPaths(home), mode=mode)  # type: ignore[arg-type]
    _configure(svc, scenario, anchor)
    try:
        yield svc
    finally:
        if scenario == "a":
            svc.ledger = svc.ledger._real
        svc.close()


@contextmanager
def _server(home: Path, mode: str, scenario: str, anchor: Any | None) -> Iterator[str]:
    """uvicorn in a thread; the app's DecisionService is wired for the scenario at startup."""
    import uvicorn

    import ledgerml.serving.app as app_mod
    from ledgerml.config import ProjectPaths
    from ledgerml.serving.decisions import DecisionService

    class Wired(DecisionService):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            _configure(self, scenario, anchor)

        def close(self) -> None:
            if isinstance(self.ledger, _NoLedger):
                self.ledger = self.ledger._real
            super().close()

    original = app_mod.DecisionService
    app_mod.DecisionService = Wired  # type: ignore[misc]
    try:
        app = app_mod.create_app(ProjectPaths(home), mode=mode, api_keys=API_KEYS)  # type: ignore[arg-type]
        port = _free_port()
        server = uvicorn.Server(
            uvicorn.Config(
                app,
                host="127.0.0.1",
                port=port,
                log_level="warning",
                lifespan="on",
                access_log=False,
            )
        )
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        deadline = time.monotonic() + 30
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.02)
        try:
            yield f"http://127.0.0.1:{port}"
        finally:
            server.should_exit = True
            thread.join(timeout=60)
    finally:
        app_mod.DecisionService = original  # type: ignore[misc]


# ---------------------------------------------------------------------- measurement


def _in_process(svc: Any, bodies: list[bytes], warmup: int) -> dict[str, Any]:
    from ledgerml.serving.scoring import parse_request

    model = svc.model_for("champion")
    features = model.model.features
    lat: list[float] = []
    by_outcome: dict[str, list[float]] = {}
    alerts = 0
    for i, body in enumerate(bodies[:warmup] + bodies):
        t0 = time.perf_counter()
        req = parse_request(json.loads(body), features)
        made = svc.score(req, model)
        out = [d.to_json() for d in made]
        dt = (time.perf_counter() - t0) * 1000
        if i >= warmup:
            lat.append(dt)
            alerts += out[0]["outcome"] == "review"
            by_outcome.setdefault(out[0]["outcome"], []).append(dt)
    t_total = sum(lat) / 1000
    res = _summary(lat, t_total)
    res["alert_fraction"] = round(alerts / len(bodies), 3)
    res["p50_ms_by_outcome"] = {k: _pct(v, 50) for k, v in sorted(by_outcome.items())}
    return res


def _http(url: str, bodies: list[bytes], concurrency: int, warmup: int) -> dict[str, Any]:
    """Load from a separate process (this file with --loadgen): keep-alive HTTP/1.1 clients."""
    with tempfile.TemporaryDirectory(prefix="ledgerml-loadgen-") as tmp:
        out = Path(tmp) / "result.json"
        job = {
            "url": url,
            "key": KEY,
            "bodies": [b.decode() for b in bodies],
            "concurrency": concurrency,
            "warmup": warmup,
            # a file, not stdout: a 300 kB result on stdout once came back with other bytes
            # interleaved at a buffer boundary (JSONDecodeError at char 294,912)
            "out": str(out),
        }
        proc = subprocess.run(
            [sys.executable, __file__, "--loadgen"],
            input=json.dumps(job).encode(),
            capture_output=True,
            timeout=1800,
            check=False,
        )
        if proc.returncode != 0 or not out.is_file():
            raise RuntimeError(f"load generator failed: {proc.stderr.decode()[-2000:]}")
        got = json.loads(out.read_bytes())
    res = _summary(got["latencies_ms"], got["seconds"])
    res["concurrency"] = concurrency
    res["errors"] = got["errors"]
    return res


def _loadgen() -> None:
    """Keep-alive HTTP/1.1 clients on asyncio streams (uvloop when present).

    A general-purpose client (httpx) spends more CPU per request than the service
    does, and on two cores that CPU is taken from the server being measured; this
    client writes a fixed request and reads Content-Length bytes back, nothing more.
    """
    import asyncio
    from urllib.parse import urlsplit

    job = json.loads(sys.stdin.buffer.read())
    url = urlsplit(job["url"])
    head = (
        f"POST /v1/score HTTP/1.1\r\nHost: {url.netloc}\r\n"
        f"Authorization: Bearer {job['key']}\r\nContent-Type: application/json\r\n"
    ).encode()
    requests = [head + b"Content-Length: %d\r\n\r\n" % len(b) + b.encode() for b in job["bodies"]]
    conc, warmup = int(job["concurrency"]), int(job["warmup"])

    async def roundtrip(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, req: bytes
    ) -> int:
        writer.write(req)
        status_line = await reader.readline()
        length = 0
        while (line := await reader.readline()) not in (b"\r\n", b""):
            if line[:15].lower() == b"content-length:":
                length = int(line[15:])
        await reader.readexactly(length)
        return int(status_line.split()[1])

    async def main() -> dict[str, Any]:
        conns = [await asyncio.open_connection(url.hostname, url.port) for _ in range(conc)]
        for k in range(warmup):
            await roundtrip(*conns[k % conc], requests[k % len(requests)])
        lat: list[float] = []
        errors = 0
        nxt = iter(range(len(requests)))

        async def worker(conn: tuple[asyncio.StreamReader, asyncio.StreamWriter]) -> None:
            nonlocal errors
            for i in nxt:
                t0 = time.perf_counter()
                status = await roundtrip(*conn, requests[i])
                lat.append((time.perf_counter() - t0) * 1000)
                errors += status != 200

        t0 = time.perf_counter()
        await asyncio.gather(*(worker(c) for c in conns))
        seconds = time.perf_counter() - t0
        for _, w in conns:
            w.close()
        return {"latencies_ms": lat, "seconds": seconds, "errors": errors}

    try:
        import uvloop

        result = uvloop.run(main())
    except ImportError:
        result = asyncio.run(main())
    Path(job["out"]).write_text(json.dumps(result))


# ---------------------------------------------------------------------------- anvil


@contextmanager
def _anvil() -> Iterator[str]:
    """Start anvil (instant mining) on a free port; stop it by PID (and its child binary)."""
    if not ANVIL.exists():
        raise RuntimeError("anvil not installed: run `npm ci` in tools/solc")
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen(
        [str(ANVIL), "--host", "127.0.0.1", "--port", str(port), "--silent"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    kids: list[int] = []
    try:
        import httpx

        deadline = time.monotonic() + 20
        while True:
            try:
                r = httpx.post(
                    url, json={"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []}
                )
                if "result" in r.json():
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("anvil did not start")
            time.sleep(0.05)
        out = subprocess.run(["pgrep", "-P", str(proc.pid)], capture_output=True, text=True)
        kids = [int(p) for p in out.stdout.split()]
        yield url
    finally:
        proc.send_signal(signal.SIGTERM)  # the npm wrapper forwards it to the binary
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
        for pid in kids:  # whatever survived (should be nothing)
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                continue
            time.sleep(0.5)
            with suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def _rpc(chain: Any, method: str, params: list[Any]) -> Any:
    return chain.w3.provider.make_request(method, params)


def _inclusion(
    chain: Any, anchor: Any, home: Path, block_time: int, n: int, window_s: float
) -> dict[str, Any]:
    """Interval mining every `block_time` s; n decisions at random times in `window_s`, each
    recorded (sync ledger) then anchored; time from request to the receipt being visible."""
    from ledgerml.chain.anchor import GAS_ANCHOR

    _rpc(chain, "evm_setAutomine", [False])
    _rpc(chain, "evm_setIntervalMining", [block_time])
    account = chain.accounts["log_operator"]
    sender = str(account.address)
    w3 = chain.w3
    lock = threading.Lock()
    nonce = [int(w3.eth.get_transaction_count(sender, "pending"))]  # type: ignore[arg-type]
    max_fee, tip = chain._fees()
    rng = random.Random(block_time)
    offsets = sorted(rng.uniform(0, window_s) for _ in range(n))
    bodies = _requests(n, seed=100 + block_time)
    results: list[dict[str, Any]] = []
    errors: list[str] = []
    with _service(home, "sync", "f", None) as svc:
        from ledgerml.serving.scoring import parse_request

        model = svc.model_for("champion")
        t_start = time.perf_counter() + 0.2

        def one(i: int) -> None:
            try:
                time.sleep(max(0.0, t_start + offsets[i] - time.perf_counter()))
                t0 = time.perf_counter()
                with lock:
                    req = parse_request(json.loads(bodies[i]), model.model.features)
                    d = svc.score(req, model)[0]
                    digest = hashlib.sha256(d.decision_id.encode()).digest()
                    data = chain._encode_call(
                        anchor.contract,
                        "anchor",
                        [f"bench/f{block_time}/{i}", d.index + 1, digest, digest],
                    )
                    tx = {
                        "type": 2,
                        "chainId": chain.chain_id,
                        "nonce": nonce[0],
                        "value": 0,
                        "to": anchor.address,
                        "data": data,
                        "gas": GAS_ANCHOR,
                        "maxFeePerGas": max_fee,
                        "maxPriorityFeePerGas": tip,
                    }
                    nonce[0] += 1
                    h = w3.eth.send_raw_transaction(account.sign_transaction(tx).raw_transaction)
                t_sent = time.perf_counter()
                while True:
                    rec = w3.eth.get_transaction_receipt(h) if _mined(w3, h) else None
                    if rec is not None:
                        break
                    if time.perf_counter() - t0 > 4 * block_time + 30:
                        raise TimeoutError("not included")
                    time.sleep(0.01)
                t1 = time.perf_counter()
                results.append(
                    {
                        "respond_ms": (t_sent - t0) * 1000,
                        "inclusion_ms": (t1 - t0) * 1000,
                        "block": int(rec["blockNumber"]),
                        "ok": int(rec["status"]) == 1,
                    }
                )
            except Exception as exc:  # reported in the results
                errors.append(f"{type(exc).__name__}: {exc}")

        threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    _rpc(chain, "evm_setIntervalMining", [0])
    _rpc(chain, "evm_setAutomine", [True])
    incl = [r["inclusion_ms"] for r in results]
    blocks = sorted({r["block"] for r in results})
    stamps = [int(w3.eth.get_block(b)["timestamp"]) for b in blocks]
    return {
        "block_time_s": block_time,
        "n": len(results),
        "failed_tx": sum(not r["ok"] for r in results),
        "errors": errors,
        "window_s": window_s,
        "inclusion_p50_ms": _pct(incl, 50),
        "inclusion_p95_ms": _pct(incl, 95),
        "inclusion_max_ms": round(max(incl), 1) if incl else 0.0,
        "respond_p50_ms": _pct([r["respond_ms"] for r in results], 50),
        "blocks_used": len(blocks),
        "block_timestamps_span_s": (stamps[-1] - stamps[0]) if stamps else 0,
    }


def _mined(w3: Any, h: bytes) -> bool:
    from web3.exceptions import TransactionNotFound

    try:
        w3.eth.get_transaction_receipt(h)
        return True
    except TransactionNotFound:
        return False


# ------------------------------------------------------------------------------ plot


def _plot(out: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = list(out["scenarios"])
    fig, ax = plt.subplots(figsize=(11, 5.5))
    xs = range(len(labels))
    for where, dx, color in (("in_process", -0.15, "tab:blue"), ("http", 0.15, "tab:orange")):
        p50 = [out["scenarios"][k].get(where, {}).get("p50_ms") for k in labels]
        p99 = [out["scenarios"][k].get(where, {}).get("p99_ms") for k in labels]
        pts = [(x + dx, a, b) for x, a, b in zip(xs, p50, p99, strict=True) if a]
        if pts:
            ax.scatter(
                [p[0] for p in pts],
                [p[1] for p in pts],
                color=color,
                marker="o",
                label=f"{where.replace('_', '-')} p50",
            )
            ax.scatter(
                [p[0] for p in pts],
                [p[2] for p in pts],
                color=color,
                marker="v",
                label=f"{where.replace('_', '-')} p99",
            )
    incl = out.get("inclusion", {})
    first = len(labels)
    for j, (_k, v) in enumerate(sorted(incl.items(), key=lambda kv: kv[1]["block_time_s"])):
        x = first + j
        ax.scatter(
            [x],
            [v["inclusion_p50_ms"]],
            color="tab:red",
            marker="s",
            label="time to inclusion p50" if j == 0 else None,
        )
        ax.scatter(
            [x],
            [v["inclusion_max_ms"]],
            color="tab:red",
            marker="^",
            label="time to inclusion max" if j == 0 else None,
        )
        labels.append(f"(f) anvil {v['block_time_s']} s blocks\ninclusion")
    for (name, ms), style in zip(PAPER_MS.items(), ("--", ":", "-."), strict=True):
        ax.axhline(ms, color="gray", linestyle=style, linewidth=1)
        ax.text(len(labels) - 0.5, ms * 1.08, name, ha="right", fontsize=8, color="dimgray")
    ax.set_yscale("log")
    ax.set_xticks(range(len(labels)))
    ax.set_xticklabels([lbl.replace(", ", "\n", 1) for lbl in labels], fontsize=8)
    ax.set_ylabel("latency per decision (ms, log scale)")
    ax.set_title("LedgerML decision latency: ledger in the path, consensus out of it")
    ax.grid(True, which="both", axis="y", alpha=0.3)
    ax.legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


# ------------------------------------------------------------------------------- run


def _fit_for(model_type: str, x: Any, y: Any) -> Any:
    """A model of about the same size for every type: 50 trees."""
    if model_type == "xgboost":
        from xgboost import XGBClassifier

        return XGBClassifier(n_estimators=50, max_depth=6, n_jobs=1, tree_method="hist").fit(x, y)
    if model_type == "lightgbm":
        import lightgbm as lgb

        return lgb.LGBMClassifier(
            n_estimators=50, num_leaves=31, n_jobs=1, deterministic=True, verbose=-1
        ).fit(x, y)
    from sklearn.ensemble import GradientBoostingClassifier

    fitted = GradientBoostingClassifier(n_estimators=50, max_depth=3, random_state=0).fit(x, y)
    if model_type == "sklearn":
        return fitted
    from skl2onnx import to_onnx

    return to_onnx(fitted, x[:1].astype("float32"), options={id(fitted): {"zipmap": False}})


def _typed_project(root: Path, model_type: str) -> tuple[Path, float]:
    """`_trained_project` for a model trained outside LedgerML (the Python API's log_model)."""
    import numpy as np

    import ledgerml
    from ledgerml.datasets.synthetic import fraud_csv
    from ledgerml.mlops.training import load_table

    project = ledgerml.init(root / "proj")
    rec = project.add_data(fraud_csv(root / "fraud.csv", rows=5000), name="cards", label="Class")
    table = load_table(project.paths, rec.cid).sort_by("Time")
    cut = int(table.num_rows * 0.8)
    x = np.column_stack([table.column(f).to_numpy() for f in FEATURES])[:cut]
    y = table.column("Class").to_numpy()[:cut]
    with project.start_run(data="cards") as run:
        model = run.log_model(_fit_for(model_type, x, y), features=FEATURES, target="Class")
    metrics = project.evaluate(model).metrics
    return project.paths.home, _promote(project.paths, model.cid, metrics)


def run_model_types(
    model_types: list[str], quick: bool = False, progress: Callable[[str], None] = print
) -> dict[str, Any]:
    """Serving overhead per model type, XGBoost (same API, same size) as the in-run baseline.

    For each type: (a) scoring alone and (b) + ledger `sync`, in-process, and (b) over
    HTTP with one client; ratios are against XGBoost measured in this same run."""
    n = 300 if quick else 2000
    warmup = 30 if quick else 200
    bodies = _requests(n)
    types = ["xgboost", *[t for t in model_types if t != "xgboost"]]
    out: dict[str, Any] = {
        "quick": quick,
        "requests": "one record per request, the same list for every type",
        "models": "50 trees each: XGBClassifier depth 6, LGBMClassifier 31 leaves, ONNX of "
        "scikit-learn GradientBoostingClassifier depth 3 (onnxruntime, 1 thread); "
        "all recorded with Run.log_model and promoted through the gate; reasons for alerts",
        "types": {},
    }
    with tempfile.TemporaryDirectory() as tmp_s:
        tmp = Path(tmp_s)
        for t in types:
            progress(f"{t}: training, recording, promoting")
            base, threshold = _typed_project(tmp / t, t)
            res: dict[str, Any] = {"alert_threshold": threshold}
            for key, label in (("a", "scoring alone"), ("b", "+ ledger, sync")):
                copy = tmp / f"{t}-{key}"
                shutil.copytree(base, copy)
                progress(f"{t}: {label}, in-process")
                with _service(copy, "sync", key, None) as svc:
                    res[f"in_process {label}"] = _in_process(svc, bodies, warmup)
            copy = tmp / f"{t}-http"
            shutil.copytree(base, copy)
            progress(f"{t}: + ledger, sync, HTTP one client")
            with _server(copy, "sync", "b", None) as url:
                res["http + ledger, sync"] = _http(url, bodies, 1, warmup)
            out["types"][t] = res
    ref = out["types"]["xgboost"]
    for res in out["types"].values():
        res["ratio_vs_xgboost"] = {
            k: {
                p: round(res[k][p] / ref[k][p], 2) if ref[k][p] else None
                for p in ("p50_ms", "p99_ms")
            }
            for k in res
            if isinstance(res[k], dict) and "p50_ms" in res[k]
        }
    return out


def run(
    quick: bool = False,
    progress: Callable[[str], None] = print,
    model_types: list[str] | None = None,
) -> dict[str, Any]:
    if model_types:
        return run_model_types(model_types, quick, progress)
    from ledgerml.chain import AnchorLog, Chain, deploy

    n_fast = 300 if quick else 3000  # (a)-(c), one caller
    n_load = 600 if quick else 6000  # (a)-(c) over HTTP, concurrent
    n_chain = 40 if quick else 300  # (d), (e)
    conc = 16  # concurrent keep-alive connections for the loaded runs (a payment switch has many)
    warmup = 30 if quick else 200
    incl_plan = [(1, 6, 3.0), (12, 3, 12.0)] if quick else [(1, 25, 6.0), (12, 7, 24.0)]
    bodies = _requests(max(n_fast, n_load))
    seed = os.urandom(32)
    out: dict[str, Any] = {
        "quick": quick,
        "requests": "one record per request, the same list for every scenario",
        "model": "XGBoost, 50 rounds, 7 features; TreeSHAP top-3 reasons for alerts",
        "alert_threshold": None,  # set below: the model's own operating threshold
        "http_load": f"separate process, asyncio keep-alive HTTP/1.1, {conc} concurrent clients",
        "scenarios": {},
        "inclusion": {},
    }
    sc = out["scenarios"]
    with tempfile.TemporaryDirectory() as tmp_s:
        tmp = Path(tmp_s)
        progress("training the model")
        base, out["alert_threshold"] = _trained_project(tmp / "base")
        progress("gate reads (the service's refresh of the champion and its threshold)")
        out["gate_read"] = _gate_reads(base)
        copies = iter(range(1000))

        def fresh() -> Path:
            dest = tmp / f"p{next(copies)}"
            shutil.copytree(base, dest)
            return dest

        plain = [
            ("a", "(a) scoring alone", "sync"),
            ("b", "(b) + ledger, sync", "sync"),
            ("c", "(c) + ledger, async", "async"),
        ]
        for key, label, mode in plain:
            progress(f"{label}: in-process")
            with _service(fresh(), mode, key, None) as svc:
                ip = _in_process(svc, bodies[:n_fast], warmup)
            progress(f"{label}: HTTP")
            with _server(fresh(), mode, key, None) as url:
                h1 = _http(url, bodies[:n_fast], 1, warmup)
            with _server(fresh(), mode, key, None) as url:
                hl = _http(url, bodies[:n_load], conc, warmup)
            sc[label] = {"in_process": ip, "http": h1, "http_loaded": hl}

        a_ip, b_ip = sc["(a) scoring alone"]["in_process"], sc["(b) + ledger, sync"]["in_process"]
        out["ledger_overhead_in_process_ms"] = {
            "p50": round(b_ip["p50_ms"] - a_ip["p50_ms"], 3),
            "p99": round(b_ip["p99_ms"] - a_ip["p99_ms"], 3),
            "budget_p99": 0.2,
        }
        # The floor under (b): a durable append needs one fdatasync on this disk.
        out["fdatasync_floor"] = _fdatasync_floor(tmp, n_fast)
        out["sqlite_commit_floor"] = _sqlite_floor(tmp, n_fast)

        def chain_scenario(key: str, anchor: Any) -> dict[str, Any]:
            """One chain transaction per decision, in-process and over HTTP (one client)."""
            with _service(fresh(), "sync", key, anchor) as svc:
                ip = _in_process(svc, bodies[:n_chain], min(warmup, 20))
            with _server(fresh(), "sync", f"{key}-http", anchor) as url:
                h1 = _http(url, bodies[:n_chain], 1, min(warmup, 20))
            return {"in_process": ip, "http": h1}

        progress("(d) embedded EVM")
        with Chain.embedded(tmp / "evm", seed) as chain:
            anchor = AnchorLog(chain, deploy(chain, fresh=True).audit_anchor)
            sc["(d) + embedded-EVM tx"] = chain_scenario("d", anchor)

        progress("(e) anvil, instant mining")
        with _anvil() as rpc, Chain.connect(rpc, seed) as chain:
            anchor = AnchorLog(chain, deploy(chain, fresh=True).audit_anchor)
            sc["(e) + anvil tx, instant mining"] = chain_scenario("e", anchor)
            for block_time, n, window in incl_plan:
                progress(f"(f) anvil, {block_time} s blocks: {n} decisions")
                out["inclusion"][f"(f) anvil {block_time} s blocks"] = _inclusion(
                    chain, anchor, fresh(), block_time, n, window
                )

    RESULTS.mkdir(parents=True, exist_ok=True)
    png = RESULTS / ("latency-quick.png" if quick else "latency.png")
    _plot(out, png)
    out["plot"] = str(png.relative_to(REPO))
    return out


if __name__ == "__main__":
    if "--loadgen" in sys.argv[1:]:
        _loadgen()
    else:
        print(json.dumps(run(quick="--quick" in sys.argv[1:]), indent=2))
