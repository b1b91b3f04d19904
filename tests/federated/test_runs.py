"""Real federated runs: Flower simulation (Ray), XGBoost, the SQLite ledger and the CAS.

Small tables and few rounds keep this quick; the full 5-bank, 10-round run is the CLI's
and the benchmark's (docs/federated.md has its figures).
"""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from ledgerml.config import ProjectPaths
from ledgerml.federated import FlOptions, FlResult, run_federated
from ledgerml.federated.audit import rederive_round
from ledgerml.federated.models import aggregate_by
from ledgerml.ledger import init_project, log_verifiers, open_ledger
from ledgerml.storage import cid_of_bytes, open_store

pytestmark = pytest.mark.slow

#: the default table (10,000 accounts, 120 days; ~190 held-out laundering transactions),
#: three rounds instead of ten
SMALL = {"banks": 5, "rounds": 3, "seed": 7}


@dataclass(frozen=True)
class Run:
    paths: ProjectPaths
    result: FlResult


def _run(tmp: Path, **kw: Any) -> Run:
    paths = init_project(tmp / "proj")
    return Run(paths, run_federated(paths, FlOptions(**(SMALL | kw))))


def entries(paths: ProjectPaths, kind: str) -> list[tuple[int, dict[str, Any]]]:
    out = []
    with open_ledger(paths) as ledger:
        for i, raw in ledger.entries():
            e = json.loads(raw)
            if e["type"] == kind:
                out.append((i, e["body"]))
    return out


@pytest.fixture(scope="module")
def clean(tmp_path_factory: pytest.TempPathFactory) -> Run:
    return _run(tmp_path_factory.mktemp("clean"))


def test_every_round_is_on_the_ledger(clean: Run) -> None:
    enrolled = entries(clean.paths, "fl.bank_enrolled")
    assert sorted(b["bank"] for _, b in enrolled) == ["B1", "B2", "B3", "B4", "B5"]
    rounds = entries(clean.paths, "fl.round")
    assert [b["round"] for _, b in rounds] == [1, 2, 3]
    store = open_store(clean.paths)
    for _, body in rounds:
        assert body["run_id"] == clean.result.run_id
        assert [u["bank"] for u in body["updates"]] == ["B1", "B2", "B3", "B4", "B5"]
        assert all(u["signature_ok"] and u["samples"] > 0 for u in body["updates"])
        assert all(0.0 <= u["trust"] <= 1.0 for u in body["updates"])
        assert sum(u["weight"] for u in body["updates"]) == pytest.approx(1.0)
        assert store.has(body["aggregate_cid"])
    assert rounds[-1][1]["aggregate_cid"] == clean.result.model_cid
    registered = entries(clean.paths, "model.registered")
    assert registered[-1][1]["cid"] == clean.result.model_cid
    with open_ledger(clean.paths) as ledger:
        assert ledger.verify(log_verifiers(clean.paths)).ok


def test_each_aggregate_is_rederived_from_ledger_and_cas(clean: Run) -> None:
    store = open_store(clean.paths)
    for index, body in entries(clean.paths, "fl.round"):
        check = rederive_round(clean.paths, index)
        assert check.ok, check.problems
        # and by hand, without the helper: fetch, hash-check, aggregate, compare the CID
        base = store.read_bytes(body["previous_cid"])
        ups = []
        for u in sorted(body["updates"], key=lambda u: u["bank"]):
            data = store.read_bytes(u["update_cid"])
            assert hashlib.sha256(data).hexdigest() == u["update_hash"]
            if u["weight"] > 0:  # an update the round excluded adds no trees
                ups.append((data, u["weight"]))
        assert cid_of_bytes(aggregate_by("xgboost", base, ups)) == body["aggregate_cid"]
        # the check has teeth: other weights give another model
        moved = [(d, w * 1.01) for d, w in ups]
        assert cid_of_bytes(aggregate_by("xgboost", base, moved)) != body["aggregate_cid"]


def test_a_corrupted_stored_update_fails_rederivation(clean: Run, tmp_path: Path) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(clean.paths.home, copy)
    paths = ProjectPaths(copy)
    index, body = entries(paths, "fl.round")[0]
    digest = body["updates"][0]["update_hash"]
    victims = [
        p
        for p in (copy / "blocks").rglob("*")
        if p.is_file() and hashlib.sha256(p.read_bytes()).hexdigest() == digest
    ]
    assert victims, "the update's block is in the CAS"
    data = bytearray(victims[0].read_bytes())
    data[len(data) // 2] ^= 1
    victims[0].write_bytes(bytes(data))
    try:
        check = rederive_round(paths, index)
    except Exception:  # the blockstore re-hashes on read and refuses
        return
    assert not check.ok


def test_federated_beats_the_banks_alone(clean: Run) -> None:
    comp = clean.result.comparison
    assert comp["test_set"]["laundering"] >= 20
    assert comp["federated"]["auprc"] > comp["local_mean"]["auprc"]
    assert comp["centralized"]["auprc"] > comp["local_mean"]["auprc"]
    # on this table whole-table features beat the federated model (a reference, not a bound:
    # docs/federated.md shows the order flips on other tables and seeds)
    assert comp["centralized"]["auprc"] > comp["federated"]["auprc"]
    assert comp["simple_features"]["amount_auprc"] < 5 * comp["simple_features"]["base_rate"]
    evaluations = entries(clean.paths, "evaluation.recorded")
    assert set(evaluations[-1][1]["baselines"]) >= {"local_mean", "centralized", "local_B1"}


@pytest.mark.parametrize("mode", ["flip", "scale"])
def test_a_poisoning_bank_loses_trust_and_the_model_holds(
    clean: Run, tmp_path: Path, mode: str
) -> None:
    run = _run(tmp_path, poison="B2", poison_mode=mode)
    rounds = entries(run.paths, "fl.round")
    trust = {u["bank"]: u["trust"] for u in rounds[2][1]["updates"]}  # after round 3
    assert trust["B2"] < min(t for b, t in trust.items() if b != "B2")
    # from the round after its trust fell on, the poisoner's updates carry no weight
    assert all(u["weight"] == 0.0 for _, b in rounds[1:] for u in b["updates"] if u["bank"] == "B2")
    clean_auprc = clean.result.comparison["federated"]["auprc"]
    poisoned_auprc = run.result.comparison["federated"]["auprc"]
    assert poisoned_auprc >= 0.95 * clean_auprc


def test_linear_fedavg_strategy_runs_and_rederives(tmp_path: Path) -> None:
    run = _run(tmp_path, strategy="linear", rounds=2, poison="B2", poison_mode="scale")
    rounds = entries(run.paths, "fl.round")
    assert [b["strategy"] for _, b in rounds] == ["linear", "linear"]
    for index, body in rounds:
        assert rederive_round(run.paths, index).ok
        b2 = next(u for u in body["updates"] if u["bank"] == "B2")
        assert b2["weight"] == 0.0  # a x10 weight delta is far from the median update
