"""The head copy: the newest signed checkpoint, kept in a file outside `ledger.db`.

Someone who can rewrite `ledger.db` can delete its checkpoints and rebuild its
tiles, and the database alone would then look consistent. The head copy is a
second record of the newest signed tree head, so `verify` and every writer can
check that the log still extends it. It closes the gap when it lives where the
operator's account cannot rewrite it (`[ledger] head_copy` in config.toml: a
separate mount or account, append-only or WORM storage).

    head = HeadCopy(Path(".ledgerml/head.checkpoint"))
    head.advance(note, size)       # atomic, under a lock, never moves backwards
    note = head.read()             # None when the file is missing

The file holds the signed note exactly (C2SP tlog-checkpoint), nothing else.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from ledgerml.crypto.note import parse_checkpoint_head, parse_note
from ledgerml.errors import VerificationError

MAX_HEAD_BYTES = 64 * 1024  # a note with a few Ed25519 and ML-DSA lines is ~4 KiB


@dataclass(frozen=True)
class HeadCopy:
    path: Path

    @property
    def lock_path(self) -> Path:
        return self.path.with_name(self.path.name + ".lock")

    def read(self) -> str | None:
        """The stored note, or None when there is no file. Unreadable -> VerificationError."""
        try:
            with open(self.path, "rb") as fh:
                data = fh.read(MAX_HEAD_BYTES + 1)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise VerificationError(f"head copy {self.path}: {exc.strerror}") from None
        if len(data) > MAX_HEAD_BYTES:
            raise VerificationError(f"head copy {self.path} is larger than a checkpoint")
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            raise VerificationError(f"head copy {self.path} is not UTF-8 text") from None

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # releases the lock

    def advance(self, note: str, size: int) -> bool:
        """Replace the copy with `note` (of tree `size`) unless it already holds a tree at
        least as large; True when written. Temp file + fsync + rename + directory fsync,
        under an exclusive lock, so concurrent writers never move it backwards."""
        with self._locked():
            current = self.read()
            if current is not None:
                with contextlib.suppress(VerificationError):
                    if head_size(current) >= size:
                        return False
            tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            try:
                os.write(fd, note.encode())
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, self.path)
            dfd = os.open(self.path.parent, os.O_RDONLY)
            try:
                os.fsync(dfd)
            finally:
                os.close(dfd)
        return True


def head_size(note: str) -> int:
    """The tree size a checkpoint note states (no signature check)."""
    return parse_checkpoint_head(parse_note(note).text)[1]
