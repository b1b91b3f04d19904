"""MLflow plugin overhead: `log_batch` and `create_model_version` with and without LedgerML.

    ledgerml bench mlflow [--quick]                 # from the main venv
    .venv-mlflow/bin/python bench/bench_mlflow.py --worker [--quick]   # prints JSON

mlflow lives in .venv-mlflow (docs/mlflow.md), so `ledgerml bench mlflow` runs this file
there as a worker and reads its JSON. In one process, on fresh SQLite files in one temporary
folder, the worker times MLflow's own `SqlAlchemyStore` (tracking and model registry) and
LedgerML's subclasses (`ledgerml+sqlite`) on the same calls, rounds interleaved so both see
the same machine load. The HTTP server adds the same request cost to both, so the store-level
ratio is the upper bound of what a client sees.

Rows:
* `log_batch_10` / `log_batch_996`: one `log_batch` of 10 (996) metric points, 2 params
  and 2 tags into a running run; the plugin adds the existing-point query, the per-key
  multiset hashes and one durable ledger append;
* `create_model_version`: a new version of a registered model whose source is a logged
  model's folder (`mlflow-artifacts:/…`) with 4 recorded files (MLmodel naming an XGBoost
  file), a different logged model (new bytes, new CIDs) for every version; the plugin reads
  the files' CIDs and the MLmodel from the ledger and the CAS and appends two entries.

Goal: plugin / plain <= 1.3 at the median of the per-round ratios (`paired_ratio_p50`; the
machine is shared, so the ratio of two medians, also shown, drifts with other load).
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

GOAL_RATIO = 1.3
REPO = Path(__file__).resolve().parents[1]
MLFLOW_PY = REPO / ".venv-mlflow" / "bin" / "python"


def run(quick: bool = False) -> dict[str, Any]:
    """Run the worker in .venv-mlflow; its figures, or why it could not run."""
    if not MLFLOW_PY.exists():
        return {"skipped": "no .venv-mlflow: run `make mlflow-venv` first (docs/mlflow.md)"}
    env = dict(os.environ)
    env.pop("LEDGERML_HOME", None)
    args = [str(MLFLOW_PY), __file__, "--worker", *(["--quick"] if quick else [])]
    done = subprocess.run(args, capture_output=True, text=True, env=env, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"bench_mlflow worker failed:\n{done.stderr[-4000:]}")
    return json.loads(done.stdout)


def _figures(plain: list[float], plugin: list[float]) -> dict[str, Any]:
    def ms(xs: list[float], q: float) -> float:
        xs = sorted(xs)
        return round(xs[min(len(xs) - 1, int(q * len(xs)))] * 1000, 3)

    p50 = statistics.median(plugin) / statistics.median(plain)
    # each round's two calls ran back to back: their ratio sees the same machine load
    paired = statistics.median(b / a for a, b in zip(plain, plugin, strict=True))
    return {
        "plain_p50_ms": ms(plain, 0.5),
        "plain_p99_ms": ms(plain, 0.99),
        "plugin_p50_ms": ms(plugin, 0.5),
        "plugin_p99_ms": ms(plugin, 0.99),
        "ratio_p50": round(p50, 3),
        "paired_ratio_p50": round(paired, 3),
        "goal_ratio": GOAL_RATIO,
        "meets_goal": paired <= GOAL_RATIO,
        "n": len(plain),
    }


def _worker(quick: bool) -> dict[str, Any]:  # pragma: no cover - runs in .venv-mlflow
    tmp = Path(tempfile.mkdtemp(prefix="bench-mlflow-"))
    try:
        return _measure(tmp, quick)
    finally:  # 30-100 MB of databases, artifacts and CAS blocks per run
        shutil.rmtree(tmp, ignore_errors=True)


def _measure(tmp: Path, quick: bool) -> dict[str, Any]:  # pragma: no cover - .venv-mlflow
    os.environ["LEDGERML_HOME"] = str(tmp / "project")
    # anything MLflow opens on its own (a client inside a store) stays in the temporary folder
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{tmp / 'client.db'}"
    from ledgerml.ledger.project import init_project

    init_project(tmp / "project")
    from mlflow.entities import Metric, Param, RunTag
    from mlflow.store.model_registry.sqlalchemy_store import SqlAlchemyStore as PlainRegistry
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore as PlainTracking

    from ledgerml.mlflow_plugin.artifacts import LedgerArtifactRepository
    from ledgerml.mlflow_plugin.registry import LedgerRegistryStore
    from ledgerml.mlflow_plugin.tracking import LedgerTrackingStore

    rounds = 30 if quick else 200
    art = tmp / "artifacts"
    os.environ["_MLFLOW_SERVER_ARTIFACT_DESTINATION"] = f"ledgerml+file://{art}"
    stores = {
        "plain": (
            PlainTracking(f"sqlite:///{tmp / 'plain.db'}", "mlflow-artifacts:/"),
            PlainRegistry(f"sqlite:///{tmp / 'plain.db'}"),
        ),
        "plugin": (
            LedgerTrackingStore(f"ledgerml+sqlite:///{tmp / 'plugin.db'}", "mlflow-artifacts:/"),
            LedgerRegistryStore(f"ledgerml+sqlite:///{tmp / 'plugin.db'}"),
        ),
    }
    runs: dict[str, str] = {}
    sources: dict[str, list[str]] = {}
    repo = LedgerArtifactRepository(f"ledgerml+file://{art}")
    for kind, (tracking, registry) in stores.items():
        exp = tracking.create_experiment(f"bench-{kind}")
        runs[kind] = tracking.create_run(exp, "bench", int(time.time() * 1000), [], "r").info.run_id
        sources[kind] = []
        # a logged model of its own per version, as a training loop makes them: new bytes, new
        # CIDs, so nothing the plugin caches by CID is reused between versions
        for i in range(rounds):
            model_dir = tmp / f"model-{kind}-{i}"
            model_dir.mkdir()
            (model_dir / "MLmodel").write_text(
                f"flavors:\n  xgboost:\n    data: model.ubj\nmodel_id: {kind}-{i}\n"
            )
            (model_dir / "model.ubj").write_bytes(os.urandom(40_000))
            (model_dir / "conda.yaml").write_text("dependencies: [python=3.11]\n")
            (model_dir / "requirements.txt").write_text("xgboost\n")
            model = tracking.create_logged_model(exp, name="m", source_run_id=runs[kind])
            prefix = model.artifact_location.removeprefix("mlflow-artifacts:").lstrip("/")
            repo.log_artifacts(str(model_dir), prefix)
            sources[kind].append(model.artifact_location)  # mlflow-artifacts:/…
        registry.create_registered_model(f"bench-{kind}")

    times: dict[str, dict[str, list[float]]] = {}

    def timed(row: str, kind: str, fn: Any) -> None:
        t0 = time.perf_counter()
        fn()
        times.setdefault(row, {}).setdefault(kind, []).append(time.perf_counter() - t0)

    step = 0
    for i in range(rounds):
        for kind in ("plain", "plugin") if i % 2 == 0 else ("plugin", "plain"):
            tracking, registry = stores[kind]
            now = int(time.time() * 1000)
            for size in (10, 996):
                if (
                    size == 996 and i % 5
                ):  # the big batch (996 + 4 = 1,000, the limit) every 5th round
                    continue
                step += 1
                metrics = [
                    Metric(f"m{j % 5}", j * 0.001, now, step * 10_000 + j) for j in range(size)
                ]
                params = [Param(f"p{step}-{j}", str(j)) for j in range(2)]
                tags = [RunTag(f"t{j}", str(step)) for j in range(2)]
                timed(
                    f"log_batch_{size}",
                    kind,
                    lambda t=tracking, k=kind, m=metrics, p=params, g=tags: t.log_batch(
                        runs[k], m, p, g
                    ),
                )
            timed(
                "create_model_version",
                kind,
                lambda r=registry, k=kind, i=i: r.create_model_version(
                    f"bench-{k}", sources[k][i], runs[k]
                ),
            )
    out = {row: _figures(t["plain"], t["plugin"]) for row, t in times.items()}
    out["folder_note"] = "fresh SQLite files in one temporary folder; rounds interleaved"
    return out


if __name__ == "__main__":
    if "--worker" in sys.argv:
        print(json.dumps(_worker("--quick" in sys.argv)))
    else:
        print(json.dumps(run("--quick" in sys.argv), indent=2))
