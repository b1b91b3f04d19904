"""Governance through the real CLI on the real embedded chain: every transaction mirrored in
the ledger with its hash, the chain holding the ledger index, refusals that append nothing,
bad input that sends nothing, and anchors that catch a rewritten, re-signed log.

Every `ledgerml` call is a separate process, so each test also exercises the embedded
chain's persistence (register in one process, approve in the next, promote in a third).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from ledgerml.chain import Chain, Governance, load_deployment
from ledgerml.chain._cid import raw_cid_for_digest
from ledgerml.config import ProjectPaths
from ledgerml.crypto.keys import load_chain_seed
from ledgerml.ledger.log import Ledger
from ledgerml.ledger.project import head_copy_path, log_keys, open_ledger
from tests.conftest import run_cli

POLICY = "fraud-v1"
GOOD = ("--metric", "auprc=0.83", "--metric", "psi=0.02")

Cli = Callable[..., subprocess.CompletedProcess[str]]


def new_cid(label: str = "") -> str:
    return raw_cid_for_digest(hashlib.sha256(os.urandom(16) + label.encode()).digest())


def ok(proc: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert proc.returncode == 0, f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    return proc


def as_json(proc: subprocess.CompletedProcess[str]) -> Any:
    return json.loads(ok(proc).stdout)


def entries(home: Path) -> list[dict[str, Any]]:
    with open_ledger(ProjectPaths(home)) as ledger:
        return [orjson.loads(e) for _, e in ledger.entries()]


def ledger_size(home: Path) -> int:
    with open_ledger(ProjectPaths(home)) as ledger:
        return ledger.size()


def block_number(home: Path) -> int:
    paths = ProjectPaths(home)
    with Chain.embedded(paths.chain, load_chain_seed(paths.keys)) as chain:
        return int(chain.w3.eth.block_number)


@pytest.fixture(scope="module")
def base_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """init + deploy + one policy, made once and copied for every test."""
    home = tmp_path_factory.mktemp("base") / "proj"
    ok(run_cli(home, "init"))
    ok(run_cli(home, "chain", "deploy"))
    ok(
        run_cli(
            home,
            "chain",
            "policy",
            POLICY,
            "--rule",
            "auprc>=0.80",
            "--rule",
            "psi<=0.1",
            "--approvers",
            "risk_approver,compliance_approver",
            "--max-psi",
            "0.25",
        )
    )
    return home


@pytest.fixture()
def home(base_project: Path, tmp_path: Path) -> Iterator[Path]:
    dest = tmp_path / "proj"
    shutil.copytree(base_project, dest)
    yield dest


@pytest.fixture()
def cli(home: Path) -> Cli:
    def call(*args: str) -> subprocess.CompletedProcess[str]:
        return run_cli(home, *args)

    return call


def register(cli: Cli, cid: str, *extra: str) -> dict[str, Any]:
    dataset = new_cid("dataset")
    return as_json(
        cli(
            "chain",
            "register",
            cid,
            "--policy",
            POLICY,
            "--dataset",
            dataset,
            "--name",
            "card-fraud-xgb",
            "--framework",
            "xgboost",
            *extra,
            "--json",
        )
    )


def refused(cli: Cli, home: Path, *args: str, says: str, code: int = 1) -> str:
    """Run a command that must be refused: exit `code`, message, nothing appended."""
    before = ledger_size(home)
    proc = cli(*args)
    assert proc.returncode == code, f"{args}: exit {proc.returncode}\n{proc.stdout}{proc.stderr}"
    assert says.lower() in proc.stderr.lower(), proc.stderr
    assert ledger_size(home) == before, f"{args} appended to the ledger"
    return proc.stderr


# --------------------------------------------------------------------- happy path


def test_happy_path_mirrors_every_transaction_both_ways(home: Path, cli: Cli) -> None:
    cid = new_cid("model")
    reg = register(cli, cid)  # process 1
    (mr_index, mr_type), (enrol_index, enrol_type) = (
        (e["index"], e["type"]) for e in reg["entries"]
    )
    assert (mr_type, enrol_type) == ("model.registered", "model.enrolled")
    assert reg["body"]["ledger_index"] == mr_index and enrol_index == mr_index + 1

    metrics = as_json(cli("chain", "metrics", cid, *GOOD, "--json"))
    assert metrics["body"]["passed"] is True
    assert [(r["metric"], r["value"], r["passed"]) for r in metrics["body"]["results"]] == [
        ("auprc", 0.83, True),
        ("psi", 0.02, True),
    ]
    risk = as_json(cli("approve", cid, "--as", "risk_approver", "--json"))  # process 3
    comp = as_json(cli("approve", cid, "--as", "compliance_approver", "--json"))
    promo = as_json(cli("promote", cid, "--alias", "production", "--json"))  # another process
    steps = [reg, metrics, risk, comp, promo]
    blocks = [s["block_number"] for s in steps]
    assert blocks == sorted(blocks) and len(set(blocks)) == len(blocks)

    # Ledger side: each mirror entry carries its transaction hash.
    log = entries(home)
    assert log[mr_index]["body"]["cid"] == cid
    mirrors = ["model.enrolled", "compliance.checked", "approval.granted"]
    mirrors += ["approval.granted", "model.promoted"]
    for step, event_type in zip(steps, mirrors, strict=True):
        entry = log[step["ledger_index"]]
        assert entry["type"] == event_type
        assert entry["body"]["tx_hash"] == step["tx_hash"]
        assert entry["body"]["model_cid"] == cid
    assert log[risk["ledger_index"]]["body"]["role"] == "risk_approver"
    assert log[promo["ledger_index"]]["body"]["alias"] == "production"
    assert log[0]["type"] == "policy.registered"

    # Chain side: the transactions exist, emitted what the mirror says, and hold the index.
    paths = ProjectPaths(home)
    with Chain.embedded(paths.chain, load_chain_seed(paths.keys)) as chain:
        dep = load_deployment(chain, paths.chain)
        gov = Governance(chain, dep.model_registry)

        def chain_events(tx_hash: str) -> dict[str, dict[str, Any]]:
            receipt = chain.w3.eth.get_transaction_receipt(tx_hash)  # type: ignore[arg-type]
            assert int(receipt["status"]) == 1
            assert receipt["to"] == dep.model_registry
            return {e.name: dict(e.args) for e in chain.decode_logs(receipt["logs"])}

        assert chain_events(reg["tx_hash"])["ModelRegistered"]["ledgerIndex"] == mr_index
        assert chain_events(metrics["tx_hash"])["MetricsSubmitted"]["allPassed"] is True
        assert chain_events(risk["tx_hash"])["Approved"]["approver"] == chain.address(
            "risk_approver"
        )
        assert chain_events(promo["tx_hash"])["Promoted"]["ledgerIndex"] == mr_index
        assert chain_events(log[0]["body"]["tx_hash"])["PolicySet"]
        st = gov.model_status(cid)
        assert st.status == "promoted" and st.ledger_index == mr_index
        assert st.alias == "production"

    listed = as_json(cli("models", "--json"))["models"]
    assert [(m["cid"], m["status"], m["ledger_index"]) for m in listed] == [
        (cid, "promoted", mr_index)
    ]
    verified = as_json(cli("verify", "--json"))
    assert verified["ok"] and verified["anchors"] == {
        "checked": 0,
        "deployment": True,
        "skipped": False,
    }


def test_existing_model_entry_is_reused(home: Path, cli: Cli) -> None:
    cid, dataset = new_cid("m"), new_cid("d")
    body = {"name": "m", "cid": cid, "framework": "sklearn", "dataset_cids": [dataset]}
    ok(cli("log", "append", "--type", "model.registered", "--body", json.dumps(body)))
    index = ledger_size(home) - 1
    reg = as_json(cli("chain", "register", cid, "--policy", POLICY, "--json"))
    assert reg["model_registered_appended"] is False
    assert [e["type"] for e in reg["entries"]] == ["model.enrolled"]
    assert reg["body"]["ledger_index"] == index
    assert reg["body"]["dataset_cid"] == dataset  # taken from the model's entry


# ----------------------------------------------------------------------- refusals


def test_promotion_refusals_name_the_reason(home: Path, cli: Cli) -> None:
    weak, strong = new_cid("weak"), new_cid("strong")
    register(cli, weak)
    register(cli, strong)
    refused(cli, home, "promote", weak, "--alias", "production", says="no validation metrics")
    refused(cli, home, "approve", weak, "--as", "risk_approver", says="no validation metrics")

    failed = as_json(
        cli("chain", "metrics", weak, "--metric", "auprc=0.5", "--metric", "psi=0.02", "--json")
    )
    assert failed["body"]["passed"] is False
    assert [r["passed"] for r in failed["body"]["results"]] == [False, True]
    refused(cli, home, "promote", weak, "--alias", "production", says="metric auprc = 0.5")

    ok(cli("chain", "metrics", strong, *GOOD))
    ok(cli("approve", strong, "--as", "risk_approver"))
    refused(cli, home, "approve", strong, "--as", "risk_approver", says="already approved")
    refused(
        cli,
        home,
        "promote",
        strong,
        "--alias",
        "production",
        says="approval by role compliance_approver is missing",
    )


def test_drift_marks_model_for_retraining(home: Path, cli: Cli) -> None:
    cid = new_cid("drifting")
    register(cli, cid)
    ok(cli("chain", "metrics", cid, *GOOD))
    calm = as_json(cli("chain", "drift", cid, "--psi", "0.1", "--json"))
    assert [e["type"] for e in calm["entries"]] == ["drift.detected"]
    drift = as_json(cli("chain", "drift", cid, "--psi", "0.3", "--json"))
    assert [e["type"] for e in drift["entries"]] == ["drift.detected", "retrain.requested"]
    assert drift["chain_events"] == ["DriftReported", "RetrainRequired"]
    log = entries(home)
    for e in drift["entries"]:
        assert log[e["index"]]["body"]["tx_hash"] == drift["tx_hash"]
    assert log[drift["ledger_index"]]["body"]["threshold"] == 0.25
    refused(cli, home, "approve", cid, "--as", "risk_approver", says="marked for retraining")
    refused(cli, home, "promote", cid, "--alias", "production", says="marked for retraining")
    (m,) = as_json(cli("models", "--json"))["models"]
    assert m["status"] == "retrain_required"


def test_segregation_of_duties_and_unauthorised_signer(home: Path, cli: Cli) -> None:
    # One person holding two roles: the risk approver's account is also made a model owner.
    paths = ProjectPaths(home)
    with Chain.embedded(paths.chain, load_chain_seed(paths.keys)) as chain:
        gov = Governance(chain, load_deployment(chain, paths.chain).model_registry)
        gov.grant_role("model_owner", "risk_approver")
    cid = new_cid("sod")
    reg = register(cli, cid, "--as", "risk_approver")
    assert entries(home)[reg["ledger_index"]]["body"]["registrant"] == reg["body"]["registrant"]
    ok(cli("chain", "metrics", cid, *GOOD))
    refused(cli, home, "approve", cid, "--as", "risk_approver", says="segregation of duties")

    # A role without MODEL_OWNER cannot register; the dry run keeps even model.registered out.
    other = new_cid("unauthorised")
    refused(
        cli,
        home,
        "chain",
        "register",
        other,
        "--policy",
        POLICY,
        "--dataset",
        new_cid("d"),
        "--name",
        "x",
        "--framework",
        "y",
        "--as",
        "validator",
        says="lacks role model_owner",
    )


# -------------------------------------------------------------------- bad input


def test_bad_input_exits_2_and_sends_nothing(home: Path, cli: Cli) -> None:
    cid = new_cid("known")
    register(cli, cid)
    block = block_number(home)
    unknown = new_cid("unknown")
    refused(cli, home, "approve", unknown, "--as", "risk_approver", says="model:", code=2)
    refused(cli, home, "promote", "not-a-cid", "--alias", "prod", says="model:", code=2)
    refused(cli, home, "approve", cid, "--as", "janitor", says="role:", code=2)
    refused(cli, home, "approve", cid, "--as", "validator", says="not an approver role", code=2)
    refused(cli, home, "chain", "register", "bafyNOPE", "--policy", POLICY, says="cid:", code=2)
    refused(
        cli,
        home,
        "chain",
        "register",
        new_cid(),
        "--policy",
        "no-such-policy",
        "--name",
        "n",
        "--framework",
        "f",
        "--dataset",
        new_cid(),
        says="policy",
        code=2,
    )
    refused(cli, home, "chain", "metrics", cid, "--metric", "auprc", says="--metric", code=2)
    refused(cli, home, "chain", "drift", cid, "--psi", "-1", says="psi", code=2)
    assert block_number(home) == block  # not one transaction was sent

    # An unreachable node: governance is bad input (2); verify cannot check anchors (1).
    config = home / "config.toml"
    config.write_text(
        config.read_text().replace(
            '# rpc_url = "http://127.0.0.1:8545"', 'rpc_url = "http://127.0.0.1:9"'
        )
    )
    assert 'rpc_url = "http://127.0.0.1:9"' in config.read_text()
    refused(cli, home, "approve", cid, "--as", "risk_approver", says="chain.rpc_url", code=2)
    refused(cli, home, "verify", says="cannot read the anchored checkpoints", code=1)
    ok(cli("verify", "--skip-anchors"))


# ----------------------------------------------------------------------- anchors


def _rebuild_ledger(home: Path, notes: int) -> None:
    """The operator's rewrite: a new ledger.db (and head copy, which sits in the project
    folder by default), signed with the project's own key. `open_ledger` refuses to create
    a ledger, so the rewrite makes one with the library, as an attacker with keys/ can."""
    paths = ProjectPaths(home)
    for suffix in ("", "-wal", "-shm"):
        Path(f"{paths.ledger_db}{suffix}").unlink(missing_ok=True)
    head = head_copy_path(paths)
    head.unlink()
    keys = log_keys(paths)
    with Ledger(
        paths.ledger_db, origin=keys.origin, signers=keys.note_signers, head_copy=head
    ) as ledger:
        ledger.append_many([("x.note", {"text": f"rewritten {i}"}) for i in range(notes)])
        ledger.checkpoint()


def test_rewritten_resigned_log_fails_against_anchor(home: Path, cli: Cli) -> None:
    register(cli, new_cid("anchored"))
    first = as_json(cli("chain", "anchor", "--json"))
    size = first["tree_size"]
    assert first["already_anchored"] is False and size == ledger_size(home) - 1
    log = entries(home)
    assert log[first["ledger_index"]]["type"] == "checkpoint.anchored"
    assert log[first["ledger_index"]]["body"]["tx_hash"] == first["tx_hash"]
    assert log[first["ledger_index"]]["body"]["root"] == first["root"]
    again = as_json(cli("chain", "anchor", "--json"))  # only our own anchor entry since
    assert again["already_anchored"] is True and again["tx_hash"] is None
    assert again["tree_size"] == size and ledger_size(home) == size + 1
    ok(cli("log", "append", "--type", "x.note", "--body", '{"text": "later"}'))
    second = as_json(cli("chain", "anchor", "--json"))
    assert second["tree_size"] == size + 2 and second["already_anchored"] is False
    status = as_json(cli("chain", "status", "--json"))
    assert status["anchors"] == 2 and status["deployed"] is True
    good = as_json(cli("verify", "--json"))
    assert good["ok"] and good["anchors"]["checked"] == 2

    _rebuild_ledger(home, notes=size + 5)  # longer, different, validly signed
    assert ok(cli("verify", "--skip-anchors")).stdout.count("anchors skipped") == 1
    bad = cli("verify")
    assert bad.returncode == 1, bad.stdout + bad.stderr
    assert "anchor_mismatch" in bad.stdout and f"checkpoint {size}" in bad.stdout
    report = json.loads(cli("verify", "--json").stdout)
    assert {(p["kind"], p["checkpoint"]) for p in report["problems"]} == {
        ("anchor_mismatch", size),
        ("anchor_mismatch", size + 2),
    }
    refused(cli, home, "chain", "anchor", says="no longer match the root anchored", code=1)

    _rebuild_ledger(home, notes=2)  # shorter than what was anchored
    report = json.loads(cli("verify", "--json").stdout)
    assert not report["ok"]
    assert ("truncated", size) in {(p["kind"], p.get("checkpoint")) for p in report["problems"]}


def test_deleting_the_deployment_record_does_not_switch_anchors_off(home: Path, cli: Cli) -> None:
    ok(cli("chain", "anchor", "--json"))
    record = home / "chain" / "deployment.json"
    hidden = record.with_suffix(".hidden")
    record.rename(hidden)
    bad = cli("verify")
    assert bad.returncode == 1
    assert "records 1 on-chain anchor" in bad.stdout + bad.stderr
    assert ok(cli("verify", "--skip-anchors")).returncode == 0
    hidden.rename(record)
    assert ok(cli("verify")).returncode == 0


# --------------------------------------------------------------------- real node


@pytest.mark.skipif(
    not os.environ.get("LEDGERML_TEST_ANVIL_URL"), reason="LEDGERML_TEST_ANVIL_URL not set"
)
def test_smoke_on_anvil(tmp_path: Path) -> None:
    url = os.environ["LEDGERML_TEST_ANVIL_URL"]
    home = tmp_path / "anvil-proj"
    ok(run_cli(home, "init"))
    config = home / "config.toml"
    config.write_text(
        config.read_text().replace('# rpc_url = "http://127.0.0.1:8545"', f'rpc_url = "{url}"')
    )

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return run_cli(home, *args)

    assert as_json(cli("chain", "deploy", "--json"))["kind"] == "rpc"
    ok(cli("chain", "policy", POLICY, "--rule", "auprc>=0.8", "--approvers", "risk_approver"))
    cid = new_cid("anvil")
    reg = register(cli, cid)
    ok(cli("chain", "metrics", cid, "--metric", "auprc=0.9"))
    refused(cli, home, "promote", cid, "--alias", "prod", says="risk_approver is missing")
    ok(cli("approve", cid, "--as", "risk_approver"))
    promo = as_json(cli("promote", cid, "--alias", "prod", "--json"))
    assert entries(home)[promo["ledger_index"]]["body"]["tx_hash"] == promo["tx_hash"]
    (m,) = as_json(cli("models", "--json"))["models"]
    assert m["ledger_index"] == reg["body"]["ledger_index"] and m["status"] == "promoted"
    ok(cli("chain", "anchor"))
    assert as_json(cli("verify", "--json"))["anchors"]["checked"] == 1
