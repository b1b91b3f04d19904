"""RFC 9162 (Certificate Transparency v2) Merkle tree hashing and proofs. No I/O.

    leaf hash  = SHA-256(0x00 ‖ entry)
    node hash  = SHA-256(0x01 ‖ left ‖ right)
    MTH(D[n])  splits at k, the largest power of two smaller than n (§2.1.1)

Proof *generation* here is expressed over ranges `[lo, hi)` of leaves whose
hashes the caller supplies (`range_hash`), so the ledger can answer from stored
subtree hashes in O(log n) while tests answer from a plain list of leaves.
Verification follows §2.1.3.2 and §2.1.4.2 exactly.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence

HASH_SIZE = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()

RangeHash = Callable[[int, int], bytes]


def leaf_hash(entry: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + entry).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def split_point(n: int) -> int:
    """The largest power of two strictly smaller than n (n ≥ 2)."""
    if n < 2:
        raise ValueError("split_point needs n >= 2")
    return 1 << ((n - 1).bit_length() - 1)


def is_perfect(lo: int, hi: int) -> bool:
    """True when [lo, hi) is a complete aligned subtree (a power of two, aligned)."""
    size = hi - lo
    return size > 0 and size & (size - 1) == 0 and lo % size == 0


def root_from_leaf_hashes(leaves: Sequence[bytes]) -> bytes:
    """MTH of a list of leaf hashes, bottom-up (iterative, any size)."""
    if not leaves:
        return EMPTY_ROOT
    level = list(leaves)
    # Fold perfect subtrees left to right, keeping a stack of (size, hash),
    # which gives the RFC's left-heavy shape for any n.
    stack: list[tuple[int, bytes]] = []
    for h in level:
        size, cur = 1, h
        while stack and stack[-1][0] == size:
            left_size, left = stack.pop()
            cur = node_hash(left, cur)
            size += left_size
        stack.append((size, cur))
    size, cur = stack.pop()
    while stack:
        _, left = stack.pop()
        cur = node_hash(left, cur)
    return cur


def range_hash_from_perfect(perfect: Callable[[int, int], bytes]) -> RangeHash:
    """MTH(D[lo:hi]) for any range, from a function that returns perfect subtrees."""

    def mth(lo: int, hi: int) -> bytes:
        if is_perfect(lo, hi):
            return perfect(lo, hi)
        k = split_point(hi - lo)
        return node_hash(mth(lo, lo + k), mth(lo + k, hi))

    return mth


def inclusion_ranges(index: int, size: int) -> list[tuple[int, int]]:
    """The leaf ranges whose MTHs form PATH(index, D[0:size]), leaf to root (§2.1.3.1)."""
    if not 0 <= index < size:
        raise ValueError(f"index {index} is not in a tree of size {size}")
    path: list[tuple[int, int]] = []
    lo, hi = 0, size
    while hi - lo > 1:
        k = split_point(hi - lo)
        if index < lo + k:
            path.append((lo + k, hi))
            hi = lo + k
        else:
            path.append((lo, lo + k))
            lo = lo + k
    path.reverse()
    return path


def consistency_ranges(old: int, new: int) -> list[tuple[int, int]]:
    """The leaf ranges whose MTHs form PROOF(old, D[0:new]) (§2.1.4.1)."""
    if not 0 <= old <= new:
        raise ValueError(f"sizes {old}, {new}: need 0 <= old <= new")
    if old == 0 or old == new:
        return []
    out: list[tuple[int, int]] = []

    def subproof(m: int, lo: int, hi: int, complete: bool) -> None:
        n = hi - lo
        if m == n:
            if not complete:
                out.append((lo, hi))
            return
        k = split_point(n)
        if m <= k:
            subproof(m, lo, lo + k, complete)
            out.append((lo + k, hi))
        else:
            subproof(m - k, lo + k, hi, False)
            out.append((lo, lo + k))

    subproof(old, 0, new, True)
    return out


def inclusion_proof(index: int, size: int, range_hash: RangeHash) -> list[bytes]:
    return [range_hash(lo, hi) for lo, hi in inclusion_ranges(index, size)]


def consistency_proof(old: int, new: int, range_hash: RangeHash) -> list[bytes]:
    return [range_hash(lo, hi) for lo, hi in consistency_ranges(old, new)]


def list_range_hash(leaves: Sequence[bytes]) -> RangeHash:
    """A `RangeHash` over an in-memory list of leaf hashes (tests, small trees)."""
    return range_hash_from_perfect(lambda lo, hi: root_from_leaf_hashes(leaves[lo:hi]))


# --- verification (RFC 9162 §2.1.3.2 and §2.1.4.2) ----------------------------------


def root_from_inclusion_proof(
    index: int, size: int, leaf: bytes, proof: Sequence[bytes]
) -> bytes | None:
    """The root a proof implies, or None when the proof cannot be valid."""
    if not 0 <= index < size or len(leaf) != HASH_SIZE:
        return None
    if any(len(p) != HASH_SIZE for p in proof):
        return None
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        if sn == 0:
            return None
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while fn != 0 and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        return None
    return r


def verify_inclusion(
    leaf: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes
) -> bool:
    got = root_from_inclusion_proof(index, size, leaf, proof)
    return got is not None and got == root


def verify_consistency(
    old: int, new: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]
) -> bool:
    """§2.1.4.2: does `proof` show that tree `old` is a prefix of tree `new`?"""
    if not 0 <= old <= new:
        return False
    if any(len(p) != HASH_SIZE for p in (*proof, old_root, new_root)):
        return False
    if old == new:
        return not proof and old_root == new_root
    if old == 0:  # the empty tree is a prefix of every tree, if its root is the empty root
        return not proof and old_root == EMPTY_ROOT
    if not proof:
        return False
    path = list(proof)
    if old & (old - 1) == 0:  # old is a power of two: its root is the first node
        path.insert(0, old_root)
    fn, sn = old - 1, new - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                while fn != 0 and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    return fr == old_root and sr == new_root and sn == 0
