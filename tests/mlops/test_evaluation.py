"""Evaluation: metric keys, baselines, plots in the CAS, `evaluation.recorded` on the ledger."""

from __future__ import annotations

import numpy as np
import orjson
import pytest

from ledgerml.ledger import open_ledger
from ledgerml.mlops import _metrics
from ledgerml.mlops.evaluation import evaluate_model
from ledgerml.mlops.training import train_model
from ledgerml.storage import open_store
from tests.mlops.conftest import Project

KEYS = {
    "auprc",
    "roc_auc",
    "fp_at_80_recall",
    "fpr_at_80_recall",
    "precision_at_100",
    "brier",
    "ece",
    "fp_ratio_vs_logreg",
    "fp_ratio_vs_rules",
}


def test_evaluation_keys_baselines_plots(project: Project) -> None:
    res = train_model(project.paths, project.name, "Class", params={"num_boost_round": 80})
    ev = evaluate_model(project.paths, res.model_cid)
    assert set(ev.metrics) >= KEYS
    assert set(ev.baselines) == {"logreg", "rules"}
    for m in (ev.metrics, *ev.baselines.values()):
        assert set(m) >= KEYS
        assert 0 <= m["auprc"] <= 1 and 0.5 < m["roc_auc"] <= 1
        assert 0 <= m["fpr_at_80_recall"] <= 1 and 0 <= m["ece"] <= 1 and 0 <= m["brier"] <= 1
        assert m["fp_at_80_recall"] == int(m["fp_at_80_recall"])
    assert ev.rows == 4_000 and ev.positives > 20
    assert ev.baselines["logreg"]["fp_ratio_vs_logreg"] == 1.0
    assert ev.metrics["fp_ratio_vs_logreg"] == pytest.approx(
        ev.metrics["fp_at_80_recall"] / ev.baselines["logreg"]["fp_at_80_recall"]
    )
    # the synthetic table has a non-linear signal: trees beat the single-feature rule
    assert ev.metrics["auprc"] > ev.baselines["rules"]["auprc"]
    assert ev.metrics["fp_ratio_vs_rules"] < 1
    assert "V1" in ev.rules

    store = open_store(project.paths)
    for cid in ev.plots.values():
        assert store.read_bytes(cid)[:8] == b"\x89PNG\r\n\x1a\n"
    with open_ledger(project.paths) as ledger:
        entry = orjson.loads(ledger.entry(ev.ledger_index))
    assert entry["type"] == "evaluation.recorded"
    assert entry["body"]["metrics"] == ev.metrics and entry["body"]["plots"] == ev.plots
    assert entry["body"]["dataset_cid"] == project.dataset_cid

    again = evaluate_model(project.paths, res.model_cid, record=False)
    assert again.plots == ev.plots and again.metrics == ev.metrics  # deterministic PNGs


def test_fp_at_recall_exact() -> None:
    scores = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1, 0.05])
    labels = np.array([1, 0, 1, 0, 0, 1, 1, 0, 1, 0])
    fp, fpr, threshold = _metrics.fp_at_recall(scores, labels, 0.8)  # 4 of 5 frauds
    assert (fp, threshold) == (3, 0.3)
    assert fpr == 3 / 5
    assert _metrics.precision_at_k(scores, labels, 3) == 2 / 3
    assert _metrics.fp_ratio(3, 0) == 3.0
