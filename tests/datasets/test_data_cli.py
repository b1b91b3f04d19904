"""`ledgerml data add/erase/ls` by the real CLI: determinism, round trip, bad input, erasure."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

from ledgerml.config import ProjectPaths
from ledgerml.ledger import open_ledger
from ledgerml.storage import Vault, open_store
from ledgerml.tables import read_parquet
from tests.datasets.conftest import PEOPLE, ROWS, Cli, people_csv

HEX64 = re.compile(r"^[0-9a-f]{64}$")


def add_people(call: Cli, csv: Path) -> dict[str, object]:
    done = call(
        "data", "add", str(csv), "--name", "people",
        "--pii", "name,iban", "--subject-col", "customer_id", "--label", "default", "--json",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def files_holding(folder: Path, needles: list[bytes]) -> list[str]:
    """Every file under `folder` (blocks, SQLite db, -wal/-journal, keys…) containing a needle."""
    hits = []
    for p in folder.rglob("*"):
        if p.is_file():
            data = p.read_bytes()
            hits += [f"{p.relative_to(folder)}: {n!r}" for n in needles if n in data]
    return hits


def test_same_input_same_cid_and_parquet_round_trip(
    project: tuple[Path, Cli], source_dir: Path
) -> None:

    home, call = project
    csv = people_csv(source_dir / "people.csv")
    first = add_people(call, csv)
    again = add_people(call, csv)
    assert first["cid"] == again["cid"]  # same subjects, same salts: same commitments
    assert (first["rows"], first["ledger_index"], again["ledger_index"]) == (4, 0, 1)
    assert first["columns"] == ["customer_id", "name", "iban", "amount", "default"]

    # `store cat` gives Parquet that reads back; PII columns hold the vault's commitments.
    cat = subprocess.run(
        [sys.executable, "-m", "ledgerml.cli.main", "--home", str(home), "store", "cat",
         str(first["cid"])],
        capture_output=True, timeout=120, check=False,
    )  # fmt: skip
    assert cat.returncode == 0, cat.stderr
    stored = cat.stdout
    assert stored == open_store(ProjectPaths(home)).read_bytes(str(first["cid"]))
    assert stored[:4] == b"PAR1" and stored[-4:] == b"PAR1"
    df = read_parquet(stored).to_pandas()
    assert list(df.columns) == first["columns"]
    assert df["amount"].tolist() == [float(a) for _, a, _ in ROWS]
    assert df["default"].tolist() == [int(d) for _, _, d in ROWS]
    vault = Vault(ProjectPaths(home).vault_db)
    for row, (subject, _, _) in enumerate(ROWS):
        assert df["customer_id"][row] == vault.subject_commitment(subject)
        for col in ("name", "iban"):
            assert HEX64.match(df[col][row])
            assert df[col][row] == vault.commitment(subject, col, PEOPLE[subject][col])
            assert vault.get(subject, col) == PEOPLE[subject][col]

    listed = call("data", "ls", "--json")
    assert listed.returncode == 0, listed.stderr
    entries = json.loads(listed.stdout)
    assert [e["name"] for e in entries] == ["people", "people"]
    e = entries[0]
    assert e["pii_columns"] == ["name", "iban"] and e["subject_column"] == "customer_id"
    assert e["label"] == "default" and HEX64.match(e["schema_hash"])
    assert e["writer"].startswith("parquet/v1 pyarrow ")
    assert e["dtypes"] == {
        "customer_id": "string", "name": "string", "iban": "string",
        "amount": "double", "default": "int64",
    }  # fmt: skip


BAD_ADDS = [  # (file, extra options, what stderr must say)
    ("missing", [], "path: no such file"),
    ("ragged", [], "does not parse as CSV"),
    ("people", ["--pii", "name,nope", "--subject-col", "customer_id"], "--pii: no column"),
    ("people", ["--pii", "name"], "--subject-col"),
]  # more bad cases, in-process, in test_register.py


def test_bad_input_exits_2_and_registers_nothing(
    project: tuple[Path, Cli], source_dir: Path
) -> None:
    home, call = project
    people_csv(source_dir / "people.csv")
    (source_dir / "ragged.csv").write_text("a,b\n1,2\n3,4,5\n")
    for make, extra, field in BAD_ADDS:
        done = call("data", "add", str(source_dir / f"{make}.csv"), "--name", "x", *extra)
        assert done.returncode == 2, (make, extra, done.stdout, done.stderr)
        assert field in done.stderr.replace("\n", " "), (make, extra, done.stderr)
        assert "Traceback" not in done.stderr
    paths = ProjectPaths(home)
    with open_ledger(paths) as ledger:
        assert ledger.size() == 0
    assert not any(p.is_file() for p in paths.blocks.rglob("*") if "_tmp" not in p.parts)
    assert not paths.vault_db.exists() or Vault(paths.vault_db).subjects() == []


def test_erasure_leaves_no_clear_value_on_disk_and_the_ledger_verifies(
    project: tuple[Path, Cli], source_dir: Path
) -> None:
    home, call = project
    csv = people_csv(source_dir / "people.csv")
    add_people(call, csv)
    paths = ProjectPaths(home)
    pii = [v.encode() for p in PEOPLE.values() for v in p.values()]
    ids = [s.encode() for s in PEOPLE]
    # Before any erasure no PII value is in clear anywhere in the project, and the
    # subject ids are only in the vault (its key column), not in blocks or ledger.
    assert files_holding(home, pii) == []
    assert {h.split(":")[0] for h in files_holding(home, ids)} == {"vault.db"}

    erased = "C-8W52-YUSUF"
    commitment = Vault(paths.vault_db).subject_commitment(erased)
    done = call("data", "erase", "--subject", erased, "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"subject_commitment": commitment}

    needles = [erased.encode()] + [v.encode() for v in PEOPLE[erased].values()]
    needles += [v.encode("utf-16-le") for v in PEOPLE[erased].values()]
    assert files_holding(home, needles) == []
    vault = Vault(paths.vault_db)
    assert not vault.has(erased)
    for subject in PEOPLE.keys() - {erased}:
        assert vault.get_all(subject) == PEOPLE[subject]

    verify = call("verify")
    assert verify.returncode == 0, verify.stdout + verify.stderr
    with open_ledger(paths) as ledger:
        entries = [json.loads(e) for _, e in ledger.entries()]
    assert [e["type"] for e in entries] == ["dataset.registered", "subject.erased"]
    assert entries[-1]["body"]["subject_commitment"] == commitment

    unknown = call("data", "erase", "--subject", "C-0000-NOBODY")
    assert unknown.returncode == 2 and "unknown or already erased" in unknown.stderr
    with open_ledger(paths) as ledger:
        assert ledger.size() == 2  # nothing recorded for the failure
