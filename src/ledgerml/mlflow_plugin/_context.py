"""The LedgerML project a plugin-backed `mlflow server` writes to, opened once per process.

The project is `LEDGERML_HOME` (or ./.ledgerml), as for every other LedgerML command. Who
asked and from where: MLflow knows the run's `user_id`, and inside the server the Flask
request (remote address, basic-auth user). Both may be personal data, so the ledger gets a
vault commitment (`ledgerml data erase` shreds it), never the text.
"""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass
from typing import Any

from ledgerml.config import ProjectPaths, load_config, resolve_home
from ledgerml.errors import InputError
from ledgerml.ledger.project import AnyLedger, open_ledger
from ledgerml.storage import BlockStore, Vault, open_store

#: Aliases the gate decides unless `[mlflow] gated_aliases` says otherwise.
DEFAULT_GATED_ALIASES = ("champion",)
#: The contract alias a transition to MLflow's stage Production promotes to.
PRODUCTION_ALIAS = "production"


@dataclass(frozen=True)
class Project:
    """One process's handles on the project (the ledger keeps its writer thread)."""

    paths: ProjectPaths
    ledger: AnyLedger
    store: BlockStore
    gated_aliases: tuple[str, ...]


_lock = threading.Lock()
_project: Project | None = None
_commitments: dict[tuple[str, str], str] = {}


def project() -> Project:
    """The project of this process, opened on first use (fail closed: no project, no store)."""
    global _project
    with _lock:
        if _project is None:
            paths = ProjectPaths(resolve_home())
            if not paths.config_toml.exists():
                raise InputError(
                    f"no LedgerML project at {paths.home}: run `ledgerml init` and set "
                    "LEDGERML_HOME for the MLflow server",
                    field="LEDGERML_HOME",
                )
            section = load_config(paths).get("mlflow", {})
            gated = tuple(section.get("gated_aliases", DEFAULT_GATED_ALIASES))
            _project = Project(paths, open_ledger(paths), open_store(paths), gated)
        return _project


def record(event_type: str, body: dict[str, Any], user: str | None = None) -> int:
    """Append one `mlflow.*` entry with who asked (`who(user)`); its index once durable."""
    return project().ledger.append(event_type, body | who(user))


def _commit(kind: str, value: str) -> str:
    """Vault commitment of a user name or an address (cached: one vault write per value)."""
    key = (kind, value)
    found = _commitments.get(key)
    if found is None:
        subject = f"mlflow-{kind}-{hashlib.sha256(value.encode()).hexdigest()[:16]}"
        found = Vault(project().paths.vault_db).put(subject, f"mlflow_{kind}", value)
        _commitments[key] = found
    return found


def who(user: str | None = None) -> dict[str, str]:
    """`user` / `origin` commitments for an entry, from what MLflow and the request know."""
    out: dict[str, str] = {}
    origin = None
    try:
        from flask import has_request_context, request

        if has_request_context():
            origin = request.remote_addr
            auth = request.authorization
            if user is None and auth is not None and auth.username:
                user = auth.username
    except ImportError:  # pragma: no cover - flask ships with mlflow
        pass
    if user:
        out["user"] = _commit("user", user)
    if origin:
        out["origin"] = _commit("origin", origin)
    return out
