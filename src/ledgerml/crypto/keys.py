"""Key files of a project: created by `ledgerml init`, PEM, mode 0600.

`keys/log-ed25519.pem` signs checkpoints (C2SP signed note, type 0x01);
with post-quantum signing on, `keys/log-mldsa44.pem` adds an ML-DSA-44
cosignature (C2SP tlog-cosignature, type 0x06) that verification then demands.
`keys/chain.seed` derives the per-role blockchain accounts.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from pathlib import Path

from ledgerml.crypto.errors import ProjectError
from ledgerml.crypto.files import read_private, write_private
from ledgerml.crypto.note import NoteSigner, NoteVerifier
from ledgerml.crypto.signers import Ed25519Signer, MLDSASigner, load_private_pem

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


def load_log_keys(keys_dir: Path, origin: str, *, post_quantum: bool) -> LogKeys:
    """Load the signing keys; a missing key named in the config fails closed."""
    try:
        ed = load_private_pem(read_private(keys_dir / LOG_ED25519))  # refused if group/other
    except FileNotFoundError as exc:
        raise ProjectError(f"missing signing key {keys_dir / LOG_ED25519}", field="keys") from exc
    pq = None
    if post_quantum:
        try:
            pq = load_private_pem(read_private(keys_dir / LOG_MLDSA44))
        except FileNotFoundError as exc:
            raise ProjectError(
                f"post-quantum signing is on but {keys_dir / LOG_MLDSA44} is missing",
                field="keys",
            ) from exc
    assert isinstance(ed, Ed25519Signer) and (pq is None or isinstance(pq, MLDSASigner))
    return LogKeys(origin, ed, pq)


def load_chain_seed(keys_dir: Path) -> bytes:
    try:
        return read_private(keys_dir / CHAIN_SEED)
    except FileNotFoundError as exc:
        raise ProjectError(f"missing {keys_dir / CHAIN_SEED}", field="keys") from exc
