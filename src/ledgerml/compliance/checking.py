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
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import orjson

from ledgerml.compliance.packs import Pack, PackRule, load_pack
from ledgerml.config import ProjectPaths, load_config
from ledgerml.errors import InputError, VerificationError
from ledgerml.ledger.events import validate_body
from ledgerml.ledger.log import type_suffix
from ledgerml.ledger.project import AnyLedger, open_ledger

#: A protected column with more distinct values than this is not a set of groups (e.g. raw age).
MAX_GROUPS = 20
#: Frameworks whose models give per-decision reason codes when the model cannot be loaded.
EXPLAINABLE_FRAMEWORKS = ("xgboost", "logreg", "logistic", "linear", "lightgbm", "scorecard")


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


# ------------------------------------------------------------------ evidence


@dataclass
class Evidence:
    """What the ledger says about one model (and, for data rules, the scored table)."""

    model_cid: str
    model: dict[str, Any]
    model_index: int
    model_actor: str
    evaluations: list[tuple[int, str, dict[str, Any]]] = field(default_factory=list)
    datasets: dict[str, dict[str, Any]] = field(default_factory=dict)
    runs_started: dict[str, dict[str, Any]] = field(default_factory=dict)
    runs_finished: dict[str, dict[str, Any]] = field(default_factory=dict)
    enrolled: dict[str, Any] | None = None
    documented: dict[str, Any] | None = None
    #: every backtest.recorded (index, body); `_backtest` picks the one that is this model's
    backtests: list[tuple[int, dict[str, Any]]] = field(default_factory=list)
    decisions: int = 0
    declines: int = 0
    declines_without_reasons: int = 0
    # set by check_model
    paths: ProjectPaths | None = None
    table: Any = None  # pandas.DataFrame of the --data set
    data_cid: str | None = None
    protected: tuple[str, ...] = ()
    chain_developer: str | None = None
    chain_validator: str | None = None
    #: the leakage/identifier screen recomputed from the stored training data (`_screen`)
    screen_cache: tuple[dict[str, Any] | None, str] | None = None

    @property
    def latest_evaluation(self) -> dict[str, Any] | None:
        return self.evaluations[-1][2] if self.evaluations else None

    @property
    def features(self) -> list[str]:
        return [f["name"] for f in self.model.get("features", [])]


def _decline_outcomes(pack: Pack) -> frozenset[str]:
    for r in pack.rules:
        if r.check == "reason_codes_for_declines":
            return frozenset(str(o).lower() for o in r.params.get("decline_outcomes", []))
    return frozenset({"decline", "declined", "deny", "denied", "reject", "rejected", "adverse"})


def _min_reasons(pack: Pack) -> int:
    for r in pack.rules:
        if r.check == "reason_codes_for_declines":
            return int(r.params.get("min_reasons", 1))
    return 1


def gather_evidence(ledger: AnyLedger, model_cid: str, pack: Pack | None = None) -> Evidence:
    """One pass over the log: the model's entries, every data set and run.

    A model without a `model.registered` entry is bad input (nothing to check)."""
    declines = _decline_outcomes(pack) if pack else frozenset({"decline"})
    min_reasons = _min_reasons(pack) if pack else 1
    needle = model_cid.encode()
    ev: Evidence | None = None
    pending: list[tuple[int, dict[str, Any]]] = []
    wanted = tuple(
        type_suffix(t)
        for t in ("dataset.registered", "run.started", "run.finished", "backtest.recorded")
    )
    for index, raw in ledger.entries():
        if needle not in raw and not raw.endswith(wanted):
            continue
        obj = orjson.loads(raw)
        t, body = obj.get("type"), obj.get("body", {})
        if t in ("dataset.registered", "run.started", "run.finished", "backtest.recorded"):
            pending.append((index, obj))
            continue
        if t == "model.registered" and body.get("cid") == model_cid and ev is None:
            ev = Evidence(model_cid, body, index, obj.get("actor", ""))
            continue
        if body.get("model_cid") != model_cid:
            continue
        pending.append((index, obj))
    if ev is None:
        raise InputError(f"no model.registered entry for {model_cid} in the ledger", field="model")
    # The first entry for a data set or run is the evidence: anyone can append another
    # `run.started` with the same run_id (`ledgerml log append`), and a later one must not
    # replace the leakage screen or the recipe that training recorded.
    for index, obj in pending:
        t, body = obj["type"], obj["body"]
        if t == "dataset.registered":
            ev.datasets.setdefault(body["cid"], {**body, "_index": index})
        elif t == "run.started":
            ev.runs_started.setdefault(body["run_id"], body)
        elif t == "run.finished":
            ev.runs_finished.setdefault(body["run_id"], body)
        elif t == "backtest.recorded":
            ev.backtests.append((index, body))
        elif t == "evaluation.recorded":
            ev.evaluations.append((index, obj.get("actor", ""), body))
        elif t == "model.enrolled" and ev.enrolled is None:
            ev.enrolled = body
        elif t == "model.documented":
            ev.documented = body
        elif t == "decision.recorded":
            ev.decisions += 1
            if str(body.get("outcome", "")).lower() in declines:
                ev.declines += 1
                if len(body.get("reasons", [])) < min_reasons:
                    ev.declines_without_reasons += 1
    return ev


def _load_model(paths: ProjectPaths, cid: str) -> Any | None:
    """The trained model via `ledgerml.mlops.training.load_model`, or None if unavailable."""
    try:
        from ledgerml.mlops.training import load_model
    except ImportError:
        return None
    try:
        return load_model(paths, cid)
    except InputError:
        return None


def _scores(ev: Evidence, rule: PackRule) -> tuple[Any, str]:
    """Probability-of-default scores for the --data table: its score column, else the model."""
    import numpy as np

    table = ev.table
    col = str(rule.params.get("score_column", "score"))
    if col in table.columns:
        return np.asarray(table[col], dtype=float), f"scores from column {col!r}"
    assert ev.paths is not None
    model = _load_model(ev.paths, ev.model_cid)
    if model is None:
        raise InputError(
            f"the data set has no {col!r} column and the model cannot be loaded to score it",
            field="--data",
        )
    features = list(getattr(model, "features", ev.features))
    missing = [f for f in features if f not in table.columns]
    if missing:
        raise InputError(f"the data set lacks model features {missing}", field="--data")
    proba = np.asarray(model.predict_proba(table[features]), dtype=float)
    if proba.ndim == 2:
        proba = proba[:, -1]
    return proba, "scores from the model"


# -------------------------------------------------------------------- checks


@dataclass(frozen=True)
class _Found:
    value: float | None  # None: no evidence (the rule fails, closed)
    detail: str
    shown: float | str | None = None  # what to record when not the number (e.g. "indefinite")
    passed: bool | None = None  # overrides the comparison (e.g. indefinite retention)


def _bool(ok: bool, detail: str) -> _Found:
    return _Found(1.0 if ok else 0.0, detail)


def _screen(ev: Evidence) -> tuple[dict[str, Any] | None, str]:
    """(screen, where it came from): the leakage and identifier screen recomputed from the
    stored training data over the recorded training window, or (None, why not).

    Why recompute: `run.started` is an ordinary entry — a run recorded by hand (`ledgerml
    log append`, or a forged first entry) could declare an empty screen. The data set is
    content-addressed and the window is the recorded split, so anyone re-running this gets
    the same answer; a recorded screen that disagrees is reported. Fails closed when the
    data or the split cannot be read."""
    if ev.screen_cache is not None:
        return ev.screen_cache
    ev.screen_cache = _recompute_screen(ev)
    return ev.screen_cache


def _recompute_screen(ev: Evidence) -> tuple[dict[str, Any] | None, str]:
    split = _run_params(ev).get("split")
    cids = ev.model.get("dataset_cids") or []
    target, feats = ev.model.get("target"), ev.features
    if ev.paths is None:
        return None, "no project to read the training data from"
    if not isinstance(split, dict) or not cids or not isinstance(target, str) or not feats:
        return None, "the training run records no split, data set, target or features"
    from ledgerml.errors import LedgerMLError
    from ledgerml.mlops.leakage import screen_features
    from ledgerml.mlops.training import load_table, prepare

    time_column = split.get("time_column")
    try:
        table = load_table(ev.paths, cids[0])
        keep = {*feats, target, *([time_column] if time_column else [])}
        missing = sorted(keep - set(table.column_names))
        if missing:
            return None, f"the training data set lacks the model's column(s) {missing}"
        drop = [c for c in table.column_names if c not in keep]
        fraction = float(split.get("train_fraction", 0.8))
        prep = prepare(table, target, time_column, fraction, drop=drop)
    except (LedgerMLError, ValueError, TypeError) as exc:
        return None, f"cannot rebuild the training window from {cids[0]}: {exc}"
    names = [n for n, _ in prep.features]
    if sorted(names) != sorted(feats):
        return None, "the model's features are not columns of its training data set"
    order = [names.index(f) for f in feats]  # the model's own feature order
    cut = prep.split.train_rows
    screen = screen_features(prep.x[:cut, order], prep.y[:cut], list(feats)).to_json()
    recorded = _run_params(ev).get("screen")
    where = f"recomputed on the first {cut:,} rows of {cids[0][:16]}…"

    def found(doc: Any) -> tuple[list[str], list[str]]:
        doc = doc if isinstance(doc, dict) else {}
        leaky = sorted(str(f.get("feature")) for f in doc.get("leaky", []) if isinstance(f, dict))
        return leaky, sorted(str(n) for n in doc.get("id_like", []))

    if recorded is not None and found(recorded) != found(screen):
        where += " (the screen recorded with the run disagrees; this one is used)"
    return screen, where


def _no_pii_features(ev: Evidence, rule: PackRule) -> _Found:
    feats = ev.features
    if not feats:
        return _Found(None, "model.registered lists no features: cannot show none is PII")
    cids = ev.model.get("dataset_cids", [])
    unknown = [c for c in cids if c not in ev.datasets]
    if not cids or unknown:
        return _Found(None, f"training data set(s) not registered: {unknown or 'none named'}")
    pii: set[str] = set()
    for c in cids:
        ds = ev.datasets[c]
        pii |= set(ds.get("pii_columns", []))
        if ds.get("subject_column"):
            pii.add(ds["subject_column"])
    bad = sorted(set(feats) & pii)
    if bad:
        return _bool(False, f"PII/subject columns among features: {', '.join(bad)}")
    from ledgerml.mlops.leakage import id_like_by_name

    by_name = set(id_like_by_name(feats))
    # by value needs the data: recomputed, never taken from the run's own word
    screen, where = _screen(ev)
    if screen is None and not by_name:
        return _Found(None, f"cannot screen the features for identifiers: {where}")
    id_like = sorted(by_name | (set((screen or {}).get("id_like", [])) & set(feats)))
    if id_like:
        return _bool(
            False,
            f"identifier-like features (customer/terminal/account ids; personal data or a "
            f"proxy for it, with or without --pii): {', '.join(id_like)}",
        )
    return _bool(True, f"{len(feats)} features, none of the PII/subject columns {sorted(pii)}")


def _lineage_recorded(ev: Evidence, rule: PackRule) -> _Found:
    cids = ev.model.get("dataset_cids", [])
    if not cids:
        return _bool(False, "model.registered names no training data set")
    missing = [c for c in cids if c not in ev.datasets]
    if missing:
        return _bool(False, f"data set(s) not in the ledger: {', '.join(missing)}")
    run_id = ev.model.get("run_id")
    if not run_id:
        return _bool(False, "model.registered names no training run")
    started = ev.runs_started.get(run_id)
    if started is None:
        return _bool(False, f"run {run_id} has no run.started entry")
    not_in_run = [c for c in cids if c not in started.get("dataset_cids", [])]
    if not_in_run:
        return _bool(False, f"run {run_id} does not list data set(s) {not_in_run}")
    finished = ev.runs_finished.get(run_id)
    if finished is None or finished.get("model_cid") != ev.model_cid:
        return _bool(False, f"run {run_id} has no run.finished entry naming this model")
    return _bool(True, f"run {run_id} -> {len(cids)} registered data set(s)")


def _explanations_available(ev: Evidence, rule: PackRule) -> _Found:
    assert ev.paths is not None
    model = _load_model(ev.paths, ev.model_cid)
    if model is not None:
        from ledgerml.mlops.models import explanation_of

        ok = callable(getattr(model, "explain", None))
        how = f"; method: {explanation_of(model)}" if ok else ""
        return _bool(ok, f"loaded model {'has' if ok else 'lacks'} explain(rows, top){how}")
    fw = str(ev.model.get("framework", "")).lower()
    ok = any(k in fw for k in EXPLAINABLE_FRAMEWORKS)
    return _bool(ok, f"framework {fw!r} {'gives' if ok else 'gives no known'} reason codes")


def _four_fifths(ev: Evidence, rule: PackRule) -> _Found:
    import numpy as np
    from fairlearn.metrics import MetricFrame, demographic_parity_ratio, selection_rate

    scores, source = _scores(ev, rule)
    threshold = float(rule.params.get("decision_threshold", 0.5))
    min_n = int(rule.params.get("min_group_size", 10))
    approved = (scores < threshold).astype(int)
    worst: float | None = None
    parts: list[str] = []
    for col in ev.protected:
        groups = ev.table[col].astype(str).to_numpy()
        counts = {g: int((groups == g).sum()) for g in np.unique(groups)}
        keep = np.isin(groups, [g for g, n in counts.items() if n >= min_n])
        if len({g for g, n in counts.items() if n >= min_n}) < 2:
            parts.append(f"{col}: fewer than two groups with ≥ {min_n} rows")
            return _Found(None, "; ".join(parts))
        rates = MetricFrame(
            metrics=selection_rate,
            y_true=approved[keep],
            y_pred=approved[keep],
            sensitive_features=groups[keep],
        ).by_group
        ratio = float(
            demographic_parity_ratio(
                approved[keep], approved[keep], sensitive_features=groups[keep]
            )
        )
        shown = ", ".join(f"{g} {float(r):.3f} (n={counts[str(g)]})" for g, r in rates.items())
        small = [g for g, n in counts.items() if n < min_n]
        parts.append(
            f"{col}: approval rates {shown}; ratio {ratio:.3f}"
            + (f"; too small to compare: {small}" if small else "")
        )
        worst = ratio if worst is None else min(worst, ratio)
    detail = (
        f"{'; '.join(parts)} (fairlearn demographic_parity_ratio, {source}, "
        f"approve if score < {threshold:g})"
    )
    return _Found(None if worst is None else round(worst, 6), detail)


def _reason_codes_for_declines(ev: Evidence, rule: PackRule) -> _Found:
    if ev.decisions:
        ok = ev.declines_without_reasons == 0
        return _bool(
            ok,
            f"{ev.declines} declines among {ev.decisions} recorded decisions, "
            f"{ev.declines_without_reasons} without reasons",
        )
    if ev.table is None or ev.paths is None:
        return _Found(None, "no decisions recorded and no --data to ask the model for reasons")
    model = _load_model(ev.paths, ev.model_cid)
    if model is None or not callable(getattr(model, "explain", None)):
        return _Found(None, "no decisions recorded and the model cannot explain declines")
    scores, _ = _scores(ev, rule)
    threshold = float(rule.params.get("decision_threshold", 0.5))
    declined = ev.table[scores >= threshold].head(200)
    if declined.empty:
        return _bool(True, "the model declines no row of --data")
    features = list(getattr(model, "features", ev.features))
    reasons = list(model.explain(declined[features], top=3))
    min_n = int(rule.params.get("min_reasons", 1))
    lacking = sum(1 for r in reasons if len(r) < min_n) + max(0, len(declined) - len(reasons))
    return _bool(
        lacking == 0,
        f"model explained {len(declined)} declines on --data, {lacking} without reasons",
    )


def _log_retention_days(ev: Evidence, rule: PackRule) -> _Found:
    assert ev.paths is not None
    section = load_config(ev.paths).get("retention", {})
    if not isinstance(section, dict):
        raise InputError("must be a table", field="retention")
    days = section.get("log_days")
    if days is None:
        return _Found(
            None,
            "no [retention] log_days in config.toml: default policy, the append-only "
            "ledger deletes no entry (indefinite)",
            shown="indefinite",
            passed=True,
        )
    if isinstance(days, bool) or not isinstance(days, int) or days < 0:
        raise InputError("must be a whole number of days ≥ 0", field="retention.log_days")
    return _Found(float(days), f"[retention] log_days = {days} in config.toml")


def _validator_independent(ev: Evidence, rule: PackRule) -> _Found:
    if ev.chain_developer and ev.chain_validator:
        dev, val, where = ev.chain_developer, ev.chain_validator, "on-chain accounts"
    else:
        if not ev.evaluations:
            return _Found(None, "no evaluation.recorded entry: no validation to judge")
        dev, val, where = ev.model_actor, ev.evaluations[-1][1], "ledger actors"
    ok = bool(dev) and bool(val) and dev.lower() != val.lower()
    return _bool(ok, f"developer {dev} vs validator {val} ({where})")


def _intended_use_documented(ev: Evidence, rule: PackRule) -> _Found:
    doc = ev.documented
    if doc is None:
        return _bool(False, "no model.documented entry (run `ledgerml card`)")
    assert ev.paths is not None
    from ledgerml.storage import open_store

    store = open_store(ev.paths)
    if not store.has(doc["card_cid"]):
        return _bool(False, f"model card {doc['card_cid']} is not in the store")
    card = orjson.loads(b"".join(store.cat(doc["card_cid"])))
    use = str(card.get("intended_use", "")).strip()
    return _bool(
        bool(use), f"model card {doc['card_cid']}: intended use {'documented' if use else 'empty'}"
    )


def _evaluation_with_baselines(ev: Evidence, rule: PackRule) -> _Found:
    e = ev.latest_evaluation
    if e is None:
        return _bool(False, "no evaluation.recorded entry for the model")
    names = sorted(e.get("baselines", {}))
    return _bool(bool(names), f"latest evaluation baselines: {names or 'none'}")


def _run_params(ev: Evidence) -> dict[str, Any]:
    run = ev.runs_started.get(ev.model.get("run_id") or "", {})
    params = run.get("params")
    return params if isinstance(params, dict) else {}


def _backtest(ev: Evidence) -> tuple[dict[str, Any] | None, str]:
    """The latest backtest of this model: recorded for its CID, or for its training recipe."""
    recipe = _run_params(ev).get("recipe")
    found: tuple[int, dict[str, Any]] | None = None
    for index, body in ev.backtests:
        if body.get("model_cid") == ev.model_cid or (recipe and body.get("recipe") == recipe):
            found = (index, body)
    if found is None:
        return None, (
            "no backtest.recorded for this model or its training recipe: run "
            f"`ledgerml backtest --model {ev.model_cid}`"
        )
    index, body = found
    return body, f"backtest at ledger index {index}, {len(body.get('folds', []))} folds"


def _backtest_worst_fp_ratio(ev: Evidence, rule: PackRule) -> _Found:
    bt, where = _backtest(ev)
    if bt is None:
        return _Found(None, where)
    base = str(rule.params.get("baseline", "logreg"))
    key = f"fp_ratio_vs_{base}"
    ratios = [(f.get("fold"), (f.get("metrics") or {}).get(key)) for f in bt.get("folds", [])]
    if not ratios:
        return _Found(None, f"{where}: no folds")
    undefined = [k for k, r in ratios if r is None]
    if undefined:
        return _Found(
            None,
            f"{where}: FP ratio vs {base} undefined on fold(s) {undefined} (the baseline raises "
            "no false positive at 80% recall: 0/0 or x/0 is never a pass)",
        )
    defined = [(k, float(r)) for k, r in ratios if r is not None]
    worst_fold, worst = max(defined, key=lambda kr: kr[1])
    shown = ", ".join(f"{r:.2f}" for _, r in defined)
    return _Found(
        round(worst, 6),
        f"{where}: per-fold FP ratio vs {base} {shown}; worst fold {worst_fold}",
    )


def _backtest_auprc_floor(ev: Evidence, rule: PackRule) -> _Found:
    bt, where = _backtest(ev)
    if bt is None:
        return _Found(None, where)
    values = [(f.get("metrics") or {}).get("auprc") for f in bt.get("folds", [])]
    if not values or any(v is None for v in values):
        return _Found(None, f"{where}: AUPRC missing on a fold")
    import statistics

    auprcs = [float(v) for v in values if v is not None]
    median = statistics.median(auprcs)
    if median <= 0:
        return _Found(None, f"{where}: median AUPRC is 0 (undefined ratio)")
    worst = min(auprcs)
    return _Found(
        round(worst / median, 6),
        f"{where}: worst-fold AUPRC {worst:.3f} / median {median:.3f} (spread "
        f"{max(auprcs) - worst:.3f})",
    )


def _no_leaky_feature(ev: Evidence, rule: PackRule) -> _Found:
    screen, where = _screen(ev)
    if screen is None:
        return _Found(None, f"cannot run the leakage screen: {where}")
    leaky = [f for f in screen.get("leaky", []) if f.get("feature") in ev.features]
    best = screen.get("best_single_feature") or {}
    if leaky:
        named = ", ".join(f"{f['feature']} (AUPRC {float(f['auprc']):.3f} alone)" for f in leaky)
        return _bool(False, f"feature(s) that alone nearly separate the label: {named}; {where}")
    return _bool(
        True,
        f"no feature alone reaches AUPRC {screen.get('leak_auprc')} on the training window"
        + (f" (best: {best.get('feature')} {float(best.get('auprc', 0)):.3f})" if best else "")
        + f"; {where}",
    )


_CHECK_FUNCS = {
    "no_pii_features": _no_pii_features,
    "lineage_recorded": _lineage_recorded,
    "explanations_available": _explanations_available,
    "four_fifths": _four_fifths,
    "reason_codes_for_declines": _reason_codes_for_declines,
    "log_retention_days": _log_retention_days,
    "validator_independent": _validator_independent,
    "intended_use_documented": _intended_use_documented,
    "evaluation_with_baselines": _evaluation_with_baselines,
    "backtest_worst_fp_ratio": _backtest_worst_fp_ratio,
    "backtest_auprc_floor": _backtest_auprc_floor,
    "no_leaky_feature": _no_leaky_feature,
}


def _metric_value(ev: Evidence, rule: PackRule) -> _Found:
    e = ev.latest_evaluation
    if e is None:
        return _Found(None, "no evaluation.recorded entry for the model")
    value = e.get("metrics", {}).get(rule.metric)
    if value is None and rule.metric.startswith("fp_ratio_vs_"):
        base = rule.metric.removeprefix("fp_ratio_vs_")
        fp = e.get("baselines", {}).get(base, {}).get("fp_at_80_recall")
        if fp == 0:
            return _Found(
                None,
                f"{rule.metric} undefined: the {base} baseline raises no false positive at 80% "
                "recall (0/0 or x/0 is never a pass; a feature may leak the label)",
            )
    if value is None:
        return _Found(None, f"metric {rule.metric!r} missing from the latest evaluation")
    split = f" (split {e['split']})" if e.get("split") else ""
    return _Found(float(value), f"latest evaluation.recorded{split}")


def evaluate_rule(ev: Evidence, rule: PackRule) -> RuleOutcome:
    """One rule against the evidence; missing evidence fails the rule (fail closed)."""
    if rule.kind == "metric":
        found = _metric_value(ev, rule)
    else:
        assert rule.check is not None  # load_pack refuses a check rule without one
        found = _CHECK_FUNCS[rule.check](ev, rule)
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
    if st is not None and st.status == "retrain_required":
        return st, "model is marked for retraining on chain: results recorded off-chain only"
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
