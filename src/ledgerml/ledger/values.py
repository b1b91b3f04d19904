"""The values the ledger hands out: proofs, checkpoints and verification reports.

Plain frozen dataclasses shared by both drivers, the service, audit bundles and the CLI,
with no I/O: a proof or a checkpoint checks itself from its own fields.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any

from ledgerml.crypto.note import parse_checkpoint_head, parse_note
from ledgerml.errors import VerificationError
from ledgerml.ledger import merkle

_HS = merkle.HASH_SIZE


@dataclass(frozen=True)
class InclusionProof:
    leaf_index: int
    tree_size: int
    leaf_hash: bytes
    hashes: tuple[bytes, ...]
    root: bytes

    def to_json(self) -> dict[str, Any]:
        return {
            "leaf_index": self.leaf_index,
            "tree_size": self.tree_size,
            "leaf_hash": self.leaf_hash.hex(),
            "hashes": [h.hex() for h in self.hashes],
            "root": self.root.hex(),
        }

    def verify(self) -> bool:
        return merkle.verify_inclusion(
            self.leaf_hash, self.leaf_index, self.tree_size, self.hashes, self.root
        )


@dataclass(frozen=True)
class ConsistencyProof:
    first: int
    second: int
    hashes: tuple[bytes, ...]
    first_root: bytes
    second_root: bytes

    def to_json(self) -> dict[str, Any]:
        return {
            "first": self.first,
            "second": self.second,
            "hashes": [h.hex() for h in self.hashes],
            "first_root": self.first_root.hex(),
            "second_root": self.second_root.hex(),
        }

    def verify(self) -> bool:
        return merkle.verify_consistency(
            self.first, self.second, self.first_root, self.second_root, self.hashes
        )


@dataclass(frozen=True)
class Checkpoint:
    origin: str
    size: int
    root: bytes

    def body(self) -> str:
        """The checkpoint note text (C2SP tlog-checkpoint), ending in a newline."""
        return f"{self.origin}\n{self.size}\n{base64.b64encode(self.root).decode()}\n"

    @classmethod
    def from_note(cls, note: str) -> Checkpoint:
        origin, size, root = parse_checkpoint_head(parse_note(note).text)
        if len(root) != _HS:
            raise VerificationError("checkpoint root is not 32 bytes")
        return cls(origin, size, root)


@dataclass(frozen=True)
class Problem:
    kind: str
    detail: str
    index: int | None = None
    checkpoint: int | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind, "detail": self.detail}
        if self.index is not None:
            out["index"] = self.index
        if self.checkpoint is not None:
            out["checkpoint"] = self.checkpoint
        return out


@dataclass(frozen=True)
class TrustedRoot:
    """A tree head held outside the operator's control (an on-chain anchor, an
    auditor's copy, a witness cosignature): the log must still be consistent
    with it, even if the operator re-signed everything locally."""

    tree_size: int
    root: bytes
    source: str


@dataclass(frozen=True)
class VerifyReport:
    tree_size: int
    root: bytes
    checkpoints_checked: int
    problems: tuple[Problem, ...]
    seconds: float = 0.0
    trusted_checked: int = 0
    #: tree size of the head copy checked (None: no head copy configured)
    head_copy_size: int | None = None

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "tree_size": self.tree_size,
            "root": self.root.hex(),
            "checkpoints_checked": self.checkpoints_checked,
            "trusted_roots_checked": self.trusted_checked,
            "head_copy_size": self.head_copy_size,
            "problems": [p.to_json() for p in self.problems],
            "seconds": round(self.seconds, 3),
        }
