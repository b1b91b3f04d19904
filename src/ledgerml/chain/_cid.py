"""Just enough CIDv1 parsing to put a model's sha2-256 digest on chain.

The chain layer does not depend on `storage/`: it only needs to check that a CID string is a
base32 CIDv1 (raw or dag-pb) over a sha2-256 multihash and take the 32-byte digest out of it.
"""

from __future__ import annotations

import base64

from ledgerml.errors import InputError

_CODECS = {0x55: "raw", 0x70: "dag-pb"}
_SHA2_256 = 0x12


def _varint(data: bytes, pos: int, field: str) -> tuple[int, int]:
    value = shift = 0
    while True:
        if pos >= len(data) or shift > 63:
            raise InputError("truncated varint in CID", field=field)
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7


def cid_sha256_digest(cid: str, *, field: str = "cid") -> bytes:
    """The sha2-256 digest inside a CIDv1 base32 string; anything else is an InputError."""
    if not isinstance(cid, str) or not cid.startswith("b") or len(cid) < 10 or len(cid) > 128:
        raise InputError(f"not a CIDv1 in base32 (expected 'bafk…'/'bafy…'): {cid!r}", field=field)
    body = cid[1:].upper()
    try:
        raw = base64.b32decode(body + "=" * (-len(body) % 8))
    except ValueError as exc:
        raise InputError(f"invalid base32 in CID {cid!r}", field=field) from exc
    version, pos = _varint(raw, 0, field)
    if version != 1:
        raise InputError(f"CID version {version} is not supported (need 1)", field=field)
    codec, pos = _varint(raw, pos, field)
    if codec not in _CODECS:
        raise InputError(f"CID codec 0x{codec:x} is not raw or dag-pb", field=field)
    hash_code, pos = _varint(raw, pos, field)
    length, pos = _varint(raw, pos, field)
    if hash_code != _SHA2_256 or length != 32:
        raise InputError("CID multihash is not sha2-256 with a 32-byte digest", field=field)
    digest = raw[pos:]
    if len(digest) != 32:
        raise InputError("CID digest has the wrong length", field=field)
    return digest


def raw_cid_for_digest(digest: bytes) -> str:
    """The CIDv1 (raw codec) string of a sha2-256 digest, for tests and demos."""
    if len(digest) != 32:
        raise InputError("sha2-256 digest must be 32 bytes", field="digest")
    raw = bytes([1, 0x55, _SHA2_256, 32]) + digest
    return "b" + base64.b32encode(raw).decode("ascii").lower().rstrip("=")
