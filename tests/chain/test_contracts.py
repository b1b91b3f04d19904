"""The contract suite, run unchanged on the embedded EVM and on anvil (see conftest)."""

from __future__ import annotations

import pytest

from ledgerml.chain import AnchorLog, Chain, ContractRevert, Deployment, Governance, Rule, role_id
from ledgerml.errors import InputError, VerificationError

from .conftest import new_cid

POLICY_RULES = [Rule("auprc", ">=", 0.70), Rule("di_ratio", ">=", 0.8), Rule("psi", "<=", 0.1)]
GOOD = {"auprc": 0.82, "di_ratio": 0.91, "psi": 0.03}
DATASET = "ab" * 32


def gov_with_policy(chain: Chain, dep: Deployment, policy: str = "fraud-v1") -> Governance:
    gov = Governance(chain, dep.model_registry)
    gov.set_policy(policy, POLICY_RULES, ["risk_approver", "compliance_approver"], 0.25)
    return gov


def registered(gov: Governance, ledger_index: int = 7) -> str:
    cid = new_cid()
    gov.register_model(cid, DATASET, "fraud-v1", ledger_index)
    return cid


def nonce(chain: Chain, role: str) -> int:
    return int(chain.w3.eth.get_transaction_count(chain.address(role)))


def test_happy_path_to_promoted(chain: Chain, deployment: Deployment) -> None:
    gov = gov_with_policy(chain, deployment)
    cid = new_cid()
    reg = gov.register_model(cid, DATASET, "fraud-v1", 4242)
    (ev,) = reg.events_named("ModelRegistered")
    assert ev.args["ledgerIndex"] == 4242 and ev.args["cid"] == cid
    res = gov.submit_metrics(cid, GOOD)
    rules = res.events_named("RuleEvaluated")
    assert [r.args["passed"] for r in rules] == [True, True, True]
    assert [r.args["value"] for r in rules] == [820_000, 910_000, 30_000]
    gov.approve(cid, "risk_approver")
    gov.approve(cid, "compliance_approver")
    promoted = gov.promote(cid, "production")
    (p,) = promoted.events_named("Promoted")
    assert p.args["aliasName"] == "production" and p.args["ledgerIndex"] == 4242
    assert promoted.gas_used > 21_000 and promoted.block_number > reg.block_number
    assert promoted.tx_hash.startswith("0x") and len(promoted.tx_hash) == 66
    st = gov.model_status(cid)
    assert st.status == "promoted" and st.alias == "production" and st.ledger_index == 4242
    assert st.registrant == chain.address("model_owner")
    assert st.approvals == {
        "risk_approver": chain.address("risk_approver"),
        "compliance_approver": chain.address("compliance_approver"),
    }
    assert st.metrics == GOOD
    assert gov.model_for_alias("production") == st.model_id
    assert [m.cid for m in gov.models()] == [cid]
    info = chain.info()
    assert info.block_number == promoted.block_number and info.chain_id == chain.chain_id
    assert info.accounts["validator"] == chain.address("validator")
    assert all(b > 0 for b in info.balances_wei.values())
    pol = gov.policy("fraud-v1")
    assert pol.rules == tuple(POLICY_RULES) and pol.max_drift_psi == 0.25


def test_alias_moves_to_the_newly_promoted_model(chain: Chain, deployment: Deployment) -> None:
    gov = gov_with_policy(chain, deployment)
    first, second = registered(gov, 1), registered(gov, 2)
    for cid in (first, second):
        gov.submit_metrics(cid, GOOD)
        gov.approve(cid, "risk_approver")
        gov.approve(cid, "compliance_approver")
    gov.promote(first, "production")
    gov.promote(second, "production")
    assert gov.model_for_alias("production") == gov.model_status(second).model_id
    assert gov.model_status(first).alias == "" and gov.model_status(second).alias == "production"


def test_unauthorised_caller_refused(chain: Chain, deployment: Deployment) -> None:
    gov = gov_with_policy(chain, deployment)
    with pytest.raises(ContractRevert) as exc:
        gov.register_model(new_cid(), DATASET, "fraud-v1", 1, signer="validator")
    assert exc.value.name == "AccessControlUnauthorizedAccount"
    assert exc.value.error_args["account"] == chain.address("validator")
    assert exc.value.error_args["neededRole"] == role_id("model_owner")
    assert "lacks role model_owner" in str(exc.value)
    assert isinstance(exc.value, VerificationError)
    with pytest.raises(ContractRevert, match="lacks role policy_admin"):
        gov.set_policy("p2", POLICY_RULES, [], 0.2, signer="monitor")
    cid = registered(gov)
    gov.submit_metrics(cid, GOOD)
    with pytest.raises(ContractRevert, match="lacks role risk_approver"):
        gov.approve(cid, "risk_approver", signer="compliance_approver")


def test_self_approval_refused(chain: Chain, deployment: Deployment) -> None:
    gov = gov_with_policy(chain, deployment)
    gov.grant_role("risk_approver", "model_owner")  # the registrant now also holds the role
    cid = registered(gov)
    gov.submit_metrics(cid, GOOD)
    with pytest.raises(ContractRevert) as exc:
        gov.approve(cid, "risk_approver", signer="model_owner")
    assert exc.value.name == "SelfApproval"
    assert "segregation of duties" in str(exc.value)


def test_double_approval_refused(chain: Chain, deployment: Deployment) -> None:
    gov = gov_with_policy(chain, deployment)
    cid = registered(gov)
    gov.submit_metrics(cid, GOOD)
    gov.approve(cid, "risk_approver")
    with pytest.raises(ContractRevert) as exc:
        gov.approve(cid, "risk_approver")
    assert exc.value.name == "AlreadyApproved"
    assert exc.value.error_args["role"] == role_id("risk_approver")


def test_promotion_before_metrics_refused(chain: Chain, deployment: Deployment) -> None:
    gov = gov_with_policy(chain, deployment)
    cid = registered(gov)
    with pytest.raises(ContractRevert) as exc:
        gov.promote(cid, "production")
    assert exc.value.name == "MetricsNotSubmitted"
    with pytest.raises(ContractRevert, match="no validation metrics"):
        gov.approve(cid, "risk_approver")


def test_metric_under_threshold_blocks_promotion(chain: Chain, deployment: Deployment) -> None:
    gov = gov_with_policy(chain, deployment)
    cid = registered(gov)
    res = gov.submit_metrics(cid, {**GOOD, "auprc": 0.61})
    passed = {r.args["value"]: r.args["passed"] for r in res.events_named("RuleEvaluated")}
    assert passed == {610_000: False, 910_000: True, 30_000: True}
    (done,) = res.events_named("MetricsSubmitted")
    assert done.args["allPassed"] is False
    assert gov.model_status(cid).status == "failed"
    gov.approve(cid, "risk_approver")
    gov.approve(cid, "compliance_approver")
    with pytest.raises(ContractRevert) as exc:
        gov.promote(cid, "production")
    assert exc.value.name == "RuleFailed"
    assert exc.value.error_args["value"] == 610_000
    assert exc.value.error_args["threshold"] == 700_000
    assert "metric auprc = 0.61 does not meet threshold 0.7" in str(exc.value)


def test_upper_bound_rule_and_missing_approval(chain: Chain, deployment: Deployment) -> None:
    gov = gov_with_policy(chain, deployment)
    cid = registered(gov)
    gov.submit_metrics(cid, {**GOOD, "psi": 0.2})  # psi must be <= 0.1
    with pytest.raises(ContractRevert, match=r"metric psi = 0\.2"):
        gov.promote(cid, "production")
    ok = registered(gov)
    gov.submit_metrics(ok, GOOD)
    gov.approve(ok, "risk_approver")
    with pytest.raises(ContractRevert) as exc:
        gov.promote(ok, "production")
    assert exc.value.name == "MissingApproval"
    assert "compliance_approver" in str(exc.value)


def test_missing_metric_and_resubmission_refused(chain: Chain, deployment: Deployment) -> None:
    gov = gov_with_policy(chain, deployment)
    cid = registered(gov)
    with pytest.raises(ContractRevert, match="metric di_ratio required"):
        gov.submit_metrics(cid, {"auprc": 0.9, "psi": 0.01})
    gov.submit_metrics(cid, GOOD)
    with pytest.raises(ContractRevert) as exc:
        gov.submit_metrics(cid, GOOD)
    assert exc.value.name == "MetricsAlreadySubmitted"


def test_drift_marks_for_retraining_forever(chain: Chain, deployment: Deployment) -> None:
    gov = gov_with_policy(chain, deployment)
    cid = registered(gov)
    gov.submit_metrics(cid, GOOD)
    gov.approve(cid, "risk_approver")
    gov.approve(cid, "compliance_approver")
    calm = gov.report_drift(cid, 0.25)  # at the limit: not above it
    assert [e.name for e in calm.events] == ["DriftReported"]
    gov.promote(cid, "staging")
    drift = gov.report_drift(cid, 0.31)
    assert [e.name for e in drift.events] == ["DriftReported", "RetrainRequired"]
    assert drift.events[1].args["psi"] == 310_000
    for _ in range(2):
        with pytest.raises(ContractRevert) as exc:
            gov.promote(cid, "production")
        assert exc.value.name == "RetrainRequiredError"
    assert gov.model_status(cid).status == "retrain_required"


def test_anchor_requires_growing_tree(chain: Chain, deployment: Deployment) -> None:
    log = AnchorLog(chain, deployment.audit_anchor)
    origin = "ledgerml.test/log"
    first = log.anchor_checkpoint(origin, 10, b"\x11" * 32, "22" * 32)
    (ev,) = first.events_named("Anchored")
    assert ev.args["treeSize"] == 10 and ev.args["rootHash"] == "0x" + "11" * 32
    for size in (10, 9):
        with pytest.raises(ContractRevert) as exc:
            log.anchor_checkpoint(origin, size, b"\x33" * 32, b"\x44" * 32)
        assert exc.value.name == "TreeSizeNotGrowing"
        assert exc.value.error_args == {"previous": 10, "given": size}
    log.anchor_checkpoint(origin, 11, b"\x55" * 32, b"\x66" * 32)
    log.anchor_checkpoint("other.test/log", 1, b"\x77" * 32, b"\x88" * 32)
    got = log.anchors()
    assert [(a.origin, a.tree_size) for a in got] == [
        (origin, 10),
        (origin, 11),
        ("other.test/log", 1),
    ]
    assert got[1].root_hash == "0x" + "55" * 32 and got[0].operator == chain.address("log_operator")
    assert log.latest_tree_size(origin) == 11
    with pytest.raises(ContractRevert, match="lacks role log_operator"):
        log.anchor_checkpoint(origin, 12, b"\x55" * 32, b"\x66" * 32, signer="monitor")


def test_status0_receipt_is_replayed_and_decoded(chain: Chain, deployment: Deployment) -> None:
    """Without the dry run the refused tx is mined with status 0; eth_call replay names why."""
    gov = gov_with_policy(chain, deployment)
    cid = registered(gov)
    chain.preflight = False
    before = nonce(chain, "model_owner")
    with pytest.raises(ContractRevert) as exc:
        gov.promote(cid, "production")
    assert exc.value.name == "MetricsNotSubmitted"
    assert "replayed" in str(exc.value) and "(tx 0x" in str(exc.value)
    assert nonce(chain, "model_owner") == before + 1  # it really was mined
    gov.submit_metrics(cid, GOOD)  # and the account's nonce bookkeeping is still right
    with pytest.raises(ContractRevert, match="lacks role validator"):
        gov.submit_metrics(cid, GOOD, signer="monitor")


def test_out_of_gas_is_reported_not_hung(chain: Chain, deployment: Deployment) -> None:
    gov = gov_with_policy(chain, deployment)
    contract = gov.contract
    cid = new_cid()
    args = [b"\x01" * 32, cid, bytes(32), b"fraud-v1".ljust(32, b"\0"), 1]
    before = nonce(chain, "model_owner")
    with pytest.raises(InputError) as exc:
        chain.transact(contract, "registerModel", args, role="model_owner", gas=21_000)
    assert exc.value.field == "gas" and "intrinsic" in str(exc.value)
    with pytest.raises(ContractRevert) as rev:  # dry run catches it: nothing sent
        chain.transact(contract, "registerModel", args, role="model_owner", gas=60_000)
    assert rev.value.name == "OutOfGas"
    assert nonce(chain, "model_owner") == before
    chain.preflight = False
    with pytest.raises(ContractRevert) as rev:  # mined with status 0, named on replay
        chain.transact(contract, "registerModel", args, role="model_owner", gas=60_000)
    assert rev.value.name == "OutOfGas" and rev.value.error_args["gas_used"] == 60_000
    assert nonce(chain, "model_owner") == before + 1


def test_bad_input_sends_nothing(chain: Chain, deployment: Deployment) -> None:
    gov = gov_with_policy(chain, deployment)
    before = {r: nonce(chain, r) for r in ("model_owner", "validator", "monitor")}
    with pytest.raises(InputError) as exc:
        gov.register_model("not-a-cid", DATASET, "fraud-v1", 1)
    assert exc.value.field == "cid"
    with pytest.raises(InputError) as exc:
        gov.register_model("bafkreiQQQQ!!", DATASET, "fraud-v1", 1)
    assert exc.value.field == "cid"
    with pytest.raises(InputError) as exc:
        gov.register_model(new_cid(), "xyz", "fraud-v1", 1)
    assert exc.value.field == "dataset_digest"
    with pytest.raises(InputError) as exc:
        gov.register_model(new_cid(), DATASET, "fraud-v1", -1)
    assert exc.value.field == "ledger_index"
    unknown = new_cid()
    with pytest.raises(InputError) as exc:
        gov.promote(unknown, "production")
    assert exc.value.field == "model" and "no model" in str(exc.value)
    with pytest.raises(InputError):
        gov.submit_metrics(unknown, GOOD)
    with pytest.raises(InputError):
        gov.report_drift(unknown, 0.5)
    with pytest.raises(InputError) as exc:
        gov.model_status(unknown)
    assert exc.value.field == "model"
    with pytest.raises(InputError) as exc:
        gov.submit_metrics(new_cid(), {"auprc": float("nan")})
    assert exc.value.field == "metrics.auprc"
    with pytest.raises(InputError) as exc:
        gov.set_policy("p3", [Rule("auprc", ">", 0.5)], [], 0.1)  # type: ignore[arg-type]
    assert exc.value.field == "rules[0]"
    with pytest.raises(InputError) as exc:
        gov.set_policy("p3", [Rule("auprc", ">=", 0.5)], ["model_owner"], 0.1)
    assert exc.value.field == "approver_roles"
    assert {r: nonce(chain, r) for r in before} == before


def test_policies_are_immutable(chain: Chain, deployment: Deployment) -> None:
    gov = gov_with_policy(chain, deployment)
    with pytest.raises(ContractRevert) as exc:
        gov.set_policy("fraud-v1", [Rule("auprc", ">=", 0.1)], [], 1)
    assert exc.value.name == "PolicyExists" and "fraud-v1" in str(exc.value)
    with pytest.raises(ContractRevert, match="no policy nope"):
        gov.register_model(new_cid(), DATASET, "nope", 1)


def test_nonce_resync_when_another_client_sends(anvil_url: str) -> None:
    """Two processes signing for the same role on one node: the stale one re-reads its nonce."""
    import os

    from ledgerml.chain import deploy

    seed = os.urandom(32)
    a = Chain.connect(anvil_url, seed)
    b = Chain.connect(anvil_url, seed)
    dep = deploy(a, fresh=True)
    ga, gb = Governance(a, dep.model_registry), Governance(b, dep.model_registry)
    ga.set_policy("p-a", [Rule("auprc", ">=", 0.5)], [], 1)
    gb.set_policy("p-b", [Rule("auprc", ">=", 0.5)], [], 1)
    ga.set_policy("p-c", [Rule("auprc", ">=", 0.5)], [], 1)  # a's cached nonce was stale
    assert ga.policy("p-c").rules == (Rule("auprc", ">=", 0.5),)
