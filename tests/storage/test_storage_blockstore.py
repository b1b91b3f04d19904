"""The local blockstore: round trips, dedup, fail-closed reads, pins, bad input."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ledgerml.errors import InputError, IntegrityError
from ledgerml.storage import BlockStore, cid_of_bytes, cid_of_file
from ledgerml.storage.cid import CHUNK_SIZE, decode_file_node, parse_cid

SIZES = [0, 1, CHUNK_SIZE - 1, CHUNK_SIZE, CHUNK_SIZE + 1, 3 * CHUNK_SIZE + 17, 9 * 1024 * 1024]


def block_files(store: BlockStore) -> dict[str, str]:
    return dict(store.iter_blocks())


def flip_byte(path: str, offset: int = 0) -> None:
    with open(path, "r+b") as fh:
        fh.seek(offset)
        b = fh.read(1)
        fh.seek(offset)
        fh.write(bytes([b[0] ^ 0x01]))


@pytest.fixture
def store(tmp_path: Path) -> BlockStore:
    return BlockStore(tmp_path / "blocks")


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("sync", ["block", "batch"])
def test_round_trip_is_byte_identical(tmp_path: Path, size: int, sync: str) -> None:
    store = BlockStore(tmp_path / "blocks", sync=sync)  # type: ignore[arg-type]
    src = tmp_path / "src.bin"
    data = os.urandom(size)
    src.write_bytes(data)
    result = store.add_file(src)
    assert result.cid == cid_of_file(src)
    assert result.size == size
    assert b"".join(store.cat(result.cid)) == data
    assert store.verify() == []
    assert store.has(result.cid)
    # Layout: sharded by the next-to-last two characters; nothing left in _tmp.
    for name, path in store.iter_blocks():
        assert Path(path).parent.name == name[-3:-1]
    assert os.listdir(tmp_path / "blocks" / "_tmp") == []
    out = tmp_path / "out.bin"
    assert store.export(result.cid, out).size == size
    assert out.read_bytes() == data


def test_add_bytes_equals_add_file(store: BlockStore, tmp_path: Path) -> None:
    data = os.urandom(2 * CHUNK_SIZE + 5)
    (tmp_path / "f").write_bytes(data)
    assert store.add_bytes(data) == store.add_file(tmp_path / "f")
    assert store.add_bytes(data).cid == cid_of_bytes(data)


def test_dedup_same_file_and_shared_chunks(store: BlockStore, tmp_path: Path) -> None:
    common = os.urandom(4 * CHUNK_SIZE)
    (tmp_path / "a").write_bytes(common)
    (tmp_path / "b").write_bytes(common + b"tail")
    first = store.add_file(tmp_path / "a")
    n_first = len(block_files(store))
    assert n_first == 5  # four leaves and one node
    assert store.add_file(tmp_path / "a") == first
    assert len(block_files(store)) == n_first
    store.add_file(tmp_path / "b")
    # b shares a's four leaves: one new leaf ("tail") and one new node only.
    assert len(block_files(store)) == n_first + 2


def test_flipped_byte_in_a_leaf_fails_cat_and_verify(store: BlockStore, tmp_path: Path) -> None:
    data = os.urandom(3 * CHUNK_SIZE)
    (tmp_path / "f").write_bytes(data)
    root = store.add_file(tmp_path / "f").cid
    node = decode_file_node(store.get_block(root))
    from ledgerml.storage.cid import cid_str

    leaf = cid_str(node.links[1].cid)
    flip_byte(block_files(store)[leaf], 1000)
    with pytest.raises(IntegrityError, match=leaf):
        b"".join(store.cat(root))
    assert store.verify() == [leaf]
    out = tmp_path / "out"
    with pytest.raises(IntegrityError):
        store.export(root, out)
    assert not out.exists()
    assert [p for p in os.listdir(tmp_path) if p.startswith(".out")] == []


def test_flipped_byte_in_the_root_fails_before_any_output(store: BlockStore) -> None:
    root = store.add_bytes(os.urandom(2 * CHUNK_SIZE)).cid
    flip_byte(block_files(store)[root], 3)
    stream = store.cat(root)
    with pytest.raises(IntegrityError, match=root):
        next(stream)
    assert store.verify() == [root]


def test_corrupt_single_block_file(store: BlockStore) -> None:
    cid = store.add_bytes(b"hello ledger").cid
    flip_byte(block_files(store)[cid])
    with pytest.raises(IntegrityError, match=cid):
        store.read_bytes(cid)


def test_missing_child_block_is_reported(store: BlockStore) -> None:
    root = store.add_bytes(os.urandom(2 * CHUNK_SIZE)).cid
    leaves = [n for n in block_files(store) if n != root]
    os.unlink(block_files(store)[leaves[0]])
    assert store.verify() == [leaves[0]]
    with pytest.raises(IntegrityError, match=leaves[0]):
        store.read_bytes(root)


def test_misnamed_block_file_is_reported(store: BlockStore) -> None:
    a = store.add_bytes(b"aaa", pin=False).cid
    b = store.add_bytes(b"bbb", pin=False).cid
    files = block_files(store)
    Path(files[a]).write_bytes(Path(files[b]).read_bytes())
    assert store.verify() == [a]


def test_bad_input(store: BlockStore, tmp_path: Path) -> None:
    with pytest.raises(InputError) as err:
        store.add_file(tmp_path / "missing.bin")
    assert err.value.field == "path"
    with pytest.raises(InputError) as err:
        store.add_file(tmp_path)
    assert err.value.field == "path"
    with pytest.raises(InputError) as err:
        store.read_bytes("bafy-not-a-cid")
    assert err.value.field == "cid"
    unknown = cid_of_bytes(b"never stored")
    with pytest.raises(InputError, match="not in store") as err:
        store.read_bytes(unknown)
    assert err.value.field == "cid"
    with pytest.raises(InputError, match="not in store"):
        store.pin(unknown)
    with pytest.raises(InputError, match="not pinned"):
        store.unpin(unknown)
    assert not store.has(unknown)
    with pytest.raises(InputError):
        BlockStore(tmp_path / "x", sync="never")  # type: ignore[arg-type]


def test_pins_and_ls(store: BlockStore) -> None:
    a = store.add_bytes(b"pinned by default")
    b = store.add_bytes(b"not pinned", pin=False)
    assert store.pins() == [a.cid]
    assert store.pin(b.cid) == b.cid
    assert store.pins() == sorted([a.cid, b.cid])
    store.unpin(a.cid)
    assert store.pins() == [b.cid]
    rows = {r.cid: r for r in store.ls()}
    assert rows[a.cid].size == len(b"pinned by default")
    assert not rows[a.cid].pinned and rows[b.cid].pinned


def test_cid_v0_input_reads_the_same_file(store: BlockStore) -> None:
    from multiformats import CID

    data = os.urandom(CHUNK_SIZE + 1)
    cid = store.add_bytes(data).cid
    v0 = str(CID.decode(cid).set(version=0, base="base58btc"))
    assert v0.startswith("Qm")
    assert store.read_bytes(v0) == data
    assert parse_cid(v0).cid == cid


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.binary(max_size=3 * CHUNK_SIZE // 2) | st.sampled_from([b"", b"\0" * CHUNK_SIZE]))
def test_property_add_then_cat(tmp_path: Path, data: bytes) -> None:
    store = BlockStore(tmp_path / "prop-blocks")
    cid = store.add_bytes(data).cid
    assert cid == cid_of_bytes(data)
    assert store.read_bytes(cid) == data


def test_open_gives_a_file_object(store: BlockStore) -> None:
    data = os.urandom(3 * CHUNK_SIZE + 5)
    cid = store.add_bytes(data).cid
    with store.open(cid) as fh:
        assert fh.read(10) == data[:10]
        assert fh.read() == data[10:]


def test_progress_reports_every_byte(store: BlockStore, tmp_path: Path) -> None:
    src = tmp_path / "p.bin"
    src.write_bytes(os.urandom(40 * 1024 * 1024 + 3))
    seen: list[int] = []
    store.add_file(src, progress=seen.append)
    assert sum(seen) == src.stat().st_size and len(seen) >= 3
