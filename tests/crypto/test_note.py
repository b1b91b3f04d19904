"""C2SP signed notes, checked by an independent verifier written from the spec.

The helpers below use only `cryptography`, `hashlib` and `base64` — not our
note module — so a bug shared by our signer and our verifier cannot hide.
"""

from __future__ import annotations

import base64
import hashlib
import struct

import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519, mldsa

from ledgerml.crypto.note import NoteSigner, NoteVerifier, sign_note, verify_note
from ledgerml.crypto.signers import (
    Ed25519Signer,
    HybridSigner,
    MLDSASigner,
)
from ledgerml.errors import VerificationError

ORIGIN = "example.com/ledgerml-test"
TEXT = f"{ORIGIN}\n42\n{base64.b64encode(bytes(range(32))).decode()}\n"


def spec_verify_ed25519(note: str, name: str, public: bytes) -> bool:
    """signed-note §Ed25519: key ID = SHA-256(name ‖ 0x0A ‖ 0x01 ‖ key)[:4]."""
    text, _, sigs = note.rpartition("\n\n")
    text += "\n"
    key_id = hashlib.sha256(name.encode() + b"\n\x01" + public).digest()[:4]
    for line in sigs.splitlines():
        assert line.startswith("\u2014 ")
        line_name, b64 = line[2:].rsplit(" ", 1)
        blob = base64.b64decode(b64)
        if line_name == name and blob[:4] == key_id:
            try:
                ed25519.Ed25519PublicKey.from_public_bytes(public).verify(blob[4:], text.encode())
                return True
            except Exception:
                return False
    return False


def spec_verify_mldsa44_cosig(note: str, name: str, public: bytes) -> bool:
    """tlog-cosignature ML-DSA-44: key ID type 0x06, `subtree/v1` message."""
    text, _, sigs = note.rpartition("\n\n")
    origin, size, root_b64 = text.split("\n")[:3]
    key_id = hashlib.sha256(name.encode() + b"\n\x06" + public).digest()[:4]
    for line in sigs.splitlines():
        line_name, b64 = line[2:].rsplit(" ", 1)
        blob = base64.b64decode(b64)
        if line_name != name or blob[:4] != key_id:
            continue
        (timestamp,) = struct.unpack(">Q", blob[4:12])
        message = (
            b"subtree/v1\n\x00"
            + bytes([len(name)])
            + name.encode()
            + struct.pack(">Q", timestamp)
            + bytes([len(origin)])
            + origin.encode()
            + struct.pack(">QQ", 0, int(size))
            + base64.b64decode(root_b64)
        )
        assert len(blob) == 4 + 8 + 2420
        try:
            mldsa.MLDSA44PublicKey.from_public_bytes(public).verify(blob[12:], message)
            return True
        except Exception:
            return False
    return False


def test_ed25519_note_verifies_with_an_independent_verifier() -> None:
    signer = NoteSigner.ed25519(ORIGIN, Ed25519Signer.generate())
    note = sign_note(TEXT, [signer])
    public = signer.verifier.public_key
    assert spec_verify_ed25519(note, ORIGIN, public)
    assert note.startswith(TEXT + "\n\u2014 " + ORIGIN + " ")
    # the verifier key string is name+hex(key id)+base64(0x01 ‖ key)
    name, key_hash, blob = signer.verifier.vkey().split("+", 2)
    assert name == ORIGIN
    assert key_hash == hashlib.sha256(ORIGIN.encode() + b"\n\x01" + public).digest()[:4].hex()
    assert base64.b64decode(blob) == b"\x01" + public
    assert NoteVerifier.from_vkey(signer.verifier.vkey()) == signer.verifier
    verify_note(note, [signer.verifier])


def test_mldsa44_cosignature_verifies_with_an_independent_verifier() -> None:
    ed = NoteSigner.ed25519(ORIGIN, Ed25519Signer.generate())
    pq = NoteSigner.mldsa44_cosigner(ORIGIN, MLDSASigner.generate("ml-dsa-44"))
    note = sign_note(TEXT, [ed, pq], timestamp=1_764_000_000)
    assert spec_verify_ed25519(note, ORIGIN, ed.verifier.public_key)
    assert spec_verify_mldsa44_cosig(note, ORIGIN, pq.verifier.public_key)
    verify_note(note, [ed.verifier, pq.verifier])
    # verify demands both: a note without the ML-DSA line fails
    only_ed = note.rsplit("\n", 2)[0] + "\n"
    assert only_ed.count("\u2014") == 1
    with pytest.raises(VerificationError, match="lacks a signature"):
        verify_note(only_ed, [ed.verifier, pq.verifier])


def test_tampering_is_detected_and_unknown_keys_ignored() -> None:
    signer = NoteSigner.ed25519(ORIGIN, Ed25519Signer.generate())
    other = NoteSigner.ed25519("other.example/key", Ed25519Signer.generate())
    note = sign_note(TEXT, [signer, other])
    verify_note(note, [signer.verifier], require_all=True)  # other's line is ignored
    with pytest.raises(VerificationError):
        verify_note(note.replace("\n42\n", "\n43\n"), [signer.verifier])
    sig_line = note.splitlines()[-2]
    blob = bytearray(base64.b64decode(sig_line.rsplit(" ", 1)[1]))
    blob[10] ^= 1
    forged = note.replace(sig_line.rsplit(" ", 1)[1], base64.b64encode(bytes(blob)).decode())
    with pytest.raises(VerificationError, match="bad signature"):
        verify_note(forged, [signer.verifier])
    with pytest.raises(VerificationError):
        verify_note(note, [NoteSigner.ed25519(ORIGIN, Ed25519Signer.generate()).verifier])


def test_hybrid_signer_needs_both_signatures() -> None:
    hybrid = HybridSigner(Ed25519Signer.generate(), MLDSASigner.generate("ml-dsa-65"))
    sig = hybrid.sign(b"decision")
    verifier = hybrid.verifier()
    assert verifier.verify(b"decision", sig)
    assert not verifier.verify(b"decision!", sig)
    # replace the ML-DSA half with a valid signature from another key: rejected
    other = MLDSASigner.generate("ml-dsa-65").sign(b"decision")
    ed_len = struct.unpack(">I", sig[:4])[0]
    ed_part = sig[: 4 + ed_len]
    assert not verifier.verify(b"decision", ed_part + struct.pack(">I", len(other)) + other)
    assert not verifier.verify(b"decision", ed_part)
