"""Helpers every command module uses: the project folder, JSON output, exit codes."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import typer
from rich.console import Console

from ledgerml.config import ProjectPaths, resolve_home

#: Human-readable output goes to stdout; errors and progress to stderr.
console = Console()
err_console = Console(stderr=True)

EXIT_OK = 0
EXIT_VERIFY = 1
EXIT_USAGE = 2


def project(ctx: typer.Context, *, must_exist: bool = True) -> ProjectPaths:
    """The project folder chosen by `--home` on the root command or `LEDGERML_HOME`."""
    home = (ctx.find_root().obj or {}).get("home")
    paths = ProjectPaths(resolve_home(home))
    if must_exist:
        paths.require_initialised()
    return paths


def print_json(obj: Any) -> None:
    """Write one JSON document to stdout (sorted keys, UTF-8)."""
    sys.stdout.write(json.dumps(obj, indent=2, sort_keys=True, ensure_ascii=False, default=str))
    sys.stdout.write("\n")


def as_path(value: str) -> Path:
    return Path(value).expanduser()
