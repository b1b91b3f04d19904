"""Model governance on chain, every transaction mirrored as a ledger entry.

    with GovernanceService.open(paths) as gov:
        gov.set_policy("fraud-v1", [Rule("auprc", ">=", 0.8)], ["risk_approver"], 0.25)
        gov.register(cid, "fraud-v1", dataset_cid=ds_cid, name="xgb", framework="xgboost")
        gov.submit_metrics(cid, {"auprc": 0.83})
        gov.approve(cid, "risk_approver")
        gov.promote(cid, "production")

The two records point at each other: the contract stores the ledger index of the model's
`model.registered` entry (and emits it again in `Promoted`), and every mirror entry
(`policy.registered`, `model.enrolled`, `compliance.checked`, `approval.granted`,
`model.promoted`, `drift.detected`, `retrain.requested`) carries the transaction hash.

Order of work, so nothing is half-written: validate the input and the mirror body, send the
transaction (dry-run first by `Chain`), then append the mirror. A refusal (`ContractRevert`,
exit 1) appends nothing; bad input (`InputError`, exit 2) sends nothing.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import Any

from ledgerml.chain import (
    Chain,
    Deployment,
    Governance,
    ModelStatus,
    Rule,
    TxResult,
    bytes32_text,
    cid_sha256_digest,
)
from ledgerml.chain.governance import from_fixed, text_id, to_fixed
from ledgerml.config import ProjectPaths
from ledgerml.errors import InputError, VerificationError
from ledgerml.ledger.events import validate_body
from ledgerml.ledger.project import AnyLedger, open_ledger
from ledgerml.mlops._chain import project_chain, require_deployment

#: stands in for the transaction hash while a mirror body is validated before sending
_PENDING_TX = "0x" + "0" * 64


@dataclass(frozen=True)
class Mirrored:
    """A governance transaction and the ledger entries that mirror it."""

    action: str
    tx_hash: str
    block_number: int
    gas_used: int
    chain_id: int
    contract: str
    chain_events: tuple[str, ...]
    #: (ledger index, event type) of every entry appended for this action, in order
    entries: tuple[tuple[int, str], ...]
    body: Mapping[str, Any]
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def ledger_index(self) -> int:
        """Index of the mirror entry that carries the transaction hash."""
        return next(i for i, t in self.entries if t != "model.registered")

    def to_json(self) -> dict[str, Any]:
        return {
            "action": self.action,
            "tx_hash": self.tx_hash,
            "block_number": self.block_number,
            "gas_used": self.gas_used,
            "chain_id": self.chain_id,
            "contract": self.contract,
            "chain_events": list(self.chain_events),
            "ledger_index": self.ledger_index,
            "entries": [{"index": i, "type": t} for i, t in self.entries],
            "body": dict(self.body),
            **dict(self.extra),
        }


def find_model_registered(ledger: AnyLedger, cid: str) -> tuple[int, dict[str, Any]] | None:
    """The first `model.registered` entry for `cid` (index, body), by scanning the log.

    SQLite filters by type and CID bytes, so almost every entry stays unparsed.
    """
    for index, entry in ledger.entries_of_type("model.registered", containing=cid.encode()):
        if entry["body"].get("cid") == cid:
            return index, entry["body"]
    return None


def _merge_verdicts(
    offchain: list[dict[str, Any]], onchain: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """Pack results with the contract's value and verdict for every metric it evaluated."""
    by_metric = {r["metric"]: r for r in onchain}
    merged = []
    for r in offchain:
        chain = by_metric.pop(r.get("metric"), None)
        if chain is not None:
            detail = r.get("detail") or ""
            r = {
                **r,
                "passed": chain["passed"],
                "on_chain": True,
                "detail": f"{detail}; {chain['detail']}" if detail else chain["detail"],
            }
            if isinstance(r.get("value"), int | float) and not isinstance(r["value"], bool):
                r["value"] = chain["value"]
        merged.append(r)
    merged += [{**r, "on_chain": True} for r in by_metric.values()]  # rules only the chain had
    return merged


def _hex32(value: bytes) -> str:
    return bytes(value).hex()


class GovernanceService:
    """The project's ModelRegistry plus its ledger: each write lands on both."""

    def __init__(
        self, paths: ProjectPaths, chain: Chain, deployment: Deployment, ledger: AnyLedger
    ) -> None:
        self.paths = paths
        self.chain = chain
        self.deployment = deployment
        self.ledger = ledger
        self.gov = Governance(chain, deployment.model_registry)

    @classmethod
    @contextmanager
    def open(cls, paths: ProjectPaths) -> Iterator[GovernanceService]:
        """Open chain (deployment required) and ledger; both are closed on exit."""
        with project_chain(paths) as chain:
            deployment = require_deployment(chain, paths)
            with open_ledger(paths) as ledger:
                yield cls(paths, chain, deployment, ledger)

    # ----------------------------------------------------------------- helpers

    def _chain_fields(self, tx: TxResult | None = None) -> dict[str, Any]:
        return {
            "tx_hash": tx.tx_hash if tx else _PENDING_TX,
            "chain_id": self.chain.chain_id,
            "contract": self.gov.address,
        }

    def _mirror(
        self, action: str, tx: TxResult, items: Sequence[tuple[str, dict[str, Any]]], **extra: Any
    ) -> Mirrored:
        """Append the mirror entries of a mined transaction (atomically, in one batch)."""
        try:
            if len(items) == 1:
                indices = [self.ledger.append(*items[0])]
            else:
                indices = self.ledger.append_many(items)
        except Exception as exc:
            # The chain already holds the transaction; say exactly what the ledger lacks.
            raise VerificationError(
                f"{action}: transaction {tx.tx_hash} was mined but its ledger mirror "
                f"({', '.join(t for t, _ in items)}) could not be appended: {exc}"
            ) from exc
        return Mirrored(
            action=action,
            tx_hash=tx.tx_hash,
            block_number=tx.block_number,
            gas_used=tx.gas_used,
            chain_id=self.chain.chain_id,
            contract=self.gov.address,
            chain_events=tuple(e.name for e in tx.events),
            entries=tuple(zip(indices, (t for t, _ in items), strict=True)),
            body=items[0][1],
            extra=extra,
        )

    def status(self, model: str) -> ModelStatus:
        """On-chain record of a model (CID or 0x model id); InputError if unknown/malformed."""
        return self.gov.model_status(model)

    def models(self) -> list[ModelStatus]:
        return self.gov.models()

    # ------------------------------------------------------------------ actions

    def set_policy(
        self,
        policy_id: str,
        rules: Sequence[Rule],
        approver_roles: Sequence[str],
        max_drift_psi: float | Decimal,
    ) -> Mirrored:
        """Create an on-chain policy; mirrored as `policy.registered`."""
        text_id(policy_id, field="policy_id")
        to_fixed(max_drift_psi, field="max_drift_psi")
        body: dict[str, Any] = {
            "policy_id": policy_id,
            "rules": [
                {"metric": r.metric, "comparator": r.comparator, "threshold": float(r.threshold)}
                for r in rules
            ],
            "approver_roles": list(approver_roles),
            "max_drift_psi": float(max_drift_psi),
        }
        validate_body("policy.registered", {**body, **self._chain_fields()})
        tx = self.gov.set_policy(policy_id, rules, approver_roles, max_drift_psi)
        body |= {**self._chain_fields(tx), "block_number": tx.block_number}
        return self._mirror("policy", tx, [("policy.registered", body)])

    def register(
        self,
        cid: str,
        policy_id: str,
        *,
        dataset_cid: str | None = None,
        name: str | None = None,
        framework: str | None = None,
        signer: str = "model_owner",
    ) -> Mirrored:
        """Enrol a model on chain under a policy, pointing at its `model.registered` entry.

        Without such an entry, one is appended from `name`/`framework`/`dataset_cid` — after
        a dry run of the registration, so a refused registration appends nothing.
        """
        digest = cid_sha256_digest(cid, field="cid")
        pid = text_id(policy_id, field="policy")
        self.chain.address(signer)  # unknown role -> InputError before anything else
        policy = self.gov.policy(policy_id)  # unknown policy -> InputError(field=policy_id)
        found = find_model_registered(self.ledger, cid)
        new_entry: dict[str, Any] | None = None
        if found is None:
            if not name or not framework:
                raise InputError(
                    f"the ledger has no model.registered entry for {cid}; pass --name and "
                    "--framework to record one",
                    field="name" if not name else "framework",
                )
            new_entry = {"name": name, "cid": cid, "framework": framework}
            if dataset_cid is not None:
                new_entry["dataset_cids"] = [dataset_cid]
            validate_body("model.registered", new_entry)
        elif dataset_cid is None and found[1].get("dataset_cids"):
            dataset_cid = found[1]["dataset_cids"][0]
        if dataset_cid is None:
            raise InputError("the model's data set is unknown; pass --dataset CID", field="dataset")
        ds_digest = cid_sha256_digest(dataset_cid, field="dataset")
        body: dict[str, Any] = {
            "model_cid": cid,
            "policy": policy.policy_id,
            "dataset_digest": ds_digest.hex(),
            "dataset_cid": dataset_cid,
            "ledger_index": found[0] if found else self.ledger.size(),
            "registrant": self.chain.address(signer),
        }
        validate_body("model.enrolled", {**body, **self._chain_fields()})
        # Dry run: refusals (model exists, caller lacks the role...) before any append.
        self.chain.call(
            self.gov.contract,
            "registerModel",
            [digest, cid, ds_digest, pid, body["ledger_index"]],
            role=signer,
        )
        if new_entry is not None:
            body["ledger_index"] = self.ledger.append("model.registered", new_entry)
        tx = self.gov.register_model(cid, ds_digest, policy_id, body["ledger_index"], signer=signer)
        body |= {**self._chain_fields(tx), "block_number": tx.block_number}
        result = self._mirror(
            "register",
            tx,
            [("model.enrolled", body)],
            model_registered_index=body["ledger_index"],
            model_registered_appended=new_entry is not None,
        )
        if new_entry is not None:
            entries = ((body["ledger_index"], "model.registered"), *result.entries)
            result = replace(result, entries=entries)
        return result

    def submit_metrics(
        self,
        model: str,
        metrics: Mapping[str, float | int | Decimal],
        *,
        signer: str = "validator",
        check: Mapping[str, Any] | None = None,
    ) -> Mirrored:
        """The contract evaluates each rule; mirrored as ONE `compliance.checked` entry.

        Without `check`, the entry holds the contract's verdicts only. With `check` (a
        `compliance.checked` body a policy pack produced, see `ledgerml.compliance`), that body
        is the entry: each result whose `metric` the contract evaluated takes the contract's
        value and verdict (`on_chain: true`), so off-chain and on-chain results are recorded
        once, together, under the transaction hash.
        """
        st = self.status(model)
        self.chain.address(signer)
        for k, v in metrics.items():
            text_id(k, field=f"metrics.{k}")
            to_fixed(v, field=f"metrics.{k}")
        if check is not None:
            base = {**dict(check), "model_cid": st.cid}
            base["results"] = [dict(r) for r in check.get("results", [])]
        else:
            base = {"model_cid": st.cid, "policy": st.policy_id, "results": [], "passed": True}
        validate_body("compliance.checked", {**base, "tx_hash": _PENDING_TX})
        tx = self.gov.submit_metrics(model, metrics, signer=signer)
        results = []
        for ev in tx.events_named("RuleEvaluated"):
            a = ev.args
            metric = bytes32_text(bytes.fromhex(str(a["metric"])[2:]))
            comparator = ">=" if int(a["comparator"]) == 0 else "<="
            threshold = from_fixed(int(a["threshold"]))
            results.append(
                {
                    "rule_id": f"{metric}{comparator}{threshold:g}",
                    "regulation": f"policy {st.policy_id}",
                    "metric": metric,
                    "value": from_fixed(int(a["value"])),
                    "threshold": threshold,
                    "passed": bool(a["passed"]),
                    "detail": f"evaluated by ModelRegistry {self.gov.address} "
                    f"(comparator {comparator})",
                }
            )
        (done,) = tx.events_named("MetricsSubmitted")
        chain_passed = bool(done.args["allPassed"])
        if check is None:
            body = {**base, "results": results, "passed": chain_passed}
        else:
            body = {**base, "results": _merge_verdicts(base["results"], results)}
            body["passed"] = chain_passed and all(r["passed"] for r in body["results"])
        body["tx_hash"] = tx.tx_hash
        return self._mirror("metrics", tx, [("compliance.checked", body)])

    def approve(self, model: str, role: str) -> Mirrored:
        """Approve as `role` (signed by that role's account); mirrored as `approval.granted`."""
        st = self.status(model)
        approver = self.chain.address(role)
        body: dict[str, Any] = {"model_cid": st.cid, "role": role, "approver": approver}
        validate_body("approval.granted", {**body, "tx_hash": _PENDING_TX})
        tx = self.gov.approve(model, role)
        body["tx_hash"] = tx.tx_hash
        return self._mirror("approve", tx, [("approval.granted", body)])

    def promote(self, model: str, alias: str) -> Mirrored:
        """Point `alias` at the model; the contract names any unmet rule or approval."""
        st = self.status(model)
        if not isinstance(alias, str) or not 0 < len(alias.encode()) <= 64:
            raise InputError("must be 1-64 bytes of text", field="alias")
        previous = self.gov.model_for_alias(alias)
        body: dict[str, Any] = {"model_cid": st.cid, "alias": alias}
        if previous is not None and previous != st.model_id:
            body["previous_cid"] = self.status(previous).cid
        validate_body("model.promoted", {**body, "tx_hash": _PENDING_TX})
        tx = self.gov.promote(model, alias)
        body["tx_hash"] = tx.tx_hash
        # the previous holder was marked RetrainRequired: the contract retired it (cleared)
        cleared = bool(tx.events_named("RetrainCleared"))
        return self._mirror(
            "promote",
            tx,
            [("model.promoted", body)],
            ledger_ref=st.ledger_index,
            retrain_cleared=cleared,
        )

    def report_drift(
        self,
        model: str,
        psi: float | Decimal,
        *,
        per_feature: Mapping[str, float] | None = None,
        window_cid: str | None = None,
    ) -> Mirrored:
        """Report PSI; above the policy limit the contract retires the model for retraining,
        mirrored as `drift.detected` plus `retrain.requested` in one batch.

        The contract takes one number (`psi`, the max over features); `per_feature` and
        `window_cid`, when given, go into the ledger entry so an auditor sees which feature
        drifted on which scoring window.
        """
        st = self.status(model)
        to_fixed(psi, field="psi")
        body: dict[str, Any] = {
            "model_cid": st.cid,
            "psi": {k: float(v) for k, v in per_feature.items()}
            if per_feature
            else {"overall": float(psi)},
            "max_psi": float(psi),
            "threshold": 0.0,
        }
        if window_cid is not None:
            body["window_cid"] = window_cid
        validate_body("drift.detected", {**body, "tx_hash": _PENDING_TX})
        tx = self.gov.report_drift(model, psi)
        (reported,) = tx.events_named("DriftReported")
        body["threshold"] = from_fixed(int(reported.args["maxDriftPsi"]))
        body["tx_hash"] = tx.tx_hash
        items: list[tuple[str, dict[str, Any]]] = [("drift.detected", body)]
        retrain = bool(tx.events_named("RetrainRequired"))
        if retrain:
            items.append(
                (
                    "retrain.requested",
                    {
                        "model_cid": st.cid,
                        "reason": f"PSI {float(psi):g} above the policy limit "
                        f"{body['threshold']:g} (RetrainRequired on chain)",
                        "tx_hash": tx.tx_hash,
                    },
                )
            )
        return self._mirror("drift", tx, items, retrain_required=retrain)


#: Submitted on chain with the rule metrics by the compliance check: the evaluated operating
#: threshold, so that scoring takes it from the gate and never from an appended ledger entry.
THRESHOLD_METRIC = "threshold_at_80_recall"


@dataclass(frozen=True)
class GatedModel:
    """The model an alias points at in the ModelRegistry contract, and its on-chain threshold."""

    alias: str
    model_cid: str
    model_id: str
    status: str
    #: THRESHOLD_METRIC as submitted on chain; None when absent or not in (0, 1)
    threshold: float | None


@dataclass(frozen=True)
class PromotionClaim:
    """A `model.promoted` ledger entry: only a claim until the chain confirms it."""

    index: int
    alias: str
    model_cid: str
    tx_hash: str | None


@dataclass(frozen=True)
class GateRead:
    """One read-only look at the gate: aliases as the contract holds them, claims it denies."""

    aliases: Mapping[str, GatedModel]
    #: claims with no `Promoted(model, alias)` of the registry in their (mined) transaction
    unconfirmed: tuple[PromotionClaim, ...]
    contract: str
    chain_id: int
    seconds: float


def read_gate(
    paths: ProjectPaths,
    aliases: Sequence[str],
    claims: Sequence[PromotionClaim] = (),
    *,
    lock_timeout_s: float = 30.0,
) -> GateRead:
    """Read (never write) which model each alias serves, and check promotion claims.

    The contract's state is the only source of truth for an alias: a claim is confirmed when
    its transaction holds the registry's `Promoted` event for that model and alias, and an
    alias the contract does not know is left out. Raises InputError(field="chain") when the
    project has no deployment (no gate, so nothing is promoted) or the chain is busy.
    """
    import time

    started = time.perf_counter()
    with project_chain(paths, lock_timeout_s=lock_timeout_s) as chain:
        gov = Governance(chain, require_deployment(chain, paths).model_registry)
        denied: list[PromotionClaim] = []
        confirmed: list[PromotionClaim] = []
        for c in claims:
            try:
                mid = "0x" + cid_sha256_digest(c.model_cid, field="model_cid").hex()
            except InputError:
                mid = None
            shown = gov.promotions_in(c.tx_hash) if c.tx_hash else ()
            (confirmed if mid is not None and (mid, c.alias) in shown else denied).append(c)
        found: dict[str, GatedModel] = {}
        # Aliases come from the caller and from confirmed claims only: a forged hint cannot
        # even make us ask about its alias.
        for alias in dict.fromkeys([*aliases, *(c.alias for c in confirmed)]):
            mid = gov.model_for_alias(alias)
            if mid is None:
                continue
            cid, status = gov.cid_and_status(mid)
            t = gov.metric(mid, THRESHOLD_METRIC)
            found[alias] = GatedModel(
                alias, cid, mid, status, t if t is not None and 0 < t < 1 else None
            )
        return GateRead(
            found, tuple(denied), gov.address, chain.chain_id, time.perf_counter() - started
        )


__all__ = [
    "THRESHOLD_METRIC",
    "GateRead",
    "GatedModel",
    "GovernanceService",
    "Mirrored",
    "PromotionClaim",
    "find_model_registered",
    "read_gate",
]
