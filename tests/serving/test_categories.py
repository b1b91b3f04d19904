"""Text (category) features: learnt from the training window, stored inside the model file,
applied identically by evaluation, backtests, batch scoring and the HTTP service.

Generated tables, real XGBoost and logistic fits, the real gate (embedded EVM) and real
HTTP against uvicorn.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from ledgerml.errors import InputError
from ledgerml.ledger import init_project
from ledgerml.ledger.project import open_ledger
from ledgerml.mlops.backtest import backtest
from ledgerml.mlops.datasets import register_dataset
from ledgerml.mlops.evaluation import evaluate_model
from ledgerml.mlops.models import load
from ledgerml.mlops.training import load_model, load_table, train_model
from ledgerml.serving.scoring import commit_input
from tests.conftest import run_cli
from tests.serving.conftest import Server, promote_through_gate

FAST = {"num_boost_round": 30, "min_boost_round": 10, "max_depth": 3}
#: Categories only the later rows carry: the model must not learn them from the future.
LATE = "KIOSK"


def _cards(path: Path, rows: int = 3000, seed: int = 5) -> Path:
    """Another simulator's shape: TX_TYPE (two values) and CHANNEL (three, a fourth late)."""
    rng = np.random.default_rng(seed)
    lines = ["TIME,TX_TYPE,CHANNEL,TX_AMOUNT,V1,TX_FRAUD"]
    for i in range(rows):
        online = rng.uniform() < 0.4
        channel = ["APP", "ATM", "WEB"][int(rng.integers(0, 3))]
        if i > rows * 0.9 and rng.uniform() < 0.3:
            channel = LATE
        amount = rng.gamma(2.0, 40.0)
        p = 0.005 + 0.12 * online * (channel == "WEB") + 0.05 * (amount > 200)
        y = int(rng.uniform() < p)
        lines.append(
            f"{i},{'ONLINE' if online else 'POS'},{channel},{amount:.2f},"
            f"{rng.normal() + 0.5 * y:.4f},{y}"
        )
    path.write_text("\n".join(lines) + "\n")
    return path


def _row(tx_type: str, channel: str) -> dict[str, Any]:
    return {"TX_TYPE": tx_type, "CHANNEL": channel, "TX_AMOUNT": 80.0, "V1": 0.1}


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, str, str]:
    root = tmp_path_factory.mktemp("categories")
    paths = init_project(root / "proj")
    register_dataset(paths, _cards(root / "cards.csv"), "sim", label="TX_FRAUD")
    res = train_model(paths, "sim", "TX_FRAUD", params=FAST, time_column="TIME")
    return paths, res.model_cid, root


def test_categories_come_from_the_training_window_and_live_in_the_model(
    project: tuple[Any, str, str],
) -> None:
    paths, cid, _ = project
    model = load_model(paths, cid)
    # sorted; KIOSK appears only after the training window, so the model does not know it
    expected = {"TX_TYPE": ("ONLINE", "POS"), "CHANNEL": ("APP", "ATM", "WEB")}
    assert dict(model.categories) == expected
    table = load_table(paths, _dataset_cid(paths))
    codes = {
        "TX_TYPE": {"ONLINE": 0.0, "POS": 1.0},
        "CHANNEL": {"APP": 0.0, "ATM": 1.0, "WEB": 2.0},
    }
    by_hand = np.column_stack(
        [
            [codes[f].get(v, np.nan) for v in table[f].to_pylist()]
            if f in codes
            else np.asarray(table[f].to_numpy(), dtype=np.float64)
            for f in model.features
        ]
    )
    # the table path, the dict path and a hand encoding give the same scores
    assert np.array_equal(model.predict_proba(table), model.predict_proba(by_hand))
    as_dict = {f: table[f].to_pylist() for f in model.features}
    assert np.array_equal(model.predict_proba(as_dict), model.predict_proba(by_hand))
    # the category matters to the model: WEB+ONLINE scores above ATM+POS
    web, atm = model.predict_proba(_row("ONLINE", "WEB")), model.predict_proba(_row("POS", "ATM"))
    assert web[0] > atm[0]
    # reasons name the category by its text, not its code
    texts = [r.text for r in model.explain(_row("ONLINE", "WEB"), top=4)[0]]
    assert any("is WEB" in t or "is ONLINE" in t for t in texts), texts


def _dataset_cid(paths: Any) -> str:
    with open_ledger(paths) as ledger:
        return next(e["body"]["cid"] for _, e in ledger.entries_of_type("dataset.registered"))


def test_same_data_same_seed_same_cid_and_logreg_too(project: tuple[Any, str, str]) -> None:
    paths, cid, _ = project
    again = train_model(paths, "sim", "TX_FRAUD", params=FAST, time_column="TIME")
    assert again.model_cid == cid
    lr = train_model(paths, "sim", "TX_FRAUD", model="logreg", time_column="TIME")
    lr_model = load_model(paths, lr.model_cid)
    assert dict(lr_model.categories)["CHANNEL"] == ("APP", "ATM", "WEB")
    assert np.isfinite(lr_model.predict_proba(_row("POS", "APP"))).all()


def test_evaluation_and_backtest_apply_the_models_codes(project: tuple[Any, str, str]) -> None:
    paths, cid, _ = project
    ev = evaluate_model(paths, cid)
    assert 0 < ev.metrics["auprc"] <= 1
    bt = backtest(
        paths, data="sim", target="TX_FRAUD", params=FAST, time_column="TIME", folds=2,
        record=False,
    )  # fmt: skip
    assert len(bt.folds) == 2 and all(0 < f.metrics["auprc"] <= 1 for f in bt.folds)


def test_a_text_column_with_too_many_values_is_refused_naming_it(tmp_path: Path) -> None:
    paths = init_project(tmp_path / "proj")
    rng = np.random.default_rng(1)
    lines = ["TIME,MERCHANT,V1,Y"] + [
        f"{i},M{int(rng.integers(0, 5000)):05d},{rng.normal():.3f},{int(i % 37 == 0)}"
        for i in range(2000)
    ]
    (tmp_path / "m.csv").write_text("\n".join(lines) + "\n")
    register_dataset(paths, tmp_path / "m.csv", "m", label="Y")
    with open_ledger(paths) as ledger:
        before = ledger.size()
    with pytest.raises(InputError) as err:
        train_model(paths, "m", "Y", params=FAST, time_column="TIME")
    assert err.value.field == "--data" and "MERCHANT" in str(err.value)
    assert "M0" not in str(err.value)  # no value shown
    done = run_cli(paths.home, "train", "--data", "m", "--target", "Y", "--time-column", "TIME")
    assert done.returncode == 2 and "MERCHANT" in done.stderr
    with open_ledger(paths) as ledger:
        assert ledger.size() == before
    # dropping it trains
    ok = train_model(paths, "m", "Y", params=FAST, time_column="TIME", drop=["MERCHANT"])
    assert "MERCHANT" not in dict(ok.features)


def test_served_over_http_and_by_file_with_the_same_encoding(
    project: tuple[Any, str, str], run_server: Any, tmp_path: Path
) -> None:
    paths, cid, root = project
    assert promote_through_gate(paths, cid) is not None
    model = load(cid, _stored(paths, cid), source=cid)
    server: Server = run_server(paths)
    with server.client("scorer") as c:
        record = _row("ONLINE", "WEB")
        r = c.post("/v1/score", json={"features": record})
        assert r.status_code == 200, r.text
        out = r.json()["decisions"][0] if "decisions" in r.json() else r.json()
        assert out["score"] == pytest.approx(float(model.predict_proba(record)[0]), abs=1e-6)
        # the commitment covers the text as sent, which the caller can show later
        _, commitment = commit_input(record, bytes.fromhex(out["salt"]))
        assert commitment == out["input_commitment"]

        before = server.size()
        late = c.post("/v1/score", json={"features": _row("ONLINE", LATE)})
        assert late.status_code == 422 and "features.CHANNEL" in late.text
        assert LATE not in late.text  # the sent value is not echoed
        coded = c.post("/v1/score", json={"features": {**record, "TX_TYPE": 0}})
        assert coded.status_code == 422 and "features.TX_TYPE" in coded.text
        assert server.size() == before  # nothing appended for refused requests

    # `ledgerml score` on a file: same codes, same scores as over HTTP
    batch = root / "batch.csv"
    batch.write_text("TIME,TX_TYPE,CHANNEL,TX_AMOUNT,V1\n1,ONLINE,WEB,80.0,0.1\n2,POS,ATM,80,0.1\n")
    dest = tmp_path / "decisions.jsonl"
    done = run_cli(paths.home, "score", str(batch), "-o", str(dest), "--json")
    assert done.returncode == 0, done.stderr
    scores = [json.loads(line)["score"] for line in dest.read_text().splitlines()]
    assert scores[0] == pytest.approx(out["score"], abs=1e-6) and scores[0] > scores[1]
    bad = root / "bad.csv"
    bad.write_text(f"TIME,TX_TYPE,CHANNEL,TX_AMOUNT,V1\n1,ONLINE,{LATE},80.0,0.1\n")
    with open_ledger(paths) as ledger:
        before = ledger.size()
    refused = run_cli(paths.home, "score", str(bad))
    assert refused.returncode == 2 and "CHANNEL" in refused.stderr
    with open_ledger(paths) as ledger:
        assert ledger.size() == before


def _stored(paths: Any, cid: str) -> bytes:
    from ledgerml.storage import open_store

    return open_store(paths).read_bytes(cid)
