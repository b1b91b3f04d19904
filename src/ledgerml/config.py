"""Where a project lives on disk and what its `config.toml` says.

A project is a folder (default `./.ledgerml`, or `LEDGERML_HOME`, or `--home`)
holding `ledger.db`, `blocks/`, `keys/`, `chain/`, `vault.db`, `reports/` and
`config.toml`, much as `.git` holds a repository.

`load_config` checks the whole file against `SCHEMA` (every key some module
reads, with its type) before anyone uses it, so `post_quantum = "no"` is an
error naming `log.post_quantum`, not a truthy string; unknown sections and keys
are a `ConfigWarning` (a newer version's setting, or a typo), not a refusal.
It also applies the permission rules of docs/threat-model.md: config.toml that
group/other may write is refused, and so is one they may read while it holds
`[serving.api_keys]`; a project or `keys/` folder they may enter is warned about.
The schema is documented in docs/configuration.md.
"""

from __future__ import annotations

import os
import stat
import tomllib
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ledgerml.crypto.files import GROUP_OTHER, check_private_dir, loose_file_error
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

    @property
    def api_keys_file(self) -> Path:
        """The decision service's generated API keys (see `ledgerml.crypto.api_keys`)."""
        return self.home / "keys" / "api-keys.toml"

    def require_initialised(self) -> None:
        """Fail with a clear message when `ledgerml init` has not been run here."""
        if self.config_toml.is_dir():
            raise InputError(f"{self.config_toml} is a folder, not a file", field="config.toml")
        if not self.config_toml.is_file():
            raise ProjectError(
                f"no LedgerML project at {self.home} (run `ledgerml init`, or pass --home / "
                "set LEDGERML_HOME)",
                field="home",
            )


class ConfigWarning(UserWarning):
    """config.toml names a section or key LedgerML does not read (ignored)."""


Check = Callable[[Any, str], None]


def _bool(value: Any, field: str) -> None:
    if not isinstance(value, bool):
        raise InputError("must be true or false (unquoted)", field=field)


def _text(value: Any, field: str) -> None:
    if not isinstance(value, str):
        raise InputError("must be a string (in quotes)", field=field)


def _one_of(*choices: str) -> Check:
    def check(value: Any, field: str) -> None:
        if value not in choices:
            raise InputError(f"must be one of {', '.join(map(repr, choices))}", field=field)

    return check


def _seconds(value: Any, field: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not value >= 0:
        raise InputError("must be a number of seconds >= 0", field=field)


def _days(value: Any, field: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InputError("must be a whole number of days >= 0", field=field)


def _days_by_type(value: Any, field: str) -> None:
    if not isinstance(value, dict):
        raise InputError("must be a table of event type = days", field=field)
    for key, days in value.items():
        _days(days, f"{field}.{key}")  # which types may be set, and their floors: audit.retention


def _texts(value: Any, field: str) -> None:
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise InputError('must be a list of non-empty strings, e.g. ["champion"]', field=field)


def _api_keys(value: Any, field: str) -> None:
    if not isinstance(value, dict):
        raise InputError('must be a table of role = "key" or ["key", …]', field=field)
    for role, keys in value.items():
        items = [keys] if isinstance(keys, str) else keys
        if not isinstance(items, list) or not all(isinstance(k, str) for k in items):
            raise InputError("must be a key string or a list of them", field=f"{field}.{role}")


#: Every key some module reads: section -> key -> check. Extend it with each new setting
#: (docs/configuration.md lists them); values' finer rules stay with their readers.
SCHEMA: dict[str, dict[str, Check]] = {
    "log": {"origin": _text, "post_quantum": _bool},
    "ledger": {"head_copy": _text, "url": _text},
    "storage": {"ipfs_api": _text, "sync": _one_of("block", "batch")},
    "chain": {"backend": _one_of("embedded", "rpc"), "rpc_url": _text},
    "serving": {"api_keys": _api_keys, "public_tiles": _bool, "anchor_every_s": _seconds},
    "retention": {"log_days": _days},
    "audit": {"retention": _days_by_type},
    "mlflow": {"gated_aliases": _texts},
    "witness": {
        "policy": _text,
        "fail_open": _bool,
        "publish_every_s": _seconds,
        "timeout_s": _seconds,
    },
}


def validate_config(config: Mapping[str, Any], source: str = "config.toml") -> None:
    """Check every known key's type (InputError naming `section.key`); warn on unknown ones."""
    for section, body in config.items():
        known = SCHEMA.get(section)
        if known is None:
            warnings.warn(f"{source}: unknown section [{section}] (ignored)", ConfigWarning, 2)
            continue
        if not isinstance(body, dict):
            raise InputError("must be a table", field=section)
        for key, value in body.items():
            check = known.get(key)
            if check is None:
                warnings.warn(
                    f"{source}: unknown key {key!r} in [{section}] (ignored)", ConfigWarning, 2
                )
                continue
            check(value, f"{section}.{key}")


def _check_config_mode(path: Path, mode: int, config: Mapping[str, Any]) -> None:
    """Refuse a config others may change, or read while it holds API keys."""
    serving = config.get("serving")
    has_keys = isinstance(serving, dict) and "api_keys" in serving
    if mode & 0o022 or (has_keys and mode & GROUP_OTHER):
        raise loose_file_error(path, mode)


def load_config(paths: ProjectPaths) -> dict[str, Any]:
    """Parse and check `config.toml`: errors name the file and line, or the `section.key`."""
    path = paths.config_toml
    try:
        with path.open("rb") as fh:
            mode = stat.S_IMODE(os.fstat(fh.fileno()).st_mode)
            raw = fh.read()
    except FileNotFoundError:
        return {}
    except IsADirectoryError:
        raise InputError(f"{path} is a folder, not a file", field="config.toml") from None
    try:
        config = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise InputError(
            f"{path} is not UTF-8 text (byte {exc.start}): not a LedgerML config",
            field="config.toml",
        ) from None
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"{path}: {exc}", field="config.toml") from None
    _check_config_mode(path, mode, config)
    check_private_dir(paths.home)
    check_private_dir(paths.keys)
    validate_config(config, str(path))
    return config
