"""Faults below the code: a full disk, fsync failing with EIO, the chain node going away.

What each simulates, exactly:
- disk full: a real 8 MiB tmpfs (mounted and unmounted here; needs root and mount) holding
  the project, filled with a file until write() returns ENOSPC;
- fsync EIO: a shim compiled here with gcc and loaded with LD_PRELOAD into the CLI
  process only, making fsync/fdatasync of files under the project return EIO (the data
  still reaches the page cache: this is the error report of a failing disk, not lost
  pages); never used outside this test;
- chain node stopping: our own anvil with automine off, stopped (SIGTERM, state saved)
  while `chain anchor` waits for its transaction's receipt, then restarted from that state.

For each: the failing command says so without a traceback, nothing it was doing is
half-visible, every acknowledged entry is still there, and once the fault is gone the
same command succeeds and `verify` passes.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.reliability import harness


@pytest.fixture(scope="module")
def full_disk(tmp_path_factory: pytest.TempPathFactory) -> harness.FaultReport:
    reason = harness.can_mount()
    if reason is not None:
        pytest.skip(reason)
    return harness.disk_full(tmp_path_factory.mktemp("diskfull"))


def test_disk_full_loses_nothing_and_recovers(full_disk: harness.FaultReport) -> None:
    r = full_disk
    assert r.failed_exit != 0 and not r.traceback, r
    assert r.acknowledged_present == r.acknowledged == 3, r
    assert r.failed_entries_present == 0, r  # the batch is all or nothing
    assert r.rerun_exit == 0 and r.verify_final_exit == 0, r


def test_disk_full_is_a_clear_exit_2(full_disk: harness.FaultReport) -> None:
    assert full_disk.failed_exit == 2, full_disk
    assert "internal error" not in full_disk.failed_message, full_disk


def test_fsync_eio_loses_nothing_and_recovers(tmp_path: Path) -> None:
    shim = harness.build_eio_shim(tmp_path)
    if isinstance(shim, str):
        pytest.skip(shim)
    r = harness.fsync_eio(tmp_path, shim)
    assert r.failed_exit != 0 and not r.traceback, r  # never acknowledged
    assert r.acknowledged_present == r.acknowledged == 3, r
    assert r.failed_entries_present in (0, r.failed_entries_total), r  # never a part
    assert r.rerun_exit == 0 and r.verify_final_exit == 0, r


def test_chain_node_stopping_mid_anchor(tmp_path: Path) -> None:
    if not harness.ANVIL.exists():
        pytest.skip(f"anvil not installed ({harness.ANVIL}); `make chain-test-setup`")
    r = harness.chain_stops_mid_anchor(tmp_path)
    assert "pending when the node stopped: True" in r.detail, r  # the fault hit mid-tx
    assert r.failed_exit == 1 and not r.traceback, r
    assert r.failed_entries_present == 0, r  # no checkpoint.anchored for an unmined anchor
    assert r.verify_during_exit == 1, r  # anchors unreadable: fail closed
    assert r.acknowledged_present == r.acknowledged == 3, r
    assert r.rerun_exit == 0 and r.verify_final_exit == 0, r
    assert r.detail.endswith("1 anchor(s) on chain, 1 mirrored"), r
