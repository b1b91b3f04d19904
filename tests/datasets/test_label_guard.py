"""`data add --label` refuses a label that is not 0/1 with no gaps, before anything is written."""

from __future__ import annotations

from pathlib import Path

import pytest

from ledgerml.config import ProjectPaths
from ledgerml.errors import InputError
from ledgerml.ledger import open_ledger
from ledgerml.mlops.datasets import register_dataset
from tests.datasets.conftest import Cli

# (label cells, what the message must say); the cells are distinctive so a leak is visible
BAD_LABELS = [
    (["0", "1", "", "0"], "1 missing value(s) of 4 rows"),
    (["0", "1", "2", "0"], "1 of 4 rows hold another value"),
    (["0", "1", "0.5", "1"], "1 of 4 rows hold another value"),
    (["nein", "ja", "nein", "nein"], "not 0/1 numbers"),
]


def _table(folder: Path, cells: list[str]) -> Path:
    path = folder / "t.csv"
    rows = [f"{i},{10.5 * i},{c}" for i, c in enumerate(cells)]
    path.write_text("id,amount,fraud\n" + "\n".join(rows) + "\n")
    return path


def _nothing_written(home: Path) -> None:
    paths = ProjectPaths(home)
    with open_ledger(paths) as ledger:
        assert ledger.size() == 0
    assert not any(p.is_file() for p in paths.blocks.rglob("*") if "_tmp" not in p.parts)


@pytest.mark.parametrize(("cells", "says"), BAD_LABELS)
def test_bad_label_is_refused_naming_the_field_and_nothing_is_written(
    project: tuple[Path, Cli], source_dir: Path, cells: list[str], says: str
) -> None:
    home, _ = project
    with pytest.raises(InputError) as err:
        register_dataset(ProjectPaths(home), _table(source_dir, cells), "t", label="fraud")
    assert err.value.field == "--label" and says in str(err.value)
    assert not any(c and c in str(err.value) for c in ("nein", "ja", "0.5"))  # no cell values
    _nothing_written(home)


def test_good_labels_register_and_the_cli_exits_2_on_a_bad_one(
    project: tuple[Path, Cli], source_dir: Path
) -> None:
    home, call = project
    bad = call("data", "add", str(_table(source_dir, ["0", "2", "1"])), "--name", "t",
               "--label", "fraud")  # fmt: skip
    assert bad.returncode == 2 and "--label" in bad.stderr and "Traceback" not in bad.stderr
    _nothing_written(home)
    for cells in (["0", "1", "0"], ["true", "false", "true"], ["0.0", "1.0", "0.0"]):
        rec = register_dataset(ProjectPaths(home), _table(source_dir, cells), "t", label="fraud")
        assert rec.label == "fraud"
