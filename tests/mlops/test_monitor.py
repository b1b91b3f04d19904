"""Drift monitoring on a real XGBoost model and the real embedded chain.

The synthetic cards are learnable by trees and not by a linear model (fraud is an
interaction, V1·V2 > 1.6, with 0.2% label noise), so the model clears the fraud-model
pack's floors (AUPRC ≥ 0.7, half the logistic baseline's false positives) honestly. The
shifted window moves V3–V5 (not the fraud signal), so a model retrained on it still passes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest

from ledgerml.compliance.checking import check_model
from ledgerml.config import ProjectPaths
from ledgerml.errors import InputError
from ledgerml.ledger import init_project
from ledgerml.ledger.project import open_ledger
from ledgerml.mlops.backtest import backtest
from ledgerml.mlops.datasets import register_dataset
from ledgerml.mlops.evaluation import evaluate_model
from ledgerml.mlops.governance import GovernanceService
from ledgerml.mlops.monitor import population_stability
from ledgerml.mlops.training import train_model
from ledgerml.retrain import monitor
from tests.conftest import run_cli


def cards(path: Path, rows: int, seed: int, start: float, shift: float = 0.0) -> Path:
    """Time, V1..V5, Amount, Class; `shift` moves V3..V5 (features, not the fraud rule)."""
    rng = np.random.default_rng(seed)
    t = np.sort(rng.uniform(start, start + 86_400, rows)).round(1)
    x = rng.normal(size=(rows, 5))
    x[:, 2:] += shift
    amount = np.exp(rng.normal(3.2, 1.0, rows)).round(2)
    y = ((x[:, 0] * x[:, 1] > 1.6) ^ (rng.uniform(size=rows) < 0.002)).astype(int)
    lines = [",".join(["Time", *(f"V{i}" for i in range(1, 6)), "Amount", "Class"])]
    lines += [
        f"{t[i]},{','.join(f'{v:.5f}' for v in x[i])},{amount[i]},{y[i]}" for i in range(rows)
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


def entries(paths: ProjectPaths) -> list[dict[str, Any]]:
    with open_ledger(paths) as ledger:
        return [orjson.loads(e) for _, e in ledger.entries()]


@dataclass(frozen=True)
class Deployed:
    home: Path
    paths: ProjectPaths
    model: str


@pytest.fixture(scope="module")
def deployed(tmp_path_factory: pytest.TempPathFactory) -> Deployed:
    """A project with the contracts deployed and a model that passed the fraud-model gate."""
    tmp = tmp_path_factory.mktemp("monitor")
    home = tmp / "proj"
    paths = init_project(home)
    deploy = run_cli(home, "chain", "deploy")
    assert deploy.returncode == 0, deploy.stderr
    register_dataset(paths, cards(tmp / "train.csv", 6000, 1, 0.0), "cards", label="Class")
    register_dataset(paths, cards(tmp / "same.csv", 4000, 2, 86_400.0), "same", label="Class")
    register_dataset(
        paths, cards(tmp / "shift.csv", 4000, 3, 86_400.0, shift=1.0), "shifted", label="Class"
    )
    partial = cards(tmp / "partial.csv", 500, 4, 86_400.0)
    text = partial.read_text().splitlines()
    partial.write_text("\n".join(",".join(r.split(",")[:3] + r.split(",")[-1:]) for r in text))
    register_dataset(paths, partial, "partial", label="Class")  # Time, V1, V2, Class only
    model = train_model(paths, "cards", "Class", seed=0).model_cid
    evaluate_model(paths, model)
    backtest(paths, model=model, folds=3)  # the fraud-model gate reads it (FM-BT-*)
    assert check_model(paths, model, "fraud-model").passed  # enrolled on chain, gate passed
    return Deployed(home, paths, model)


def test_population_stability() -> None:
    rng = np.random.default_rng(0)
    base = rng.normal(size=5000)
    assert population_stability(base, rng.normal(size=5000)) < 0.02
    assert population_stability(base, rng.normal(1.0, 1.0, 5000)) > 0.25
    # Missing values are a bin of their own; an empty bin is floored, not infinite.
    gaps = np.where(rng.uniform(size=5000) < 0.3, np.nan, rng.normal(size=5000))
    assert 0.25 < population_stability(base, gaps) < 10
    assert population_stability([1.0] * 100, [1.0] * 50) == pytest.approx(0.0)
    with pytest.raises(InputError):
        population_stability(base, base, bins=1)


def test_stable_then_shifted_window_retrains_through_the_gate(deployed: Deployed) -> None:
    paths, model = deployed.paths, deployed.model
    stable = monitor(paths, model, "same")
    assert not stable.exceeded and not stable.retrain_required and stable.on_chain
    assert stable.max_psi < 0.1 and stable.threshold == pytest.approx(0.25)
    assert [t for _, t in stable.entries] == ["drift.detected"]
    with GovernanceService.open(paths) as gov:
        assert gov.status(model).status != "retrain_required"

    proc = run_cli(  # retrain, evaluate, backtest (3 folds) and check: give it time
        deployed.home, "monitor", model, "--window", "shifted", "--retrain", "--json", timeout=300
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = json.loads(proc.stdout)
    assert out["retrain_required"] and out["exceeded"] and out["max_psi"] > 0.25
    assert out["max_feature"] in {"V3", "V4", "V5"} and out["psi"]["V1"] < 0.1
    assert [e["type"] for e in out["entries"]] == ["drift.detected", "retrain.requested"]
    new = out["retrained"]
    assert new["model_cid"] != model and new["metrics"]["auprc"] >= 0.7
    assert new["check"]["passed"] and new["check"]["tx_hash"].startswith("0x")

    log = entries(paths)
    drift = [e["body"] for e in log if e["type"] == "drift.detected"]
    assert drift[-1]["tx_hash"] == out["tx_hash"] and drift[-1]["psi"] == out["psi"]
    assert drift[-1]["window_cid"] == out["window_cid"]
    run = next(
        e["body"]
        for e in log
        if e["type"] == "run.started" and e["body"]["run_id"] == new["run_id"]
    )
    first = next(e["body"] for e in log if e["type"] == "run.started")
    # an expanding window (the default): the training data, then the window, one data set
    (both,) = [e["body"] for e in log if e["type"] == "dataset.registered"
               and e["body"]["name"] == "cards+shifted"]  # fmt: skip
    assert both["rows"] == 6000 + 4000 and out["window_cid"] in both["source"]
    assert run["dataset_cids"] == [both["cid"]] and run["seed"] == first["seed"]
    assert run["params"]["scale_pos_weight_rule"] == first["params"]["scale_pos_weight_rule"]
    with GovernanceService.open(paths) as gov:
        assert gov.status(model).status == "retrain_required"  # RetrainRequired on chain
        fresh = gov.status(new["model_cid"])
        assert fresh.metrics_submitted and fresh.all_passed  # the same gate, on chain


@pytest.mark.parametrize(
    ("args", "field"),
    [
        (
            ["bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku", "--window", "same"],
            "MODEL",
        ),
        (["{model}", "--window", "no-such-window"], "--window"),
        (["{model}", "--window", "partial"], "--window"),
        (["{model}", "--window", "same", "--policy", "no-such-pack"], ""),
    ],
)
def test_bad_input_exits_2_and_records_nothing(
    deployed: Deployed, args: list[str], field: str
) -> None:
    before = len(entries(deployed.paths))
    argv = [a.format(model=deployed.model) for a in args]
    proc = run_cli(deployed.home, "monitor", *argv)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert field in proc.stderr
    assert len(entries(deployed.paths)) == before


def test_an_overlapping_window_cannot_extend_the_history(
    deployed: Deployed, tmp_path: Path
) -> None:
    """A window that starts before the training data ends is not new data: the expanding
    retrain refuses it (naming --window, nothing recorded); --window-only is the way."""
    paths = deployed.paths
    register_dataset(paths, cards(tmp_path / "o.csv", 500, 9, 43_200.0), "overlap", label="Class")
    before = len(entries(paths))
    with pytest.raises(InputError) as info:
        monitor(paths, deployed.model, "overlap", retrain=True)
    assert info.value.field == "--window" and "--window-only" in str(info.value)
    assert len(entries(paths)) == before
    proc = run_cli(deployed.home, "monitor", deployed.model, "--window", "overlap", "--retrain")
    assert proc.returncode == 2 and "--window-only" in proc.stderr
    assert len(entries(paths)) == before


def test_without_chain_drift_is_recorded_in_the_ledger_only(tmp_path: Path) -> None:
    paths = init_project(tmp_path / "proj")
    register_dataset(paths, cards(tmp_path / "a.csv", 1500, 5, 0.0), "cards", label="Class")
    register_dataset(
        paths, cards(tmp_path / "b.csv", 800, 6, 86_400.0, shift=1.0), "later", label="Class"
    )
    model = train_model(paths, "cards", "Class", model="logreg", seed=0).model_cid
    res = monitor(paths, model, "later", retrain=True)
    assert res.exceeded and not res.retrain_required and not res.on_chain
    assert res.new_model_cid is None and res.tx_hash is None and "no chain" in (res.note or "")
    (drift,) = [e["body"] for e in entries(paths) if e["type"] == "drift.detected"]
    assert drift["max_psi"] == res.max_psi and set(drift["psi"]) == set(res.psi)
    assert not [e for e in entries(paths) if e["type"] == "retrain.requested"]
