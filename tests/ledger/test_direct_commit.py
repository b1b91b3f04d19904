"""A caller that finds the SQLite writer thread idle commits on its connection itself
(`Ledger.commit`): the entry is durable on return, the writer thread still signs a checkpoint
of it within the interval (it is woken if it slept with no deadline), and callers that race
it still get distinct consecutive indices."""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

from ledgerml.crypto.note import NoteSigner
from ledgerml.crypto.signers import Ed25519Signer
from ledgerml.ledger.sqlite import Ledger

ORIGIN = "ledgerml.test/direct"


def _stored_checkpoint_size(path: Path) -> int:
    """The newest stored checkpoint's size, read on a connection of the test's own."""
    with sqlite3.connect(path) as conn:
        return int(conn.execute("SELECT COALESCE(MAX(size), 0) FROM checkpoints").fetchone()[0])


def _wait_for_checkpoint(path: Path, size: int, within_s: float) -> bool:
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        if _stored_checkpoint_size(path) >= size:
            return True
        time.sleep(0.01)
    return False


def test_an_idle_writer_is_woken_to_sign_what_a_caller_committed(tmp_path: Path) -> None:
    path = tmp_path / "ledger.db"
    signer = NoteSigner.ed25519(ORIGIN, Ed25519Signer.generate())
    ledger = Ledger(path, origin=ORIGIN, signers=[signer], checkpoint_interval_s=0.05)
    try:
        assert ledger.append("x.n", {"i": 0}) == 0  # starts the writer thread
        assert _wait_for_checkpoint(path, 1, 5.0)
        time.sleep(0.2)  # everything signed: the writer now sleeps with no deadline
        commits = ledger.commits
        assert ledger.append("x.n", {"i": 1}) == 1
        assert ledger.commits == commits + 1
        # durable on return: another connection sees it at once
        with sqlite3.connect(path) as conn:
            assert conn.execute("SELECT COUNT(*) FROM entries").fetchone()[0] == 2
        # and signed within the interval by the writer thread, with no further call here
        assert _wait_for_checkpoint(path, 2, 5.0), "the entry was never covered"
    finally:
        ledger.close()


def test_callers_racing_the_direct_path_get_consecutive_indices(tmp_path: Path) -> None:
    path = tmp_path / "ledger.db"
    signer = NoteSigner.ed25519(ORIGIN, Ed25519Signer.generate())
    got: list[int] = []
    lock = threading.Lock()

    with Ledger(path, origin=ORIGIN, signers=[signer]) as ledger:

        def produce(k: int) -> None:
            for i in range(200):
                index = ledger.append("x.n", {"k": k, "i": i})
                with lock:
                    got.append(index)
                if i % 50 == 0:
                    time.sleep(0.005)  # let the writer go idle now and then

        threads = [threading.Thread(target=produce, args=(k,)) for k in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        report = ledger.verify([signer.verifier])
    assert sorted(got) == list(range(1200))
    assert report.ok and report.tree_size == 1200, report.problems
