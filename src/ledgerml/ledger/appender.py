"""Appending: requests whose futures resolve once durable, batching, the bulk writer.

A caller prepares its entries (`envelope`), queues a `_Request` and gets a future; a
driver's writer thread takes the first request and `gather`s whatever else is queued,
up to `max_batch` entries, into one transaction (group commit), then resolves each
future with its first index, or with the exception that stopped the batch. Large
`append_many` calls on SQLite instead stream to a writer process (`_ProcessWriter`, the
parent's side of `_writer_proc`).
"""

from __future__ import annotations

import array
import contextlib
import json
import queue
import struct
import subprocess
import sys
import threading
from collections.abc import Iterator
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, Protocol

from ledgerml.crypto.note import NoteSigner
from ledgerml.errors import VerificationError
from ledgerml.ledger.envelope import PreparedEntry
from ledgerml.ledger.head import HeadCopy


@dataclass
class _Request:
    entries: list[PreparedEntry]
    future: Future[int] = field(default_factory=Future)


def gather(
    requests: queue.Queue[_Request | None], first: _Request, max_batch: int
) -> tuple[list[_Request], bool]:
    """`first` and whatever else is queued, up to `max_batch` entries; True on stop."""
    batch = [first]
    count = len(first.entries)
    while count < max_batch:
        try:
            nxt = requests.get_nowait()
        except queue.Empty:
            break
        if nxt is None:
            return batch, True
        batch.append(nxt)
        count += len(nxt.entries)
    return batch, False


class _BulkLedger(Protocol):
    """What the writer process is told about its ledger (a SQLite `Ledger`)."""

    path: Any
    origin: str
    actor: str
    signers: list[NoteSigner]
    checkpoint_every_batch: bool
    head_copy: HeadCopy | None


PROCESS_WRITER_MIN = 512  # entries in one append_many before streaming to the writer process
PROCESS_CHUNK = 256  # entries per streamed chunk: the caller prepares one while the child inserts


class _ProcessWriter:
    """The parent's side of `_writer_proc`: one child per Ledger, started on first use."""

    def __init__(self, ledger: _BulkLedger) -> None:
        keys = [
            {"name": s.name, "sig_type": s.sig_type, "pem": s.signer.private_pem().decode()}
            for s in ledger.signers
        ]
        header = {
            "db": str(ledger.path),
            "origin": ledger.origin,
            "actor": ledger.actor,
            "keys": keys,
            "checkpoint_every_batch": ledger.checkpoint_every_batch,
            "head_copy": str(ledger.head_copy.path) if ledger.head_copy is not None else None,
        }
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "ledgerml.ledger._writer_proc"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            bufsize=0,
        )
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.stdin, self.stdout = self.proc.stdin, self.proc.stdout
        with contextlib.suppress(OSError):  # bigger pipe: a whole chunk fits (Linux)
            import fcntl

            fcntl.fcntl(self.stdin.fileno(), 1031, 1 << 20)  # F_SETPIPE_SZ
        self.stdin.write(json.dumps(header).encode() + b"\n")
        self.lock = threading.Lock()

    def _reply(self) -> tuple[int, int] | None:
        op = self.stdout.read(1)
        if op == b"K":
            first, size = struct.unpack(">QQ", self.stdout.read(16))
            return first, size
        if op == b"k":
            return None
        if op == b"X":
            (n,) = struct.unpack(">I", self.stdout.read(4))
            raise VerificationError(f"append failed: {self.stdout.read(n).decode()}")
        raise VerificationError("the ledger writer process died; nothing was committed")

    def stream(self, chunks: Iterator[list[PreparedEntry]]) -> int:
        """Send every chunk in one transaction; the first index once durable."""
        with self.lock:
            try:
                self.stdin.write(b"B")
                for chunk in chunks:
                    lengths = array.array("I", [len(e[0]) for e in chunk])
                    if sys.byteorder != "big":
                        lengths.byteswap()
                    self.stdin.write(
                        b"".join(
                            (
                                b"C",
                                struct.pack(">I", len(chunk)),
                                lengths.tobytes(),
                                *(e[0] for e in chunk),
                                *(e[1] for e in chunk),
                            )
                        )
                    )
            except BaseException:
                with contextlib.suppress(OSError):
                    self.stdin.write(b"A")
                    self._reply()
                raise
            try:
                self.stdin.write(b"E")
            except OSError as exc:
                raise VerificationError("the ledger writer process died") from exc
            result = self._reply()
            assert result is not None
            return result[0]

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.stdin.close()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        with contextlib.suppress(OSError):
            self.stdout.close()
