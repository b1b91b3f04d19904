"""Bank keys and signed updates: a bank signs the hash of every update it sends.

Each bank holds an Ed25519 key (`keys/fl/<bank>.pem`, mode 0600). Its public key is
enrolled on the ledger (`fl.bank_enrolled`); the server accepts an update only when
its signature verifies under the enrolled key of the bank that claims it.

    signer = bank_signer(paths, "B1")                      # created on first use
    sig = sign_update(signer, run_id, 3, "B1", sha256_hex, samples=1200)
    assert verify_update(enrolled["B1"], run_id, 3, "B1", sha256_hex, 1200, sig)

The signed message is RFC 8785 canonical JSON of
`{"bank", "round", "run", "samples", "update_sha256"}`, so the sample count a bank
claims (which weighs its update) is covered too.
"""

from __future__ import annotations

import re
from pathlib import Path

from ledgerml.config import ProjectPaths
from ledgerml.crypto.canonical import canonical_json
from ledgerml.crypto.files import read_private
from ledgerml.crypto.keys import write_secret
from ledgerml.crypto.signers import Ed25519Signer, Ed25519Verifier, key_id, load_private_pem
from ledgerml.errors import InputError

BANK_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def check_bank_name(bank: str) -> str:
    """Bank names become file names and ledger fields: keep them plain."""
    if not BANK_NAME.match(bank):
        raise InputError(
            f"bank name {bank!r} must be 1-64 letters, digits, '_', '.', '-'", field="bank"
        )
    return bank


def key_path(paths: ProjectPaths, bank: str) -> Path:
    return paths.keys / "fl" / f"{check_bank_name(bank)}.pem"


def bank_signer(paths: ProjectPaths, bank: str, *, create: bool = True) -> Ed25519Signer:
    """The bank's signing key, created (0600, never overwritten) when missing."""
    path = key_path(paths, bank)
    if not path.exists():
        if not create:
            raise InputError(f"no key for bank {bank} at {path}", field="bank")
        write_secret(path, Ed25519Signer.generate().private_pem())
    return load_signer(path)


def load_signer(path: Path) -> Ed25519Signer:
    signer = load_private_pem(read_private(path))  # refused when group/other may read it
    if not isinstance(signer, Ed25519Signer):
        raise InputError(f"{path}: expected an Ed25519 key", field="key")
    return signer


def public_hex(signer: Ed25519Signer) -> str:
    return signer.verifier().public_bytes().hex()


def public_key_id(public_key_hex: str) -> str:
    return key_id(bytes.fromhex(public_key_hex))


def update_message(run_id: str, round_: int, bank: str, update_sha256: str, samples: int) -> bytes:
    return canonical_json(
        {
            "bank": bank,
            "round": round_,
            "run": run_id,
            "samples": samples,
            "update_sha256": update_sha256,
        }
    )


def sign_update(
    signer: Ed25519Signer, run_id: str, round_: int, bank: str, update_sha256: str, samples: int
) -> bytes:
    return signer.sign(update_message(run_id, round_, bank, update_sha256, samples))


def verify_update(
    public_key_hex: str,
    run_id: str,
    round_: int,
    bank: str,
    update_sha256: str,
    samples: int,
    signature: bytes,
) -> bool:
    """True only for a signature by the enrolled key over exactly these fields."""
    try:
        verifier = Ed25519Verifier.from_public_bytes(bytes.fromhex(public_key_hex))
    except ValueError:
        return False
    return verifier.verify(update_message(run_id, round_, bank, update_sha256, samples), signature)
