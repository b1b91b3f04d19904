"""`ledgerml store …` as a user runs it: exit codes, JSON, raw bytes on stdout."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from ledgerml.cli import store as store_cli
from ledgerml.errors import InputError, VerificationError
from ledgerml.storage.cid import CHUNK_SIZE, cid_of_file


@dataclass
class Run:
    code: int
    out: bytes
    err: str


def _registered() -> bool:
    from ledgerml.cli.main import app

    return any(g.name == "store" for g in app.registered_groups)


def _root_app() -> typer.Typer:
    root = typer.Typer()

    @root.callback()
    def _cb(ctx: typer.Context, home: str = typer.Option(None, "--home")) -> None:
        ctx.obj = {"home": home}

    root.add_typer(store_cli.app, name="store")
    return root


def run_store(home: Path, *args: str) -> Run:
    """The real `ledgerml` process once main.py mounts the group; until then its module."""
    if _registered():
        env = dict(os.environ, COLUMNS="200")
        env.pop("LEDGERML_HOME", None)
        proc = subprocess.run(
            [sys.executable, "-m", "ledgerml.cli.main", "--home", str(home), "store", *args],
            capture_output=True,
            timeout=120,
            env=env,
            check=False,
        )
        return Run(proc.returncode, proc.stdout, proc.stderr.decode(errors="replace"))
    result = CliRunner().invoke(_root_app(), ["--home", str(home), "store", *args])
    exc = result.exception
    code = result.exit_code
    if isinstance(exc, InputError):
        code = 2
    elif isinstance(exc, VerificationError):
        code = 1
    elif exc is not None and not isinstance(exc, SystemExit):
        raise exc
    return Run(code, result.stdout_bytes, str(exc or result.stderr_bytes.decode(errors="replace")))


def test_add_cat_ls_verify(home: Path, tmp_path: Path) -> None:
    data = os.urandom(2 * CHUNK_SIZE + 99)
    src = tmp_path / "model.bin"
    src.write_bytes(data)
    added = run_store(home, "add", str(src), "--json")
    assert added.code == 0, added.err
    doc = json.loads(added.out)
    assert doc == {"cid": cid_of_file(src), "size": len(data)}

    cat = run_store(home, "cat", doc["cid"])
    assert cat.code == 0 and cat.out == data

    listed = run_store(home, "ls", "--json")
    assert json.loads(listed.out) == [{"cid": doc["cid"], "size": len(data), "pinned": True}]

    assert run_store(home, "unpin", doc["cid"]).code == 0
    assert json.loads(run_store(home, "ls", "--json").out)[0]["pinned"] is False
    assert run_store(home, "pin", doc["cid"]).code == 0

    ok = run_store(home, "verify", "--json")
    assert ok.code == 0 and json.loads(ok.out)["ok"] is True


def test_verify_exits_1_naming_the_corrupt_cid(home: Path, tmp_path: Path) -> None:
    src = tmp_path / "f"
    src.write_bytes(b"precious model weights")
    cid = json.loads(run_store(home, "add", str(src), "--json").out)["cid"]
    block = home / "blocks" / cid[-3:-1] / cid
    block.write_bytes(b"tampered model weights")
    bad = run_store(home, "verify", "--json")
    assert bad.code == 1
    assert json.loads(bad.out)["corrupt"] == [cid]
    plain = run_store(home, "verify")
    assert plain.code == 1 and cid in plain.err
    cat = run_store(home, "cat", cid)
    assert cat.code == 1 and cid in cat.err and cat.out == b""


def test_cat_writes_nothing_when_a_later_block_is_corrupt(home: Path, tmp_path: Path) -> None:
    """Two chunks, the second corrupt: the first, good, chunk must not reach stdout either."""
    from ledgerml.storage import BlockStore
    from ledgerml.storage.cid import cid_str, decode_file_node

    src = tmp_path / "two-chunks"
    src.write_bytes(b"A" * CHUNK_SIZE + b"B" * 1000)
    cid = json.loads(run_store(home, "add", str(src), "--json").out)["cid"]
    store = BlockStore(home / "blocks")
    links = decode_file_node(store.get_block(cid)).links
    assert len(links) == 2
    second = cid_str(links[1].cid)
    block = home / "blocks" / second[-3:-1] / second
    block.write_bytes(b"C" * 1000)  # same size, other bytes
    cat = run_store(home, "cat", cid)
    assert cat.code == 1 and second in cat.err
    assert cat.out == b""  # not the verified first 256 KiB either


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (("add", "/nonexistent/file.bin"), "path"),
        (("cat", "not-a-cid"), "cid"),
        (("cat", "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"), "not in store"),
        (("pin", "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"), "not in store"),
    ],
)
def test_bad_input_exits_2(home: Path, args: tuple[str, ...], needle: str) -> None:
    run = run_store(home, *args)
    assert run.code == 2
    assert needle in run.err


def test_uninitialised_project_is_input_error(tmp_path: Path) -> None:
    run = run_store(tmp_path / "nowhere", "ls")
    assert run.code == 2
