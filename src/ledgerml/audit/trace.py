"""Lineage trace: decision -> model -> training run -> data sets -> compliance -> approvals
-> promotion -> anchors, every step a ledger entry with its inclusion proof.

    with AuditView.open(paths) as view:
        t = trace_decision(view, "dec-000000042")
        t.ok                      # checkpoint signature and every proof verify
        [s.step for s in t.steps] # ["decision", "model", "training run started", ...]
    trace_model(view, "champion")  # a CID or an alias, as the gate (the contract) holds it

No scan: every hop is an index lookup (`ledgerml.ledger.index`), and the content of
each hop is read from the ledger and proved, so a stale or forged index can make a
trace incomplete but never wrong.

An alias is resolved by the ModelRegistry contract, never by `model.promoted` entries:
anyone with the log key can append one. Each promotion step in a trace is checked against
its transaction (`Promoted` event of the registry) and flagged when the chain does not
show it (`unconfirmed_promotions`).
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, replace
from typing import Any

from ledgerml.audit.view import AuditView, ProvenEntry, SignedCheckpoint
from ledgerml.errors import InputError
from ledgerml.ledger.index import index_keys

CID_RE = re.compile(r"^b[a-z2-7]{58,}$")

MODEL_STEPS: tuple[tuple[str, str], ...] = (
    ("model.registered", "model"),
    ("evaluation.recorded", "evaluation"),
    ("model.documented", "model card"),
    ("model.enrolled", "on-chain registration"),
    ("compliance.checked", "compliance check"),
    ("approval.granted", "approval"),
    ("model.promoted", "promotion"),
    ("drift.detected", "drift"),
    ("retrain.requested", "retraining request"),
)


@dataclass(frozen=True)
class TraceStep:
    """One hop of a lineage: what it is, a one-line summary, and the proven entry."""

    step: str
    summary: str
    entry: ProvenEntry

    def to_json(self) -> dict[str, Any]:
        return {"step": self.step, "summary": self.summary, **self.entry.to_json()}


@dataclass(frozen=True)
class Trace:
    """A lineage with proofs against one signed checkpoint."""

    kind: str  # "decision" or "model"
    subject: str
    model_cid: str | None
    checkpoint: SignedCheckpoint
    steps: tuple[TraceStep, ...]
    seconds: float
    #: ledger indices of promotion steps the gate does not confirm (forged or foreign)
    unconfirmed_promotions: tuple[int, ...] = ()

    @property
    def ok(self) -> bool:
        return self.checkpoint.signature_ok and all(s.entry.verified for s in self.steps)

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "kind": self.kind,
            "subject": self.subject,
            "model_cid": self.model_cid,
            "checkpoint": self.checkpoint.to_json(),
            "steps": [s.to_json() for s in self.steps],
            "unconfirmed_promotions": list(self.unconfirmed_promotions),
            "seconds": round(self.seconds, 6),
        }


def _short(value: Any, n: int = 18) -> str:
    s = str(value)
    return s if len(s) <= n else s[: n - 1] + "…"


def summarize(e: ProvenEntry) -> str:
    """A one-line description of an entry for people (the body stays in the JSON)."""
    b = e.body
    t = e.type
    if t == "decision.recorded":
        return (
            f"{b.get('decision_id')}: {b.get('outcome')} (score {b.get('score')} vs threshold "
            f"{b.get('threshold')}); reasons: {', '.join(b.get('reasons', [])) or 'none'}"
        )
    if t == "model.registered":
        return f"{b.get('name')} {b.get('cid')} ({b.get('framework')}), run {b.get('run_id')}"
    if t == "run.started":
        sets = len(b.get("dataset_cids", []))
        return f"{b.get('run_id')}: {b.get('model_type')} on {sets} data set(s)"
    if t == "run.finished":
        return f"{b.get('run_id')}: {b.get('status')} -> {b.get('model_cid')}"
    if t == "dataset.registered":
        return f"{b.get('name')} {b.get('cid')}: {b.get('rows')} rows, source {b.get('source')}"
    if t == "evaluation.recorded":
        m = b.get("metrics", {})
        return f"AUPRC {m.get('auprc')}, FP at 80% recall {m.get('fp_at_80_recall')}"
    if t == "compliance.checked":
        failed = [r.get("rule_id") for r in b.get("results", []) if not r.get("passed")]
        verdict = "passed" if b.get("passed") else "FAILED " + ", ".join(map(str, failed))
        return f"pack {b.get('pack') or b.get('policy')}: {verdict}; tx {_short(b.get('tx_hash'))}"
    if t == "approval.granted":
        key = f", key {b['key_id']}" if b.get("key_id") else ""
        return (
            f"{b.get('role')} by {b.get('approver')} (entry signed by {e.actor}{key}); "
            f"tx {_short(b.get('tx_hash'))}"
        )
    if t == "model.promoted":
        return f"alias {b.get('alias')}; tx {b.get('tx_hash')}"
    if t == "checkpoint.anchored":
        return (
            f"tree size {b.get('tree_size')} anchored in block {b.get('block_number')} "
            f"(chain {b.get('chain_id')}), tx {_short(b.get('tx_hash'))}"
        )
    if t == "model.enrolled":
        return f"under policy {b.get('policy')}; tx {_short(b.get('tx_hash'))}"
    if t == "policy.registered":
        rules = len(b.get("rules", []))
        return f"{b.get('policy_id')}: {rules} rule(s); tx {_short(b.get('tx_hash'))}"
    if t == "drift.detected":
        return f"max PSI {b.get('max_psi')} vs limit {b.get('threshold')}"
    return t


def _hits(view: AuditView, key: str, event_type: str) -> list[ProvenEntry]:
    """Entries the index names for (key, type), kept only if the proven body agrees."""
    out = []
    for idx in view.index.find(key, event_type):
        e = view.prove(idx)
        if e.type == event_type and key in index_keys(e.type, e.body):
            out.append(e)
    return out


#: An auditor's read of the gate waits this long for the embedded chain's lock.
GATE_LOCK_WAIT_S = 5.0
NO_GATE = "promotion goes through the gate (ledgerml chain deploy, check, approve, promote)"


def resolve_model(view: AuditView, model: str) -> str:
    """A model CID from a CID or an alias the gate holds; InputError when unknown."""
    if not model:
        raise InputError("give a model CID or alias", field="--model")
    if CID_RE.match(model):
        if not view.index.find(model, "model.registered"):
            raise InputError(f"no model.registered entry for {model}", field="--model")
        return model
    from ledgerml.mlops import has_deployment, read_gate

    if not has_deployment(view.paths):
        raise InputError(
            f"{model!r} is not a model CID, and no model is promoted as {model!r} "
            f"(no chain deployment — {NO_GATE})",
            field="--model",
        )
    gated = read_gate(view.paths, [model], lock_timeout_s=GATE_LOCK_WAIT_S).aliases.get(model)
    if gated is None:
        raise InputError(
            f"{model!r} is neither a model CID nor an alias promoted on chain", field="--model"
        )
    return gated.model_cid


def unconfirmed_promotions(view: AuditView, steps: list[TraceStep]) -> tuple[int, ...]:
    """Indices of promotion steps whose transaction holds no matching `Promoted` event."""
    from ledgerml.mlops import PromotionClaim, has_deployment, read_gate

    claims = [
        PromotionClaim(
            s.entry.index,
            str(s.entry.body.get("alias", "")),
            str(s.entry.body.get("model_cid", "")),
            s.entry.body.get("tx_hash") if isinstance(s.entry.body.get("tx_hash"), str) else None,
        )
        for s in steps
        if s.entry.type == "model.promoted"
    ]
    if not claims:
        return ()
    if not has_deployment(view.paths):
        return tuple(c.index for c in claims)
    got = read_gate(view.paths, [], claims, lock_timeout_s=GATE_LOCK_WAIT_S)
    return tuple(c.index for c in got.unconfirmed)


def _flagged(
    view: AuditView, steps: list[TraceStep]
) -> tuple[tuple[TraceStep, ...], tuple[int, ...]]:
    """The steps, with each promotion the gate does not confirm saying so."""
    bad = unconfirmed_promotions(view, steps)
    return tuple(
        replace(s, summary=f"{s.summary} — NOT confirmed by the gate (no such Promoted event)")
        if s.entry.index in bad
        else s
        for s in steps
    ), bad


def _model_steps(view: AuditView, model_cid: str) -> list[TraceStep]:
    steps: list[TraceStep] = []
    seen: set[int] = set()

    def add(step: str, entries: list[ProvenEntry]) -> None:
        for e in entries:
            if e.index not in seen:
                seen.add(e.index)
                steps.append(TraceStep(step, summarize(e), e))

    registered = _hits(view, model_cid, "model.registered")
    registered = [r for r in registered if r.body.get("cid") == model_cid]
    add("model", registered)
    run_ids = {str(r.body["run_id"]) for r in registered if r.body.get("run_id")}
    dataset_cids: list[str] = [c for r in registered for c in r.body.get("dataset_cids", [])]
    for run_id in sorted(run_ids):
        started = _hits(view, run_id, "run.started")
        add("training run started", started)
        add("training run finished", _hits(view, run_id, "run.finished"))
        dataset_cids += [c for s in started for c in s.body.get("dataset_cids", [])]
    for cid in dict.fromkeys(dataset_cids):
        add("data set", [d for d in _hits(view, cid, "dataset.registered") if d.body["cid"] == cid])
    policies: list[str] = []
    for event_type, step in MODEL_STEPS[1:]:
        found = _hits(view, model_cid, event_type)
        found = [e for e in found if e.body.get("model_cid") == model_cid]
        add(step, found)
        policies += [str(e.body["policy"]) for e in found if e.body.get("policy")]
    for policy in dict.fromkeys(policies):
        add("policy", _hits(view, policy, "policy.registered"))
    return steps


def _anchor_steps(view: AuditView, covering: int) -> list[TraceStep]:
    """The first anchor whose tree covers entry `covering`, and the newest anchor."""
    anchors = view.index.by_type("checkpoint.anchored")
    picked: list[int] = []
    for idx in anchors:
        e = view.prove(idx)
        if int(e.body.get("tree_size", 0)) > covering:
            picked.append(idx)
            break
    if anchors and anchors[-1] not in picked:
        picked.append(anchors[-1])
    out = []
    for idx in picked:
        e = view.prove(idx)
        if int(e.body.get("tree_size", 0)) > covering:
            out.append(TraceStep("anchor", summarize(e), e))
    return out


def trace_decision(view: AuditView, decision_id: str) -> Trace:
    """The full lineage of one decision; InputError naming DECISION_ID when unknown."""
    started = time.perf_counter()
    view.refresh()
    hits = _hits(view, decision_id, "decision.recorded")
    hits = [h for h in hits if h.body.get("decision_id") == decision_id]
    if not hits:
        raise InputError(f"no decision {decision_id!r} in the ledger", field="DECISION_ID")
    decision = hits[-1]
    model_cid = str(decision.body["model_cid"])
    steps = [TraceStep("decision", summarize(decision), decision)]
    steps += _model_steps(view, model_cid)
    steps += _anchor_steps(view, decision.index)
    flagged, bad = _flagged(view, steps)
    return Trace(
        "decision",
        decision_id,
        model_cid,
        view.checkpoint,
        flagged,
        time.perf_counter() - started,
        bad,
    )


def trace_model(view: AuditView, model: str) -> Trace:
    """The lineage of a model (CID, promoted alias or MLflow NAME/VERSION), up to its anchors."""
    started = time.perf_counter()
    view.refresh()
    from ledgerml.audit import _mlflow_trace as mlf

    name_version = None if CID_RE.match(model or "") else mlf.parse_name_version(model or "")
    version = mlf.version_entry(view, *name_version) if name_version else None
    if name_version and version is None:
        raise InputError(f"no MLflow model version {model!r} in the ledger", field="--model")
    if version is not None and not version.body.get("cid"):
        raise InputError(f"MLflow model version {model!r} names no model file CID", field="--model")
    model_cid = str(version.body["cid"]) if version is not None else resolve_model(view, model)
    steps = _model_steps(view, model_cid)
    if version is not None and name_version is not None:
        before = [TraceStep(s, m, e) for s, m, e in mlf.before_model(view, version)]
        after = [TraceStep(s, m, e) for s, m, e in mlf.after_model(view, *name_version)]
        steps = before + steps + after
    last = max((s.entry.index for s in steps), default=0)
    steps += _anchor_steps(view, last)
    flagged, bad = _flagged(view, steps)
    return Trace(
        "model", model, model_cid, view.checkpoint, flagged, time.perf_counter() - started, bad
    )
