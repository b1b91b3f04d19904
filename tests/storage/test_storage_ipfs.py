"""Against a real IPFS node (HTTP RPC API): same CIDs, mirrored adds, verified fallback reads."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from ledgerml.config import ProjectPaths
from ledgerml.errors import InputError, IntegrityError
from ledgerml.storage import BlockStore, IpfsClient, IpfsError, open_store
from ledgerml.storage.cid import CHUNK_SIZE, cid_of_bytes, cid_of_file, parse_cid
from ledgerml.storage.ipfs import ADD_PARAMS

from .conftest import sha256_counter


@pytest.fixture
def node(ipfs_api: str) -> IpfsClient:
    client = IpfsClient(ipfs_api)
    yield client  # type: ignore[misc]
    client.close()


@pytest.mark.parametrize("size", [0, 1, CHUNK_SIZE, CHUNK_SIZE + 1, 5 * CHUNK_SIZE + 3])
def test_node_computes_our_cid(node: IpfsClient, tmp_path: Path, size: int) -> None:
    path = tmp_path / "f.bin"
    path.write_bytes(os.urandom(size))
    assert parse_cid(node.add_file(path)).cid == cid_of_file(path)


@pytest.mark.slow
def test_node_agrees_on_a_two_level_dag(node: IpfsClient, tmp_path: Path) -> None:
    path = tmp_path / "big.bin"
    with path.open("wb") as fh:
        for piece in sha256_counter("ledgerml-cid-vector:two-levels-48mb", 48_000_000):
            fh.write(piece)
    ours = cid_of_file(path)
    assert ours == "bafybeibwiegio677qmuwrwkgrfrebyy36gxn23vxdlvryu4scve6u7um7u"
    assert parse_cid(node.add_file(path)).cid == ours


def test_store_mirrors_adds_and_cat_matches(node: IpfsClient, tmp_path: Path) -> None:
    data = os.urandom(3 * CHUNK_SIZE + 11)
    src = tmp_path / "model.bin"
    src.write_bytes(data)
    store = BlockStore(tmp_path / "blocks", ipfs=node)
    result = store.add_file(src)
    assert b"".join(node.cat(result.cid)) == data
    assert b"".join(store.cat(result.cid)) == data


def test_missing_blocks_are_fetched_from_the_node_and_verified(
    node: IpfsClient, tmp_path: Path
) -> None:
    data = os.urandom(2 * CHUNK_SIZE + 1)
    cid = node.add_bytes(data)
    fresh = BlockStore(tmp_path / "fresh-blocks", ipfs=node)
    assert fresh.read_bytes(cid) == data
    assert len(list(fresh.iter_blocks())) == 4  # fetched blocks were cached locally
    assert fresh.verify() == []
    # Without the node, the same fresh store still has the (verified) blocks.
    assert BlockStore(tmp_path / "fresh-blocks").read_bytes(cid) == data


def test_unknown_cid_without_node_is_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="not in store"):
        BlockStore(tmp_path / "b").read_bytes(cid_of_bytes(b"nobody has this"))


class MisconfiguredNode(IpfsClient):
    """A real client to the real node, but asking for 1 KiB chunks: a different CID."""

    def _add(self, name: str, content: object) -> str:
        import ledgerml.storage.ipfs as ipfs_mod

        saved = dict(ipfs_mod.ADD_PARAMS)
        ipfs_mod.ADD_PARAMS["chunker"] = "size-1024"
        try:
            return super()._add(name, content)
        finally:
            ipfs_mod.ADD_PARAMS.clear()
            ipfs_mod.ADD_PARAMS.update(saved)


def test_cid_mismatch_fails_the_add_and_leaves_nothing(ipfs_api: str, tmp_path: Path) -> None:
    src = tmp_path / "f.bin"
    src.write_bytes(os.urandom(4096))
    root = tmp_path / "blocks"
    with MisconfiguredNode(ipfs_api) as bad_node:
        store = BlockStore(root, ipfs=bad_node)
        with pytest.raises(IntegrityError, match=cid_of_file(src)):
            store.add_file(src)
        with pytest.raises(IntegrityError):
            store.add_bytes(b"x" * 5000)
    assert list(store.iter_blocks()) == []
    assert store.ls() == [] and store.pins() == []
    assert ADD_PARAMS["chunker"] == "size-262144"


def test_unreachable_node_fails_closed(tmp_path: Path) -> None:
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    src = tmp_path / "f.bin"
    src.write_bytes(b"data")
    with IpfsClient(f"http://127.0.0.1:{port}", timeout=5) as dead:
        store = BlockStore(tmp_path / "blocks", ipfs=dead)
        with pytest.raises(IpfsError, match="unreachable"):
            store.add_file(src)
    assert list(store.iter_blocks()) == []


def test_open_store_reads_config(home: Path, ipfs_api: str, tmp_path: Path) -> None:
    (home / "config.toml").write_text(f'[storage]\nipfs_api = "{ipfs_api}"\n')
    store = open_store(ProjectPaths(home))
    assert store.ipfs is not None and store.ipfs.api == ipfs_api.rstrip("/")
    src = tmp_path / "x"
    src.write_bytes(b"configured")
    cid = store.add_file(src).cid
    assert store.ipfs.block_get(cid) == b"configured"
    store.pin(cid)
    (home / "config.toml").write_text('[storage]\nipfs_api = "ftp://nope"\n')
    with pytest.raises(InputError) as err:
        open_store(ProjectPaths(home))
    assert err.value.field == "storage.ipfs_api"
