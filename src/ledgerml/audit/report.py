"""The audit report: one self-contained HTML file (plots inlined as data: URIs).

    with AuditView.open(paths) as view:
        data = collect_report(view)             # ReportData: facts from the ledger and the CAS
    Path("audit.html").write_text(render_report(data))
    write_report(paths, Path("audit.html"))     # the same in one call

Every number comes from the ledger (evaluation.recorded, compliance.checked, drift.detected,
approvals, anchors) or from the CAS (the PR curves stored at evaluation time); nothing is
recomputed here, so the report shows what was recorded and proved. Sections: inventory
(SR 26-2 / OCC 2026-13 style; these superseded SR 11-7), lineage graph, metrics (PR curve,
false positives at fixed recall against the baselines), fairness by group, drift over time,
compliance per rule with its regulation, approvals, anchoring, retention, verification.
"""

from __future__ import annotations

import base64
import io
import re
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ledgerml.audit._report_template import TEMPLATE
from ledgerml.audit.retention import RetentionStatus, retention_status
from ledgerml.audit.trace import Trace, trace_model
from ledgerml.audit.view import AuditView, SignedCheckpoint
from ledgerml.config import ProjectPaths
from ledgerml.errors import LedgerMLError

DPI = 80
GROUP_RE = re.compile(r"([^\s,:;]+) ([0-9.]+) \(n=(\d+)\)")


@dataclass(frozen=True)
class ModelFacts:
    """What the ledger says about one model, with the lineage that proves it."""

    cid: str
    name: str
    framework: str
    trace: Trace = field(hash=False)
    aliases: tuple[str, ...]
    intended_use: str | None
    evaluation: dict[str, Any] | None = field(hash=False)
    compliance: tuple[dict[str, Any], ...] = field(hash=False)
    approvals: tuple[dict[str, Any], ...] = field(hash=False)
    drift: tuple[dict[str, Any], ...] = field(hash=False)
    datasets: tuple[dict[str, Any], ...] = field(hash=False)
    run_id: str | None
    decisions: int | None

    @property
    def status(self) -> str:
        if self.aliases:
            return "in use: " + ", ".join(self.aliases)
        if self.compliance and not self.compliance[-1]["body"].get("passed"):
            return "refused by the compliance gate"
        return "registered, not promoted"


@dataclass(frozen=True)
class ReportData:
    origin: str
    generated: str
    checkpoint: SignedCheckpoint
    verify: dict[str, Any] = field(hash=False)
    anchors: tuple[dict[str, Any], ...] = field(hash=False)
    anchors_on_chain: dict[str, Any] = field(hash=False)
    models: tuple[ModelFacts, ...]
    retention: RetentionStatus
    plots: dict[str, str] = field(hash=False)  # name -> data: URI
    type_counts: dict[str, int] = field(hash=False)
    seconds: float


def _png(fig: Any) -> str:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, bbox_inches="tight", metadata={"Software": None})
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def _lineage_plot(models: tuple[ModelFacts, ...]) -> str:
    """Data sets -> runs -> models -> checks/approvals -> aliases, drawn with matplotlib."""
    plt = _plt()
    cols: list[list[str]] = [[], [], [], [], []]
    edges: list[tuple[str, str]] = []

    def node(col: int, label: str) -> str:
        if label not in cols[col]:
            cols[col].append(label)
        return label

    for m in models:
        mn = node(2, f"model {m.name}\n{m.cid[:12]}…")
        if m.run_id:
            rn = node(1, f"run\n{m.run_id[-20:]}")
            edges.append((rn, mn))
            for d in m.datasets:
                edges.append(
                    (node(0, f"data {d['body'].get('name')}\n{d['body']['cid'][:12]}…"), rn)
                )
        checks = f"{len(m.compliance)} check(s), {len(m.approvals)} approval(s)"
        passed = bool(m.compliance) and bool(m.compliance[-1]["body"].get("passed"))
        verdict = "passed" if passed else "not passed"
        cn = node(3, f"{checks}\n{verdict}\n[{m.cid[-6:]}]")
        edges.append((mn, cn))
        for a in m.aliases:
            edges.append(
                (
                    cn,
                    node(
                        4, f"alias {a}\n{m.decisions if m.decisions is not None else '?'} decisions"
                    ),
                )
            )
    rows = max(len(c) for c in cols) or 1
    fig, ax = plt.subplots(figsize=(11, 1.2 + 1.1 * rows))
    pos: dict[str, tuple[float, float]] = {}
    for x, col in enumerate(cols):
        for y, label in enumerate(col):
            pos[label] = (x * 2.4, -(y + (rows - len(col)) / 2) * 1.2)
    for a, b in edges:
        (x0, y0), (x1, y1) = pos[a], pos[b]
        ax.annotate("", xy=(x1 - 0.85, y1), xytext=(x0 + 0.85, y0),
                    arrowprops={"arrowstyle": "->", "color": "#555"})  # fmt: skip
    colours = ["#dbeafe", "#e0e7ff", "#fde68a", "#dcfce7", "#fbcfe8"]
    for x, col in enumerate(cols):
        for label in col:
            px, py = pos[label]
            ax.text(px, py, label, ha="center", va="center", fontsize=8,
                    bbox={"boxstyle": "round,pad=0.4", "fc": colours[x], "ec": "#666"})  # fmt: skip
    for x, title in enumerate(
        ["data sets", "training runs", "models", "checks & approvals", "in use"]
    ):
        ax.text(x * 2.4, 0.9, title, ha="center", fontsize=9, weight="bold")
    ax.set_xlim(-1.2, 4 * 2.4 + 1.2)
    ax.set_ylim(-rows * 1.2 + 0.4, 1.3)
    ax.axis("off")
    return _png(fig)


def _fp_plot(m: ModelFacts) -> str | None:
    ev = m.evaluation
    if not ev or "fp_at_80_recall" not in ev["body"].get("metrics", {}):
        return None
    plt = _plt()
    names = [m.name, *ev["body"].get("baselines", {})]
    values = [ev["body"]["metrics"]["fp_at_80_recall"]] + [
        b.get("fp_at_80_recall", 0) for b in ev["body"].get("baselines", {}).values()
    ]
    fig, ax = plt.subplots(figsize=(6, 3))
    bars = ax.bar(names, values, color=["#2563eb"] + ["#9ca3af"] * (len(names) - 1))
    ax.bar_label(bars, fmt="%.0f")
    ax.set_ylabel("false positives at 80% recall")
    ax.set_title("False positives at fixed recall: model vs baselines (held-out window)")
    if max(values) > 50 * max(1, min(values)):
        ax.set_yscale("symlog")
    return _png(fig)


def _fairness_plot(models: tuple[ModelFacts, ...]) -> str | None:
    groups: list[tuple[str, float]] = []
    for m in models:
        for c in m.compliance:
            for r in c["body"].get("results", []):
                if r.get("metric") == "di_ratio" and r.get("detail"):
                    groups += [
                        (f"{m.name[:14]}:{g}", float(v))
                        for g, v, _ in GROUP_RE.findall(r["detail"])
                    ]
    if not groups:
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 0.4 * len(groups) + 1.2))
    ax.barh([g for g, _ in groups], [v for _, v in groups], color="#7c3aed")
    ax.set_xlabel("approval rate by group (as recorded by the four-fifths screen)")
    return _png(fig)


def _drift_plot(models: tuple[ModelFacts, ...]) -> str | None:
    series = [(m, m.drift) for m in models if m.drift]
    if not series:
        return None
    plt = _plt()
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 3.4))
    limit = None
    for m, drift in series:
        times = [datetime.fromisoformat(d["time"].replace("Z", "+00:00")) for d in drift]
        ax1.plot(times, [d["body"]["max_psi"] for d in drift], marker="o", label=m.name[:30])
        limit = drift[-1]["body"].get("threshold", limit)
    if limit is not None:
        ax1.axhline(limit, color="#b91c1c", linestyle="--", linewidth=1, label=f"limit {limit}")
    ax1.set_ylabel("largest PSI")
    ax1.set_title("Drift over time")
    ax1.legend(fontsize=7)
    ax1.tick_params(axis="x", labelrotation=20, labelsize=7)
    last = series[-1][1][-1]["body"]["psi"]
    top = sorted(last.items(), key=lambda kv: -kv[1])[:10]
    ax2.barh([k for k, _ in top][::-1], [v for _, v in top][::-1], color="#f59e0b")
    ax2.set_title("PSI by feature, latest window (top 10)")
    return _png(fig)


def _entry_json(e: Any) -> dict[str, Any]:
    return {
        "index": e.index,
        "time": e.time,
        "actor": e.actor,
        "body": e.body,
        "verified": e.verified,
    }


def _gated_aliases(view: AuditView) -> dict[str, str]:
    """alias -> model CID as the ModelRegistry contract holds them ({} without a gate).

    `model.promoted` entries only name the aliases to ask about: they can be appended by
    anyone with the log key, so they never decide which model is in use."""
    from ledgerml.mlops import has_deployment, read_gate

    if not has_deployment(view.paths):
        return {}
    names = {str(view.prove(i).body.get("alias", "")) for i in view.index.by_type("model.promoted")}
    got = read_gate(view.paths, sorted(n for n in names if n))
    return {a: g.model_cid for a, g in got.aliases.items()}


def _model_facts(view: AuditView, cid: str, gated: dict[str, str]) -> ModelFacts:
    t = trace_model(view, cid)
    by: dict[str, list[dict[str, Any]]] = {}
    for s in t.steps:
        by.setdefault(s.step, []).append(_entry_json(s.entry))
    reg = by["model"][0]["body"]
    # an alias counts as current only if the gate (the contract) points it at this model
    current = sorted(a for a, c in gated.items() if c == cid)
    card = by.get("model card", [])
    evals = by.get("evaluation", [])
    decisions = None
    total = len(view.index.by_type("decision.recorded")) if current else 0
    if current and total <= 200_000:
        import orjson

        decisions = sum(
            1
            for i in view.index.by_type("decision.recorded")
            if orjson.loads(view.index.entry(i))["body"].get("model_cid") == cid
        )
    return ModelFacts(
        cid,
        str(reg.get("name", cid)),
        str(reg.get("framework", "")),
        t,
        tuple(current),
        card[-1]["body"].get("intended_use") if card else None,
        evals[-1] if evals else None,
        tuple(by.get("compliance check", [])),
        tuple(by.get("approval", [])),
        tuple(by.get("drift", [])),
        tuple(by.get("data set", [])),
        reg.get("run_id"),
        decisions if current else 0,
    )


def _stored_png(view: AuditView, cid: str | None) -> str | None:
    """A plot recorded at evaluation time (matplotlib PNG in the CAS), CID re-checked."""
    if not cid:
        return None
    try:
        from ledgerml.storage import open_store

        data = open_store(view.paths).read_bytes(cid)
    except LedgerMLError:
        return None
    return "data:image/png;base64," + base64.b64encode(data).decode()


def collect_report(view: AuditView) -> ReportData:
    """Gather the report's facts: models and lineages, anchors, retention, a full verify."""
    started = time.perf_counter()
    view.refresh()
    from ledgerml.mlops.anchoring import anchored, trusted_roots

    on_chain: dict[str, Any] = {}
    try:
        trusted = trusted_roots(view.paths)
        on_chain = {"read": True, "anchors": [asdict(r) for r in anchored(view.paths)]}
    except LedgerMLError as exc:
        trusted, on_chain = [], {"read": False, "error": str(exc)}
    report = view.ledger.verify(view.verifiers, trusted=trusted)
    verify = report.to_json()
    cids = []
    for i in view.index.by_type("model.registered"):
        cid = view.prove(i).body.get("cid")
        if isinstance(cid, str) and cid not in cids:
            cids.append(cid)
    try:
        gated = _gated_aliases(view)
    except LedgerMLError as exc:  # the chain could not be read: no alias is shown in use
        gated, on_chain = {}, {**on_chain, "aliases_error": str(exc)}
    models = tuple(_model_facts(view, c, gated) for c in cids)
    anchors = tuple(_entry_json(view.prove(i)) for i in view.index.by_type("checkpoint.anchored"))
    plots: dict[str, str] = {"lineage": _lineage_plot(models)} if models else {}
    for m in models:
        ev = m.evaluation
        if ev:
            for name in ("pr_curve", "fpr_vs_recall"):
                uri = _stored_png(view, ev["body"].get("plots", {}).get(name))
                if uri:
                    plots[f"{name}:{m.cid}"] = uri
            fp = _fp_plot(m)
            if fp:
                plots[f"fp:{m.cid}"] = fp
    fair = _fairness_plot(models)
    if fair:
        plots["fairness"] = fair
    drift = _drift_plot(models)
    if drift:
        plots["drift"] = drift
    return ReportData(
        view.origin,
        datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC"),
        view.checkpoint,
        verify,
        anchors,
        on_chain,
        models,
        retention_status(view),
        plots,
        {t: n for t, n, _, _ in view.index.type_summary()},
        time.perf_counter() - started,
    )


def render_report(data: ReportData) -> str:
    """The HTML (jinja2, autoescaped); every image is a data: URI, no external resources."""
    import jinja2

    env = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined)
    return env.from_string(TEMPLATE).render(d=data)


def write_report(paths: ProjectPaths, out: Path | None = None) -> tuple[Path, ReportData]:
    """Collect and write the report (default `<project>/reports/audit-report.html`)."""
    out = out or paths.reports / "audit-report.html"
    with AuditView.open(paths) as view:
        data = collect_report(view)
    html = render_report(data)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(html, encoding="utf-8")
    tmp.replace(out)
    return out, data
