"""Check a model against a policy pack: evidence from the ledger, one `compliance.checked` entry.

    from ledgerml.compliance.checking import check_model
    result = check_model(paths, cid, "fraud-model")            # submits to the chain if deployed
    result.passed, result.failed, result.ledger_index, result.tx_hash

Why one entry: the pack's rules (numeric floors and named checks such as "no PII among
features") and the contract's verdicts on the numeric ones are one act of checking, so they
are recorded once, together. With a deployed chain (and `submit`), the pack's on-chain rules
become an immutable on-chain policy `<pack>-v<version>`, the model is enrolled under it if it
is not yet, and the values go to `submitMetrics`; the contract's verdicts replace ours for
those rules and the entry carries the transaction hash (see `GovernanceService.submit_metrics`).
The contract then refuses `promote` naming any failed rule.

Order of work, so nothing is half-written on bad input: parse the pack and the options, gather
the evidence, evaluate every rule, validate the entry — then write. A failing rule is not an
error: the entry is still recorded (a failed check is evidence too) and `passed` is False.

The parts: `compliance.packs` reads a pack (`compliance.rules` holds what it reads),
`compliance.evidence` gathers what the ledger says about the model, and `compliance.checks`
holds the named checks, each declared once with `@check`. Here: every rule is evaluated
against the evidence and the result recorded (and submitted on chain).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from ledgerml.compliance.checks import Found, run_check
from ledgerml.compliance.evidence import Evidence, gather_evidence
from ledgerml.compliance.packs import Pack, PackRule, load_pack
from ledgerml.config import ProjectPaths
from ledgerml.errors import InputError, VerificationError
from ledgerml.ledger.events import validate_body
from ledgerml.ledger.project import AnyLedger, open_ledger

#: A protected column with more distinct values than this is not a set of groups (e.g. raw age).
MAX_GROUPS = 20


@dataclass(frozen=True)
class RuleOutcome:
    """One rule's result: the value found, the threshold, the verdict and why."""

    rule_id: str
    regulation: str
    metric: str
    value: float | str | None
    comparator: str
    threshold: float
    passed: bool
    detail: str
    on_chain: bool = False

    def to_body(self) -> dict[str, Any]:
        return {
            "rule_id": self.rule_id,
            "regulation": self.regulation,
            "metric": self.metric,
            "value": self.value,
            "threshold": self.threshold,
            "passed": self.passed,
            "detail": self.detail,
            "on_chain": self.on_chain,
        }


@dataclass(frozen=True)
class CheckResult:
    """What `check_model` recorded: every rule, the verdict, the ledger entry and the tx."""

    model_cid: str
    pack: str
    policy_id: str
    results: tuple[RuleOutcome, ...]
    passed: bool
    ledger_index: int
    tx_hash: str | None
    note: str | None
    entries: tuple[tuple[int, str], ...] = field(default=())

    @property
    def failed(self) -> list[str]:
        return [r.rule_id for r in self.results if not r.passed]

    def to_json(self) -> dict[str, Any]:
        return {
            "model_cid": self.model_cid,
            "pack": self.pack,
            "policy_id": self.policy_id,
            "passed": self.passed,
            "failed": self.failed,
            "ledger_index": self.ledger_index,
            "tx_hash": self.tx_hash,
            "note": self.note,
            "entries": [{"index": i, "type": t} for i, t in self.entries],
            "results": [
                {**r.to_body(), "comparator": r.comparator, "id": r.rule_id} for r in self.results
            ],
        }


def _metric_value(ev: Evidence, rule: PackRule) -> Found:
    e = ev.latest_evaluation
    if e is None:
        return Found(None, "no evaluation.recorded entry for the model")
    value = e.get("metrics", {}).get(rule.metric)
    if value is None and rule.metric.startswith("fp_ratio_vs_"):
        base = rule.metric.removeprefix("fp_ratio_vs_")
        fp = e.get("baselines", {}).get(base, {}).get("fp_at_80_recall")
        if fp == 0:
            return Found(
                None,
                f"{rule.metric} undefined: the {base} baseline raises no false positive at 80% "
                "recall (0/0 or x/0 is never a pass; a feature may leak the label)",
            )
    if value is None:
        return Found(None, f"metric {rule.metric!r} missing from the latest evaluation")
    split = f" (split {e['split']})" if e.get("split") else ""
    return Found(float(value), f"latest evaluation.recorded{split}")


def evaluate_rule(ev: Evidence, rule: PackRule) -> RuleOutcome:
    """One rule against the evidence; missing evidence fails the rule (fail closed)."""
    found = _metric_value(ev, rule) if rule.kind == "metric" else run_check(ev, rule)
    if found.passed is not None:
        passed = found.passed
    else:
        passed = found.value is not None and rule.passes(found.value)
    detail = (
        found.detail
        if found.value is not None or found.passed
        else (f"no evidence: {found.detail}")
    )
    return RuleOutcome(
        rule_id=rule.id,
        regulation=rule.regulation,
        metric=rule.metric,
        value=found.shown if found.shown is not None else found.value,
        comparator=rule.comparator,
        threshold=rule.threshold,
        passed=passed,
        detail=detail,
    )


# ----------------------------------------------------------------- the verb


def _load_table(paths: ProjectPaths, data: str, protected: Sequence[str]) -> tuple[Any, str]:
    """The --data set (name or CID, latest registration wins) as a DataFrame."""
    from ledgerml.mlops.datasets import iter_datasets
    from ledgerml.storage import open_store
    from ledgerml.tables import read_parquet

    match = None
    for rec in iter_datasets(paths):
        if data in (rec.name, rec.cid):
            match = rec
    if match is None:
        raise InputError(f"no registered data set named or with CID {data!r}", field="--data")
    for col in protected:
        if col not in match.columns:
            raise InputError(
                f"{col!r} is not a column of {match.name} (columns: {', '.join(match.columns)})",
                field="--protected",
            )
        if col in match.pii_columns or col == match.subject_column:
            raise InputError(
                f"{col!r} is stored pseudonymised (PII) in {match.name}; register the protected "
                "attribute as a plain, coarse column (e.g. an age band) to screen it",
                field="--protected",
            )
    raw = b"".join(open_store(paths).cat(match.cid))
    table = read_parquet(raw).to_pandas()
    for col in protected:
        groups = table[col].astype(str).nunique()
        if groups > MAX_GROUPS:
            raise InputError(
                f"{col!r} has {groups} distinct values: screen a banded column (e.g. age "
                f"bands), at most {MAX_GROUPS} groups",
                field="--protected",
            )
    return table, match.cid


@contextmanager
def _session(paths: ProjectPaths, use_chain: bool) -> Iterator[tuple[AnyLedger, Any]]:
    if use_chain:
        from ledgerml.mlops.governance import GovernanceService

        with GovernanceService.open(paths) as gov:
            yield gov.ledger, gov
    else:
        with open_ledger(paths) as ledger:
            yield ledger, None


def _chain_plan(gov: Any, pack: Pack, ev: Evidence) -> tuple[Any, str | None]:
    """Model status on chain (None if not enrolled) and a reason not to submit, if any."""
    try:
        st = gov.status(ev.model_cid)
    except InputError:
        st = None
    if st is None:
        if not ev.model.get("dataset_cids"):
            return None, "model.registered names no data set, so it cannot be enrolled on chain"
        ev.chain_developer = gov.chain.address("model_owner")
    else:
        ev.chain_developer = st.registrant
        if st.policy_id != pack.policy_id:
            return (
                st,
                f"model is enrolled on chain under policy {st.policy_id}, not "
                f"{pack.policy_id}: results recorded off-chain only",
            )
        if st.metrics_submitted:
            return (
                st,
                "metrics were already submitted on chain for this model (once per "
                "model): results recorded off-chain only",
            )
    ev.chain_validator = gov.chain.address("validator")
    if st is not None and st.status in ("retrain_required", "retired"):
        why = "marked for retraining" if st.status == "retrain_required" else "retired"
        return st, f"model is {why} on chain: results recorded off-chain only"
    if ev.chain_developer.lower() == ev.chain_validator.lower():
        return (
            st,
            "the registrant is the validator account (the contract refuses its "
            "metrics): results recorded off-chain only",
        )
    return st, None


def ensure_policy(gov: Any, pack: Pack) -> list[tuple[int, str]]:
    """Create the pack's on-chain policy if absent; refuse one that differs (immutable)."""
    from ledgerml.chain import Rule

    want = [(r.metric, r.comparator, round(r.threshold, 6)) for r in pack.on_chain_rules]
    try:
        info = gov.gov.policy(pack.policy_id)
    except InputError:
        rules = [Rule(m, c, t) for m, c, t in want]
        mirrored = gov.set_policy(pack.policy_id, rules, pack.approver_roles, pack.max_drift_psi)
        return list(mirrored.entries)
    have = [(r.metric, r.comparator, round(float(r.threshold), 6)) for r in info.rules]
    if have != want or tuple(info.approver_roles) != pack.approver_roles:
        raise VerificationError(
            f"on-chain policy {pack.policy_id} differs from pack {pack.id} v{pack.version} "
            "(policies are immutable: bump the pack's version)"
        )
    return []


def check_model(
    paths: ProjectPaths,
    model_cid: str,
    pack: str,
    *,
    protected: str | Sequence[str] | None = None,
    data: str | None = None,
    submit: bool = True,
) -> CheckResult:
    """Evaluate every rule of `pack` for the model and record one `compliance.checked`.

    Bad input (unknown pack or model, a data rule without --protected/--data) raises
    InputError before anything is recorded. A failing rule does not raise: see `.passed`.
    """
    pk = load_pack(pack)
    prot = (protected,) if isinstance(protected, str) else tuple(protected or ())
    if any(not p.strip() for p in prot):
        raise InputError("must name a column", field="--protected")
    needs_data = any(r.check == "four_fifths" for r in pk.rules)
    if needs_data and not prot:
        raise InputError(
            f"pack {pk.id} screens protected attributes: name one", field="--protected"
        )
    if needs_data and not data:
        raise InputError(f"pack {pk.id} needs a table to screen (a data set)", field="--data")
    paths.require_initialised()
    table, data_cid = _load_table(paths, data, prot) if data else (None, None)
    use_chain = False
    if submit:
        from ledgerml.mlops import has_deployment

        use_chain = has_deployment(paths)

    with _session(paths, use_chain) as (ledger, gov):
        ev = gather_evidence(ledger, model_cid, pk)
        ev.paths, ev.table, ev.data_cid, ev.protected = paths, table, data_cid, prot
        status, note = _chain_plan(gov, pk, ev) if gov is not None else (None, None)
        if gov is None:
            note = (
                "no chain deployed: results recorded off-chain only"
                if submit
                else "--no-submit: results recorded off-chain only"
            )
        outcomes = [evaluate_rule(ev, r) for r in pk.rules]
        values: dict[str, float] = {}
        for rule, out in zip(pk.rules, outcomes, strict=True):
            if rule.on_chain:
                if isinstance(out.value, int | float) and out.value >= 0:
                    values[rule.metric] = float(out.value)
                elif note is None:
                    note = (
                        f"rule {rule.id} has no numeric value: nothing submitted on chain "
                        "(promotion stays refused)"
                    )
        body: dict[str, Any] = {
            "model_cid": model_cid,
            "policy": pk.policy_id,
            "results": [o.to_body() for o in outcomes],
            "passed": all(o.passed for o in outcomes),
            "pack": pk.id,
            "pack_sha256": pk.sha256,
        }
        if data_cid:
            body["data_cid"] = data_cid
        if note:
            body["note"] = note
        validate_body("compliance.checked", body)
        entries: list[tuple[int, str]] = []
        tx_hash: str | None = None
        if gov is not None and note is None:
            from ledgerml.mlops.governance import THRESHOLD_METRIC

            # The evaluated operating threshold goes on chain in the same call (the contract
            # takes metrics once): the decision service reads it from the gate, never from an
            # `evaluation.recorded` entry anyone could append.
            t = (ev.latest_evaluation or {}).get("metrics", {}).get(THRESHOLD_METRIC)
            if isinstance(t, int | float) and 0 < t < 1 and THRESHOLD_METRIC not in values:
                values[THRESHOLD_METRIC] = float(t)
            entries += ensure_policy(gov, pk)
            if status is None:
                reg = gov.register(model_cid, pk.policy_id)
                entries += list(reg.entries)
            mirrored = gov.submit_metrics(model_cid, values, check=body)
            entries += list(mirrored.entries)
            body, tx_hash, index = dict(mirrored.body), mirrored.tx_hash, mirrored.ledger_index
        else:
            index = ledger.append("compliance.checked", body)
            entries.append((index, "compliance.checked"))
    results = tuple(
        RuleOutcome(
            rule_id=r["rule_id"],
            regulation=r["regulation"],
            metric=r["metric"],
            value=r["value"],
            comparator=rule.comparator,
            threshold=r["threshold"],
            passed=r["passed"],
            detail=r.get("detail") or "",
            on_chain=bool(r.get("on_chain")),
        )
        for r, rule in zip(body["results"], pk.rules, strict=True)
    )
    return CheckResult(
        model_cid=model_cid,
        pack=pk.id,
        policy_id=pk.policy_id,
        results=results,
        passed=bool(body["passed"]),
        ledger_index=index,
        tx_hash=tx_hash,
        note=note,
        entries=tuple(entries),
    )


__all__ = [
    "CheckResult",
    "Evidence",
    "RuleOutcome",
    "check_model",
    "evaluate_rule",
    "gather_evidence",
]
