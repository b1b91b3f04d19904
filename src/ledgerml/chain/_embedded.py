"""The embedded EVM: py-evm (Prague) under eth-tester, persisted in `<project>/chain/evm.sqlite`.

Why this shape (see DESIGN.md, "Persistent embedded EVM"):

* py-evm keeps everything in a key/value `BaseDB`; ours is one SQLite table, wrapped in
  `AtomicDB` like py-evm's own in-memory backend. Writes of a block stay inside one SQLite
  transaction that is committed only after the block is mined, so a crash leaves the last
  whole block, never half of one.
* `from_genesis` runs only when the database has no canonical head; otherwise the chain class
  is reopened on the database, so separate CLI processes see one chain.
* Our own chain class with a fixed VM schedule (Prague from block 0), so an eth-tester upgrade
  cannot change the rules under an existing chain.
* One writer: an exclusive `flock` on `evm.lock` for the lifetime of the `Chain`.
* eth-tester finds transactions by scanning every block; we answer from py-evm's
  transaction-hash index instead (constant time).
"""

from __future__ import annotations

import fcntl
import os
import sqlite3
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from eth.chains.base import MiningChain
from eth.db.atomic import AtomicDB
from eth.db.backends.base import BaseDB
from eth.exceptions import CanonicalHeadNotFound
from eth.exceptions import TransactionNotFound as EVMTransactionNotFound
from eth.typing import AccountDetails
from eth.vm.forks import PragueVM
from eth_tester.backends.pyevm.main import PyEVMBackend, get_default_genesis_params
from eth_tester.backends.pyevm.serializers import (
    serialize_transaction,
    serialize_transaction_receipt,
)
from eth_tester.exceptions import TransactionNotFound
from eth_typing import Address, BlockNumber, Hash32
from eth_utils import encode_hex, to_wei
from eth_utils.toolz import assoc

from ledgerml.errors import InputError

#: chain id of embedded chains ("LML" in ASCII); distinct from anvil (31337) and mainnets
EMBEDDED_CHAIN_ID = 0x4C4D4C
GENESIS_BALANCE = to_wei(1_000_000, "ether")
LOCK_TIMEOUT_S = 30.0


class SqliteDB(BaseDB):
    """py-evm key/value store in one SQLite table; `commit()` makes a mined block durable."""

    def __init__(self, path: Path) -> None:
        self._conn = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=NORMAL")
        self._conn.execute(
            "CREATE TABLE IF NOT EXISTS kv (k BLOB PRIMARY KEY, v BLOB NOT NULL) WITHOUT ROWID"
        )
        self._conn.execute("BEGIN")

    def __getitem__(self, key: bytes) -> bytes:
        row = self._conn.execute("SELECT v FROM kv WHERE k = ?", (key,)).fetchone()
        if row is None:
            raise KeyError(key)
        return bytes(row[0])

    def __setitem__(self, key: bytes, value: bytes) -> None:
        self._conn.execute("INSERT OR REPLACE INTO kv (k, v) VALUES (?, ?)", (key, value))

    def __delitem__(self, key: bytes) -> None:
        cur = self._conn.execute("DELETE FROM kv WHERE k = ?", (key,))
        if cur.rowcount == 0:
            raise KeyError(key)

    def _exists(self, key: bytes) -> bool:
        return self._conn.execute("SELECT 1 FROM kv WHERE k = ?", (key,)).fetchone() is not None

    def commit(self) -> None:
        self._conn.execute("COMMIT")
        self._conn.execute("BEGIN")

    def close(self) -> None:
        """Drop whatever was not committed (a block that did not finish) and close."""
        try:
            self._conn.execute("ROLLBACK")
        finally:
            self._conn.close()


class LedgerMLChain(MiningChain):
    """Fixed schedule: Prague from genesis, post-merge, constant gas limit."""

    chain_id = EMBEDDED_CHAIN_ID
    vm_configuration = ((BlockNumber(0), PragueVM),)

    def create_header_from_parent(self, parent_header: Any, **header_params: Any) -> Any:
        return super().create_header_from_parent(
            parent_header, **assoc(header_params, "gas_limit", parent_header.gas_limit)
        )

    def get_transaction_builder(self) -> Any:
        return self.get_vm().get_transaction_builder()


class PersistentBackend(PyEVMBackend):
    """eth-tester backend over a reopened py-evm chain; commits after every mined block."""

    def __init__(self, chain: LedgerMLChain, db: SqliteDB) -> None:
        # Deliberately not calling PyEVMBackend.__init__: it would build a fresh genesis.
        self.chain = chain
        self.account_keys = ()
        self._db = db

    def mine_blocks(self, num_blocks: int = 1, coinbase: bytes = b"\x00" * 20) -> Any:
        hashes = super().mine_blocks(num_blocks, coinbase)
        self._db.commit()
        return hashes

    def reset_to_genesis(self, *args: Any, **kwargs: Any) -> None:
        raise NotImplementedError("a persistent chain is never reset")

    def _find(self, tx_hash: bytes) -> tuple[Any, Any, int]:
        try:
            number, index = self.chain.chaindb.get_transaction_index(Hash32(tx_hash))
        except EVMTransactionNotFound:
            pending = self.chain.get_block()
            for i, tx in enumerate(pending.transactions):
                if tx.hash == tx_hash:
                    return pending, tx, i
            raise TransactionNotFound(
                f"No transaction found for transaction hash: {encode_hex(tx_hash)}"
            ) from None
        block = self.chain.get_canonical_block_by_number(number)
        return block, block.transactions[index], index

    def get_transaction_by_hash(self, transaction_hash: bytes) -> Any:
        block, tx, index = self._find(transaction_hash)
        is_pending = block.number == self.chain.get_block().number
        return serialize_transaction(block, tx, index, is_pending)

    def get_transaction_receipt(self, transaction_hash: bytes) -> Any:
        block, tx, index = self._find(transaction_hash)
        is_pending = block.number == self.chain.get_block().number
        receipts = block.get_receipts(self.chain.chaindb)
        return serialize_transaction_receipt(
            block, receipts, tx, index, is_pending, self.chain.get_vm()
        )


class FileLock:
    """Exclusive advisory lock: one process writes the embedded chain at a time."""

    def __init__(self, path: Path, timeout_s: float = LOCK_TIMEOUT_S) -> None:
        self._fh = path.open("a+")
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                fcntl.flock(self._fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    self._fh.seek(0)
                    holder = self._fh.read().strip() or "another process"
                    self._fh.close()
                    raise InputError(
                        f"embedded chain {path.parent} is in use by pid {holder} "
                        f"(waited {timeout_s:.0f}s)",
                        field="chain",
                    ) from None
                time.sleep(0.05)
        self._fh.seek(0)
        self._fh.truncate()
        self._fh.write(str(os.getpid()))
        self._fh.flush()

    def release(self) -> None:
        if not self._fh.closed:
            fcntl.flock(self._fh.fileno(), fcntl.LOCK_UN)
            self._fh.close()


def open_chain(db: SqliteDB, funded: Iterable[bytes]) -> tuple[LedgerMLChain, bool]:
    """Reopen the chain stored in `db`, or create its genesis (funding `funded`) if empty.

    Returns the chain and whether it was created now.
    """
    base = AtomicDB(db)
    try:
        LedgerMLChain.get_chaindb_class()(base).get_canonical_head()
    except CanonicalHeadNotFound:
        state: dict[Address, AccountDetails] = {
            Address(addr): {"balance": GENESIS_BALANCE, "nonce": 0, "code": b"", "storage": {}}
            for addr in funded
        }
        chain = LedgerMLChain.from_genesis(base, get_default_genesis_params(), state)
        assert isinstance(chain, LedgerMLChain)  # py-evm annotates it as returning BaseChain
        db.commit()
        return chain, True
    return LedgerMLChain(base), False
