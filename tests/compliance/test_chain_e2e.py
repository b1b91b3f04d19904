"""End to end on the real embedded EVM through the real CLI: `ledgerml check` creates the
pack's on-chain policy, enrols the model and submits; the contract then refuses to promote a
model under a threshold, naming the rule, and promotes a passing one after two approvals."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import orjson

from ledgerml.config import ProjectPaths
from ledgerml.ledger.project import open_ledger
from tests.compliance.conftest import GOOD_METRICS, record_model
from tests.conftest import run_cli


def ok(proc: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert proc.returncode == 0, f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    return proc


def entries(home: Path) -> list[dict[str, Any]]:
    with open_ledger(ProjectPaths(home)) as ledger:
        return [orjson.loads(e) for _, e in ledger.entries()]


def test_check_gates_promotion_on_chain(tmp_path: Path) -> None:
    home = tmp_path / "proj"
    ok(run_cli(home, "init"))
    ok(run_cli(home, "chain", "deploy"))
    paths = ProjectPaths(home)
    weak = record_model(paths, metrics={**GOOD_METRICS, "fp_ratio_vs_logreg": 1.25})
    strong = record_model(paths)

    # The weak model: recorded, submitted, contract says no -> exit 1 naming the rule.
    proc = run_cli(home, "check", weak.model, "--policy", "fraud-model", "--json")
    assert proc.returncode == 1, proc.stderr
    out = json.loads(proc.stdout)
    assert out["failed"] == ["FM-CHAL-LOGREG"] and out["tx_hash"].startswith("0x")
    types = [e["type"] for e in out["entries"]]
    assert types == ["policy.registered", "model.enrolled", "compliance.checked"]
    log = entries(home)
    checked = [e for e in log if e["type"] == "compliance.checked"]
    assert len(checked) == 1  # one entry: pack rules and contract verdicts together
    body = checked[0]["body"]
    assert body["tx_hash"] == out["tx_hash"] and body["passed"] is False
    verdicts = {r["rule_id"]: (r["on_chain"], r["passed"]) for r in body["results"]}
    assert verdicts["FM-CHAL-LOGREG"] == (True, False) and verdicts["FM-NO-PII"] == (True, True)

    promo = run_cli(home, "promote", weak.model, "--alias", "production")
    assert promo.returncode == 1
    assert "fp_ratio_vs_logreg" in promo.stderr, promo.stderr

    # The strong model: same (existing) policy, two approvals, promoted.
    out = json.loads(
        ok(run_cli(home, "check", strong.model, "--policy", "fraud-model", "--json")).stdout
    )
    assert out["passed"] and [e["type"] for e in out["entries"]] == [
        "model.enrolled",
        "compliance.checked",
    ]
    again = json.loads(
        run_cli(home, "check", strong.model, "--policy", "fraud-model", "--json").stdout
    )
    assert again["tx_hash"] is None and "already submitted" in again["note"]
    ok(run_cli(home, "approve", strong.model, "--as", "risk_approver"))
    refused = run_cli(home, "promote", strong.model, "--alias", "production")
    assert refused.returncode == 1 and "compliance_approver" in refused.stderr
    ok(run_cli(home, "approve", strong.model, "--as", "compliance_approver"))
    ok(run_cli(home, "promote", strong.model, "--alias", "production"))
    card = json.loads(
        ok(
            run_cli(
                home,
                "card",
                strong.model,
                "--intended-use",
                "Flag card payments for review",
                "--json",
            )
        ).stdout
    )
    assert [a["role"] for a in card["card"]["approvals"]] == [
        "risk_approver",
        "compliance_approver",
    ]
    ok(run_cli(home, "verify"))


def test_unknown_pack_exits_2_and_records_nothing(tmp_path: Path) -> None:
    home = tmp_path / "proj"
    ok(run_cli(home, "init"))
    ev = record_model(ProjectPaths(home))
    before = len(entries(home))
    proc = run_cli(home, "check", ev.model, "--policy", "no-such-pack")
    assert proc.returncode == 2 and "--policy" in proc.stderr and "fraud-model" in proc.stderr
    assert len(entries(home)) == before
    listed = json.loads(ok(run_cli(home, "policies", "--json")).stdout)
    assert [p["id"] for p in listed["packs"]] == [
        "credit-fair-lending",
        "fraud-model",
        "model-risk",
    ]
