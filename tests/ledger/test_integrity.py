"""Ledger integrity against someone with write access to the project folder (issue 17):
deleted checkpoints, the head copy outside ledger.db, vanished databases, `verify --since`,
replaced keys, read-only media, reserved types and bad CLI input. Real CLI processes on
real SQLite files; the attacks are what a shell user would do to ledger.db."""

from __future__ import annotations

import base64
import json
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from ledgerml.config import ProjectPaths
from ledgerml.crypto.note import NoteSigner, sign_note
from ledgerml.crypto.signers import Ed25519Signer
from ledgerml.errors import VerificationError
from ledgerml.ledger import merkle
from ledgerml.ledger.events import RESERVED_TYPES
from ledgerml.ledger.log import Checkpoint, Ledger, TrustedRoot, _Edge
from ledgerml.ledger.project import log_keys
from tests.conftest import run_cli

ORIGIN = "ledgerml.test/integrity"


def _append(home: Path, n: int, start: int = 0) -> None:
    lines = "".join(
        json.dumps({"type": "x.decision", "body": {"id": f"d-{i}", "outcome": "approve"}}) + "\n"
        for i in range(start, start + n)
    )
    r = run_cli(home, "log", "append", "--jsonl", "-", input_=lines)
    assert r.returncode == 0, r.stderr


@pytest.fixture
def home(tmp_path: Path) -> Path:
    home = tmp_path / "proj"
    assert run_cli(home, "init").returncode == 0
    _append(home, 10)
    return home


def _db(home: Path) -> sqlite3.Connection:
    return sqlite3.connect(home / "ledger.db", isolation_level=None)


def _verify(home: Path, *args: str) -> tuple[int, dict]:
    r = run_cli(home, "verify", "--json", *args)
    assert r.stdout, r.stderr
    return r.returncode, json.loads(r.stdout)


def _kinds(report: dict) -> set[str]:
    return {p["kind"] for p in report["problems"]}


def _rewrite_entry(db: sqlite3.Connection, index: int, old: bytes, new: bytes) -> None:
    """Change one entry and rebuild every tile from the entries, as an attacker would."""
    (entry,) = db.execute("SELECT entry FROM entries WHERE idx=?", (index,)).fetchone()
    assert old in entry
    db.execute("UPDATE entries SET entry=? WHERE idx=?", (entry.replace(old, new), index))
    leaves = [merkle.leaf_hash(e) for (e,) in db.execute("SELECT entry FROM entries ORDER BY idx")]
    tiles = _Edge(0, {}).append(leaves)
    db.execute("DELETE FROM tiles")
    db.executemany("INSERT INTO tiles VALUES (?, ?, ?)", [(t, i, h) for (t, i), h in tiles.items()])


def _counts(home: Path) -> tuple[int, int]:
    with _db(home) as db:
        entries = db.execute("SELECT COUNT(*) FROM entries").fetchone()[0]
        checkpoints = db.execute("SELECT COUNT(*) FROM checkpoints").fetchone()[0]
    return entries, checkpoints


# --- 1. deleted checkpoints, head copy, gaps, coverage ---------------------------------


def test_deleted_checkpoints_and_rebuilt_tiles_fail_and_the_writer_refuses(home: Path) -> None:
    with _db(home) as db:
        db.execute("DELETE FROM checkpoints")
        _rewrite_entry(db, 3, b'"approve"', b'"decline"')
    code, report = _verify(home)
    assert code == 1
    inconsistent = [p for p in report["problems"] if p["kind"] == "inconsistent"]
    assert inconsistent and inconsistent[0]["checkpoint"] == 10
    assert "head copy" in inconsistent[0]["detail"]
    before = _counts(home)
    for args in (["log", "append", "--type", "x.n", "--body", "{}"], ["log", "checkpoint"]):
        r = run_cli(home, *args)
        assert r.returncode == 1, r.stderr
        assert "no longer hash to the root" in r.stderr and "Refusing to write" in r.stderr
    assert _counts(home) == before  # nothing appended, no checkpoint signed over the forgery


def test_head_copy_deleted_too_fails_closed(home: Path) -> None:
    (home / "head.checkpoint").unlink()
    code, report = _verify(home)
    assert code == 1 and "head_copy" in _kinds(report)
    r = run_cli(home, "log", "append", "--type", "x.n", "--body", "{}")
    assert r.returncode == 1 and "head copy" in r.stderr and "missing" in r.stderr
    # the documented recovery for logs made before head copies: verify, then write it
    r = run_cli(home, "log", "restore-head")
    assert r.returncode == 0, r.stderr
    assert _verify(home)[0] == 0
    assert run_cli(home, "log", "restore-head").returncode == 2  # never replaces one


def test_newest_checkpoint_deleted_is_a_gap(home: Path) -> None:
    with _db(home) as db:
        db.execute("DELETE FROM checkpoints WHERE size=10")
    code, report = _verify(home)
    assert code == 1
    gap = [p for p in report["problems"] if p["kind"] == "checkpoint_gap"]
    assert gap and gap[0]["checkpoint"] == 10
    r = run_cli(home, "log", "append", "--type", "x.n", "--body", "{}")
    assert r.returncode == 1 and "checkpoints were deleted" in r.stderr


def test_entries_left_uncovered_beyond_the_grace_window(tmp_path: Path) -> None:
    signer = NoteSigner.ed25519(ORIGIN, Ed25519Signer.generate())
    with Ledger(tmp_path / "l.db", origin=ORIGIN, signers=[signer]) as led:
        for i in range(6):
            led.append("x.n", {"i": i}, time_="2026-01-01T00:00:00.000000Z")
            if i == 1:
                led.checkpoint()  # one of size 2
        led.checkpoint()
        assert led.verify([signer.verifier]).ok
    with sqlite3.connect(tmp_path / "l.db") as db:
        db.execute("DELETE FROM checkpoints WHERE size > 2")
    with Ledger(tmp_path / "l.db", origin=ORIGIN, signers=[signer]) as led:
        report = led.verify([signer.verifier])
        assert [(p.kind, p.index) for p in report.problems] == [("uncovered", 2)]
        # within the grace window the same log passes: a writer signs within 50 ms
        assert led.verify([signer.verifier], grace_s=10**9).ok


def test_anchored_prefix_then_forged_decision_and_deleted_checkpoints(tmp_path: Path) -> None:
    """The demo attack on a synthetic log: checkpoints above the anchored size deleted, a
    decision changed, tiles rebuilt. The anchor alone cannot see it; the head copy does."""
    signer = NoteSigner.ed25519(ORIGIN, Ed25519Signer.generate())
    path, head = tmp_path / "l.db", tmp_path / "head.checkpoint"
    with Ledger(path, origin=ORIGIN, signers=[signer], head_copy=head) as led:
        led.checkpoint()
        for k in range(20):
            led.append_many([("x.decision", {"i": k * 50 + j, "o": "approve"}) for j in range(50)])
        anchored = TrustedRoot(400, led.root(400), "the AuditAnchor contract")
        led.checkpoint()
    with sqlite3.connect(path, isolation_level=None) as db:
        db.execute("DELETE FROM checkpoints WHERE size > 400")
        _rewrite_entry(db, 600, b'"approve"', b'"decline"')
    with Ledger(path, origin=ORIGIN, head_copy=head, read_only=True) as led:
        report = led.verify([signer.verifier], trusted=[anchored])
    kinds = {p.kind for p in report.problems}
    assert "anchor_mismatch" not in kinds  # the anchored prefix is untouched
    assert [p.checkpoint for p in report.problems if p.kind == "inconsistent"] == [1000]
    writer = Ledger(path, origin=ORIGIN, signers=[signer], head_copy=head)
    with pytest.raises(VerificationError, match="no longer hash to the root"):
        writer.append("x.n", {})
    writer.close()


def test_vanished_or_emptied_ledger_is_never_recreated(home: Path) -> None:
    db = home / "ledger.db"
    for sidecar in ("-wal", "-shm"):
        Path(str(db) + sidecar).unlink(missing_ok=True)
    db.write_bytes(b"")
    for args in (["log", "append", "--type", "x.n", "--body", "{}"], ["verify"]):
        r = run_cli(home, *args)
        assert r.returncode == 1, r.stderr
        assert "empty (0 bytes)" in r.stderr and "only `ledgerml init` creates" in r.stderr
    assert db.stat().st_size == 0
    db.unlink()
    r = run_cli(home, "log", "append", "--type", "x.n", "--body", "{}")
    assert r.returncode == 1 and "is missing" in r.stderr
    assert not db.exists()


def _forge_with_the_key(home: Path) -> None:
    """An operator holding keys/ rewrites entry 3 and re-signs everything, head copy too."""
    keys = log_keys(ProjectPaths(home))
    with _db(home) as db:
        db.execute("DELETE FROM checkpoints")
        _rewrite_entry(db, 3, b'"approve"', b'"decline"')
        leaves = [merkle.leaf_hash(e) for (e,) in db.execute("SELECT entry FROM entries")]
        root = merkle.root_from_leaf_hashes(leaves)
        note = sign_note(Checkpoint(keys.origin, len(leaves), root).body(), keys.note_signers)
        db.execute("INSERT INTO checkpoints VALUES (?, ?, ?, ?)", (len(leaves), root, note, "now"))
    (home / "head.checkpoint").write_text(note)


def test_verify_since_an_auditors_checkpoint(home: Path, tmp_path: Path) -> None:
    kept = tmp_path / "kept.note"
    kept.write_text(run_cli(home, "log", "checkpoint").stdout)
    _append(home, 5, start=10)
    assert _verify(home, "--since", str(kept))[0] == 0
    _forge_with_the_key(home)
    assert _verify(home)[0] == 0  # the documented limit: the key holder re-signed locally
    code, report = _verify(home, "--since", str(kept))
    assert code == 1
    assert [p["checkpoint"] for p in report["problems"] if p["kind"] == "inconsistent"] == [10]


def test_verify_since_refuses_foreign_or_altered_notes(home: Path, tmp_path: Path) -> None:
    other = tmp_path / "other"
    assert run_cli(other, "init").returncode == 0
    foreign = tmp_path / "foreign.note"
    foreign.write_text(run_cli(other, "log", "checkpoint").stdout)
    code, report = _verify(home, "--since", str(foreign))
    assert code == 1 and "since" in _kinds(report)
    note = run_cli(home, "log", "checkpoint").stdout
    altered = tmp_path / "altered.note"
    altered.write_text(note.replace("\n10\n", "\n9\n", 1))
    code, report = _verify(home, "--since", str(altered))
    assert code == 1 and "since" in _kinds(report)
    r = run_cli(home, "verify", "--since", str(tmp_path / "nope.note"))
    assert r.returncode == 2 and "--since" in r.stderr


# --- 4. replaced keys, 6. rotation ---------------------------------------------------------


def test_a_key_from_another_project_is_refused(home: Path, tmp_path: Path) -> None:
    other = tmp_path / "other"
    assert run_cli(other, "init").returncode == 0
    shutil.copy(other / "keys" / "log-ed25519.pem", home / "keys" / "log-ed25519.pem")
    before = _counts(home)
    r = run_cli(home, "log", "append", "--type", "x.n", "--body", "{}")
    assert r.returncode == 1 and "is not this log's key" in r.stderr
    assert _counts(home) == before


def _forge_checkpoint(home: Path, size: int, signer: NoteSigner) -> None:
    with _db(home) as db:
        leaves = [
            merkle.leaf_hash(e)
            for (e,) in db.execute("SELECT entry FROM entries WHERE idx < ? ORDER BY idx", (size,))
        ]
        root = merkle.root_from_leaf_hashes(leaves)
        note = sign_note(Checkpoint(signer.name, size, root).body(), [signer])
        db.execute(
            "INSERT OR REPLACE INTO checkpoints VALUES (?, ?, ?, ?)", (size, root, note, "x")
        )


def test_key_rotation_schedule(home: Path) -> None:
    old = log_keys(ProjectPaths(home))
    r = run_cli(home, "keys", "rotate", "--json", "--reason", "scheduled")
    assert r.returncode == 0, r.stderr
    done = json.loads(r.stdout)
    rot = done["index"]
    assert rot == 10 and done["old_verifier_keys"] == [v.vkey() for v in old.note_verifiers]
    new = log_keys(ProjectPaths(home))
    assert (
        [v.vkey() for v in new.note_verifiers]
        == done["new_verifier_keys"]
        != [v.vkey() for v in old.note_verifiers]
    )
    (retired,) = [Path(f) for f in done["retired_key_files"]]
    assert retired.parent == home / "keys" and oct(retired.stat().st_mode & 0o777) == "0o600"
    _append(home, 3, start=10)
    code, report = _verify(home)
    assert code == 0, report  # old checkpoints (size <= 10) with the old key, later with new
    entry = json.loads(run_cli(home, "log", "show", "--from", "10", "--json").stdout)
    rotated = entry["entries"][0]["entry"]
    assert (
        rotated["type"] == "key.rotated"
        and rotated["sigs"][0]["key"] == old.note_verifiers[0].vkey()
    )
    # a checkpoint the retired key signs after its retirement fails, saying so
    _forge_checkpoint(home, 12, old.note_signers[0])
    code, report = _verify(home)
    assert code == 1
    (bad,) = [p for p in report["problems"] if p["kind"] == "bad_signature"]
    assert bad["checkpoint"] == 12 and "retired" in bad["detail"]
    # the new key signing a tree from before the rotation fails too
    with _db(home) as db:
        db.execute("DELETE FROM checkpoints WHERE size=12")
    _forge_checkpoint(home, 5, new.note_signers[0])
    code, report = _verify(home)
    assert code == 1 and [p["checkpoint"] for p in report["problems"]] == [5]


_OLD_WRITER = """
import sys
from pathlib import Path
from ledgerml.config import ProjectPaths
from ledgerml.ledger.project import open_ledger
ledger = open_ledger(ProjectPaths(Path(sys.argv[1])))
ledger.append("x.n", {"before": True})
print("ready", flush=True)
sys.stdin.readline()
try:
    ledger.append("x.n", {"after": True})
    print("appended")
except Exception as exc:
    print("refused:", exc)
"""


def test_a_running_writer_with_the_old_key_stops_after_rotation(home: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", _OLD_WRITER, str(home)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    assert run_cli(home, "keys", "rotate").returncode == 0
    out, _ = proc.communicate("go\n", timeout=60)
    assert out.startswith("refused:") and "restart the writer" in out
    assert _verify(home)[0] == 0


def test_post_quantum_rotation_keeps_verifying(tmp_path: Path) -> None:
    home = tmp_path / "pq"
    assert run_cli(home, "init", "--pq").returncode == 0
    _append(home, 2)
    r = run_cli(home, "keys", "rotate", "--json")
    assert r.returncode == 0, r.stderr
    assert len(json.loads(r.stdout)["new_verifier_keys"]) == 2
    _append(home, 2, start=2)
    assert _verify(home)[0] == 0


# --- 2. read-only media ----------------------------------------------------------------


def _run_read_only(copy: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run the CLI on `copy` as read-only media: a read-only bind mount for root (chmod does
    not stop root), chmod -R a-w otherwise."""
    cmd = [sys.executable, "-m", "ledgerml.cli.main", "--home", str(copy), *args]
    if args == ("true",):  # probe: can we make the mount at all?
        cmd = ["true"]
    env = dict(os.environ, COLUMNS="200")
    env.pop("LEDGERML_HOME", None)
    if os.geteuid() != 0:
        return subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    script = 'mount --bind "$1" "$1" && mount -o remount,bind,ro "$1" && shift && exec "$@"'
    return subprocess.run(
        ["unshare", "-m", "sh", "-c", script, "sh", str(copy), *cmd],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )


def test_read_only_copy_can_be_verified(home: Path, tmp_path: Path) -> None:
    if os.geteuid() == 0 and shutil.which("unshare") is None:
        pytest.skip("needs unshare for a read-only bind mount as root")
    copy = tmp_path / "copy"
    shutil.copytree(home, copy)
    for p in sorted(copy.rglob("*"), reverse=True):
        p.chmod(p.stat().st_mode & ~0o222)
    copy.chmod(0o555)
    if os.geteuid() == 0 and _run_read_only(copy, "true").returncode != 0:
        pytest.skip("no permission for a read-only bind mount here")
    probe = _run_read_only(copy, "verify", "--json")
    try:
        assert probe.returncode == 0, probe.stderr
        assert json.loads(probe.stdout)["tree_size"] == 10
        shown = _run_read_only(copy, "log", "show", "--json")
        assert shown.returncode == 0 and len(json.loads(shown.stdout)["entries"]) == 10
        proof = _run_read_only(copy, "log", "prove", "3")
        assert proof.returncode == 0 and json.loads(proof.stdout)["tree_size"] == 10
        note = _run_read_only(copy, "log", "checkpoint")
        assert note.returncode == 0 and note.stdout == (home / "head.checkpoint").read_text()
        appended = _run_read_only(copy, "log", "append", "--type", "x.n", "--body", "{}")
        assert appended.returncode != 0
    finally:
        for p in [copy, *copy.rglob("*")]:
            p.chmod(p.stat().st_mode | 0o200)


# --- 3. CLI input errors, 5. reserved types ----------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["log", "append", "--jsonl", "/tmp"], "is a folder"),
        (["log", "append", "--type", "x.n", "--body", "[" * 3000 + "]" * 3000], "nested deeper"),
        (["log", "show", "--from", "99999999999999999999"], "--from"),
        (["log", "prove", "99999999999999999999"], "INDEX"),
        (["log", "prove", "1", "--size", "99999999999999999999"], "--size"),
        (["log", "consistency", "1", "99999999999999999999"], "NEW"),
        (["log", "append", "--type", "model.promoted", "--body", "{}"], "ledgerml promote"),
        (["log", "append", "--type", "fl.round", "--body", "{}"], "ledgerml fl run"),
    ],
)
def test_bad_cli_input_exits_2_naming_the_field(home: Path, args: list[str], message: str) -> None:
    before = _counts(home)
    r = run_cli(home, *args)
    assert r.returncode == 2, (r.returncode, r.stderr)
    assert message in r.stderr and "Traceback" not in r.stderr
    assert _counts(home) == before


def test_every_reserved_type_is_refused_and_a_jsonl_with_one_writes_nothing(home: Path) -> None:
    assert {"decision.recorded", "key.rotated", "checkpoint.anchored"} <= set(RESERVED_TYPES)
    for event_type, owner in RESERVED_TYPES.items():
        r = run_cli(home, "log", "append", "--type", event_type, "--body", "{}")
        assert r.returncode == 2 and event_type in r.stderr and owner in r.stderr
    before = _counts(home)
    lines = '{"type":"x.ok","body":{}}\n{"type":"evaluation.recorded","body":{}}\n'
    r = run_cli(home, "log", "append", "--jsonl", "-", input_=lines)
    assert r.returncode == 2 and "line 2" in r.stderr and "reserved" in r.stderr
    assert _counts(home) == before
    body = '{"run_id":"r1","dataset_cids":[],"model_type":"xgboost"}'  # the README quick start
    assert run_cli(home, "log", "append", "--type", "run.started", "--body", body).returncode == 0


@pytest.mark.parametrize("kind", ["truncated", "garbage", "rsa", "empty"])
def test_broken_key_files_exit_2_naming_the_file(home: Path, kind: str) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = home / "keys" / "log-ed25519.pem"
    good = key.read_bytes()
    data = {
        "truncated": good[: len(good) // 2],
        "garbage": b"\x00\x17 not a key",
        "empty": b"",
        "rsa": rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
    }[kind]
    key.write_bytes(data)
    r = run_cli(home, "log", "append", "--type", "x.n", "--body", "{}")
    assert r.returncode == 2, r.stderr
    assert "log-ed25519.pem" in r.stderr and "Traceback" not in r.stderr
    assert base64.b64encode(good[40:80]).decode() not in r.stderr


def test_bulk_appends_through_the_writer_process_advance_the_head_copy(home: Path) -> None:
    _append(home, 600, start=10)  # >= 512 lines: streamed to the writer process
    note = (home / "head.checkpoint").read_text()
    assert Checkpoint.from_note(note).size == 610
    assert _verify(home)[0] == 0
    with _db(home) as db:
        _rewrite_entry(db, 300, b'"approve"', b'"decline"')
        db.execute("DELETE FROM checkpoints WHERE size > 10")
    r = run_cli(home, "log", "append", "--jsonl", "-", input_='{"type":"x.n","body":{}}\n' * 600)
    assert r.returncode == 1 and "Refusing to write" in r.stderr


def test_a_rotation_interrupted_after_its_commit_is_finished_on_next_open(home: Path) -> None:
    """Crash between the key.rotated commit and the key file swap: the staged key is the
    log's key now, and the next writer installs it instead of being refused."""
    from ledgerml.crypto.keys import stage_log_keys
    from ledgerml.ledger.project import open_ledger

    paths = ProjectPaths(home)
    old = log_keys(paths)
    staged = stage_log_keys(paths.keys, old.origin, post_quantum=False)
    with open_ledger(paths) as ledger:
        ledger.rotate_keys(staged.note_signers)  # committed; the files were never swapped
    assert (home / "keys" / "log-ed25519.next.pem").exists()
    _append(home, 2, start=10)
    assert not (home / "keys" / "log-ed25519.next.pem").exists()
    now = log_keys(paths)
    assert [v.vkey() for v in now.note_verifiers] == [v.vkey() for v in staged.note_verifiers]
    assert _verify(home)[0] == 0
