"""With a real model trained by `ledgerml.mlops.training` (logistic regression, seconds):
lineage from the real run, explanations from the loaded model, and the four-fifths screen
computed on the model's own scores of a table (no score column)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ledgerml.compliance import check_model
from ledgerml.config import ProjectPaths
from ledgerml.mlops.datasets import register_dataset

training = pytest.importorskip("ledgerml.mlops.training")


def applicants(path: Path, biased: bool, n: int = 400) -> Path:
    """Income and debt; with `biased`, group B has much lower incomes, so the model
    declines B far more often (the protected column itself is not a feature)."""
    rng = np.random.default_rng(3)
    lines = ["sex,income,debt,default"]
    for i in range(n):
        group = "A" if i % 2 else "B"
        shift = -1.6 if biased and group == "B" else 0.0
        income = rng.normal(shift, 1.0)
        debt = rng.normal(0.0, 1.0)
        p = 1 / (1 + np.exp(-(-0.3 - 1.8 * income + 0.8 * debt)))
        lines.append(f"{group},{income:.4f},{debt:.4f},{int(rng.uniform() < p)}")
    path.write_text("\n".join(lines) + "\n")
    return path


def _train(paths: ProjectPaths, tmp_path: Path, name: str, biased: bool) -> str:
    register_dataset(paths, applicants(tmp_path / f"{name}.csv", biased), name, label="default")
    result = training.train_model(
        paths, name, "default", model="logreg", time_column=None, drop=("sex",), seed=1
    )
    return result.model_cid


def test_screen_on_model_scores(paths: ProjectPaths, tmp_path: Path) -> None:
    biased = _train(paths, tmp_path, "biased", biased=True)
    result = check_model(
        paths, biased, "credit-fair-lending", protected="sex", data="biased", submit=False
    )
    fifths = next(r for r in result.results if r.rule_id == "CFL-FOUR-FIFTHS")
    assert not fifths.passed and fifths.value < 0.8 and "scores from the model" in fifths.detail
    # Reasons come from the model's own explain() on every decline it makes on the table.
    # (A decline driven by the intercept alone gets no positive-contribution reason from
    # `explain`; the rule reports those rows, which is what Reg B's check is for.)
    reasons = next(r for r in result.results if r.rule_id == "CFL-REASONS")
    assert "model explained 200 declines" in reasons.detail
    assert reasons.passed == (" 0 without reasons" in reasons.detail)

    fair = _train(paths, tmp_path, "fair", biased=False)
    ok = check_model(paths, fair, "credit-fair-lending", protected="sex", data="fair", submit=False)
    fifths = next(r for r in ok.results if r.rule_id == "CFL-FOUR-FIFTHS")
    assert fifths.passed and fifths.value >= 0.8, fifths.detail


def test_real_run_gives_lineage_and_explanations(paths: ProjectPaths, tmp_path: Path) -> None:
    cid = _train(paths, tmp_path, "t", biased=False)
    result = check_model(paths, cid, "fraud-model", submit=False)
    by_id = {r.rule_id: r for r in result.results}
    assert by_id["FM-LINEAGE"].passed, by_id["FM-LINEAGE"].detail
    assert by_id["FM-EXPLAIN"].passed and "loaded model" in by_id["FM-EXPLAIN"].detail
    assert by_id["FM-NO-PII"].passed
