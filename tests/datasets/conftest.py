"""Data-set fixtures: a small table with personal data, and a project made by the real CLI."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from subprocess import CompletedProcess

import pytest

from ledgerml.ledger import init_project
from tests.conftest import run_cli

#: Distinctive clear values, so a byte search of the project cannot hit by chance.
PEOPLE = {
    "C-7Q41-ZELDA": {"name": "Zelda Quixotic-Abernathy", "iban": "DE89370400440532013000ZQA"},
    "C-8W52-YUSUF": {"name": "Yusuf Vanderbilt-Okoroafor", "iban": "GB29NWBK60161331926819YVO"},
    "C-9E63-XIOMA": {"name": "Xiomara Fenwick-Lindqvist", "iban": "FR1420041010050500013M02XFL"},
}
ROWS = [  # subject, amount, default: one subject has two rows
    ("C-7Q41-ZELDA", "120.5", "0"),
    ("C-8W52-YUSUF", "80.0", "1"),
    ("C-7Q41-ZELDA", "33.25", "0"),
    ("C-9E63-XIOMA", "5.0", "0"),
]


def people_csv(path: Path) -> Path:
    lines = ["customer_id,name,iban,amount,default"]
    for subject, amount, default in ROWS:
        p = PEOPLE[subject]
        lines.append(f"{subject},{p['name']},{p['iban']},{amount},{default}")
    path.write_text("\n".join(lines) + "\n")
    return path


Cli = Callable[..., CompletedProcess[str]]


@pytest.fixture
def project(tmp_path: Path) -> tuple[Path, Cli]:
    """An initialised project and a runner of the real CLI bound to it."""
    home = tmp_path / "proj"

    def call(*args: str) -> CompletedProcess[str]:
        return run_cli(home, *args)

    init_project(home)  # in-process: `ledgerml init` has its own tests; saves a CLI start-up
    return home, call


@pytest.fixture
def source_dir(tmp_path: Path) -> Path:
    """Input files live outside the project folder, as a user's would."""
    d = tmp_path / "inputs"
    d.mkdir()
    return d
