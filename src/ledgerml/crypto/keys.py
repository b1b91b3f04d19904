"""Key files of a project: created by `ledgerml init`, PEM, mode 0600.

`keys/log-ed25519.pem` signs checkpoints (C2SP signed note, type 0x01);
with post-quantum signing on, `keys/log-mldsa44.pem` adds an ML-DSA-44
cosignature (C2SP tlog-cosignature, type 0x06) that verification then demands.
`keys/chain.seed` derives the per-role blockchain accounts.

`ledgerml keys rotate` stages the next keys as `log-*.next.pem`, records them in the
log (a `key.rotated` entry signed by the old keys), then retires the old files as
`log-*.retired-<key ID>.pem` (kept, 0600) and moves the staged ones in place.
"""

from __future__ import annotations

import base64
import binascii
import os
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import UnsupportedAlgorithm

from ledgerml.crypto.errors import ProjectError
from ledgerml.crypto.files import read_private, write_private
from ledgerml.crypto.note import SIG_COSIG_MLDSA44, SIG_ED25519, NoteSigner, NoteVerifier
from ledgerml.crypto.signers import (
    Ed25519Signer,
    Ed25519Verifier,
    MLDSASigner,
    MLDSAVerifier,
    load_private_pem,
)

LOG_ED25519 = "log-ed25519.pem"
LOG_MLDSA44 = "log-mldsa44.pem"
CHAIN_SEED = "chain.seed"


def write_secret(path: Path, data: bytes) -> None:
    """Create a file readable by its owner only (0600, folder 0700, umask-independent),
    atomically, never overwriting."""
    write_private(path, data)


@dataclass(frozen=True)
class LogKeys:
    """The signing keys of a log and the verifier keys outsiders pin."""

    origin: str
    ed25519: Ed25519Signer
    mldsa44: MLDSASigner | None

    @property
    def note_signers(self) -> list[NoteSigner]:
        signers = [NoteSigner.ed25519(self.origin, self.ed25519)]
        if self.mldsa44 is not None:
            signers.append(NoteSigner.mldsa44_cosigner(self.origin, self.mldsa44))
        return signers

    @property
    def note_verifiers(self) -> list[NoteVerifier]:
        return [s.verifier for s in self.note_signers]

    @property
    def actor(self) -> str:
        """How entries name the project's own key: `name+keyhash` of its verifier key."""
        v = self.note_verifiers[0]
        return f"{v.name}+{v.key_id.hex()}"


def generate_log_keys(keys_dir: Path, *, post_quantum: bool) -> None:
    """Create the project's key files (refuses to overwrite existing ones)."""
    write_secret(keys_dir / LOG_ED25519, Ed25519Signer.generate().private_pem())
    if post_quantum:
        write_secret(keys_dir / LOG_MLDSA44, MLDSASigner.generate("ml-dsa-44").private_pem())
    write_secret(keys_dir / CHAIN_SEED, secrets.token_bytes(32))


def what_kind(kind: type[Ed25519Signer] | type[MLDSASigner]) -> str:
    return "Ed25519" if kind is Ed25519Signer else "ML-DSA-44"


def _load_key_file(path: Path, kind: type[Ed25519Signer] | type[MLDSASigner], what: str) -> Any:
    """One PEM private key of the expected kind; errors name the file and what is wrong."""
    try:
        data = read_private(path)  # refused when group/other may read it (files.py)
    except FileNotFoundError as exc:
        raise ProjectError(f"missing {what} {path}", field="keys") from exc
    except OSError as exc:
        raise ProjectError(f"cannot read {path}: {exc.strerror}", field="keys") from exc
    if not data.strip():
        raise ProjectError(f"{path} is empty (expected a PEM private key)", field="keys")
    if b"-----BEGIN" not in data:
        raise ProjectError(f"{path} is not a PEM file (no -----BEGIN line)", field="keys")
    try:
        key = load_private_pem(data)
    except ValueError as exc:
        if str(exc).startswith("unsupported private key"):  # e.g. an RSA key
            raise ProjectError(
                f"{path}: {exc}; log keys are {what_kind(kind)}", field="keys"
            ) from None
        raise ProjectError(
            f"{path}: unreadable PEM (truncated or damaged, or not a private key)", field="keys"
        ) from None
    except (TypeError, UnsupportedAlgorithm):
        raise ProjectError(
            f"{path}: not an unencrypted private key of a supported kind", field="keys"
        ) from None
    expected = what_kind(kind)
    if not isinstance(key, kind) or (isinstance(key, MLDSASigner) and key.algorithm != "ml-dsa-44"):
        got = key.algorithm if hasattr(key, "algorithm") else type(key).__name__
        raise ProjectError(f"{path} holds a {got} key, expected {expected}", field="keys")
    return key


def load_log_keys(keys_dir: Path, origin: str, *, post_quantum: bool) -> LogKeys:
    """Load the signing keys; a missing or unreadable key named in the config fails closed."""
    ed = _load_key_file(keys_dir / LOG_ED25519, Ed25519Signer, "signing key")
    pq = None
    if post_quantum:
        pq = _load_key_file(
            keys_dir / LOG_MLDSA44, MLDSASigner, "post-quantum signing key (post_quantum is on)"
        )
    return LogKeys(origin, ed, pq)


# --- key rotation ---------------------------------------------------------------

STAGED_SUFFIX = ".next"


def _staged(path: Path) -> Path:
    return path.with_name(path.stem + STAGED_SUFFIX + path.suffix)


def stage_log_keys(keys_dir: Path, origin: str, *, post_quantum: bool) -> LogKeys:
    """Generate the next log keys as `log-*.next.pem` (0600, fsynced) before the log names
    them, so a crash after the `key.rotated` commit never loses the new key."""
    for name in (LOG_ED25519, LOG_MLDSA44):
        _staged(keys_dir / name).unlink(missing_ok=True)  # an unused leftover of a failed try
    write_secret(_staged(keys_dir / LOG_ED25519), Ed25519Signer.generate().private_pem())
    if post_quantum:
        pem = MLDSASigner.generate("ml-dsa-44").private_pem()
        write_secret(_staged(keys_dir / LOG_MLDSA44), pem)
    return load_staged_log_keys(keys_dir, origin, post_quantum=post_quantum)


def load_staged_log_keys(keys_dir: Path, origin: str, *, post_quantum: bool) -> LogKeys:
    """The staged next keys (see `stage_log_keys`)."""
    ed = _load_key_file(_staged(keys_dir / LOG_ED25519), Ed25519Signer, "staged key")
    pq = None
    if post_quantum:
        pq = _load_key_file(_staged(keys_dir / LOG_MLDSA44), MLDSASigner, "staged key")
    return LogKeys(origin, ed, pq)


def has_staged_log_keys(keys_dir: Path) -> bool:
    return _staged(keys_dir / LOG_ED25519).exists()


def install_staged_log_keys(keys_dir: Path, retired_tag: str) -> list[Path]:
    """Retire the current key files (renamed `log-*.retired-<tag>.pem`, still 0600) and put
    the staged ones in their place; returns the retired files."""
    retired = []
    for name in (LOG_ED25519, LOG_MLDSA44):
        current, staged = keys_dir / name, _staged(keys_dir / name)
        if not staged.exists():
            continue
        if current.exists():
            target = current.with_name(f"{current.stem}.retired-{retired_tag}{current.suffix}")
            os.replace(current, target)
            os.chmod(target, 0o600)
            retired.append(target)
        os.replace(staged, current)
    fd = os.open(keys_dir, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    return retired


def rotation_message(origin: str, old: Sequence[str], new: Sequence[str]) -> bytes:
    """What the old keys sign in a `key.rotated` entry: origin and both verifier sets."""
    lines = ["ledgerml/key-rotation/v1", origin]
    lines += [f"old {v}" for v in old] + [f"new {v}" for v in new]
    return ("\n".join(lines) + "\n").encode()


def sign_rotation(signers: Sequence[NoteSigner], message: bytes) -> list[dict[str, str]]:
    """`sigs` of a `key.rotated` entry: one `{"key": vkey, "sig": base64}` per old key."""
    return [
        {"key": s.verifier.vkey(), "sig": base64.b64encode(s.signer.sign(message)).decode()}
        for s in signers
    ]


def verify_rotation(sigs: Any, verifiers: Sequence[NoteVerifier], message: bytes) -> str | None:
    """Why `sigs` do not carry a valid signature by every one of `verifiers`, or None."""
    if not isinstance(sigs, list):
        return "sigs is not a list"
    by_key = {s.get("key"): s.get("sig") for s in sigs if isinstance(s, dict)}
    for v in verifiers:
        sig = by_key.get(v.vkey())
        if not isinstance(sig, str):
            return f"no signature by the old key {v.name}+{v.key_id.hex()}"
        try:
            raw = base64.b64decode(sig, validate=True)
        except binascii.Error:
            return f"the signature by {v.name}+{v.key_id.hex()} is not base64"
        if v.sig_type == SIG_ED25519:
            ok = Ed25519Verifier.from_public_bytes(v.public_key).verify(message, raw)
        elif v.sig_type == SIG_COSIG_MLDSA44:
            ok = MLDSAVerifier.from_public_bytes(v.public_key, "ml-dsa-44").verify(message, raw)
        else:
            return f"unsupported key type {v.sig_type:#04x}"
        if not ok:
            return f"the signature by the old key {v.name}+{v.key_id.hex()} does not verify"
    return None


def load_chain_seed(keys_dir: Path) -> bytes:
    try:
        return read_private(keys_dir / CHAIN_SEED)
    except FileNotFoundError as exc:
        raise ProjectError(f"missing {keys_dir / CHAIN_SEED}", field="keys") from exc
