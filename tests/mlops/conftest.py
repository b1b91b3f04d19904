"""A small seeded synthetic fraud table, registered in a real project (real CAS, real SQLite)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from ledgerml.config import ProjectPaths
from ledgerml.ledger import init_project
from ledgerml.mlops.datasets import register_dataset

ROWS = 20_000


def fraud_csv(path: Path, rows: int = ROWS, seed: int = 11) -> Path:
    """Time, six features (three informative, non-linear in one), Amount, Class (~1.5% fraud)."""
    rng = np.random.default_rng(seed)
    t = np.sort(rng.uniform(0, 172_800, rows)).round(1)
    x = rng.normal(size=(rows, 6))
    amount = np.exp(rng.normal(3.2, 1.0, rows)).round(2)
    logit = -5.2 - 1.8 * x[:, 0] + 1.2 * x[:, 1] + 1.5 * (x[:, 2] ** 2 > 2.5) + 0.3 * np.log(amount)
    y = (rng.uniform(size=rows) < 1 / (1 + np.exp(-logit))).astype(int)
    cols = ["Time", *(f"V{i}" for i in range(1, 7)), "Amount", "Class"]
    with path.open("w") as fh:
        fh.write(",".join(cols) + "\n")
        for i in range(rows):
            vals = ",".join(f"{v:.5f}" for v in x[i])
            fh.write(f"{t[i]},{vals},{amount[i]},{y[i]}\n")
    return path


@dataclass(frozen=True)
class Project:
    home: Path
    paths: ProjectPaths
    dataset_cid: str
    name: str


@pytest.fixture(scope="session")
def fraud_source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return fraud_csv(tmp_path_factory.mktemp("data") / "fraud.csv")


@pytest.fixture
def project(tmp_path: Path, fraud_source: Path) -> Project:
    home = tmp_path / "proj"
    paths = init_project(home)
    rec = register_dataset(paths, fraud_source, "cards", label="Class")
    return Project(home, paths, rec.cid, "cards")
