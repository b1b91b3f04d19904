"""Files that hold secrets: created owner-only whatever the umask, refused when looser.

Why: `vault.db` holds every data subject's AES key, `keys/` the signing keys, the
chain seed and the service's API keys, and `config.toml` may hold API keys too.
Any local user who can read one of them can decrypt personal data or act as the
project. Every layer writes such files, so the helpers live here, in the bottom
layer, and import nothing else of ours but the errors.

    write_private(path, data)          # 0600, atomic; never overwrites unless replace=True
    make_private_dir(path)             # 0700 when it creates the folder
    read_private(path)                 # the bytes; InputError if group/other may read it
    check_private_file(path)           # the same check without reading
    check_private_dir(path)            # LoosePermissionsWarning when group/other may enter

The rules (docs/threat-model.md, "Files and permissions"): a secret file with any
group or other permission bit is refused (exit 2, naming the file, its mode and the
`chmod` that fixes it); a folder holding secrets that group or other may enter is a
loud warning, not a refusal, because every project made before these checks has a
0755 folder whose secret files are what matter.
"""

from __future__ import annotations

import contextlib
import os
import stat
import warnings
from pathlib import Path
from typing import TextIO

from ledgerml.crypto.errors import InputError

PRIVATE_FILE = 0o600
PRIVATE_DIR = 0o700
GROUP_OTHER = 0o077


class LoosePermissionsWarning(UserWarning):
    """A folder holding secrets is open to group or other users."""


def mode_of(path: str | os.PathLike[str]) -> int:
    """The permission bits of `path` (follows symlinks, as an open would)."""
    return stat.S_IMODE(os.stat(path).st_mode)


def loose_file_error(path: str | os.PathLike[str], mode: int) -> InputError:
    """The refusal for a secret file others may read or write: names file, mode and fix."""
    return InputError(
        f"{path} is mode {mode:04o} but holds secrets: group and other users must have no "
        f"access; fix it with `chmod 600 {path}`",
        field="permissions",
    )


def check_private_file(path: str | os.PathLike[str]) -> None:
    """Refuse a secret file with any group/other bit; a missing file passes (nothing leaks)."""
    try:
        mode = mode_of(path)
    except FileNotFoundError:
        return
    if mode & GROUP_OTHER:
        raise loose_file_error(path, mode)


def check_private_dir(path: str | os.PathLike[str]) -> None:
    """Warn (LoosePermissionsWarning) when group/other may list or enter a secrets folder."""
    try:
        mode = mode_of(path)
    except (FileNotFoundError, NotADirectoryError):
        return
    if mode & GROUP_OTHER:
        warnings.warn(
            f"{path} is mode {mode:04o}: other local users can list this folder of secrets; "
            f"fix it with `chmod 700 {path}`",
            LoosePermissionsWarning,
            stacklevel=2,
        )


def read_private(path: str | os.PathLike[str]) -> bytes:
    """Read a secret file, refusing it when group/other have any access (checked on the fd)."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    try:
        mode = stat.S_IMODE(os.fstat(fd).st_mode)
        if mode & GROUP_OTHER:
            raise loose_file_error(path, mode)
        with os.fdopen(fd, "rb", closefd=False) as fh:
            return fh.read()
    finally:
        os.close(fd)


def make_private_dir(path: str | os.PathLike[str]) -> bool:
    """Create `path` (and parents) as 0700 regardless of the umask; True when it was created.

    An existing folder keeps its mode (it may be the user's own folder); callers check it.
    """
    p = Path(path)
    if p.is_dir():
        return False
    p.mkdir(parents=True, exist_ok=True, mode=PRIVATE_DIR)
    os.chmod(p, PRIVATE_DIR)  # mkdir's mode is masked by the umask; this is not
    return True


def create_private_file(path: str | os.PathLike[str]) -> bool:
    """Create an empty 0600 file if missing (before SQLite opens it); True when created."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE)
    except FileExistsError:
        return False
    try:
        os.fchmod(fd, PRIVATE_FILE)  # the umask may have removed bits, never added: be exact
    finally:
        os.close(fd)
    return True


def open_private(path: str | os.PathLike[str], *, newline: str | None = None) -> TextIO:
    """Open a text file for writing as 0600 (created or truncated; an existing one tightened),
    for outputs that hold secrets, such as the per-decision salts `ledgerml score` writes."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, PRIVATE_FILE)
    try:
        os.fchmod(fd, PRIVATE_FILE)
    except BaseException:
        os.close(fd)
        raise
    return open(fd, "w", encoding="utf-8", newline=newline)  # the caller closes it


def write_private(path: str | os.PathLike[str], data: bytes, *, replace: bool = False) -> None:
    """Write a secret file atomically as 0600: a temp file, fsync, then link or rename.

    Without `replace` an existing file is never clobbered (FileExistsError), as for
    keys; with it the old file is swapped out in one rename (rotation).
    """
    p = Path(path)
    make_private_dir(p.parent)
    tmp = p.with_name(f".{p.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE)
    try:
        try:
            os.fchmod(fd, PRIVATE_FILE)
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        if replace:
            os.replace(tmp, p)
        else:
            os.link(tmp, p)  # fails if the file exists: never clobber a key
            os.unlink(tmp)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _fsync_dir(p.parent)


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):  # some file systems refuse fsync on a folder
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
