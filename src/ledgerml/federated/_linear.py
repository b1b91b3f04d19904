"""A logistic-regression model for FedAvg: updates are weight deltas.

Features go through a fixed transform every bank applies the same way
(sign(x)·log1p(|x|), missing → 0), so no bank has to share statistics of its data.
Model and update bytes are canonical JSON: `{"kind": "linear", "w": [...], "b": x}`
(an update holds the delta of the weights). Aggregation is FedAvg: base + Σ wᵢ·δᵢ.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class LinearParams:
    """Local training: full-batch gradient descent with L2, positives up-weighted."""

    lr: float = 0.5
    epochs: int = 30
    l2: float = 1e-3
    pos_weight: float = 20.0


def _doc(w: np.ndarray, b: float) -> bytes:
    body = {"kind": "linear", "w": [float(v) for v in w], "b": float(b)}
    return json.dumps(body, sort_keys=True, separators=(",", ":"), allow_nan=False).encode()


def _parse(model: bytes) -> tuple[np.ndarray, float]:
    doc = json.loads(model)
    if doc.get("kind") != "linear":
        raise ValueError("not a linear model")
    return np.asarray(doc["w"], np.float64), float(doc["b"])


def transform(x: np.ndarray) -> np.ndarray:
    z = np.sign(x) * np.log1p(np.abs(x))
    return np.nan_to_num(z.astype(np.float64), nan=0.0, posinf=0.0, neginf=0.0)


def empty_model(num_feature: int, base_score: float = 0.01) -> bytes:
    return _doc(np.zeros(num_feature), float(np.log(base_score / (1 - base_score))))


def train_increment(model: bytes, x: np.ndarray, y: np.ndarray, params: LinearParams) -> bytes:
    """The weight delta after `epochs` gradient steps from `model` on (x, y)."""
    w0, b0 = _parse(model)
    z = transform(x)
    yy = np.asarray(y, np.float64)
    sw = np.where(yy > 0, params.pos_weight, 1.0)
    sw /= sw.sum()
    w, b = w0.copy(), b0
    for _ in range(params.epochs):
        p = 1.0 / (1.0 + np.exp(-(z @ w + b)))
        g = (p - yy) * sw
        w -= params.lr * (z.T @ g + params.l2 * w)
        b -= params.lr * float(g.sum())
    return _doc(w - w0, b - b0)


def vector(update: bytes) -> np.ndarray:
    w, b = _parse(update)
    return np.append(w, b)


def scale_model(update: bytes, factor: float) -> bytes:
    w, b = _parse(update)
    return _doc(w * factor, b * factor)


def aggregate(base: bytes, updates: Sequence[tuple[bytes, float]]) -> bytes:
    w, b = _parse(base)
    for update, weight in updates:
        dw, db = _parse(update)
        w = w + weight * dw
        b = b + weight * db
    return _doc(w, b)


def predict_margin(model: bytes, x: np.ndarray) -> np.ndarray:
    w, b = _parse(model)
    return transform(x) @ w + b
