"""Thin bindings to `ModelRegistry`: policies, registration, validation, approval, promotion.

    gov = Governance(chain, deployment.model_registry)
    gov.set_policy("card-fraud-v1", [Rule("auprc", ">=", 0.70)], ["risk_approver"], 0.25)
    gov.register_model(cid, dataset_digest, "card-fraud-v1", ledger_index=42)
    gov.submit_metrics(cid, {"auprc": 0.81})          # the contract evaluates each rule
    gov.approve(cid, "risk_approver")                  # signed by the risk approver's account
    gov.promote(cid, "production")                     # ContractRevert says why if refused

Numbers cross the boundary as 1e6 fixed point (0.85 -> 850000); ids (policy, metric) as
bytes32 ASCII, so they read back as text. A refusal raises `ContractRevert`; a model that is
not on chain raises `InputError(field="model")` before any transaction is sent.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Literal

from ledgerml.chain._cid import cid_sha256_digest
from ledgerml.chain._revert import ContractRevert, bytes32_text
from ledgerml.chain._roles import ROLE_NAMES, role_id
from ledgerml.chain.evm import Chain, TxResult
from ledgerml.errors import InputError

SCALE = 1_000_000
APPROVER_ROLES: tuple[str, ...] = ("risk_approver", "compliance_approver")
STATUS_NAMES: tuple[str, ...] = (
    "none",
    "registered",
    "validated",
    "failed",
    "promoted",
    "retrain_required",
    "retired",  # was retrain_required; a model that passed the gate took its alias
)
_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:\-/]{0,31}$")
_UINT256_MAX = 2**256 - 1

# Gas limits: measured gas (tests print it) with generous headroom; never estimated.
GAS_SET_POLICY_BASE = 200_000
GAS_SET_POLICY_PER_RULE = 80_000
GAS_SET_POLICY_PER_ROLE = 30_000
GAS_REGISTER = 400_000
GAS_SUBMIT_BASE = 150_000
GAS_SUBMIT_PER_METRIC = 60_000
GAS_APPROVE = 150_000
GAS_PROMOTE_BASE = 200_000
GAS_PROMOTE_PER_RULE = 10_000
GAS_DRIFT = 150_000
GAS_GRANT = 120_000


@dataclass(frozen=True)
class Rule:
    """`metric comparator threshold`, e.g. Rule("auprc", ">=", 0.70)."""

    metric: str
    comparator: Literal[">=", "<="]
    threshold: float | int | Decimal


@dataclass(frozen=True)
class PolicyInfo:
    policy_id: str
    rules: tuple[Rule, ...]
    approver_roles: tuple[str, ...]
    max_drift_psi: float


@dataclass(frozen=True)
class ModelStatus:
    """A model's on-chain record, with its approvals and the metrics its policy checks."""

    model_id: str
    cid: str
    dataset_digest: str
    policy_id: str
    ledger_index: int
    registrant: str
    registered_at: int
    status: str
    metrics_submitted: bool
    all_passed: bool
    last_drift_psi: float
    alias: str
    approvals: Mapping[str, str]
    metrics: Mapping[str, float]


def to_fixed(value: float | int | Decimal, *, field: str) -> int:
    """Real number -> 1e6 fixed-point uint256; negatives, NaN and bools are input errors."""
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
        raise InputError(f"must be a number, got {type(value).__name__}", field=field)
    if isinstance(value, float) and not math.isfinite(value):
        raise InputError("must be finite", field=field)
    if value < 0:
        raise InputError(f"must be >= 0 (got {value})", field=field)
    scaled = int((Decimal(str(value)) * SCALE).to_integral_value())
    if scaled > _UINT256_MAX:
        raise InputError("is too large", field=field)
    return scaled


def from_fixed(value: int) -> float:
    return value / SCALE


def text_id(value: str, *, field: str) -> bytes:
    """A short ASCII id (policy, metric) as bytes32, right-padded with zeros."""
    if not isinstance(value, str) or not _ID_RE.match(value):
        raise InputError(
            f"{value!r} must be 1-32 characters of letters, digits and _.:-/ "
            "(starting with a letter or digit)",
            field=field,
        )
    return value.encode("ascii").ljust(32, b"\x00")


def model_id(model: str | bytes) -> bytes:
    """A model's on-chain id: the sha2-256 digest in its CID (CID string, hex or 32 bytes)."""
    if isinstance(model, bytes | bytearray):
        if len(model) != 32:
            raise InputError("a model id must be 32 bytes", field="model")
        return bytes(model)
    if isinstance(model, str) and re.fullmatch(r"(0x)?[0-9a-fA-F]{64}", model):
        return bytes.fromhex(model.removeprefix("0x"))
    return cid_sha256_digest(model, field="model")


def _digest32(value: str | bytes, *, field: str) -> bytes:
    if isinstance(value, bytes | bytearray) and len(value) == 32:
        return bytes(value)
    if isinstance(value, str):
        text = value.removeprefix("sha256:").removeprefix("0x")
        if re.fullmatch(r"[0-9a-fA-F]{64}", text):
            return bytes.fromhex(text)
    raise InputError("must be a sha-256 digest (32 bytes or 64 hex characters)", field=field)


def _role_name(role: str, *, field: str = "role") -> str:
    if role not in APPROVER_ROLES:
        raise InputError(
            f"{role!r} is not an approver role (use {' or '.join(APPROVER_ROLES)})", field=field
        )
    return role


class Governance:
    """Client of one deployed ModelRegistry; each write is signed by the role it belongs to."""

    def __init__(self, chain: Chain, address: str) -> None:
        self.chain = chain
        self.contract = chain.contract("ModelRegistry", address)
        self.address = self.contract.address

    # ------------------------------------------------------------------ writes

    def _tx(self, fn: str, args: Sequence[Any], *, role: str, gas: int) -> TxResult:
        try:
            return self.chain.transact(self.contract, fn, args, role=role, gas=gas)
        except ContractRevert as exc:
            if exc.name == "UnknownModel":
                raise InputError(
                    "no model with this id is registered on chain", field="model"
                ) from None
            raise

    def grant_role(self, role: str, to_role_account: str) -> TxResult:
        """Admin grants `role` to the account of another role (tests, demos, re-staffing)."""
        return self._tx(
            "grantRole",
            [role_id(role), self.chain.address(to_role_account)],
            role="admin",
            gas=GAS_GRANT,
        )

    def set_policy(
        self,
        policy_id: str,
        rules: Sequence[Rule],
        approver_roles: Sequence[str],
        max_drift_psi: float | int | Decimal,
        *,
        signer: str = "policy_admin",
    ) -> TxResult:
        """Create an immutable policy: numeric rules, approver roles, drift limit."""
        pid = text_id(policy_id, field="policy_id")
        if not rules:
            raise InputError("a policy needs at least one rule", field="rules")
        encoded = []
        for i, r in enumerate(rules):
            if r.comparator not in (">=", "<="):
                raise InputError(
                    f"comparator {r.comparator!r} must be '>=' or '<='", field=f"rules[{i}]"
                )
            encoded.append(
                (
                    text_id(r.metric, field=f"rules[{i}].metric"),
                    0 if r.comparator == ">=" else 1,
                    to_fixed(r.threshold, field=f"rules[{i}].threshold"),
                )
            )
        roles = [role_id(_role_name(r, field="approver_roles")) for r in approver_roles]
        gas = (
            GAS_SET_POLICY_BASE
            + GAS_SET_POLICY_PER_RULE * len(encoded)
            + GAS_SET_POLICY_PER_ROLE * len(roles)
        )
        drift = to_fixed(max_drift_psi, field="max_drift_psi")
        return self._tx("setPolicy", [pid, encoded, roles, drift], role=signer, gas=gas)

    def register_model(
        self,
        cid: str,
        dataset_digest: str | bytes,
        policy_id: str,
        ledger_index: int,
        *,
        signer: str = "model_owner",
    ) -> TxResult:
        """Register a model artifact (its CID) under a policy, pointing at its ledger entry."""
        digest = cid_sha256_digest(cid, field="cid")
        ds = _digest32(dataset_digest, field="dataset_digest")
        pid = text_id(policy_id, field="policy_id")
        if isinstance(ledger_index, bool) or not isinstance(ledger_index, int):
            raise InputError("must be an integer", field="ledger_index")
        if not 0 <= ledger_index < 2**64:
            raise InputError("must be in [0, 2^64)", field="ledger_index")
        return self._tx(
            "registerModel", [digest, cid, ds, pid, ledger_index], role=signer, gas=GAS_REGISTER
        )

    def submit_metrics(
        self,
        model: str | bytes,
        metrics: Mapping[str, float | int | Decimal],
        *,
        signer: str = "validator",
    ) -> TxResult:
        """Submit validation metrics; the contract emits RuleEvaluated per policy rule."""
        mid = model_id(model)
        if not metrics:
            raise InputError("no metrics given", field="metrics")
        names = [text_id(k, field=f"metrics.{k}") for k in metrics]
        values = [to_fixed(v, field=f"metrics.{k}") for k, v in metrics.items()]
        gas = GAS_SUBMIT_BASE + GAS_SUBMIT_PER_METRIC * len(names)
        return self._tx("submitMetrics", [mid, names, values], role=signer, gas=gas)

    def approve(self, model: str | bytes, role: str, *, signer: str | None = None) -> TxResult:
        """Approve as `role`, signed by that role's account unless `signer` names another."""
        mid = model_id(model)
        _role_name(role)
        return self._tx("approve", [mid, role_id(role)], role=signer or role, gas=GAS_APPROVE)

    def promote(self, model: str | bytes, alias: str, *, signer: str = "model_owner") -> TxResult:
        """Point `alias` at the model; raises ContractRevert naming the unmet condition."""
        mid = model_id(model)
        if not isinstance(alias, str) or not 0 < len(alias.encode()) <= 64:
            raise InputError("must be 1-64 bytes of text", field="alias")
        return self._tx(
            "promote",
            [mid, alias],
            role=signer,
            gas=GAS_PROMOTE_BASE + GAS_PROMOTE_PER_RULE * 32,
        )

    def report_drift(
        self, model: str | bytes, psi: float | int | Decimal, *, signer: str = "monitor"
    ) -> TxResult:
        """Report PSI; above the policy's limit the model is marked for retraining for good."""
        mid = model_id(model)
        return self._tx(
            "reportDrift", [mid, to_fixed(psi, field="psi")], role=signer, gas=GAS_DRIFT
        )

    # ------------------------------------------------------------------- reads

    def _call(self, fn: str, *args: Any) -> Any:
        try:
            return self.chain.call(self.contract, fn, args)
        except ContractRevert as exc:
            if exc.name == "UnknownModel":
                raise InputError(
                    "no model with this id is registered on chain", field="model"
                ) from None
            if exc.name == "UnknownPolicy":
                raise InputError(exc.message, field="policy_id") from None
            raise

    def policy(self, policy_id: str) -> PolicyInfo:
        rules, roles, drift = self._call("getPolicy", text_id(policy_id, field="policy_id"))
        return PolicyInfo(
            policy_id=policy_id,
            rules=tuple(
                Rule(bytes32_text(m), ">=" if c == 0 else "<=", from_fixed(t)) for m, c, t in rules
            ),
            approver_roles=tuple(ROLE_NAMES.get(bytes(r), "0x" + bytes(r).hex()) for r in roles),
            max_drift_psi=from_fixed(drift),
        )

    def model_status(self, model: str | bytes) -> ModelStatus:
        mid = model_id(model)
        m = self._call("getModel", mid)
        (
            _digest,
            cid,
            dataset,
            pid,
            ledger_index,
            registrant,
            registered_at,
            status,
            metrics_submitted,
            all_passed,
            drift,
            alias,
        ) = m
        rules, roles, _max = self._call("getPolicy", pid)
        approvals: dict[str, str] = {}
        for r in roles:
            who = self._call("approvalOf", mid, r)
            if int(who, 16) != 0:
                approvals[ROLE_NAMES.get(bytes(r), "0x" + bytes(r).hex())] = who
        values: dict[str, float] = {}
        for metric, _c, _t in rules:
            present, v = self._call("metricOf", mid, metric)
            if present:
                values[bytes32_text(metric)] = from_fixed(v)
        return ModelStatus(
            model_id="0x" + mid.hex(),
            cid=cid,
            dataset_digest="0x" + bytes(dataset).hex(),
            policy_id=bytes32_text(pid),
            ledger_index=int(ledger_index),
            registrant=registrant,
            registered_at=int(registered_at),
            status=STATUS_NAMES[int(status)],
            metrics_submitted=bool(metrics_submitted),
            all_passed=bool(all_passed),
            last_drift_psi=from_fixed(drift),
            alias=alias,
            approvals=approvals,
            metrics=values,
        )

    def model_ids(self) -> list[str]:
        return ["0x" + bytes(m).hex() for m in self._call("modelIds")]

    def models(self) -> list[ModelStatus]:
        """Every registered model, in registration order."""
        return [self.model_status(m) for m in self.model_ids()]

    def model_for_alias(self, alias: str) -> str | None:
        mid = bytes(self._call("modelForAlias", alias))
        return None if mid == b"\x00" * 32 else "0x" + mid.hex()

    def cid_and_status(self, model: str | bytes) -> tuple[str, str]:
        """A registered model's CID and status in one call (`model_status` makes several)."""
        m = self._call("getModel", model_id(model))
        return str(m[1]), STATUS_NAMES[int(m[7])]

    def metric(self, model: str | bytes, name: str) -> float | None:
        """Any metric submitted for the model (rule or not), or None if none was."""
        present, value = self._call("metricOf", model_id(model), text_id(name, field="metric"))
        return from_fixed(int(value)) if present else None

    def promotions_in(self, tx_hash: str) -> tuple[tuple[str, str], ...]:
        """(model id, alias) of every `Promoted` this registry emitted in a mined, successful
        transaction; () for an unknown, failed or foreign transaction (why: a ledger entry
        that claims a promotion is believed only when the chain shows it)."""
        if not isinstance(tx_hash, str) or not re.fullmatch(r"0x[0-9a-fA-F]{64}", tx_hash):
            return ()
        try:
            receipt = self.chain.w3.eth.get_transaction_receipt(tx_hash)  # type: ignore[arg-type]
        except Exception:  # unknown to this chain
            return ()
        if int(receipt["status"]) != 1:
            return ()
        return tuple(
            (str(e.args["modelId"]), str(e.args["aliasName"]))
            for e in self.chain.decode_logs(receipt["logs"])
            if e.name == "Promoted" and e.address.lower() == self.address.lower()
        )
