"""The decision service's API keys: one random key per role in `keys/api-keys.toml` (0600).

    generate_api_keys(keys_dir)            # by `ledgerml init`; never overwrites
    read_api_keys(keys_dir)                # {"scorer": "lml_…", …}; {} when the file is absent
    rotate_api_key(keys_dir, "scorer")     # a new key for one role; the file swapped atomically

Why a file of its own rather than lines in config.toml: rotation rewrites it whole,
in one rename, without touching a config the user edits by hand, and `keys/` is
already the owner-only folder of the project's secrets. A role that config.toml
`[serving.api_keys]` sets takes precedence over the key here (see
`ledgerml.serving.app.load_api_keys`).
"""

from __future__ import annotations

import secrets
import tomllib
from pathlib import Path

from ledgerml.crypto.errors import InputError
from ledgerml.crypto.files import read_private, write_private

#: Roles of the decision service (`ledgerml.serving.app.ROLES` is this tuple).
API_ROLES = ("scorer", "auditor", "admin")
API_KEYS_FILE = "api-keys.toml"
MIN_KEY_LEN = 16

_HEADER = (
    "# LedgerML decision-service API keys (mode 0600), one per role.\n"
    "# Read one with `ledgerml keys api --role ROLE`; rotate with `--new`.\n"
    "# A role set in config.toml [serving.api_keys] replaces the key here.\n"
)


def new_api_key() -> str:
    """A fresh key: 256 random bits, URL-safe, prefixed so secret scanners can spot it."""
    return "lml_" + secrets.token_urlsafe(32)


def check_role(role: str) -> str:
    if role not in API_ROLES:
        raise InputError(f"must be one of {', '.join(API_ROLES)}", field="role")
    return role


def _render(keys: dict[str, str]) -> bytes:
    lines = [f'{role} = "{keys[role]}"\n' for role in API_ROLES if role in keys]
    return (_HEADER + "".join(lines)).encode()


def read_api_keys(keys_dir: Path) -> dict[str, str]:
    """The generated keys by role; {} when the project has none (made before they existed)."""
    path = keys_dir / API_KEYS_FILE
    try:
        raw = read_private(path)
    except FileNotFoundError:
        return {}
    try:
        doc = tomllib.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise InputError(f"{path} is not valid TOML: {exc}", field="api_keys") from None
    out: dict[str, str] = {}
    for role, key in doc.items():
        if role not in API_ROLES:
            raise InputError(f"{path}: unknown role {role!r}", field=f"api_keys.{role}")
        if not isinstance(key, str) or len(key) < MIN_KEY_LEN:
            raise InputError(
                f"{path}: must be a key of at least {MIN_KEY_LEN} characters",
                field=f"api_keys.{role}",
            )
        out[role] = key
    return out


def generate_api_keys(keys_dir: Path) -> dict[str, str]:
    """One new key per role, written 0600; refuses to overwrite an existing file."""
    keys = {role: new_api_key() for role in API_ROLES}
    write_private(keys_dir / API_KEYS_FILE, _render(keys))
    return keys


def rotate_api_key(keys_dir: Path, role: str) -> str:
    """Replace one role's key (others kept); a running service keeps the old one until restarted."""
    keys = read_api_keys(keys_dir)
    keys[check_role(role)] = key = new_api_key()
    write_private(keys_dir / API_KEYS_FILE, _render(keys), replace=True)
    return key
