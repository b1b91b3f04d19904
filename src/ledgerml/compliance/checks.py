"""The named checks a policy pack may use (`kind = "check"`, `check = "<name>"`).

Each is declared once, by `@check(name, description)`: that registers it for packs
(`compliance.packs` refuses a name not in `CHECKS`) and for `checking.evaluate_rule`
(`run_check`). A check reads `Evidence` (`compliance.evidence`) and the rule's
`[rule.params]`, and says what it found: a number the rule's comparator judges (boolean
checks give 1 or 0), or no value at all, which fails the rule (fail closed).

    @check("no_pii_features", "no model feature is a PII or subject column of its data")
    def _no_pii_features(ev: Evidence, rule: PackRule) -> Found: ...

    CHECKS                       # name -> description, in declaration order
    run_check(ev, rule)          # Found(value, detail, shown, passed)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import orjson

from ledgerml.compliance.evidence import (
    Evidence,
    latest_backtest,
    loaded_model,
    model_scores,
    training_screen,
)
from ledgerml.compliance.rules import PackRule
from ledgerml.errors import InputError

#: Frameworks whose models give per-decision reason codes when the model cannot be loaded.
EXPLAINABLE_FRAMEWORKS = ("xgboost", "logreg", "logistic", "linear", "lightgbm", "scorecard")


@dataclass(frozen=True)
class Found:
    """What a check (or a metric rule) found in the evidence."""

    value: float | None  # None: no evidence (the rule fails, closed)
    detail: str
    shown: float | str | None = None  # what to record when not the number (e.g. "indefinite")
    passed: bool | None = None  # overrides the comparison (e.g. indefinite retention)


def _bool(ok: bool, detail: str) -> Found:
    return Found(1.0 if ok else 0.0, detail)


CheckFunc = Callable[[Evidence, PackRule], Found]

#: Named checks a pack may use, name -> what it shows; filled by `@check` below.
CHECKS: dict[str, str] = {}
_FUNCS: dict[str, CheckFunc] = {}


def check(name: str, description: str) -> Callable[[CheckFunc], CheckFunc]:
    """Register the decorated function as the named check `name` (once)."""

    def register(func: CheckFunc) -> CheckFunc:
        if name in CHECKS:
            raise ValueError(f"check {name!r} is declared twice")
        CHECKS[name] = description
        _FUNCS[name] = func
        return func

    return register


def run_check(ev: Evidence, rule: PackRule) -> Found:
    """What the rule's named check finds in the evidence."""
    assert rule.check is not None  # load_pack refuses a check rule without one
    return _FUNCS[rule.check](ev, rule)


@check("no_pii_features", "no model feature is a PII or subject column of its training data")
def _no_pii_features(ev: Evidence, rule: PackRule) -> Found:
    feats = ev.features
    if not feats:
        return Found(None, "model.registered lists no features: cannot show none is PII")
    cids = ev.model.get("dataset_cids", [])
    unknown = [c for c in cids if c not in ev.datasets]
    if not cids or unknown:
        return Found(None, f"training data set(s) not registered: {unknown or 'none named'}")
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
    screen, where = training_screen(ev)
    if screen is None and not by_name:
        return Found(None, f"cannot screen the features for identifiers: {where}")
    id_like = sorted(by_name | (set((screen or {}).get("id_like", [])) & set(feats)))
    if id_like:
        return _bool(
            False,
            f"identifier-like features (customer/terminal/account ids; personal data or a "
            f"proxy for it, with or without --pii): {', '.join(id_like)}",
        )
    return _bool(True, f"{len(feats)} features, none of the PII/subject columns {sorted(pii)}")


@check("lineage_recorded", "the model's run and every training data set CID are in the ledger")
def _lineage_recorded(ev: Evidence, rule: PackRule) -> Found:
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


@check("explanations_available", "the model type gives per-decision reason codes")
def _explanations_available(ev: Evidence, rule: PackRule) -> Found:
    assert ev.paths is not None
    model = loaded_model(ev.paths, ev.model_cid)
    if model is not None:
        from ledgerml.mlops.models import explanation_of

        ok = callable(getattr(model, "explain", None))
        how = f"; method: {explanation_of(model)}" if ok else ""
        return _bool(ok, f"loaded model {'has' if ok else 'lacks'} explain(rows, top){how}")
    fw = str(ev.model.get("framework", "")).lower()
    ok = any(k in fw for k in EXPLAINABLE_FRAMEWORKS)
    return _bool(ok, f"framework {fw!r} {'gives' if ok else 'gives no known'} reason codes")


@check("four_fifths", "min/max approval (selection) rate across protected groups, by fairlearn")
def _four_fifths(ev: Evidence, rule: PackRule) -> Found:
    import numpy as np
    from fairlearn.metrics import MetricFrame, demographic_parity_ratio, selection_rate

    scores, source = model_scores(ev, rule)
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
            return Found(None, "; ".join(parts))
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
    return Found(None if worst is None else round(worst, 6), detail)


@check("reason_codes_for_declines", "every recorded decline carries principal reasons")
def _reason_codes_for_declines(ev: Evidence, rule: PackRule) -> Found:
    if ev.decisions:
        ok = ev.declines_without_reasons == 0
        return _bool(
            ok,
            f"{ev.declines} declines among {ev.decisions} recorded decisions, "
            f"{ev.declines_without_reasons} without reasons",
        )
    if ev.table is None or ev.paths is None:
        return Found(None, "no decisions recorded and no --data to ask the model for reasons")
    model = loaded_model(ev.paths, ev.model_cid)
    if model is None or not callable(getattr(model, "explain", None)):
        return Found(None, "no decisions recorded and the model cannot explain declines")
    scores, _ = model_scores(ev, rule)
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


@check("log_retention_days", "declared log retention ([retention] log_days in config.toml)")
def _log_retention_days(ev: Evidence, rule: PackRule) -> Found:
    from ledgerml.config import load_config

    assert ev.paths is not None
    section = load_config(ev.paths).get("retention", {})
    if not isinstance(section, dict):
        raise InputError("must be a table", field="retention")
    days = section.get("log_days")
    if days is None:
        return Found(
            None,
            "no [retention] log_days in config.toml: default policy, the append-only "
            "ledger deletes no entry (indefinite)",
            shown="indefinite",
            passed=True,
        )
    if isinstance(days, bool) or not isinstance(days, int) or days < 0:
        raise InputError("must be a whole number of days ≥ 0", field="retention.log_days")
    return Found(float(days), f"[retention] log_days = {days} in config.toml")


@check("validator_independent", "whoever validates differs from the model's developer")
def _validator_independent(ev: Evidence, rule: PackRule) -> Found:
    if ev.chain_developer and ev.chain_validator:
        dev, val, where = ev.chain_developer, ev.chain_validator, "on-chain accounts"
    else:
        if not ev.evaluations:
            return Found(None, "no evaluation.recorded entry: no validation to judge")
        dev, val, where = ev.model_actor, ev.evaluations[-1][1], "ledger actors"
    ok = bool(dev) and bool(val) and dev.lower() != val.lower()
    return _bool(ok, f"developer {dev} vs validator {val} ({where})")


@check("intended_use_documented", "a model card with the intended use is recorded")
def _intended_use_documented(ev: Evidence, rule: PackRule) -> Found:
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


@check("evaluation_with_baselines", "an evaluation with challenger baselines is recorded")
def _evaluation_with_baselines(ev: Evidence, rule: PackRule) -> Found:
    e = ev.latest_evaluation
    if e is None:
        return _bool(False, "no evaluation.recorded entry for the model")
    names = sorted(e.get("baselines", {}))
    return _bool(bool(names), f"latest evaluation baselines: {names or 'none'}")


@check("backtest_worst_fp_ratio", "worst fold's FP-at-80%-recall ratio vs a baseline (backtest)")
def _backtest_worst_fp_ratio(ev: Evidence, rule: PackRule) -> Found:
    bt, where = latest_backtest(ev)
    if bt is None:
        return Found(None, where)
    base = str(rule.params.get("baseline", "logreg"))
    key = f"fp_ratio_vs_{base}"
    ratios = [(f.get("fold"), (f.get("metrics") or {}).get(key)) for f in bt.get("folds", [])]
    if not ratios:
        return Found(None, f"{where}: no folds")
    undefined = [k for k, r in ratios if r is None]
    if undefined:
        return Found(
            None,
            f"{where}: FP ratio vs {base} undefined on fold(s) {undefined} (the baseline raises "
            "no false positive at 80% recall: 0/0 or x/0 is never a pass)",
        )
    defined = [(k, float(r)) for k, r in ratios if r is not None]
    worst_fold, worst = max(defined, key=lambda kr: kr[1])
    shown = ", ".join(f"{r:.2f}" for _, r in defined)
    return Found(
        round(worst, 6),
        f"{where}: per-fold FP ratio vs {base} {shown}; worst fold {worst_fold}",
    )


@check("backtest_auprc_floor", "worst fold's AUPRC / median fold's AUPRC (backtest)")
def _backtest_auprc_floor(ev: Evidence, rule: PackRule) -> Found:
    bt, where = latest_backtest(ev)
    if bt is None:
        return Found(None, where)
    values = [(f.get("metrics") or {}).get("auprc") for f in bt.get("folds", [])]
    if not values or any(v is None for v in values):
        return Found(None, f"{where}: AUPRC missing on a fold")
    import statistics

    auprcs = [float(v) for v in values if v is not None]
    median = statistics.median(auprcs)
    if median <= 0:
        return Found(None, f"{where}: median AUPRC is 0 (undefined ratio)")
    worst = min(auprcs)
    return Found(
        round(worst / median, 6),
        f"{where}: worst-fold AUPRC {worst:.3f} / median {median:.3f} (spread "
        f"{max(auprcs) - worst:.3f})",
    )


@check("no_leaky_feature", "no feature alone nearly separates the label (training window)")
def _no_leaky_feature(ev: Evidence, rule: PackRule) -> Found:
    screen, where = training_screen(ev)
    if screen is None:
        return Found(None, f"cannot run the leakage screen: {where}")
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
