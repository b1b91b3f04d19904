"""Verification: recompute every leaf, subtree hash and checkpoint of a log (`_verify`).

Driver-neutral: it reads through `LogReads` inside one snapshot (`SqliteReads`,
`PgReads`), hashes entries in worker processes on large SQLite logs (`_scan_worker`),
and checks signatures with the keys the log's own `key.rotated` entries schedule
(`_KeySchedule`). Fails closed: whatever could not be checked is a `Problem`.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import orjson

from ledgerml.crypto.note import NoteVerifier, verify_note
from ledgerml.errors import InputError, VerificationError
from ledgerml.ledger import merkle
from ledgerml.ledger._scan import RawProblem, RowCursor, _hash_rows
from ledgerml.ledger.envelope import type_suffix
from ledgerml.ledger.facade import _short_keys
from ledgerml.ledger.tiles import HEIGHT
from ledgerml.ledger.values import Checkpoint, Problem, TrustedRoot, VerifyReport

_HS = merkle.HASH_SIZE

#: Entries not covered by a signed checkpoint (and head copy) this long after they were
#: appended fail `verify` (`uncovered`). A writer signs within 50 ms; a crashed one
#: leaves its last batch unsigned until `ledgerml log checkpoint` or the next append.
UNCOVERED_GRACE_S = 60.0

PARALLEL_VERIFY_MIN = 400_000  # below this, starting worker processes costs more than it saves


def _scan_parallel(db_path: str, top: int, workers: int) -> tuple[bytes, list[RawProblem], int]:
    """Hash and parse entries in `workers` processes, each over a contiguous range.

    Plain subprocesses rather than multiprocessing: they need nothing from the
    caller's `__main__` and never fork a process that has threads.
    """
    bounds = [top * k // workers for k in range(workers + 1)]
    with tempfile.TemporaryDirectory(prefix="ledgerml-verify-") as tmp:
        outs = [os.path.join(tmp, f"part{k}") for k in range(workers)]
        procs = [
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "ledgerml.ledger._scan_worker",
                    db_path,
                    str(bounds[k]),
                    str(bounds[k + 1]) if k < workers - 1 else "-",
                    outs[k],
                ],
                stdin=subprocess.DEVNULL,
            )
            for k in range(workers)
        ]
        if any(p.wait() != 0 for p in procs):
            raise VerificationError("a verification worker failed (fail closed)")
        leaves = b"".join(Path(o).read_bytes() for o in outs)
        metas = [orjson.loads(Path(o + ".json").read_bytes()) for o in outs]
    problems = [tuple(p) for m in metas for p in m["problems"]]
    return leaves, problems, metas[-1]["expected"]


class LogReads(Protocol):
    """What `verify` reads from a driver, inside one snapshot (the driver seam for reads)."""

    def meta(self, key: str) -> str | None: ...
    def top(self) -> int: ...
    def entry_rows(self) -> RowCursor: ...
    def tile_hashes(self, level: int) -> Iterable[bytes]: ...
    def rows_of_type(self, suffix: bytes) -> list[tuple[int, bytes]]: ...
    def checkpoint_rows(self) -> Iterable[tuple[int, bytes, str]]: ...
    def entry_at(self, index: int) -> bytes | None: ...


def _levels(leaves: bytes) -> list[bytes]:
    """Every level of perfect subtrees, each level's hashes concatenated."""
    sha = hashlib.sha256
    levels = [leaves]
    cur = leaves
    while len(cur) >= 2 * _HS:
        step = 2 * _HS
        end = len(cur) // step * step
        cur = b"".join([sha(b"\x01" + cur[i : i + step]).digest() for i in range(0, end, step)])
        levels.append(cur)
    return levels


@dataclass(frozen=True)
class _HeadState:
    """The head copy as `verify` read it: its note, or why it could not be read."""

    path: str
    note: str | None
    error: str | None


@dataclass(frozen=True)
class _Checks:
    """What `verify` checks beyond the database: head copy, auditors' notes, coverage."""

    head: _HeadState | None
    since: tuple[str, ...]
    grace_s: float
    now: float


@dataclass(frozen=True)
class _KeySchedule:
    """Which keys sign which checkpoints, from the log's own `key.rotated` entries:
    a checkpoint of size <= r (r = the index of a rotation) verifies with that
    rotation's old keys, a later one with the next keys."""

    rotations: tuple[tuple[int, tuple[NoteVerifier, ...]], ...]  # (r, old keys), by r
    current: tuple[NoteVerifier, ...]

    def keys_for(self, size: int) -> tuple[NoteVerifier, ...]:
        for r, old in self.rotations:
            if size <= r:
                return old
        return self.current

    def verify(self, note: str, size_hint: int | None = None) -> Checkpoint:
        """Verify `note` with the keys of its size; a retired key's signature says so."""
        cp = Checkpoint.from_note(note)
        size = cp.size if size_hint is None else size_hint
        try:
            verify_note(note, self.keys_for(size))
        except VerificationError as exc:
            retired_at = [r for r, old in self.rotations if r < size and _signs(note, old)]
            if retired_at:
                raise VerificationError(
                    f"signed by a retired key (retired by the key.rotated entry at index "
                    f"{retired_at[0]}, before this tree of size {size})"
                ) from None
            raise exc
        return cp


def _signs(note: str, verifiers: Sequence[NoteVerifier]) -> bool:
    try:
        verify_note(note, verifiers)
    except VerificationError:
        return False
    return True


def _key_schedule(
    reads: LogReads, origin: str, verifiers: Sequence[NoteVerifier]
) -> tuple[_KeySchedule, list[Problem]]:
    """The key schedule of the log and any problem with its `key.rotated` entries."""
    from ledgerml.crypto.keys import rotation_message, verify_rotation

    rows = reads.rows_of_type(type_suffix("key.rotated"))
    problems: list[Problem] = []
    rotations: list[tuple[int, tuple[NoteVerifier, ...]]] = []
    previous_new: tuple[str, ...] | None = None
    for idx, data in rows:
        try:
            obj = orjson.loads(data)
            body = obj["body"]
            old_v, new_v = tuple(body["old_verifiers"]), tuple(body["new_verifiers"])
            old = tuple(NoteVerifier.from_vkey(v) for v in old_v)
            tuple(NoteVerifier.from_vkey(v) for v in new_v)
        except (orjson.JSONDecodeError, KeyError, TypeError, InputError) as exc:
            problems.append(Problem("key_schedule", f"unreadable key.rotated entry: {exc}", idx))
            continue
        why = verify_rotation(obj.get("sigs"), old, rotation_message(origin, old_v, new_v))
        if why is not None:
            problems.append(Problem("key_schedule", f"key.rotated: {why}", index=idx))
        if previous_new is not None and set(old_v) != set(previous_new):
            problems.append(
                Problem(
                    "key_schedule",
                    "key.rotated names old keys other than the previous rotation's new keys",
                    index=idx,
                )
            )
        previous_new = new_v
        rotations.append((int(idx), old))
    current = tuple(verifiers)
    if previous_new is not None and set(previous_new) != {v.vkey() for v in current}:
        problems.append(
            Problem(
                "key_schedule",
                f"the log's newest key.rotated names {_short_keys(chr(10).join(previous_new))}"
                f", but the keys given are {_short_keys(chr(10).join(v.vkey() for v in current))}",
                index=rotations[-1][0],
            )
        )
    return _KeySchedule(tuple(rotations), current), problems


def _entry_age_s(data: bytes, now: float) -> float | None:
    """Seconds since an entry's envelope `time`; None when it cannot be read."""
    try:
        stamp = orjson.loads(data)["time"]
        when = datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
        return None
    return now - when.timestamp()


def _verify(
    reads: LogReads,
    db_path: str | None,
    origin: str,
    verifiers: Sequence[NoteVerifier],
    trusted: Sequence[TrustedRoot],
    progress: Any,
    started: float,
    workers: int,
    checks: _Checks,
) -> VerifyReport:
    problems: list[Problem] = []
    size = int(reads.meta("size") or 0)
    stored_origin = reads.meta("origin")
    if stored_origin != origin:
        problems.append(Problem("origin", f"ledger origin {stored_origin!r} != {origin!r}"))

    # 1. Entries: contiguous indices, well-formed, leaf hash recomputed.
    top = reads.top()
    if progress is not None:
        progress(0, size)
    if db_path is not None and workers > 1 and top >= PARALLEL_VERIFY_MIN:
        leaves, raw, _ = _scan_parallel(db_path, top, workers)
    else:
        leaves, raw, _ = _hash_rows(reads.entry_rows(), 0)
    problems += [Problem(kind, detail, index=index) for kind, detail, index in raw]
    n = len(leaves) // _HS
    if progress is not None:
        progress(n, size)
    if n < size and not any(p.kind == "missing" for p in problems):
        problems.append(Problem("missing", f"the tree has {size} entries, {n} are stored", index=n))
    elif n > size:
        problems.append(Problem("extra", f"{n - size} entries beyond tree size {size}", index=size))

    # 2. Stored leaf hashes (tile level 0) against the entries: finds modified
    #    and reordered entries by index.
    stored_leaves = b"".join(reads.tile_hashes(0))
    if stored_leaves[: len(leaves)] != leaves:
        stored_hashes = [stored_leaves[i : i + _HS] for i in range(0, len(stored_leaves), _HS)]
        leaf_list = [leaves[i : i + _HS] for i in range(0, len(leaves), _HS)]
        bad = [i for i in range(n) if i >= len(stored_hashes) or stored_hashes[i] != leaf_list[i]]
        position = {h: i for i, h in enumerate(stored_hashes)}
        for i in bad[:20]:
            j = position.get(leaf_list[i])
            if j is not None and j != i:
                problems.append(
                    Problem("reordered", f"entry {i} is the entry logged at {j}", index=i)
                )
            else:
                problems.append(
                    Problem("modified", f"entry {i} does not hash to its logged leaf", index=i)
                )
        if len(bad) > 20:
            problems.append(Problem("modified", f"{len(bad) - 20} more entries differ"))

    # 3. All perfect subtrees, level by level; compare with the stored tiles.
    levels = _levels(leaves)
    for t in range(1, (len(levels) - 1) // HEIGHT + 1):
        want = levels[HEIGHT * t]
        have = b"".join(reads.tile_hashes(t))
        if have[: len(want)] != want:
            problems.append(
                Problem("tiles", f"stored subtree hashes at tile level {t} do not match")
            )

    def root_at(m: int) -> bytes:
        if m == 0:
            return merkle.EMPTY_ROOT
        peaks, lo = [], 0
        for bit in range(m.bit_length() - 1, -1, -1):
            if m >> bit & 1:
                k = lo >> bit
                peaks.append(levels[bit][k * _HS : (k + 1) * _HS])
                lo += 1 << bit
        root = peaks[-1]
        for peak in reversed(peaks[:-1]):
            root = merkle.node_hash(peak, root)
        return root

    # 4. Every stored checkpoint: signature (with the keys of its size), fields, and
    #    consistency with the log.
    schedule, key_problems = _key_schedule(reads, origin, verifiers)
    problems += key_problems
    checked = 0
    stored: dict[int, bytes] = {}  # size -> root of every valid, consistent checkpoint
    for cp_size, cp_root, note in reads.checkpoint_rows():
        checked += 1
        try:
            cp = schedule.verify(note, cp_size)
        except VerificationError as exc:
            problems.append(Problem("bad_signature", str(exc), checkpoint=cp_size))
            continue
        if cp.origin != origin or cp.size != cp_size or cp.root != bytes(cp_root):
            problems.append(
                Problem("checkpoint", "note does not match its stored row", checkpoint=cp_size)
            )
            continue
        if cp.size > n:
            problems.append(
                Problem(
                    "truncated",
                    f"signed checkpoint covers {cp.size} entries, only {n} remain",
                    checkpoint=cp.size,
                    index=n,
                )
            )
            continue
        if root_at(cp.size) != cp.root:
            problems.append(
                Problem(
                    "inconsistent",
                    f"the log's first {cp.size} entries no longer hash to this checkpoint's root",
                    checkpoint=cp.size,
                )
            )
        else:
            stored[cp.size] = cp.root

    def extends(tree_size: int, root: bytes, source: str, kind: str) -> bool:
        """Is the log an extension of the tree head (`tree_size`, `root`) `source` holds?
        Otherwise records `truncated`, or `kind` when the roots differ."""
        if tree_size > n:
            detail = f"{source} holds tree size {tree_size}, only {n} entries remain"
            problems.append(Problem("truncated", detail, checkpoint=tree_size, index=n))
            return False
        if root_at(tree_size) != root:
            detail = (
                f"the log's first {tree_size} entries do not hash to the root "
                f"{root.hex()[:16]}… held by {source}"
            )
            problems.append(Problem(kind, detail, checkpoint=tree_size))
            return False
        return True

    # 5. Tree heads held by others (e.g. anchored on a chain): consistency with
    #    each one, so a log rewritten and re-signed with the operator's key fails.
    for anchor in trusted:
        extends(anchor.tree_size, anchor.root, anchor.source, "anchor_mismatch")
    # 6. Signed heads kept outside ledger.db (head copy, auditors' notes), the sequence
    #    of checkpoints, and entries no signed checkpoint covers.
    covered = max(stored, default=0)
    head_size_: int | None = None
    signed_heads: list[tuple[str, str]] = [
        (f"--since note {k + 1}", s) for k, s in enumerate(checks.since)
    ]
    if checks.head is not None:
        head = checks.head
        if head.error is not None:
            problems.append(Problem("head_copy", head.error))
            covered = 0
        elif head.note is None:
            if n > 0 or checked > 0:
                problems.append(
                    Problem(
                        "head_copy",
                        f"the head copy {head.path} is missing (a log created before head "
                        "copies: `ledgerml log restore-head` writes it once verify passes)",
                    )
                )
            covered = 0
        else:
            signed_heads.insert(0, (f"the head copy {head.path}", head.note))
    for source, note in signed_heads:
        try:
            cp = schedule.verify(note)
        except VerificationError as exc:
            kind = "head_copy" if source.startswith("the head") else "since"
            problems.append(Problem(kind, f"{source}: {exc}"))
            if kind == "head_copy":
                covered = 0
            continue
        if cp.origin != origin:
            kind = "head_copy" if source.startswith("the head") else "since"
            problems.append(Problem(kind, f"{source} is for origin {cp.origin!r}, not {origin!r}"))
            continue
        if source.startswith("the head"):
            head_size_ = cp.size
            covered = min(covered, cp.size)
        if not extends(cp.size, cp.root, source, "inconsistent"):
            continue
        if source.startswith("the head") and stored.get(cp.size) != cp.root:
            newest = max(stored, default=0)
            problems.append(
                Problem(
                    "checkpoint_gap",
                    f"{source} holds the checkpoint of size {cp.size}, which is not among the "
                    f"stored checkpoints (newest valid: {newest}): stored checkpoints were "
                    "deleted",
                    checkpoint=cp.size,
                )
            )
    if covered < n:
        first_uncovered = reads.entry_at(covered)
        age = None if first_uncovered is None else _entry_age_s(first_uncovered, checks.now)
        if age is None or age > checks.grace_s:
            when = "of unknown age" if age is None else f"appended {age:,.0f} s ago"
            problems.append(
                Problem(
                    "uncovered",
                    f"entries {covered}..{n - 1} are not covered by a signed checkpoint"
                    f"{' and the head copy' if checks.head is not None else ''}; entry "
                    f"{covered} is {when} (grace {checks.grace_s:g} s). `ledgerml log "
                    "checkpoint` signs the current tree if nothing was changed",
                    index=covered,
                )
            )
    root = root_at(n) if n and n <= size else merkle.EMPTY_ROOT
    problems.sort(key=lambda p: (p.index if p.index is not None else 1 << 62, p.kind))
    return VerifyReport(
        n,
        root,
        checked,
        tuple(problems),
        time.perf_counter() - started,
        len(trusted),
        head_size_,
    )
