"""The CLI root: `--home` after the command as well as before it, and the operating system's
refusals (full disk, read-only media, a file where a folder is due, …) as clear exit-2 lines."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ledgerml.ledger import init_project
from tests.reliability.harness import can_mount, fill, small_tmpfs


def ledgerml(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """The real CLI with no LEDGERML_HOME and a cwd without ./.ledgerml: only --home counts."""
    env = dict(os.environ, COLUMNS="200")
    env.pop("LEDGERML_HOME", None)
    return subprocess.run(
        [sys.executable, "-m", "ledgerml.cli.main", *args],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


def ok(run: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert run.returncode == 0, run.stderr
    return run


def test_home_is_accepted_after_the_command(tmp_path: Path) -> None:
    home = tmp_path / "proj"
    ok(ledgerml(tmp_path, "init", "--home", str(home), "--origin", "after.example/log"))
    assert (home / "config.toml").is_file()
    shown = json.loads(ok(ledgerml(tmp_path, "keys", "show", "--json", "--home", str(home))).stdout)
    assert shown["origin"] == "after.example/log"
    ok(ledgerml(tmp_path, "log", "append", "--home", str(home), "--type", "x.note",
                "--body", '{"text":"--home"}'))  # fmt: skip
    log = json.loads(ok(ledgerml(tmp_path, "log", "show", f"--home={home}", "--json")).stdout)
    assert log["tree_size"] == 1 and log["entries"][0]["entry"]["body"] == {"text": "--home"}
    ok(ledgerml(tmp_path, "store", "ls", "--home", str(home)))
    ok(ledgerml(tmp_path, "data", "ls", "--json", "--home", str(home)))
    # serve parses --home like the others and gets as far as checking its own options
    serve = ledgerml(tmp_path, "serve", "--home", str(home), "--port", "70000")
    assert serve.returncode == 2 and "--port" in serve.stderr
    assert "No such option" not in serve.stderr
    # after the command wins over before it (the one typed last)
    other = tmp_path / "other"
    init_project(other)
    after = ledgerml(tmp_path, "--home", str(other), "log", "show", "--json", "--home", str(home))
    assert json.loads(ok(after).stdout)["tree_size"] == 1


def test_init_home_that_is_a_file_or_under_one(tmp_path: Path) -> None:
    afile = tmp_path / "afile"
    afile.write_text("not a folder")
    run = ledgerml(tmp_path, "init", "--home", str(afile))
    assert run.returncode == 2 and f"{afile} exists and is not a folder" in run.stderr
    run = ledgerml(tmp_path, "--home", str(afile / "proj"), "init")
    assert run.returncode == 2 and "Not a directory" in run.stderr
    assert afile.read_text() == "not a folder"


def test_a_folder_or_a_file_where_the_other_is_due(tmp_path: Path) -> None:
    home = tmp_path / "proj"
    init_project(home)
    folder = tmp_path / "models"
    folder.mkdir()
    run = ledgerml(tmp_path, "--home", str(home), "store", "add", str(folder))
    assert run.returncode == 2 and f"not a regular file: {folder}" in run.stderr
    os.rename(home / "config.toml", home / "config.bak")
    (home / "config.toml").mkdir()  # a folder where the config is due: EISDIR
    run = ledgerml(tmp_path, "--home", str(home), "log", "show")
    assert run.returncode == 2 and "is a folder, not a file" in run.stderr
    (home / "config.toml").rmdir()
    os.rename(home / "config.bak", home / "config.toml")
    (home / "blocks").rename(home / "blocks.bak")
    (home / "blocks").write_text("a file where the blockstore folder is due")
    (tmp_path / "model.bin").write_bytes(b"weights")
    run = ledgerml(tmp_path, "--home", str(home), "store", "add", str(tmp_path / "model.bin"))
    assert run.returncode == 2, run.stderr
    assert "internal error" not in run.stderr and str(home / "blocks") in run.stderr


def test_full_disk_is_exit_2_saying_what_to_free(tmp_path: Path) -> None:
    problem = can_mount()
    if problem:
        pytest.skip(problem)
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(3 << 20))
    batch = tmp_path / "batch.jsonl"
    batch.write_text("".join(
        json.dumps({"type": "x.note", "body": {"text": "y" * 300, "i": i}}) + "\n"
        for i in range(500)
    ))  # fmt: skip
    with small_tmpfs(tmp_path / "mnt", "2m") as mnt:
        home = mnt / "proj"
        ok(ledgerml(tmp_path, "--home", str(home), "init"))
        add = ledgerml(tmp_path, "store", "add", str(big), "--home", str(home))
        assert add.returncode == 2, add.stderr
        assert "No space left on device" in add.stderr and "free space" in add.stderr
        assert str(home) in add.stderr  # which disk
        filler = fill(mnt)  # what is left, to the last byte
        append = ledgerml(tmp_path, "--home", str(home), "log", "append", "--jsonl", str(batch))
        assert append.returncode == 2, append.stderr
        assert "free space" in append.stderr and "internal error" not in append.stderr
        filler.unlink()
        assert ok(ledgerml(tmp_path, "--home", str(home), "verify")).returncode == 0


def test_read_only_media_is_exit_2_for_a_write(tmp_path: Path) -> None:
    problem = can_mount()
    if problem:
        pytest.skip(problem)
    with small_tmpfs(tmp_path / "mnt", "8m") as mnt:
        home = mnt / "proj"
        ok(ledgerml(tmp_path, "--home", str(home), "init"))
        subprocess.run(["mount", "-o", "remount,ro", str(mnt)], check=True)
        run = ledgerml(tmp_path, "--home", str(home), "log", "append", "--type", "x.note",
                       "--body", "{}")  # fmt: skip
        assert run.returncode == 2, run.stderr
        assert "read-only file system" in run.stderr and "writable copy" in run.stderr
        assert "internal error" not in run.stderr
