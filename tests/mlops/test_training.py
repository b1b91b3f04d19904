"""Training runs: real XGBoost, real SQLite ledger, real CAS, real CLI for bad input."""

from __future__ import annotations

import json
from pathlib import Path

import orjson
import pytest

from ledgerml.errors import InputError
from ledgerml.ledger import open_ledger
from ledgerml.mlops.training import load_model, load_table, train_model
from ledgerml.storage import open_store
from tests.conftest import run_cli
from tests.mlops.conftest import Project

FAST = {"num_boost_round": 40, "early_stopping_rounds": 0}


def _entries(project: Project) -> list[dict]:
    with open_ledger(project.paths) as ledger:
        return [orjson.loads(raw) for _, raw in ledger.entries()]


def _size(project: Project) -> int:
    with open_ledger(project.paths) as ledger:
        return ledger.size()


def test_train_records_run_and_model_and_is_deterministic(project: Project) -> None:
    first = train_model(project.paths, project.name, "Class", params=FAST, seed=3)
    second = train_model(project.paths, project.dataset_cid, "Class", params=FAST, seed=3)
    assert first.model_cid == second.model_cid  # same data, params, seed -> same bytes
    assert first.run_id != second.run_id
    other_seed = train_model(
        project.paths, project.name, "Class", params={**FAST, "subsample": 0.7}, seed=4
    )
    assert other_seed.model_cid != first.model_cid

    types = [e["type"] for e in _entries(project)]
    assert types[1:4] == ["run.started", "run.finished", "model.registered"]
    started, finished, registered = (e["body"] for e in _entries(project)[1:4])
    assert started["dataset_cids"] == [project.dataset_cid]
    assert started["seed"] == 3 and started["model_type"] == "xgboost"
    assert started["params"]["tree_method"] == "hist" and started["params"]["nthread"] == 2
    assert started["params"]["scale_pos_weight"] > 1  # "sqrt" resolved on the training window
    split = started["params"]["split"]
    assert split["time_column"] == "Time" and split["train_rows"] == 16_000
    assert split["boundary"] is not None
    assert "xgboost" in started["library_versions"]
    assert finished == {
        "run_id": first.run_id,
        "status": "succeeded",
        "model_cid": first.model_cid,
        "duration_s": finished["duration_s"],
    }
    assert registered["cid"] == first.model_cid and registered["target"] == "Class"
    names = [f["name"] for f in registered["features"]]
    assert names == ["V1", "V2", "V3", "V4", "V5", "V6", "Amount"]  # no Time, no Class
    assert all(f["dtype"] == "double" for f in registered["features"])
    raw = open_store(project.paths).read_bytes(first.model_cid)
    assert raw[:1] == b"{" and b"ledgerml" in raw  # UBJSON object with our metadata


def test_split_uses_time_order_not_row_order(project: Project, tmp_path: Path) -> None:
    """Rows stored newest first must still train on the earliest 80% by Time."""
    import pyarrow.csv as pacsv

    from ledgerml.mlops.datasets import register_dataset

    table = load_table(project.paths, project.dataset_cid)
    reversed_path = tmp_path / "reversed.csv"
    pacsv.write_csv(table.take(list(range(table.num_rows - 1, -1, -1))), reversed_path)
    register_dataset(project.paths, reversed_path, "cards-reversed", label="Class")
    a = train_model(project.paths, "cards", "Class", params=FAST)
    b = train_model(project.paths, "cards-reversed", "Class", params=FAST)
    assert a.params["split"]["boundary"] == b.params["split"]["boundary"]
    times = table["Time"].to_numpy()
    assert a.params["split"]["boundary"] == sorted(times)[16_000]


def test_predict_and_explain(project: Project) -> None:
    import numpy as np

    res = train_model(project.paths, project.name, "Class", params=FAST)
    model = load_model(project.paths, res.model_cid)
    table = load_table(project.paths, project.dataset_cid)
    probs = model.predict_proba(table)
    assert probs.shape == (table.num_rows,) and probs.min() >= 0 and probs.max() <= 1
    top = int(np.argmax(probs))
    reasons = model.explain(table.slice(top, 1), top=3, descriptions={"V1": "card velocity"})[0]
    assert 1 <= len(reasons) <= 3
    assert reasons[0].contribution >= reasons[-1].contribution > 0
    # V1 drives fraud down when high: the riskiest row is explained by a low V1
    assert reasons[0].feature == "V1" and reasons[0].level in ("unusually low", "low")
    assert reasons[0].text.startswith("card velocity")
    assert "pushed the score up by" in reasons[0].text
    # TreeSHAP contributions add up to the margin
    x = model.matrix(table.slice(0, 50))
    assert np.allclose(model.contributions(x).sum(axis=1), model.logits(x), atol=1e-4)
    # Small batches go through a one-thread copy and in-place prediction: the scores
    # must be the same bytes as a DMatrix prediction on two threads (audits re-score).
    import xgboost as xgb

    # A linear-base model (`linear_base`) scores the trees' margin (zero base) plus the
    # stored line; a plain one (the default) the trees alone. The reference does the same.
    from ledgerml.mlops.models._base import linear_terms

    full = model.matrix(table)
    names = list(model.features)
    if model._linear is None:
        reference = model._impl.predict(xgb.DMatrix(full, feature_names=names)).astype(np.float64)
    else:
        zero = np.zeros(len(full))
        trees = model._impl.predict(
            xgb.DMatrix(full, base_margin=zero, feature_names=names), output_margin=True
        )
        line = linear_terms(model._linear, full).sum(axis=1) + float(model._linear["intercept"])
        reference = 1.0 / (1.0 + np.exp(-(trees.astype(np.float64) + line)))
    batched = np.concatenate([model.predict_proba(full[k : k + 7]) for k in range(0, 700, 7)])
    assert np.array_equal(batched, reference[:700])
    assert np.array_equal(model.predict_proba(full), reference)


def test_logreg_model_is_deterministic_json(project: Project) -> None:
    a = train_model(project.paths, project.name, "Class", model="logreg", seed=1)
    b = train_model(project.paths, project.name, "Class", model="logreg", seed=1)
    assert a.model_cid == b.model_cid
    doc = json.loads(open_store(project.paths).read_bytes(a.model_cid))
    assert doc["format"] == "ledgerml-logreg/v1" and len(doc["coef"]) == 7
    model = load_model(project.paths, a.model_cid)
    reasons = model.explain(load_table(project.paths, project.dataset_cid).slice(0, 5))
    assert len(reasons) == 5


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"target": "Fraud"}, "--target"),
        ({"target": "Amount"}, "--target"),  # not 0/1
        ({"data": "no-such-data"}, "--data"),
        ({"params": {"max_dept": 3}}, "--params"),
        ({"params": {"max_depth": "6"}}, "--params.max_depth"),
        ({"params": {"eta": True}}, "--params.eta"),
        ({"params": {"nthread": 8}}, "--params.nthread"),
        ({"seed": -1}, "--seed"),
        ({"seed": 2**40}, "--seed"),
        ({"model": "svm"}, "--model"),
        ({"time_column": "When"}, "--time-column"),
        ({"train_fraction": 1.0}, "train_fraction"),
    ],
)
def test_bad_input_names_field_records_nothing(project: Project, kwargs: dict, field: str) -> None:
    before = _size(project)
    args = {"data": project.name, "target": "Class", **kwargs}
    with pytest.raises(InputError) as err:
        train_model(project.paths, **args)
    assert err.value.field == field
    assert _size(project) == before


def _cli(project: Project, *args: str):
    return run_cli(project.home, *args)


def test_cli_bad_input_exit_2_nothing_recorded(project: Project, tmp_path: Path) -> None:
    from ledgerml.mlops.datasets import register_dataset

    text_csv = tmp_path / "with_text.csv"
    text_csv.write_text(
        "Time,merchant,V1,Class\n"
        # 160 distinct shops in the training window: an identifier, not a category (<= 64)
        + "".join(f"{i},shop{i},{i % 7 - 3},{int(i % 13 == 0)}\n" for i in range(200))
    )
    register_dataset(project.paths, text_csv, "with-text", label="Class")
    before = _size(project)
    cases = [
        (["--data", "cards", "--target", "Fraud"], "--target"),
        (["--data", "with-text", "--target", "Class"], "merchant"),
        (["--data", "nope", "--target", "Class"], "--data"),
        (["--data", "cards", "--target", "Class", "--params", "{max_depth: 3"], "--params"),
        (["--data", "cards", "--target", "Class", "--params", '{"depth": 3}'], "depth"),
        (["--data", "cards", "--target", "Class", "--params", '{"eta": "x"}'], "--params.eta"),
        (["--data", "cards", "--target", "Class", "--params", "[1]"], "--params"),
    ]
    for args, needle in cases:
        proc = _cli(project, "train", *args)
        assert proc.returncode == 2, (args, proc.stderr)
        assert needle in proc.stderr, (args, proc.stderr)
    assert "drop it" in _cli(project, "train", "--data", "with-text", "--target", "Class").stderr
    assert _size(project) == before


def test_cli_train_evaluate_explain(project: Project) -> None:
    proc = _cli(
        project,
        "train",
        "--data",
        "cards",
        "--target",
        "Class",
        "--params",
        json.dumps(FAST),
        "--json",
    )
    assert proc.returncode == 0, proc.stderr
    cid = json.loads(proc.stdout)["model_cid"]
    proc = _cli(project, "explain", cid, "--data", "cards", "--row", "5", "--json")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["row"] == 5 and 0 <= out["score"] <= 1
    assert _cli(project, "explain", cid, "--data", "cards", "--row", "20000").returncode == 2
    proc = _cli(project, "evaluate", cid, "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["metrics"]["fp_at_80_recall"] >= 0
    before = _size(project)
    assert _cli(project, "evaluate", "bafkreinotamodel" + "a" * 43).returncode == 2
    assert _size(project) == before
