"""After drift, the retrained model (by default on an expanding window: the training data
followed by the new window) passes the gate and takes the alias, and `RetrainRequired` is
false on chain: the contract clears the drifted model's mark when a model that passed the
gate is promoted into its alias (the old model becomes `retired`, never promotable again).
Real XGBoost, SQLite ledger and embedded EVM; `ledgerml monitor --retrain`, `approve`,
`promote`, `models` run as a user runs them.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import ledgerml
from ledgerml.mlops.backtest import backtest
from ledgerml.mlops.training import model_info, train_model
from tests.conftest import run_cli

ROWS = 4000


def _csv(path: Path, *, seed: int, shift: float = 0.0, start: float = 0.0) -> Path:
    """Fraud when V1 and V2 are both high or V3 is extreme; `shift` moves V4 (drift).
    Two days of transactions from `start` (seconds)."""
    rng = np.random.default_rng(seed)
    t = np.sort(rng.uniform(start, start + 172_800, ROWS)).round(1)
    x = rng.normal(size=(ROWS, 4)).round(5)
    x[:, 3] += shift
    y = ((x[:, 0] > 1.6) & (x[:, 1] > 0.8)) | (x[:, 2] ** 2 > 6.5)
    with path.open("w") as fh:
        fh.write("Time,V1,V2,V3,V4,Class\n")
        for i in range(ROWS):
            fh.write(f"{t[i]},{','.join(map(str, x[i]))},{int(y[i])}\n")
    return path


@pytest.fixture(scope="module")
def champion(tmp_path_factory: pytest.TempPathFactory) -> tuple[ledgerml.Project, str]:
    """A LedgerML-trained XGBoost model through the whole gate, promoted as `champion`."""
    root = tmp_path_factory.mktemp("retrain")
    project = ledgerml.init(root / "proj")
    project.add_data(_csv(root / "cards.csv", seed=1), name="cards", label="Class")
    later = _csv(root / "later.csv", seed=2, shift=2.0, start=172_800.0)  # the next two days
    project.add_data(later, name="later", label="Class")
    params = {"num_boost_round": 60, "min_boost_round": 0, "early_stopping_rounds": 0}
    cid = train_model(project.paths, "cards", "Class", params=params).model_cid
    project.evaluate(cid)
    backtest(project.paths, model=cid, folds=3)
    assert project.check(cid, pack="fraud-model").passed
    project.approve(cid, role="risk_approver")
    project.approve(cid, role="compliance_approver")
    project.promote(cid, alias="champion")
    return project, cid


def _models(home: Path) -> dict[str, dict[str, object]]:
    proc = run_cli(home, "models", "--json")
    assert proc.returncode == 0, proc.stderr
    return {m["cid"]: m for m in json.loads(proc.stdout)["models"]}


def test_retrained_model_promoted_clears_retrain_required_for_the_alias(
    champion: tuple[ledgerml.Project, str],
) -> None:
    project, old = champion
    home = project.home
    proc = run_cli(home, "monitor", old, "--window", "later", "--retrain", "--json", timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    res = json.loads(proc.stdout)
    assert res["retrain_required"] is True and res["max_feature"] == "V4"
    new = res["retrained"]["model_cid"]
    assert res["retrained"]["check"]["passed"], res["retrained"]["check"]
    # the default retrain is an expanding window: the training data, then the new window,
    # registered as one data set that the retrained model names as its training data
    listed = run_cli(home, "data", "ls", "--json")
    assert listed.returncode == 0, listed.stderr
    sets = {d["name"]: d for d in json.loads(listed.stdout)}
    both = sets["cards+later"]
    assert both["rows"] == 2 * ROWS
    assert both["source"] == f"expanding window: {sets['cards']['cid']} then {sets['later']['cid']}"
    assert model_info(project.paths, new).dataset_cids == (both["cid"],)
    before = _models(home)
    assert before[old]["status"] == "retrain_required" and before[old]["alias"] == "champion"

    for role in ("risk_approver", "compliance_approver"):
        assert run_cli(home, "approve", new, "--as", role).returncode == 0
    promoted = run_cli(home, "promote", new, "--alias", "champion", "--json")
    assert promoted.returncode == 0, promoted.stderr
    done = json.loads(promoted.stdout)
    assert done["retrain_cleared"] is True and "RetrainCleared" in done["chain_events"]

    after = _models(home)
    assert after[new]["status"] == "promoted" and after[new]["alias"] == "champion"
    holders = [m for m in after.values() if m.get("alias") == "champion"]
    assert [m["cid"] for m in holders] == [new]  # the drifted model lost the alias
    # RetrainRequired is false on chain: no model carries it any more
    assert all(m["status"] != "retrain_required" for m in after.values()), after
    assert after[old]["status"] == "retired"  # the drifted model is retired, not promotable
    again = run_cli(home, "promote", old, "--alias", "champion")
    assert again.returncode == 1 and "retired" in again.stderr
