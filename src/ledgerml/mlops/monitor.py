"""Drift monitoring and retraining: PSI per feature, the contract's verdict, the same gate.

Why: a fraud model trained on last quarter's transactions degrades silently when the
population moves. `monitor` measures how far a scoring window has moved from the model's
own training window (the rows before its recorded time split, not the whole data set),
records `drift.detected` with the PSI of every feature, and reports the largest PSI to
the `ModelRegistry`, whose policy decides (`RetrainRequired`) — the threshold lives on
chain, not in this code. With `retrain=True` a model the contract retired is retrained
on the window (a registered data set, so the lineage stays on the ledger) with the
original run's target, model type, parameters and seed, evaluated, and sent through the
same gate as any model (`check_model` under the policy pack).

Without a deployed chain, drift is recorded in the ledger only (threshold from the pack);
there is no contract verdict, so nothing is retrained. Bad input (unknown model, unknown
window, a window without the model's features) raises `InputError` before anything is
recorded.

Usage::

    res = monitor(paths, model_cid, "cards-2026-11", retrain=True)
    res.psi, res.max_psi, res.threshold, res.retrain_required
    res.new_model_cid, res.check.passed
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from ledgerml.config import ProjectPaths
from ledgerml.errors import InputError
from ledgerml.ledger import open_ledger
from ledgerml.ledger.events import validate_body
from ledgerml.mlops.training import (
    XGB_FIXED,
    Progress,
    column_array,
    load_table,
    model_info,
    prepare,
    resolve_dataset,
)

if TYPE_CHECKING:
    import numpy as np

    from ledgerml.compliance.checking import CheckResult

#: Floor for a bin's share, so an empty bin gives a large but finite PSI (ln(0) otherwise).
PSI_EPSILON = 1e-4
#: Run-record keys that describe the run, not the estimator: not passed back to training.
#: Folds of the backtest a retrained model gets before the gate (each 1/10 of the window).
RETRAIN_BACKTEST_FOLDS = 3
_RUN_ONLY_KEYS = frozenset(
    {
        "target",
        "split",
        "drop",
        "scale_pos_weight_rule",
        "requested",
        "recipe",
        "screen",
        *XGB_FIXED,
    }
)


def population_stability(
    expected: np.ndarray | Any, actual: np.ndarray | Any, bins: int = 10
) -> float:
    """Population stability index of `actual` against `expected` (a 1-D numeric sample).

    Bin edges are the quantiles of `expected` (deciles by default; repeated edges of a
    discrete feature merge), so each bin holds about the same share of the reference
    population and the outer bins are open-ended (values beyond the training range
    count). Missing values (NaN) form their own bin: a feature that starts arriving
    empty is drift too. Each share is floored at `PSI_EPSILON` so an empty bin gives a
    large finite term. PSI = Σ (a − e) · ln(a / e); the usual reading is < 0.1 stable,
    0.1–0.25 moderate, > 0.25 significant shift.
    """
    import numpy as np

    if isinstance(bins, bool) or not isinstance(bins, int) or bins < 2:
        raise InputError("must be an integer >= 2", field="bins")
    e = np.asarray(expected, dtype=np.float64).ravel()
    a = np.asarray(actual, dtype=np.float64).ravel()
    if e.size == 0 or a.size == 0:
        raise InputError("both samples need at least one value", field="expected")
    e_ok, a_ok = e[~np.isnan(e)], a[~np.isnan(a)]
    if e_ok.size:
        edges = np.unique(np.quantile(e_ok, np.linspace(0, 1, bins + 1)[1:-1]))
    else:
        edges = np.array([], dtype=np.float64)

    def shares(x: np.ndarray, ok: np.ndarray) -> np.ndarray:
        counts = np.bincount(np.searchsorted(edges, ok, side="right"), minlength=edges.size + 1)
        return np.append(counts, x.size - ok.size) / x.size

    pe = np.maximum(shares(e, e_ok), PSI_EPSILON)
    pa = np.maximum(shares(a, a_ok), PSI_EPSILON)
    return float(np.sum((pa - pe) * np.log(pa / pe)))


@dataclass(frozen=True)
class MonitorResult:
    """What `monitor` measured and recorded, the contract's verdict and any retrained model."""

    model_cid: str
    window_cid: str
    window_name: str
    psi: Mapping[str, float] = field(hash=False)  # per feature, largest first
    max_psi: float
    max_feature: str
    threshold: float
    exceeded: bool
    retrain_required: bool  # the contract marked the model (RetrainRequired); False off-chain
    on_chain: bool
    tx_hash: str | None
    entries: tuple[tuple[int, str], ...]
    note: str | None = None
    new_model_cid: str | None = None
    new_run_id: str | None = None
    evaluation: Mapping[str, float] | None = field(default=None, hash=False)
    check: CheckResult | None = field(default=None, hash=False)

    def to_json(self) -> dict[str, Any]:
        return {
            "model_cid": self.model_cid,
            "window_cid": self.window_cid,
            "window_name": self.window_name,
            "psi": dict(self.psi),
            "max_psi": self.max_psi,
            "max_feature": self.max_feature,
            "threshold": self.threshold,
            "exceeded": self.exceeded,
            "retrain_required": self.retrain_required,
            "on_chain": self.on_chain,
            "tx_hash": self.tx_hash,
            "entries": [{"index": i, "type": t} for i, t in self.entries],
            "note": self.note,
            "retrained": None
            if self.new_model_cid is None
            else {
                "model_cid": self.new_model_cid,
                "run_id": self.new_run_id,
                "metrics": dict(self.evaluation or {}),
                "check": self.check.to_json() if self.check else None,
            },
        }


def _training_params(run_params: Mapping[str, Any]) -> dict[str, Any]:
    """The original run's estimator parameters, as `train_model` accepts them.

    A weighting rule ("sqrt"/"balanced") is passed as the rule, not the number it gave on
    the old window: the same rule on the new window is what "same parameters" means.
    """
    params = {k: v for k, v in run_params.items() if k not in _RUN_ONLY_KEYS}
    rule = str(run_params.get("scale_pos_weight_rule", ""))
    for word in ("sqrt", "balanced"):
        if rule.startswith(word):
            params["scale_pos_weight"] = word
    return params


def monitor(
    paths: ProjectPaths,
    model_cid: str,
    window: str,
    *,
    retrain: bool = False,
    policy: str = "fraud-model",
    progress: Progress | None = None,
) -> MonitorResult:
    """PSI per model feature, training window vs `window`; record it and ask the contract.

    See the module docstring. Retraining happens only when the contract has marked the
    model `RetrainRequired` and `retrain` is true.
    """

    from ledgerml.compliance.packs import load_pack
    from ledgerml.mlops._chain import has_deployment

    say = progress or (lambda *_: None)
    paths.require_initialised()
    pack = load_pack(policy)  # unknown pack -> InputError before anything is read
    if not isinstance(model_cid, str) or not model_cid.strip():
        raise InputError("model CID required", field="MODEL")
    info = model_info(paths, model_cid, field_name="MODEL")
    if not info.dataset_cids or info.target is None or not info.run_params:
        raise InputError(
            "the ledger has no training run (data set, target, split) for this model",
            field="MODEL",
        )
    if retrain and info.model_type not in ("xgboost", "logreg"):
        raise InputError(
            f"LedgerML cannot retrain a {info.model_type} model trained elsewhere (it has no "
            "recipe); monitor without --retrain, retrain it yourself and record it with "
            "Run.log_model",
            field="--retrain",
        )
    names = [n for n, _ in info.features]
    split = info.run_params.get("split") or {}
    time_column = split.get("time_column")
    fraction = float(split.get("train_fraction", 0.8))
    drop = list(info.run_params.get("drop", []))
    win = resolve_dataset(paths, window, field="--window")

    say("loading data", 0, 3)
    table = load_table(paths, win.cid)
    missing = [c for c in names if c not in table.column_names]
    if retrain:
        needed = [info.target, *drop, *([time_column] if time_column else [])]
        missing += [c for c in needed if c not in table.column_names and c not in missing]
    if missing:
        raise InputError(
            f"window {win.name!r} lacks the model's column(s): {', '.join(missing)}",
            field="--window",
        )
    prep = prepare(
        load_table(paths, info.dataset_cids[0]), info.target, time_column, fraction, drop
    )
    if [n for n, _ in prep.features] != names:
        raise InputError("the model's features do not match its training data", field="MODEL")
    train_x = prep.x[: prep.split.train_rows]

    say("population stability", 1, 3)
    # Rounded to the contract's 1e6 fixed point, so result, ledger and chain agree.
    psi = {
        n: round(population_stability(train_x[:, i], column_array(table, n)), 6)
        for i, n in enumerate(names)
    }
    psi = dict(sorted(psi.items(), key=lambda kv: (-kv[1], kv[0])))
    max_feature, max_psi = next(iter(psi.items()))

    say("recording drift", 2, 3)
    if has_deployment(paths):
        from ledgerml.mlops.governance import GovernanceService

        entries: list[tuple[int, str]] = []
        note: str | None = None
        with GovernanceService.open(paths) as gov:
            try:
                gov.status(model_cid)
            except InputError:
                # Not yet on chain: enrol it under the pack's policy so the contract can judge.
                from ledgerml.compliance.checking import ensure_policy

                entries += ensure_policy(gov, pack)
                entries += list(gov.register(model_cid, pack.policy_id).entries)
                note = f"model enrolled on chain under policy {pack.policy_id} to report drift"
            mirrored = gov.report_drift(
                model_cid,
                max_psi,
                per_feature=psi,
                window_cid=win.cid,
            )
            entries += list(mirrored.entries)
            threshold = float(mirrored.body["threshold"])
            marked = gov.status(model_cid).status == "retrain_required"
        tx_hash: str | None = mirrored.tx_hash
        on_chain = True
    else:
        threshold = float(pack.max_drift_psi)
        body: dict[str, Any] = {
            "model_cid": model_cid,
            "window_cid": win.cid,
            "psi": dict(psi),
            "max_psi": max_psi,
            "threshold": threshold,
        }
        validate_body("drift.detected", body)
        with open_ledger(paths) as ledger:
            entries = [(ledger.append("drift.detected", body), "drift.detected")]
        marked, tx_hash, on_chain = False, None, False
        note = (
            "no chain deployed: drift recorded in the ledger only (threshold from pack "
            f"{pack.id}); no contract verdict, so nothing retrained"
        )

    result = MonitorResult(
        model_cid=model_cid,
        window_cid=win.cid,
        window_name=win.name,
        psi=psi,
        max_psi=max_psi,
        max_feature=max_feature,
        threshold=threshold,
        exceeded=max_psi > threshold,
        retrain_required=marked,
        on_chain=on_chain,
        tx_hash=tx_hash,
        entries=tuple(entries),
        note=note,
    )
    if not (marked and retrain):
        say("done", 3, 3)
        return result

    from ledgerml.compliance.checking import check_model
    from ledgerml.mlops.evaluation import evaluate_model
    from ledgerml.mlops.training import train_model

    say("retraining", 2, 3)
    trained = train_model(
        paths,
        win.cid,
        info.target,
        model=info.model_type,  # type: ignore[arg-type]
        params=_training_params(info.run_params),
        seed=info.seed or 0,
        time_column=time_column,
        train_fraction=fraction,
        drop=drop,
        name=info.name,
    )
    evaluation = evaluate_model(paths, trained.model_cid)
    from ledgerml.mlops.backtest import backtest

    try:  # the gate asks for a backtest of the new recipe (FM-BT-*, MR-BACKTEST)
        backtest(paths, model=trained.model_cid, folds=RETRAIN_BACKTEST_FOLDS)
    except InputError as exc:  # e.g. a fold without positives: the gate then says why
        say(f"no backtest of the retrained model ({exc})", 2, 3)
    check = check_model(paths, trained.model_cid, policy)
    say("done", 3, 3)
    return replace(
        result,
        new_model_cid=trained.model_cid,
        new_run_id=trained.run_id,
        evaluation=dict(evaluation.metrics),
        check=check,
    )


__all__ = ["PSI_EPSILON", "MonitorResult", "monitor", "population_stability"]
