"""Training parameters: what a user may set per model type, the defaults, and their checks.

Everything here runs before anything is recorded: an unknown key, a wrong type or a value
out of range is an `InputError` naming `--params.<key>`. `XGB_FIXED` is not settable: it
decides whether the model bytes are reproducible.

Usage::

    merged = check_params("xgboost", {"max_depth": 4})   # user params over XGB_DEFAULTS
    seed = check_seed(seed)
    merged = _resolve_weight("xgboost", merged, prep)     # "sqrt" -> the recorded number
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any, Literal

from ledgerml.errors import InputError
from ledgerml.mlops.training_data import Prepared

ModelType = Literal["xgboost", "logreg"]
MODEL_TYPES: tuple[str, ...] = ("xgboost", "logreg")
MAX_SEED = 2**31 - 1

#: Fraud defaults (issue 15: they must hold on data nobody tuned to). Chosen only on the
#: first half of ULB by time (`bench/tune_defaults.py`: two inner time-ordered folds,
#: every candidate against the logistic baseline trained on the same rows), which every
#: backtest fold and every 50%-90% cut tests after:
#: * rounds: early stopping on the *weighted log-loss* of the training window's last 10%
#:   (smooth; AUPRC on a few dozen validation frauds stopped at round 8 and 37 there, and
#:   at 14 on the issue's split), with a patience that grows with the best round
#:   (max(30, best/2)) and never fewer than `min_boost_round` = 100;
#: * `scale_pos_weight` = sqrt(negatives / positives) of the training window: without it
#:   the inner folds' FP ratios were 1.56 / 0.12, with it 1.10 / 0.24 (max_depth 4: 1.74);
#: * max_depth 6, eta 0.1: XGBoost's defaults, kept (depth 4 was worse above);
#: * `linear_base` off: boosting the trees from a logistic margin was adopted by a rule on
#:   the inner folds above (worst / median FP ratio 0.29 / 0.23 against 1.10 / 0.67), then
#:   judged, by a protocol committed before the run, on a second real table nobody had
#:   tuned to (IEEE-CIS, 5 folds): plain trees had both the lower median and the lower
#:   worst fold ratio there (0.40 / 0.42 against 0.42 / 0.52; AUPRC 0.55 / 0.47 against
#:   0.49 / 0.23), so the protocol put the default back. It stays a parameter.
#: The price of the weight is calibration: probabilities run high.
XGB_DEFAULTS: dict[str, Any] = {
    "objective": "binary:logistic",
    "scale_pos_weight": "sqrt",
    "eval_metric": "logloss",
    "max_depth": 6,
    "eta": 0.1,
    "min_child_weight": 1.0,
    "subsample": 1.0,
    "colsample_bytree": 1.0,
    "num_boost_round": 300,
    "early_stopping_rounds": 30,
    "min_boost_round": 100,
    "linear_base": False,
}
#: Fixed, not user-settable: they decide whether the bytes are reproducible.
XGB_FIXED = {"tree_method": "hist", "nthread": 2}

_NUM = (int, float)
#: XGBoost parameters we accept, with their JSON types and a range check.
_XGB_PARAMS: dict[str, tuple[tuple[type, ...], Callable[[Any], bool], str]] = {
    "max_depth": ((int,), lambda v: 0 <= v <= 32, "an integer from 0 to 32"),
    "eta": (_NUM, lambda v: 0 < v <= 1, "a number in (0, 1]"),
    "learning_rate": (_NUM, lambda v: 0 < v <= 1, "a number in (0, 1]"),
    "gamma": (_NUM, lambda v: v >= 0, "a number >= 0"),
    "min_child_weight": (_NUM, lambda v: v >= 0, "a number >= 0"),
    "max_delta_step": (_NUM, lambda v: v >= 0, "a number >= 0"),
    "subsample": (_NUM, lambda v: 0 < v <= 1, "a number in (0, 1]"),
    "colsample_bytree": (_NUM, lambda v: 0 < v <= 1, "a number in (0, 1]"),
    "colsample_bylevel": (_NUM, lambda v: 0 < v <= 1, "a number in (0, 1]"),
    "colsample_bynode": (_NUM, lambda v: 0 < v <= 1, "a number in (0, 1]"),
    "lambda": (_NUM, lambda v: v >= 0, "a number >= 0"),
    "reg_lambda": (_NUM, lambda v: v >= 0, "a number >= 0"),
    "alpha": (_NUM, lambda v: v >= 0, "a number >= 0"),
    "reg_alpha": (_NUM, lambda v: v >= 0, "a number >= 0"),
    "scale_pos_weight": (
        (int, float, str),
        lambda v: v in ("sqrt", "balanced") if isinstance(v, str) else v > 0,
        'a number > 0, "sqrt" or "balanced" (of negatives / positives in the training window)',
    ),
    "max_bin": ((int,), lambda v: 2 <= v <= 65536, "an integer from 2 to 65536"),
    "max_leaves": ((int,), lambda v: v >= 0, "an integer >= 0"),
    "grow_policy": ((str,), lambda v: v in ("depthwise", "lossguide"), "depthwise or lossguide"),
    "base_score": (_NUM, lambda v: 0 < v < 1, "a number in (0, 1)"),
    "objective": (
        (str,),
        lambda v: v in ("binary:logistic", "binary:logitraw"),
        "binary:logistic or binary:logitraw",
    ),
    "eval_metric": ((str,), lambda v: v in ("aucpr", "auc", "logloss"), "aucpr, auc or logloss"),
    "num_boost_round": ((int,), lambda v: 1 <= v <= 10_000, "an integer from 1 to 10000"),
    "early_stopping_rounds": ((int,), lambda v: 0 <= v <= 10_000, "an integer from 0 to 10000"),
    "min_boost_round": ((int,), lambda v: 0 <= v <= 10_000, "an integer from 0 to 10000"),
    "linear_base": ((bool,), lambda v: True, "true or false"),
}
_LOGREG_PARAMS: dict[str, tuple[tuple[type, ...], Callable[[Any], bool], str]] = {
    "C": (_NUM, lambda v: v > 0, "a number > 0"),
    "max_iter": ((int,), lambda v: 1 <= v <= 100_000, "an integer from 1 to 100000"),
    "class_weight": ((str,), lambda v: v == "balanced", '"balanced"'),
}
LOGREG_DEFAULTS: dict[str, Any] = {"C": 1.0, "max_iter": 2000}


def check_params(model: str, params: Mapping[str, Any] | None) -> dict[str, Any]:
    """User params merged over the defaults; unknown keys and wrong types name the key."""
    if params is None:
        params = {}
    if not isinstance(params, Mapping):
        raise InputError("must be a JSON object of parameters", field="--params")
    spec = _XGB_PARAMS if model == "xgboost" else _LOGREG_PARAMS
    for key, value in params.items():
        if key in XGB_FIXED and model == "xgboost":
            raise InputError(
                f"{key!r} is fixed at {XGB_FIXED[key]!r} (it decides whether the model "
                "bytes are reproducible)",
                field=f"--params.{key}",
            )
        if key not in spec:
            known = ", ".join(sorted(spec))
            raise InputError(
                f"unknown {model} parameter {key!r} (known: {known})", field="--params"
            )
        types, ok, what = spec[key]
        wrong_type = (isinstance(value, bool) and bool not in types) or not isinstance(value, types)
        if isinstance(value, float) and not math.isfinite(value):
            wrong_type = True
        if wrong_type or not ok(value):
            raise InputError(f"must be {what}, got {value!r}", field=f"--params.{key}")
    defaults = XGB_DEFAULTS if model == "xgboost" else LOGREG_DEFAULTS
    merged = {**defaults, **dict(params)}
    if model == "xgboost":
        if "learning_rate" in merged:
            merged["eta"] = merged.pop("learning_rate")
        if "reg_lambda" in merged:
            merged["lambda"] = merged.pop("reg_lambda")
        if "reg_alpha" in merged:
            merged["alpha"] = merged.pop("reg_alpha")
    return merged


def check_seed(seed: Any) -> int:
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= MAX_SEED:
        raise InputError(f"must be an integer from 0 to {MAX_SEED}", field="--seed")
    return seed


def _resolve_weight(model: str, merged: dict[str, Any], prep: Prepared) -> dict[str, Any]:
    """Turn `scale_pos_weight` "sqrt"/"balanced" into the number the run records."""
    if model != "xgboost" or not isinstance(merged.get("scale_pos_weight"), str):
        return merged
    train_y = prep.y[: prep.split.train_rows]
    ratio = float((train_y == 0).sum() / train_y.sum())
    rule = merged["scale_pos_weight"]
    return {
        **merged,
        "scale_pos_weight": round(math.sqrt(ratio) if rule == "sqrt" else ratio, 6),
        "scale_pos_weight_rule": f"{rule} of negatives/positives in the training window",
    }
