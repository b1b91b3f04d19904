"""`fl run --data x.csv.gz --map schema=theirs,…`: another simulator's names, compressed CSV."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from ledgerml.datasets.aml import load_transactions, parse_column_map
from ledgerml.errors import InputError
from tests.conftest import run_cli
from tests.federated.test_cli import other_simulator

THEIRS = {"src_account": "from_acct", "dst_account": "to_acct", "src_bank": "from_bank",
          "dst_bank": "to_bank", "label": "is_laundering"}  # fmt: skip


def test_csv_gz_with_a_column_map_reads_as_the_schema(tmp_path: Path) -> None:
    csv, _ = other_simulator(tmp_path / "t.csv")
    plain = load_transactions(csv)
    theirs = pd.read_csv(csv, dtype=str).rename(columns=THEIRS)
    theirs.to_csv(tmp_path / "theirs.csv.gz", index=False)
    spec = ",".join(f"{a}={b}" for a, b in THEIRS.items())
    loaded = load_transactions(tmp_path / "theirs.csv.gz", columns=parse_column_map(spec))
    pd.testing.assert_frame_equal(loaded, plain)
    with pytest.raises(InputError) as err:
        load_transactions(tmp_path / "theirs.csv.gz")  # without the map: names the columns
    assert "src_account" in str(err.value)
    for bad in ("src_account", "nope=x", "label=a,label=b"):
        with pytest.raises(InputError) as err:
            parse_column_map(bad)
        assert err.value.field == "--map"


def test_cli_refuses_a_bad_map_before_anything(tmp_path: Path) -> None:
    home = tmp_path / "proj"
    assert run_cli(home, "init").returncode == 0
    csv, _ = other_simulator(tmp_path / "t.csv")
    res = run_cli(home, "fl", "run", "--data", str(csv), "--map", "src_account=missing_col")
    assert res.returncode == 2 and "--map" in res.stderr and "missing_col" in res.stderr
