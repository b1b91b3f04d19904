"""`audit trace`: every hop of a lineage with a proof that verifies independently; the index
is rebuilt when it no longer matches the ledger; bad input exits 2."""

from __future__ import annotations

import base64
import json
import sqlite3
from pathlib import Path

import pytest

from ledgerml.audit.report import write_report
from ledgerml.config import ProjectPaths
from ledgerml.crypto.note import NoteVerifier, verify_note
from ledgerml.ledger import init_project, merkle, open_ledger
from ledgerml.ledger.index import LedgerIndex
from ledgerml.ledger.log import Checkpoint
from tests.audit.conftest import Demo, copy_demo
from tests.conftest import run_cli

EMPTY_FILE_CID = "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"  # no such model
EXPECTED_STEPS = {
    "decision", "model", "training run started", "training run finished", "data set",
    "evaluation", "compliance check", "approval", "promotion", "policy", "anchor",
}  # fmt: skip


def _check_independently(doc: dict, vkeys: list[str]) -> None:
    """Re-verify a trace's output with nothing but the proof format and the keys."""
    note = doc["checkpoint"]["note"]
    verify_note(note, [NoteVerifier.from_vkey(v) for v in vkeys])
    cp = Checkpoint.from_note(note)
    for step in doc["steps"]:
        entry = base64.b64decode(step["entry_b64"])
        p = step["proof"]
        assert p["tree_size"] == cp.size and p["leaf_index"] == step["index"]
        assert merkle.verify_inclusion(
            merkle.leaf_hash(entry), p["leaf_index"], cp.size,
            [bytes.fromhex(h) for h in p["hashes"]], cp.root,
        ), step["step"]  # fmt: skip
        assert json.loads(entry)["body"] == step["body"]


def _vkeys(home: Path) -> list[str]:
    """The verifier keys as `ledgerml keys show` publishes them (pinned out of band)."""
    return list(json.loads(run_cli(home, "keys", "show", "--json").stdout)["verifier_keys"])


def test_trace_decision_every_proof_verifies(demo: Demo) -> None:
    r = run_cli(demo.home, "audit", "trace", demo.alert_id, "--json")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["ok"] and doc["model_cid"] == demo.model_cid
    assert {s["step"] for s in doc["steps"]} >= EXPECTED_STEPS
    approvals = [s for s in doc["steps"] if s["step"] == "approval"]
    assert {a["body"]["role"] for a in approvals} == {"risk_approver", "compliance_approver"}
    assert all(a["body"]["tx_hash"] and a["body"]["approver"] for a in approvals)
    assert doc["steps"][0]["body"]["reasons"]  # an alert carries its reason codes
    _check_independently(doc, _vkeys(demo.home))
    human = run_cli(demo.home, "audit", "trace", demo.decision_id)
    assert human.returncode == 0 and "promotion" in human.stdout and "proved" in human.stdout


def test_trace_model_by_alias_and_cid(demo: Demo) -> None:
    by_alias = json.loads(
        run_cli(demo.home, "audit", "trace", "--model", "champion", "--json").stdout
    )
    by_cid = json.loads(
        run_cli(demo.home, "audit", "trace", "--model", demo.model_cid, "--json").stdout
    )
    assert by_alias["ok"] and by_alias["model_cid"] == demo.model_cid
    assert [s["index"] for s in by_alias["steps"]] == [s["index"] for s in by_cid["steps"]]


@pytest.mark.parametrize(
    "args",
    [
        ("audit", "trace", "dec-does-not-exist"),
        ("audit", "trace", "--model", "no-such-alias"),
        (
            "audit",
            "trace",
            "--model",
            "bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy",
        ),
        ("audit", "trace"),
        ("audit", "trace", "x", "--model", "champion"),
    ],
)
def test_trace_bad_input_exits_2(demo: Demo, args: tuple[str, ...]) -> None:
    r = run_cli(demo.home, *args)
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert "error" in r.stderr.lower()


def test_index_tops_up_and_rebuilds_when_the_ledger_changes(tmp_path: Path) -> None:
    paths = init_project(tmp_path / "p")
    body = {"run_id": "r1", "dataset_cids": [], "model_type": "xgboost"}
    with open_ledger(paths) as ledger:
        ledger.append("run.started", body)
        ledger.append("x.note", {"text": "hello"})
    with LedgerIndex.open(tmp_path / "index.db", paths.ledger_db) as index:
        first = index.refresh()
        assert first.scanned == 2 and index.find("r1") == [0]
        assert index.by_type("x.note") == [1]
        with open_ledger(paths) as ledger:
            ledger.append("run.finished", {"run_id": "r1", "status": "failed"})
        again = index.refresh()
        assert again.scanned == 1 and not again.rebuilt
        assert index.find("r1", "run.finished") == [2]
        assert index.refresh().scanned == 0
    # a different ledger at the same path: the remembered leaf no longer matches
    other = init_project(tmp_path / "q")
    with open_ledger(other) as ledger:
        for i in range(3):
            ledger.append("x.note", {"text": f"other {i}"})
    for suffix in ("", "-wal", "-shm"):
        Path(f"{paths.ledger_db}{suffix}").unlink(missing_ok=True)
    with sqlite3.connect(other.ledger_db) as src, sqlite3.connect(paths.ledger_db) as dst:
        src.backup(dst)
    with LedgerIndex.open(tmp_path / "index.db", paths.ledger_db) as index:
        stats = index.refresh()
        assert stats.rebuilt and stats.scanned == 3 and index.find("r1") == []


@pytest.mark.slow
def test_bench_trace_quick_within_budget() -> None:
    """The benchmark's quick mode (100,000 entries): every trace proves, p99 ≤ 100 ms."""
    import importlib.util

    path = Path(__file__).resolve().parents[2] / "bench" / "bench_audit.py"
    spec = importlib.util.spec_from_file_location("bench_audit", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    results = module.run(quick=True, progress=lambda _m: None)
    assert results["trace_ms"]["p99"] <= 100, results
    assert results["trace_proofs_verified"] > 0


def test_trace_signs_a_checkpoint_when_the_newest_is_behind(tmp_path: Path) -> None:
    """A log written without a checkpoint per batch still gets proofs against a signed head."""
    paths = init_project(tmp_path / "p")
    cid = EMPTY_FILE_CID
    with open_ledger(paths, checkpoint_every_batch=False) as ledger:
        ledger.append("model.registered", {"name": "m", "cid": cid, "framework": "xgboost"})
        ledger.append(
            "decision.recorded",
            {"decision_id": "d-1", "model_cid": cid, "input_commitment": "00" * 32,
             "score": 0.9, "threshold": 0.5, "outcome": "review", "reasons": ["V4 high"]},
        )  # fmt: skip
        assert max((s for s, _ in ledger.checkpoints()), default=0) < ledger.size()
    r = run_cli(paths.home, "audit", "trace", "d-1", "--json")
    assert r.returncode == 0, r.stdout + r.stderr
    doc = json.loads(r.stdout)
    assert doc["ok"] and doc["checkpoint"]["size"] == 2
    assert [s["step"] for s in doc["steps"]] == ["decision", "model"]


def _registered(paths: ProjectPaths) -> list[str]:
    with open_ledger(paths) as ledger:
        return [e["body"]["cid"] for _, e in ledger.entries_of_type("model.registered")]


def test_a_forged_promotion_neither_resolves_nor_counts_as_in_use(
    demo: Demo, tmp_path: Path
) -> None:
    """Issue 17: `model.promoted` appended with the log key (here: naming the retrained model
    the gate refused) does not move `champion` for trace or report, and the trace flags it."""
    paths = copy_demo(demo, tmp_path / "proj")
    refused = next((c for c in _registered(paths) if c != demo.model_cid), None)
    with open_ledger(paths) as ledger:
        if refused is None:  # the synthetic demo may retrain nothing: forge that part too
            refused = EMPTY_FILE_CID
            ledger.append("model.registered", {"name": "m", "cid": refused, "framework": "xgboost"})
        forged = ledger.append("model.promoted", {"model_cid": refused, "alias": "champion"})
    by_alias = json.loads(run_cli(paths.home, "audit", "trace", "--model", "champion",
                                  "--json").stdout)  # fmt: skip
    assert by_alias["model_cid"] == demo.model_cid and by_alias["unconfirmed_promotions"] == []
    r = run_cli(paths.home, "audit", "trace", "--model", refused, "--json")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["unconfirmed_promotions"] == [forged]
    step = next(s for s in doc["steps"] if s["index"] == forged)
    assert "NOT confirmed by the gate" in step["summary"]
    _, data = write_report(paths, tmp_path / "report.html")
    in_use = {m.cid: m.aliases for m in data.models}
    assert in_use[demo.model_cid] == ("champion",) and in_use[refused] == ()


def test_the_served_threshold_is_the_one_the_check_put_on_chain(demo: Demo, tmp_path: Path) -> None:
    """`ledgerml check` submits the evaluated threshold with the rule metrics; the service
    reads it from the contract (and a forged evaluation entry changes nothing)."""
    from ledgerml.serving.decisions import DecisionService

    paths = copy_demo(demo, tmp_path / "proj")
    with open_ledger(paths) as ledger:
        evaluated = [
            e["body"]["metrics"]["threshold_at_80_recall"]
            for _, e in ledger.entries_of_type("evaluation.recorded")
            if e["body"]["model_cid"] == demo.model_cid
        ][-1]
        ledger.append(
            "evaluation.recorded",
            {"model_cid": demo.model_cid, "metrics": {"threshold_at_80_recall": 0.999999}},
        )
    with DecisionService.open(paths) as svc:
        champion = svc.model_for("champion")
        served = svc.gate.served["champion"]
    assert champion.cid == demo.model_cid
    assert champion.threshold == pytest.approx(evaluated, abs=1e-6)
    assert served["threshold_source"].startswith("on chain")
