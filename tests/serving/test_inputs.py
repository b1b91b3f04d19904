"""Issue 17, items 5 and 6: bad input to any endpoint is a 4xx naming the field, never a 500
or a traceback, and nothing is appended; API keys are matched in constant time.

One real uvicorn server for the module; hypothesis drives the paths and bodies over HTTP.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ledgerml.ledger.project import open_ledger
from ledgerml.serving.app import KeyRing, create_app
from ledgerml.serving.tlog import parse_tile_path, tile_path
from tests.conftest import uvicorn_thread
from tests.serving.conftest import FEATURES, KEYS, Trained, copy_project

REC = {"V1": -1.5, "V2": 0.3, "V3": 1.7, "V4": 0.0, "V5": 0.1, "V6": -0.2, "Amount": 12.0}
FAST = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


class Served:
    def __init__(self, url: str, home: Path) -> None:
        self.url, self.home = url, home
        self.admin = httpx.Client(
            base_url=url, headers={"Authorization": f"Bearer {KEYS['admin']}"}, timeout=30
        )

    def size(self) -> int:
        with open_ledger(copy_home(self.home)) as ledger:
            return ledger.size()


def copy_home(home: Path):  # type: ignore[no-untyped-def]
    from ledgerml.config import ProjectPaths

    return ProjectPaths(home)


@pytest.fixture(scope="module")
def served(trained: Trained, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    paths = copy_project(trained, tmp_path_factory.mktemp("inputs") / "proj")
    with uvicorn_thread(create_app(paths, api_keys=KEYS)) as url:
        s = Served(url, paths.home)
        # a few decisions, so that tiles and proofs exist
        r = s.admin.post("/v1/score", json={"records": [REC] * 20})
        assert r.status_code == 200, r.text
        yield s
        s.admin.close()


def _no_500(r: httpx.Response) -> None:
    assert r.status_code < 500, (r.request.url, r.status_code, r.text[:300])
    assert "Traceback" not in r.text


def test_overflowing_number_and_deep_nesting_are_422(served: Served) -> None:
    before = served.size()
    big = json.dumps({"features": REC}).replace('"V1": -1.5', '"V1": 1' + "0" * 400)
    r = served.admin.post("/v1/score", content=big, headers={"content-type": "application/json"})
    assert r.status_code == 422, r.text
    assert r.json()["detail"]["field"] == "features.V1"
    for deep in ("[" * 100_000 + "]" * 100_000, '{"features":' + "[" * 100_000 + "]" * 100_000):
        r = served.admin.post("/v1/score", content=deep)
        assert r.status_code == 422, r.text[:200]
        assert r.json()["detail"]["field"] == "body"
    r = served.admin.post("/v1/score", content=b"\xff\xfe{")
    assert r.status_code == 422 and r.json()["detail"]["field"] == "body"
    assert served.size() == before


@pytest.mark.parametrize(
    ("path", "field"),
    [
        ("0/x999/x999/x999/x999/x999/x999/x999/999", "N"),  # was OverflowError (500)
        ("entries/x999/x999/x999/x999/x999/999", "N"),
        ("0/\u0660\u0660\u0660", "N"),  # Arabic-Indic digits: not a tile path
        ("0/x\u0661\u0662\u0663/000", "N"),
        ("\u0660/000", "L"),
        ("0/000.p/\u0665", "W"),
        ("0/000%0A", "N"),  # a trailing newline
        ("entries/000%0A", "N"),
        ("0/000.p/5%0A", "W"),
        ("01/000", "L"),
        ("0/000.p/005", "W"),
    ],
)
def test_malformed_tile_paths_are_400(served: Served, path: str, field: str) -> None:
    r = served.admin.get(f"/tile/{path}")
    assert r.status_code == 400, (path, r.status_code, r.content[:100])
    assert r.json()["detail"]["field"] == field


@FAST
@given(st.text(min_size=1, max_size=40))
def test_any_tile_path_is_a_tile_or_a_4xx(served: Served, path: str) -> None:
    r = served.admin.get("/tile/" + quote(path, safe="/"))
    _no_500(r)
    if r.status_code == 200:  # only canonical ASCII paths are served
        parsed = parse_tile_path(r.request.url.path.removeprefix("/tile/"))
        assert r.request.url.path.isascii()
        level = "entries" if parsed.level is None else parsed.level
        assert tile_path(level, parsed.index, parsed.width) == r.request.url.path[6:]


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**500), max_value=10**500)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=20,
)


@FAST
@given(
    st.one_of(
        json_values,
        st.dictionaries(st.sampled_from([*FEATURES, "x"]), json_values).map(
            lambda f: {"features": f}
        ),
        st.fixed_dictionaries(
            {"features": st.fixed_dictionaries({f: json_values for f in FEATURES})}
        ),
        st.lists(st.fixed_dictionaries({"features": st.just(REC)}), max_size=3).map(
            lambda rs: {"records": rs, "alias": "champion"}
        ),
    )
)
def test_any_score_body_is_scored_or_refused_naming_a_field(served: Served, body: object) -> None:
    try:
        content = json.dumps(body, allow_nan=True)
    except ValueError:  # integers past Python's str-conversion limit
        return
    r = served.admin.post("/v1/score", content=content)
    _no_500(r)
    assert r.status_code in (200, 422), r.text[:300]
    if r.status_code == 422:
        assert r.json()["detail"]["field"], r.text


@FAST
@given(st.binary(max_size=200))
def test_any_bytes_as_a_score_body(served: Served, raw: bytes) -> None:
    r = served.admin.post("/v1/score", content=raw)
    _no_500(r)


@FAST
@given(
    st.sampled_from(["/v1/proofs/inclusion", "/v1/proofs/consistency"]),
    st.dictionaries(
        st.sampled_from(["index", "size", "first", "second"]),
        st.one_of(
            st.integers(min_value=-(10**30), max_value=10**30).map(str),
            st.text(max_size=12),
        ),
        max_size=3,
    ),
)
def test_proof_queries_never_500(served: Served, path: str, params: dict[str, str]) -> None:
    _no_500(served.admin.get(path, params=params))


@FAST
@given(st.text(min_size=1, max_size=60).filter(lambda s: "/" not in s and s not in (".", "..")))
def test_decision_ids_never_500(served: Served, decision_id: str) -> None:
    r = served.admin.get("/v1/decisions/" + quote(decision_id, safe=""))
    _no_500(r)
    assert r.status_code in (404, 422)


def test_api_keys_by_role_and_wrong_keys(served: Served) -> None:
    """The right key gets its role; a prefix, an extension, a same-length change and a key
    of another role's length are refused (they are compared as SHA-256 digests)."""
    right = KEYS["scorer"]
    wrong = [
        right[:-1],
        right + "x",
        right[:-1] + chr(ord(right[-1]) ^ 1),
        "x" * len(right),
    ]
    for key in wrong:
        r = httpx.post(f"{served.url}/v1/score", json={"features": REC},
                       headers={"Authorization": f"Bearer {key}"})  # fmt: skip
        assert r.status_code == 401, key
    for role, key in KEYS.items():
        s = httpx.post(f"{served.url}/v1/score", json={"features": REC}, headers={"X-API-Key": key})
        c = httpx.get(f"{served.url}/v1/checkpoint", headers={"X-API-Key": key})
        assert (s.status_code == 200) == (role in ("scorer", "admin")), role
        assert (c.status_code == 200) == (role in ("auditor", "admin")), role
    ring = KeyRing({"scorer": [right, "second-scorer-key-0123"], "auditor": KEYS["auditor"]})
    assert ring.role_of(right) == "scorer" and ring.role_of("second-scorer-key-0123") == "scorer"
    assert ring.role_of(KEYS["auditor"]) == "auditor"
    assert all(ring.role_of(k) is None for k in wrong)
    assert right not in repr(ring.__dict__)  # only digests are kept


@pytest.mark.parametrize("value", ["3.4028235677973366e+38", "-1e39", "1e308"])
def test_a_feature_beyond_float32_is_422(served: Served, value: str) -> None:
    """Finite in float64, infinite in the model's float32: was a 500 from the model call."""
    before = served.size()
    body = json.dumps({"features": REC}).replace('"V1": -1.5', f'"V1": {value}')
    r = served.admin.post("/v1/score", content=body)
    assert r.status_code == 422, r.text
    assert r.json()["detail"]["field"] == "features.V1"
    assert served.size() == before
