"""Entry point of the `ledgerml` command: the root options and the command groups.

Exit codes (DESIGN.md): 0 success, 1 verification or policy failure, 2 usage or
input error. Every `LedgerMLError` is mapped here, so command modules just raise.
So are the operating system's refusals a user can fix (full disk, permissions,
read-only media, a folder where a file is due, …): exit 2 with the path and what
to do; any other I/O error (EIO, …) is exit 1 — whatever was under way is not
assumed to have succeeded.

The global option `--home` is accepted before the command (`ledgerml --home X
serve`) and after it (`ledgerml serve --home X`), as users type it.
"""

from __future__ import annotations

import errno
import os
import sqlite3
import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import click
import typer
from rich.markup import escape

from ledgerml import __version__
from ledgerml.cli._common import EXIT_USAGE, EXIT_VERIFY, err_console
from ledgerml.config import ConfigWarning, resolve_home
from ledgerml.crypto.files import LoosePermissionsWarning
from ledgerml.errors import DataWarning, InputError, LedgerMLError, VerificationError

app = typer.Typer(
    name="ledgerml",
    help="Provable MLOps for finance: a tamper-evident ledger of every step.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"ledgerml {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    ctx: typer.Context,
    home: Annotated[
        str | None,
        typer.Option(
            "--home", envvar="LEDGERML_HOME", help="Project folder (default ./.ledgerml)."
        ),
    ] = None,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version.")
    ] = False,
) -> None:
    ctx.obj = {"home": home}


# --- command groups (one module each; keep this block sorted) -------------------
from ledgerml.cli import (  # noqa: E402
    audit_cmd,
    backtest_cmd,
    bench_cmd,
    chain_cmd,
    check_cmd,
    data_cmd,
    demo_cmd,
    fl_cmd,
    init_cmd,
    keys_cmd,
    log_cmd,
    mlflow_cmd,
    monitor_cmd,
    serve_cmd,
    store,
    train_cmd,
    verify_cmd,
    witness_cmd,
)

for _module in (init_cmd, log_cmd, keys_cmd, verify_cmd, demo_cmd, bench_cmd, chain_cmd):
    _module.register(app)
data_cmd.register(app)
check_cmd.register(app)
train_cmd.register(app)
backtest_cmd.register(app)
monitor_cmd.register(app)
serve_cmd.register(app)
fl_cmd.register(app)
audit_cmd.register(app)
witness_cmd.register(app)
mlflow_cmd.register(app)
app.add_typer(store.app, name="store")
# -------------------------------------------------------------------------------


HOME_HELP = "Project folder (default ./.ledgerml)."


def _set_home(ctx: click.Context, _param: click.Parameter, value: str | None) -> None:
    """`--home` given after a command: the same setting as on the root command."""
    if value is not None:
        root = ctx.find_root()
        root.obj = {**(root.obj or {}), "home": value}


def _with_home_everywhere(command: click.Command, *, root: bool = True) -> click.Command:
    """Give every group and command below the root its own `--home` (a click option,
    so values of other options are never mistaken for it)."""
    if not root and not any("--home" in p.opts for p in command.params):
        command.params.append(
            click.Option(
                ["--home"], metavar="PATH", expose_value=False, callback=_set_home, help=HOME_HELP
            )
        )
    if isinstance(command, click.Group):
        for sub in command.commands.values():
            _with_home_everywhere(sub, root=False)
    return command


_COMMAND: click.Command | None = None


def cli_command() -> click.Command:
    """The click command behind `ledgerml`, with `--home` accepted after any command."""
    global _COMMAND
    if _COMMAND is None:
        _COMMAND = _with_home_everywhere(typer.main.get_command(app))
    return _COMMAND


#: OS errors a user can fix, with what to do; exit 2. Any other OSError is exit 1.
_FIXES = {
    errno.ENOSPC: "free space on that file system (or use a --home on another disk) and retry",
    errno.EDQUOT: "free space within your disk quota and retry",
    errno.EACCES: "check its owner and mode (ls -ld); run as the user who owns the project",
    errno.EPERM: "check its owner and mode (ls -ld); run as the user who owns the project",
    errno.EROFS: "this command writes there; run it on a writable copy of the project",
    errno.EISDIR: "give a file there, not a folder",
    errno.ENOTDIR: "part of that path is a file, not a folder",
    errno.ENOENT: "check the path",
    errno.EEXIST: "something already exists there; move it away or choose another path",
    errno.ENAMETOOLONG: "use a shorter path",
    errno.ELOOP: "the path has a symbolic-link loop",
    errno.EMFILE: "raise the open-files limit (ulimit -n) and retry",
}

#: SQLite reports these without a path or errno; same advice, exit 2.
_SQLITE_FIXES = {
    "database or disk is full": "free space on the disk that holds the project and retry",
    "attempt to write a readonly database": (
        "the project is read-only here; run this command on a writable copy"
    ),
    "unable to open database file": (
        "check that the project folder exists, is writable, and that its disk is not full"
    ),
}

#: Below this many free bytes the project's disk counts as full (SQLite may report a
#: full disk as a plain "disk I/O error", e.g. when its journal cannot grow).
_NEARLY_FULL = 1 << 20


def _home_hint(argv: list[str] | None) -> Path:
    """The project folder this run was about, for messages only (best effort)."""
    args = sys.argv[1:] if argv is None else argv
    home: str | None = None
    for i, arg in enumerate(args):
        if arg == "--home" and i + 1 < len(args):
            home = args[i + 1]
        elif arg.startswith("--home="):
            home = arg.split("=", 1)[1]
    return resolve_home(home)


def _disk_of(path: Path) -> os.statvfs_result | None:
    """The file system holding `path` (or its nearest existing parent)."""
    for p in (path, *path.parents):
        try:
            return os.statvfs(p)
        except OSError:
            continue
    return None


def _disk_note(home: Path) -> str:
    st = _disk_of(home)
    free = None if st is None else st.f_bavail * st.f_frsize
    return "" if free is None else f" (the disk holding {home} has {free:,} bytes free)"


def _os_error(exc: OSError, home: Path) -> int:
    """One clear line for an OS error, naming the path when known; the exit code."""
    paths = " -> ".join(str(p) for p in (exc.filename, exc.filename2) if p is not None)
    what = exc.strerror or type(exc).__name__
    where = f"{what}: {paths}" if paths else what
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        where += _disk_note(home)
    fix = _FIXES.get(exc.errno or -1)
    if fix is None:
        err_console.print(
            f"[bold red]I/O error:[/] {escape(where)} (nothing under way is assumed done)",
            highlight=False,
        )
        return EXIT_VERIFY
    err_console.print(f"[bold red]error:[/] {escape(where)}; {fix}", highlight=False)
    return EXIT_USAGE


def _sqlite_error(exc: sqlite3.Error, home: Path) -> int | None:
    """A clear line for SQLite's environment errors (it names no path or errno); None when
    the error is not one of those."""
    message = str(exc)
    fix = _SQLITE_FIXES.get(message)
    if fix is None and message != "disk I/O error":
        return None
    st = _disk_of(home)
    if st is not None and st.f_flag & os.ST_RDONLY:
        fix, message = _FIXES[errno.EROFS], f"{message}: {home} is on a read-only file system"
    elif st is not None and st.f_bavail * st.f_frsize < _NEARLY_FULL:
        fix = _SQLITE_FIXES["database or disk is full"]
        message += _disk_note(home)
    elif fix is None:  # a disk I/O error with room to spare: the disk itself, fail closed
        err_console.print(
            f"[bold red]I/O error:[/] SQLite: disk I/O error in {escape(str(home))}; check "
            "the disk (dmesg) — nothing under way is assumed done",
            highlight=False,
        )
        return EXIT_VERIFY
    err_console.print(f"[bold red]error:[/] SQLite: {escape(message)}; {fix}", highlight=False)
    return EXIT_USAGE


@contextmanager
def _loud_warnings() -> Iterator[None]:
    """Our warnings (loose folder modes, unknown config keys) as one `warning:` line each."""
    with warnings.catch_warnings():
        original = warnings.showwarning

        def show(message: Any, category: type[Warning], *args: Any, **kwargs: Any) -> None:
            if issubclass(category, LoosePermissionsWarning | ConfigWarning | DataWarning):
                err_console.print(f"[bold yellow]warning:[/] {escape(str(message))}")
            else:
                original(message, category, *args, **kwargs)

        warnings.showwarning = show
        warnings.simplefilter("default", LoosePermissionsWarning)
        warnings.simplefilter("default", ConfigWarning)
        warnings.simplefilter("default", DataWarning)
        yield


def main(argv: list[str] | None = None) -> int:
    """Run the CLI, turning LedgerML errors into messages and exit codes."""
    with _loud_warnings():
        return _run(argv)


def _run(argv: list[str] | None) -> int:
    try:
        # In non-standalone mode click returns the code of `typer.Exit(code)`.
        result = cli_command().main(args=argv, prog_name="ledgerml", standalone_mode=False)
        if isinstance(result, int):
            return result
    except InputError as exc:
        err_console.print(f"[bold red]error:[/] {exc}", highlight=False)
        return EXIT_USAGE
    except VerificationError as exc:
        # a contract's refusal is a policy failure, not a broken proof: say which
        prefix = "refused" if type(exc).__name__ == "ContractRevert" else "verification failed"
        err_console.print(f"[bold red]{prefix}:[/] {exc}", highlight=False)
        return EXIT_VERIFY
    except LedgerMLError as exc:
        err_console.print(f"[bold red]error:[/] {exc}", highlight=False)
        return EXIT_VERIFY
    except typer.Exit as exc:
        return exc.exit_code
    except typer.Abort:
        err_console.print("aborted")
        return 130
    except OSError as exc:
        if os.environ.get("LEDGERML_DEBUG"):
            raise
        return _os_error(exc, _home_hint(argv))
    except Exception as exc:  # click usage errors arrive here in non-standalone mode
        if isinstance(exc, click.exceptions.ClickException):
            exc.show()
            return EXIT_USAGE
        if os.environ.get("LEDGERML_DEBUG"):
            raise
        if isinstance(exc, sqlite3.OperationalError):
            code = _sqlite_error(exc, _home_hint(argv))
            if code is not None:
                return code
        # Fail closed: an unexpected error is never a success.
        err_console.print(
            f"[bold red]internal error:[/] {type(exc).__name__}: {exc} "
            "(set LEDGERML_DEBUG=1 for the traceback)",
            highlight=False,
        )
        return EXIT_VERIFY
    return 0


if __name__ == "__main__":
    sys.exit(main())
