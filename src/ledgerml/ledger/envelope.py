"""The entry envelope: an entry's exact bytes, built and checked in the caller's thread.

Every entry is `{"actor":…,"body":…,"sigs":…,"time":…,"type":…,"v":1}` in RFC 8785 form,
at most `MAX_ENTRY_BYTES`; its leaf hash is SHA-256(0x00 ‖ entry). Both drivers commit
the `PreparedEntry` tuples built here unchanged, so their logs are the same bytes.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Sequence
from datetime import UTC, datetime
from types import ModuleType
from typing import Any

from ledgerml.crypto.canonical import canonical_json, canonical_json_many, check_json_value
from ledgerml.errors import InputError

MAX_ENTRY_BYTES = 1 << 20
#: Largest index or size SQLite can hold (a signed 64-bit integer).
MAX_INDEX = (1 << 63) - 1

#: An entry validated and serialised by its producer, ready to commit: (entry bytes,
#: RFC 9162 leaf hash). A plain tuple: one is built per entry on the hot path.
PreparedEntry = tuple[bytes, bytes]


@functools.cache
def _events() -> ModuleType:
    """The typed event bodies, compiled on first append (~0.1 s of pydantic schema
    building that read-only commands — verify, trace, prove — never pay)."""
    from ledgerml.ledger import events

    return events


def type_suffix(event_type: str) -> bytes:
    """The last bytes of every entry of `event_type`.

    The envelope's keys come in a fixed order ending with "type" and "v", so an entry's
    type is told exactly by its suffix — unlike a search for `"type":"…"` anywhere in
    the bytes, which a nested object in a free-form body can contain.
    """
    return b',"type":' + _json_str(event_type) + b',"v":1}'


def _json_str(value: str) -> bytes:
    """A JSON string in RFC 8785 form (escaping is identical for strings)."""
    if not isinstance(value, str):
        raise InputError(f"must be a string, not {type(value).__name__}", field="entry")
    return canonical_json(value, checked=True)


#: `_json_str` of actors and event types: a process uses a handful of each, and a single
#: append would otherwise encode both every time (the decision service appends one by one).
_NAMES: dict[str, bytes] = {}


def _json_name(value: str) -> bytes:
    """`_json_str` of an actor or event type, remembered (up to 4,096 of them)."""
    found = _NAMES.get(value) if isinstance(value, str) else None
    if found is None:
        found = _json_str(value)
        if len(_NAMES) < 4096:
            _NAMES[value] = found
    return found


def _entry(
    actor: bytes, body: bytes, sigs: bytes, time_: bytes, event_type: bytes
) -> PreparedEntry:
    """An entry from its canonical parts, size-checked and leaf-hashed.

    The envelope's keys are fixed and already in RFC 8785 order (actor, body,
    sigs, time, type, v), and JCS is compositional, so the entry is the
    concatenation of canonical parts: no second encoding pass.
    """
    data = b"".join(
        (
            b'{"actor":',
            actor,
            b',"body":',
            body,
            b',"sigs":',
            sigs,
            b',"time":',
            time_,
            b',"type":',
            event_type,
            b',"v":1}',
        )
    )
    if len(data) > MAX_ENTRY_BYTES:
        raise _too_big(len(data))
    return (data, hashlib.sha256(b"\x00" + data).digest())


def _too_big(size: int, where: str = "") -> InputError:
    return InputError(
        f"{where}entry is {size:,} bytes; the limit is {MAX_ENTRY_BYTES:,} (1 MiB)", field="body"
    )


def utc_now() -> str:
    """RFC 3339 UTC time with microseconds, the `time` of an entry."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def prepare_entry(
    actor: str, event_type: str, body: Any, time_: str | None, sigs: Sequence[Any]
) -> PreparedEntry:
    """Validate and serialise one entry; raises `InputError` naming the problem."""
    _events().validate_body(event_type, body)
    if sigs:
        check_json_value(list(sigs), "sigs")
    return _entry(
        _json_name(actor),
        canonical_json(body, checked=True),
        canonical_json(list(sigs), checked=True) if sigs else b"[]",
        # utc_now() is digits and "-:.TZ": the JSON string is the text in quotes
        _json_str(time_) if time_ else b'"' + utc_now().encode() + b'"',
        _json_name(event_type),
    )


def prepare_batch(
    actor: str, items: Sequence[tuple[str, Any]], *, offset: int = 0, now: str | None = None
) -> list[PreparedEntry]:
    """Validate and serialise items; `InputError` names the first bad item."""
    _events().validate_bodies(items, offset)
    try:
        bodies = canonical_json_many([body for _, body in items], checked=True)
    except InputError as exc:
        raise InputError(f"a body: {exc}", field="body") from None
    actor_json, now_json = _json_name(actor), _json_str(now or utc_now())
    # Same envelope as `_entry`, built from a per-batch head and a per-type tail: every
    # entry of a batch shares actor, sigs and time, so each costs two concatenations.
    head = b'{"actor":' + actor_json + b',"body":'
    sigs_time = b',"sigs":[],"time":' + now_json + b',"type":'
    tails: dict[str, bytes] = {}
    sha256 = hashlib.sha256
    prepared: list[PreparedEntry] = []
    append = prepared.append
    for (event_type, _), body_bytes in zip(items, bodies, strict=True):
        tail = tails.get(event_type)
        if tail is None:
            tail = tails[event_type] = sigs_time + _json_name(event_type) + b',"v":1}'
        data = head + body_bytes + tail
        if len(data) > MAX_ENTRY_BYTES:
            raise _too_big(len(data), f"item {offset + len(prepared)}: ")
        append((data, sha256(b"\x00" + data).digest()))
    return prepared
