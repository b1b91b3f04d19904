"""`monitor`: a scoring window's drift, the contract's verdict, and the retrain loop.

Why: a fraud model trained on last quarter's transactions degrades silently when the
population moves. `monitor` measures how far a scoring window has moved from the model's
own training window (`ledgerml.mlops.monitor.measure_drift`), records `drift.detected`
with the PSI of every feature, and reports the largest PSI to the `ModelRegistry`, whose
policy decides (`RetrainRequired`) — the threshold lives on chain, not in this code. With
`retrain=True` a model the contract retired is retrained — by default on an expanding
window, its own training data followed by the new window (registered as one data set, so
the lineage stays on the ledger), or with `expanding=False` on the window alone — with
the original run's target, model type,
parameters and seed, evaluated, and sent through the same gate as any model
(`check_model` under the policy pack).

Why this module sits at the top layer, beside the demo: the loop joins `mlops` (drift,
training, evaluation, governance) with `compliance` (the pack, the policy enrolment, the
gate), and `compliance` already reads `mlops`; inside either package it would close an
import cycle.

Without a deployed chain, drift is recorded in the ledger only (threshold from the pack);
there is no contract verdict, so nothing is retrained. Bad input (unknown pack, unknown
model, unknown window, a window without the model's features) raises `InputError` before
anything is recorded.

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
from ledgerml.mlops.monitor import measure_drift
from ledgerml.mlops.training import XGB_FIXED, ModelType, Progress

if TYPE_CHECKING:
    from ledgerml.compliance.checking import CheckResult

#: Folds of the backtest a retrained model gets before the gate (each 1/10 of the window).
RETRAIN_BACKTEST_FOLDS = 3
#: Run-record keys that describe the run, not the estimator: not passed back to training.
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
    expanding: bool = True,
    policy: str = "fraud-model",
    progress: Progress | None = None,
) -> MonitorResult:
    """PSI per model feature, training window vs `window`; record it and ask the contract.

    See the module docstring. Retraining happens only when the contract has marked the
    model `RetrainRequired` and `retrain` is true; with `expanding` (the default) on the
    model's training data followed by `window`, registered as one data set, otherwise on
    `window` alone.
    """

    from ledgerml.compliance.packs import load_pack
    from ledgerml.mlops._chain import has_deployment

    say = progress or (lambda *_: None)
    paths.require_initialised()
    pack = load_pack(policy)  # unknown pack -> InputError before anything is read
    drift = measure_drift(paths, model_cid, window, retrain=retrain, progress=progress)
    info, win, psi, max_psi = drift.info, drift.window, drift.psi, drift.max_psi
    extension = None
    if retrain and expanding:  # checked (and built) before anything is recorded
        from ledgerml.mlops.datasets import plan_extension
        from ledgerml.mlops.training import resolve_dataset

        history = resolve_dataset(paths, info.dataset_cids[0], field="MODEL")
        extension = plan_extension(paths, history, win, time_column=drift.time_column)

    say("recording drift", 2, 3)
    if has_deployment(paths):
        from ledgerml.compliance.checking import ensure_policy
        from ledgerml.mlops.governance import GovernanceService

        entries: list[tuple[int, str]] = []
        note: str | None = None
        with GovernanceService.open(paths) as gov:
            try:
                gov.status(model_cid)
            except InputError:
                # Not yet on chain: enrol it under the pack's policy so the contract can judge.
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
        max_feature=drift.max_feature,
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
    # measure_drift(retrain=True) refused any other type: LedgerML has only these recipes
    model: ModelType = "xgboost" if info.model_type == "xgboost" else "logreg"
    data = win
    if extension is not None:
        from ledgerml.mlops.datasets import combine_datasets

        # an expanding window: what the model knew plus what has arrived since, in time
        # order, so a retrain does not forget the history because the newest month drifted
        data = combine_datasets(paths, extension)
    trained = train_model(
        paths,
        data.cid,
        drift.target,
        model=model,
        params=_training_params(info.run_params),
        seed=info.seed or 0,
        time_column=drift.time_column,
        train_fraction=drift.train_fraction,
        drop=list(drift.drop),
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


__all__ = ["RETRAIN_BACKTEST_FOLDS", "MonitorResult", "monitor"]
