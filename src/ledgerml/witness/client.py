"""A tlog-witness client: what a log (or a monitor) sends to a witness, over HTTP.

    client = WitnessClient("http://127.0.0.1:7380")
    try:
        lines = client.add_checkpoint(old=10, proof=hashes, note=checkpoint_note)
    except SizeConflict as c:          # 409: the witness last cosigned c.size
        ...
    except WitnessRefused as r:        # 4xx/5xx other than 409: r.status, r.reason

One keep-alive connection per witness (the spec asks clients to use them).
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

from ledgerml.errors import LedgerMLError


class WitnessError(LedgerMLError):
    """A witness did not cosign."""


class SizeConflict(WitnessError):
    """409: `old` was not the size the witness last cosigned; it says which one it was."""

    def __init__(self, size: int) -> None:
        super().__init__(f"the witness last cosigned size {size}")
        self.size = size


class WitnessRefused(WitnessError):
    """The witness answered with another error status (or could not be reached: 0)."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(f"HTTP {status}: {reason}" if status else reason)
        self.status = status
        self.reason = reason


def request_body(old: int, proof: Sequence[bytes], note: str) -> bytes:
    """The add-checkpoint body: `old N`, one base64 hash per line, a blank line, the note."""
    lines = [f"old {old}\n", *(base64.b64encode(h).decode() + "\n" for h in proof), "\n"]
    return ("".join(lines) + note).encode()


@dataclass
class WitnessClient:
    """add-checkpoint and the monitoring checkpoint of one witness (a submission prefix)."""

    url: str
    timeout_s: float = 5.0

    def __post_init__(self) -> None:
        import httpx

        self._http = httpx.Client(timeout=self.timeout_s)
        self._errors = (httpx.HTTPError, OSError)

    def close(self) -> None:
        self._http.close()

    def add_checkpoint(self, *, old: int, proof: Sequence[bytes], note: str) -> str:
        """The cosignature lines, or SizeConflict / WitnessRefused."""
        try:
            resp = self._http.post(
                self.url.rstrip("/") + "/add-checkpoint", content=request_body(old, proof, note)
            )
        except self._errors as exc:
            raise WitnessRefused(0, f"unreachable: {type(exc).__name__}") from None
        if resp.status_code == 409:
            text = resp.text
            ctype = resp.headers.get("content-type", "")
            if ctype.split(";")[0].strip() == "text/x.tlog.size" and text.rstrip("\n").isdigit():
                raise SizeConflict(int(text))
            raise WitnessRefused(409, "409 without a text/x.tlog.size body")
        if resp.status_code != 200:
            raise WitnessRefused(resp.status_code, resp.text.strip()[:200])
        return resp.text

    def latest_checkpoint(self, origin: str) -> str | None:
        """The checkpoint the witness last cosigned for `origin` (None when it has none)."""
        digest = hashlib.sha256(origin.encode()).hexdigest()
        try:
            resp = self._http.get(f"{self.url.rstrip('/')}/{digest}/checkpoint")
        except self._errors:
            return None
        return resp.text if resp.status_code == 200 else None
