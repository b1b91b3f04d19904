"""The SQLite driver: `Ledger`, the whole log in one file (WAL, `synchronous=FULL`).

One writer thread per `Ledger` group-commits queued requests and signs checkpoints
off the callers' path; large `append_many` calls stream to a writer process
(`appender._ProcessWriter`); separate processes serialise on SQLite's write lock.
Also here: the schema, opening a ledger read-only (also on read-only media), and
`SqliteReads`, what `verify` reads through (`PgReads` reuses most of it).
"""

from __future__ import annotations

import contextlib
import os
import queue
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from ledgerml.crypto.note import NoteSigner, NoteVerifier, sign_note
from ledgerml.errors import InputError, VerificationError
from ledgerml.faults import crash_point
from ledgerml.ledger import merkle
from ledgerml.ledger._scan import RowCursor
from ledgerml.ledger.appender import PROCESS_CHUNK, PROCESS_WRITER_MIN, _ProcessWriter, _Request
from ledgerml.ledger.edge import TileKey, _Edge
from ledgerml.ledger.envelope import MAX_INDEX, PreparedEntry, type_suffix, utc_now
from ledgerml.ledger.facade import _VKEYS, FORMAT_VERSION, LogFacade
from ledgerml.ledger.head import HeadCopy
from ledgerml.ledger.values import Checkpoint, TrustedRoot, VerifyReport
from ledgerml.ledger.verify import UNCOVERED_GRACE_S, _Checks, _HeadState, _verify

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


#: (size, root, note, created): a checkpoint signed by the writer, not yet stored.
_SignedCheckpoint = tuple[int, bytes, str, str]
_INSERT_CHECKPOINT = (
    "INSERT OR REPLACE INTO checkpoints(size, root, note, created) VALUES (?, ?, ?, ?)"
)


@dataclass
class _WriterState:
    """What the writer keeps between batches, shared with a caller that commits directly
    (`Ledger.commit`); touched only under `Ledger._write_mutex`."""

    conn: sqlite3.Connection
    edge: _Edge | None = None
    unsaved: _SignedCheckpoint | None = None  # signed, not stored yet
    signed_size: int = -1
    last_signed: float = 0.0
    #: the writer thread sleeps with no deadline: a direct commit must wake it (`_WAKE`)
    waits_unbounded: bool = False


#: Queued after a direct commit when the writer sleeps with no deadline, so the entries get
#: a checkpoint within the interval.
_WAKE = _Request([])


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
        self._write_mutex = threading.Lock()
        self._state: _WriterState | None = None
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
        st = _WriterState(self._connect())
        with self._write_mutex:
            self._state = st
        stop = False
        try:
            while not stop:
                with self._write_mutex:
                    unsigned = self._unsigned(st)
                    wait = None
                    if unsigned or st.unsaved is not None:
                        wait = max(
                            0.0, st.last_signed + self.checkpoint_interval_s - time.monotonic()
                        )
                    st.waits_unbounded = wait is None
                try:
                    first = self._queue.get(timeout=wait)
                except queue.Empty:  # quiet for the rest of the interval: sign and store now
                    with self._write_mutex:
                        st.waits_unbounded = False
                        if self._unsigned(st):
                            self._sign_tree(st)
                        if st.unsaved is not None:
                            try:
                                self._save_checkpoint(st.conn, st.unsaved)
                                st.unsaved = None
                            except sqlite3.Error:  # with the next batch; retry after an interval
                                st.last_signed = time.monotonic()
                    continue
                with self._write_mutex:
                    st.waits_unbounded = False
                    if first is None:
                        if self._unsigned(st):
                            # closing: the full tree gets its checkpoint (stored below), so a log
                            # its last writer closed is covered, not "uncovered" a minute later
                            self._sign_tree(st)
                        break
                    if first is _WAKE:  # a direct commit's entries: the loop's top times them
                        continue
                    batch, stop = self._gather(first)
                    batch = [req for req in batch if req is not _WAKE]
                    self._write_queued(st, batch, stop)
        finally:
            with self._write_mutex:
                self._state = None
                if st.unsaved is not None:
                    with contextlib.suppress(sqlite3.Error):
                        self._save_checkpoint(st.conn, st.unsaved)
                st.conn.close()

    def _unsigned(self, st: _WriterState) -> bool:
        """True when the tree has grown past its newest signed checkpoint."""
        return (
            self.checkpoint_every_batch and st.edge is not None and st.edge.size != st.signed_size
        )

    def _sign_tree(self, st: _WriterState) -> None:
        """Sign the tree as it stands; stored with the next batch or when the log is quiet."""
        edge = st.edge
        assert edge is not None  # `_unsigned` was true
        st.unsaved = self._sign_checkpoint(edge.size, edge.root())
        st.signed_size, st.last_signed = edge.size, time.monotonic()

    def _write_queued(self, st: _WriterState, batch: list[_Request], stop: bool) -> None:
        """One group commit of queued requests, then the checkpoint when due (under the
        write mutex)."""
        barriers = [req for req in batch if not req.entries]
        if len(barriers) < len(batch):
            try:
                self._write_one(st, batch)
            except BaseException as exc:  # every waiter learns why
                for req in batch:
                    req.future.set_exception(exc)
                return
        now_due = stop or bool(barriers)
        if self._unsigned(st) and (
            now_due or time.monotonic() - st.last_signed >= self.checkpoint_interval_s
        ):
            # Let the callers just answered take the GIL before this thread signs
            # (otherwise they wait for the signature: up to the 5 ms switch interval).
            time.sleep(0)
            self._sign_tree(st)
        if st.unsaved is not None and (now_due or self._queue.empty()):
            with contextlib.suppress(sqlite3.Error):  # else: with the next batch
                self._save_checkpoint(st.conn, st.unsaved)
                st.unsaved = None
        for req in barriers:
            req.future.set_result(-1)

    def _write_one(self, st: _WriterState, batch: list[_Request]) -> None:
        """Commit `batch` (durable on return, futures answered) with the previous batch's
        signed checkpoint, if it is still unsaved; raises what stopped it."""
        try:
            st.edge = self._write_batch(st.conn, st.edge, batch, st.unsaved)
        except BaseException:
            st.edge = None  # read again from the database by the next batch
            raise
        if st.unsaved is not None:
            self._advance_head(st.unsaved, background=True)
        st.unsaved = None
        self.commits += 1

    def commit(self, entries: list[PreparedEntry]) -> int:
        """Append prepared entries; returns the first index once they are durable.

        When the writer thread is idle, the caller commits on the writer's connection itself
        (under the write mutex, the same transaction `_write_batch` runs): handing one request
        to a sleeping thread and waking the caller again costs ~0.15 ms on this kind of VM,
        as much as the commit. Concurrent callers still queue and share a group commit; the
        checkpoint stays the writer thread's, signed within `checkpoint_interval_s`.
        """
        idle = entries and self._state is not None and self._queue.empty()
        if idle and self._write_mutex.acquire(blocking=False):
            try:
                st = self._state
                if st is not None and not self._closed and self._queue.empty():
                    self._writable()
                    request = _Request(entries)
                    self._write_one(st, [request])
                    if st.waits_unbounded:  # it must learn of entries to sign
                        st.waits_unbounded = False
                        self._queue.put(_WAKE)
                    return request.future.result()
            finally:
                self._write_mutex.release()
        return self.submit(entries).result()

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
                edge = self._checked_edge(conn, size)
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
        self._writable()
        prepared, new_v = self._rotation_entry(new_signers, reason)
        process, self._process = self._process, None
        if process is not None:  # a bulk writer process holds the old keys
            process.close()
        self.checkpoint()  # the tree before the rotation, signed by the old keys
        old_signers = self.signers
        conn = self._connect()
        try:
            with _write_transaction(conn):
                size = int(conn.execute("SELECT value FROM meta WHERE key='size'").fetchone()[0])
                edge = self._checked_edge(conn, size)
                # the tree of size r, signed by the old keys in this same transaction: another
                # writer may have appended since the checkpoint() above
                self._store_checkpoint(conn, edge.size, edge.root())
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
        self._adopt_signers(new_signers)
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

    def _read_tiles(
        self, conn: sqlite3.Connection, keys: Sequence[TileKey]
    ) -> dict[TileKey, bytes]:
        return _read_tiles(conn, keys)

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
                    rh = self._range_hasher(conn, [size])
                    root = merkle.EMPTY_ROOT if size == 0 else rh(0, size)
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
