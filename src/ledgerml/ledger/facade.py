"""What both drivers' ledgers share (`LogFacade`): the methods callers use, one way.

`Ledger` (SQLite, `sqlite.py`) and `PostgresLedger` (`postgres.py`) subclass it and
supply connections, a writer and two statements; everything else (preparing entries,
the writer's refusal to extend a log it cannot prove, proofs, roots) is written once
here, so the two drivers cannot drift apart.
"""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Sequence
from concurrent.futures import Future
from typing import Any, ClassVar, Self

from ledgerml.crypto.note import NoteSigner, NoteVerifier, verify_note
from ledgerml.errors import InputError, VerificationError
from ledgerml.ledger import merkle
from ledgerml.ledger.appender import _Request, gather
from ledgerml.ledger.edge import TileKey, _Edge, root_tiles, tile_range_hasher
from ledgerml.ledger.envelope import PreparedEntry, prepare_batch, prepare_entry
from ledgerml.ledger.head import HeadCopy
from ledgerml.ledger.values import Checkpoint, ConsistencyProof, InclusionProof

FORMAT_VERSION = 1
_VKEYS = "verifier_keys"  # meta: the current verifier key strings, one per line
_NEWEST_CHECKPOINT = (
    "(SELECT size FROM checkpoints ORDER BY size DESC LIMIT 1),"
    " (SELECT note FROM checkpoints ORDER BY size DESC LIMIT 1)"
)


def _short_keys(vkeys: str) -> str:
    """`name+keyid` of each verifier key string (no public key bytes in messages)."""
    return ", ".join("+".join(v.split("+", 2)[:2]) for v in vkeys.split("\n") if v)


class LogFacade:
    """What both drivers' ledgers share: preparing entries, the writer's integrity checks,
    proofs. A driver (`Ledger` on SQLite, `PostgresLedger`) supplies its connections
    (`_snapshot`, `_read_tiles`), its writer (`submit`, `close`) and the statements whose
    SQL differs (`_META_SQL`, `_ADOPT_KEYS_SQL`: placeholders and upsert)."""

    #: the value of a `meta` key: one parameter, the key
    _META_SQL: ClassVar[str]
    #: store a `meta` (key, value) unless the key is already there
    _ADOPT_KEYS_SQL: ClassVar[str]

    path: Any
    read_only: bool
    head_copy: HeadCopy | None
    origin: str
    signers: list[NoteSigner]
    actor: str
    max_batch: int
    _trusted_notes: set[str]
    _queue: queue.Queue[_Request | None]

    def _init_writer_state(
        self,
        origin: str,
        signers: Sequence[NoteSigner],
        actor: str | None,
        checkpoint_every_batch: bool,
        checkpoint_interval_s: float,
        max_batch: int,
    ) -> None:
        """The state every driver's writer keeps (attributes only: no I/O)."""
        #: notes this process signed or verified with its keys: not verified again
        self._trusted_notes = set()
        self.origin = origin
        self.signers = list(signers)
        if actor is None and signers:
            first = signers[0].verifier
            actor = f"{first.name}+{first.key_id.hex()}"
        self.actor = actor or ""
        self.checkpoint_every_batch = checkpoint_every_batch and bool(self.signers)
        self.checkpoint_interval_s = checkpoint_interval_s
        #: Transactions committed by this instance's writer thread (group commit shares them).
        self.commits = 0
        self.max_batch = max_batch
        self._local = threading.local()
        self._queue = queue.Queue()
        self._writer: threading.Thread | None = None
        self._writer_lock = threading.Lock()
        self._closed = False

    def _check_meta(self, meta: dict[str, str]) -> None:
        """Refuse a ledger of another format or origin (`meta` as stored)."""
        fmt, stored = meta.get("format"), meta.get("origin")
        if fmt != str(FORMAT_VERSION):
            raise InputError(
                f"{self.path} has ledger format {fmt}; this version reads {FORMAT_VERSION}",
                field="ledger",
            )
        if stored != self.origin:
            raise InputError(
                f"this ledger's origin is {stored!r}, not {self.origin!r}", field="origin"
            )

    # -- what a driver supplies ------------------------------------------------------

    def _snapshot(self, what: str) -> contextlib.AbstractContextManager[Any]:
        """A connection in one consistent read transaction (`what`: for error messages)."""
        raise NotImplementedError

    def _read_tiles(self, conn: Any, keys: Sequence[TileKey]) -> dict[TileKey, bytes]:
        """The stored tiles among `keys` (tile level, index), in one query."""
        raise NotImplementedError

    def _range_hasher(self, conn: Any, roots_of: Sequence[int] = ()) -> merkle.RangeHash:
        """Range hashes from the stored tiles; `roots_of`: sizes whose roots will be asked
        for, their tiles read up front in one query."""
        return self._preloaded(conn, roots_of)[1]

    def _preloaded(
        self, conn: Any, roots_of: Sequence[int], also: Sequence[TileKey] = ()
    ) -> tuple[dict[TileKey, bytes], merkle.RangeHash]:
        """The tiles of the roots of `roots_of` and `also`, read in one query, and a range
        hasher that starts from them (reading any other tile when asked)."""
        keys = sorted({k for size in roots_of for k in root_tiles(size)}.union(also))
        tiles = self._read_tiles(conn, keys) if keys else {}
        return tiles, tile_range_hasher(lambda ks: self._read_tiles(conn, ks), tiles)

    def submit(self, entries: list[PreparedEntry]) -> Future[int]:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    # -- integrity of the writer ---------------------------------------------------

    @property
    def verifiers(self) -> list[NoteVerifier]:
        return [s.verifier for s in self.signers]

    def _check_keys(self, conn: Any, recorded: str | None) -> None:
        """Refuse signing keys other than the verifier keys this log records.

        A log made before keys were recorded adopts the loaded keys only if they verify
        its newest stored checkpoint.
        """
        mine = "\n".join(v.vkey() for v in self.verifiers)
        if recorded == mine:
            return
        if recorded is not None:
            raise VerificationError(
                f"the signing key in use ({_short_keys(mine)}) is not this log's key "
                f"({_short_keys(recorded)}): was keys/ replaced? Refusing to write"
            )
        row = conn.execute(
            "SELECT size, note FROM checkpoints ORDER BY size DESC LIMIT 1"
        ).fetchone()
        if row is not None:
            try:
                verify_note(str(row[1]), self.verifiers)
            except VerificationError as exc:
                raise VerificationError(
                    f"the signing key does not verify this log's newest checkpoint "
                    f"(size {row[0]}): {exc}. Refusing to write"
                ) from None
        conn.execute(self._ADOPT_KEYS_SQL, (_VKEYS, mine))

    def _checked_edge(self, conn: Any, size: int) -> _Edge:
        """The tree edge at `size`, once `_check_extension` passed: the edge's tiles are
        read in the same query as the signed roots' tiles."""
        return _Edge(size, self._check_extension(conn, size, also=_Edge.needed_tiles(size)))

    def _check_extension(
        self, conn: Any, size: int, *, also: Sequence[TileKey] = ()
    ) -> dict[TileKey, bytes]:
        """Refuse to write unless the tree of `size` extends every signed head we can prove.

        Checked whenever the tree edge is (re)read: the recorded verifier keys (another
        process may have rotated them), the newest stored checkpoint and the head copy
        (each signature-verified, each root recomputed from the tiles). Two queries: the
        keys with the newest checkpoint, then every tile those roots need plus `also`.
        Returns the tiles read.
        """
        # one round trip: the recorded keys (the driver's meta query) and the newest checkpoint
        heads_sql = f"SELECT ({self._META_SQL}), {_NEWEST_CHECKPOINT}"
        recorded, newest_size, newest_note = conn.execute(heads_sql, (_VKEYS,)).fetchone()
        mine = "\n".join(v.vkey() for v in self.verifiers)
        if recorded is not None and recorded != mine:
            raise VerificationError(
                "this log's key was rotated or replaced since this writer loaded its keys "
                f"(now {_short_keys(recorded)}); restart the writer. Refusing to write"
            )
        heads: list[tuple[str, str]] = []
        if newest_note is not None:
            heads.append(("the newest stored checkpoint", str(newest_note)))
        if self.head_copy is not None:
            note = self.head_copy.read()
            if note is None:
                if size > 0 or newest_note is not None:
                    raise VerificationError(
                        f"the head copy {self.head_copy.path} is missing for a log of {size} "
                        "entries; if this log predates head copies, run `ledgerml log "
                        "restore-head` after `ledgerml verify`. Refusing to write"
                    )
            else:
                heads.append((f"the head copy {self.head_copy.path}", note))
        newest_stored = int(newest_size) if newest_note is not None else -1
        checked: list[tuple[str, str, Checkpoint]] = []
        for source, note in heads:
            try:
                if note not in self._trusted_notes:
                    verify_note(note, self.verifiers)
                cp = Checkpoint.from_note(note)
            except VerificationError as exc:
                raise VerificationError(
                    f"{source} does not verify with this log's key ({exc}). Refusing to write"
                ) from None
            if cp.origin != self.origin:
                raise VerificationError(f"{source} is for origin {cp.origin!r}. Refusing to write")
            if cp.size > size:
                raise VerificationError(
                    f"{source} covers {cp.size} entries but the log has {size}: entries were "
                    "removed. Refusing to write"
                )
            checked.append((source, note, cp))
        tiles, rh = self._preloaded(conn, [cp.size for _, _, cp in checked], also)
        for source, note, cp in checked:
            root = merkle.EMPTY_ROOT if cp.size == 0 else rh(0, cp.size)
            if root != cp.root:
                raise VerificationError(
                    f"the log's first {cp.size} entries no longer hash to the root signed in "
                    f"{source}: the log was changed. Refusing to write"
                )
            if source.startswith("the head copy") and cp.size > newest_stored:
                newest = "none" if newest_stored < 0 else newest_stored
                raise VerificationError(
                    f"{source} (size {cp.size}) is newer than every stored checkpoint "
                    f"(newest: {newest}): checkpoints were deleted. Refusing to write"
                )
            self._trust(note)
        return tiles

    def _trust(self, note: str) -> None:
        if len(self._trusted_notes) >= 8:
            self._trusted_notes.clear()
        self._trusted_notes.add(note)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- key rotation (each driver commits it in its own transaction) --------------

    def _rotation_entry(
        self, new_signers: Sequence[NoteSigner], reason: str | None
    ) -> tuple[PreparedEntry, list[str]]:
        """The `key.rotated` entry, signed by the current keys, and the new verifier keys:
        what either driver appends at index r when it rotates."""
        from ledgerml.crypto.keys import rotation_message, sign_rotation

        if not self.signers or not new_signers:
            raise InputError("rotation needs the current and the new keys", field="keys")
        old_v = [v.vkey() for v in self.verifiers]
        new_v = [s.verifier.vkey() for s in new_signers]
        if set(old_v) & set(new_v):
            raise InputError("the new keys must differ from the current ones", field="keys")
        body: dict[str, Any] = {"old_verifiers": old_v, "new_verifiers": new_v}
        if reason:
            body["reason"] = reason
        sigs = sign_rotation(self.signers, rotation_message(self.origin, old_v, new_v))
        return self.prepare("key.rotated", body, sigs=sigs), new_v

    def _adopt_signers(self, new_signers: Sequence[NoteSigner]) -> None:
        """After a rotation committed: sign and write as the new keys from now on."""
        self.signers = list(new_signers)
        first = self.signers[0].verifier
        self.actor = f"{first.name}+{first.key_id.hex()}"
        self._trusted_notes.clear()

    # -- preparing entries (in the caller's thread) --------------------------------

    def prepare(
        self,
        event_type: str,
        body: Any,
        *,
        time_: str | None = None,
        actor: str | None = None,
        sigs: Sequence[Any] = (),
    ) -> PreparedEntry:
        """Validate and serialise one entry; raises `InputError` naming the problem."""
        return prepare_entry(self.actor if actor is None else actor, event_type, body, time_, sigs)

    # -- appending ----------------------------------------------------------------

    def append(self, event_type: str, body: Any, **kwargs: Any) -> int:
        """Append one entry; returns its index once it is durable."""
        return self.commit([self.prepare(event_type, body, **kwargs)])

    def _prepare_batch(
        self, items: Sequence[tuple[str, Any]], *, offset: int = 0, now: str | None = None
    ) -> list[PreparedEntry]:
        """Validate and serialise items; `InputError` names the first bad item."""
        return prepare_batch(self.actor, items, offset=offset, now=now)

    def commit(self, entries: list[PreparedEntry]) -> int:
        """Hand prepared entries to the writer; returns the first index when durable."""
        return self.submit(entries).result()

    def _gather(self, first: _Request) -> tuple[list[_Request], bool]:
        """`first` and whatever else is queued, up to `max_batch` entries; True on stop."""
        return gather(self._queue, first, self.max_batch)

    def _checked_size(self, size: int | None, current: int) -> int:
        if size is None:
            return current
        if not 0 <= size <= current:
            raise InputError(f"must be between 0 and the tree size {current}", field="size")
        return size

    def _tree_size(self, conn: Any) -> int:
        return int(conn.execute("SELECT value FROM meta WHERE key='size'").fetchone()[0])

    def root(self, size: int | None = None) -> bytes:
        with self._snapshot("reading the root") as conn:
            size = self._checked_size(size, self._tree_size(conn))
            return merkle.EMPTY_ROOT if size == 0 else self._range_hasher(conn, [size])(0, size)

    def inclusion_proof(self, index: int, size: int | None = None) -> InclusionProof:
        """Proof that entry `index` is in the tree of `size` (default: current)."""
        with self._snapshot("reading a proof") as conn:  # one snapshot: size and tiles
            size = self._checked_size(size, self._tree_size(conn))
            if not 0 <= index < size:
                raise InputError(f"must be in [0, {size})", field="index")
            rh = self._range_hasher(conn)
            hashes = tuple(merkle.inclusion_proof(index, size, rh))
            leaf = rh(index, index + 1)
            root = rh(0, size)
        return InclusionProof(index, size, leaf, hashes, root)

    def consistency_proof(self, first: int, second: int | None = None) -> ConsistencyProof:
        with self._snapshot("reading a proof") as conn:
            second = self._checked_size(second, self._tree_size(conn))
            if not 0 <= first <= second:
                raise InputError(f"must be in [0, {second}]", field="first")
            rh = self._range_hasher(conn)
            hashes = tuple(merkle.consistency_proof(first, second, rh))
            r1 = merkle.EMPTY_ROOT if first == 0 else rh(0, first)
            r2 = merkle.EMPTY_ROOT if second == 0 else rh(0, second)
        return ConsistencyProof(first, second, hashes, r1, r2)
