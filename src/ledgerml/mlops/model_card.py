"""Model cards built from the ledger: Markdown for people, JSON for tools, both in the CAS.

    card = build_model_card(paths, cid, "Flag card transactions for analyst review",
                            ["Trained on 2013 European card data only"])
    card.card_cid, card.markdown_cid, card.ledger_index      # `model.documented` entry

Why from the ledger: a card written by hand drifts from what happened. Every fact here
(data sets and their PII handling, metrics against baselines, fairness screens, compliance
results, approvals with their transaction hashes) is read from ledger entries, each cited by
index, so a reader can check the card against the log. Only the intended use and the
limitations come from the author. The card is deterministic for a given ledger state.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from ledgerml.config import ProjectPaths
from ledgerml.crypto.canonical import canonical_json
from ledgerml.errors import InputError
from ledgerml.ledger.events import validate_body
from ledgerml.ledger.log import type_suffix
from ledgerml.ledger.project import open_ledger

#: Metric ids of fairness rules (their results are shown in the card's fairness section).
FAIRNESS_METRICS = frozenset({"di_ratio"})
_MAX_TEXT = 2000


@dataclass(frozen=True)
class ModelCard:
    """A stored model card and the `model.documented` entry that records it."""

    model_cid: str
    card_cid: str
    markdown_cid: str
    ledger_index: int
    card: dict[str, Any]
    markdown: str

    def to_json(self) -> dict[str, Any]:
        return {
            "model_cid": self.model_cid,
            "card_cid": self.card_cid,
            "markdown_cid": self.markdown_cid,
            "ledger_index": self.ledger_index,
            "card": self.card,
        }


def _text(value: Any, field: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InputError("must be non-empty text", field=field)
    if len(value) > _MAX_TEXT:
        raise InputError(f"must be at most {_MAX_TEXT} characters", field=field)
    return value.strip()


def _pii_handling(ds: dict[str, Any]) -> str:
    pii, subject = ds.get("pii_columns", []), ds.get("subject_column")
    if not pii and not subject:
        return "no personal-data columns declared"
    parts = []
    if pii:
        parts.append(
            f"{', '.join(pii)} encrypted per data subject in the vault; the stored table holds "
            "salted commitments"
        )
    if subject:
        parts.append(f"subject column {subject} replaced by the subject commitment")
    return "; ".join(parts) + " (GDPR Art. 5(1)(c), Art. 17 by crypto-shredding)"


def collect(paths: ProjectPaths, model_cid: str) -> dict[str, Any]:
    """The card's facts from one pass over the ledger (InputError for an unknown model)."""
    needle = model_cid.encode()
    model: tuple[int, dict[str, Any]] | None = None
    datasets: dict[str, tuple[int, dict[str, Any]]] = {}
    evaluations: list[tuple[int, dict[str, Any]]] = []
    checks: list[tuple[int, dict[str, Any]]] = []
    approvals: list[tuple[int, dict[str, Any]]] = []
    other: list[tuple[int, str, dict[str, Any]]] = []
    with open_ledger(paths) as ledger:
        size = ledger.size()
        dataset_suffix = type_suffix("dataset.registered")
        for index, raw in ledger.entries():
            if needle not in raw and not raw.endswith(dataset_suffix):
                continue
            obj = orjson.loads(raw)
            t, body = obj["type"], obj["body"]
            if t == "dataset.registered":
                datasets[body["cid"]] = (index, body)
            elif t == "model.registered" and body.get("cid") == model_cid:
                model = model or (index, body)
            elif body.get("model_cid") != model_cid:
                continue
            elif t == "evaluation.recorded":
                evaluations.append((index, body))
            elif t == "compliance.checked":
                checks.append((index, body))
            elif t == "approval.granted":
                approvals.append((index, body))
            elif t in ("model.enrolled", "model.promoted"):
                other.append((index, t, body))
    if model is None:
        raise InputError(f"no model.registered entry for {model_cid} in the ledger", field="model")
    m_index, m = model
    data = []
    for cid in m.get("dataset_cids", []):
        found = datasets.get(cid)
        if found is None:
            data.append({"cid": cid, "registered": False})
            continue
        i, ds = found
        data.append(
            {
                "cid": cid,
                "registered": True,
                "ledger_index": i,
                "name": ds["name"],
                "rows": ds["rows"],
                "label": ds.get("label"),
                "pii_columns": ds.get("pii_columns", []),
                "subject_column": ds.get("subject_column"),
                "pii_handling": _pii_handling(ds),
            }
        )
    evaluation = None
    if evaluations:
        i, e = evaluations[-1]
        evaluation = {
            "ledger_index": i,
            "dataset_cid": e.get("dataset_cid"),
            "split": e.get("split"),
            "metrics": e.get("metrics", {}),
            "baselines": e.get("baselines", {}),
            "plots": e.get("plots", {}),
        }
    compliance = [
        {
            "ledger_index": i,
            "policy": c["policy"],
            "pack": c.get("pack"),
            "passed": c["passed"],
            "tx_hash": c.get("tx_hash"),
            "failed": [r["rule_id"] for r in c["results"] if not r["passed"]],
            "results": c["results"],
        }
        for i, c in checks
    ]
    fairness = [
        {"ledger_index": c["ledger_index"], **r}
        for c in compliance
        for r in c["results"]
        if r.get("metric") in FAIRNESS_METRICS
    ]
    return {
        "model": {
            "cid": model_cid,
            "name": m["name"],
            "framework": m["framework"],
            "run_id": m.get("run_id"),
            "target": m.get("target"),
            "features": [f["name"] for f in m.get("features", [])],
            "ledger_index": m_index,
        },
        "data": data,
        "evaluation": evaluation,
        "fairness": fairness,
        "compliance": compliance,
        "approvals": [
            {
                "ledger_index": i,
                "role": a["role"],
                "approver": a["approver"],
                "tx_hash": a.get("tx_hash"),
            }
            for i, a in approvals
        ],
        "governance": [{"ledger_index": i, "type": t, **b} for i, t, b in other],
        "ledger_size": size,
    }


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return "—" if v is None else str(v)


def render_markdown(card: dict[str, Any]) -> str:
    """The card as Markdown; every fact names the ledger entry it came from."""
    m = card["model"]
    out = [
        f"# Model card: {m['name']}",
        "",
        f"- Model CID: `{m['cid']}` (ledger #{m['ledger_index']}, framework {m['framework']}"
        + (f", run {m['run_id']}" if m.get("run_id") else "")
        + ")",
        f"- Target: {_fmt(m.get('target'))}; {len(m['features'])} features",
        f"- Evidence as of ledger size {card['ledger_size']}",
        "",
        "## Intended use",
        "",
        card["intended_use"],
        "",
        "## Data",
        "",
    ]
    for d in card["data"] or [{"cid": "none recorded", "registered": False}]:
        if not d["registered"]:
            out.append(f"- `{d['cid']}`: not registered in the ledger")
            continue
        out.append(
            f"- {d['name']} `{d['cid']}` (ledger #{d['ledger_index']}): {d['rows']:,} rows, "
            f"label {_fmt(d['label'])}; PII: {d['pii_handling']}"
        )
    out += ["", "## Metrics", ""]
    e = card["evaluation"]
    if e is None:
        out.append("No evaluation recorded.")
    else:
        names = sorted(e["baselines"])
        out.append(
            f"Evaluation ledger #{e['ledger_index']}, split {_fmt(e['split'])}, "
            f"data `{_fmt(e['dataset_cid'])}`."
        )
        out += ["", "| metric | model | " + " | ".join(names) + " |"]
        out.append("|---|---|" + "---|" * len(names))
        for k, v in sorted(e["metrics"].items()):
            base = " | ".join(_fmt(e["baselines"][n].get(k)) for n in names)
            out.append(f"| {k} | {_fmt(v)} | {base} |")
    out += ["", "## Fairness", ""]
    if not card["fairness"]:
        out.append("No fairness screen recorded.")
    for f in card["fairness"]:
        mark = "pass" if f["passed"] else "FAIL"
        out.append(
            f"- {f['rule_id']} (ledger #{f['ledger_index']}): {_fmt(f['value'])} vs "
            f"{_fmt(f['threshold'])} — {mark}. {f.get('detail') or ''}"
        )
    out += ["", "## Limitations", ""]
    out += [f"- {x}" for x in card["limitations"]] or ["- none stated"]
    out += ["", "## Compliance checks", ""]
    if not card["compliance"]:
        out.append("No compliance check recorded.")
    for c in card["compliance"]:
        verdict = "passed" if c["passed"] else f"FAILED ({', '.join(c['failed'])})"
        tx = f", tx `{c['tx_hash']}`" if c.get("tx_hash") else ""
        out.append(f"- {c.get('pack') or c['policy']} (ledger #{c['ledger_index']}{tx}): {verdict}")
    out += ["", "## Approvals", ""]
    if not card["approvals"]:
        out.append("No approvals recorded.")
    for a in card["approvals"]:
        tx = f", tx `{a['tx_hash']}`" if a.get("tx_hash") else ""
        out.append(f"- {a['role']} by {a['approver']} (ledger #{a['ledger_index']}{tx})")
    return "\n".join(out) + "\n"


def build_model_card(
    paths: ProjectPaths,
    model_cid: str,
    intended_use: str,
    limitations: Sequence[str] = (),
    *,
    record: bool = True,
) -> ModelCard:
    """Build the card from the ledger, store JSON and Markdown in the CAS, record the CIDs.

    `record=False` builds and stores without appending `model.documented` (a preview)."""
    use = _text(intended_use, "--intended-use")
    lims = [_text(x, "--limitation") for x in limitations]
    card = collect(paths, model_cid)
    card = {"format": "ledgerml-model-card/v1", "intended_use": use, "limitations": lims, **card}
    markdown = render_markdown(card)
    from ledgerml.storage import open_store

    store = open_store(paths)
    card_cid = store.add_bytes(canonical_json(card)).cid
    md_cid = store.add_bytes(markdown.encode()).cid
    body = {
        "model_cid": model_cid,
        "card_cid": card_cid,
        "markdown_cid": md_cid,
        "intended_use": use,
    }
    validate_body("model.documented", body)
    index = -1
    if record:
        with open_ledger(paths) as ledger:
            index = ledger.append("model.documented", body)
    return ModelCard(model_cid, card_cid, md_cid, index, card, markdown)


__all__ = ["ModelCard", "build_model_card", "collect", "render_markdown"]
