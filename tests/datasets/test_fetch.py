"""Data-set fetching: pinned hashes, `--from`, offline errors (no large download here)."""

from __future__ import annotations

import hashlib
import importlib
import os
from pathlib import Path

import pytest

from ledgerml.datasets.fetch import FetchError, Source, fetch
from ledgerml.errors import InputError

# the package re-exports the function `fetch`, which shadows the module's name
fetch_mod = importlib.import_module("ledgerml.datasets.fetch")


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("LEDGERML_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache" / "datasets"


@pytest.fixture
def tiny(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A pinned source whose file we can make, patched into the registry."""
    data = b"a,b\n1,2\n3,4\n"
    path = tmp_path / "tiny.csv"
    path.write_bytes(data)
    src = Source(
        name="tiny",
        title="tiny test table",
        requirement="ledgerml-no-such-package==0.0.0",
        archive_sha256="0" * 64,
        member_suffix="tiny.csv",
        sha256=hashlib.sha256(data).hexdigest(),
        rows=2,
        filename="tiny.csv",
    )
    monkeypatch.setitem(fetch_mod.SOURCES, "tiny", src)
    return path


def test_from_path_verifies_and_caches(cache: Path, tiny: Path, tmp_path: Path) -> None:
    got = fetch("tiny", from_path=tiny)
    assert got.path == cache / "tiny.csv" and got.rows == 2 and not got.downloaded
    assert got.path.read_bytes() == tiny.read_bytes()
    assert fetch("tiny").path == got.path  # served from the cache, no download

    wrong = tmp_path / "wrong.csv"
    wrong.write_bytes(b"a,b\n1,2\n")
    got.path.unlink()
    with pytest.raises(InputError) as err:
        fetch("tiny", from_path=wrong)
    assert err.value.field == "--from" and "expected" in str(err.value)
    assert not got.path.exists() and list(cache.iterdir()) == []  # nothing half-written


def test_unknown_name_lists_the_known_ones(cache: Path) -> None:
    with pytest.raises(InputError, match="ulb-creditcard"):
        fetch("no-such-data")


def test_offline_is_a_clear_error_not_a_traceback(
    cache: Path, tiny: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # pip with no config files and an index nobody listens on: what offline looks like.
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("PIP_INDEX_URL", "http://127.0.0.1:9/simple")
    for var in ("PIP_FIND_LINKS", "PIP_EXTRA_INDEX_URL"):
        monkeypatch.delenv(var, raising=False)
    with pytest.raises(FetchError) as err:
        fetch("tiny", force=True)
    assert "could not download ledgerml-no-such-package==0.0.0" in str(err.value)
    assert "--from PATH" in str(err.value)
    assert not (cache / "tiny.csv").exists()
