"""`register_dataset` in-process: deterministic Parquet, validation, vault all-or-nothing."""

from __future__ import annotations

from pathlib import Path

import pytest

from ledgerml.config import ProjectPaths
from ledgerml.errors import InputError
from ledgerml.ledger import init_project, open_ledger
from ledgerml.mlops import datasets as ds
from ledgerml.storage import Vault, cid_of_bytes
from tests.datasets.conftest import Cli, people_csv


def ledger_size(paths: ProjectPaths) -> int:
    with open_ledger(paths) as ledger:
        return ledger.size()


def test_parquet_is_byte_identical_and_cid_project_independent(
    source_dir: Path, tmp_path: Path
) -> None:
    plain = source_dir / "plain.csv"
    plain.write_text("t,amount,default\n0,120.5,0\n1,80.0,1\n2,,0\n")
    one = bytes(ds.parquet_bytes(ds._read_table(plain)))
    two = bytes(ds.parquet_bytes(ds._read_table(plain)))
    assert one == two and one[:4] == b"PAR1"
    cids = set()
    for name in ("a", "b"):  # no PII → no salts → the same CID in any project
        paths = init_project(tmp_path / name)
        rec = ds.register_dataset(paths, plain, "plain", label="default")
        assert (rec.rows, rec.columns, rec.ledger_index) == (3, ("t", "amount", "default"), 0)
        assert rec.dtypes == {"t": "int64", "amount": "double", "default": "int64"}
        cids.add(rec.cid)
    assert cids == {cid_of_bytes(one)}


def test_parquet_input_registers_and_drops_writer_metadata(
    project: tuple[Path, Cli], source_dir: Path
) -> None:
    import pandas as pd

    home, _ = project
    src = source_dir / "t.parquet"
    pd.DataFrame({"x": [1, 2, 3], "y": ["a", "b", "c"]}).to_parquet(src)
    rec = ds.register_dataset(ProjectPaths(home), src, "from-parquet")
    assert rec.rows == 3 and rec.columns == ("x", "y")


@pytest.mark.parametrize(
    ("csv", "kwargs", "field", "says"),
    [
        ("a,b\n", {}, "path", "no data rows"),
        ("", {}, "path", "does not parse"),
        ("a,a\n1,2\n", {}, "path", "duplicate column"),
        ("a,b\n1,2\n", {"label": "z"}, "--label", "no column 'z'"),
        ("a,b\n1,2\n", {"subject_col": "z"}, "--subject-col", "no column 'z'"),
        ("a,b\n1,2\n", {"pii": ["a"], "subject_col": "a"}, "--pii", "subject column"),
        ("a,b\n1,2\n", {"pii": "b", "subject_col": "a", "label": "b"}, "--label", "both"),
        ("id,n\n1,x\n,y\n", {"pii": "n", "subject_col": "id"}, "--subject-col", "row 2"),
        ("id,n\n1,x\n1,y\n", {"pii": "n", "subject_col": "id"}, "--pii", "rows 1 and 2"),
    ],
)
def test_bad_input_names_the_field_and_writes_nothing(
    project: tuple[Path, Cli],
    source_dir: Path,
    csv: str,
    kwargs: dict[str, object],
    field: str,
    says: str,
) -> None:
    home, _ = project
    paths = ProjectPaths(home)
    src = source_dir / "bad.csv"
    src.write_text(csv)
    with pytest.raises(InputError) as err:
        ds.register_dataset(paths, src, "bad", **kwargs)  # type: ignore[arg-type]
    assert err.value.field == field and says in str(err.value)
    assert ledger_size(paths) == 0
    assert not paths.vault_db.exists() or Vault(paths.vault_db).subjects() == []


def test_vault_rolls_back_when_the_ledger_append_fails(
    project: tuple[Path, Cli], source_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home, _ = project
    paths = ProjectPaths(home)

    def broken(_paths: ProjectPaths) -> None:
        raise OSError("disk full (simulated)")

    monkeypatch.setattr(ds, "open_ledger", broken)
    with pytest.raises(OSError, match="simulated"):
        ds.register_dataset(
            paths, people_csv(source_dir / "p.csv"), "p", pii="name,iban", subject_col="customer_id"
        )
    assert Vault(paths.vault_db).subjects() == []  # PII never outlives a failed registration
    assert ledger_size(paths) == 0
