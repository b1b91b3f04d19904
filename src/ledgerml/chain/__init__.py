"""LedgerML on an EVM chain: compliance rules as contracts that gate model promotion, and
anchors of the ledger's signed checkpoints.

Usage::

    from ledgerml.chain import Chain, Governance, AnchorLog, Rule, deploy

    seed = ...  # 32 bytes from the project's keys; role accounts are derived from it
    with Chain.open(project / "chain", seed) as chain:          # embedded, persists on disk
    # with Chain.open(project / "chain", seed, rpc_url="http://127.0.0.1:8545") as chain:
        dep = deploy(chain)                                      # idempotent; deployment.json
        gov = Governance(chain, dep.model_registry)
        gov.set_policy("fraud-v1", [Rule("auprc", ">=", 0.7), Rule("psi", "<=", 0.1)],
                       ["risk_approver", "compliance_approver"], max_drift_psi=0.25)
        gov.register_model(cid, dataset_sha256, "fraud-v1", ledger_index=17)
        gov.submit_metrics(cid, {"auprc": 0.82, "psi": 0.03})
        gov.approve(cid, "risk_approver"); gov.approve(cid, "compliance_approver")
        gov.promote(cid, "production").events_named("Promoted")
        AnchorLog(chain, dep.audit_anchor).anchor_checkpoint(origin, size, root, note_hash)

Refusals raise `ContractRevert` (a `VerificationError`: CLI exit 1) whose `name` is the
Solidity error (`RuleFailed`, `MissingApproval`, `SelfApproval`, ...), `error_args` its
arguments, and message a readable sentence. Bad input raises `InputError` naming the field,
before anything is sent. Running never needs node: compiled artifacts are committed.
"""

from ledgerml.chain._artifacts import Artifact, load_artifact
from ledgerml.chain._cid import cid_sha256_digest
from ledgerml.chain._revert import ContractRevert, bytes32_text
from ledgerml.chain._roles import ROLES, role_id
from ledgerml.chain.anchor import AnchorLog, AnchorRecord
from ledgerml.chain.deploy import Deployment, deploy, load_deployment
from ledgerml.chain.evm import (
    Chain,
    ChainInfo,
    DecodedEvent,
    TxResult,
    derive_accounts,
    derive_private_key,
    open_chain,
)
from ledgerml.chain.governance import Governance, ModelStatus, PolicyInfo, Rule

__all__ = [
    "ROLES",
    "AnchorLog",
    "AnchorRecord",
    "Artifact",
    "Chain",
    "ChainInfo",
    "ContractRevert",
    "DecodedEvent",
    "Deployment",
    "Governance",
    "ModelStatus",
    "PolicyInfo",
    "Rule",
    "TxResult",
    "bytes32_text",
    "cid_sha256_digest",
    "deploy",
    "derive_accounts",
    "derive_private_key",
    "load_artifact",
    "load_deployment",
    "open_chain",
    "role_id",
]
