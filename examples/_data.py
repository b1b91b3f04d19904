"""Shared by the examples: a project with two registered windows of seeded card data.

`cards` (training and its time-held-out tail) and `cards_test` (a later window) are seeded
synthetic card transactions whose fraud follows two non-linear patterns (a tree model finds
them, a logistic regression cannot: the `fraud-model` pack's challenger rules then hold).
The examples differ only in the framework.
"""

from __future__ import annotations

import sys
from pathlib import Path

import ledgerml

FEATURES = ["V1", "V2", "V3", "V4", "V5", "V6", "Amount"]
TARGET = "Class"
ROWS = 4000


def fraud_csv(path: Path, *, rows: int, seed: int) -> Path:
    """Time, V1..V6, Amount, Class: fraud when V1 and V2 are both high or V3 is extreme."""
    import numpy as np

    rng = np.random.default_rng(seed)
    t = np.sort(rng.uniform(0, 172_800, rows)).round(1)
    x = rng.normal(size=(rows, 6)).round(5)
    amount = np.exp(rng.normal(3.2, 1.0, rows)).round(2)
    y = ((x[:, 0] > 1.6) & (x[:, 1] > 0.8)) | (x[:, 2] ** 2 > 6.5) | (rng.uniform(size=rows) < 1e-3)
    with path.open("w") as fh:
        fh.write("Time,V1,V2,V3,V4,V5,V6,Amount,Class\n")
        for i in range(rows):
            fh.write(f"{t[i]},{','.join(map(str, x[i]))},{amount[i]},{int(y[i])}\n")
    return path


def project_and_data(home: str | Path | None = None) -> tuple[ledgerml.Project, object, object]:
    """Open the project at `home` (argv[1]), or create it with data; returns (project, X, y)."""
    import pyarrow.csv as pcsv

    home = Path(home or (sys.argv[1] if len(sys.argv) > 1 else "example-project"))
    src = home.parent / f"{home.name}-data"
    src.mkdir(parents=True, exist_ok=True)
    train_csv = src / "cards.csv"
    if (home / "ledger.db").exists():
        project = ledgerml.open(home)
    else:
        project = ledgerml.init(home)  # keys, empty ledger, embedded EVM gate
        fraud_csv(train_csv, rows=ROWS, seed=11)
        fraud_csv(src / "cards_test.csv", rows=ROWS // 2, seed=12)
        project.add_data(train_csv, name="cards", label=TARGET)
        project.add_data(src / "cards_test.csv", name="cards_test", label=TARGET)
    # the caller's own training window: the first 80% of rows by Time
    table = pcsv.read_csv(train_csv).sort_by("Time")
    cut = int(table.num_rows * 0.8)
    x = table.select(FEATURES).slice(0, cut).to_pandas()
    y = table.column(TARGET).slice(0, cut).to_numpy()
    return project, x, y
