"""Evidence for a compliance check: what the ledger (and the stored data) say about one model.

    ev = gather_evidence(ledger, model_cid, pack)    # one pass over the log
    ev.model, ev.runs_started, ev.evaluations, ev.backtests, ev.declines
    run_params(ev)                                    # the training run's recorded params
    training_screen(ev)                               # leakage/identifier screen, recomputed
    latest_backtest(ev)                               # this model's (or its recipe's) backtest

Why apart from the checks: the checks in `compliance.checks` only judge; everything they
judge is read here, under one rule: the first entry of a data set or run is the evidence
(a later one anyone appends does not replace it), and what can be recomputed from
content-addressed data (the leakage screen) is recomputed, never taken on a run's word.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import orjson

from ledgerml.compliance.rules import Pack, PackRule
from ledgerml.errors import InputError

if TYPE_CHECKING:
    from ledgerml.config import ProjectPaths
    from ledgerml.ledger.project import AnyLedger


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
    #: every backtest.recorded (index, body); `latest_backtest` picks the one that is this model's
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
    #: the leakage/identifier screen recomputed from the stored training data (`training_screen`)
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
    from ledgerml.ledger.log import type_suffix  # lazy: packs imports this module, kept light

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


def loaded_model(paths: ProjectPaths, cid: str) -> Any | None:
    """The trained model via `ledgerml.mlops.training.load_model`, or None if unavailable."""
    try:
        from ledgerml.mlops.training import load_model
    except ImportError:
        return None
    try:
        return load_model(paths, cid)
    except InputError:
        return None


def model_scores(ev: Evidence, rule: PackRule) -> tuple[Any, str]:
    """Probability-of-default scores for the --data table: its score column, else the model."""
    import numpy as np

    table = ev.table
    col = str(rule.params.get("score_column", "score"))
    if col in table.columns:
        return np.asarray(table[col], dtype=float), f"scores from column {col!r}"
    assert ev.paths is not None
    model = loaded_model(ev.paths, ev.model_cid)
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


def training_screen(ev: Evidence) -> tuple[dict[str, Any] | None, str]:
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
    split = run_params(ev).get("split")
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
    recorded = run_params(ev).get("screen")
    where = f"recomputed on the first {cut:,} rows of {cids[0][:16]}…"

    def found(doc: Any) -> tuple[list[str], list[str]]:
        doc = doc if isinstance(doc, dict) else {}
        leaky = sorted(str(f.get("feature")) for f in doc.get("leaky", []) if isinstance(f, dict))
        return leaky, sorted(str(n) for n in doc.get("id_like", []))

    if recorded is not None and found(recorded) != found(screen):
        where += " (the screen recorded with the run disagrees; this one is used)"
    return screen, where


def run_params(ev: Evidence) -> dict[str, Any]:
    """The params of the model's training run, as its first `run.started` recorded them."""
    run = ev.runs_started.get(ev.model.get("run_id") or "", {})
    params = run.get("params")
    return params if isinstance(params, dict) else {}


def latest_backtest(ev: Evidence) -> tuple[dict[str, Any] | None, str]:
    """The latest backtest of this model: recorded for its CID, or for its training recipe."""
    recipe = run_params(ev).get("recipe")
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
