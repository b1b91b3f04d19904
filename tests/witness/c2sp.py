"""An independent tlog-witness client and cosignature verifier, written from the C2SP text
(signed-note, tlog-checkpoint, tlog-witness, tlog-cosignature) and RFC 6962 §2.1 — not
from our code: it imports nothing of `ledgerml`, only hashlib, base64, httpx and
`cryptography`. If our witness and this file disagree, one of them misread the spec.
"""

from __future__ import annotations

import base64
import hashlib
import struct
from dataclasses import dataclass, field

import httpx
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ed25519, mldsa

DASH = "\u2014"


def key_id(name: str, sig_type: int, public: bytes) -> bytes:
    """signed-note: SHA-256(key name ‖ 0x0A ‖ signature type ‖ public key)[:4]."""
    return hashlib.sha256(name.encode() + b"\n" + bytes([sig_type]) + public).digest()[:4]


def parse_vkey(vkey: str) -> tuple[str, bytes, int, bytes]:
    """`<name>+<hex key ID>+<base64(type ‖ public key)>` -> (name, key ID, type, public key)."""
    name, hex_id, blob = vkey.split("+", 2)
    raw = base64.b64decode(blob, validate=True)
    return name, bytes.fromhex(hex_id), raw[0], raw[1:]


# --- RFC 6962 §2.1 ----------------------------------------------------------------


def leaf(data: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + data).digest()


def mth(leaves: list[bytes]) -> bytes:
    """MTH over leaf hashes (already hashed with 0x00)."""
    n = len(leaves)
    if n == 0:
        return hashlib.sha256(b"").digest()
    if n == 1:
        return leaves[0]
    k = 1
    while k * 2 < n:
        k *= 2
    return hashlib.sha256(b"\x01" + mth(leaves[:k]) + mth(leaves[k:])).digest()


def consistency(m: int, leaves: list[bytes]) -> list[bytes]:
    """PROOF(m, D[n]) = SUBPROOF(m, D[n], true) (RFC 6962 §2.1.2)."""

    def subproof(m: int, d: list[bytes], b: bool) -> list[bytes]:
        n = len(d)
        if m == n:
            return [] if b else [mth(d)]
        k = 1
        while k * 2 < n:
            k *= 2
        if m <= k:
            return [*subproof(m, d[:k], b), mth(d[k:])]
        return [*subproof(m - k, d[k:], False), mth(d[:k])]

    return [] if m == 0 else subproof(m, leaves, True)


# --- a test log -------------------------------------------------------------------


@dataclass
class TestLog:
    """A toy log of our own: leaves in memory, checkpoints signed per signed-note (0x01)."""

    __test__ = False  # not a pytest class
    origin: str
    key: ed25519.Ed25519PrivateKey = field(default_factory=ed25519.Ed25519PrivateKey.generate)
    leaves: list[bytes] = field(default_factory=list)

    @property
    def public(self) -> bytes:
        return self.key.public_key().public_bytes_raw()

    @property
    def vkey(self) -> str:
        kid = key_id(self.origin, 0x01, self.public)
        blob = base64.b64encode(b"\x01" + self.public).decode()
        return f"{self.origin}+{kid.hex()}+{blob}"

    def append(self, *entries: bytes) -> None:
        self.leaves += [leaf(e) for e in entries]

    def body(self, size: int | None = None, root: bytes | None = None) -> str:
        size = len(self.leaves) if size is None else size
        root = mth(self.leaves[:size]) if root is None else root
        return f"{self.origin}\n{size}\n{base64.b64encode(root).decode()}\n"

    def sign(self, body: str, key: ed25519.Ed25519PrivateKey | None = None) -> str:
        key = key or self.key
        kid = key_id(self.origin, 0x01, key.public_key().public_bytes_raw())
        sig = key.sign(body.encode())
        return f"{body}\n{DASH} {self.origin} {base64.b64encode(kid + sig).decode()}\n"

    def checkpoint(self, size: int | None = None) -> str:
        return self.sign(self.body(size))

    def proof(self, old: int, new: int | None = None) -> list[bytes]:
        new = len(self.leaves) if new is None else new
        return consistency(old, self.leaves[:new])


def add_checkpoint_body(old: int, proof: list[bytes], checkpoint: str) -> bytes:
    """tlog-witness: `old N\\n`, one base64 hash per line, an empty line, the checkpoint."""
    lines = [f"old {old}\n"] + [base64.b64encode(h).decode() + "\n" for h in proof] + ["\n"]
    return ("".join(lines) + checkpoint).encode()


def post(url: str, body: bytes) -> httpx.Response:
    return httpx.post(url.rstrip("/") + "/add-checkpoint", content=body, timeout=10)


# --- tlog-cosignature verification ------------------------------------------------


@dataclass(frozen=True)
class Cosignature:
    name: str
    sig_type: int
    timestamp: int


def verify_cosignatures(lines: str, body: str, vkeys: list[str]) -> list[Cosignature]:
    """Every line of a 200 answer must be a valid cosignature from one of `vkeys` over the
    checkpoint body (Ed25519 `cosignature/v1` type 0x04, ML-DSA-44 `subtree/v1` type 0x06).
    Raises AssertionError on anything else."""
    keys = [parse_vkey(v) for v in vkeys]
    out = []
    assert lines.endswith("\n") and lines, "the answer must be newline-terminated lines"
    for line in lines.split("\n")[:-1]:
        assert line.startswith(DASH + " "), f"not a signature line: {line[:30]!r}"
        name, b64 = line[2:].rsplit(" ", 1)
        blob = base64.b64decode(b64, validate=True)
        kid, ts_bytes, sig = blob[:4], blob[4:12], blob[12:]
        (ts,) = struct.unpack(">Q", ts_bytes)
        assert 0 < ts < 2**63, "the timestamp must be non-zero and below 2^63"
        match = [k for k in keys if k[0] == name and k[1] == kid]
        assert match, f"cosignature from an unknown key {name} {kid.hex()}"
        _, _, sig_type, public = match[0]
        assert kid == key_id(name, sig_type, public), "key ID rule broken"
        if sig_type == 0x04:
            assert len(sig) == 64
            message = b"cosignature/v1\ntime " + str(ts).encode() + b"\n" + body.encode()
            try:
                ed25519.Ed25519PublicKey.from_public_bytes(public).verify(sig, message)
            except InvalidSignature:
                raise AssertionError(f"bad Ed25519 cosignature from {name}") from None
        elif sig_type == 0x06:
            assert len(sig) == 2420
            origin, size, root_b64 = body.split("\n")[:3]
            nb, ob = name.encode(), origin.encode()
            message = (
                b"subtree/v1\n\x00"
                + bytes([len(nb)])
                + nb
                + struct.pack(">Q", ts)
                + bytes([len(ob)])
                + ob
                + struct.pack(">QQ", 0, int(size))
                + base64.b64decode(root_b64)
            )
            try:
                mldsa.MLDSA44PublicKey.from_public_bytes(public).verify(sig, message)
            except InvalidSignature:
                raise AssertionError(f"bad ML-DSA-44 cosignature from {name}") from None
        else:
            raise AssertionError(f"unexpected cosignature type {sig_type:#04x}")
        out.append(Cosignature(name, sig_type, ts))
    return out
