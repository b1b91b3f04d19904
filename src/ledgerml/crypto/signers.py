"""Signers and verifiers behind one small protocol.

Ed25519 is the default (fast, what C2SP signed notes specify). ML-DSA (FIPS 204)
is the post-quantum option: ML-DSA-44 for C2SP cosignatures, ML-DSA-65 for
everything else. A hybrid signer demands both, so a forger must break both.

    signer = Ed25519Signer.generate()
    sig = signer.sign(b"message")
    assert signer.verifier().verify(b"message", sig)
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass
from typing import Any, Literal, Protocol, runtime_checkable

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, mldsa

Algorithm = Literal["ed25519", "ml-dsa-44", "ml-dsa-65", "hybrid"]


@runtime_checkable
class Verifier(Protocol):
    """Checks signatures made by one key."""

    algorithm: Algorithm

    def public_bytes(self) -> bytes: ...

    def verify(self, message: bytes, signature: bytes) -> bool: ...


@runtime_checkable
class Signer(Protocol):
    """Signs messages with one private key."""

    algorithm: Algorithm

    def sign(self, message: bytes) -> bytes: ...

    def verifier(self) -> Verifier: ...

    def private_pem(self) -> bytes: ...


def key_id(public_bytes: bytes) -> str:
    """A short, stable identifier of a public key: hex of SHA-256, first 8 bytes."""
    return hashlib.sha256(public_bytes).hexdigest()[:16]


# --- what Ed25519 and ML-DSA keys share (cryptography gives both the same API) -------


class _RawPublicKey:
    """`public_bytes` and `verify` for a dataclass holding a public `key`."""

    key: Any

    def public_bytes(self) -> bytes:
        return self.key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)

    def verify(self, message: bytes, signature: bytes) -> bool:
        try:
            self.key.verify(signature, message)
        except InvalidSignature:
            return False
        return True


class _Pkcs8PrivateKey:
    """`private_pem` (unencrypted PKCS#8; the file is mode 0600) for a private `key`."""

    key: Any

    def private_pem(self) -> bytes:
        return self.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )


# --- Ed25519 -------------------------------------------------------------------


@dataclass(frozen=True)
class Ed25519Verifier(_RawPublicKey):
    key: ed25519.Ed25519PublicKey
    algorithm: Algorithm = "ed25519"

    @classmethod
    def from_public_bytes(cls, raw: bytes) -> Ed25519Verifier:
        return cls(ed25519.Ed25519PublicKey.from_public_bytes(raw))


@dataclass(frozen=True)
class Ed25519Signer(_Pkcs8PrivateKey):
    key: ed25519.Ed25519PrivateKey
    algorithm: Algorithm = "ed25519"

    @classmethod
    def generate(cls) -> Ed25519Signer:
        return cls(ed25519.Ed25519PrivateKey.generate())

    def sign(self, message: bytes) -> bytes:
        return self.key.sign(message)

    def verifier(self) -> Ed25519Verifier:
        return Ed25519Verifier(self.key.public_key())


# --- ML-DSA (FIPS 204) -------------------------------------------------------------

_MLDSA_PRIVATE: dict[str, type[mldsa.MLDSA44PrivateKey] | type[mldsa.MLDSA65PrivateKey]] = {
    "ml-dsa-44": mldsa.MLDSA44PrivateKey,
    "ml-dsa-65": mldsa.MLDSA65PrivateKey,
}
_MLDSA_PUBLIC: dict[str, type[mldsa.MLDSA44PublicKey] | type[mldsa.MLDSA65PublicKey]] = {
    "ml-dsa-44": mldsa.MLDSA44PublicKey,
    "ml-dsa-65": mldsa.MLDSA65PublicKey,
}


@dataclass(frozen=True)
class MLDSAVerifier(_RawPublicKey):
    key: mldsa.MLDSA44PublicKey | mldsa.MLDSA65PublicKey
    algorithm: Algorithm

    @classmethod
    def from_public_bytes(cls, raw: bytes, algorithm: Algorithm) -> MLDSAVerifier:
        return cls(_MLDSA_PUBLIC[algorithm].from_public_bytes(raw), algorithm)


@dataclass(frozen=True)
class MLDSASigner(_Pkcs8PrivateKey):
    key: mldsa.MLDSA44PrivateKey | mldsa.MLDSA65PrivateKey
    algorithm: Algorithm

    @classmethod
    def generate(cls, algorithm: Algorithm = "ml-dsa-65") -> MLDSASigner:
        if algorithm not in _MLDSA_PRIVATE:
            raise ValueError(f"algorithm: {algorithm!r} is not an ML-DSA parameter set we use")
        return cls(_MLDSA_PRIVATE[algorithm].generate(), algorithm)

    def sign(self, message: bytes) -> bytes:
        return self.key.sign(message)

    def verifier(self) -> MLDSAVerifier:
        return MLDSAVerifier(self.key.public_key(), self.algorithm)


# --- Hybrid ---------------------------------------------------------------------


def _pack(*parts: bytes) -> bytes:
    return b"".join(struct.pack(">I", len(p)) + p for p in parts)


def _unpack(blob: bytes, count: int) -> list[bytes] | None:
    parts, offset = [], 0
    for _ in range(count):
        if offset + 4 > len(blob):
            return None
        (length,) = struct.unpack_from(">I", blob, offset)
        offset += 4
        if offset + length > len(blob):
            return None
        parts.append(blob[offset : offset + length])
        offset += length
    return parts if offset == len(blob) else None


@dataclass(frozen=True)
class HybridVerifier:
    """Accepts only when *both* the classical and the post-quantum signature verify."""

    classical: Ed25519Verifier
    post_quantum: MLDSAVerifier
    algorithm: Algorithm = "hybrid"

    def public_bytes(self) -> bytes:
        return _pack(self.classical.public_bytes(), self.post_quantum.public_bytes())

    def verify(self, message: bytes, signature: bytes) -> bool:
        parts = _unpack(signature, 2)
        if parts is None:
            return False
        return self.classical.verify(message, parts[0]) and self.post_quantum.verify(
            message, parts[1]
        )


@dataclass(frozen=True)
class HybridSigner:
    """Ed25519 and ML-DSA together; the signature is both, length-prefixed."""

    classical: Ed25519Signer
    post_quantum: MLDSASigner
    algorithm: Algorithm = "hybrid"

    def sign(self, message: bytes) -> bytes:
        return _pack(self.classical.sign(message), self.post_quantum.sign(message))

    def verifier(self) -> HybridVerifier:
        return HybridVerifier(self.classical.verifier(), self.post_quantum.verifier())

    def private_pem(self) -> bytes:
        return self.classical.private_pem() + self.post_quantum.private_pem()


def load_private_pem(pem: bytes) -> Ed25519Signer | MLDSASigner:
    """Load one PEM private key of a kind we use."""
    key = serialization.load_pem_private_key(pem, password=None)
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return Ed25519Signer(key)
    for algorithm, cls in _MLDSA_PRIVATE.items():
        if isinstance(key, cls):
            return MLDSASigner(key, algorithm)  # type: ignore[arg-type]
    raise ValueError(f"unsupported private key type {type(key).__name__}")
