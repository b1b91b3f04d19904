"""SIGKILL at named points inside the real CLI: nothing acknowledged is lost, nothing
half-written is visible, and the next run recovers by itself.

Each scenario lives in `harness.py` (the bench reports the same figures); here the
figures are asserted. The server-side SIGKILL under load is
tests/serving/test_durability.py.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from ledgerml.faults import POINTS
from tests.datasets.conftest import PEOPLE, people_csv
from tests.reliability import harness

SRC = Path(__file__).resolve().parents[2] / "src" / "ledgerml"

LEDGER_POINTS = [
    "ledger.append.before_commit",
    "ledger.append.after_commit",
    "ledger.checkpoint.signed",
    "ledger.checkpoint.saved",
]


def test_every_kill_point_is_wired_into_the_code() -> None:
    """A point that no code calls any more would make its test pass vacuously."""
    called = set()
    for path in SRC.rglob("*.py"):
        called |= set(re.findall(r'crash_point\("([a-z_.]+)"\)', path.read_text()))
    assert called == set(POINTS)


def test_unknown_kill_point_is_refused() -> None:
    env = harness.cli_env()
    env["LEDGERML_CRASH_AT"] = "ledger.apend.after_commit"  # a typo must not test nothing
    done = subprocess.run(
        [sys.executable, "-c", "import ledgerml.faults"], env=env, capture_output=True, text=True
    )
    assert done.returncode != 0 and "unknown kill point" in done.stderr


def test_nth_pass_of_a_point_kills(tmp_path: Path) -> None:
    """`point@N`: the first N-1 commits go through, the N-th dies after committing."""
    home = tmp_path / "p"
    assert harness.run_cli(home, "init").returncode == 0
    lines = "\n".join(
        f'{{"type":"run.started","body":{{"run_id":"n{i}","dataset_cids":[],"model_type":"x"}}}}'
        for i in range(3)
    )
    src = tmp_path / "three.jsonl"
    src.write_text(lines + "\n")
    done = harness.run_cli(home, "log", "append", "--jsonl", str(src))  # one batch, one commit
    assert done.returncode == 0
    first = harness.append_run(home, "a", crash_at="ledger.append.after_commit@2")
    assert first.returncode == 0, first.stderr  # reached once only: no kill
    assert harness.run_ids(home) == ["n0", "n1", "n2", "a"]


@pytest.mark.parametrize("point", LEDGER_POINTS)
def test_kill_during_append(tmp_path: Path, point: str) -> None:
    report = harness.kill_ledger_appends(tmp_path / "p", point, rounds=1, per_round=2)
    assert report.kills == report.rounds, report
    assert report.acknowledged_present == report.acknowledged, report
    if point == "ledger.append.before_commit":
        assert report.killed_present == 0, report  # the open transaction rolled back
    else:
        assert report.killed_present == report.kills, report  # committed before the kill
    assert report.verify_after_kill_failures == 0, report  # no half-written state to see
    assert report.rerun_failures == 0 and report.verify_final_exit == 0, report


def test_kill_between_anchor_tx_and_mirror_entry(tmp_path: Path) -> None:
    report = harness.kill_anchoring(tmp_path / "p", rounds=1)
    assert report.kills == 1, report
    assert report.acknowledged_present == report.acknowledged, report
    assert report.rerun_failures == 0 and report.verify_final_exit == 0, report
    assert report.killed_present == 0, report  # every on-chain anchor mirrored in the log


def test_kill_in_vault_erase_before_commit(tmp_path: Path) -> None:
    subjects = list(PEOPLE)[:2]
    report = harness.kill_erasure(
        tmp_path / "p", "vault.erase.before_commit", people_csv(tmp_path / "people.csv"), subjects
    )
    assert report.kills == len(subjects), report
    assert report.killed_present == 0, report  # the key survived: rolled back, not shredded
    assert report.rerun_failures == 0, report
    assert report.acknowledged_present == report.acknowledged == len(subjects), report
    assert report.verify_final_exit == 0, report


def test_kill_in_vault_erase_after_commit(tmp_path: Path) -> None:
    subjects = list(PEOPLE)[:1]
    report = harness.kill_erasure(
        tmp_path / "p", "vault.erase.committed", people_csv(tmp_path / "people.csv"), subjects
    )
    assert report.kills == 1, report
    assert report.rerun_failures == 0, report
    assert harness.count_type(tmp_path / "p", "subject.erased") == 1, report


def test_kill_during_bundle_export(tmp_path: Path) -> None:
    report = harness.kill_bundle_export(tmp_path / "p", rounds=1)
    assert report.kills == 1, report
    assert report.killed_present == 0, report  # no half-written bundle under its name
    assert report.rerun_failures == 0, report
    assert report.acknowledged_present == report.acknowledged == 1, report  # verify-bundle OK
