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
from ledgerml.crypto.api_keys import generate_api_keys
from ledgerml.crypto.files import PRIVATE_DIR, make_private_dir, write_private
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

# [serving] — the decision service's API keys are in keys/api-keys.toml (0600), one per
# role; print one with `ledgerml keys api --role scorer`. A role set here under
# [serving.api_keys] replaces the generated key. All settings: docs/configuration.md.
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
    if home.exists() and not home.is_dir():
        raise InputError(f"{home} exists and is not a folder", field="home")
    if paths.config_toml.exists():
        raise InputError(f"a project already exists at {home}", field="home")
    origin = _valid_origin(origin or f"ledgerml.local/{secrets.token_hex(6)}")
    try:  # the project folder and keys/ are 0700 whatever the umask (crypto/files.py)
        if not make_private_dir(home) and not any(home.iterdir()):
            os.chmod(home, PRIVATE_DIR)  # an empty folder made ready for us: ours now
    except OSError as exc:  # a parent that is a file, a read-only or full disk, ...
        raise InputError(f"cannot create {home}: {exc.strerror}", field="home") from None
    make_private_dir(paths.keys)
    os.chmod(paths.keys, PRIVATE_DIR)
    for sub in (paths.blocks, paths.chain, paths.reports):
        sub.mkdir(exist_ok=True)
    generate_log_keys(paths.keys, post_quantum=post_quantum)
    generate_api_keys(paths.keys)
    keys = load_log_keys(paths.keys, origin, post_quantum=post_quantum)
    Ledger(paths.ledger_db, origin=origin, signers=keys.note_signers).close()
    config = _CONFIG_TEMPLATE.format(origin=origin, pq=str(post_quantum).lower())
    # 0600; the config appears last: a half-made project is not one
    write_private(paths.config_toml, config.encode())
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
