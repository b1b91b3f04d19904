"""Key rotation on either driver: the rotation entry is signed by the old keys, the tree up to
it by the old keys and the tree including it by the new ones; another process still holding
the old keys is refused; `verify` passes with the current keys alone. On PostgreSQL with a
second writer appending concurrently through its own connection (another "host")."""

from __future__ import annotations

import threading

import pytest

from ledgerml.crypto.note import NoteSigner, verify_note
from ledgerml.crypto.signers import Ed25519Signer
from ledgerml.errors import InputError, VerificationError
from ledgerml.ledger.log import Checkpoint
from ledgerml.ledger.postgres import open_url

ORIGIN = "ledgerml.test/rotation"


def _signer() -> NoteSigner:
    return NoteSigner.ed25519(ORIGIN, Ed25519Signer.generate())


def test_rotation_then_old_writer_refused_and_verify_passes(ledger_url: str) -> None:
    old, new = _signer(), _signer()
    with (
        open_url(ledger_url, origin=ORIGIN, signers=[old]) as a,
        open_url(ledger_url, origin=ORIGIN, signers=[old]) as b,
    ):
        a.append_many([("x.n", {"i": i}) for i in range(20)])
        stop = threading.Event()
        appended: list[int] = []
        refused: list[BaseException] = []

        def other_host() -> None:  # b keeps appending until the rotation stops it
            k = 0
            while not stop.is_set():
                try:
                    appended.append(b.append("x.other", {"k": k}))
                except VerificationError as exc:
                    refused.append(exc)
                    return
                k += 1

        worker = threading.Thread(target=other_host)
        worker.start()
        try:
            while len(appended) < 5:
                threading.Event().wait(0.01)
            r = a.rotate_keys([new], reason="scheduled")
        finally:
            stop.set()
            worker.join(timeout=60)
        with pytest.raises(InputError):
            a.rotate_keys([new])  # the new keys must differ from the current ones
        a.append("x.n", {"after": True})
        size = a.size()
        a.checkpoint()
        notes = dict(a.checkpoints())
        # the tree before the rotation entry: old keys; the tree with it: new keys
        verify_note(notes[r], [old.verifier])
        verify_note(notes[r + 1], [new.verifier])
        with pytest.raises(VerificationError):
            verify_note(notes[r + 1], [old.verifier])
        assert Checkpoint.from_note(notes[r + 1]).size == r + 1
        report = a.verify([new.verifier])
        assert report.ok, report
        assert a.recorded_verifier_keys() == [new.verifier.vkey()]
        # the writer that still holds the old keys is refused, naming the cause
        if not refused:
            with pytest.raises(VerificationError, match="restart the writer"):
                for k in range(3):
                    b.append("x.other", {"late": k})
                    b.checkpoint()
        else:
            assert "restart the writer" in str(refused[0])
        assert size >= 20 + 5 + 2
