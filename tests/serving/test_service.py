"""The decision service over real HTTP: scoring, refusals, access, proofs and tiles.

Proofs and tiles are checked with an RFC 9162 verifier and hashing written here,
not with LedgerML's merkle module.
"""

from __future__ import annotations

import base64
import hashlib
import json
import struct
import time
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest

from ledgerml.crypto.note import verify_note
from ledgerml.ledger.project import log_verifiers, open_ledger
from ledgerml.serving.scoring import commit_input
from ledgerml.serving.tlog import tile_path
from tests.serving.conftest import FEATURES, Server, Trained, copy_project

# -- an independent RFC 9162 verifier -------------------------------------------------


def leaf_hash(entry: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + entry).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def verify_inclusion(index: int, size: int, leaf: bytes, path: list[bytes], root: bytes) -> bool:
    """RFC 9162 §2.1.3.2, step by step."""
    if index >= size:
        return False
    fn, sn, r = index, size - 1, leaf
    for p in path:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while not fn & 1 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    return sn == 0 and r == root


def mth(leaves: list[bytes]) -> bytes:
    """RFC 9162 §2.1.1 Merkle Tree Hash of leaf hashes (recursive definition)."""
    if len(leaves) == 1:
        return leaves[0]
    k = 1 << ((len(leaves) - 1).bit_length() - 1)
    return node_hash(mth(leaves[:k]), mth(leaves[k:]))


def parse_checkpoint(note: str) -> tuple[str, int, bytes]:
    origin, size, root = note.split("\n")[:3]
    return origin, int(size), base64.b64decode(root)


# -- fixtures ----------------------------------------------------------------------------


@pytest.fixture
def server(trained: Trained, tmp_path: Path, run_server: Any) -> Server:
    return run_server(copy_project(trained, tmp_path / "proj"), mode="sync")


def record(seed: int = 0) -> dict[str, float]:
    rng = np.random.default_rng(seed)
    rec = {
        f: round(float(v), 5) for f, v in zip(FEATURES, rng.normal(size=len(FEATURES)), strict=True)
    }
    rec["Amount"] = 42.5 + seed
    return rec


# -- tests -------------------------------------------------------------------------------


def test_score_one_and_batch_then_prove(server: Server) -> None:
    before = server.size()
    with server.client("scorer") as c:
        one = c.post("/v1/score", json={"features": record(1)})
        assert one.status_code == 200, one.text
        d = one.json()
        assert d["committed"] and d["ledger_index"] == before
        assert d["outcome"] in ("approve", "review")
        assert (d["outcome"] == "review") == (d["score"] >= d["threshold"])
        # The commitment opens with the returned salt; the input itself is not on the ledger.
        assert commit_input(record(1), bytes.fromhex(d["salt"]))[1] == d["input_commitment"]

        batch = c.post("/v1/score", json={"records": [{"features": record(i)} for i in range(50)]})
        assert batch.status_code == 200, batch.text
        ds = batch.json()["decisions"]
    assert [x["ledger_index"] for x in ds] == list(range(before + 1, before + 51))
    assert server.size() == before + 51
    reviews = [x for x in ds if x["outcome"] == "review"]
    assert reviews and all(len(x["reasons"]) <= 3 for x in reviews)
    assert any(x["reasons"] for x in reviews)  # TreeSHAP: features that pushed the score up

    with server.client("auditor") as a:
        got = a.get(f"/v1/decisions/{reviews[0]['decision_id']}")
        assert got.status_code == 200, got.text
        doc = got.json()
        note = a.get("/v1/checkpoint").text
    entry = base64.b64decode(doc["entry_b64"])
    body = orjson.loads(entry)["body"]
    assert body["decision_id"] == reviews[0]["decision_id"]
    assert body["input_commitment"] == reviews[0]["input_commitment"]
    assert "salt" not in body and "V1" not in entry.decode()
    _, size, root = parse_checkpoint(doc["checkpoint"])
    proof = doc["proof"]
    assert proof["tree_size"] == size and proof["leaf_index"] == doc["index"]
    path = [bytes.fromhex(h) for h in proof["hashes"]]
    assert verify_inclusion(doc["index"], size, leaf_hash(entry), path, root)
    assert not verify_inclusion(doc["index"], size, leaf_hash(entry + b" "), path, root)
    assert verify_note(doc["checkpoint"], log_verifiers(server.paths))
    assert parse_checkpoint(note)[1] >= size

    # Proof endpoints agree with an independent recomputation of the whole tree.
    with open_ledger(server.paths) as ledger:
        leaves = [leaf_hash(e) for _, e in ledger.entries()]
    assert mth(leaves[:size]) == root
    with server.client("admin", header="x-api-key") as a:
        inc = a.get("/v1/proofs/inclusion", params={"index": 3, "size": size}).json()
        assert verify_inclusion(3, size, leaves[3], [bytes.fromhex(h) for h in inc["hashes"]], root)
        cons = a.get("/v1/proofs/consistency", params={"first": 5, "second": size})
        assert cons.status_code == 200 and cons.json()["second"] == size
        assert a.get("/v1/decisions/dec-nope").status_code == 404
        models = a.get("/v1/models").json()["aliases"]
        assert models["champion"]["features"] == FEATURES
        metrics = a.get("/metrics").text
        assert 'ledgerml_decisions_total{outcome="review"}' in metrics
        assert (
            "ledgerml_score_seconds_bucket" in metrics
            and "ledgerml_decision_queue_depth" in metrics
        )
        assert a.get("/healthz").json()["status"] == "ok"
        assert a.get("/docs").status_code == 200
        assert "/v1/score" in a.get("/openapi.json").json()["paths"]


BAD: list[tuple[Any, str]] = [
    ({"features": {k: v for k, v in record().items() if k != "V3"}}, "features.V3"),
    ({"features": {**record(), "V2": "high"}}, "features.V2"),
    ({"features": {**record(), "V2": True}}, "features.V2"),
    ({"features": {**record(), "V2": None}}, "features.V2"),
    ({"features": {**record(), "Class": 1}}, "features.Class"),
    (
        {"records": [{"features": record()}, {"features": {**record(), "V4": "x"}}]},
        "records[1].features.V4",
    ),
    ({"records": [record()] * 1001}, "records"),
    ({"records": []}, "records"),
    ({"features": record(), "alias": "nobody"}, "alias"),
    ({"features": record(), "extra": 1}, "extra"),
]


def test_malformed_requests_name_the_field_and_append_nothing(server: Server) -> None:
    before = server.size()
    with server.client("scorer") as c:
        for body, field in BAD:
            r = c.post("/v1/score", json=body)
            assert r.status_code == 422, (field, r.text)
            assert r.json()["detail"]["field"] == field, r.text
        nan = json.dumps({"features": record()}).replace(
            '"V5": ' + str(record()["V5"]), '"V5": NaN'
        )
        r = c.post("/v1/score", content=nan, headers={"content-type": "application/json"})
        assert r.status_code == 422 and r.json()["detail"]["field"] == "features.V5", r.text
        r = c.post("/v1/score", content=b"{not json")
        assert r.status_code == 422 and r.json()["detail"]["field"] == "body"
    assert server.size() == before


def test_access_by_role(server: Server) -> None:
    before = server.size()
    body = {"features": record()}
    with server.client(None) as c:
        assert c.post("/v1/score", json=body).status_code == 401
        assert c.get("/v1/checkpoint").status_code == 401
    with server.client("wrong-key-0123456789") as c:
        assert c.post("/v1/score", json=body).status_code == 401
    with server.client("auditor") as c:
        assert c.post("/v1/score", json=body).status_code == 403
        assert c.get("/v1/checkpoint").status_code == 200
    with server.client("scorer") as c:
        assert c.get("/v1/checkpoint").status_code == 403
        assert c.get("/tile/0/000.p/1").status_code == 403
    assert server.size() == before
    with server.client("admin") as c:
        assert c.post("/v1/score", json=body).status_code == 200
    assert server.size() == before + 1


def test_tiles_match_independent_hashes(server: Server) -> None:
    with server.client("scorer") as c:
        for k in range(3):  # > 768 entries: three full level-0 tiles and a partial one
            r = c.post("/v1/score", json={"records": [record(i) for i in range(k, k + 300)]})
            assert r.status_code == 200, r.text
    with server.client("auditor") as a:
        note = a.get("/checkpoint").text
        _, size, root = parse_checkpoint(note)
        with open_ledger(server.paths) as ledger:
            entries = [e for _, e in ledger.entries(0, size)]
        leaves = [leaf_hash(e) for e in entries]
        assert mth(leaves) == root
        full, rest = divmod(size, 256)
        for n in range(full):
            t = a.get(f"/tile/{tile_path(0, n)}")
            assert t.status_code == 200
            assert t.content == b"".join(leaves[256 * n : 256 * n + 256])
            bundle = a.get(f"/tile/{tile_path('entries', n)}").content
            got, off = [], 0
            while off < len(bundle):
                (length,) = struct.unpack(">H", bundle[off : off + 2])
                got.append(bundle[off + 2 : off + 2 + length])
                off += 2 + length
            assert got == entries[256 * n : 256 * n + 256]
        if rest:
            p = a.get(f"/tile/{tile_path(0, full, rest)}")
            assert p.status_code == 200 and p.content == b"".join(leaves[256 * full :])
            assert a.get(f"/tile/{tile_path(0, full)}").status_code == 404  # not full yet
        assert a.get("/tile/0/x000/001").status_code == 400  # leading zero group
        assert a.get("/tile/1/000").status_code == 404  # level 1 needs 65,536 entries


def test_async_mode_commits_within_the_bound(
    trained: Trained, tmp_path: Path, run_server: Any
) -> None:
    srv = run_server(copy_project(trained, tmp_path / "proj"), mode="async")
    before = srv.size()
    with srv.client("admin") as c:
        t0 = time.monotonic()
        r = c.post("/v1/score", json={"records": [record(i) for i in range(100)]})
        assert r.status_code == 200, r.text
        ds = r.json()["decisions"]
        assert r.json()["mode"] == "async" and all(d["ledger_index"] is None for d in ds)
        while srv.size() < before + 100:
            assert time.monotonic() - t0 < 2.0, "async decisions not committed within 2 s"
            time.sleep(0.01)
        got = c.get(f"/v1/decisions/{ds[-1]['decision_id']}")
        assert got.status_code == 200, got.text
        assert got.json()["index"] == before + 99
