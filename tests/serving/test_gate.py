"""Issue 17, item 1: governance entries appended to the log cannot promote a model or set
its threshold. Only the gate (the ModelRegistry contract on the embedded EVM) decides.

The attack from the issue, over real HTTP against a running uvicorn: a model the contract
refused, an `evaluation.recorded` with threshold 0.999999 (every request approved) and a
`model.promoted` naming it, appended with the project's own log key while the service runs.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import orjson

from ledgerml.config import ProjectPaths
from ledgerml.ledger import init_project
from ledgerml.ledger.project import open_ledger
from ledgerml.mlops.datasets import register_dataset
from ledgerml.mlops.training import train_model
from tests.conftest import run_cli
from tests.mlops.conftest import fraud_csv
from tests.serving.conftest import (
    THRESHOLD,
    Trained,
    copy_project,
    promote_through_gate,
)

REC = {"V1": -1.5, "V2": 0.3, "V3": 1.7, "V4": 0.0, "V5": 0.1, "V6": -0.2, "Amount": 12.0}


def _wait(predicate: Any, timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while not (value := predicate()):
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)
    return value


def _cards(paths: ProjectPaths) -> str:
    with open_ledger(paths) as ledger:
        return next(
            orjson.loads(e)["body"]["cid"] for _, e in ledger.entries() if b"dataset.reg" in e
        )


def _refused_model(paths: ProjectPaths) -> str:
    """A second model the contract refuses (its AUPRC fails the policy's rule)."""
    cid = train_model(
        paths, _cards(paths), "Class", params={"num_boost_round": 5, "early_stopping_rounds": 0}
    ).model_cid
    assert promote_through_gate(paths, cid, threshold=0.5, auprc=0.1) is None
    return cid


def _forge(paths: ProjectPaths, cid: str, tx_hash: str | None = None) -> list[int]:
    """What `log append --jsonl bypass.jsonl` did, through Python with the log key."""
    promoted: dict[str, Any] = {"model_cid": cid, "alias": "champion"}
    if tx_hash:
        promoted["tx_hash"] = tx_hash  # a real transaction, but one that promoted another model
    with open_ledger(paths) as ledger:
        return ledger.append_many(
            [
                (
                    "evaluation.recorded",
                    {"model_cid": cid, "metrics": {"threshold_at_80_recall": 0.999999}},
                ),
                ("model.promoted", promoted),
            ]
        )


def _promotion_tx(paths: ProjectPaths, cid: str) -> str:
    with open_ledger(paths) as ledger:
        for _, e in ledger.entries_of_type("model.promoted"):
            if e["body"]["model_cid"] == cid:
                return str(e["body"]["tx_hash"])
    raise AssertionError("no promotion mirror")


def test_forged_promotion_and_threshold_are_ignored_over_http(
    trained: Trained, tmp_path: Path, run_server: Any
) -> None:
    paths = copy_project(trained, tmp_path / "proj")
    refused = _refused_model(paths)
    server = run_server(paths, refresh_every_s=0.1)
    with server.client("scorer") as c:
        before = c.post("/v1/score", json={"features": REC}).json()
    assert (before["model_cid"], before["threshold"]) == (trained.model_cid, THRESHOLD)

    # The attack: two appended lines, then the same claim bound to a real but unrelated tx.
    forged = _forge(paths, refused)
    forged += _forge(paths, refused, tx_hash=_promotion_tx(paths, trained.model_cid))
    claims = [i for i in forged if i % 2]  # each pair: evaluation, then promotion

    def ignored() -> dict[str, Any] | None:
        with server.client("auditor") as a:
            gate = a.get("/healthz").json()["gate"]
        return gate if gate["ignored_promotions"] >= 2 else None

    gate = _wait(ignored)
    assert [x["index"] for x in gate["recent_ignored"]] == claims
    assert all(x["alias"] == "champion" for x in gate["recent_ignored"])
    assert gate["aliases"]["champion"]["model_cid"] == trained.model_cid
    assert gate["aliases"]["champion"]["threshold"] == THRESHOLD
    assert "on chain" in gate["aliases"]["champion"]["threshold_source"]
    assert gate["last_read_ms"] is not None and gate["last_error"] is None
    with server.client("scorer") as c:
        for _ in range(3):  # several refresh periods after the forgery
            d = c.post("/v1/score", json={"features": REC}).json()
            assert (d["model_cid"], d["threshold"]) == (trained.model_cid, THRESHOLD)
            assert d["score"] == before["score"] and d["outcome"] == before["outcome"]
            time.sleep(0.2)
    with server.client("auditor") as a:
        metrics = a.get("/metrics").text
        models = a.get("/v1/models").json()["aliases"]
    assert "ledgerml_promotions_ignored_total 2" in metrics
    assert models["champion"]["model_cid"] == trained.model_cid
    assert models["champion"]["threshold"] == THRESHOLD

    # `ledgerml score` (a fresh process) and `audit trace` take the gate's champion too.
    data = fraud_csv(tmp_path / "later.csv", rows=50, seed=3)
    r = run_cli(paths.home, "score", str(data), "--json")
    assert r.returncode == 0, r.stderr
    summary = json.loads(r.stdout)
    assert (summary["model_cid"], summary["threshold"]) == (trained.model_cid, THRESHOLD)
    assert summary["threshold_source"].startswith("on chain")
    r = run_cli(paths.home, "audit", "trace", "--model", "champion", "--json")
    assert r.returncode == 0, r.stderr
    trace = json.loads(r.stdout)
    assert trace["model_cid"] == trained.model_cid


def test_without_a_deployment_nothing_is_promoted(tmp_path: Path, run_server: Any) -> None:
    """No chain, no gate: a `model.promoted` entry alone serves nothing, and says why."""
    paths = init_project(tmp_path / "proj")
    rec = register_dataset(paths, fraud_csv(tmp_path / "f.csv", rows=800), "cards", label="Class")
    cid = train_model(
        paths, rec.cid, "Class", params={"num_boost_round": 5, "early_stopping_rounds": 0}
    ).model_cid
    _forge(paths, cid)
    server = run_server(paths, refresh_every_s=0.1)
    with server.client("scorer") as c:
        r = c.post("/v1/score", json={"features": REC})
    assert r.status_code == 422, r.text
    detail = r.json()["detail"]
    assert detail["field"] == "alias"
    assert "no model is promoted as 'champion'" in detail["message"]
    assert "promotion goes through the gate (ledgerml chain deploy" in detail["message"]
    with server.client("auditor") as a:
        gate = a.get("/healthz").json()["gate"]
    assert gate["deployed"] is False and gate["ignored_promotions"] == 1
    assert "promotion goes through the gate" in gate["message"]
    r = run_cli(paths.home, "score", str(tmp_path / "f.csv"))
    assert r.returncode == 2 and "promotion goes through the gate" in r.stderr


def test_a_champion_without_an_onchain_threshold_fails_closed(
    tmp_path: Path, run_server: Any
) -> None:
    """Promoted through the gate but with no threshold metric on chain: every decision goes
    to review (never approved on a threshold the gate did not see), and /healthz says so."""
    paths = init_project(tmp_path / "proj")
    rec = register_dataset(paths, fraud_csv(tmp_path / "f.csv", rows=800), "cards", label="Class")
    cid = train_model(
        paths, rec.cid, "Class", params={"num_boost_round": 5, "early_stopping_rounds": 0}
    ).model_cid
    with open_ledger(paths) as ledger:  # a forged threshold must not fill the gap
        ledger.append(
            "evaluation.recorded", {"model_cid": cid, "metrics": {"threshold_at_80_recall": 0.9}}
        )
    assert promote_through_gate(paths, cid, threshold=None) is not None
    server = run_server(paths)
    with server.client("scorer") as c:
        ds = c.post("/v1/score", json={"records": [REC, dict(REC, V1=2.0)]}).json()["decisions"]
    assert {d["threshold"] for d in ds} == {0.0}
    assert {d["outcome"] for d in ds} == {"review"}
    with server.client("auditor") as a:
        served = a.get("/healthz").json()["gate"]["aliases"]["champion"]
    assert served["model_cid"] == cid and "fail-closed" in served["threshold_source"]


def test_a_busy_chain_is_waited_for_briefly_then_retried(
    trained: Trained, tmp_path: Path, run_server: Any
) -> None:
    """While another process holds the embedded chain (a long `promote`), the service does
    not queue behind it: it starts, says the gate could not be read, serves nothing it has
    not confirmed, and picks the champion up once the chain is free."""
    from ledgerml.mlops import project_chain

    paths = copy_project(trained, tmp_path / "proj")
    with project_chain(paths):  # the lock, as `ledgerml promote` holds it
        t0 = time.monotonic()
        server = run_server(paths, refresh_every_s=0.2)
        assert time.monotonic() - t0 < 20
        with server.client("scorer") as c:
            r = c.post("/v1/score", json={"features": REC})
        assert r.status_code == 422 and "the gate could not be read" in r.text, r.text
        with server.client("auditor") as a:
            gate = a.get("/healthz").json()["gate"]
        assert gate["failures"] >= 1 and "in use" in gate["last_error"]
    with server.client("scorer") as c:

        def served() -> bool:
            r = c.post("/v1/score", json={"features": REC})
            return r.status_code == 200 and r.json()["model_cid"] == trained.model_cid

        _wait(served)
