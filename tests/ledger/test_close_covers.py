"""Closing the last writer leaves the whole log covered by a signed checkpoint, on either
driver. Checkpoints are rate-limited (at most one per `checkpoint_interval_s`), so without a
checkpoint at close the newest entries of a process that appends and exits stay uncovered,
and `verify` (and `ledger migrate`'s check of its copy) reports them a minute later."""

from __future__ import annotations

from ledgerml.crypto.note import NoteSigner, verify_note
from ledgerml.crypto.signers import Ed25519Signer
from ledgerml.ledger.log import Checkpoint
from ledgerml.ledger.postgres import open_url

ORIGIN = "ledgerml.test/close"


def test_closing_signs_the_full_tree(ledger_url: str) -> None:
    signer = NoteSigner.ed25519(ORIGIN, Ed25519Signer.generate())
    with open_url(ledger_url, origin=ORIGIN, signers=[signer], checkpoint_interval_s=60.0) as a:
        for i in range(5):  # one checkpoint at most per minute: only the first is due
            a.append("x.n", {"i": i})
    with open_url(ledger_url, origin=ORIGIN) as reader:  # no keys: it cannot sign anything
        size = reader.size()
        newest = reader.newest_checkpoint()
    assert size == 5
    verify_note(newest, [signer.verifier])
    assert Checkpoint.from_note(newest).size == size
