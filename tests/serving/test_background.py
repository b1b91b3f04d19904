"""The service's background jobs over real HTTP: promotions picked up without a restart,
checkpoints anchored on the embedded EVM while decisions keep flowing."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import orjson

from ledgerml.chain import deploy
from ledgerml.ledger.project import log_verifiers, open_ledger
from ledgerml.mlops import project_chain, trusted_roots
from ledgerml.mlops.training import train_model
from tests.serving.conftest import Trained, copy_project, promote_through_gate

REC = {"V1": -1.5, "V2": 0.3, "V3": 1.7, "V4": 0.0, "V5": 0.1, "V6": -0.2, "Amount": 12.0}


def _wait(predicate: Any, timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def test_a_new_promotion_is_served_without_restart(
    trained: Trained, tmp_path: Path, run_server: Any
) -> None:
    paths = copy_project(trained, tmp_path / "proj")
    server = run_server(paths, refresh_every_s=0.2)
    with server.client("scorer") as c:
        assert c.post("/v1/score", json={"features": REC}).json()["model_cid"] == trained.model_cid
        # Another process trains and promotes a challenger while the service runs.
        with open_ledger(paths) as ledger:
            cards = next(
                orjson.loads(e)["body"]["cid"]
                for _, e in ledger.entries()
                if b'"dataset.registered"' in e
            )
        challenger = train_model(
            paths, cards, "Class", params={"num_boost_round": 7, "early_stopping_rounds": 0}
        ).model_cid
        assert challenger != trained.model_cid
        # Through the gate (the chain lock is shared with the service's reads, which must
        # not hold it long enough to block this).
        t0 = time.monotonic()
        assert promote_through_gate(paths, challenger, threshold=0.3) is not None
        assert time.monotonic() - t0 < 10

        def served() -> bool:
            r = c.post("/v1/score", json={"features": REC})
            assert r.status_code == 200, r.text  # no request fails during the switch
            doc = r.json()
            return doc["model_cid"] == challenger and doc["threshold"] == 0.3

        _wait(served)
    with server.client("auditor") as c:
        health = c.get("/healthz").json()
    assert health["background"]["alias-refresh"]["aliases"]["champion"] == challenger


def test_checkpoints_are_anchored_in_the_background(
    trained: Trained, tmp_path: Path, run_server: Any
) -> None:
    paths = copy_project(trained, tmp_path / "proj")
    with project_chain(paths) as chain:
        deploy(chain, chain_dir=paths.chain)
    server = run_server(paths, anchor_every_s=0.3)
    with server.client("scorer") as c:
        made = [c.post("/v1/score", json={"features": REC}).json() for _ in range(5)]
    last = max(d["ledger_index"] for d in made)

    def anchored_past_decisions() -> bool:
        with server.client("auditor") as c:
            job = c.get("/healthz").json()["background"].get("anchor", {})
        assert job.get("last_error") is None, job
        return job.get("anchored_tree_size", 0) > last

    _wait(anchored_past_decisions, timeout=60)
    with server.client("auditor") as c:
        metrics = c.get("/metrics").text
    assert 'ledgerml_background_failures_total{job="anchor"} 0' in metrics
    assert "ledgerml_anchored_tree_size" in metrics
    # The anchor is on chain and the log is consistent with it.
    roots = trusted_roots(paths)
    assert any(r.tree_size > last for r in roots)
    with open_ledger(paths) as ledger:
        types = [orjson.loads(e)["type"] for _, e in ledger.entries(last)]
        report = ledger.verify(log_verifiers(paths), trusted=roots)
    assert "checkpoint.anchored" in types
    assert report.ok, report.problems


def test_bad_anchor_period_is_refused(trained: Trained, tmp_path: Path) -> None:
    from ledgerml.serving.app import create_app
    from tests.conftest import run_cli

    paths = copy_project(trained, tmp_path / "proj")
    r = run_cli(paths.home, "serve", "--anchor-every", "-1")
    assert r.returncode == 2 and "--anchor-every" in r.stderr
    with paths.config_toml.open("a") as fh:
        fh.write('\n[serving]\nanchor_every_s = "often"\n')
    try:
        create_app(paths)
    except Exception as exc:
        assert "serving.anchor_every_s" in str(exc)
    else:
        raise AssertionError("a non-numeric anchor period was accepted")


def test_public_tiles_opt_in(trained: Trained, tmp_path: Path, run_server: Any) -> None:
    """By default tiles need a reader key; `public_tiles = true` opens only the tlog paths."""
    paths = copy_project(trained, tmp_path / "proj")
    closed = run_server(paths)
    with closed.client(None) as anon:
        assert anon.get("/checkpoint").status_code == 401
        assert anon.get("/tile/entries/000.p/1").status_code == 401
    with paths.config_toml.open("a") as fh:
        fh.write("\n[serving]\npublic_tiles = true\n")
    opened = run_server(paths)
    with opened.client(None) as anon:
        assert anon.get("/checkpoint").text.startswith("ledgerml.local/")
        assert anon.get("/tile/entries/000.p/1").status_code == 200
        assert anon.get("/v1/checkpoint").status_code == 401  # the API still needs a key
        assert anon.get("/v1/decisions/nope").status_code == 401


def test_a_nested_type_field_cannot_promote_a_model(
    trained: Trained, tmp_path: Path, run_server: Any
) -> None:
    """A custom entry whose body mimics a promotion must not move the alias."""
    paths = copy_project(trained, tmp_path / "proj")
    server = run_server(paths, refresh_every_s=0.1)
    stranger = "bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy"
    with open_ledger(paths) as ledger:
        ledger.append(
            "x.note", {"alias": "champion", "model_cid": stranger, "t": {"type": "model.promoted"}}
        )
        seen = ledger.size()

    def refreshed() -> bool:
        with server.client("auditor") as c:
            health = c.get("/healthz").json()
        return health["background"]["alias-refresh"]["runs"] >= 3 and health["tree_size"] >= seen

    _wait(refreshed)
    with server.client("scorer") as c:
        assert c.post("/v1/score", json={"features": REC}).json()["model_cid"] == trained.model_cid


def test_concurrent_requests_each_get_their_own_decisions(
    trained: Trained, tmp_path: Path, run_server: Any
) -> None:
    """Requests scored and committed together (one model call, one commit) still get their
    own decisions, scores and ledger indices — the same as one by one."""
    from concurrent.futures import ThreadPoolExecutor

    paths = copy_project(trained, tmp_path / "proj")
    server = run_server(paths)
    bodies = [
        {"features": dict(REC, V1=-2 + k / 10)}
        if k % 3
        else {"records": [{"features": dict(REC, V2=k / 10)}, {"features": REC}]}
        for k in range(40)
    ]

    def post(body: dict) -> dict:
        with server.client("scorer") as c:
            r = c.post("/v1/score", json=body)
            assert r.status_code == 200, r.text
            return r.json()

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(post, bodies))
    with server.client("scorer") as c:  # one by one, for the reference scores
        alone = [c.post("/v1/score", json=b).json() for b in bodies]
    with open_ledger(paths) as ledger:
        for body, got, ref in zip(bodies, answers, alone, strict=True):
            decisions = got["decisions"] if "records" in body else [got]
            expected = ref["decisions"] if "records" in body else [ref]
            assert [d["score"] for d in decisions] == [d["score"] for d in expected]
            for d in decisions:
                entry = orjson.loads(ledger.entry(d["ledger_index"]))
                assert entry["body"]["decision_id"] == d["decision_id"]
                assert entry["body"]["score"] == d["score"]
