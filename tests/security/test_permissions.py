"""Secret files 0600 and their folders 0700, whatever the umask; looser ones refused at open.

CI runs as root, who reads any file whatever its mode, so these tests check the mode
bits LedgerML creates and the refusals it makes, not access by another user.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

from ledgerml.config import ProjectPaths, load_config
from ledgerml.crypto.files import LoosePermissionsWarning, write_private
from ledgerml.crypto.keys import load_chain_seed
from ledgerml.errors import InputError
from ledgerml.ledger import init_project
from ledgerml.storage import Vault
from tests.conftest import run_cli


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def secrets_of(home: Path) -> list[Path]:
    """Every file of a project that holds a secret."""
    return [home / "config.toml", home / "vault.db", *sorted((home / "keys").rglob("*.*"))]


@pytest.mark.parametrize("umask", [0o000, 0o022, 0o077])
def test_init_and_vault_are_owner_only_whatever_the_umask(tmp_path: Path, umask: int) -> None:
    home = tmp_path / "proj"
    csv = tmp_path / "people.csv"
    csv.write_text("customer_id,name\nC-1,Zelda Quixotic\n")
    env = dict(os.environ, COLUMNS="200")
    env.pop("LEDGERML_HOME", None)
    for args in (
        ["init", "--pq"],
        ["data", "add", str(csv), "--name", "p", "--pii", "name", "--subject-col", "customer_id"],
    ):
        done = subprocess.run(
            [sys.executable, "-m", "ledgerml.cli.main", "--home", str(home), *args],
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
            preexec_fn=lambda: os.umask(umask),  # the umask is the point of the test
            check=False,
        )
        assert done.returncode == 0, done.stderr
    assert mode(home) == 0o700
    assert mode(home / "keys") == 0o700
    files = secrets_of(home)
    names = {p.name for p in files}
    assert {"config.toml", "vault.db", "log-ed25519.pem", "log-mldsa44.pem"} <= names
    assert {"chain.seed", "api-keys.toml"} <= names
    assert {p.name: oct(mode(p)) for p in files} == {p.name: oct(0o600) for p in files}


def test_loose_vault_is_refused_naming_file_mode_and_fix(tmp_path: Path) -> None:
    home = tmp_path / "proj"
    init_project(home)
    vault = Vault(ProjectPaths(home).vault_db)
    vault.put("C-1", "name", "Zelda Quixotic")
    os.chmod(vault.path, 0o644)
    run = run_cli(home, "data", "erase", "--subject", "C-1")
    assert run.returncode == 2, run.stderr
    assert str(vault.path) in run.stderr and "0644" in run.stderr
    assert f"chmod 600 {vault.path}" in run.stderr
    os.chmod(vault.path, 0o600)
    assert vault.has("C-1")  # refused before anything was erased


@pytest.mark.parametrize("side", ["-journal", "-wal", "-shm"])
def test_loose_sqlite_side_file_of_the_vault_is_refused(tmp_path: Path, side: str) -> None:
    path = tmp_path / "vault.db"
    Vault(path).put("C-1", "name", "Zelda Quixotic")
    loose = Path(f"{path}{side}")
    loose.write_bytes(b"")
    os.chmod(loose, 0o604)
    with pytest.raises(InputError, match=f"vault.db{side} is mode 0604"):
        Vault(path)


@pytest.mark.parametrize(
    ("name", "args"),
    [
        ("log-ed25519.pem", ("log", "append", "--type", "x.note", "--body", '{"a":1}')),
        ("api-keys.toml", ("keys", "api", "--role", "scorer")),
    ],
)
def test_loose_key_file_is_refused(tmp_path: Path, name: str, args: tuple[str, ...]) -> None:
    home = tmp_path / "proj"
    init_project(home)
    key = home / "keys" / name
    os.chmod(key, 0o640)
    run = run_cli(home, *args)
    assert run.returncode == 2, run.stderr
    assert f"{key} is mode 0640" in run.stderr and f"chmod 600 {key}" in run.stderr


def test_loose_chain_seed_is_refused(tmp_path: Path) -> None:
    home = tmp_path / "proj"
    init_project(home)
    os.chmod(home / "keys" / "chain.seed", 0o644)
    with pytest.raises(InputError, match=r"chain\.seed is mode 0644"):
        load_chain_seed(home / "keys")


def test_config_holding_api_keys_must_be_owner_only(tmp_path: Path) -> None:
    home = tmp_path / "proj"
    paths = init_project(home)
    config = paths.config_toml
    os.chmod(config, 0o644)  # no secret in it yet: others may read it
    assert run_cli(home, "log", "show").returncode == 0
    os.chmod(config, 0o664)  # but never change it (chain URL, post-quantum switch, ...)
    run = run_cli(home, "log", "show")
    assert run.returncode == 2 and f"{config} is mode 0664" in run.stderr
    os.chmod(config, 0o600)
    with config.open("a") as fh:
        fh.write('\n[serving.api_keys]\nscorer = "a-scorer-key-of-enough-length"\n')
    assert run_cli(home, "log", "show").returncode == 0
    os.chmod(config, 0o644)
    run = run_cli(home, "log", "show")
    assert run.returncode == 2, run.stderr
    assert f"{config} is mode 0644" in run.stderr and f"chmod 600 {config}" in run.stderr


def test_loose_project_folder_is_a_loud_warning(tmp_path: Path) -> None:
    home = tmp_path / "proj"
    paths = init_project(home)
    os.chmod(home, 0o755)
    run = run_cli(home, "log", "show")
    assert run.returncode == 0, run.stderr
    assert f"warning: {home} is mode 0755" in run.stderr and f"chmod 700 {home}" in run.stderr
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        load_config(paths)
    assert [w.category for w in caught] == [LoosePermissionsWarning]


def test_write_private_ignores_the_umask(tmp_path: Path) -> None:
    old = os.umask(0o000)
    try:
        write_private(tmp_path / "s" / "secret", b"x")
    finally:
        os.umask(old)
    assert mode(tmp_path / "s") == 0o700 and mode(tmp_path / "s" / "secret") == 0o600
    with pytest.raises(FileExistsError):
        write_private(tmp_path / "s" / "secret", b"y")  # never clobbers
    write_private(tmp_path / "s" / "secret", b"y", replace=True)
    assert (tmp_path / "s" / "secret").read_bytes() == b"y"
    assert mode(tmp_path / "s" / "secret") == 0o600


@pytest.mark.parametrize("name", ["out.decisions.jsonl", "out.csv"])
def test_score_output_holding_the_salts_is_owner_only(tmp_path: Path, name: str) -> None:
    from ledgerml.serving.batch import write_decisions
    from ledgerml.serving.decisions import Decision

    out = tmp_path / name
    out.write_text("an older, world-readable output\n")
    os.chmod(out, 0o644)
    made = Decision("d-1", 7, "bafkrei-model", 0.9, 0.5, "decline", ("v14",), "ab" * 32, "cd" * 16)
    old = os.umask(0o000)
    try:
        write_decisions(out, [made])
    finally:
        os.umask(old)
    assert mode(out) == 0o600 and "cd" * 16 in out.read_text()
