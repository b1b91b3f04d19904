"""C2SP tlog-cosignature: the statement a witness signs about a checkpoint.

Why here and not in `crypto.note`: a cosignature is a *witness's* act (it asserts that the
checkpoint is the largest consistent tree it has seen), and the Ed25519 `cosignature/v1`
message commits to a timestamp that only the witness chooses. Verification of both kinds
lives in `crypto.note.NoteVerifier` (types 0x04 and 0x06), so every verifier shares it.

    key = WitnessKeys(name="bank-b.example/witness", ed25519=Ed25519Signer.generate())
    lines = key.cosign(checkpoint_text, timestamp=1_700_000_000)   # "— name base64…\\n" lines
    key.verifiers()                                                # NoteVerifiers to pin

Ed25519 (type 0x04): key ID = SHA-256(name ‖ "\\n" ‖ 0x04 ‖ pubkey)[:4]; signature =
u64 big-endian timestamp ‖ Ed25519("cosignature/v1\\ntime <ts>\\n" ‖ checkpoint text).
ML-DSA-44 (type 0x06): u64 timestamp ‖ ML-DSA-44(`subtree/v1` cosigned_message).
"""

from __future__ import annotations

import base64
import struct
import time
from dataclasses import dataclass

from ledgerml.crypto.note import (
    SIG_COSIG_ED25519,
    NoteSigner,
    NoteVerifier,
    compute_key_id,
    parse_checkpoint_head,
)
from ledgerml.crypto.signers import Ed25519Signer, MLDSASigner
from ledgerml.errors import InputError

_DASH = "\u2014 "
#: The spec's bound on the timestamp (u64, at most 2^63 - 1).
MAX_TIMESTAMP = 2**63 - 1


def ed25519_cosigned_message(checkpoint_text: bytes, timestamp: int) -> bytes:
    """The exact bytes an Ed25519 `cosignature/v1` signs."""
    return b"cosignature/v1\ntime " + str(timestamp).encode() + b"\n" + checkpoint_text


def signature_line(name: str, blob: bytes) -> str:
    """One signed-note signature line, `— <name> <base64(key ID ‖ signature)>\\n`."""
    return f"{_DASH}{name} {base64.b64encode(blob).decode()}\n"


@dataclass(frozen=True)
class WitnessKeys:
    """A witness's name and keys: Ed25519 always, ML-DSA-44 when configured."""

    name: str
    ed25519: Ed25519Signer
    mldsa44: MLDSASigner | None = None

    def __post_init__(self) -> None:
        if self.mldsa44 is not None and self.mldsa44.algorithm != "ml-dsa-44":
            raise InputError("C2SP cosignatures use ML-DSA-44", field="mldsa44")
        self.verifiers()  # checks the name (non-empty, no spaces or '+')

    def verifiers(self) -> list[NoteVerifier]:
        """The verifier keys (vkeys) a log's policy pins for this witness."""
        out = [NoteVerifier(self.name, SIG_COSIG_ED25519, self.ed25519.verifier().public_bytes())]
        if self.mldsa44 is not None:
            out.append(NoteSigner.mldsa44_cosigner(self.name, self.mldsa44).verifier)
        return out

    def cosign(self, checkpoint_text: str, *, timestamp: int | None = None) -> str:
        """The cosignature lines for a checkpoint text (which ends in a newline).

        The timestamp is never zero (tlog-witness forbids it) and fits in 63 bits.
        """
        ts = int(time.time()) if timestamp is None else timestamp
        if not 0 < ts <= MAX_TIMESTAMP:
            raise InputError("must be 1..2^63-1 seconds", field="timestamp")
        raw = checkpoint_text.encode()
        parse_checkpoint_head(checkpoint_text)  # origin, size, root must be well formed
        public = self.ed25519.verifier().public_bytes()
        key_id = compute_key_id(self.name, SIG_COSIG_ED25519, public)
        sig = self.ed25519.sign(ed25519_cosigned_message(raw, ts))
        lines = [signature_line(self.name, key_id + struct.pack(">Q", ts) + sig)]
        if self.mldsa44 is not None:
            signer = NoteSigner.mldsa44_cosigner(self.name, self.mldsa44)
            lines.append(signature_line(self.name, signer.signature(raw, timestamp=ts)))
        return "".join(lines)
