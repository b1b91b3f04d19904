"""Entry point of the `ledgerml` command: the root options and the command groups.

Exit codes (DESIGN.md): 0 success, 1 verification or policy failure, 2 usage or
input error. Every `LedgerMLError` is mapped here, so command modules just raise.
"""

from __future__ import annotations

import os
import sys
from typing import Annotated

import typer

from ledgerml import __version__
from ledgerml.cli._common import EXIT_USAGE, EXIT_VERIFY, err_console
from ledgerml.errors import InputError, LedgerMLError, VerificationError

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
    bench_cmd,
    chain_cmd,
    check_cmd,
    data_cmd,
    demo_cmd,
    fl_cmd,
    init_cmd,
    keys_cmd,
    log_cmd,
    monitor_cmd,
    serve_cmd,
    store,
    train_cmd,
    verify_cmd,
)

for _module in (init_cmd, log_cmd, keys_cmd, verify_cmd, demo_cmd, bench_cmd, chain_cmd):
    _module.register(app)
data_cmd.register(app)
check_cmd.register(app)
train_cmd.register(app)
monitor_cmd.register(app)
serve_cmd.register(app)
fl_cmd.register(app)
audit_cmd.register(app)
app.add_typer(store.app, name="store")
# -------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    """Run the CLI, turning LedgerML errors into messages and exit codes."""
    try:
        # In non-standalone mode click returns the code of `typer.Exit(code)`.
        result = app(args=argv, standalone_mode=False)
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
    except Exception as exc:  # click usage errors arrive here in non-standalone mode
        import click

        if isinstance(exc, click.exceptions.ClickException):
            exc.show()
            return EXIT_USAGE
        if os.environ.get("LEDGERML_DEBUG"):
            raise
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
