"""The ledger: an append-only RFC 9162 Merkle log (this module: the names callers import).

    ledger = Ledger(path, origin="ledgerml.local/abc", signers=keys.note_signers)
    index = ledger.append("dataset.registered", {...})     # durable on return
    proof = ledger.inclusion_proof(index)                   # O(log n), from tiles
    note = ledger.checkpoint()                              # C2SP signed note
    report = ledger.verify(keys.note_verifiers)             # recompute everything

The log is split along its seams (Tessera-like); this module re-exports their names so
`from ledgerml.ledger.log import …` keeps working:

- `envelope` — an entry's exact bytes (RFC 8785), size limits, `type_suffix`, `utc_now`.
- `values` — proofs, `Checkpoint`, `Problem`, `TrustedRoot`, `VerifyReport`.
- `edge` — the tree edge a writer keeps in memory; range hashes from stored tiles.
- `appender` — requests and their futures, batching, the bulk writer process.
- `facade` — `LogFacade`, what both drivers share (integrity checks, proofs).
- `sqlite` — `Ledger`, the SQLite driver; `postgres` — `PostgresLedger`.
- `verify` — recomputing everything, through either driver's reads.

Design (embedded):

- Entries are stored as their exact RFC 8785 bytes; leaf hash = SHA-256(0x00 ‖ entry).
- Subtree hashes are kept in height-4 tiles (see `tiles.py`), written in the
  same transaction as the entries, so proofs read O(log n) rows.
- Group commit: one writer thread per `Ledger` drains every pending request into
  one SQLite transaction (WAL, `synchronous=FULL`: durable when `append`
  returns). Callers validate, canonicalise and hash in their own thread first.
  Separate processes serialise on SQLite's write lock; each commits all of its
  pending requests in one transaction and re-reads the tree edge when another
  process has appended.
- A checkpoint (signed note) is signed for every committed batch, in the same
  transaction, and kept: verification checks all of them.
- Only `create=True` makes a database: a vanished or emptied `ledger.db` is an
  error, never a fresh empty log. `read_only=True` opens it with `mode=ro` (or
  `immutable=1` when there is no -wal file), for copies on read-only media.
- Integrity of the writer (fail closed): the log records its verifier keys in
  `meta`; a writer whose keys differ is refused. Whenever a writer (re)reads the
  tree edge it checks that the tree extends the newest signed checkpoint it can
  verify (stored, and the head copy outside `ledger.db`, see `head.py`): roots
  recomputed from the tiles in O(log n) reads. Otherwise nothing is written.
"""

from __future__ import annotations

import sys
import types
from typing import Any

from ledgerml.ledger import appender as _appender_module
from ledgerml.ledger import sqlite as _sqlite_module
from ledgerml.ledger import verify as _verify_module
from ledgerml.ledger.appender import PROCESS_CHUNK, PROCESS_WRITER_MIN, _ProcessWriter, _Request
from ledgerml.ledger.edge import TileReader, _Edge, tile_range_hasher
from ledgerml.ledger.envelope import (
    MAX_ENTRY_BYTES,
    MAX_INDEX,
    PreparedEntry,
    type_suffix,
    utc_now,
)
from ledgerml.ledger.facade import _VKEYS, FORMAT_VERSION, LogFacade
from ledgerml.ledger.sqlite import (
    Ledger,
    SqliteReads,
    _read_tiles,
    connect_read_only,
    count_of_type,
)
from ledgerml.ledger.values import (
    Checkpoint,
    ConsistencyProof,
    InclusionProof,
    Problem,
    TrustedRoot,
    VerifyReport,
)
from ledgerml.ledger.verify import (
    PARALLEL_VERIFY_MIN,
    UNCOVERED_GRACE_S,
    LogReads,
    _Checks,
    _KeySchedule,
    _verify,
)

__all__ = [
    "FORMAT_VERSION",
    "MAX_ENTRY_BYTES",
    "MAX_INDEX",
    "PARALLEL_VERIFY_MIN",
    "PROCESS_CHUNK",
    "PROCESS_WRITER_MIN",
    "UNCOVERED_GRACE_S",
    "_VKEYS",
    "Checkpoint",
    "ConsistencyProof",
    "InclusionProof",
    "Ledger",
    "LogFacade",
    "LogReads",
    "PreparedEntry",
    "Problem",
    "SqliteReads",
    "TileReader",
    "TrustedRoot",
    "VerifyReport",
    "_Checks",
    "_Edge",
    "_KeySchedule",
    "_ProcessWriter",
    "_Request",
    "_read_tiles",
    "_verify",
    "connect_read_only",
    "count_of_type",
    "tile_range_hasher",
    "type_suffix",
    "utc_now",
]

#: The modules that read a tunable re-exported here (`PARALLEL_VERIFY_MIN`, …).
_HOMES = (_appender_module, _sqlite_module, _verify_module)


class _ForwardingModule(types.ModuleType):
    """Setting a name here also sets it where it is read: `monkeypatch.setattr(log,
    "PARALLEL_VERIFY_MIN", 100)` still reaches `verify`, as before the split."""

    def __setattr__(self, name: str, value: Any) -> None:
        for home in _HOMES:
            if name in vars(home):
                setattr(home, name, value)
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _ForwardingModule
