"""Anchor the ledger's signed checkpoints on chain, and read them back as trusted tree heads.

    result = anchor(paths)                 # AuditAnchor.anchor + a `checkpoint.anchored` entry
    report = ledger.verify(verifiers, trusted=trusted_roots(paths))

An anchor is a tree head the log operator cannot take back: a log rewritten after anchoring,
even one re-signed with the operator's own key, no longer hashes to the anchored root, and
`verify` names the anchored tree size. Reading anchors fails closed: when a deployment exists
but the chain cannot be read, `trusted_roots` raises `VerificationError`.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, TypedDict

import orjson

from ledgerml.config import ProjectPaths
from ledgerml.errors import InputError, LedgerMLError, VerificationError
from ledgerml.faults import crash_point
from ledgerml.ledger.log import Checkpoint, TrustedRoot, connect_read_only, count_of_type
from ledgerml.ledger.postgres import is_postgres_url
from ledgerml.ledger.project import AnyLedger, ledger_url, log_keys, open_ledger
from ledgerml.mlops._chain import has_deployment, project_chain, require_deployment

if TYPE_CHECKING:  # the chain stack loads only when anchors are read or written
    from ledgerml.chain import AnchorLog, AnchorRecord


@dataclass(frozen=True)
class AnchorResult:
    """One checkpoint put on chain (or found there already) and its mirror entry."""

    origin: str
    tree_size: int
    root: str
    note_sha256: str
    chain_id: int
    contract: str
    already_anchored: bool
    tx_hash: str | None = None
    block_number: int | None = None
    ledger_index: int | None = None
    #: mirror entries written for earlier anchors whose entry a crash had lost
    recovered: int = 0

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


class _Anchored(TypedDict):
    """The fields an `AnchorResult` shares with the checkpoint it anchors."""

    origin: str
    tree_size: int
    root: str
    note_sha256: str
    chain_id: int
    contract: str


def _latest_for(records: list[AnchorRecord], origin: str) -> AnchorRecord | None:
    mine = [r for r in records if r.origin == origin]
    return max(mine, key=lambda r: r.tree_size) if mine else None


def anchor(paths: ProjectPaths) -> AnchorResult:
    """Post the latest signed checkpoint to AuditAnchor and append `checkpoint.anchored`.

    Refuses (VerificationError) to anchor a log that no longer matches its latest anchor, so
    a rewritten log is never blessed by a fresh anchor. A log that grew only by its own
    `checkpoint.anchored` entries is reported as already anchored (no transaction).
    """
    with project_chain(paths) as chain:
        dep = require_deployment(chain, paths)
        from ledgerml.chain import AnchorLog

        log = AnchorLog(chain, dep.audit_anchor)
        with open_ledger(paths) as ledger:
            note = ledger.checkpoint()
            cp = Checkpoint.from_note(note)
            if cp.size == 0:
                raise InputError("the ledger is empty: nothing to anchor", field="ledger")
            note_sha = hashlib.sha256(note.encode("utf-8")).hexdigest()
            base: _Anchored = {
                "origin": cp.origin,
                "tree_size": cp.size,
                "root": cp.root.hex(),
                "note_sha256": note_sha,
                "chain_id": chain.chain_id,
                "contract": log.address,
            }
            records = [r for r in log.anchors() if r.origin == cp.origin]
            recovered = _mirror_missing(ledger, log, records, base)
            latest = _latest_for(records, cp.origin)
            if latest is not None and latest.tree_size <= cp.size:
                if ledger.root(latest.tree_size).hex() != latest.root_hash.removeprefix("0x"):
                    raise VerificationError(
                        f"the log's first {latest.tree_size} entries no longer match the root "
                        f"anchored on chain (anchor #{latest.index}); refusing to anchor"
                    )
                tail = [orjson.loads(e)["type"] for _, e in ledger.entries(latest.tree_size)]
                if all(t == "checkpoint.anchored" for t in tail[: cp.size - latest.tree_size]):
                    # Nothing new but our own anchor records: anchoring again would only
                    # chase its own tail. The next real entry gets them anchored too.
                    return AnchorResult(
                        **base
                        | {
                            "tree_size": latest.tree_size,
                            "root": latest.root_hash.removeprefix("0x"),
                            "note_sha256": latest.note_hash.removeprefix("0x"),
                        },
                        already_anchored=True,
                        block_number=latest.block_number,
                        recovered=recovered,
                    )
            tx = log.anchor_checkpoint(cp.origin, cp.size, cp.root, bytes.fromhex(note_sha))
            crash_point("anchor.tx_sent")
            body = {k: v for k, v in base.items() if k != "origin"}
            body |= {"tx_hash": tx.tx_hash, "block_number": tx.block_number}
            try:
                index = ledger.append("checkpoint.anchored", body)
            except Exception as exc:
                raise VerificationError(
                    f"checkpoint {cp.size} was anchored in {tx.tx_hash} but its ledger entry "
                    f"could not be appended: {exc}"
                ) from exc
    return AnchorResult(
        **base,
        already_anchored=False,
        tx_hash=tx.tx_hash,
        block_number=tx.block_number,
        ledger_index=index,
        recovered=recovered,
    )


def _mirror_missing(
    ledger: AnyLedger, log: AnchorLog, records: list[AnchorRecord], base: _Anchored
) -> int:
    """Append the `checkpoint.anchored` entry of every anchor of ours the log lacks.

    Why: a process killed after the anchor transaction but before its mirror entry leaves
    the chain saying more than the log; the next run finds the transaction and finishes the
    record. Only anchors whose root the log still hashes to are mirrored (a mismatch is
    `verify`'s to report, never ours to bless). Returns how many entries were written.
    """
    mirrored = {
        int(entry["body"]["tree_size"])
        for _, entry in ledger.entries_of_type("checkpoint.anchored")
        if str(entry["body"].get("contract", "")).lower() == log.address.lower()
    }
    size, written = ledger.size(), 0
    for rec in records:
        if rec.tree_size in mirrored or rec.tree_size > size:
            continue
        if ledger.root(rec.tree_size).hex() != rec.root_hash.removeprefix("0x"):
            continue
        tx_hash = log.tx_hash_of(rec)
        if tx_hash is None:
            continue
        body = {
            "tree_size": rec.tree_size,
            "root": rec.root_hash.removeprefix("0x"),
            "note_sha256": rec.note_hash.removeprefix("0x"),
            "chain_id": base["chain_id"],
            "contract": base["contract"],
            "tx_hash": tx_hash,
            "block_number": rec.block_number,
        }
        ledger.append("checkpoint.anchored", body)
        written += 1
    return written


def _read_anchors(paths: ProjectPaths) -> tuple[list[AnchorRecord], str]:
    origin = log_keys(paths).origin
    with project_chain(paths) as chain:
        dep = require_deployment(chain, paths)
        from ledgerml.chain import AnchorLog

        log = AnchorLog(chain, dep.audit_anchor)
        records = [r for r in log.anchors() if r.origin == origin]
        return records, f"AuditAnchor {log.address} on chain {chain.chain_id}"


def anchored(paths: ProjectPaths) -> list[AnchorRecord]:
    """Every anchor of this log's origin, oldest first ([] when nothing is deployed)."""
    if not has_deployment(paths):
        return []
    return _read_anchors(paths)[0]


def _recorded_anchor_count(paths: ProjectPaths) -> int:
    """How many `checkpoint.anchored` entries the local log holds."""
    if is_postgres_url(ledger_url(paths)):
        with open_ledger(paths, read_only=True) as ledger:
            return ledger.count_of_type("checkpoint.anchored")
    conn = connect_read_only(paths.ledger_db)  # also on read-only media
    try:
        return count_of_type(conn, "checkpoint.anchored")
    finally:
        conn.close()


def trusted_roots(paths: ProjectPaths) -> list[TrustedRoot]:
    """The anchored tree heads of this log, for `Ledger.verify(trusted=...)`.

    No deployment record means no anchors to check. With one, any failure to read the chain
    is a VerificationError: an anchor we cannot read must not count as checked.
    """
    if not has_deployment(paths):
        recorded = _recorded_anchor_count(paths)
        if recorded:
            # Deleting the deployment record must not switch the anchor check off.
            raise VerificationError(
                f"the ledger records {recorded} on-chain anchor(s) but {paths.chain} has no "
                "deployment record to check them against (fail closed); restore it, or use "
                "--skip-anchors to verify the local log only"
            )
        return []
    try:
        records, where = _read_anchors(paths)
    except LedgerMLError as exc:
        raise VerificationError(
            f"cannot read the anchored checkpoints from the chain ({exc}); "
            "use --skip-anchors to verify the local log only"
        ) from exc
    except Exception as exc:  # node errors of any kind: fail closed
        raise VerificationError(
            f"cannot read the anchored checkpoints from the chain "
            f"({type(exc).__name__}: {exc}); use --skip-anchors to verify the local log only"
        ) from exc
    return [
        TrustedRoot(
            tree_size=r.tree_size,
            root=bytes.fromhex(r.root_hash.removeprefix("0x")),
            source=f"anchor #{r.index} (block {r.block_number}) in {where}",
        )
        for r in records
    ]
