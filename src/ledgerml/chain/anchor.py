"""Thin binding to `AuditAnchor`: put log checkpoints on chain and read them back.

    log = AnchorLog(chain, deployment.audit_anchor)
    log.anchor_checkpoint("ledgerml.example/log", 1024, root_hash, note_hash)
    for a in log.anchors(): ...

The contract refuses a tree size that does not strictly grow for the same origin
(`ContractRevert` named `TreeSizeNotGrowing`), so a rolled-back log shows on chain.
"""

from __future__ import annotations

from dataclasses import dataclass

from ledgerml.chain.evm import Chain, TxResult
from ledgerml.errors import InputError

GAS_ANCHOR = 400_000
PAGE = 100


@dataclass(frozen=True)
class AnchorRecord:
    index: int
    origin: str
    origin_hash: str
    tree_size: int
    root_hash: str
    note_hash: str
    block_number: int
    timestamp: int
    operator: str


def _hash32(value: bytes | str, *, field: str) -> bytes:
    if isinstance(value, bytes | bytearray) and len(value) == 32:
        return bytes(value)
    if isinstance(value, str):
        text = value.removeprefix("0x")
        if len(text) == 64:
            try:
                return bytes.fromhex(text)
            except ValueError:
                pass
    raise InputError("must be a 32-byte hash (bytes or 64 hex characters)", field=field)


class AnchorLog:
    """Client of one deployed AuditAnchor; writes are signed by the log_operator account."""

    def __init__(self, chain: Chain, address: str) -> None:
        self.chain = chain
        self.contract = chain.contract("AuditAnchor", address)
        self.address = self.contract.address

    def anchor_checkpoint(
        self,
        origin: str,
        tree_size: int,
        root: bytes | str,
        note_hash: bytes | str,
        *,
        signer: str = "log_operator",
    ) -> TxResult:
        """Anchor one checkpoint (origin line, tree size, root hash, hash of the signed note)."""
        if not isinstance(origin, str) or not 0 < len(origin.encode()) <= 256:
            raise InputError("must be 1-256 bytes of text", field="origin")
        if isinstance(tree_size, bool) or not isinstance(tree_size, int):
            raise InputError("must be an integer", field="tree_size")
        if not 0 < tree_size < 2**64:
            raise InputError("must be in [1, 2^64)", field="tree_size")
        args = [
            origin,
            tree_size,
            _hash32(root, field="root"),
            _hash32(note_hash, field="note_hash"),
        ]
        return self.chain.transact(self.contract, "anchor", args, role=signer, gas=GAS_ANCHOR)

    def count(self) -> int:
        return int(self.chain.call(self.contract, "anchorCount"))

    def latest_tree_size(self, origin: str) -> int:
        return int(self.chain.call(self.contract, "latestTreeSize", [origin]))

    def tx_hash_of(self, record: AnchorRecord) -> str | None:
        """The transaction that made `record`, found in its block by its `Anchored` event.

        Why: a process killed between the anchor transaction and its ledger mirror entry
        leaves an anchor the log does not mention; the next `anchor` finds the transaction
        here and writes the missing entry. None when the block holds no such event.
        """
        block = self.chain.w3.eth.get_block(record.block_number, full_transactions=True)
        for tx in block["transactions"]:
            if isinstance(tx, bytes):  # a bare hash: not with full_transactions=True
                continue
            if str(tx.get("to") or "").lower() != self.address.lower():
                continue
            receipt = self.chain.w3.eth.get_transaction_receipt(tx["hash"])
            if int(receipt["status"]) != 1:
                continue
            for ev in self.chain.decode_logs(receipt["logs"]):
                if (
                    ev.name == "Anchored"
                    and ev.address.lower() == self.address.lower()
                    and int(ev.args["index"]) == record.index
                ):
                    raw = tx["hash"]
                    return raw if isinstance(raw, str) else "0x" + bytes(raw).hex()
        return None

    def anchors(self, start: int = 0, limit: int | None = None) -> list[AnchorRecord]:
        """Anchors in the order they were made, paged PAGE at a time."""
        out: list[AnchorRecord] = []
        total = self.count()
        end = total if limit is None else min(total, start + limit)
        i = start
        while i < end:
            rows = self.chain.call(self.contract, "getAnchors", [i, min(PAGE, end - i)])
            for k, row in enumerate(rows):
                origin_hash, origin, size, root, note, block, ts, operator = row
                out.append(
                    AnchorRecord(
                        index=i + k,
                        origin=origin,
                        origin_hash="0x" + bytes(origin_hash).hex(),
                        tree_size=int(size),
                        root_hash="0x" + bytes(root).hex(),
                        note_hash="0x" + bytes(note).hex(),
                        block_number=int(block),
                        timestamp=int(ts),
                        operator=operator,
                    )
                )
            if not rows:
                break
            i += len(rows)
        return out
