"""The tamper-evident ledger: an RFC 9162 Merkle log with signed checkpoints.

- `merkle` — pure RFC 9162 hashing and proofs (no I/O).
- `Ledger` — the log on SQLite: group-committed appends, proofs from stored
  tiles, checkpoints, full verification.
- `postgres.PostgresLedger` — the same log (same bytes, same methods) on PostgreSQL,
  shared by many processes and hosts; `[ledger] url` picks it (`open_ledger`).
- `migrate` — moving a log between the two, byte for byte.
- `events` — typed bodies of the event types listed in DESIGN.md.
"""

from ledgerml.ledger.log import (
    Checkpoint,
    ConsistencyProof,
    InclusionProof,
    Ledger,
    Problem,
    TrustedRoot,
    VerifyReport,
)
from ledgerml.ledger.project import init_project, log_keys, log_verifiers, open_ledger

__all__ = [
    "Checkpoint",
    "ConsistencyProof",
    "InclusionProof",
    "Ledger",
    "Problem",
    "TrustedRoot",
    "VerifyReport",
    "init_project",
    "log_keys",
    "log_verifiers",
    "open_ledger",
]
