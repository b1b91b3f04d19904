"""RFC 8785 (JCS) canonical JSON, fast.

Every ledger entry is stored and hashed as its canonical JSON bytes, so two
implementations that agree on RFC 8785 agree on every hash. The reference
implementation is the `rfc8785` package; it is pure Python and costs ~20 µs per
entry, which alone would cap the ledger near 50k appends/s. For the common
case we get identical bytes from `orjson` (sorted keys, compact, minimal string
escapes, UTF-8) in ~0.3 µs and fix up the one thing it does differently: float
formatting (ECMAScript `Number.prototype.toString`, e.g. `1` not `1.0`, `1e+21`
not `1e21`). Keys beyond the Basic Multilingual Plane (where UTF-16 order
differs from code-point order) go to `rfc8785`. Property tests check the fast
path against `rfc8785` byte for byte.

    >>> canonical_json({"b": 1.0, "a": [1e21, "x"]})
    b'{"a":[1e+21,"x"],"b":1}'
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

import orjson
import rfc8785

from ledgerml.crypto.errors import InputError

_MAX_SAFE_INT = 2**53 - 1

# A JSON string token, or a JSON number token, in encoder output. Strings are
# matched first so digits inside them are never touched.
_TOKEN = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?')
_INTEGRAL_FLOAT = re.compile(rb"\.0(?![0-9])")
_NON_BMP = re.compile("[\U00010000-\U0010ffff]")
# Python's float repr differs from ECMAScript's only for integral values
# ("1.0") and exponent forms ("1e+16", "1e-05"). These substrings can also
# occur inside strings; then we merely take the (correct) slow path.

_OPTIONS = (
    orjson.OPT_SORT_KEYS
    | orjson.OPT_STRICT_INTEGER  # integers beyond ±(2**53-1) are refused, as I-JSON demands
    | orjson.OPT_PASSTHROUGH_DATACLASS
    | orjson.OPT_PASSTHROUGH_DATETIME
    | orjson.OPT_PASSTHROUGH_SUBCLASS
)


def _refuse(value: Any) -> Any:
    raise TypeError(f"{type(value).__name__} is not a JSON value")


def es6_number(value: float) -> str:
    """Format a float as ECMAScript's Number.prototype.toString does (RFC 8785 §3.2.2.3)."""
    if not math.isfinite(value):
        raise InputError("NaN and Infinity are not valid JSON numbers", field="number")
    if value == 0:
        return "0"
    if value.is_integer() and abs(value) <= _MAX_SAFE_INT:
        return str(int(value))
    sign = "-" if value < 0 else ""
    # repr gives the shortest round-tripping digits, as ECMAScript requires.
    mantissa, _, exp_text = repr(abs(value)).partition("e")
    int_part, _, frac_part = mantissa.partition(".")
    digits = int_part + frac_part
    point = len(int_part) + int(exp_text or 0)  # decimal point position within `digits`
    stripped = digits.lstrip("0")
    point -= len(digits) - len(stripped)
    digits = stripped.rstrip("0")
    k, n = len(digits), point
    if k <= n <= 21:
        return sign + digits + "0" * (n - k)
    if 0 < n <= 21:
        return sign + digits[:n] + "." + digits[n:]
    if -6 < n <= 0:
        return sign + "0." + "0" * (-n) + digits
    exp = n - 1
    exp_str = f"e+{exp}" if exp >= 0 else f"e-{-exp}"
    if k == 1:
        return sign + digits + exp_str
    return sign + digits[0] + "." + digits[1:] + exp_str


def _fix_token(match: re.Match[str]) -> str:
    token = match.group(0)
    if token[0] == '"':
        return token
    if "." in token or "e" in token or "E" in token:
        return es6_number(float(token))
    if len(token) > 15 and abs(int(token)) > _MAX_SAFE_INT:
        raise InputError(
            f"integer {token} is outside the interoperable range ±(2**53-1) of RFC 8785",
            field="number",
        )
    return token


def canonical_json(obj: Any, *, checked: bool = False) -> bytes:
    """The RFC 8785 canonical UTF-8 bytes of a JSON-compatible value.

    Raises `InputError` for values JSON cannot represent (NaN, Infinity, lone
    surrogates, non-string keys, integers beyond ±(2**53-1), objects that are
    not JSON). Pass `checked=True` only when the value has already been
    validated (e.g. by `check_json_value` or a model that refuses NaN): it
    skips a walk over the value that costs more than the encoding.
    """
    if not checked:
        check_json_value(obj, "json")
    try:
        data = orjson.dumps(obj, default=_refuse, option=_OPTIONS)
    except (TypeError, orjson.JSONEncodeError) as exc:
        raise InputError(f"not representable as canonical JSON: {exc}", field="json") from exc
    return _finish(data, obj)


def _needs_fixing(data: bytes) -> bool:
    """Could `data` hold a float whose orjson form differs from ECMAScript's?"""
    return bool(
        (data.find(b".0") >= 0 and _INTEGRAL_FLOAT.search(data))
        or data.find(b"e+") >= 0
        or data.find(b"e-") >= 0
    )


def _finish(data: bytes, obj: Any) -> bytes:
    """Turn orjson's output for `obj` into RFC 8785 bytes."""
    if not data.isascii():
        text = data.decode()
        if _NON_BMP.search(text):
            # Key order by UTF-16 code units differs from code-point order only
            # with characters beyond the BMP: use the reference implementation.
            try:
                return rfc8785.dumps(obj)
            except Exception as exc:  # rfc8785 raises its own error classes
                raise InputError(
                    f"not representable as canonical JSON: {exc}", field="json"
                ) from exc
    if _needs_fixing(data):
        data = _TOKEN.sub(_fix_token, data.decode()).encode()
    return data


def canonical_json_many(values: list[Any], *, checked: bool = False) -> list[bytes]:
    """`canonical_json` of many values, with the fix-up scan done once for all.

    The scan for floats to reformat and for characters beyond the BMP costs
    more than orjson's encoding of a small object; over a joined batch it runs
    once at C speed, and only a batch that needs it goes value by value.
    """
    if not checked:
        for value in values:
            check_json_value(value, "json")
    dumps = orjson.dumps
    try:
        out = [dumps(v, default=_refuse, option=_OPTIONS) for v in values]
    except (TypeError, orjson.JSONEncodeError):
        return [canonical_json(v, checked=True) for v in values]  # names the bad one
    joined = b"\n".join(out)  # a raw newline never occurs in compact JSON
    if joined.isascii() and not _needs_fixing(joined):
        return out
    return [_finish(data, value) for data, value in zip(out, values, strict=True)]


def is_canonical(data: bytes) -> bool:
    """True when `data` is exactly the canonical form of the JSON it encodes."""
    try:
        return canonical_json(json.loads(data)) == data
    except (ValueError, InputError):
        return False


def check_json_value(value: Any, path: str = "body") -> None:
    """Reject what RFC 8785 cannot represent, naming where it is.

    JSON objects must have string keys, numbers must be finite and integers
    within ±(2**53-1) (I-JSON, RFC 7493), so that every verifier parses the
    same value back.
    """
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return
    if isinstance(value, int):
        if abs(value) > _MAX_SAFE_INT:
            raise InputError("integer outside ±(2**53-1) (RFC 8785 / I-JSON)", field=path)
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise InputError("NaN and Infinity are not JSON numbers", field=path)
        return
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise InputError(f"object key {key!r} is not a string", field=path)
            check_json_value(item, f"{path}.{key}")
        return
    if isinstance(value, list | tuple):
        for i, item in enumerate(value):
            check_json_value(item, f"{path}[{i}]")
        return
    raise InputError(f"{type(value).__name__} is not a JSON value", field=path)
