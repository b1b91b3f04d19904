"""The gate on real models: a deliberately weak XGBoost, backtested for real, is refused on the
embedded EVM naming the backtest rule; a leaky feature and an identifier fail the fraud pack
(generated tables, real training, real ledger)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import orjson
import pytest

from ledgerml.compliance import check_model
from ledgerml.config import ProjectPaths
from ledgerml.datasets.synthetic import fraud_csv
from ledgerml.ledger import init_project, open_ledger
from ledgerml.mlops.backtest import backtest
from ledgerml.mlops.datasets import register_dataset
from ledgerml.mlops.evaluation import evaluate_model
from ledgerml.mlops.training import LeakageWarning, model_info, train_model
from tests.conftest import run_cli

ROWS = 8_000
#: One split, one round: two distinct scores, so 80% recall takes a large share of the rows.
WEAK = {"max_depth": 1, "num_boost_round": 1, "early_stopping_rounds": 0, "min_boost_round": 0}
FAST = {"num_boost_round": 30, "min_boost_round": 10, "max_depth": 3}


def test_weak_model_is_refused_on_chain_naming_the_backtest_rule(tmp_path: Path) -> None:
    home = tmp_path / "proj"
    paths = init_project(home)
    register_dataset(paths, fraud_csv(tmp_path / "f.csv", rows=ROWS), "cards", label="Class")
    weak = train_model(paths, "cards", "Class", params=WEAK, seed=1)
    evaluate_model(paths, weak.model_cid)
    # no backtest yet: the rule fails with a clear reason (off-chain check)
    first = check_model(paths, weak.model_cid, "fraud-model", submit=False)
    bt_rule = next(r for r in first.results if r.rule_id == "FM-BT-LOGREG")
    assert not bt_rule.passed and "no backtest.recorded" in bt_rule.detail
    assert "ledgerml backtest --model" in bt_rule.detail

    bt = backtest(paths, model=weak.model_cid, folds=2)
    assert bt.summary["worst_fp_ratio_vs_logreg"] > 1.0  # weak indeed, on a real backtest
    assert run_cli(home, "chain", "deploy").returncode == 0
    proc = run_cli(home, "check", weak.model_cid, "--policy", "fraud-model", "--json")
    assert proc.returncode == 1, proc.stderr
    out = json.loads(proc.stdout)
    assert "FM-BT-LOGREG" in out["failed"] and out["tx_hash"].startswith("0x")
    rule = next(r for r in out["results"] if r["rule_id"] == "FM-BT-LOGREG")
    # the verdict is the contract's (on chain), with the per-fold figures and the regulation
    assert rule["on_chain"] and not rule["passed"] and "SR 26-2" in rule["regulation"]
    assert "worst fold" in rule["detail"] and rule["value"] > 1.0
    promo = run_cli(home, "promote", weak.model_cid, "--alias", "production")
    assert promo.returncode == 1 and "rule failed" in promo.stderr, promo.stderr


def _leaky_table(path: Path, rows: int = 4_000) -> Path:
    rng = np.random.default_rng(5)
    y = (rng.uniform(size=rows) < 0.03).astype(int)
    scenario = y * rng.integers(1, 4, size=rows)  # 0 for genuine rows: the label leaks
    customer = rng.permutation(rows)  # a unique id per row, named like one
    terminal = rng.integers(0, 2_000, size=rows)  # dense ids, not named as such
    x = rng.normal(size=(rows, 3)) + y[:, None] * 0.8
    lines = ["Time,V1,V2,V3,SCENARIO,CUSTOMER_ID,TERM,Class"]
    for i in range(rows):
        v = ",".join(f"{a:.4f}" for a in x[i])
        lines.append(f"{i},{v},{scenario[i]},{customer[i]},{terminal[i]},{y[i]}")
    path.write_text("\n".join(lines) + "\n")
    return path


def test_leaky_feature_and_identifiers_fail_the_pack_naming_them(tmp_path: Path) -> None:
    paths: ProjectPaths = init_project(tmp_path / "proj")
    register_dataset(paths, _leaky_table(tmp_path / "t.csv"), "sim", label="Class")
    with pytest.warns(LeakageWarning) as caught:
        trained = train_model(paths, "sim", "Class", params=FAST, seed=0)
    said = " ".join(str(w.message) for w in caught)
    assert "'SCENARIO' alone reaches AUPRC 1.000" in said and "'CUSTOMER_ID'" in said
    assert "'TERM' looks like an identifier" in said
    with pytest.warns(LeakageWarning):
        ev = evaluate_model(paths, trained.model_cid)
    assert any("SCENARIO" in w for w in ev.warnings)
    # model and logreg both perfect: the ratio is 0/0, left out, never a pass
    assert ev.baselines["logreg"]["fp_at_80_recall"] == 0
    assert "fp_ratio_vs_logreg" not in ev.metrics

    result = check_model(paths, trained.model_cid, "fraud-model", submit=False)
    by_id = {r.rule_id: r for r in result.results}
    assert not by_id["FM-LEAKAGE"].passed and "SCENARIO" in by_id["FM-LEAKAGE"].detail
    assert not by_id["FM-CHAL-LOGREG"].passed and "undefined" in by_id["FM-CHAL-LOGREG"].detail
    assert not by_id["FM-NO-PII"].passed
    assert "CUSTOMER_ID" in by_id["FM-NO-PII"].detail and "TERM" in by_id["FM-NO-PII"].detail

    # A forged run.started for the same run, appended afterwards with a clean screen, is not
    # evidence: the first entry of a run is.
    with open_ledger(paths) as ledger:
        started = next(
            entry["body"]
            for _, entry in ledger.entries_of_type("run.started")
            if entry["body"]["run_id"] == trained.run_id
        )
    forged = {**started, "params": {**started["params"], "screen": {"leaky": [], "id_like": []}}}
    r = run_cli(
        paths.home,
        "log",
        "append",
        "--type",
        "run.started",
        "--body",
        orjson.dumps(forged).decode(),
    )
    assert r.returncode == 0, r.stderr
    forged_check = check_model(paths, trained.model_cid, "fraud-model", submit=False)
    leak = next(r for r in forged_check.results if r.rule_id == "FM-LEAKAGE")
    assert not leak.passed and "SCENARIO" in leak.detail
    # nor for what evaluate, backtest --model and monitor --retrain read (split, recipe, drop)
    assert model_info(paths, trained.model_cid).run_params == started["params"]

    clean = train_model(
        paths, "sim", "Class", params=FAST, drop=("SCENARIO", "CUSTOMER_ID", "TERM"), seed=0
    )
    assert clean.warnings == ()
    again = check_model(paths, clean.model_cid, "fraud-model", submit=False)
    by_id = {r.rule_id: r for r in again.results}
    assert by_id["FM-LEAKAGE"].passed and by_id["FM-NO-PII"].passed


def test_a_hand_recorded_run_cannot_declare_its_own_clean_screen(tmp_path: Path) -> None:
    """A run recorded by hand (a new run_id whose first `run.started` says "no leaky feature,
    no identifier") is judged on the screen recomputed from the stored training data."""
    import secrets

    from ledgerml.mlops.training import fit_model, load_table, prepare
    from ledgerml.storage import open_store

    paths: ProjectPaths = init_project(tmp_path / "proj")
    rec = register_dataset(paths, _leaky_table(tmp_path / "t.csv"), "sim", label="Class")
    drop = ["CUSTOMER_ID", "TERM"]  # keep SCENARIO, the leaky column, as a feature
    prep = prepare(load_table(paths, rec.cid), "Class", "Time", 0.8, drop=drop)
    raw = fit_model(prep, "xgboost", FAST, seed=3)
    cid = open_store(paths).add_bytes(raw).cid
    run_id = f"run-by-hand-{secrets.token_hex(4)}"
    clean = {"leak_auprc": 0.95, "leaky": [], "id_like": [], "best_single_feature": None}
    with open_ledger(paths) as ledger:
        ledger.append_many(
            [
                (
                    "run.started",
                    {
                        "run_id": run_id,
                        "dataset_cids": [rec.cid],
                        "model_type": "xgboost",
                        "params": {"split": prep.split.to_json(), "drop": drop, "screen": clean},
                        "seed": 3,
                        "code_version": "by hand",
                        "library_versions": {},
                    },
                ),
                ("run.finished", {"run_id": run_id, "status": "succeeded", "model_cid": cid}),
                (
                    "model.registered",
                    {
                        "name": "by-hand",
                        "cid": cid,
                        "run_id": run_id,
                        "framework": "xgboost",
                        "dataset_cids": [rec.cid],
                        "features": [{"name": n, "dtype": t} for n, t in prep.features],
                        "target": "Class",
                    },
                ),
            ]
        )
    result = check_model(paths, cid, "fraud-model", submit=False)
    leak = next(r for r in result.results if r.rule_id == "FM-LEAKAGE")
    assert not leak.passed and "SCENARIO" in leak.detail, leak.detail
    assert "recorded with the run disagrees" in leak.detail

    # training data that is not in the store: the screen cannot run, and the rule fails closed
    from ledgerml.storage import cid_of_bytes

    absent = cid_of_bytes(b"a data set nobody stored")
    other = open_store(paths).add_bytes(fit_model(prep, "logreg")).cid
    with open_ledger(paths) as ledger:
        ledger.append(
            "model.registered",
            {
                "name": "no-data",
                "cid": other,
                "run_id": run_id,
                "framework": "xgboost",
                "dataset_cids": [absent],
                "features": [{"name": n, "dtype": t} for n, t in prep.features],
                "target": "Class",
            },
        )
    assert other != cid
    result = check_model(paths, other, "fraud-model", submit=False)
    leak = next(r for r in result.results if r.rule_id == "FM-LEAKAGE")
    assert not leak.passed and "cannot run the leakage screen" in leak.detail, leak.detail
