"""`audit retention`: per-type policy, what is due, and the tlog-tiles minimum index."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ledgerml.ledger import init_project, open_ledger
from tests.audit.conftest import Demo, copy_demo
from tests.conftest import run_cli

CID = "bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy"


def _types(doc: dict) -> dict[str, dict]:
    return {t["event_type"]: t for t in doc["types"]}


def test_demo_nothing_due_today_decisions_due_next_year(demo: Demo) -> None:
    now = json.loads(run_cli(demo.home, "audit", "retention", "--json").stdout)
    types = _types(now)
    assert types["decision.recorded"]["keep_days"] == 183
    assert "Art. 26(6)" in types["decision.recorded"]["basis"]
    assert types["checkpoint.anchored"]["keep_days"] is None
    assert now["due"] == 0 and now["prunable_below"] == 0
    later = json.loads(
        run_cli(demo.home, "audit", "retention", "--as-of", "2030-01-01", "--json").stdout
    )
    t = _types(later)
    assert t["decision.recorded"]["due"] == t["decision.recorded"]["count"] > 0
    assert t["approval.granted"]["due"] == 0  # ten years
    # governance entries sit at the start of the log: nothing may be pruned
    assert later["prunable_below"] == 0
    human = run_cli(demo.home, "audit", "retention")
    assert human.returncode == 0 and "report only" in human.stdout


def test_minimum_index_is_whole_entry_bundles(tmp_path: Path) -> None:
    paths = init_project(tmp_path / "p")
    decisions = [
        (
            "decision.recorded",
            {"decision_id": f"d{i}", "model_cid": CID, "input_commitment": "00" * 32,
             "score": 0.1, "threshold": 0.5, "outcome": "approve"},
        )
        for i in range(600)
    ]  # fmt: skip
    with open_ledger(paths) as ledger:
        ledger.append_many(decisions)
        ledger.append("model.promoted", {"model_cid": CID, "alias": "champion"})
    doc = json.loads(
        run_cli(paths.home, "audit", "retention", "--as-of", "2040-01-01", "--json").stdout
    )
    assert doc["prunable_below"] == 512  # first kept entry is 600: two whole 256-entry bundles
    assert _types(doc)["decision.recorded"]["due"] == 600


@pytest.mark.slow
def test_config_override_and_legal_floor(demo: Demo, tmp_path: Path) -> None:
    paths = copy_demo(demo, tmp_path / "proj")
    base = paths.config_toml.read_text()
    paths.config_toml.write_text(base + '\n[audit.retention]\n"decision.recorded" = 400\n')
    doc = json.loads(run_cli(paths.home, "audit", "retention", "--json").stdout)
    assert _types(doc)["decision.recorded"]["keep_days"] == 400
    paths.config_toml.write_text(base + '\n[audit.retention]\n"decision.recorded" = 30\n')
    r = run_cli(paths.home, "audit", "retention")
    assert r.returncode == 2 and "audit.retention.decision.recorded" in r.stderr
    paths.config_toml.write_text(base + '\n[audit.retention]\n"checkpoint.anchored" = 400\n')
    assert run_cli(paths.home, "audit", "retention").returncode == 2
    r = run_cli(demo.home, "audit", "retention", "--as-of", "not-a-date")
    assert r.returncode == 2 and "--as-of" in r.stderr
