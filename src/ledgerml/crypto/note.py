"""C2SP signed notes (c2sp.org/signed-note) and ML-DSA-44 cosignatures
(c2sp.org/tlog-cosignature), implemented to the letter so that standard
transparency-log tooling (Go's `golang.org/x/mod/sumdb/note`, witnesses) can
check our checkpoints.

A signed note is text ending in a newline, a blank line, then one line per
signature: `— <key name> <base64(4-byte key ID ‖ signature)>`.

    signer = NoteSigner.ed25519("ledgerml.example/log", key)
    note = sign_note("hello\\n", [signer])
    verify_note(note, [signer.verifier])          # -> the verified key names
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import struct
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from ledgerml.crypto.errors import InputError, VerificationError
from ledgerml.crypto.signers import Ed25519Signer, Ed25519Verifier, MLDSASigner, MLDSAVerifier

SIG_ED25519 = 0x01  # signed-note Ed25519 over the note text
SIG_COSIG_ED25519 = 0x04  # tlog-cosignature Ed25519 (cosignature/v1)
SIG_COSIG_MLDSA44 = 0x06  # tlog-cosignature ML-DSA-44 (subtree/v1)

MAX_SIGNATURES = 64
_DASH = "\u2014 "
_SUBTREE_LABEL = b"subtree/v1\n\x00"


def compute_key_id(name: str, sig_type: int, public_key: bytes) -> bytes:
    """key ID = SHA-256(name ‖ 0x0A ‖ signature type ‖ public key)[:4]."""
    return hashlib.sha256(name.encode() + b"\n" + bytes([sig_type]) + public_key).digest()[:4]


def _check_name(name: str) -> None:
    if not name or any(ch.isspace() for ch in name) or "+" in name:
        raise InputError("a key name must be non-empty, without spaces or '+'", field="key name")


def parse_checkpoint_head(text: str) -> tuple[str, int, bytes]:
    """(origin, tree size, root) from a C2SP tlog-checkpoint note text."""
    lines = text.split("\n")
    if len(lines) < 4:
        raise VerificationError("checkpoint body has fewer than three lines")
    origin, size_text, root_text = lines[0], lines[1], lines[2]
    if not size_text.isdigit() or (size_text != "0" and size_text.startswith("0")):
        raise VerificationError(f"checkpoint tree size {size_text!r} is not a decimal number")
    try:
        root = base64.b64decode(root_text, validate=True)
    except ValueError as exc:  # binascii.Error, or a non-ASCII character (found by fuzzing)
        raise VerificationError("checkpoint root hash is not base64") from exc
    return origin, int(size_text), root


@dataclass(frozen=True)
class NoteVerifier:
    """A (name, key ID, public key, signature type) tuple a client trusts."""

    name: str
    sig_type: int
    public_key: bytes
    key_id: bytes = field(init=False)

    def __post_init__(self) -> None:
        _check_name(self.name)
        object.__setattr__(
            self, "key_id", compute_key_id(self.name, self.sig_type, self.public_key)
        )

    def vkey(self) -> str:
        """The standard verifier key string: `name+hex(key ID)+base64(type ‖ public key)`."""
        blob = base64.b64encode(bytes([self.sig_type]) + self.public_key).decode()
        return f"{self.name}+{self.key_id.hex()}+{blob}"

    @classmethod
    def from_vkey(cls, vkey: str) -> NoteVerifier:
        try:
            name, hash_hex, blob = vkey.split("+", 2)  # base64 may contain "+"
            raw = base64.b64decode(blob, validate=True)
        except (ValueError, binascii.Error) as exc:
            raise InputError("malformed verifier key", field="vkey") from exc
        if len(raw) < 2:
            raise InputError("verifier key has no public key", field="vkey")
        verifier = cls(name, raw[0], raw[1:])
        if verifier.key_id.hex() != hash_hex.lower():
            raise InputError("key hash does not match the key", field="vkey")
        return verifier

    def verify(self, text: bytes, signature: bytes) -> bool:
        """Check the signature part (after the 4-byte key ID) over the note text."""
        if self.sig_type == SIG_ED25519:
            return Ed25519Verifier.from_public_bytes(self.public_key).verify(text, signature)
        if self.sig_type == SIG_COSIG_MLDSA44:
            if len(signature) < 8:
                return False
            (timestamp,) = struct.unpack(">Q", signature[:8])
            try:
                origin, size, root = parse_checkpoint_head(text.decode())
            except VerificationError:
                return False
            message = subtree_message(self.name, timestamp, origin, 0, size, root)
            return MLDSAVerifier.from_public_bytes(self.public_key, "ml-dsa-44").verify(
                message, signature[8:]
            )
        if self.sig_type == SIG_COSIG_ED25519:
            if len(signature) != 8 + 64:
                return False
            (timestamp,) = struct.unpack(">Q", signature[:8])
            message = b"cosignature/v1\ntime " + str(timestamp).encode() + b"\n" + text
            return Ed25519Verifier.from_public_bytes(self.public_key).verify(message, signature[8:])
        return False


def subtree_message(
    cosigner: str, timestamp: int, origin: str, start: int, end: int, root: bytes
) -> bytes:
    """The tlog-cosignature ML-DSA-44 `cosigned_message` (label `subtree/v1\\n\\0`)."""
    name_b, origin_b = cosigner.encode(), origin.encode()
    if not 1 <= len(name_b) <= 255 or not 1 <= len(origin_b) <= 255:
        raise InputError("cosigner name and origin must be 1..255 bytes", field="origin")
    if len(root) != 32:
        raise InputError("root hash must be 32 bytes", field="root")
    return (
        _SUBTREE_LABEL
        + bytes([len(name_b)])
        + name_b
        + struct.pack(">Q", timestamp)
        + bytes([len(origin_b)])
        + origin_b
        + struct.pack(">QQ", start, end)
        + root
    )


@dataclass(frozen=True)
class NoteSigner:
    """Signs note text under a key name with one signature type."""

    name: str
    sig_type: int
    signer: Ed25519Signer | MLDSASigner

    @classmethod
    def ed25519(cls, name: str, signer: Ed25519Signer) -> NoteSigner:
        return cls(name, SIG_ED25519, signer)

    @classmethod
    def mldsa44_cosigner(cls, name: str, signer: MLDSASigner) -> NoteSigner:
        if signer.algorithm != "ml-dsa-44":
            raise InputError("C2SP cosignatures use ML-DSA-44", field="signer")
        return cls(name, SIG_COSIG_MLDSA44, signer)

    @property
    def verifier(self) -> NoteVerifier:
        return NoteVerifier(self.name, self.sig_type, self.signer.verifier().public_bytes())

    def signature(self, text: bytes, *, timestamp: int | None = None) -> bytes:
        """4-byte key ID ‖ signature, ready to base64 into a signature line."""
        if self.sig_type == SIG_ED25519:
            return self.verifier.key_id + self.signer.sign(text)
        if self.sig_type == SIG_COSIG_MLDSA44:
            ts = int(time.time()) if timestamp is None else timestamp
            origin, size, root = parse_checkpoint_head(text.decode())
            message = subtree_message(self.name, ts, origin, 0, size, root)
            return self.verifier.key_id + struct.pack(">Q", ts) + self.signer.sign(message)
        raise InputError(f"unsupported signature type {self.sig_type:#04x}", field="sig_type")


@dataclass(frozen=True)
class SignatureLine:
    name: str
    key_id: bytes
    signature: bytes  # without the key ID


@dataclass(frozen=True)
class SignedNote:
    text: str
    signatures: tuple[SignatureLine, ...]

    def encode(self) -> str:
        lines = [
            f"{_DASH}{s.name} {base64.b64encode(s.key_id + s.signature).decode()}\n"
            for s in self.signatures
        ]
        return self.text + "\n" + "".join(lines)


def sign_note(text: str, signers: Sequence[NoteSigner], *, timestamp: int | None = None) -> str:
    """Sign `text` (which must end in a newline) with every signer."""
    _check_text(text)
    raw = text.encode()
    sigs = []
    for s in signers:
        blob = s.signature(raw, timestamp=timestamp)
        sigs.append(SignatureLine(s.name, blob[:4], blob[4:]))
    return SignedNote(text, tuple(sigs)).encode()


def _check_text(text: str) -> None:
    if not text.endswith("\n"):
        raise InputError("note text must end with a newline", field="note")
    if any(ord(ch) < 0x20 and ch != "\n" for ch in text):
        raise InputError("note text must not contain control characters", field="note")


def parse_note(note: str) -> SignedNote:
    """Split a signed note into its text and signature lines (no verification)."""
    if not note.endswith("\n"):
        raise VerificationError("malformed note: does not end with a newline")
    if any(ord(ch) < 0x20 and ch != "\n" for ch in note):
        raise VerificationError("malformed note: contains control characters")
    split = note.rfind("\n\n")
    if split < 0:
        raise VerificationError("malformed note: no blank line before the signatures")
    text, sig_block = note[: split + 1], note[split + 2 :]
    sigs: list[SignatureLine] = []
    for line in sig_block.split("\n")[:-1]:
        if not line.startswith(_DASH):
            raise VerificationError(f"malformed signature line {line[:40]!r}")
        name, sep, b64 = line[len(_DASH) :].rpartition(" ")
        if not sep or not name or " " in name:
            raise VerificationError(f"malformed signature line {line[:40]!r}")
        try:
            blob = base64.b64decode(b64, validate=True)
        except ValueError as exc:  # binascii.Error, or a non-ASCII character (found by fuzzing)
            raise VerificationError(f"signature of {name} is not base64") from exc
        if len(blob) < 5:
            raise VerificationError(f"signature of {name} is too short")
        sigs.append(SignatureLine(name, blob[:4], blob[4:]))
    if not sigs:
        raise VerificationError("note has no signatures")
    if len(sigs) > MAX_SIGNATURES:
        raise VerificationError("note has too many signatures")
    return SignedNote(text, tuple(sigs))


def verify_note(
    note: str, verifiers: Sequence[NoteVerifier], *, require_all: bool = True
) -> SignedNote:
    """Verify a note against trusted keys, per the signed-note rules.

    Signatures from unknown keys are ignored; a known key whose signature fails
    rejects the note. With `require_all` (our default, fail closed) every given
    verifier must have signed; otherwise at least one must.
    """
    parsed = parse_note(note)
    raw = parsed.text.encode()
    verified: set[tuple[str, bytes]] = set()
    for sig in parsed.signatures:
        for v in verifiers:
            if v.name == sig.name and v.key_id == sig.key_id:
                if not v.verify(raw, sig.signature):
                    raise VerificationError(f"bad signature from {v.name} ({v.key_id.hex()})")
                verified.add((v.name, v.key_id))
    wanted = {(v.name, v.key_id) for v in verifiers}
    if require_all and verified != wanted:
        missing = ", ".join(f"{n}+{k.hex()}" for n, k in sorted(wanted - verified))
        raise VerificationError(f"note lacks a signature from {missing}")
    if not verified:
        raise VerificationError("no signature from a trusted key")
    return parsed
