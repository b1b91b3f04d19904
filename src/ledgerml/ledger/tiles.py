"""Stored subtree hashes ("tiles"), so proofs never recompute the tree.

A tile at tile level `t` and index `k` holds the hashes of the Merkle nodes at
tree level `HEIGHT*t` with indices `[WIDTH*k, WIDTH*k + WIDTH)`, concatenated;
the right-most tile of a level may be partial. This is the layout of C2SP
`tlog-tiles` with height 4 instead of 8: a height-8 tile is the concatenation
of 16 consecutive height-4 tiles at even tile levels, so the standard read
endpoints can be served from these rows. Any node at tree level `HEIGHT*t + j`
is the root of `2**j ≤ 8` consecutive hashes inside one tile.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

from ledgerml.ledger.merkle import HASH_SIZE

HEIGHT = 4
WIDTH = 1 << HEIGHT
TILE_BYTES = WIDTH * HASH_SIZE


def perfect_root(hashes: bytes) -> bytes:
    """Root of a perfect subtree given its 2**j level-ordered hashes, concatenated.

    Sibling pairs are adjacent 64-byte slices, so each node is one SHA-256 over
    0x01 ‖ slice: no per-hash lists or concatenations of two halves.
    """
    sha = hashlib.sha256
    level = hashes
    while len(level) > HASH_SIZE:
        level = b"".join(
            [sha(b"\x01" + level[i : i + 64]).digest() for i in range(0, len(level), 64)]
        )
    return level


def node_location(level: int, index: int) -> tuple[int, int, int, int]:
    """Where node (level, index) lives: (tile level, tile index, first offset, count)."""
    tile_level, j = divmod(level, HEIGHT)
    first = index << j  # index of the first covered node at level HEIGHT*tile_level
    return tile_level, first // WIDTH, first % WIDTH, 1 << j


def node_from_tile(tile: bytes, offset: int, count: int) -> bytes | None:
    """The node covering `count` hashes from `offset` in a tile, or None if absent."""
    start, end = offset * HASH_SIZE, (offset + count) * HASH_SIZE
    if len(tile) < end:
        return None
    if count == 1:
        return tile[start:end]
    return perfect_root(tile[start:end])


def perfect_ranges_to_nodes(ranges: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
    """(level, index) of each perfect leaf range [lo, hi)."""
    out = []
    for lo, hi in ranges:
        size = hi - lo
        level = size.bit_length() - 1
        out.append((level, lo >> level))
    return out
