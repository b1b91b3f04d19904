"""The ledger: an append-only RFC 9162 Merkle log on SQLite.

    ledger = Ledger(path, origin="ledgerml.local/abc", signers=keys.note_signers)
    index = ledger.append("dataset.registered", {...})     # durable on return
    proof = ledger.inclusion_proof(index)                   # O(log n), from tiles
    note = ledger.checkpoint()                              # C2SP signed note
    report = ledger.verify(keys.note_verifiers)             # recompute everything

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
"""

from __future__ import annotations

import array
import base64
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
from types import ModuleType
from typing import Any

import orjson

from ledgerml.crypto.canonical import canonical_json, canonical_json_many, check_json_value
from ledgerml.crypto.note import (
    NoteSigner,
    NoteVerifier,
    parse_checkpoint_head,
    parse_note,
    sign_note,
    verify_note,
)
from ledgerml.errors import InputError, VerificationError
from ledgerml.faults import crash_point
from ledgerml.ledger import merkle
from ledgerml.ledger._scan import RawProblem, _hash_rows
from ledgerml.ledger.tiles import (
    HEIGHT,
    TILE_BYTES,
    WIDTH,
    node_from_tile,
    node_location,
    perfect_root,
)

MAX_ENTRY_BYTES = 1 << 20
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


@functools.cache
def _events() -> ModuleType:
    """The typed event bodies, compiled on first append (~0.1 s of pydantic schema
    building that read-only commands — verify, trace, prove — never pay)."""
    from ledgerml.ledger import events

    return events


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


def type_suffix(event_type: str) -> bytes:
    """The last bytes of every entry of `event_type`.

    The envelope's keys come in a fixed order ending with "type" and "v", so an entry's
    type is told exactly by its suffix — unlike a search for `"type":"…"` anywhere in
    the bytes, which a nested object in a free-form body can contain.
    """
    return b',"type":' + _json_str(event_type) + b',"v":1}'


def _json_str(value: str) -> bytes:
    """A JSON string in RFC 8785 form (escaping is identical for strings)."""
    if not isinstance(value, str):
        raise InputError(f"must be a string, not {type(value).__name__}", field="entry")
    return canonical_json(value, checked=True)


def _entry(
    actor: bytes, body: bytes, sigs: bytes, time_: bytes, event_type: bytes
) -> PreparedEntry:
    """An entry from its canonical parts, size-checked and leaf-hashed.

    The envelope's keys are fixed and already in RFC 8785 order (actor, body,
    sigs, time, type, v), and JCS is compositional, so the entry is the
    concatenation of canonical parts: no second encoding pass.
    """
    data = b"".join(
        (
            b'{"actor":',
            actor,
            b',"body":',
            body,
            b',"sigs":',
            sigs,
            b',"time":',
            time_,
            b',"type":',
            event_type,
            b',"v":1}',
        )
    )
    if len(data) > MAX_ENTRY_BYTES:
        raise _too_big(len(data))
    return (data, hashlib.sha256(b"\x00" + data).digest())


def _too_big(size: int, where: str = "") -> InputError:
    return InputError(
        f"{where}entry is {size:,} bytes; the limit is {MAX_ENTRY_BYTES:,} (1 MiB)", field="body"
    )


def utc_now() -> str:
    """RFC 3339 UTC time with microseconds, the `time` of an entry."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


# --- values ---------------------------------------------------------------------


@dataclass(frozen=True)
class InclusionProof:
    leaf_index: int
    tree_size: int
    leaf_hash: bytes
    hashes: tuple[bytes, ...]
    root: bytes

    def to_json(self) -> dict[str, Any]:
        return {
            "leaf_index": self.leaf_index,
            "tree_size": self.tree_size,
            "leaf_hash": self.leaf_hash.hex(),
            "hashes": [h.hex() for h in self.hashes],
            "root": self.root.hex(),
        }

    def verify(self) -> bool:
        return merkle.verify_inclusion(
            self.leaf_hash, self.leaf_index, self.tree_size, self.hashes, self.root
        )


@dataclass(frozen=True)
class ConsistencyProof:
    first: int
    second: int
    hashes: tuple[bytes, ...]
    first_root: bytes
    second_root: bytes

    def to_json(self) -> dict[str, Any]:
        return {
            "first": self.first,
            "second": self.second,
            "hashes": [h.hex() for h in self.hashes],
            "first_root": self.first_root.hex(),
            "second_root": self.second_root.hex(),
        }

    def verify(self) -> bool:
        return merkle.verify_consistency(
            self.first, self.second, self.first_root, self.second_root, self.hashes
        )


@dataclass(frozen=True)
class Checkpoint:
    origin: str
    size: int
    root: bytes

    def body(self) -> str:
        """The checkpoint note text (C2SP tlog-checkpoint), ending in a newline."""
        return f"{self.origin}\n{self.size}\n{base64.b64encode(self.root).decode()}\n"

    @classmethod
    def from_note(cls, note: str) -> Checkpoint:
        origin, size, root = parse_checkpoint_head(parse_note(note).text)
        if len(root) != _HS:
            raise VerificationError("checkpoint root is not 32 bytes")
        return cls(origin, size, root)


@dataclass(frozen=True)
class Problem:
    kind: str
    detail: str
    index: int | None = None
    checkpoint: int | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind, "detail": self.detail}
        if self.index is not None:
            out["index"] = self.index
        if self.checkpoint is not None:
            out["checkpoint"] = self.checkpoint
        return out


@dataclass(frozen=True)
class TrustedRoot:
    """A tree head held outside the operator's control (an on-chain anchor, an
    auditor's copy, a witness cosignature): the log must still be consistent
    with it, even if the operator re-signed everything locally."""

    tree_size: int
    root: bytes
    source: str


@dataclass(frozen=True)
class VerifyReport:
    tree_size: int
    root: bytes
    checkpoints_checked: int
    problems: tuple[Problem, ...]
    seconds: float = 0.0
    trusted_checked: int = 0

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "tree_size": self.tree_size,
            "root": self.root.hex(),
            "checkpoints_checked": self.checkpoints_checked,
            "trusted_roots_checked": self.trusted_checked,
            "problems": [p.to_json() for p in self.problems],
            "seconds": round(self.seconds, 3),
        }


#: An entry validated and serialised by its producer, ready to commit: (entry bytes,
#: RFC 9162 leaf hash). A plain tuple: one is built per entry on the hot path.
PreparedEntry = tuple[bytes, bytes]


@dataclass
class _Request:
    entries: list[PreparedEntry]
    future: Future[int] = field(default_factory=Future)


# --- tree edge kept in memory by the writer --------------------------------------


class _Edge:
    """The right edge of the tree: the last two tiles of each tile level."""

    def __init__(self, size: int, tiles: dict[tuple[int, int], bytes]) -> None:
        self.size = size
        # per tile level: [index of the open tile, its hashes, previous tile's hashes]
        self.levels: list[list[Any]] = []
        t = 0
        while True:
            count = size >> (HEIGHT * t)
            if count == 0 and t > 0:
                break
            tidx = count // WIDTH
            self.levels.append(
                [tidx, bytearray(tiles.get((t, tidx), b"")), tiles.get((t, tidx - 1), b"")]
            )
            if count < WIDTH:
                break
            t += 1

    @staticmethod
    def needed_tiles(size: int) -> list[tuple[int, int]]:
        keys = []
        t = 0
        while True:
            count = size >> (HEIGHT * t)
            if count == 0 and t > 0:
                break
            tidx = count // WIDTH
            keys += [(t, tidx), (t, tidx - 1)]
            if count < WIDTH:
                break
            t += 1
        return [k for k in keys if k[1] >= 0]

    def append(self, hashes: Sequence[bytes] | bytes) -> dict[tuple[int, int], bytes]:
        """Add leaf hashes (a sequence, or already concatenated); return the tiles
        (full or partial) to write."""
        dirty: dict[tuple[int, int], bytes] = {}
        data = hashes if isinstance(hashes, bytes) else b"".join(hashes)
        added = len(data) // _HS
        t = 0
        while data:
            if t == len(self.levels):
                self.levels.append([0, bytearray(), b""])
            state = self.levels[t]
            buf = bytes(state[1]) + data
            parents = []
            full_count = len(buf) // TILE_BYTES
            for f in range(full_count):
                full = buf[f * TILE_BYTES : (f + 1) * TILE_BYTES]
                dirty[(t, state[0])] = full
                parents.append(perfect_root(full))
                state[0] += 1
                state[2] = full
            rest = buf[full_count * TILE_BYTES :]
            state[1] = bytearray(rest)
            if rest:
                dirty[(t, state[0])] = rest
            data = b"".join(parents)
            t += 1
        self.size += added
        return dirty

    def _node(self, level: int, index: int) -> bytes:
        tile_level, tidx, offset, count = node_location(level, index)
        state = self.levels[tile_level]
        tile = bytes(state[1]) if tidx == state[0] else state[2]
        node = node_from_tile(tile, offset, count)
        if node is None:  # pragma: no cover - a broken invariant, fail loudly
            raise RuntimeError(f"node ({level},{index}) missing from the tree edge")
        return node

    def root(self) -> bytes:
        if self.size == 0:
            return merkle.EMPTY_ROOT
        peaks = []
        lo = 0
        for bit in range(self.size.bit_length() - 1, -1, -1):
            if self.size >> bit & 1:
                peaks.append(self._node(bit, lo >> bit))
                lo += 1 << bit
        root = peaks[-1]
        for peak in reversed(peaks[:-1]):
            root = merkle.node_hash(peak, root)
        return root


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


class Ledger:
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
    ) -> None:
        if not origin or "\n" in origin:
            raise InputError("must be a non-empty single line", field="origin")
        self.path = Path(path)
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
        self._busy_ms = int(busy_timeout_s * 1000)
        self._local = threading.local()
        self._queue: queue.Queue[_Request | None] = queue.Queue()
        self._writer: threading.Thread | None = None
        self._writer_lock = threading.Lock()
        self._closed = False
        self._process: _ProcessWriter | None = None
        self.use_writer_process = use_writer_process
        with self._connect() as conn:
            conn.executescript(_SCHEMA)
            conn.execute(
                "INSERT OR IGNORE INTO meta(key, value) VALUES ('format', ?), ('size', '0'),"
                " ('origin', ?)",
                (str(FORMAT_VERSION), origin),
            )
            stored = conn.execute("SELECT value FROM meta WHERE key='origin'").fetchone()[0]
            fmt = conn.execute("SELECT value FROM meta WHERE key='format'").fetchone()[0]
        if fmt != str(FORMAT_VERSION):
            raise InputError(
                f"{self.path} has ledger format {fmt}; this version reads {FORMAT_VERSION}",
                field="ledger",
            )
        if stored != origin:
            raise InputError(f"this ledger's origin is {stored!r}, not {origin!r}", field="origin")

    # -- connections ---------------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        conn.execute(f"PRAGMA busy_timeout={self._busy_ms}")
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        return conn

    def _reader(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._connect()
            self._local.conn = conn
        return conn

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
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    def __enter__(self) -> Ledger:
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
        _events().validate_body(event_type, body)
        if sigs:
            check_json_value(list(sigs), "sigs")
        return _entry(
            _json_str(self.actor if actor is None else actor),
            canonical_json(body, checked=True),
            canonical_json(list(sigs), checked=True),
            _json_str(time_ or utc_now()),
            _json_str(event_type),
        )

    # -- appending ----------------------------------------------------------------

    def append(self, event_type: str, body: Any, **kwargs: Any) -> int:
        """Append one entry; returns its index once it is durable."""
        return self.commit([self.prepare(event_type, body, **kwargs)])

    def append_many(self, items: Iterable[tuple[str, Any]]) -> list[int]:
        """Append many entries atomically (all or none); returns their indices.

        Every item is validated before anything is written, so one bad item
        leaves the ledger untouched.
        """
        items = list(items)
        if not items:
            return []
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

    def _prepare_batch(
        self, items: Sequence[tuple[str, Any]], *, offset: int = 0, now: str | None = None
    ) -> list[PreparedEntry]:
        """Validate and serialise items; `InputError` names the first bad item."""
        _events().validate_bodies(items, offset)
        try:
            bodies = canonical_json_many([body for _, body in items], checked=True)
        except InputError as exc:
            raise InputError(f"a body: {exc}", field="body") from None
        actor, now_json = _json_str(self.actor), _json_str(now or utc_now())
        # Same envelope as `_entry`, built from a per-batch head and a per-type tail: every
        # entry of a batch shares actor, sigs and time, so each costs two concatenations.
        head = b'{"actor":' + actor + b',"body":'
        sigs_time = b',"sigs":[],"time":' + now_json + b',"type":'
        tails: dict[str, bytes] = {}
        sha256 = hashlib.sha256
        prepared: list[PreparedEntry] = []
        append = prepared.append
        for (event_type, _), body_bytes in zip(items, bodies, strict=True):
            tail = tails.get(event_type)
            if tail is None:
                tail = tails[event_type] = sigs_time + _json_str(event_type) + b',"v":1}'
            data = head + body_bytes + tail
            if len(data) > MAX_ENTRY_BYTES:
                raise _too_big(len(data), f"item {offset + len(prepared)}: ")
            append((data, sha256(b"\x00" + data).digest()))
        return prepared

    def commit(self, entries: list[PreparedEntry]) -> int:
        """Hand prepared entries to the writer; returns the first index when durable."""
        return self.submit(entries).result()

    def submit(self, entries: list[PreparedEntry]) -> Future[int]:
        """Queue prepared entries for the writer without waiting.

        The future resolves to the first index once the batch is durable, or to the
        exception that stopped it. An event loop awaits it (`asyncio.wrap_future`)
        instead of parking a thread per request on `commit`.
        """
        request = _Request(entries)
        self._ensure_writer()
        self._queue.put(request)
        return request.future

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
                            unsaved = self._save_checkpoint(conn, unsaved)
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
                        unsaved = self._save_checkpoint(conn, unsaved)
                for req in barriers:
                    req.future.set_result(-1)
        finally:
            if unsaved is not None:
                with contextlib.suppress(sqlite3.Error):
                    self._save_checkpoint(conn, unsaved)
            conn.close()

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

    def _store_checkpoint(self, conn: sqlite3.Connection, size: int, root: bytes) -> str:
        signed = self._sign_checkpoint(size, root)
        conn.execute(_INSERT_CHECKPOINT, signed)
        return signed[2]

    @staticmethod
    def _save_checkpoint(conn: sqlite3.Connection, signed: _SignedCheckpoint) -> None:
        """Store a checkpoint in its own transaction, without an fsync of its own.

        The entries it covers are already durable, and so is the tree head it signs: if a
        power loss drops the note, `checkpoint()` signs the same tree head again (the same
        bytes with Ed25519; an ML-DSA cosignature carries a fresh timestamp). WAL order
        makes it durable with the next FULL commit.
        """
        conn.execute("PRAGMA synchronous=NORMAL")
        try:
            with _write_transaction(conn):
                conn.execute(_INSERT_CHECKPOINT, signed)
            crash_point("ledger.checkpoint.saved")
        finally:
            conn.execute("PRAGMA synchronous=FULL")
        return None

    # -- reading ------------------------------------------------------------------

    def size(self) -> int:
        row = self._reader().execute("SELECT value FROM meta WHERE key='size'").fetchone()
        return int(row[0])

    def entry(self, index: int) -> bytes:
        row = self._reader().execute("SELECT entry FROM entries WHERE idx=?", (index,)).fetchone()
        if row is None:
            raise InputError(f"no entry {index} (tree size {self.size()})", field="index")
        return bytes(row[0])

    def entries(self, start: int = 0, limit: int | None = None) -> Iterator[tuple[int, bytes]]:
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

    def _checked_size(self, size: int | None, current: int) -> int:
        if size is None:
            return current
        if not 0 <= size <= current:
            raise InputError(f"must be between 0 and the tree size {current}", field="size")
        return size

    def _range_hasher(self, conn: sqlite3.Connection) -> merkle.RangeHash:
        cache: dict[tuple[int, int], bytes] = {}

        def perfect(lo: int, hi: int) -> bytes:
            level = (hi - lo).bit_length() - 1
            tile_level, tidx, offset, count = node_location(level, lo >> level)
            tile = cache.get((tile_level, tidx))
            if tile is None:
                tile = _read_tiles(conn, [(tile_level, tidx)]).get((tile_level, tidx), b"")
                cache[(tile_level, tidx)] = tile
            node = node_from_tile(tile, offset, count)
            if node is None:
                raise VerificationError(
                    f"stored subtree hashes are incomplete at level {level} (fail closed)"
                )
            return node

        return merkle.range_hash_from_perfect(perfect)

    def root(self, size: int | None = None) -> bytes:
        conn = self._reader()
        conn.execute("BEGIN")
        try:
            size = self._checked_size(size, self.size())
            return merkle.EMPTY_ROOT if size == 0 else self._range_hasher(conn)(0, size)
        finally:
            conn.execute("COMMIT")

    def inclusion_proof(self, index: int, size: int | None = None) -> InclusionProof:
        """Proof that entry `index` is in the tree of `size` (default: current)."""
        conn = self._reader()
        conn.execute("BEGIN")  # one snapshot for size, entry and tiles
        try:
            size = self._checked_size(size, self.size())
            if not 0 <= index < size:
                raise InputError(f"must be in [0, {size})", field="index")
            rh = self._range_hasher(conn)
            hashes = tuple(merkle.inclusion_proof(index, size, rh))
            leaf = rh(index, index + 1)
            root = rh(0, size)
        finally:
            conn.execute("COMMIT")
        return InclusionProof(index, size, leaf, hashes, root)

    def consistency_proof(self, first: int, second: int | None = None) -> ConsistencyProof:
        conn = self._reader()
        conn.execute("BEGIN")
        try:
            second = self._checked_size(second, self.size())
            if not 0 <= first <= second:
                raise InputError(f"must be in [0, {second}]", field="first")
            rh = self._range_hasher(conn)
            hashes = tuple(merkle.consistency_proof(first, second, rh))
            r1 = merkle.EMPTY_ROOT if first == 0 else rh(0, first)
            r2 = merkle.EMPTY_ROOT if second == 0 else rh(0, second)
        finally:
            conn.execute("COMMIT")
        return ConsistencyProof(first, second, hashes, r1, r2)

    def checkpoint(self) -> str:
        """The signed note for the current tree; signs a fresh one if needed."""
        if not self.signers:
            raise InputError("this ledger was opened without signing keys", field="keys")
        self._flush()
        conn = self._connect()
        try:
            with _write_transaction(conn):
                size = int(conn.execute("SELECT value FROM meta WHERE key='size'").fetchone()[0])
                row = conn.execute("SELECT note FROM checkpoints WHERE size=?", (size,)).fetchone()
                if row is not None:
                    return str(row[0])
                root = merkle.EMPTY_ROOT if size == 0 else self._range_hasher(conn)(0, size)
                return self._store_checkpoint(conn, size, root)
        finally:
            conn.close()

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
    ) -> VerifyReport:
        """Recompute every leaf, every stored subtree hash and every checkpoint.

        Fails closed: a problem anywhere is reported with the first bad index or
        checkpoint and what is wrong; nothing that could not be checked passes.
        """
        started = time.perf_counter()
        self._flush()
        if workers is None:
            workers = min(4, os.cpu_count() or 1)
        conn = self._connect()
        try:
            conn.execute("BEGIN")
            return _verify(
                conn, str(self.path), self.origin, verifiers, trusted, progress, started, workers
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
    return leaves, problems, metas[-1]["expected"]  # type: ignore[return-value]


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


def _verify(
    conn: sqlite3.Connection,
    db_path: str,
    origin: str,
    verifiers: Sequence[NoteVerifier],
    trusted: Sequence[TrustedRoot],
    progress: Any,
    started: float,
    workers: int,
) -> VerifyReport:
    problems: list[Problem] = []
    size = int(conn.execute("SELECT value FROM meta WHERE key='size'").fetchone()[0])
    stored_origin = conn.execute("SELECT value FROM meta WHERE key='origin'").fetchone()[0]
    if stored_origin != origin:
        problems.append(Problem("origin", f"ledger origin {stored_origin!r} != {origin!r}"))

    # 1. Entries: contiguous indices, well-formed, leaf hash recomputed.
    top = conn.execute("SELECT COALESCE(MAX(idx) + 1, 0) FROM entries").fetchone()[0]
    if progress is not None:
        progress(0, size)
    if workers > 1 and top >= PARALLEL_VERIFY_MIN:
        leaves, raw, _ = _scan_parallel(db_path, top, workers)
    else:
        cursor = conn.execute("SELECT idx, entry FROM entries ORDER BY idx")
        leaves, raw, _ = _hash_rows(cursor, 0)
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
    stored = b"".join(
        bytes(h) for (h,) in conn.execute("SELECT hashes FROM tiles WHERE level=0 ORDER BY idx")
    )
    if stored[: len(leaves)] != leaves:
        stored_hashes = [stored[i : i + _HS] for i in range(0, len(stored), _HS)]
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
        have = b"".join(
            bytes(h)
            for (h,) in conn.execute("SELECT hashes FROM tiles WHERE level=? ORDER BY idx", (t,))
        )
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

    # 4. Every stored checkpoint: signature, fields, and consistency with the log.
    checked = 0
    for cp_size, cp_root, note in conn.execute(
        "SELECT size, root, note FROM checkpoints ORDER BY size"
    ):
        checked += 1
        try:
            verify_note(note, verifiers)
            cp = Checkpoint.from_note(note)
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
    # 5. Tree heads held by others (e.g. anchored on a chain): consistency with
    #    each one, so a log rewritten and re-signed with the operator's key fails.
    for head in trusted:
        if head.tree_size > n:
            problems.append(
                Problem(
                    "truncated",
                    f"{head.source} holds tree size {head.tree_size}, only {n} entries remain",
                    checkpoint=head.tree_size,
                    index=n,
                )
            )
        elif root_at(head.tree_size) != head.root:
            problems.append(
                Problem(
                    "anchor_mismatch",
                    f"the log's first {head.tree_size} entries do not hash to the root "
                    f"{head.root.hex()[:16]}… held by {head.source}",
                    checkpoint=head.tree_size,
                )
            )
    root = root_at(n) if n and n <= size else merkle.EMPTY_ROOT
    problems.sort(key=lambda p: (p.index if p.index is not None else 1 << 62, p.kind))
    return VerifyReport(
        n, root, checked, tuple(problems), time.perf_counter() - started, len(trusted)
    )
