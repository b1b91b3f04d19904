"""Where a project lives on disk and what its `config.toml` says.

A project is a folder (default `./.ledgerml`, or `LEDGERML_HOME`, or `--home`)
holding `ledger.db`, `blocks/`, `keys/`, `chain/`, `vault.db`, `reports/` and
`config.toml`, much as `.git` holds a repository.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ledgerml.errors import InputError, ProjectError

DEFAULT_HOME = ".ledgerml"


def resolve_home(home: str | os.PathLike[str] | None = None) -> Path:
    """The project folder: the explicit argument, else `LEDGERML_HOME`, else `./.ledgerml`."""
    if home is not None and str(home) != "":
        return Path(home).expanduser().resolve()
    env = os.environ.get("LEDGERML_HOME")
    if env:
        return Path(env).expanduser().resolve()
    return (Path.cwd() / DEFAULT_HOME).resolve()


@dataclass(frozen=True)
class ProjectPaths:
    """The fixed layout of a project folder."""

    home: Path

    @property
    def ledger_db(self) -> Path:
        return self.home / "ledger.db"

    @property
    def blocks(self) -> Path:
        return self.home / "blocks"

    @property
    def keys(self) -> Path:
        return self.home / "keys"

    @property
    def chain(self) -> Path:
        return self.home / "chain"

    @property
    def vault_db(self) -> Path:
        return self.home / "vault.db"

    @property
    def reports(self) -> Path:
        return self.home / "reports"

    @property
    def config_toml(self) -> Path:
        return self.home / "config.toml"

    def require_initialised(self) -> None:
        """Fail with a clear message when `ledgerml init` has not been run here."""
        if not self.config_toml.is_file():
            raise ProjectError(
                f"no LedgerML project at {self.home} (run `ledgerml init`, or pass --home / "
                "set LEDGERML_HOME)",
                field="home",
            )


def load_config(paths: ProjectPaths) -> dict[str, Any]:
    """Parse `config.toml`; a syntax error names the file and line."""
    try:
        with paths.config_toml.open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        return {}
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"{paths.config_toml}: {exc}", field="config.toml") from exc
