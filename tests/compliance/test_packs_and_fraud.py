"""Packs load and validate; the fraud-model pack passes good evidence and names bad evidence."""

from __future__ import annotations

import orjson
import pytest

from ledgerml.compliance import available_packs, check_model, load_pack
from ledgerml.compliance.packs import parse_pack
from ledgerml.config import ProjectPaths
from ledgerml.errors import InputError
from ledgerml.ledger.project import open_ledger
from tests.compliance.conftest import GOOD_METRICS, ledger_size, record_model


@pytest.mark.parametrize("name", ["fraud-model", "credit-fair-lending", "model-risk"])
def test_each_pack_loads_with_cited_rules(name: str) -> None:
    pack = load_pack(name)
    assert pack.id == name and pack.policy_id == f"{name}-v{pack.version}"
    assert len(pack.sha256) == 64 and pack.rules
    for rule in pack.rules:
        assert rule.regulation and rule.description
        assert len(rule.metric) <= 32
    assert name in available_packs()


def test_pack_citations_are_current() -> None:
    text = " ".join(r.regulation for n in available_packs() for r in load_pack(n).rules)
    assert "SR 26-2" in text and "OCC Bulletin 2026-13" in text
    assert "1002.9" in text and "1607.4(D)" in text and "21 Jul 2026" in text
    assert "C-634/21" in text and "C-203/22" in text and "Art. 26(6)" in text


def test_malformed_pack_names_the_field() -> None:
    good = b'[pack]\nid="x"\nversion=1\napprover_roles=["risk_approver"]\n'
    rule = b'[[rule]]\nid="R"\nregulation="r"\ndescription="d"\nkind="metric"\nmetric="m"\n'
    parse_pack(good + rule + b'comparator=">="\nthreshold=1\n')
    with pytest.raises(InputError, match=r"rule\[0\]\.comparator"):
        parse_pack(good + rule + b'comparator="=="\nthreshold=1\n')
    with pytest.raises(InputError, match=r"rule\[0\]\.check"):
        parse_pack(good + rule.replace(b'"metric"\n', b'"check"\ncheck="astrology"\n'))


def test_unknown_pack_is_input_error_and_records_nothing(paths: ProjectPaths) -> None:
    ev = record_model(paths)
    before = ledger_size(paths)
    with pytest.raises(InputError) as info:
        check_model(paths, ev.model, "fraud-modle", submit=False)
    assert info.value.field == "--policy" and "fraud-model" in str(info.value)
    assert ledger_size(paths) == before


def _entry(paths: ProjectPaths, index: int) -> dict:
    with open_ledger(paths) as ledger:
        return orjson.loads(ledger.entry(index))


def test_fraud_model_passes_with_good_evidence(paths: ProjectPaths) -> None:
    ev = record_model(paths)
    result = check_model(paths, ev.model, "fraud-model", submit=False)
    assert result.passed, result.to_json()
    assert result.tx_hash is None and "off-chain" in (result.note or "")
    entry = _entry(paths, result.ledger_index)
    assert entry["type"] == "compliance.checked"
    body = entry["body"]
    assert body["passed"] is True and body["pack"] == "fraud-model"
    assert body["pack_sha256"] == load_pack("fraud-model").sha256
    ids = [r["rule_id"] for r in body["results"]]
    assert ids == [r.id for r in load_pack("fraud-model").rules]
    by_id = {r["rule_id"]: r for r in body["results"]}
    assert by_id["FM-CHAL-LOGREG"]["value"] == 0.31
    assert by_id["FM-CHAL-LOGREG"]["threshold"] == 1.0
    assert by_id["FM-NO-PII"]["value"] == 1.0
    assert "GDPR Art. 5(1)(c)" in by_id["FM-NO-PII"]["regulation"]


def test_fraud_model_fails_naming_the_rule(paths: ProjectPaths) -> None:
    weak = record_model(paths, metrics={**GOOD_METRICS, "fp_ratio_vs_logreg": 1.25})
    result = check_model(paths, weak.model, "fraud-model", submit=False)
    assert not result.passed and result.failed == ["FM-CHAL-LOGREG"]
    assert _entry(paths, result.ledger_index)["body"]["passed"] is False  # recorded anyway


def test_pii_column_among_features_fails(paths: ProjectPaths) -> None:
    ev = record_model(
        paths, features=["Amount", "V1", "card_holder"], pii=["card_holder"], subject="pan"
    )
    result = check_model(paths, ev.model, "fraud-model", submit=False)
    assert result.failed == ["FM-NO-PII"]
    (pii,) = [r for r in result.results if r.rule_id == "FM-NO-PII"]
    assert "card_holder" in pii.detail and pii.value == 0.0


def test_missing_lineage_and_metric_fail_closed(paths: ProjectPaths) -> None:
    metrics = {k: v for k, v in GOOD_METRICS.items() if k != "roc_auc"}
    ev = record_model(paths, with_run=False, metrics=metrics)
    result = check_model(paths, ev.model, "fraud-model", submit=False)
    # no run: no lineage, and no training window to recompute the leakage and identifier
    # screens on: those rules fail closed rather than trust the features' names alone
    assert set(result.failed) == {"FM-LINEAGE", "FM-PERF-ROCAUC", "FM-LEAKAGE", "FM-NO-PII"}
    (pii,) = [r for r in result.results if r.rule_id == "FM-NO-PII"]
    assert pii.value is None and "cannot screen" in pii.detail
    (roc,) = [r for r in result.results if r.rule_id == "FM-PERF-ROCAUC"]
    assert roc.value is None and "no evidence" in roc.detail


def test_unknown_model_is_input_error(paths: ProjectPaths) -> None:
    record_model(paths)
    before = ledger_size(paths)
    with pytest.raises(InputError, match="model"):
        check_model(paths, "bafkrei" + "a" * 52, "fraud-model")
    assert ledger_size(paths) == before
