"""The two federated model families behind one interface.

* `xgboost` — trust-weighted federated bagging of XGBoost trees (FedXgbBagging with
  weights): each bank boosts a few trees on the global model; the aggregate adds every
  accepted bank's trees scaled by its weight.
* `linear` — FedAvg of a logistic regression: each bank sends its weight delta; the
  aggregate adds the weighted mean delta.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ledgerml.federated import _linear, _xgb
from ledgerml.federated.spec import RunSpec


def initial_model(spec: RunSpec, base_score: float | None = None) -> bytes:
    """The untrained model: predicts `base_score` (default: the spec's) everywhere."""
    rate = spec.xgb.base_score if base_score is None else base_score
    if spec.strategy == "xgboost":
        return _xgb.empty_model(spec.xgb, spec.num_feature, rate)
    return _linear.empty_model(spec.num_feature, rate)


def train_increment(
    spec: RunSpec, model: bytes, x: np.ndarray, y: np.ndarray, round_: int
) -> bytes:
    if spec.strategy == "xgboost":
        return _xgb.train_increment(model, x, y, spec.xgb, round_)
    return _linear.train_increment(model, x, y, spec.linear)


def scale(spec: RunSpec, update: bytes, factor: float) -> bytes:
    if spec.strategy == "xgboost":
        return _xgb.scale_model(update, factor)
    return _linear.scale_model(update, factor)


def aggregate(spec: RunSpec, base: bytes, updates: Sequence[tuple[bytes, float]]) -> bytes:
    """The next global model (deterministic bytes: the CID is reproducible)."""
    return aggregate_by(spec.strategy, base, updates)


def aggregate_by(strategy: str, base: bytes, updates: Sequence[tuple[bytes, float]]) -> bytes:
    """`aggregate` for a strategy named on the ledger (`fl.round` body `strategy`)."""
    if strategy == "xgboost":
        return _xgb.aggregate(base, updates)
    if strategy == "linear":
        return _linear.aggregate(base, updates)
    raise ValueError(f"unknown strategy {strategy!r}")


def predict_margin(spec: RunSpec, model: bytes, x: np.ndarray) -> np.ndarray:
    if spec.strategy == "xgboost":
        return _xgb.predict_margin(model, x)
    return _linear.predict_margin(model, x)


def vector(spec: RunSpec, update: bytes) -> np.ndarray | None:
    """The update as a flat vector for distance-based trust (linear models only)."""
    return _linear.vector(update) if spec.strategy == "linear" else None
