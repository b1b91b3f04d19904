"""RFC 6962/9162 Merkle functions against published vectors and by property."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ledgerml.ledger import merkle

# Leaves, roots and node hashes published with the Certificate Transparency
# reference implementations (transparency-dev/merkle testonly/constants.go).
LEAF_INPUTS = [
    bytes.fromhex(h)
    for h in [
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    ]
]
ROOTS = [
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]
# (leaf index, tree size, proof) — from transparency-dev/merkle proof/verify_test.go
INCLUSION = [
    (
        0,
        8,
        [
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ],
    ),
    (
        5,
        8,
        [
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
    (2, 3, ["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"]),
    (
        1,
        5,
        [
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ],
    ),
]
CONSISTENCY = [
    (
        1,
        8,
        [
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ],
    ),
    (
        6,
        8,
        [
            "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
    (
        2,
        5,
        [
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ],
    ),
    (
        6,
        7,
        [
            "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
]

LEAVES = [merkle.leaf_hash(d) for d in LEAF_INPUTS]


def test_empty_root_and_hash_prefixes() -> None:
    assert merkle.EMPTY_ROOT.hex() == ROOTS[0]
    assert merkle.leaf_hash(b"") == hashlib.sha256(b"\x00").digest()
    assert merkle.node_hash(b"a", b"b") == hashlib.sha256(b"\x01ab").digest()


@pytest.mark.parametrize("size", range(0, 9))
def test_roots_match_published_vectors(size: int) -> None:
    assert merkle.root_from_leaf_hashes(LEAVES[:size]).hex() == ROOTS[size]
    if size:
        assert merkle.list_range_hash(LEAVES)(0, size).hex() == ROOTS[size]


@pytest.mark.parametrize(("index", "size", "proof"), INCLUSION)
def test_inclusion_vectors(index: int, size: int, proof: list[str]) -> None:
    got = merkle.inclusion_proof(index, size, merkle.list_range_hash(LEAVES))
    assert [h.hex() for h in got] == proof
    root = bytes.fromhex(ROOTS[size])
    assert merkle.verify_inclusion(LEAVES[index], index, size, got, root)


@pytest.mark.parametrize(("old", "new", "proof"), CONSISTENCY)
def test_consistency_vectors(old: int, new: int, proof: list[str]) -> None:
    got = merkle.consistency_proof(old, new, merkle.list_range_hash(LEAVES))
    assert [h.hex() for h in got] == proof
    assert merkle.verify_consistency(
        old, new, bytes.fromhex(ROOTS[old]), bytes.fromhex(ROOTS[new]), got
    )


def test_split_is_rfc_not_midpoint() -> None:
    assert [merkle.split_point(n) for n in (2, 3, 4, 5, 8, 9, 1000)] == [1, 2, 2, 4, 4, 8, 512]


def test_edge_cases_are_refused() -> None:
    root = bytes.fromhex(ROOTS[8])
    assert not merkle.verify_inclusion(LEAVES[0], 0, 0, [], root)
    assert not merkle.verify_inclusion(LEAVES[0], 8, 8, [], root)
    assert not merkle.verify_inclusion(b"short", 0, 1, [], b"short")
    assert not merkle.verify_consistency(2, 1, root, root, [])
    assert not merkle.verify_consistency(1, 2, root, root, [])  # a proof is required
    assert merkle.verify_consistency(0, 5, merkle.EMPTY_ROOT, root, [])
    assert not merkle.verify_consistency(0, 5, b"", root, [])  # not the empty tree's root
    assert not merkle.verify_consistency(0, 5, merkle.EMPTY_ROOT, b"", [])  # not a hash
    assert merkle.verify_consistency(3, 3, root, root, [])
    assert not merkle.verify_consistency(3, 3, root, merkle.EMPTY_ROOT, [])
    with pytest.raises(ValueError):
        merkle.inclusion_ranges(3, 3)


def _tree(n: int) -> list[bytes]:
    return [merkle.leaf_hash(i.to_bytes(4, "big")) for i in range(n)]


@settings(max_examples=150, deadline=None)
@given(st.integers(1, 300).flatmap(lambda n: st.tuples(st.just(n), st.integers(0, n - 1))))
def test_every_inclusion_proof_verifies_and_any_change_fails(case: tuple[int, int]) -> None:
    n, i = case
    leaves = _tree(n)
    root = merkle.root_from_leaf_hashes(leaves)
    proof = merkle.inclusion_proof(i, n, merkle.list_range_hash(leaves))
    assert merkle.verify_inclusion(leaves[i], i, n, proof, root)
    # any changed index, size, leaf, root or proof hash fails
    for j in {i - 1, i + 1, i ^ 1, i ^ 2} - {i}:
        assert not merkle.verify_inclusion(leaves[i], j, n, proof, root)
    # wrong tree height (the probes of the CT reference tests)
    for m in {2 * n, n // 2} - {n}:
        assert not merkle.verify_inclusion(leaves[i], i, m, proof, root)
    bad_leaf = bytes([leaves[i][0] ^ 1]) + leaves[i][1:]
    assert not merkle.verify_inclusion(bad_leaf, i, n, proof, root)
    assert not merkle.verify_inclusion(leaves[i], i, n, proof, merkle.EMPTY_ROOT)
    for k in range(len(proof)):
        bad = list(proof)
        bad[k] = bytes([bad[k][0] ^ 8]) + bad[k][1:]
        assert not merkle.verify_inclusion(leaves[i], i, n, bad, root)
    assert not merkle.verify_inclusion(leaves[i], i, n, [*proof, root], root)
    if proof:
        assert not merkle.verify_inclusion(leaves[i], i, n, proof[:-1], root)


@settings(max_examples=150, deadline=None)
@given(st.integers(1, 300).flatmap(lambda n: st.tuples(st.integers(1, n), st.just(n))))
def test_every_consistency_proof_verifies_and_any_change_fails(case: tuple[int, int]) -> None:
    m, n = case
    leaves = _tree(n)
    r1, r2 = merkle.root_from_leaf_hashes(leaves[:m]), merkle.root_from_leaf_hashes(leaves)
    proof = merkle.consistency_proof(m, n, merkle.list_range_hash(leaves))
    assert merkle.verify_consistency(m, n, r1, r2, proof)
    if m == n:
        return
    assert not merkle.verify_consistency(m, n, r2, r1, proof)
    assert not merkle.verify_consistency(m, n, r1, merkle.EMPTY_ROOT, proof)
    for k in range(len(proof)):
        bad = list(proof)
        bad[k] = bytes([bad[k][0] ^ 16]) + bad[k][1:]
        assert not merkle.verify_consistency(m, n, r1, r2, bad)
    assert not merkle.verify_consistency(m, n, r1, r2, proof[:-1])
    assert not merkle.verify_consistency(m, n, r1, r2, [*proof, r1])
    for m2 in {m - 1, m + 1, m ^ 2} - {m, 0}:
        assert not merkle.verify_consistency(m2, n, r1, r2, proof)
    for n2 in {2 * n, n // 2} - {n}:
        assert not merkle.verify_consistency(m, n2, r1, r2, proof)
