"""XGBoost updates as tree lists: train a bank's increment, scale it, add it to a model.

A federated round adds, to the current global model, the trust-weighted sum of the
banks' increments (each bank boosts `local_rounds` trees from the global model on its
own data). A tree scaled by w predicts w times its leaf values, so the weighted sum
of increments is a list of scaled trees: an ordinary XGBoost model any XGBoost can
load. Model bytes are XGBoost JSON with sorted keys, so the same inputs always give the
same bytes and the same CID — which is what lets an auditor re-derive a round.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class XgbParams:
    """Booster parameters every bank uses (sent by the server each round)."""

    eta: float = 0.3
    max_depth: int = 4
    local_rounds: int = 5
    #: the starting score; fixed and shared (with XGBoost's default min_child_weight=1 a
    #: much lower start leaves too little hessian per leaf for rare laundering clusters)
    base_score: float = 0.01
    subsample: float = 0.8
    colsample_bytree: float = 0.8
    seed: int = 0
    nthread: int = 1

    def booster_params(self) -> dict[str, Any]:
        return {
            "objective": "binary:logistic",
            "eval_metric": "logloss",
            "eta": self.eta,
            "max_depth": self.max_depth,
            "base_score": self.base_score,
            "subsample": self.subsample,
            "colsample_bytree": self.colsample_bytree,
            "seed": self.seed,
            "nthread": self.nthread,
            "tree_method": "hist",
        }


def canonical(model: dict[str, Any]) -> bytes:
    """Deterministic bytes of a model JSON document."""
    return json.dumps(model, sort_keys=True, separators=(",", ":"), allow_nan=False).encode()


def empty_model(params: XgbParams, num_feature: int, base_score: float | None = None) -> bytes:
    """A model with no trees predicting `base_score` (the consortium's laundering rate in
    a federated run): round 1 starts from it."""
    import xgboost as xgb

    x = np.zeros((2, num_feature), np.float32)
    p = params.booster_params()
    if base_score is not None:
        p["base_score"] = base_score
    booster = xgb.train(p, xgb.DMatrix(x, label=[0, 1]), 0)
    return canonical(json.loads(bytes(booster.save_raw("json"))))


def load(model: bytes) -> Any:
    import xgboost as xgb

    booster = xgb.Booster(params={"nthread": 1})
    booster.load_model(bytearray(model))
    return booster


def train_increment(
    model: bytes, x: np.ndarray, y: np.ndarray, params: XgbParams, round_: int
) -> bytes:
    """The `local_rounds` trees a bank boosts on top of `model`, as model bytes."""
    import xgboost as xgb

    booster = load(model)
    # the model's own base_score stays: passing one again would move the starting margin
    p = params.booster_params() | {"seed": params.seed + round_}
    del p["base_score"]
    start = booster.num_boosted_rounds()
    booster = xgb.train(p, xgb.DMatrix(x, label=y), params.local_rounds, xgb_model=booster)
    inc = booster[start : booster.num_boosted_rounds()]
    return canonical(json.loads(bytes(inc.save_raw("json"))))


def _trees(model: bytes) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    doc = json.loads(model)
    return doc, doc["learner"]["gradient_booster"]["model"]["trees"]


def scale_tree(tree: dict[str, Any], factor: float) -> dict[str, Any]:
    """The tree with every leaf value multiplied by `factor`."""
    out = dict(tree)
    leaves = [c == -1 for c in tree["left_children"]]
    out["split_conditions"] = [
        v * factor if leaf else v for v, leaf in zip(tree["split_conditions"], leaves, strict=True)
    ]
    out["base_weights"] = [
        v * factor if leaf else v for v, leaf in zip(tree["base_weights"], leaves, strict=True)
    ]
    return out


def scale_model(model: bytes, factor: float) -> bytes:
    """An update scaled by `factor` (what a model-replacement attacker sends)."""
    doc, trees = _trees(model)
    doc["learner"]["gradient_booster"]["model"]["trees"] = [scale_tree(t, factor) for t in trees]
    return canonical(doc)


def aggregate(base: bytes, updates: Sequence[tuple[bytes, float]]) -> bytes:
    """`base` plus each update's trees scaled by its weight, in the order given."""
    doc, trees = _trees(base)
    out = list(trees)
    for update, weight in updates:
        _, inc = _trees(update)
        out.extend(scale_tree(t, weight) for t in inc)
    for i, t in enumerate(out):
        t["id"] = i
    gb = doc["learner"]["gradient_booster"]["model"]
    gb["trees"] = out
    gb["tree_info"] = [0] * len(out)
    gb["iteration_indptr"] = list(range(len(out) + 1))
    gb["gbtree_model_param"] = dict(gb["gbtree_model_param"], num_trees=str(len(out)))
    return canonical(doc)


def predict_margin(model: bytes, x: np.ndarray) -> np.ndarray:
    import xgboost as xgb

    return load(model).predict(xgb.DMatrix(x), output_margin=True)


def predict(model: bytes, x: np.ndarray) -> np.ndarray:
    import xgboost as xgb

    return load(model).predict(xgb.DMatrix(x))


def logloss(margin: np.ndarray, y: np.ndarray) -> float:
    """Mean binary log loss from margins (stable for large margins)."""
    m = np.asarray(margin, np.float64)
    yy = np.asarray(y, np.float64)
    return float(np.mean(np.logaddexp(0.0, m) - yy * m))
