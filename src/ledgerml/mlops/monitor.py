"""Drift measurement: PSI per feature of a scoring window against a model's training window.

Why: a fraud model trained on last quarter's transactions degrades silently when the
population moves. `measure_drift` measures how far a scoring window has moved from the
model's own training window (the rows before its recorded time split, not the whole data
set). Recording the drift, asking the contract for its verdict (`RetrainRequired`) and
retraining through the gate combine this package with `compliance` (the policy pack, the
checks): that loop is orchestration, `ledgerml.retrain.monitor`, one layer up.

Bad input (unknown model, unknown window, a window without the model's features) raises
`InputError` before anything is recorded.

Usage::

    drift = measure_drift(paths, model_cid, "cards-2026-11")
    drift.psi, drift.max_feature, drift.max_psi
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ledgerml.config import ProjectPaths
from ledgerml.errors import InputError
from ledgerml.mlops.datasets import DatasetRecord
from ledgerml.mlops.training import (
    ModelInfo,
    Progress,
    column_array,
    load_table,
    model_info,
    prepare,
    resolve_dataset,
)

if TYPE_CHECKING:
    import numpy as np

#: Floor for a bin's share, so an empty bin gives a large but finite PSI (ln(0) otherwise).
PSI_EPSILON = 1e-4


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
class Drift:
    """PSI of every model feature, training window vs a scoring window, and the training
    run's split it was measured against (a retrain reuses it)."""

    info: ModelInfo
    target: str  # the training run's (`info.target`, never None here)
    window: DatasetRecord
    psi: Mapping[str, float] = field(hash=False)  # per feature, largest first
    max_feature: str
    max_psi: float
    time_column: str | None
    train_fraction: float
    drop: tuple[str, ...]


def measure_drift(
    paths: ProjectPaths,
    model_cid: str,
    window: str,
    *,
    retrain: bool = False,
    progress: Progress | None = None,
) -> Drift:
    """PSI per model feature, training window vs `window` (nothing is recorded).

    With `retrain`, also refuses what a retrain on `window` could not do: a model trained
    elsewhere (no recipe), a window without the target, dropped or time columns.
    """
    say = progress or (lambda *_: None)
    paths.require_initialised()
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
        n: round(
            population_stability(train_x[:, i], column_array(table, n, prep.categories.get(n))), 6
        )
        for i, n in enumerate(names)
    }
    psi = dict(sorted(psi.items(), key=lambda kv: (-kv[1], kv[0])))
    max_feature, max_psi = next(iter(psi.items()))
    return Drift(
        info, info.target, win, psi, max_feature, max_psi, time_column, fraction, tuple(drop)
    )


__all__ = ["PSI_EPSILON", "Drift", "measure_drift", "population_stability"]
