"""Creating and opening a project's ledger: config, keys and the log together.

paths = init_project(Path(".ledgerml"), post_quantum=False)
with open_ledger(paths) as ledger:
    ledger.append("x.note", {"text": "hello"})
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ledgerml.config import ProjectPaths, load_config
from ledgerml.crypto.api_keys import generate_api_keys
from ledgerml.crypto.files import PRIVATE_DIR, make_private_dir, write_private
from ledgerml.crypto.keys import (
    LogKeys,
    generate_log_keys,
    has_staged_log_keys,
    install_staged_log_keys,
    load_log_keys,
    load_staged_log_keys,
    stage_log_keys,
)
from ledgerml.crypto.note import NoteVerifier
from ledgerml.errors import InputError, VerificationError
from ledgerml.ledger.head import HeadCopy, head_size
from ledgerml.ledger.postgres import PostgresLedger, is_postgres_url, redact_url
from ledgerml.ledger.sqlite import Ledger
from ledgerml.ledger.values import VerifyReport

#: A ledger of either driver (the same public methods).
AnyLedger = Ledger | PostgresLedger

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

# [ledger]
# Where the log lives: "sqlite:" (the default: ledger.db in this folder) or
# postgresql://USER@HOST/DB, one log shared by several service workers and hosts
# (docs/deployment.md; `ledgerml init --ledger-url`). Keep a password out of this file:
# libpq reads PGPASSWORD or ~/.pgpass.
# url = "sqlite:"
# A copy of the newest signed checkpoint, outside ledger.db (default: head.checkpoint in
# this folder). On storage this account cannot rewrite it detects a rewritten ledger.db.
# head_copy = "/mnt/ledger-heads/fraud.checkpoint"

# [serving] — the decision service's API keys are in keys/api-keys.toml (0600), one per
# role; print one with `ledgerml keys api --role scorer`. A role set here under
# [serving.api_keys] replaces the generated key. All settings: docs/configuration.md.
"""


def _valid_origin(origin: str) -> str:
    if not origin or any(c.isspace() for c in origin) or "+" in origin or len(origin) > 255:
        raise InputError("must be 1..255 characters without spaces or '+'", field="origin")
    return origin


def _valid_url(url: str) -> str:
    if url == "sqlite:" or is_postgres_url(url):
        if any(c in url for c in '"\\\n') or any(c.isspace() for c in url):
            raise InputError("must not contain quotes, backslashes or spaces", field="ledger.url")
        return url
    raise InputError(
        f"{redact_url(url)!r} is neither 'sqlite:' nor postgresql://…", field="ledger.url"
    )


def ledger_url(paths: ProjectPaths, config: dict[str, Any] | None = None) -> str:
    """`[ledger] url`: "sqlite:" (the default, ledger.db in the project) or postgresql://…"""
    if config is None:
        config = load_config(paths)
    value = config.get("ledger", {}).get("url")
    return _valid_url(str(value)) if value else "sqlite:"


def init_project(
    home: Path,
    *,
    post_quantum: bool = False,
    origin: str | None = None,
    ledger_url: str = "sqlite:",
) -> ProjectPaths:
    """Create the project folder, its keys and an empty ledger; refuses to overwrite."""
    url = _valid_url(ledger_url)
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
    create_ledger(paths, keys, url)
    config = _CONFIG_TEMPLATE.format(origin=origin, pq=str(post_quantum).lower())
    if url != "sqlite:":  # a table of its own: the template's [ledger] stays a comment
        config += f'\n[ledger]\nurl = "{url}"\n'

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


HEAD_COPY = "head.checkpoint"


def head_copy_path(paths: ProjectPaths, config: dict[str, Any] | None = None) -> Path:
    """`[ledger] head_copy` (relative to the project folder), default `head.checkpoint`."""
    if config is None:
        config = load_config(paths)
    value = config.get("ledger", {}).get("head_copy")
    if not value:
        return paths.home / HEAD_COPY
    path = Path(str(value)).expanduser()
    return path if path.is_absolute() else paths.home / path


def create_ledger(paths: ProjectPaths, keys: LogKeys, url: str = "sqlite:") -> None:
    """The empty ledger of a new project, its first checkpoint and the head copy.

    On PostgreSQL an existing ledger of the same origin and keys is joined, not replaced
    (a second host's project folder holds a copy of the keys)."""
    if is_postgres_url(url):
        with PostgresLedger(url, origin=keys.origin, signers=keys.note_signers) as shared:
            shared.checkpoint()
        return
    with Ledger(
        paths.ledger_db,
        origin=keys.origin,
        signers=keys.note_signers,
        head_copy=head_copy_path(paths, {}),
    ) as ledger:
        ledger.checkpoint()


def _writable(path: Path) -> bool:
    return os.access(path, os.W_OK) and os.access(path.parent, os.W_OK)


def open_ledger(paths: ProjectPaths, *, read_only: bool | None = False, **kwargs: Any) -> AnyLedger:
    """The project's ledger with its signing keys loaded. Never creates one: a missing or
    emptied ledger.db is an error. `read_only=None` opens read-only when ledger.db or its
    folder cannot be written (a copy on read-only media). `[ledger] url` picks the driver."""
    url = ledger_url(paths)
    if is_postgres_url(url):
        keys = log_keys(paths)
        kwargs.pop("head_copy", None)
        return PostgresLedger(
            url,
            origin=keys.origin,
            signers=keys.note_signers,
            actor=keys.actor,
            create=False,
            read_only=bool(read_only),
            **kwargs,
        )
    keys = log_keys(paths)
    if read_only is None:
        read_only = not _writable(paths.ledger_db)
    if not read_only:
        _finish_rotation(paths, keys)
        keys = log_keys(paths)
    return Ledger(
        paths.ledger_db,
        origin=keys.origin,
        signers=keys.note_signers,
        actor=keys.actor,
        create=False,
        read_only=read_only,
        **({"head_copy": head_copy_path(paths)} | kwargs),
    )


def _finish_rotation(paths: ProjectPaths, keys: LogKeys) -> None:
    """Install staged keys a crashed `keys rotate` left behind once the log names them."""
    if not has_staged_log_keys(paths.keys):
        return
    with Ledger(paths.ledger_db, origin=keys.origin, create=False, read_only=True) as ledger:
        recorded = ledger.recorded_verifier_keys()
    pq = keys.mldsa44 is not None
    staged = load_staged_log_keys(paths.keys, keys.origin, post_quantum=pq)
    if recorded == [v.vkey() for v in staged.note_verifiers]:
        install_staged_log_keys(paths.keys, keys.note_verifiers[0].key_id.hex())


def restore_head_copy(paths: ProjectPaths) -> tuple[Path, VerifyReport]:
    """Write a missing head copy from the newest stored checkpoint, only after the whole log
    verifies without one: for logs made before head copies, or a moved `[ledger] head_copy`.
    An existing head copy is never replaced (fail closed: it may be the evidence)."""
    target = head_copy_path(paths)
    if target.exists():
        raise InputError(f"{target} exists; restore-head only writes a missing one", field="head")
    with open_ledger(paths, read_only=True, head_copy=None) as ledger:
        report = ledger.verify(log_verifiers(paths))
        if not report.ok:
            kinds = ", ".join(sorted({p.kind for p in report.problems}))
            raise VerificationError(f"the log does not verify ({kinds}): no head copy written")
        note = ledger.newest_checkpoint()
    HeadCopy(target).advance(note, head_size(note))
    return target, report


@dataclass(frozen=True)
class Rotation:
    """What `keys rotate` did: the key.rotated entry's index, old and new verifier keys."""

    index: int
    old_verifiers: list[str]
    new_verifiers: list[str]
    retired_files: list[str]


def rotate_log_keys(paths: ProjectPaths, *, reason: str | None = None) -> Rotation:
    """New log keys (Ed25519, plus ML-DSA-44 with post-quantum on), recorded in the log by a
    `key.rotated` entry the old keys sign; the old key files are kept as retired.

    Order for crash safety: stage the new keys (fsynced), commit the entry (the log now
    names them), then swap the files; `open_ledger` finishes a swap a crash interrupted.
    Writers already running keep the old keys and refuse to write from their next batch:
    restart them.
    """
    with open_ledger(paths) as ledger:
        old = log_keys(paths)
        staged = stage_log_keys(paths.keys, old.origin, post_quantum=old.mldsa44 is not None)
        index = ledger.rotate_keys(staged.note_signers, reason=reason)
    retired = install_staged_log_keys(paths.keys, old.note_verifiers[0].key_id.hex())
    return Rotation(
        index,
        [v.vkey() for v in old.note_verifiers],
        [v.vkey() for v in staged.note_verifiers],
        [str(f) for f in retired],
    )


def log_verifiers(paths: ProjectPaths) -> list[NoteVerifier]:
    return log_keys(paths).note_verifiers
