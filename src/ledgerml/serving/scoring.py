"""Pure scoring helpers: validate records against a model's features, commit to inputs.

Nothing here touches the ledger or the network, so the HTTP service and
`ledgerml score` share one path and one set of error messages::

    records = parse_request(body, features)        # InputError names the field
    salt, commitment = commit_input(records[0])    # salt stays with the caller
"""

from __future__ import annotations

import hashlib
import math
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ledgerml.crypto.canonical import canonical_json
from ledgerml.errors import InputError

MAX_BATCH = 1_000
"""Records per request: larger batches hold a worker (and the ledger writer) too long."""

DEFAULT_ALIAS = "champion"

#: The largest float32: models compute in 32-bit floats (XGBoost's DMatrix), where a larger
#: finite float64 becomes infinity and the model call fails (a 500 before this bound).
MAX_ABS_FEATURE = 3.4028234663852886e38


#: A feature value as the caller sent it: a number, or the text of a category feature.
FeatureValue = float | str

#: Category features of a model: name -> its categories (`Model.categories`).
Categories = Mapping[str, Sequence[str]]


@dataclass(frozen=True)
class ScoreRequest:
    """A validated request: the alias and the records, each a feature -> value mapping
    (floats; the text itself for a category feature, so the commitment covers what was sent)."""

    alias: str
    records: tuple[dict[str, FeatureValue], ...]
    batch: bool


def _category(value: Any, known: Sequence[str], field: str) -> str:
    """A category feature's text, which the model must have seen in training."""
    if not isinstance(value, str):
        raise InputError(
            f"must be one of the model's {len(known)} categories (text), not "
            f"{type(value).__name__}",
            field=field,
        )
    if value not in known:  # the value itself is not echoed: it may identify someone
        shown = ", ".join(known[:10]) + (", …" if len(known) > 10 else "")
        raise InputError(
            f"is not one of the {len(known)} categories the model was trained on ({shown})",
            field=field,
        )
    return value


def validate_record(
    record: Any, features: Sequence[str], where: str, categories: Categories | None = None
) -> dict[str, FeatureValue]:
    """One record's features as floats (category features: their text); InputError names the
    offending field.

    Rejects missing and extra features, non-numbers (booleans and strings
    included), null, NaN and infinities: the model must see what was committed.
    A category feature takes exactly one of the model's categories.
    """
    if not isinstance(record, Mapping):
        raise InputError("must be an object of feature values", field=where)
    for name in record:
        if name not in features:
            raise InputError(
                "is not a feature of this model (extra field)", field=f"{where}.{name}"
            )
    out: dict[str, FeatureValue] = {}
    cats = categories or {}
    for name in features:
        field = f"{where}.{name}"
        if name not in record:
            raise InputError("is required (missing feature)", field=field)
        value = record[name]
        if name in cats:
            out[name] = _category(value, cats[name], field)
            continue
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise InputError(f"must be a number, not {type(value).__name__}", field=field)
        try:
            value = float(value)
        except OverflowError:  # an integer of hundreds of digits: no float holds it
            raise InputError("is too large for a number", field=field) from None
        if not math.isfinite(value):
            raise InputError(
                "must be a finite number (NaN and Infinity are not allowed)", field=field
            )
        if abs(value) > MAX_ABS_FEATURE:
            raise InputError(
                f"must be within ±{MAX_ABS_FEATURE:.8g} (the model computes in 32-bit floats)",
                field=field,
            )
        out[name] = value
    return out


def parse_request(
    body: Any,
    features: Sequence[str],
    *,
    max_batch: int = MAX_BATCH,
    categories: Categories | None = None,
) -> ScoreRequest:
    """Validate `{"features": {...}}` or `{"records": [{"features": {...}} | {...}, ...]}`."""
    if not isinstance(body, Mapping):
        raise InputError("must be a JSON object", field="body")
    allowed = {"features", "records", "alias"}
    for key in body:
        if key not in allowed:
            raise InputError(
                f"unknown field {key!r} (expected one of {sorted(allowed)})",
                field=key if isinstance(key, str) and key.strip() else "body",
            )
    alias = body.get("alias", DEFAULT_ALIAS)
    if not isinstance(alias, str) or not 1 <= len(alias) <= 200:
        raise InputError("must be a non-empty string", field="alias")
    if ("features" in body) == ("records" in body):
        raise InputError(
            "give exactly one of `features` (one record) or `records` (a batch)", field="features"
        )
    if "features" in body:
        return ScoreRequest(
            alias, (validate_record(body["features"], features, "features", categories),), False
        )
    records = body["records"]
    if not isinstance(records, list) or not records:
        raise InputError("must be a non-empty list of records", field="records")
    if len(records) > max_batch:
        raise InputError(
            f"has {len(records):,} records; the limit is {max_batch:,}", field="records"
        )
    out = []
    for i, rec in enumerate(records):
        where = f"records[{i}]"
        if isinstance(rec, Mapping) and "features" in rec:
            extra = [k for k in rec if k != "features"]
            if extra:
                raise InputError("unknown field", field=f"{where}.{extra[0]}")
            rec, where = rec["features"], f"{where}.features"
        out.append(validate_record(rec, features, where, categories))
    return ScoreRequest(alias, tuple(out), True)


def commit_input(record: Mapping[str, FeatureValue], salt: bytes | None = None) -> tuple[str, str]:
    """(salt hex, commitment hex): SHA-256(salt ‖ RFC 8785 canonical JSON of the features).

    The salt is random per decision and never written to the ledger: without
    it the commitment reveals nothing; with it anyone can check the input.
    """
    salt = secrets.token_bytes(16) if salt is None else salt
    digest = hashlib.sha256(salt + canonical_json(dict(record))).hexdigest()
    return salt.hex(), digest


def new_decision_id() -> str:
    """A random, unguessable decision ID (no sequence to leak volumes)."""
    return "dec-" + secrets.token_hex(12)
