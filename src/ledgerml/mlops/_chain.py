"""The project's chain: which node (config.toml `[chain]`), which accounts (keys/chain.seed),
which contracts (chain/deployment.json). Shared by governance and anchoring."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from ledgerml.config import ProjectPaths, load_config
from ledgerml.crypto.keys import load_chain_seed
from ledgerml.errors import InputError

if TYPE_CHECKING:  # web3 and py-evm load only when a chain is actually opened
    from ledgerml.chain import Chain, Deployment

DEPLOYMENT_FILE = "deployment.json"  # = ledgerml.chain.deploy.DEPLOYMENT_FILE

BACKENDS = ("embedded", "rpc")


def chain_settings(paths: ProjectPaths) -> tuple[str, str | None]:
    """(backend, rpc_url) from config.toml; an `rpc_url` means a JSON-RPC node."""
    section = load_config(paths).get("chain", {})
    if not isinstance(section, dict):
        raise InputError("[chain] must be a table", field="chain")
    backend = section.get("backend", "embedded")
    rpc_url = section.get("rpc_url")
    if backend not in BACKENDS:
        raise InputError(
            f"{backend!r} is not a chain backend (use {' or '.join(BACKENDS)})",
            field="chain.backend",
        )
    if rpc_url is not None and (not isinstance(rpc_url, str) or not rpc_url):
        raise InputError("must be an http(s):// URL", field="chain.rpc_url")
    if backend == "rpc" and not rpc_url:
        raise InputError('backend = "rpc" needs an rpc_url', field="chain.rpc_url")
    return ("rpc" if rpc_url else "embedded"), rpc_url


def has_deployment(paths: ProjectPaths) -> bool:
    """Whether contracts were deployed for this project (its deployment record exists)."""
    return (paths.chain / DEPLOYMENT_FILE).is_file()


@contextmanager
def project_chain(paths: ProjectPaths, *, lock_timeout_s: float = 30.0) -> Iterator[Chain]:
    """Open the project's chain (embedded in `chain/`, or its rpc_url); always closed.

    `lock_timeout_s` bounds the wait for the embedded chain's lock (readers that must not
    queue behind a writer, such as the decision service, pass a short one)."""
    paths.require_initialised()
    _backend, rpc_url = chain_settings(paths)
    seed = load_chain_seed(paths.keys)
    from ledgerml.chain import Chain

    chain = Chain.open(paths.chain, seed, rpc_url, lock_timeout_s=lock_timeout_s)
    try:
        yield chain
    finally:
        chain.close()


def require_deployment(chain: Chain, paths: ProjectPaths) -> Deployment:
    """The recorded deployment, checked against the live chain (InputError if missing)."""
    from ledgerml.chain import load_deployment

    return load_deployment(chain, paths.chain)
