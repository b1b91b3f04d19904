"""The ledger: an append-only RFC 9162 Merkle log on SQLite.

    ledger = Ledger(path, origin="ledgerml.local/abc", signers=keys.note_signers)
    index = ledger.append("dataset.registered", {...})     # durable on return
    proof = ledger.inclusion_proof(index)                   # O(log n), from tiles
    note = ledger.checkpoint()                              # C2SP signed note
    report = ledger.verify(keys.note_verifiers)             # recompute everything

Entries are built in `envelope.py`; proofs, checkpoints and reports are `values.py`;
the tree edge a writer keeps is `edge.py`.

Design (Tessera-like, embedded):

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

import array
import contextlib
import functools
import hashlib
import json
import os
import queue
import sqlite3
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar, Protocol, Self

import orjson

from ledgerml.crypto.note import NoteSigner, NoteVerifier, sign_note, verify_note
from ledgerml.errors import InputError, VerificationError
from ledgerml.faults import crash_point
from ledgerml.ledger import merkle
from ledgerml.ledger._scan import RawProblem, RowCursor, _hash_rows
from ledgerml.ledger.edge import _Edge, tile_range_hasher
from ledgerml.ledger.envelope import (
    MAX_INDEX,
    PreparedEntry,
    prepare_batch,
    prepare_entry,
    type_suffix,
    utc_now,
)
from ledgerml.ledger.head import HeadCopy
from ledgerml.ledger.tiles import HEIGHT
from ledgerml.ledger.values import (
    Checkpoint,
    ConsistencyProof,
    InclusionProof,
    Problem,
    TrustedRoot,
    VerifyReport,
)

#: Entries not covered by a signed checkpoint (and head copy) this long after they were
#: appended fail `verify` (`uncovered`). A writer signs within 50 ms; a crashed one
#: leaves its last batch unsigned until `ledgerml log checkpoint` or the next append.
UNCOVERED_GRACE_S = 60.0
FORMAT_VERSION = 1
_HS = merkle.HASH_SIZE

_SCHEMA = """
CREATE TABLE IF NOT EXISTS entries (
    idx   INTEGER PRIMARY KEY,
    entry BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS tiles (
    level  INTEGER NOT NULL,
    idx    INTEGER NOT NULL,
    hashes BLOB NOT NULL,
    PRIMARY KEY (level, idx)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS checkpoints (
    size    INTEGER PRIMARY KEY,
    root    BLOB NOT NULL,
    note    TEXT NOT NULL,
    created TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
"""


def count_of_type(conn: sqlite3.Connection, event_type: str) -> int:
    """Entries of `event_type` in the ledger database behind `conn` (may be read-only)."""
    suffix = type_suffix(event_type)
    sql = "SELECT COUNT(*) FROM entries WHERE substr(entry, -?) = ?"
    return int(conn.execute(sql, (len(suffix), suffix)).fetchone()[0])


@contextlib.contextmanager
def _write_transaction(conn: sqlite3.Connection) -> Iterator[None]:
    """BEGIN IMMEDIATE … COMMIT, rolled back on any exception (which propagates)."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
        conn.execute("COMMIT")
    except BaseException:
        with contextlib.suppress(sqlite3.Error):
            conn.execute("ROLLBACK")
        raise


_VKEYS = "verifier_keys"  # meta: the current verifier key strings, one per line


def _short_keys(vkeys: str) -> str:
    """`name+keyid` of each verifier key string (no public key bytes in messages)."""
    return ", ".join("+".join(v.split("+", 2)[:2]) for v in vkeys.split("\n") if v)


def _file_uri(path: Path) -> str:
    from urllib.parse import quote

    return "file:" + quote(str(path.absolute()))


def _require_database(path: Path) -> None:
    """A ledger that should exist must exist and be non-empty: never silently a new log."""
    try:
        st = path.stat()
    except FileNotFoundError:
        raise VerificationError(
            f"the ledger {path} is missing; only `ledgerml init` creates a ledger: restore it "
            "from a backup"
        ) from None
    if not path.is_file():
        raise VerificationError(f"the ledger {path} is not a file")
    if st.st_size == 0:
        raise VerificationError(
            f"the ledger {path} is empty (0 bytes); only `ledgerml init` creates a ledger: "
            "restore it from a backup"
        )


def connect_read_only(path: Path) -> sqlite3.Connection:
    """A read-only connection to a ledger file, also on read-only media (see below)."""
    return sqlite3.connect(_read_only_uri(path), uri=True, isolation_level=None)


def _read_only_uri(path: Path) -> str:
    """How to open a ledger for reading only, also on read-only media.

    `mode=ro` first; SQLite cannot open a WAL database that way where it may not create
    the -shm file, so then `immutable=1`, which is only sound when no -wal file holds
    committed pages (else refuse: reading without it would miss entries).
    """
    base = _file_uri(path)
    uri = f"{base}?mode=ro"
    try:
        with contextlib.closing(sqlite3.connect(uri, uri=True)) as conn:
            conn.execute("SELECT 1 FROM meta LIMIT 1")
        return uri
    except sqlite3.OperationalError as exc:
        first = exc
    wal = path.with_name(path.name + "-wal")
    if wal.exists() and wal.stat().st_size > 0:
        raise VerificationError(
            f"cannot open the ledger {path} read-only ({first}) and its -wal file holds "
            "committed pages: copy the project to writable storage"
        )
    uri = f"{base}?immutable=1"
    try:
        with contextlib.closing(sqlite3.connect(uri, uri=True)) as conn:
            conn.execute("SELECT 1 FROM meta LIMIT 1")
    except sqlite3.DatabaseError as exc:
        raise VerificationError(f"cannot open the ledger {path} read-only: {exc}") from None
    return uri


@dataclass
class _Request:
    entries: list[PreparedEntry]
    future: Future[int] = field(default_factory=Future)


# --- bulk writer process ------------------------------------------------------------

PROCESS_WRITER_MIN = 512  # entries in one append_many before streaming to the writer process
PROCESS_CHUNK = 256  # entries per streamed chunk: the caller prepares one while the child inserts


class _ProcessWriter:
    """The parent's side of `_writer_proc`: one child per Ledger, started on first use."""

    def __init__(self, ledger: Ledger) -> None:
        keys = [
            {"name": s.name, "sig_type": s.sig_type, "pem": s.signer.private_pem().decode()}
            for s in ledger.signers
        ]
        header = {
            "db": str(ledger.path),
            "origin": ledger.origin,
            "actor": ledger.actor,
            "keys": keys,
            "checkpoint_every_batch": ledger.checkpoint_every_batch,
            "head_copy": str(ledger.head_copy.path) if ledger.head_copy is not None else None,
        }
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "ledgerml.ledger._writer_proc"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            bufsize=0,
        )
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.stdin, self.stdout = self.proc.stdin, self.proc.stdout
        with contextlib.suppress(OSError):  # bigger pipe: a whole chunk fits (Linux)
            import fcntl

            fcntl.fcntl(self.stdin.fileno(), 1031, 1 << 20)  # F_SETPIPE_SZ
        self.stdin.write(json.dumps(header).encode() + b"\n")
        self.lock = threading.Lock()

    def _reply(self) -> tuple[int, int] | None:
        op = self.stdout.read(1)
        if op == b"K":
            first, size = struct.unpack(">QQ", self.stdout.read(16))
            return first, size
        if op == b"k":
            return None
        if op == b"X":
            (n,) = struct.unpack(">I", self.stdout.read(4))
            raise VerificationError(f"append failed: {self.stdout.read(n).decode()}")
        raise VerificationError("the ledger writer process died; nothing was committed")

    def stream(self, chunks: Iterator[list[PreparedEntry]]) -> int:
        """Send every chunk in one transaction; the first index once durable."""
        with self.lock:
            try:
                self.stdin.write(b"B")
                for chunk in chunks:
                    lengths = array.array("I", [len(e[0]) for e in chunk])
                    if sys.byteorder != "big":
                        lengths.byteswap()
                    self.stdin.write(
                        b"".join(
                            (
                                b"C",
                                struct.pack(">I", len(chunk)),
                                lengths.tobytes(),
                                *(e[0] for e in chunk),
                                *(e[1] for e in chunk),
                            )
                        )
                    )
            except BaseException:
                with contextlib.suppress(OSError):
                    self.stdin.write(b"A")
                    self._reply()
                raise
            try:
                self.stdin.write(b"E")
            except OSError as exc:
                raise VerificationError("the ledger writer process died") from exc
            result = self._reply()
            assert result is not None
            return result[0]

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.stdin.close()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        with contextlib.suppress(OSError):
            self.stdout.close()


# --- the ledger --------------------------------------------------------------------

#: (size, root, note, created): a checkpoint signed by the writer, not yet stored.
_SignedCheckpoint = tuple[int, bytes, str, str]
_INSERT_CHECKPOINT = (
    "INSERT OR REPLACE INTO checkpoints(size, root, note, created) VALUES (?, ?, ?, ?)"
)


class LogFacade:
    """What both drivers' ledgers share: preparing entries, the writer's integrity checks,
    proofs. A driver (`Ledger` on SQLite, `PostgresLedger`) supplies its connections
    (`_snapshot`, `_range_hasher`), its writer (`submit`, `close`) and the two statements
    whose SQL differs (`_META_SQL`, `_ADOPT_KEYS_SQL`: placeholders and upsert)."""

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

    def _range_hasher(self, conn: Any) -> merkle.RangeHash:
        raise NotImplementedError

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

    def _check_extension(self, conn: Any, size: int) -> None:
        """Refuse to write unless the tree of `size` extends every signed head we can prove.

        Checked whenever the tree edge is (re)read: the recorded verifier keys (another
        process may have rotated them), the newest stored checkpoint and the head copy
        (each signature-verified, each root recomputed from the tiles: O(log n) reads).
        """
        recorded = conn.execute(self._META_SQL, (_VKEYS,)).fetchone()
        mine = "\n".join(v.vkey() for v in self.verifiers)
        if recorded is not None and recorded[0] != mine:
            raise VerificationError(
                "this log's key was rotated or replaced since this writer loaded its keys "
                f"(now {_short_keys(recorded[0])}); restart the writer. Refusing to write"
            )
        heads: list[tuple[str, str]] = []
        row = conn.execute(
            "SELECT size, note FROM checkpoints ORDER BY size DESC LIMIT 1"
        ).fetchone()
        if row is not None:
            heads.append(("the newest stored checkpoint", str(row[1])))
        if self.head_copy is not None:
            note = self.head_copy.read()
            if note is None:
                if size > 0 or row is not None:
                    raise VerificationError(
                        f"the head copy {self.head_copy.path} is missing for a log of {size} "
                        "entries; if this log predates head copies, run `ledgerml log "
                        "restore-head` after `ledgerml verify`. Refusing to write"
                    )
            else:
                heads.append((f"the head copy {self.head_copy.path}", note))
        newest_stored = int(row[0]) if row is not None else -1
        rh: merkle.RangeHash | None = None
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
            if rh is None:
                rh = self._range_hasher(conn)
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

    def _trust(self, note: str) -> None:
        if len(self._trusted_notes) >= 8:
            self._trusted_notes.clear()
        self._trusted_notes.add(note)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

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
        batch = [first]
        count = len(first.entries)
        while count < self.max_batch:
            try:
                nxt = self._queue.get_nowait()
            except queue.Empty:
                break
            if nxt is None:
                return batch, True
            batch.append(nxt)
            count += len(nxt.entries)
        return batch, False

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
            return merkle.EMPTY_ROOT if size == 0 else self._range_hasher(conn)(0, size)

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


class Ledger(LogFacade):
    """An append-only, verifiable log of MLOps events in one SQLite file."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        origin: str,
        signers: Sequence[NoteSigner] = (),
        actor: str | None = None,
        checkpoint_every_batch: bool = True,
        checkpoint_interval_s: float = 0.05,
        max_batch: int = 50_000,
        busy_timeout_s: float = 60.0,
        use_writer_process: bool = True,
        create: bool = True,
        read_only: bool = False,
        head_copy: str | os.PathLike[str] | None = None,
    ) -> None:
        self._init_writer_state(
            origin, signers, actor, checkpoint_every_batch, checkpoint_interval_s, max_batch
        )
        self.path = Path(path)
        self.read_only = read_only
        self.head_copy = HeadCopy(Path(head_copy)) if head_copy is not None else None
        self._busy_ms = int(busy_timeout_s * 1000)
        self._head_cond = threading.Condition()
        self._head_pending: _SignedCheckpoint | None = None
        self._head_thread: threading.Thread | None = None
        self._head_stop = False
        self._head_busy = False
        self._process: _ProcessWriter | None = None
        self.use_writer_process = use_writer_process
        if not create or read_only:
            _require_database(self.path)
        self._ro_uri = _read_only_uri(self.path) if read_only else ""
        conn = self._connect(create=create and not read_only)
        try:
            if create and not read_only:
                conn.executescript(_SCHEMA)
                conn.execute(
                    "INSERT OR IGNORE INTO meta(key, value) VALUES ('format', ?), ('size', '0'),"
                    " ('origin', ?)",
                    (str(FORMAT_VERSION), origin),
                )
            try:
                meta = dict(conn.execute("SELECT key, value FROM meta"))
            except sqlite3.DatabaseError as exc:
                raise VerificationError(
                    f"{self.path} is not a LedgerML ledger ({exc}); only `ledgerml init` "
                    "creates one: restore it from a backup"
                ) from None
            if self.signers and not read_only:
                self._check_keys(conn, meta.get(_VKEYS))
        finally:
            conn.close()
        self._check_meta(meta)

    _META_SQL = "SELECT value FROM meta WHERE key=?"
    _ADOPT_KEYS_SQL = "INSERT OR IGNORE INTO meta(key, value) VALUES (?, ?)"

    # -- connections ---------------------------------------------------------------

    def _connect(self, *, create: bool = False) -> sqlite3.Connection:
        """A connection; only `create` may make the file (mode=rwc), else it must exist."""
        if self.read_only:
            conn = sqlite3.connect(
                self._ro_uri, uri=True, isolation_level=None, check_same_thread=False
            )
            conn.execute(f"PRAGMA busy_timeout={self._busy_ms}")
            return conn
        uri = f"{_file_uri(self.path)}?mode={'rwc' if create else 'rw'}"
        try:
            conn = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False)
        except sqlite3.OperationalError as exc:
            raise VerificationError(f"cannot open the ledger {self.path}: {exc}") from None
        conn.execute(f"PRAGMA busy_timeout={self._busy_ms}")
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        return conn

    # -- integrity of the writer ---------------------------------------------------

    def _advance_head(self, signed: _SignedCheckpoint, *, background: bool = False) -> None:
        """Move the head copy to a stored checkpoint (after its commit, never before).

        The write loop hands it to a background thread (`background`): its fsyncs (~4 ms)
        then never delay the next batch. A failure to write it is not an append failure
        (the entries are durable): the copy lags, and `verify` reports entries it does not
        cover once the grace window ends.
        """
        self._trust(signed[2])
        if self.head_copy is None:
            return
        if not background:
            with contextlib.suppress(OSError):
                self.head_copy.advance(signed[2], signed[0])
            return
        with self._head_cond:
            if self._head_pending is None or signed[0] > self._head_pending[0]:
                self._head_pending = signed
            if self._head_thread is None:
                self._head_thread = threading.Thread(
                    target=self._head_loop, name="ledger-head-copy", daemon=True
                )
                self._head_thread.start()
            self._head_cond.notify()

    def _head_drain(self) -> None:
        """Wait until the head copy holds every checkpoint handed to the background thread."""
        with self._head_cond:
            while self._head_pending is not None or self._head_busy:
                self._head_cond.wait()

    def _head_loop(self) -> None:
        """Write the newest pending checkpoint to the head copy, until `close`."""
        assert self.head_copy is not None
        wal = self.path.with_name(self.path.name + "-wal")
        while True:
            with self._head_cond:
                self._head_busy = False
                self._head_cond.notify_all()  # `_head_drain` waits for this
                while self._head_pending is None and not self._head_stop:
                    self._head_cond.wait()
                signed, self._head_pending = self._head_pending, None
                self._head_busy = signed is not None
            if signed is None:
                return  # stopping, nothing pending
            with contextlib.suppress(Exception):  # a lagging copy shows in verify, not here
                # A checkpoint saved without an fsync of its own (`_save_checkpoint`) is
                # durable once the WAL is: sync it, so the copy never names a checkpoint a
                # power loss could drop.
                with contextlib.suppress(FileNotFoundError):
                    fd = os.open(wal, os.O_RDONLY)
                    try:
                        os.fsync(fd)
                    finally:
                        os.close(fd)
                self.head_copy.advance(signed[2], signed[0])

    def _reader(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._connect()
            self._local.conn = conn
        return conn

    @contextlib.contextmanager
    def _snapshot(self, what: str) -> Iterator[sqlite3.Connection]:
        conn = self._reader()
        conn.execute("BEGIN")
        try:
            yield conn
        finally:
            conn.execute("COMMIT")

    def close(self) -> None:
        """Flush pending appends and stop the writer."""
        with self._writer_lock:
            self._closed = True
            writer = self._writer
            self._writer = None
        if writer is not None:
            self._queue.put(None)
            writer.join()
        process, self._process = self._process, None
        if process is not None:
            process.close()
        with self._head_cond:
            self._head_stop = True
            head_thread = self._head_thread
            self._head_cond.notify()
        if head_thread is not None:  # writes what is pending, then stops
            head_thread.join()
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    # -- appending ----------------------------------------------------------------

    def append_many(self, items: Iterable[tuple[str, Any]]) -> list[int]:
        """Append many entries atomically (all or none); returns their indices.

        Every item is validated before anything is written, so one bad item
        leaves the ledger untouched.
        """
        items = list(items)
        if not items:
            return []
        self._writable()
        if self.use_writer_process and len(items) >= PROCESS_WRITER_MIN and self.signers:
            # Stream chunks to the writer process: it inserts chunk k while this
            # thread prepares chunk k+1. A bad item aborts the whole transaction.
            if self._process is None:
                with self._writer_lock:
                    if self._closed:
                        raise InputError("ledger is closed", field="ledger")
                    if self._process is None:
                        self._process = _ProcessWriter(self)
            now = utc_now()  # one time for the whole batch, as documented
            chunks = (
                self._prepare_batch(items[k : k + PROCESS_CHUNK], offset=k, now=now)
                for k in range(0, len(items), PROCESS_CHUNK)
            )
            first = self._process.stream(chunks)
            return list(range(first, first + len(items)))
        prepared = self._prepare_batch(items)
        first = self.commit(prepared)
        return list(range(first, first + len(prepared)))

    def submit(self, entries: list[PreparedEntry]) -> Future[int]:
        """Queue prepared entries for the writer without waiting.

        The future resolves to the first index once the batch is durable, or to the
        exception that stopped it. An event loop awaits it (`asyncio.wrap_future`)
        instead of parking a thread per request on `commit`.
        """
        request = _Request(entries)
        self._writable()
        self._ensure_writer()
        self._queue.put(request)
        return request.future

    def _writable(self) -> None:
        if self.read_only:
            raise InputError(f"{self.path} was opened read-only", field="ledger")

    def _flush(self) -> None:
        """Wait until this ledger's writer has stored the checkpoint of its last batch."""
        if self._writer is not None:
            with contextlib.suppress(InputError):  # closed meanwhile: close() stored it
                self.commit([])

    def _ensure_writer(self) -> None:
        with self._writer_lock:
            if self._closed:
                raise InputError("ledger is closed", field="ledger")
            if self._writer is None:
                self._writer = threading.Thread(
                    target=self._write_loop, name="ledger-writer", daemon=True
                )
                self._writer.start()

    def _write_loop(self) -> None:
        """Commit queued requests in batches; sign checkpoints off the callers' path.

        A checkpoint is not what makes an entry durable (the commit is), so it is
        signed after the batch's callers were answered, and at most once every
        `checkpoint_interval_s` (signing and storing one costs the writer ~0.3 ms,
        as much as a durable commit). The newest tree head is signed within that
        interval even when the log goes quiet, so an idle log soon has a checkpoint
        of its full size. Empty requests are barriers (`_flush`): they are answered
        once a checkpoint of everything before them is stored.
        """
        conn = self._connect()
        edge: _Edge | None = None
        unsaved: _SignedCheckpoint | None = None  # signed, not stored yet
        signed_size, last_signed = -1, 0.0
        stop = False
        try:
            while not stop:
                unsigned = (
                    self.checkpoint_every_batch and edge is not None and edge.size != signed_size
                )
                wait = None
                if unsigned or unsaved is not None:
                    wait = max(0.0, last_signed + self.checkpoint_interval_s - time.monotonic())
                try:
                    first = self._queue.get(timeout=wait)
                except queue.Empty:  # quiet for the rest of the interval: sign and store now
                    if unsigned and edge is not None:
                        unsaved = self._sign_checkpoint(edge.size, edge.root())
                        signed_size, last_signed = edge.size, time.monotonic()
                    if unsaved is not None:
                        try:
                            self._save_checkpoint(conn, unsaved)
                            unsaved = None
                        except sqlite3.Error:  # with the next batch; retry after an interval
                            last_signed = time.monotonic()
                    continue
                if first is None:
                    break
                batch, stop = self._gather(first)
                barriers = [req for req in batch if not req.entries]
                if len(barriers) < len(batch):
                    try:
                        edge = self._write_batch(conn, edge, batch, unsaved)
                        if unsaved is not None:
                            self._advance_head(unsaved, background=True)
                        unsaved = None
                        self.commits += 1
                    except BaseException as exc:  # every waiter learns why
                        edge = None
                        for req in batch:
                            req.future.set_exception(exc)
                        continue
                now_due = stop or bool(barriers)
                if (
                    self.checkpoint_every_batch
                    and edge is not None
                    and edge.size != signed_size
                    and (now_due or time.monotonic() - last_signed >= self.checkpoint_interval_s)
                ):
                    # Let the callers just answered take the GIL before this thread signs
                    # (otherwise they wait for the signature: up to the 5 ms switch interval).
                    time.sleep(0)
                    unsaved = self._sign_checkpoint(edge.size, edge.root())
                    signed_size, last_signed = edge.size, time.monotonic()
                if unsaved is not None and (now_due or self._queue.empty()):
                    with contextlib.suppress(sqlite3.Error):  # else: with the next batch
                        self._save_checkpoint(conn, unsaved)
                        unsaved = None
                for req in barriers:
                    req.future.set_result(-1)
        finally:
            if unsaved is not None:
                with contextlib.suppress(sqlite3.Error):
                    self._save_checkpoint(conn, unsaved)
            conn.close()

    def _write_batch(
        self,
        conn: sqlite3.Connection,
        edge: _Edge | None,
        batch: list[_Request],
        unsaved: _SignedCheckpoint | None = None,
    ) -> _Edge:
        with _write_transaction(conn):
            size = int(conn.execute("SELECT value FROM meta WHERE key='size'").fetchone()[0])
            if edge is None or edge.size != size:  # first batch, or another process wrote
                self._check_extension(conn, size)
                edge = _Edge(size, _read_tiles(conn, _Edge.needed_tiles(size)))
            starts = []
            entries: list[PreparedEntry] = []
            index = size
            for req in batch:
                starts.append(index)
                entries += req.entries
                index += len(req.entries)
            rows = zip(range(size, index), [e[0] for e in entries], strict=True)
            hashes = [e[1] for e in entries]
            conn.executemany("INSERT INTO entries(idx, entry) VALUES (?, ?)", rows)
            dirty = edge.append(hashes)
            conn.executemany(
                "INSERT OR REPLACE INTO tiles(level, idx, hashes) VALUES (?, ?, ?)",
                [(lv, ix, h) for (lv, ix), h in dirty.items()],
            )
            conn.execute("UPDATE meta SET value=? WHERE key='size'", (str(edge.size),))
            if unsaved is not None:  # the previous batch's, signed while this one queued
                conn.execute(_INSERT_CHECKPOINT, unsaved)
            crash_point("ledger.append.before_commit")
        crash_point("ledger.append.after_commit")
        for req, start in zip(batch, starts, strict=True):
            if req.entries:  # barriers are answered by the write loop
                req.future.set_result(start)
        return edge

    def _sign_checkpoint(self, size: int, root: bytes) -> _SignedCheckpoint:
        note = sign_note(Checkpoint(self.origin, size, root).body(), self.signers)
        crash_point("ledger.checkpoint.signed")
        return (size, root, note, utc_now())

    def _store_checkpoint(
        self, conn: sqlite3.Connection, size: int, root: bytes
    ) -> _SignedCheckpoint:
        """Sign and insert inside the caller's transaction; `_advance_head` after COMMIT."""
        signed = self._sign_checkpoint(size, root)
        conn.execute(_INSERT_CHECKPOINT, signed)
        return signed

    def _save_checkpoint(self, conn: sqlite3.Connection, signed: _SignedCheckpoint) -> None:
        """Store a checkpoint in its own transaction, without an fsync of its own.

        The entries it covers are already durable, and so is the tree head it signs: if a
        power loss drops the note, `checkpoint()` signs the same tree head again (the same
        bytes with Ed25519; an ML-DSA cosignature carries a fresh timestamp). WAL order
        makes it durable with the next FULL commit (the head copy thread syncs the WAL
        before it names the checkpoint).
        """
        conn.execute("PRAGMA synchronous=NORMAL")
        try:
            with _write_transaction(conn):
                conn.execute(_INSERT_CHECKPOINT, signed)
            crash_point("ledger.checkpoint.saved")
        finally:
            conn.execute("PRAGMA synchronous=FULL")
        self._advance_head(signed, background=True)

    # -- key rotation ---------------------------------------------------------------

    def recorded_verifier_keys(self) -> list[str] | None:
        """The verifier keys the log records as its current ones (None: an older log)."""
        row = self._reader().execute("SELECT value FROM meta WHERE key=?", (_VKEYS,)).fetchone()
        return None if row is None else str(row[0]).split("\n")

    def rotate_keys(self, new_signers: Sequence[NoteSigner], *, reason: str | None = None) -> int:
        """Append `key.rotated` (signed by the current keys) and switch to `new_signers`.

        One transaction holds the entry at index r, the new verifier keys in `meta` and a
        checkpoint of size r + 1 signed by the new keys; a checkpoint of size r is signed
        by the old keys first. Other writers notice at their next batch and stop (their
        keys are no longer the log's). Returns r.
        """
        from ledgerml.crypto.keys import rotation_message, sign_rotation

        self._writable()
        if not self.signers or not new_signers:
            raise InputError("rotation needs the current and the new keys", field="keys")
        process, self._process = self._process, None
        if process is not None:  # a bulk writer process holds the old keys
            process.close()
        self.checkpoint()  # the tree before the rotation, signed by the old keys
        old_v = [v.vkey() for v in self.verifiers]
        new_v = [s.verifier.vkey() for s in new_signers]
        if set(old_v) & set(new_v):
            raise InputError("the new keys must differ from the current ones", field="keys")
        body: dict[str, Any] = {"old_verifiers": old_v, "new_verifiers": new_v}
        if reason:
            body["reason"] = reason
        sigs = sign_rotation(self.signers, rotation_message(self.origin, old_v, new_v))
        prepared = self.prepare("key.rotated", body, sigs=sigs)
        old_signers = self.signers
        conn = self._connect()
        try:
            with _write_transaction(conn):
                size = int(conn.execute("SELECT value FROM meta WHERE key='size'").fetchone()[0])
                self._check_extension(conn, size)
                edge = _Edge(size, _read_tiles(conn, _Edge.needed_tiles(size)))
                conn.execute("INSERT INTO entries(idx, entry) VALUES (?, ?)", (size, prepared[0]))
                dirty = edge.append([prepared[1]])
                conn.executemany(
                    "INSERT OR REPLACE INTO tiles(level, idx, hashes) VALUES (?, ?, ?)",
                    [(lv, ix, h) for (lv, ix), h in dirty.items()],
                )
                conn.execute("UPDATE meta SET value=? WHERE key='size'", (str(edge.size),))
                conn.execute(
                    "INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)",
                    (_VKEYS, "\n".join(new_v)),
                )
                self.signers = list(new_signers)
                signed = self._store_checkpoint(conn, edge.size, edge.root())
        except BaseException:
            self.signers = old_signers
            raise
        finally:
            conn.close()
        first = self.signers[0].verifier
        self.actor = f"{first.name}+{first.key_id.hex()}"
        self._trusted_notes.clear()
        self._advance_head(signed)
        return size

    # -- reading ------------------------------------------------------------------

    def size(self) -> int:
        row = self._reader().execute("SELECT value FROM meta WHERE key='size'").fetchone()
        return int(row[0])

    def entry(self, index: int) -> bytes:
        if not 0 <= index <= MAX_INDEX:
            raise InputError(f"no entry {index} (tree size {self.size()})", field="index")
        row = self._reader().execute("SELECT entry FROM entries WHERE idx=?", (index,)).fetchone()
        if row is None:
            raise InputError(f"no entry {index} (tree size {self.size()})", field="index")
        return bytes(row[0])

    def entries(self, start: int = 0, limit: int | None = None) -> Iterator[tuple[int, bytes]]:
        if not 0 <= start <= MAX_INDEX:
            raise InputError(f"must be between 0 and {MAX_INDEX}", field="from")
        if limit is not None and not 0 <= limit <= MAX_INDEX:
            raise InputError(f"must be between 0 and {MAX_INDEX}", field="limit")
        sql = "SELECT idx, entry FROM entries WHERE idx >= ? ORDER BY idx"
        args: tuple[int, ...] = (start,)
        if limit is not None:
            sql += " LIMIT ?"
            args = (start, limit)
        for idx, data in self._reader().execute(sql, args):
            yield idx, bytes(data)

    def entries_of_type(
        self, *types: str, start: int = 0, containing: bytes | None = None
    ) -> Iterator[tuple[int, dict[str, Any]]]:
        """(index, parsed entry) of every entry of one of `types`, in log order.

        Filtered inside SQLite by the entries' type suffix (`type_suffix`), so the
        other entries are never copied out or parsed; `containing` further keeps
        only entries whose bytes contain it (e.g. a CID), which callers re-check
        on the parsed body.
        """
        if not types:
            return
        suffixes = [type_suffix(t) for t in types]
        where = " OR ".join("substr(entry, -?) = ?" for _ in suffixes)
        args: list[Any] = [start]
        for suffix in suffixes:
            args += [len(suffix), suffix]
        sql = f"SELECT idx, entry FROM entries WHERE idx >= ? AND ({where})"
        if containing is not None:
            sql += " AND instr(entry, ?) > 0"
            args.append(containing)
        for idx, data in self._reader().execute(sql + " ORDER BY idx", args):
            yield idx, orjson.loads(data)

    def count_of_type(self, event_type: str) -> int:
        """How many entries of `event_type` the log holds (counted inside SQLite)."""
        return count_of_type(self._reader(), event_type)

    def _range_hasher(self, conn: sqlite3.Connection) -> merkle.RangeHash:
        return tile_range_hasher(functools.partial(_read_tiles, conn))

    def checkpoint(self) -> str:
        """The signed note for the current tree; signs a fresh one if needed."""
        if self.read_only:
            return self.newest_checkpoint()
        if not self.signers:
            raise InputError("this ledger was opened without signing keys", field="keys")
        self._flush()
        self._head_drain()  # check against the newest head copy this process wrote
        conn = self._connect()
        try:
            with _write_transaction(conn):
                size = int(conn.execute("SELECT value FROM meta WHERE key='size'").fetchone()[0])
                self._check_extension(conn, size)
                row = conn.execute(
                    "SELECT size, root, note, created FROM checkpoints WHERE size=?", (size,)
                ).fetchone()
                if row is not None:
                    signed: _SignedCheckpoint = (int(row[0]), bytes(row[1]), str(row[2]), row[3])
                else:
                    root = merkle.EMPTY_ROOT if size == 0 else self._range_hasher(conn)(0, size)
                    signed = self._sign_checkpoint(size, root)
                    conn.execute(_INSERT_CHECKPOINT, signed)
        finally:
            conn.close()
        self._advance_head(signed)  # also catches up a head copy a crash left behind
        return signed[2]

    def newest_checkpoint(self) -> str:
        """The newest stored signed note, without signing (works read-only)."""
        row = (
            self._reader()
            .execute("SELECT note FROM checkpoints ORDER BY size DESC LIMIT 1")
            .fetchone()
        )
        if row is None:
            raise VerificationError(f"{self.path} holds no signed checkpoint")
        return str(row[0])

    def checkpoints(self) -> list[tuple[int, str]]:
        self._flush()
        rows = self._reader().execute("SELECT size, note FROM checkpoints ORDER BY size")
        return [(int(s), str(n)) for s, n in rows]

    # -- verification -------------------------------------------------------------

    def verify(
        self,
        verifiers: Sequence[NoteVerifier],
        *,
        trusted: Sequence[TrustedRoot] = (),
        progress: Any = None,
        workers: int | None = None,
        since: Sequence[str] = (),
        grace_s: float = UNCOVERED_GRACE_S,
    ) -> VerifyReport:
        """Recompute every leaf, every stored subtree hash and every checkpoint.

        `verifiers` are the log's current keys; older checkpoints verify with the keys the
        log's `key.rotated` entries name for their size. Also checked: the head copy (when
        configured), each signed note in `since` (checkpoints an auditor kept), and that no
        entry older than `grace_s` is left uncovered by a signed checkpoint.

        Fails closed: a problem anywhere is reported with the first bad index or
        checkpoint and what is wrong; nothing that could not be checked passes.
        """
        started = time.perf_counter()
        self._flush()
        if workers is None:
            workers = min(4, os.cpu_count() or 1)
        head: _HeadState | None = None
        if self.head_copy is not None:
            try:
                head = _HeadState(str(self.head_copy.path), self.head_copy.read(), None)
            except VerificationError as exc:
                head = _HeadState(str(self.head_copy.path), None, str(exc))
        db = self._ro_uri or str(self.path)
        checks = _Checks(head, tuple(since), grace_s, time.time())
        conn = self._connect()
        try:
            conn.execute("BEGIN")
            return _verify(
                SqliteReads(conn),
                db,
                self.origin,
                verifiers,
                trusted,
                progress,
                started,
                workers,
                checks,
            )
        finally:
            conn.close()


def _read_tiles(conn: sqlite3.Connection, keys: Sequence[tuple[int, int]]) -> dict:
    if not keys:
        return {}
    out = {}
    for i in range(0, len(keys), 400):
        part = keys[i : i + 400]
        marks = ",".join("(?,?)" for _ in part)
        args = [v for k in part for v in k]
        rows = conn.execute(
            f"SELECT level, idx, hashes FROM tiles WHERE (level, idx) IN (VALUES {marks})", args
        )
        for level, idx, hashes in rows:
            out[(level, idx)] = bytes(hashes)
    return out


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


class SqliteReads:
    """`LogReads` over a SQLite connection inside a read transaction (`PgReads` shares the
    methods whose SQL differs only in placeholders and the type-suffix test)."""

    _META = Ledger._META_SQL
    _TILES = "SELECT hashes FROM tiles WHERE level=? ORDER BY idx"
    _OF_TYPE = "SELECT idx, entry FROM entries WHERE substr(entry, -?) = ? ORDER BY idx"
    _ENTRY = "SELECT entry FROM entries WHERE idx=?"

    def __init__(self, conn: Any) -> None:
        self.conn = conn

    def meta(self, key: str) -> str | None:
        row = self.conn.execute(self._META, (key,)).fetchone()
        return None if row is None else str(row[0])

    def top(self) -> int:
        return int(self.conn.execute("SELECT COALESCE(MAX(idx) + 1, 0) FROM entries").fetchone()[0])

    def entry_rows(self) -> RowCursor:
        return self.conn.execute("SELECT idx, entry FROM entries ORDER BY idx")

    def tile_hashes(self, level: int) -> Iterable[bytes]:
        return (bytes(h) for (h,) in self.conn.execute(self._TILES, (level,)))

    def rows_of_type(self, suffix: bytes) -> list[tuple[int, bytes]]:
        rows = self.conn.execute(self._OF_TYPE, (len(suffix), suffix))
        return [(int(i), bytes(e)) for i, e in rows]

    def checkpoint_rows(self) -> Iterable[tuple[int, bytes, str]]:
        sql = "SELECT size, root, note FROM checkpoints ORDER BY size"
        return ((int(a), bytes(b), str(c)) for a, b, c in self.conn.execute(sql))

    def entry_at(self, index: int) -> bytes | None:
        row = self.conn.execute(self._ENTRY, (index,)).fetchone()
        return None if row is None else bytes(row[0])


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
