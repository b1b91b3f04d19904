"""Compliance fixtures: a real project with realistic ledger evidence written directly."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from ledgerml.chain._cid import raw_cid_for_digest
from ledgerml.config import ProjectPaths
from ledgerml.ledger import init_project
from ledgerml.ledger.project import open_ledger

GOOD_METRICS = {
    "auprc": 0.82,
    "roc_auc": 0.975,
    "fp_at_80_recall": 41.0,
    "fpr_at_80_recall": 0.00072,
    "precision_at_100": 0.86,
    "brier": 0.0009,
    "ece": 0.0006,
    "fp_ratio_vs_logreg": 0.31,
    "fp_ratio_vs_rules": 0.12,
}
BASELINES = {
    "logreg": {"auprc": 0.71, "roc_auc": 0.968, "fp_at_80_recall": 132.0},
    "rules": {"auprc": 0.35, "roc_auc": 0.88, "fp_at_80_recall": 342.0},
}
FEATURES = ["Time", *(f"V{i}" for i in range(1, 29)), "Amount"]
#: Per-fold FP ratios vs logreg of a good model's rolling-origin backtest, and AUPRCs.
GOOD_BACKTEST = ((0.45, 0.8), (0.62, 0.74), (0.91, 0.7))


def new_cid(label: str = "") -> str:
    return raw_cid_for_digest(hashlib.sha256(os.urandom(16) + label.encode()).digest())


#: Rows of the stored training table behind `record_model`'s evidence.
TABLE_ROWS = 800


def stored_table(paths: ProjectPaths, columns: list[str], pii: list[str]) -> str:
    """A real training table in the project's CAS (Parquet): the fraud pack recomputes the
    leakage and identifier screens from the stored data, so the evidence needs real data.
    Nothing in it separates the label; PII columns hold a few small numbers."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    from ledgerml.storage import open_store

    rng = np.random.default_rng(11)
    y = (rng.uniform(size=TABLE_ROWS) < 0.05).astype(np.int64)
    y[:5] = 1  # both classes in any training window
    data: dict[str, Any] = {}
    for c in columns:
        if c == "Time":
            data[c] = np.arange(TABLE_ROWS, dtype=np.float64)
        elif c in pii:
            data[c] = rng.integers(0, 9, TABLE_ROWS)
        else:
            data[c] = np.round(rng.normal(size=TABLE_ROWS) + 0.7 * y * (c == "V14"), 4)
    data["Class"] = y
    sink = pa.BufferOutputStream()
    pq.write_table(pa.table(data), sink)
    return open_store(paths).add_bytes(sink.getvalue().to_pybytes()).cid


@dataclass
class Evidence:
    paths: ProjectPaths
    model: str
    dataset: str


def record_model(
    paths: ProjectPaths,
    *,
    features: list[str] | None = None,
    metrics: dict[str, float] | None = None,
    pii: list[str] | None = None,
    subject: str | None = None,
    framework: str = "xgboost",
    with_run: bool = True,
    developer: str | None = None,
    validator: str | None = None,
    backtest: tuple[tuple[float | None, float], ...] | None = GOOD_BACKTEST,
    leaky: tuple[tuple[str, float], ...] = (),
) -> Evidence:
    """dataset.registered, run.started/finished, model.registered, evaluation.recorded and,
    unless `backtest` is None, a backtest.recorded of (FP ratio vs logreg, AUPRC) per fold."""
    feats = features if features is not None else FEATURES
    extra = [
        c for c in [*feats, *(pii or []), *([subject] if subject else [])] if c not in FEATURES
    ]
    columns = [*FEATURES, *dict.fromkeys(extra), "Class"]
    table_columns = [c for c in columns if c != "Class"]
    ds = stored_table(paths, table_columns, [*(pii or []), *([subject] if subject else [])])
    model, run = new_cid("model"), f"run-{os.urandom(4).hex()}"
    with open_ledger(paths) as ledger:
        ledger.append(
            "dataset.registered",
            {
                "name": "ulb-train",
                "cid": ds,
                "rows": TABLE_ROWS,
                "columns": columns,
                "schema_hash": hashlib.sha256(",".join(columns).encode()).hexdigest(),
                "label": "Class",
                "pii_columns": pii or [],
                "subject_column": subject,
            },
        )
        if with_run:
            screen = {
                "leak_auprc": 0.95,
                "leaky": [{"feature": f, "auprc": a} for f, a in leaky],
                "id_like": [],
                "best_single_feature": {"feature": "V14", "auprc": 0.61},
            }
            ledger.append(
                "run.started",
                {
                    "run_id": run,
                    "dataset_cids": [ds],
                    "model_type": framework,
                    "seed": 7,
                    "params": {
                        "screen": screen,
                        "split": {"time_column": None, "train_fraction": 0.8},
                    },
                },
            )
            ledger.append(
                "run.finished", {"run_id": run, "status": "succeeded", "model_cid": model}
            )
        reg: dict[str, Any] = {
            "name": "card-fraud",
            "cid": model,
            "framework": framework,
            "dataset_cids": [ds],
            "features": [{"name": f, "dtype": "float64"} for f in feats],
            "target": "Class",
        }
        if with_run:
            reg["run_id"] = run
        ledger.append("model.registered", reg, actor=developer)
        ledger.append(
            "evaluation.recorded",
            {
                "model_cid": model,
                "dataset_cid": ds,
                "split": "time-test",
                "metrics": metrics if metrics is not None else GOOD_METRICS,
                "baselines": BASELINES,
            },
            actor=validator,
        )
        if backtest is not None:
            folds = [
                {"fold": k, "model_cid": new_cid("fold"),
                 "metrics": {"fp_ratio_vs_logreg": ratio, "auprc": auprc}}
                for k, (ratio, auprc) in enumerate(backtest, start=1)
            ]  # fmt: skip
            ledger.append(
                "backtest.recorded",
                {
                    "dataset_cid": ds, "model_cid": model, "model_type": framework,
                    "target": "Class", "seed": 7, "recipe": "0" * 64, "fold_fraction": 0.1,
                    "folds": folds, "summary": {"folds": len(folds)}, "plot": new_cid("plot"),
                },
            )  # fmt: skip
    return Evidence(paths, model, ds)


@pytest.fixture()
def paths(tmp_path: Path) -> ProjectPaths:
    return init_project(tmp_path / "proj")


def ledger_size(paths: ProjectPaths) -> int:
    with open_ledger(paths) as ledger:
        return ledger.size()
