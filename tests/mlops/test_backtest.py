"""Rolling-origin backtest on a generated table: folds in time order, real XGBoost, real ledger."""

from __future__ import annotations

import json

import pytest

from ledgerml.errors import InputError
from ledgerml.ledger import open_ledger
from ledgerml.mlops.backtest import backtest, fold_bounds
from ledgerml.mlops.training import train_model
from ledgerml.storage import open_store
from tests.conftest import run_cli
from tests.mlops.conftest import ROWS, Project

#: Small and fast: the generated table has 20,000 rows; 40 rounds are plenty on it.
FAST = {"num_boost_round": 40, "min_boost_round": 10, "max_depth": 3}


def test_fold_bounds_are_time_ordered_and_each_a_tenth() -> None:
    assert fold_bounds(1000, 5) == [500, 600, 700, 800, 900]
    assert fold_bounds(1005, 3) == [705, 805, 905]  # the last fold takes the remainder
    for bad in (1, 10, True, 2.0):
        with pytest.raises(InputError) as err:
            fold_bounds(1000, bad)  # type: ignore[arg-type]
        assert err.value.field == "--folds"


def test_backtest_records_every_fold_and_is_deterministic(project: Project) -> None:
    bt = backtest(project.paths, data="cards", target="Class", params=FAST, folds=2, seed=3)
    assert [f.train_rows for f in bt.folds] == [ROWS * 8 // 10, ROWS * 9 // 10]
    assert all(f.test_rows == ROWS // 10 for f in bt.folds)
    bounds = [f.boundary for f in bt.folds]
    assert bounds == sorted(bounds) and None not in bounds
    store = open_store(project.paths)
    for f in bt.folds:
        assert store.has(f.model_cid)
        assert 0 < f.metrics["auprc"] <= 1 and f.baselines["logreg"]["fp_at_80_recall"] is not None
        lr_fp = f.baselines["logreg"]["fp_at_80_recall"]
        if lr_fp:
            assert f.metrics["fp_ratio_vs_logreg"] == pytest.approx(
                f.metrics["fp_at_80_recall"] / lr_fp, abs=1e-8
            )
    assert store.read_bytes(bt.plot)[:8] == b"\x89PNG\r\n\x1a\n"
    s = bt.summary
    assert s["folds"] == 2 and s["worst_auprc"] <= s["median_auprc"]
    assert s["worst_fp_ratio_vs_logreg"] is None or (
        s["worst_fp_ratio_vs_logreg"] >= s["median_fp_ratio_vs_logreg"]
    )
    with open_ledger(project.paths) as ledger:
        entries = list(ledger.entries_of_type("backtest.recorded"))
    assert len(entries) == 1 and entries[0][0] == bt.ledger_index
    body = entries[0][1]["body"]
    assert [f["model_cid"] for f in body["folds"]] == [f.model_cid for f in bt.folds]
    assert body["summary"] == s and body["plot"] == bt.plot
    # each fold's ratio comes with its bootstrap interval, recorded as computed
    for f, recorded in zip(bt.folds, body["folds"], strict=True):
        assert recorded["fp_ratio_vs_logreg_interval"] == f.interval
        assert f.interval["draws"] == 500 and f.interval["coverage"] == 0.9
        if f.interval["low"] is not None:
            assert f.interval["low"] <= f.interval["high"]
    above = sum(1 for f in bt.folds if (f.interval["low"] or 0) > 1)
    assert s["folds_fp_ratio_vs_logreg_interval_above_1"] == above

    again = backtest(project.paths, data="cards", target="Class", params=FAST, folds=2, seed=3)
    assert [f.model_cid for f in again.folds] == [f.model_cid for f in bt.folds]
    assert [f.interval for f in again.folds] == [f.interval for f in bt.folds]
    assert again.plot == bt.plot and again.recipe == bt.recipe


def test_backtest_of_a_trained_model_repeats_its_recipe(project: Project) -> None:
    trained = train_model(project.paths, "cards", "Class", params=FAST, seed=5)
    bt = backtest(project.paths, model=trained.model_cid, folds=2, record=False)
    assert bt.model_cid == trained.model_cid and bt.seed == 5
    assert bt.recipe == trained.params["recipe"] and bt.params["requested"] == FAST
    assert bt.ledger_index is None


def test_bad_input_names_the_field_and_writes_nothing(project: Project) -> None:
    with open_ledger(project.paths) as ledger:
        size = ledger.size()
    cases = [
        ({"data": "cards", "target": "nope"}, "--target"),
        ({"data": "nope", "target": "Class"}, "--data"),
        ({"data": "cards", "target": "Class", "folds": 12}, "--folds"),
        ({"data": "cards", "target": "Class", "params": {"eta": 2}}, "--params.eta"),
        ({"model": "bafkreinotamodel"}, "--model"),
    ]
    for kwargs, field in cases:
        with pytest.raises(InputError) as err:
            backtest(project.paths, **kwargs)  # type: ignore[arg-type]
        assert err.value.field == field, (kwargs, err.value)
    with open_ledger(project.paths) as ledger:
        assert ledger.size() == size


def test_cli_prints_the_table_and_exits_2_on_bad_input(project: Project) -> None:
    done = run_cli(
        project.home, "backtest", "--data", "cards", "--folds", "2",
        "--params", json.dumps(FAST), "--json",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert len(out["folds"]) == 2 and out["ledger_index"] is not None
    bad = run_cli(project.home, "backtest", "--data", "cards", "--folds", "1")
    assert bad.returncode == 2 and "--folds" in bad.stderr and "Traceback" not in bad.stderr


def test_cli_table_shows_every_digit_on_a_narrow_terminal(project: Project) -> None:
    """On an 80-column terminal rich squeezed 12 columns into "0.…"; the table now takes
    the width it needs, so every fold's ratio can be read as printed."""
    import os
    import subprocess
    import sys

    args = ["backtest", "--data", "cards", "--folds", "2", "--params", json.dumps(FAST)]
    env = dict(os.environ, COLUMNS="60", PYTHONUNBUFFERED="1")
    env.pop("LEDGERML_HOME", None)
    done = subprocess.run(
        [sys.executable, "-m", "ledgerml.cli.main", "--home", str(project.home), *args],
        capture_output=True, text=True, timeout=300, env=env, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    res = json.loads(run_cli(project.home, *args, "--json").stdout)  # same data, same figures
    table = done.stdout.split("median / worst")[0]
    assert "…" not in table.split("\n", 1)[1]  # the title may shorten the CID, nothing else
    for fold in res["folds"]:
        ratio = fold["metrics"]["fp_ratio_vs_logreg"]
        assert (f"{ratio:.2f}" if ratio is not None else "undefined") in table
        assert f"{fold['train_rows']:,}" in table
        band = fold["fp_ratio_vs_logreg_interval"]
        if band["low"] is not None:
            assert f"{band['low']:.2f}–{band['high']:.2f}" in table
