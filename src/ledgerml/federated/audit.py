"""Re-deriving a federated round from the ledger and the CAS alone.

An `fl.round` entry names the model the round started from (`previous_cid`), every
accepted update (`update_cid`, `update_hash`, `weight`) and the result
(`aggregate_cid`). Anyone with the ledger and the blocks can fetch those bytes, check
each update's SHA-256, redo the weighted aggregation (updates in bank-name order) and
compare the CID — no bank and no Flower needed.

    check = rederive_round(paths, ledger_index)
    assert check.ok, check.problems
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field

from ledgerml.config import ProjectPaths
from ledgerml.errors import InputError
from ledgerml.federated.models import aggregate_by


@dataclass(frozen=True)
class RoundCheck:
    """What re-deriving one round found."""

    index: int
    round: int
    logged_cid: str
    derived_cid: str | None
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems and self.derived_cid == self.logged_cid


def rederive_round(paths: ProjectPaths, index: int) -> RoundCheck:
    """Recompute the aggregate of the `fl.round` entry at `index` from the CAS."""
    from ledgerml.ledger import open_ledger
    from ledgerml.storage import cid_of_bytes, open_store

    with open_ledger(paths) as ledger:
        entry = json.loads(ledger.entry(index))
    if entry["type"] != "fl.round":
        raise InputError(f"entry {index} is {entry['type']}, not fl.round", field="index")
    body = entry["body"]
    store = open_store(paths)
    problems: list[str] = []
    if not body.get("previous_cid") or not body.get("strategy"):
        problems.append("the entry names no previous model or strategy")
        return RoundCheck(index, body["round"], body.get("aggregate_cid") or "", None, problems)
    base = store.read_bytes(body["previous_cid"])
    chosen: list[tuple[bytes, float]] = []
    for upd in sorted(body["updates"], key=lambda u: u["bank"]):
        if upd["weight"] <= 0:
            continue
        if not upd.get("update_cid"):
            problems.append(f"{upd['bank']}: weighted update without a CID")
            continue
        data = store.read_bytes(upd["update_cid"])
        if hashlib.sha256(data).hexdigest() != upd["update_hash"]:
            problems.append(f"{upd['bank']}: stored update does not match update_hash")
        chosen.append((data, float(upd["weight"])))
    derived = cid_of_bytes(aggregate_by(body["strategy"], base, chosen))
    if derived != body["aggregate_cid"]:
        problems.append(f"aggregate CID {derived} != logged {body['aggregate_cid']}")
    return RoundCheck(index, body["round"], body["aggregate_cid"], derived, problems)
