"""The Ledger on a real SQLite file and on a real PostgreSQL database (the tests taking
`ledger` run on both drivers): proofs from tiles, atomicity, threads."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest
import rfc8785

from ledgerml.crypto.note import NoteSigner, verify_note
from ledgerml.crypto.signers import Ed25519Signer
from ledgerml.errors import InputError
from ledgerml.ledger import merkle
from ledgerml.ledger.log import Checkpoint, Ledger
from ledgerml.ledger.postgres import open_url

ORIGIN = "ledgerml.test/log"
CID = "bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy"


def decision(i: int, score: float = 0.5) -> dict:
    return {
        "decision_id": f"d-{i}",
        "model_cid": CID,
        "input_commitment": f"{i:064x}",
        "score": score,
        "threshold": 0.5,
        "outcome": "decline" if score >= 0.5 else "approve",
        "reasons": ["amount far above the customer's usual"],
    }


@pytest.fixture
def signer() -> NoteSigner:
    return NoteSigner.ed25519(ORIGIN, Ed25519Signer.generate())


@pytest.fixture
def ledger(ledger_url: str, signer: NoteSigner) -> Ledger:
    led = open_url(ledger_url, origin=ORIGIN, signers=[signer])
    yield led
    led.close()


def test_entries_are_canonical_and_proofs_match_an_in_memory_tree(ledger: Ledger) -> None:
    for i in range(70):
        ledger.append("decision.recorded", decision(i, score=i / 7))
    entries = [e for _, e in ledger.entries()]
    for e in entries:
        obj = json.loads(e)
        assert rfc8785.dumps(obj) == e
        assert set(obj) == {"v", "type", "time", "actor", "body", "sigs"}
    leaves = [merkle.leaf_hash(e) for e in entries]
    for n in (1, 2, 15, 16, 17, 31, 32, 33, 64, 70):
        root = merkle.root_from_leaf_hashes(leaves[:n])
        assert ledger.root(n) == root
        for i in range(n):
            proof = ledger.inclusion_proof(i, n)
            assert proof.leaf_hash == leaves[i] and proof.root == root
            assert merkle.verify_inclusion(leaves[i], i, n, proof.hashes, root)
        for m in range(n + 1):
            assert ledger.consistency_proof(m, n).verify()


def test_append_many_is_all_or_nothing(ledger: Ledger) -> None:
    ledger.append("x.first", {"n": 0})
    bad = [("decision.recorded", decision(1)), ("decision.recorded", {"decision_id": "x"})]
    with pytest.raises(InputError, match="item 1"):
        ledger.append_many(bad)
    assert ledger.size() == 1
    assert ledger.append_many([("x.a", {}), ("x.b", {"k": [1, 2]})]) == [1, 2]


@pytest.mark.parametrize(
    ("event_type", "body", "field"),
    [
        ("model.teleported", {}, "type"),
        ("decision.recorded", {"decision_id": "d"}, "body.model_cid"),
        ("decision.recorded", {**decision(1), "extra": 1}, "body.extra"),
        ("decision.recorded", {**decision(1), "score": "high"}, "body.score"),
        ("decision.recorded", [], "body"),
        ("x.custom", {"n": float("nan")}, "body.n"),
        ("x.custom", {"big": "x" * (1 << 20)}, "body"),
    ],
)
def test_bad_input_names_the_field_and_writes_nothing(
    ledger: Ledger, event_type: str, body: object, field: str
) -> None:
    with pytest.raises(InputError) as info:
        ledger.append(event_type, body)
    assert info.value.field == field
    assert ledger.size() == 0


def test_threads_share_group_commits(ledger: Ledger, signer: NoteSigner) -> None:
    results: list[int] = []
    lock = threading.Lock()

    def produce(k: int) -> None:
        for i in range(200):
            idx = ledger.append("x.thread", {"producer": k, "i": i})
            with lock:
                results.append(idx)

    threads = [threading.Thread(target=produce, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == list(range(1600))
    # fewer transactions than appends: producers shared them
    assert 0 < ledger.commits < 1600
    assert len(ledger.checkpoints()) <= ledger.commits
    assert ledger.verify([signer.verifier]).ok


def test_checkpoints_are_signed_notes_over_the_tree(ledger: Ledger, signer: NoteSigner) -> None:
    ledger.append_many([("x.n", {"i": i}) for i in range(5)])
    note = ledger.checkpoint()
    verify_note(note, [signer.verifier])
    cp = Checkpoint.from_note(note)
    assert (cp.origin, cp.size, cp.root) == (ORIGIN, 5, ledger.root())
    report = ledger.verify([signer.verifier])
    assert report.ok, report.problems
    assert report.checkpoints_checked == 1


def test_verify_fails_closed_without_the_right_key(ledger: Ledger) -> None:
    ledger.append("x.n", {})
    stranger = NoteSigner.ed25519(ORIGIN, Ed25519Signer.generate())
    report = ledger.verify([stranger.verifier])
    assert not report.ok
    assert report.problems[0].kind == "bad_signature"


def test_reopen_continues_the_same_tree(ledger_url: str, signer: NoteSigner) -> None:
    path = ledger_url
    with open_url(path, origin=ORIGIN, signers=[signer]) as first:
        first.append_many([("x.n", {"i": i}) for i in range(21)])
    with open_url(path, origin=ORIGIN, signers=[signer], create=False) as second:
        second.append_many([("x.n", {"i": i}) for i in range(21, 40)])
        leaves = [merkle.leaf_hash(e) for _, e in second.entries()]
        assert second.root() == merkle.root_from_leaf_hashes(leaves)
        assert second.verify([signer.verifier]).ok
    with pytest.raises(InputError, match="origin"):
        open_url(path, origin="someone.else/log", signers=[signer])


def test_parallel_verify_agrees_with_sequential(
    tmp_path: Path, signer: NoteSigner, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sqlite3

    from ledgerml.ledger import log as log_module

    monkeypatch.setattr(log_module, "PARALLEL_VERIFY_MIN", 100)
    path = tmp_path / "p.db"
    with Ledger(path, origin=ORIGIN, signers=[signer]) as led:
        for k in range(0, 1000, 250):
            led.append_many([("decision.recorded", decision(i)) for i in range(k, k + 250)])
        good = led.verify([signer.verifier], workers=2)
        assert good.ok and good.root == led.root() and good.tree_size == 1000
    with sqlite3.connect(path, isolation_level=None) as db:
        db.execute("DELETE FROM entries WHERE idx=700")
        (entry,) = db.execute("SELECT entry FROM entries WHERE idx=300").fetchone()
        db.execute("UPDATE entries SET entry=? WHERE idx=300", (entry.replace(b"d-300", b"d-3X0"),))
    with Ledger(path, origin=ORIGIN, signers=[signer]) as led:
        seq = led.verify([signer.verifier], workers=1)
        par = led.verify([signer.verifier], workers=2)
    assert seq.problems == par.problems
    kinds = [(p.kind, p.index) for p in par.problems if p.index is not None]
    assert ("modified", 300) in kinds and ("missing", 700) in kinds


def test_a_rewritten_and_resigned_log_fails_against_a_trusted_root(
    tmp_path: Path, signer: NoteSigner
) -> None:
    from ledgerml.ledger.log import TrustedRoot

    path = tmp_path / "t.db"
    with Ledger(path, origin=ORIGIN, signers=[signer]) as led:
        led.append_many([("x.n", {"i": i}) for i in range(40)])
        anchored = TrustedRoot(40, led.root(), "chain anchor #0")
        assert led.verify([signer.verifier], trusted=[anchored]).ok
    # the operator rewrites history with its own key: a fresh log, re-signed
    path.unlink()
    with Ledger(path, origin=ORIGIN, signers=[signer]) as led:
        led.append_many([("x.n", {"i": i if i != 5 else 500}) for i in range(40)])
        assert led.verify([signer.verifier]).ok  # locally consistent...
        report = led.verify([signer.verifier], trusted=[anchored])
    assert not report.ok  # ...but not with the anchor
    assert [(p.kind, p.checkpoint) for p in report.problems] == [("anchor_mismatch", 40)]


def test_bulk_appends_stream_through_the_writer_process(tmp_path: Path, signer: NoteSigner) -> None:
    from ledgerml.ledger import log as log_module

    n = log_module.PROCESS_WRITER_MIN * 3 + 7
    with Ledger(tmp_path / "bulk.db", origin=ORIGIN, signers=[signer]) as led:
        led.append("x.before", {})
        indices = led.append_many([("decision.recorded", decision(i)) for i in range(n)])
        assert indices == list(range(1, n + 1))
        assert led._process is not None  # the bulk path was taken
        led.append("x.after", {})  # the thread writer continues the same tree
        rows = [e for _, e in led.entries()]
        assert len({json.loads(e)["time"] for e in rows[1 : n + 1]}) == 1  # one batch time
        leaves = [merkle.leaf_hash(e) for e in rows]
        assert led.root() == merkle.root_from_leaf_hashes(leaves)
        for i in (0, 1, 300, n, n + 1):
            assert led.inclusion_proof(i).verify()
        # a bad item deep in a bulk batch: nothing of the batch is written
        bad = [("decision.recorded", decision(i)) for i in range(n)]
        bad[n - 3] = ("decision.recorded", {"decision_id": "broken"})
        with pytest.raises(InputError, match=f"item {n - 3}"):
            led.append_many(bad)
        assert led.size() == n + 2
        more = led.append_many([("x.bulk", {"i": i}) for i in range(n)])
        assert more[0] == n + 2
        report = led.verify([signer.verifier])
        assert report.ok and report.tree_size == 2 * n + 2, report.problems


def test_a_killed_bulk_append_leaves_nothing_half_written(tmp_path: Path) -> None:
    import signal
    import subprocess
    import sys
    import time

    signer_pem = Ed25519Signer.generate()
    path = tmp_path / "killed.db"
    note_signer = NoteSigner.ed25519(ORIGIN, signer_pem)
    with Ledger(path, origin=ORIGIN, signers=[note_signer]) as led:
        led.append("x.first", {})
    key_file = tmp_path / "key.pem"
    key_file.write_bytes(signer_pem.private_pem())
    script = f"""
import sys
from pathlib import Path
from ledgerml.crypto.note import NoteSigner
from ledgerml.crypto.signers import load_private_pem
from ledgerml.ledger.log import Ledger
signer = NoteSigner.ed25519({ORIGIN!r}, load_private_pem(Path({str(key_file)!r}).read_bytes()))
led = Ledger(Path({str(path)!r}), origin={ORIGIN!r}, signers=[signer])
print("go", flush=True)
led.append_many([("x.bulk", {{"i": i, "pad": "x" * 200}}) for i in range(400_000)])
print("done", flush=True)
"""
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "go"
    time.sleep(1.5)  # mid-stream: the writer process has inserted part of the batch
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    time.sleep(0.5)  # the orphaned writer sees end of input and rolls back
    with Ledger(path, origin=ORIGIN, signers=[note_signer]) as led:
        assert led.size() in (1, 400_001)
        report = led.verify([note_signer.verifier])
        assert report.ok, report.problems


def test_queries_by_type_are_not_fooled_by_nested_type_fields(ledger: Ledger) -> None:
    """A free-form body can hold `{"type": "model.promoted"}`; only the envelope's type counts."""
    cid = "bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy"
    spoof = {"alias": "champion", "model_cid": cid, "n": {"type": "model.promoted"}}
    ledger.append("x.note", spoof)
    ledger.append("model.promoted", {"alias": "champion", "model_cid": cid})
    ledger.append("x.note", {"type": "model.promoted", "v": 1})
    raw = [r for _, r in ledger.entries()]
    assert all(b'"type":"model.promoted"' in r for r in raw)  # a byte search would match all
    assert [i for i, _ in ledger.entries_of_type("model.promoted")] == [1]
    assert [i for i, _ in ledger.entries_of_type("x.note", "model.promoted", start=1)] == [1, 2]
    assert [i for i, _ in ledger.entries_of_type("x.note", containing=b'"n":')] == [0]
    assert ledger.count_of_type("model.promoted") == 1
    assert ledger.count_of_type("x.note") == 2
    assert list(ledger.entries_of_type()) == []
