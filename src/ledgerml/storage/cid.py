"""CIDv1 content identifiers, byte-identical to `ipfs add --cid-version 1`.

Why by hand: the dag-pb and UnixFS encodings are tiny, and writing them here
keeps the hot path (hashing a multi-GiB artifact) free of per-chunk object
overhead. `multiformats` is used to parse and validate CIDs coming from users.

The importer being mirrored (kubo with `--cid-version 1`, which implies
`--raw-leaves`, and js `ipfs-unixfs-importer` defaults):

* the file is cut into 262,144-byte chunks; each chunk is a raw block
  (codec 0x55) whose CID is `bafkrei…`;
* a file of one chunk (including the empty file, which is one empty chunk)
  *is* that raw block;
* otherwise leaves are grouped 174 at a time under dag-pb nodes (codec 0x70)
  carrying UnixFS `Data{Type=File, filesize, blocksizes…}`, and those nodes are
  grouped again, level by level, until one root remains (`bafybei…`).

Usage::

    from ledgerml.storage.cid import cid_of_file, cid_of_bytes
    cid_of_bytes(b"")          # 'bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku'
    cid_of_file("model.bin")   # 'bafybei…' for anything over 256 KiB

`DagBuilder` is the streaming core: feed it chunks, it emits every block once
(leaves first, parents after their children) and holds at most 174 links per
tree level, so memory is constant whatever the file size.
"""

from __future__ import annotations

import base64
import hashlib
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from ledgerml.errors import InputError

CHUNK_SIZE = 262_144
MAX_LINKS = 174

CODEC_RAW = 0x55
CODEC_DAG_PB = 0x70
SHA2_256 = 0x12

_RAW_PREFIX = bytes([0x01, CODEC_RAW, SHA2_256, 0x20])
_PB_PREFIX = bytes([0x01, CODEC_DAG_PB, SHA2_256, 0x20])

#: characters in a canonical CID string: "b" + base32 of the 4-byte prefix and 32-byte digest
_CANONICAL_LEN = 1 + 58

# UnixFS Data.DataType values (unixfs.proto).
UNIXFS_RAW = 0
UNIXFS_FILE = 2

#: How many bytes `cid_of_file` / `BlockStore.add_file` read per system call.
READ_SIZE = 64 * CHUNK_SIZE


# --- CID bytes and strings ------------------------------------------------------


def cid_bytes(codec: int, digest: bytes) -> bytes:
    """Binary CIDv1 for a sha2-256 digest (only raw and dag-pb are produced here)."""
    return (_RAW_PREFIX if codec == CODEC_RAW else _PB_PREFIX) + digest


def cid_str(raw: bytes) -> str:
    """Multibase base32 (lower case, no padding) of a binary CID: the `b…` form."""
    return "b" + base64.b32encode(raw).decode("ascii").rstrip("=").lower()


@dataclass(frozen=True)
class ParsedCID:
    """A validated CID: the canonical v1 base32 string plus what verification needs."""

    cid: str
    codec: int
    digest: bytes

    @property
    def raw(self) -> bytes:
        return cid_bytes(self.codec, self.digest)


def _parse_canonical(text: str) -> ParsedCID | None:
    """The CIDs this store writes (`bafkrei…`, `bafybei…`: v1, base32, sha2-256, raw or
    dag-pb) without multiformats, which takes 0.47 ms a CID, on every block read; None for
    any other spelling, which `parse_cid` then validates in full."""
    if not isinstance(text, str) or len(text) != _CANONICAL_LEN or not text.startswith("b"):
        return None
    try:
        raw = base64.b32decode(text[1:].upper() + "======")  # 58 characters + 6 = 64
    except ValueError:
        return None
    codec = CODEC_RAW if raw[:4] == _RAW_PREFIX else CODEC_DAG_PB if raw[:4] == _PB_PREFIX else 0
    if not codec or cid_str(raw) != text:  # one spelling only: lower case, no padding
        return None
    return ParsedCID(text, codec, raw[4:])


def parse_cid(text: str) -> ParsedCID:
    """Validate a user-supplied CID; CIDv0 (`Qm…`) is accepted and returned as v1.

    Only sha2-256 over raw or dag-pb blocks is supported: anything else cannot be
    verified here, so it is refused rather than trusted.
    """
    return _parse_canonical(text) or _parse_any(text)


def _parse_any(text: str) -> ParsedCID:
    """Every spelling multiformats reads, validated in full (`parse_cid`)."""
    from multiformats import CID

    if not isinstance(text, str) or not text.strip():
        raise InputError("empty CID", field="cid")
    text = text.strip()
    try:
        parsed = CID.decode(text)
    except Exception as exc:  # multiformats raises several unrelated types
        raise InputError(f"malformed CID {text!r}: {exc}", field="cid") from None
    if parsed.hashfun.name != "sha2-256":
        raise InputError(
            f"unsupported hash {parsed.hashfun.name} in {text!r} (only sha2-256)", field="cid"
        )
    codec = parsed.codec.code
    if codec not in (CODEC_RAW, CODEC_DAG_PB):
        raise InputError(
            f"unsupported codec {parsed.codec.name} in {text!r} (only raw and dag-pb)",
            field="cid",
        )
    digest = bytes(parsed.raw_digest)
    if len(digest) != 32:
        raise InputError(f"truncated sha2-256 digest in {text!r}", field="cid")
    return ParsedCID(cid_str(cid_bytes(codec, digest)), codec, digest)


# --- protobuf (the handful of wire types dag-pb and UnixFS use) -----------------


def _varint(n: int) -> bytes:
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _read_varint(buf: bytes | memoryview, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(buf) or shift > 63:
            raise ValueError("truncated or overlong varint")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7


def _fields(buf: bytes | memoryview) -> Iterator[tuple[int, int, int | bytes]]:
    """Yield (field number, wire type, value) for varint and length-delimited fields."""
    pos = 0
    while pos < len(buf):
        key, pos = _read_varint(buf, pos)
        num, wt = key >> 3, key & 7
        if wt == 0:
            val, pos = _read_varint(buf, pos)
            yield num, wt, val
        elif wt == 2:
            n, pos = _read_varint(buf, pos)
            if pos + n > len(buf):
                raise ValueError("truncated length-delimited field")
            yield num, wt, bytes(buf[pos : pos + n])
            pos += n
        else:
            raise ValueError(f"unsupported protobuf wire type {wt}")


def encode_unixfs_file(filesize: int, blocksizes: Iterable[int], data: bytes = b"") -> bytes:
    """UnixFS `Data` message, fields in number order like both reference importers."""
    out = bytearray(b"\x08\x02")  # Type = File
    if data:
        out += b"\x12" + _varint(len(data)) + data
    out += b"\x18" + _varint(filesize)
    for size in blocksizes:
        out += b"\x20" + _varint(size)
    return bytes(out)


def encode_dag_pb(links: Iterable[tuple[bytes, int]], data: bytes) -> bytes:
    """dag-pb `PBNode`: links (Hash, empty Name, Tsize) first, then Data — the canonical order."""
    out = bytearray()
    for hash_bytes, tsize in links:
        link = b"\x0a" + _varint(len(hash_bytes)) + hash_bytes + b"\x12\x00\x18" + _varint(tsize)
        out += b"\x12" + _varint(len(link)) + link
    out += b"\x0a" + _varint(len(data)) + data
    return bytes(out)


@dataclass(frozen=True)
class PBLink:
    cid: bytes  # binary CID
    tsize: int | None


@dataclass(frozen=True)
class UnixFSFile:
    """What reassembly needs from a dag-pb file node: inline data and child links."""

    data: bytes
    links: tuple[PBLink, ...]
    filesize: int | None
    blocksizes: tuple[int, ...] = field(default=())


def decode_file_node(block: bytes) -> UnixFSFile:
    """Parse a dag-pb block holding a UnixFS file (or raw) node; ValueError if it is not one."""
    links: list[PBLink] = []
    data: bytes | None = None
    for num, wt, val in _fields(block):
        if num == 2 and wt == 2:
            assert isinstance(val, bytes)
            h: bytes | None = None
            tsize: int | None = None
            for lnum, lwt, lval in _fields(val):
                if lnum == 1 and lwt == 2:
                    h = lval  # type: ignore[assignment]
                elif lnum == 3 and lwt == 0:
                    tsize = lval  # type: ignore[assignment]
            if h is None:
                raise ValueError("dag-pb link without a hash")
            links.append(PBLink(h, tsize))
        elif num == 1 and wt == 2:
            data = val  # type: ignore[assignment]
        else:
            raise ValueError(f"unexpected dag-pb field {num}")
    if data is None:
        raise ValueError("dag-pb node without UnixFS data")
    utype: int | None = None
    inline = b""
    filesize: int | None = None
    blocksizes: list[int] = []
    for num, wt, val in _fields(data):
        if num == 1 and wt == 0:
            utype = val  # type: ignore[assignment]
        elif num == 2 and wt == 2:
            inline = val  # type: ignore[assignment]
        elif num == 3 and wt == 0:
            filesize = val  # type: ignore[assignment]
        elif num == 4 and wt == 0:
            blocksizes.append(val)  # type: ignore[arg-type]
    if utype not in (UNIXFS_RAW, UNIXFS_FILE):
        raise ValueError(f"UnixFS node of type {utype} is not a file")
    return UnixFSFile(inline, tuple(links), filesize, tuple(blocksizes))


# --- the streaming balanced DAG -------------------------------------------------

#: Called once per block: (binary CID, block bytes). Leaves are passed as the
#: caller's memoryview, valid only during the call.
BlockSink = Callable[[bytes, "bytes | memoryview"], None]


class DagBuilder:
    """Builds the balanced UnixFS DAG chunk by chunk, emitting each block to `sink`.

    Each tree level keeps at most `MAX_LINKS` pending links; a full level is folded
    into a parent at once, so memory stays bounded (a few KiB per level).
    """

    def __init__(self, sink: BlockSink | None = None, *, max_links: int = MAX_LINKS) -> None:
        if max_links < 2:
            raise InputError("must be at least 2", field="max_links")
        self._sink = sink
        self._max_links = max_links
        # Per level: list of (binary cid, tsize, content size).
        self._levels: list[list[tuple[bytes, int, int]]] = [[]]
        self._sha = hashlib.sha256
        self.size = 0

    def add_chunk(self, chunk: bytes | memoryview) -> None:
        """Add one chunk (every chunk but the last exactly the chunk size); emits the leaf."""
        digest = self._sha(chunk).digest()
        if self._sink is not None:
            self._sink(_RAW_PREFIX + digest, chunk)
        self.add_leaf_digest(digest, len(chunk))

    def add_leaf_digest(self, digest: bytes, size: int) -> None:
        """Add a leaf the caller already hashed and stored (the parallel add path)."""
        self.size += size
        level0 = self._levels[0]
        level0.append((_RAW_PREFIX + digest, size, size))
        if len(level0) == self._max_links:
            self._fold(0)

    def _fold(self, level: int) -> None:
        links = self._levels[level]
        self._levels[level] = []
        node = encode_dag_pb(
            ((c, t) for c, t, _ in links),
            encode_unixfs_file(sum(s for _, _, s in links), (s for _, _, s in links)),
        )
        raw = _PB_PREFIX + self._sha(node).digest()
        if self._sink is not None:
            self._sink(raw, node)
        entry = (raw, len(node) + sum(t for _, t, _ in links), sum(s for _, _, s in links))
        if level + 1 == len(self._levels):
            self._levels.append([])
        parent = self._levels[level + 1]
        parent.append(entry)
        if len(parent) == self._max_links:
            self._fold(level + 1)

    def finish(self) -> bytes:
        """Close every level and return the root's binary CID."""
        if self.size == 0 and not self._levels[0] and len(self._levels) == 1:
            self.add_chunk(b"")  # the empty file is one empty raw leaf
        level = 0
        while True:
            pending = self._levels[level]
            above = any(self._levels[level + 1 :])
            if not above and len(pending) == 1:
                return pending[0][0]
            if pending:
                self._fold(level)
            level += 1


def iter_chunks(path: str | os.PathLike[str], read_size: int = READ_SIZE) -> Iterator[memoryview]:
    """Yield the file's 256 KiB chunks as views into one reused buffer (no copies)."""
    buf = bytearray(read_size)
    view = memoryview(buf)
    with open(path, "rb", buffering=0) as fh:
        while True:
            n = fh.readinto(buf)
            if not n:
                return
            # A short read mid-file is legal: top up until the buffer is full or EOF,
            # so chunk boundaries never depend on how the OS split the reads.
            while n < read_size:
                m = fh.readinto(view[n:])
                if not m:
                    break
                n += m
            for off in range(0, n, CHUNK_SIZE):
                yield view[off : min(off + CHUNK_SIZE, n)]
            if n < read_size:
                return


def cid_of_stream(
    pieces: Iterable[bytes | memoryview],
    sink: BlockSink | None = None,
    *,
    chunk_size: int = CHUNK_SIZE,
    max_links: int = MAX_LINKS,
) -> str:
    """CID of the byte stream made of `pieces` of any length (re-cut into chunks).

    `chunk_size` and `max_links` exist to test deep trees on small data; the
    defaults are the ones `ipfs add --cid-version 1` uses.
    """
    builder = DagBuilder(sink, max_links=max_links)
    pending = bytearray()
    for piece in pieces:
        if not pending and len(piece) == chunk_size:
            builder.add_chunk(piece)
            continue
        pending += piece
        while len(pending) >= chunk_size:
            builder.add_chunk(bytes(pending[:chunk_size]))
            del pending[:chunk_size]
    if pending:
        builder.add_chunk(bytes(pending))
    return cid_str(builder.finish())


def cid_of_bytes(data: bytes) -> str:
    """CID of an in-memory byte string."""
    view = memoryview(data)
    return cid_of_stream(view[i : i + CHUNK_SIZE] for i in range(0, len(data), CHUNK_SIZE))


def cid_of_file(path: str | os.PathLike[str]) -> str:
    """CID of a file, streamed in constant memory."""
    p = Path(path)
    if not p.is_file():
        raise InputError(f"not a readable file: {p}", field="path")
    builder = DagBuilder()
    for chunk in iter_chunks(p):
        builder.add_chunk(chunk)
    return cid_str(builder.finish())
