"""The local content-addressed blockstore under `<project>/blocks/`.

Layout (flatfs-like, so a directory never holds more than ~1/1024 of the blocks)::

    blocks/<xy>/<cid>      one block, named by its CIDv1 base32; <xy> = cid[-3:-1]
                           (kubo flatfs "next-to-last/2": the leading "bafk"/"bafy"
                           would put every block in the same folder)
    blocks/_roots/<cid>    one JSON line {"size": N} per file added (what `ls` shows)
    blocks/_pins/<cid>     empty marker: pinned
    blocks/_tmp/           temporary files; a block is written there, made durable,
                           then renamed into place, so no reader sees half a block

Reads are never trusted: every block is re-hashed and a mismatch raises
`IntegrityError` naming the CID (fail closed). When an IPFS node is configured,
adds are mirrored to it and its CID must equal ours, and blocks missing locally
are fetched from it (and verified) on read.

Durability (`sync`): "block" (default) fsyncs every block before its rename;
"batch" skips per-block fsync and flushes the filesystem once (syncfs) before
the root is recorded — about twice as fast on this kind of disk; a crash can
then leave a torn block, which reads detect and `verify` reports.
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import io
import json
import os
import tempfile
import threading
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, Literal

from ledgerml.errors import InputError, IntegrityError
from ledgerml.storage.cid import (
    _RAW_PREFIX,
    CHUNK_SIZE,
    CODEC_DAG_PB,
    CODEC_RAW,
    READ_SIZE,
    BlockSink,
    DagBuilder,
    ParsedCID,
    cid_str,
    decode_file_node,
    parse_cid,
)

if TYPE_CHECKING:  # httpx loads only when a project configures an IPFS node
    from ledgerml.storage.ipfs import IpfsClient

SyncMode = Literal["block", "batch"]

#: In "batch" mode, start a background filesystem flush after this many new bytes.
FLUSH_EVERY = 128 << 20

#: `write_verified` holds a file this big in memory before spilling to a temporary file.
SPOOL_MAX = 64 << 20


@dataclass(frozen=True)
class AddResult:
    """What an add returns: the root CID and the file's size in bytes."""

    cid: str
    size: int


@dataclass(frozen=True)
class StoredFile:
    """One file added to the store (an `ls` row)."""

    cid: str
    size: int
    pinned: bool


def _syncfs(path: Path) -> None:
    """Flush the whole filesystem holding `path` (one barrier instead of one per block)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        if getattr(libc, "syncfs", None) is None or libc.syncfs(fd) != 0:
            os.sync()
    except OSError:
        os.sync()
    finally:
        os.close(fd)


class BlockStore:
    """Content-addressed blocks on disk; see the module docstring for the layout."""

    def __init__(
        self,
        root: str | os.PathLike[str],
        *,
        ipfs: IpfsClient | None = None,
        sync: SyncMode = "block",
        workers: int | None = None,
    ) -> None:
        if sync not in ("block", "batch"):
            raise InputError(f"must be 'block' or 'batch', not {sync!r}", field="sync")
        self.root = Path(root)
        self.ipfs = ipfs
        self.sync: SyncMode = sync
        # Hashing and writing release the GIL; fsync waits are I/O, so more help there.
        self.workers = workers or (8 if sync == "block" else 2)
        self._tmp = self.root / "_tmp"
        self._roots = self.root / "_roots"
        self._pins = self.root / "_pins"
        self._made_dirs: set[str] = set()
        self._lock = threading.Lock()

    # -- paths ----------------------------------------------------------------------
    def _ensure_layout(self) -> None:
        for d in (self.root, self._tmp, self._roots, self._pins):
            d.mkdir(parents=True, exist_ok=True)

    def _shard(self, cid: str) -> str:
        return os.path.join(self.root, cid[-3:-1])

    def _block_path(self, cid: str) -> str:
        return os.path.join(self.root, cid[-3:-1], cid)

    # -- writing --------------------------------------------------------------------
    def _write_atomic(self, final: str, data: bytes | memoryview, *, fsync: bool) -> None:
        """Temp file, optional fsync, rename: a reader sees the whole block or nothing."""
        shard = os.path.dirname(final)
        if shard not in self._made_dirs:
            os.makedirs(shard, exist_ok=True)
            with self._lock:
                self._made_dirs.add(shard)
        tmp = os.path.join(
            self._tmp, f"{os.path.basename(final)}.{os.getpid()}.{threading.get_ident()}.tmp"
        )
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            if fsync:
                os.fsync(fd)
        except BaseException:
            os.close(fd)
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        os.close(fd)
        os.replace(tmp, final)

    def _put(self, cid: str, data: bytes | memoryview) -> bool:
        """Store one block unless present (dedup); True when it was newly written."""
        path = self._block_path(cid)
        if os.path.exists(path):
            return False
        self._write_atomic(path, data, fsync=self.sync == "block")
        return True

    def _put_leaf(self, chunk: memoryview) -> tuple[bytes, str, bool]:
        digest = hashlib.sha256(chunk).digest()
        cid = cid_str(_RAW_PREFIX + digest)
        return digest, cid, self._put(cid, chunk)

    def _finish_durability(self, new_blocks: list[str]) -> None:
        if not new_blocks:
            return
        if self.sync == "batch":
            _syncfs(self.root)
            return
        # Blocks are fsynced; make their renames durable too.
        for shard in {self._shard(c) for c in new_blocks} | {str(self.root)}:
            fd = os.open(shard, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)

    def _record_root(self, result: AddResult, *, pin: bool) -> None:
        self._write_atomic(
            os.path.join(self._roots, result.cid),
            json.dumps({"size": result.size}).encode() + b"\n",
            fsync=True,
        )
        if pin:
            self._write_atomic(os.path.join(self._pins, result.cid), b"", fsync=True)

    def _rollback(self, new_blocks: list[str]) -> None:
        for cid in new_blocks:
            with contextlib.suppress(OSError):
                os.unlink(self._block_path(cid))

    def add_file(
        self,
        path: str | os.PathLike[str],
        *,
        pin: bool = True,
        progress: Callable[[int], None] | None = None,
    ) -> AddResult:
        """Chunk, hash and store a file (streamed; 2 read buffers of 16 MiB at most).

        With an IPFS node configured the file is also added there, and a CID that
        differs from ours fails the add and removes the blocks it wrote.
        `progress(n)` is called with each batch of bytes hashed and stored.
        """
        p = Path(path)
        if not p.exists():
            raise InputError(f"no such file: {p}", field="path")
        if not p.is_file():
            raise InputError(f"not a regular file: {p}", field="path")
        try:
            fh = open(p, "rb", buffering=0)  # noqa: SIM115 - closed in finally
        except OSError as exc:
            raise InputError(f"cannot read {p}: {exc.strerror}", field="path") from None
        self._ensure_layout()
        new_blocks: list[str] = []
        builder = DagBuilder(self._node_sink(new_blocks))
        inflight: deque[tuple[memoryview, list[Future[tuple[bytes, str, bool]]]]] = deque()
        free = [bytearray(READ_SIZE), bytearray(READ_SIZE)]
        ok = False
        # "batch" mode: start flushing what is written so far every FLUSH_EVERY bytes, in
        # the background, so the disk works while we hash; the final flush is then short.
        flusher = ThreadPoolExecutor(1) if self.sync == "batch" else None
        flushes: list[Future[None]] = []
        unflushed = 0
        try:
            with ThreadPoolExecutor(self.workers) as pool:

                def drain_one() -> None:
                    view, futures = inflight.popleft()
                    for fut, off in zip(futures, range(0, len(view), CHUNK_SIZE), strict=True):
                        digest, cid, created = fut.result()
                        if created:
                            new_blocks.append(cid)
                        builder.add_leaf_digest(digest, min(CHUNK_SIZE, len(view) - off))
                    if progress is not None:
                        progress(len(view))
                    free.append(view.obj)  # type: ignore[arg-type]

                eof = False
                while not eof:
                    if not free:
                        drain_one()
                    buf = free.pop()
                    n = _read_full(fh, buf)
                    eof = n < len(buf)
                    if n == 0:
                        free.append(buf)
                        break
                    view = memoryview(buf)[:n]
                    futures = [
                        pool.submit(self._put_leaf, view[off : off + CHUNK_SIZE])
                        for off in range(0, n, CHUNK_SIZE)
                    ]
                    inflight.append((view, futures))
                    unflushed += n
                    if flusher is not None and unflushed >= FLUSH_EVERY:
                        unflushed = 0
                        if not flushes or flushes[-1].done():
                            flushes.append(flusher.submit(_syncfs, self.root))
                while inflight:
                    drain_one()
            for fut in flushes:
                fut.result()
            root = cid_str(builder.finish())  # the empty file's leaf goes through the sink
            result = AddResult(root, builder.size)
            self._finish_durability(new_blocks)
            if self.ipfs is not None:
                remote = self.ipfs.add_file(p)
                if remote != root:
                    raise IntegrityError(
                        f"IPFS node {self.ipfs.api} computed CID {remote} for {p}, "
                        f"we computed {root}: refusing the add"
                    )
            self._record_root(result, pin=pin)
            ok = True
            return result
        finally:
            fh.close()
            if flusher is not None:
                flusher.shutdown(wait=True)
            if not ok:
                self._rollback(new_blocks)

    def add_bytes(self, data: bytes | bytearray | memoryview, *, pin: bool = True) -> AddResult:
        """Store an in-memory byte string (same CID as a file with these bytes)."""
        if not isinstance(data, bytes | bytearray | memoryview):
            raise InputError(f"expected bytes, got {type(data).__name__}", field="data")
        self._ensure_layout()
        new_blocks: list[str] = []
        ok = False

        try:
            builder = DagBuilder(self._node_sink(new_blocks))
            view = memoryview(data)
            for off in range(0, len(view), CHUNK_SIZE):
                builder.add_chunk(view[off : off + CHUNK_SIZE])
            root = cid_str(builder.finish())
            result = AddResult(root, len(view))
            self._finish_durability(new_blocks)
            if self.ipfs is not None:
                remote = self.ipfs.add_bytes(bytes(data))
                if remote != root:
                    raise IntegrityError(
                        f"IPFS node {self.ipfs.api} computed CID {remote}, we computed {root}: "
                        "refusing the add"
                    )
            self._record_root(result, pin=pin)
            ok = True
            return result
        finally:
            if not ok:
                self._rollback(new_blocks)

    def _node_sink(self, new_blocks: list[str]) -> BlockSink:
        """Store each emitted block (dedup) and remember which ones are new, for rollback."""

        def sink(raw: bytes, block: bytes | memoryview) -> None:
            cid = cid_str(raw)
            if self._put(cid, block):
                new_blocks.append(cid)

        return sink

    # -- reading --------------------------------------------------------------------
    def has(self, cid: str) -> bool:
        """Whether the block is present locally (not whether it is intact: see `verify`)."""
        return os.path.exists(self._block_path(parse_cid(cid).cid))

    def _read_verified(self, parsed: ParsedCID, *, root: str | None = None) -> bytes:
        """The block's bytes after checking them against the CID; fetch from IPFS if absent."""
        path = self._block_path(parsed.cid)
        try:
            with open(path, "rb") as fh:
                data = fh.read()
        except FileNotFoundError:
            data = self._fetch_remote(parsed, root=root)
        if hashlib.sha256(data).digest() != parsed.digest:
            raise IntegrityError(f"block {parsed.cid} is corrupt: its bytes do not hash to its CID")
        return data

    def _fetch_remote(self, parsed: ParsedCID, *, root: str | None) -> bytes:
        if self.ipfs is None:
            if root is None or root == parsed.cid:
                raise InputError(f"{parsed.cid} not in store", field="cid")
            raise IntegrityError(f"block {parsed.cid} of {root} is missing from the store")
        data = self.ipfs.block_get(parsed.cid)
        if hashlib.sha256(data).digest() != parsed.digest:
            raise IntegrityError(
                f"block {parsed.cid} from IPFS node {self.ipfs.api} does not hash to its CID"
            )
        self._ensure_layout()
        self._put(parsed.cid, data)  # cache the verified block locally
        return data

    def get_block(self, cid: str) -> bytes:
        """One verified block."""
        return self._read_verified(parse_cid(cid))

    def cat(self, cid: str) -> Iterator[bytes]:
        """The file's bytes, block by block, each verified before it is yielded.

        The root is checked before the first byte goes out, so a bad or unknown
        CID raises at the first `next()`; a corrupt block further down raises
        `IntegrityError` mid-stream (consumers must treat output as void then).
        """
        parsed = parse_cid(cid)
        yield from self._walk(parsed, parsed.cid)

    def _walk(self, parsed: ParsedCID, root: str) -> Iterator[bytes]:
        data = self._read_verified(parsed, root=root)
        if parsed.codec == CODEC_RAW:
            yield data
            return
        try:
            node = decode_file_node(data)
            children = [parse_cid(cid_str(link.cid)) for link in node.links]
        except (ValueError, InputError) as exc:
            raise IntegrityError(f"block {parsed.cid} is not a UnixFS file node: {exc}") from None
        produced = len(node.data)
        if node.data:
            yield node.data
        for child in children:
            for piece in self._walk(child, root):
                produced += len(piece)
                yield piece
        if node.filesize is not None and produced != node.filesize:
            raise IntegrityError(
                f"block {parsed.cid} declares {node.filesize} bytes but its DAG holds {produced}"
            )

    def write_verified(self, cid: str, out: BinaryIO, *, spool_max: int = SPOOL_MAX) -> int:
        """Copy a file to `out` only once every block of it has verified; returns its size.

        `cat` verifies block by block, so a consumer that writes as it goes has
        already passed on the good first chunk when the second turns out corrupt
        (`store cat` did). Here nothing reaches `out` before the whole DAG checked:
        the bytes wait in memory up to `spool_max`, beyond that in an unlinked
        temporary file (owner-only), never all in memory.
        """
        size = 0
        with tempfile.SpooledTemporaryFile(max_size=spool_max) as spool:
            for piece in self.cat(cid):
                spool.write(piece)
                size += len(piece)
            spool.seek(0)
            while piece := spool.read(CHUNK_SIZE):
                out.write(piece)
        out.flush()
        return size

    def open(self, cid: str) -> io.BufferedReader:
        """A read-only binary file object over `cat` (for loaders that want `.read()`)."""
        return io.BufferedReader(_CatReader(self.cat(cid)), buffer_size=CHUNK_SIZE)

    def read_bytes(self, cid: str) -> bytes:
        """The whole file in memory (small artifacts only)."""
        return b"".join(self.cat(cid))

    def export(self, cid: str, dest: str | os.PathLike[str]) -> AddResult:
        """Write a file out atomically: all blocks verified, or no file at `dest`."""
        dest_p = Path(dest)
        tmp = dest_p.with_name(f".{dest_p.name}.{os.getpid()}.tmp")
        size = 0
        try:
            with open(tmp, "wb") as fh:
                for piece in self.cat(cid):
                    fh.write(piece)
                    size += len(piece)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, dest_p)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        return AddResult(parse_cid(cid).cid, size)

    # -- listing, pins, verification ------------------------------------------------
    def _require_present(self, parsed: ParsedCID) -> None:
        if not os.path.exists(self._block_path(parsed.cid)):
            raise InputError(f"{parsed.cid} not in store", field="cid")

    def pin(self, cid: str) -> str:
        """Pin a stored root (and on the IPFS node too when one is configured)."""
        parsed = parse_cid(cid)
        self._require_present(parsed)
        self._ensure_layout()
        if self.ipfs is not None:
            self.ipfs.pin_add(parsed.cid)
        self._write_atomic(os.path.join(self._pins, parsed.cid), b"", fsync=True)
        return parsed.cid

    def unpin(self, cid: str) -> str:
        """Remove a local pin; unknown pins are an input error, not silently ignored."""
        parsed = parse_cid(cid)
        try:
            os.unlink(os.path.join(self._pins, parsed.cid))
        except FileNotFoundError:
            raise InputError(f"{parsed.cid} is not pinned", field="cid") from None
        return parsed.cid

    def pins(self) -> list[str]:
        """Pinned CIDs, sorted."""
        if not self._pins.is_dir():
            return []
        return sorted(n for n in os.listdir(self._pins) if not n.startswith("."))

    def ls(self) -> list[StoredFile]:
        """Every file added (roots), sorted by CID, with size and pin state."""
        if not self._roots.is_dir():
            return []
        pinned = set(self.pins())
        out: list[StoredFile] = []
        for name in sorted(os.listdir(self._roots)):
            try:
                size = int(json.loads((self._roots / name).read_text())["size"])
            except (OSError, ValueError, KeyError, TypeError):
                size = -1
            out.append(StoredFile(name, size, name in pinned))
        return out

    def iter_blocks(self) -> Iterator[tuple[str, str]]:
        """(file name, path) of every block file on disk."""
        if not self.root.is_dir():
            return
        for shard in sorted(os.listdir(self.root)):
            shard_path = os.path.join(self.root, shard)
            if len(shard) != 2 or not os.path.isdir(shard_path):
                continue
            for name in sorted(os.listdir(shard_path)):
                yield name, os.path.join(shard_path, name)

    def verify(self) -> list[str]:
        """Re-hash every block and walk every root; return the CIDs that fail, sorted.

        A CID is listed when its block's bytes no longer match it, when its file
        is misplaced or misnamed, or when a root needs it and it is missing.
        """
        bad: set[str] = set()
        for name, path in self.iter_blocks():
            try:
                parsed = parse_cid(name)
            except InputError:
                bad.add(name)
                continue
            if parsed.cid != name or self._block_path(name) != path:
                bad.add(name)
                continue
            h = hashlib.sha256()
            with open(path, "rb") as fh:
                while piece := fh.read(1 << 20):
                    h.update(piece)
            if h.digest() != parsed.digest:
                bad.add(name)
        for stored in self.ls():
            bad.update(self._missing_under(stored.cid, bad))
        return sorted(bad)

    def _missing_under(self, root: str, known_bad: set[str]) -> set[str]:
        """CIDs reachable from `root` whose blocks are absent (dag-pb nodes parsed only)."""
        missing: set[str] = set()
        stack = [root]
        while stack:
            cid = stack.pop()
            path = self._block_path(cid)
            if not os.path.exists(path):
                missing.add(cid)
                continue
            if cid in known_bad or parse_cid(cid).codec != CODEC_DAG_PB:
                continue
            with open(path, "rb") as fh:
                data = fh.read()
            try:
                node = decode_file_node(data)
            except ValueError:
                missing.add(cid)
                continue
            stack.extend(cid_str(link.cid) for link in node.links)
        return missing


class _CatReader(io.RawIOBase):
    """Raw stream over an iterator of verified pieces; raises what the iterator raises."""

    def __init__(self, pieces: Iterator[bytes]) -> None:
        self._pieces = pieces
        self._current = memoryview(b"")

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while not self._current:
            piece = next(self._pieces, None)
            if piece is None:
                return 0
            self._current = memoryview(piece)
        out = memoryview(buffer).cast("B")
        n = min(len(out), len(self._current))
        out[:n] = self._current[:n]
        self._current = self._current[n:]
        return n


def _read_full(fh: object, buf: bytearray) -> int:
    """Fill `buf` unless EOF comes first; short reads are retried so chunking is exact."""
    view = memoryview(buf)
    n = 0
    while n < len(buf):
        m = fh.readinto(view[n:])  # type: ignore[attr-defined]
        if not m:
            break
        n += m
    return n
