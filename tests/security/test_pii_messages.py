"""No personal value in any message: bad tables given to `data add --pii` are refused (exit 2)
naming line, row or column only, and nothing of them reaches the ledger or the vault."""

from __future__ import annotations

import traceback
from collections.abc import Callable
from pathlib import Path

import pytest

from ledgerml.errors import InputError
from ledgerml.ledger import init_project, open_ledger
from ledgerml.mlops.datasets import register_dataset
from tests.conftest import run_cli

NAME, IBAN, SUBJECT = "Quilliam Zebedee-Marchbanks", "DE02120300000000202051QZM", "C-2077-QZM"
NEEDLES = [NAME, "Zebedee", IBAN, "202051QZM", SUBJECT]
HEADER = "customer_id,name,iban,amount,default\n"
GOOD = "C-1,Ann Other,DE00000000000000000001,1.0,0\n"


def csv_bytes(*rows: str) -> bytes:
    return (HEADER + GOOD + "".join(rows)).encode()


BAD_TABLES: dict[str, tuple[str, Callable[[], bytes], str]] = {
    # name: (file suffix, content, what the message must say instead)
    "ragged row": (
        ".csv", lambda: csv_bytes(f"{SUBJECT},{NAME},{IBAN},2.0,1,extra\n"),
        "line 3 has 6 fields where the header has 5",
    ),
    "too few fields": (
        ".csv", lambda: csv_bytes(f"{SUBJECT},{NAME},{IBAN}\n"), "line 3 has 3 fields",
    ),
    "not UTF-8": (
        ".csv",
        lambda: HEADER.encode() + f"{SUBJECT},{NAME} Zoë,{IBAN},2.0,1\n".encode("latin-1"),
        "line 2",
    ),
    "unterminated quote": (
        ".csv", lambda: csv_bytes(f'{SUBJECT},"{NAME},{IBAN},2.0,1\n'), "does not parse as CSV",
    ),
    "one subject, two names": (
        ".csv", lambda: csv_bytes(f"{SUBJECT},{NAME},{IBAN},2.0,1\n", f"{SUBJECT},X,{IBAN},3,0\n"),
        "rows 2 and 3",
    ),
    "missing subject id": (".csv", lambda: csv_bytes(f",{NAME},{IBAN},2.0,1\n"), "row 2"),
    "damaged Parquet": (
        ".parquet", lambda: b"PAR1" + csv_bytes(f"{SUBJECT},{NAME},{IBAN},2.0,1\n") + b"PAR1",
        "not a readable Parquet file",
    ),
}  # fmt: skip


def leaks(text: str) -> list[str]:
    return [n for n in NEEDLES if n in text]


@pytest.mark.parametrize("case", sorted(BAD_TABLES))
def test_bad_table_is_refused_without_quoting_personal_data(tmp_path: Path, case: str) -> None:
    suffix, content, says = BAD_TABLES[case]
    home = tmp_path / "proj"
    paths = init_project(home)
    src = tmp_path / f"customers{suffix}"
    src.write_bytes(content())
    args = ("--pii", "name,iban", "--subject-col", "customer_id")
    run = run_cli(home, "data", "add", str(src), "--name", "kyc", *args)
    assert run.returncode == 2, run.stderr
    assert says in run.stderr
    assert leaks(run.stdout + run.stderr) == []
    assert "internal error" not in run.stderr

    with pytest.raises(InputError) as raised:  # the library's exception, as a caller logs it
        register_dataset(paths, src, "kyc", pii="name,iban", subject_col="customer_id")
    shown = "".join(traceback.format_exception(raised.value))
    assert leaks(shown) == [] and leaks(repr(raised.value.args)) == []

    with open_ledger(paths) as ledger:  # nothing half-written
        assert ledger.size() == 0
    for f in home.rglob("*"):
        if f.is_file():
            data = f.read_bytes()
            assert [n for n in NEEDLES if n.encode() in data] == [], f
