"""The LedgerML project a plugin-backed `mlflow server` writes to, opened once per process.

The project is `LEDGERML_HOME` (or ./.ledgerml), as for every other LedgerML command. Who
asked and from where: MLflow knows the run's `user_id`, and inside the server the Flask
request (remote address, basic-auth user). Both may be personal data, so the ledger gets a
vault commitment (`ledgerml data erase` shreds it), never the text.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import orjson

from ledgerml.config import ProjectPaths, load_config, resolve_home
from ledgerml.errors import InputError
from ledgerml.ledger.index import LedgerIndex
from ledgerml.ledger.postgres import PostgresLedger
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


class Lookups:
    """Entries found through the project's audit index (`ledger.index`, index.db) instead of
    a scan of the ledger: seeks whatever the ledger's size. The index only names indices;
    each entry is read from the ledger and its type re-checked here, its body by the caller.
    """

    def __init__(self, index: LedgerIndex) -> None:
        self._index = index

    def _bodies(self, event_type: str, indices: list[int]) -> list[tuple[int, dict[str, Any]]]:
        out = []
        for i, data in self._index.entries(indices):
            doc = orjson.loads(data)
            if doc.get("type") == event_type and isinstance(doc.get("body"), dict):
                out.append((i, doc["body"]))
        return out

    def find(self, event_type: str, key: str) -> list[tuple[int, dict[str, Any]]]:
        """(index, body) of the `event_type` entries with `key` in an indexed field (in log
        order; the caller checks the field holds it)."""
        return self._bodies(event_type, self._index.find(key, event_type))

    def find_prefix(self, event_type: str, prefix: str) -> list[tuple[int, dict[str, Any]]]:
        """(index, body) of the `event_type` entries with an indexed field starting with
        `prefix` (in log order; the caller checks the field)."""
        return self._bodies(event_type, self._index.find_prefix(prefix, event_type))


_index_lock = threading.Lock()
_index: LedgerIndex | None = None
_log = logging.getLogger(__name__)


def _open_index() -> LedgerIndex:
    """The project's index.db, checked row by row against the ledger once per process
    (O(ledger), at start-up): the plugin acts on what the index does not name (a file it
    does not list is not recorded in the version), so a damaged index is rebuilt, not used."""
    from ledgerml.audit.view import INDEX_FILE

    p = project()
    source: Any = p.ledger if isinstance(p.ledger, PostgresLedger) else p.paths.ledger_db
    index = LedgerIndex.open(p.paths.home / INDEX_FILE, source)
    try:
        index.refresh()
        problem = index.verify()
        if problem is not None:
            _log.warning("%s: %s; rebuilding it from the ledger", INDEX_FILE, problem)
            index.rebuild()
    except BaseException:
        index.close()
        raise
    return index


def index_ready() -> None:
    """Open and check the index now (a store's start-up) rather than on the first lookup."""
    global _index
    with _index_lock:
        if _index is None:
            _index = _open_index()


@contextlib.contextmanager
def lookups(*, top_up: bool = True) -> Iterator[Lookups]:
    """The index topped up to the ledger's current size (`LedgerIndex.top_up`; as of the last
    top-up with `top_up=False`), for the caller's lookups (under a lock: one process's
    threads share the connection)."""
    global _index
    with _index_lock:
        if _index is None:
            _index = _open_index()
        elif top_up:
            _index.top_up()  # new entries' keys in memory; index.db written every 256
        yield Lookups(_index)


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
