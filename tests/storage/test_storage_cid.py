"""CIDs must equal the real IPFS importer's, byte for byte (tests/vectors/cid_vectors.json)."""

from __future__ import annotations

import hashlib
import itertools
import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from multiformats import CID, multihash

from ledgerml.errors import InputError
from ledgerml.storage.cid import (
    CHUNK_SIZE,
    CODEC_DAG_PB,
    CODEC_RAW,
    DagBuilder,
    ParsedCID,
    _parse_any,
    cid_bytes,
    cid_of_bytes,
    cid_of_file,
    cid_of_stream,
    cid_str,
    decode_file_node,
    parse_cid,
)

from .conftest import sha256_counter

VECTORS = json.loads(
    (Path(__file__).resolve().parents[1] / "vectors" / "cid_vectors.json").read_text()
)["vectors"]
EMPTY_CID = "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"


def test_vectors_cover_the_required_sizes() -> None:
    sizes = {v["size"] for v in VECTORS if v["chunk_size"] == CHUNK_SIZE}
    assert {0, 1, CHUNK_SIZE - 1, CHUNK_SIZE, CHUNK_SIZE + 1, 10 * 1024 * 1024} <= sizes
    assert max(sizes) > 174 * CHUNK_SIZE  # two levels of dag-pb nodes


@pytest.mark.parametrize("vec", VECTORS, ids=[v["name"] for v in VECTORS])
def test_cid_vectors(vec: dict) -> None:
    assert vec["generator"]["prng"] == "sha256-counter"
    stream = sha256_counter(vec["generator"]["seed"], vec["size"])
    got = cid_of_stream(stream, chunk_size=vec["chunk_size"], max_links=vec["max_links"])
    assert got == vec["cid"]
    expected_prefix = "bafkrei" if vec["size"] <= vec["chunk_size"] else "bafybei"
    assert got.startswith(expected_prefix)


@pytest.mark.parametrize(
    "vec",
    [v for v in VECTORS if v["chunk_size"] == CHUNK_SIZE and v["size"] <= 10 * 1024 * 1024],
    ids=lambda v: v["name"],
)
def test_cid_of_file_matches_vectors(vec: dict, tmp_path: Path) -> None:
    path = tmp_path / "f.bin"
    with path.open("wb") as fh:
        for piece in sha256_counter(vec["generator"]["seed"], vec["size"]):
            fh.write(piece)
    assert cid_of_file(path) == vec["cid"]


def test_empty_file_is_one_empty_raw_leaf(tmp_path: Path) -> None:
    (tmp_path / "e").write_bytes(b"")
    assert cid_of_file(tmp_path / "e") == EMPTY_CID == cid_of_bytes(b"")


def test_cid_of_file_rejects_missing_path(tmp_path: Path) -> None:
    with pytest.raises(InputError) as err:
        cid_of_file(tmp_path / "nope")
    assert err.value.field == "path"


@settings(max_examples=40, deadline=None)
@given(
    data=st.binary(min_size=0, max_size=20_000),
    cuts=st.lists(st.integers(min_value=0, max_value=20_000), max_size=8),
)
def test_cid_independent_of_how_the_stream_is_split(data: bytes, cuts: list[int]) -> None:
    points = sorted({0, len(data), *(c % (len(data) + 1) for c in cuts)})
    pieces = [data[a:b] for a, b in itertools.pairwise(points)]
    whole = cid_of_stream([data], chunk_size=1024, max_links=3)
    assert cid_of_stream(pieces, chunk_size=1024, max_links=3) == whole


@settings(max_examples=40, deadline=None)
@given(data=st.binary(min_size=0, max_size=12_000), max_links=st.integers(2, 5))
def test_emitted_dag_reassembles_to_the_input(data: bytes, max_links: int) -> None:
    """Every block emitted hashes to its CID, and walking from the root gives the bytes back."""
    blocks: dict[bytes, bytes] = {}

    def sink(raw: bytes, block: bytes | memoryview) -> None:
        assert hashlib.sha256(block).digest() == raw[4:]
        blocks[raw] = bytes(block)

    root = cid_of_stream([data], sink, chunk_size=512, max_links=max_links)
    root_raw = bytes(CID.decode(root))

    def walk(raw: bytes) -> bytes:
        block = blocks[raw]
        if raw[1] == CODEC_RAW:
            return block
        node = decode_file_node(block)
        assert len(node.links) <= max_links
        out = node.data + b"".join(walk(link.cid) for link in node.links)
        assert node.filesize == len(out)
        assert sum(node.blocksizes) == len(out)
        return out

    assert walk(root_raw) == data


@settings(max_examples=50)
@given(digest=st.binary(min_size=32, max_size=32), codec=st.sampled_from([CODEC_RAW, CODEC_DAG_PB]))
def test_cid_strings_agree_with_multiformats(digest: bytes, codec: int) -> None:
    ours = cid_str(cid_bytes(codec, digest))
    theirs = CID("base32", 1, codec, multihash.wrap(digest, "sha2-256"))
    assert ours == str(theirs)
    assert parse_cid(ours).digest == digest


@settings(max_examples=300)
@given(
    digest=st.binary(min_size=32, max_size=32),
    codec=st.sampled_from([CODEC_RAW, CODEC_DAG_PB]),
    at=st.integers(0, 58),
    char=st.sampled_from("abcdefghijklmnopqrstuvwxyz234567AQ019!= "),
)
def test_the_canonical_fast_path_agrees_with_multiformats(
    digest: bytes, codec: int, at: int, char: str
) -> None:
    """parse_cid skips multiformats for the store's own spelling; on that spelling and on
    one-character changes of it, the result (or the refusal) is what multiformats gives."""
    text = cid_str(cid_bytes(codec, digest))
    for candidate in (text, text[:at] + char + text[at + 1 :]):
        try:
            expected: ParsedCID | None = _parse_any(candidate)
        except InputError:
            expected = None
        if expected is None:
            with pytest.raises(InputError):
                parse_cid(candidate)
        else:
            assert parse_cid(candidate) == expected


def test_parse_cid_accepts_v0_and_returns_v1() -> None:
    v0 = "QmbWqxBEKC3P8tqsKc98xmWNzrzDtRLMiMPL8wBuTGsMnR"
    parsed = parse_cid(v0)
    assert parsed.codec == CODEC_DAG_PB
    assert parsed.cid.startswith("bafybei")


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "   ",
        "not-a-cid",
        "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyk",  # one char short
        "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku!",
        "zzzz",
    ],
)
def test_malformed_cids_are_input_errors(bad: str) -> None:
    with pytest.raises(InputError) as err:
        parse_cid(bad)
    assert err.value.field == "cid"


def test_unsupported_hash_is_refused() -> None:
    blake = str(CID("base32", 1, "raw", multihash.digest(b"x", "blake2b-256")))
    with pytest.raises(InputError, match="unsupported hash"):
        parse_cid(blake)


def test_dag_builder_rejects_tiny_fanout() -> None:
    with pytest.raises(InputError):
        DagBuilder(max_links=1)


def test_cid_of_stream_runs_in_constant_memory() -> None:
    """40 MiB through the builder with well under 4 MiB allocated at peak."""
    import tracemalloc

    stream = sha256_counter("memory", 40 * 1024 * 1024, piece=CHUNK_SIZE)
    tracemalloc.start()
    try:
        cid_of_stream(stream)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 4 * 1024 * 1024
