"""The fast RFC 8785 path must equal the reference `rfc8785` package byte for byte."""

from __future__ import annotations

import math

import pytest
import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st

from ledgerml.crypto.canonical import canonical_json, es6_number
from ledgerml.errors import InputError

finite = st.floats(allow_nan=False, allow_infinity=False)
safe_int = st.integers(-(2**53) + 1, 2**53 - 1)
text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=12)
json_values = st.recursive(
    st.none() | st.booleans() | finite | safe_int | text,
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(text, inner, max_size=5),
    max_leaves=25,
)


@settings(max_examples=2000, deadline=None)
@given(json_values)
def test_matches_reference_implementation(value: object) -> None:
    assert canonical_json(value) == rfc8785.dumps(value)


@settings(max_examples=5000, deadline=None)
@given(finite)
def test_floats_format_like_ecmascript(value: float) -> None:
    assert es6_number(value).encode() == rfc8785.dumps(value)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (1.0, b"1"),
        (-0.0, b"0"),
        (1e21, b"1e+21"),
        (1e20, b"100000000000000000000"),
        (1e-7, b"1e-7"),
        (0.000001, b"0.000001"),
        (123e-20, b"1.23e-18"),
        ({"b": [1.5, "x.0,"], "a": None}, b'{"a":null,"b":[1.5,"x.0,"]}'),
        ({"\U0001f600": 1, "\uffff": 2}, '{"\U0001f600":1,"\uffff":2}'.encode()),  # UTF-16 order
        ('\x01\u2028"\\/', b'"\\u0001\xe2\x80\xa8\\"\\\\/"'),
    ],
)
def test_known_values(value: object, expected: bytes) -> None:
    assert canonical_json(value) == expected == rfc8785.dumps(value)


@pytest.mark.parametrize("bad", [math.nan, math.inf, {1: 2}, 2**53, -(2**60), object(), "\ud800"])
def test_refuses_what_json_cannot_hold(bad: object) -> None:
    with pytest.raises(InputError):
        canonical_json(bad)


@settings(max_examples=300, deadline=None)
@given(st.lists(json_values, max_size=8))
def test_batch_encoding_equals_one_by_one(values: list[object]) -> None:
    from ledgerml.crypto.canonical import canonical_json_many

    assert canonical_json_many(values) == [rfc8785.dumps(v) for v in values]
