"""The ledger through the real CLI on real database files: tampering, crashes,
concurrent processes, bad input, post-quantum checkpoints."""

from __future__ import annotations

import base64
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import run_cli

CID = "bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy"


def _events(n: int) -> str:
    lines = []
    for i in range(n):
        body = {
            "decision_id": f"d-{i}",
            "model_cid": CID,
            "input_commitment": f"{i:064x}",
            "score": 0.25 + i / (4 * n),
            "threshold": 0.5,
            "outcome": "approve",
            "reasons": [],
        }
        lines.append(json.dumps({"type": "x.decision", "body": body}))
    return "\n".join(lines) + "\n"


@pytest.fixture
def project(tmp_path: Path) -> Path:
    home = tmp_path / "proj"
    r = run_cli(home, "init")
    assert r.returncode == 0, r.stderr
    # three batches, so there are several signed checkpoints
    for _ in range(3):
        r = run_cli(home, "log", "append", "--jsonl", "-", input_=_events(10))
        assert r.returncode == 0, r.stderr
    r = run_cli(home, "verify")
    assert r.returncode == 0, (r.stdout, r.stderr)
    return home


def _db(home: Path) -> sqlite3.Connection:
    return sqlite3.connect(home / "ledger.db", isolation_level=None)


def _verify(home: Path) -> tuple[int, dict]:
    r = run_cli(home, "verify", "--json")
    return r.returncode, json.loads(r.stdout)


def test_untouched_log_verifies(project: Path) -> None:
    code, report = _verify(project)
    assert code == 0 and report["ok"] and report["tree_size"] == 30
    assert report["checkpoints_checked"] == 4  # init signs the empty tree too


def test_one_changed_byte_is_found(project: Path) -> None:
    with _db(project) as db:
        (entry,) = db.execute("SELECT entry FROM entries WHERE idx=17").fetchone()
        changed = bytearray(entry)
        changed[changed.index(b"approve")] = ord("A")  # one byte: approve -> Approve
        db.execute("UPDATE entries SET entry=? WHERE idx=17", (bytes(changed),))
    code, report = _verify(project)
    assert code == 1
    assert report["problems"][0] == {
        "kind": "modified",
        "index": 17,
        "detail": "entry 17 does not hash to its logged leaf",
    }


def test_modification_with_rewritten_hashes_breaks_the_checkpoints(project: Path) -> None:
    """An attacker who also rewrites the stored hashes still cannot re-sign."""
    with _db(project) as db:
        (entry,) = db.execute("SELECT entry FROM entries WHERE idx=3").fetchone()
        db.execute("UPDATE entries SET entry=? WHERE idx=3", (entry.replace(b"d-3", b"d-X"),))
        db.execute("DELETE FROM tiles")
    code, report = _verify(project)
    assert code == 1
    kinds = {p["kind"] for p in report["problems"]}
    assert "inconsistent" in kinds
    assert {p.get("checkpoint") for p in report["problems"] if p["kind"] == "inconsistent"} == {
        10,
        20,
        30,
    }


def test_deleted_entry_is_found(project: Path) -> None:
    with _db(project) as db:
        db.execute("DELETE FROM entries WHERE idx=12")
    code, report = _verify(project)
    assert code == 1
    assert report["problems"][0]["kind"] == "missing"
    assert report["problems"][0]["index"] == 12


def test_swapped_entries_are_found(project: Path) -> None:
    with _db(project) as db:
        a = db.execute("SELECT entry FROM entries WHERE idx=4").fetchone()[0]
        b = db.execute("SELECT entry FROM entries WHERE idx=25").fetchone()[0]
        db.execute("UPDATE entries SET entry=? WHERE idx=4", (b,))
        db.execute("UPDATE entries SET entry=? WHERE idx=25", (a,))
    code, report = _verify(project)
    assert code == 1
    assert report["problems"][0] == {
        "kind": "reordered",
        "index": 4,
        "detail": "entry 4 is the entry logged at 25",
    }


def test_truncation_below_a_signed_checkpoint_is_found(project: Path) -> None:
    with _db(project) as db:
        db.execute("DELETE FROM entries WHERE idx >= 25")
        db.execute("UPDATE meta SET value='25' WHERE key='size'")
    code, report = _verify(project)
    assert code == 1
    truncated = [p for p in report["problems"] if p["kind"] == "truncated"]
    assert truncated and truncated[0]["checkpoint"] == 30


def test_altered_checkpoint_signature_is_found(project: Path) -> None:
    with _db(project) as db:
        (note,) = db.execute("SELECT note FROM checkpoints WHERE size=20").fetchone()
        sig = note.rstrip("\n").rsplit(" ", 1)[1]
        raw = bytearray(base64.b64decode(sig))
        raw[-1] ^= 0x01
        forged = note.replace(sig, base64.b64encode(bytes(raw)).decode())
        db.execute("UPDATE checkpoints SET note=? WHERE size=20", (forged,))
    code, report = _verify(project)
    assert code == 1
    assert report["problems"] == [
        {"kind": "bad_signature", "checkpoint": 20, "detail": report["problems"][0]["detail"]}
    ]
    human = run_cli(project, "verify")
    assert human.returncode == 1 and "checkpoint 20" in human.stdout


@pytest.mark.parametrize(
    ("args", "stdin", "message"),
    [
        (["--type", "x.note", "--body", "{not json"], None, "invalid JSON"),
        (["--type", "run.started", "--body", '{"run_id": "r"}'], None, "body.dataset_cids"),
        (["--type", "model.teleported", "--body", "{}"], None, "unknown event type"),
        (
            ["--jsonl", "-"],
            json.dumps({"type": "x.big", "body": {"blob": "x" * (1 << 20)}}),
            "1 MiB",
        ),
        (
            ["--jsonl", "-"],
            '{"type":"x.ok","body":{}}\n{"type":"x.bad","body":{"n":NaN}}\n',
            "line 2",
        ),
        (["--jsonl", "-"], '{"type":"x.ok","body":{}}\n{"type":"nope","body":{}}\n', "unknown"),
        (["--jsonl", "/does/not/exist.jsonl"], None, "no such file"),
    ],
)
def test_bad_input_exits_2_and_appends_nothing(
    project: Path, args: list[str], stdin: str | None, message: str
) -> None:
    r = run_cli(project, "log", "append", *args, input_=stdin)
    assert r.returncode == 2, r.stderr
    assert message in r.stderr
    assert json.loads(run_cli(project, "verify", "--json").stdout)["tree_size"] == 30


def test_cli_proofs_verify_independently(project: Path) -> None:
    from ledgerml.ledger import merkle

    proof = json.loads(run_cli(project, "log", "prove", "7", "--size", "20", "--json").stdout)
    exported = [
        json.loads(line)
        for line in run_cli(project, "log", "export", "--jsonl").stdout.splitlines()
    ]
    entry = base64.b64decode(exported[7]["entry"])
    assert merkle.leaf_hash(entry).hex() == proof["leaf_hash"] == exported[7]["leaf_hash"]
    assert merkle.verify_inclusion(
        bytes.fromhex(proof["leaf_hash"]),
        7,
        20,
        [bytes.fromhex(h) for h in proof["hashes"]],
        bytes.fromhex(proof["root"]),
    )
    cons = json.loads(run_cli(project, "log", "consistency", "10", "30", "--json").stdout)
    assert merkle.verify_consistency(
        10,
        30,
        bytes.fromhex(cons["first_root"]),
        bytes.fromhex(cons["second_root"]),
        [bytes.fromhex(h) for h in cons["hashes"]],
    )
    assert run_cli(project, "log", "prove", "30").returncode == 2


_APPENDER = """
import sys
from ledgerml.config import ProjectPaths
from ledgerml.ledger.project import open_ledger
ledger = open_ledger(ProjectPaths(__import__("pathlib").Path(sys.argv[1])))
tag = sys.argv[2]
count = int(sys.argv[3])
i = 0
while count < 0 or i < count:
    index = ledger.append("x.load", {"producer": tag, "i": i})
    print(index, flush=True)  # printed only after the append is durable
    i += 1
ledger.close()
"""


def test_sigkill_loses_no_acknowledged_append(tmp_path: Path) -> None:
    home = tmp_path / "proj"
    assert run_cli(home, "init").returncode == 0
    proc = subprocess.Popen(
        [sys.executable, "-c", _APPENDER, str(home), "crash", "-1"],
        stdout=subprocess.PIPE,
        text=True,
    )
    acknowledged = []
    assert proc.stdout is not None
    deadline = time.monotonic() + 60
    while len(acknowledged) < 300 and time.monotonic() < deadline:
        acknowledged.append(int(proc.stdout.readline()))
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert len(acknowledged) == 300
    with sqlite3.connect(home / "ledger.db") as db:
        present = {row[0] for row in db.execute("SELECT idx FROM entries")}
    assert set(acknowledged) <= present
    code, report = _verify(home)
    assert code == 0, report
    assert report["tree_size"] >= 300


def test_four_processes_append_concurrently(tmp_path: Path) -> None:
    home = tmp_path / "proj"
    assert run_cli(home, "init").returncode == 0
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _APPENDER, str(home), f"p{k}", "2000"],
            stdout=subprocess.PIPE,
            text=True,
        )
        for k in range(4)
    ]
    indices = []
    for p in procs:
        out, _ = p.communicate(timeout=300)
        assert p.returncode == 0
        indices += [int(x) for x in out.split()]
    assert sorted(indices) == list(range(8000))
    code, report = _verify(home)
    assert code == 0 and report["tree_size"] == 8000


def test_post_quantum_checkpoints_carry_and_require_both_lines(tmp_path: Path) -> None:
    home = tmp_path / "pq"
    assert run_cli(home, "init", "--pq").returncode == 0
    assert run_cli(home, "log", "append", "--type", "x.n", "--body", "{}").returncode == 0
    note = run_cli(home, "log", "checkpoint").stdout
    sig_lines = [line for line in note.splitlines() if line.startswith("\u2014 ")]
    assert len(sig_lines) == 2
    keys = json.loads(run_cli(home, "keys", "show", "--json").stdout)
    types = sorted(base64.b64decode(v.split("+", 2)[2])[0] for v in keys["verifier_keys"])
    assert types == [0x01, 0x06]
    assert len(base64.b64decode(sig_lines[1].rsplit(" ", 1)[1])) == 4 + 8 + 2420
    assert run_cli(home, "verify").returncode == 0
    # strip the ML-DSA line from every stored checkpoint: verify must fail
    with _db(home) as db:
        for size, stored in db.execute("SELECT size, note FROM checkpoints").fetchall():
            db.execute(
                "UPDATE checkpoints SET note=? WHERE size=?", (stored.rsplit("\u2014", 1)[0], size)
            )
    code, report = _verify(home)
    assert code == 1 and report["problems"][0]["kind"] == "bad_signature"
    assert "lacks a signature" in report["problems"][0]["detail"]
