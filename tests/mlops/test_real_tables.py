"""Real bank tables: a datetime time column and datetime features (seconds since the epoch),
trained, backtested and scored identically (generated tables, real XGBoost and ledger)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa

from ledgerml.ledger import init_project
from ledgerml.mlops.backtest import backtest
from ledgerml.mlops.datasets import register_dataset
from ledgerml.mlops.training import column_array, load_model, load_table, train_model

FAST = {"num_boost_round": 20, "min_boost_round": 5, "max_depth": 3}


def _cards(path: Path, rows: int = 3000) -> Path:
    """Another simulator's shape: TX_DATETIME (ISO text), a datetime feature, amounts."""
    rng = np.random.default_rng(4)
    start = np.datetime64("2018-04-01T00:00:00")
    secs = np.sort(rng.integers(0, 60 * 86400, rows))
    amount = rng.gamma(2.0, 40.0, rows)
    y = (rng.uniform(size=rows) < 0.02 + 0.1 * (amount > 220)).astype(int)
    lines = ["TX_DATETIME,CARD_FIRST_SEEN,TX_AMOUNT,V1,TX_FRAUD"]
    for i in range(rows):
        when = start + np.timedelta64(int(secs[i]), "s")
        seen = start - np.timedelta64(int(rng.integers(1, 400)), "D")
        lines.append(
            f"{str(when).replace('T', ' ')},{str(seen)[:10]},{amount[i]:.2f},"
            f"{rng.normal() + y[i]:.4f},{y[i]}"
        )
    path.write_text("\n".join(lines) + "\n")
    return path


def test_datetime_time_column_and_features(tmp_path: Path) -> None:
    paths = init_project(tmp_path / "proj")
    rec = register_dataset(paths, _cards(tmp_path / "c.csv"), "sim", label="TX_FRAUD")
    table = load_table(paths, rec.cid)
    assert pa.types.is_timestamp(table.schema.field("TX_DATETIME").type)
    assert pa.types.is_date(table.schema.field("CARD_FIRST_SEEN").type)
    seconds = column_array(table, "TX_DATETIME")
    assert seconds[0] == np.datetime64("2018-04-01", "s").astype(np.int64) + seconds[0] % 86400
    res = train_model(paths, "sim", "TX_FRAUD", params=FAST, time_column="TX_DATETIME")
    assert dict(res.features)["CARD_FIRST_SEEN"].startswith("date32")
    split = res.params["split"]
    assert split["time_column"] == "TX_DATETIME" and split["boundary"] > 1.5e9  # epoch seconds
    model = load_model(paths, res.model_cid)
    # serving reads the same encoding from the same table: same scores as the training matrix
    direct = model.predict_proba(np.column_stack([column_array(table, f) for f in model.features]))
    assert np.array_equal(model.predict_proba(table), direct)
    bt = backtest(
        paths, data="sim", target="TX_FRAUD", params=FAST, time_column="TX_DATETIME", folds=2
    )
    assert [f.boundary for f in bt.folds] == sorted(f.boundary for f in bt.folds)
