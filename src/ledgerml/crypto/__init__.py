"""Cryptographic building blocks, depending on nothing else of ours.

- `canonical_json` — RFC 8785 bytes, the form every entry is hashed in.
- `Ed25519Signer`, `MLDSASigner`, `HybridSigner` — one `Signer` protocol.
- `sign_note` / `verify_note` — C2SP signed notes and ML-DSA-44 cosignatures.
"""

from ledgerml.crypto.canonical import canonical_json, check_json_value
from ledgerml.crypto.note import NoteSigner, NoteVerifier, parse_note, sign_note, verify_note
from ledgerml.crypto.signers import (
    Ed25519Signer,
    HybridSigner,
    MLDSASigner,
    Signer,
    Verifier,
)

__all__ = [
    "Ed25519Signer",
    "HybridSigner",
    "MLDSASigner",
    "NoteSigner",
    "NoteVerifier",
    "Signer",
    "Verifier",
    "canonical_json",
    "check_json_value",
    "parse_note",
    "sign_note",
    "verify_note",
]
