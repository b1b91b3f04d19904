"""`ledgerml init` generates one API key per service role; `keys api` prints and rotates them;
the real service (uvicorn over HTTP) accepts exactly the keys it prints."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import httpx

from ledgerml.config import ProjectPaths
from ledgerml.crypto.api_keys import API_ROLES
from ledgerml.serving.app import ROLES, create_app
from tests.conftest import run_cli, uvicorn_thread


def key_of(home: Path, role: str, *extra: str) -> str:
    run = run_cli(home, "keys", "api", "--role", role, *extra)
    assert run.returncode == 0, run.stderr
    (key,) = run.stdout.split()
    return key


def status(url: str, key: str) -> int:
    r = httpx.get(f"{url}/v1/checkpoint", headers={"Authorization": f"Bearer {key}"})
    return r.status_code


def test_init_generates_a_key_per_role_and_the_service_takes_them(tmp_path: Path) -> None:
    home = tmp_path / "proj"
    init = run_cli(home, "init")
    assert init.returncode == 0, init.stderr
    assert "ledgerml keys api --role scorer" in init.stdout
    assert ROLES == API_ROLES
    keys = {role: key_of(home, role) for role in ROLES}
    assert len(set(keys.values())) == 3 and all(len(k) >= 32 for k in keys.values())
    keyfile = ProjectPaths(home).api_keys_file
    assert stat.S_IMODE(keyfile.stat().st_mode) == 0o600
    for k in keys.values():  # printed by `keys api` only, never by `init`
        assert k not in init.stdout + init.stderr
    doc = json.loads(run_cli(home, "keys", "api", "--role", "auditor", "--json").stdout)
    assert doc == {"role": "auditor", "keys": [keys["auditor"]], "source": str(keyfile),
                   "rotated": False}  # fmt: skip

    with uvicorn_thread(create_app(ProjectPaths(home))) as url:
        assert status(url, keys["auditor"]) == 200
        assert status(url, keys["admin"]) == 200
        assert status(url, keys["scorer"]) == 403  # a scorer may not read
        assert status(url, "lml_" + "x" * 43) == 401

    old = keys["auditor"]
    new = key_of(home, "auditor", "--new")
    assert new != old and key_of(home, "auditor") == new
    assert key_of(home, "scorer") == keys["scorer"]  # the other roles keep theirs
    assert stat.S_IMODE(keyfile.stat().st_mode) == 0o600
    with uvicorn_thread(create_app(ProjectPaths(home))) as url:
        assert status(url, new) == 200
        assert status(url, old) == 401


def test_a_role_set_in_config_toml_replaces_the_generated_key(tmp_path: Path) -> None:
    home = tmp_path / "proj"
    assert run_cli(home, "init").returncode == 0
    generated = key_of(home, "auditor")
    mine = "my-own-auditor-key-0123456789"
    with ProjectPaths(home).config_toml.open("a") as fh:
        fh.write(f'\n[serving.api_keys]\nauditor = "{mine}"\n')
    assert key_of(home, "auditor") == mine
    refused = run_cli(home, "keys", "api", "--role", "auditor", "--new")
    assert refused.returncode == 2 and "config.toml" in refused.stderr
    with uvicorn_thread(create_app(ProjectPaths(home))) as url:
        assert status(url, mine) == 200
        assert status(url, generated) == 401


def test_keys_api_bad_role_and_old_project(tmp_path: Path) -> None:
    home = tmp_path / "proj"
    assert run_cli(home, "init").returncode == 0
    bad = run_cli(home, "keys", "api", "--role", "root")
    assert bad.returncode == 2 and "--role" in bad.stderr
    os.unlink(ProjectPaths(home).api_keys_file)  # a project made before keys were generated
    none = run_cli(home, "keys", "api", "--role", "scorer")
    assert none.returncode == 2 and "--new" in none.stderr
    made = key_of(home, "scorer", "--new")
    assert key_of(home, "scorer") == made
