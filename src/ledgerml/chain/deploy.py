"""Deploy LedgerML's contracts, grant each role to its account, record where they live.

The record, `<project>/chain/deployment.json`, is what later processes read to find the
contracts; deploying again on the same chain returns the recorded deployment.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from eth_typing import ChecksumAddress

from ledgerml.chain._artifacts import load_artifact
from ledgerml.chain._roles import ROLES, role_id
from ledgerml.chain.evm import Chain
from ledgerml.errors import InputError

DEPLOYMENT_FILE = "deployment.json"
GAS_DEPLOY_REGISTRY = 3_500_000
GAS_DEPLOY_ANCHOR = 2_000_000
GAS_GRANT_ROLE = 120_000

#: which contract grants which role to the account of the same name
ROLE_GRANTS: tuple[tuple[str, str], ...] = (
    ("ModelRegistry", "policy_admin"),
    ("ModelRegistry", "model_owner"),
    ("ModelRegistry", "validator"),
    ("ModelRegistry", "risk_approver"),
    ("ModelRegistry", "compliance_approver"),
    ("ModelRegistry", "monitor"),
    ("AuditAnchor", "log_operator"),
)


@dataclass(frozen=True)
class Deployment:
    """Where the contracts live on one chain and which account holds which role."""

    chain_id: int
    kind: str
    model_registry: ChecksumAddress  # as `deploy` wrote them (web3 refuses other spellings)
    audit_anchor: ChecksumAddress
    block_number: int
    accounts: Mapping[str, str]
    code_sha256: Mapping[str, str]
    compiler: str

    def to_json(self) -> str:
        data: dict[str, Any] = asdict(self)
        data["accounts"] = dict(self.accounts)
        data["code_sha256"] = dict(self.code_sha256)
        return json.dumps(data, indent=2, sort_keys=True) + "\n"


def deployment_path(chain_dir: str | Path) -> Path:
    return Path(chain_dir) / DEPLOYMENT_FILE


def load_deployment(chain: Chain, chain_dir: str | Path | None = None) -> Deployment:
    """Read the deployment record and check it belongs to `chain` and its code is there."""
    base = chain_dir if chain_dir is not None else chain.chain_dir
    if base is None:
        raise InputError("no chain folder to read deployment.json from", field="chain_dir")
    path = deployment_path(base)
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        dep = Deployment(**raw)
    except FileNotFoundError:
        raise InputError(
            f"contracts are not deployed ({path} missing; run `ledgerml chain deploy`)",
            field="chain",
        ) from None
    except (ValueError, TypeError) as exc:
        raise InputError(f"{path} is not a deployment record: {exc}", field="chain") from exc
    if dep.chain_id != chain.chain_id:
        raise InputError(
            f"{path} is for chain id {dep.chain_id}, but the chain answers {chain.chain_id}",
            field="chain",
        )
    for name, addr in (("ModelRegistry", dep.model_registry), ("AuditAnchor", dep.audit_anchor)):
        code = bytes(chain.w3.eth.get_code(addr))
        if code != load_artifact(name).deployed_bytecode:
            raise InputError(
                f"{name} is not deployed at {addr} on chain {chain.chain_id} (redeploy)",
                field="chain",
            )
    return dep


def deploy(chain: Chain, *, chain_dir: str | Path | None = None, fresh: bool = False) -> Deployment:
    """Deploy both contracts, grant roles, and write deployment.json (atomically).

    Idempotent: if `deployment.json` already describes live contracts on this chain they are
    returned as they are, unless `fresh` asks for a new deployment (which replaces the record).
    """
    base = chain_dir if chain_dir is not None else chain.chain_dir
    if not fresh and base is not None and deployment_path(base).is_file():
        try:
            return load_deployment(chain, base)
        except InputError:
            pass  # stale record (other chain, or a fresh node): deploy anew
    if chain.kind == "rpc":
        chain.fund_roles()
    admin = chain.address("admin")
    reg = chain.deploy("ModelRegistry", [admin], gas=GAS_DEPLOY_REGISTRY)
    anc = chain.deploy("AuditAnchor", [admin], gas=GAS_DEPLOY_ANCHOR)
    assert reg.contract_address and anc.contract_address
    addresses = {"ModelRegistry": reg.contract_address, "AuditAnchor": anc.contract_address}
    last = anc.block_number
    for contract_name, role in ROLE_GRANTS:
        c = chain.contract(contract_name, addresses[contract_name])
        res = chain.transact(
            c,
            "grantRole",
            [role_id(role), chain.address(role)],
            role="admin",
            gas=GAS_GRANT_ROLE,
        )
        last = res.block_number
    dep = Deployment(
        chain_id=chain.chain_id,
        kind=chain.kind,
        model_registry=addresses["ModelRegistry"],
        audit_anchor=addresses["AuditAnchor"],
        block_number=last,
        accounts={r: chain.address(r) for r in ROLES},
        code_sha256={
            n: hashlib.sha256(load_artifact(n).deployed_bytecode).hexdigest() for n in addresses
        },
        compiler=load_artifact("ModelRegistry").compiler_version,
    )
    if base is not None:
        path = deployment_path(base)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(dep.to_json(), encoding="utf-8")
        os.replace(tmp, path)
    return dep
