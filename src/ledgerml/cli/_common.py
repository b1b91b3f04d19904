"""Helpers every command module uses: the project folder, JSON in and out, progress."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

from ledgerml.config import ProjectPaths, resolve_home
from ledgerml.errors import InputError

#: Human-readable output goes to stdout; errors and progress to stderr. Neither wraps
#: lines: a path or a `chmod` in a message must stay copyable and greppable.
console = Console(soft_wrap=True)
err_console = Console(stderr=True, soft_wrap=True)

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
    sys.stdout.flush()


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"duplicate key {key!r}")
        out[key] = value
    return out


def parse_json(text: str, *, field: str) -> Any:
    """Strict JSON from a user: no NaN/Infinity, no duplicate keys (I-JSON)."""
    try:
        return json.loads(text, parse_constant=_no_constants, object_pairs_hook=_no_duplicates)
    except ValueError as exc:
        raise InputError(f"invalid JSON: {exc}", field=field) from None


def as_path(value: str) -> Path:
    return Path(value).expanduser()


@contextmanager
def progress_bar(description: str, total: int | None, *, enabled: bool = True) -> Iterator[Any]:
    """A rich progress bar on stderr; yields `update(done, total)`."""
    if not enabled or not err_console.is_terminal:
        yield lambda done, total=None: None
        return
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed:,}/{task.total:,}"),
        TimeRemainingColumn(),
        console=err_console,
        transient=True,
    ) as bar:
        task = bar.add_task(description, total=total)

        def update(done: int, total_: int | None = None) -> None:
            bar.update(task, completed=done, total=total_ if total_ is not None else total)

        yield update
