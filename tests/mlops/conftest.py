"""A small seeded synthetic fraud table, registered in a real project (real CAS, real SQLite)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from ledgerml.config import ProjectPaths
from ledgerml.datasets.synthetic import fraud_csv
from ledgerml.ledger import init_project
from ledgerml.mlops.datasets import register_dataset

ROWS = 20_000

__all__ = ["ROWS", "Project", "fraud_csv"]  # fraud_csv: re-exported for other test packages


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
