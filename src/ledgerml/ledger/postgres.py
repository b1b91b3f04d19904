"""The ledger on PostgreSQL: many processes on many hosts append to one log.

    ledger = PostgresLedger("postgresql://app@db.bank/ledger", origin=..., signers=...)
    index = ledger.append("decision.recorded", {...})   # durable and in the tree on return
    ledger.inclusion_proof(index); ledger.checkpoint(); ledger.verify(verifiers)

Same entries, tiles, checkpoints and proofs as the SQLite `Ledger` (byte for byte), so
`verify`, proofs, the tlog-tiles endpoints, audit trace and bundles read either. Modelled
on Tessera's MySQL/Spanner drivers:

- *Sequencing*: each process's appender thread gathers queued requests into one batch
  and, in one transaction holding the row lock on the coordination row `seq` (Tessera's
  `SeqCoord`), gives them consecutive indices and COPYs their exact bytes. Durable when
  the COMMIT returns (`synchronous_commit` on, the server default); a process killed
  before that leaves nothing, after it the rows are there whoever integrates them.
- *Integration*: whoever holds the advisory lock reads the entries sequenced beyond the
  tree size and extends tiles, size and root in one transaction. Idempotent: a killed
  integrator's transaction rolls back and the next lock holder does the same work; so it
  commits without waiting for a WAL flush of its own (`synchronous_commit` off for it
  alone): after a server crash the tree may be shorter than the entries, never wrong.
  A caller's future resolves once its batch is integrated (or, if integration failed
  after the durable sequencing commit, once sequenced: it is acknowledged either way).
- *Checkpoints*: signed by the integrating process at most every `checkpoint_interval_s`
  (and when the log goes quiet), stored with the same note format.

No head copy here: a file on one host is not shared by the others; a witness or an
on-chain anchor plays that role for a shared log (docs/deployment.md).
psycopg (the `postgres` extra) is imported only when this driver is used.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import queue
import re
import select
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import Future
from dataclasses import replace
from types import ModuleType
from typing import Any

from ledgerml.crypto.note import NoteSigner, NoteVerifier, sign_note
from ledgerml.errors import InputError, VerificationError
from ledgerml.faults import crash_point
from ledgerml.ledger import merkle
from ledgerml.ledger.appender import _Request
from ledgerml.ledger.edge import TileKey, _Edge
from ledgerml.ledger.envelope import MAX_INDEX, PreparedEntry, type_suffix, utc_now
from ledgerml.ledger.facade import _VKEYS, FORMAT_VERSION, LogFacade
from ledgerml.ledger.sqlite import Ledger, SqliteReads
from ledgerml.ledger.values import Checkpoint, Problem, TrustedRoot, VerifyReport
from ledgerml.ledger.verify import UNCOVERED_GRACE_S, _Checks, _verify

#: pg_advisory_xact_lock keys: the integrator's, and schema creation's.
INTEGRATE_LOCK = 0x4C65646765724D4C  # "LedgerML"
SCHEMA_LOCK = INTEGRATE_LOCK + 1
#: How long a caller is told to wait when the database cannot be reached (HTTP Retry-After).
RETRY_AFTER_S = 2

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS entries (idx BIGINT PRIMARY KEY, entry BYTEA NOT NULL)",
    "CREATE TABLE IF NOT EXISTS tiles (level INTEGER NOT NULL, idx BIGINT NOT NULL,"
    " hashes BYTEA NOT NULL, PRIMARY KEY (level, idx))",
    "CREATE TABLE IF NOT EXISTS checkpoints (size BIGINT PRIMARY KEY, root BYTEA NOT NULL,"
    " note TEXT NOT NULL, created TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    # The coordination row: how many entries were sequenced (Tessera's SeqCoord).
    "CREATE TABLE IF NOT EXISTS seq (id INTEGER PRIMARY KEY CHECK (id = 0), next BIGINT NOT NULL)",
)
_UPSERT_TILE = (
    "INSERT INTO tiles(level, idx, hashes) VALUES (%s, %s, %s)"
    " ON CONFLICT (level, idx) DO UPDATE SET hashes = EXCLUDED.hashes"
)
_INSERT_CHECKPOINT = (
    "INSERT INTO checkpoints(size, root, note, created) VALUES (%s, %s, %s, %s)"
    " ON CONFLICT (size) DO NOTHING"
)
_SUFFIX = "substring(entry from length(entry) - %s + 1) = %s"


class LedgerUnavailable(VerificationError):
    """The ledger's database cannot be reached: nothing was acknowledged; retry later.

    A `VerificationError` so that anything that cannot complete fails closed; the service
    answers 503 with `Retry-After: retry_after_s`.
    """

    retry_after_s = RETRY_AFTER_S


def is_postgres_url(url: str) -> bool:
    return url.startswith(("postgresql://", "postgres://"))


def redact_url(url: str) -> str:
    """The URL with any password replaced by `***`: the only form ever printed or logged."""
    url = re.sub(r"(://[^:/@?#]*:)[^@/?#]*@", r"\1***@", url)
    return re.sub(r"(?i)(password=)[^&\s]*", r"\1***", url)


def _psycopg() -> ModuleType:
    try:
        import psycopg
    except ImportError:
        raise InputError(
            "a postgresql:// ledger needs psycopg: pip install 'ledgerml[postgres]'",
            field="ledger.url",
        ) from None
    return psycopg


def _usable(conn: Any) -> bool:
    """An open connection the server has not dropped while it sat idle. A terminated
    backend leaves its socket readable (the FATAL message, then EOF), seen here without a
    round trip; the caller reconnects instead of failing the next request with a 503."""
    if conn is None or conn.closed:
        return False
    poller = select.poll()
    poller.register(conn.fileno(), select.POLLIN | select.POLLPRI)
    if not poller.poll(0):
        return True
    with contextlib.suppress(Exception):
        conn.close()
    return False


def _unavailable(where: str, exc: Exception) -> LedgerUnavailable:
    """A database error as a message without the URL (it may hold a password)."""
    detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return LedgerUnavailable(f"the ledger database is unavailable ({where}): {detail}")


class PgReads(SqliteReads):
    """`LogReads` over one REPEATABLE READ transaction, entries bounded by the tree size."""

    _META = "SELECT value FROM meta WHERE key=%s"
    _TILES = "SELECT hashes FROM tiles WHERE level=%s ORDER BY idx"
    _OF_TYPE = f"SELECT idx, entry FROM entries WHERE {_SUFFIX} ORDER BY idx"
    _ENTRY = "SELECT entry FROM entries WHERE idx=%s"

    def __init__(self, conn: Any, size: int) -> None:
        self.conn, self.size = conn, size

    def top(self) -> int:
        return self.size

    def entry_rows(self) -> Any:
        cur = self.conn.cursor(name="ledgerml_verify")
        cur.itersize = 32768
        cur.execute("SELECT idx, entry FROM entries WHERE idx < %s ORDER BY idx", (self.size,))
        return cur


def read_tiles(conn: Any, keys: Sequence[tuple[int, int]]) -> dict[tuple[int, int], bytes]:
    if not keys:
        return {}
    levels = [k[0] for k in keys]
    idxs = [k[1] for k in keys]
    rows = conn.execute(
        "SELECT t.level, t.idx, t.hashes FROM tiles t"
        " JOIN unnest(%s::int[], %s::bigint[]) AS k(level, idx)"
        " ON t.level = k.level AND t.idx = k.idx",
        (levels, idxs),
    )
    return {(int(lv), int(ix)): bytes(h) for lv, ix, h in rows}


class PostgresLedger(LogFacade):
    """The `Ledger` facade on PostgreSQL: same methods, same bytes, many writers."""

    _META_SQL = PgReads._META
    _ADOPT_KEYS_SQL = "INSERT INTO meta(key, value) VALUES (%s, %s) ON CONFLICT (key) DO NOTHING"

    def __init__(
        self,
        url: str,
        *,
        origin: str,
        signers: Sequence[NoteSigner] = (),
        actor: str | None = None,
        checkpoint_every_batch: bool = True,
        checkpoint_interval_s: float = 0.05,
        max_batch: int = 20_000,
        create: bool = True,
        read_only: bool = False,
        head_copy: object = None,
        connect_timeout_s: float = 5.0,
        application_name: str = "ledgerml",
        **_ignored: Any,  # SQLite-only options (use_writer_process, busy_timeout_s)
    ) -> None:
        self._init_writer_state(
            origin, signers, actor, checkpoint_every_batch, checkpoint_interval_s, max_batch
        )
        if not is_postgres_url(url):
            raise InputError("must start with postgresql://", field="ledger.url")
        self._psycopg = _psycopg()
        self.url = url
        #: what messages name (never the password)
        self.path = redact_url(url)
        self.read_only = read_only
        self.head_copy = None  # see the module docstring
        self._timeout = max(1, int(connect_timeout_s))
        self._application_name = application_name  # what pg_stat_activity shows
        conn = self._connect()
        try:
            self._open(conn, create=create and not read_only)
        finally:
            conn.close()

    # -- connections ---------------------------------------------------------------

    def _connect(self, *, snapshot: bool = False) -> Any:
        """Autocommit; `snapshot`: transactions are REPEATABLE READ (readers). Writers stay
        READ COMMITTED: a statement after a lock wait must see what the holder committed."""
        pg = self._psycopg
        try:
            conn = pg.connect(
                self.url,
                autocommit=True,
                connect_timeout=self._timeout,
                application_name=self._application_name,
            )
        except pg.OperationalError as exc:
            raise _unavailable(f"connecting to {self.path}", exc) from None
        if snapshot:
            conn.isolation_level = pg.IsolationLevel.REPEATABLE_READ
        return conn

    def _reader(self) -> Any:
        conn = getattr(self._local, "conn", None)
        if not _usable(conn):
            conn = self._connect(snapshot=True)
            self._local.conn = conn
        return conn

    @contextlib.contextmanager
    def _snapshot(self, what: str) -> Iterator[Any]:
        """One consistent read transaction; a lost connection is `LedgerUnavailable`."""
        conn = self._reader()
        try:
            with conn.transaction():
                yield conn
        except self._psycopg.OperationalError as exc:
            with contextlib.suppress(Exception):
                conn.close()
            raise _unavailable(what, exc) from None

    def _open(self, conn: Any, *, create: bool) -> None:
        pg = self._psycopg
        try:
            with conn.transaction():
                if create:
                    conn.execute("SELECT pg_advisory_xact_lock(%s)", (SCHEMA_LOCK,))
                    for statement in _SCHEMA:
                        conn.execute(statement)
                    conn.execute(
                        "INSERT INTO meta(key, value) VALUES ('format', %s), ('size', '0'),"
                        " ('origin', %s) ON CONFLICT (key) DO NOTHING",
                        (str(FORMAT_VERSION), self.origin),
                    )
                    conn.execute("INSERT INTO seq(id, next) VALUES (0, 0) ON CONFLICT DO NOTHING")
                meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
                if self.signers and not self.read_only:
                    self._check_keys(conn, meta.get(_VKEYS))
        except pg.errors.UndefinedTable:
            raise VerificationError(
                f"{self.path} holds no LedgerML ledger; only `ledgerml init` (or `ledgerml "
                "ledger migrate`) creates one"
            ) from None
        except pg.OperationalError as exc:
            raise _unavailable("opening the ledger", exc) from None
        self._check_meta(meta)

    def _read_tiles(self, conn: Any, keys: Sequence[TileKey]) -> dict[TileKey, bytes]:
        return read_tiles(conn, keys)

    # -- appending ----------------------------------------------------------------

    def append_many(self, items: Iterable[tuple[str, Any]]) -> list[int]:
        """Append many entries atomically (one sequencing transaction); their indices."""
        items = list(items)
        if not items:
            return []
        prepared = self._prepare_batch(items)
        first = self.commit(prepared)
        return list(range(first, first + len(prepared)))

    def submit(self, entries: list[PreparedEntry]) -> Future[int]:
        """Queue prepared entries; the future resolves to the first index once durable."""
        request = _Request(entries)
        if self.read_only:
            raise InputError(f"{self.path} was opened read-only", field="ledger")
        with self._writer_lock:
            if self._closed:
                raise InputError("ledger is closed", field="ledger")
            if self._writer is None:
                self._writer = threading.Thread(
                    target=self._write_loop, name="ledger-pg-writer", daemon=True
                )
                self._writer.start()
        self._queue.put(request)
        return request.future

    def _flush(self) -> None:
        """Wait until everything this process queued is integrated and signed."""
        if self._writer is not None:
            with contextlib.suppress(InputError):
                self.commit([])

    def _write_loop(self) -> None:
        """Sequence queued requests in batches, integrate, sign at most every interval."""
        conn: Any = None
        edge: _Edge | None = None
        signed_size, last_signed = -1, 0.0
        stop = False
        pg = self._psycopg
        try:
            while not stop:
                unsigned = (
                    self.checkpoint_every_batch and edge is not None and edge.size != signed_size
                )
                wait = None
                if unsigned:
                    wait = max(0.0, last_signed + self.checkpoint_interval_s - time.monotonic())
                try:
                    first = self._queue.get(timeout=wait)
                except queue.Empty:  # quiet: sign the tree as it is now
                    try:
                        conn = conn if _usable(conn) else self._connect()
                        edge, signed = self._integrate(conn, edge, sign=True)
                        if signed is not None:
                            signed_size = signed
                    except (VerificationError, pg.Error):
                        edge = None
                    last_signed = time.monotonic()
                    continue
                if first is None:
                    if unsigned:  # closing: sign the tree this process extended, as SQLite does
                        with contextlib.suppress(VerificationError, pg.Error):
                            conn = conn if _usable(conn) else self._connect()
                            self._integrate(conn, edge, sign=True)
                    break
                batch, stop = self._gather(first)
                entries = [e for req in batch for e in req.entries]
                try:
                    conn = conn if _usable(conn) else self._connect()
                    start = self._sequence(conn, entries) if entries else -1
                except (pg.Error, LedgerUnavailable) as exc:
                    error = exc if isinstance(exc, VerificationError) else None
                    error = error or _unavailable("sequencing", exc)
                    with contextlib.suppress(Exception):
                        conn.close()
                    for req in batch:
                        req.future.set_exception(error)
                    continue
                except BaseException as exc:
                    for req in batch:
                        req.future.set_exception(exc)
                    continue
                self.commits += 1
                due = stop or any(not req.entries for req in batch)
                due = due or time.monotonic() - last_signed >= self.checkpoint_interval_s
                hashes = b"".join(e[1] for e in entries)
                integrate_error: BaseException | None = None
                try:
                    edge, signed = self._integrate(
                        conn, edge, sign=due and self.checkpoint_every_batch, known=(start, hashes)
                    )
                    if signed is not None:
                        signed_size, last_signed = signed, time.monotonic()
                except (pg.Error, VerificationError) as exc:
                    edge = None  # re-read from the database next time
                    integrate_error = exc
                    if isinstance(exc, pg.OperationalError):
                        with contextlib.suppress(Exception):
                            conn.close()
                index = start
                for req in batch:
                    if req.entries:  # durable: acknowledged even if integration failed
                        req.future.set_result(index)
                        index += len(req.entries)
                    elif integrate_error is not None:
                        req.future.set_exception(
                            integrate_error
                            if isinstance(integrate_error, VerificationError)
                            else _unavailable("integrating", integrate_error)  # type: ignore[arg-type]
                        )
                    else:
                        req.future.set_result(-1)
        finally:
            if conn is not None:
                with contextlib.suppress(Exception):
                    conn.close()

    def _sequence(self, conn: Any, entries: list[PreparedEntry]) -> int:
        """Consecutive indices for `entries`, stored in one transaction under the row lock
        on the coordination row; durable on return. The first index."""
        n = len(entries)
        with conn.transaction():
            # The UPDATE takes the coordination row's lock (held until COMMIT) and says
            # where this batch starts, in one round trip.
            (start,) = conn.execute(
                "UPDATE seq SET next = next + %s WHERE id=0 RETURNING next - %s", (n, n)
            ).fetchone()
            start = int(start)
            if start + n - 1 > MAX_INDEX:
                raise InputError("the log is full", field="ledger")
            with conn.cursor().copy("COPY entries (idx, entry) FROM STDIN (FORMAT BINARY)") as cp:
                cp.set_types(["int8", "bytea"])
                for i, entry in enumerate(entries, start):
                    cp.write_row((i, entry[0]))
            crash_point("ledger.pg.sequence.before_commit")
        crash_point("ledger.pg.sequence.after_commit")
        return start

    def _integrate(
        self,
        conn: Any,
        edge: _Edge | None,
        *,
        sign: bool,
        known: tuple[int, bytes] | None = None,
    ) -> tuple[_Edge, int | None]:
        """Extend the tree over every sequenced entry, holding the advisory lock; sign a
        checkpoint of the result when `sign`. Returns the edge and the size signed."""
        signed: int | None = None
        with conn.transaction():
            # Derived data: a commit lost in a server crash is redone by the next integrator,
            # so it need not wait for its own WAL flush (the entries' commit did).
            conn.execute(
                "SELECT set_config('synchronous_commit', 'off', true), pg_advisory_xact_lock(%s)",
                (INTEGRATE_LOCK,),
            )
            # (a statement of its own after the lock: its snapshot sees the last holder's work)
            size, top = conn.execute(
                "SELECT (SELECT value::bigint FROM meta WHERE key='size'),"
                " (SELECT next FROM seq WHERE id=0)"
            ).fetchone()
            if edge is None or edge.size != size:  # first time, or another process did
                edge = self._checked_edge(conn, size)
            if top > size:
                if (
                    known is not None
                    and known[0] == size
                    and len(known[1]) == ((top - size) * merkle.HASH_SIZE)
                ):
                    hashes = known[1]  # only our own batch is pending: no read-back
                else:
                    hashes = self._leaf_hashes(conn, size, top)
                dirty = edge.append(hashes)
            note = None
            if sign and self.signers:  # an existing one of this size is kept (DO NOTHING)
                root = edge.root()
                note = sign_note(Checkpoint(self.origin, edge.size, root).body(), self.signers)
                signed = edge.size
            with conn.pipeline(), conn.cursor() as cur:  # the writes in one round trip
                if top > size:
                    cur.executemany(_UPSERT_TILE, [(lv, ix, h) for (lv, ix), h in dirty.items()])
                    cur.execute("UPDATE meta SET value=%s WHERE key='size'", (str(edge.size),))
                if note is not None:
                    cur.execute(_INSERT_CHECKPOINT, (edge.size, root, note, utc_now()))
            if note is not None:
                self._trust(note)
            if top > size:
                crash_point("ledger.pg.integrate.before_commit")
        return edge, signed

    def _leaf_hashes(self, conn: Any, lo: int, hi: int) -> bytes:
        """Leaf hashes of entries lo..hi-1 from their stored bytes; a gap fails closed."""
        sha = hashlib.sha256
        parts: list[bytes] = []
        expected = lo
        for idx, data in conn.execute(
            "SELECT idx, entry FROM entries WHERE idx >= %s AND idx < %s ORDER BY idx", (lo, hi)
        ):
            if idx != expected:
                raise VerificationError(
                    f"entry {expected} is missing below the sequenced size {hi}: refusing to "
                    "integrate"
                )
            parts.append(sha(b"\x00" + bytes(data)).digest())
            expected += 1
        if expected != hi:
            raise VerificationError(
                f"entry {expected} is missing below the sequenced size {hi}: refusing to integrate"
            )
        return b"".join(parts)

    # -- reading ------------------------------------------------------------------

    def size(self) -> int:
        with self._snapshot("reading the size") as conn:
            return int(conn.execute("SELECT value FROM meta WHERE key='size'").fetchone()[0])

    def entry(self, index: int) -> bytes:
        if not 0 <= index <= MAX_INDEX:
            raise InputError(f"no entry {index} (tree size {self.size()})", field="index")
        with self._snapshot("reading an entry") as conn:
            row = conn.execute("SELECT entry FROM entries WHERE idx=%s", (index,)).fetchone()
        if row is None or index >= self.size():
            raise InputError(f"no entry {index} (tree size {self.size()})", field="index")
        return bytes(row[0])

    def entries(self, start: int = 0, limit: int | None = None) -> Iterator[tuple[int, bytes]]:
        if not 0 <= start <= MAX_INDEX:
            raise InputError(f"must be between 0 and {MAX_INDEX}", field="from")
        if limit is not None and not 0 <= limit <= MAX_INDEX:
            raise InputError(f"must be between 0 and {MAX_INDEX}", field="limit")
        end = self.size()
        if limit is not None:
            end = min(end, start + limit)
        position = start
        while position < end:  # pages, so a long export holds no transaction open
            with self._snapshot("reading entries") as conn:
                rows = conn.execute(
                    "SELECT idx, entry FROM entries WHERE idx >= %s AND idx < %s ORDER BY idx",
                    (position, min(end, position + 10_000)),
                ).fetchall()
            for idx, data in rows:
                yield int(idx), bytes(data)
            position += 10_000

    def entries_of_type(
        self, *types: str, start: int = 0, containing: bytes | None = None
    ) -> Iterator[tuple[int, dict[str, Any]]]:
        """(index, parsed entry) of every entry of one of `types`, filtered in the database."""
        import orjson

        if not types:
            return
        suffixes = [type_suffix(t) for t in types]
        where = " OR ".join(_SUFFIX for _ in suffixes)
        args: list[Any] = [start, self.size()]
        for suffix in suffixes:
            args += [len(suffix), suffix]
        sql = f"SELECT idx, entry FROM entries WHERE idx >= %s AND idx < %s AND ({where})"
        if containing is not None:
            sql += " AND position(%s in entry) > 0"
            args.append(containing)
        with self._snapshot("reading entries") as conn:
            rows = conn.execute(sql + " ORDER BY idx", args).fetchall()
        for idx, data in rows:
            yield int(idx), orjson.loads(bytes(data))

    def tile_rows(self, level: int, lo: int, hi: int) -> dict[int, bytes]:
        """Stored height-4 tiles `level`, lo..hi (the tlog-tiles endpoints read these)."""
        with self._snapshot("reading tiles") as conn:
            rows = conn.execute(
                "SELECT idx, hashes FROM tiles WHERE level=%s AND idx BETWEEN %s AND %s",
                (level, lo, hi),
            ).fetchall()
        return {int(i): bytes(h) for i, h in rows}

    def entry_range(self, lo: int, hi: int) -> list[bytes]:
        """Entries lo..hi-1 of the integrated tree (fewer when the tree is smaller)."""
        with self._snapshot("reading entries") as conn:
            rows = conn.execute(
                "SELECT entry FROM entries WHERE idx >= %s AND idx < LEAST(%s,"
                " (SELECT value::bigint FROM meta WHERE key='size')) ORDER BY idx",
                (lo, hi),
            ).fetchall()
        return [bytes(e) for (e,) in rows]

    def count_of_type(self, event_type: str) -> int:
        suffix = type_suffix(event_type)
        with self._snapshot("counting entries") as conn:
            sql = f"SELECT COUNT(*) FROM entries WHERE {_SUFFIX}"
            return int(conn.execute(sql, (len(suffix), suffix)).fetchone()[0])

    def checkpoint(self) -> str:
        """The signed note for the current tree (integrating what is sequenced first)."""
        if self.read_only:
            return self.newest_checkpoint()
        if not self.signers:
            raise InputError("this ledger was opened without signing keys", field="keys")
        self._flush()
        conn = self._connect()
        try:
            edge, _ = self._integrate(conn, None, sign=True)  # keeps a stored note of this size
            row = conn.execute(
                "SELECT note FROM checkpoints WHERE size=%s", (edge.size,)
            ).fetchone()
        except self._psycopg.OperationalError as exc:
            raise _unavailable("signing a checkpoint", exc) from None
        finally:
            conn.close()
        return str(row[0])

    def newest_checkpoint(self) -> str:
        with self._snapshot("reading a checkpoint") as conn:
            row = conn.execute("SELECT note FROM checkpoints ORDER BY size DESC LIMIT 1").fetchone()
        if row is None:
            raise VerificationError(f"{self.path} holds no signed checkpoint")
        return str(row[0])

    def checkpoints(self) -> list[tuple[int, str]]:
        self._flush()
        with self._snapshot("reading checkpoints") as conn:
            rows = conn.execute("SELECT size, note FROM checkpoints ORDER BY size").fetchall()
        return [(int(s), str(n)) for s, n in rows]

    def recorded_verifier_keys(self) -> list[str] | None:
        with self._snapshot("reading keys") as conn:
            row = conn.execute(self._META_SQL, (_VKEYS,)).fetchone()
        return None if row is None else str(row[0]).split("\n")

    def rotate_keys(self, new_signers: Sequence[NoteSigner], *, reason: str | None = None) -> int:
        """As `Ledger.rotate_keys`, on the shared log. Returns r, the rotation's index.

        One transaction holds the integrator's lock and the coordination row, so nothing is
        sequenced or integrated between the old keys' checkpoint of size r (entries other
        processes sequenced before are integrated into it) and the new keys' of r + 1; the
        new verifier keys go into `meta` in the same commit. Other processes notice when
        they next re-read the tree and stop ("restart the writer"): give every host the
        new key files before restarting it.
        """
        if self.read_only:
            raise InputError(f"{self.path} was opened read-only", field="ledger")
        prepared, new_v = self._rotation_entry(new_signers, reason)
        self._flush()  # this process's own pending appends go in under the old keys
        old_signers = list(self.signers)
        conn = self._connect()
        try:
            with conn.transaction():
                conn.execute("SELECT pg_advisory_xact_lock(%s)", (INTEGRATE_LOCK,))
                # the coordination row's lock, held to COMMIT: every lower index is committed
                (start,) = conn.execute(
                    "UPDATE seq SET next = next + 1 WHERE id=0 RETURNING next - 1"
                ).fetchone()
                start = int(start)
                size = int(conn.execute("SELECT value FROM meta WHERE key='size'").fetchone()[0])
                edge = self._checked_edge(conn, size)
                dirty = edge.append(self._leaf_hashes(conn, size, start)) if start > size else {}
                before = Checkpoint(self.origin, edge.size, edge.root())
                old_note = sign_note(before.body(), old_signers)
                conn.execute(
                    "INSERT INTO entries(idx, entry) VALUES (%s, %s)", (start, prepared[0])
                )
                dirty = {**dirty, **edge.append([prepared[1]])}
                after = Checkpoint(self.origin, edge.size, edge.root())
                new_note = sign_note(after.body(), list(new_signers))
                now = utc_now()
                with conn.cursor() as cur:
                    cur.executemany(_UPSERT_TILE, [(lv, ix, h) for (lv, ix), h in dirty.items()])
                    cur.execute("UPDATE meta SET value=%s WHERE key='size'", (str(edge.size),))
                    cur.execute(
                        "INSERT INTO meta(key, value) VALUES (%s, %s)"
                        " ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
                        (_VKEYS, "\n".join(new_v)),
                    )
                    cur.execute(_INSERT_CHECKPOINT, (before.size, before.root, old_note, now))
                    cur.execute(_INSERT_CHECKPOINT, (after.size, after.root, new_note, now))
        except self._psycopg.OperationalError as exc:
            raise _unavailable("rotating the log's keys", exc) from None
        finally:
            conn.close()
        self._adopt_signers(new_signers)
        self._trust(new_note)
        return start

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
        """As `Ledger.verify`, in one snapshot. Entries sequenced but not yet integrated are
        in flight (another writer's); rows beyond the sequenced count are `extra`."""
        started = time.perf_counter()
        self._flush()
        if not self.read_only and self.signers:
            with contextlib.suppress(LedgerUnavailable):
                conn = self._connect()
                try:
                    self._integrate(conn, None, sign=False)
                except (self._psycopg.Error, VerificationError):
                    pass  # reported below by the checks themselves
                finally:
                    conn.close()
        checks = _Checks(None, tuple(since), grace_s, time.time())
        with self._snapshot("verifying") as conn:
            size = self._tree_size(conn)
            (top,) = conn.execute("SELECT next FROM seq WHERE id=0").fetchone()
            extra = conn.execute(
                "SELECT MIN(idx), COUNT(*) FROM entries WHERE idx >= %s", (top,)
            ).fetchone()
            report = _verify(
                PgReads(conn, size),
                None,
                self.origin,
                verifiers,
                trusted,
                progress,
                started,
                1,
                checks,
            )
        if extra[1]:
            problem = Problem(
                "extra",
                f"{extra[1]} entries beyond the {top} sequenced (rows not written by a writer)",
                index=int(extra[0]),
            )
            report = replace(report, problems=(*report.problems, problem))
        return report

    # -- closing ------------------------------------------------------------------

    def close(self) -> None:
        """Flush pending appends and stop the writer."""
        with self._writer_lock:
            self._closed = True
            writer, self._writer = self._writer, None
        if writer is not None:
            self._queue.put(None)
            writer.join()
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.close()
            self._local.conn = None


def open_url(url: str, **kwargs: Any) -> Ledger | PostgresLedger:
    """The ledger at `url`: `postgresql://…` or a SQLite path (`sqlite:PATH` or a plain path)."""
    if is_postgres_url(url):
        return PostgresLedger(url, **kwargs)
    path = url.removeprefix("sqlite:")
    if not path:
        raise InputError("must be sqlite:PATH or postgresql://…", field="ledger.url")
    return Ledger(os.fspath(path), **kwargs)
