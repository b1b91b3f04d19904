"""`ledgerml score --id-column`: the table's own ids go to the caller's output, not the ledger."""

from __future__ import annotations

import json
from pathlib import Path

from ledgerml.ledger.project import open_ledger
from tests.conftest import run_cli
from tests.mlops.conftest import fraud_csv
from tests.serving.conftest import Trained, copy_project


def test_id_column_is_carried_to_the_output_and_kept_off_the_ledger(
    trained: Trained, tmp_path: Path
) -> None:
    paths = copy_project(trained, tmp_path / "proj")
    lines = fraud_csv(tmp_path / "f.csv", rows=40, seed=9).read_text().splitlines()
    ids = [f"TXQ-{i:04d}-ZZ" for i in range(len(lines) - 1)]  # distinctive, to search for
    data = tmp_path / "with_ids.csv"
    body = [f"{t},{r}" for t, r in zip(ids, lines[1:], strict=True)]
    data.write_text("\n".join([f"TX_ID,{lines[0]}", *body]) + "\n")
    with open_ledger(paths) as ledger:
        before = ledger.size()
    bad = run_cli(paths.home, "score", str(data), "--id-column", "NOPE")
    assert bad.returncode == 2 and "--id-column" in bad.stderr
    with open_ledger(paths) as ledger:
        assert ledger.size() == before  # refused before any decision

    out = tmp_path / "out.csv"
    done = run_cli(paths.home, "score", str(data), "--id-column", "TX_ID", "-o", str(out), "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["decisions"] == len(ids)
    header, *rows = out.read_text().splitlines()
    assert header.split(",")[0] == "TX_ID" and [r.split(",")[0] for r in rows] == ids
    assert not any(i.encode() in p.read_bytes() for p in paths.home.rglob("*") if p.is_file()
                   for i in ids[:3])  # fmt: skip
