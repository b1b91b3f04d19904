"""Shared fixtures: real project folders and the real CLI in a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def run_cli(
    home: Path, *args: str, input_: str | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run `ledgerml --home HOME ARGS…` as a user would, in a fresh process."""
    env = dict(os.environ, PYTHONUNBUFFERED="1", COLUMNS="200")
    env.pop("LEDGERML_HOME", None)
    return subprocess.run(
        [sys.executable, "-m", "ledgerml.cli.main", "--home", str(home), *args],
        input=input_,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        check=False,
    )


@pytest.fixture
def cli(tmp_path: Path) -> Callable[..., subprocess.CompletedProcess[str]]:
    home = tmp_path / "proj"

    def call(*args: str, input_: str | None = None) -> subprocess.CompletedProcess[str]:
        return run_cli(home, *args, input_=input_)

    call.home = home  # type: ignore[attr-defined]
    return call
