"""Named kill points for fault-injection tests: `LEDGERML_CRASH_AT=<point>` makes the
process SIGKILL itself the moment it reaches that point.

    from ledgerml.faults import crash_point
    crash_point("ledger.append.after_commit")   # a no-op unless LEDGERML_CRASH_AT names it

Why a kill and not an exception: SIGKILL runs no `finally`, no atexit hook, no SQLite
rollback; what is on disk at that instant is exactly what a power cut or an OOM kill
would leave, and the next run must recover from it by itself. The variable is read
once, at import, so an unset variable costs one string comparison per call. This
module imports nothing of ours, so every layer may call it.

`LEDGERML_CRASH_AT` may name several points separated by commas; `point@N` kills on
the N-th time the point is reached (1-based; default 1), so a test can let some
appends through and kill a later one.
"""

from __future__ import annotations

import os
import signal

#: Every kill point the code base calls; tests iterate over this list, and an unknown
#: name in `LEDGERML_CRASH_AT` is refused at import (a typo would silently test nothing).
POINTS: frozenset[str] = frozenset(
    {
        "ledger.append.before_commit",  # batch written into the transaction, not committed
        "ledger.append.after_commit",  # committed (acknowledged next), no checkpoint yet
        "ledger.checkpoint.signed",  # checkpoint note signed, not stored
        "ledger.checkpoint.saved",  # checkpoint stored
        "ledger.pg.sequence.before_commit",  # PostgreSQL: batch COPYed under the row lock
        "ledger.pg.sequence.after_commit",  # sequenced and durable, not integrated yet
        "ledger.pg.integrate.before_commit",  # tiles and size written, not committed
        "anchor.tx_sent",  # anchor transaction mined on chain, mirror entry not appended
        "vault.erase.before_commit",  # subject key deleted inside the open transaction
        "vault.erase.committed",  # key gone for good, `subject.erased` not appended yet
        "bundle.export.partial",  # part of the bundle's zip written
    }
)


def _parse(value: str) -> dict[str, int]:
    wanted: dict[str, int] = {}
    for item in filter(None, (part.strip() for part in value.split(","))):
        name, _, nth = item.partition("@")
        if name not in POINTS:
            raise ValueError(f"LEDGERML_CRASH_AT: unknown kill point {name!r}")
        if nth and (not nth.isascii() or not nth.isdigit() or int(nth) < 1):
            raise ValueError("LEDGERML_CRASH_AT: the count after @ must be a positive integer")
        wanted[name] = int(nth or 1)
    return wanted


_WANTED: dict[str, int] = _parse(os.environ.get("LEDGERML_CRASH_AT", ""))
_SEEN: dict[str, int] = {}


def crash_point(name: str) -> None:
    """SIGKILL this process if `LEDGERML_CRASH_AT` names `name` (and its count is reached)."""
    if not _WANTED or name not in _WANTED:
        return
    _SEEN[name] = _SEEN.get(name, 0) + 1
    if _SEEN[name] >= _WANTED[name]:
        os.kill(os.getpid(), signal.SIGKILL)


def armed() -> bool:
    """True when this process was started with a kill point set (for diagnostics)."""
    return bool(_WANTED)
