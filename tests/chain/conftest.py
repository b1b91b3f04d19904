"""Fixtures: the same contract suite runs on the embedded EVM and on a real anvil node.

anvil comes from `LEDGERML_TEST_ANVIL_URL` (set by `make test` via scripts/svc_anvil.sh), or is
started here with the same script and stopped afterwards.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from ledgerml.chain import Chain, Deployment, deploy
from ledgerml.chain._cid import raw_cid_for_digest

REPO = Path(__file__).resolve().parents[2]
SVC = REPO / "scripts" / "svc_anvil.sh"


@pytest.fixture(scope="session")
def anvil_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    url = os.environ.get("LEDGERML_TEST_ANVIL_URL")
    if url:
        yield url
        return
    run_dir = tmp_path_factory.mktemp("anvil-run")
    env = {**os.environ, "RUN_DIR": str(run_dir)}
    subprocess.run([str(SVC), "start"], check=True, env=env, timeout=60)
    try:
        line = (run_dir / "anvil.env").read_text().strip()
        yield line.split("=", 1)[1]
    finally:
        subprocess.run([str(SVC), "stop"], check=True, env=env, timeout=60)


@pytest.fixture(scope="session", params=["embedded", "anvil"])
def session_chain(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Chain]:
    seed = os.urandom(32)  # fresh accounts even on a shared anvil
    if request.param == "embedded":
        chain = Chain.embedded(tmp_path_factory.mktemp("embedded-chain"), seed)
    else:
        url = request.getfixturevalue("anvil_url")
        chain = Chain.connect(url, seed)
        chain.fund_roles()
    try:
        yield chain
    finally:
        chain.close()


@pytest.fixture()
def chain(session_chain: Chain) -> Iterator[Chain]:
    session_chain.preflight = True
    yield session_chain
    session_chain.preflight = True


@pytest.fixture()
def deployment(chain: Chain) -> Deployment:
    """Fresh contracts for every test, so role grants in one test never leak into another."""
    return deploy(chain, fresh=True)


_counter = iter(range(10**9))


def new_cid() -> str:
    """A unique, well-formed CIDv1 (raw, sha2-256)."""
    return raw_cid_for_digest(
        hashlib.sha256(os.urandom(16) + bytes([next(_counter) % 256])).digest()
    )
