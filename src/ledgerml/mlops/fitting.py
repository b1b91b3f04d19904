"""Fitting per model type: prepared rows and checked parameters in, model bytes out.

Same data, parameters and seed give the same bytes and so the same model CID: XGBoost
runs with `tree_method="hist"`, a fixed `nthread` and `seed`, and its UBJSON is
byte-stable for that; the logistic regression is canonical JSON. Nothing here writes to
the ledger: `training.train_model` records the run around a fit, and backtests and
benchmarks call `fit_model_used` / `fit_model` directly.

Usage::

    raw = fit_model(prep, "xgboost", {"max_depth": 4}, seed=0)   # bytes, nothing recorded
    raw, used = fit_model_used(prep, "logreg")                    # plus the params it used
    recipe_hash(dataset_cid=..., target=..., ...)                 # matches a run to a backtest
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ledgerml.crypto.canonical import canonical_json
from ledgerml.errors import InputError
from ledgerml.mlops.models._base import LINEAR_BASE_KEY, META_KEY, linear_margin
from ledgerml.mlops.params import (
    LOGREG_DEFAULTS,
    MODEL_TYPES,
    XGB_FIXED,
    ModelType,
    _resolve_weight,
    check_params,
    check_seed,
)
from ledgerml.mlops.training_data import Prepared

#: progress(stage, done, total): the CLI draws a bar from it.
Progress = Callable[[str, int, int], None]
#: Share of the training window (its most recent rows) used for early stopping.
VALIDATION_FRACTION = 0.1


def reference_percentiles(x: Any) -> dict[str, list[float]]:
    """Training-window percentiles per feature (5, 25, 50, 75, 95): the words of a reason."""
    import numpy as np

    q = np.nanpercentile(x, [5, 25, 50, 75, 95], axis=0)
    return {"percentiles": [5, 25, 50, 75, 95], "values": np.round(q.T, 6).tolist()}


def _fit_xgboost(
    prep: Prepared, params: dict[str, Any], seed: int, progress: Progress | None
) -> tuple[bytes, dict[str, Any]]:
    """Early stopping on the time-ordered tail of the training window, then a refit on all of it."""
    import xgboost as xgb

    cut = prep.split.train_rows
    names = [n for n, _ in prep.features]
    x, y = prep.x[:cut], prep.y[:cut]
    booster_params = {
        k: v
        for k, v in params.items()
        if k
        not in (
            "num_boost_round",
            "early_stopping_rounds",
            "min_boost_round",
            "scale_pos_weight_rule",
            "linear_base",
        )
    }
    booster_params.update(XGB_FIXED, seed=seed)
    rounds = int(params["num_boost_round"])
    patience = int(params["early_stopping_rounds"])
    floor = min(int(params.get("min_boost_round", 0)), rounds)
    say = progress or (lambda *_: None)

    class _Tick(xgb.callback.TrainingCallback):
        def __init__(self, stage: str, total: int) -> None:
            self.stage, self.total = stage, total

        def after_iteration(self, model: Any, epoch: int, evals_log: Any) -> bool:
            say(self.stage, epoch + 1, self.total)
            return False

    class _Patience(xgb.callback.TrainingCallback):
        """Stop after max(`patience`, best/2) rounds without a better validation score, never
        before `floor`. Why: a fixed patience of 30 stopped at round 14 on a split where a few
        validation frauds happened to rank well early (issue 15); a late optimum needs a
        longer wait to be found, and a floor keeps a noisy start from deciding alone."""

        def __init__(self, patience: int, floor: int) -> None:
            self.patience, self.floor = patience, floor
            self.best, self.score = 0, float("inf")

        def after_iteration(self, model: Any, epoch: int, evals_log: Any) -> bool:
            metric, values = next(iter(evals_log["valid"].items()))
            value = -float(values[-1]) if metric in ("aucpr", "auc") else float(values[-1])
            if value < self.score:
                self.best, self.score = epoch, value
            wait = max(self.patience, self.best // 2)
            return epoch + 1 >= self.floor and epoch - self.best > wait

    linear = bool(params.get("linear_base", False))
    chosen = rounds
    vcut = int(cut * (1 - VALIDATION_FRACTION))
    if patience > 0 and y[vcut:].sum() > 0 and y[:vcut].sum() > 0:
        import numpy as np

        # The early-stopping pass gets its own linear base, fitted on its own rows only.
        early = linear_fit(x[:vcut], y[:vcut], seed) if linear else None
        dtrain = xgb.DMatrix(
            x[:vcut], y[:vcut], base_margin=_margin(early, x[:vcut]), feature_names=names
        )
        # The validation rows carry the class weight the training loss uses, so early
        # stopping watches the loss being minimised, not an unweighted one it trades off.
        weight = float(booster_params.get("scale_pos_weight", 1.0))
        dvalid = xgb.DMatrix(
            x[vcut:],
            y[vcut:],
            weight=np.where(y[vcut:] > 0, weight, 1.0),
            base_margin=_margin(early, x[vcut:]),
            feature_names=names,
        )
        stop = _Patience(patience, floor)
        xgb.train(
            booster_params,
            dtrain,
            rounds,
            evals=[(dvalid, "valid")],
            verbose_eval=False,
            callbacks=[_Tick("early stopping", rounds), stop],
        )
        chosen = max(stop.best + 1, floor)
    base = linear_fit(x, y, seed) if linear else None
    dfull = xgb.DMatrix(x, y, base_margin=_margin(base, x), feature_names=names)
    booster = xgb.train(
        booster_params, dfull, chosen, verbose_eval=False, callbacks=[_Tick("training", chosen)]
    )
    meta = {"reference": reference_percentiles(x), "features": names, **prep.meta()}
    if base is not None:
        meta[LINEAR_BASE_KEY] = base
    booster.set_attr(**{META_KEY: json.dumps(meta, sort_keys=True)})
    raw = bytes(booster.save_raw(raw_format="ubj"))
    return raw, {
        **booster_params,
        "num_boost_round": chosen,
        "max_rounds": rounds,
        "early_stopping_rounds": patience,
        "min_boost_round": floor,
        "linear_base": linear,
    }


def linear_fit(x: Any, y: Any, seed: int) -> dict[str, Any]:
    """The linear base of an XGBoost model (`linear_base`): a standardised L2 logistic
    regression with the logistic baseline's settings, on the same rows as the trees.

    Why boost from it: trees cannot extrapolate, so a fraud whose values lie beyond every
    training fraud's gets a tree's edge score; the linear margin keeps its direction, and
    the trees add what the line misses. Missing values enter as the training mean (zero
    after standardising). Coefficients are rounded to 12 digits *before* the trees are
    fitted on the margin they give, so the stored document reproduces training exactly.
    """
    import numpy as np

    mean = np.nan_to_num(np.nanmean(x, axis=0))
    scale = np.nan_to_num(np.nanstd(x, axis=0))
    scale[scale == 0] = 1.0
    z = np.nan_to_num((x - mean) / scale)
    terms = _standardised_logistic(z, y, mean, scale, params=LOGREG_DEFAULTS, seed=seed)
    return {"format": "ledgerml-linear-base/v1", **terms}


def _standardised_logistic(
    z: Any, y: Any, mean: Any, scale: Any, *, params: Mapping[str, Any], seed: int
) -> dict[str, Any]:
    """Fit an L2 logistic regression on standardised rows `z`; the stored terms (mean, scale,
    coef, intercept), rounded to 12 digits: `--model logreg` and the linear base share it."""
    from sklearn.linear_model import LogisticRegression

    fit = LogisticRegression(
        C=float(params["C"]),
        max_iter=int(params["max_iter"]),
        class_weight=params.get("class_weight"),
        random_state=seed,
    ).fit(z, y)
    return {
        "mean": [round(float(v), 12) for v in mean],
        "scale": [round(float(v), 12) for v in scale],
        "coef": [round(float(v), 12) for v in fit.coef_[0]],
        "intercept": round(float(fit.intercept_[0]), 12),
    }


def _margin(base: Mapping[str, Any] | None, x: Any) -> Any:
    """The linear base's log-odds per row, or None (no base: XGBoost's own base score)."""
    return None if base is None else linear_margin(base, x)


def _fit_logreg(
    prep: Prepared, params: dict[str, Any], seed: int, progress: Progress | None
) -> tuple[bytes, dict[str, Any]]:
    """Standardised L2 logistic regression (lbfgs, deterministic); canonical JSON of the fit."""
    import numpy as np

    cut = prep.split.train_rows
    x, y = prep.x[:cut], prep.y[:cut]
    if np.isnan(x).any():
        cols = [prep.features[i][0] for i in np.where(np.isnan(x).any(axis=0))[0]]
        raise InputError(
            f"logreg cannot take missing values (columns: {', '.join(cols[:8])}); use xgboost "
            "or fill them before registering",
            field="--model",
        )
    if progress:
        progress("training", 0, 1)
    mean = x.mean(axis=0)
    scale = x.std(axis=0)
    scale[scale == 0] = 1.0
    terms = _standardised_logistic((x - mean) / scale, y, mean, scale, params=params, seed=seed)
    if progress:
        progress("training", 1, 1)
    doc = {
        "format": "ledgerml-logreg/v1",
        "features": [n for n, _ in prep.features],
        **terms,
        META_KEY: {"reference": reference_percentiles(x), **prep.meta()},
    }
    return canonical_json(doc), {**params, "solver": "lbfgs", "standardise": True}


def fit_model(
    prep: Prepared,
    model: ModelType = "xgboost",
    params: dict[str, Any] | None = None,
    seed: int = 0,
    progress: Progress | None = None,
) -> bytes:
    """The model bytes `train_model` would store, with nothing recorded (benchmarks, dry runs)."""
    return fit_model_used(prep, model, params, seed, progress)[0]


def fit_model_used(
    prep: Prepared,
    model: ModelType | str = "xgboost",
    params: Mapping[str, Any] | None = None,
    seed: int = 0,
    progress: Progress | None = None,
) -> tuple[bytes, dict[str, Any]]:
    """`fit_model` plus the parameters it used (rounds chosen, weight resolved): backtests."""
    if model not in MODEL_TYPES:
        raise InputError(f"must be one of {', '.join(MODEL_TYPES)}", field="--model")
    merged = _resolve_weight(model, check_params(model, params), prep)
    fit = _fit_xgboost if model == "xgboost" else _fit_logreg
    return fit(prep, merged, check_seed(seed), progress)


def recipe_hash(
    *,
    dataset_cid: str,
    target: str,
    time_column: str | None,
    drop: Sequence[str],
    model_type: str,
    params: Mapping[str, Any],
    seed: int,
) -> str:
    """SHA-256 of what makes a model apart from where the split falls: a training run and a
    backtest that share it trained the same way, so the gate credits the run with the backtest."""
    import hashlib

    doc = {
        "dataset_cid": dataset_cid,
        "target": target,
        "time_column": time_column,
        "drop": sorted(drop),
        "model_type": model_type,
        "params": dict(params),
        "seed": seed,
    }
    return hashlib.sha256(canonical_json(doc)).hexdigest()
