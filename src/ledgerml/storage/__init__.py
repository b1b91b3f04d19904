"""Content-addressed artifact storage: IPFS-compatible CIDs, a verified local
blockstore, an optional IPFS node, and the personal-data vault.

The public API is this module; the submodules are implementation.

Usage::

    from ledgerml.config import ProjectPaths
    from ledgerml import storage

    store = storage.open_store(ProjectPaths(home))      # honours [storage] ipfs_api
    added = store.add_file("model.ubj")                 # AddResult(cid='bafy…', size=…)
    data = b"".join(store.cat(added.cid))               # every block re-hashed on read
    assert storage.cid_of_file("model.ubj") == added.cid  # same as `ipfs add --cid-version 1`
    assert store.verify() == []                         # CIDs of corrupt or missing blocks

    vault = storage.Vault(ProjectPaths(home).vault_db)
    commitment = vault.put("cust-42", "iban", "DE89…")  # hex; safe to put on the ledger
    vault.erase("cust-42")                              # crypto-shredding
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ledgerml.config import ProjectPaths, load_config
from ledgerml.errors import InputError
from ledgerml.storage.blockstore import AddResult, BlockStore, StoredFile, SyncMode
from ledgerml.storage.cid import cid_of_bytes, cid_of_file, cid_of_stream, parse_cid
from ledgerml.storage.vault import Vault, VaultBatch

if TYPE_CHECKING:
    from ledgerml.storage.ipfs import IpfsClient, IpfsError

__all__ = [
    "AddResult",
    "BlockStore",
    "IpfsClient",
    "IpfsError",
    "StoredFile",
    "SyncMode",
    "Vault",
    "VaultBatch",
    "cid_of_bytes",
    "cid_of_file",
    "cid_of_stream",
    "ipfs_from_config",
    "open_store",
    "parse_cid",
]


def __getattr__(name: str) -> Any:
    """`IpfsClient` and `IpfsError` load httpx: imported on first use, not with the package."""
    if name in ("IpfsClient", "IpfsError"):
        from ledgerml.storage import ipfs

        return getattr(ipfs, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def ipfs_from_config(config: dict[str, Any]) -> IpfsClient | None:
    """The IPFS client `[storage] ipfs_api` asks for, or None when it is unset or empty."""
    section = config.get("storage", {})
    if not isinstance(section, dict):
        raise InputError("[storage] must be a table", field="config.toml")
    api = section.get("ipfs_api")
    if api in (None, ""):
        return None
    if not isinstance(api, str):
        raise InputError("must be a URL string", field="storage.ipfs_api")
    from ledgerml.storage.ipfs import IpfsClient

    return IpfsClient(api)


def open_store(paths: ProjectPaths, *, sync: SyncMode | None = None) -> BlockStore:
    """The project's blockstore, wired to its IPFS node when `config.toml` names one.

    `sync` defaults to `[storage] sync` ("block" unless configured "batch").
    """
    config = load_config(paths)
    section = config.get("storage", {}) if isinstance(config.get("storage"), dict) else {}
    mode = sync or section.get("sync", "block")
    return BlockStore(paths.blocks, ipfs=ipfs_from_config(config), sync=mode)
