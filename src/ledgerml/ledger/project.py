"""Creating and opening a project's ledger: config, keys and the log together.

paths = init_project(Path(".ledgerml"), post_quantum=False)
with open_ledger(paths) as ledger:
    ledger.append("x.note", {"text": "hello"})
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from ledgerml.config import ProjectPaths, load_config
from ledgerml.crypto.keys import LogKeys, generate_log_keys, load_log_keys
from ledgerml.crypto.note import NoteVerifier
from ledgerml.errors import InputError
from ledgerml.ledger.log import Ledger

_CONFIG_TEMPLATE = """\
# LedgerML project configuration (created by `ledgerml init`).

[log]
# The checkpoint origin line and signed-note key name: who this log is.
origin = "{origin}"
# Also sign checkpoints with ML-DSA-44 (C2SP tlog-cosignature); verify demands both.
post_quantum = {pq}

[storage]
# Send every artifact to an IPFS node too (kubo-compatible HTTP RPC).
# ipfs_api = "http://127.0.0.1:5001"

[chain]
# "embedded" (a py-evm chain persisted in chain/) or set rpc_url for any EVM node.
backend = "embedded"
# rpc_url = "http://127.0.0.1:8545"
"""


def _valid_origin(origin: str) -> str:
    if not origin or any(c.isspace() for c in origin) or "+" in origin or len(origin) > 255:
        raise InputError("must be 1..255 characters without spaces or '+'", field="origin")
    return origin


def init_project(
    home: Path, *, post_quantum: bool = False, origin: str | None = None
) -> ProjectPaths:
    """Create the project folder, its keys and an empty ledger; refuses to overwrite."""
    paths = ProjectPaths(home)
    if paths.config_toml.exists():
        raise InputError(f"a project already exists at {home}", field="home")
    origin = _valid_origin(origin or f"ledgerml.local/{secrets.token_hex(6)}")
    home.mkdir(parents=True, exist_ok=True)
    for sub in (paths.keys, paths.blocks, paths.chain, paths.reports):
        sub.mkdir(exist_ok=True)
    os.chmod(paths.keys, 0o700)
    generate_log_keys(paths.keys, post_quantum=post_quantum)
    keys = load_log_keys(paths.keys, origin, post_quantum=post_quantum)
    Ledger(paths.ledger_db, origin=origin, signers=keys.note_signers).close()
    tmp = paths.config_toml.with_suffix(".tmp")
    tmp.write_text(_CONFIG_TEMPLATE.format(origin=origin, pq=str(post_quantum).lower()))
    tmp.replace(paths.config_toml)  # the config appears last: a half-made project is not one
    return paths


def log_keys(paths: ProjectPaths) -> LogKeys:
    paths.require_initialised()
    log = load_config(paths).get("log", {})
    origin = log.get("origin")
    if not isinstance(origin, str):
        raise InputError("[log] origin is missing from config.toml", field="log.origin")
    return load_log_keys(paths.keys, origin, post_quantum=bool(log.get("post_quantum", False)))


def open_ledger(paths: ProjectPaths, **kwargs: object) -> Ledger:
    """The project's ledger with its signing keys loaded."""
    keys = log_keys(paths)
    return Ledger(
        paths.ledger_db, origin=keys.origin, signers=keys.note_signers, actor=keys.actor, **kwargs
    )  # type: ignore[arg-type]


def log_verifiers(paths: ProjectPaths) -> list[NoteVerifier]:
    return log_keys(paths).note_verifiers
