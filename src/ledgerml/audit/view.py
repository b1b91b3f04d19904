"""One read-only view of a project for auditing: the index, the ledger's proofs, the keys,
and the newest signed checkpoint (signature checked once), shared by trace, bundle,
report and the web pages so they all prove against the same tree head.

    with AuditView.open(paths) as view:
        proven = view.prove(12013)          # ProvenEntry: bytes, body, inclusion proof, verified?
        view.checkpoint.size, view.checkpoint.signature_ok
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

from ledgerml.config import ProjectPaths, load_config
from ledgerml.crypto.note import NoteVerifier, verify_note
from ledgerml.errors import InputError, VerificationError
from ledgerml.ledger import merkle
from ledgerml.ledger.index import LedgerIndex, RefreshStats
from ledgerml.ledger.log import Checkpoint, InclusionProof, Ledger
from ledgerml.ledger.postgres import PostgresLedger, is_postgres_url
from ledgerml.ledger.project import ledger_url, log_verifiers

INDEX_FILE = "index.db"


@dataclass(frozen=True)
class SignedCheckpoint:
    """The tree head every proof of a view refers to, and whether its signatures verify."""

    origin: str
    size: int
    root: bytes
    note: str
    signature_ok: bool
    problem: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "origin": self.origin,
            "size": self.size,
            "root": self.root.hex(),
            "note": self.note,
            "signature_ok": self.signature_ok,
            "problem": self.problem,
        }


@dataclass(frozen=True)
class ProvenEntry:
    """A ledger entry with its inclusion proof against the view's checkpoint.

    `verified` is recomputed here: leaf hash of the exact bytes, RFC 9162 path, and the
    root taken from the signed checkpoint (not from the proof)."""

    index: int
    type: str
    time: str
    actor: str
    body: dict[str, Any] = field(hash=False)
    entry: bytes
    leaf_hash: bytes
    proof: InclusionProof | None
    verified: bool

    def to_json(self, *, with_entry: bool = True) -> dict[str, Any]:
        out: dict[str, Any] = {
            "index": self.index,
            "type": self.type,
            "time": self.time,
            "actor": self.actor,
            "body": self.body,
            "leaf_hash": self.leaf_hash.hex(),
            "proof": None if self.proof is None else self.proof.to_json(),
            "verified": self.verified,
        }
        if with_entry:
            out["entry_b64"] = base64.b64encode(self.entry).decode()
        return out


class AuditView:
    """Read-only access for auditing one project (open per request or per command)."""

    def __init__(
        self,
        paths: ProjectPaths,
        ledger: Ledger,
        index: LedgerIndex,
        verifiers: list[NoteVerifier],
        progress: Callable[[int, int], None] | None = None,
    ) -> None:
        self.paths = paths
        self.ledger = ledger
        self.index = index
        self.verifiers = verifiers
        self.refreshed: RefreshStats = index.refresh(progress)
        self._sign_if_behind()
        self.checkpoint = self._checkpoint()

    @classmethod
    def open(
        cls, paths: ProjectPaths, *, progress: Callable[[int, int], None] | None = None
    ) -> AuditView:
        """Open the ledger without signing keys, the index (topped up, `progress(done, total)`
        while it catches up), the verifier keys, and the newest signed checkpoint."""
        paths.require_initialised()
        origin = load_config(paths).get("log", {}).get("origin")
        if not isinstance(origin, str):
            raise InputError("[log] origin is missing from config.toml", field="log.origin")
        verifiers = log_verifiers(paths)
        url = ledger_url(paths)
        if is_postgres_url(url):  # one shared log: read through the driver
            ledger: Any = PostgresLedger(url, origin=origin, create=False)
            index = LedgerIndex.open(paths.home / INDEX_FILE, ledger)
        else:
            ledger = Ledger(paths.ledger_db, origin=origin, use_writer_process=False, create=False)
            index = LedgerIndex.open(paths.home / INDEX_FILE, paths.ledger_db)
        return cls(paths, ledger, index, verifiers, progress)

    def close(self) -> None:
        self.index.close()
        self.ledger.close()

    def __enter__(self) -> AuditView:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def origin(self) -> str:
        return self.ledger.origin

    def _sign_if_behind(self) -> None:
        """Sign a checkpoint for the indexed tree when the newest one is older (a log written
        without a checkpoint per batch): proofs need a signed head that covers the entries."""
        latest = self.index.latest_checkpoint()
        if latest is not None and latest[0] >= self.index.watermark:
            return
        from ledgerml.ledger.project import open_ledger

        with open_ledger(self.paths) as signer:
            signer.checkpoint()

    def refresh(self) -> None:
        """Index new entries and move to the newest signed checkpoint (cheap when idle)."""
        self.refreshed = self.index.refresh()
        self._sign_if_behind()
        latest = self.index.latest_checkpoint()
        if latest is None or latest[0] != self.checkpoint.size:
            self.checkpoint = self._checkpoint()

    def _checkpoint(self) -> SignedCheckpoint:
        latest = self.index.latest_checkpoint()
        if latest is None:
            raise VerificationError("the ledger has no signed checkpoint yet")
        size, note = latest
        cp = Checkpoint.from_note(note)
        try:
            verify_note(note, self.verifiers)
            ok, problem = cp.origin == self.origin, None
            if not ok:
                problem = f"checkpoint origin {cp.origin!r} is not the log's {self.origin!r}"
        except VerificationError as exc:
            ok, problem = False, str(exc)
        if cp.size != size:
            ok, problem = False, f"checkpoint row {size} holds a note for size {cp.size}"
        return SignedCheckpoint(cp.origin, cp.size, cp.root, note, ok, problem)

    def vkeys(self) -> list[str]:
        return [v.vkey() for v in self.verifiers]

    def prove(self, idx: int) -> ProvenEntry:
        """The entry at `idx` with its inclusion proof against the view's checkpoint."""
        try:
            data = self.index.entry(idx)
        except KeyError:
            raise InputError(
                f"no entry {idx} (tree size {self.ledger.size()})", field="index"
            ) from None
        leaf = hashlib.sha256(b"\x00" + data).digest()
        doc = orjson.loads(data)
        size = self.checkpoint.size
        proof: InclusionProof | None = None
        ok = False
        if idx < size:
            proof = self.ledger.inclusion_proof(idx, size)
            ok = self.checkpoint.signature_ok and merkle.verify_inclusion(
                leaf, idx, size, proof.hashes, self.checkpoint.root
            )
        return ProvenEntry(
            idx,
            str(doc.get("type", "")),
            str(doc.get("time", "")),
            str(doc.get("actor", "")),
            doc.get("body", {}) if isinstance(doc.get("body"), dict) else {},
            data,
            leaf,
            proof,
            ok,
        )
