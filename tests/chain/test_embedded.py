"""The embedded chain persists in the project folder: one chain across separate processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from ledgerml.chain import Chain, Governance, Rule, deploy, load_deployment
from ledgerml.chain._cid import raw_cid_for_digest
from ledgerml.errors import InputError

SEED_HEX = "5e" * 32

STEPS = {
    "register": """
        dep = deploy(chain)
        gov = Governance(chain, dep.model_registry)
        gov.set_policy("fraud-v1", [Rule("auprc", ">=", 0.7)],
                       ["risk_approver", "compliance_approver"], 0.25)
        r = gov.register_model(CID, "cd" * 32, "fraud-v1", 99)
        gov.submit_metrics(CID, {"auprc": 0.8})
        out = {"block": r.block_number}
    """,
    "approve": """
        dep = load_deployment(chain)
        gov = Governance(chain, dep.model_registry)
        gov.approve(CID, "risk_approver")
        r = gov.approve(CID, "compliance_approver")
        out = {"block": r.block_number, "status": gov.model_status(CID).status}
    """,
    "promote": """
        dep = deploy(chain)  # idempotent: finds the recorded deployment
        gov = Governance(chain, dep.model_registry)
        r = gov.promote(CID, "production")
        st = gov.model_status(CID)
        out = {"block": r.block_number, "status": st.status, "ledger_index": st.ledger_index,
               "approvals": sorted(st.approvals), "events": [e.name for e in r.events]}
    """,
}


def run_step(chain_dir: Path, cid: str, step: str) -> dict[str, object]:
    code = "\n".join(
        [
            "import json, sys",
            "from ledgerml.chain import Chain, Governance, Rule, deploy, load_deployment",
            f"CID = {cid!r}",
            f"with Chain.embedded({str(chain_dir)!r}, bytes.fromhex({SEED_HEX!r})) as chain:",
            textwrap.indent(textwrap.dedent(STEPS[step]), "    "),
            "print(json.dumps(out))",
        ]
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_three_processes_share_one_chain(tmp_path: Path) -> None:
    chain_dir = tmp_path / "chain"
    cid = raw_cid_for_digest(os.urandom(32))
    a = run_step(chain_dir, cid, "register")
    b = run_step(chain_dir, cid, "approve")
    c = run_step(chain_dir, cid, "promote")
    assert b["status"] == "validated"
    assert c["status"] == "promoted" and c["ledger_index"] == 99
    assert c["approvals"] == ["compliance_approver", "risk_approver"]
    assert c["events"] == ["Promoted"]
    assert int(a["block"]) < int(b["block"]) < int(c["block"])  # type: ignore[call-overload]
    assert (chain_dir / "evm.sqlite").is_file() and (chain_dir / "deployment.json").is_file()
    # and this process sees the same state
    with Chain.embedded(chain_dir, bytes.fromhex(SEED_HEX)) as chain:
        dep = load_deployment(chain)
        assert Governance(chain, dep.model_registry).model_for_alias("production") is not None
        assert chain.w3.eth.block_number == c["block"]


def test_one_writer_at_a_time(tmp_path: Path) -> None:
    seed = os.urandom(32)
    with Chain.embedded(tmp_path, seed):
        with pytest.raises(InputError) as exc:
            Chain.embedded(tmp_path, seed, lock_timeout_s=0.2)
        assert exc.value.field == "chain" and "in use by pid" in str(exc.value)
    Chain.embedded(tmp_path, seed, lock_timeout_s=0.2).close()  # released on close


def test_other_seed_is_refused(tmp_path: Path) -> None:
    Chain.embedded(tmp_path, os.urandom(32)).close()
    with pytest.raises(InputError) as exc:
        Chain.embedded(tmp_path, os.urandom(32))
    assert exc.value.field == "seed"


def test_bad_seed(tmp_path: Path) -> None:
    with pytest.raises(InputError) as exc:
        Chain.embedded(tmp_path, b"short")
    assert exc.value.field == "seed"


def test_uncommitted_block_is_not_persisted(tmp_path: Path) -> None:
    """A process that dies mid-block leaves the last whole block: writes commit per block."""
    seed = os.urandom(32)
    with Chain.embedded(tmp_path, seed) as chain:
        deploy(chain)
        head = chain.w3.eth.block_number
    code = textwrap.dedent(
        f"""
        import os
        from ledgerml.chain import Chain, Governance, load_deployment
        chain = Chain.embedded({str(tmp_path)!r}, bytes.fromhex({seed.hex()!r}))
        backend = chain.w3.provider.ethereum_tester.backend
        backend.mine_blocks = lambda *a, **k: os._exit(3)  # die before the block is committed
        gov = Governance(chain, load_deployment(chain).model_registry)
        gov.grant_role("monitor", "validator")
        """
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=120)
    assert proc.returncode == 3, proc.stderr
    with Chain.embedded(tmp_path, seed) as chain:
        assert chain.w3.eth.block_number == head
        gov = Governance(chain, load_deployment(chain).model_registry)
        gov.set_policy("after-crash", [Rule("auprc", ">=", 0.5)], [], 1)
        assert chain.w3.eth.block_number == head + 1
