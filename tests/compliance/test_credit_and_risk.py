"""Fairness (fairlearn four-fifths screen), reason codes, retention, independent validation,
intended use — each rule able to fail on evidence that should fail it."""

from __future__ import annotations

import hashlib
from pathlib import Path

import fairlearn
import numpy as np
import pytest

from ledgerml.compliance import check_model
from ledgerml.config import ProjectPaths
from ledgerml.errors import InputError
from ledgerml.ledger.project import open_ledger
from ledgerml.mlops.datasets import register_dataset
from ledgerml.mlops.model_card import build_model_card
from tests.compliance.conftest import ledger_size, record_model


def scored_table(path: Path, approve_a: float, approve_b: float, n: int = 100) -> Path:
    """Applicants of groups A and B with a probability of default per row; a share
    `approve_x` of each group scores below 0.5 (approved)."""
    rng = np.random.default_rng(7)
    lines = ["applicant,sex,age_band,income,score,default"]
    for group, share in (("A", approve_a), ("B", approve_b)):
        k = round(n * share)
        scores = np.r_[rng.uniform(0.05, 0.45, k), rng.uniform(0.55, 0.95, n - k)]
        for i, s in enumerate(scores):
            band = "18-25" if i % 2 else "26-60"
            lines.append(f"{group}{i},{group},{band},{1000 + i},{s:.4f},{int(s > 0.7)}")
    path.write_text("\n".join(lines) + "\n")
    return path


def decisions(paths: ProjectPaths, model: str, *, without_reasons: int = 0) -> None:
    with open_ledger(paths) as ledger:
        for i in range(6):
            declined = i % 2 == 0
            reasons = [] if declined and i < 2 * without_reasons else ["income below threshold"]
            ledger.append(
                "decision.recorded",
                {
                    "decision_id": f"d{i}",
                    "model_cid": model,
                    "input_commitment": hashlib.sha256(f"row{i}".encode()).hexdigest(),
                    "score": 0.8 if declined else 0.2,
                    "threshold": 0.5,
                    "outcome": "decline" if declined else "approve",
                    "reasons": reasons if declined else [],
                },
            )


def _credit(paths: ProjectPaths, tmp_path: Path, a: float, b: float, name: str) -> str:
    register_dataset(paths, scored_table(tmp_path / f"{name}.csv", a, b), name, label="default")
    ev = record_model(paths, features=["income"])
    decisions(paths, ev.model)
    return ev.model


def _rule(result, rule_id: str):  # type: ignore[no-untyped-def]
    (r,) = [r for r in result.results if r.rule_id == rule_id]
    return r


def test_four_fifths_fails_on_biased_table(paths: ProjectPaths, tmp_path: Path) -> None:
    model = _credit(paths, tmp_path, 0.70, 0.35, "biased")
    result = check_model(
        paths, model, "credit-fair-lending", protected="sex", data="biased", submit=False
    )
    assert result.failed == ["CFL-FOUR-FIFTHS"]
    r = _rule(result, "CFL-FOUR-FIFTHS")
    assert r.value == pytest.approx(0.5) and r.threshold == 0.8
    assert "A 0.700" in r.detail and "B 0.350" in r.detail and "fairlearn" in r.detail


def test_four_fifths_passes_on_fair_table(paths: ProjectPaths, tmp_path: Path) -> None:
    model = _credit(paths, tmp_path, 0.70, 0.63, "fair")
    result = check_model(
        paths,
        model,
        "credit-fair-lending",
        protected=["sex", "age_band"],
        data="fair",
        submit=False,
    )
    assert result.passed, result.to_json()
    assert _rule(result, "CFL-FOUR-FIFTHS").value == pytest.approx(0.9)
    assert _rule(result, "CFL-LOG-RETENTION").value == "indefinite"
    assert fairlearn.__version__


def test_fairness_needs_protected_and_data(paths: ProjectPaths, tmp_path: Path) -> None:
    model = _credit(paths, tmp_path, 0.7, 0.7, "t")
    before = ledger_size(paths)
    with pytest.raises(InputError) as info:
        check_model(paths, model, "credit-fair-lending", data="t", submit=False)
    assert info.value.field == "--protected"
    with pytest.raises(InputError, match="--protected: 'gender' is not a column"):
        check_model(paths, model, "credit-fair-lending", protected="gender", data="t")
    with pytest.raises(InputError, match="--data"):
        check_model(paths, model, "credit-fair-lending", protected="sex", data="nope")
    with pytest.raises(InputError, match="--protected: 'income' has 100 distinct values"):
        check_model(paths, model, "credit-fair-lending", protected="income", data="t")
    assert ledger_size(paths) == before


def test_decline_without_reasons_fails(paths: ProjectPaths, tmp_path: Path) -> None:
    model = _credit(paths, tmp_path, 0.7, 0.7, "t")
    decisions(paths, model, without_reasons=1)
    result = check_model(
        paths, model, "credit-fair-lending", protected="sex", data="t", submit=False
    )
    assert result.failed == ["CFL-REASONS"]
    assert "1 without reasons" in _rule(result, "CFL-REASONS").detail


def test_retention_below_six_months_fails(paths: ProjectPaths, tmp_path: Path) -> None:
    model = _credit(paths, tmp_path, 0.7, 0.7, "t")
    config = paths.config_toml
    config.write_text(config.read_text() + "\n[retention]\nlog_days = 90\n")
    result = check_model(
        paths, model, "credit-fair-lending", protected="sex", data="t", submit=False
    )
    assert result.failed == ["CFL-LOG-RETENTION"]
    assert _rule(result, "CFL-LOG-RETENTION").value == 90
    config.write_text(config.read_text().replace("log_days = 90", "log_days = 183"))
    ok = check_model(paths, model, "credit-fair-lending", protected="sex", data="t", submit=False)
    assert ok.passed


def test_model_risk_validator_must_differ_from_developer(paths: ProjectPaths) -> None:
    same = record_model(paths, developer="alice@bank", validator="alice@bank")
    build_model_card(paths, same.model, "Flag card payments for analyst review", ["2013 data"])
    result = check_model(paths, same.model, "model-risk", submit=False)
    assert result.failed == ["MR-INDEPENDENT-VALIDATION"]
    assert "alice@bank" in _rule(result, "MR-INDEPENDENT-VALIDATION").detail

    other = record_model(paths, developer="alice@bank", validator="victor@bank-mrm")
    build_model_card(paths, other.model, "Flag card payments for analyst review", [])
    assert check_model(paths, other.model, "model-risk", submit=False).passed


def test_model_risk_needs_intended_use_in_a_card(paths: ProjectPaths) -> None:
    ev = record_model(paths, developer="alice@bank", validator="victor@bank-mrm")
    result = check_model(paths, ev.model, "model-risk", submit=False)
    assert result.failed == ["MR-INTENDED-USE"]
    with pytest.raises(InputError, match="--intended-use"):
        build_model_card(paths, ev.model, "   ", [])
    card = build_model_card(paths, ev.model, "Score card transactions", ["no chargebacks"])
    assert "## Intended use\n\nScore card transactions" in card.markdown
    assert check_model(paths, ev.model, "model-risk", submit=False).passed
