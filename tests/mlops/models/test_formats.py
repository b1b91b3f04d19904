"""The model formats: same model -> same bytes (CID), same scores after a round trip, reasons.

Real LightGBM, XGBoost, skops and onnxruntime on a small seeded table.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from ledgerml.crypto.canonical import canonical_json
from ledgerml.mlops import models
from ledgerml.mlops.training import model_from_bytes

FEATURES = ["a", "b", "c", "d"]


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray, dict[str, object]]:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(1500, 4))
    y = ((x[:, 0] > 1.0) | (x[:, 2] ** 2 > 4)).astype(int)
    q = np.nanpercentile(x, [5, 25, 50, 75, 95], axis=0)
    return x, y, {"percentiles": [5, 25, 50, 75, 95], "values": q.T.round(6).tolist()}


def _fitted(kind: str, x: np.ndarray, y: np.ndarray) -> object:
    if kind == "lightgbm":
        import lightgbm as lgb

        return lgb.LGBMClassifier(n_estimators=30, deterministic=True, n_jobs=1, verbose=-1).fit(
            x, y
        )
    if kind == "xgboost":
        from xgboost import XGBClassifier

        return XGBClassifier(n_estimators=30, n_jobs=1).fit(x, y)
    from sklearn.ensemble import GradientBoostingClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    pipe = make_pipeline(StandardScaler(), GradientBoostingClassifier(n_estimators=30)).fit(x, y)
    if kind == "sklearn":
        return pipe
    from skl2onnx import to_onnx

    return to_onnx(pipe, x[:1].astype(np.float32), options={"zipmap": False})


@pytest.mark.parametrize("kind", ["lightgbm", "xgboost", "sklearn", "onnx"])
def test_round_trip_is_deterministic_and_explains(kind: str, data: tuple) -> None:
    x, y, ref = data
    fitted = _fitted(kind, x, y)
    raw, name = models.dump(fitted, features=FEATURES, reference=ref)
    again, _ = models.dump(fitted, features=FEATURES, reference=ref)
    assert name == kind and raw == again  # same model, same bytes, same CID
    model = models.load("cid", raw, source=f"m.{kind}")
    assert model.features == tuple(FEATURES)
    p = model.predict_proba(x[:200])
    if kind != "onnx":
        expected = fitted.predict_proba(x[:200])[:, 1]  # type: ignore[attr-defined]
        np.testing.assert_allclose(p, expected, rtol=1e-5, atol=1e-6)
    contrib = model.contributions(x[:5])
    assert contrib.shape == (5, len(FEATURES) + 1)
    if kind in ("lightgbm", "xgboost"):  # TreeSHAP: contributions sum to the log-odds
        np.testing.assert_allclose(contrib.sum(axis=1), model.logits(x[:5]), atol=1e-4)
    flagged = x[np.argmax(p)][None, :]  # the most suspicious row has reasons
    assert model.explain(flagged, top=2)[0]
    assert models.explanation_of(model).startswith(
        "native" if kind in ("lightgbm", "xgboost") else "model-agnostic"
    )


def test_a_decline_driven_by_the_intercept_has_a_reason() -> None:
    """Every contribution negative, the score high from the intercept alone: still a reason."""
    doc = {
        "format": "ledgerml-logreg/v1",
        "features": ["a", "b"],
        "mean": [0.0, 0.0],
        "scale": [1.0, 1.0],
        "coef": [1.0, -2.0],
        "intercept": 6.0,
        "ledgerml": {"reference": {"values": [[-2, -1, 0, 1, 2], [-2, -1, 0, 1, 2]]}},
    }
    model = model_from_bytes("cid", canonical_json(doc))
    row = np.array([[-0.5, 0.5]])  # contributions -0.5 and -1.0; log-odds 4.5
    assert float(model.predict_proba(row)[0]) > 0.9
    reasons = model.explain(row, top=3)[0]
    assert len(reasons) == 1 and reasons[0].feature == "a"
    assert "no input raised this score" in reasons[0].text
    assert json.dumps(reasons[0].to_json())
