"""Storage fixtures: a real project folder, and a real IPFS daemon (HTTP RPC API).

The daemon comes from `LEDGERML_TEST_IPFS_API` when `make test` started it;
otherwise this module starts one with scripts/svc_ipfs.sh (so plain `pytest`
works) and stops it afterwards.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SVC = REPO / "scripts" / "svc_ipfs.sh"


def sha256_counter(seed: str, size: int, piece: int = 1 << 20) -> Iterator[bytes]:
    """The vectors' PRNG: SHA-256(utf8(seed) || uint64_be(i)), i = 0, 1, …, cut to `size`."""
    s = seed.encode("utf-8")
    i = 0
    produced = 0
    while produced < size:
        want = min(piece, size - produced)
        buf = bytearray()
        while len(buf) < want:
            buf += hashlib.sha256(s + i.to_bytes(8, "big")).digest()
            i += 1
        del buf[want:]
        produced += want
        yield bytes(buf)


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """An initialised-enough project folder (config.toml present)."""
    h = tmp_path / "proj"
    h.mkdir()
    (h / "config.toml").write_text("")
    return h


@pytest.fixture(scope="session")
def ipfs_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Base URL of a running IPFS HTTP RPC API."""
    api = os.environ.get("LEDGERML_TEST_IPFS_API")
    if api:
        yield api
        return
    run_dir = tmp_path_factory.mktemp("ipfs-run")
    env = dict(os.environ, RUN_DIR=str(run_dir))
    started = subprocess.run(
        ["bash", str(SVC), "start"], env=env, capture_output=True, text=True, timeout=120
    )
    if started.returncode != 0:
        log = run_dir / "ipfs.log"
        pytest.fail(
            "could not start the IPFS daemon (run `make ipfs-test-setup`): "
            f"{started.stderr}\n{log.read_text() if log.exists() else ''}"
        )
    try:
        line = (run_dir / "ipfs.env").read_text().strip()
        yield line.split("=", 1)[1]
    finally:
        subprocess.run(["bash", str(SVC), "stop"], env=env, capture_output=True, timeout=60)
