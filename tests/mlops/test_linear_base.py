"""XGBoost boosted from a linear base (`--params '{"linear_base": true}'`; off by default).

What must hold: the stored file alone reproduces the trained score (trees with a zero base
plus the stored line), contributions stay exact and additive, a damaged base is refused
rather than scored quietly, re-registering the booster keeps its base, and the base does
what it is for: rows beyond the training range keep the line's direction.
"""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pytest

from ledgerml.errors import InputError
from ledgerml.mlops import models
from ledgerml.mlops.fitting import fit_model, fit_model_used
from ledgerml.mlops.models._base import LINEAR_BASE_KEY, META_KEY
from ledgerml.mlops.training import model_from_bytes, prepare

LINE = {"linear_base": True}


def _table(n: int = 6000, seed: int = 0) -> pa.Table:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 4))
    logit = 2.0 * x[:, 0] + x[:, 1] ** 2 - 5.0 + rng.normal(size=n)
    cols = {f"f{i}": x[:, i] for i in range(4)}
    return pa.table({"t": np.arange(n, dtype=float), **cols, "y": (logit > 0).astype(np.int64)})


@pytest.fixture(scope="module")
def prep():  # type: ignore[no-untyped-def]
    return prepare(_table(), "y", "t", 0.8)


def test_a_linear_base_model_stores_its_base_and_is_reproducible(prep) -> None:  # type: ignore[no-untyped-def]
    raw, used = fit_model_used(prep, "xgboost", LINE, 0)
    assert used["linear_base"] is True
    assert raw == fit_model(prep, "xgboost", LINE, 0)  # same data, params, seed: same bytes
    import xgboost as xgb

    booster = xgb.Booster(model_file=bytearray(raw))
    base = json.loads(booster.attr(META_KEY))[LINEAR_BASE_KEY]
    assert base["format"] == "ledgerml-linear-base/v1"
    assert len(base["coef"]) == len(base["mean"]) == len(base["scale"]) == 4

    # The score, recomputed from the file by hand: trees (zero base) + the stored line.
    x = prep.x[-200:]
    z = (x - np.array(base["mean"])) / np.array(base["scale"])
    line = z @ np.array(base["coef"]) + base["intercept"]
    trees = booster.inplace_predict(x, predict_type="margin", base_margin=np.zeros(len(x)))
    model = model_from_bytes("m", raw)
    np.testing.assert_allclose(model.logits(x), trees + line, rtol=0, atol=1e-5)
    np.testing.assert_allclose(
        model.predict_proba(x), 1 / (1 + np.exp(-(trees + line))), rtol=0, atol=1e-6
    )
    # ... and it is not the trees alone (XGBoost's own base score): the line matters.
    alone = booster.inplace_predict(x, predict_type="margin")
    assert np.abs(model.logits(x) - alone).max() > 0.1


def test_contributions_are_exact_and_include_the_line(prep) -> None:  # type: ignore[no-untyped-def]
    model = model_from_bytes("m", fit_model(prep, "xgboost", LINE, 0))
    x = prep.x[-100:]
    contrib = model.contributions(x)
    assert contrib.shape == (100, 5)
    np.testing.assert_allclose(contrib.sum(axis=1), model.logits(x), rtol=0, atol=1e-4)
    # f0 carries the linear signal: its contribution moves with it, as the line says
    order = np.argsort(x[:, 0])
    assert contrib[order[-1], 0] > contrib[order[0], 0]
    assert "linear-base term" in model.explanation  # the reasons say how they are made
    reasons = model.explain({f"f{i}": x[:3, i].tolist() for i in range(4)}, top=2)
    assert len(reasons) == 3 and all(len(r) <= 2 for r in reasons)


def test_the_default_gives_plain_trees(prep) -> None:  # type: ignore[no-untyped-def]
    import xgboost as xgb

    raw, used = fit_model_used(prep, "xgboost", None, 0)
    assert used["linear_base"] is False
    meta = json.loads(xgb.Booster(model_file=bytearray(raw)).attr(META_KEY))
    assert LINEAR_BASE_KEY not in meta
    booster = xgb.Booster(model_file=bytearray(raw))
    x = prep.x[-50:]
    np.testing.assert_allclose(
        model_from_bytes("m", raw).logits(x),
        booster.inplace_predict(x, predict_type="margin"),
        rtol=0,
        atol=1e-6,
    )


@pytest.mark.parametrize("value", ["yes", 1, None])
def test_linear_base_must_be_a_boolean(prep, value) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(InputError) as err:
        fit_model(prep, "xgboost", {"linear_base": value}, 0)
    assert err.value.field == "--params.linear_base"


def _with_meta(raw: bytes, change) -> bytes:  # type: ignore[no-untyped-def]
    import xgboost as xgb

    booster = xgb.Booster(model_file=bytearray(raw))
    meta = json.loads(booster.attr(META_KEY))
    change(meta)
    booster.set_attr(**{META_KEY: json.dumps(meta)})
    return bytes(booster.save_raw(raw_format="ubj"))


@pytest.mark.parametrize(
    "damage",
    [
        lambda m: m[LINEAR_BASE_KEY]["coef"].pop(),
        lambda m: m[LINEAR_BASE_KEY].update(format="other/v9"),
        lambda m: m[LINEAR_BASE_KEY].pop("intercept"),
        lambda m: m[LINEAR_BASE_KEY]["scale"].__setitem__(0, "x"),
    ],
)
def test_a_damaged_linear_base_is_refused(prep, damage) -> None:  # type: ignore[no-untyped-def]
    raw = _with_meta(fit_model(prep, "xgboost", LINE, 0), damage)
    with pytest.raises(InputError) as err:
        models.load("c", raw, source="model.ubj")
    assert err.value.field == "model.ubj"
    assert "damaged" in str(err.value)


def test_redumping_the_booster_keeps_its_linear_base(prep) -> None:  # type: ignore[no-untyped-def]
    """`Project.log_model` re-dumps a loaded booster with new metadata: the line must stay."""
    raw = fit_model(prep, "xgboost", LINE, 0)
    loaded = models.load("c", raw)
    names = [f"f{i}" for i in range(4)]
    again, kind = models.dump(loaded._impl, features=names, reference=loaded.reference)
    assert kind == "xgboost"
    x = prep.x[-100:]
    np.testing.assert_allclose(
        models.load("d", again).predict_proba(x), loaded.predict_proba(x), rtol=0, atol=1e-7
    )
    with pytest.raises(InputError) as err:
        models.dump(loaded._impl, features=names[:3], reference=loaded.reference)
    assert err.value.field == "features"


def test_the_line_keeps_its_direction_beyond_the_training_range() -> None:
    """Why the base exists: trees give every row past the last split the edge's score, so
    a fraud more extreme than any training fraud ranks no higher than the edge; the line
    keeps ranking it by how far out it lies."""
    rng = np.random.default_rng(1)
    n = 8000
    x0 = np.concatenate([rng.uniform(-2, 2, n - 400), rng.uniform(2, 6, 400)])
    noise = rng.normal(size=(n, 2))
    y = (rng.uniform(size=n) < 1 / (1 + np.exp(-(3 * x0 - 7)))).astype(np.int64)
    table = pa.table(
        {"t": np.arange(n, dtype=float), "x0": x0, "n1": noise[:, 0], "n2": noise[:, 1], "y": y}
    )
    p = prepare(table, "y", "t", 0.95)  # the last 400 rows (x0 in [2, 6]) are never trained on
    assert p.x[: p.split.train_rows, 0].max() < 2.0
    with_line = model_from_bytes("a", fit_model(p, "xgboost", LINE, 0))
    trees = model_from_bytes("b", fit_model(p, "xgboost", None, 0))
    # one row pushed ever further out along x0, past every training row
    probe = np.repeat(p.x[-1:], 4, axis=0)
    probe[:, 0] = [2.5, 3.5, 4.5, 5.5]
    assert np.ptp(trees.logits(probe)) < 1e-6  # the trees' score is flat out there
    assert np.all(np.diff(with_line.logits(probe)) > 0.1)  # the line's keeps rising


def test_small_batches_score_the_same_bytes_as_one_batch(prep) -> None:  # type: ignore[no-untyped-def]
    """Audits re-score decisions in bulk that were scored one row at a time (the one-thread
    copy): the line must not make the two paths differ by a bit."""
    model = model_from_bytes("m", fit_model(prep, "xgboost", LINE, 0))
    x = prep.x[:700]
    one_by_one = np.concatenate([model.predict_proba(x[k : k + 1]) for k in range(0, 70)])
    small = np.concatenate([model.predict_proba(x[k : k + 7]) for k in range(0, 700, 7)])
    whole = model.predict_proba(x)
    assert np.array_equal(small, whole) and np.array_equal(one_by_one, whole[:70])
