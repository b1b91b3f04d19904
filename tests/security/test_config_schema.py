"""config.toml is checked whole at load: mistyped values name `section.key` (exit 2),
binary files are input errors, unknown keys are warnings."""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import pytest

from ledgerml.config import SCHEMA, ConfigWarning, ProjectPaths, load_config
from ledgerml.errors import InputError
from ledgerml.ledger import init_project
from tests.conftest import run_cli

REPO = Path(__file__).resolve().parents[2]


def with_config(tmp_path: Path, text: str) -> ProjectPaths:
    paths = init_project(tmp_path / "proj")
    base = paths.config_toml.read_text()
    paths.config_toml.write_text(text + "\n\n" + base)  # first: top-level keys stay top-level
    return paths


def test_post_quantum_as_a_string_is_an_error_not_on(tmp_path: Path) -> None:
    paths = init_project(tmp_path / "proj")
    text = paths.config_toml.read_text().replace("post_quantum = false", 'post_quantum = "no"')
    paths.config_toml.write_text(text)
    run = run_cli(paths.home, "log", "show")
    assert run.returncode == 2, run.stderr
    assert "log.post_quantum" in run.stderr and "true or false" in run.stderr


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ('[serving]\npublic_tiles = "yes"', "serving.public_tiles"),
        ("[serving]\nanchor_every_s = true", "serving.anchor_every_s"),
        ("[serving.api_keys]\nscorer = 42", "serving.api_keys.scorer"),
        ('[retention]\nlog_days = "30"', "retention.log_days"),
        ('[audit.retention]\n"decision.recorded" = 1.5', "audit.retention.decision.recorded"),
        ("[ledger]\nhead_copy = 3", "ledger.head_copy"),
        ("serving = 3", "serving"),
    ],
)
def test_mistyped_values_name_the_field(tmp_path: Path, text: str, field: str) -> None:
    paths = with_config(tmp_path, text)
    with pytest.raises(InputError) as raised:
        load_config(paths)
    assert raised.value.field == field


@pytest.mark.parametrize(
    ("old", "new", "field"),
    [
        ('backend = "embedded"', 'backend = "ganache"', "chain.backend"),
        ('backend = "embedded"', "backend = 1", "chain.backend"),
        ('# ipfs_api = "http://127.0.0.1:5001"', "ipfs_api = 5001", "storage.ipfs_api"),
        ('# ipfs_api = "http://127.0.0.1:5001"', 'sync = "fast"', "storage.sync"),
        ('origin = "', "origin = 7\n# ", "log.origin"),
    ],
)
def test_mistyped_template_values(tmp_path: Path, old: str, new: str, field: str) -> None:
    paths = init_project(tmp_path / "proj")
    paths.config_toml.write_text(paths.config_toml.read_text().replace(old, new, 1))
    with pytest.raises(InputError) as raised:
        load_config(paths)
    assert raised.value.field == field


def test_binary_config_is_an_input_error(tmp_path: Path) -> None:
    paths = init_project(tmp_path / "proj")
    paths.config_toml.write_bytes(bytes(range(256)) * 4)
    run = run_cli(paths.home, "verify")
    assert run.returncode == 2, run.stderr
    assert "config.toml" in run.stderr and "not UTF-8" in run.stderr
    assert "internal error" not in run.stderr


def test_unknown_keys_warn_and_are_ignored(tmp_path: Path) -> None:
    paths = with_config(tmp_path, "[telemetry]\nurl = 1\n\n[storage.extra]\nx = 1")
    text = paths.config_toml.read_text().replace("[chain]\n", "[chain]\ngas_price = 1\n")
    paths.config_toml.write_text(text)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        load_config(paths)
    said = sorted(str(w.message).split(": ", 1)[1] for w in caught if w.category is ConfigWarning)
    assert said == [
        "unknown key 'extra' in [storage] (ignored)",
        "unknown key 'gas_price' in [chain] (ignored)",
        "unknown section [telemetry] (ignored)",
    ]
    run = run_cli(paths.home, "log", "show")
    assert run.returncode == 0 and "warning:" in run.stderr and "[telemetry]" in run.stderr


def test_init_template_is_valid_and_every_key_is_documented(tmp_path: Path) -> None:
    paths = init_project(tmp_path / "proj")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load_config(paths)
    doc = (REPO / "docs" / "configuration.md").read_text()
    documented = set(re.findall(r"^\| `\[([a-z_.]+)\] ([a-z_]+)`", doc, re.M))
    assert documented == {(s, k) for s, keys in SCHEMA.items() for k in keys}
